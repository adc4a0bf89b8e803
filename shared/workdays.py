"""Working days in Vietnam (pure), shared by the alerts digests and the unit pages of metrics.

A working day is Monday to Friday, minus Vietnamese public holidays (the `holidays` package, substituted
days off included), with the `holiday_overrides` table on top (the government's yearly swaps: a Saturday
made a working day, a bridge day made a day off). Days are local days of Asia/Ho_Chi_Minh.
"""

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import holidays

from shared.kpis import LOCAL_TZ


def local_now(now: datetime) -> datetime:
    """Return `now` in local time."""
    return now.astimezone(LOCAL_TZ)


def start_of(day: date) -> datetime:
    """Return local midnight at the start of `day`."""
    return datetime.combine(day, time(0), LOCAL_TZ)


@lru_cache(maxsize=8)
def public_holidays(year: int) -> frozenset[date]:
    """Return Vietnam's public holidays of a year (the `holidays` package)."""
    return frozenset(holidays.country_holidays("VN", years=year))


def is_working_day(day: date, overrides: Mapping[date, bool]) -> bool:
    """Return True on a working day: an override wins, else Mon-Fri that is not a public holiday."""
    if day in overrides:
        return overrides[day]
    return day.weekday() < 5 and day not in public_holidays(day.year)


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
    """Return the ends (local midnight after) of the next working day and of the `working_days`-th one:
    the "sắp đến hạn" horizon of the digests and of the unit pages."""
    today = local_now(now).date()
    first = working_day_after(today, 1, overrides)
    last = working_day_after(today, max(1, working_days), overrides)
    return start_of(first + timedelta(days=1)), start_of(last + timedelta(days=1))
