"""`dvc deadletters list|stats|replay`: inspect the dead-letter topic and re-publish fixed messages.

Reads `dvc.dead-letters.v1` (with `DVC_TOPIC_PREFIX`) directly with aiokafka, bounded by the end
offsets taken at the start, so every command terminates. `replay` re-publishes a dead letter's
original value, key and non-`dvc-*` headers to its source topic, adding `dvc-replayed-at` and
`dvc-replay-of` (`<dead-letter topic>/<partition>/<offset>`). Its progress is the committed offset of
the consumer group `[prefix]dvc-deadletters-replay.<reason>` on the dead-letter topic, saved only once every
re-published message is acknowledged: a second `replay` sends only what was dead-lettered since,
and an interrupted one sends its messages again, which ingest's `event_id` deduplication makes
harmless (`--from-start` re-sends everything on purpose).
"""

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared import topics
from shared.config import KafkaSettings
from shared.events import EVENT_TYPES_BY_TOPIC
from shared.kafka_auth import aiokafka_security
from shared.kpis import LOCAL_TZ

app = typer.Typer(
    help="Thư lỗi (dead letters): xem, thống kê, phát lại / inspect, count, replay.", no_args_is_help=True
)
REPLAY_GROUP = "dvc-deadletters-replay"
IDLE_SECONDS = 30.0  # no record for this long while short of the end offsets: give up
RELATIVE = re.compile(r"^(\d+)([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}

Bootstrap = Annotated[str, typer.Option(envvar="DVC_KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers")]
Prefix = Annotated[str, typer.Option(envvar="DVC_TOPIC_PREFIX", help="Prefix of every topic name")]
Reason = Annotated[
    str | None,
    typer.Option(help="reason code: unknown_unit, handler_error, bad_timestamp, not_json, …"),
]
Since = Annotated[
    str | None,
    typer.Option(help="dead-lettered at or after: ISO date/time (local time if no offset) or 30m, 2h, 7d"),
]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic, its dvc-* headers decoded."""

    partition: int
    offset: int
    dead_lettered_at: datetime
    key: bytes | None
    value: bytes | None
    reason: str
    message: str
    source_topic: str
    source_timestamp: datetime | None
    original_headers: tuple[tuple[str, bytes | None], ...]  # every header but dvc-*
    replayed_at: str | None  # set when this letter is a replayed copy rejected again


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay sent, per source topic, and what it could not send."""

    sent: Counter[str]
    skipped: list[DeadLetter]
    group_id: str


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """Parse `--since`: an ISO date or date-time (local time without an offset) or 30m / 2h / 7d ago."""
    if text is None:
        return None
    if match := RELATIVE.fullmatch(text.strip()):
        ago = timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
        return (now or datetime.now(UTC)) - ago
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"thời điểm không hợp lệ / invalid time {text!r}: YYYY-MM-DD[THH:MM[+07:00]] or 30m, 2h, 7d",
            param_hint="--since",
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=LOCAL_TZ)


def header_text(headers: dict[str, bytes | None], name: str) -> str:
    """Return a dvc-* header as text ('' when absent)."""
    value = headers.get(name)
    return value.decode("utf-8", "replace") if value is not None else ""


def from_millis(text: str) -> datetime | None:
    """Return the instant of a Kafka timestamp in milliseconds written as text."""
    return datetime.fromtimestamp(int(text) / 1000, UTC) if text.lstrip("-").isdigit() else None


def operator_kafka(bootstrap: str) -> KafkaSettings:
    """The operator's Kafka settings: the address given, the principal from DVC_KAFKA_USERNAME/PASSWORD."""
    return KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=bootstrap)


def dead_letter_from_record(record: ConsumerRecord) -> DeadLetter:
    """Decode the dvc-* headers ingest wrote (dead_letter_headers in services/ingest/handlers.py)."""
    pairs: list[tuple[str, bytes | None]] = list(record.headers or ())
    headers = dict(pairs)
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        dead_lettered_at=datetime.fromtimestamp(record.timestamp / 1000, UTC),
        key=record.key,
        value=record.value,
        reason=header_text(headers, "dvc-reason") or "?",
        message=header_text(headers, "dvc-message"),
        source_topic=header_text(headers, "dvc-source-topic"),
        source_timestamp=from_millis(header_text(headers, "dvc-source-timestamp")),
        original_headers=tuple((k, v) for k, v in pairs if not k.startswith("dvc-")),
        replayed_at=header_text(headers, "dvc-replayed-at") or None,
    )


def matches(letter: DeadLetter, *, reason: str | None, since: datetime | None) -> bool:
    """Tell whether a dead letter passes the --reason and --since filters."""
    return (reason is None or letter.reason == reason) and (since is None or letter.dead_lettered_at >= since)


