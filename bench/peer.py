"""Benchmark peer (issue 16): a small Quix Streams application doing a subset of ingest's work.

The subset: case events only, exactly-once processing (Kafka transactions), dedupe by event_id,
per-case state, and per (unit, local day) counts of resolved and on-time cases upserted to
PostgreSQL. No validation, no raw-event storage, no documents, no dead letters.

Run with the infrastructure up and the `bench` extra installed: `python -m bench.peer [--events N]`.
It publishes the same events as `bench.ingest` to scratch topics, runs the application in a child
process, then checks that the counts it wrote equal an independent count over the generated events
(a rate is only printed for a correct result). `bench.ingest` runs it after the product, on the
same scratch topics.

Design: the simulator keys every message by its unit id, so all events of a case share a partition
and the state store of its key (unit): the per-case state, the event ids seen and the unit's day
counts live there, with no repartition topic. The sink upserts absolute counts (not increments), so
a batch written again after a crash between the sink flush and the Kafka commit changes nothing.
"""

import argparse
import asyncio
import importlib.util
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
import orjson
from confluent_kafka.admin import AdminClient

from bench.common import (
    Scratch,
    bench_events,
    create_scratch,
    drop_scratch,
    infra_env,
    kafka_config,
    publish_events,
)
from shared import topics

ICT = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh has no daylight saving time
TABLE = "peer_day_counts"
CLOSING = frozenset({"resolved", "refused", "withdrawn"})
Counts = dict[tuple[str, date], tuple[int, int]]  # (unit, local day) -> (resolved, on time)


def local_day(occurred_at: str) -> str:
    """Return the local (UTC+7) calendar day of an ISO timestamp with an offset, as ISO text."""
    return datetime.fromisoformat(occurred_at).astimezone(ICT).date().isoformat()


def is_on_time(resolved_at: str, deadline: str | None) -> bool:
    """Resolved at or before the deadline (the product's `early` and `on_time`)."""
    return deadline is not None and datetime.fromisoformat(resolved_at) <= datetime.fromisoformat(deadline)


# --- The Quix Streams application (runs in the child process) -------------------------------------


def count_resolution(event: dict[str, Any], state: Any) -> dict[str, Any] | None:
    """Apply one case event to the state of its unit; return the new counts of a (unit, day) or None.

    State keys: `e/<event_id>` (seen), `c/<case_id>` ([deadline, closed]), `d/<day>` ([resolved, on time]).
    """
    seen = "e/" + event["event_id"]
    if state.exists(seen):
        return None
    state.set(seen, 1)
    kind, case_key = event["event_type"], "c/" + event["case_id"]
    if kind == "received":
        if not state.exists(case_key):
            state.set(case_key, [event.get("due_at"), False])
        return None
    if kind != "supplement_received" and kind not in CLOSING:
        return None
    case = state.get(case_key)
    if case is None or case[1]:  # not received yet, or already closed
        return None
    if kind == "supplement_received":
        if case[0] is not None:  # the clock restarts with a new due date
            state.set(case_key, [event["due_at"], False])
        return None
    state.set(case_key, [case[0], True])
    if kind != "resolved":
        return None
    day = local_day(event["occurred_at"])
    resolved, on_time = state.get("d/" + day, [0, 0])
    counts = [resolved + 1, on_time + is_on_time(event["occurred_at"], case[0])]
    state.set("d/" + day, counts)
    return {"unit_id": event["unit_id"], "day": day, "resolved": counts[0], "on_time": counts[1]}


def require_quixstreams() -> None:
    """Exit with a hint when the `bench` extra (Quix Streams) is not installed."""
    if importlib.util.find_spec("quixstreams") is None:
        raise SystemExit(
            "the peer needs Quix Streams: pip install -e '.[dev,bench]' (in a venv of its own, see the README), "
            "or pass --no-peer to bench.ingest"
        )


