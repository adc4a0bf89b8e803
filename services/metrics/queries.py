"""SQL of metrics: recompute dirty (unit, local day) cells from case and document state, read rollups.

The cell statements take their source relations as parameters so the same SQL serves the live path
(`cases`, `documents`) and the recomputation from the raw event store (temp tables filled by
`case_states_from_events(parts, part)`, `documents_from_events()` and the others).
"""

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg

LOCAL_TZ_SQL = "'Asia/Ho_Chi_Minh'"
LIVE_SOURCES = {
    "cases": "cases",
    "documents": "documents",
    "reports": "reports",
    "inspections": "inspections",
}
RECOMPUTED_SOURCES = {
    "cases": "recomputed_cases",
    "documents": "recomputed_documents",
    "reports": "recomputed_reports",
    "inspections": "recomputed_inspections",
}

DIRTY = f"""
    dirty AS (
        SELECT DISTINCT x.unit_id, x.day,
               (x.day::timestamp AT TIME ZONE {LOCAL_TZ_SQL}) AS t0,
               ((x.day + 1)::timestamp AT TIME ZONE {LOCAL_TZ_SQL}) AS t1,
               $3::timestamptz AS now_at
        FROM unnest($1::text[], $2::date[]) AS x(unit_id, day)
    )"""

DAY_CELLS = """
    WITH {dirty}
    SELECT d.unit_id, d.day, k.kpi, k.numerator, k.denominator
    FROM dirty d
    CROSS JOIN LATERAL (
        SELECT 'on_time_rate' AS kpi,
               count(*) FILTER (WHERE c.timeliness IN ('early', 'on_time')) AS numerator, count(*) AS denominator
        FROM {cases} c
        WHERE c.unit_id = d.unit_id AND c.close_type = 'resolved' AND c.timeliness IS NOT NULL
          AND c.closed_at >= d.t0 AND c.closed_at < d.t1
        UNION ALL
        SELECT 'satisfaction_rate', count(*) FILTER (WHERE c.rating IN ('very_satisfied', 'satisfied')), count(*)
        FROM {cases} c
        WHERE c.unit_id = d.unit_id AND c.rated_at >= d.t0 AND c.rated_at < d.t1
        UNION ALL
        SELECT 'online_intake_rate', count(*) FILTER (WHERE c.channel = 'online'), count(*)
        FROM {cases} c
        WHERE c.unit_id = d.unit_id AND c.received_at >= d.t0 AND c.received_at < d.t1 AND c.service_level >= 3
        UNION ALL
        SELECT 'portal_sync_rate', count(*) FILTER (WHERE c.synced), count(*)
        FROM {cases} c
        WHERE c.unit_id = d.unit_id AND c.received_at >= d.t0 AND c.received_at < d.t1 AND c.service_level >= 3
        UNION ALL
        SELECT 'paperless_rate', count(*) FILTER (WHERE m.medium = 'electronic'), count(*)
        FROM {documents} m
        WHERE m.unit_id = d.unit_id AND m.sent_at >= d.t0 AND m.sent_at < d.t1 AND m.secrecy = 'normal'
        UNION ALL
        SELECT 'signed_rate', count(*) FILTER (WHERE m.digitally_signed), count(*)
        FROM {documents} m
        WHERE m.unit_id = d.unit_id AND m.sent_at >= d.t0 AND m.sent_at < d.t1 AND m.secrecy = 'normal'
          AND m.medium = 'electronic'
        UNION ALL
        SELECT 'online_report_rate', count(*) FILTER (WHERE r.channel = 'online' AND r.connected_to_national_system),
               count(*)
        FROM {reports} r
        WHERE r.unit_id = d.unit_id AND r.submitted_at >= d.t0 AND r.submitted_at < d.t1
        UNION ALL
        SELECT 'digital_inspection_rate', count(*) FILTER (WHERE i.digital), count(*)
        FROM {inspections} i
        WHERE i.unit_id = d.unit_id AND i.completed_at >= d.t0 AND i.completed_at < d.t1
    ) k
    WHERE k.denominator > 0
"""

