"""Fold a case file's events, in any arrival order, into its current state (kpis.md, "Precise readings")."""

from dataclasses import dataclass, field
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from shared.kpis import LOCAL_TZ

TERMINAL_TYPES = frozenset({"resolved", "refused", "withdrawn"})


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


def classify_resolution(resolved_at: datetime, deadline: datetime) -> str:
    """Return early, on_time or late; early compares local dates."""
    if resolved_at > deadline:
        return "late"
    if resolved_at.astimezone(LOCAL_TZ).date() < deadline.astimezone(LOCAL_TZ).date():
        return "early"
    return "on_time"


def fold_case(case_id: str, history: list[dict[str, Any]]) -> CaseState:
    """Apply the events (listed in arrival order) in occurred_at order; ties keep arrival order."""
    return apply_events(CaseState(case_id), history)


def apply_events(state: CaseState, events: list[dict[str, Any]]) -> CaseState:
    """Apply events (in arrival order) to a state, in occurred_at order.

    Continuing from a stored state is exact when no new event is earlier than the last one applied:
    the result then equals folding the whole history (ingest's fast path for in-order arrival).
    """
    timed = [(parse_time(event["occurred_at"]), event) for event in events]
    if len(timed) > 1:
        timed.sort(key=itemgetter(0))  # stable: ties keep arrival order
    for at, event in timed:
        kind = event["event_type"]
        if kind == "received" and state.received_at is None:
            open_case(state, event, at)
        elif kind in ("apology_issued", "rated", "synced", "returned"):
            apply_annotation(state, kind, event, at)
        elif state.received_at is not None and state.close_type is None:
            apply_transition(state, kind, event, at)
        state.last_event_at = at if state.last_event_at is None else max(state.last_event_at, at)
    return state


def count_days(state: CaseState) -> set[date]:
    """Return the local days on which this state can count in any KPI cell."""
    instants = [
        state.received_at,
        state.closed_at,
        state.rated_at,
        state.deadline,
        state.clock_since,
        *state.overdue_at,
    ]
    return {instant.astimezone(LOCAL_TZ).date() for instant in instants if instant is not None}


def parse_time(value: str | None) -> datetime:
    """Parse a stored ISO timestamp (always with an offset)."""
    assert value is not None
    return datetime.fromisoformat(value)


def open_case(state: CaseState, event: dict[str, Any], at: datetime) -> None:
    """Open the case with its first `received`."""
    state.unit_id = event["unit_id"]
    state.received_at = at
    state.procedure_code = event["procedure_code"]
    state.channel = event["channel"]
    state.service_level = event["service_level"]
    state.synced = state.synced or bool(event.get("synced_to_national_portal"))
    state.deadline = parse_time(event["due_at"]) if event.get("due_at") else None
    state.clock_since = at


def apply_annotation(state: CaseState, kind: str, event: dict[str, Any], at: datetime) -> None:
    """Apply the events that count even before the receipt and after the closure."""
    if kind == "apology_issued" and state.apology_at is None:
        state.apology_at = at
    elif kind == "rated":
        state.rating, state.rated_at = event["rating"], at
    elif kind == "synced":
        state.synced = True
    elif kind == "returned" and state.returned_at is None:
        state.returned_at = at


def apply_transition(state: CaseState, kind: str, event: dict[str, Any], at: datetime) -> None:
    """Apply a pause, a resume or a closure to an open case."""
    if state.paused_since is None and kind in TERMINAL_TYPES | {
        "supplement_requested",
        "supplement_received",
    }:
        end_running_stretch(state, at)
    if kind == "supplement_requested":
        state.paused_since = state.paused_since or at
    elif kind == "supplement_received":
        state.paused_since = None
        state.clock_since = at
        if state.deadline is not None:
            state.deadline = parse_time(event["due_at"])
    elif kind in TERMINAL_TYPES:
        state.closed_at, state.close_type = at, kind
        if kind == "resolved":
            state.outcome = event["outcome"]
            state.timeliness = classify_resolution(at, state.deadline) if state.deadline else None


def end_running_stretch(state: CaseState, until: datetime) -> None:
    """Record the instant the case became overdue if the running stretch ending now crossed its deadline."""
    if state.deadline is not None and state.clock_since is not None and until > state.deadline:
        state.overdue_at.append(max(state.deadline, state.clock_since))
