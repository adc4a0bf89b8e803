"""Contract v1.1: a timestamp whose local (UTC+7) year is outside 2000..2099 is `bad_timestamp`; metrics
never derives a period from such a day."""

from datetime import date, datetime
from typing import Any

import orjson
import pytest

from services.metrics.handlers import UNSUPPORTED_DAYS, touched_periods
from shared import topics
from shared.events import Rejection, parse_event
from shared.kpis import LOCAL_TZ
from shared.periods import parse_period
from tests.factories import at, case_event, document_sent, received


def outcome(topic: str, event: dict[str, Any]) -> str | None:
    """Return the rejection reason, or None when the event is valid."""
    parsed = parse_event(topic, orjson.dumps(event))
    return parsed.reason if isinstance(parsed, Rejection) else None


@pytest.mark.parametrize(
    ("occurred_at", "expected"),
    [
        ("1999-12-31T16:59:59Z", "bad_timestamp"),  # local 1999-12-31 23:59:59
        ("1999-12-31T17:00:00Z", None),  # local 2000-01-01 00:00:00
        ("2000-01-01T00:00:00+07:00", None),
        ("1999-12-31T23:59:59+07:00", "bad_timestamp"),
        ("2000-01-01T06:59:59+14:00", "bad_timestamp"),  # 1999-12-31 23:59:59 local despite the 2000 date
        ("2099-12-31T16:59:59Z", None),  # local 2099-12-31 23:59:59
        ("2099-12-31T17:00:00Z", "bad_timestamp"),  # local 2100-01-01 00:00:00
        ("2099-12-31T23:59:59+07:00", None),
        ("2100-01-01T00:00:00+07:00", "bad_timestamp"),
        ("2099-12-31T12:00:00-05:00", "bad_timestamp"),  # 2100-01-01 00:00 local
        ("9999-12-31T00:00:00+07:00", "bad_timestamp"),
        ("9999-12-31T23:59:59-12:00", "bad_timestamp"),  # local year 10000: beyond Python's dates
        ("0001-01-01T00:00:00Z", "bad_timestamp"),
        ("0001-01-01T00:00:00+14:00", "bad_timestamp"),  # local year 0
        ("0001-01-01T00:00:00", "naive_timestamp"),  # offset before range (contract order)
        ("0001-13-01T00:00:00Z", "bad_timestamp"),  # does not parse
    ],
)
def test_occurred_at_local_year_edges(occurred_at: str, expected: str | None) -> None:
    event = received("hs-1", "u1", occurred_at, due_at=None)
    assert outcome(topics.CASE_EVENTS, event) == expected
    document = document_sent("vb-1", "u1", occurred_at)
    assert outcome(topics.DOCUMENT_EVENTS, document) == expected


@pytest.mark.parametrize(
    ("event_type", "fields"),
    [
        ("received", {"procedure_code": "1.001", "channel": "online", "service_level": 4}),
        ("supplement_received", {}),
        ("apology_issued", {}),
    ],
)
@pytest.mark.parametrize(
    ("due_at", "expected"),
    [
        ("9999-12-31T00:00:00+07:00", "bad_timestamp"),
        ("0001-01-01T00:00:00Z", "bad_timestamp"),
        ("2099-12-31T16:59:59Z", None),
        ("2099-12-31T17:00:00Z", "bad_timestamp"),
        ("1999-12-31T17:00:00Z", None),
        ("1999-12-31T16:59:59Z", "bad_timestamp"),
    ],
)
def test_every_due_at_is_range_checked(
    event_type: str, fields: dict[str, Any], due_at: str, expected: str | None
) -> None:
    event = case_event(event_type, "hs-1", "u1", at("2021-03-04 09:15"), due_at=due_at, **fields)
    assert outcome(topics.CASE_EVENTS, event) == expected


def test_the_message_names_the_field_the_year_and_the_range() -> None:
    event = received("hs-1", "u1", at("2021-03-04 09:15"), due_at="9999-12-31T00:00:00+07:00")
    parsed = parse_event(topics.CASE_EVENTS, orjson.dumps(event))
    assert isinstance(parsed, Rejection)
    assert parsed.reason == "bad_timestamp"
    assert parsed.message.startswith("due_at: ")
    assert "9999" in parsed.message and "2000..2099" in parsed.message


def test_earlier_fields_fail_first() -> None:
    """occurred_at (a common field) is checked before due_at (the type's own field)."""
    event = received("hs-1", "u1", "0001-01-01T00:00:00Z", due_at="0001-01-01T00:00:00Z")
    parsed = parse_event(topics.CASE_EVENTS, orjson.dumps(event))
    assert isinstance(parsed, Rejection) and parsed.message.startswith("occurred_at: ")


@pytest.mark.parametrize(
    "text", ["year:1", "year:0001", "year:9999", "month:9999-12", "month:1999-12", "year:2100"]
)
def test_periods_outside_the_supported_years_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="period"):
        parse_period(text)


def test_metrics_skips_days_outside_the_supported_years() -> None:
    before = UNSUPPORTED_DAYS._value.get()
    days = {date(1, 1, 1), date(9999, 12, 31), date(2021, 3, 4), date(1999, 12, 31)}
    assert touched_periods(days, now=datetime(2021, 1, 1, tzinfo=LOCAL_TZ), lookback_days=0) == {
        "month:2021-03",
        "year:2021",
    }
    assert UNSUPPORTED_DAYS._value.get() - before == 3
    assert (
        touched_periods({date(1, 1, 1)}, now=datetime(2021, 1, 1, tzinfo=LOCAL_TZ), lookback_days=0) == set()
    )
