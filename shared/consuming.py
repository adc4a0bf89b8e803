"""Batch consumption shared by the three subscribers: raw records whatever their headers, poison isolated
by bisection, dead letters with the original headers byte for byte, and commit-or-rewind with backoff.

Headers are not part of the contract. FastStream's batch parser decodes every header value as strict
UTF-8 before the handler runs, so a binary or null value failed the batch outside our error handling
(and the next commit skipped it). `parse_keeping_headers` hands FastStream the records without headers
and puts the originals back: `msg.raw_message` keeps aiokafka's records, `msg.batch_headers` their
values as bytes (or None).
"""

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.abc import ConsumerRebalanceListener
from faststream import AckPolicy
from faststream.kafka import KafkaMessage, KafkaRouter
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from shared import topics
from shared.backoff import Retrying, infrastructure_failure_kind
from shared.config import Settings
from shared.kafka_auth import aiokafka_security

if TYPE_CHECKING:
    from faststream.kafka.subscriber.usecase import BatchSubscriber

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)
Records = tuple[ConsumerRecord, ...]
Headers = list[tuple[str, bytes | None]]
Letter = tuple[ConsumerRecord, str, str]  # a record, the reason code, a human-readable message
LEAF_ATTEMPTS = 3
# Reasons of internal dead letters (messages between our own services on dvc.changes.v1, dvc.kpi-updates.v1).
INVALID_MESSAGE = "invalid_message"  # not the JSON of the topic's model
PROCESSING_ERROR = "processing_error"  # failed alone while the rest of its batch was processed
INTERNAL_DEAD_LETTERS = Counter(
    "dvc_internal_dead_letters_total",
    "Internal messages isolated on dvc.internal-dead-letters.v1, by source topic and reason.",
    ["topic", "reason"],
)


async def parse_keeping_headers(
    records: Records, original: Callable[[Records], Awaitable[KafkaMessage]]
) -> KafkaMessage:
    """Parse a batch with FastStream's parser, but never decode (or fail on) a header value."""
    message = await original(tuple(map(without_headers, records)))
    message.raw_message = records
    message.batch_headers = [dict(record.headers or ()) for record in records]
    return message


def without_headers(record: ConsumerRecord) -> ConsumerRecord:
    """Return the record without its headers (the record itself when it has none)."""
    return dataclasses.replace(record, headers=[]) if record.headers else record


def raw_records(message: KafkaMessage) -> Any:
    """Decode nothing: the body is the batch's records, which the handler validates one by one inside
    its own error handling (one bad record cannot fail the batch). Type the body parameter as
    `list[Annotated[ConsumerRecord, SkipValidation, WithJsonSchema(<message schema>)]]`: the records
    pass through unchanged and the AsyncAPI document shows the messages' schema."""
    return message.raw_message


def batch_subscriber(
    router: KafkaRouter,
    *names: str,
    group_id: str,
    max_records: int,
    batch_timeout_ms: int,
    listener: ConsumerRebalanceListener,
    title: str,
) -> "BatchSubscriber":
    """Subscribe a handler the one way our services consume: batches of raw records (`raw_records`,
    headers never decoded) from the earliest offset, committed by `settle_batch` once handled."""
    return router.subscriber(
        *(topics.declared(name) for name in names),
        group_id=group_id,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
        ack_policy=AckPolicy.MANUAL,  # settle_batch: commit after the batch, or back off and rewind
        auto_offset_reset="earliest",
        listener=listener,
        parser=parse_keeping_headers,
        decoder=raw_records,
        title=title,
    )


class UnprovenFailure(Exception):
    """Every item of a batch failed on its own: no item is shown to be the cause, so none is rejected."""

    failure_kind = "unproven"


@dataclass(slots=True)
class Isolated(Generic[T, R]):
    """What processing with isolation gave: the results of the parts that succeeded, and the failed items."""

    results: list[R] = dataclasses.field(default_factory=list)
    failed: list[tuple[T, Exception]] = dataclasses.field(default_factory=list)


async def process_isolating(
    items: Sequence[T], process: Callable[[Sequence[T]], Awaitable[R]], *, leaf_attempts: int = LEAF_ATTEMPTS
) -> Isolated[T, R]:
    """Process the items together; on an error the data may cause, bisect so one bad item cannot fail
    the others. An infrastructure error (`infrastructure_failure_kind`) propagates at once: nothing is
    rejected for it. An item is returned as failed only if it failed `leaf_attempts` times alone while
    at least one other item succeeded; if nothing succeeded, `UnprovenFailure` is raised."""
    outcome: Isolated[T, R] = Isolated()
    if not items:
        return outcome
    await _bisect(items, process, leaf_attempts, outcome)
    if outcome.failed and not outcome.results:
        raise UnprovenFailure(f"all {len(items)} items failed alone: {outcome.failed[0][1]!r}")
    return outcome


