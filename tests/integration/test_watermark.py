"""Consumer lag and the completeness watermark against the real broker and database.

Ingest is made unable to store (its INSERT privilege on event_ids is revoked: a permission error is an
infrastructure failure, so the batch is rewound and retried, never dead-lettered). Events then wait
in Kafka while ingest runs: its /metrics must report the lag the broker reports (admin client: end
offsets minus the group's committed offsets), and the watermark it stores must be the broker timestamp
of the oldest waiting record minus the grace. Granted again, ingest catches up: lag 0, watermark now.
"""

import asyncio
import re
import signal
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared import topics
from shared.watermark import INPUT_TOPICS
from tests.conftest import MigratedDatabase, ServiceRunner, kafka_security, load_registry, produce, wait_until
from tests.factories import at, case_event, encode, random_id, received, small_registry
from tests.integration.test_alerts import (  # noqa: F401 (fixtures)
    C1,
    Harness,
    clean,
    harness,
    head,
    receiver,
    smtp,
    text_of,
)

pytestmark = pytest.mark.integration

POLL = 1.0
GRACE = 30.0
GAUGE = re.compile(
    r'^(dvc_consumer_lag_(?:messages|seconds))\{group="([^"]+)",partition="(\d+)",topic="([^"]+)"\} (\S+)$'
)