# Every statement below looks up each dirty pair through an index (LATERAL per pair): its cost grows
# with the batch, never with the size of the case table.
PROCEDURE_DAYS = """
    WITH {dirty}
    SELECT d.unit_id, d.day, p.procedure_code, p.online
    FROM dirty d
    CROSS JOIN LATERAL (
        SELECT c.procedure_code, bool_or(c.service_level >= 3) AS online
        FROM {cases} c
        WHERE c.unit_id = d.unit_id AND c.received_at >= d.t0 AND c.received_at < d.t1
        GROUP BY c.procedure_code
    ) p
"""

# A case counts on each local day it became overdue as of `now` ($3, dirty.now_at): `overdue_instants`
# (migration 0019), spelled in two parts so that each reads an index of migration 0022. An open, running
# case is overdue from greatest(deadline, clock_since) once `is_overdue_open`: looked up per pair in
# cases_overdue_open_idx (the function is inlined, so the planner proves the index's predicate). Its
# past crossings (overdue_at) are few: each dirty unit's cases with any are read once
# (cases_overdue_past_idx) and their instants joined to its dirty days.
OVERDUE_DAYS = """
    WITH {dirty},
    dirty_units AS (SELECT DISTINCT unit_id FROM dirty)
    SELECT d.unit_id, d.day, o.case_id, o.apologized
    FROM dirty d
    CROSS JOIN LATERAL (
        SELECT c.case_id, c.apology_at IS NOT NULL AS apologized
        FROM {cases} c
        WHERE c.unit_id = d.unit_id
          AND is_overdue_open(c.closed_at, c.paused_since, c.deadline, d.now_at)
          AND greatest(c.deadline, c.clock_since) >= d.t0 AND greatest(c.deadline, c.clock_since) < d.t1
    ) o
    UNION
    SELECT d.unit_id, d.day, o.case_id, o.apologized
    FROM dirty_units u
    CROSS JOIN LATERAL (
        SELECT c.case_id, c.apology_at IS NOT NULL AS apologized, x.at
        FROM {cases} c
        CROSS JOIN LATERAL unnest(c.overdue_at) AS x(at)
        WHERE c.unit_id = u.unit_id AND cardinality(c.overdue_at) > 0
        OFFSET 0  -- keeps the subquery per unit (no pull-up into a hash join over the whole table)
    ) o
    JOIN dirty d ON d.unit_id = u.unit_id AND o.at >= d.t0 AND o.at < d.t1
"""

# A unit was inspected on administrative reform that local day (it is the inspected unit: kpis.md v1.1).
INSPECTED_DAYS = """
    WITH {dirty}
    SELECT DISTINCT d.unit_id, d.day
    FROM dirty d
    WHERE EXISTS (
        SELECT 1 FROM {inspections} i
        WHERE i.inspected_unit_id = d.unit_id AND i.topic = 'administrative_reform'
          AND i.completed_at >= d.t0 AND i.completed_at < d.t1
    )
"""

CELL_TABLES = {
    "kpi_day_cells": (DAY_CELLS, ["unit_id", "day", "kpi", "numerator", "denominator"], "unit_id, kpi, day"),
    "procedure_days": (
        PROCEDURE_DAYS,
        ["unit_id", "day", "procedure_code", "online"],
        "unit_id, day, procedure_code",
    ),
    "overdue_days": (OVERDUE_DAYS, ["unit_id", "day", "case_id", "apologized"], "unit_id, day, case_id"),
    "inspected_days": (INSPECTED_DAYS, ["unit_id", "day"], "unit_id, day"),
}


def cell_query(table: str, sources: dict[str, str]) -> str:
    """Return the SELECT computing `table`'s rows for the dirty pairs ($1 units, $2 days, $3 now)."""
    template = CELL_TABLES[table][0]
    return template.format(dirty=DIRTY.strip(), **sources)


