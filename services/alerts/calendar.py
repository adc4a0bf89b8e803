"""Local calendar of alerting (pure): periods, their elapsed fraction, the lookback gate, working time.

Periods are the ones metrics publishes: `month:YYYY-MM` and `year:YYYY` (the year to date), in
Asia/Ho_Chi_Minh. The system may be fed simulated or backfilled data, so alerts evaluate whatever
period an update names, but only if it has started and its last day is at most `lookback_days` before
today: a backfill of 2021 is stored by metrics yet pages nobody, while last month's late corrections
still count. Pace is calendar time (weekends included), floored at one day so that the first hours of
a period do not extrapolate a handful of files to thousands.

Working time gates only non-urgent notices (daily digests): working days (shared/workdays.py, also
the "due soon" horizon) and office hours, local windows such as "07:30-11:30,13:30-17:00".
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from shared.workdays import is_working_day, local_now, start_of

WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class Period:
    """An inclusive range of local days named like `month:2021-03`."""

    name: str
    first: date
    last: date

    @property
    def kind(self) -> str:
        """Return "month" or "year"."""
        return self.name.partition(":")[0]


def parse_period(name: str) -> Period:
    """Parse `month:YYYY-MM` or `year:YYYY`; raise ValueError otherwise."""
    kind, _, value = name.partition(":")
    if kind == "month" and re.fullmatch(r"\d{4}-\d{2}", value):
        first = date.fromisoformat(value + "-01")
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return Period(name, first, following - timedelta(days=1))
    if kind == "year" and re.fullmatch(r"\d{4}", value):
        return Period(name, date(int(value), 1, 1), date(int(value), 12, 31))
    raise ValueError(f"kỳ không hợp lệ / invalid period {name!r}: expected month:YYYY-MM or year:YYYY")


def in_lookback(period: Period, now: datetime, lookback_days: int) -> bool:
    """Return True if the period has started and ended at most `lookback_days` days ago."""
    today = local_now(now).date()
    return period.first <= today and period.last >= today - timedelta(days=lookback_days)


def elapsed_fraction(period: Period, now: datetime) -> float:
    """Return the elapsed share of the period, floored at one day, 1.0 once it has ended."""
    start, end = start_of(period.first), start_of(period.last + timedelta(days=1))
    total = (end - start).total_seconds()
    floor = 86400.0 / total
    return min(1.0, max(floor, (now - start).total_seconds() / total))


def parse_office_hours(text: str) -> tuple[tuple[time, time], ...]:
    """Parse "HH:MM-HH:MM[,HH:MM-HH:MM...]" into windows; "24:00" ends a day."""
    windows = []
    for part in text.replace(" ", "").split(","):
        match = WINDOW.match(part)
        if match is None:
            raise ValueError(f"giờ làm việc không hợp lệ / invalid office hours {text!r}")
        h1, m1, h2, m2 = (int(group) for group in match.groups())
        end = time.max if (h2, m2) == (24, 0) else time(h2, m2)
        windows.append((time(h1, m1), end))
    return tuple(windows)


def is_office_time(
    now: datetime, office_hours: tuple[tuple[time, time], ...], overrides: Mapping[date, bool]
) -> bool:
    """Return True within office hours of a working day (local time)."""
    local = local_now(now)
    if not is_working_day(local.date(), overrides):
        return False
    return any(start <= local.time() < end for start, end in office_hours)
