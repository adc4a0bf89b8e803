"""JSON API of the KPIs: any scope and period, a unit's overdue cases, the registry with statuses.

Every route needs a Bearer API token of role viewer or above (shared/auth.py); with
DVC_API_READ_PUBLIC=true the KPI reads (/kpis, /units) are open, the overdue case lists never are.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from services.metrics import queries
from services.metrics.periods import Period, Scope, current_periods, local_today, parse_period, parse_scope
from shared.auth import VIEWER, Role, require
from shared.kpis import KPIS
from shared.targets import Target, Targets

router = APIRouter(prefix="/api/v1")
YEAR_PERIODS = ("year:", "ytd:", "report-year:")
KPI_READER = require(Role.viewer, open_setting="read_public")


class KpiFigure(BaseModel):
    """One KPI of a report: counts, ratio, target and status."""

    kpi: str
    name_vi: str
    name_en: str
    numerator: int
    denominator: int | None
    ratio: float | None
    target: float | None
    comparator: str | None
    status: str  # meets | below | no_data | informational


class KpiReport(BaseModel):
    """Every KPI for one scope and period."""

    scope: str
    period: str
    first_day: date
    last_day: date
    as_of: datetime
    kpis: list[KpiFigure]


class OverdueCase(BaseModel):
    """An open case file past its deadline."""

    case_id: str
    procedure_code: str | None
    deadline: datetime
    overdue_since: datetime
    late_seconds: int
    apologized: bool


class UnitStatus(BaseModel):
    """A registry unit with its current-month KPI statuses."""

    unit_id: str
    name: str
    level: str
    level_name: str
    parent_id: str | None
    month: str
    kpis: list[KpiFigure]


@dataclass
class UnitTree:
    """The registry as a tree, for scopes."""

    rows: dict[str, asyncpg.Record] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    top_level: str | None = None

    @classmethod
    def from_rows(cls, rows: list[asyncpg.Record]) -> "UnitTree":
        """Build the tree from `fetch_units` rows (ordered by level rank)."""
        tree = cls(rows={row["unit_id"]: row for row in rows}, top_level=rows[0]["level"] if rows else None)
        for row in rows:
            if row["parent_id"]:
                tree.children.setdefault(row["parent_id"], []).append(row["unit_id"])
        return tree

    def resolve(self, scope: Scope) -> tuple[list[str], str | None, str | None]:
        """Return the scope's unit ids and the unit and level whose target applies."""
        if scope.kind == "province":
            return list(self.rows), None, self.top_level
        if scope.kind == "level":
            units = [unit_id for unit_id, row in self.rows.items() if row["level"] == scope.value]
            if not units:
                raise ValueError(f"không có cấp này / unknown level {scope.value!r}")
            return units, None, scope.value
        assert scope.value is not None
        if scope.value not in self.rows:
            raise ValueError(f"không có đơn vị này / unknown unit {scope.value!r}")
        level = self.rows[scope.value]["level"]
        if scope.kind == "unit":
            return [scope.value], scope.value, level
        return self.descendants(scope.value), scope.value, level

    def descendants(self, unit_id: str) -> list[str]:
        """Return the unit and every unit below it."""
        found, stack = [], [unit_id]
        while stack:
            current = stack.pop()
            found.append(current)
            stack.extend(self.children.get(current, []))
        return found


def figure(kpi_id: str, counts: tuple[int, int], target: Target | None) -> KpiFigure:
    """Compute the ratio and status of a KPI from its counts, never from averaged ratios."""
    kpi = next(k for k in KPIS if k.id == kpi_id)
    numerator, denominator = counts
    if kpi.is_count:
        value: float | None = float(numerator)
        ratio, shown_denominator = None, None
    else:
        value = ratio = numerator / denominator if denominator else None
        shown_denominator = denominator
    if target is None:
        status = "informational"
    elif value is None:
        status = "no_data"
    else:
        status = "meets" if target.met_by(value) else "below"
    return KpiFigure(
        kpi=kpi.id,
        name_vi=kpi.name_vi,
        name_en=kpi.name_en,
        numerator=numerator,
        denominator=shown_denominator,
        ratio=ratio,
        target=target.value if target else None,
        comparator=target.comparator if target else None,
        status=status,
    )


