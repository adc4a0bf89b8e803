"""Consume case, document, report and inspection events in batches, store them exactly once, dead-letter bad input."""

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from typing import Annotated

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faststream import AckPolicy, Context
from faststream.kafka import KafkaMessage, KafkaRouter
from prometheus_client import Counter, Histogram
from pydantic import WithJsonSchema

from services.ingest import queries
from services.ingest.batches import Accepted, Mark, StoredBatch, store_batch
from shared import topics
from shared.app import PartitionAssignment
from shared.backoff import Retrying
from shared.config import Settings
from shared.consuming import (
    LEAF_ATTEMPTS,
    DeadLetterProducer,
    parse_keeping_headers,
    process_isolating,
    raw_bodies,
    settle_batch,
)
from shared.events import (
    HANDLER_ERROR,
    REASON_CODES,
    CellsChanged,
    Event,
    InspectionCompleted,
    Rejection,
    cells_key,
    contract_json_schema,
    decode_body,
    validate_body,
)
from shared.lag import OnMeasured, PartitionLag

logger = logging.getLogger(__name__)

MAX_RECORDS = topics.INGEST_MAX_RECORDS
BATCH_TIMEOUT_MS = 100

EVENTS_STORED = Counter("ingest_events_stored_total", "Events stored for the first time.", ["topic"])
DUPLICATES = Counter("ingest_duplicate_events_total", "Events already stored (same event_id).", ["topic"])
DEAD_LETTERED = Counter("ingest_dead_letters_total", "Messages sent to the dead-letter topic.", ["reason"])
BATCH_SIZE = Histogram(
    "ingest_batch_size", "Messages per consumed batch.", buckets=(1, 10, 50, 100, 250, 500, 1000, 2000)
)
COMMIT_SECONDS = Histogram("ingest_commit_seconds", "Time to store a batch and commit its offsets.")
INPUT_TOPICS = (topics.CASE_EVENTS, topics.DOCUMENT_EVENTS, topics.REPORT_EVENTS, topics.INSPECTION_EVENTS)
for _topic in INPUT_TOPICS:
    EVENTS_STORED.labels(_topic)
    DUPLICATES.labels(_topic)
for _reason in (*REASON_CODES, HANDLER_ERROR):
    DEAD_LETTERED.labels(_reason)


