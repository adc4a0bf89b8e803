"""Local calendar of alerting (pure): the elapsed fraction of a period, working time.

Periods, their parsing and the lookback gate are a contract (shared/periods.py). Pace is calendar time
(weekends included), floored at one day so that the first hours of a period do not extrapolate a
handful of files to thousands.

Working time gates only non-urgent notices (daily digests): working days (shared/workdays.py, also
the "due soon" horizon) and office hours, local windows such as "07:30-11:30,13:30-17:00".
"""

import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

from shared.periods import Period
from shared.workdays import is_working_day, local_now, start_of

WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


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
