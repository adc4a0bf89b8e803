-- Alerts (written by the alerts service only): the evaluated state of each (unit, KPI, period), the
-- alerts opened on a breach, their state-change history (also the outbox of dvc.alerts.v1), the
-- notification outbox with delivery results, acknowledgements, silences and holiday overrides.
-- No foreign key to `units`: `dvc units load` replaces the registry while history must stay.

-- Current state of each (unit, KPI, period) and what hysteresis remembers.
CREATE TABLE alert_states (
    unit_id       text NOT NULL,
    kpi           text NOT NULL,
    period        text NOT NULL,              -- month:YYYY-MM or year:YYYY
    state         text NOT NULL CHECK (state IN ('ok', 'at_risk', 'below_target', 'insufficient_data')),
    since         timestamptz NOT NULL,       -- when it entered `state`
    numerator     bigint NOT NULL,
    denominator   bigint NOT NULL,
    figures       jsonb NOT NULL,             -- ratio, target, budget, forecast, Wilson bounds...
    streak        integer NOT NULL DEFAULT 0, -- consecutive evaluations pointing across the threshold
    streak_since  timestamptz,
    computed_at   double precision NOT NULL,  -- metrics' computed_at of the counts (unix time)
    evaluated_at  timestamptz NOT NULL,
    alert_id      bigint,                     -- the open alert, if any
    PRIMARY KEY (unit_id, kpi, period)
);
CREATE INDEX alert_states_state_idx ON alert_states (state);

-- An alert: opened when a (unit, KPI, period) enters below_target, resolved on recovery.
CREATE TABLE alerts (
    alert_id         bigserial PRIMARY KEY,
    unit_id          text NOT NULL,
    kpi              text NOT NULL,
    period           text NOT NULL,
    opened_at        timestamptz NOT NULL DEFAULT now(),
    figures          jsonb NOT NULL,          -- the figures that were paged
    resolved_at      timestamptz,
    resolution       text CHECK (resolution IN ('recovered', 'expired')),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    escalated_at     timestamptz,
    escalated_to     text                     -- the parent unit whose head was told
);
CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (unit_id, kpi, period) WHERE resolved_at IS NULL;
CREATE INDEX alerts_unit_idx ON alerts (unit_id, opened_at);

-- Every state change; published to dvc.alerts.v1 (published_at NULL = not yet).
CREATE TABLE alert_events (
    event_id        bigserial PRIMARY KEY,
    unit_id         text NOT NULL,
    kpi             text NOT NULL,
    period          text NOT NULL,
    alert_id        bigint REFERENCES alerts (alert_id),
    previous_state  text,
    state           text NOT NULL,
    numerator       bigint NOT NULL,
    denominator     bigint NOT NULL,
    figures         jsonb NOT NULL,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX alert_events_unpublished_idx ON alert_events (event_id) WHERE published_at IS NULL;
CREATE INDEX alert_events_unit_idx ON alert_events (unit_id, changed_at);

-- Notification outbox: one row per (notice, channel, recipient), sent by a background sender.
CREATE TABLE notifications (
    notification_id    bigserial PRIMARY KEY,
    dedupe_key         text NOT NULL,          -- alert:<id>:firing, digest:<unit>:<local day>, ...
    alert_id           bigint REFERENCES alerts (alert_id),
    unit_id            text NOT NULL,          -- the unit the notice is about
    kpi                text,                   -- NULL for digests
    kind               text NOT NULL CHECK (kind IN ('firing', 'resolved', 'escalation', 'digest')),
    channel            text NOT NULL CHECK (channel IN ('email', 'webhook', 'grafana')),
    recipient          text NOT NULL,          -- e-mail address, webhook URL or 'grafana'
    recipient_unit_id  text,                   -- whose head is notified (escalation: the parent)
    subject            text NOT NULL,
    body_text          text NOT NULL,
    body_html          text,
    payload            jsonb,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'sent', 'failed', 'cancelled', 'expired')),
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz,
    last_error         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    sent_at            timestamptz,
    UNIQUE (dedupe_key, channel, recipient)
);
CREATE INDEX notifications_due_idx ON notifications (channel, next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_alert_idx ON notifications (alert_id);

CREATE TABLE acknowledgements (
    ack_id           bigserial PRIMARY KEY,
    alert_id         bigint NOT NULL REFERENCES alerts (alert_id),
    acknowledged_by  text NOT NULL,
    via              text NOT NULL CHECK (via IN ('api', 'link', 'cli')),
    note             text NOT NULL DEFAULT '',
    acknowledged_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acknowledgements_alert_idx ON acknowledgements (alert_id);

-- Maintenance silences: NULL unit_id / kpi match every unit / KPI. Deleting one ends it now.
CREATE TABLE silences (
    silence_id  bigserial PRIMARY KEY,
    unit_id     text,
    kpi         text,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at >= starts_at),
    created_by  text NOT NULL,
    comment     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX silences_ends_idx ON silences (ends_at);

-- The government's yearly day swaps on top of the `holidays` package: working = true makes a
-- weekend or holiday a working day, false makes a day a day off.
CREATE TABLE holiday_overrides (
    day         date PRIMARY KEY,
    working     boolean NOT NULL,
    note        text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE, DELETE
    ON alert_states, alerts, alert_events, notifications, acknowledgements, silences, holiday_overrides
    TO dvc_alerts;
GRANT USAGE ON SEQUENCE alerts_alert_id_seq, alert_events_event_id_seq, notifications_notification_id_seq,
    acknowledgements_ack_id_seq, silences_silence_id_seq TO dvc_alerts;
GRANT SELECT ON cases TO dvc_alerts;  -- the digest lists offending case files

-- Grafana (dvc_reader) reads the alert history; not the recipients' addresses nor message bodies.
GRANT SELECT ON alert_states, alerts, alert_events, acknowledgements, silences, holiday_overrides TO dvc_reader;
GRANT SELECT (notification_id, alert_id, unit_id, kpi, kind, channel, recipient_unit_id, status, attempts,
              next_attempt_at, last_error, created_at, sent_at)
    ON notifications TO dvc_reader;
