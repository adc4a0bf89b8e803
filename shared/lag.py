"""Consumer lag, measured against the broker: per consumer group, topic and partition, in messages
(end offset minus the group's committed offset) and in seconds (now minus the broker timestamp of the
oldest unconsumed record, 0 when nothing waits).

Every consumer service runs one `LagMonitor` (started by shared/app.py). It asks the broker what
`kafka-consumer-groups --describe` shows: the committed offsets of the group (admin client), the end
offsets, and, for a lagging partition, the timestamp of the record at the committed offset (a probe
consumer without a group, which never commits). Ingest also turns each measurement into the
completeness watermark (shared/watermark.py).
"""

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Counter, Gauge

from shared.backoff import Retrying, run_forever
from shared.config import Settings
from shared.kafka_auth import aiokafka_security

logger = logging.getLogger(__name__)
# The probe below reassigns its partitions at every poll while there is lag, and aiokafka logs each
# assignment at INFO: one line every poll during any backlog or outage. Keep its warnings only.
logging.getLogger("aiokafka.consumer.subscription_state").setLevel(logging.WARNING)

LAG_MESSAGES = Gauge(
    "dvc_consumer_lag_messages",
    "Records not yet consumed and committed by the group: end offset minus committed offset.",
    ["group", "topic", "partition"],
)
LAG_SECONDS = Gauge(
    "dvc_consumer_lag_seconds",
    "Age of the oldest record the group has not consumed (broker timestamp), 0 when nothing waits.",
    ["group", "topic", "partition"],
)
LAG_MEASURED = Gauge(
    "dvc_consumer_lag_measured_timestamp_seconds", "Unix time of the last lag measurement.", ["group"]
)
RECORDS_LOST = Counter(
    "dvc_consumer_records_lost_total",
    "Records the broker deleted (retention) before the group consumed them: never processed.",
    ["group", "topic", "partition"],
)
PROBE_TIMEOUT_MS = 2000


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One partition's lag as the broker reports it, at `measured_at` (Unix seconds)."""

    group: str
    topic: str  # with the deployment's prefix
    partition: int
    committed: int  # the group's next offset to consume (0 if it never committed)
    end: int  # the partition's end offset (high watermark)
    oldest_unconsumed_at: float | None  # broker timestamp (s) of the record at `committed`; None if no lag
    measured_at: float

    @property
    def messages(self) -> int:
        """Records waiting for the group."""
        return max(0, self.end - self.committed)

    @property
    def seconds(self) -> float:
        """How old the oldest waiting record is (0 when none waits)."""
        if self.messages == 0 or self.oldest_unconsumed_at is None:
            return 0.0
        return max(0.0, self.measured_at - self.oldest_unconsumed_at)


OnMeasured = Callable[[Sequence[PartitionLag]], Awaitable[None]]


