"""The evaluation timer (every DVC_ALERTS_EVALUATION_SECONDS): re-evaluate, expire, escalate, digest.

One instance at a time runs a tick (PostgreSQL advisory lock); every instance refreshes its gauges.
- Re-evaluation of every stored (unit, KPI, period) within the lookback: forecasts move with time, a
  pending breach is confirmed after ALERTS_CONFIRM_SECONDS, a recovery after ALERTS_RESOLVE_SECONDS.
- Expiry: an open alert whose period left the lookback is closed ("expired", no notice).
- Escalation: an alert still unacknowledged ALERTS_ESCALATION_SECONDS after its page went out (or
  failed for good) is sent once to the parent unit's head (wall-clock delay: a breach is urgent;
  a page held back by a silence or by a mail outage starts the delay only when it is sent, so the
  escalation follows the page once SMTP is back, and is not lost meanwhile).
- Digests (non-urgent): in office hours of working days (calendar.py), once per local day per head
  (one e-mail for all the units they head), the unit head gets the list of open overdue cases (with or without an apology), the cases that went
  overdue this month and were closed without an apology, the 100 %-target KPIs missed this month and
  the open cases due within a few working days (digests.py; rebuilt from the data when sent);
  units under a silence for every KPI, overdue_open or apology_coverage get none.
"""

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import Gauge

from services.alerts import queries
from services.alerts.calendar import is_office_time, parse_office_hours
from services.alerts.delivery import active_silences, refresh_delivery_gauges
from services.alerts.digests import digest_contents
from services.alerts.directory import Unit
from services.alerts.handlers import publish_state_changes
from services.alerts.lifecycle import (
    Engine,
    Observation,
    apply_observations,
    queue,
    resolution_rows,
    wake_senders,
)
from services.alerts.notices import AlertRef, DigestContent, alert_rows, head_digest_key, head_digest_rows
from services.alerts.rules import BELOW, STATES, silenced_until
from shared.backoff import Retrying
from shared.periods import in_lookback, parse_published_period
from shared.workdays import local_now

logger = logging.getLogger(__name__)

TIMER_LOCK = 7_240_515  # pg advisory lock key: one timer tick at a time across instances
STATES_GAUGE = Gauge(
    "alerts_states", "(unit, KPI, period) in each alert state, periods within the lookback.", ["state"]
)
OPEN_ALERTS = Gauge("alerts_open", "Open alerts, by acknowledgement.", ["acknowledged"])
LAST_TICK = Gauge("alerts_last_tick_timestamp_seconds", "Unix time of the last completed timer tick.")
for _state in STATES:
    STATES_GAUGE.labels(_state)


TIMER = Retrying("alerts_timer", logger)


async def tick(pool: asyncpg.Pool, engine: Engine) -> None:
    """Run one tick (if no other instance is running one), publish changes, refresh the gauges."""
    now = datetime.now(UTC)
    async with pool.acquire() as connection:
        await engine.refresh(connection)
        await engine.read_completeness(connection, now)
        lookback = engine.settings.ALERTS_LOOKBACK_DAYS
        periods = [
            p
            for p in await queries.fetch_periods(connection)
            if in_lookback(parse_published_period(p), now, lookback)
        ]
        if await connection.fetchval("SELECT pg_try_advisory_lock($1)", TIMER_LOCK):
            try:
                await run_locked(connection, engine, periods, now)
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", TIMER_LOCK)
        await refresh_gauges(connection, periods)
    wake_senders(engine)
    await publish_state_changes(pool)
    LAST_TICK.set(now.timestamp())


async def run_locked(
    connection: asyncpg.Connection, engine: Engine, periods: list[str], now: datetime
) -> None:
    """Re-evaluate, expire, escalate and queue digests, each step in its own transaction."""
    async with connection.transaction():
        rows = await queries.lock_states_of_periods(connection, periods=periods)
        observations = [
            Observation(
                (r["unit_id"], r["kpi"], r["period"]),
                (int(r["numerator"]), int(r["denominator"])),
                r["computed_at"],
            )
            for r in rows
        ]
        await apply_observations(connection, engine, observations, now=now, timer=True)
    async with connection.transaction():
        for alert in await queries.lock_open_alerts_not_in(connection, periods=periods):
            await queries.resolve_alert(connection, alert_id=alert["alert_id"], resolution="expired", now=now)
            await queries.cancel_pending_notifications(connection, alert_id=alert["alert_id"])
    # No notice about a unit whose data lags (holds.py): evaluated, but told once it has caught up.
    async with connection.transaction():
        await queue_held_resolutions(connection, engine, now)
        await queue_held_firings(connection, engine, now)
    async with connection.transaction():
        await escalate(connection, engine, now)
    await queue_digests(connection, engine, now)


