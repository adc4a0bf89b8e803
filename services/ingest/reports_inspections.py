"""Keep one row per report and per inspection (contract v1.1), from its first event, and name dirty cells."""

from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar

import asyncpg

from services.ingest import queries
from services.ingest.cells import Dirty, local_day
from shared.events import Event, InspectionCompleted, ReportSubmitted

E = TypeVar("E", ReportSubmitted, InspectionCompleted)


def first_by_subject(events: Sequence[E], subject: str) -> dict[str, E]:
    """Return each subject's first event: earliest occurred_at, ties to the lowest event_id."""
    first: dict[str, E] = {}
    for event in events:
        key = getattr(event, subject)
        known = first.get(key)
        if known is None or (event.occurred_at, event.event_id) < (known.occurred_at, known.event_id):
            first[key] = event
    return first


async def keep_first_reports(connection: asyncpg.Connection, events: Sequence[Event]) -> Dirty:
    """Upsert each report's first event; return its old and new (unit, day) cells."""
    first = first_by_subject([e for e in events if isinstance(e, ReportSubmitted)], "report_id")
    dirty: Dirty = defaultdict(set)
    if not first:
        return dirty
    for event in first.values():
        dirty[event.unit_id].add(local_day(event.occurred_at))
    for row in await queries.fetch_reports(connection, report_ids=list(first)):
        dirty[row["unit_id"]].add(local_day(row["submitted_at"]))
    await queries.upsert_reports(
        connection,
        records=[
            (
                e.report_id,
                e.event_id,
                e.unit_id,
                e.occurred_at,
                e.report_code,
                e.channel,
                e.connected_to_national_system,
                e.due_at,
            )
            for e in first.values()
        ],
    )
    return dirty


async def keep_first_inspections(connection: asyncpg.Connection, events: Sequence[Event]) -> Dirty:
    """Upsert each inspection's first event; return the inspecting and the inspected unit's cells."""
    first = first_by_subject([e for e in events if isinstance(e, InspectionCompleted)], "inspection_id")
    dirty: Dirty = defaultdict(set)
    if not first:
        return dirty
    for event in first.values():
        day = local_day(event.occurred_at)
        dirty[event.unit_id].add(day)
        dirty[event.inspected_unit_id].add(day)
    for row in await queries.fetch_inspections(connection, inspection_ids=list(first)):
        day = local_day(row["completed_at"])
        dirty[row["unit_id"]].add(day)
        dirty[row["inspected_unit_id"]].add(day)
    await queries.upsert_inspections(
        connection,
        records=[
            (e.inspection_id, e.event_id, e.unit_id, e.inspected_unit_id, e.occurred_at, e.topic, e.digital)
            for e in first.values()
        ],
    )
    return dirty
