"""The simulated event stream: generated day by day, emitted in occurred_at order, then optionally disturbed.

Disturbances, each from its own seeded random stream: bad messages injected after good ones, verbatim
duplicates, and reordering within windows of consecutive messages (out-of-order arrival).
"""

import random
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

from shared.units import Registry
from simulator.bad import Breaker, applicable_reasons
from simulator.calendar import DAY, ICT, UTC_OFFSET, WorkCalendar, day_date, iso, to_local
from simulator.cases import UnitDay
from simulator.profiles import build_profiles

CALENDAR_MARGIN_DAYS = 180  # room for the chains of the last cases received (deadline, pause, lateness)


class SimEvent(NamedTuple):
    """One message as sent: unprefixed topic, key (unit id), JSON value, and what the simulator meant by it."""

    topic: str
    key: bytes
    value: bytes
    ts: float  # occurred_at as unix seconds (of the good event a bad one was made from)
    expected_reason: str | None = None  # the contract's reason code for bad input; None for a good event
    duplicate: bool = False  # a verbatim re-send of an earlier message

    @property
    def occurred_at(self) -> datetime:
        """Return occurred_at in local time (UTC+7)."""
        return datetime.fromtimestamp(self.ts, ICT)


def generate_events(
    registry: Registry,
    *,
    start: datetime | date,
    days: float,
    seed: int = 0,
    scale: float = 1.0,
    bad_rate: float = 0.0,
    duplicate_rate: float = 0.0,
    shuffle_window: int = 0,
    id_prefix: str | None = None,
) -> Iterator[SimEvent]:
    """Generate a province's contract events for `days` from `start`, deterministically for `seed`."""
    moment = (
        start if isinstance(start, datetime) else datetime(start.year, start.month, start.day, tzinfo=ICT)
    )
    events = ordered_events(
        registry,
        start=to_local(moment),
        days=days,
        seed=seed,
        scale=scale,
        id_prefix=f"s{seed}." if id_prefix is None else id_prefix,
    )
    if bad_rate > 0:
        events = inject_bad(events, bad_rate, Breaker(random.Random(f"{seed}/bad"), unit_ids(registry)))
    if duplicate_rate > 0:
        events = duplicate(events, duplicate_rate, random.Random(f"{seed}/duplicates"))
    if shuffle_window > 1:
        events = shuffle(events, shuffle_window, random.Random(f"{seed}/shuffle"))
    return events


def unit_ids(registry: Registry) -> frozenset[str]:
    """Return the registry's unit ids."""
    return frozenset(unit.id for unit in registry.units)


def ordered_events(
    registry: Registry, *, start: int, days: float, seed: int, scale: float, id_prefix: str
) -> Iterator[SimEvent]:
    """Build each day's case files with their whole chains; emit each day's events sorted by occurred_at."""
    end = start + round(days * DAY)
    first, last = start // DAY, (end - 1) // DAY
    calendar = WorkCalendar(day_date(first), day_date(last) + timedelta(CALENDAR_MARGIN_DAYS))
    profiles = build_profiles(registry, seed)
    recipients = tuple(sorted(unit_ids(registry)))
    keys = {profile.unit_id: profile.unit_id.encode() for profile in profiles}
    inspected_by = inspection_scopes(registry)
    pending: defaultdict[int, list[tuple[int, int, str, str, bytes]]] = defaultdict(list)
    order = count()
    for day in range(first, last + 1):
        if calendar.is_working_day(day):
            for profile in profiles:
                unit_day = UnitDay(
                    profile,
                    calendar,
                    day,
                    seed=seed,
                    id_prefix=id_prefix,
                    window=(start, end),
                    recipients=recipients,
                    inspects=inspected_by.get(profile.unit_id, ()),
                )
                for local, topic, value in unit_day.build(scale):
                    pending[local // DAY].append((local, next(order), topic, profile.unit_id, value))
        for local, _, topic, unit_id, value in sorted(pending.pop(day, ())):
            yield SimEvent(topic, keys[unit_id], value, local - UTC_OFFSET)


def inspection_scopes(registry: Registry) -> dict[str, tuple[str, ...]]:
    """Who inspects whom: units of the first level inspect every other unit; a parent inspects its children."""
    top = registry.levels[0].id
    levels = {unit.id: unit.level for unit in registry.units}
    everyone = sorted(levels)
    scopes: dict[str, list[str]] = defaultdict(list)
    for unit in registry.units:
        if unit.parent is not None and levels.get(unit.parent) != top:
            scopes[unit.parent].append(unit.id)
    for unit in registry.units:
        if unit.level == top:
            scopes[unit.id] = [other for other in everyone if other != unit.id]
    return {unit_id: tuple(sorted(inspected)) for unit_id, inspected in scopes.items()}


def inject_bad(events: Iterable[SimEvent], rate: float, breaker: Breaker) -> Iterator[SimEvent]:
    """After each good event, with probability `rate`, send a broken copy of it (any reason it allows)."""
    rng = breaker.rng
    for event in events:
        yield event
        if rng.random() < rate:
            body = orjson.loads(event.value)
            reason = rng.choice(applicable_reasons(body))
            yield event._replace(value=breaker.bad_message(body, reason), expected_reason=reason)


def duplicate(events: Iterable[SimEvent], rate: float, rng: random.Random) -> Iterator[SimEvent]:
    """After each good event, with probability `rate`, send it again verbatim."""
    for event in events:
        yield event
        if event.expected_reason is None and rng.random() < rate:
            yield event._replace(duplicate=True)


def shuffle(events: Iterable[SimEvent], window: int, rng: random.Random) -> Iterator[SimEvent]:
    """Reorder messages within consecutive windows of `window` messages."""
    chunk: list[SimEvent] = []
    for event in events:
        chunk.append(event)
        if len(chunk) == window:
            rng.shuffle(chunk)
            yield from chunk
            chunk = []
    rng.shuffle(chunk)
    yield from chunk


def truth_line(event: SimEvent) -> bytes:
    """Return the ground-truth JSON line of a sent message: the event itself, or a bad one's raw bytes and reason."""
    head = orjson.dumps(
        {
            "topic": event.topic,
            "key": event.key.decode(),
            "occurred_at": iso(round(event.ts) + UTC_OFFSET),
            "expected_reason": event.expected_reason,
            "duplicate": event.duplicate,
        }
    )
    if event.expected_reason is None:
        return head[:-1] + b',"event":' + event.value + b"}\n"
    try:
        raw = orjson.dumps({"raw": event.value.decode()})
    except UnicodeDecodeError:
        raw = orjson.dumps({"raw_hex": event.value.hex()})
    return head[:-1] + b"," + raw[1:] + b"\n"


def record_truth(events: Iterable[SimEvent], lines: IO[bytes]) -> Iterator[SimEvent]:
    """Pass the events through, writing each one's ground-truth line first."""
    for event in events:
        lines.write(truth_line(event))
        yield event


def read_truth(path: Path) -> Iterator[dict[str, Any]]:
    """Read a ground-truth file back, one dict per message sent."""
    with path.open("rb") as lines:
        for line in lines:
            yield orjson.loads(line)
