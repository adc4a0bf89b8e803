"""Working time of Vietnamese public offices: 07:00-11:30 and 13:30-17:00 on working days (holidays.VN).

Instants are "local seconds": seconds since 1970-01-01 00:00 in Asia/Ho_Chi_Minh (UTC+7, no DST).
A deadline of N working days is N x 8 working hours counted over working time only (domain.md §2).
"""

from datetime import date, datetime, timedelta
from functools import lru_cache
from itertools import accumulate

import holidays

from shared.kpis import LOCAL_TZ

ICT = LOCAL_TZ
UTC_OFFSET = 7 * 3600
DAY = 86_400
MORNING_START = 7 * 3600  # 07:00
MORNING = 4 * 3600 + 1800  # 07:00-11:30
AFTERNOON_START = 13 * 3600 + 1800  # 13:30
AFTERNOON_END = 17 * 3600  # 17:00
WORKDAY = 8 * 3600  # working seconds in one working day
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def day_number(day: date) -> int:
    """Return the local day number (days since 1970-01-01) of a date."""
    return day.toordinal() - EPOCH_ORDINAL


def day_date(number: int) -> date:
    """Return the date of a local day number."""
    return date.fromordinal(number + EPOCH_ORDINAL)


def to_local(moment: datetime) -> int:
    """Return the local seconds of an aware datetime (a naive one is taken as local time)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=ICT)
    return int(aware.timestamp()) + UTC_OFFSET


@lru_cache(maxsize=4096)
def _day_prefix(number: int) -> str:
    return day_date(number).isoformat() + "T"


def iso(local: int) -> str:
    """Format local seconds as ISO 8601 with the +07:00 offset."""
    number, second = divmod(local, DAY)
    hour, rest = divmod(second, 3600)
    return f"{_day_prefix(number)}{hour:02d}:{rest // 60:02d}:{rest % 60:02d}+07:00"


class WorkCalendar:
    """Map local seconds to working seconds (a count over working time only) and back, for a date range."""

    def __init__(self, first: date, last: date) -> None:
        country = holidays.country_holidays("VN", years=range(first.year, last.year + 1))
        span = (last - first).days + 1
        self.first = day_number(first)
        self.working = [bool(country.is_working_day(first + timedelta(n))) for n in range(span)]
        self.days = [self.first + n for n in range(span) if self.working[n]]
        # per calendar day: index in self.days of the first working day on or after it
        self.next_index = list(accumulate(self.working, initial=0))[:-1]

    def is_working_day(self, number: int) -> bool:
        """Tell whether a local day number is a working day (not a weekend unless a make-up day, not a holiday)."""
        return self.working[number - self.first]

    def work_at(self, local: int) -> int:
        """Return the working seconds at an instant; outside working time, those of the next working start."""
        number, second = divmod(local, DAY)
        offset = number - self.first
        index = self.next_index[offset]
        if not self.working[offset]:
            return index * WORKDAY
        if second < MORNING_START + MORNING:
            return index * WORKDAY + max(0, second - MORNING_START)
        return (
            index * WORKDAY + MORNING + min(max(0, second - AFTERNOON_START), AFTERNOON_END - AFTERNOON_START)
        )

    def local_at(self, work: int, *, end: bool = False) -> int:
        """Return the instant of a working-seconds count; `end` maps a boundary to 17:00/11:30, not 07:00/13:30."""
        index, offset = divmod(work, WORKDAY)
        if end and offset == 0 and index > 0:
            index, offset = index - 1, WORKDAY
        day_start = self.days[index] * DAY
        if offset < MORNING or (end and offset == MORNING):
            return day_start + MORNING_START + offset
        return day_start + AFTERNOON_START + offset - MORNING

    def add_working_days(self, local: int, days: float) -> int:
        """Return the deadline `days` working days after `local` (ending at 17:00 rather than 07:00)."""
        return self.local_at(self.work_at(local) + round(days * WORKDAY), end=True)
