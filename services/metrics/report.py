"""The periodic report's content: form II.06a/VPCP/KSTT rows, the plan's KPIs, the units below target.

The KPI figures come from the same functions as `GET /api/v1/kpis`, so the report and the API agree.
"""

from collections.abc import Callable, Iterable
from datetime import datetime, time, timedelta

import asyncpg
from pydantic import BaseModel

from services.metrics import queries, report_queries
from services.metrics.api import KpiFigure, UnitTree, figures, judges_yearly
from services.metrics.periods import Scope
from shared.kpis import KPIS, LOCAL_TZ
from shared.periods import Period, report_year
from shared.targets import Targets

# The form's counted columns (4-6, 8-10, 12-13); the totals 3, 7 and 11 are their sums.
LEAF_COLUMNS = (
    "received_online",
    "received_offline",
    "carried_over",
    "resolved_early",
    "resolved_on_time",
    "resolved_late",
    "open_in_time",
    "open_overdue",
)
EXTRA_COLUMNS = (
    "resolved_late_apologized",
    "open_overdue_apologized",
    "resolved_without_deadline",
    "refused_or_withdrawn",
)
Progress = Callable[[str], None]


class FormCounts(BaseModel):
    """The counts of one row of the form, plus the overdue files' apology split."""

    received_online: int = 0
    received_offline: int = 0
    carried_over: int = 0
    resolved_early: int = 0
    resolved_on_time: int = 0
    resolved_late: int = 0
    open_in_time: int = 0
    open_overdue: int = 0
    resolved_late_apologized: int = 0
    open_overdue_apologized: int = 0
    resolved_without_deadline: int = 0
    refused_or_withdrawn: int = 0

    @property
    def received_total(self) -> int:
        """Column 3: received online, in person or by post, and carried over."""
        return self.received_online + self.received_offline + self.carried_over

    @property
    def resolved_total(self) -> int:
        """Column 7: resolved early, on time or late."""
        return self.resolved_early + self.resolved_on_time + self.resolved_late

    @property
    def open_total(self) -> int:
        """Column 11: still being handled at the period's last instant."""
        return self.open_in_time + self.open_overdue

    def plus(self, other: "FormCounts") -> "FormCounts":
        """Return the sum of two rows."""
        names = (*LEAF_COLUMNS, *EXTRA_COLUMNS)
        return FormCounts(**{name: getattr(self, name) + getattr(other, name) for name in names})


class FormRow(BaseModel):
    """A row of the form: the whole scope, a level, a unit, or a procedure inside a unit."""

    kind: str  # total | level | unit | procedure
    label: str
    unit_id: str | None = None
    level: str | None = None
    counts: FormCounts


class UnitBelowTarget(BaseModel):
    """A unit whose KPI misses its target in the period."""

    unit_id: str
    name: str
    level_name: str
    figure: KpiFigure


class Report(BaseModel):
    """Everything the report files show, for one scope and period."""

    scope: str
    period: str
    first_day: str
    last_day: str
    as_of: datetime
    issuer: str
    scope_name: str
    form: list[FormRow]
    kpis: list[KpiFigure]
    units_below_target: list[UnitBelowTarget]


def file_name(report: Report, extension: str) -> str:
    """Return an ASCII file name for the report file (a download, or `dvc report`)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in f"{report.scope}_{report.period}")
    return f"bao-cao_{safe}.{extension}"


def period_instants(period: Period) -> tuple[datetime, datetime]:
    """Return the period's first instant and the instant after its last (local midnight)."""
    start = datetime.combine(period.first, time(), LOCAL_TZ)
    return start, datetime.combine(period.last + timedelta(days=1), time(), LOCAL_TZ)


