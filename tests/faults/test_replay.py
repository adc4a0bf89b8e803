"""`dvc deadletters`: events dead-lettered as unknown_unit are replayed once their unit is loaded, and
count exactly once however often they are replayed (real Kafka, PostgreSQL, ingest and metrics)."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from cli.deadletters import DeadLetter, parse_since, replay, replay_target
from services.metrics.audit import audit
from shared import topics
from tests.conftest import (
    REPO,
    MigratedDatabase,
    ServiceRunner,
    infra_setting,
    kafka_security,
    kafka_settings,
    load_registry,
    read_topic,
    wait_until,
)
from tests.factories import ICT, random_id, received, small_registry

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_stored_state")]


KNOWN, NEW = "rp-known", "rp-new"
NEW_EVENTS = 30


def run_cli(runner: ServiceRunner, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `dvc deadletters …` as a real subprocess, configured by environment like an operator's shell."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DVC_")}
    env.update(
        DVC_KAFKA_BOOTSTRAP_SERVERS=runner.kafka_bootstrap,
        DVC_TOPIC_PREFIX=runner.topic_prefix,
        DVC_KAFKA_USERNAME="operator",  # the operators' principal
        DVC_KAFKA_PASSWORD=infra_setting("DVC_KAFKA_OPERATOR_PASSWORD"),
    )
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "deadletters", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def count(admin_db: asyncpg.Connection, sql: str, *args: object) -> int:
    return int(await admin_db.fetchval(sql, *args))


async def send_with_headers(
    runner: ServiceRunner, messages: list[tuple[bytes, bytes, list[tuple[str, bytes | None]]]]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=runner.kafka_bootstrap,
        enable_idempotence=True,
        **kafka_security(runner.kafka_bootstrap),
    )
    await producer.start()
    try:
        topic = runner.topic_prefix + topics.CASE_EVENTS
        futures = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h in messages]
        for future in futures:
            await future
    finally:
        await producer.stop()


async def test_unknown_unit_events_replayed_after_the_unit_is_loaded_count_once(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    await load_registry(database, small_registry(KNOWN))
    ingest = await service_runner.start("ingest")
    await service_runner.start("metrics")
    now = datetime.now(ICT) - timedelta(hours=1)
    due = (now + timedelta(days=5)).isoformat()
    new_events = [received(random_id("hs"), NEW, now.isoformat(), due_at=due) for _ in range(NEW_EVENTS)]
    known_events = [received(random_id("hs"), KNOWN, now.isoformat(), due_at=due) for _ in range(10)]
    trace: list[tuple[str, bytes | None]] = [("trace", b"abc-123")]
    messages = [(NEW.encode(), orjson.dumps(e), trace) for e in new_events]
    messages += [(KNOWN.encode(), orjson.dumps(e), []) for e in known_events]
    messages.append((KNOWN.encode(), b"{not json", []))
    await send_with_headers(service_runner, messages)
    dead_letter_topic = service_runner.topic_prefix + topics.DEAD_LETTERS
    letters = await read_topic(service_runner.kafka_bootstrap, dead_letter_topic, expect=NEW_EVENTS + 1)
    assert len(letters) == NEW_EVENTS + 1

    stats = run_cli(service_runner, "stats")
    assert stats.returncode == 0, stats.stderr
    assert f"unknown_unit\t{NEW_EVENTS}\t" in stats.stdout and "not_json\t1\t" in stats.stdout
    assert f"Tổng / total\t{NEW_EVENTS + 1}" in stats.stdout
    listed = run_cli(service_runner, "list", "--reason", "unknown_unit", "--limit", "5", "--since", "1h")
    assert listed.returncode == 0, listed.stderr
    assert f"5/{NEW_EVENTS} thư lỗi / dead letters" in listed.stdout
    assert f"unit_id {NEW!r} is not in the unit registry" in listed.stdout
    assert "\tdvc.case-events.v1\t" in listed.stdout  # the source, without the topic prefix

    await load_registry(database, small_registry(KNOWN, NEW))
    first = run_cli(service_runner, "replay", "--reason", "unknown_unit")
    assert first.returncode == 0, first.stderr
    assert f"replayed {NEW_EVENTS} thư lỗi / dead letters (dvc.case-events.v1: {NEW_EVENTS})" in first.stdout

    async def all_new_counted() -> bool:
        cells = await count(
            admin_db,
            "SELECT coalesce(sum(denominator), 0) FROM kpi_day_cells WHERE unit_id = $1 AND kpi = 'online_intake_rate'",
            NEW,
        )
        return cells == NEW_EVENTS

    await wait_until(all_new_counted, timeout=60)
    assert await count(admin_db, "SELECT count(*) FROM events WHERE unit_id = $1", NEW) == NEW_EVENTS

    # A second replay finds nothing new: its progress was saved.
    second = run_cli(service_runner, "replay", "--reason", "unknown_unit")
    assert second.returncode == 0, second.stderr
    assert "replayed 0 thư lỗi" in second.stdout

    # Re-sending everything on purpose changes nothing either: ingest deduplicates by event_id.
    before = await admin_db.fetch("SELECT * FROM kpi_day_cells WHERE unit_id = $1 ORDER BY day, kpi", NEW)
    again = await replay(
        kafka_settings(service_runner.kafka_bootstrap, "operator"),
        service_runner.topic_prefix,
        reason="unknown_unit",
        since=None,
        from_start=True,
    )
    assert sum(again.sent.values()) == NEW_EVENTS

    async def duplicates_seen() -> bool:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{ingest.port}/metrics")).text
        seen = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("ingest_duplicate_events_total{")
        )
        return seen >= NEW_EVENTS

    await wait_until(duplicates_seen, timeout=60)
    assert await count(admin_db, "SELECT count(*) FROM events WHERE unit_id = $1", NEW) == NEW_EVENTS
    assert await count(admin_db, "SELECT count(*) FROM cases WHERE unit_id = $1", NEW) == NEW_EVENTS
    await wait_until(lambda: _cells_equal(admin_db, before), timeout=10)
    assert (
        len(
            await read_topic(
                service_runner.kafka_bootstrap, dead_letter_topic, expect=NEW_EVENTS + 2, timeout=3
            )
        )
        == NEW_EVENTS + 1
    )

    # The replayed copies kept their original headers and say where they came from.
    source = await read_topic(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.CASE_EVENTS,
        expect=len(messages) + 2 * NEW_EVENTS,
    )
    replayed = [dict(r.headers) for r in source if "dvc-replayed-at" in dict(r.headers)]
    assert len(replayed) == 2 * NEW_EVENTS
    assert all(h["trace"] == b"abc-123" for h in replayed)
    assert all(h["dvc-replay-of"].decode().startswith(dead_letter_topic + "/") for h in replayed)

    today = now.date()
    differences = await audit(
        database.dsn("metrics"),
        first=today - timedelta(days=2),
        last=today + timedelta(days=7),
    )
    assert differences == []


async def _cells_equal(admin_db: asyncpg.Connection, before: list[asyncpg.Record]) -> bool:
    after = await admin_db.fetch("SELECT * FROM kpi_day_cells WHERE unit_id = $1 ORDER BY day, kpi", NEW)
    strip = [{k: v for k, v in dict(r).items() if k != "updated_at"} for r in after]
    return strip == [{k: v for k, v in dict(r).items() if k != "updated_at"} for r in before]


def letter(source_topic: str) -> DeadLetter:
    return DeadLetter(
        partition=0,
        offset=0,
        dead_lettered_at=datetime.now(UTC),
        key=None,
        value=b"{}",
        reason="unknown_unit",
        message="",
        source_topic=source_topic,
        source_timestamp=None,
        original_headers=(),
        replayed_at=None,
    )


@pytest.mark.parametrize(
    ("source", "prefix", "expected"),
    [
        ("t1.dvc.case-events.v1", "t1.", "t1.dvc.case-events.v1"),
        ("t1.dvc.document-events.v1", "t1.", "t1.dvc.document-events.v1"),
        ("dvc.case-events.v1", "", "dvc.case-events.v1"),
        ("t2.dvc.case-events.v1", "t1.", None),  # another environment's topic
        ("t1.dvc.changes.v1", "t1.", None),  # not an input topic
        ("", "", None),  # no source header
    ],
)
def test_replay_goes_only_to_an_input_topic_of_this_prefix(
    source: str, prefix: str, expected: str | None
) -> None:
    assert replay_target(letter(source), prefix) == expected


def test_since_accepts_local_times_and_durations() -> None:
    now = datetime(2026, 3, 4, 5, 0, tzinfo=UTC)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-03-04T09:00", now) == datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
    assert parse_since("2026-03-04T09:00+00:00", now) == datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
    assert parse_since(None) is None
