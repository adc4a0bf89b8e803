"""The completeness watermark (architecture.md principle 9), as every service reads it.

Ingest, the one writer, stores per input partition (case and document events) the instant up to which
that partition's data is complete: "now" when it had consumed and stored everything the broker held,
otherwise the broker timestamp of the oldest record still waiting, minus a grace for upstream delivery
(DVC_WATERMARK_GRACE_SECONDS). The value is refreshed with every stored batch and every lag
measurement (DVC_LAG_POLL_SECONDS), so a stopped ingest leaves it where it last vouched for the data.

A unit's watermark is the minimum over ALL input partitions (stricter than the partition carrying the
unit's key, and independent of the number of partitions): every time-driven judgment uses
`as_of = min(now, watermark)`, and every answer that depends on it carries that `as_of`.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Gauge

from shared import topics
from shared.kpis import LOCAL_TZ

INPUT_TOPICS = (topics.CASE_EVENTS, topics.DOCUMENT_EVENTS)
AS_OF = Gauge(
    "dvc_data_as_of_timestamp_seconds",
    "Unix time up to which the input data is complete (the completeness watermark, capped by now).",
)


@dataclass(frozen=True, slots=True)
class Completeness:
    """The instant the data is complete up to, read at `now`."""

    as_of: datetime  # min(now, watermark)
    now: datetime
    # Ingest has vouched for every input partition. Until then a partition without a stored watermark
    # may hold days of history still waiting (the first seconds of a run), so nothing judged at `as_of`
    # may be remembered as final (metrics' sweep mark).
    known: bool = True

    @property
    def behind_seconds(self) -> float:
        """How far the data lags the wall clock."""
        return max(0.0, (self.now - self.as_of).total_seconds())

    def lagging(self, hold_seconds: float) -> bool:
        """True while the data is more than `hold_seconds` behind: nothing may be notified."""
        return self.behind_seconds > hold_seconds


async def read_completeness(
    connection: asyncpg.Connection, *, topic_prefix: str, now: datetime | None = None
) -> Completeness:
    """Return min(now, the watermark of every stored input partition). With no partition stored yet
    (ingest never ran under this prefix), nothing is known to be missing: `as_of` is now, but not `known`."""
    now = now or datetime.now(UTC)
    rows = await connection.fetch(
        "SELECT topic, count(*) AS partitions, min(complete_until) AS watermark FROM input_watermarks "
        "WHERE topic = ANY($1::text[]) GROUP BY topic",
        [topic_prefix + name for name in INPUT_TOPICS],
    )
    as_of = min([now, *(row["watermark"] for row in rows)])
    known = len(rows) == len(INPUT_TOPICS) and all(row["partitions"] >= topics.PARTITIONS for row in rows)
    AS_OF.set(as_of.timestamp())
    return Completeness(as_of=as_of, now=now, known=known)


def updating_notice(completeness: Completeness, hold_seconds: float) -> str | None:
    """The notice shown for units whose data is still arriving, or None when it is complete enough."""
    if not completeness.lagging(hold_seconds):
        return None
    local = completeness.as_of.astimezone(LOCAL_TZ)
    return f"đang cập nhật dữ liệu đến {local:%H:%M} / updating data up to {local:%H:%M}"
