"""Fold a case file's events, in any arrival order, into its current state (kpis.md, "Precise readings"),
and plan the `cases` writes of a batch: pure functions, no I/O."""

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

import orjson

from services.ingest.cells import Dirty, local_days
from shared.events import (
    CASE_EVENT_TYPES,
    ApologyIssued,
    CaseEvent,
    CaseRated,
    CaseReceived,
    CaseRefused,
    CaseResolved,
    CaseSynced,
    CaseWithdrawn,
    ResultReturned,
    SupplementReceived,
    SupplementRequested,
)
from shared.kpis import LOCAL_TZ

TERMINAL = (CaseResolved, CaseRefused, CaseWithdrawn)
ANNOTATIONS = (ApologyIssued, CaseRated, CaseSynced, ResultReturned)  # count before receipt and after closure
JsonObject = dict[str, Any] | bytes  # a JSON object, or its bytes as they came (already canonical)
Arrival = tuple[CaseEvent, JsonObject]  # a new event and its JSON form, as the case's history keeps it


@dataclass(slots=True)
class CaseState:
    """The `cases` row of one case file."""

    case_id: str
    unit_id: str | None = None
    received_at: datetime | None = None
    procedure_code: str | None = None
    channel: str | None = None
    service_level: int | None = None
    synced: bool = False
    deadline: datetime | None = None
    clock_since: datetime | None = None
    paused_since: datetime | None = None
    closed_at: datetime | None = None
    close_type: str | None = None
    outcome: str | None = None
    timeliness: str | None = None
    returned_at: datetime | None = None
    apology_at: datetime | None = None
    rating: str | None = None
    rated_at: datetime | None = None
    overdue_at: list[datetime] = field(default_factory=list)
    last_event_at: datetime | None = None  # latest occurred_at applied (the fast path's precondition)


STATE_FIELDS = [f.name for f in fields(CaseState)]
state_values = attrgetter(*STATE_FIELDS)  # a state as the tuple of its fields, in column order


def copy_state(state: CaseState) -> CaseState:
    """Return a copy of a state that can be changed without changing the original."""
    copied = CaseState(*state_values(state))
    copied.overdue_at = list(state.overdue_at)
    return copied


@dataclass(frozen=True, slots=True)
class CaseWrite:
    """One `cases` upsert: the new state, and the events that extend (`append`) or replace its history."""

    state: CaseState
    history: list[JsonObject]
    append: bool


def parse_stored_event(item: JsonObject) -> CaseEvent:
    """Read back an event of a stored history (validated when it arrived)."""
    body = orjson.loads(item) if isinstance(item, bytes) else item
    return CASE_EVENT_TYPES[body["event_type"]].model_validate(body, context={"stored": True})


def classify_resolution(resolved_at: datetime, deadline: datetime) -> str:
    """Return early, on_time or late; early compares local dates."""
    if resolved_at > deadline:
        return "late"
    if resolved_at.astimezone(LOCAL_TZ).date() < deadline.astimezone(LOCAL_TZ).date():
        return "early"
    return "on_time"


def fold_case(case_id: str, history: Sequence[CaseEvent]) -> CaseState:
    """Apply the events (listed in arrival order) in occurred_at order; ties keep arrival order."""
    return apply_events(CaseState(case_id), history)


def apply_events(state: CaseState, events: Sequence[CaseEvent]) -> CaseState:
    """Apply events (in arrival order) to a state, in occurred_at order.

    Continuing from a stored state is exact when no new event is earlier than the last one applied:
    the result then equals folding the whole history (ingest's fast path for in-order arrival).
    """
    for event in sorted(events, key=lambda e: e.occurred_at):  # stable: ties keep arrival order
        at = event.occurred_at
        if isinstance(event, CaseReceived) and state.received_at is None:
            open_case(state, event)
        elif isinstance(event, ANNOTATIONS):
            apply_annotation(state, event)
        elif state.received_at is not None and state.close_type is None:
            apply_transition(state, event)
        state.last_event_at = at if state.last_event_at is None else max(state.last_event_at, at)
    return state


def count_instants(state: CaseState) -> list[datetime | None]:
    """Return the instants whose local days this state can count on in any KPI cell."""
    return [instant for _, instants in CELL_KINDS for instant in instants(state)]


def intake_instants(state: CaseState) -> list[datetime | None]:
    """online_intake_rate, portal_sync_rate and procedure_days count a case on its day of receipt."""
    return [state.received_at]


def resolution_instants(state: CaseState) -> list[datetime | None]:
    """on_time_rate counts a resolved case on its day of closure."""
    return [state.closed_at]


def rating_instants(state: CaseState) -> list[datetime | None]:
    """satisfaction_rate counts a rated case on its day of rating."""
    return [state.rated_at]


def overdue_instants(state: CaseState) -> list[datetime | None]:
    """overdue_days counts a case on each day it became overdue: its past crossings, or greatest(deadline,
    clock_since) while it runs open (as of a `now` that ingest does not know: both days)."""
    return [state.deadline, state.clock_since, *state.overdue_at]


# Each kind of cell: the state fields it reads, and the instants whose days it counts the case on.
CELL_KINDS: tuple[tuple[Callable[[CaseState], Any], Callable[[CaseState], list[datetime | None]]], ...] = (
    (attrgetter("received_at", "procedure_code", "channel", "service_level", "synced"), intake_instants),
    (attrgetter("closed_at", "close_type", "timeliness"), resolution_instants),
    (attrgetter("rated_at", "rating"), rating_instants),
    (
        attrgetter("deadline", "clock_since", "paused_since", "closed_at", "overdue_at", "apology_at"),
        overdue_instants,
    ),
)