def figures(
    counts: dict[str, tuple[int, int]],
    targets: Targets,
    *,
    unit_id: str | None,
    level: str | None,
    year: int,
    judge_yearly: bool = False,
) -> list[KpiFigure]:
    """Return every KPI's figure.

    A yearly KPI (units_inspected_rate: a share of the units of a scope, with a target per year) is
    judged only when `judge_yearly` (a year-long period of a scope of several units); otherwise it is
    informational: a month's value, or one unit's 0 or 1, is no miss of a target (kpis.md v1.1).
    """
    targets.reload_if_changed()
    return [
        figure(
            kpi.id,
            counts.get(kpi.id, (0, 0)),
            None
            if kpi.yearly and not judge_yearly
            else targets.for_unit(kpi.id, unit_id=unit_id, level=level, year=year),
        )
        for kpi in KPIS
    ]


def judges_yearly(scope: Scope, period: Period) -> bool:
    """Return True if a yearly KPI is judged for this scope and period (a year, several units)."""
    return scope.kind != "unit" and period.name.startswith(YEAR_PERIODS)


def parse_or_400(text: str, parser: type[Period] | type[Scope]) -> Period | Scope:
    """Parse a query parameter; a bad one is the client's error (400), never a 500."""
    try:
        return parse_period(text) if parser is Period else parse_scope(text)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


@router.get(
    "/kpis", response_model=KpiReport, summary="KPIs for a scope and period", dependencies=[KPI_READER]
)
async def read_kpis(
    request: Request,
    scope: str = Query(description="unit:<id>, level:<name>, subtree:<id> or province"),
    period: str = Query(
        description="day:YYYY-MM-DD, month:YYYY-MM, quarter:YYYY-Qn, year:YYYY, ytd:YYYY-MM-DD, or a "
        "reporting period (Decree 09/2019): report-month:YYYY-MM, report-quarter:YYYY-Qn, report-half:YYYY, "
        "report-nine-months:YYYY, report-year:YYYY"
    ),
) -> KpiReport:
    """Every v1 KPI with its counts, ratio, target and status."""
    parsed_scope = parse_or_400(scope, Scope)
    parsed_period = parse_or_400(period, Period)
    assert isinstance(parsed_scope, Scope) and isinstance(parsed_period, Period)
    pool: asyncpg.Pool = request.app.state.pool
    now = datetime.now(UTC)
    async with pool.acquire() as connection:
        tree = UnitTree.from_rows(await queries.fetch_units(connection))
        try:
            unit_ids, target_unit, target_level = tree.resolve(parsed_scope)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        counts = await queries.fetch_rollups(
            connection, unit_ids=unit_ids, first=parsed_period.first, last=parsed_period.last, now=now
        )
    kpis = figures(
        counts,
        request.app.state.targets,
        unit_id=target_unit,
        level=target_level,
        year=parsed_period.last.year,  # a reporting year starts on 15/12 of the year before
        judge_yearly=judges_yearly(parsed_scope, parsed_period),
    )
    return KpiReport(
        scope=scope,
        period=period,
        first_day=parsed_period.first,
        last_day=parsed_period.last,
        as_of=now,
        kpis=kpis,
    )


@router.get(
    "/units/{unit_id}/overdue",
    response_model=list[OverdueCase],
    summary="A unit's overdue open cases",
    dependencies=[VIEWER],
)
async def read_overdue_cases(request: Request, unit_id: str) -> list[OverdueCase]:
    """Open case files past their deadline (not paused), the oldest deadline first."""
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as connection:
        if unit_id not in {row["unit_id"] for row in await queries.fetch_units(connection)}:
            raise HTTPException(status_code=404, detail=f"không có đơn vị này / unknown unit {unit_id!r}")
        rows = await queries.fetch_overdue_cases(connection, unit_id=unit_id, now=datetime.now(UTC))
    return [OverdueCase(**dict(row)) for row in rows]


@router.get(
    "/units",
    response_model=list[UnitStatus],
    summary="The unit registry with current-month statuses",
    dependencies=[KPI_READER],
)
async def read_units(request: Request) -> list[UnitStatus]:
    """Every unit with its KPIs for the current local month."""
    pool: asyncpg.Pool = request.app.state.pool
    now = datetime.now(UTC)
    month, _ = current_periods(local_today())
    async with pool.acquire() as connection:
        rows = await queries.fetch_units(connection)
        rollups = await queries.fetch_unit_rollups(connection, first=month.first, last=month.last, now=now)
    targets: Targets = request.app.state.targets
    return [
        UnitStatus(
            unit_id=row["unit_id"],
            name=row["name"],
            level=row["level"],
            level_name=row["level_name"],
            parent_id=row["parent_id"],
            month=month.name,
            kpis=figures(
                {kpi.id: rollups.get((row["unit_id"], kpi.id), (0, 0)) for kpi in KPIS},
                targets,
                unit_id=row["unit_id"],
                level=row["level"],
                year=month.first.year,
            ),
        )
        for row in rows
    ]
