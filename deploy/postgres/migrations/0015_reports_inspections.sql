-- Contract v1.1: periodic reports (dvc.report-events.v1) and inspections (dvc.inspection-events.v1).
-- Raw events go to `events` like the others (subject_id = report_id / inspection_id); ingest keeps one
-- row per report and per inspection, from its first event (earliest occurred_at, ties: lowest event_id).

CREATE TABLE reports (
    report_id                    text PRIMARY KEY,
    event_id                     text NOT NULL,
    unit_id                      text NOT NULL,
    submitted_at                 timestamptz NOT NULL,
    report_code                  text NOT NULL,
    channel                      text NOT NULL CHECK (channel IN ('online', 'paper')),
    connected_to_national_system boolean NOT NULL,
    due_at                       timestamptz
);
CREATE INDEX reports_submitted_idx ON reports (unit_id, submitted_at);

CREATE TABLE inspections (
    inspection_id      text PRIMARY KEY,
    event_id           text NOT NULL,
    unit_id            text NOT NULL,          -- the inspecting unit
    inspected_unit_id  text NOT NULL,
    completed_at       timestamptz NOT NULL,
    topic              text NOT NULL CHECK (topic IN ('administrative_reform', 'other')),
    digital            boolean NOT NULL
);
CREATE INDEX inspections_completed_idx ON inspections (unit_id, completed_at);
CREATE INDEX inspections_inspected_idx ON inspections (inspected_unit_id, completed_at)
    WHERE topic = 'administrative_reform';

GRANT SELECT, INSERT, UPDATE ON reports, inspections TO dvc_ingest;
GRANT SELECT ON reports, inspections TO dvc_metrics;

-- Kept by metrics: the local days on which a unit was the inspected unit of an administrative-reform
-- inspection (units_inspected_rate is a distinct count of units: rolled up by union, never by summing).
CREATE TABLE inspected_days (
    unit_id  text NOT NULL,   -- the inspected unit
    day      date NOT NULL,   -- local day, Asia/Ho_Chi_Minh
    PRIMARY KEY (unit_id, day)
);
CREATE INDEX inspected_days_day_idx ON inspected_days (day);
GRANT SELECT, INSERT, UPDATE, DELETE ON inspected_days TO dvc_metrics;
GRANT SELECT ON inspected_days TO dvc_alerts;

CREATE VIEW reporting.inspected_days AS
    SELECT unit_id, day FROM public.inspected_days;
GRANT SELECT ON reporting.inspected_days TO dvc_reader;

-- The independent fold of the audit (`dvc metrics audit`, `dvc metrics recompute`): the first event of
-- each report and inspection straight from the raw store.
CREATE FUNCTION reports_from_events()
RETURNS TABLE (report_id text, event_id text, unit_id text, submitted_at timestamptz, report_code text,
               channel text, connected_to_national_system boolean, due_at timestamptz)
LANGUAGE sql STABLE AS $$
SELECT DISTINCT ON (e.subject_id) e.subject_id, e.event_id, e.unit_id, e.occurred_at, e.payload->>'report_code',
       e.payload->>'channel', (e.payload->>'connected_to_national_system')::boolean,
       (e.payload->>'due_at')::timestamptz
FROM events e
WHERE e.topic = 'dvc.report-events.v1'
ORDER BY e.subject_id, e.occurred_at, e.event_id COLLATE "C"  -- code-point order, as ingest compares
$$;

CREATE FUNCTION inspections_from_events()
RETURNS TABLE (inspection_id text, event_id text, unit_id text, inspected_unit_id text,
               completed_at timestamptz, topic text, digital boolean)
LANGUAGE sql STABLE AS $$
SELECT DISTINCT ON (e.subject_id) e.subject_id, e.event_id, e.unit_id, e.payload->>'inspected_unit_id',
       e.occurred_at, e.payload->>'topic', (e.payload->>'digital')::boolean
FROM events e
WHERE e.topic = 'dvc.inspection-events.v1'
ORDER BY e.subject_id, e.occurred_at, e.event_id COLLATE "C"  -- code-point order, as ingest compares
$$;

GRANT EXECUTE ON FUNCTION reports_from_events(), inspections_from_events() TO dvc_metrics;