def changed_instants(old: CaseState, new: CaseState) -> list[datetime | None]:
    """Return the instants, in both states of a case (same unit), of the kinds of cell whose fields
    differ: a rating dirties its rating days only, a return of the result no day at all."""
    return [
        instant
        for fields_of, instants in CELL_KINDS
        if fields_of(old) != fields_of(new)
        for state in (old, new)
        for instant in instants(state)
    ]


def open_case(state: CaseState, event: CaseReceived) -> None:
    """Open the case with its first `received`."""
    state.unit_id = event.unit_id
    state.received_at = event.occurred_at
    state.procedure_code = event.procedure_code
    state.channel = event.channel
    state.service_level = event.service_level
    state.synced = state.synced or bool(event.synced_to_national_portal)
    state.deadline = event.due_at
    state.clock_since = event.occurred_at


def apply_annotation(state: CaseState, event: CaseEvent) -> None:
    """Apply the events that count even before the receipt and after the closure."""
    at = event.occurred_at
    if isinstance(event, ApologyIssued) and state.apology_at is None:
        state.apology_at = at
    elif isinstance(event, CaseRated):
        state.rating, state.rated_at = event.rating, at
    elif isinstance(event, CaseSynced):
        state.synced = True
    elif isinstance(event, ResultReturned) and state.returned_at is None:
        state.returned_at = at


def apply_transition(state: CaseState, event: CaseEvent) -> None:
    """Apply a pause, a resume or a closure to an open case."""
    at = event.occurred_at
    if state.paused_since is None and isinstance(event, (*TERMINAL, SupplementRequested, SupplementReceived)):
        end_running_stretch(state, at)
    if isinstance(event, SupplementRequested):
        state.paused_since = state.paused_since or at
    elif isinstance(event, SupplementReceived):
        state.paused_since = None
        state.clock_since = at
        if state.deadline is not None:
            state.deadline = event.due_at
    elif isinstance(event, TERMINAL):
        state.closed_at, state.close_type = at, event.event_type
        if isinstance(event, CaseResolved):
            state.outcome = event.outcome
            state.timeliness = classify_resolution(at, state.deadline) if state.deadline else None


def end_running_stretch(state: CaseState, until: datetime) -> None:
    """Record the instant the case became overdue if the running stretch ending now crossed its deadline."""
    if state.deadline is not None and state.clock_since is not None and until > state.deadline:
        state.overdue_at.append(max(state.deadline, state.clock_since))


def arrivals_by_case(arrivals: Iterable[Arrival]) -> dict[str, list[Arrival]]:
    """Group new events by case, keeping arrival order."""
    grouped: dict[str, list[Arrival]] = defaultdict(list)
    for arrival in arrivals:
        grouped[arrival[0].case_id].append(arrival)
    return grouped


def late_cases(stored: Mapping[str, CaseState], arrivals: Iterable[Arrival]) -> list[str]:
    """Return the stored cases that a new event reaches earlier than their last applied event: those
    are refolded from their whole history (the others continue from the stored state)."""
    return [
        case_id
        for case_id, events in arrivals_by_case(arrivals).items()
        if case_id in stored and is_late(stored[case_id], min(event.occurred_at for event, _ in events))
    ]


def is_late(state: CaseState, earliest_new: datetime) -> bool:
    """Return True if a new event is earlier than the last one the stored state applied."""
    return state.last_event_at is not None and earliest_new < state.last_event_at


def plan_case_writes(
    case_ids: Iterable[str],
    stored: Mapping[str, CaseState],
    histories: Mapping[str, list[JsonObject]],
    arrivals: Iterable[Arrival],
    repeated: Collection[str] = (),
) -> tuple[list[CaseWrite], Dirty]:
    """Return the `cases` writes of a batch's new events and the cells they dirty.

    `case_ids` are the cases the batch names (new events or repeats), `stored` their stored states,
    `histories` the stored histories of the late cases (`late_cases`), `repeated` the cases the batch
    repeats an event of. A late case is refolded from its history; a known case continues from its
    stored state (its history is appended to); a new case is folded from its events.

    A case with new events only dirties the days of the kinds of cell whose fields changed
    (`changed_instants`). A case with a repeated event dirties every (unit, day) its old and new states
    count on: the repeat may be the replay of a batch stored before a crash whose dirty cells were
    never published.
    """
    writes = [
        plan_case_write(case_id, events, stored, histories)
        for case_id, events in arrivals_by_case(arrivals).items()
    ]
    new_states = {write.state.case_id: write.state for write in writes}
    instants: dict[str, set[datetime | None]] = defaultdict(set)
    for case_id in case_ids:
        old, new = stored.get(case_id), new_states.get(case_id)
        if old is not None and new is not None and old.unit_id == new.unit_id and case_id not in repeated:
            if new.unit_id is not None:
                instants[new.unit_id].update(changed_instants(old, new))
            continue
        for state in (old, new):
            if state is not None and state.unit_id is not None:
                instants[state.unit_id].update(count_instants(state))
    return writes, {unit_id: days for unit_id, found in instants.items() if (days := local_days(found))}


def plan_case_write(
    case_id: str,
    events: list[Arrival],
    stored: Mapping[str, CaseState],
    histories: Mapping[str, list[JsonObject]],
) -> CaseWrite:
    """Return the write of one case with new events."""
    new = [event for event, _ in events]
    bodies = [body for _, body in events]
    if case_id in histories:
        history = histories[case_id]
        state = fold_case(case_id, [*map(parse_stored_event, history), *new])
        return CaseWrite(state, history + bodies, append=False)
    if case_id in stored:
        return CaseWrite(apply_events(copy_state(stored[case_id]), new), bodies, append=True)
    return CaseWrite(fold_case(case_id, new), bodies, append=False)
