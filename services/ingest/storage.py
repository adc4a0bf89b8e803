"""Store one batch of accepted events in one transaction and name the (unit, day) cells it touched."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from services.ingest import queries
from services.ingest.cases import late_cases, plan_case_writes
from services.ingest.cells import Dirty, local_day, merge_dirty
from services.ingest.reports_inspections import keep_first_inspections, keep_first_reports
from services.ingest.validation import Accepted
from services.ingest.watermarks import Mark
from shared.events import CaseEvent, DocumentSent, Event, InspectionCompleted, ReportSubmitted


@dataclass(slots=True)
class StoredBatch:
    """What a batch changed: new events per topic, duplicates, and the dirty (unit, local day) cells."""

    stored: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    dirty: Dirty = field(default_factory=dict)

    def merge(self, other: "StoredBatch") -> None:
        """Add another batch's results to this one."""
        self.stored.update(other.stored)
        self.duplicates.update(other.duplicates)
        self.dirty = merge_dirty(self.dirty, other.dirty)


def first_occurrences(batch: Sequence[Accepted]) -> list[Accepted]:
    """Drop repeats of an event_id inside the batch: the first valid occurrence wins."""
    seen: set[str] = set()
    unique = []
    for item in batch:
        if item.event.event_id not in seen:
            seen.add(item.event.event_id)
            unique.append(item)
    return unique


async def store_batch(
    connection: asyncpg.Connection, batch: Sequence[Accepted], marks: Sequence[Mark] = ()
) -> StoredBatch:
    """Store new events, refold their cases, keep first documents, reports and inspections, advance the
    partitions' completeness watermark; all in one transaction."""
    unique = first_occurrences(batch)
    async with connection.transaction():
        claimed = await queries.claim_event_ids(connection, event_ids=[a.event.event_id for a in unique])
        new = [a for a in unique if a.event.event_id in claimed]
        if new:
            await queries.ensure_event_partitions(
                connection, months={utc_month(a.event.occurred_at) for a in new}
            )
            await queries.insert_events(connection, records=[event_record(a) for a in new])
        events = [a.event for a in unique]
        dirty = merge_dirty(
            await refold_cases(connection, unique, claimed),
            await keep_first_documents(connection, events),
            await keep_first_reports(connection, events),
            await keep_first_inspections(connection, events),
        )
        if marks:
            await queries.store_watermarks(
                connection, marks=[(m.topic, m.partition, m.next_offset, m.complete_until) for m in marks]
            )
    new_ids = {id(a) for a in new}
    return StoredBatch(
        stored=Counter(item.topic for item in batch if id(item) in new_ids),
        duplicates=Counter(item.topic for item in batch if id(item) not in new_ids),
        dirty=dirty,
    )


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
        item.payload,  # extra fields kept, timestamps in one canonical form
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
    connection: asyncpg.Connection, unique: Sequence[Accepted], claimed: set[str]
) -> Dirty:
    """Apply the new (`claimed`) events to their cases (`plan_case_writes`), write them, return the dirty
    cells."""
    case_events = [(a.event, a) for a in unique if isinstance(a.event, CaseEvent)]
    case_ids = sorted({event.case_id for event, _ in case_events})
    if not case_ids:
        return {}
    stored = await queries.fetch_case_states(connection, case_ids=case_ids)
    arrivals = [(event, a.canonical) for event, a in case_events if event.event_id in claimed]
    late = late_cases(stored, arrivals)
    histories = await queries.fetch_case_histories(connection, case_ids=late) if late else {}
    repeated = {event.case_id for event, _ in case_events if event.event_id not in claimed}
    writes, dirty = plan_case_writes(case_ids, stored, histories, arrivals, repeated)
    await queries.upsert_cases(connection, writes=writes)
    return dirty


async def keep_first_documents(connection: asyncpg.Connection, events: Sequence[Event]) -> Dirty:
    """Upsert each document's earliest `sent`; return the old and new (unit, day) cells."""
    earliest: dict[str, DocumentSent] = {}
    dirty: Dirty = {}
    for event in events:
        if isinstance(event, DocumentSent):
            known = earliest.get(event.document_id)
            if known is None or event.occurred_at < known.occurred_at:
                earliest[event.document_id] = event
            dirty.setdefault(event.unit_id, set()).add(local_day(event.occurred_at))
    if not earliest:
        return dirty
    for row in await queries.fetch_documents(connection, document_ids=list(earliest)):
        dirty.setdefault(row["unit_id"], set()).add(local_day(row["sent_at"]))
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
    return dirty
