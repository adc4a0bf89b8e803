"""KPI counts computed straight from the simulator's ground truth, independently of the services.

A deliberately plain reading of kpis.md (a third implementation, next to ingest's Python fold and the
recompute path's SQL fold): per case, walk its distinct events in occurred_at order.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

ICT = timezone(timedelta(hours=7))
Counts = dict[tuple[str, str], list[int]]  # (unit, kpi) -> [numerator, denominator]


def month_of(value: datetime) -> str:
    return value.astimezone(ICT).strftime("%Y-%m")


@dataclass
class Tally:
    """Counts for one month, per unit and KPI, plus the distinct-count sets."""

    month: str
    counts: Counts = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    procedures: dict[str, dict[str, bool]] = field(default_factory=lambda: defaultdict(dict))
    overdue: dict[str, dict[str, bool]] = field(default_factory=lambda: defaultdict(dict))
    inspected: set[str] = field(default_factory=set)
    unit_ids: tuple[str, ...] = ()

    def add(self, unit: str, kpi: str, good: bool) -> None:
        self.counts[(unit, kpi)][0] += int(good)
        self.counts[(unit, kpi)][1] += 1

    def result(self) -> dict[tuple[str, str], tuple[int, int]]:
        result = {key: (n, d) for key, (n, d) in self.counts.items()}
        for unit, codes in self.procedures.items():
            result[(unit, "online_offer_rate")] = (sum(codes.values()), len(codes))
        for unit, cases in self.overdue.items():
            result[(unit, "apology_coverage")] = (sum(cases.values()), len(cases))
        for unit in self.unit_ids:  # every registry unit is in the denominator, inspected or not
            result[(unit, "units_inspected_rate")] = (int(unit in self.inspected), 1)
        return result


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def expected_counts(
    truth: list[dict[str, Any]], month: str, now: datetime, unit_ids: tuple[str, ...] = ()
) -> dict[tuple[str, str], tuple[int, int]]:
    """Every v1.1 ratio KPI's counts per unit for one local month, from the good messages sent."""
    tally = Tally(month, unit_ids=unit_ids)
    cases: dict[str, list[dict[str, Any]]] = defaultdict(list)
    documents: dict[str, list[dict[str, Any]]] = defaultdict(list)
    reports: dict[str, list[dict[str, Any]]] = defaultdict(list)
    inspections: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: set[str] = set()
    for line in truth:
        event = line.get("event")
        if line["expected_reason"] is not None or event is None or event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        if "case_id" in event:
            cases[event["case_id"]].append(event)
        elif "document_id" in event:
            documents[event["document_id"]].append(event)
        elif "report_id" in event:
            reports[event["report_id"]].append(event)
        else:
            inspections[event["inspection_id"]].append(event)
    count_reports_and_inspections(tally, reports, inspections)
    for events in cases.values():
        count_case(tally, sorted(events, key=lambda e: parse(e["occurred_at"])), now)
    for events in documents.values():
        first = min(events, key=lambda e: parse(e["occurred_at"]))
        if month_of(parse(first["occurred_at"])) == month and first["secrecy"] == "normal":
            electronic = first["medium"] == "electronic"
            tally.add(first["unit_id"], "paperless_rate", electronic)
            if electronic:
                tally.add(first["unit_id"], "signed_rate", first["digitally_signed"])
    return tally.result()


def count_case(tally: Tally, events: list[dict[str, Any]], now: datetime) -> None:
    """Walk one case's events and add what it contributes to the month."""
    receipts = [e for e in events if e["event_type"] == "received"]
    if not receipts:
        return
    opening = receipts[0]
    unit, received_at = opening["unit_id"], parse(opening["occurred_at"])
    due = parse(opening["due_at"]) if opening.get("due_at") else None
    level_online = opening["service_level"] >= 3
    synced = bool(opening.get("synced_to_national_portal")) or any(
        e["event_type"] == "synced" for e in events
    )
    if month_of(received_at) == tally.month:
        tally.procedures[unit][opening["procedure_code"]] = (
            tally.procedures[unit].get(opening["procedure_code"], False) or level_online
        )
        if level_online:
            tally.add(unit, "online_intake_rate", opening["channel"] == "online")
            tally.add(unit, "portal_sync_rate", synced)
    ratings = [e for e in events if e["event_type"] == "rated"]
    if ratings and month_of(parse(ratings[-1]["occurred_at"])) == tally.month:
        tally.add(unit, "satisfaction_rate", ratings[-1]["rating"] in ("very_satisfied", "satisfied"))
    apologized = any(e["event_type"] == "apology_issued" for e in events)
    crossings, paused, since = [], False, received_at
    after_receipt = events[events.index(opening) + 1 :]
    for event in after_receipt:
        kind, at = event["event_type"], parse(event["occurred_at"])
        if kind not in ("supplement_requested", "supplement_received", "resolved", "refused", "withdrawn"):
            continue
        if not paused and due is not None and at > due:
            crossings.append(max(due, since))
        if kind == "supplement_requested":
            paused = True
            continue
        if kind == "supplement_received":
            paused, since = False, at
            due = parse(event["due_at"]) if due is not None else None
            continue
        if kind == "resolved" and due is not None and month_of(at) == tally.month:
            on_time = at <= due
            tally.add(unit, "on_time_rate", on_time)
        break
    else:
        if not paused and due is not None and now > due:
            crossings.append(max(due, since))
    if any(month_of(c) == tally.month for c in crossings):
        tally.overdue[unit][events[0]["case_id"]] = apologized


def first_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The event that counts: earliest occurred_at, ties to the lowest event_id."""
    return min(events, key=lambda e: (parse(e["occurred_at"]), e["event_id"]))


def count_reports_and_inspections(
    tally: Tally, reports: dict[str, list[dict[str, Any]]], inspections: dict[str, list[dict[str, Any]]]
) -> None:
    """kpis.md v1.1: each report and inspection once, in the month of its first event."""
    for events in reports.values():
        first = first_event(events)
        if month_of(parse(first["occurred_at"])) == tally.month:
            good = first["channel"] == "online" and first["connected_to_national_system"]
            tally.add(first["unit_id"], "online_report_rate", good)
    for events in inspections.values():
        first = first_event(events)
        if month_of(parse(first["occurred_at"])) == tally.month:
            tally.add(first["unit_id"], "digital_inspection_rate", first["digital"])
            if first["topic"] == "administrative_reform":
                tally.inspected.add(first["inspected_unit_id"])