@dataclass(slots=True)
class UnitRegistry:
    """The registry's unit ids, reloaded when its version changes (no restart needed)."""

    unit_ids: frozenset[str] = frozenset()
    version: int = -1
    checked_at: float = field(default=0.0)

    async def refresh(self, pool: asyncpg.Pool, *, max_age: float) -> None:
        """Reload the unit ids if the stored version changed, at most every `max_age` seconds."""
        if time.monotonic() - self.checked_at < max_age:
            return
        async with pool.acquire() as connection:
            version = await queries.fetch_registry_version(connection)
            if version != self.version:
                self.unit_ids = frozenset(await queries.fetch_unit_ids(connection))
                self.version = version
        self.checked_at = time.monotonic()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected record and why."""

    record: ConsumerRecord
    rejection: Rejection


RawContractEvent = Annotated[bytes, WithJsonSchema(contract_json_schema())]
ASSIGNMENT = PartitionAssignment()
CONSUMER = Retrying("consumer", logger)
router = KafkaRouter()
# Declared for the AsyncAPI document; sent by DeadLetterProducer, which keeps the original header bytes.
router.publisher(
    topics.DEAD_LETTERS,
    title="dead letters",
    description="Rejected messages, unchanged (value, key, original headers), with dvc-* headers naming the reason.",
)
changes = router.publisher(
    topics.CHANGES,
    schema=CellsChanged,
    title="changes",
    description="The (unit, local days) whose KPI cells a stored batch may have changed.",
)


@router.subscriber(
    *(topics.declared(topic) for topic in INPUT_TOPICS),
    group_id="dvc-ingest",
    batch=True,
    max_records=MAX_RECORDS,
    batch_timeout_ms=BATCH_TIMEOUT_MS,
    ack_policy=AckPolicy.MANUAL,
    auto_offset_reset="earliest",
    listener=ASSIGNMENT,
    parser=parse_keeping_headers,  # headers are not part of the contract: never decoded
    decoder=raw_bodies,  # validated per record against the contract, not here
    title="case, document, report and inspection events",
)
async def store_events(
    body: list[RawContractEvent],  # noqa: ARG001 (records are read from msg; this types the AsyncAPI payload)
    msg: KafkaMessage,
    pool: Annotated[asyncpg.Pool, Context("pool")],
    registry: Annotated[UnitRegistry, Context("registry")],
    settings: Annotated[Settings, Context("settings")],
    dead_letter_producer: Annotated[DeadLetterProducer, Context("dead_letters")],
) -> None:
    """Validate every record, store the good ones exactly once, dead-letter the rest, then commit."""
    # On a storage outage nothing is committed: the batch is retried after a backoff (settle_batch).
    records: tuple[ConsumerRecord, ...] = msg.raw_message
    consumer: AIOKafkaConsumer = msg.consumer  # the real consumer of a batch
    marks_of = partial(partition_marks, consumer.highwater, settings.WATERMARK_GRACE_SECONDS)
    await settle_batch(
        msg,
        CONSUMER,
        partial(handle_batch, records, pool, registry, settings, dead_letter_producer, marks_of),
    )


async def handle_batch(
    records: tuple[ConsumerRecord, ...],
    pool: asyncpg.Pool,
    registry: UnitRegistry,
    settings: Settings,
    dead_letter_producer: DeadLetterProducer,
    marks_of: "MarksOf | None" = None,
) -> None:
    """Validate, store, and publish the dead letters and dirty cells of one batch."""
    started = time.perf_counter()
    BATCH_SIZE.observe(len(records))
    await registry.refresh(pool, max_age=settings.REGISTRY_REFRESH_SECONDS)
    accepted, rejected = await validate_records(records, pool, registry, settings.TOPIC_PREFIX)
    stored, crashed = await store_isolating_poison(pool, accepted, marks_of)
    rejected += crashed
    first_event_at = min(record.timestamp for record in records) / 1000 if records else None
    await publish_outcome(dead_letter_producer, rejected, stored, first_event_at)
    COMMIT_SECONDS.observe(time.perf_counter() - started)
    for topic, count in stored.stored.items():
        EVENTS_STORED.labels(topic).inc(count)
    for topic, count in stored.duplicates.items():
        DUPLICATES.labels(topic).inc(count)


async def validate_records(
    records: Sequence[ConsumerRecord], pool: asyncpg.Pool, registry: UnitRegistry, topic_prefix: str
) -> tuple[list[Accepted], list[DeadLetter]]:
    """Split a batch into accepted events and dead letters, in the contract's order of checks."""
    accepted: list[Accepted] = []
    rejected: list[DeadLetter] = []
    refreshed = False
    for record in records:
        topic = record.topic.removeprefix(topic_prefix)
        body = decode_body(record.value)
        outcome = body if isinstance(body, Rejection) else validate_body(topic, body)
        if not isinstance(outcome, Rejection) and unknown_units(outcome, registry.unit_ids):
            if not refreshed:  # a unit loaded a moment ago is accepted; one check per batch at most
                await registry.refresh(pool, max_age=0.0)
                refreshed = True
            unknown = unknown_units(outcome, registry.unit_ids)
            if unknown:
                field_name, unit_id = unknown[0]
                outcome = Rejection("unknown_unit", f"{field_name} {unit_id!r} is not in the unit registry")
        if isinstance(outcome, Rejection):
            rejected.append(DeadLetter(record, outcome))
        else:
            assert isinstance(body, dict)
            accepted.append(Accepted(topic, outcome, body, record))
    return accepted, rejected


def unknown_units(event: Event, unit_ids: frozenset[str]) -> list[tuple[str, str]]:
    """Return the (field, id) pairs naming units outside the registry: `unit_id`, then `inspected_unit_id`."""
    named = [("unit_id", event.unit_id)]
    if isinstance(event, InspectionCompleted):
        named.append(("inspected_unit_id", event.inspected_unit_id))
    return [(name, unit_id) for name, unit_id in named if unit_id not in unit_ids]


