"""Folding a case's events into its state: the precise readings of kpis.md, hand-worked."""

import random
from datetime import datetime, timedelta
from typing import Any

from services.ingest.cases import LOCAL_TZ, apply_events, fold_case
from shared.events import CASE_EVENT_TYPES, CaseEvent
from tests.factories import at, case_event, received


def typed(body: dict[str, Any]) -> CaseEvent:
    """Validate a factory event against its contract model (the fold works on the models)."""
    return CASE_EVENT_TYPES[body["event_type"]].model_validate(body)


def local(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=LOCAL_TZ)


def event(kind: str, when: str, **fields: Any) -> CaseEvent:
    return typed(case_event(kind, "hs", "u1", at(when), **fields))


def receipt(when: str, due: str | None) -> CaseEvent:
    return typed(received("hs", "u1", at(when), due_at=at(due) if due else None))


def test_resolution_classes_use_local_dates() -> None:
    due = "2021-03-05 17:00"
    cases = {
        "2021-03-04 23:59": "early",  # UTC date 03-04 too, but the point is the local date
        "2021-03-05 00:01": "on_time",  # 03-04 17:01 UTC: a UTC date would call it early
        "2021-03-05 17:00": "on_time",  # at the deadline instant: not late
        "2021-03-05 17:01": "late",
    }
    for resolved_at, expected in cases.items():
        state = fold_case(
            "hs", [receipt("2021-03-01 08:00", due), event("resolved", resolved_at, outcome="approved")]
        )
        assert state.timeliness == expected, resolved_at


def test_supplement_pause_across_the_deadline() -> None:
    history = [
        receipt("2021-03-01 08:00", "2021-03-05 17:00"),
        event("supplement_requested", "2021-03-04 09:00"),
        # the deadline passes during the pause: not overdue then
        event("supplement_received", "2021-03-08 09:00", due_at=at("2021-03-10 17:00")),
        event("resolved", "2021-03-10 16:00", outcome="approved"),
    ]
    state = fold_case("hs", history)
    assert state.overdue_at == [] and state.timeliness == "on_time"
    assert state.deadline == local("2021-03-10 17:00")


def test_new_deadline_already_past_at_the_end_of_the_pause_makes_it_overdue_then() -> None:
    history = [
        receipt("2021-03-01 08:00", "2021-03-05 17:00"),
        event("supplement_requested", "2021-03-04 09:00"),
        event("supplement_received", "2021-03-08 09:00", due_at=at("2021-03-06 17:00")),
        event("resolved", "2021-03-09 10:00", outcome="denied"),
    ]
    state = fold_case("hs", history)
    assert state.overdue_at == [local("2021-03-08 09:00")]
    assert state.timeliness == "late" and state.outcome == "denied"


def test_an_apology_does_not_move_the_deadline() -> None:
    history = [
        receipt("2021-03-01 08:00", "2021-03-05 17:00"),
        event("apology_issued", "2021-03-06 08:00", due_at=at("2021-03-12 17:00")),
        event("resolved", "2021-03-11 10:00", outcome="approved"),
    ]
    state = fold_case("hs", history)
    assert state.deadline == local("2021-03-05 17:00")
    assert state.timeliness == "late" and state.apology_at == local("2021-03-06 08:00")
    assert state.overdue_at == [local("2021-03-05 17:00")]


def test_a_null_deadline_never_gets_one() -> None:
    history = [
        receipt("2021-03-01 08:00", None),
        event("supplement_received", "2021-03-02 08:00", due_at=at("2021-03-03 08:00")),
        event("resolved", "2021-03-20 08:00", outcome="approved"),
    ]
    state = fold_case("hs", history)
    assert state.deadline is None and state.timeliness is None and state.overdue_at == []


def test_supplement_received_without_a_request_replaces_the_deadline() -> None:
    history = [
        receipt("2021-03-01 08:00", "2021-03-02 17:00"),
        event("supplement_received", "2021-03-03 08:00", due_at=at("2021-03-09 17:00")),
        event("resolved", "2021-03-08 08:00", outcome="approved"),
    ]
    state = fold_case("hs", history)
    # overdue on 03-02 17:00 (running, past the deadline) until the new deadline replaced it
    assert state.overdue_at == [local("2021-03-02 17:00")]
    assert state.timeliness == "early"


def test_resolution_during_a_pause_is_classified_against_the_deadline_before_the_pause() -> None:
    history = [
        receipt("2021-03-01 08:00", "2021-03-05 17:00"),
        event("supplement_requested", "2021-03-04 09:00"),
        event("resolved", "2021-03-06 09:00", outcome="approved"),
    ]
    state = fold_case("hs", history)
    assert (
        state.timeliness == "late"
        and state.overdue_at == []
        and state.paused_since == local("2021-03-04 09:00")
    )


