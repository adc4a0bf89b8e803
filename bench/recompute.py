"""Benchmark: `dvc metrics recompute` over N simulated events already in the raw store.

Run with the infrastructure up: `python -m bench.recompute [--events N] [--keep] [--compare-with DIR]`.
Fills `events` of a scratch database straight from the simulator (binary COPY in chunks, no Kafka, no
ingest), then runs the real CLI, `dvc metrics recompute`, over the whole range as the metrics role, in a
subprocess. Prints the load time, the recompute's seconds, events/s, rows written and peak RSS, and
checks the rebuilt cells against counts taken independently from the generated stream.
`--compare-with DIR` first runs the recompute of another checkout (e.g. /work/main) on the same events
and checks that both leave the very same cell rows.
"""

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import orjson

from bench.common import REGISTRY_FILE, REPO, Scratch, create_scratch, drop_scratch, infra_env
from services.ingest.queries import EVENT_COLUMNS
from shared import topics
from shared.db import init_connection
from shared.units import read_registry
from simulator.calendar import ICT
from simulator.stream import SimEvent, generate_events

SUBJECT_FIELDS = {
    topics.CASE_EVENTS: "case_id",
    topics.DOCUMENT_EVENTS: "document_id",
    topics.REPORT_EVENTS: "report_id",
    topics.INSPECTION_EVENTS: "inspection_id",
}
CELL_TABLES = {  # table -> its columns (kpi_day_cells' updated_at is when, not what)
    "kpi_day_cells": "unit_id, day, kpi, numerator, denominator",
    "procedure_days": "unit_id, day, procedure_code, online",
    "overdue_days": "unit_id, day, case_id, apologized",
    "inspected_days": "unit_id, day",
}
CHUNK = 50_000
START = date(2021, 3, 1)
LAST_DAY = date(2099, 12, 31)
EXPECTED_FIELDS = ("resolved_with_deadline", "rated", "documents_normal", "reports", "first_day", "last_day")
GNU_TIME = "/usr/bin/time"  # Debian package `time`


@dataclass
class Expected:
    """Counts taken from the generated stream itself, independently of PostgreSQL's fold."""

    resolved_with_deadline: int = 0  # on_time_rate's denominator: resolved cases that had a deadline
    rated: int = 0  # satisfaction_rate's denominator
    documents_normal: int = 0  # paperless_rate's denominator: non-secret documents
    reports: int = 0  # online_report_rate's denominator
    first_day: date | None = None
    last_day: date | None = None
    months: set[date] = field(default_factory=set)
    open_with_deadline: set[str] = field(default_factory=set)  # only the open cases: stays small

    def observe(self, topic: str, body: dict[str, object], occurred: datetime) -> None:
        kind = body["event_type"]
        if topic == topics.CASE_EVENTS:
            case_id = str(body["case_id"])
            if kind == "received" and body.get("due_at") is not None:
                self.open_with_deadline.add(case_id)
            elif kind in ("resolved", "refused", "withdrawn"):
                if case_id in self.open_with_deadline:
                    self.open_with_deadline.discard(case_id)
                    self.resolved_with_deadline += kind == "resolved"
            elif kind == "rated":
                self.rated += 1
        elif topic == topics.DOCUMENT_EVENTS:
            self.documents_normal += body.get("secrecy") == "normal"
        elif topic == topics.REPORT_EVENTS:
            self.reports += 1
        day = occurred.astimezone(ICT).date()
        self.first_day = day if self.first_day is None else min(self.first_day, day)
        self.last_day = day if self.last_day is None else max(self.last_day, day)


def simulated_events(count: int, *, seed: int = 1) -> Iterator[SimEvent]:
    """Stream `count` good contract events of simulated Hà Tĩnh at real volume (about 11,000 a day)
    from 2021-03-01, for as many days as it takes."""
    stream = generate_events(
        read_registry(REGISTRY_FILE), start=START, days=max(30, count / 4_000), seed=seed
    )
    return itertools.islice(stream, count)


