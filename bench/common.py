"""Shared set-up of the benchmarks: a scratch database, generated events in Kafka, the raw baselines."""

import asyncio
import itertools
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from confluent_kafka.admin import AdminClient

from cli.db import SERVICE_ROLES, migrate
from cli.kafka import ADMIN, admin_config, ensure_acls, ensure_topics, principal, remove_prefixed
from cli.units import store_registry
from services.ingest.queries import EVENT_COLUMNS
from services.ingest.storage import event_record
from services.ingest.validation import Accepted, writes_canonical_timestamps
from shared import topics
from shared.config import KafkaSettings, MigrationSettings
from shared.db import init_connection
from shared.events import Event, decode_body, validate_body
from shared.kafka_auth import aiokafka_security
from shared.units import read_registry
from simulator.publish import publish
from simulator.stream import SimEvent, generate_events

REPO = Path(__file__).resolve().parent.parent
REGISTRY_FILE = REPO / "deploy" / "units" / "ha-tinh-2021.yaml"
# The topics `bench_events` publishes to (v1.1 added reports and inspections to cases and documents).
UPSTREAM_TOPICS = (topics.CASE_EVENTS, topics.DOCUMENT_EVENTS, topics.REPORT_EVENTS, topics.INSPECTION_EVENTS)


def infra_env() -> dict[str, str]:
    """Return the infrastructure's addresses and secrets (scripts/infra.sh writes them)."""
    data = Path(os.environ.get("DVC_DATA_DIR", REPO / ".data"))
    values: dict[str, str] = {}
    for name in ("infra.env", "secrets.env"):
        for line in (data / name).read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                values[key] = value
    return {**values, **{k: v for k, v in os.environ.items() if k.startswith("DVC_")}}


@dataclass
class Scratch:
    """A scratch database and topic prefix for one benchmark run."""

    env: dict[str, str]
    database: str
    prefix: str

    @property
    def admin_dsn(self) -> str:
        return self.env["DVC_ADMIN_DATABASE_URL"].rsplit("/", 1)[0] + "/" + self.database

    def role_dsn(self, role: str) -> str:
        password = self.env[f"DVC_{SERVICE_ROLES[role]}"]
        return f"postgresql://{role}:{password}@{self.admin_dsn.rsplit('@', 1)[1]}"

    def kafka(self, name: str = ADMIN) -> KafkaSettings:
        """Kafka settings of a principal: the super user (PLAIN) or one of cli.kafka.PRINCIPALS."""
        admin = name == ADMIN
        return KafkaSettings(
            KAFKA_BOOTSTRAP_SERVERS=self.env["DVC_KAFKA_BOOTSTRAP_SERVERS"],
            KAFKA_USERNAME=name,
            KAFKA_PASSWORD=self.env[
                "DVC_KAFKA_ADMIN_PASSWORD" if admin else principal(name).password_variable
            ],  # type: ignore[arg-type]
            KAFKA_SASL_MECHANISM="PLAIN" if admin else "SCRAM-SHA-512",
            KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        )


async def create_scratch(env: dict[str, str], *, with_topics: bool = True) -> Scratch:
    """Create and migrate a scratch database; load Hà Tĩnh's 2021 registry; create the scratch topics
    (not for a benchmark without Kafka: its prefix is then empty)."""
    prefix = f"bench{secrets.token_hex(4)}." if with_topics else ""
    scratch = Scratch(env, f"dvc_bench_{secrets.token_hex(4)}", prefix)
    connection = await asyncpg.connect(env["DVC_ADMIN_DATABASE_URL"])
    await connection.execute(f'CREATE DATABASE "{scratch.database}"')
    await connection.close()
    passwords = {field: env[f"DVC_{field}"] for field in SERVICE_ROLES.values()}
    await migrate(MigrationSettings(DATABASE_URL=scratch.admin_dsn, **passwords))  # type: ignore[arg-type]
    connection = await asyncpg.connect(scratch.admin_dsn)
    await store_registry(connection, read_registry(REGISTRY_FILE))
    await connection.close()
    if with_topics:
        admin = AdminClient(admin_config(scratch.kafka()))
        ensure_topics(admin, scratch.prefix)
        ensure_acls(admin, scratch.prefix)
    return scratch


async def drop_scratch(scratch: Scratch) -> None:
    """Drop the scratch database and its topics."""
    connection = await asyncpg.connect(scratch.env["DVC_ADMIN_DATABASE_URL"])
    await connection.execute(f'DROP DATABASE IF EXISTS "{scratch.database}" WITH (FORCE)')
    await connection.close()
    if scratch.prefix:
        remove_prefixed(AdminClient(admin_config(scratch.kafka())), scratch.prefix)


