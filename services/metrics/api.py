"""JSON API of the KPIs: any scope and period, a unit's overdue cases, the registry with statuses.

Every route needs a Bearer API token of role viewer or above (shared/auth.py); with
DVC_API_READ_PUBLIC=true the KPI reads (/kpis, /units) are open, the overdue case lists never are.
"""

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from services.metrics import queries
from services.metrics.periods import Scope, parse_scope
from shared.auth import VIEWER, Role, require
from shared.kpis import KPIS
from shared.periods import Period, current_periods, local_today, parse_period
from shared.targets import Target, Targets
from shared.watermark import Completeness, read_completeness, updating_notice

router = APIRouter(prefix="/api/v1")
CASE_KPIS = frozenset(
    {
        "on_time_rate",
        "overdue_open",
        "apology_coverage",
        "satisfaction_rate",
        "online_offer_rate",
        "online_intake_rate",
        "portal_sync_rate",
    }
)
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


class KpiGroup(BaseModel):
    """The case KPIs of one procedure or field within a scope and period."""

    key: str | None  # procedure code or field; None: procedures missing from the catalogue (by=field)
    name: str  # the procedure's or field's name, or "chưa có trong danh mục / not in the catalogue"
    field: str | None
    in_catalogue: bool
    kpis: list[KpiFigure]


class KpiReport(BaseModel):
    """Every KPI for one scope and period (and, with `by`, the case KPIs per procedure or field)."""

    scope: str
    period: str
    first_day: date
    last_day: date
    as_of: datetime  # the completeness watermark capped by now: the counts judge time up to here
    updating: str | None = None  # "đang cập nhật dữ liệu đến HH:MM" while the data lags
    kpis: list[KpiFigure]
    by: str | None = None
    groups: list[KpiGroup] | None = None


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
    as_of: datetime | None = None  # the completeness watermark capped by now
    updating: str | None = None  # "đang cập nhật dữ liệu đến HH:MM" while the data lags
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
    by: Annotated[
        Literal["procedure", "field"] | None,
        Query(description="also every case KPI per procedure code or per field (lĩnh vực) of the catalogue"),
    ] = None,
) -> KpiReport:
    """Every v1 KPI with its counts, ratio, target and status; with `by`, case KPIs per procedure or field."""
    parsed_scope = parse_or_400(scope, Scope)
    parsed_period = parse_or_400(period, Period)
    assert isinstance(parsed_scope, Scope) and isinstance(parsed_period, Period)
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as connection:
        complete = await completeness(request, connection)
        now = complete.as_of
        tree = UnitTree.from_rows(await queries.fetch_units(connection))
        unit_ids, target_unit, target_level = resolve_or_400(tree, parsed_scope)
        counts = await queries.fetch_rollups(
            connection, unit_ids=unit_ids, first=parsed_period.first, last=parsed_period.last, now=now
        )
        grouped = None if by is None else await read_groups(connection, by, unit_ids, parsed_period, now)
    kpis = figures(
        counts,
        request.app.state.targets,
        unit_id=target_unit,
        level=target_level,
        year=parsed_period.last.year,  # a reporting year starts on 15/12 of the year before
        judge_yearly=judges_yearly(parsed_scope, parsed_period),
    )
    groups = None
    if by is not None and grouped is not None:
        group_counts, catalogue = grouped
        target_args = (request.app.state.targets, target_unit, target_level, parsed_period.last.year)
        groups = group_figures(by, group_counts, catalogue, *target_args)
    return KpiReport(
        scope=scope,
        period=period,
        first_day=parsed_period.first,
        last_day=parsed_period.last,
        as_of=now,
        updating=updating_notice(complete, request.app.state.hold_seconds),
        kpis=kpis,
        by=by,
        groups=groups,
    )


def resolve_or_400(tree: UnitTree, scope: Scope) -> tuple[list[str], str | None, str | None]:
    """Resolve a scope to its unit ids and target keys; an unknown unit or level is the client's error."""
    try:
        return tree.resolve(scope)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


async def read_groups(
    connection: asyncpg.Connection, by: str, unit_ids: list[str], period: Period, now: datetime
) -> tuple[dict[str | None, dict[str, tuple[int, int]]], dict[str, tuple[str, str]]]:
    """Return the case KPI counts per procedure code or field, and the catalogue's names."""
    grouped = await queries.fetch_group_rollups(
        connection, by=by, unit_ids=unit_ids, first=period.first, last=period.last, now=now
    )
    return grouped, await queries.fetch_procedure_names(connection)


NOT_IN_CATALOGUE = "chưa có trong danh mục / not in the catalogue"


def group_figures(
    by: str,
    grouped: dict[str | None, dict[str, tuple[int, int]]],
    catalogue: dict[str, tuple[str, str]],
    targets: Targets,
    unit_id: str | None,
    level: str | None,
    year: int,
) -> list[KpiGroup]:
    """Return the case KPIs of each procedure or field, by key (not in the catalogue last)."""
    fields = {field for _, field in catalogue.values()}
    groups = []
    for key, counts in sorted(grouped.items(), key=lambda item: (item[0] is None, item[0] or "")):
        if by == "procedure":
            name, field = catalogue.get(key or "", (NOT_IN_CATALOGUE, None))
            known = key in catalogue
        else:
            name, field, known = (key, key, True) if key in fields else (NOT_IN_CATALOGUE, None, False)
        case_kpis = [
            f for f in figures(counts, targets, unit_id=unit_id, level=level, year=year) if f.kpi in CASE_KPIS
        ]
        groups.append(
            KpiGroup(key=key, name=name or NOT_IN_CATALOGUE, field=field, in_catalogue=known, kpis=case_kpis)
        )
    return groups


async def completeness(request: Request, connection: asyncpg.Connection) -> Completeness:
    """The completeness watermark the answers of this request are computed as of."""
    return await read_completeness(connection, topic_prefix=request.app.state.topic_prefix)


@router.get(
    "/units/{unit_id:path}/overdue",  # a unit id may hold a slash (contract v1.1)
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
        as_of = (await completeness(request, connection)).as_of
        rows = await queries.fetch_overdue_cases(connection, unit_id=unit_id, now=as_of)
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
    month, _ = current_periods(local_today())
    async with pool.acquire() as connection:
        complete = await completeness(request, connection)
        rows = await queries.fetch_units(connection)
        rollups = await queries.fetch_unit_rollups(
            connection, first=month.first, last=month.last, now=complete.as_of
        )
    updating = updating_notice(complete, request.app.state.hold_seconds)
    targets: Targets = request.app.state.targets
    return [
        UnitStatus(
            unit_id=row["unit_id"],
            name=row["name"],
            level=row["level"],
            level_name=row["level_name"],
            parent_id=row["parent_id"],
            month=month.name,
            as_of=complete.as_of,
            updating=updating,
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
