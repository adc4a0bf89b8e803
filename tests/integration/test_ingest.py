"""Ingest against the real broker and database: storage, idempotency, dead letters, crashes."""

import signal
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from shared import topics
from shared.kafka_auth import aiokafka_security
from tests.conftest import (
    MigratedDatabase,
    ServiceRunner,
    kafka_settings,
    load_registry,
    produce,
    read_topic,
    wait_until,
)
from tests.factories import at, case_event, document_sent, encode, random_id, received, small_registry

pytestmark = pytest.mark.integration


async def count(admin_db: asyncpg.Connection, sql: str, *args: Any) -> int:
    return int(await admin_db.fetchval(sql, *args))


async def send(runner: ServiceRunner, topic: str, events: list[dict[str, Any]]) -> None:
    await produce(runner.kafka_bootstrap, runner.topic_prefix + topic, [encode(e) for e in events])


def every_case_event_type(unit: str) -> tuple[str, list[dict[str, Any]]]:
    case_id = random_id("hs")
    return case_id, [
        received(case_id, unit, at("2021-03-01 08:00"), due_at=at("2021-03-05 17:00"), synced=False),
        case_event("supplement_requested", case_id, unit, at("2021-03-02 09:00"), reason="thiếu giấy tờ"),
        case_event(
            "supplement_received", case_id, unit, at("2021-03-03 09:00"), due_at=at("2021-03-08 17:00")
        ),
        case_event("apology_issued", case_id, unit, at("2021-03-09 09:00"), due_at=at("2021-03-10 17:00")),
        case_event("resolved", case_id, unit, at("2021-03-09 10:00"), outcome="approved"),
        case_event("returned", case_id, unit, at("2021-03-09 15:00")),
        case_event("rated", case_id, unit, at("2021-03-10 08:00"), rating="satisfied"),
        case_event("synced", case_id, unit, at("2021-03-10 09:00")),
    ]