async def scrape_lag(port: int) -> dict[tuple[str, str, int], dict[str, float]]:
    """Return {(group, topic, partition): {"messages": m, "seconds": s}} from a service's /metrics."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    found: dict[tuple[str, str, int], dict[str, float]] = {}
    for line in text.splitlines():
        match = GAUGE.match(line)
        if match:
            name, group, partition, topic, value = match.groups()
            found.setdefault((group, topic, int(partition)), {})[name.rsplit("_", 1)[1]] = float(value)
    return found


async def broker_lag(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int, float | None]]:
    """What the broker reports: per partition, (end - committed, timestamp of the record at committed)."""
    security = kafka_security(bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **security)
    await admin.start()
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(topics.PARTITIONS)]
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        result: dict[int, tuple[int, float | None]] = {}
        for tp in partitions:
            at_offset = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else starts[tp]
            stamp = None
            if ends[tp] > at_offset:
                consumer.assign([tp])
                consumer.seek(tp, at_offset)
                record = await consumer.getone()
                stamp = record.timestamp / 1000
            result[tp.partition] = (ends[tp] - at_offset, stamp)
        return result
    finally:
        await consumer.stop()
        await admin.close()


async def watermark(admin_db: asyncpg.Connection, prefix: str) -> datetime | None:
    value: datetime | None = await admin_db.fetchval(
        "SELECT min(complete_until) FROM input_watermarks WHERE topic = $1", prefix + topics.CASE_EVENTS
    )
    return value


async def test_lag_on_metrics_matches_the_broker_and_the_watermark_follows_it(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    await load_registry(database, small_registry("w1", "w2", "w3"))
    runner, prefix = service_runner, service_runner.topic_prefix
    topic, group = prefix + topics.CASE_EVENTS, prefix + "dvc-ingest"
    ingest = await runner.start(
        "ingest", DVC_LAG_POLL_SECONDS=str(POLL), DVC_WATERMARK_GRACE_SECONDS=str(GRACE)
    )
    await admin_db.execute("REVOKE INSERT ON event_ids FROM dvc_ingest")
    try:
        events = [
            received(random_id("hs"), unit, at("2026-11-20 08:00"), due_at=at("2026-11-25 17:00"))
            for unit in ("w1", "w2", "w3")
            for _ in range(10)
        ]
        sent_at = time.time()
        await produce(runner.kafka_bootstrap, topic, [encode(e) for e in events])

        async def lagging_as_the_broker_says() -> bool:
            reported = await broker_lag(runner.kafka_bootstrap, group, topic)
            scraped = await scrape_lag(ingest.port)
            if sum(m for m, _ in reported.values()) != len(events):
                return False
            for partition, (messages, stamp) in reported.items():
                gauge = scraped.get((group, topic, partition))
                if gauge is None or gauge["messages"] != messages:
                    return False
                expected = time.time() - stamp if stamp is not None else 0.0
                if abs(gauge["seconds"] - expected) > POLL + 1.0:  # one poll interval, plus the scrape
                    return False
            return True

        await wait_until(lagging_as_the_broker_says, timeout=30)
        oldest = min(s for _, s in (await broker_lag(runner.kafka_bootstrap, group, topic)).values() if s)
        stored = await watermark(admin_db, prefix)
        assert stored is not None
        # The stored watermark of a lagging partition: the oldest waiting record's timestamp minus grace.
        assert abs(stored.timestamp() - (oldest - GRACE)) < 1.0, (stored, oldest)
        assert stored.timestamp() < sent_at
    finally:
        await admin_db.execute("GRANT INSERT ON event_ids TO dvc_ingest")

    async def caught_up() -> bool:
        reported = await broker_lag(runner.kafka_bootstrap, group, topic)
        scraped = await scrape_lag(ingest.port)
        lag_zero = all(messages == 0 for messages, _ in reported.values())
        gauges_zero = all(
            scraped.get((group, topic, p), {}).get("messages") == 0
            and scraped.get((group, topic, p), {}).get("seconds") == 0
            for p in reported
        )
        return lag_zero and gauges_zero

    await wait_until(caught_up, timeout=60)
    await wait_until(
        lambda: _fresh(admin_db, prefix, within=POLL + 2.0), timeout=10
    )  # no lag: complete up to now, refreshed every poll


async def _fresh(admin_db: asyncpg.Connection, prefix: str, *, within: float) -> bool:
    value = await watermark(admin_db, prefix)
    return value is not None and (datetime.now(UTC) - value).total_seconds() < within


# A stalled input partition: ingest stops, deadlines pass on the wall clock while the events that
# resolved those cases on time wait in Kafka. No overdue notice may name them, during the stall or after
# the restart; a case that is really overdue (never resolved) is named once the data is complete.
HOLD, STALL_GRACE = 3.0, 1.0


async def test_a_stalled_partition_sends_no_overdue_notice_for_cases_resolved_in_time(
    harness: Harness,  # noqa: F811 (the fixture imported above)
    admin_db: asyncpg.Connection,
) -> None:
    runner = harness.runner
    timing = {
        "DVC_LAG_POLL_SECONDS": "0.5",
        "DVC_WATERMARK_GRACE_SECONDS": str(STALL_GRACE),
        "DVC_WATERMARK_HOLD_SECONDS": str(HOLD),
    }
    ingest = await runner.start("ingest", **timing)
    now = datetime.now(UTC)
    deadline = now + timedelta(seconds=15)
    iso = lambda moment: moment.isoformat()  # noqa: E731
    resolved_ids = [random_id("HS-ONTIME") for _ in range(5)]
    late_id = random_id("HS-LATE")
    await produce(
        runner.kafka_bootstrap,
        runner.topic_prefix + topics.CASE_EVENTS,
        [
            encode(received(case_id, C1, iso(now - timedelta(hours=1)), due_at=iso(deadline)))
            for case_id in [*resolved_ids, late_id]
        ],
    )

    async def stored() -> bool:
        return int(await admin_db.fetchval("SELECT count(*) FROM cases WHERE unit_id = $1", C1)) == 6

    await wait_until(stored, timeout=30)
    await asyncio.sleep(1.5)  # a lag measurement with nothing waiting: complete up to now
    assert ingest.stop() in (0, -signal.SIGTERM)
    # Alerts starts once the data is known to lag: had it started earlier, its first morning digest
    # would (truly) list these cases as due soon, and the day's one digest would be spent.
    await asyncio.sleep(HOLD + 1)
    await harness.start(DVC_ALERTS_OFFICE_HOURS="00:00-24:00", **timing)
    # Resolved before the deadline, but waiting in Kafka while ingest is down.
    await produce(
        runner.kafka_bootstrap,
        runner.topic_prefix + topics.CASE_EVENTS,
        [
            encode(case_event("resolved", case_id, C1, iso(datetime.now(UTC)), outcome="approved"))
            for case_id in resolved_ids
        ],
    )
    # the deadlines pass on the wall clock
    await asyncio.sleep((deadline + timedelta(seconds=5) - datetime.now(UTC)).total_seconds())
    assert harness.mailbox.messages == [], [m["Subject"] for m in harness.mailbox.messages]

    await runner.start("ingest", **timing)  # restart: the resolutions are consumed
    [digest] = await harness.wait_mail(head(C1), 1, timeout=30)
    text = text_of(digest)
    assert late_id in text
    assert not [case_id for case_id in resolved_ids if case_id in text], text
    await asyncio.sleep(3)
    assert len(harness.mailbox.messages) == 1


async def test_the_sweep_mark_waits_until_ingest_vouched_for_every_partition(
    service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    """Metrics started before ingest vouched for every input partition (the first seconds of a run, with
    a history still waiting) sweeps, but keeps no mark: a mark would make every later recompute judge
    that history's deadlines at the wall clock. Once every partition has a watermark, the mark moves."""
    prefix = service_runner.topic_prefix
    await admin_db.execute("TRUNCATE sweeper_state")
    now = datetime.now(UTC)
    stored = [(prefix + topics.CASE_EVENTS, partition, now) for partition in range(topics.PARTITIONS - 1)]
    insert = """INSERT INTO input_watermarks (topic, partition, next_offset, complete_until)
                VALUES ($1, $2, 0, $3) ON CONFLICT (topic, partition) DO NOTHING"""
    await admin_db.executemany(insert, stored)
    metrics = await service_runner.start("metrics")

    async def swept() -> bool:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{metrics.port}/metrics")).text
        return bool(re.search(r"^metrics_sweeps_total [1-9]", text, re.MULTILINE))

    await wait_until(swept, timeout=60)
    assert await admin_db.fetchval("SELECT swept_until FROM sweeper_state") is None
    every = [
        (prefix + topic, partition, now) for topic in INPUT_TOPICS for partition in range(topics.PARTITIONS)
    ]
    await admin_db.executemany(insert, every)

    async def marked() -> bool:
        return await admin_db.fetchval("SELECT swept_until FROM sweeper_state") is not None

    await wait_until(marked, timeout=60)
