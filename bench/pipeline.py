"""Benchmark: Kafka -> ingest -> metrics, end to end, next to the raw baselines of the same data.

Run with the infrastructure up: `python -m bench.pipeline [--events N] [--rate R] [--seconds S]`.
1. Replay: N generated events already in Kafka; ingest and metrics start and catch up; sustained
   events/s = N / (time from the first stored event until metrics has recomputed every change).
2. Freshness: R events/s for S seconds (real time); event-to-count latency p50/p99 read from the
   metrics service's `metrics_event_to_count_seconds` histogram (oldest record of an ingest batch ->
   its KPI cells committed, so each figure is the worst event of its batch).
"""

import argparse
import asyncio
import itertools
import tempfile
import time
from datetime import date
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.common import (
    REGISTRY_FILE,
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
from shared import topics
from shared.kafka_auth import aiokafka_security
from shared.units import read_registry
from simulator.stream import SimEvent, generate_events


async def metrics_caught_up(scratch: Scratch) -> bool:
    """Return True when the metrics group has committed the end of every changes partition."""
    bootstrap = scratch.env["DVC_KAFKA_BOOTSTRAP_SERVERS"]
    security = aiokafka_security(scratch.kafka())
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **security)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(scratch.prefix + "dvc-metrics")
        topic = scratch.prefix + topics.CHANGES
        described = await admin.describe_topics([topic])
        partitions = [TopicPartition(topic, p["partition"]) for p in described[0]["partitions"]]
        if not partitions:
            return False
        ends = await consumer.end_offsets(partitions)
        return all(tp in committed and committed[tp].offset >= end for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


async def histogram(port: int, name: str) -> list[tuple[float, float]]:
    """Return the cumulative buckets (upper bound, count) of a histogram from a /metrics page."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    buckets = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
    return sorted(buckets)


def quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> float:
    """Return the q-quantile of the observations between two snapshots (linear within a bucket)."""
    counts = [(bound, a - b) for (bound, a), (_, b) in zip(after, before, strict=True)]
    total = counts[-1][1]
    if total == 0:
        return float("nan")
    rank, previous_bound, previous_count = q * total, 0.0, 0.0
    for bound, count in counts:
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / max(
                count - previous_count, 1e-9
            )
        previous_bound, previous_count = bound, count
    return counts[-1][0]


async def run(count: int, rate: int, seconds: int, keep: bool) -> None:
    env = infra_env()
    scratch = await create_scratch(env)
    print(f"database {scratch.database}, topics {scratch.prefix}*")
    logs = Path(tempfile.mkdtemp())
    services = []
    try:
        events = bench_events(count)
        print(f"published {len(events):,} events at {await publish_events(scratch, events):,.0f} msg/s")
        consume_rate = await consume_only(scratch, len(events))
        copy_rate = await copy_only(scratch, rows_for_copy(events))
        print(
            f"raw baselines: aiokafka consume-only {consume_rate:,.0f} events/s; asyncpg COPY {copy_rate:,.0f} rows/s"
        )

        services = [start_service(scratch, name, logs / f"{name}.log") for name in ("ingest", "metrics")]
        for _, port in services:
            await wait_ready(port)
        connection = await asyncpg.connect(scratch.admin_dsn)
        first_seen = None
        try:
            while int(await connection.fetchval("SELECT count(*) FROM event_ids")) < len(events):
                if first_seen is None and await connection.fetchval("SELECT EXISTS (SELECT FROM event_ids)"):
                    first_seen = time.perf_counter()
                await asyncio.sleep(0.2)
            stored_at = time.perf_counter()
            while not await metrics_caught_up(scratch):
                await asyncio.sleep(0.2)
            done = time.perf_counter()
        finally:
            await connection.close()
        assert first_seen is not None
        sustained = len(events) / (done - first_seen)
        print(
            f"replay: stored in {stored_at - first_seen:.1f} s, counts caught up {done - stored_at:.1f} s later"
        )
        # What an operator does after a bulk load: fresh statistics, so the live phase measures steady state.
        connection = await asyncpg.connect(scratch.admin_dsn)
        await connection.execute("VACUUM ANALYZE")
        await connection.close()
        print(
            f"sustained end-to-end: {sustained:,.0f} events/s "
            f"({sustained / consume_rate:.1%} of consume-only, {sustained / copy_rate:.1%} of COPY)"
        )

        metrics_port = services[1][1]
        before = await histogram(metrics_port, "metrics_event_to_count_seconds")
        before_update = await histogram(metrics_port, "metrics_update_latency_seconds")
        registry = read_registry(REGISTRY_FILE)
        live = itertools.islice(
            generate_events(registry, start=date(2021, 6, 1), days=30, seed=99, id_prefix="live."),
            rate * seconds,
        )
        await paced_publish(scratch, list(live), rate)
        await asyncio.sleep(3)
        after = await histogram(metrics_port, "metrics_event_to_count_seconds")
        after_update = await histogram(metrics_port, "metrics_update_latency_seconds")
        print(
            "  of which ingest commit -> counts commit: "
            f"p50 {quantile(before_update, after_update, 0.5) * 1000:.0f} ms, "
            f"p99 {quantile(before_update, after_update, 0.99) * 1000:.0f} ms"
        )
        p50, p99 = quantile(before, after, 0.5), quantile(before, after, 0.99)
        print(
            f"freshness at {rate:,} events/s for {seconds} s: event-to-count p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
        )
        for name, (process, _) in zip(("ingest", "metrics"), services, strict=True):
            usage = process_usage(process.pid)
            print(f"{name}: peak RSS {usage.peak_rss_mb:.0f} MB, CPU {usage.cpu_seconds:.0f} s")
        print(
            f"targets: >= 20,000 events/s sustained {'MET' if sustained >= 20_000 else 'MISSED'}; "
            f"p99 < 500 ms {'MET' if p99 < 0.5 else 'MISSED'}"
        )
    finally:
        for process, _ in services:
            process.terminate()
            process.wait(60)
        if not keep:
            await drop_scratch(scratch)


async def paced_publish(scratch: Scratch, events: list[SimEvent], rate: int) -> None:
    """Publish `rate` events per second, in 20 ms slices, through one producer."""
    producer = AIOKafkaProducer(
        bootstrap_servers=scratch.env["DVC_KAFKA_BOOTSTRAP_SERVERS"],
        linger_ms=5,
        enable_idempotence=True,
        **aiokafka_security(scratch.kafka("simulator")),
    )
    await producer.start()
    slice_size = max(1, rate // 50)
    started = time.perf_counter()
    try:
        for index in range(0, len(events), slice_size):
            batch = events[index : index + slice_size]
            futures = [await producer.send(scratch.prefix + e.topic, e.value, key=e.key) for e in batch]
            await asyncio.gather(*futures)
            await asyncio.sleep(max(0.0, started + (index + len(batch)) / rate - time.perf_counter()))
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    asyncio.run(run(args.events, args.rate, args.seconds, args.keep))


if __name__ == "__main__":
    main()
