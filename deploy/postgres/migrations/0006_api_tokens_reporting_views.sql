-- Security: API tokens of the HTTP APIs, and least-privilege reading for Grafana (dvc_reader).

-- API tokens (Bearer) of the metrics and alerts HTTP APIs. One writer: `dvc tokens` (the admin DSN);
-- the services only read them. Only a SHA-256 of each token is kept; the token is shown once.
CREATE TABLE api_tokens (
    token_id    bigserial PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),  -- who holds it
    role        text NOT NULL CHECK (role IN ('operator', 'viewer')),
    token_hash  text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    prefix      text NOT NULL,                                      -- to recognise it in `dvc tokens list`
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,                                        -- NULL: until revoked
    revoked_at  timestamptz
);
GRANT SELECT ON api_tokens TO dvc_metrics, dvc_alerts;

-- dvc_reader (Grafana's PostgreSQL datasource; any Grafana editor can run SQL with it) reads only the
-- views of the `reporting` schema, made for boards and reports: no e-mail addresses, webhook URLs,
-- raw event payloads, case histories, message bodies, recipients or delivery errors. Views run with
-- their owner's privileges, so dvc_reader needs no privilege on the tables themselves. New board data
-- means a new view here, never a GRANT on a table.
CREATE SCHEMA reporting;
REVOKE ALL ON SCHEMA reporting FROM PUBLIC;

CREATE VIEW reporting.unit_levels AS
    SELECT level, rank, name, name_en FROM public.unit_levels;

-- Unit names and levels; the head's name is shown on the unit board, the head's addresses are not.
CREATE VIEW reporting.units AS
    SELECT unit_id, name, level, parent_id, head_name FROM public.units;

CREATE VIEW reporting.kpi_day_cells AS
    SELECT unit_id, day, kpi, numerator, denominator, updated_at FROM public.kpi_day_cells;

CREATE VIEW reporting.procedure_days AS
    SELECT unit_id, day, procedure_code, online FROM public.procedure_days;

CREATE VIEW reporting.overdue_days AS
    SELECT unit_id, day, case_id, apologized FROM public.overdue_days;

-- The case fields of overdue lists; not the history (validated event fields).
CREATE VIEW reporting.cases AS
    SELECT case_id, unit_id, procedure_code, received_at, deadline, paused_since, closed_at, apology_at
    FROM public.cases;

-- When each unit last reported (events dated at most an hour ahead), never the events themselves.
CREATE VIEW reporting.unit_last_events AS
    SELECT u.unit_id,
           (SELECT max(e.occurred_at) FROM public.events e
            WHERE e.unit_id = u.unit_id AND e.occurred_at <= now() + interval '1 hour') AS last_event_at
    FROM public.units u;

-- Alert states and alerts, without who acknowledged.
CREATE VIEW reporting.alert_states AS
    SELECT unit_id, kpi, period, state, since, numerator, denominator, figures, evaluated_at, alert_id
    FROM public.alert_states;

CREATE VIEW reporting.alerts AS
    SELECT alert_id, unit_id, kpi, period, opened_at, resolved_at, resolution, acknowledged_at,
           escalated_at, escalated_to
    FROM public.alerts;

-- Delivery counts: no recipient address, message body, payload or error text.
CREATE VIEW reporting.notifications AS
    SELECT notification_id, alert_id, unit_id, kpi, kind, channel, recipient_unit_id, status, attempts,
           next_attempt_at, created_at, sent_at
    FROM public.notifications;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM dvc_reader;  -- column grants go with the table's
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM dvc_reader;
REVOKE USAGE ON SCHEMA public FROM dvc_reader;
GRANT USAGE ON SCHEMA reporting TO dvc_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO dvc_reader;
