"""The contract's bad-input reason codes, in the contract's order of checks."""

from typing import Any

import orjson
import pytest

from shared import topics
from shared.events import CaseReceived, DocumentSent, Rejection, parse_event
from tests.factories import at, case_event, document_sent, received


def reason(topic: str, body: Any) -> str | None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    outcome = parse_event(topic, raw)
    return outcome.reason if isinstance(outcome, Rejection) else None


def good_received(**changes: Any) -> dict[str, Any]:
    event = received("hs-1", "u1", at("2021-03-04 09:15"), due_at=at("2021-03-10 17:00"))
    event.update(changes)
    return {key: value for key, value in event.items() if value != "<absent>"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "not_json"),
        (b'{"a": NaN}', "not_json"),
        (b'{"a": Infinity}', "not_json"),
        (b"\xff\xfe{}", "not_json"),
        (b"", "not_json"),
        (b"[1, 2]", "not_object"),
        (b"42", "not_object"),
        (orjson.dumps('{"event_type": "received"}'), "not_object"),
    ],
)
def test_decoding_failures(raw: bytes, expected: str) -> None:
    assert reason(topics.CASE_EVENTS, raw) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, None),
        ({"event_type": "<absent>"}, "unknown_event_type"),
        ({"event_type": 7}, "unknown_event_type"),
        ({"event_type": "sent"}, "unknown_event_type"),  # a document type on the case topic
        ({"event_id": "<absent>"}, "missing_field"),
        ({"event_id": None}, "null_field"),
        ({"event_id": 12}, "wrong_type"),
        ({"event_id": ""}, "bad_length"),
        ({"event_id": "x" * 129}, "bad_length"),
        ({"event_id": "é" * 128}, None),  # lengths count characters, not bytes
        ({"occurred_at": 1614824100}, "wrong_type"),
        ({"occurred_at": "yesterday"}, "bad_timestamp"),
        ({"occurred_at": "2021-03-04T09:15:00"}, "naive_timestamp"),
        ({"occurred_at": "2021-03-04T09:15:00Z"}, None),
        ({"unit_id": "u" * 65}, "bad_length"),
        ({"source": None}, None),  # optional: null means absent
        ({"source": 3}, "wrong_type"),
        ({"case_id": "<absent>"}, "missing_field"),
        ({"procedure_code": None}, "null_field"),
        ({"channel": "fax"}, "bad_enum"),
        ({"channel": 1}, "wrong_type"),
        ({"service_level": "3"}, "wrong_type"),
        ({"service_level": 3.0}, "wrong_type"),
        ({"service_level": True}, "wrong_type"),
        ({"service_level": 0}, "bad_enum"),
        ({"service_level": 5}, "bad_enum"),
        ({"due_at": None}, None),  # required, but may be null
        ({"due_at": "<absent>"}, "missing_field"),
        ({"due_at": "2021-03-10"}, "naive_timestamp"),
        ({"synced_to_national_portal": "true"}, "wrong_type"),
        ({"unexpected_extra": [1, 2]}, None),  # tolerant reader
        # order of checks: common fields before the type's own fields, first failure wins
        ({"occurred_at": "bad", "channel": "fax"}, "bad_timestamp"),
        ({"case_id": None, "service_level": 9}, "null_field"),
        ({"event_id": 5, "unit_id": None}, "wrong_type"),
    ],
)
def test_received_field_rules(changes: dict[str, Any], expected: str | None) -> None:
    assert reason(topics.CASE_EVENTS, good_received(**changes)) == expected


def test_every_case_type_has_its_own_fields_checked() -> None:
    base = {"case_id": "hs-1", "unit_id": "u1", "occurred_at": at("2021-03-04 09:15")}
    assert reason(topics.CASE_EVENTS, case_event("supplement_received", **base)) == "missing_field"
    assert reason(topics.CASE_EVENTS, case_event("supplement_received", **base, due_at=None)) == "null_field"
    assert reason(topics.CASE_EVENTS, case_event("apology_issued", **base, due_at="soon")) == "bad_timestamp"
    assert reason(topics.CASE_EVENTS, case_event("resolved", **base, outcome="maybe")) == "bad_enum"
    assert reason(topics.CASE_EVENTS, case_event("rated", **base, rating=None)) == "null_field"
    assert reason(topics.CASE_EVENTS, case_event("refused", **base, reason=3)) == "wrong_type"
    for plain in ("returned", "withdrawn", "synced", "supplement_requested"):
        assert reason(topics.CASE_EVENTS, case_event(plain, **base)) is None


def test_document_rules() -> None:
    good = document_sent("vb-1", "u1", at("2021-03-04 09:15"))
    assert isinstance(parse_event(topics.DOCUMENT_EVENTS, orjson.dumps(good)), DocumentSent)
    assert reason(topics.DOCUMENT_EVENTS, {**good, "medium": "fax"}) == "bad_enum"
    assert reason(topics.DOCUMENT_EVENTS, {**good, "secrecy": "mật"}) == "bad_enum"
    assert reason(topics.DOCUMENT_EVENTS, {**good, "digitally_signed": 1}) == "wrong_type"
    assert reason(topics.DOCUMENT_EVENTS, {**good, "recipient_unit_id": ""}) == "bad_length"
    assert reason(topics.DOCUMENT_EVENTS, {**good, "document_id": None}) == "null_field"
    assert reason(topics.DOCUMENT_EVENTS, {**good, "event_type": "received"}) == "unknown_event_type"


def test_a_valid_event_keeps_its_offset() -> None:
    event = parse_event(topics.CASE_EVENTS, orjson.dumps(good_received()))
    assert isinstance(event, CaseReceived)
    assert (
        event.occurred_at.utcoffset() is not None
        and event.occurred_at.isoformat() == "2021-03-04T09:15:00+07:00"
    )
