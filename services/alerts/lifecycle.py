"""Alert life cycle: evaluate observations, store states, open and resolve alerts, queue their notices.

Everything an evaluation changes (state, alert, state-change event, notification rows) is written in
the caller's transaction, so a crash never loses an alert nor sends one twice: the outboxes
(`alert_events` for Kafka, `notifications` for channels) are drained by background tasks. One open
alert per (unit, KPI, period) is enforced by a partial unique index. Notices of an alert resolved
before they went out are cancelled, and the resolution goes only to those who got the opening (or
the escalation), like Alertmanager's group_wait.
"""

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import yaml
from prometheus_client import Counter, Gauge

from services.alerts import queries
from services.alerts.calendar import elapsed_fraction
from services.alerts.directory import Directory, Unit
from services.alerts.holds import Holds, read_holds
from services.alerts.notices import AlertRef, Links, Row, alert_rows
from services.alerts.rules import BELOW, STATES, Memory, Policy, Verdict, advance, evaluate
from shared.config import AlertsSettings
from shared.events import UnitKpisComputed
from shared.kpis import KPI_BY_ID
from shared.notifications import CHANNELS
from shared.periods import in_lookback, parse_published_period
from shared.targets import Target, Targets
from shared.watermark import read_completeness

logger = logging.getLogger(__name__)

EVALUATIONS = Counter("alerts_evaluations_total", "KPI evaluations run.", ["trigger"])
STATE_CHANGES = Counter("alerts_state_changes_total", "State changes, by the state entered.", ["state"])
HELD = Gauge(
    "alerts_notices_held", "Units whose notices are held because their input partitions lag (watermark)."
)
for _trigger in ("update", "timer"):
    EVALUATIONS.labels(_trigger)
for _state in STATES:
    STATE_CHANGES.labels(_state)


@dataclass(slots=True)
class Engine:
    """What evaluation needs besides the database: settings, targets, the unit directory, policy."""

    settings: AlertsSettings
    targets: Targets
    directory: Directory
    policy: Policy
    links: Links
    wakes: dict[str, asyncio.Event]  # set when notices are queued: senders need not wait for their poll
    # The completeness watermark at the last evaluation (shared/watermark.py): time is judged as of
    # `as_of`, and no notice is queued, released or sent about a unit whose input partitions lag more
    # than WATERMARK_HOLD_SECONDS (holds.py).
    as_of: datetime | None = None
    holds: Holds = dataclasses.field(default_factory=Holds)

    @classmethod
    def from_settings(cls, settings: AlertsSettings, targets: Targets) -> "Engine":
        """Build the engine from the settings."""
        policy = Policy(
            min_samples=settings.ALERTS_MIN_SAMPLES,
            recovery_margin=settings.ALERTS_RECOVERY_MARGIN,
            confirm_seconds=settings.ALERTS_CONFIRM_SECONDS,
            resolve_seconds=settings.ALERTS_RESOLVE_SECONDS,
        )
        links = Links(
            public_url=settings.PUBLIC_URL,
            grafana_url=settings.GRAFANA_URL,
            signing_key=settings.ALERTS_SIGNING_KEY.get_secret_value(),
            grafana_enabled=settings.GRAFANA_TOKEN is not None and settings.GRAFANA_URL is not None,
            escalation_seconds=settings.ALERTS_ESCALATION_SECONDS,
            ack_link_seconds=settings.ALERTS_ACK_LINK_DAYS * 86400,
            pages_url=settings.PAGES_URL,
            pages_key=settings.PAGES_SIGNING_KEY.get_secret_value() if settings.PAGES_SIGNING_KEY else None,
            page_link_seconds=settings.PAGES_LINK_DAYS * 86400,
        )
        return cls(
            settings, targets, Directory(), policy, links, {channel: asyncio.Event() for channel in CHANNELS}
        )

    async def refresh(self, connection: asyncpg.Connection) -> None:
        """Reload the unit directory and the targets if they changed (a broken targets file is kept out)."""
        await self.directory.refresh(connection, max_age=self.settings.REGISTRY_REFRESH_SECONDS)
        try:
            self.targets.reload_if_changed()
        except (OSError, ValueError, yaml.YAMLError):
            logger.exception("targets file unreadable; keeping the targets loaded before")

    async def read_completeness(self, connection: asyncpg.Connection, now: datetime) -> datetime:
        """Read the completeness watermark and the units it holds; return min(now, watermark)."""
        prefix, hold = self.settings.TOPIC_PREFIX, self.settings.WATERMARK_HOLD_SECONDS
        completeness = await read_completeness(connection, topic_prefix=prefix, now=now)
        self.as_of = completeness.as_of
        self.links = dataclasses.replace(self.links, as_of=completeness.as_of)  # the mails' "as of" line
        self.holds = await read_holds(connection, topic_prefix=prefix, now=now, hold_seconds=hold)
        HELD.set(sum(map(self.holds.holds, self.directory.units)) if self.holds.lagging else 0)
        return completeness.as_of

    def held(self, unit_id: str) -> bool:
        """True while no notice about the unit may be queued, released or sent (its data lags)."""
        return self.holds.holds(unit_id)

    def target(self, unit: Unit, kpi: str, period: str) -> Target | None:
        """Return the target in force for a unit's KPI in a period's year (None: informational)."""
        if KPI_BY_ID[kpi].yearly and not period.startswith("year:"):
            return None  # kpis.md: a month's value of a yearly KPI is informational
        year = parse_published_period(period).first.year
        return self.targets.for_unit(kpi, unit_id=unit.unit_id, level=unit.level, year=year)


