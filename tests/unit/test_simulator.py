"""The simulator without Kafka: determinism, contract validity, bad input, realism of volumes and habits."""

import random
from collections import Counter, defaultdict
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from cli.simulate import simulate_command
from shared import topics
from shared.events import (
    REASON_CODES,
    CaseEvent,
    CaseRated,
    CaseReceived,
    DocumentSent,
    Event,
    Rejection,
    SupplementReceived,
    parse_event,
)
from shared.units import Head, Level, Registry, Unit, read_registry
from simulator import Pacer, SimEvent, generate_events, read_truth, record_truth
from simulator.bad import Breaker, applicable_reasons
from simulator.calendar import ICT, WORKDAY, WorkCalendar, iso, to_local
from simulator.profiles import COMMUNE, DISTRICT, PROVINCE, build_profiles, level_roles
from tests.factories import small_registry

REPO = Path(__file__).resolve().parents[2]
REAL_2021 = REPO / "deploy" / "units" / "ha-tinh-2021.yaml"
COMMUNES = tuple(f"p.district.xa-{n}" for n in range(8))
UNIT_IDS = frozenset(unit.id for unit in small_registry(*COMMUNES).units)


def simulate(**options: Any) -> list[SimEvent]:
    """Generate events of the small registry (options override a short, busy March 2021 week)."""
    settings: dict[str, Any] = {"start": date(2021, 3, 1), "days": 7, "seed": 7, "scale": 0.05, **options}
    registry = settings.pop("registry", small_registry(*COMMUNES))
    return list(generate_events(registry, **settings))


@cache
def month() -> tuple[list[SimEvent], list[Event]]:
    """Return a month of the small registry, raw and parsed (shared by the slower tests)."""
    events = simulate(days=31, scale=0.25)
    return events, parsed(events)


def reason_of(event: SimEvent, unit_ids: frozenset[str] = UNIT_IDS) -> str | None:
    """Return the contract's verdict on a message: its reason code, or None when it is good."""
    outcome = parse_event(event.topic, event.value)
    if isinstance(outcome, Rejection):
        return outcome.reason
    named = [outcome.unit_id, getattr(outcome, "inspected_unit_id", outcome.unit_id)]
    return None if all(unit_id in unit_ids for unit_id in named) else "unknown_unit"


def parsed(events: list[SimEvent]) -> list[Event]:
    """Parse good events (asserting they are good)."""
    result = [parse_event(event.topic, event.value) for event in events if event.expected_reason is None]
    assert not [outcome for outcome in result if isinstance(outcome, Rejection)]
    return [outcome for outcome in result if isinstance(outcome, Event)]


def cases_of(events: list[Event]) -> dict[str, dict[str, CaseEvent]]:
    """Group case events by case id, then by event type."""
    cases: dict[str, dict[str, CaseEvent]] = defaultdict(dict)
    for event in events:
        if isinstance(event, CaseEvent):
            cases[event.case_id][event.event_type] = event
    return cases


def test_the_same_seed_gives_identical_bytes_and_another_seed_other_ones() -> None:
    disturbed = {"bad_rate": 0.05, "duplicate_rate": 0.05, "shuffle_window": 50}
    first, again = simulate(**disturbed), simulate(**disturbed)
    assert len(first) > 1000
    assert first == again
    assert [event.value for event in simulate(seed=8, **disturbed)] != [event.value for event in first]


def test_every_good_event_passes_the_contract_and_names_a_registry_unit_as_key() -> None:
    events = simulate(days=14)
    assert {reason_of(event) for event in events} == {None}
    assert all(
        event.key.decode() == outcome.unit_id for event, outcome in zip(events, parsed(events), strict=True)
    )


def test_every_event_type_of_the_contract_appears_in_a_month() -> None:
    types = Counter(outcome.event_type for outcome in month()[1])
    assert set(types) == {
        "received",
        "supplement_requested",
        "supplement_received",
        "resolved",
        "returned",
        "refused",
        "withdrawn",
        "apology_issued",
        "rated",
        "synced",
        "sent",
        "report_submitted",
        "inspection_completed",
    }