async def test_every_event_type_is_stored_with_every_field_and_reconciled(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    await load_registry(database, small_registry("c1"))
    await admin_db.execute(
        "TRUNCATE events, event_ids, cases, documents, reports, inspections"
    )  # _stored counts every event
    case_id, events = every_case_event_type("c1")
    refused_id, withdrawn_id = random_id("hs"), random_id("hs")
    events += [
        received(refused_id, "c1", at("2021-03-01 08:00"), due_at=None, channel="in_person", service_level=2),
        case_event("refused", refused_id, "c1", at("2021-03-01 09:00"), reason="không đủ điều kiện"),
        received(
            withdrawn_id,
            "c1",
            at("2021-03-01 08:00"),
            due_at=at("2021-03-02 08:00"),
            channel="postal",
            service_level=3,
        ),
        case_event("withdrawn", withdrawn_id, "c1", at("2021-03-01 10:00")),
    ]
    document = document_sent(
        random_id("vb"), "c1", at("2021-03-04 10:00"), medium="both", secrecy="confidential"
    )
    await service_runner.start("ingest")
    # Out of order: everything but the `received` first, then the `received`.
    await send(service_runner, topics.CASE_EVENTS, events[1:])
    await send(service_runner, topics.DOCUMENT_EVENTS, [document])
    await wait_until(lambda: _stored(admin_db, [e["event_id"] for e in [*events[1:], document]]))
    pending = await admin_db.fetchrow("SELECT * FROM cases WHERE case_id = $1", case_id)
    assert pending["unit_id"] is None and pending["received_at"] is None
    await send(service_runner, topics.CASE_EVENTS, events[:1])
    await wait_until(lambda: _stored(admin_db, [e["event_id"] for e in [*events, document]]))

    for event in [*events, document]:
        payload = await admin_db.fetchval("SELECT payload FROM events WHERE event_id = $1", event["event_id"])
        assert payload == event
    case = await admin_db.fetchrow("SELECT * FROM cases WHERE case_id = $1", case_id)
    assert case["unit_id"] == "c1" and case["channel"] == "online" and case["service_level"] == 4
    assert case["deadline"].isoformat() == "2021-03-08T10:00:00+00:00"
    assert case["close_type"] == "resolved" and case["timeliness"] == "late" and case["outcome"] == "approved"
    assert (
        list(case["overdue_at"]) != [] and case["apology_at"] is not None and case["returned_at"] is not None
    )
    assert case["rating"] == "satisfied" and case["synced"] is True and case["paused_since"] is None
    refused = await admin_db.fetchrow(
        "SELECT close_type, deadline, timeliness FROM cases WHERE case_id = $1", refused_id
    )
    assert tuple(refused) == ("refused", None, None)
    doc = await admin_db.fetchrow("SELECT * FROM documents WHERE document_id = $1", document["document_id"])
    assert (doc["medium"], doc["secrecy"], doc["digitally_signed"]) == ("both", "confidential", True)


async def _stored(admin_db: asyncpg.Connection, event_ids: list[str]) -> bool:
    # Count only these events: earlier tests of the session may have left rows behind.
    stored = await count(admin_db, "SELECT count(*) FROM events WHERE event_id = ANY($1::text[])", event_ids)
    return stored == len(event_ids)


async def snapshot(admin_db: asyncpg.Connection) -> tuple[Any, ...]:
    events = await admin_db.fetch("SELECT event_id, payload FROM events ORDER BY event_id")
    cases = await admin_db.fetch(
        "SELECT case_id, unit_id, deadline, close_type, timeliness, overdue_at, rating, synced, history FROM cases ORDER BY case_id"
    )
    documents = await admin_db.fetch("SELECT * FROM documents ORDER BY document_id")
    return [tuple(r) for r in events], [tuple(r) for r in cases], [tuple(r) for r in documents]


async def test_resent_and_replayed_events_change_nothing(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    await load_registry(database, small_registry("c2"))
    await admin_db.execute("TRUNCATE events, event_ids, cases, documents, reports, inspections")
    _, events = every_case_event_type("c2")
    documents = [document_sent(random_id("vb"), "c2", at("2021-03-04 10:00"))]
    ingest = await service_runner.start("ingest")
    await send(service_runner, topics.CASE_EVENTS, events)
    await send(service_runner, topics.DOCUMENT_EVENTS, documents)
    await wait_until(lambda: _stored(admin_db, [e["event_id"] for e in [*events, *documents]]))
    before = await snapshot(admin_db)
    for _ in range(3):
        await send(service_runner, topics.CASE_EVENTS, events)
        await send(service_runner, topics.DOCUMENT_EVENTS, documents)
    await wait_until(lambda: _duplicates_seen(ingest.port, 3 * (len(events) + 1)))
    assert await snapshot(admin_db) == before

    assert ingest.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after shutdown
    assert "shut down gracefully" in ingest.log_tail()
    await rewind_group(service_runner, service_runner.topic_prefix + "dvc-ingest")
    ingest = await service_runner.start("ingest")
    await wait_until(lambda: _duplicates_seen(ingest.port, 4 * (len(events) + 1)))
    assert await snapshot(admin_db) == before


async def _duplicates_seen(port: int, expected: int) -> bool:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ingest_duplicate_events_total{")
    )
    return total >= expected


async def rewind_group(runner: ServiceRunner, group_id: str) -> None:
    """Commit offset 0 on every partition of the test topics for the group: a full replay."""
    consumer = AIOKafkaConsumer(
        runner.topic_prefix + topics.CASE_EVENTS,
        runner.topic_prefix + topics.DOCUMENT_EVENTS,
        bootstrap_servers=runner.kafka_bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        **aiokafka_security(kafka_settings(runner.kafka_bootstrap)),
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        await consumer.commit(dict.fromkeys(consumer.assignment(), 0))
    finally:
        await consumer.stop()


BAD_CASE_INPUTS: list[tuple[str, bytes]] = [
    ("not_json", b"{not json"),
    ("not_json", b'{"x": NaN}'),
    ("not_object", b"[1, 2]"),
    ("not_object", orjson.dumps(orjson.dumps({"event_type": "received"}).decode())),
    ("unknown_event_type", orjson.dumps({"event_type": "teleported"})),
]


def bad_variants(unit: str) -> list[tuple[str, dict[str, Any]]]:
    base = received(random_id("hs"), unit, at("2021-03-01 08:00"), due_at=at("2021-03-05 08:00"))

    def variant(**changes: Any) -> dict[str, Any]:
        event = {**base, "event_id": random_id("ev"), **changes}
        return {key: value for key, value in event.items() if value != "<absent>"}

    return [
        ("missing_field", variant(case_id="<absent>")),
        ("null_field", variant(procedure_code=None)),
        ("wrong_type", variant(service_level="3")),
        ("wrong_type", variant(service_level=True)),
        ("bad_timestamp", variant(occurred_at="04/03/2021 09:15")),
        ("naive_timestamp", variant(occurred_at="2021-03-04T09:15:00")),
        ("bad_enum", variant(channel="fax")),
        ("bad_enum", variant(service_level=7)),
        ("bad_length", variant(case_id="x" * 129)),
        ("unknown_unit", variant(unit_id="no-such-unit")),
    ]


async def test_each_bad_input_is_dead_lettered_and_the_next_good_message_is_stored(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    unit = "c3"
    await load_registry(database, small_registry(unit))
    key = unit.encode()  # same key: same partition as the good message after them
    bad = [(reason, raw) for reason, raw in BAD_CASE_INPUTS]
    bad += [(reason, orjson.dumps(event)) for reason, event in bad_variants(unit)]
    good = received(random_id("hs"), unit, at("2021-03-01 08:00"), due_at=None)
    await service_runner.start("ingest")
    await produce(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.CASE_EVENTS,
        [(key, raw) for _, raw in bad] + [encode(good)],
    )
    letters = await read_topic(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.DEAD_LETTERS, expect=len(bad)
    )
    assert len(letters) == len(bad)
    by_value = {record.value: dict(record.headers) for record in letters}
    for reason, raw in bad:
        headers = by_value[raw]
        assert headers["dvc-reason"].decode() == reason, (raw, headers)
        assert headers["dvc-source-topic"].decode() == service_runner.topic_prefix + topics.CASE_EVENTS
        assert headers["dvc-message"]
    assert {record.key for record in letters} == {key}
    await wait_until(lambda: _has_event(admin_db, good["event_id"]))
    assert await count(admin_db, "SELECT count(*) FROM events WHERE unit_id = $1", unit) == 1


async def _has_event(admin_db: asyncpg.Connection, event_id: str) -> bool:
    return await count(admin_db, "SELECT count(*) FROM events WHERE event_id = $1", event_id) == 1


async def test_an_event_that_crashes_storage_is_dead_lettered_not_looped(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    unit = "c4"
    await load_registry(database, small_registry(unit))
    poison = received(
        random_id("hs"), unit, at("2021-03-01 08:00"), due_at=None, procedure_code="NUL\u0000byte"
    )
    neighbours = [received(random_id("hs"), unit, at("2021-03-01 08:00"), due_at=None) for _ in range(5)]
    await service_runner.start("ingest")
    await send(service_runner, topics.CASE_EVENTS, [*neighbours[:2], poison, *neighbours[2:]])
    letters = await read_topic(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.DEAD_LETTERS, expect=1
    )
    assert [dict(r.headers)["dvc-reason"] for r in letters] == [b"handler_error"]
    await wait_until(lambda: _has_event(admin_db, neighbours[-1]["event_id"]))
    for event in neighbours:
        assert await _has_event(admin_db, event["event_id"])


async def test_sigkill_mid_batch_then_restart_stores_every_event_exactly_once(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    units = [f"k{i}" for i in range(8)]
    await load_registry(database, small_registry(*units))
    total = 40_000
    events = [
        received(f"kill-{i}", units[i % len(units)], at("2021-04-01 08:00"), due_at=at("2021-04-10 17:00"))
        for i in range(total)
    ]
    await send(service_runner, topics.CASE_EVENTS, events)
    ingest = await service_runner.start("ingest")

    async def partly_stored() -> bool:
        return await count(admin_db, "SELECT count(*) FROM events WHERE subject_id LIKE 'kill-%'") >= 2_000

    await wait_until(partly_stored, timeout=60, interval=0.05)
    ingest.stop(signal.SIGKILL)
    stored_at_kill = await count(admin_db, "SELECT count(*) FROM events WHERE subject_id LIKE 'kill-%'")
    assert stored_at_kill < total, "the kill came too late to test anything"
    await service_runner.start("ingest")

    async def all_stored() -> bool:
        return await count(admin_db, "SELECT count(*) FROM events WHERE subject_id LIKE 'kill-%'") >= total

    await wait_until(all_stored, timeout=120)
    await wait_until(lambda: _quiet(admin_db), timeout=30)
    assert await count(admin_db, "SELECT count(*) FROM events WHERE subject_id LIKE 'kill-%'") == total
    assert (
        await count(admin_db, "SELECT count(DISTINCT event_id) FROM events WHERE subject_id LIKE 'kill-%'")
        == total
    )
    assert (
        await count(
            admin_db,
            "SELECT count(*) FROM cases WHERE case_id LIKE 'kill-%' AND jsonb_array_length(history) = 1",
        )
        == total
    )
    sample = await admin_db.fetchval("SELECT payload FROM events WHERE subject_id = 'kill-12345'")
    assert sample == events[12345]


async def _quiet(admin_db: asyncpg.Connection) -> bool:
    return (
        await count(admin_db, "SELECT count(*) FROM events WHERE stored_at > now() - interval '2 seconds'")
        == 0
    )


async def test_a_registry_change_takes_effect_without_a_restart(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    await load_registry(database, small_registry("r1"))
    await service_runner.start("ingest")
    early = received(random_id("hs"), "r2", at("2021-03-01 08:00"), due_at=None)
    await send(service_runner, topics.CASE_EVENTS, [early])
    letters = await read_topic(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.DEAD_LETTERS, expect=1
    )
    assert [dict(r.headers)["dvc-reason"] for r in letters] == [b"unknown_unit"]
    await load_registry(database, small_registry("r1", "r2"))
    late = received(random_id("hs"), "r2", at("2021-03-01 08:00"), due_at=None)
    await send(service_runner, topics.CASE_EVENTS, [late])
    await wait_until(lambda: _has_event(admin_db, late["event_id"]))
    assert not await _has_event(admin_db, early["event_id"])
