"""`dvc simulate`: publish realistic, deterministic contract events for a province registry to Kafka."""

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from shared.config import KafkaSettings
from shared.kafka_auth import KafkaCredentialsMissing
from shared.units import Registry, read_registry
from simulator import Pacer, Progress, SendStats, SimEvent, drain, generate_events, publish, record_truth
from simulator.calendar import ICT

DEFAULT_REGISTRY = Path(__file__).resolve().parent.parent / "deploy" / "units" / "ha-tinh-2021.yaml"
DEFAULT_SPEED = 31 * 86_400 / 300  # a month of simulated time in about five minutes
MAX_ID_PREFIX = 32  # keeps event ids within the contract's 128 characters for any 64-character unit id


class Mode(StrEnum):
    """How simulated time relates to wall time."""

    realtime = "realtime"
    accelerated = "accelerated"
    fast = "fast"


def simulate_command(
    registry: Annotated[
        Path, typer.Option(help="Tệp danh mục đơn vị / unit registry file (YAML or CSV)")
    ] = DEFAULT_REGISTRY,
    mode: Annotated[
        Mode, typer.Option(help="realtime | accelerated (--speed) | fast (as fast as possible)")
    ] = Mode.realtime,
    speed: Annotated[
        float, typer.Option(min=0.001, help="accelerated: simulated seconds per wall second")
    ] = DEFAULT_SPEED,
    start: Annotated[
        str | None, typer.Option(help="ISO date/time, local time (default: now; required by fast)")
    ] = None,
    days: Annotated[float, typer.Option(min=0.0001, help="Length of the simulated period in days")] = 31.0,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes")] = 1,
    scale: Annotated[
        float, typer.Option(min=0.0, help="Volume relative to the province's real one (1.0)")
    ] = 1.0,
    bad_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Bad messages per good one")] = 0.0,
    duplicate_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Verbatim re-sends per good message")
    ] = 0.0,
    shuffle_window: Annotated[
        int, typer.Option(min=0, help="Reorder within windows of this many messages")
    ] = 0,
    truth: Annotated[
        Path | None, typer.Option(help="Write the ground truth (JSON lines) of what was sent here")
    ] = None,
    id_prefix: Annotated[
        str | None, typer.Option(help="Prefix of case/document ids (default s<seed>.)")
    ] = None,
    topic_prefix: Annotated[
        str, typer.Option(envvar="DVC_TOPIC_PREFIX", help="Prefix of every topic name")
    ] = "",
    bootstrap: Annotated[str, typer.Option(envvar="DVC_KAFKA_BOOTSTRAP_SERVERS")] = "127.0.0.1:59092",
    dry_run: Annotated[bool, typer.Option(help="Generate (and write --truth) without sending")] = False,
    progress_every: Annotated[
        float, typer.Option(min=0.1, help="Seconds between progress lines (stderr)")
    ] = 5.0,
) -> None:
    """Mô phỏng sự kiện hồ sơ và văn bản / Simulate case-file and document events into Kafka."""
    logging.getLogger("aiokafka.cluster").addFilter(expected_topic_creation)
    units = load_registry_or_exit(registry)
    moment = start_or_exit(start, mode)
    if id_prefix is not None and len(id_prefix) > MAX_ID_PREFIX:
        raise typer.BadParameter(f"at most {MAX_ID_PREFIX} characters", param_hint="--id-prefix")
    events = generate_events(
        units,
        start=moment,
        days=days,
        seed=seed,
        scale=scale,
        bad_rate=bad_rate,
        duplicate_rate=duplicate_rate,
        shuffle_window=shuffle_window,
        id_prefix=id_prefix,
    )
    pacer = None if mode is Mode.fast else Pacer(moment.timestamp(), 1.0 if mode is Mode.realtime else speed)
    with contextlib.ExitStack() as stack:
        if truth is not None:
            # unbuffered: a simulator killed by SIGTERM (up.sh's live stream) keeps every line written
            events = record_truth(events, stack.enter_context(truth.open("wb", buffering=0)))
        stats = send_or_exit(
            events,
            dry_run=dry_run,
            kafka=KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=bootstrap),  # principal: DVC_KAFKA_USERNAME/PASSWORD
            topic_prefix=topic_prefix,
            pacer=pacer,
            progress=Progress(progress_every, label="Đã tạo / generated" if dry_run else "Đã gửi / sent"),
        )
    counts = ", ".join(f"{topic_prefix}{topic}: {count:,}" for topic, count in sorted(stats.by_topic.items()))
    action = "Đã tạo / generated" if dry_run else "Đã gửi / sent"
    typer.echo(f"{action} {stats.sent:,} ({counts}) trong / in {stats.seconds:.1f}s, {stats.rate:,.0f}/s")


def expected_topic_creation(record: logging.LogRecord) -> bool:
    """Drop aiokafka's "topic not found" error for a new topic: the broker creates it on first send."""
    return "not found in cluster metadata" not in str(record.msg)


def load_registry_or_exit(path: Path) -> Registry:
    """Read the registry, or exit 2 with the reason."""
    try:
        return read_registry(path)
    except (ValidationError, ValueError, OSError, yaml.YAMLError) as exc:
        typer.echo(f"Tệp danh mục không hợp lệ / invalid registry file {path}: {exc}", err=True)
        raise typer.Exit(2) from exc


def start_or_exit(start: str | None, mode: Mode) -> datetime:
    """Parse --start (a date is its local midnight, a naive time is local); default now, except in fast mode."""
    if start is None:
        if mode is Mode.fast:
            raise typer.BadParameter("--mode fast needs --start", param_hint="--start")
        return datetime.now(ICT).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(start)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO date or time: {start!r}", param_hint="--start") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=ICT)


def send_or_exit(
    events: Iterable[SimEvent],
    *,
    dry_run: bool,
    kafka: KafkaSettings,
    topic_prefix: str,
    pacer: Pacer | None,
    progress: Progress,
) -> SendStats:
    """Send (or with dry_run only generate) the events; exit 1 if Kafka fails, 130 on Ctrl-C."""
    try:
        if dry_run:
            return drain(events, progress)
        return asyncio.run(
            publish(events, kafka=kafka, topic_prefix=topic_prefix, pacer=pacer, progress=progress)
        )
    except KafkaCredentialsMissing as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    except KafkaError as exc:
        typer.echo(f"Lỗi Kafka / Kafka error ({kafka.KAFKA_BOOTSTRAP_SERVERS}): {exc!r}", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt as exc:
        typer.echo("Đã dừng / stopped", err=True)
        raise typer.Exit(130) from exc
