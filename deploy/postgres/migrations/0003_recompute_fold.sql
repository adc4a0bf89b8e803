-- Set-based fold of the raw event store into case states: the recomputation path of
-- `dvc metrics recompute` and `dvc metrics audit`. It is written independently of ingest's
-- Python fold (services/ingest/cases.py) on purpose: the audit then proves both agree.
-- Rules: kpis.md "Precise readings" 1-5.
CREATE FUNCTION case_states_from_events()
RETURNS TABLE (
    case_id text, unit_id text, received_at timestamptz, procedure_code text, channel text,
    service_level smallint, synced boolean, deadline timestamptz, clock_since timestamptz,
    paused_since timestamptz, closed_at timestamptz, close_type text, outcome text, timeliness text,
    returned_at timestamptz, apology_at timestamptz, rating text, rated_at timestamptz,
    overdue_at timestamptz[]
)
LANGUAGE sql STABLE AS $$
WITH ordered AS (
    SELECT e.subject_id AS case_id, e.event_type, e.unit_id, e.occurred_at, e.payload,
           row_number() OVER (PARTITION BY e.subject_id ORDER BY e.occurred_at, e.arrival) AS seq
    FROM events e
    WHERE e.topic = 'dvc.case-events.v1'
),
opening AS (
    SELECT DISTINCT ON (o.case_id) o.case_id, o.seq AS open_seq, o.unit_id, o.occurred_at AS received_at,
           o.payload->>'procedure_code' AS procedure_code, o.payload->>'channel' AS channel,
           (o.payload->>'service_level')::smallint AS service_level,
           coalesce((o.payload->>'synced_to_national_portal')::boolean, false) AS synced_flag,
           (o.payload->>'due_at')::timestamptz AS initial_due
    FROM ordered o
    WHERE o.event_type = 'received'
    ORDER BY o.case_id, o.seq
),
closing AS (
    SELECT DISTINCT ON (t.case_id) t.case_id, t.seq AS close_seq
    FROM ordered t JOIN opening o USING (case_id)
    WHERE t.seq > o.open_seq AND t.event_type IN ('resolved', 'refused', 'withdrawn')
    ORDER BY t.case_id, t.seq
),
-- Pauses, resumes and the closure, each with the state in force just before it.
steps AS (
    SELECT t.case_id, t.seq, t.event_type, t.occurred_at, t.payload,
           o.received_at, o.initial_due,
           lag(t.event_type) OVER w AS previous_type,
           max(t.occurred_at) FILTER (WHERE t.event_type = 'supplement_received') OVER w_before AS last_resume_at,
           array_agg((t.payload->>'due_at')::timestamptz) FILTER (WHERE t.event_type = 'supplement_received') OVER w_before AS resume_dues
    FROM ordered t
    JOIN opening o USING (case_id)
    LEFT JOIN closing c USING (case_id)
    WHERE t.seq > o.open_seq AND (c.close_seq IS NULL OR t.seq <= c.close_seq)
      AND t.event_type IN ('supplement_requested', 'supplement_received', 'resolved', 'refused', 'withdrawn')
    WINDOW w AS (PARTITION BY t.case_id ORDER BY t.seq),
           w_before AS (PARTITION BY t.case_id ORDER BY t.seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
step_states AS (
    SELECT s.*,
           coalesce(s.previous_type = 'supplement_requested', false) AS paused_before,
           CASE WHEN s.initial_due IS NULL THEN NULL
                ELSE coalesce(s.resume_dues[array_upper(s.resume_dues, 1)], s.initial_due) END AS deadline_before,
           coalesce(s.last_resume_at, s.received_at) AS clock_since_before
    FROM steps s
),
crossings AS (
    SELECT ss.case_id,
           array_agg(greatest(ss.deadline_before, ss.clock_since_before) ORDER BY ss.seq) AS overdue_at
    FROM step_states ss
    WHERE NOT ss.paused_before AND ss.deadline_before IS NOT NULL AND ss.occurred_at > ss.deadline_before
    GROUP BY ss.case_id
),
closures AS (
    SELECT ss.case_id, ss.occurred_at AS closed_at, ss.event_type AS close_type,
           CASE WHEN ss.event_type = 'resolved' THEN ss.payload->>'outcome' END AS outcome,
           CASE WHEN ss.event_type <> 'resolved' OR ss.deadline_before IS NULL THEN NULL
                WHEN ss.occurred_at > ss.deadline_before THEN 'late'
                WHEN (ss.occurred_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
                     < (ss.deadline_before AT TIME ZONE 'Asia/Ho_Chi_Minh')::date THEN 'early'
                ELSE 'on_time' END AS timeliness
    FROM step_states ss
    WHERE ss.event_type IN ('resolved', 'refused', 'withdrawn')
),
-- The state after the last pause/resume (the closure changes neither deadline nor pause).
final_supplements AS (
    SELECT ss.case_id,
           (array_agg(ss.event_type ORDER BY ss.seq DESC))[1] AS last_type,
           max(ss.occurred_at) FILTER (WHERE ss.event_type = 'supplement_received') AS last_resume_at,
           (array_agg((ss.payload->>'due_at')::timestamptz ORDER BY ss.seq DESC)
                FILTER (WHERE ss.event_type = 'supplement_received'))[1] AS last_due,
           max(ss.seq) FILTER (WHERE ss.event_type = 'supplement_received') AS last_resume_seq
    FROM step_states ss
    WHERE ss.event_type IN ('supplement_requested', 'supplement_received')
    GROUP BY ss.case_id
),
pauses AS (
    SELECT ss.case_id, min(ss.occurred_at) AS paused_since
    FROM step_states ss JOIN final_supplements f USING (case_id)
    WHERE f.last_type = 'supplement_requested' AND ss.event_type = 'supplement_requested'
      AND ss.seq > coalesce(f.last_resume_seq, 0)
    GROUP BY ss.case_id
),
annotations AS (
    SELECT o.case_id,
           min(o.occurred_at) FILTER (WHERE o.event_type = 'returned') AS returned_at,
           min(o.occurred_at) FILTER (WHERE o.event_type = 'apology_issued') AS apology_at,
           (array_agg(o.payload->>'rating' ORDER BY o.seq DESC) FILTER (WHERE o.event_type = 'rated'))[1] AS rating,
           max(o.occurred_at) FILTER (WHERE o.event_type = 'rated') AS rated_at,
           bool_or(o.event_type = 'synced') AS synced_event
    FROM ordered o
    GROUP BY o.case_id
)
SELECT a.case_id, op.unit_id, op.received_at, op.procedure_code, op.channel, op.service_level,
       coalesce(op.synced_flag, false) OR a.synced_event,
       CASE WHEN op.initial_due IS NULL THEN NULL ELSE coalesce(f.last_due, op.initial_due) END,
       CASE WHEN op.case_id IS NULL THEN NULL ELSE coalesce(f.last_resume_at, op.received_at) END,
       p.paused_since, cl.closed_at, cl.close_type, cl.outcome, cl.timeliness,
       a.returned_at, a.apology_at, a.rating, a.rated_at,
       coalesce(x.overdue_at, '{}')
FROM annotations a
LEFT JOIN opening op USING (case_id)
LEFT JOIN final_supplements f USING (case_id)
LEFT JOIN pauses p USING (case_id)
LEFT JOIN closures cl USING (case_id)
LEFT JOIN crossings x USING (case_id)
$$;

-- Documents from the raw store: each document's first `sent` (occurred_at, then arrival).
CREATE FUNCTION documents_from_events()
RETURNS TABLE (document_id text, unit_id text, sent_at timestamptz, medium text, secrecy text,
               digitally_signed boolean, recipient_unit_id text)
LANGUAGE sql STABLE AS $$
SELECT DISTINCT ON (e.subject_id) e.subject_id, e.unit_id, e.occurred_at, e.payload->>'medium',
       e.payload->>'secrecy', (e.payload->>'digitally_signed')::boolean, e.payload->>'recipient_unit_id'
FROM events e
WHERE e.topic = 'dvc.document-events.v1'
ORDER BY e.subject_id, e.occurred_at, e.arrival
$$;

GRANT EXECUTE ON FUNCTION case_states_from_events(), documents_from_events() TO dvc_metrics;

-- Cases that may count in apology_coverage: went overdue before, or open with a deadline.
CREATE INDEX cases_overdue_candidates_idx ON cases (unit_id)
    WHERE cardinality(overdue_at) > 0 OR (closed_at IS NULL AND paused_since IS NULL AND deadline IS NOT NULL);
