-- The overdue_days cells of a dirty (unit, day) pair are found through an index on the instant itself
-- (issue 16, freshness). Before, each dirty unit read every one of its candidates through
-- cases_overdue_candidates_idx (unit_id): every open, running case with a deadline, whatever its day.
-- During the 60 s at 1,000 events/s of `bench.pipeline --events 300000` that statement took 22.5 s of
-- metrics' 42 s of cell statements (log_min_duration_statement), and its cost grew with the open cases.

-- An open, running case is overdue from greatest(deadline, clock_since) (overdue_instants, 0019): the
-- pair's cases are a range of this index.
CREATE INDEX cases_overdue_open_idx ON cases (unit_id, greatest(deadline, clock_since))
    WHERE closed_at IS NULL AND paused_since IS NULL AND deadline IS NOT NULL;

-- The cases that went overdue before (their instants are in the overdue_at array): few per unit (a
-- case closed late or paused late), read per dirty unit, and the apology lists of alerts.
CREATE INDEX cases_overdue_past_idx ON cases (unit_id) WHERE cardinality(overdue_at) > 0;

DROP INDEX cases_overdue_candidates_idx;
