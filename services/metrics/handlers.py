"""Recompute the KPI cells that ingest marked dirty, sweep passing deadlines, publish KPI updates."""

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Annotated

import asyncpg
from aiokafka import ConsumerRecord
from faststream import Context
from faststream.kafka import KafkaMessage, KafkaRouter
from prometheus_client import Counter, Gauge, Histogram
from pydantic import SkipValidation, WithJsonSchema

from services.metrics import queries
from services.metrics.cells import recompute, recompute_crossed_deadlines
from shared import topics
from shared.app import PartitionAssignment
from shared.backoff import Retrying
from shared.config import Settings
from shared.consuming import DeadLetterProducer, batch_subscriber, isolate_internal_poison, settle_batch
from shared.events import CellsChanged, UnitKpisComputed
from shared.kpis import KPI_BY_ID
from shared.periods import ends_within_lookback, is_supported_day, parse_period

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 15.0
UPDATE_LATENCY = Histogram(
    "metrics_update_latency_seconds",
    "From ingest's commit of a batch to the commit of the KPI cells it changed.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENT_TO_COUNT = Histogram(
    "metrics_event_to_count_seconds",
    "From the broker timestamp of the oldest event of an ingest batch to the commit of its KPI cells.",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300),
)
SWEEPS = Counter("metrics_sweeps_total", "Deadline sweeps run.")
LAST_SWEEP = Gauge("metrics_last_sweep_timestamp_seconds", "Unix time of the last completed deadline sweep.")
UNSUPPORTED_DAYS = Counter(
    "metrics_unsupported_days_total",
    "Dirty days outside the contract's years 2000..2099: cells recomputed, no KPI update published.",
)


@dataclass(slots=True)
class OnceWarning:
    """A warning logged the first time only (a metric counts every occurrence)."""

    message: str
    emitted: bool = False

    def emit(self, *args: object) -> None:
        """Log the warning unless it was logged before in this process."""
        if not self.emitted:
            self.emitted = True
            logger.warning(self.message, *args)


UNSUPPORTED_WARNING = OnceWarning(
    "a dirty day outside the supported years (first: %s) was recomputed but has no period to publish; "
    "such days are counted in metrics_unsupported_days_total and logged only this once"
)
ASSIGNMENT = PartitionAssignment()
CONSUMER = Retrying("consumer", logger)
SWEEPER = Retrying("deadline_sweeper", logger)
CellsChangedRecord = Annotated[
    ConsumerRecord, SkipValidation, WithJsonSchema(CellsChanged.model_json_schema())
]
router = KafkaRouter()
kpi_updates = router.publisher(
    topics.KPI_UPDATES,
    schema=UnitKpisComputed,
    title="kpi updates",
    description="A unit's counts per KPI for a period.",
)


@batch_subscriber(
    router,
    topics.CHANGES,
    group_id="dvc-metrics",
    max_records=5000,
    batch_timeout_ms=50,
    listener=ASSIGNMENT,
    title="changes",
)
async def recompute_changed_cells(
    records: list[CellsChangedRecord],
    msg: KafkaMessage,
    pool: Annotated[asyncpg.Pool, Context("pool")],
    settings: Annotated[Settings, Context("settings")],
    dead_letter_producer: Annotated[DeadLetterProducer, Context("dead_letters")],
) -> None:
    """Recompute every dirty cell of the batch in one transaction, then publish the units' new counts."""
    # A message that is invalid or fails alone goes to dvc.internal-dead-letters.v1; on a storage
    # outage nothing is committed and the batch is retried after a backoff (settle_batch).
    process = partial(
        apply_changes, pool, lookback_days=settings.ALERTS_LOOKBACK_DAYS, topic_prefix=settings.TOPIC_PREFIX
    )
    isolate = partial(
        isolate_internal_poison, dead_letter_producer, topics.CHANGES, records, CellsChanged, process
    )
    await settle_batch(msg, CONSUMER, isolate)