def event_row(event: SimEvent, offset: int, expected: Expected) -> tuple[object, ...]:
    """Return the `events` row ingest stores for a good simulated event (its canonical raw bytes)."""
    body = orjson.loads(event.value)
    occurred = datetime.fromisoformat(body["occurred_at"])
    expected.observe(event.topic, body, occurred)
    return (
        body["event_id"],
        event.topic,
        body["event_type"],
        body["unit_id"],
        body[SUBJECT_FIELDS[event.topic]],
        occurred,
        orjson.Fragment(event.value),  # the simulator writes canonical timestamps: ingest keeps the bytes
        0,
        offset,
    )


async def load_events(scratch: Scratch, count: int) -> Expected:
    """Generate and COPY the events in chunks (never all in memory); return the independent counts."""
    expected = Expected()
    connection = await asyncpg.connect(scratch.admin_dsn)
    await init_connection(connection)
    try:
        events = simulated_events(count)
        offset = 0
        while chunk := list(itertools.islice(events, CHUNK)):
            rows = [event_row(event, offset + i, expected) for i, event in enumerate(chunk)]
            offset += len(rows)
            for month in {row[5].astimezone(UTC).date().replace(day=1) for row in rows} - expected.months:  # type: ignore[attr-defined]
                await connection.execute("SELECT ensure_event_partition($1)", month)
                expected.months.add(month)
            await connection.copy_records_to_table("events", records=rows, columns=EVENT_COLUMNS)
            print(f"\r  loaded {offset:,} events", end="", flush=True)
        print()
        await connection.execute("ANALYZE events")
    finally:
        await connection.close()
    return expected


def run_recompute(scratch: Scratch, code: Path, first: date, last: date) -> tuple[float, int]:
    """Run `dvc metrics recompute` of the checkout `code` as the metrics role; return its seconds and
    its peak RSS in KiB (PostgreSQL's backend not included), measured by GNU time: the rusage of a
    direct child would start from this (large) process's RSS, which Linux keeps across fork and exec."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    env["DVC_DATABASE_URL"] = scratch.role_dsn("dvc_metrics")
    command = [
        sys.executable,
        "-m",
        "cli.main",
        "metrics",
        "recompute",
        "--from",
        str(first),
        "--to",
        str(last),
    ]
    with tempfile.NamedTemporaryFile("r") as peak:
        started = time.perf_counter()
        subprocess.run([GNU_TIME, "-f", "%M", "-o", peak.name, *command], cwd=code, env=env, check=True)
        seconds = time.perf_counter() - started
        return seconds, int(peak.read().split()[-1])


async def cell_fingerprints(scratch: Scratch) -> dict[str, tuple[int, str]]:
    """Return each cell table's row count and an md5 of its rows in key order."""
    connection = await asyncpg.connect(scratch.admin_dsn)
    try:
        fingerprints = {}
        for table, columns in CELL_TABLES.items():
            row = await connection.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h "
                f"FROM (SELECT {columns} FROM {table}) t"
            )
            fingerprints[table] = (int(row["n"]), str(row["h"]))
        return fingerprints
    finally:
        await connection.close()


async def check_totals(scratch: Scratch, expected: Expected) -> None:
    """The rebuilt cells' denominators must equal the counts taken from the generated stream."""
    connection = await asyncpg.connect(scratch.admin_dsn)
    try:
        rows = await connection.fetch("SELECT kpi, sum(denominator) AS total FROM kpi_day_cells GROUP BY kpi")
    finally:
        await connection.close()
    totals = {row["kpi"]: int(row["total"]) for row in rows}
    checks = {
        "on_time_rate": expected.resolved_with_deadline,
        "satisfaction_rate": expected.rated,
        "paperless_rate": expected.documents_normal,
        "online_report_rate": expected.reports,
    }
    for kpi, count in checks.items():
        status = "OK" if totals.get(kpi, 0) == count else "MISMATCH"
        print(f"  check {kpi}: cells' denominator {totals.get(kpi, 0):,} vs stream count {count:,}: {status}")
    if any(totals.get(kpi, 0) != count for kpi, count in checks.items()):
        raise AssertionError("the rebuilt cells disagree with the independent counts")