@dataclass(frozen=True, slots=True)
class Observation:
    """Counts of one (unit, KPI, period) to evaluate."""

    key: queries.Key
    counts: tuple[int, int]
    computed_at: float


@dataclass(frozen=True, slots=True)
class Stored:
    """A row of alert_states."""

    state: str
    since: datetime
    counts: tuple[int, int]
    figures: dict[str, Any]
    streak: int
    streak_since: datetime | None
    computed_at: float
    alert_id: int | None

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> "Stored":
        """Read a stored row."""
        return cls(
            row["state"],
            row["since"],
            (int(row["numerator"]), int(row["denominator"])),
            row["figures"],
            row["streak"],
            row["streak_since"],
            row["computed_at"],
            row["alert_id"],
        )

    def memory(self) -> Memory:
        """Return what hysteresis remembers."""
        since = self.streak_since.timestamp() if self.streak_since else None
        return Memory(self.state, self.streak, since)


def observations_of(update: UnitKpisComputed, engine: Engine, now: datetime) -> list[Observation]:
    """Return the targeted KPIs of an update whose period is within the lookback (others are skipped)."""
    try:
        period = parse_published_period(update.period)
    except ValueError:
        return []
    unit = engine.directory.units.get(update.unit_id)
    if unit is None or not in_lookback(period, now, engine.settings.ALERTS_LOOKBACK_DAYS):
        return []
    return [
        Observation((update.unit_id, kpi, update.period), (int(n), int(d)), update.computed_at)
        for kpi, (n, d) in sorted(update.counts.items())
        if kpi in KPI_BY_ID and engine.target(unit, kpi, update.period) is not None
    ]


async def apply_observations(
    connection: asyncpg.Connection,
    engine: Engine,
    observations: list[Observation],
    *,
    now: datetime,
    timer: bool,
) -> int:
    """Evaluate observations in order (in the caller's transaction); return the number of state changes."""
    keys = sorted({obs.key for obs in observations})
    stored = {
        (row["unit_id"], row["kpi"], row["period"]): Stored.from_record(row)
        for row in await queries.lock_states(connection, keys=keys)
    }
    changes = 0
    for obs in observations:
        previous = stored.get(obs.key)
        if previous is not None and obs.computed_at < previous.computed_at:
            continue  # an older computation, redelivered or overtaken
        new_data = not timer and (previous is None or previous.counts != obs.counts)
        current = await step(connection, engine, obs, previous, now=now, new_data=new_data)
        if current is not None:
            changes += previous is None or previous.state != current.state
            stored[obs.key] = current
        EVALUATIONS.labels("timer" if timer else "update").inc()
    return changes


async def step(
    connection: asyncpg.Connection,
    engine: Engine,
    obs: Observation,
    previous: Stored | None,
    *,
    now: datetime,
    new_data: bool,
) -> Stored | None:
    """Evaluate one observation, apply the transition and store the state."""
    unit = engine.directory.units.get(obs.key[0])
    target = engine.target(unit, obs.key[1], obs.key[2]) if unit else None
    if unit is None or target is None:
        return None
    elapsed = elapsed_fraction(parse_published_period(obs.key[2]), min(now, engine.as_of or now))  # data time
    verdict = evaluate(
        obs.counts, target, is_count=KPI_BY_ID[obs.key[1]].is_count, elapsed=elapsed, policy=engine.policy
    )
    memory = advance(
        previous.memory() if previous else None,
        verdict,
        now=now.timestamp(),
        new_data=new_data,
        policy=engine.policy,
    )
    figures = verdict.figures.as_json()
    old_state = previous.state if previous else None
    alert_id, event_alert_id = await open_or_resolve(
        connection, engine, obs.key, unit, previous, memory.state, verdict, now=now
    )
    streak_since = datetime.fromtimestamp(memory.streak_since, UTC) if memory.streak_since else None
    since = previous.since if previous and previous.state == memory.state else now
    current = Stored(
        memory.state, since, obs.counts, figures, memory.streak, streak_since, obs.computed_at, alert_id
    )
    if memory.state != old_state:
        await queries.insert_event(
            connection,
            key=obs.key,
            alert_id=event_alert_id,
            previous_state=old_state,
            state=memory.state,
            counts=obs.counts,
            figures=figures,
            now=now,
        )
        STATE_CHANGES.labels(memory.state).inc()
    if current != previous:
        await queries.upsert_state(connection, values=state_values(obs.key, current, now))
    return current