def run_application(scratch: Scratch, group: str, messages: int, state_dir: str) -> float:
    """Run the application until it processed `messages` case events; return the seconds from the
    first message to the last commit (sink flushed, Kafka transaction committed)."""
    from quixstreams import Application  # the `bench` extra
    from quixstreams.kafka.configuration import ConnectionConfig
    from quixstreams.sinks.community.postgresql import PostgreSQLSink

    app = Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(kafka_config(scratch)),
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=state_dir,
        loglevel="WARNING",
    )
    dsn = urlsplit(scratch.admin_dsn)
    sink = PostgreSQLSink(
        host=dsn.hostname or "127.0.0.1",
        port=dsn.port or 5432,
        dbname=scratch.database,
        user=unquote(dsn.username or ""),
        password=unquote(dsn.password or ""),
        table_name=TABLE,
        schema_auto_update=False,
        primary_key_columns=["unit_id", "day"],
        upsert_on_primary_key=True,
        include_metadata=False,
    )
    progress = {"seen": 0, "first": 0.0}

    def counted(event: dict[str, Any], state: Any) -> dict[str, Any] | None:
        if not progress["seen"]:
            progress["first"] = time.perf_counter()
        progress["seen"] += 1
        if progress["seen"] == messages:
            app.stop()  # the run loop ends after this message and commits a last checkpoint
        return count_resolution(event, state)

    case_events = app.topic(
        scratch.prefix + topics.CASE_EVENTS, key_deserializer="str", value_deserializer="json"
    )
    stream = app.dataframe(case_events).apply(counted, stateful=True)
    stream.filter(lambda row: row is not None).sink(sink)
    app.run()
    if progress["seen"] < messages:
        raise RuntimeError(f"the peer stopped after {progress['seen']} of {messages} messages")
    return time.perf_counter() - progress["first"]


def remove_internal_topics(scratch: Scratch, group: str) -> None:
    """Delete the application's changelog topics and consumer group."""
    admin = AdminClient(kafka_config(scratch))
    names = [name for name in admin.list_topics(timeout=30).topics if f"__{group}--" in name]
    for future in [*admin.delete_topics(names).values(), *admin.delete_consumer_groups([group]).values()]:
        future.result()


# --- The benchmark around it ----------------------------------------------------------------------


def expected_counts(events: Iterable[bytes]) -> Counts:
    """Count resolved and on-time cases per (unit, local day) over the events, in one plain pass."""
    deadlines: dict[str, str | None] = {}
    closed: set[str] = set()
    counts: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    seen: set[str] = set()
    for value in events:
        event = orjson.loads(value)
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        kind, case_id = event["event_type"], event["case_id"]
        if kind == "received":
            deadlines.setdefault(case_id, event.get("due_at"))
        elif case_id in deadlines and case_id not in closed:
            if kind == "supplement_received" and deadlines[case_id] is not None:
                deadlines[case_id] = event["due_at"]
            elif kind in CLOSING:
                closed.add(case_id)
                if kind == "resolved":
                    cell = counts[(event["unit_id"], date.fromisoformat(local_day(event["occurred_at"])))]
                    cell[0] += 1
                    cell[1] += is_on_time(event["occurred_at"], deadlines[case_id])
    return {key: (resolved, on_time) for key, (resolved, on_time) in counts.items()}


async def stored_counts(connection: asyncpg.Connection, query: str) -> Counts:
    return {(row[0], row[1]): (int(row[2]), int(row[3])) for row in await connection.fetch(query)}


async def peer_counts(scratch: Scratch) -> Counts:
    """Return the counts the peer wrote."""
    connection = await asyncpg.connect(scratch.admin_dsn)
    try:
        return await stored_counts(connection, f"SELECT unit_id, day, resolved, on_time FROM {TABLE}")
    finally:
        await connection.close()


