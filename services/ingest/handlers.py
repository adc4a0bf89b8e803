"""Consume case, document, report and inspection events in batches: validate, store exactly once, publish
the dead letters and the dirty cells, then commit."""

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from functools import partial
from typing import Annotated

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faststream import Context
from faststream.kafka import KafkaMessage, KafkaRouter
from prometheus_client import Counter, Histogram
from pydantic import SkipValidation, WithJsonSchema

from services.ingest.storage import StoredBatch
from services.ingest.storage_policy import CONSUMER, store_in_transaction, store_isolating_poison
from services.ingest.validation import DeadLetter, UnitIds, refresh_units, validate_records
from services.ingest.watermarks import MarksOf, partition_marks
from shared import topics
from shared.app import PartitionAssignment
from shared.config import Settings
from shared.consuming import DeadLetterProducer, batch_subscriber, settle_batch
from shared.events import HANDLER_ERROR, REASON_CODES, CellsChanged, cells_key, contract_json_schema

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

ContractRecord = Annotated[ConsumerRecord, SkipValidation, WithJsonSchema(contract_json_schema())]
ASSIGNMENT = PartitionAssignment()
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


@batch_subscriber(
    router,
    *INPUT_TOPICS,
    group_id="dvc-ingest",
    max_records=MAX_RECORDS,
    batch_timeout_ms=BATCH_TIMEOUT_MS,
    listener=ASSIGNMENT,
    title="case, document, report and inspection events",
)
async def store_events(
    records: list[ContractRecord],
    msg: KafkaMessage,
    pool: Annotated[asyncpg.Pool, Context("pool")],
    units: Annotated[UnitIds, Context("registry")],
    settings: Annotated[Settings, Context("settings")],
    dead_letter_producer: Annotated[DeadLetterProducer, Context("dead_letters")],
) -> None:
    """Validate every record, store the good ones exactly once, dead-letter the rest, then commit."""
    # On a storage outage nothing is committed: the batch is retried after a backoff (settle_batch).
    consumer: AIOKafkaConsumer = msg.consumer  # the real consumer of a batch: its fetched highwaters
    marks_of = partial(partition_marks, consumer, settings.WATERMARK_GRACE_SECONDS)
    handle = partial(handle_batch, records, pool, units, settings, dead_letter_producer, marks_of)
    await settle_batch(msg, CONSUMER, handle)


async def handle_batch(
    records: Sequence[ConsumerRecord],
    pool: asyncpg.Pool,
    units: UnitIds,
    settings: Settings,
    dead_letter_producer: DeadLetterProducer,
    marks_of: MarksOf | None = None,
) -> None:
    """Validate, store, then publish the dead letters and dirty cells of one batch."""
    started = time.perf_counter()
    BATCH_SIZE.observe(len(records))
    await refresh_units(units, pool, max_age=settings.REGISTRY_REFRESH_SECONDS)
    accepted, rejected = await validate_records(records, units, pool, settings.TOPIC_PREFIX)
    stored, crashed = await store_isolating_poison(partial(store_in_transaction, pool, marks_of), accepted)
    first_event_at = min(record.timestamp for record in records) / 1000 if records else None
    await publish_outcome(dead_letter_producer, [*rejected, *crashed], stored, first_event_at)
    COMMIT_SECONDS.observe(time.perf_counter() - started)
    for topic, count in stored.stored.items():
        EVENTS_STORED.labels(topic).inc(count)
    for topic, count in stored.duplicates.items():
        DUPLICATES.labels(topic).inc(count)


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
