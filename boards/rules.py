"""Prometheus recording rules for the KPI scopes, generated from the KPI catalogue and the targets.

Counts are summed, then divided: a scope's ratio is never an average of its units' ratios. Each
exported series is first reduced to one copy (`max by`), so several metrics replicas, which all read
the same database, never double a sum.
"""

from typing import Any

from boards.thresholds import BoardTargets
from shared.kpis import KPIS

LOCAL_OFFSET_SECONDS = 7 * 3600  # Asia/Ho_Chi_Minh: UTC+7 all year, no daylight saving time
# online_offer_rate counts distinct procedure codes: a scope's count is the union over its units, not a
# sum (kpis.md, precise reading 10), so it has no level or province series here (the boards read it in SQL).
NOT_ADDITIVE = ("online_offer_rate",)
# These move with the clock (a deadline passing), so they say nothing about whether a unit still reports.
TIME_DRIVEN = ("overdue_open", "apology_coverage")
COUNT_KPIS = tuple(kpi.id for kpi in KPIS if kpi.is_count)
# Targets per year (units_inspected_rate): a month's value is informational, never below target, no budget.
# A unit's count of it is 0 or 1 (was it inspected): additive over units, and its denominator (the unit
# itself) says nothing about activity.
YEARLY = tuple(kpi.id for kpi in KPIS if kpi.yearly)
NOT_ACTIVITY = (*TIME_DRIVEN, *YEARLY)

NUMERATOR = "unit_kpi_period:dvc_kpi_numerator:max"
DENOMINATOR = "unit_kpi_period:dvc_kpi_denominator:max"
TARGET = "unit_kpi:dvc_kpi_target:max"
UNIT_INFO = "unit:dvc_unit_info:max"
VALUE = "unit_kpi_period:dvc_kpi_value"
GAP = "unit_kpi_period:dvc_kpi_gap"
BELOW = "unit_kpi_period:dvc_kpi_below_target"
FORECAST = "unit_kpi_period:dvc_kpi_denominator_forecast"
ALLOWED = "unit_kpi_period:dvc_kpi_failures_allowed"
FAILURES = "unit_kpi_period:dvc_kpi_failures"
REMAINING = "unit_kpi_period:dvc_kpi_failures_remaining"
ACTIVITY = "unit:dvc_activity:sum"
LEVEL_NUMERATOR = "level_kpi_period:dvc_kpi_numerator:sum"
LEVEL_DENOMINATOR = "level_kpi_period:dvc_kpi_denominator:sum"
LEVEL_VALUE = "level_kpi_period:dvc_kpi_value"
LEVEL_BELOW = "level_kpi_period:dvc_units_below_target:sum"
PROVINCE_NUMERATOR = "province_kpi_period:dvc_kpi_numerator:sum"
PROVINCE_DENOMINATOR = "province_kpi_period:dvc_kpi_denominator:sum"
PROVINCE_VALUE = "province_kpi_period:dvc_kpi_value"
PROVINCE_BELOW = "province_kpi_period:dvc_units_below_target:sum"
PROVINCE_BELOW_ANY = "province_period:dvc_units_below_any_target:sum"
PROVINCE_UNITS = "province:dvc_units:count"
LOCAL_DAY = f"day_of_month(vector(time() + {LOCAL_OFFSET_SECONDS}))"
LOCAL_MONTH_DAYS = f"days_in_month(vector(time() + {LOCAL_OFFSET_SECONDS}))"


def alternatives(kpis: list[str] | tuple[str, ...]) -> str:
    """Return a regex matching exactly these KPI ids (ids are [a-z_], no escaping needed)."""
    return "|".join(kpis)


def either(*branches: str) -> str:
    """Join non-empty PromQL branches with `or`."""
    return "\nor\n".join(f"(\n  {branch}\n)" for branch in branches if branch)


def record(name: str, expr: str) -> dict[str, str]:
    """Return one recording rule."""
    return {"record": name, "expr": expr.strip() + "\n"}


def unit_rules() -> list[dict[str, str]]:
    """One copy of each exported series, and each unit's value (ratio of counts, or the count itself)."""
    counts = alternatives(COUNT_KPIS)
    return [
        record(NUMERATOR, "max by (unit_id, kpi, period) (dvc_kpi_numerator)"),
        record(DENOMINATOR, "max by (unit_id, kpi, period) (dvc_kpi_denominator)"),
        record(TARGET, "max by (unit_id, kpi) (dvc_kpi_target)"),
        record(UNIT_INFO, "max by (unit_id, level, parent_id) (dvc_unit_info)"),
        record(
            VALUE,
            either(
                f'{NUMERATOR}{{kpi!~"{counts}"}} / ({DENOMINATOR}{{kpi!~"{counts}"}} > 0)',
                f'{NUMERATOR}{{kpi=~"{counts}"}}',
            ),
        ),
    ]


def judged(kpis: str) -> str:
    """Return the unit values of these KPIs that are judged against a target (not the months of yearly KPIs)."""
    if not YEARLY:
        return f'{VALUE}{{kpi=~"{kpis}"}}'
    return f'({VALUE}{{kpi=~"{kpis}"}} unless {VALUE}{{kpi=~"{alternatives(YEARLY)}", period="month"}})'


