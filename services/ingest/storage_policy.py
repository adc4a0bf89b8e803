"""How storage failures are handled: an outage is waited out, a poison event is isolated.

A storage outage (`infrastructure_failure_kind`) fails the whole batch: nothing is committed and the
batch comes again after a backoff (`CONSUMER`, through `settle_batch`). Any other error may be one
event's fault: the batch is bisected (`process_isolating`) so the others are stored, and an event
that fails alone `LEAF_ATTEMPTS` times is dead-lettered with the reason `handler_error`.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from services.ingest.storage import StoredBatch, store_batch
from services.ingest.validation import Accepted, DeadLetter
from services.ingest.watermarks import MarksOf
from shared.backoff import Retrying
from shared.consuming import LEAF_ATTEMPTS, process_isolating
from shared.events import HANDLER_ERROR, Rejection

logger = logging.getLogger(__name__)

CONSUMER = Retrying("consumer", logger)  # the outage state of ingest's consumer (readiness reads it)


Store = Callable[[Sequence[Accepted]], Awaitable[StoredBatch]]


async def store_isolating_poison(
    store: Store, batch: Sequence[Accepted]
) -> tuple[StoredBatch, list[DeadLetter]]:
    """Store the batch with `store` (`store_in_transaction`), bisecting it on an error the data may
    cause; return what was stored and the dead letters of the events that failed alone. Storage
    outages propagate."""
    stored = StoredBatch()
    if not batch:
        return stored, []
    outcome = await process_isolating(batch, store)
    for part in outcome.results:
        stored.merge(part)
    crashed = []
    for item, error in outcome.failed:
        logger.error(
            "event %s failed alone %d times, dead-lettering: %r", item.event.event_id, LEAF_ATTEMPTS, error
        )
        crashed.append(DeadLetter(item.record, Rejection(HANDLER_ERROR, f"storage failed: {error!r}"[:500])))
    return stored, crashed


async def store_in_transaction(
    pool: asyncpg.Pool, marks_of: MarksOf | None, batch: Sequence[Accepted]
) -> StoredBatch:
    """Store events, and the watermark of their partitions, in one transaction on a pooled connection."""
    marks = marks_of([item.record for item in batch]) if marks_of is not None else []
    async with pool.acquire() as connection:
        return await store_batch(connection, batch, marks)
