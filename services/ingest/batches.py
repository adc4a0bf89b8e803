"""Store one batch of accepted events in one transaction and name the (unit, day) cells it touched."""

from collections import defaultdict
from collections.abc import Sequence
from copy import copy
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord

from services.ingest import queries
from services.ingest.cases import CaseState, apply_events, count_days, fold_case
from services.ingest.reports_inspections import keep_first_inspections, keep_first_reports
from shared.events import CaseEvent, DocumentSent, Event, InspectionCompleted, ReportSubmitted
from shared.kpis import LOCAL_TZ


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid event with the raw body it came from and its Kafka position."""

    topic: str
    event: Event
    body: dict[str, Any]
    record: ConsumerRecord
    canonical: dict[str, Any] = field(
        default_factory=dict
    )  # the validated fields as JSON, timestamps normalised

    def __post_init__(self) -> None:
        if not self.canonical:
            object.__setattr__(self, "canonical", self.event.model_dump(mode="json", exclude_unset=True))


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


@dataclass(frozen=True, slots=True)
class Mark:
    """How far one input partition is stored, and the instant its data is complete up to."""

    topic: str  # with the deployment's prefix
    partition: int
    next_offset: int
    complete_until: datetime


async def store_batch(
    connection: asyncpg.Connection, batch: Sequence[Accepted], marks: Sequence[Mark] = ()
) -> StoredBatch:
    """Store new events, refold their cases, keep first documents, advance the partitions'
    completeness watermark; all in one transaction."""
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
        await keep_first_reports(connection, [a.event for a in unique], result.dirty)
        await keep_first_inspections(connection, [a.event for a in unique], result.dirty)
        if marks:
            await queries.store_watermarks(
                connection, marks=[(m.topic, m.partition, m.next_offset, m.complete_until) for m in marks]
            )
    return result


def utc_month(value: datetime) -> date:
    """Return the first day of the UTC month of an instant (the `events` partitions are UTC months)."""
    utc = value.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def event_record(item: Accepted) -> tuple[Any, ...]:
    """Return the `events` row of an accepted event."""
    event = item.event
    return (
        event.event_id,
        item.topic,
        event.event_type,
        event.unit_id,
        subject_of(event),
        event.occurred_at,
        {**item.body, **item.canonical},  # extra fields kept, timestamps in one canonical form
        item.record.partition,
        item.record.offset,
    )


def subject_of(event: Event) -> str:
    """Return the id of what an event is about: its case, document, report or inspection."""
    if isinstance(event, CaseEvent):
        return event.case_id
    if isinstance(event, DocumentSent):
        return event.document_id
    if isinstance(event, ReportSubmitted):
        return event.report_id
    assert isinstance(event, InspectionCompleted)
    return event.inspection_id


async def refold_cases(
    connection: asyncpg.Connection, unique: Sequence[Accepted], new: Sequence[Accepted], result: StoredBatch
) -> None:
    """Apply new events to their cases and mark dirty every (unit, day) the old or new states count on.

    Events arriving in order (none earlier than the case's last event) continue from the stored state
    and are appended to its history; a late event refolds the case from its whole history.
    """
    case_ids = sorted({a.event.case_id for a in unique if isinstance(a.event, CaseEvent)})
    if not case_ids:
        return
    stored = await queries.fetch_case_states(connection, case_ids=case_ids)
    arrivals: dict[str, list[dict[str, Any]]] = defaultdict(list)
    earliest: dict[str, datetime] = {}
    for item in new:
        if isinstance(item.event, CaseEvent):
            case_id, at = item.event.case_id, item.event.occurred_at
            arrivals[case_id].append(item.canonical)
            earliest[case_id] = min(earliest.get(case_id, at), at)
    late = [c for c in arrivals if c in stored and is_late(stored[c], earliest[c])]
    histories = await queries.fetch_case_histories(connection, case_ids=late) if late else {}
    writes = []
    new_states: dict[str, CaseState] = {}
    for case_id, events in arrivals.items():
        if case_id in histories:
            history = histories[case_id] + events
            new_states[case_id] = fold_case(case_id, history)
            writes.append((new_states[case_id], history, False))
        elif case_id in stored:
            old = stored[case_id]
            continued = copy(old)
            continued.overdue_at = list(old.overdue_at)
            new_states[case_id] = apply_events(continued, events)
            writes.append((new_states[case_id], events, True))
        else:
            new_states[case_id] = fold_case(case_id, events)
            writes.append((new_states[case_id], events, False))
    await queries.upsert_cases(connection, writes=writes)
    for case_id in case_ids:
        for state in (stored.get(case_id), new_states.get(case_id)):
            if state is not None and state.unit_id is not None:
                result.dirty[state.unit_id] |= count_days(state)


def is_late(state: CaseState, earliest_new: datetime) -> bool:
    """Return True if a new event is earlier than the last one the stored state applied."""
    return state.last_event_at is not None and earliest_new < state.last_event_at


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