async def product_counts(scratch: Scratch) -> Counts:
    """Return the same counts from the product's `cases` (after `bench.ingest` stored the events)."""
    connection = await asyncpg.connect(scratch.admin_dsn)
    try:
        return await stored_counts(
            connection,
            """SELECT unit_id, (closed_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS day, count(*),
                      count(*) FILTER (WHERE timeliness IN ('early', 'on_time'))
               FROM cases WHERE close_type = 'resolved' GROUP BY 1, 2""",
        )
    finally:
        await connection.close()


def describe_difference(expected: Counts, actual: Counts) -> str:
    """Name a few (unit, day) cells that differ."""
    keys = sorted(k for k in expected.keys() | actual.keys() if expected.get(k) != actual.get(k))
    shown = ", ".join(
        f"{u} {d}: expected {expected.get((u, d))}, got {actual.get((u, d))}" for u, d in keys[:5]
    )
    return f"{len(keys)} (unit, day) cells differ: {shown}"


async def run_peer(scratch: Scratch, case_values: list[bytes]) -> float:
    """Run the peer over the scratch topics' case events (already published); verify what it wrote
    against an independent count; return its rate in case events per second."""
    expected = expected_counts(case_values)
    connection = await asyncpg.connect(scratch.admin_dsn)
    try:
        await connection.execute(
            f"CREATE TABLE {TABLE} (unit_id text, day date, resolved bigint NOT NULL, "
            "on_time bigint NOT NULL, PRIMARY KEY (unit_id, day))"
        )
    finally:
        await connection.close()
    command = [sys.executable, "-m", "bench.peer", "--run-on", scratch.database, scratch.prefix]
    child = await asyncio.create_subprocess_exec(
        *command,
        str(len(case_values)),
        stdout=subprocess.PIPE,
    )
    output, _ = await child.communicate()
    if child.returncode:
        raise RuntimeError(f"the peer failed (exit {child.returncode})")
    seconds = float(json.loads(output.decode().strip().splitlines()[-1])["seconds"])
    actual = await peer_counts(scratch)
    if actual != expected:
        raise AssertionError(f"the peer's counts are wrong: {describe_difference(expected, actual)}")
    print(
        f"peer verified: {sum(r for r, _ in actual.values()):,} resolved cases "
        f"({sum(o for _, o in actual.values()):,} on time) in {len(actual):,} (unit, day) cells"
    )
    return len(case_values) / seconds


def case_values(events: Iterable[Any]) -> list[bytes]:
    """Return the values of the case events (the peer reads only the case topic)."""
    return [event.value for event in events if event.topic == topics.CASE_EVENTS]


async def run(count: int, keep: bool) -> None:
    require_quixstreams()
    scratch = await create_scratch(infra_env())
    print(f"database {scratch.database}, topics {scratch.prefix}*")
    try:
        events = bench_events(count)
        print(f"published {len(events):,} events at {await publish_events(scratch, events):,.0f} msg/s")
        values = case_values(events)
        rate = await run_peer(scratch, values)
        print(
            f"Quix Streams peer (exactly-once, subset of ingest): {rate:,.0f} case events/s ({len(values):,})"
        )
    finally:
        if not keep:
            await drop_scratch(scratch)


def run_child(database: str, prefix: str, messages: int) -> None:
    """The child process: run the application once on a scratch database and topics; print its time."""
    scratch = Scratch(infra_env(), database, prefix)
    group = f"{prefix}peer-{secrets.token_hex(3)}"
    state_dir = tempfile.mkdtemp(prefix="dvc-bench-peer-")
    try:
        seconds = run_application(scratch, group, messages, state_dir)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
        remove_internal_topics(scratch, group)
    print(json.dumps({"seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=300_000, help="events generated (both topics)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--run-on", nargs=3, metavar=("DATABASE", "PREFIX", "MESSAGES"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.run_on:
        database, prefix, messages = args.run_on
        run_child(database, prefix, int(messages))
    else:
        asyncio.run(run(args.events, args.keep))


if __name__ == "__main__":
    main()
