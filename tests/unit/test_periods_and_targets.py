"""Periods and scopes of the KPI API, and targets as data (validated, most specific rule wins, reloaded)."""

import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from services.metrics.periods import parse_scope
from shared.periods import ends_within_lookback, in_lookback, parse_period, parse_published_period
from shared.targets import TARGETS_PATH, Targets


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("day:2021-03-04", date(2021, 3, 4), date(2021, 3, 4)),
        ("month:2021-02", date(2021, 2, 1), date(2021, 2, 28)),
        ("month:2020-02", date(2020, 2, 1), date(2020, 2, 29)),
        ("month:2021-12", date(2021, 12, 1), date(2021, 12, 31)),
        ("quarter:2021-Q1", date(2021, 1, 1), date(2021, 3, 31)),
        ("quarter:2021-Q4", date(2021, 10, 1), date(2021, 12, 31)),
        ("year:2021", date(2021, 1, 1), date(2021, 12, 31)),
        ("ytd:2021-05-15", date(2021, 1, 1), date(2021, 5, 15)),
    ],
)
def test_periods(text: str, first: date, last: date) -> None:
    period = parse_period(text)
    assert (period.first, period.last) == (first, last)


@pytest.mark.parametrize(
    "text", ["month:2021-13", "quarter:2021-Q5", "week:2021-10", "day:2021-02-30", "year:21", ""]
)
def test_bad_periods_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="invalid period"):
        parse_period(text)


@pytest.mark.parametrize("text", ["day:2021-03-04", "quarter:2021-Q1", "ytd:2021-05-15", "report-year:2021"])
def test_kpi_updates_name_months_and_years_only(text: str) -> None:
    parse_period(text)
    with pytest.raises(ValueError, match="invalid period"):
        parse_published_period(text)
    assert parse_published_period("month:2021-03") == parse_period("month:2021-03")


def test_a_period_not_yet_started_is_published_but_not_evaluated() -> None:
    now = datetime(2026, 11, 30, 17, 30, tzinfo=UTC)  # 1 December 00:30 local
    december = parse_period("month:2026-12")
    assert ends_within_lookback(december, now, 0)
    assert in_lookback(december, now, 0)
    january = parse_period("month:2027-01")
    assert ends_within_lookback(january, now, 0)
    assert not in_lookback(january, now, 0)
    assert not ends_within_lookback(parse_period("month:2026-10"), now, 30)
    assert ends_within_lookback(parse_period("month:2026-10"), now, 31)


def test_scopes() -> None:
    assert parse_scope("province").kind == "province"
    assert (parse_scope("unit:ht.can-loc").kind, parse_scope("unit:ht.can-loc").value) == (
        "unit",
        "ht.can-loc",
    )
    assert parse_scope("subtree:ht").kind == "subtree" and parse_scope("level:commune").value == "commune"
    # contract v1.1: a unit id is any 1..64 characters, compared exactly
    for odd in ("000.00.17.H52", "Bad Id", "x;drop", "Sở Tư pháp / Hà Tĩnh", "a\nb", "x" * 64):
        assert parse_scope(f"unit:{odd}").value == odd and parse_scope(f"subtree:{odd}").value == odd
    for bad in ("country", "unit:", "level:", "unit:" + "x" * 65, "level:Bad Level"):
        with pytest.raises(ValueError, match="invalid scope"):
            parse_scope(bad)


def test_shipped_targets_follow_the_plan() -> None:
    targets = Targets(TARGETS_PATH)
    assert targets.for_unit("on_time_rate", unit_id="x", level="commune", year=2021) is not None
    commune = targets.for_unit("paperless_rate", unit_id="x", level="commune", year=2021)
    province = targets.for_unit("paperless_rate", unit_id="y", level="province", year=2021)
    assert commune is not None and (commune.comparator, commune.value) == (">=", 0.95)
    assert province is not None and (province.comparator, province.value) == (">=", 1.0)
    intake = targets.for_unit("online_intake_rate", unit_id="x", level="commune", year=2021)
    assert intake is not None and not intake.met_by(0.30) and intake.met_by(0.31)
    assert targets.for_unit("signed_rate", unit_id="x", level="commune", year=2021) is None  # informational


def test_most_specific_rule_wins_and_a_change_is_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(
        "targets:\n  - {kpi: on_time_rate, min: 0.985}\n  - {kpi: on_time_rate, unit: u1, year: 2022, min: 0.99}\n"
    )
    targets = Targets(path)
    assert targets.for_unit("on_time_rate", unit_id="u1", level="commune", year=2021).value == 0.985  # type: ignore[union-attr]
    assert targets.for_unit("on_time_rate", unit_id="u1", level="commune", year=2022).value == 0.99  # type: ignore[union-attr]
    path.write_text("targets:\n  - {kpi: on_time_rate, min: 0.97}\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    targets.reload_if_changed()
    assert targets.for_unit("on_time_rate", unit_id="u1", level="commune", year=2022).value == 0.97  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "rule",
    [
        "{kpi: nope, min: 0.5}",
        "{kpi: on_time_rate, min: 1.5}",
        "{kpi: on_time_rate, min: 0.5, above: 0.4}",
        "{kpi: overdue_open, min: 0.5}",
        "{kpi: on_time_rate, max: 3}",
        "{kpi: on_time_rate, min: 0.9, colour: red}",
    ],
)
def test_invalid_targets_are_refused(tmp_path: Path, rule: str) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(f"targets:\n  - {rule}\n")
    with pytest.raises(ValueError):
        Targets(path)