def status_rules(targets: BoardTargets) -> list[dict[str, str]]:
    """Distance to target and below-target status (1/0) of each unit, with the comparator of its KPI."""
    at_least, above = alternatives(targets.kpis_with(">=")), alternatives(targets.kpis_with(">"))
    ratios, at_most = alternatives(targets.kpis_with(">=", ">")), alternatives(targets.kpis_with("<="))
    on = "on (unit_id, kpi) group_left ()"
    return [
        record(
            GAP,
            either(
                ratios and f"{judged(ratios)} - {on} {TARGET}",
                at_most and f"-({judged(at_most)} - {on} {TARGET})",
            ),
        ),
        record(
            BELOW,
            either(
                at_least and f"{judged(at_least)} < bool {on} ({TARGET} - 1e-12)",
                above and f"{judged(above)} <= bool {on} {TARGET}",
                at_most and f"{judged(at_most)} > bool {on} {TARGET}",
            ),
        ),
    ]


def budget_rules(targets: BoardTargets) -> list[dict[str, str]]:
    """Failures still allowed this month: budget from the month's denominator extrapolated by days."""
    at_least, above = alternatives(targets.kpis_with(">=")), alternatives(targets.kpis_with(">"))
    ratios, at_most = alternatives(targets.kpis_with(">=", ">")), alternatives(targets.kpis_with("<="))
    on = "on (unit_id, kpi) group_left ()"
    month = 'period="month"'
    return [
        record(
            FORECAST,
            f'({DENOMINATOR}{{{month}, kpi=~"{ratios}", kpi!~"{alternatives(YEARLY)}"}} > 0)\n'
            f"* scalar({LOCAL_MONTH_DAYS}) / scalar({LOCAL_DAY})",
        ),
        record(
            ALLOWED,
            either(
                at_least and f'floor({FORECAST}{{kpi=~"{at_least}"}} * {on} (1 - {TARGET}) + 1e-9)',
                above and f'ceil({FORECAST}{{kpi=~"{above}"}} * {on} (1 - {TARGET}) - 1e-9) - 1',
                at_most and f'{NUMERATOR}{{{month}, kpi=~"{at_most}"}} * 0 + {on} {TARGET}',
            ),
        ),
        record(
            FAILURES,
            either(
                ratios
                and f'({DENOMINATOR}{{kpi=~"{ratios}"}} - {NUMERATOR}{{kpi=~"{ratios}"}}) and {ALLOWED}',
                at_most and f'{NUMERATOR}{{kpi=~"{at_most}"}} and {ALLOWED}',
            ),
        ),
        record(REMAINING, f"{ALLOWED} - {FAILURES}"),
    ]


def scope_rules() -> list[dict[str, str]]:
    """Level and province sums of counts, their ratios, and how many units are below target."""
    counts, not_additive = alternatives(COUNT_KPIS), alternatives(NOT_ADDITIVE)
    by_level = f" * on (unit_id) group_left (level) {UNIT_INFO}"
    rules = []
    for numerator, denominator, value, keep, join in (
        (LEVEL_NUMERATOR, LEVEL_DENOMINATOR, LEVEL_VALUE, "level, kpi, period", by_level),
        (PROVINCE_NUMERATOR, PROVINCE_DENOMINATOR, PROVINCE_VALUE, "kpi, period", ""),
    ):
        for name, source in ((numerator, NUMERATOR), (denominator, DENOMINATOR)):
            rules.append(record(name, f'sum by ({keep}) ({source}{{kpi!~"{not_additive}"}}{join})'))
        rules.append(
            record(
                value,
                either(
                    f'{numerator}{{kpi!~"{counts}"}} / ({denominator}{{kpi!~"{counts}"}} > 0)',
                    f'{numerator}{{kpi=~"{counts}"}}',
                ),
            )
        )
    return [
        *rules,
        record(LEVEL_BELOW, f"sum by (level, kpi, period) ({BELOW}{by_level})"),
        record(PROVINCE_BELOW, f"sum by (kpi, period) ({BELOW})"),
        record(PROVINCE_BELOW_ANY, f"sum by (period) (max by (unit_id, period) ({BELOW}))"),
        record(PROVINCE_UNITS, f"count({UNIT_INFO})"),
        record(
            ACTIVITY,
            f'sum by (unit_id) ({NUMERATOR}{{period="year", kpi!~"{alternatives(NOT_ACTIVITY)}"}}'
            f' + {DENOMINATOR}{{period="year", kpi!~"{alternatives(NOT_ACTIVITY)}"}})',
        ),
    ]


def kpi_rules(targets: BoardTargets) -> dict[str, Any]:
    """Return the rule file of the KPI scopes (one group: rules run in order on the same evaluation)."""
    rules = [*unit_rules(), *status_rules(targets), *budget_rules(targets), *scope_rules()]
    return {"groups": [{"name": "dvc-kpi", "rules": rules}]}
