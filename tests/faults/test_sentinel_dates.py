"""Sentinel dates (contract v1.1): rejected at the door, and harmless to metrics if one got stored before.

Real Kafka, PostgreSQL, ingest and metrics. Before the fix, one `0001-01-01` event made metrics log
`ValueError: invalid period 'year:1'` and retry its batch forever, so the units behind it got no
KPI updates.
"""

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from cli.deadletters import partitions_of
from shared import topics
from shared.events import cells_key
from tests.conftest import (
    MigratedDatabase,
    ServiceRunner,
    kafka_security,
    kafka_settings,
    load_registry,
    produce,
    read_topic,
    wait_until,
)
from tests.factories import ICT, case_event, document_sent, encode, random_id, received, small_registry

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_stored_state")]


ERROR_LINE = re.compile(r"\bERROR\b|\bCRITICAL\b|Traceback")


def local_now(minus_hours: float = 1.0) -> datetime:
    return datetime.now(ICT) - timedelta(hours=minus_hours)


def error_lines(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if ERROR_LINE.search(line)]


async def read_updates(
    bootstrap: str, topic: str, done: Callable[[list[dict[str, object]]], bool], timeout: float = 60.0
) -> list[dict[str, object]]:
    """Read kpi-updates from the start until `done` holds (or time runs out)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kafka_security(bootstrap),
    )
    await consumer.start()
    updates: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + timeout
        while not done(updates) and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                updates.extend(orjson.loads(record.value) for record in batch)
    finally:
        await consumer.stop()
    return updates


def units_with_month(updates: list[dict[str, object]], month: str) -> set[str]:
    return {str(u["unit_id"]) for u in updates if u["period"] == f"month:{month}"}


async def committed_to_end(runner: ServiceRunner, topic: str) -> bool:
    """Tell whether metrics' group has committed every partition of `topic` up to its end."""
    partitions = await partitions_of(kafka_settings(runner.kafka_bootstrap), topic)
    assert partitions, f"{topic} has no partitions"
    admin = AIOKafkaAdminClient(
        bootstrap_servers=runner.kafka_bootstrap, **kafka_security(runner.kafka_bootstrap)
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=runner.kafka_bootstrap, **kafka_security(runner.kafka_bootstrap)
    )
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(runner.topic_prefix + "dvc-metrics")
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
        await admin.close()
    return all(tp in committed and committed[tp].offset >= ends[tp] for tp in partitions)