async def recompute_cells(
    connection: asyncpg.Connection, *, unit_ids: Sequence[str], days: Sequence[date], now: datetime
) -> None:
    """Make the cells of the dirty (unit, day) pairs equal a fresh computation (in the caller's
    transaction), one prepared statement per table."""
    for table in CELL_TABLES:
        await connection.execute(REPLACE_CELLS[table], unit_ids, days, now)


def replace_cells_statement(table: str) -> str:
    """Return the statement that makes `table`'s rows of the dirty pairs ($1, $2) equal the computation
    as of $3: rows no longer computed are deleted, changed rows updated, new rows inserted. A row whose
    values did not change is not written (its `updated_at` says when the count last changed), so a
    recomputation that changes little writes little: no dead row and no index entry per unchanged cell."""
    _, columns, key = CELL_TABLES[table]
    keys = key.split(", ")
    values = [column for column in columns if column not in keys]
    matches = " AND ".join(f"c.{column} = t.{column}" for column in keys)
    if values:
        assignments = [f"{column} = EXCLUDED.{column}" for column in values]
        if table in TABLES_WITH_UPDATED_AT:
            assignments.append("updated_at = now()")
        changed = f"({', '.join(f't.{c}' for c in values)}) IS DISTINCT FROM ({', '.join(f'EXCLUDED.{c}' for c in values)})"
        conflict = f"DO UPDATE SET {', '.join(assignments)} WHERE {changed}"
    else:
        conflict = "DO NOTHING"
    names = ", ".join(columns)
    return f"""
        WITH computed AS ({cell_query(table, LIVE_SOURCES)}),
        gone AS (
            DELETE FROM {table} t USING unnest($1::text[], $2::date[]) AS x(unit_id, day)
            WHERE t.unit_id = x.unit_id AND t.day = x.day
              AND NOT EXISTS (SELECT FROM computed c WHERE {matches})
        )
        INSERT INTO {table} AS t ({names}) SELECT {names} FROM computed ON CONFLICT ({key}) {conflict}
    """


TABLES_WITH_UPDATED_AT = {"kpi_day_cells"}
REPLACE_CELLS = {table: replace_cells_statement(table) for table in CELL_TABLES}


async def fetch_crossed_deadlines(
    connection: asyncpg.Connection, *, after: datetime, until: datetime
) -> list[tuple[str, date]]:
    """Return the (unit, local day) cells of open, running cases whose deadline passed in (after, until]."""
    # The day is kept within dates Python holds: a sentinel `clock_since` stored before contract v1.1
    # (year 9999) would otherwise be a local day of year 10000 that cannot be decoded.
    rows = await connection.fetch(
        f"""
        SELECT DISTINCT unit_id, day FROM (
            SELECT unit_id, (greatest(deadline, clock_since) AT TIME ZONE {LOCAL_TZ_SQL})::date AS day
            FROM cases
            WHERE closed_at IS NULL AND paused_since IS NULL AND deadline IS NOT NULL AND unit_id IS NOT NULL
              AND deadline > $1 AND deadline <= $2
        ) crossed
        WHERE day <= '9999-12-31'::date
        """,
        after,
        until,
    )
    return [(row["unit_id"], row["day"]) for row in rows]


async def fetch_swept_until(connection: asyncpg.Connection) -> datetime | None:
    """Return the sweeper's watermark."""
    value: datetime | None = await connection.fetchval("SELECT swept_until FROM sweeper_state")
    return value


async def store_swept_until(connection: asyncpg.Connection, *, until: datetime) -> None:
    """Advance the sweeper's watermark."""
    await connection.execute(
        """INSERT INTO sweeper_state (swept_until) VALUES ($1)
           ON CONFLICT (singleton) DO UPDATE SET swept_until = greatest(sweeper_state.swept_until, EXCLUDED.swept_until)""",
        until,
    )


async def fetch_units(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    """Return the registry: units with their level rank, parents first."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT u.unit_id, u.name, u.level, l.rank, l.name AS level_name, u.parent_id
           FROM units u JOIN unit_levels l USING (level) ORDER BY l.rank, u.unit_id"""
    )
    return rows


