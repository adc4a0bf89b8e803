"""Which units' notices are held because their input data lags (architecture.md principle 9).

Every input event is keyed by its unit (event-contract.md), so a unit's events are on the partition the
default partitioner (murmur2, as Kafka's clients) gives its id, in each input topic. A unit is held while
one of those partitions is more than DVC_WATERMARK_HOLD_SECONDS behind (its completeness watermark, as
ingest stored it); a lag confined to other partitions holds nothing of it. Held, the alerts service still
evaluates, but queues, releases and sends no notice about the unit; once its partitions have caught up,
the timer sends what is still true (tasks.py). A producer keying by something else than the unit breaks
the contract's ordering, and this mapping with it. Every input topic is taken to have at least the
partitions `dvc kafka setup` creates (topics.PARTITIONS): a partition with no stored watermark lags, so
a topic created with fewer holds the units mapped to the missing ones (gauge alerts_notices_held).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from aiokafka.partitioner import DefaultPartitioner

from services.alerts import queries
from shared import topics
from shared.watermark import INPUT_TOPICS

PARTITIONER = DefaultPartitioner()


def key_partition(unit_id: str, partitions: int) -> int:
    """Return the partition a record keyed by `unit_id` goes to, in a topic of `partitions` partitions."""
    numbers = list(range(partitions))
    return int(PARTITIONER(unit_id.encode(), numbers, numbers))


@dataclass(frozen=True, slots=True)
class Holds:
    """The lagging input partitions, and how many partitions each input topic has."""

    lagging: frozenset[tuple[str, int]] = frozenset()
    partitions: dict[str, int] = field(default_factory=dict)

    def holds(self, unit_id: str) -> bool:
        """True while a partition carrying the unit's events lags."""
        return bool(self.lagging) and any(
            (topic, key_partition(unit_id, count)) in self.lagging for topic, count in self.partitions.items()
        )

    def holds_any(self, unit_ids: Iterable[str]) -> bool:
        """True while any of the units is held."""
        return any(self.holds(unit_id) for unit_id in unit_ids)


async def read_holds(
    connection: asyncpg.Connection, *, topic_prefix: str, now: datetime, hold_seconds: float
) -> Holds:
    """Read the stored watermark of every input partition and return the ones that hold notices. Once
    ingest has stored any, a partition it has not vouched for yet (no row: the first seconds of a run,
    before its first lag measurement) lags. With none stored (ingest never ran), nothing is held."""
    rows = await queries.fetch_input_watermarks(
        connection, topics=[topic_prefix + name for name in INPUT_TOPICS]
    )
    if not rows:
        return Holds()
    partitions = {topic_prefix + name: topics.PARTITIONS for name in INPUT_TOPICS}
    for row in rows:
        partitions[row["topic"]] = max(partitions[row["topic"]], int(row["partition"]) + 1)
    complete = {
        (row["topic"], int(row["partition"]))
        for row in rows
        if (now - row["complete_until"]).total_seconds() <= hold_seconds
    }
    lagging = {(topic, n) for topic, count in partitions.items() for n in range(count)} - complete
    return Holds(frozenset(lagging), partitions)