def test_events_are_sent_in_occurred_at_order_without_a_shuffle_window() -> None:
    stamps = [event.ts for event in simulate()]
    assert stamps == sorted(stamps)


def test_each_injected_bad_message_is_rejected_with_exactly_its_intended_reason() -> None:
    events = simulate(days=14, bad_rate=0.2)
    bad = [event for event in events if event.expected_reason is not None]
    assert [reason_of(event) for event in bad] == [event.expected_reason for event in bad]
    assert {event.expected_reason for event in bad} == set(REASON_CODES)
    assert 0.1 < len(bad) / len(events) < 0.25


@pytest.mark.parametrize("reason", REASON_CODES)
def test_every_mutation_of_every_event_type_gives_its_reason(reason: str) -> None:
    samples = {orjson.loads(event.value)["event_type"]: event for event in month()[0]}
    samples["received-without-deadline"] = received_without_deadline()
    for sample in samples.values():
        body = orjson.loads(sample.value)
        if reason not in applicable_reasons(body):
            continue
        for seed in range(40):
            value = Breaker(random.Random(seed), UNIT_IDS).bad_message(body, reason)
            assert reason_of(sample._replace(value=value)) == reason, (reason, value)


def received_without_deadline() -> SimEvent:
    body = {
        "event_id": "e1",
        "event_type": "received",
        "occurred_at": "2021-03-01T08:00:00+07:00",
        "unit_id": "p.agency",
        "case_id": "c1",
        "procedure_code": "1.004227",
        "channel": "online",
        "service_level": 4,
        "due_at": None,
        "synced_to_national_portal": True,
    }
    return SimEvent(topics.CASE_EVENTS, b"p.agency", orjson.dumps(body), 0.0)


def test_volumes_per_level_follow_the_provinces_split() -> None:
    registry = small_registry(*COMMUNES)
    level = {unit.id: unit.level for unit in registry.units}
    received = Counter(
        level[e.unit_id] for e in parsed(simulate(days=14, scale=0.3)) if isinstance(e, CaseReceived)
    )
    total = sum(received.values())
    expected = {"province": 77_833, "district": 119_649, "commune": 675_905}
    for name, volume in expected.items():
        assert received[name] / total == pytest.approx(volume / sum(expected.values()), rel=0.15)
    assert total == pytest.approx(873_387 / 250 * 0.3 * 10, rel=0.1)  # ten working days


def test_levels_are_data_first_is_province_last_is_commune_between_is_district() -> None:
    def registry(*levels: str) -> Registry:
        head = Head(name="Thủ trưởng", email="head@dvc-monitor.example")
        units = [
            Unit(id=f"u-{level}-{n}", name="Đơn vị", level=level, head=head)
            for level in levels
            for n in range(3)
        ]
        return Registry(
            registry="x", levels=[Level(id=lv, name=lv, name_en=lv) for lv in levels], units=units
        )

    four = level_roles(registry("tinh", "vung", "huyen", "xa"))
    assert [role for role, _ in four.values()] == [PROVINCE, DISTRICT, DISTRICT, COMMUNE]
    assert four["vung"][1] + four["huyen"][1] == pytest.approx(DISTRICT.cases_per_year)
    two = level_roles(registry("tinh", "xa"))
    assert two["xa"][1] == COMMUNE.cases_per_year + DISTRICT.cases_per_year
    assert two["xa"][0].catalogue_size == COMMUNE.catalogue_size + DISTRICT.catalogue_size
    assert level_roles(registry("tinh"))["tinh"][1] == 873_387


def test_cases_are_received_in_working_hours_on_working_days_only() -> None:
    events = parsed(simulate(start=date(2021, 4, 26), days=14, scale=0.2))
    received = [e.occurred_at.astimezone(ICT) for e in events if isinstance(e, CaseReceived)]
    assert received
    morning, afternoon = (time(7), time(11, 30)), (time(13, 30), time(17))
    for moment in received:
        assert morning[0] <= moment.time() <= morning[1] or afternoon[0] <= moment.time() <= afternoon[1]
        assert moment.weekday() < 5
    assert {moment.date() for moment in received}.isdisjoint({date(2021, 4, 30), date(2021, 5, 3)})