async def fetch_rollups(
    connection: asyncpg.Connection, *, unit_ids: Sequence[str], first: date, last: date, now: datetime
) -> dict[str, tuple[int, int]]:
    """Return (numerator, denominator) per KPI over a set of units and an inclusive day range (`kpi_rollups`,
    migration 0019: distinct counts by union over the units, never summed)."""
    rows = await connection.fetch(
        "SELECT kpi, numerator, denominator FROM kpi_rollups($1, $2, $3, $4, false)",
        unit_ids,
        first,
        last,
        now,
    )
    return {row["kpi"]: (row["numerator"], row["denominator"]) for row in rows}


async def fetch_other_rollups(
    connection: asyncpg.Connection, *, unit_ids: Sequence[str], first: date, last: date, now: datetime
) -> dict[str, tuple[int, int]]:
    """Return `fetch_rollups` without the day-cell KPIs (a caller that sums the day cells itself)."""
    rows = await connection.fetch(
        "SELECT kpi, numerator, denominator FROM kpi_other_rollups($1, $2, $3, $4, false)",
        unit_ids,
        first,
        last,
        now,
    )
    return {row["kpi"]: (row["numerator"], row["denominator"]) for row in rows}


async def fetch_unit_rollups(
    connection: asyncpg.Connection,
    *,
    first: date,
    last: date,
    now: datetime,
    unit_ids: Sequence[str] | None = None,
) -> dict[tuple[str, str], tuple[int, int]]:
    """Return (numerator, denominator) per (unit, KPI) over an inclusive day range (every registry unit if
    None)."""
    rows = await connection.fetch(
        """SELECT unit_id, kpi, numerator, denominator
           FROM kpi_rollups(coalesce($1, ARRAY(SELECT unit_id FROM units)), $2, $3, $4, true)""",
        list(unit_ids) if unit_ids is not None else None,
        first,
        last,
        now,
    )
    return {(row["unit_id"], row["kpi"]): (row["numerator"], row["denominator"]) for row in rows}


async def fetch_overdue_cases(
    connection: asyncpg.Connection, *, unit_id: str, now: datetime
) -> list[asyncpg.Record]:
    """Return a unit's open cases past their deadline, the latest first."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """
        SELECT case_id, procedure_code, deadline, greatest(deadline, clock_since) AS overdue_since,
               extract(epoch FROM $2 - deadline)::bigint AS late_seconds, apology_at IS NOT NULL AS apologized
        FROM overdue_open_cases($2)
        WHERE unit_id = $1
        ORDER BY deadline
        """,
        unit_id,
        now,
    )
    return rows


# The fold of the raw event store, one relation per source; the case fold in parts of cases, by the hash
# of their id (migration 0024). Each part is folded on a connection of its own, streamed out in COPY's
# binary form and loaded into the recomputing session's temp table (`recomputed_*`), so that the parts
# use every core. The case fold's CTEs are materialised, so the planner guesses a few rows for each: it
# then joins `pauses` by a nested loop over every step of every case (quadratic: 4 of the 8 s of
# 200,000 events, hours at 10 million). Hash and merge joins only, and room for its sorts.
FOLDS = {
    "cases": "case_states_from_events({parts}, {part})",  # integers, formatted in
    "documents": "documents_from_events()",
    "reports": "reports_from_events()",
    "inspections": "inspections_from_events()",
}
FOLD_SETTINGS = "SET enable_nestloop = off; SET work_mem = '256MB'"
# The temp tables get the live tables' indexes that the cell statements use (migrations 0001, 0003,
# 0021, 0022): without the ones on closed_at, rated_at and the overdue instants, each (unit, day) pair read
# every case of its unit (3 ms a pair at 10 million events instead of 0.3 ms).
RECOMPUTED_INDEXES = {
    "cases": """
        CREATE INDEX ON recomputed_cases (unit_id, received_at);
        CREATE INDEX ON recomputed_cases (unit_id, closed_at) WHERE close_type = 'resolved';
        CREATE INDEX ON recomputed_cases (unit_id, rated_at) WHERE rated_at IS NOT NULL;
        CREATE INDEX ON recomputed_cases (unit_id, greatest(deadline, clock_since))
            WHERE closed_at IS NULL AND paused_since IS NULL AND deadline IS NOT NULL;
        CREATE INDEX ON recomputed_cases (unit_id) WHERE cardinality(overdue_at) > 0;
    """,
    "documents": "CREATE INDEX ON recomputed_documents (unit_id, sent_at)",
    "reports": "CREATE INDEX ON recomputed_reports (unit_id, submitted_at)",
    "inspections": """
        CREATE INDEX ON recomputed_inspections (unit_id, completed_at);
        CREATE INDEX ON recomputed_inspections (inspected_unit_id, completed_at);
    """,
}


def fold_of(source: str, *, part: int = 0, parts: int = 1) -> str:
    """Return the relation of a source's fold: one part of the cases; the other sources are folded whole
    (`part` and `parts` do not apply to them)."""
    return FOLDS[source].format(parts=int(parts), part=int(part))


async def create_recomputed_sources(connection: asyncpg.Connection) -> None:
    """Create the session's empty temp tables of the folds, dropping those of an earlier fold."""
    await connection.execute(f"DROP TABLE IF EXISTS {', '.join(RECOMPUTED_SOURCES.values())}")
    for source in FOLDS:
        await connection.execute(
            f"CREATE TEMP TABLE {RECOMPUTED_SOURCES[source]} AS SELECT * FROM {fold_of(source)} WITH NO DATA"
        )


