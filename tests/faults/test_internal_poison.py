"""A poison message on an internal topic is isolated on dvc.internal-dead-letters.v1 with its reason, and
every other message of its batch is processed (issue 10, item 3)."""

import time
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import ConsumerRecord

from shared import topics
from shared.events import CellsChanged, UnitKpisComputed
from shared.kpis import KPI_BY_ID, LOCAL_TZ
from tests.conftest import MigratedDatabase, ServiceRunner, load_registry, read_topic, wait_until
from tests.factories import small_registry
from tests.faults.kafka import BINARY, ODD_HEADERS, produce_with_headers

pytestmark = pytest.mark.integration

ALERTS_ENV = {
    "DVC_ALERTS_SIGNING_KEY": "test-signing-key-0123456789abcdef",
    "DVC_WEBHOOK_SECRET": "test-webhook-secret-0123456789abcdef",
    "DVC_SMTP_PORT": "9",  # nothing is sent here: every update is insufficient_data or isolated
    "DVC_ALERTS_EVALUATION_SECONDS": "600",
}
NOT_JSON = b"\xff not json at all"


def headers_of(record: ConsumerRecord) -> dict[str, bytes | None]:
    return dict(record.headers)


async def test_a_poison_change_is_isolated_and_the_rest_of_its_batch_is_recomputed(
    database: MigratedDatabase, service_runner: ServiceRunner
) -> None:
    units = ["pc1", "pc2", "pc3", "pc4"]
    await load_registry(database, small_registry(*units))
    today = datetime.now(LOCAL_TZ).date()

    def change(unit_id: str) -> bytes:
        return CellsChanged(cells={unit_id: [today]}, changed_at=time.time()).model_dump_json().encode()

    batch = [
        change("pc1"),
        change("pc2"),
        NOT_JSON,
        b'{"cells": "not a mapping"}',
        change("pc3"),
        change("pc4"),
    ]
    # One key, one partition, all in the topic before metrics starts: one batch.
    await produce_with_headers(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.CHANGES,
        [(b"cells-0", value, ODD_HEADERS[3]) for value in batch],
    )
    await service_runner.start("metrics")

    letters = await read_topic(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.INTERNAL_DEAD_LETTERS, expect=2
    )
    assert sorted(letter.value for letter in letters) == sorted([NOT_JSON, batch[3]])
    for letter in letters:
        assert headers_of(letter)["dvc-reason"] == b"invalid_message"
        assert (
            headers_of(letter)["dvc-source-topic"] == (service_runner.topic_prefix + topics.CHANGES).encode()
        )
        assert headers_of(letter)["dvc-message"]
        assert list(letter.headers[: len(ODD_HEADERS[3])]) == ODD_HEADERS[3]
    # Every valid change of the batch was recomputed and published (a month and a year per unit).
    updates = await read_topic(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.KPI_UPDATES,
        expect=2 * len(units),
    )
    published = {UnitKpisComputed.model_validate_json(u.value).unit_id for u in updates}
    assert published == set(units)


async def test_poison_kpi_updates_are_isolated_and_the_rest_of_their_batch_is_evaluated(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    units = ["pa1", "pa2", "pa3", "pa4"]
    await load_registry(database, small_registry(*units))
    period = f"month:{datetime.now(LOCAL_TZ):%Y-%m}"
    now = datetime.now(UTC).timestamp()

    def update(unit_id: str, **counts: tuple[int, int]) -> bytes:
        full = dict.fromkeys(KPI_BY_ID, (0, 0)) | counts
        return (
            UnitKpisComputed(unit_id=unit_id, period=period, counts=full, computed_at=now)
            .model_dump_json()
            .encode()
        )

    # Valid JSON of the model, but no bigint holds it: storing its evaluation fails, for it alone.
    overflowing = update("pa3", overdue_open=(10**19, 0))
    batch = [update("pa1"), NOT_JSON, update("pa2"), overflowing, update("pa4")]
    await produce_with_headers(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.KPI_UPDATES,
        [(b"same-partition", value, [("trace", BINARY)]) for value in batch],
    )
    await service_runner.start("alerts", **ALERTS_ENV)

    letters = await read_topic(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.INTERNAL_DEAD_LETTERS, expect=2
    )
    reasons = {letter.value: headers_of(letter)["dvc-reason"] for letter in letters}
    assert reasons == {NOT_JSON: b"invalid_message", overflowing: b"processing_error"}

    async def evaluated() -> set[str]:
        rows = await admin_db.fetch(
            "SELECT DISTINCT unit_id FROM alert_states WHERE period = $1 AND unit_id = ANY($2::text[])",
            period,
            units,
        )
        return {row["unit_id"] for row in rows}

    async def others_evaluated() -> bool:
        return await evaluated() == {"pa1", "pa2", "pa4"}

    await wait_until(others_evaluated, timeout=30)