async def store_expected(scratch: Scratch, expected: Expected) -> None:
    """Keep the independent counts in the scratch database, for a later run with --database."""
    connection = await asyncpg.connect(scratch.admin_dsn)
    try:
        await connection.execute("CREATE TABLE bench_expected (name text PRIMARY KEY, value text NOT NULL)")
        values = {name: str(getattr(expected, name)) for name in EXPECTED_FIELDS}
        await connection.executemany("INSERT INTO bench_expected VALUES ($1, $2)", list(values.items()))
    finally:
        await connection.close()


async def read_expected(scratch: Scratch) -> Expected:
    """Read the independent counts stored by the run that loaded the scratch database."""
    connection = await asyncpg.connect(scratch.admin_dsn)
    try:
        values = {row["name"]: row["value"] for row in await connection.fetch("SELECT * FROM bench_expected")}
    finally:
        await connection.close()
    expected = Expected()
    for name in EXPECTED_FIELDS:
        value = values[name]
        setattr(expected, name, date.fromisoformat(value) if name.endswith("_day") else int(value))
    return expected


async def prepare(count: int, database: str | None) -> tuple[Scratch, Expected, int]:
    """Create and fill a scratch database, or reuse one kept by an earlier run; return it, the independent
    counts and the number of events stored."""
    env = infra_env()
    if database is not None:
        scratch = Scratch(env, database, prefix="")
        connection = await asyncpg.connect(scratch.admin_dsn)
        stored = int(await connection.fetchval("SELECT count(*) FROM events"))
        await connection.close()
        print(f"database {scratch.database} (kept by an earlier run): {stored:,} events")
        return scratch, await read_expected(scratch), stored
    scratch = await create_scratch(env, with_topics=False)
    print(f"database {scratch.database}")
    started = time.perf_counter()
    expected = await load_events(scratch, count)
    load_seconds = time.perf_counter() - started
    await store_expected(scratch, expected)
    print(
        f"generated and loaded {count:,} events ({expected.first_day} to {expected.last_day}, "
        f"{len(expected.months)} monthly partitions) in {load_seconds:.1f} s ({count / load_seconds:,.0f} events/s)"
    )
    return scratch, expected, count


async def measure(scratch: Scratch, expected: Expected, count: int, compare_with: Path | None) -> None:
    """Time the recompute over every day from the first event on; check and print its results."""
    assert expected.first_day is not None
    first, last = expected.first_day, LAST_DAY  # open cases' deadlines fall after the last event
    if compare_with is not None:
        other_seconds, _ = run_recompute(scratch, compare_with, first, last)
        other = await cell_fingerprints(scratch)
        print(f"recompute of {compare_with}: {other_seconds:.1f} s")
    seconds, peak_kib = run_recompute(scratch, REPO, first, last)
    fingerprints = await cell_fingerprints(scratch)
    written = sum(n for n, _ in fingerprints.values())
    print(
        f"recompute of {count:,} events: {seconds:.1f} s, {count / seconds:,.0f} events/s "
        f"(goal < 120 s: {'MET' if seconds < 120 else 'MISSED'})"
    )
    print(f"rows written: {written:,} ({', '.join(f'{t} {n:,}' for t, (n, _) in fingerprints.items())})")
    print(
        f"peak RSS of the recompute process: {peak_kib / 1024:,.0f} MiB (PostgreSQL's backend not included)"
    )
    await check_totals(scratch, expected)
    if compare_with is not None:
        same = other == fingerprints
        print(f"same cell rows as {compare_with}: {'YES' if same else 'NO'}")
        if not same:
            raise AssertionError(f"cells differ: {other} vs {fingerprints}")


async def run(
    count: int, keep: bool, compare_with: Path | None, database: str | None, load_only: bool
) -> None:
    scratch, expected, stored = await prepare(count, database)
    try:
        if not load_only:
            await measure(scratch, expected, stored, compare_with)
    finally:
        if not (keep or load_only or database):
            await drop_scratch(scratch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--compare-with", type=Path, help="a checkout whose recompute runs first, for the same rows"
    )
    parser.add_argument("--database", help="reuse a scratch database kept by --keep or --load-only")
    parser.add_argument("--load-only", action="store_true", help="fill a scratch database and keep it")
    args = parser.parse_args()
    asyncio.run(run(args.events, args.keep, args.compare_with, args.database, args.load_only))


if __name__ == "__main__":
    main()