@asynccontextmanager
async def open_consumer(kafka: KafkaSettings, group_id: str | None) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer that never commits by itself (replay commits its progress explicitly)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.KAFKA_BOOTSTRAP_SERVERS,
        **aiokafka_security(kafka),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def partitions_of(kafka: KafkaSettings, topic: str) -> list[TopicPartition]:
    """Return the partitions of `topic`, none if it does not exist (without creating it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.KAFKA_BOOTSTRAP_SERVERS, **aiokafka_security(kafka))
    await admin.start()
    try:
        described = [t for t in await admin.describe_topics() if t["topic"] == topic]
    finally:
        await admin.close()
    return sorted(TopicPartition(topic, p["partition"]) for t in described for p in t["partitions"])


async def seek_start(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], *, since: datetime | None, resume: bool
) -> None:
    """Position each partition at its start: the group's saved progress or the beginning, then --since."""
    beginning = await consumer.beginning_offsets(partitions)
    start = dict(beginning)
    if resume:
        for tp in partitions:
            committed = await consumer.committed(tp)
            if committed is not None:
                start[tp] = max(committed, beginning[tp])
    if since is not None:
        ms = int(since.timestamp() * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, ms))
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            at = found[tp].offset if found.get(tp) is not None else ends[tp]
            start[tp] = max(start[tp], at)
    for tp in partitions:
        consumer.seek(tp, start[tp])


async def read_until(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> list[ConsumerRecord]:
    """Read the assigned partitions up to the end offsets taken at the start."""
    records: list[ConsumerRecord] = []
    pending = [tp for tp in end if await consumer.position(tp) < end[tp]]
    idle_since = asyncio.get_running_loop().time()
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=500, max_records=5000)
        for tp, got in batch.items():
            records.extend(record for record in got if record.offset < end[tp])
        if batch:
            idle_since = asyncio.get_running_loop().time()
        elif asyncio.get_running_loop().time() - idle_since > IDLE_SECONDS:
            raise RuntimeError(f"no progress reading {sorted(map(str, pending))} for {IDLE_SECONDS:.0f}s")
        pending = [tp for tp in pending if await consumer.position(tp) < end[tp]]
    return records


async def read_dead_letters(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    *,
    since: datetime | None,
    resume: bool = False,
) -> tuple[list[DeadLetter], dict[TopicPartition, int]]:
    """Return the dead letters from the start position up to the current end, and those end offsets."""
    if not partitions:
        return [], {}
    consumer.assign(partitions)
    end = await consumer.end_offsets(partitions)
    await seek_start(consumer, partitions, since=since, resume=resume)
    records = await read_until(consumer, end)
    letters = [dead_letter_from_record(record) for record in records]
    return sorted(letters, key=lambda d: (d.dead_lettered_at, d.partition, d.offset)), end


def replay_target(letter: DeadLetter, topic_prefix: str) -> str | None:
    """Return the topic to re-publish to: the source, if it is one of the contract's input topics."""
    if not letter.source_topic.startswith(topic_prefix):
        return None
    unprefixed = letter.source_topic.removeprefix(topic_prefix)
    return topic_prefix + unprefixed if unprefixed in EVENT_TYPES_BY_TOPIC else None


def replay_headers(
    letter: DeadLetter, dead_letter_topic: str, now: datetime
) -> list[tuple[str, bytes | None]]:
    """The original headers, plus when and from which dead letter this copy was replayed."""
    return [
        *letter.original_headers,
        ("dvc-replayed-at", now.isoformat().encode()),
        ("dvc-replay-of", f"{dead_letter_topic}/{letter.partition}/{letter.offset}".encode()),
    ]


def replay_group(topic_prefix: str, reason: str) -> str:
    """Return the consumer group that holds the replay progress of one reason (prefixed like the services')."""
    return f"{topic_prefix}{REPLAY_GROUP}.{reason}"