def test_deadlines_count_working_time_and_skip_weekends_and_holidays() -> None:
    calendar = WorkCalendar(date(2021, 1, 1), date(2025, 12, 31))

    def due(moment: str, days: float) -> str:
        return iso(calendar.add_working_days(to_local(datetime.fromisoformat(moment)), days))

    assert due("2021-04-29T09:00", 1) == "2021-05-04T09:00:00+07:00"  # 30/4, 1/5 and 3/5 (bù) are off
    assert due("2021-04-20T15:00", 1) == "2021-04-22T15:00:00+07:00"  # Giỗ Tổ Hùng Vương 21/4
    assert due("2021-03-05T16:00", 1) == "2021-03-08T16:00:00+07:00"  # the weekend
    assert due("2021-03-04T18:30", 1) == "2021-03-05T17:00:00+07:00"  # after hours: counts from 07:00
    assert due("2021-03-04T12:00", 0.5) == "2021-03-05T07:30:00+07:00"  # lunch: 13:30-17:00, then 07:00-07:30
    assert due("2021-03-01T07:00", 15) == "2021-03-19T17:00:00+07:00"
    assert due("2025-04-25T09:00", 1) == "2025-04-26T09:00:00+07:00"  # make-up working Saturday


def test_generated_deadlines_are_whole_working_days_and_supplements_stop_the_clock() -> None:
    events = month()[1]
    calendar = WorkCalendar(date(2021, 3, 1), date(2021, 12, 31))

    def work(moment: datetime) -> int:
        return calendar.work_at(to_local(moment))

    cases = cases_of(events)
    assert any(case.get("supplement_received") for case in cases.values())
    for case in cases.values():
        received = case.get("received")
        if not isinstance(received, CaseReceived) or received.due_at is None:
            continue
        allowed = work(received.due_at) - work(received.occurred_at)
        assert allowed % WORKDAY == 0 and WORKDAY <= allowed <= 15 * WORKDAY
        asked, supplied = case.get("supplement_requested"), case.get("supplement_received")
        if asked and isinstance(supplied, SupplementReceived):
            pause = work(supplied.occurred_at) - work(asked.occurred_at)
            assert work(supplied.due_at) == work(received.due_at) + pause


def test_each_case_chain_is_in_causal_order() -> None:
    order = ["received", "supplement_requested", "supplement_received", "resolved", "returned", "rated"]
    for case in cases_of(month()[1]).values():
        stamps = [case[name].occurred_at for name in order if name in case]
        assert stamps == sorted(stamps)
        assert sum(name in case for name in ("resolved", "refused", "withdrawn")) <= 1


