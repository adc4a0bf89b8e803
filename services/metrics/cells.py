"""Recompute KPI cells in PostgreSQL, publishing nothing: the handlers publish what changed, the audit
only compares (so `dvc metrics audit` needs no broker)."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import asyncpg
from prometheus_client import Counter

from services.metrics import queries
from shared.watermark import read_completeness

CELLS_RECOMPUTED = Counter(
    "metrics_cells_recomputed_total", "Dirty (unit, day) cells recomputed.", ["trigger"]
)
for _trigger in ("change", "deadline"):
    CELLS_RECOMPUTED.labels(_trigger)


@dataclass(frozen=True, slots=True)
class CrossedDeadlines:
    """The cells of the deadlines crossed in (after, until], recomputed as of `until`."""

    dirty: dict[str, set[date]]
    after: datetime
    until: datetime
    crossed: int
    final: bool  # judged on a watermark ingest vouched for on every input partition


async def recompute(
    pool: asyncpg.Pool,
    dirty: dict[str, set[date]],
    *,
    trigger: str,
    as_of: datetime | None = None,
    topic_prefix: str = "",
) -> datetime:
    """Recompute the given cells in one transaction; return the instant they were computed for: the
    completeness watermark capped by now (a deadline is judged passed only as far as the data arrived)."""
    pairs = [(unit_id, day) for unit_id, days in dirty.items() for day in days]
    async with pool.acquire() as connection:
        if as_of is None:  # never behind the sweeper: deadlines it crossed were judged on complete data
            as_of = (await read_completeness(connection, topic_prefix=topic_prefix)).as_of
            swept = await queries.fetch_swept_until(connection)
            as_of = max(as_of, swept) if swept is not None else as_of
        if pairs:
            async with connection.transaction():
                await queries.recompute_cells(
                    connection, unit_ids=[u for u, _ in pairs], days=[d for _, d in pairs], now=as_of
                )
    if pairs:
        CELLS_RECOMPUTED.labels(trigger).inc(len(pairs))
    return as_of


async def recompute_crossed_deadlines(pool: asyncpg.Pool, *, topic_prefix: str = "") -> CrossedDeadlines:
    """Recompute the cells of deadlines crossed since the last sweep, up to the completeness watermark
    (never past the data that has arrived). The sweep's mark is left as it is: the sweeper moves it once
    it has published the new counts."""
    async with pool.acquire() as connection:
        completeness = await read_completeness(connection, topic_prefix=topic_prefix)
        until = completeness.as_of
        after = await queries.fetch_swept_until(connection) or until - timedelta(days=366)
        crossed = await queries.fetch_crossed_deadlines(connection, after=after, until=until)
    dirty: dict[str, set[date]] = defaultdict(set)
    for unit_id, day in crossed:
        dirty[unit_id].add(day)
    await recompute(pool, dirty, trigger="deadline", as_of=until)
    return CrossedDeadlines(dirty, after, until, len(crossed), final=completeness.known)
