"""Time the year report of the whole province: Hà Tĩnh's 2021 registry (250 units), ~900,000 cases.

The cases are generated set-based in a scratch database (one INSERT … SELECT over generate_series),
the KPI day cells computed by metrics' own recomputation, then the report is built and rendered as
`dvc report` does, and each step is timed. Usage: python -m bench.report [--cases 900000] [--keep]
"""

import argparse
import asyncio
import time
from datetime import UTC, date, datetime

import asyncpg

from bench.common import create_scratch, drop_scratch, infra_env
from services.metrics import queries
from services.metrics.periods import parse_scope
from services.metrics.report import build_report
from services.metrics.report_docx import render_docx
from services.metrics.report_xlsx import render_xlsx
from shared.db import init_connection
from shared.periods import parse_period
from shared.targets import Targets

# 15/11/2025 .. 14/12/2026 local: the reporting year 2026 and a month of carry-over before it.
GENERATE_CASES = """
    WITH u AS (SELECT array_agg(unit_id ORDER BY unit_id) AS ids FROM units),
    g AS (
        SELECT n, u.ids[1 + (n::bigint * 7919) % cardinality(u.ids)] AS unit_id,
               timestamptz '2025-11-15 00:00+07' + (random() * interval '394 days') AS received_at,
               random() AS r1, random() AS r2, random() AS r3, (random() * 14)::int + 1 AS days
        FROM generate_series(1, $1) AS n, u
    ),
    c AS (
        SELECT g.*, received_at + days * interval '1 day' AS due,
               CASE WHEN r1 < 0.92 THEN received_at + (days * (0.3 + r2 * 0.8)) * interval '1 day' END AS done
        FROM g
    )
    INSERT INTO cases (case_id, unit_id, received_at, procedure_code, channel, service_level, synced, deadline,
                       clock_since, paused_since, closed_at, close_type, outcome, timeliness, apology_at, overdue_at,
                       history)
    SELECT 'bench-' || n, unit_id, received_at, '1.' || lpad((((r2 * 1000)::int) % 60)::text, 3, '0'),
           (ARRAY['online', 'in_person', 'postal'])[1 + (r3 * 3)::int % 3], 3 + (n % 2), r3 < 0.8, due,
           received_at, NULL, done, CASE WHEN done IS NOT NULL THEN 'resolved' END,
           CASE WHEN done IS NOT NULL THEN 'approved' END,
           CASE WHEN done IS NULL THEN NULL WHEN done > due THEN 'late'
                WHEN (done AT TIME ZONE 'Asia/Ho_Chi_Minh')::date < (due AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
                THEN 'early' ELSE 'on_time' END,
           CASE WHEN r2 > 0.5 AND (done IS NULL OR done > due) THEN due + interval '1 hour' END,
           CASE WHEN done > due THEN ARRAY[due] ELSE '{}'::timestamptz[] END,
           jsonb_build_array(jsonb_build_object('event_type', 'received', 'occurred_at', received_at, 'due_at', due))
    FROM c
"""


async def fill_cells(connection: asyncpg.Connection, *, chunk: int = 5_000) -> None:
    """Compute every KPI day cell of the generated cases with metrics' own statements."""
    pairs = await queries.fetch_source_pairs(
        connection, first=date(2025, 11, 1), last=date(2026, 12, 31), recomputed=False
    )
    now = datetime.now(UTC)
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        async with connection.transaction():
            await queries.recompute_cells(
                connection, unit_ids=[u for u, _ in part], days=[d for _, d in part], now=now
            )


async def run(cases: int, keep: bool) -> None:
    scratch = await create_scratch(infra_env(), with_topics=False)
    connection = await asyncpg.connect(scratch.admin_dsn)
    await init_connection(connection)
    try:
        started = time.perf_counter()
        await connection.execute(GENERATE_CASES, cases)
        await connection.execute("ANALYZE cases")
        print(f"generated {cases:,} cases in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        await fill_cells(connection)
        print(f"KPI day cells in {time.perf_counter() - started:.1f} s")
        period, scope = parse_period("report-year:2026"), parse_scope("province")
        started = time.perf_counter()
        report = await build_report(
            connection,
            scope=scope,
            scope_text="province",
            period=period,
            targets=Targets(),
            now=datetime.now(UTC),
        )
        built = time.perf_counter() - started
        xlsx = render_xlsx(report)
        rendered_xlsx = time.perf_counter() - started - built
        docx = render_docx(report)
        rendered_docx = time.perf_counter() - started - built - rendered_xlsx
        total = report.form[0].counts
        print(
            f"report-year:2026, province: {len(report.form):,} form rows, {total.received_total:,} files received"
        )
        print(
            f"  query and figures {built:.1f} s; XLSX {rendered_xlsx:.1f} s ({len(xlsx):,} B); DOCX {rendered_docx:.1f} s ({len(docx):,} B)"
        )
        print(
            f"  xlsx report {built + rendered_xlsx:.1f} s, docx report {built + rendered_docx:.1f} s (target < 30 s)"
        )
    finally:
        await connection.close()
        if not keep:
            await drop_scratch(scratch)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=900_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    asyncio.run(run(args.cases, args.keep))
