"""Fixtures over the real infrastructure started by scripts/infra.sh: PostgreSQL, Kafka, Prometheus."""

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from confluent_kafka.admin import AdminClient

from cli.db import SERVICE_ROLES, migrate
from cli.kafka import ADMIN, admin_config, ensure_acls, ensure_topics, principal, remove_prefixed
from cli.tokens import create_token
from cli.units import store_registry
from shared.auth import Role
from shared.config import KafkaSettings, MigrationSettings
from shared.db import init_connection
from shared.kafka_auth import aiokafka_security
from shared.units import Registry

REPO = Path(__file__).resolve().parent.parent
SERVICE_ROLE = {
    "ingest": "dvc_ingest",
    "metrics": "dvc_metrics",
    "alerts": "dvc_alerts",
    "reader": "dvc_reader",
}


def read_env_file(path: Path) -> dict[str, str]:
    """Read KEY=value lines."""
    if not path.exists():
        return {}
    pairs = (
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {key.strip(): value.strip().strip("'\"") for key, value in pairs}


def infra_setting(name: str) -> str:
    """Return an infrastructure setting from the environment or from the files infra.sh wrote."""
    data_dir = Path(os.environ.get("DVC_DATA_DIR", REPO / ".data"))
    found = os.environ.get(name) or {
        **read_env_file(data_dir / "infra.env"),
        **read_env_file(data_dir / "secrets.env"),
    }.get(name)
    if not found:
        pytest.skip(f"{name} is not set: start the infrastructure with scripts/infra.sh up")
    return found


def free_port() -> int:
    """Return a TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class MigratedDatabase:
    """A fresh, migrated database of the test session, and the DSN of each role."""

    name: str
    admin_dsn: str

    def dsn(self, role: str) -> str:
        """Return the DSN of a service role ("ingest", "metrics", "alerts", "reader") or "admin"."""
        if role == "admin":
            return self.admin_dsn
        user = SERVICE_ROLE[role]
        password = infra_setting(f"DVC_{SERVICE_ROLES[user]}")
        host = self.admin_dsn.rsplit("@", 1)[1]
        return f"postgresql://{user}:{password}@{host}"


def with_database(dsn: str, name: str) -> str:
    """Return `dsn` pointing at database `name`."""
    return dsn.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return infra_setting("DVC_KAFKA_BOOTSTRAP_SERVERS")


def kafka_settings(bootstrap: str, name: str = ADMIN) -> KafkaSettings:
    """The Kafka settings of a principal ("admin", the super user, or one of cli.kafka.PRINCIPALS)."""
    if name == ADMIN:
        password, mechanism = infra_setting("DVC_KAFKA_ADMIN_PASSWORD"), "PLAIN"
    else:
        password, mechanism = infra_setting(principal(name).password_variable), "SCRAM-SHA-512"
    return KafkaSettings(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        KAFKA_USERNAME=name,
        KAFKA_PASSWORD=password,  # type: ignore[arg-type]
        KAFKA_SASL_MECHANISM=mechanism,  # type: ignore[arg-type]
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
    )


def kafka_admin() -> AdminClient:
    """An admin client of the super user (creates the tests' prefixed topics and ACLs)."""
    return AdminClient(admin_config(kafka_settings(infra_setting("DVC_KAFKA_BOOTSTRAP_SERVERS"))))


def prepare_topics(prefix: str) -> None:
    """Create a test prefix's topics and the principals' ACLs on them, as `dvc kafka setup --prefix`."""
    admin = kafka_admin()
    ensure_topics(admin, prefix)
    ensure_acls(admin, prefix)


def drop_topics(prefix: str) -> None:
    """Delete a test prefix's topics and ACLs."""
    remove_prefixed(kafka_admin(), prefix)


@pytest.fixture(scope="session")
async def database() -> AsyncIterator[MigratedDatabase]:
    admin = infra_setting("DVC_ADMIN_DATABASE_URL")
    name = f"dvc_test_{secrets.token_hex(4)}"
    connection = await asyncpg.connect(admin)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    test_db = MigratedDatabase(name, with_database(admin, name))
    passwords = {field: infra_setting(f"DVC_{field}") for field in SERVICE_ROLES.values()}
    await migrate(MigrationSettings(DATABASE_URL=test_db.admin_dsn, **passwords))  # type: ignore[arg-type]
    yield test_db
    connection = await asyncpg.connect(admin)
    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await connection.close()


async def create_api_token(database: MigratedDatabase, role: Role, name: str = "test") -> str:
    """Create an API token as `dvc tokens create` does; return the token."""
    connection = await asyncpg.connect(database.admin_dsn)
    try:
        return (await create_token(connection, name=name, role=role))[1]
    finally:
        await connection.close()


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of an API token."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
async def operator_token(database: MigratedDatabase) -> str:
    return await create_api_token(database, Role.operator, "test operator")


@pytest.fixture(scope="session")
async def viewer_token(database: MigratedDatabase) -> str:
    return await create_api_token(database, Role.viewer, "test viewer")


STATE_TABLES = (
    "events, event_ids, cases, documents, reports, inspections, kpi_day_cells, procedure_days, overdue_days, "
    "inspected_days"
)


async def truncate_state(database: MigratedDatabase) -> None:
    """Empty the tables of stored events and their derived state."""
    connection = await asyncpg.connect(database.admin_dsn)
    try:
        await connection.execute(f"TRUNCATE {STATE_TABLES}")
    finally:
        await connection.close()


@pytest.fixture
async def no_stored_state(database: MigratedDatabase) -> AsyncIterator[None]:
    """Start and end with no stored state: a session's tests share one database, and audits and row
    counts cover every row."""
    await truncate_state(database)
    yield
    await truncate_state(database)


@pytest.fixture
async def admin_db(database: MigratedDatabase) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database.admin_dsn)
    await init_connection(connection)
    yield connection
    await connection.close()


async def load_registry(database: MigratedDatabase, registry: Registry) -> None:
    """Store a registry in the test database (what `dvc units load` does)."""
    connection = await asyncpg.connect(database.admin_dsn)
    try:
        await store_registry(connection, registry)
    finally:
        await connection.close()


@pytest.fixture
def topic_prefix() -> Iterator[str]:
    prefix = f"t{secrets.token_hex(4)}."
    prepare_topics(prefix)
    yield prefix
    drop_topics(prefix)


class ServiceProcess:
    """A service run as a real subprocess, as in production."""

    def __init__(self, service: str, env: dict[str, str], log_path: Path) -> None:
        self.service = service
        self.env = env
        self.port = int(env["DVC_HTTP_PORT"])
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.headers: dict[str, str] = {}  # what the test's API calls send (an API token)

    def start(self) -> "ServiceProcess":
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.service}.main"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, self.log_tail()
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.service} not ready in {timeout}s\n{self.log_tail()}")

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