async def export_fold_snapshot(connection: asyncpg.Connection) -> str:
    """Open a read-only repeatable-read transaction for folding; return its snapshot for the others."""
    await connection.execute(f"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {FOLD_SETTINGS}")
    snapshot: str = await connection.fetchval("SELECT pg_export_snapshot()")
    return snapshot


async def import_fold_snapshot(connection: asyncpg.Connection, *, snapshot: str) -> None:
    """Open a folding transaction that sees exactly what the exporting one sees."""
    quoted = snapshot.replace("'", "''")
    await connection.execute(
        f"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{quoted}'; {FOLD_SETTINGS}"
    )


async def spool_fold(
    connection: asyncpg.Connection, *, source: str, part: int, parts: int, spool: Path
) -> None:
    """Fold (one part of) a source in the connection's snapshot into a file, in COPY's binary form."""
    await connection.copy_from_query(
        f"SELECT * FROM {fold_of(source, part=part, parts=parts)}", output=spool, format="binary"
    )


async def load_spool(connection: asyncpg.Connection, *, source: str, spool: Path) -> None:
    """Append a spooled fold to the session's temp table of its source."""
    await connection.copy_to_table(RECOMPUTED_SOURCES[source], source=spool, format="binary")


async def index_recomputed_source(connection: asyncpg.Connection, *, source: str) -> None:
    """Index a loaded temp table as its live table is, and gather its statistics."""
    await connection.execute(RECOMPUTED_INDEXES[source])
    await connection.execute(f"ANALYZE {RECOMPUTED_SOURCES[source]}")


async def fetch_recomputed_cells(
    connection: asyncpg.Connection,
    *,
    table: str,
    unit_ids: Sequence[str],
    days: Sequence[date],
    now: datetime,
) -> list[tuple[Any, ...]]:
    """Compute `table`'s rows for the given pairs from the recomputed temp tables."""
    query = cell_query(table, RECOMPUTED_SOURCES)
    return [tuple(row) for row in await connection.fetch(query, unit_ids, days, now)]


async def insert_recomputed_cells(
    connection: asyncpg.Connection,
    *,
    table: str,
    unit_ids: Sequence[str],
    days: Sequence[date],
    now: datetime,
) -> int:
    """Insert `table`'s rows for the given pairs, computed from the recomputed temp tables, in the server
    (the caller deleted the range); return the number of rows."""
    names = ", ".join(CELL_TABLES[table][1])
    query = cell_query(table, RECOMPUTED_SOURCES)
    status = await connection.execute(
        f"INSERT INTO {table} ({names}) SELECT * FROM ({query}) computed", unit_ids, days, now
    )
    return int(status.split()[-1])


