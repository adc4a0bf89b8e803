"""Rebuild the KPI cells from the raw event store (`dvc metrics recompute`), or prove that the live
cells equal a rebuild (`dvc metrics audit`). Neither publishes anything: no broker is needed."""

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from services.metrics import queries
from services.metrics.cells import recompute_crossed_deadlines
from shared.db import init_connection, open_pool


async def recomputed_cells(
    connection: asyncpg.Connection, *, first: date, last: date, now: datetime
) -> dict[str, list[tuple[Any, ...]]]:
    """Fold the raw events afresh and compute every cell table's rows in the range."""
    await queries.rebuild_recomputed_sources(connection)
    pairs = set(await queries.fetch_source_pairs(connection, first=first, last=last, recomputed=True))
    pairs |= set(await queries.fetch_source_pairs(connection, first=first, last=last, recomputed=False))
    units, days = [u for u, _ in pairs], [d for _, d in pairs]
    return {
        table: await queries.fetch_recomputed_cells(
            connection, table=table, unit_ids=units, days=days, now=now
        )
        for table in queries.CELL_TABLES
    }


async def rebuild_cells(dsn: str, *, first: date, last: date) -> dict[str, int]:
    """Replace the live cells in the range with a recomputation; return the row count per table."""
    connection = await asyncpg.connect(dsn)
    await init_connection(connection)
    try:
        now = datetime.now(UTC)
        async with connection.transaction():
            tables = await recomputed_cells(connection, first=first, last=last, now=now)
            for table, rows in tables.items():
                await queries.replace_cells_in_range(
                    connection, table=table, first=first, last=last, rows=rows
                )
        return {table: len(rows) for table, rows in tables.items()}
    finally:
        await connection.close()


def compare_rows(
    table: str, live: Sequence[tuple[Any, ...]], rebuilt: Sequence[tuple[Any, ...]]
) -> list[str]:
    """Describe every row that differs between live and recomputed cells."""
    width = len(queries.CELL_TABLES[table][2].split(", "))

    def key_of(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return (row[0], row[2], row[1]) if table == "kpi_day_cells" else row[:width]

    live_by_key = {key_of(row): row for row in live}
    rebuilt_by_key = {key_of(row): row for row in rebuilt}
    differences = []
    for key in sorted(live_by_key.keys() | rebuilt_by_key.keys(), key=str):
        if live_by_key.get(key) != rebuilt_by_key.get(key):
            differences.append(
                f"{table} {key}: live={live_by_key.get(key)} recomputed={rebuilt_by_key.get(key)}"
            )
    return differences


async def audit(dsn: str, *, first: date, last: date) -> list[str]:
    """Compare live cells and case states with a fresh recomputation from the raw events."""
    async with open_pool(dsn, max_size=2) as pool:
        await recompute_crossed_deadlines(pool)  # bring time-driven cells up to date first
        now = datetime.now(UTC)
        async with pool.acquire() as connection:
            rebuilt = await recomputed_cells(connection, first=first, last=last, now=now)
            differences = [
                f"case {case_id}: live state != recomputed"
                for case_id in await queries.fetch_case_state_differences(connection)
            ]
            for table in queries.FIRST_EVENT_TABLES:
                differences += [
                    f"{table} {subject_id}: live row != recomputed"
                    for subject_id in await queries.fetch_first_event_differences(connection, table=table)
                ]
            for table, rows in rebuilt.items():
                live = await queries.fetch_live_cells(connection, table=table, first=first, last=last)
                differences += compare_rows(table, live, rows)
    return differences