async def _bisect(
    items: Sequence[T],
    process: Callable[[Sequence[T]], Awaitable[R]],
    leaf_attempts: int,
    outcome: Isolated[T, R],
) -> None:
    attempts = leaf_attempts if len(items) == 1 else 1
    error: Exception | None = None
    for _ in range(attempts):
        try:
            outcome.results.append(await process(items))
            return
        except Exception as exc:
            if infrastructure_failure_kind(exc) is not None:
                raise
            error = exc
    assert error is not None
    if len(items) == 1:
        outcome.failed.append((items[0], error))
        return
    middle = len(items) // 2
    await _bisect(items[:middle], process, leaf_attempts, outcome)
    await _bisect(items[middle:], process, leaf_attempts, outcome)


async def settle_batch(
    msg: KafkaMessage, retrying: Retrying, handle: Callable[[], Awaitable[object]]
) -> bool:
    """Handle a batch, then commit its offsets and return True. On any failure commit nothing: wait out
    the backoff (the service is not ready meanwhile), rewind every partition of the batch so it comes
    again, and return False."""
    try:
        await handle()
    except Exception as exc:
        try:
            await retrying.wait_after(exc)
        finally:
            await msg.nack()
        return False
    except BaseException:
        await msg.nack()
        raise
    await msg.ack()
    retrying.succeeded()
    return True


def dead_letter_headers(record: ConsumerRecord, reason: str, message: str) -> Headers:
    """Return the original headers, byte for byte, then the reason and the source position."""
    return [
        *(record.headers or ()),
        ("dvc-reason", reason.encode()),
        ("dvc-message", message[:1000].encode()),
        ("dvc-source-topic", record.topic.encode()),
        ("dvc-source-partition", str(record.partition).encode()),
        ("dvc-source-offset", str(record.offset).encode()),
        ("dvc-source-timestamp", str(record.timestamp).encode()),
    ]


class DeadLetterProducer:
    """Publishes dead letters with aiokafka itself: FastStream's publisher encodes header values from
    `str`, which would lose binary and null values and repeated keys."""

    def __init__(self, settings: Settings, service_name: str) -> None:
        self.prefix = settings.TOPIC_PREFIX
        self.bootstrap_servers = settings.KAFKA_BOOTSTRAP_SERVERS
        self.security = aiokafka_security(settings)
        self.client_id = f"dvc-{service_name}-dead-letters"
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect to the broker (the producer needs the running event loop)."""
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            enable_idempotence=True,
            linger_ms=5,
            **self.security,
        )
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def producer(self) -> AIOKafkaProducer:
        """The started producer."""
        if self._producer is None:
            raise RuntimeError("the dead-letter producer is not started")
        return self._producer

    async def publish(self, topic: str, letters: Sequence[tuple[ConsumerRecord, str, str]]) -> None:
        """Publish (record, reason, message) to `topic` (unprefixed), unchanged, and wait for the broker."""
        futures = [
            await self.producer.send(
                self.prefix + topic,
                value=record.value,
                key=record.key,
                headers=dead_letter_headers(record, reason, message),
            )
            for record, reason, message in letters
        ]
        for future in futures:
            await future


def parse_internal_records(
    records: Sequence[ConsumerRecord], model: type[M]
) -> tuple[list[tuple[ConsumerRecord, M]], list[Letter]]:
    """Validate each record's value as `model`; return the valid ones and the letters of the others."""
    valid: list[tuple[ConsumerRecord, M]] = []
    invalid: list[Letter] = []
    for record in records:
        try:
            valid.append((record, model.model_validate_json(record.value or b"")))
        except ValidationError as exc:
            invalid.append((record, INVALID_MESSAGE, f"not a valid {model.__name__}: {exc}"))
    return valid, invalid


async def isolate_internal_poison(
    producer: DeadLetterProducer,
    topic: str,
    records: Sequence[ConsumerRecord],
    model: type[M],
    process: Callable[[Sequence[tuple[ConsumerRecord, M]]], Awaitable[object]],
) -> int:
    """Process a batch of an internal topic; publish every message that is invalid or fails alone to
    dvc.internal-dead-letters.v1 (before the caller commits). Return how many were isolated."""
    valid, letters = parse_internal_records(records, model)
    outcome = await process_isolating(valid, process)
    letters += [
        (record, PROCESSING_ERROR, f"processing failed: {error!r}") for (record, _), error in outcome.failed
    ]
    await producer.publish(topics.INTERNAL_DEAD_LETTERS, letters)
    for record, reason, message in letters:
        INTERNAL_DEAD_LETTERS.labels(topic, reason).inc()
        logger.error(
            "%s message %d@%d isolated on %s (%s): %s",
            topic,
            record.partition,
            record.offset,
            topics.INTERNAL_DEAD_LETTERS,
            reason,
            message[:300],
        )
    return len(letters)