async def fetch_live_cells(
    connection: asyncpg.Connection, *, table: str, first: date, last: date
) -> list[tuple[Any, ...]]:
    """Return the live rows of a cell table in a day range."""
    columns = ", ".join(CELL_TABLES[table][1])
    rows = await connection.fetch(f"SELECT {columns} FROM {table} WHERE day BETWEEN $1 AND $2", first, last)
    return [tuple(row) for row in rows]


async def fetch_source_pairs(
    connection: asyncpg.Connection, *, first: date, last: date, recomputed: bool
) -> list[tuple[str, date]]:
    """Return every (unit, local day) that may hold a cell in the range, from the chosen sources."""
    sources = RECOMPUTED_SOURCES if recomputed else LIVE_SOURCES
    local = f" AT TIME ZONE {LOCAL_TZ_SQL})::date"
    times = ["received_at", "closed_at", "rated_at"]
    parts = [
        f"SELECT unit_id, ({t}{local} AS day FROM {sources['cases']} WHERE {t} IS NOT NULL" for t in times
    ]
    parts.append(
        f"SELECT unit_id, (unnest(overdue_at || ARRAY[greatest(deadline, clock_since)]){local} FROM {sources['cases']} WHERE deadline IS NOT NULL"
    )
    parts.append(f"SELECT unit_id, (sent_at{local} FROM {sources['documents']}")
    parts.append(f"SELECT unit_id, (submitted_at{local} FROM {sources['reports']}")
    parts += [
        f"SELECT {column}, (completed_at{local} FROM {sources['inspections']}"
        for column in ("unit_id", "inspected_unit_id")
    ]
    rows = await connection.fetch(
        f"SELECT DISTINCT unit_id, day FROM ({' UNION '.join(parts)}) p "
        "WHERE unit_id IS NOT NULL AND day BETWEEN $1 AND $2",
        first,
        last,
    )
    return [(row["unit_id"], row["day"]) for row in rows]


async def delete_cells_in_range(
    connection: asyncpg.Connection, *, table: str, first: date, last: date
) -> None:
    """Delete a cell table's rows in a day range (in the caller's transaction)."""
    await connection.execute(f"DELETE FROM {table} WHERE day BETWEEN $1 AND $2", first, last)


async def fetch_case_state_differences(connection: asyncpg.Connection) -> list[str]:
    """Return the ids of cases whose live state differs from the recomputed one."""
    columns = (
        "unit_id, received_at, procedure_code, channel, service_level, synced, deadline, clock_since, paused_since, "
        "closed_at, close_type, outcome, timeliness, returned_at, apology_at, rating, rated_at, overdue_at"
    )
    rows = await connection.fetch(
        f"""
        SELECT coalesce(l.case_id, r.case_id) AS case_id
        FROM (SELECT case_id, {columns} FROM cases) l
        FULL JOIN (SELECT case_id, {columns} FROM recomputed_cases) r USING (case_id)
        WHERE l IS DISTINCT FROM r
        ORDER BY 1
        """
    )
    return [row["case_id"] for row in rows]


# --- Case KPIs per procedure or per field (issue 14, part 3) -----------------------------------------
# Set-based over the case state (`cases`, the source of the cells): the day cells keep no procedure, and
# `procedure_days` only the distinct codes. Same definitions as DAY_CELLS / OVERDUE_DAYS / fetch_rollups;
# a code missing from the catalogue is kept, with a NULL field (shown "chưa có trong danh mục").
# $5: group by field (else by procedure code).
GROUPINGS = ("procedure", "field")

