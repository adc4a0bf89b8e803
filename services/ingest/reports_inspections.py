"""Keep one row per report and per inspection (contract v1.1), from its first event, and name dirty cells."""

from collections.abc import Sequence
from datetime import date
from typing import TypeVar

import asyncpg

from services.ingest import queries
from shared.events import Event, InspectionCompleted, ReportSubmitted
from shared.kpis import LOCAL_TZ

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


async def keep_first_reports(
    connection: asyncpg.Connection, events: Sequence[Event], dirty: dict[str, set[date]]
) -> None:
    """Upsert each report's first event and mark its old and new (unit, day) cells dirty."""
    first = first_by_subject([e for e in events if isinstance(e, ReportSubmitted)], "report_id")
    if not first:
        return
    for event in first.values():
        dirty[event.unit_id].add(event.occurred_at.astimezone(LOCAL_TZ).date())
    for row in await queries.fetch_reports(connection, report_ids=list(first)):
        dirty[row["unit_id"]].add(row["submitted_at"].astimezone(LOCAL_TZ).date())
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


async def keep_first_inspections(
    connection: asyncpg.Connection, events: Sequence[Event], dirty: dict[str, set[date]]
) -> None:
    """Upsert each inspection's first event; the inspecting and the inspected unit's cells are dirty."""
    first = first_by_subject([e for e in events if isinstance(e, InspectionCompleted)], "inspection_id")
    if not first:
        return
    for event in first.values():
        day = event.occurred_at.astimezone(LOCAL_TZ).date()
        dirty[event.unit_id].add(day)
        dirty[event.inspected_unit_id].add(day)
    for row in await queries.fetch_inspections(connection, inspection_ids=list(first)):
        day = row["completed_at"].astimezone(LOCAL_TZ).date()
        dirty[row["unit_id"]].add(day)
        dirty[row["inspected_unit_id"]].add(day)
    await queries.upsert_inspections(
        connection,
        records=[
            (e.inspection_id, e.event_id, e.unit_id, e.inspected_unit_id, e.occurred_at, e.topic, e.digital)
            for e in first.values()
        ],
    )
