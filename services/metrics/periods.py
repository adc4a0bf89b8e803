"""Periods (local calendar days, months, quarters, years, year-to-date) and scopes of the KPI API."""

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.events import FIRST_YEAR, LAST_YEAR
from shared.kpis import LOCAL_TZ

SCOPE_PATTERN = re.compile(
    r"^(?:(unit|subtree):([a-z0-9][a-z0-9.-]{0,63})|level:([a-z0-9_-]{1,32})|province)$"
)


@dataclass(frozen=True, slots=True)
class Period:
    """An inclusive range of local days, named as in the API (`month:2021-03`)."""

    name: str
    first: date
    last: date


@dataclass(frozen=True, slots=True)
class Scope:
    """unit:<id>, subtree:<id>, level:<level id> or province."""

    kind: str
    value: str | None


def parse_period(text: str) -> Period:
    """Parse `day:2021-03-04`, `month:2021-03`, `quarter:2021-Q1`, `year:2021` or `ytd:2021-05-15`."""
    period = parse_period_name(text)
    if not (is_supported_day(period.first) and is_supported_day(period.last)):
        raise ValueError(
            f"kỳ ngoài phạm vi / period {text!r} outside the supported years {FIRST_YEAR}..{LAST_YEAR}"
        )
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
    except ValueError:
        pass
    raise ValueError(
        f"kỳ không hợp lệ / invalid period {text!r}: expected day:YYYY-MM-DD, month:YYYY-MM, "
        "quarter:YYYY-Qn, year:YYYY or ytd:YYYY-MM-DD"
    )


def parse_scope(text: str) -> Scope:
    """Parse `unit:<id>`, `subtree:<id>`, `level:<name>` or `province`."""
    match = SCOPE_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(
            f"phạm vi không hợp lệ / invalid scope {text!r}: expected unit:<id>, subtree:<id>, level:<name> or province"
        )
    if text == "province":
        return Scope("province", None)
    kind = text.partition(":")[0]
    return Scope(kind, match.group(2) or match.group(3))


def next_month(first: date) -> date:
    """Return the first day of the month after `first`'s."""
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def local_today(now: datetime | None = None) -> date:
    """Return today's date in Asia/Ho_Chi_Minh."""
    return (now or datetime.now(LOCAL_TZ)).astimezone(LOCAL_TZ).date()


def current_periods(today: date) -> tuple[Period, Period]:
    """Return the current month and year (the periods exported to Prometheus)."""
    return parse_period(f"month:{today:%Y-%m}"), parse_period(f"year:{today.year}")
