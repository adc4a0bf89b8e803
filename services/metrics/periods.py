"""Scopes of the KPI API, and the reporting periods (kỳ báo cáo) the pages offer for download.

Periods themselves (parsing, reporting periods, the lookback) are a contract: shared/periods.py.
"""

import re
from dataclasses import dataclass
from datetime import date, timedelta

from shared.periods import Period, parse_period

# A unit id is any 1..64 characters (contract v1.1): `unit:000.00.17.H52`, URL-encoded in a query string.
SCOPE_PATTERN = re.compile(r"(?:(unit|subtree):([\s\S]{1,64})|level:([a-z0-9_-]{1,32})|province)")


@dataclass(frozen=True, slots=True)
class Scope:
    """unit:<id>, subtree:<id>, level:<level id> or province."""

    kind: str
    value: str | None


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


PAGE_REPORT_KINDS = ("report-month", "report-quarter", "report-year")


def report_period_holding(kind: str, day: date) -> Period:
    """Return the reporting period of a kind (report-month, report-quarter, report-year) holding a local day."""
    if kind == "report-year":
        return parse_period(f"report-year:{day.year + (1 if (day.month, day.day) >= (12, 15) else 0)}")
    ending = day.year * 12 + day.month - 1 + (1 if day.day >= 15 else 0)  # the month of the closing 14th
    if kind == "report-month":
        return parse_period(f"report-month:{ending // 12:04d}-{ending % 12 + 1:02d}")
    if kind == "report-quarter":
        ending += 2 - ending % 3  # a quarter closes on the 14th of March, June, September or December
        return parse_period(f"report-quarter:{ending // 12:04d}-Q{ending % 12 // 3 + 1}")
    raise ValueError(f"kỳ báo cáo không hỗ trợ / unsupported reporting period kind {kind!r}")


def current_and_previous_report_periods(today: date) -> list[tuple[Period, Period]]:
    """Return (current, previous) reporting period of each kind the pages offer for download."""
    pairs = []
    for kind in PAGE_REPORT_KINDS:
        current = report_period_holding(kind, today)
        pairs.append((current, report_period_holding(kind, current.first - timedelta(days=1))))
    return pairs
