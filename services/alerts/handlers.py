"""Evaluate the KPI counts metrics publishes (dvc.kpi-updates.v1) and publish state changes (dvc.alerts.v1).

The subscriber takes batches in group "dvc-alerts" with MANUAL acknowledgement: the offsets are
committed only after the batch's evaluations are committed in PostgreSQL (a batch that failed on a
storage outage is rewound and retried after a backoff; a message that is invalid or fails alone goes
to dvc.internal-dead-letters.v1; a redelivered or older computation is skipped by its `computed_at`). State changes
go to Kafka through the `alert_events` outbox, right after the commit and again from the timer, so a
broker outage delays them but loses none.
"""

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Annotated

import asyncpg
from aiokafka import ConsumerRecord
from faststream import Context
from faststream.kafka import KafkaMessage, KafkaRouter
from pydantic import SkipValidation, WithJsonSchema

from services.alerts import queries
from services.alerts.lifecycle import Engine, Observation, apply_observations, observations_of, wake_senders
from shared import topics
from shared.app import PartitionAssignment
from shared.backoff import Retrying
from shared.consuming import DeadLetterProducer, batch_subscriber, isolate_internal_poison, settle_batch
from shared.events import AlertStateChanged, UnitKpisComputed

logger = logging.getLogger(__name__)

PUBLISH_BATCH = 500
ASSIGNMENT = PartitionAssignment()
CONSUMER = Retrying("consumer", logger)
UnitKpisComputedRecord = Annotated[
    ConsumerRecord, SkipValidation, WithJsonSchema(UnitKpisComputed.model_json_schema())
]
router = KafkaRouter()
alert_changes = router.publisher(
    topics.ALERTS,
    schema=AlertStateChanged,
    title="alerts",
    description="Every alert state change of a unit's KPI for a period, keyed by unit.",
)


@batch_subscriber(
    router,
    topics.KPI_UPDATES,
    group_id="dvc-alerts",
    max_records=2000,
    batch_timeout_ms=100,
    listener=ASSIGNMENT,
    title="kpi updates (alerts)",
)
async def evaluate_kpi_updates(
    records: list[UnitKpisComputedRecord],
    msg: KafkaMessage,
    pool: Annotated[asyncpg.Pool, Context("pool")],
    engine: Annotated[Engine, Context("engine")],
    dead_letter_producer: Annotated[DeadLetterProducer, Context("dead_letters")],
) -> None:
    """Evaluate every targeted KPI of the batch's updates in one transaction, then publish the changes."""
    # A message that is invalid or fails alone goes to dvc.internal-dead-letters.v1; on a storage
    # outage nothing is committed and the batch is retried after a backoff (settle_batch).
    evaluate = partial(evaluate_records, pool, engine)
    isolate = partial(
        isolate_internal_poison, dead_letter_producer, topics.KPI_UPDATES, records, UnitKpisComputed, evaluate
    )
    evaluated = await settle_batch(msg, CONSUMER, isolate)
    if not evaluated:
        return
    wake_senders(engine)
    try:
        await publish_state_changes(pool)
    except Exception as exc:
        logger.warning("publishing alert state changes failed; the timer retries: %r", exc)


async def evaluate_records(
    pool: asyncpg.Pool, engine: Engine, items: Sequence[tuple[ConsumerRecord, UnitKpisComputed]]
) -> int:
    """Evaluate the updates of some records in one transaction; return the number of state changes."""
    return await evaluate_updates(pool, engine, [update for _, update in items])


async def evaluate_updates(pool: asyncpg.Pool, engine: Engine, updates: list[UnitKpisComputed]) -> int:
    """Evaluate updates in computation order; return the number of state changes."""
    now = datetime.now(UTC)
    async with pool.acquire() as connection:
        await engine.refresh(connection)
        await engine.read_completeness(connection, now)
        observations: list[Observation] = []
        for update in sorted(updates, key=lambda u: u.computed_at):
            observations += observations_of(update, engine, now)
        if not observations:
            return 0
        async with connection.transaction():
            return await apply_observations(connection, engine, observations, now=now, timer=False)


async def publish_state_changes(pool: asyncpg.Pool) -> int:
    """Publish unpublished state changes, oldest first, then stamp them; return how many."""
    published = 0
    while True:
        async with pool.acquire() as connection, connection.transaction():
            rows = await queries.lock_unpublished_events(connection, limit=PUBLISH_BATCH)
            for row in rows:  # one at a time: a unit's changes keep their order on its partition
                event = state_change(row)
                await alert_changes.publish(event, key=event.unit_id.encode())
            await queries.mark_events_published(
                connection, event_ids=[row["event_id"] for row in rows], now=datetime.now(UTC)
            )
        published += len(rows)
        if len(rows) < PUBLISH_BATCH:
            return published


def state_change(row: asyncpg.Record) -> AlertStateChanged:
    """Build the public event of a stored state change."""
    figures = row["figures"]
    return AlertStateChanged(
        event_id=f"alert-event-{row['event_id']}",
        unit_id=row["unit_id"],
        kpi=row["kpi"],
        period=row["period"],
        previous_state=row["previous_state"],
        state=row["state"],
        alert_id=row["alert_id"],
        numerator=row["numerator"],
        denominator=row["denominator"],
        ratio=figures.get("ratio"),
        target=figures.get("target"),
        comparator=figures.get("comparator"),
        failures_allowed=figures.get("failures_allowed"),
        forecast_ratio=figures.get("forecast_ratio"),
        p_meet=figures.get("p_meet"),
        changed_at=row["changed_at"].timestamp(),
    )