CASES_BY_GROUP = """
    WITH bounds AS (
        SELECT ($2::date::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh') AS t0,
               (($3::date + 1)::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh') AS t1
    ),
    scoped AS (
        SELECT CASE WHEN $5::boolean THEN p.field ELSE c.procedure_code END AS key, c.*
        FROM cases c LEFT JOIN procedures p USING (procedure_code)
        WHERE c.unit_id = ANY($1::text[])
    )
    SELECT key, 'on_time_rate' AS kpi,
           count(*) FILTER (WHERE timeliness IN ('early', 'on_time')) AS n, count(*) AS d
    FROM scoped, bounds
    WHERE close_type = 'resolved' AND timeliness IS NOT NULL AND closed_at >= t0 AND closed_at < t1 GROUP BY key
    UNION ALL
    SELECT key, 'satisfaction_rate', count(*) FILTER (WHERE rating IN ('very_satisfied', 'satisfied')), count(*)
    FROM scoped, bounds WHERE rated_at >= t0 AND rated_at < t1 GROUP BY key
    UNION ALL
    SELECT key, 'online_intake_rate', count(*) FILTER (WHERE channel = 'online'), count(*)
    FROM scoped, bounds WHERE received_at >= t0 AND received_at < t1 AND service_level >= 3 GROUP BY key
    UNION ALL
    SELECT key, 'portal_sync_rate', count(*) FILTER (WHERE synced), count(*)
    FROM scoped, bounds WHERE received_at >= t0 AND received_at < t1 AND service_level >= 3 GROUP BY key
    UNION ALL
    SELECT key, 'online_offer_rate', count(DISTINCT procedure_code) FILTER (WHERE service_level >= 3),
           count(DISTINCT procedure_code)
    FROM scoped, bounds WHERE received_at >= t0 AND received_at < t1 GROUP BY key
    UNION ALL
    SELECT key, 'apology_coverage', count(DISTINCT case_id) FILTER (WHERE apology_at IS NOT NULL),
           count(DISTINCT case_id)
    FROM scoped c CROSS JOIN bounds b
    CROSS JOIN LATERAL unnest(
        overdue_instants(c.overdue_at, c.closed_at, c.paused_since, c.deadline, c.clock_since, $4)
    ) AS x(at)
    WHERE x.at >= b.t0 AND x.at < b.t1 GROUP BY key
    UNION ALL
    SELECT key, 'overdue_open', count(*), 0
    FROM scoped WHERE is_overdue_open(closed_at, paused_since, deadline, $4) GROUP BY key
"""


async def fetch_group_rollups(
    connection: asyncpg.Connection,
    *,
    by: str,
    unit_ids: Sequence[str],
    first: date,
    last: date,
    now: datetime,
) -> dict[str | None, dict[str, tuple[int, int]]]:
    """Return (numerator, denominator) per procedure code or field (None: not in the catalogue) and case KPI."""
    if by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}")
    grouped: dict[str | None, dict[str, tuple[int, int]]] = {}
    for row in await connection.fetch(CASES_BY_GROUP, list(unit_ids), first, last, now, by == "field"):
        grouped.setdefault(row["key"], {})[row["kpi"]] = (int(row["n"]), int(row["d"]))
    return grouped


async def fetch_procedure_names(connection: asyncpg.Connection) -> dict[str, tuple[str, str]]:
    """Return the catalogue: (name, field) per procedure code."""
    rows = await connection.fetch("SELECT procedure_code, name, field FROM procedures")
    return {row["procedure_code"]: (row["name"], row["field"]) for row in rows}


FIRST_EVENT_TABLES = {  # table -> (its key, the recomputed temp table)
    "reports": ("report_id", "recomputed_reports"),
    "inspections": ("inspection_id", "recomputed_inspections"),
}


async def fetch_first_event_differences(connection: asyncpg.Connection, *, table: str) -> list[str]:
    """Return the ids of reports (or inspections) whose live row differs from the recomputed one."""
    key, recomputed = FIRST_EVENT_TABLES[table]
    rows = await connection.fetch(
        f"""
        SELECT coalesce(l.{key}, r.{key}) AS id
        FROM {table} l FULL JOIN {recomputed} r USING ({key})
        WHERE l IS DISTINCT FROM r
        ORDER BY 1
        """
    )
    return [row["id"] for row in rows]
