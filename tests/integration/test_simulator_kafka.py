"""The simulator against the real broker: what arrives is exactly what the ground truth says was sent."""

from collections import Counter
from datetime import date
from pathlib import Path

import orjson
import pytest

from shared import topics
from simulator import Pacer, generate_events, publish, read_truth, record_truth
from tests.conftest import kafka_settings, read_topic
from tests.factories import small_registry

pytestmark = pytest.mark.integration

COMMUNES = ("p.district.xa-1", "p.district.xa-2", "p.district.xa-3")


async def test_a_simulated_day_arrives_as_the_ground_truth_says(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    registry = small_registry(*COMMUNES)
    events = list(
        generate_events(
            registry,
            start=date(2021, 3, 2),
            days=1,
            seed=11,
            scale=0.05,
            bad_rate=0.05,
            duplicate_rate=0.05,
            shuffle_window=20,
        )
    )
    path = tmp_path / "truth.jsonl"
    with path.open("wb") as lines:
        stats = await publish(
            record_truth(events, lines),
            kafka=kafka_settings(kafka_bootstrap, "simulator"),
            topic_prefix=topic_prefix,
        )
    truth = Counter(line["topic"] for line in read_truth(path))
    # reports and inspections are rarer than case files: a single day may have no inspection
    assert {topics.CASE_EVENTS, topics.DOCUMENT_EVENTS, topics.REPORT_EVENTS} <= set(truth)
    assert set(truth) <= {
        topics.CASE_EVENTS,
        topics.DOCUMENT_EVENTS,
        topics.REPORT_EVENTS,
        topics.INSPECTION_EVENTS,
    }
    assert stats.by_topic == truth and stats.bad > 0 and stats.duplicates > 0
    unit_ids = {unit.id.encode() for unit in registry.units}
    for topic, count in truth.items():
        records = await read_topic(kafka_bootstrap, topic_prefix + topic, expect=count)
        assert len(records) == count
        assert Counter((r.key, r.value) for r in records) == Counter(
            (e.key, e.value) for e in events if e.topic == topic
        )
        assert {record.key for record in records} <= unit_ids
        good = [
            record
            for record in records
            if record.value in {e.value for e in events if e.expected_reason is None}
        ]
        assert all(record.key == orjson.loads(record.value)["unit_id"].encode() for record in good)


async def test_accelerated_publishing_waits_for_simulated_time(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    registry = small_registry(*COMMUNES)
    events = list(generate_events(registry, start=date(2021, 3, 2), days=1, seed=12, scale=0.02))
    first, last = events[0].ts, events[-1].ts
    speed = (last - first) / 2.0  # the day's traffic in about two seconds
    stats = await publish(
        events,
        kafka=kafka_settings(kafka_bootstrap, "simulator"),
        topic_prefix=topic_prefix,
        pacer=Pacer(first, speed),
    )
    assert stats.sent == len(events)
    assert 1.8 < stats.seconds < 10.0
