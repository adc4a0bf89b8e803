-- One definition of the KPI SQL: when a case is overdue, the open overdue cases, the cases due soon and
-- the rollups of the KPI cells over a period. metrics, alerts and the boards (through `reporting`) call
-- these functions; none of them spells the rules out again.
--
-- Every time judgment takes its instant as a parameter, `as_of`: the callers pass min(now, completeness
-- watermark) (shared/watermark.py, migration 0012), the boards now(). The functions are plain SQL
-- (not SECURITY DEFINER, no SET), so the planner inlines them into the calling query and the indexes
-- of migrations 0001-0003 still serve it; they are PARALLEL SAFE, else a query calling one would never
-- get a parallel plan.

-- A case is overdue at `as_of` while it is open (not resolved, refused or withdrawn), running (not
-- paused) and past its deadline; at the deadline instant itself it is not yet overdue (kpis.md,
-- reading 5). A case with no deadline is never overdue.
CREATE FUNCTION is_overdue_open(
    closed_at timestamptz, paused_since timestamptz, deadline timestamptz, as_of timestamptz
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN closed_at IS NULL AND paused_since IS NULL AND deadline < as_of;

-- The instants a case became overdue as of `as_of`: its past crossings (`overdue_at`), plus the running
-- stretch's while it is overdue: its deadline, or the end of the pause when the deadline passed during it.
CREATE FUNCTION overdue_instants(
    overdue_at timestamptz[], closed_at timestamptz, paused_since timestamptz, deadline timestamptz,
    clock_since timestamptz, as_of timestamptz
) RETURNS timestamptz[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN overdue_at || CASE WHEN is_overdue_open(closed_at, paused_since, deadline, as_of)
                          THEN ARRAY[greatest(deadline, clock_since)] ELSE '{}'::timestamptz[] END;

-- The cases overdue at `as_of` (`overdue_open` counts them; callers filter by unit).
CREATE FUNCTION overdue_open_cases(as_of timestamptz) RETURNS SETOF cases
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT * FROM cases c
WHERE c.unit_id IS NOT NULL AND is_overdue_open(c.closed_at, c.paused_since, c.deadline, as_of)
$$;

-- Open, running cases due in [as_of, until): not overdue at `as_of`, overdue at `until` if nothing
-- happens (of one unit, or of all when `only_unit` is NULL), with the median processing days of their
-- unit x procedure over the `lookback_days` days before `as_of`: the "Sắp đến hạn" list of the alerts
-- digests and of the unit pages.
CREATE FUNCTION due_soon_cases(as_of timestamptz, until timestamptz, lookback_days integer, only_unit text)
RETURNS TABLE (unit_id text, case_id text, procedure_code text, deadline timestamptz,
               median_days double precision, resolved bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT c.unit_id, c.case_id, c.procedure_code, c.deadline, m.median_days, m.n
FROM cases c
LEFT JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (
               ORDER BY extract(epoch FROM h.closed_at - h.received_at) / 86400) AS median_days,
           count(*) AS n
    FROM cases h
    WHERE h.unit_id = c.unit_id AND h.procedure_code = c.procedure_code
      AND h.close_type = 'resolved' AND h.received_at IS NOT NULL
      AND h.closed_at >= as_of - make_interval(days => lookback_days) AND h.closed_at < as_of
) m ON true
WHERE c.unit_id IS NOT NULL AND (only_unit IS NULL OR c.unit_id = only_unit)
  AND c.deadline >= as_of AND is_overdue_open(c.closed_at, c.paused_since, c.deadline, until)
$$;

-- The rollups of a set of units over an inclusive range of local days, summed over the set (`per_unit`
-- false: `unit_id` is NULL) or per unit. `numerator`, `denominator` per KPI; a KPI with nothing to count
-- may have no row. The set is always an array (every unit: the registry's ids), never "NULL means all":
-- such an OR would keep a cached generic plan off the (unit_id, day) indexes.
--
-- The day-cell KPIs: sums of the day cells.
CREATE FUNCTION kpi_cell_rollups(unit_ids text[], first_day date, last_day date, per_unit boolean)
RETURNS TABLE (unit_id text, kpi text, numerator bigint, denominator bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE WHEN per_unit THEN c.unit_id END, c.kpi, sum(c.numerator)::bigint, sum(c.denominator)::bigint
FROM kpi_day_cells c
WHERE c.unit_id = ANY(unit_ids) AND c.day BETWEEN first_day AND last_day
GROUP BY 1, 2
$$;

-- The KPIs counted otherwise: distinct procedures (a code received by two units of the set counts
-- once), distinct cases that went overdue, the cases overdue at `as_of` (a count, denominator 0), and
-- the units inspected on administrative reform over the units. Distinct counts group first (a hash
-- aggregate): `count(DISTINCT …) FILTER` sorts, ~3x slower over a year.
CREATE FUNCTION kpi_other_rollups(
    unit_ids text[], first_day date, last_day date, as_of timestamptz, per_unit boolean
) RETURNS TABLE (unit_id text, kpi text, numerator bigint, denominator bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT owner, 'online_offer_rate', count(*) FILTER (WHERE online), count(*) FROM (
    SELECT CASE WHEN per_unit THEN p.unit_id END AS owner, p.procedure_code, bool_or(p.online) AS online
    FROM procedure_days p
    WHERE p.unit_id = ANY(unit_ids) AND p.day BETWEEN first_day AND last_day
    GROUP BY 1, 2
) distinct_procedures
GROUP BY owner
UNION ALL
SELECT owner, 'apology_coverage', count(*) FILTER (WHERE apologized), count(*) FROM (
    SELECT CASE WHEN per_unit THEN o.unit_id END AS owner, o.case_id, bool_or(o.apologized) AS apologized
    FROM overdue_days o
    WHERE o.unit_id = ANY(unit_ids) AND o.day BETWEEN first_day AND last_day
    GROUP BY 1, 2
) distinct_cases
GROUP BY owner
UNION ALL
SELECT CASE WHEN per_unit THEN c.unit_id END, 'overdue_open', count(*), 0
FROM overdue_open_cases(as_of) c
WHERE c.unit_id = ANY(unit_ids)
GROUP BY 1
UNION ALL
SELECT CASE WHEN per_unit THEN u.unit_id END, 'units_inspected_rate',
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM inspected_days i
                                     WHERE i.unit_id = u.unit_id AND i.day BETWEEN first_day AND last_day)),
       count(*)
FROM units u
WHERE u.unit_id = ANY(unit_ids)
GROUP BY 1
$$;

-- Every KPI.
CREATE FUNCTION kpi_rollups(unit_ids text[], first_day date, last_day date, as_of timestamptz, per_unit boolean)
RETURNS TABLE (unit_id text, kpi text, numerator bigint, denominator bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT * FROM kpi_cell_rollups(unit_ids, first_day, last_day, per_unit)
UNION ALL
SELECT * FROM kpi_other_rollups(unit_ids, first_day, last_day, as_of, per_unit)
$$;

REVOKE ALL ON FUNCTION is_overdue_open(timestamptz, timestamptz, timestamptz, timestamptz),
    overdue_instants(timestamptz[], timestamptz, timestamptz, timestamptz, timestamptz, timestamptz),
    overdue_open_cases(timestamptz), due_soon_cases(timestamptz, timestamptz, integer, text),
    kpi_cell_rollups(text[], date, date, boolean),
    kpi_other_rollups(text[], date, date, timestamptz, boolean),
    kpi_rollups(text[], date, date, timestamptz, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION is_overdue_open(timestamptz, timestamptz, timestamptz, timestamptz),
    overdue_open_cases(timestamptz), due_soon_cases(timestamptz, timestamptz, integer, text)
    TO dvc_metrics, dvc_alerts;
GRANT EXECUTE ON FUNCTION
    overdue_instants(timestamptz[], timestamptz, timestamptz, timestamptz, timestamptz, timestamptz),
    kpi_cell_rollups(text[], date, date, boolean),
    kpi_other_rollups(text[], date, date, timestamptz, boolean),
    kpi_rollups(text[], date, date, timestamptz, boolean) TO dvc_metrics;

-- The boards (dvc_reader reads only `reporting`, migration 0006). The overdue list is inlined into the
-- board's query: its body is stored parsed (BEGIN ATOMIC), so calling it needs no access to the schema
-- `public`, only EXECUTE on is_overdue_open; it reads reporting.cases, never the table.
CREATE FUNCTION reporting.overdue_open_cases(as_of timestamptz)
RETURNS TABLE (case_id text, unit_id text, procedure_code text, received_at timestamptz,
               deadline timestamptz, apology_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT c.case_id, c.unit_id, c.procedure_code, c.received_at, c.deadline, c.apology_at
    FROM reporting.cases c
    WHERE c.unit_id IS NOT NULL AND public.is_overdue_open(c.closed_at, c.paused_since, c.deadline, as_of);
END;

-- The rollups of a set of units (NULL: every unit of the registry), summed over the set. The counts
-- only: it runs as its owner, like the views.
CREATE FUNCTION reporting.kpi_rollups(unit_ids text[], first_day date, last_day date, as_of timestamptz)
RETURNS TABLE (kpi text, numerator bigint, denominator bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
SELECT r.kpi, r.numerator, r.denominator
FROM kpi_rollups(coalesce(unit_ids, ARRAY(SELECT u.unit_id FROM units u)), first_day, last_day, as_of, false) r
$$;

REVOKE ALL ON FUNCTION reporting.overdue_open_cases(timestamptz),
    reporting.kpi_rollups(text[], date, date, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION is_overdue_open(timestamptz, timestamptz, timestamptz, timestamptz),
    reporting.overdue_open_cases(timestamptz), reporting.kpi_rollups(text[], date, date, timestamptz)
    TO dvc_reader;
