"""Local calendar of alerting (pure): periods, their elapsed fraction, the lookback gate, working time.

Periods are the ones metrics publishes: `month:YYYY-MM` and `year:YYYY` (the year to date), in
Asia/Ho_Chi_Minh. The system may be fed simulated or backfilled data, so alerts evaluate whatever
period an update names, but only if it has started and its last day is at most `lookback_days` before
today: a backfill of 2021 is stored by metrics yet pages nobody, while last month's late corrections
still count. Pace is calendar time (weekends included), floored at one day so that the first hours of
a period do not extrapolate a handful of files to thousands.

Working time gates only non-urgent notices (daily digests) and counts the "due soon" horizon of
digests: a working day is Monday to Friday, minus Vietnamese public holidays (the `holidays` package, substituted days off included), with the
`holiday_overrides` table on top (the government's yearly swaps: a Saturday made a working day, a
bridge day made a day off); office hours are local windows such as "07:30-11:30,13:30-17:00".
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import holidays

from shared.kpis import LOCAL_TZ

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


def local_now(now: datetime) -> datetime:
    """Return `now` in local time."""
    return now.astimezone(LOCAL_TZ)


def start_of(day: date) -> datetime:
    """Return local midnight at the start of `day`."""
    return datetime.combine(day, time(0), LOCAL_TZ)


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


@lru_cache(maxsize=8)
def public_holidays(year: int) -> frozenset[date]:
    """Return Vietnam's public holidays of a year (the `holidays` package)."""
    return frozenset(holidays.country_holidays("VN", years=year))


def is_working_day(day: date, overrides: Mapping[date, bool]) -> bool:
    """Return True on a working day: an override wins, else Mon-Fri that is not a public holiday."""
    if day in overrides:
        return overrides[day]
    return day.weekday() < 5 and day not in public_holidays(day.year)


def is_office_time(
    now: datetime, office_hours: tuple[tuple[time, time], ...], overrides: Mapping[date, bool]
) -> bool:
    """Return True within office hours of a working day (local time)."""
    local = local_now(now)
    if not is_working_day(local.date(), overrides):
        return False
    return any(start <= local.time() < end for start, end in office_hours)


def working_day_after(day: date, count: int, overrides: Mapping[date, bool]) -> date:
    """Return the `count`-th working day after `day` (count >= 1): Friday + 1 is Monday, or Tuesday when
    that Monday is a holiday."""
    found, current = 0, day
    while found < count:
        current += timedelta(days=1)
        found += is_working_day(current, overrides)
    return current


def due_soon_limits(
    now: datetime, working_days: int, overrides: Mapping[date, bool]
) -> tuple[datetime, datetime]:
    """Return the ends (local midnight after) of the next working day and of the `working_days`-th one."""
    today = local_now(now).date()
    first = working_day_after(today, 1, overrides)
    last = working_day_after(today, max(1, working_days), overrides)
    return start_of(first + timedelta(days=1)), start_of(last + timedelta(days=1))