async def queue_held_firings(connection: asyncpg.Connection, engine: Engine, now: datetime) -> int:
    """Queue the opening notice of every alert opened while notices were held and still open now
    (re-evaluated just before, on the complete data); return how many."""
    queued = 0
    for alert in await queries.lock_open_alerts_never_notified(connection):
        unit = engine.directory.units.get(alert["unit_id"])
        if unit is None or engine.held(unit.unit_id):
            continue
        key = (alert["unit_id"], alert["kpi"], alert["period"])
        state = await queries.fetch_state(connection, key=key)
        if state is None or state["state"] != BELOW:
            continue
        ref = AlertRef(alert["alert_id"], unit, alert["kpi"], alert["period"], BELOW, state["figures"])
        await queue(connection, alert_rows("firing", ref, recipient=unit, links=engine.links, now=now))
        queued += 1
    return queued


async def queue_held_resolutions(connection: asyncpg.Connection, engine: Engine, now: datetime) -> int:
    """Queue the resolution of every alert that recovered while its unit was held, if its opening was
    told; return how many. If the unit has fallen below target again since, the new alert's opening is
    queued with it (`queue_held_firings`), and grouping cancels the pair: the head's knowledge ("below
    target") is still true, so no e-mail goes out."""
    resolved_after = now - timedelta(days=engine.settings.ALERTS_LOOKBACK_DAYS)
    queued = 0
    for alert in await queries.lock_resolutions_never_told(connection, resolved_after=resolved_after):
        unit = engine.directory.units.get(alert["unit_id"])
        if unit is None or engine.held(unit.unit_id):
            continue
        state, figures = alert["resolved_state"], alert["resolved_figures"]
        ref = AlertRef(alert["alert_id"], unit, alert["kpi"], alert["period"], state, figures)
        await queue(connection, await resolution_rows(connection, engine, ref, now=now))
        queued += 1
    return queued


async def escalate(connection: asyncpg.Connection, engine: Engine, now: datetime) -> int:
    """Send due escalations to the parent unit's head; return how many were queued."""
    delay = timedelta(seconds=engine.settings.ALERTS_ESCALATION_SECONDS)
    queued = 0
    for alert in await queries.lock_escalation_due(connection, notified_before=now - delay):
        if engine.held(alert["unit_id"]):
            continue  # escalated once the unit's data has caught up, if still open and unacknowledged
        unit = engine.directory.units.get(alert["unit_id"])
        parent = engine.directory.parent_of(unit) if unit else None
        await queries.mark_escalated(
            connection, alert_id=alert["alert_id"], parent_id=parent.unit_id if parent else None, now=now
        )
        if unit is None or parent is None:
            continue
        key = (alert["unit_id"], alert["kpi"], alert["period"])
        state = await queries.fetch_state(connection, key=key)
        figures = state["figures"] if state else alert["figures"]
        ref = AlertRef(
            alert["alert_id"],
            unit,
            alert["kpi"],
            alert["period"],
            state["state"] if state else BELOW,
            figures,
        )
        await queue(connection, alert_rows("escalation", ref, recipient=parent, links=engine.links, now=now))
        queued += 1
    return queued


async def queue_digests(connection: asyncpg.Connection, engine: Engine, now: datetime) -> int:
    """In office time, queue today's digest of every head with something to tell about their units
    (one e-mail per head address, whatever their number of units) that has none yet; return how many.
    The sender rebuilds each one from the data when it sends it (digests.py)."""
    overrides = {row["day"]: row["working"] for row in await queries.fetch_holiday_overrides(connection)}
    if not is_office_time(now, parse_office_hours(engine.settings.ALERTS_OFFICE_HOURS), overrides):
        return 0
    today = local_now(now).date()
    contents = await digest_contents(connection, engine, now)
    silences = active_silences(await queries.fetch_silences(connection, active_after=now))
    by_head: dict[str, list[tuple[Unit, DigestContent]]] = defaultdict(list)
    for unit_id in sorted(contents):
        unit = engine.directory.units.get(unit_id)
        if (
            unit is not None
            and silenced_until(silences, unit_id=unit_id, kpi=None, now=now.timestamp()) is None
        ):
            by_head[head_digest_key(unit.head_email, today)].append((unit, contents[unit_id]))
    held = {key for key, told in by_head.items() if engine.holds.holds_any(unit.unit_id for unit, _ in told)}
    done = await queries.fetch_existing_keys(connection, keys=list(by_head)) | held
    queued = 0
    for key in sorted(by_head.keys() - done):
        async with connection.transaction():
            await queue(connection, head_digest_rows(by_head[key], links=engine.links, now=now))
        queued += 1
    return queued


async def refresh_gauges(connection: asyncpg.Connection, periods: Sequence[str]) -> None:
    """Set the state, open-alert and delivery gauges from the database (every instance agrees)."""
    counts = await queries.count_states(connection, periods=periods)
    for state in STATES:
        STATES_GAUGE.labels(state).set(counts.get(state, 0))
    open_alerts = await queries.count_open_alerts(connection)
    for acknowledged in (True, False):
        OPEN_ALERTS.labels(str(acknowledged).lower()).set(open_alerts.get(acknowledged, 0))
    await refresh_delivery_gauges(connection, datetime.now(UTC))