async def store_isolating_poison(
    pool: asyncpg.Pool, batch: Sequence[Accepted], marks_of: "MarksOf | None" = None
) -> tuple[StoredBatch, list[DeadLetter]]:
    """Store the batch; if it fails with an error the data may cause, bisect it so one bad event cannot
    fail the others. Storage outages propagate (the batch is retried whole, nothing is rejected)."""
    stored = StoredBatch()
    if not batch:
        return stored, []
    outcome = await process_isolating(batch, partial(store_in_transaction, pool, marks_of))
    for part in outcome.results:
        stored.merge(part)
    crashed = []
    for item, error in outcome.failed:
        logger.error(
            "event %s failed alone %d times, dead-lettering: %r", item.event.event_id, LEAF_ATTEMPTS, error
        )
        crashed.append(DeadLetter(item.record, Rejection(HANDLER_ERROR, f"storage failed: {error!r}"[:500])))
    return stored, crashed


async def store_in_transaction(
    pool: asyncpg.Pool, marks_of: "MarksOf | None", batch: Sequence[Accepted]
) -> StoredBatch:
    """Store events, and the watermark of their partitions, in one transaction on a pooled connection."""
    marks = marks_of([item.record for item in batch]) if marks_of is not None else []
    async with pool.acquire() as connection:
        return await store_batch(connection, batch, marks)


MarksOf = Callable[[Sequence[ConsumerRecord]], list[Mark]]


def partition_marks(
    highwater: Callable[[TopicPartition], int | None], grace: float, records: Sequence[ConsumerRecord]
) -> list[Mark]:
    """Return each partition's mark after these records: complete up to now if they reach the end the
    broker reported with the fetch; otherwise up to the broker timestamp of the last of them (no later
    than the oldest record still waiting) minus the grace for upstream delivery."""
    now = time.time()
    last: dict[TopicPartition, ConsumerRecord] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        if tp not in last or record.offset > last[tp].offset:
            last[tp] = record
    marks = []
    for tp, record in last.items():
        end = highwater(tp)
        caught_up = end is not None and record.offset + 1 >= end
        until = now if caught_up else min(now, record.timestamp / 1000) - grace
        marks.append(Mark(tp.topic, tp.partition, record.offset + 1, datetime.fromtimestamp(until, UTC)))
    return marks


def lag_marks(lags: Sequence[PartitionLag], grace: float) -> list[Mark]:
    """Return the marks of a lag measurement of the ingest group: complete up to the measurement when
    nothing waits, else up to the oldest waiting record's broker timestamp minus the grace."""
    marks = []
    for lag in lags:
        if lag.messages == 0:
            until = lag.measured_at
        elif lag.oldest_unconsumed_at is not None:
            until = min(lag.measured_at, lag.oldest_unconsumed_at) - grace
        else:
            continue  # the waiting record could not be read: keep the stored mark
        marks.append(Mark(lag.topic, lag.partition, lag.committed, datetime.fromtimestamp(until, UTC)))
    return marks


def store_lag_marks(pool: asyncpg.Pool, *, grace: float) -> OnMeasured:
    """Return the handler of ingest's lag measurements: store them as watermarks (one writer: ingest)."""

    async def store(lags: Sequence[PartitionLag]) -> None:
        marks = lag_marks(lags, grace)
        async with pool.acquire() as connection:
            await queries.store_watermarks(
                connection, marks=[(m.topic, m.partition, m.next_offset, m.complete_until) for m in marks]
            )

    return store


async def publish_outcome(
    dead_letter_producer: DeadLetterProducer,
    rejected: Sequence[DeadLetter],
    stored: StoredBatch,
    first_event_at: float | None,
) -> None:
    """Publish dead letters and dirty cells before the offsets are committed."""
    now = time.time()
    await asyncio.gather(
        dead_letter_producer.publish(
            topics.DEAD_LETTERS, [(d.record, d.rejection.reason, d.rejection.message) for d in rejected]
        ),
        *(
            changes.publish(message, key=key)
            for key, message in bucket_changes(stored, now, first_event_at).items()
        ),
    )
    for dead in rejected:
        DEAD_LETTERED.labels(dead.rejection.reason).inc()


def bucket_changes(
    stored: StoredBatch, now: float, first_event_at: float | None
) -> dict[bytes, CellsChanged]:
    """Group the dirty cells by key bucket: one message per bucket."""
    buckets: dict[bytes, dict[str, list[date]]] = defaultdict(dict)
    for unit_id, days in stored.dirty.items():
        buckets[cells_key(unit_id)][unit_id] = sorted(days)
    return {
        key: CellsChanged(cells=cells, changed_at=now, first_event_at=first_event_at)
        for key, cells in buckets.items()
    }
