"""60 s of database outage during a stream of events: nothing dead-lettered, nothing lost, every service
ready again soon after the database returns, and a few log lines per service (issue 10, items 4 and 5).

The services run as real subprocesses against a private PostgreSQL cluster that the test stops and
starts (the shared one stays up for every other test).
"""

import asyncio
import secrets
import signal
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from cli.db import SERVICE_ROLES, migrate
from services.metrics.audit import audit
from shared import topics
from shared.config import MigrationSettings
from tests.conftest import (
    MigratedDatabase,
    ServiceProcess,
    ServiceRunner,
    infra_setting,
    kafka_security,
    load_registry,
    read_topic,
    wait_until,
)
from tests.factories import ICT, encode, received, small_registry
from tests.faults.private_postgres import PrivatePostgres
from tests.faults.test_internal_poison import ALERTS_ENV

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 60.0
READY_WITHIN_SECONDS = 30.0
MAX_LOG_LINES = 50
EVENTS_PER_TICK, TICK_SECONDS = 10, 0.25  # 40 events/s
UNITS = [f"db{i}" for i in range(6)]
SERVICES = ("ingest", "metrics", "alerts")
# A log record starts with its level (logging.basicConfig) or a date (FastStream's own format).


@pytest.fixture
async def private_database() -> AsyncIterator[tuple[PrivatePostgres, MigratedDatabase]]:
    cluster = PrivatePostgres.create()
    try:
        cluster.start()
        connection = await asyncpg.connect(cluster.dsn())
        await connection.execute("CREATE DATABASE dvc")
        await connection.close()
        database = MigratedDatabase("dvc", cluster.dsn("dvc"))
        passwords = {field: infra_setting(f"DVC_{field}") for field in SERVICE_ROLES.values()}
        await migrate(MigrationSettings(DATABASE_URL=database.admin_dsn, **passwords))  # type: ignore[arg-type]
        yield cluster, database
    finally:
        cluster.remove()


