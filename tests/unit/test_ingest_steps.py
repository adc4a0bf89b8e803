"""Ingest's steps in-process: validation order, case planning, poison isolation, and the handler itself
on FastStream's TestKafkaBroker (dead letters reach aiokafka's producer, the batch is committed)."""

import asyncio
from collections.abc import Sequence
from datetime import date
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.ingest.cases import CaseState, late_cases, plan_case_writes
from services.ingest.handlers import router
from services.ingest.storage import StoredBatch
from services.ingest.storage_policy import HANDLER_ERROR, store_isolating_poison
from services.ingest.validation import Accepted, DeadLetter, check_units, parse_record, unit_ids_cache
from shared import topics
from shared.config import Settings
from shared.consuming import DeadLetterProducer, UnprovenFailure
from shared.events import CaseEvent
from tests.factories import at, case_event, document_sent, inspection_completed, received


def record(value: bytes | None, topic: str = topics.CASE_EVENTS, offset: int = 0) -> ConsumerRecord:
    return ConsumerRecord(
        topic, 0, offset, 0, 0, None, value, None, 0, 0 if value is None else len(value), []
    )


def body(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def reason(outcome: Accepted | DeadLetter) -> str:
    return outcome.rejection.reason if isinstance(outcome, DeadLetter) else "accepted"


def test_checks_run_in_the_contract_order_and_the_registry_comes_last() -> None:
    good = received("c1", "u-known", at("2021-03-01 08:00"), due_at=None)
    cases = [
        (b"\xff", "not_json"),
        (b"[1, 2]", "not_object"),
        (body({**good, "event_type": "sent"}), "unknown_event_type"),  # a document type on the case topic
        (body({**good, "occurred_at": "yesterday", "unit_id": "u-unknown"}), "bad_timestamp"),
        (body({**good, "occurred_at": "2021-03-01T08:00:00"}), "naive_timestamp"),
        (body({**good, "channel": "fax", "unit_id": "u-unknown"}), "bad_enum"),
        (body({**good, "unit_id": "u-unknown"}), "unknown_unit"),
        (body(good), "accepted"),
    ]
    known = frozenset({"u-known"})
    assert [reason(check_units(parse_record(record(value), ""), known)) for value, _ in cases] == [
        expected for _, expected in cases
    ]


def test_the_topic_prefix_is_not_part_of_the_contract_and_both_units_of_an_inspection_are_checked() -> None:
    inspection = inspection_completed("i1", "u-known", "u-gone", at("2021-03-01 08:00"))
    outcome = check_units(
        parse_record(record(body(inspection), "test-" + topics.INSPECTION_EVENTS), "test-"),
        frozenset({"u-known"}),
    )
    assert isinstance(outcome, DeadLetter) and outcome.rejection.reason == "unknown_unit"
    assert outcome.rejection.message.startswith("inspected_unit_id 'u-gone'")


def accepted(event: dict[str, Any], offset: int = 0) -> Accepted:
    topic = topics.DOCUMENT_EVENTS if event["event_type"] == "sent" else topics.CASE_EVENTS
    outcome = parse_record(record(body(event), topic, offset), "")
    assert isinstance(outcome, Accepted)
    return outcome


def arrival(event: dict[str, Any]) -> tuple[CaseEvent, dict[str, Any]]:
    item = accepted(event)
    assert isinstance(item.event, CaseEvent)
    return item.event, item.canonical


def test_a_new_case_is_folded_and_its_days_are_dirty() -> None:
    new = [arrival(received("c1", "u1", at("2021-03-01 08:00"), due_at=at("2021-03-05 17:00")))]
    writes, dirty = plan_case_writes(["c1"], {}, {}, new)
    assert [(w.state.case_id, w.append, len(w.history)) for w in writes] == [("c1", False, 1)]
    assert dirty == {"u1": {date(2021, 3, 1), date(2021, 3, 5)}}


def test_an_in_order_event_continues_the_stored_state_without_changing_it() -> None:
    receipt = arrival(received("c1", "u1", at("2021-03-01 08:00"), due_at=at("2021-03-05 17:00")))
    (first,), _ = plan_case_writes(["c1"], {}, {}, [receipt])
    stored = {"c1": first.state}
    resolved = arrival(case_event("resolved", "c1", "u1", at("2021-03-04 10:00"), outcome="approved"))
    assert late_cases(stored, [resolved]) == []
    (write,), dirty = plan_case_writes(["c1"], stored, {}, [resolved])
    assert write.append and write.history == [resolved[1]]
    assert (write.state.close_type, write.state.timeliness) == ("resolved", "early")
    assert first.state.close_type is None  # the stored state is not mutated
    assert dirty == {"u1": {date(2021, 3, 1), date(2021, 3, 4), date(2021, 3, 5)}}  # old and new days


def test_a_late_event_refolds_the_whole_history_and_replaces_it() -> None:
    receipt = arrival(received("c1", "u1", at("2021-03-01 08:00"), due_at=at("2021-03-05 17:00")))
    resolved = arrival(case_event("resolved", "c1", "u1", at("2021-03-09 10:00"), outcome="approved"))
    (first,), _ = plan_case_writes(["c1"], {}, {}, [receipt, resolved])
    stored = {"c1": first.state}
    pause = arrival(case_event("supplement_requested", "c1", "u1", at("2021-03-03 08:00")))
    assert late_cases(stored, [pause]) == ["c1"]
    (write,), _ = plan_case_writes(["c1"], stored, {"c1": first.history}, [pause])
    assert not write.append and write.history == [receipt[1], resolved[1], pause[1]]
    assert write.state.paused_since is not None and write.state.overdue_at == []


def test_an_event_dirties_only_the_days_of_the_cells_it_changes() -> None:
    receipt = arrival(received("c1", "u1", at("2021-03-01 08:00"), due_at=at("2021-03-05 17:00")))
    resolved = arrival(case_event("resolved", "c1", "u1", at("2021-03-04 10:00"), outcome="approved"))
    (first,), _ = plan_case_writes(["c1"], {}, {}, [receipt, resolved])
    stored = {"c1": first.state}
    rated = arrival(case_event("rated", "c1", "u1", at("2021-03-08 09:00"), rating="satisfied"))
    returned = arrival(case_event("returned", "c1", "u1", at("2021-03-06 09:00")))
    assert plan_case_writes(["c1"], stored, {}, [rated])[1] == {"u1": {date(2021, 3, 8)}}
    (write,), dirty = plan_case_writes(["c1"], stored, {}, [returned])
    assert write.state.returned_at is not None and dirty == {}  # no cell reads the return
    # A repeat in the batch may replay a batch whose dirty cells were never published: every day.
    _, dirty = plan_case_writes(["c1"], stored, {}, [rated], repeated={"c1"})
    assert dirty == {"u1": {date(2021, 3, 1), date(2021, 3, 4), date(2021, 3, 5), date(2021, 3, 8)}}


def test_a_repeat_only_case_writes_nothing_but_its_stored_days_are_dirty() -> None:
    (first,), _ = plan_case_writes(
        ["c1"], {}, {}, [arrival(received("c1", "u1", at("2021-03-01 08:00"), due_at=None))]
    )
    writes, dirty = plan_case_writes(["c1"], {"c1": first.state}, {}, [])
    assert writes == [] and dirty == {"u1": {date(2021, 3, 1)}}
    assert plan_case_writes(["c2"], {"c2": CaseState("c2")}, {}, []) == ([], {})  # no unit: no cell


def stored_as(items: Sequence[Accepted]) -> StoredBatch:
    batch = StoredBatch()
    batch.stored.update(item.topic for item in items)
    return batch


async def test_an_event_that_fails_alone_is_dead_lettered_and_the_others_are_stored() -> None:
    items = [accepted(document_sent(f"d{n}", "u1", at("2021-03-01 08:00")), offset=n) for n in range(5)]
    poison = items[3].event.event_id

    async def store(batch: Sequence[Accepted]) -> StoredBatch:
        if any(item.event.event_id == poison for item in batch):
            raise ValueError("cannot store this one")
        return stored_as(batch)

    stored, crashed = await store_isolating_poison(store, items)
    assert stored.stored == {topics.DOCUMENT_EVENTS: 4}
    assert [(d.record.offset, d.rejection.reason) for d in crashed] == [(3, HANDLER_ERROR)]


async def test_a_storage_outage_rejects_nothing_and_a_batch_failing_everywhere_is_not_pinned() -> None:
    items = [accepted(document_sent(f"d{n}", "u1", at("2021-03-01 08:00")), offset=n) for n in range(3)]

    async def outage(batch: Sequence[Accepted]) -> StoredBatch:
        raise asyncpg.CannotConnectNowError("the database system is starting up")

    async def broken(batch: Sequence[Accepted]) -> StoredBatch:
        raise ValueError("always")

    with pytest.raises(asyncpg.CannotConnectNowError):
        await store_isolating_poison(outage, items)
    with pytest.raises(UnprovenFailure):
        await store_isolating_poison(broken, items)


class RecordingProducer:
    """aiokafka's producer, as far as DeadLetterProducer uses it: records what is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, list[tuple[str, bytes | None]]]] = []

    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: Any
    ) -> "asyncio.Future[None]":
        self.sent.append((topic, value, headers))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_the_handler_dead_letters_bad_input_with_its_reason_and_commits_the_batch() -> None:
    settings = Settings.model_construct(
        TOPIC_PREFIX="", REGISTRY_REFRESH_SECONDS=3600.0, WATERMARK_GRACE_SECONDS=5.0
    )
    dead_letters = DeadLetterProducer.__new__(DeadLetterProducer)
    dead_letters.prefix, dead_letters._producer = "", RecordingProducer()  # type: ignore[assignment]
    units = unit_ids_cache()
    units.checked_at = float("inf")  # loaded: no database needed while every record is bad input
    broker = KafkaBroker()
    broker.include_router(router)
    broker.context.set_global("pool", None)
    broker.context.set_global("registry", units)
    broker.context.set_global("settings", settings)
    broker.context.set_global("dead_letters", dead_letters)
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish_batch(
            b"not json", b"[]", b'{"event_type": "fax"}', topic=topics.CASE_EVENTS
        )
    sent = dead_letters._producer.sent  # type: ignore[union-attr]
    assert [(topic, value) for topic, value, _ in sent] == [
        (topics.DEAD_LETTERS, b"not json"),
        (topics.DEAD_LETTERS, b"[]"),
        (topics.DEAD_LETTERS, b'{"event_type": "fax"}'),
    ]
    reasons = [dict(headers)["dvc-reason"] for _, _, headers in sent]
    assert reasons == [b"not_json", b"not_object", b"unknown_event_type"]