def bench_events(count: int, *, seed: int = 1) -> list[SimEvent]:
    """Generate `count` good contract events (simulated Hà Tĩnh at real volume from 2021-03-01)."""
    registry = read_registry(REGISTRY_FILE)
    stream = generate_events(registry, start=date(2021, 3, 1), days=400, seed=seed)
    return list(itertools.islice(stream, count))


async def publish_events(scratch: Scratch, events: list[SimEvent]) -> float:
    """Publish the events to the scratch topics; return messages per second."""
    stats = await publish(events, kafka=scratch.kafka("simulator"), topic_prefix=scratch.prefix)
    return stats.sent / stats.seconds


async def consume_only(scratch: Scratch, expected: int) -> float:
    """Raw baseline 1: aiokafka consume-only (no parsing) of every upstream topic; return messages per second."""
    consumer = AIOKafkaConsumer(
        *(scratch.prefix + topic for topic in UPSTREAM_TOPICS),
        bootstrap_servers=scratch.env["DVC_KAFKA_BOOTSTRAP_SERVERS"],
        group_id=f"bench-raw-{secrets.token_hex(3)}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **aiokafka_security(scratch.kafka()),
    )
    await consumer.start()
    seen, started = 0, 0.0
    try:
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            if batches and not started:
                started = time.perf_counter()
            seen += sum(len(records) for records in batches.values())
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return expected / elapsed


def rows_for_copy(events: list[SimEvent]) -> list[tuple[object, ...]]:
    """Build the `events` rows of the generated messages (the same rows ingest stores)."""
    rows = []
    for position, event in enumerate(events):
        body = decode_body(event.value)
        assert isinstance(body, dict)
        parsed = validate_body(event.topic, body)
        assert isinstance(parsed, Event)
        record = _Record(event.topic, 0, position, event.key, event.value)
        rows.append(
            event_record(
                Accepted(event.topic, parsed, body, record, writes_canonical_timestamps(parsed, body))
            )
        )  # type: ignore[arg-type]
    return rows


@dataclass
class _Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes


async def copy_only(scratch: Scratch, rows: list[tuple[object, ...]], chunk: int = 10_000) -> float:
    """Raw baseline 2: asyncpg binary COPY of the same rows into a plain table; return rows per second."""
    connection = await asyncpg.connect(scratch.admin_dsn)
    await init_connection(connection)
    try:
        await connection.execute("CREATE TABLE bench_copy (LIKE events INCLUDING DEFAULTS)")
        started = time.perf_counter()
        for first in range(0, len(rows), chunk):
            await connection.copy_records_to_table(
                "bench_copy", records=rows[first : first + chunk], columns=EVENT_COLUMNS
            )
        return len(rows) / (time.perf_counter() - started)
    finally:
        await connection.close()


@dataclass(frozen=True)
class ProcessUsage:
    """CPU seconds (user + system) and peak resident memory of a running process."""

    cpu_seconds: float
    peak_rss_mb: float


def process_usage(pid: int) -> ProcessUsage:
    """Read a live process's CPU time and peak RSS (VmHWM) from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    status = Path(f"/proc/{pid}/status").read_text()
    peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return ProcessUsage((int(fields[11]) + int(fields[12])) / ticks, peak_kb / 1024)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(
    scratch: Scratch, service: str, log: Path, *, code: Path = REPO, **extra: str
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a service (from the checkout `code`) as a subprocess against the scratch database and topics."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    env.update(
        DVC_DATABASE_URL=scratch.role_dsn(f"dvc_{service}"),
        DVC_KAFKA_BOOTSTRAP_SERVERS=scratch.env["DVC_KAFKA_BOOTSTRAP_SERVERS"],
        DVC_TOPIC_PREFIX=scratch.prefix,
        DVC_HTTP_PORT=str(port),
        DVC_KAFKA_USERNAME=service,
        DVC_KAFKA_PASSWORD=scratch.env[principal(service).password_variable],
        DVC_LOG_LEVEL="WARNING",
        **extra,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", f"services.{service}.main"],
        cwd=code,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return process, port


async def wait_ready(port: int, timeout: float = 120.0) -> None:
    """Wait until a service answers /readyz."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"service on port {port} not ready")


def kafka_config(scratch: Scratch) -> dict[str, str | int | float | bool]:
    """Return the librdkafka configuration of the super user (admin clients, the Quix Streams peer)."""
    return admin_config(scratch.kafka())