def test_due_already_past_at_receipt_is_overdue_from_the_receipt() -> None:
    history = [receipt("2021-03-05 08:00", "2021-03-04 17:00"), event("withdrawn", "2021-03-06 08:00")]
    state = fold_case("hs", history)
    assert state.overdue_at == [local("2021-03-05 08:00")] and state.close_type == "withdrawn"


def test_first_terminal_closes_and_annotations_still_count() -> None:
    history = [
        receipt("2021-03-01 08:00", "2021-03-05 17:00"),
        event("refused", "2021-03-01 09:00"),
        event("resolved", "2021-03-02 09:00", outcome="approved"),
        event("rated", "2021-03-03 09:00", rating="dissatisfied"),
        event("rated", "2021-03-02 09:00", rating="very_satisfied"),  # older: not the latest
        event("synced", "2021-04-01 09:00"),
    ]
    state = fold_case("hs", history)
    assert (state.close_type, state.timeliness) == ("refused", None)
    assert (state.rating, state.rated_at) == ("dissatisfied", local("2021-03-03 09:00"))
    assert state.synced is True


def test_first_received_by_occurred_at_opens_the_case() -> None:
    history = [
        typed(received("hs", "u2", at("2021-03-02 08:00"), due_at=at("2021-03-09 17:00"))),
        typed(received("hs", "u1", at("2021-03-01 08:00"), due_at=at("2021-03-05 17:00"))),
    ]
    state = fold_case("hs", history)
    assert state.unit_id == "u1" and state.deadline == local("2021-03-05 17:00")


def test_arrival_order_does_not_change_the_state() -> None:
    history = [
        receipt("2021-03-01 08:00", "2021-03-05 17:00"),
        event("supplement_requested", "2021-03-02 08:00"),
        event("supplement_received", "2021-03-04 08:00", due_at=at("2021-03-08 17:00")),
        event("apology_issued", "2021-03-09 08:00", due_at=at("2021-03-10 17:00")),
        event("resolved", "2021-03-09 10:00", outcome="approved"),
        event("returned", "2021-03-10 10:00"),
        event("rated", "2021-03-10 11:00", rating="satisfied"),
    ]
    expected = fold_case("hs", history)
    shuffled = list(history)
    for seed in range(20):
        random.Random(seed).shuffle(shuffled)
        assert fold_case("hs", shuffled) == expected
    assert expected.timeliness == "late" and expected.overdue_at == [local("2021-03-08 17:00")]


def test_a_case_without_its_receipt_counts_nowhere() -> None:
    state = fold_case("hs", [event("resolved", "2021-03-09 10:00", outcome="approved")])
    assert state.unit_id is None and state.close_type is None


def random_history(rng: random.Random) -> list[CaseEvent]:
    kinds = [
        "supplement_requested",
        "supplement_received",
        "resolved",
        "refused",
        "withdrawn",
        "apology_issued",
        "rated",
        "synced",
        "returned",
        "received",
    ]
    start = datetime(2021, 3, 1, 8, 0, tzinfo=LOCAL_TZ)
    history = [
        received(
            "hs",
            "u1",
            (start + timedelta(hours=rng.randint(0, 48))).isoformat(),
            due_at=None if rng.random() < 0.2 else (start + timedelta(hours=rng.randint(0, 200))).isoformat(),
        )
    ]
    for _ in range(rng.randint(0, 8)):
        kind = rng.choice(kinds)
        when = (start + timedelta(hours=rng.randint(0, 300))).isoformat()
        fields: dict[str, Any] = {"due_at": (start + timedelta(hours=rng.randint(0, 400))).isoformat()}
        if kind == "resolved":
            fields = {"outcome": "approved"}
        elif kind == "rated":
            fields = {"rating": rng.choice(["satisfied", "dissatisfied"])}
        elif kind == "received":
            history.append(received("hs", "u2", when, due_at=None))
            continue
        history.append(case_event(kind, "hs", "u1", when, **fields))
    rng.shuffle(history)
    return [typed(body) for body in history]


def test_continuing_from_a_stored_state_equals_a_full_fold_when_new_events_are_later() -> None:
    rng = random.Random(11)
    for _ in range(500):
        history = sorted(random_history(rng), key=lambda e: e.occurred_at)
        cut = rng.randint(0, len(history))
        expected = fold_case("hs", history)
        assert apply_events(fold_case("hs", history[:cut]), history[cut:]) == expected