def form_rows(tree: UnitTree, unit_ids: list[str], rows: list[asyncpg.Record]) -> list[FormRow]:
    """Group the (unit, procedure) counts by level and unit, with a total row for each group."""
    by_unit: dict[str, list[FormRow]] = {unit_id: [] for unit_id in unit_ids}
    for row in rows:
        counts = FormCounts(**{name: row[name] for name in (*LEAF_COLUMNS, *EXTRA_COLUMNS)})
        label = row["procedure_code"] or "(không có mã TTHC / no procedure code)"
        by_unit[row["unit_id"]].append(
            FormRow(kind="procedure", label=label, unit_id=row["unit_id"], counts=counts)
        )
    ordered = sorted(unit_ids, key=lambda u: (tree.rows[u]["rank"], tree.rows[u]["name"], u))
    out: list[FormRow] = []
    total = FormCounts()
    for level in dict.fromkeys(tree.rows[u]["level"] for u in ordered):
        level_units = [u for u in ordered if tree.rows[u]["level"] == level]
        level_sum, unit_blocks = FormCounts(), []
        for unit_id in level_units:
            unit_sum = sum_counts(r.counts for r in by_unit[unit_id])
            level_sum = level_sum.plus(unit_sum)
            name = tree.rows[unit_id]["name"]
            unit_blocks += [FormRow(kind="unit", label=name, unit_id=unit_id, level=level, counts=unit_sum)]
            unit_blocks += by_unit[unit_id]
        label = tree.rows[level_units[0]]["level_name"]
        out += [FormRow(kind="level", label=label, level=level, counts=level_sum), *unit_blocks]
        total = total.plus(level_sum)
    return [FormRow(kind="total", label="Tổng cộng", counts=total), *out]


def sum_counts(rows: Iterable[FormCounts]) -> FormCounts:
    """Return the sum of rows."""
    total = FormCounts()
    for counts in rows:
        total = total.plus(counts)
    return total


def issuer_and_name(tree: UnitTree, scope: Scope) -> tuple[str, str]:
    """Return the issuing body (the scope's unit, else the registry's root) and the scope's name."""
    roots = [u for u, row in tree.rows.items() if row["parent_id"] is None]
    if scope.kind in {"unit", "subtree"} and scope.value is not None:
        name = tree.rows[scope.value]["name"]
        return name, name
    root = tree.rows[roots[0]]["name"] if roots else "Ủy ban nhân dân tỉnh"
    if scope.kind == "level":
        level_name = next(r["level_name"] for r in tree.rows.values() if r["level"] == scope.value)
        return root, f"{level_name} ({root})"
    return root, root


async def build_report(
    connection: asyncpg.Connection,
    *,
    scope: Scope,
    scope_text: str,
    period: Period,
    targets: Targets,
    now: datetime,
    progress: Progress = lambda _: None,
) -> Report:
    """Compute the report (raises ValueError for an unknown unit or level)."""
    tree = UnitTree.from_rows(await queries.fetch_units(connection))
    unit_ids, target_unit, target_level = tree.resolve(scope)
    start, end = period_instants(period)
    progress("Biểu II.06a / form II.06a")
    rows = await report_queries.fetch_form_rows(connection, unit_ids=unit_ids, start=start, end=end)
    progress("Chỉ tiêu / KPIs")
    counts = await queries.fetch_rollups(
        connection, unit_ids=unit_ids, first=period.first, last=period.last, now=now
    )
    year = report_year(period)
    kpis = figures(
        counts,
        targets,
        unit_id=target_unit,
        level=target_level,
        year=year,
        judge_yearly=judges_yearly(scope, period),
    )
    progress("Đơn vị không đạt / units below target")
    below = await units_below_target(connection, tree, unit_ids, period, targets, now)
    issuer, scope_name = issuer_and_name(tree, scope)
    return Report(
        scope=scope_text,
        period=period.name,
        first_day=period.first.isoformat(),
        last_day=period.last.isoformat(),
        as_of=now,
        issuer=issuer,
        scope_name=scope_name,
        form=form_rows(tree, unit_ids, rows),
        kpis=kpis,
        units_below_target=below,
    )


async def units_below_target(
    connection: asyncpg.Connection,
    tree: UnitTree,
    unit_ids: list[str],
    period: Period,
    targets: Targets,
    now: datetime,
) -> list[UnitBelowTarget]:
    """Return every (unit, KPI) of the scope below its own target in the period, by level and unit."""
    rollups = await queries.fetch_unit_rollups(
        connection, first=period.first, last=period.last, now=now, unit_ids=unit_ids
    )
    found = []
    for unit_id in sorted(unit_ids, key=lambda u: (tree.rows[u]["rank"], tree.rows[u]["name"], u)):
        row = tree.rows[unit_id]
        unit_counts = {kpi.id: rollups.get((unit_id, kpi.id), (0, 0)) for kpi in KPIS}
        year = report_year(period)
        for fig in figures(unit_counts, targets, unit_id=unit_id, level=row["level"], year=year):
            if fig.status == "below":
                found.append(
                    UnitBelowTarget(
                        unit_id=unit_id, name=row["name"], level_name=row["level_name"], figure=fig
                    )
                )
    return found