async def apply_changes(
    pool: asyncpg.Pool,
    items: Sequence[tuple[ConsumerRecord, CellsChanged]],
    *,
    lookback_days: int,
    topic_prefix: str = "",
) -> None:
    """Recompute every dirty cell of the messages in one transaction, then publish the units' counts."""
    changes = [change for _, change in items]
    dirty: dict[str, set[date]] = defaultdict(set)
    for change in changes:
        for unit_id, days in change.cells.items():
            dirty[unit_id] |= set(days)
    as_of = await recompute(pool, dirty, trigger="change", topic_prefix=topic_prefix)
    observe_freshness(changes)  # the counts are committed: that is when an event is reflected
    await publish_kpi_updates(pool, dirty, as_of, lookback_days=lookback_days)


def observe_freshness(changes: list[CellsChanged]) -> None:
    """Record how long ago the batch's events were stored and produced."""
    now = time.time()
    for change in changes:
        UPDATE_LATENCY.observe(max(0.0, now - change.changed_at))
        if change.first_event_at is not None:
            EVENT_TO_COUNT.observe(max(0.0, now - change.first_event_at))


def touched_periods(days: Collection[date], *, now: datetime, lookback_days: int) -> set[str]:
    """Return the months and years that contain the given days and end within the lookback of `now`.

    Days outside the contract's years (a sentinel date stored before v1.1) have no period: they are
    counted and skipped, so they can never stop the units' other updates.
    """
    supported = {day for day in days if is_supported_day(day)}
    skipped = sorted(set(days) - supported)
    if skipped:
        UNSUPPORTED_DAYS.inc(len(skipped))
        UNSUPPORTED_WARNING.emit(skipped[0])
    months = {f"month:{day:%Y-%m}" for day in supported}
    years = {f"year:{day.year}" for day in supported}
    return {name for name in months | years if ends_within_lookback(parse_period(name), now, lookback_days)}


async def publish_kpi_updates(
    pool: asyncpg.Pool, dirty: dict[str, set[date]], now: datetime, *, lookback_days: int
) -> None:
    """Publish, per unit and touched live period, the unit's counts for every KPI (one query per period),
    as of `now` (the watermark); `computed_at` is the wall clock, which orders computations."""
    units_by_period: dict[str, list[str]] = defaultdict(list)
    for unit_id, days in dirty.items():
        for name in touched_periods(days, now=now, lookback_days=lookback_days):
            units_by_period[name].append(unit_id)
    messages = []
    computed_at = time.time()
    async with pool.acquire() as connection:
        for name, unit_ids in sorted(units_by_period.items()):
            period = parse_period(name)
            rollups = await queries.fetch_unit_rollups(
                connection, first=period.first, last=period.last, now=now, unit_ids=unit_ids
            )
            for unit_id in unit_ids:
                counts = {kpi: rollups.get((unit_id, kpi), (0, 0)) for kpi in KPI_BY_ID}
                messages.append(
                    UnitKpisComputed(unit_id=unit_id, period=name, counts=counts, computed_at=computed_at)
                )
    await asyncio.gather(*(kpi_updates.publish(m, key=m.unit_id.encode()) for m in messages))


async def sweep_deadlines(pool: asyncpg.Pool, *, lookback_days: int, topic_prefix: str = "") -> int:
    """Recompute the cells of deadlines crossed since the last sweep, publish the units' new counts, then
    remember how far the sweep went; return how many cells. The mark moves only on a watermark ingest
    vouched for on every input partition: recomputes never judge behind it, so a mark taken while a
    partition's history may still be waiting would judge that history's deadlines at the wall clock."""
    sweep = await recompute_crossed_deadlines(pool, topic_prefix=topic_prefix)
    await publish_kpi_updates(pool, sweep.dirty, sweep.until, lookback_days=lookback_days)
    if sweep.final:
        async with pool.acquire() as connection:
            await queries.store_swept_until(connection, until=max(sweep.until, sweep.after))
    SWEEPS.inc()
    LAST_SWEEP.set(sweep.until.timestamp())
    return sweep.crossed
