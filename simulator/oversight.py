"""One unit's periodic reports and the inspections it completes on a working day (contract v1.1).

Reports: each unit files about 70 periodic reports and statistical returns a year, online through the
national reporting system by habit (its document habit, a little lower). Inspections: units of the upper
levels inspect units below them a few times a month; a share is on administrative reform (CCHC), a share
is carried out digitally. Rates give roughly the plan's order of magnitude, with units on both sides.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from shared.topics import INSPECTION_EVENTS, REPORT_EVENTS
from simulator.calendar import WORKDAY, iso

REPORT_SOURCE = "baocao-sim"
INSPECTION_SOURCE = "thanhtra-sim"
REPORTS_PER_DAY = 70 / 250
REPORT_CODES = ("BC-CCHC-Q", "BC-TTHC-T", "BC-KSTT-Q", "BC-CDS-6T", "TK-DVC-T", "BC-PCTN-Q", "BC-VTLT-N")
REPORT_DEADLINE_DAYS = 5
INSPECTIONS_PER_DAY = 0.06  # per inspecting unit
ADMINISTRATIVE_REFORM, DIGITAL = 0.5, 0.35

Built = tuple[int, str, bytes]  # (local seconds, topic, JSON value)


@dataclass(frozen=True, slots=True)
class OversightDay:
    """What one unit's day needs to build its reports and inspections."""

    unit_id: str
    stamp: str  # id prefix of the unit and day
    day_work: int  # working seconds at the start of the day
    window: tuple[int, int]
    online_share: float  # of its reports
    inspects: tuple[str, ...]  # the units it may inspect (none: it inspects nobody)


def build_oversight(day: OversightDay, rng: random.Random, local_at: Callable[[int], int]) -> list[Built]:
    """Build the day's reports and completed inspections (events at or after the window's end left out)."""
    out: list[Built] = []
    for seq in range(1, draw_count(rng, REPORTS_PER_DAY) + 1):
        local = local_at(day.day_work + int(rng.random() * WORKDAY))
        online = rng.random() < day.online_share
        body = {
            **common(day, f"{day.stamp}BC{seq:03d}", "report_submitted", local, REPORT_SOURCE),
            "report_id": f"{day.stamp}BC{seq:03d}",
            "report_code": rng.choice(REPORT_CODES),
            "channel": "online" if online else "paper",
            "connected_to_national_system": online and rng.random() < 0.95,
            "due_at": iso(local + REPORT_DEADLINE_DAYS * 86400) if rng.random() < 0.8 else None,
        }
        out.append((local, REPORT_EVENTS, orjson.dumps(body)))
    if day.inspects:
        for seq in range(1, draw_count(rng, INSPECTIONS_PER_DAY) + 1):
            local = local_at(day.day_work + int(rng.random() * WORKDAY))
            body = {
                **common(day, f"{day.stamp}KT{seq:03d}", "inspection_completed", local, INSPECTION_SOURCE),
                "inspection_id": f"{day.stamp}KT{seq:03d}",
                "inspected_unit_id": rng.choice(day.inspects),
                "topic": "administrative_reform" if rng.random() < ADMINISTRATIVE_REFORM else "other",
                "digital": rng.random() < DIGITAL,
            }
            out.append((local, INSPECTION_EVENTS, orjson.dumps(body)))
    start, end = day.window
    return [built for built in out if start <= built[0] < end]


def common(day: OversightDay, subject: str, event_type: str, local: int, source: str) -> dict[str, object]:
    """Return the fields common to every event."""
    return {
        "event_id": f"{subject}:{event_type}",
        "event_type": event_type,
        "occurred_at": iso(local),
        "unit_id": day.unit_id,
        "source": source,
    }


def draw_count(rng: random.Random, mean: float) -> int:
    """Draw a small count with the given mean (Bernoulli trials; means here are below 1)."""
    whole = int(mean)
    return whole + (1 if rng.random() < mean - whole else 0)
