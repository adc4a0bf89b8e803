"""Validate the records of a batch against the event contract (shared/events.py), then the unit registry.

The checks run in the contract's order: decoding, object, `event_type` for the topic, the type's fields
in declaration order, and last `unknown_unit` against the registry.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

import asyncpg
import orjson
from aiokafka import ConsumerRecord

from services.ingest.cases import JsonObject
from services.ingest.queries import fetch_unit_ids
from shared.events import (
    EVENT_TYPES_BY_TOPIC,
    Event,
    InspectionCompleted,
    Rejection,
    decode_body,
    validate_body,
)
from shared.registry import RegistryCache

UnitIds = RegistryCache[frozenset[str]]


def is_timestamp(annotation: Any) -> bool:
    """Return True if a field's annotation is (or may be) a contract timestamp."""
    return annotation is datetime or any(is_timestamp(arg) for arg in get_args(annotation))


TIMESTAMP_FIELDS: dict[type[Event], tuple[str, ...]] = {
    model: tuple(name for name, info in model.model_fields.items() if is_timestamp(info.annotation))
    for types in EVENT_TYPES_BY_TOPIC.values()
    for model in types.values()
}


def is_canonical_timestamp(text: Any, value: datetime | None) -> bool:
    """Return True if `text` is already the JSON form the contract model gives `value`: its ISO format,
    except that pydantic writes a zero offset as `Z` and drops an offset's seconds."""
    if value is None:
        return text is None
    offset = value.utcoffset()
    if not offset or offset.seconds % 60 or offset.microseconds:
        return False
    return bool(text == value.isoformat())


def writes_canonical_timestamps(event: Event, body: dict[str, Any]) -> bool:
    """Return True if the raw body already writes every timestamp of `event` in the canonical form."""
    return all(
        is_canonical_timestamp(body.get(name), getattr(event, name)) for name in TIMESTAMP_FIELDS[type(event)]
    )


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid event with the raw body it came from and its Kafka position."""

    topic: str
    event: Event
    body: dict[str, Any]
    record: ConsumerRecord
    raw_is_canonical: bool  # `writes_canonical_timestamps`, checked once when the record is parsed

    @property
    def canonical(self) -> JsonObject:
        """The validated fields as JSON, timestamps normalised (what a case history keeps): the raw bytes
        when they hold nothing else and are already canonical, otherwise the model's JSON form."""
        if self.raw_is_canonical and self.body.keys() <= type(self.event).model_fields.keys():
            return bytes(self.record.value)
        return self.event.model_dump(mode="json", exclude_unset=True)

    @property
    def payload(self) -> dict[str, Any] | orjson.Fragment:
        """The stored raw event: every field kept, timestamps normalised (the raw bytes when canonical)."""
        if self.raw_is_canonical:
            return orjson.Fragment(self.record.value)
        return {**self.body, **self.event.model_dump(mode="json", exclude_unset=True)}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected record and why."""

    record: ConsumerRecord
    rejection: Rejection


def parse_record(record: ConsumerRecord, topic_prefix: str) -> Accepted | DeadLetter:
    """Check a record against the contract (every check but the registry's)."""
    topic = record.topic.removeprefix(topic_prefix)
    body = decode_body(record.value)
    if isinstance(body, Rejection):
        return DeadLetter(record, body)
    event = validate_body(topic, body)
    if isinstance(event, Rejection):
        return DeadLetter(record, event)
    return Accepted(topic, event, body, record, writes_canonical_timestamps(event, body))


def unknown_units(event: Event, unit_ids: frozenset[str]) -> list[tuple[str, str]]:
    """Return the (field, id) pairs naming units outside the registry: `unit_id`, then `inspected_unit_id`."""
    named = [("unit_id", event.unit_id)]
    if isinstance(event, InspectionCompleted):
        named.append(("inspected_unit_id", event.inspected_unit_id))
    return [(name, unit_id) for name, unit_id in named if unit_id not in unit_ids]


def check_units(outcome: Accepted | DeadLetter, unit_ids: frozenset[str]) -> Accepted | DeadLetter:
    """Reject an accepted event that names a unit outside the registry (the contract's last check)."""
    if isinstance(outcome, DeadLetter) or not (unknown := unknown_units(outcome.event, unit_ids)):
        return outcome
    field_name, unit_id = unknown[0]
    return DeadLetter(
        outcome.record, Rejection("unknown_unit", f"{field_name} {unit_id!r} is not in the unit registry")
    )


async def validate_records(
    records: Sequence[ConsumerRecord], units: UnitIds, pool: asyncpg.Pool, topic_prefix: str
) -> tuple[list[Accepted], list[DeadLetter]]:
    """Split a batch into accepted events and dead letters, in the contract's order of checks."""
    accepted: list[Accepted] = []
    rejected: list[DeadLetter] = []
    refreshed = False
    for record in records:
        outcome = parse_record(record, topic_prefix)
        if isinstance(outcome, Accepted) and unknown_units(outcome.event, units.value):
            if not refreshed:
                await refresh_units(units, pool, max_age=0.0)  # a unit loaded a moment ago is accepted
                refreshed = True  # one check per batch at most
            outcome = check_units(outcome, units.value)
        if isinstance(outcome, Accepted):
            accepted.append(outcome)
        else:
            rejected.append(outcome)
    return accepted, rejected


async def refresh_units(units: UnitIds, pool: asyncpg.Pool, *, max_age: float) -> None:
    """Reload the registry's unit ids if its version changed (checked at most every `max_age` seconds)."""
    if units.due(max_age):
        async with pool.acquire() as connection:
            await units.refresh(connection, max_age=max_age)


def unit_ids_cache() -> UnitIds:
    """Return an empty cache of the registry's unit ids (filled by the first refresh)."""
    return RegistryCache(load=fetch_unit_ids, value=frozenset())