async def replay(
    kafka: KafkaSettings,
    topic_prefix: str,
    *,
    reason: str,
    since: datetime | None,
    from_start: bool = False,
    dry_run: bool = False,
) -> ReplayResult:
    """Re-publish the matching dead letters to their source topics; save the progress after the acks."""
    dead_letter_topic = topic_prefix + topics.DEAD_LETTERS
    group_id = replay_group(topic_prefix, reason)
    result = ReplayResult(sent=Counter(), skipped=[], group_id=group_id)
    partitions = await partitions_of(kafka, dead_letter_topic)
    async with open_consumer(kafka, group_id) as consumer:
        letters, end = await read_dead_letters(consumer, partitions, since=since, resume=not from_start)
        chosen = [letter for letter in letters if matches(letter, reason=reason, since=since)]
        targets = [(letter, replay_target(letter, topic_prefix)) for letter in chosen]
        result.skipped.extend(letter for letter, target in targets if target is None)
        sendable = [(letter, target) for letter, target in targets if target is not None]
        if dry_run:
            result.sent.update(target for _, target in sendable)
            return result
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.KAFKA_BOOTSTRAP_SERVERS,
            enable_idempotence=True,
            linger_ms=20,
            **aiokafka_security(kafka),
        )
        await producer.start()
        try:
            now = datetime.now(UTC)
            futures = [
                await producer.send(
                    target,
                    value=letter.value,
                    key=letter.key,
                    headers=replay_headers(letter, dead_letter_topic, now),
                )
                for letter, target in sendable
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        result.sent.update(target for _, target in sendable)
        if end:
            await consumer.commit(dict(end))  # only after every copy is acknowledged
    return result


async def collect(kafka: KafkaSettings, topic_prefix: str, *, since: datetime | None) -> list[DeadLetter]:
    """Read every dead letter (since a time) without a consumer group."""
    partitions = await partitions_of(kafka, topic_prefix + topics.DEAD_LETTERS)
    async with open_consumer(kafka, None) as consumer:
        letters, _ = await read_dead_letters(consumer, partitions, since=since)
    return letters


def local_text(when: datetime | None) -> str:
    """Format an instant in local time."""
    return when.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S") if when is not None else "—"


def describe(letter: DeadLetter, topic_prefix: str) -> str:
    """One line of `list`."""
    source = letter.source_topic.removeprefix(topic_prefix) or "?"
    key = letter.key.decode("utf-8", "replace") if letter.key is not None else "—"
    replayed = f"\t(bản phát lại / replayed {letter.replayed_at})" if letter.replayed_at else ""
    return (
        f"{local_text(letter.dead_lettered_at)}\t{letter.reason}\t{source}\t{local_text(letter.source_timestamp)}"
        f"\t{key}\t{letter.message}{replayed}"
    )


@app.command("list")
def list_command(
    reason: Reason = None,
    since: Since = None,
    limit: Annotated[int, typer.Option(min=1, help="show at most the latest N")] = 50,
    bootstrap: Bootstrap = "127.0.0.1:59092",
    topic_prefix: Prefix = "",
) -> None:
    """Liệt kê thư lỗi gần nhất / List the latest dead letters (reason, source, time, message)."""
    after = parse_since(since)
    letters = asyncio.run(collect(operator_kafka(bootstrap), topic_prefix, since=after))
    chosen = [letter for letter in letters if matches(letter, reason=reason, since=after)]
    typer.echo(
        "Thời điểm lỗi / dead-lettered\tLý do / reason\tNguồn / source\tThời điểm gửi / sent\t"
        "Khoá / key\tThông điệp / message"
    )
    for letter in chosen[-limit:]:
        typer.echo(describe(letter, topic_prefix))
    typer.echo(f"{min(limit, len(chosen))}/{len(chosen)} thư lỗi / dead letters")


@app.command("stats")
def stats_command(
    since: Since = None,
    bootstrap: Bootstrap = "127.0.0.1:59092",
    topic_prefix: Prefix = "",
) -> None:
    """Đếm thư lỗi theo lý do / Count dead letters per reason."""
    after = parse_since(since)
    letters = [
        d
        for d in asyncio.run(collect(operator_kafka(bootstrap), topic_prefix, since=after))
        if matches(d, reason=None, since=after)
    ]
    counts = Counter(letter.reason for letter in letters)
    latest: dict[str, datetime] = {}
    for letter in letters:
        latest[letter.reason] = max(
            latest.get(letter.reason, letter.dead_lettered_at), letter.dead_lettered_at
        )
    typer.echo("Lý do / reason\tSố thư / count\tGần nhất / latest")
    for reason_code, count in counts.most_common():
        typer.echo(f"{reason_code}\t{count}\t{local_text(latest[reason_code])}")
    typer.echo(f"Tổng / total\t{len(letters)}")


@app.command("replay")
def replay_command(
    reason: Annotated[str, typer.Option(help="reason code to replay, e.g. unknown_unit or handler_error")],
    since: Since = None,
    from_start: Annotated[
        bool, typer.Option(help="ignore the saved progress and re-send every matching dead letter")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="only say what would be re-sent")] = False,
    bootstrap: Bootstrap = "127.0.0.1:59092",
    topic_prefix: Prefix = "",
) -> None:
    """Phát lại thư lỗi về chủ đề nguồn / Re-publish dead letters to their source topic (after the fix)."""
    result = asyncio.run(
        replay(
            operator_kafka(bootstrap),
            topic_prefix,
            reason=reason,
            since=parse_since(since),
            from_start=from_start,
            dry_run=dry_run,
        )
    )
    for letter in result.skipped:
        typer.echo(
            f"Bỏ qua / skipped {letter.partition}/{letter.offset}: nguồn không phải chủ đề đầu vào / "
            f"source {letter.source_topic!r} is not an input topic",
            err=True,
        )
    verb = "Sẽ phát lại / would replay" if dry_run else "Đã phát lại / replayed"
    per_topic = ", ".join(
        f"{topic.removeprefix(topic_prefix)}: {n}" for topic, n in sorted(result.sent.items())
    )
    typer.echo(f"{verb} {sum(result.sent.values())} thư lỗi / dead letters ({per_topic or '—'})")
    if not dry_run:
        typer.echo(f"Tiến độ lưu ở nhóm / progress saved in consumer group {result.group_id}")