async def test_sentinel_dates_are_dead_lettered_and_metrics_keeps_publishing_for_every_unit(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    units = [f"sd{i}" for i in range(8)]
    await load_registry(database, small_registry(*units))
    await service_runner.start("ingest")
    metrics = await service_runner.start("metrics")
    now = local_now()
    good = [
        received(random_id("hs"), unit, now.isoformat(), due_at=(now + timedelta(days=5)).isoformat())
        for unit in units
        for _ in range(5)
    ]
    sentinel_case = random_id("hs")
    sentinels = [
        ("due_at", received(random_id("hs"), units[0], now.isoformat(), due_at="9999-12-31T00:00:00+07:00")),
        (
            "occurred_at",
            received(random_id("hs"), units[1], "0001-01-01T00:00:00Z", due_at="0001-01-01T00:00:00Z"),
        ),
        ("due_at", received(random_id("hs"), units[2], now.isoformat(), due_at="0001-01-01T00:00:00Z")),
        (
            "due_at",
            case_event(
                "supplement_received",
                sentinel_case,
                units[3],
                now.isoformat(),
                due_at="9999-12-31T00:00:00+07:00",
            ),
        ),
        (
            "due_at",
            case_event(
                "apology_issued", sentinel_case, units[4], now.isoformat(), due_at="2100-01-01T00:00:00+07:00"
            ),
        ),
        ("occurred_at", received(random_id("hs"), units[5], "1999-12-31T23:59:59+07:00", due_at=None)),
    ]
    document = document_sent(random_id("vb"), units[6], "9999-12-31T00:00:00+07:00")
    mixed = good[:20] + [event for _, event in sentinels] + good[20:]
    await produce(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.CASE_EVENTS,
        [encode(e) for e in mixed],
    )
    await produce(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.DOCUMENT_EVENTS,
        [encode(document)],
    )

    letters = await read_topic(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.DEAD_LETTERS,
        expect=len(sentinels) + 1,
    )
    by_value = {record.value: dict(record.headers) for record in letters}
    assert len(letters) == len(sentinels) + 1
    for field, event in [*sentinels, ("occurred_at", document)]:
        headers = by_value[orjson.dumps(event)]
        assert headers["dvc-reason"] == b"bad_timestamp"
        message = headers["dvc-message"].decode()
        assert message.startswith(f"{field}: ") and "2000..2099" in message, message

    month = f"{now:%Y-%m}"
    updates = await read_updates(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.KPI_UPDATES,
        lambda got: units_with_month(got, month) >= set(units),
    )
    assert units_with_month(updates, month) >= set(units)
    stored = await admin_db.fetchval("SELECT count(*) FROM events WHERE unit_id = ANY($1::text[])", units)
    assert stored == len(good)
    assert await admin_db.fetchval("SELECT count(*) FROM cases WHERE case_id = $1", sentinel_case) == 0
    await wait_until(lambda: committed_to_end(service_runner, service_runner.topic_prefix + topics.CHANGES))
    assert len(error_lines(metrics.log_path)) < 5, error_lines(metrics.log_path)


async def metric_value(port: int, name: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


async def test_metrics_survives_sentinel_dates_stored_before_the_fix(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    """Rows with year-1 and year-9999 dates, inserted behind ingest's back, and changes naming those days."""
    unit, neighbour = "sd-old", "sd-next"
    await load_registry(database, small_registry(unit, neighbour))
    prefix = random_id("old")
    await admin_db.execute(
        """
        INSERT INTO cases (case_id, unit_id, received_at, procedure_code, channel, service_level, deadline,
                           clock_since, closed_at, close_type, outcome, timeliness, rating, rated_at,
                           overdue_at, history)
        VALUES
          ($1 || '-y1', $2, '0001-01-02 00:00Z', '1.001', 'online', 4, '0001-01-03 00:00Z', '0001-01-02 00:00Z',
           '0001-01-02 12:00Z', 'resolved', 'approved', 'on_time', 'satisfied', '0001-01-02 13:00Z',
           ARRAY['0001-01-02 00:30Z']::timestamptz[], '[]'),
          ($1 || '-y9999', $2, '9999-12-30 10:00+07', '1.001', 'online', 4, '9999-12-31 00:00+07',
           '9999-12-30 10:00+07', NULL, NULL, NULL, NULL, NULL, NULL, '{}', '[]'),
          -- crosses its deadline in a moment, running since a local day of year 10000 (beyond Python's dates)
          ($1 || '-y10000', $2, '9999-12-31 20:00Z', '1.001', 'online', 4, now() + interval '2 seconds',
           '9999-12-31 20:00Z', NULL, NULL, NULL, NULL, NULL, NULL, '{}', '[]')
        """,
        prefix,
        unit,
    )
    await service_runner.start("ingest")
    metrics = await service_runner.start("metrics")
    today = local_now(0).date()
    changes_topic = service_runner.topic_prefix + topics.CHANGES
    # asyncpg sends date.min and date.max as -infinity and infinity: both ends and their neighbours
    weird_days = ["0001-01-01", "0001-01-02", "9999-12-30", "9999-12-31"]
    for _ in range(3):  # three batches with the same days: one warning, no loop
        change = {
            "cells": {unit: [*weird_days, today.isoformat()], neighbour: [today.isoformat()]},
            "changed_at": time.time(),
        }
        await produce(
            service_runner.kafka_bootstrap, changes_topic, [(cells_key(unit), orjson.dumps(change))]
        )
    # and a real event for the unit through ingest, after them
    event = received(random_id("hs"), unit, local_now().isoformat(), due_at=None)
    await produce(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.CASE_EVENTS, [encode(event)]
    )

    month = f"{today:%Y-%m}"

    def counted(got: list[dict[str, object]]) -> bool:
        """The event sent after the sentinel changes (same partition of changes) is in the unit's counts."""
        return any(
            u["unit_id"] == unit
            and u["period"] == f"month:{month}"
            and u["counts"]["online_intake_rate"] == [1, 1]  # type: ignore[index]
            for u in got
        )

    updates = await read_updates(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.KPI_UPDATES, counted
    )
    assert counted(updates)
    mine = [u for u in updates if u["unit_id"] == unit]
    assert {u["period"] for u in mine} <= {f"month:{month}", f"year:{today.year}"}
    assert neighbour in {u["unit_id"] for u in updates}
    await wait_until(lambda: committed_to_end(service_runner, changes_topic))

    # the year-1 cells were recomputed by the same SQL without failing, and no period was derived
    cells = await admin_db.fetch(
        "SELECT day::text, kpi, numerator, denominator FROM kpi_day_cells WHERE unit_id = $1"
        " AND (day < '2000-01-01' OR day > '2099-12-31')",
        unit,
    )
    found = {(row["day"], row["kpi"]): (row["numerator"], row["denominator"]) for row in cells}
    assert found[("0001-01-02", "on_time_rate")] == (1, 1)
    assert found[("0001-01-02", "satisfaction_rate")] == (1, 1)
    assert found[("9999-12-30", "online_intake_rate")] == (1, 1)
    assert await metric_value(metrics.port, "metrics_unsupported_days_total") >= 3 * len(weird_days)

    # the deadline sweep crosses the year-10000 case's deadline without failing
    sweeps = await metric_value(metrics.port, "metrics_sweeps_total")

    async def swept_twice() -> bool:
        return await metric_value(metrics.port, "metrics_sweeps_total") >= sweeps + 2

    await wait_until(swept_twice, timeout=45, interval=1.0)
    log = metrics.log_path.read_text(errors="replace")
    assert "deadline sweep failed" not in log
    assert log.count("outside the supported years") == 1, log
    assert len(error_lines(metrics.log_path)) < 5, error_lines(metrics.log_path)