class Stream:
    """Sends `received` events at a steady rate until stopped; counts what the broker acknowledged."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.prefix = f"out-{secrets.token_hex(4)}"
        self.sent = 0
        self.running = True

    async def run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            enable_idempotence=True,
            linger_ms=20,
            **kafka_security(self.bootstrap),
        )
        await producer.start()
        try:
            while self.running:
                now = datetime.now(ICT)
                futures = []
                for _ in range(EVENTS_PER_TICK):
                    event = received(
                        f"{self.prefix}-{self.sent + len(futures)}",
                        UNITS[(self.sent + len(futures)) % len(UNITS)],
                        now.isoformat(),
                        due_at=(now + timedelta(days=10)).isoformat(),
                    )
                    key, value = encode(event)
                    futures.append(await producer.send(self.topic, value=value, key=key))
                await asyncio.gather(*futures)
                self.sent += len(futures)
                await asyncio.sleep(TICK_SECONDS)
        finally:
            await producer.stop()


def log_lines(process: ServiceProcess) -> list[str]:
    return process.log_path.read_text(errors="replace").splitlines()


async def is_ready(client: httpx.AsyncClient, process: ServiceProcess) -> bool:
    try:
        return (await client.get(f"http://127.0.0.1:{process.port}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def seconds_until_ready(process: ServiceProcess, since: float, timeout: float) -> float:
    async with httpx.AsyncClient(timeout=3) as client:
        while time.monotonic() - since < timeout:
            if await is_ready(client, process):
                return time.monotonic() - since
            await asyncio.sleep(0.5)
    raise AssertionError(
        f"{process.service} not ready {timeout}s after the database returned\n{process.log_tail()}"
    )


async def count_stored(database: MigratedDatabase, prefix: str) -> int:
    connection = await asyncpg.connect(database.admin_dsn)
    try:
        return int(
            await connection.fetchval("SELECT count(*) FROM events WHERE subject_id LIKE $1", prefix + "%")
        )
    finally:
        await connection.close()


async def test_a_60s_database_outage_loses_nothing_and_every_service_recovers_quietly(
    private_database: tuple[PrivatePostgres, MigratedDatabase],
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    cluster, database = private_database
    await load_registry(database, small_registry(*UNITS))
    runner = ServiceRunner(database, kafka_bootstrap, topic_prefix, tmp_path)
    try:
        services = {
            name: await runner.start(name, **(ALERTS_ENV if name == "alerts" else {})) for name in SERVICES
        }
        stream = Stream(kafka_bootstrap, topic_prefix + topics.CASE_EVENTS)
        streaming = asyncio.create_task(stream.run())

        async def flowing() -> bool:
            return await count_stored(database, stream.prefix) >= 200

        await wait_until(flowing, timeout=30)

        before = {name: len(log_lines(process)) for name, process in services.items()}
        cluster.stop()
        stopped_at = time.monotonic()
        not_ready: dict[str, list[bool]] = {name: [] for name in SERVICES}
        async with httpx.AsyncClient(timeout=3) as client:
            for check_at in (20.0, OUTAGE_SECONDS - 5):
                await asyncio.sleep(check_at - (time.monotonic() - stopped_at))
                for name, process in services.items():
                    not_ready[name].append(not await is_ready(client, process))
        await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - stopped_at))
        during = {name: log_lines(process)[before[name] :] for name, process in services.items()}
        cluster.start()
        started_at = time.monotonic()
        outage = started_at - stopped_at

        ready_after = dict(
            zip(
                SERVICES,
                await asyncio.gather(
                    *(
                        seconds_until_ready(services[name], started_at, READY_WITHIN_SECONDS)
                        for name in SERVICES
                    )
                ),
                strict=True,
            )
        )
        await asyncio.sleep(2)
        stream.running = False
        await streaming

        async def all_stored() -> bool:
            return await count_stored(database, stream.prefix) >= stream.sent

        await wait_until(all_stored, timeout=60)
        stored = await count_stored(database, stream.prefix)
        dead = await read_topic(kafka_bootstrap, topic_prefix + topics.DEAD_LETTERS, expect=1, timeout=3)
        internal = await read_topic(
            kafka_bootstrap, topic_prefix + topics.INTERNAL_DEAD_LETTERS, expect=1, timeout=3
        )
        today = datetime.now(ICT).date()
        differences: list[str] = []

        async def counts_match() -> bool:
            differences[:] = await audit(
                database.admin_dsn,
                first=today - timedelta(days=2),
                last=today + timedelta(days=12),
            )
            return not differences

        await wait_until(counts_match, timeout=30, interval=2)

        lines = {name: len(during[name]) for name in SERVICES}
        print(  # noqa: T201 (the measured figures, for the report)
            f"\noutage {outage:.1f}s; sent {stream.sent}, stored {stored}, dead-lettered {len(dead)}, "
            f"internal dead letters {len(internal)}; log lines during the outage {lines} "
            "; "
            f"ready after the database returned (s) { {k: round(v, 1) for k, v in ready_after.items()} }; "
            f"not ready during the outage {not_ready}"
        )
        for name in SERVICES:
            print(f"--- {name} during the outage ---\n" + "\n".join(during[name][:80]))  # noqa: T201
        assert outage >= OUTAGE_SECONDS
        assert stored == stream.sent
        assert dead == [] and internal == []
        assert not_ready["ingest"] == [True, True] and not_ready["metrics"] == [True, True]
        assert all(seconds < READY_WITHIN_SECONDS for seconds in ready_after.values())
        assert lines["ingest"] < MAX_LOG_LINES, during["ingest"]
        assert lines["metrics"] < MAX_LOG_LINES, during["metrics"]
        assert lines["alerts"] < MAX_LOG_LINES, during["alerts"]
    finally:
        for process in runner.started:
            if process.process is not None and process.process.poll() is None:
                process.stop(signal.SIGKILL)