class LagMonitor:
    """Measures the lag of consumer groups of one service every `interval` seconds and exports it."""

    def __init__(
        self,
        settings: Settings,
        service_name: str,
        groups: Mapping[str, Sequence[str]],
        *,
        on_measured: OnMeasured | None = None,
    ) -> None:
        prefix = settings.TOPIC_PREFIX
        self.groups = {prefix + group: [prefix + t for t in topics] for group, topics in groups.items()}
        self.bootstrap_servers = settings.KAFKA_BOOTSTRAP_SERVERS
        self.security = aiokafka_security(settings)
        self.client_id = f"dvc-{service_name}-lag"
        self.interval = settings.LAG_POLL_SECONDS
        self.on_measured = on_measured
        self.retrying = Retrying("lag_monitor", logger)
        self.lost_until: dict[TopicPartition, int] = {}  # the log start up to which losses were counted

    async def run_forever(self) -> None:
        """Measure and export until cancelled; a failed measurement waits out a backoff."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, client_id=self.client_id, **self.security
        )
        probe = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=64 * 1024,
            **self.security,
        )
        await admin.start()
        await probe.start()
        try:
            await run_forever(partial(self.step, admin, probe), every=self.interval, retrying=self.retrying)
        finally:
            await probe.stop()
            await admin.close()

    async def step(self, admin: AIOKafkaAdminClient, probe: AIOKafkaConsumer) -> None:
        """Measure once, export, and hand the measurement on."""
        lags = await self.measure(admin, probe)
        export(lags)
        if self.on_measured is not None:
            await self.on_measured(lags)

    async def measure(self, admin: AIOKafkaAdminClient, probe: AIOKafkaConsumer) -> list[PartitionLag]:
        """Ask the broker for every group's committed and end offsets and the oldest waiting record."""
        lags: list[PartitionLag] = []
        for group, topics in self.groups.items():
            partitions = await partitions_of(admin, topics)
            offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
            committed = {
                tp: offsets[tp].offset for tp in partitions if tp in offsets and offsets[tp].offset >= 0
            }
            ends = await probe.end_offsets(partitions)
            positions = {tp: committed.get(tp, 0) for tp in partitions}
            if positions:  # a new group's "nothing committed" is the start of the log (earliest)
                starts = await probe.beginning_offsets(partitions)
                self.count_lost(group, committed, starts)
                positions = {tp: max(offset, starts[tp]) for tp, offset in positions.items()}
            lagging = {tp: positions[tp] for tp in partitions if ends[tp] > positions[tp]}
            oldest = await timestamps_at(probe, lagging)
            measured_at = time.time()
            lags += [
                PartitionLag(
                    group, tp.topic, tp.partition, positions[tp], ends[tp], oldest.get(tp), measured_at
                )
                for tp in sorted(partitions)
            ]
        return lags

    def count_lost(
        self, group: str, committed: Mapping[TopicPartition, int], starts: Mapping[TopicPartition, int]
    ) -> None:
        """Count (and log) the records deleted below a group's committed offset: the consumer will skip
        to the log start without a word (auto_offset_reset), so this is the only trace of them."""
        for tp, offset in committed.items():
            lost = records_lost(offset, starts[tp], self.lost_until.get(tp, 0))
            if lost:
                RECORDS_LOST.labels(group, tp.topic, str(tp.partition)).inc(lost)
                logger.error(
                    "%d records of %s[%d] were deleted by the broker before %s consumed them (offsets %d..%d)",
                    lost,
                    tp.topic,
                    tp.partition,
                    group,
                    starts[tp] - lost,
                    starts[tp] - 1,
                )
            self.lost_until[tp] = max(self.lost_until.get(tp, 0), starts[tp])


def records_lost(committed: int, log_start: int, counted_until: int) -> int:
    """Return how many records below `log_start` the group never consumed and were not counted yet."""
    return max(0, log_start - max(committed, counted_until))


async def partitions_of(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> list[TopicPartition]:
    """Return every partition of the topics, as the broker describes them now (a consumer's own metadata
    knows a topic only after it used it, and `AIOKafkaConsumer.topics()` does not update it)."""
    described = await admin.describe_topics(list(topics))
    return sorted(
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        if topic["error_code"] == 0
        for partition in topic["partitions"]
    )


async def timestamps_at(
    probe: AIOKafkaConsumer, offsets: Mapping[TopicPartition, int]
) -> dict[TopicPartition, float]:
    """Return the broker timestamp (Unix seconds) of the record at each offset, reading one record each."""
    if not offsets:
        probe.assign([])
        return {}
    probe.assign(list(offsets))
    for tp, offset in offsets.items():
        probe.seek(tp, offset)
    found: dict[TopicPartition, float] = {}
    deadline = time.monotonic() + PROBE_TIMEOUT_MS / 1000
    while len(found) < len(offsets) and time.monotonic() < deadline:
        batches = await probe.getmany(
            *[tp for tp in offsets if tp not in found], timeout_ms=500, max_records=1
        )
        for tp, records in batches.items():
            if records and tp not in found:
                found[tp] = records[0].timestamp / 1000
    return found


def export(lags: Sequence[PartitionLag]) -> None:
    """Set the lag gauges."""
    for lag in lags:
        labels = (lag.group, lag.topic, str(lag.partition))
        LAG_MESSAGES.labels(*labels).set(lag.messages)
        LAG_SECONDS.labels(*labels).set(lag.seconds)
    for group in {lag.group for lag in lags}:
        LAG_MEASURED.labels(group).set(time.time())
