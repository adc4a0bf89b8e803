"""Send simulated events to Kafka fast (batched, delivery futures gathered in chunks), optionally paced."""

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from shared.config import KafkaSettings
from shared.kafka_auth import aiokafka_security
from simulator.calendar import ICT
from simulator.stream import SimEvent

CHUNK = 5_000  # delivery futures awaited together
MIN_SLEEP = 0.005


@dataclass
class SendStats:
    """What was sent, per topic, and how fast."""

    by_topic: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    bad: int = 0
    duplicates: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Return messages per second."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def count(self, event: SimEvent) -> None:
        """Count one message."""
        self.sent += 1
        self.by_topic[event.topic] += 1
        self.bad += event.expected_reason is not None
        self.duplicates += event.duplicate


class CachedPartitioner:
    """aiokafka's default partitioner (murmur2, as the Java client), memoised: a few hundred unit keys repeat."""

    def __init__(self) -> None:
        self.default = DefaultPartitioner()
        self.cache: dict[tuple[bytes, tuple[int, ...]], int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        """Return the partition of `key` (a random available one for no key)."""
        if key is None:
            return int(self.default(key, all_partitions, available))
        cache_key = (key, tuple(all_partitions))
        partition = self.cache.get(cache_key)
        if partition is None:
            partition = self.cache[cache_key] = int(self.default(key, all_partitions, available))
        return partition


class Pacer:
    """Map simulated time to wall time: simulated seconds run `speed` times faster than real ones."""

    def __init__(self, sim_start: float, speed: float) -> None:
        self.sim_start, self.speed, self.wall_start = sim_start, speed, time.monotonic()

    def wait_for(self, ts: float) -> float:
        """Return how long to sleep until the simulated instant `ts` (unix seconds) is reached."""
        return self.wall_start + (ts - self.sim_start) / self.speed - time.monotonic()

    def now(self) -> float:
        """Return the current simulated instant (unix seconds)."""
        return self.sim_start + (time.monotonic() - self.wall_start) * self.speed

    async def sleep_until(self, ts: float, progress: "Progress | None", stats: "SendStats") -> None:
        """Sleep until `ts` is due, in slices, printing progress meanwhile."""
        while (delay := self.wait_for(ts)) > MIN_SLEEP:
            await asyncio.sleep(min(delay, 1.0))
            if progress is not None:
                progress.tick(stats, self.now())


class Progress:
    """Print a line every `every` seconds to stderr: simulated time, messages sent, messages per second."""

    def __init__(
        self, every: float | None, stream: IO[str] | None = None, *, label: str = "Đã gửi / sent"
    ) -> None:
        self.every, self.stream, self.label = every, stream or sys.stderr, label
        self.started = self.last = time.monotonic()
        self.last_sent = 0

    def tick(self, stats: SendStats, ts: float, *, final: bool = False) -> None:
        """Print a progress line if it is time to (or a final summary)."""
        now = time.monotonic()
        if self.every is None or (not final and now - self.last < self.every):
            return
        elapsed = now - (self.started if final else self.last)
        rate = (stats.sent if final else stats.sent - self.last_sent) / max(elapsed, 1e-9)
        simulated = datetime.fromtimestamp(ts, ICT).strftime("%Y-%m-%d %H:%M") if ts else "-"
        label = "Xong / done" if final else self.label
        print(
            f"{label}: {stats.sent:,} sự kiện / events ({stats.bad:,} lỗi / bad, {stats.duplicates:,} trùng / duplicates),"
            f" thời gian mô phỏng / simulated {simulated}, {rate:,.0f} sự kiện/giây / events/s",
            file=self.stream,
            flush=True,
        )
        self.last, self.last_sent = now, stats.sent


async def publish(
    events: Iterable[SimEvent],
    *,
    kafka: KafkaSettings,
    topic_prefix: str = "",
    pacer: Pacer | None = None,
    progress: Progress | None = None,
    chunk: int = CHUNK,
) -> SendStats:
    """Publish events in order (key = unit id); with a pacer, none before its simulated time."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.KAFKA_BOOTSTRAP_SERVERS,
        **aiokafka_security(kafka),
        linger_ms=20,
        max_batch_size=256 * 1024,
        enable_idempotence=True,
        client_id="dvc-simulate",
        partitioner=CachedPartitioner(),
    )
    await producer.start()
    stats, pending, latest, started = SendStats(), [], 0.0, time.monotonic()
    try:
        for event in events:
            latest = max(latest, event.ts)  # after a shuffle, never send before any earlier message was due
            if pacer is not None:
                await pacer.sleep_until(latest, progress, stats)
            # The broker timestamp is when the event happened upstream (never later than now): a replayed
            # history waiting in Kafka keeps the completeness watermark back (shared/watermark.py).
            stamp = int(min(event.ts, time.time()) * 1000)
            pending.append(
                await producer.send(
                    topic_prefix + event.topic, event.value, key=event.key, timestamp_ms=stamp
                )
            )
            stats.count(event)
            if len(pending) >= chunk:
                await asyncio.gather(*pending)
                pending.clear()
            if progress is not None:
                progress.tick(stats, latest)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    stats.seconds = time.monotonic() - started
    if progress is not None:
        progress.tick(stats, latest, final=True)
    return stats


def drain(events: Iterable[SimEvent], progress: Progress | None = None) -> SendStats:
    """Consume events without sending them (a dry run: ground truth and generation benchmarks)."""
    stats, latest, started = SendStats(), 0.0, time.monotonic()
    for event in events:
        latest = max(latest, event.ts)
        stats.count(event)
        if progress is not None:
            progress.tick(stats, latest)
    stats.seconds = time.monotonic() - started
    if progress is not None:
        progress.tick(stats, latest, final=True)
    return stats
