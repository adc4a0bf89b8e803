"""A replayed history survives Kafka's retention until ingest has stored it.

Upstream stamps each record with the time its event happened (the completeness watermark reads it), so
a history replayed after an outage or a backfill is months or years old. With time retention the broker
deleted it at its next retention check (every 5 s in our recipe) before ingest read it, and the consumer
skipped to the new log start without a word: found when `bench.ingest` lost 3,501 of 20,000 events."""

import asyncio
import time
from datetime import datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY

from shared import topics
from shared.config import Settings
from shared.lag import LagMonitor
from tests.conftest import (
    MigratedDatabase,
    ServiceRunner,
    kafka_security,
    kafka_settings,
    load_registry,
    produce,
    wait_until,
)
from tests.factories import at, case_event, encode, random_id, received, small_registry

pytestmark = pytest.mark.integration

CASES = 200
RETENTION_CHECKS = 3  # broker checks retention every 5 s (log.retention.check.interval.ms)


def epoch_ms(iso: str) -> int:
    """Return an ISO instant as the milliseconds of a Kafka record timestamp."""
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


async def log_start_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Return each partition's first offset still in the log."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **kafka_security(bootstrap))
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(topics.PARTITIONS)]
        return {tp.partition: offset for tp, offset in (await consumer.beginning_offsets(partitions)).items()}
    finally:
        await consumer.stop()


async def test_a_history_from_2021_waiting_in_kafka_is_kept_and_then_stored_whole(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    units = [f"rt{i}" for i in range(4)]
    await load_registry(database, small_registry(*units))
    prefix = random_id("ret")
    messages, stamps = [], []
    for i in range(CASES):
        case_id, unit = f"{prefix}-{i}", units[i % len(units)]
        for event in (
            received(case_id, unit, at("2021-05-03 08:00"), due_at=at("2021-05-10 17:00")),
            case_event("resolved", case_id, unit, at("2021-05-05 10:00"), outcome="approved"),
        ):
            messages.append(encode(event))
            stamps.append(epoch_ms(event["occurred_at"]))
    topic = service_runner.topic_prefix + topics.CASE_EVENTS
    await produce(service_runner.kafka_bootstrap, topic, messages, timestamps_ms=stamps)

    # Ingest is down while the broker runs its retention checks over five-year-old records.
    await asyncio.sleep(RETENTION_CHECKS * 5 + 1)
    assert await log_start_offsets(service_runner.kafka_bootstrap, topic) == dict.fromkeys(
        range(topics.PARTITIONS), 0
    ), "the broker deleted records nobody had read"

    await service_runner.start("ingest")

    async def all_stored() -> bool:
        count = await admin_db.fetchval("SELECT count(*) FROM events WHERE subject_id LIKE $1", prefix + "%")
        return int(count) >= 2 * CASES

    started = time.monotonic()
    await wait_until(all_stored, timeout=90)
    resolved_cases = await admin_db.fetchval(
        "SELECT count(*) FROM cases WHERE case_id LIKE $1 AND closed_at IS NOT NULL", prefix + "%"
    )
    assert resolved_cases == CASES, f"stored in {time.monotonic() - started:.1f} s"


async def test_records_the_broker_deletes_before_a_group_reads_them_are_counted_once(
    topic_prefix: str, kafka_bootstrap: str
) -> None:
    # The topics our services stamp keep 7 days by time: records stamped 2021 there are deleted at the
    # next check, as the upstream topics' were. A group had committed offset 0 before that.
    topic, group = topic_prefix + topics.CHANGES, "dvc-lost-test"
    messages: list[tuple[bytes | None, bytes]] = [(b"k%d" % i, b"{}") for i in range(60)]
    await produce(kafka_bootstrap, topic, messages, timestamps_ms=[epoch_ms(at("2021-05-03 08:00"))] * 60)
    committer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=topic_prefix + group, **kafka_security(kafka_bootstrap)
    )
    await committer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(topics.PARTITIONS)]
        committer.assign(partitions)
        await committer.commit(dict.fromkeys(partitions, 0))
    finally:
        await committer.stop()

    async def deleted() -> bool:
        return sum((await log_start_offsets(kafka_bootstrap, topic)).values()) == 60

    await wait_until(deleted, timeout=RETENTION_CHECKS * 5 + 10)

    settings = Settings(
        DATABASE_URL="postgresql://unused",  # type: ignore[arg-type]
        TOPIC_PREFIX=topic_prefix,
        **kafka_settings(kafka_bootstrap).model_dump(),
    )
    monitor = LagMonitor(settings, "test", {group: [topics.CHANGES]})
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, **kafka_security(kafka_bootstrap))
    probe = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, **kafka_security(kafka_bootstrap))
    await admin.start()
    await probe.start()

    def counted() -> float:
        return sum(
            REGISTRY.get_sample_value(
                "dvc_consumer_records_lost_total",
                {"group": topic_prefix + group, "topic": topic, "partition": str(p)},
            )
            or 0.0
            for p in range(topics.PARTITIONS)
        )

    try:
        await monitor.step(admin, probe)
        assert counted() == 60
        await monitor.step(admin, probe)  # measured again: the same loss is not counted twice
        assert counted() == 60
    finally:
        await probe.stop()
        await admin.close()
