"""Kafka headers never matter: binary, empty and null values are stored like any other event, and a
rejected message keeps its original headers byte for byte on the dead-letter copy (issue 10, item 1)."""

import asyncpg
import pytest

from shared import topics
from tests.conftest import MigratedDatabase, ServiceRunner, load_registry, read_topic, wait_until
from tests.factories import at, encode, random_id, received, small_registry
from tests.faults.kafka import BINARY, ODD_HEADERS, produce_with_headers

pytestmark = pytest.mark.integration

TOTAL = 3_500


async def stored(admin_db: asyncpg.Connection, prefix: str) -> int:
    return int(await admin_db.fetchval("SELECT count(*) FROM events WHERE subject_id LIKE $1", prefix + "%"))


async def test_3500_events_with_binary_empty_and_null_header_values_are_all_stored(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    units = [f"hd{i}" for i in range(8)]
    await load_registry(database, small_registry(*units))
    prefix = random_id("hdr")
    messages = []
    for i in range(TOTAL):
        event = received(f"{prefix}-{i}", units[i % len(units)], at("2021-05-03 08:00"), due_at=None)
        key, value = encode(event)
        headers = ODD_HEADERS[i % len(ODD_HEADERS)] if i % 5 == 0 else [("content-type", b"application/json")]
        messages.append((key, value, headers))
    # All in the topic before ingest starts: its first batches are full and mix odd and plain headers.
    await produce_with_headers(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.CASE_EVENTS, messages
    )
    await service_runner.start("ingest")

    async def all_stored() -> bool:
        return await stored(admin_db, prefix) >= TOTAL

    await wait_until(all_stored, timeout=90)
    letters = await read_topic(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.DEAD_LETTERS, expect=1, timeout=5
    )
    assert await stored(admin_db, prefix) == TOTAL
    assert letters == []


async def test_a_rejected_message_keeps_its_original_headers_byte_for_byte(
    database: MigratedDatabase, service_runner: ServiceRunner
) -> None:
    await load_registry(database, small_registry("hd-known"))
    original = [
        ("trace", BINARY),
        ("x-empty", b""),
        ("x-null", None),
        ("trace", b"\x00second"),
        ("content-type", b"application/json"),
    ]
    event = received(random_id("hs"), "hd-unknown", at("2021-05-03 08:00"), due_at=None)
    key, value = encode(event)
    await service_runner.start("ingest")
    await produce_with_headers(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.CASE_EVENTS,
        [(key, value, original)],
    )
    letters = await read_topic(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.DEAD_LETTERS, expect=1
    )
    assert len(letters) == 1
    letter = letters[0]
    assert (letter.key, letter.value) == (key, value)
    assert list(letter.headers[: len(original)]) == original
    added = dict(letter.headers[len(original) :])
    assert added["dvc-reason"] == b"unknown_unit"
    assert added["dvc-source-topic"] == (service_runner.topic_prefix + topics.CASE_EVENTS).encode()
