"""The completeness watermark ingest stores per input partition (shared/watermark.py): from each stored
batch and from each lag measurement of the ingest group."""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import asyncpg
from aiokafka import ConsumerRecord, TopicPartition

from services.ingest import queries
from shared.lag import OnMeasured, PartitionLag


@dataclass(frozen=True, slots=True)
class Mark:
    """How far one input partition is stored, and the instant its data is complete up to."""

    topic: str  # with the deployment's prefix
    partition: int
    next_offset: int
    complete_until: datetime


MarksOf = Callable[[Sequence[ConsumerRecord]], list[Mark]]


class Fetched(Protocol):
    """What a consumer knows of the partitions it fetched (aiokafka's `AIOKafkaConsumer.highwater`)."""

    def highwater(self, partition: TopicPartition) -> int | None: ...


def partition_marks(consumer: Fetched, grace: float, records: Sequence[ConsumerRecord]) -> list[Mark]:
    """Return each partition's mark after these records: complete up to now if they reach the end the
    broker reported with the fetch (the consumer's highwater); otherwise up to the broker timestamp of the last of them (no later
    than the oldest record still waiting) minus the grace for upstream delivery."""
    now = time.time()
    last: dict[TopicPartition, ConsumerRecord] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        if tp not in last or record.offset > last[tp].offset:
            last[tp] = record
    marks = []
    for tp, record in last.items():
        end = consumer.highwater(tp)
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