@pytest.fixture
def service_runner(
    database: MigratedDatabase, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> Iterator["ServiceRunner"]:
    runner = ServiceRunner(database, kafka_bootstrap, topic_prefix, tmp_path)
    yield runner
    for process in runner.started:
        if process.process is not None and process.process.poll() is None:
            process.stop(signal.SIGKILL)


class ServiceRunner:
    """Start services against the test database and the test topic prefix."""

    def __init__(
        self, database: MigratedDatabase, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
    ) -> None:
        self.database, self.kafka_bootstrap, self.topic_prefix, self.tmp_path = (
            database,
            kafka_bootstrap,
            topic_prefix,
            tmp_path,
        )
        self.started: list[ServiceProcess] = []

    def env(self, service: str, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("DVC_")}
        env.update(
            DVC_DATABASE_URL=self.database.dsn(service),
            DVC_KAFKA_BOOTSTRAP_SERVERS=self.kafka_bootstrap,
            DVC_TOPIC_PREFIX=self.topic_prefix,
            DVC_HTTP_PORT=str(free_port()),
            DVC_KAFKA_USERNAME=service,  # each service authenticates as its own principal
            DVC_KAFKA_PASSWORD=infra_setting(principal(service).password_variable),
            **extra,
        )
        return env

    async def start(self, service: str, **extra: str) -> ServiceProcess:
        process = ServiceProcess(
            service, self.env(service, **extra), self.tmp_path / f"{service}.log"
        ).start()
        self.started.append(process)
        await process.wait_ready()
        return process


def kafka_security(bootstrap: str, name: str = ADMIN) -> dict[str, Any]:
    """The aiokafka client options of a principal (default: the super user of the tests)."""
    return aiokafka_security(kafka_settings(bootstrap, name))


async def produce(
    bootstrap: str,
    topic: str,
    messages: list[tuple[bytes | None, bytes]],
    *,
    timestamps_ms: list[int] | None = None,
) -> None:
    """Send (key, value) messages to a topic, stamped `timestamps_ms` if given (as upstream stamps them
    with the event time), and wait until the broker has them all."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=20,
        **kafka_security(bootstrap),
    )
    await producer.start()
    try:
        stamps = timestamps_ms or [None] * len(messages)
        futures = [
            await producer.send(topic, value=value, key=key, timestamp_ms=stamp)
            for (key, value), stamp in zip(messages, stamps, strict=True)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout: float = 30.0
) -> list[ConsumerRecord]:
    """Read a topic from the start, without a group, until `expect` records arrived (or time ran out)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kafka_security(bootstrap),
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < expect and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def wait_until(predicate, timeout: float = 30.0, interval: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    """Poll an async predicate until it is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
