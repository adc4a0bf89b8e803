"""What the web pages show (pure): KPI rows, units ranked worst first, overdue cases, alerts, trends."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from services.metrics.api import KpiFigure, KpiGroup, OverdueCase, UnitStatus
from services.metrics.charts import PercentFormat, TrendChart, trend_chart
from services.metrics.pagetext import allowance, decimal, kpi_name, percent, stamp, target_text, translator
from services.metrics.periods import current_and_previous_report_periods
from shared.kpis import DAY_CELL_KPIS, KPI_BY_ID


@dataclass(frozen=True, slots=True)
class KpiRow:
    """One KPI of a page: month and year values against the target, budget and forecast."""

    kpi: str
    name: str
    month_value: str
    month_status: str
    year_value: str
    year_status: str
    target: str
    budget: str
    forecast: str


@dataclass(frozen=True, slots=True)
class RankedUnit:
    """A unit below target, with what it misses."""

    unit_id: str
    name: str
    level_name: str
    below: list[str]
    below_count: int
    shortfall: float


def value_text(figure: KpiFigure, lang: str) -> str:
    """Return "98,5% (197/200)" or "3" for counts."""
    if KPI_BY_ID[figure.kpi].is_count:
        return str(figure.numerator)
    if figure.ratio is None:
        return "—"
    return f"{percent(figure.ratio, lang)} ({figure.numerator}/{figure.denominator})"


def budget_text(state: Any, lang: str) -> str:
    """Return the month's "còn được phép trễ N hồ sơ" from an alert state, "—" without one."""
    if state is None or state["state"] == "insufficient_data" or "failures_allowed" not in state["figures"]:
        return "—"
    return allowance(state["kpi"], int(state["figures"]["failures_allowed"]), lang)


def forecast_text(state: Any, lang: str) -> str:
    """Return "97,9% (khả năng đạt 35%)" from an alert state, "—" without a forecast."""
    figures = state["figures"] if state is not None else {}
    if figures.get("forecast_ratio") is None:
        return "—"
    t = translator(lang)
    text = percent(float(figures["forecast_ratio"]), lang)
    if figures.get("p_meet") is not None:
        text += f" ({t('p_meet')} {round(float(figures['p_meet']) * 100)}%)"
    if figures.get("certain_breach"):
        text += f", {t('certain_breach')}"
    return text


def kpi_rows(
    month: list[KpiFigure], year: list[KpiFigure], states: dict[str, Any], lang: str
) -> list[KpiRow]:
    """Pair each KPI's month and year figures with the month's alert state (by KPI id)."""
    year_by_kpi = {figure.kpi: figure for figure in year}
    rows = []
    for figure in month:
        of_year = year_by_kpi[figure.kpi]
        rows.append(
            KpiRow(
                kpi=figure.kpi,
                name=kpi_name(figure.kpi, lang),
                month_value=value_text(figure, lang),
                month_status=figure.status,
                year_value=value_text(of_year, lang),
                year_status=of_year.status,
                target=target_text(
                    figure.comparator, figure.target, is_count=KPI_BY_ID[figure.kpi].is_count, lang=lang
                ),
                budget=budget_text(states.get(figure.kpi), lang),
                forecast=forecast_text(states.get(figure.kpi), lang),
            )
        )
    return rows


def shortfall(figure: KpiFigure) -> float:
    """Return how far a KPI below target is from it (ratio points; counts scaled to 1 per 100)."""
    if figure.target is None:
        return 0.0
    if KPI_BY_ID[figure.kpi].is_count:
        return (figure.numerator - figure.target) / 100
    return figure.target - (figure.ratio or 0.0)


def rank_below(units: list[UnitStatus], lang: str) -> list[RankedUnit]:
    """Return the units with any KPI below target: most KPIs below first, then the largest shortfall."""
    ranked = []
    for unit in units:
        below = [figure for figure in unit.kpis if figure.status == "below"]
        if below:
            ranked.append(
                RankedUnit(
                    unit_id=unit.unit_id,
                    name=unit.name,
                    level_name=unit.level_name,
                    below=[f"{kpi_name(f.kpi, lang)}: {value_text(f, lang)}" for f in below],
                    below_count=len(below),
                    shortfall=max(shortfall(figure) for figure in below),
                )
            )
    return sorted(ranked, key=lambda unit: (-unit.below_count, -unit.shortfall, unit.unit_id))


