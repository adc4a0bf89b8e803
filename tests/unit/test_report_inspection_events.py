"""Contract v1.1 report and inspection events: validation and reason codes in the contract's order."""

from typing import Any

import orjson
import pytest

from shared import topics
from shared.events import InspectionCompleted, Rejection, ReportSubmitted, parse_event
from tests.factories import at, inspection_completed, report_submitted


def reason(topic: str, body: Any) -> str | None:
    outcome = parse_event(topic, body if isinstance(body, bytes) else orjson.dumps(body))
    return outcome.reason if isinstance(outcome, Rejection) else None


def report(**changes: Any) -> dict[str, Any]:
    body = report_submitted("bc-1", "u1", at("2021-03-04 09:15"), due_at=at("2021-03-05 17:00"))
    body.update(changes)
    return {key: value for key, value in body.items() if value != "<absent>"}


def inspection(**changes: Any) -> dict[str, Any]:
    body = inspection_completed("kt-1", "u1", "u2", at("2021-03-04 09:15"))
    body.update(changes)
    return {key: value for key, value in body.items() if value != "<absent>"}


def test_valid_report_and_inspection_parse_to_frozen_models() -> None:
    parsed = parse_event(topics.REPORT_EVENTS, orjson.dumps(report(extra_field="kept out")))
    assert isinstance(parsed, ReportSubmitted) and parsed.channel == "online"
    assert parsed.connected_to_national_system is True and parsed.due_at is not None
    with pytest.raises(ValueError, match="frozen"):
        parsed.channel = "paper"  # type: ignore[misc]
    assert isinstance(parse_event(topics.REPORT_EVENTS, orjson.dumps(report(due_at=None))), ReportSubmitted)
    done = parse_event(topics.INSPECTION_EVENTS, orjson.dumps(inspection(digital=True)))
    assert isinstance(done, InspectionCompleted) and done.inspected_unit_id == "u2" and done.digital


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"event_type": "sent"}, "unknown_event_type"),  # a type of another topic
        ({"event_type": "<absent>"}, "unknown_event_type"),
        ({"event_type": 1}, "unknown_event_type"),
        ({"event_id": "<absent>"}, "missing_field"),
        ({"report_id": "<absent>"}, "missing_field"),
        ({"due_at": "<absent>"}, "missing_field"),  # required, but may be null
        ({"report_code": None}, "null_field"),
        ({"connected_to_national_system": None}, "null_field"),
        ({"connected_to_national_system": "true"}, "wrong_type"),
        ({"connected_to_national_system": 1}, "wrong_type"),
        ({"channel": 3}, "wrong_type"),
        ({"due_at": 1614824100}, "wrong_type"),
        ({"due_at": "mai"}, "bad_timestamp"),
        ({"due_at": "9999-12-31T00:00:00+07:00"}, "bad_timestamp"),
        ({"occurred_at": "2021-03-04T09:15:00"}, "naive_timestamp"),
        ({"channel": "email"}, "bad_enum"),
        ({"channel": "Online"}, "bad_enum"),
        ({"report_code": ""}, "bad_length"),
        ({"report_code": "đ" * 65}, "bad_length"),
        ({"report_id": "x" * 129}, "bad_length"),
        ({"unit_id": ""}, "bad_length"),
        # the order of checks: common fields, then report_id, then the type's fields in table order
        ({"occurred_at": "hôm qua", "report_id": None}, "bad_timestamp"),
        ({"report_id": None, "report_code": ""}, "null_field"),
        ({"report_code": "", "channel": "fax"}, "bad_length"),
        ({"channel": "fax", "connected_to_national_system": None}, "bad_enum"),
    ],
)
def test_report_reason_codes(changes: dict[str, Any], expected: str) -> None:
    assert reason(topics.REPORT_EVENTS, report(**changes)) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"event_type": "report_submitted"}, "unknown_event_type"),
        ({"inspection_id": "<absent>"}, "missing_field"),
        ({"inspected_unit_id": "<absent>"}, "missing_field"),
        ({"digital": "<absent>"}, "missing_field"),
        ({"topic": None}, "null_field"),
        ({"digital": "yes"}, "wrong_type"),
        ({"inspected_unit_id": 7}, "wrong_type"),
        ({"topic": "cchc"}, "bad_enum"),
        ({"inspected_unit_id": ""}, "bad_length"),
        ({"inspected_unit_id": "x" * 65}, "bad_length"),
        ({"inspection_id": ""}, "bad_length"),
        ({"inspection_id": None, "inspected_unit_id": 7}, "null_field"),
        ({"inspected_unit_id": "", "topic": "x"}, "bad_length"),
        ({"topic": "x", "digital": None}, "bad_enum"),
    ],
)
def test_inspection_reason_codes(changes: dict[str, Any], expected: str) -> None:
    assert reason(topics.INSPECTION_EVENTS, inspection(**changes)) == expected


def test_decoding_failures_on_the_new_topics() -> None:
    for topic in (topics.REPORT_EVENTS, topics.INSPECTION_EVENTS):
        assert reason(topic, b"{nope") == "not_json"
        assert reason(topic, b'{"a": NaN}') == "not_json"
        assert reason(topic, b"[]") == "not_object"
