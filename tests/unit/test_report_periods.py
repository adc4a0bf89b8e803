"""Reporting periods of Decree 09/2019/NĐ-CP Art. 12: the 15th of a month to the 14th of a later one."""

from datetime import date, timedelta

import pytest

from services.metrics.periods import current_and_previous_report_periods
from shared.periods import is_report_period, parse_period, report_year


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("report-month:2026-11", date(2026, 10, 15), date(2026, 11, 14)),
        ("report-month:2026-01", date(2025, 12, 15), date(2026, 1, 14)),  # across the year boundary
        ("report-month:2024-03", date(2024, 2, 15), date(2024, 3, 14)),  # a leap February inside
        ("report-month:2026-12", date(2026, 11, 15), date(2026, 12, 14)),
        ("report-quarter:2026-Q1", date(2025, 12, 15), date(2026, 3, 14)),
        ("report-quarter:2026-Q2", date(2026, 3, 15), date(2026, 6, 14)),
        ("report-quarter:2026-Q3", date(2026, 6, 15), date(2026, 9, 14)),
        ("report-quarter:2026-Q4", date(2026, 9, 15), date(2026, 12, 14)),
        ("report-half:2026", date(2025, 12, 15), date(2026, 6, 14)),
        ("report-nine-months:2026", date(2025, 12, 15), date(2026, 9, 14)),
        ("report-year:2026", date(2025, 12, 15), date(2026, 12, 14)),
    ],
)
def test_reporting_periods(text: str, first: date, last: date) -> None:
    period = parse_period(text)
    assert (period.first, period.last) == (first, last)
    assert is_report_period(period) and report_year(period) == int(text.split(":")[1][:4])


def test_reporting_months_tile_the_reporting_year() -> None:
    months = [parse_period(f"report-month:2026-{m:02d}") for m in range(1, 13)]
    year = parse_period("report-year:2026")
    assert months[0].first == year.first and months[-1].last == year.last
    for before, after in zip(months, months[1:], strict=False):
        assert after.first == before.last + timedelta(days=1)
    quarters = [parse_period(f"report-quarter:2026-Q{q}") for q in range(1, 5)]
    assert [q.last for q in quarters] == [months[i].last for i in (2, 5, 8, 11)]
    assert parse_period("report-year:2025").last + timedelta(days=1) == year.first


@pytest.mark.parametrize(
    "text",
    [
        "report-month:2026-13",
        "report-month:2026-00",
        "report-quarter:2026-Q5",
        "report-half:26",
        "report-week:2026-10",
        "report-year:2026-12",
    ],
)
def test_bad_reporting_periods_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="invalid period"):
        parse_period(text)


def test_a_reporting_year_starting_before_the_contract_years_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the supported years"):
        parse_period("report-year:2000")  # starts on 15/12/1999
    assert not is_report_period(parse_period("month:2026-11"))


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (
            date(2026, 12, 1),
            [
                ("report-month:2026-12", "report-month:2026-11"),
                ("report-quarter:2026-Q4", "report-quarter:2026-Q3"),
                ("report-year:2026", "report-year:2025"),
            ],
        ),
        (
            date(2026, 12, 15),  # the first day of the next month, quarter and year
            [
                ("report-month:2027-01", "report-month:2026-12"),
                ("report-quarter:2027-Q1", "report-quarter:2026-Q4"),
                ("report-year:2027", "report-year:2026"),
            ],
        ),
        (
            date(2026, 3, 14),  # the last day of Q1
            [
                ("report-month:2026-03", "report-month:2026-02"),
                ("report-quarter:2026-Q1", "report-quarter:2025-Q4"),
                ("report-year:2026", "report-year:2025"),
            ],
        ),
    ],
)
def test_the_pages_offer_the_current_and_previous_reporting_periods(
    today: date, expected: list[tuple[str, str]]
) -> None:
    pairs = current_and_previous_report_periods(today)
    assert [(current.name, previous.name) for current, previous in pairs] == expected
    for current, previous in pairs:
        assert current.first <= today <= current.last
        assert previous.last + timedelta(days=1) == current.first
