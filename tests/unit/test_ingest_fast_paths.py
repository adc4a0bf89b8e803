"""Ingest's fast paths give exactly what the slow ones gave: the timestamp check's year shortcut, and the
raw bytes stored instead of the model's JSON form when they are already canonical."""

import itertools
import random
from datetime import datetime
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord

from services.ingest.validation import Accepted, DeadLetter, parse_record
from shared import topics
from shared.events import FIRST_YEAR, LAST_YEAR, Rejection, parse_event
from shared.kpis import LOCAL_TZ
from simulator.stream import generate_events
from tests.factories import at, document_sent, received, small_registry


def reference_reason(text: str) -> str | None:
    """The timestamp check as it was before the shortcut: parse, require an offset, then the local year."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return "bad_timestamp"
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return "naive_timestamp"
    try:
        year = parsed.astimezone(LOCAL_TZ).year
    except OverflowError:
        return "bad_timestamp"
    return None if FIRST_YEAR <= year <= LAST_YEAR else "bad_timestamp"


def timestamps() -> list[str]:
    """Timestamps around every year edge, in many offsets and spellings, and random ones."""
    rng = random.Random(16)
    offsets = ["Z", "+00:00", "-00:00", "+07:00", "-12:00", "+14:00", "+05:45", "+07:00:30", "", "+0700"]
    texts = []
    for year, (month, day), hour, offset in itertools.product(
        [1, 1999, 2000, 2001, 2050, 2098, 2099, 2100, 9999],
        [(1, 1), (12, 31), (6, 15)],
        ["00:00:00", "06:59:59", "17:00:00", "23:59:59.999999"],
        offsets,
    ):
        texts.append(f"{year:04d}-{month:02d}-{day:02d}T{hour}{offset}")
    for _ in range(2000):
        year = rng.choice([rng.randint(1, 9999), rng.randint(1995, 2105)])
        texts.append(
            f"{year:04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            f"{rng.choice('T ')}{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}{rng.choice(offsets)}"
        )
    return texts + ["yesterday", "2021-02-30T00:00:00+07:00", "20210301T070004+0700"]


def test_the_year_shortcut_accepts_and_rejects_exactly_as_the_full_check() -> None:
    for text in timestamps():
        event = received("hs-1", "u1", text, due_at=None)
        outcome = parse_event(topics.CASE_EVENTS, orjson.dumps(event))
        assert (outcome.reason if isinstance(outcome, Rejection) else None) == reference_reason(text), text


def record(topic: str, value: bytes, offset: int = 0) -> ConsumerRecord:
    return ConsumerRecord(topic, 0, offset, 0, 0, None, value, None, 0, len(value), [])


def stored_json(value: Any) -> Any:
    """The JSON value the jsonb encoder writes for a payload or a history item."""
    return orjson.loads(value if isinstance(value, bytes) else orjson.dumps(value))


def assert_fast_equals_slow(item: Accepted) -> None:
    model_form = item.event.model_dump(mode="json", exclude_unset=True)
    assert stored_json(item.canonical) == model_form
    assert stored_json(item.payload) == {**item.body, **model_form}


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2021-03-01T08:00:00+07:00",
        "2021-03-01T08:00:00.250000+07:00",
        "2021-03-01T08:00:00.25+07:00",
        "2021-03-01T01:00:00Z",
        "2021-03-01T01:00:00+00:00",
        "2021-03-01T08:00:30+07:00:30",
        "2021-03-01 08:00:00+07:00",
        "2021-03-01T08:00+07:00",
        "2021-02-28T20:00:00-05:00",
    ],
)
@pytest.mark.parametrize("extra", [{}, {"note": "kept in the raw event, not in the history"}])
def test_raw_bytes_are_stored_only_when_they_equal_the_model_form(
    occurred_at: str, extra: dict[str, Any]
) -> None:
    for topic, event in [
        (topics.CASE_EVENTS, received("hs-1", "u1", occurred_at, due_at=occurred_at)),
        (topics.DOCUMENT_EVENTS, document_sent("vb-1", "u1", occurred_at)),
    ]:
        outcome = parse_record(record(topic, orjson.dumps({**event, **extra})), "")
        assert isinstance(outcome, Accepted)
        assert_fast_equals_slow(outcome)
    spelled = received("hs-1", "u1", at("2021-03-01 08:00"), due_at=None)
    outcome = parse_record(record(topics.CASE_EVENTS, orjson.dumps(spelled)), "")
    assert isinstance(outcome, Accepted) and outcome.canonical == orjson.dumps(spelled)  # the fast path ran


def test_a_simulated_stream_with_bad_input_gets_the_same_outcome_on_both_paths() -> None:
    registry = small_registry("c1", "c2", "c3")
    stream = generate_events(
        registry, start=datetime(2021, 3, 1, tzinfo=LOCAL_TZ), days=20, seed=16, bad_rate=0.2
    )
    checked = 0
    for offset, sim in enumerate(itertools.islice(stream, 5000)):
        outcome = parse_record(record(sim.topic, sim.value, offset), "")
        reference = parse_event(sim.topic, sim.value)
        if isinstance(outcome, DeadLetter):
            assert outcome.rejection == reference
        else:
            assert outcome.event == reference
            assert_fast_equals_slow(outcome)
            checked += 1
    assert checked > 1000
