"""Group alert e-mails per recipient, the way Alertmanager groups per receiver.

An alert notice by e-mail (firing, resolved, escalation) is queued `held`. For each recipient address,
the grouper releases its held notices once ALERTS_GROUP_WAIT_SECONDS have passed since the oldest one
and ALERTS_GROUP_INTERVAL_SECONDS since the previous release to that address, so a head gets at most
one message per group window, whatever the number of their units and KPIs that changed in it.

At release, each unit x KPI x period is coalesced to its net change: only its last notice is kept. A
notice whose change the head already knows is dropped: a resolution followed by a new firing (flapping
across the hysteresis window) leaves the head's knowledge unchanged ("below target"), so the
resolution is cancelled and the new firing is recorded as told (`sent`, no mail), which keeps its
later escalation and resolution working. (A firing followed by its resolution before release never
reaches this point: resolving an alert cancels its notices not yet released, lifecycle.py.) One notice
left is released as it is; several become one `group` message listing them all, each with its own
links, whose delivery result the members share. Silenced notices stay held until the silence ends, and
the notices of a unit whose input data lags until it has caught up (holds.py, read again at release).
Each recipient is released in one transaction: a restart loses nothing and sends nothing twice (the
group message has one Message-ID, kept on every retry).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from services.alerts import queries
from services.alerts.delivery import active_silences
from services.alerts.lifecycle import Engine
from services.alerts.notices import group_row
from services.alerts.rules import Silence, silenced_until
from shared.backoff import Retrying

logger = logging.getLogger(__name__)

GROUPER = Retrying("alerts_grouper", logger)


@dataclass(frozen=True, slots=True)
class Held:
    """A held notice, as coalescing sees it."""

    notification_id: int
    key: tuple[str, str | None, str | None]  # (unit, KPI, period)
    kind: str


@dataclass(slots=True)
class Coalesced:
    """The outcome of coalescing a recipient's held notices."""

    keep: list[int] = field(default_factory=list)  # to send, in order
    cancel: list[int] = field(default_factory=list)  # superseded, or cancelled by a later notice
    told: list[int] = field(default_factory=list)  # the head already knows: recorded as sent, no mail


def coalesce(notices: Sequence[Held]) -> Coalesced:
    """Reduce each unit x KPI x period to its net change since the head's last message (pure)."""
    by_key: dict[tuple[str, str | None, str | None], list[Held]] = {}
    for notice in sorted(notices, key=lambda n: n.notification_id):
        by_key.setdefault(notice.key, []).append(notice)
    result = Coalesced()
    for changes in by_key.values():
        first, last = changes[0], changes[-1]
        result.cancel += [n.notification_id for n in changes[:-1]]
        knew_firing = first.kind == "resolved"  # a resolution is only queued to those told of the firing
        if knew_firing == (last.kind != "resolved"):  # net unchanged
            (result.told if last.kind != "resolved" else result.cancel).append(last.notification_id)
        else:
            result.keep.append(last.notification_id)
    result.keep.sort()
    return result


async def release_due(pool: asyncpg.Pool, engine: Engine) -> int:
    """Release the held notices of every recipient whose group is due; return how many messages."""
    settings = engine.settings
    now = datetime.now(UTC)
    released = 0
    async with pool.acquire() as connection:
        await engine.refresh(connection)
        recipients = await queries.fetch_group_due_recipients(
            connection,
            now=now,
            wait_seconds=settings.ALERTS_GROUP_WAIT_SECONDS,
            interval_seconds=settings.ALERTS_GROUP_INTERVAL_SECONDS,
        )
        if not recipients:
            return 0
        await engine.read_completeness(connection, now)  # the hold, again at send time
        silences = active_silences(await queries.fetch_silences(connection, active_after=now))
        for recipient in recipients:
            async with connection.transaction():
                released += await release_recipient(connection, engine, recipient, silences, now)
    if released:
        engine.wakes["email"].set()
    return released


async def release_recipient(
    connection: asyncpg.Connection, engine: Engine, recipient: str, silences: list[Silence], now: datetime
) -> int:
    """Coalesce and release one recipient's held notices (in the caller's transaction); return 1 if a
    message was released, else 0."""
    rows = [
        row
        for row in await queries.lock_held_notifications(connection, recipient=recipient)
        if silenced_until(silences, unit_id=row["unit_id"], kpi=row["kpi"], now=now.timestamp()) is None
        and not engine.held(row["unit_id"])
    ]
    result = coalesce(
        [Held(int(r["notification_id"]), (r["unit_id"], r["kpi"], r["period"]), r["kind"]) for r in rows]
    )
    await queries.settle_held(connection, ids=result.cancel, status="cancelled", now=now)
    await queries.settle_held(connection, ids=result.told, status="sent", now=now)
    kept = [row for row in rows if int(row["notification_id"]) in set(result.keep)]
    if not kept:
        return 0
    if len(kept) == 1:
        await queries.release_notification(
            connection, notification_id=int(kept[0]["notification_id"]), now=now
        )
        return 1
    head = engine.directory.units.get(kept[0]["recipient_unit_id"] or kept[0]["unit_id"])
    if head is None:  # the recipient unit left the registry: send each notice as it is
        for row in kept:
            await queries.release_notification(
                connection, notification_id=int(row["notification_id"]), now=now
            )
        return len(kept)
    members = [dict(row) for row in kept]
    group_id = await queries.insert_group_notification(
        connection, fields=group_row(head, recipient, members, now)
    )
    await queries.fold_into_group(
        connection, ids=[int(row["notification_id"]) for row in kept], group_id=group_id
    )
    logger.info("group message %s to %s: %s notices", group_id, recipient, len(kept))
    return 1
