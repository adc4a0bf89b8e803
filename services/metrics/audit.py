"""Rebuild the KPI cells from the raw event store (`dvc metrics recompute`), or prove that the live
cells equal a rebuild (`dvc metrics audit`). Neither publishes anything: no broker is needed."""

import asyncio
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg

from services.metrics import queries
from services.metrics.cells import recompute_crossed_deadlines
from shared.config import RECOMPUTE_WORKERS
from shared.db import init_connection, open_pool

Progress = Callable[[str, int], None]
"""Told after each step of a recomputation: what was just done (Vietnamese / English) and the number of
steps in all (known once the fold is done: one step per month holding cells)."""

Pairs = tuple[list[str], list[date]]  # the unit ids and days of (unit, day) pairs, as the cell SQL takes them


def ignore_progress(done: str, total: int) -> None:
    """The progress of a recomputation nobody watches."""


def count_steps(months: int) -> int:
    """Return the steps of a recomputation: a fold per source, the (unit, day) pairs, one per month."""
    return len(queries.FOLDS) + 1 + months


def fold_jobs(workers: int) -> list[tuple[str, int]]:
    """Return the folds to run, as (source, part): the case fold (the longest) in one part per worker,
    then the other sources whole."""
    cases = [("cases", part) for part in range(workers)]
    return [*cases, *((source, 0) for source in queries.FOLDS if source != "cases")]


async def fold_sources(connection: asyncpg.Connection, dsn: str, progress: Progress, workers: int) -> None:
    """Fold the raw events afresh into the session's temp tables. The folds (`fold_jobs`) run at once on
    `workers` connections of their own, in one snapshot; each spools its rows to a file that this session
    loads, and a source is indexed once all its parts are in."""
    await queries.create_recomputed_sources(connection)
    jobs = fold_jobs(workers)
    parts_left = Counter(source for source, _ in jobs)
    loading = asyncio.Lock()  # the session takes one COPY at a time

    async def fold(folder: asyncpg.Connection, spools: Path) -> None:
        while jobs:
            source, part = jobs.pop(0)
            spool = spools / f"{source}-{part}.copy"
            await queries.spool_fold(folder, source=source, part=part, parts=workers, spool=spool)
            async with loading:
                await queries.load_spool(connection, source=source, spool=spool)
                spool.unlink()
                parts_left[source] -= 1
                if not parts_left[source]:
                    await queries.index_recomputed_source(connection, source=source)
                    progress(f"Đã gộp sự kiện {source} / folded {source} events", count_steps(0))

    folders: list[asyncpg.Connection] = []
    try:
        for _ in range(workers):
            folders.append(await asyncpg.connect(dsn))
        snapshot = await queries.export_fold_snapshot(folders[0])
        for folder in folders[1:]:
            await queries.import_fold_snapshot(folder, snapshot=snapshot)
        with tempfile.TemporaryDirectory(prefix="dvc-fold-") as spools:
            async with asyncio.TaskGroup() as group:
                for folder in folders:
                    group.create_task(fold(folder, Path(spools)))
    finally:
        for folder in folders:
            await folder.close()


async def fold_by_month(
    connection: asyncpg.Connection, dsn: str, *, first: date, last: date, progress: Progress, workers: int
) -> tuple[dict[date, Pairs], int]:
    """Fold the sources, then return every (unit, local day) that may hold a cell in the range, live or
    recomputed, by month (as units and days), and the number of steps of the whole recomputation."""
    await fold_sources(connection, dsn, progress, workers)
    pairs = set(await queries.fetch_source_pairs(connection, first=first, last=last, recomputed=True))
    pairs |= set(await queries.fetch_source_pairs(connection, first=first, last=last, recomputed=False))
    grouped: dict[date, list[tuple[str, date]]] = defaultdict(list)
    for unit_id, day in sorted(pairs):
        grouped[day.replace(day=1)].append((unit_id, day))
    total = count_steps(len(grouped))
    progress("Đã tìm các ô / found the cells' (unit, day) pairs", total)
    months = {
        month: ([u for u, _ in found], [d for _, d in found]) for month, found in sorted(grouped.items())
    }
    return months, total


async def recomputed_cells(
    connection: asyncpg.Connection,
    dsn: str,
    *,
    first: date,
    last: date,
    now: datetime,
    progress: Progress = ignore_progress,
    workers: int = RECOMPUTE_WORKERS,
) -> dict[str, list[tuple[Any, ...]]]:
    """Fold the raw events afresh and compute every cell table's rows in the range, month by month."""
    months, total = await fold_by_month(
        connection, dsn, first=first, last=last, progress=progress, workers=workers
    )
    tables: dict[str, list[tuple[Any, ...]]] = {table: [] for table in queries.CELL_TABLES}
    for month, (units, days) in months.items():
        for table, rows in tables.items():
            rows += await queries.fetch_recomputed_cells(
                connection, table=table, unit_ids=units, days=days, now=now
            )
        progress(f"Đã tính tháng {month:%m/%Y} / computed {month:%Y-%m}", total)
    return tables


async def rebuild_cells(
    dsn: str,
    *,
    first: date,
    last: date,
    progress: Progress = ignore_progress,
    workers: int = RECOMPUTE_WORKERS,
) -> dict[str, int]:
    """Replace the live cells in the range with a recomputation, in one transaction, month by month in
    the server (no row travels to Python); return the row count per table."""
    connection = await asyncpg.connect(dsn)
    await init_connection(connection)
    try:
        now = datetime.now(UTC)
        counts = dict.fromkeys(queries.CELL_TABLES, 0)
        async with connection.transaction():
            months, total = await fold_by_month(
                connection, dsn, first=first, last=last, progress=progress, workers=workers
            )
            for table in queries.CELL_TABLES:
                await queries.delete_cells_in_range(connection, table=table, first=first, last=last)
            for month, (units, days) in months.items():
                for table in queries.CELL_TABLES:
                    counts[table] += await queries.insert_recomputed_cells(
                        connection, table=table, unit_ids=units, days=days, now=now
                    )
                progress(f"Đã tính lại tháng {month:%m/%Y} / recomputed {month:%Y-%m}", total)
        return counts
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


async def audit(dsn: str, *, first: date, last: date, workers: int = RECOMPUTE_WORKERS) -> list[str]:
    """Compare live cells and case states with a fresh recomputation from the raw events."""
    async with open_pool(dsn, max_size=2) as pool:
        await recompute_crossed_deadlines(pool)  # bring time-driven cells up to date first
        now = datetime.now(UTC)
        async with pool.acquire() as connection:
            rebuilt = await recomputed_cells(
                connection, dsn, first=first, last=last, now=now, workers=workers
            )
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
