"""Notices held while a unit's input data lags (issue 11, architecture.md principle 9), through the real
alerts service, Kafka, PostgreSQL and an SMTP server.

The completeness watermark is ingest's to write; here the test writes it in ingest's place (one row per
input partition, `input_watermarks`), so that exactly the partitions carrying one unit lag. Which
partition carries a unit is asked of the broker (a record keyed by the unit, as the contract keys them).
"""

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from shared import topics
from shared.watermark import INPUT_TOPICS
from tests.conftest import kafka_security, wait_until
from tests.factories import encode, random_id, received
from tests.integration.test_alerts import C1, C2, Harness, head, previous_month, quiet, update
from tests.integration.test_alerts import clean as clean  # noqa: PLC0414 (fixture re-export)
from tests.integration.test_alerts import harness as harness  # noqa: PLC0414 (fixture re-export)
from tests.integration.test_alerts import receiver as receiver  # noqa: PLC0414 (fixture re-export)
from tests.integration.test_alerts import smtp as smtp  # noqa: PLC0414 (fixture re-export)

pytestmark = pytest.mark.integration

HOLD = {"DVC_WATERMARK_HOLD_SECONDS": "2"}


async def partition_of(bootstrap: str, topic: str, unit_id: str) -> int:
    """The partition the broker puts a record keyed by the unit on."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_security(bootstrap))
    await producer.start()
    try:
        case = encode(received(random_id("HS-KEY"), unit_id, datetime.now(UTC).isoformat(), due_at=None))
        metadata = await producer.send_and_wait(topic, case[1], key=case[0])
        return int(metadata.partition)
    finally:
        await producer.stop()


async def set_watermarks(admin_db: asyncpg.Connection, prefix: str, *, lagging: int | None) -> None:
    """Store every input partition as complete (a watermark ahead of the clock), but `lagging`, an hour
    behind."""
    now = datetime.now(UTC)
    rows = [
        (
            prefix + topic,
            partition,
            now - timedelta(hours=1) if partition == lagging else now + timedelta(days=1),
        )
        for topic in INPUT_TOPICS
        for partition in range(topics.PARTITIONS)
    ]
    await admin_db.executemany(
        """INSERT INTO input_watermarks (topic, partition, next_offset, complete_until) VALUES ($1, $2, 0, $3)
           ON CONFLICT (topic, partition) DO UPDATE SET complete_until = excluded.complete_until""",
        rows,
    )


async def held_c1(harness: Harness, admin_db: asyncpg.Connection) -> str:
    """Start alerts with complete data; C1 falls below target and its head is told; then the partition
    carrying C1 (and not C2) lags. Return the period."""
    prefix, bootstrap = harness.runner.topic_prefix, harness.runner.kafka_bootstrap
    partition = await partition_of(bootstrap, prefix + topics.CASE_EVENTS, C1)
    assert partition != await partition_of(bootstrap, prefix + topics.CASE_EVENTS, C2)
    await set_watermarks(admin_db, prefix, lagging=None)
    await harness.start(**HOLD)
    period = previous_month()
    await harness.publish(update(C1, period, on_time_rate=(950, 1000)))
    await harness.wait_mail(head(C1), 1, subject="[Cảnh báo]", timeout=20)
    await set_watermarks(admin_db, prefix, lagging=partition)
    await asyncio.sleep(2.5)  # a timer tick has read the watermark
    return period


async def recover(harness: Harness, unit_id: str, period: str) -> None:
    await harness.publish(
        update(unit_id, period, on_time_rate=(995, 1000)), update(unit_id, period, on_time_rate=(996, 1000))
    )
    await harness.wait_state(unit_id, period, "on_time_rate", "ok", numerator=996)


async def test_a_resolution_while_its_unit_was_held_is_sent_once_its_data_has_caught_up(
    harness: Harness, admin_db: asyncpg.Connection
) -> None:
    period = await held_c1(harness, admin_db)
    await recover(harness, C1, period)  # recovered while C1 is held
    await quiet(3)
    assert len(harness.mailbox.to(head(C1))) == 1  # nothing about C1 while its data lags

    await set_watermarks(admin_db, harness.runner.topic_prefix, lagging=None)  # caught up

    [resolution] = await harness.wait_mail(head(C1), 1, subject="[Đã khắc phục]", timeout=20)
    await quiet(4)
    assert len(harness.mailbox.to(head(C1))) == 2
    assert str(resolution["Subject"]).startswith("[Đã khắc phục]")


async def test_a_lag_confined_to_the_partition_of_one_unit_holds_the_notices_of_that_unit_only(
    harness: Harness, admin_db: asyncpg.Connection
) -> None:
    period = await held_c1(harness, admin_db)
    await recover(harness, C1, period)
    await harness.publish(update(C2, period, on_time_rate=(950, 1000)))  # C2's partition is complete

    await harness.wait_mail(head(C2), 1, subject="[Cảnh báo]", timeout=20)
    await quiet(3)
    assert len(harness.mailbox.to(head(C1))) == 1


async def test_a_notice_queued_before_its_unit_lags_waits_for_the_data_to_catch_up(
    harness: Harness, admin_db: asyncpg.Connection
) -> None:
    prefix = harness.runner.topic_prefix
    partition = await partition_of(harness.runner.kafka_bootstrap, prefix + topics.CASE_EVENTS, C1)
    await set_watermarks(admin_db, prefix, lagging=None)
    await harness.start(DVC_ALERTS_GROUP_WAIT_SECONDS="6", **HOLD)
    period = previous_month()
    await harness.publish(update(C1, period, on_time_rate=(950, 1000)))

    async def queued() -> bool:
        return bool(
            await admin_db.fetchval("SELECT count(*) FROM notifications WHERE recipient = $1", head(C1))
        )

    await wait_until(queued, timeout=20)
    await set_watermarks(admin_db, prefix, lagging=partition)  # within the group's first wait
    await quiet(9)  # past the first wait: released had the hold been judged only when it was queued
    assert harness.mailbox.to(head(C1)) == []

    await set_watermarks(admin_db, prefix, lagging=None)
    await harness.wait_mail(head(C1), 1, subject="[Cảnh báo]", timeout=20)


async def test_a_resolution_while_held_is_not_sent_when_the_unit_fell_below_target_again(
    harness: Harness, admin_db: asyncpg.Connection
) -> None:
    period = await held_c1(harness, admin_db)
    await recover(harness, C1, period)
    await harness.publish(update(C1, period, on_time_rate=(940, 1000)))  # below target again, still held
    await harness.wait_state(C1, period, "on_time_rate", "below_target", numerator=940)

    await set_watermarks(admin_db, harness.runner.topic_prefix, lagging=None)  # caught up

    async def settled() -> bool:
        pending = await admin_db.fetchval(
            "SELECT count(*) FROM notifications WHERE recipient = $1 AND status = 'pending'", head(C1)
        )
        told = await admin_db.fetchval(
            "SELECT count(*) FROM notifications WHERE recipient = $1 AND kind = 'firing'", head(C1)
        )
        return bool(pending == 0 and told == 2)

    await wait_until(settled, timeout=20)
    await quiet(3)
    # the head knew "below target", and it still is: neither the resolution nor the new opening is mailed
    assert len(harness.mailbox.to(head(C1))) == 1
    rows = await admin_db.fetch(
        """SELECT kind, status FROM notifications WHERE channel = 'email' AND recipient = $1
           ORDER BY notification_id""",
        head(C1),
    )
    assert [tuple(r) for r in rows] == [("firing", "sent"), ("resolved", "cancelled"), ("firing", "sent")]