def test_lateness_propensity_varies_per_unit_and_few_units_are_chronically_late() -> None:
    registry = small_registry(*(f"p.district.xa-{n}" for n in range(97)))
    rates = sorted(profile.late_rate for profile in build_profiles(registry, seed=3))
    chronic = [rate for rate in rates if rate >= 0.05]
    assert 1 <= len(chronic) <= 10
    assert rates[len(rates) // 2] < 0.01
    assert rates[-1] / rates[0] > 10


@pytest.mark.skipif(not REAL_2021.exists(), reason="deploy/units/ha-tinh-2021.yaml not written yet")
def test_the_real_registry_is_about_99_percent_on_time_and_91_to_97_percent_satisfied() -> None:
    events = parsed(simulate(registry=read_registry(REAL_2021), days=14, scale=0.2))
    late = early_or_on_time = 0
    for case in cases_of(events).values():
        received, resolved = case.get("received"), case.get("resolved")
        if not isinstance(received, CaseReceived) or resolved is None or received.due_at is None:
            continue
        deadline = getattr(case.get("supplement_received"), "due_at", received.due_at)
        late += resolved.occurred_at > deadline
        early_or_on_time += resolved.occurred_at <= deadline
    assert 0.975 < early_or_on_time / (late + early_or_on_time) < 0.998
    ratings = Counter(event.rating for event in events if isinstance(event, CaseRated))
    assert 0.91 <= 1 - ratings["dissatisfied"] / sum(ratings.values()) <= 0.97


def test_communes_send_fewer_paperless_documents_than_province_agencies() -> None:
    registry = small_registry(*COMMUNES)
    level = {unit.id: unit.level for unit in registry.units}
    electronic: dict[str, Counter[bool]] = defaultdict(Counter)
    secrecy: Counter[str] = Counter()
    for event in month()[1]:
        if isinstance(event, DocumentSent):
            secrecy[event.secrecy] += 1
            if event.secrecy == "normal":
                electronic[level[event.unit_id]][event.medium == "electronic"] += 1

    def share(name: str) -> float:
        return electronic[name][True] / sum(electronic[name].values())

    assert share("commune") < share("province")
    assert secrecy["normal"] / sum(secrecy.values()) > 0.95


def test_online_intake_is_highest_at_province_level_and_only_for_levels_3_and_4() -> None:
    registry = small_registry(*COMMUNES)
    level = {unit.id: unit.level for unit in registry.units}
    online: dict[str, Counter[bool]] = defaultdict(Counter)
    for event in month()[1]:
        if isinstance(event, CaseReceived):
            assert event.channel != "online" or event.service_level >= 3
            if event.service_level >= 3:
                online[level[event.unit_id]][event.channel == "online"] += 1
    shares = {name: counts[True] / sum(counts.values()) for name, counts in online.items()}
    assert shares["province"] > shares["commune"]


def test_duplicates_are_verbatim_and_a_shuffle_only_reorders() -> None:
    plain = simulate()
    disturbed = simulate(duplicate_rate=0.1, shuffle_window=100)
    originals = [event for event in disturbed if not event.duplicate]
    copies = [event for event in disturbed if event.duplicate]
    assert Counter(originals) == Counter(plain)
    assert copies and set(copies) <= {event._replace(duplicate=True) for event in plain}
    assert [event.ts for event in disturbed] != sorted(event.ts for event in disturbed)


def test_the_ground_truth_file_holds_every_message_as_sent(tmp_path: Path) -> None:
    events = simulate(bad_rate=0.05, duplicate_rate=0.05)
    path = tmp_path / "truth.jsonl"
    with path.open("wb") as lines:
        assert list(record_truth(events, lines)) == events
    truth = list(read_truth(path))
    assert len(truth) == len(events)
    for line, event in zip(truth, events, strict=True):
        assert (line["topic"], line["key"].encode(), line["expected_reason"], line["duplicate"]) == (
            event.topic,
            event.key,
            event.expected_reason,
            event.duplicate,
        )
        if event.expected_reason is None:
            assert line["event"] == orjson.loads(event.value)
        else:
            assert (
                line.get("raw", "").encode() == event.value
                or bytes.fromhex(line.get("raw_hex", "")) == event.value
            )


def test_the_command_dry_run_writes_the_truth_and_fast_mode_needs_a_start(tmp_path: Path) -> None:
    registry = tmp_path / "units.yaml"
    registry.write_text(orjson.dumps(small_registry(*COMMUNES).model_dump(mode="json")).decode())
    truth = tmp_path / "truth.jsonl"
    runner, app = CliRunner(), typer.Typer()
    app.command()(simulate_command)
    result = runner.invoke(
        app,
        [
            "--registry",
            str(registry),
            "--mode",
            "fast",
            "--start",
            "2021-03-01",
            "--days",
            "2",
            "--scale",
            "0.05",
            "--bad-rate",
            "0.01",
            "--dry-run",
            "--truth",
            str(truth),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(truth.read_bytes().splitlines()) > 100
    assert runner.invoke(app, ["--registry", str(registry), "--mode", "fast", "--dry-run"]).exit_code == 2


def test_the_pacer_maps_simulated_time_to_wall_time() -> None:
    pacer = Pacer(sim_start=1_000_000.0, speed=3600.0)
    assert pacer.wait_for(1_000_000.0 + 7200) == pytest.approx(2.0, abs=0.05)
    assert pacer.now() == pytest.approx(1_000_000.0, abs=200)