async def open_or_resolve(
    connection: asyncpg.Connection,
    engine: Engine,
    key: queries.Key,
    unit: Unit,
    previous: Stored | None,
    state: str,
    verdict: Verdict,
    *,
    now: datetime,
) -> tuple[int | None, int | None]:
    """Open an alert on entering below_target, resolve it on leaving; return (open alert, alert of the change)."""
    alert_id = previous.alert_id if previous else None
    figures = verdict.figures.as_json()
    entering = state == BELOW and (previous is None or previous.state != BELOW)
    if entering and not verdict.figures.zero_tolerance:
        opened = await open_alert(connection, engine, key, unit, figures, now=now)
        return opened, opened
    if state != BELOW and alert_id is not None:
        await resolve_alert(connection, engine, alert_id, key, unit, state, figures, now=now)
        return None, alert_id
    return alert_id, alert_id


def state_values(key: queries.Key, state: Stored, now: datetime) -> list[Any]:
    """Return a state row's values in queries.STATE_COLUMNS order."""
    return [
        *key,
        state.state,
        state.since,
        state.counts[0],
        state.counts[1],
        state.figures,
        state.streak,
        state.streak_since,
        state.computed_at,
        now,
        state.alert_id,
    ]


async def queue(connection: asyncpg.Connection, rows: list[Row]) -> None:
    """Insert outbox rows (in the caller's transaction; call `wake_senders` after the commit)."""
    for row in rows:
        await queries.insert_notification(connection, fields=row)


def wake_senders(engine: Engine) -> None:
    """Tell the sender loops that rows may be due, so that they need not wait for their poll."""
    for event in engine.wakes.values():
        event.set()


async def open_alert(
    connection: asyncpg.Connection,
    engine: Engine,
    key: queries.Key,
    unit: Unit,
    figures: dict[str, Any],
    *,
    now: datetime,
) -> int:
    """Open an alert and queue its page to the unit head."""
    alert_id = await queries.insert_alert(connection, key=key, figures=figures, now=now)
    ref = AlertRef(alert_id, unit, key[1], key[2], BELOW, figures)
    if not engine.held(unit.unit_id):  # held: queued once the data is complete, if still open then
        await queue(connection, alert_rows("firing", ref, recipient=unit, links=engine.links, now=now))
    return alert_id


async def resolve_alert(
    connection: asyncpg.Connection,
    engine: Engine,
    alert_id: int,
    key: queries.Key,
    unit: Unit,
    state: str,
    figures: dict[str, Any],
    *,
    now: datetime,
) -> None:
    """Close an alert and tell everyone who got its opening or escalation, on the same channels (held:
    the timer tells them once the unit's data has caught up, tasks.py)."""
    await queries.resolve_alert(connection, alert_id=alert_id, resolution="recovered", now=now)
    await queries.cancel_pending_notifications(connection, alert_id=alert_id)
    if not engine.held(unit.unit_id):
        await queue(
            connection,
            await resolution_rows(
                connection, engine, AlertRef(alert_id, unit, key[1], key[2], state, figures), now=now
            ),
        )


async def resolution_rows(
    connection: asyncpg.Connection, engine: Engine, ref: AlertRef, *, now: datetime
) -> list[Row]:
    """Return the resolution notices of an alert: to everyone who got its opening or escalation, on the
    same channels."""
    notified = await queries.fetch_notified_recipients(connection, alert_id=ref.alert_id)
    reached = {(row["channel"], row["recipient"]) for row in notified}
    rows: list[Row] = []
    for unit_id in sorted({row["recipient_unit_id"] or ref.unit.unit_id for row in notified}):
        recipient = engine.directory.units.get(unit_id, ref.unit)
        candidates = alert_rows("resolved", ref, recipient=recipient, links=engine.links, now=now)
        rows += [row for row in candidates if (row["channel"], row["recipient"]) in reached]
    return rows