def overdue_rows(cases: list[OverdueCase], lang: str) -> list[dict[str, Any]]:
    """Return the overdue cases, oldest deadline first, with whole days overdue."""
    t = translator(lang)
    return [
        {
            "case_id": case.case_id,
            "procedure": case.procedure_code or "—",
            "deadline": stamp(case.deadline, lang),
            "days": case.late_seconds // 86400,
            "apology": t("yes") if case.apologized else t("no"),
            "apologized": case.apologized,
        }
        for case in sorted(cases, key=lambda case: case.deadline)
    ]


def late_procedure_rows(groups: list[KpiGroup], lang: str, limit: int = 10) -> list[dict[str, Any]]:
    """Return the procedures with late resolutions this period or overdue files now, the most first."""
    t = translator(lang)
    rows: list[dict[str, Any]] = []
    for group in groups:
        by_kpi = {figure.kpi: figure for figure in group.kpis}
        on_time = by_kpi["on_time_rate"]
        late = (on_time.denominator or 0) - on_time.numerator
        overdue = by_kpi["overdue_open"].numerator
        if late or overdue:
            name = group.name if group.in_catalogue else t("not_in_catalogue")
            rows.append({"code": group.key or "—", "name": name, "late": late, "overdue": overdue})
    return sorted(rows, key=lambda row: (-int(row["late"]) - int(row["overdue"]), str(row["code"])))[:limit]


def due_soon_rows(records: list[Any], next_end: datetime, lang: str) -> list[dict[str, Any]]:
    """Return the "Sắp đến hạn" cases, the earliest first, each with whether it is due by the end of the
    next working day and the unit's median processing days for its procedure."""
    t = translator(lang)
    return [
        {
            "case_id": record["case_id"],
            "procedure": record["procedure_code"] or "—",
            "deadline": stamp(record["deadline"], lang),
            "deadline_iso": record["deadline"].isoformat(),
            "next_day": record["deadline"] < next_end,
            "usual": t("usual_none")
            if record["median_days"] is None
            else f"{decimal(float(record['median_days']), lang)} {t('days')} ({record['resolved']} {t('files')})",
        }
        for record in records
    ]


def alert_rows(records: list[Any], lang: str) -> list[dict[str, Any]]:
    """Return the alert history rows with their state words."""
    t = translator(lang)
    rows = []
    for record in records:
        if record["resolved_at"] is not None:
            state = t("resolved")
        elif record["acknowledged_at"] is not None:
            state = t("acknowledged")
        else:
            state = t("open")
        if record["escalated_at"] is not None:
            state += f" ({t('escalated')})"
        rows.append(
            {
                "alert_id": record["alert_id"],
                "kpi": kpi_name(record["kpi"], lang),
                "period": record["period"].partition(":")[2],
                "opened": stamp(record["opened_at"], lang),
                "state": state,
                "can_ack": record["resolved_at"] is None and record["acknowledged_at"] is None,
            }
        )
    return rows


def trend_charts(
    monthly: dict[tuple[date, str], tuple[int, int]],
    months: list[date],
    targets: dict[str, float | None],
    lang: str,
) -> list[TrendChart]:
    """Return one chart per day-cell KPI: the scope's ratio each month, against the scope's target."""
    fmt = PercentFormat(decimal_comma=lang == "vi")
    charts = []
    for kpi in DAY_CELL_KPIS:
        points = []
        for month in months:
            numerator, denominator = monthly.get((month, kpi), (0, 0))
            ratio = numerator / denominator if denominator else None
            points.append((f"{month:%m/%y}", ratio, percent(ratio, lang)))
        charts.append(trend_chart(kpi_name(kpi, lang), points, targets.get(kpi), fmt))
    return charts


@dataclass(frozen=True, slots=True)
class ReportLink:
    """A reporting period offered for download as XLSX and DOCX."""

    period: str
    label: str
    span: str
    xlsx: str
    docx: str


def report_links(scope: str, today: date, lang: str, page_token: str | None) -> list[ReportLink]:
    """Return the current and previous report-month, report-quarter and report-year downloads of a scope."""
    t = translator(lang)
    links = []
    for current, previous in current_and_previous_report_periods(today):
        for period, which in ((current, "report_current"), (previous, "report_previous")):
            kind, _, value = period.name.partition(":")
            query = {"scope": scope, "period": period.name} | ({"t": page_token} if page_token else {})
            links.append(
                ReportLink(
                    period=period.name,
                    label=f"{t(kind)} {value} ({t(which)})",
                    span=f"{period.first:%d/%m/%Y} – {period.last:%d/%m/%Y}",
                    xlsx="/pages/reports?" + urlencode(query | {"format": "xlsx"}),
                    docx="/pages/reports?" + urlencode(query | {"format": "docx"}),
                )
            )
    return links
