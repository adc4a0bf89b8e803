"""Periods (a contract: `UnitKpisComputed.period` carries their names): local calendar periods, the
reporting periods (kỳ báo cáo), and the lookback that decides which periods are still live.

"Period" means a calendar day, month, quarter or year in local time (Asia/Ho_Chi_Minh), plus year to
date (kpis.md). Metrics publishes, and alerts evaluates, months and years only (`PUBLISHED_KINDS`).

Reporting periods follow Decree 09/2019/NĐ-CP, Art. 12: a month runs from the 15th of the previous
month to the 14th; a quarter from the 15th of the month before it to the 14th of its last month; the
six months, nine months and year of year Y from 15 December of Y-1 to 14 June, 14 September and
14 December of Y.

The lookback: the system may be fed simulated or backfilled data, so a period stays live while its
last day is at most `lookback_days` before today; a backfill of 2021 is stored yet pages nobody, while
last month's late corrections still count.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.events import FIRST_YEAR, LAST_YEAR
from shared.kpis import LOCAL_TZ

PUBLISHED_KINDS = ("month", "year")
REPORT_SPAN_MONTHS = {"report-half": 6, "report-nine-months": 9, "report-year": 12}


@dataclass(frozen=True, slots=True)
class Period:
    """An inclusive range of local days, named as in the API (`month:2021-03`)."""

    name: str
    first: date
    last: date

    @property
    def kind(self) -> str:
        """Return the kind of the name: "month", "year", "report-month", ..."""
        return self.name.partition(":")[0]


def parse_period(text: str) -> Period:
    """Parse `day:2021-03-04`, `month:2021-03`, `quarter:2021-Q1`, `year:2021` or `ytd:2021-05-15`."""
    period = parse_period_name(text)
    if not (is_supported_day(period.first) and is_supported_day(period.last)):
        raise ValueError(
            f"kỳ ngoài phạm vi / period {text!r} outside the supported years {FIRST_YEAR}..{LAST_YEAR}"
        )
    return period


def parse_published_period(name: str) -> Period:
    """Parse the period of a KPI update (`month:YYYY-MM` or `year:YYYY`); raise ValueError otherwise."""
    try:
        period = parse_period_name(name)
    except ValueError:
        period = None
    if period is None or period.kind not in PUBLISHED_KINDS:
        raise ValueError(f"kỳ không hợp lệ / invalid period {name!r}: expected month:YYYY-MM or year:YYYY")
    return period


def is_supported_day(day: date) -> bool:
    """Tell whether a local day lies in the contract's years (event-contract.md v1.1)."""
    return FIRST_YEAR <= day.year <= LAST_YEAR


def parse_period_name(text: str) -> Period:
    """Parse a period name of any year Python's dates hold."""
    kind, _, value = text.partition(":")
    try:
        if kind == "day":
            day = date.fromisoformat(value)
            return Period(text, day, day)
        if kind == "month" and re.fullmatch(r"\d{4}-\d{2}", value):
            first = date.fromisoformat(value + "-01")
            return Period(text, first, next_month(first) - timedelta(days=1))
        if kind == "quarter" and (match := re.fullmatch(r"(\d{4})-Q([1-4])", value)):
            first = date(int(match.group(1)), 3 * int(match.group(2)) - 2, 1)
            return Period(text, first, next_month(next_month(next_month(first))) - timedelta(days=1))
        if kind == "year" and re.fullmatch(r"\d{4}", value):
            return Period(text, date(int(value), 1, 1), date(int(value), 12, 31))
        if kind == "ytd":
            day = date.fromisoformat(value)
            return Period(text, date(day.year, 1, 1), day)
        if kind.startswith("report-"):
            return parse_report_period(text, kind, value)
    except ValueError:
        pass
    raise ValueError(
        f"kỳ không hợp lệ / invalid period {text!r}: expected day:YYYY-MM-DD, month:YYYY-MM, "
        "quarter:YYYY-Qn, year:YYYY, ytd:YYYY-MM-DD or a reporting period report-month:YYYY-MM, "
        "report-quarter:YYYY-Qn, report-half:YYYY, report-nine-months:YYYY, report-year:YYYY"
    )


def parse_report_period(text: str, kind: str, value: str) -> Period:
    """Parse a reporting period of Decree 09/2019/NĐ-CP (15th of a month to the 14th of a later one)."""
    if kind == "report-month" and re.fullmatch(r"\d{4}-\d{2}", value):
        year, month = int(value[:4]), int(value[5:])
        return report_span(text, year, month, months=1)
    if kind == "report-quarter" and (match := re.fullmatch(r"(\d{4})-Q([1-4])", value)):
        return report_span(text, int(match.group(1)), 3 * int(match.group(2)), months=3)
    if kind in REPORT_SPAN_MONTHS and re.fullmatch(r"\d{4}", value):
        months = REPORT_SPAN_MONTHS[kind]
        return report_span(text, int(value), months, months=months)
    raise ValueError(text)


def report_span(text: str, year: int, last_month: int, *, months: int) -> Period:
    """Return the reporting period ending on the 14th of `last_month` and spanning `months` months."""
    if not 1 <= last_month <= 12:
        raise ValueError(text)
    start_index = year * 12 + last_month - 1 - months  # months since year 0, of the month holding the 15th
    first = date(start_index // 12, start_index % 12 + 1, 15)
    return Period(text, first, date(year, last_month, 14))


def is_report_period(period: Period) -> bool:
    """Tell whether a period is a reporting period (kỳ báo cáo) rather than a calendar one."""
    return period.name.startswith("report-")


def report_year(period: Period) -> int:
    """Return the year whose targets apply: a reporting year starts on 15 December of the year before."""
    return period.last.year


def next_month(first: date) -> date:
    """Return the first day of the month after `first`'s."""
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def local_today(now: datetime | None = None) -> date:
    """Return today's date in Asia/Ho_Chi_Minh."""
    return (now or datetime.now(LOCAL_TZ)).astimezone(LOCAL_TZ).date()


def current_periods(today: date) -> tuple[Period, Period]:
    """Return the current month and year (the periods exported to Prometheus)."""
    return parse_period(f"month:{today:%Y-%m}"), parse_period(f"year:{today.year}")


def ends_within_lookback(period: Period, now: datetime, lookback_days: int) -> bool:
    """Return True if the period ends today or later, or ended at most `lookback_days` days ago."""
    return period.last >= local_today(now) - timedelta(days=lookback_days)


def in_lookback(period: Period, now: datetime, lookback_days: int) -> bool:
    """Return True if the period has started and ended at most `lookback_days` days ago."""
    return period.first <= local_today(now) and ends_within_lookback(period, now, lookback_days)
