-- Fewer index entries per stored event and per case rewrite (issue 16). Evidence: pg_stat_user_indexes
-- (idx_scan) of one test session's database after tests/e2e/test_simulated_month.py and
-- tests/integration/test_{pages,metrics,alerts,report,boards}.py, and EXPLAIN of the same statements on
-- a `bench.ingest --keep` database; both in the README, "Benchmarks".

-- events_subject_idx: idx_scan 0 on every partition. Its only readers, the full folds of the raw store
-- (case_states_from_events, documents_/reports_/inspections_from_events: recompute and audit), read
-- every row of a topic, so the planner scans and sorts; an ordered walk of this index would fetch the
-- heap in random order. It cost a random-key B-tree insert per stored event.
DROP INDEX events_subject_idx;

-- cases_closed_idx (unit_id, closed_at) and cases_resolved_procedure_idx (unit_id, procedure_code,
-- closed_at), both WHERE close_type = 'resolved', were both used (idx_scan 132 and 9,173) for two
-- kinds of lookup that one index serves: a unit's resolved cases in a time range (the on_time_rate
-- day cells of metrics, per dirty (unit, day)), optionally of one procedure (the median processing
-- days of the "Sắp đến hạn" lists of the alerts digests and unit pages: the procedure is checked in
-- the index, within the unit's range). Every rewrite of a resolved case that is not a HOT update
-- (returned, rated) inserted an entry into both.
DROP INDEX cases_closed_idx;
DROP INDEX cases_resolved_procedure_idx;
CREATE INDEX cases_resolved_idx ON cases (unit_id, closed_at, procedure_code) WHERE close_type = 'resolved';

-- Kept on `cases`, each read by the product (idx_scan in that session):
--   cases_pkey (4,172): ingest's fetch of the stored states and histories, ON CONFLICT (case_id);
--   cases_received_idx (25,367): online_intake/portal_sync day cells, procedure_days, per-unit lists;
--   cases_rated_idx (8,433): satisfaction_rate day cells;
--   cases_open_deadline_idx (1,118): the metrics sweeper's crossed deadlines, overdue_open of all units;
--   cases_overdue_candidates_idx (8,695): overdue_days cells, overdue lists of a unit.
-- `cases` keeps fillfactor 70 (0001): returned, synced and apology_issued (43% of the rewrites of the
-- bench events) change no indexed column, so they can be HOT updates when their page has room.
