"""Benchmark: 1,000,000 contract events already in Kafka -> ingest -> PostgreSQL, next to two raw baselines
and a peer.

Run with the infrastructure up (scripts/infra.sh up): `python -m bench.ingest [--events N] [--no-peer]`.
Prints events/s for ingest, aiokafka consume-only and asyncpg COPY of the same rows, and the ratios; then
runs the Quix Streams peer of bench/peer.py (the `bench` extra) on the same topics and prints its rate.
"""

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import asyncpg

from bench import peer
from bench.common import (
    Scratch,
    bench_events,
    consume_only,
    copy_only,
    create_scratch,
    drop_scratch,
    infra_env,
    process_usage,
    publish_events,
    rows_for_copy,
    start_service,
    wait_ready,
)
from simulator.stream import SimEvent


async def stored_count(connection: asyncpg.Connection) -> int:
    return int(await connection.fetchval("SELECT count(*) FROM event_ids"))


async def run(count: int, keep: bool, instances: int, with_peer: bool) -> None:
    if with_peer:
        peer.require_quixstreams()
    env = infra_env()
    scratch = await create_scratch(env)
    print(f"database {scratch.database}, topics {scratch.prefix}*")
    try:
        started = time.perf_counter()
        events = bench_events(count)
        print(f"generated {len(events):,} events in {time.perf_counter() - started:.1f} s")
        print(f"published at {await publish_events(scratch, events):,.0f} msg/s")

        consume_rate = await consume_only(scratch, len(events))
        print(f"raw baseline, aiokafka consume-only: {consume_rate:,.0f} events/s")
        rows = rows_for_copy(events)
        copy_rate = await copy_only(scratch, rows)
        print(f"raw baseline, asyncpg COPY of the same rows: {copy_rate:,.0f} rows/s")

        logs = Path(tempfile.mkdtemp())
        started_services = [
            start_service(scratch, "ingest", logs / f"ingest-{i}.log") for i in range(instances)
        ]
        connection = await asyncpg.connect(scratch.admin_dsn)
        try:
            for _, port in started_services:
                await wait_ready(port)
            first_seen = None
            while (stored := await stored_count(connection)) < len(events):
                if stored and first_seen is None:
                    first_seen = time.perf_counter()
                if any(process.poll() is not None for process, _ in started_services):
                    raise RuntimeError(f"an ingest instance exited; see {logs}")
                await asyncio.sleep(0.1)
            assert first_seen is not None
            ingest_rate = len(events) / (time.perf_counter() - first_seen)
            usages = [process_usage(process.pid) for process, _ in started_services]
        finally:
            await connection.close()
            for process, _ in started_services:
                process.terminate()
                process.wait(60)
        slower = min(consume_rate, copy_rate)
        cpu = sum(usage.cpu_seconds for usage in usages)
        print(
            f"ingest process CPU: {cpu / len(events) * 1e6:.1f} us/event (user + system, every instance, "
            f"start-up included); peak RSS: {', '.join(f'{usage.peak_rss_mb:.0f} MB' for usage in usages)}"
        )
        print(
            f"ingest into PostgreSQL ({instances} instance(s) in one consumer group): {ingest_rate:,.0f} events/s"
        )
        print(
            f"ratios: ingest/consume-only = {ingest_rate / consume_rate:.1%}, ingest/COPY = {ingest_rate / copy_rate:.1%}, "
            f"ingest/slower baseline = {ingest_rate / slower:.1%}"
        )
        print(
            f"targets: >= 20,000 events/s {'MET' if ingest_rate >= 20_000 else 'MISSED'}; "
            f">= 50% of slower baseline {'MET' if ingest_rate >= slower / 2 else 'MISSED'}"
        )
        if with_peer:
            await compare_with_peer(scratch, events, ingest_rate, consume_rate)
    finally:
        if not keep:
            await drop_scratch(scratch)


async def compare_with_peer(
    scratch: Scratch, events: list[SimEvent], ingest_rate: float, consume_rate: float
) -> None:
    """Run the Quix Streams peer on the same case events; check that the product's `cases` hold the
    same resolved and on-time counts as the peer's independent count; print the peer's rate."""
    values = peer.case_values(events)
    expected = peer.expected_counts(values)
    stored = await peer.product_counts(scratch)
    if stored != expected:
        raise AssertionError(
            f"ingest's cases disagree with the count: {peer.describe_difference(expected, stored)}"
        )
    peer_rate = await peer.run_peer(scratch, values)
    print(
        f"peer, Quix Streams (exactly-once; dedupe, per-case state, resolved/on-time per unit x day; "
        f"case events only, no validation, no raw store): {peer_rate:,.0f} events/s over {len(values):,} case events"
    )
    print(
        f"ratios: peer/consume-only = {peer_rate / consume_rate:.1%}; ingest/peer = {ingest_rate / peer_rate:.2f} "
        f"({'MET' if ingest_rate >= peer_rate else 'MISSED'}: ingest >= peer)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--instances", type=int, default=1, help="ingest processes in the consumer group")
    parser.add_argument("--no-peer", action="store_true", help="skip the Quix Streams peer (bench/peer.py)")
    args = parser.parse_args()
    asyncio.run(run(args.events, args.keep, args.instances, not args.no_peer))


if __name__ == "__main__":
    main()
