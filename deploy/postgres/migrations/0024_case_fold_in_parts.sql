-- The recompute's case fold in parts (issue 16): a part holds the cases whose id hashes to it, so the
-- parts are folded at once on separate connections, one core each, from one exported snapshot, and
-- their union is the whole fold (the fold reads nothing across cases). At 2,000,000 events the two
-- halves of the fold took 8.2 s together against 15.2-17.0 s for the whole, on 2 cores. The rules are
-- those of 0023, rule for rule; the fold without parts is dropped (its only caller was the recompute).
CREATE FUNCTION case_states_from_events(parts integer, part integer)
RETURNS TABLE (
    case_id text, unit_id text, received_at timestamptz, procedure_code text, channel text,
    service_level smallint, synced boolean, deadline timestamptz, clock_since timestamptz,
    paused_since timestamptz, closed_at timestamptz, close_type text, outcome text, timeliness text,
    returned_at timestamptz, apology_at timestamptz, rating text, rated_at timestamptz,
    overdue_at timestamptz[]
)
LANGUAGE sql STABLE AS $$
WITH ordered AS (
    SELECT e.subject_id COLLATE "C" AS case_id, e.event_type, e.unit_id, e.occurred_at,
           e.payload->>'procedure_code' AS procedure_code, e.payload->>'channel' AS channel,
           e.payload->>'service_level' AS service_level,
           e.payload->>'synced_to_national_portal' AS synced_to_national_portal,
           CASE WHEN e.event_type IN ('received', 'supplement_received')  -- a validated field only there
                THEN (e.payload->>'due_at')::timestamptz END AS due_at,
           e.payload->>'outcome' AS outcome,
           e.payload->>'rating' AS rating,
           row_number() OVER (PARTITION BY e.subject_id COLLATE "C" ORDER BY e.occurred_at, e.arrival) AS seq
    FROM events e
    WHERE e.topic = 'dvc.case-events.v1'
      AND (hashtext(e.subject_id) & 2147483647) % parts = part  -- a case's events are all in one part
),
opening AS (
    SELECT DISTINCT ON (o.case_id) o.case_id, o.seq AS open_seq, o.unit_id, o.occurred_at AS received_at,
           o.procedure_code, o.channel,
           o.service_level::smallint AS service_level,
           coalesce(o.synced_to_national_portal::boolean, false) AS synced_flag,
           o.due_at AS initial_due
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
    SELECT t.case_id, t.seq, t.event_type, t.occurred_at, t.due_at, t.outcome,
           o.received_at, o.initial_due,
           lag(t.event_type) OVER w AS previous_type,
           max(t.occurred_at) FILTER (WHERE t.event_type = 'supplement_received') OVER w_before AS last_resume_at,
           array_agg(t.due_at) FILTER (WHERE t.event_type = 'supplement_received') OVER w_before AS resume_dues
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
           CASE WHEN ss.event_type = 'resolved' THEN ss.outcome END AS outcome,
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
           (array_agg(ss.due_at ORDER BY ss.seq DESC)
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
           (array_agg(o.rating ORDER BY o.seq DESC) FILTER (WHERE o.event_type = 'rated'))[1] AS rating,
           max(o.occurred_at) FILTER (WHERE o.event_type = 'rated') AS rated_at,
           bool_or(o.event_type = 'synced') AS synced_event
    FROM ordered o
    GROUP BY o.case_id
)
SELECT a.case_id COLLATE "default", op.unit_id,  -- the sort key's collation stays inside the fold
       op.received_at, op.procedure_code, op.channel, op.service_level,
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

DROP FUNCTION case_states_from_events();
REVOKE ALL ON FUNCTION case_states_from_events(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION case_states_from_events(integer, integer) TO dvc_metrics;
