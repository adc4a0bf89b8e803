-- Roles (one per service, least privilege), the unit registry, raw events and case/document state.
-- Roles are cluster-wide; passwords are set by `dvc db migrate` from DVC_*_DB_PASSWORD.
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['dvc_ingest', 'dvc_metrics', 'dvc_alerts', 'dvc_reader'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', r);
    END IF;
  END LOOP;
END $$;

REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO dvc_ingest, dvc_metrics, dvc_alerts, dvc_reader;

-- Unit registry: written by the CLI (admin), read by every service.
CREATE TABLE unit_levels (
    level     text PRIMARY KEY,
    rank      integer NOT NULL UNIQUE,
    name      text NOT NULL,
    name_en   text NOT NULL
);

CREATE TABLE units (
    unit_id          text PRIMARY KEY CHECK (length(unit_id) BETWEEN 1 AND 64),
    name             text NOT NULL,
    level            text NOT NULL REFERENCES unit_levels (level) DEFERRABLE INITIALLY DEFERRED,
    parent_id        text REFERENCES units (unit_id) DEFERRABLE INITIALLY DEFERRED,
    head_name        text NOT NULL,
    head_email       text NOT NULL,
    head_webhook_url text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Registry version: bumped on every load so services reload without a restart.
CREATE TABLE registry_version (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    source     text NOT NULL
);

-- Global idempotency claim: an event_id is stored once across both topics.
CREATE TABLE event_ids (
    event_id text PRIMARY KEY
);

CREATE SEQUENCE event_arrival_seq;

-- Raw events, partitioned by month of occurred_at (partitions made on demand, see below).
CREATE TABLE events (
    event_id        text NOT NULL,
    arrival         bigint NOT NULL DEFAULT nextval('event_arrival_seq'),
    topic           text NOT NULL,
    event_type      text NOT NULL,
    unit_id         text NOT NULL,
    subject_id      text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    payload         jsonb NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (occurred_at);

-- The recompute path folds each subject's events in (occurred_at, arrival) order. The live path
-- never reads this table (cases keep their own history), so no other index slows the writes.
CREATE INDEX events_subject_idx ON events (subject_id, occurred_at, arrival);

-- Creates the month partition holding `month_start` (a date); SECURITY DEFINER so that
-- ingest needs no CREATE privilege on the schema.
CREATE FUNCTION ensure_event_partition(month_start date) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  first_day date := date_trunc('month', month_start)::date;
  part text := format('events_%s', to_char(first_day, 'YYYY_MM'));
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext(part));
  IF to_regclass(part) IS NULL THEN
    EXECUTE format(
      'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
      part, first_day::timestamp AT TIME ZONE 'UTC',
      (first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC');
  END IF;
END $$;
REVOKE ALL ON FUNCTION ensure_event_partition(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ensure_event_partition(date) TO dvc_ingest;

-- Current state of each case file, folded from its events by ingest.
CREATE TABLE cases (
    case_id         text PRIMARY KEY,
    unit_id         text,                 -- unit of the `received` event; NULL until it arrives
    received_at     timestamptz,
    procedure_code  text,
    channel         text,
    service_level   smallint,
    synced          boolean NOT NULL DEFAULT false,
    deadline        timestamptz,          -- effective deadline in force now
    clock_since     timestamptz,          -- start of the current running (unpaused) stretch
    paused_since    timestamptz,
    closed_at       timestamptz,
    close_type      text CHECK (close_type IN ('resolved', 'refused', 'withdrawn')),
    outcome         text,
    timeliness      text CHECK (timeliness IN ('early', 'on_time', 'late')),
    returned_at     timestamptz,
    apology_at      timestamptz,
    rating          text,
    rated_at        timestamptz,
    overdue_at      timestamptz[] NOT NULL DEFAULT '{}', -- past instants it became overdue
    last_event_at   timestamptz,          -- latest occurred_at applied
    history         jsonb NOT NULL,       -- its events (validated fields), refolded when one arrives late
    updated_at      timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);  -- room on each page for HOT updates: a case is rewritten at every event
CREATE INDEX cases_received_idx ON cases (unit_id, received_at);
CREATE INDEX cases_closed_idx ON cases (unit_id, closed_at) WHERE close_type = 'resolved';
CREATE INDEX cases_rated_idx ON cases (unit_id, rated_at) WHERE rated_at IS NOT NULL;
CREATE INDEX cases_open_deadline_idx ON cases (deadline)
    WHERE closed_at IS NULL AND paused_since IS NULL AND deadline IS NOT NULL AND unit_id IS NOT NULL;

-- Documents: one row per document, from its first `sent` event.
CREATE TABLE documents (
    document_id       text PRIMARY KEY,
    unit_id           text NOT NULL,
    sent_at           timestamptz NOT NULL,
    medium            text NOT NULL,
    secrecy           text NOT NULL,
    digitally_signed  boolean NOT NULL,
    recipient_unit_id text
);
CREATE INDEX documents_sent_idx ON documents (unit_id, sent_at);

GRANT SELECT ON unit_levels, units, registry_version TO dvc_ingest, dvc_metrics, dvc_alerts, dvc_reader;
GRANT SELECT, INSERT ON event_ids, events TO dvc_ingest;
GRANT USAGE ON SEQUENCE event_arrival_seq TO dvc_ingest;
GRANT SELECT, INSERT, UPDATE ON cases, documents TO dvc_ingest;
GRANT SELECT ON events, cases, documents TO dvc_metrics, dvc_reader;
