"""Store one batch of accepted events in one transaction and name the (unit, day) cells it touched."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord

from services.ingest import queries
from services.ingest.cases import LOCAL_TZ, fold_case, parse_time
from shared.events import CaseEvent, DocumentSent, Event


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid event with the raw body it came from and its Kafka position."""

    topic: str
    event: Event
    body: dict[str, Any]
    record: ConsumerRecord


@dataclass(slots=True)
class StoredBatch:
    """What a batch changed: new events per topic, duplicates, and the dirty (unit, local day) cells."""

    stored: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dirty: dict[str, set[date]] = field(default_factory=lambda: defaultdict(set))

    def merge(self, other: "StoredBatch") -> None:
        """Add another batch's results to this one."""
        for topic, count in other.stored.items():
            self.stored[topic] += count
        for topic, count in other.duplicates.items():
            self.duplicates[topic] += count
        for unit_id, days in other.dirty.items():
            self.dirty[unit_id] |= days


def local_day(value: datetime) -> date:
    """Return the Asia/Ho_Chi_Minh calendar day of an instant."""
    return value.astimezone(LOCAL_TZ).date()


def first_occurrences(batch: Sequence[Accepted]) -> list[Accepted]:
    """Drop repeats of an event_id inside the batch: the first valid occurrence wins."""
    seen: set[str] = set()
    unique = []
    for item in batch:
        if item.event.event_id not in seen:
            seen.add(item.event.event_id)
            unique.append(item)
    return unique


async def store_batch(connection: asyncpg.Connection, batch: Sequence[Accepted]) -> StoredBatch:
    """Store new events, refold their cases, keep first documents; all in one transaction."""
    result = StoredBatch()
    unique = first_occurrences(batch)
    async with connection.transaction():
        claimed = await queries.claim_event_ids(connection, event_ids=[a.event.event_id for a in unique])
        new = [a for a in unique if a.event.event_id in claimed]
        new_ids = {id(a) for a in new}
        for item in batch:
            bucket = result.stored if id(item) in new_ids else result.duplicates
            bucket[item.topic] += 1
        if new:
            await queries.ensure_event_partitions(
                connection, months={utc_month(a.event.occurred_at) for a in new}
            )
            await queries.insert_events(connection, records=[event_record(a) for a in new])
        await refold_cases(connection, unique, new, result)
        await keep_first_documents(connection, unique, result)
    return result


def utc_month(value: datetime) -> date:
    """Return the first day of the UTC month of an instant (the `events` partitions are UTC months)."""
    utc = value.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def event_record(item: Accepted) -> tuple[Any, ...]:
    """Return the `events` row of an accepted event."""
    event = item.event
    assert isinstance(event, CaseEvent | DocumentSent)
    subject = event.case_id if isinstance(event, CaseEvent) else event.document_id
    return (
        event.event_id,
        item.topic,
        event.event_type,
        event.unit_id,
        subject,
        event.occurred_at,
        {**item.body, **event.model_dump(mode="json", exclude_unset=True)},  # canonical timestamps
        item.record.partition,
        item.record.offset,
    )


async def refold_cases(
    connection: asyncpg.Connection, unique: Sequence[Accepted], new: Sequence[Accepted], result: StoredBatch
) -> None:
    """Append new events to their cases' histories, refold those cases and mark their cells dirty."""
    case_ids = sorted({a.event.case_id for a in unique if isinstance(a.event, CaseEvent)})
    if not case_ids:
        return
    histories = await queries.fetch_case_histories(connection, case_ids=case_ids)
    changed: set[str] = set()
    for item in new:
        if isinstance(item.event, CaseEvent):
            compact = item.event.model_dump(mode="json", exclude_none=True, exclude={"source"})
            histories.setdefault(item.event.case_id, []).append(compact)
            changed.add(item.event.case_id)
    states = [(fold_case(case_id, histories[case_id]), histories[case_id]) for case_id in sorted(changed)]
    await queries.upsert_cases(connection, states=states)
    for case_id in case_ids:
        mark_case_dirty(result, histories.get(case_id, []))


def mark_case_dirty(result: StoredBatch, history: Iterable[dict[str, Any]]) -> None:
    """Mark every (unit, day) a case's events, deadlines and rating can count on."""
    history = list(history)
    units = {event["unit_id"] for event in history}
    days = {local_day(parse_time(event["occurred_at"])) for event in history}
    days |= {local_day(parse_time(event["due_at"])) for event in history if event.get("due_at")}
    for unit_id in units:
        result.dirty[unit_id] |= days


async def keep_first_documents(
    connection: asyncpg.Connection, unique: Sequence[Accepted], result: StoredBatch
) -> None:
    """Upsert each document's earliest `sent` and mark old and new (unit, day) cells dirty."""
    earliest: dict[str, DocumentSent] = {}
    for item in unique:
        event = item.event
        if isinstance(event, DocumentSent):
            known = earliest.get(event.document_id)
            if known is None or event.occurred_at < known.occurred_at:
                earliest[event.document_id] = event
            result.dirty[event.unit_id].add(local_day(event.occurred_at))
    if not earliest:
        return
    for row in await queries.fetch_documents(connection, document_ids=list(earliest)):
        result.dirty[row["unit_id"]].add(local_day(row["sent_at"]))
    await queries.upsert_documents(
        connection,
        records=[
            (
                e.document_id,
                e.unit_id,
                e.occurred_at,
                e.medium,
                e.secrecy,
                e.digitally_signed,
                e.recipient_unit_id,
            )
            for e in earliest.values()
        ],
    )
