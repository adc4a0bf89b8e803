"""Web pages for the people who act: the province overview and each unit's page (server-rendered).

Access: the overview needs a signed-in API token (a login form sets it in an HttpOnly cookie) unless
DVC_API_READ_PUBLIC=true; a unit page also opens with the signed, expiring link of a message
(shared/pagelinks.py), which lets the page start an acknowledgement on the alerts service's
confirmation page. The figures come from the very functions behind /api/v1/kpis, /api/v1/units and
/units/{id}/overdue, so a page and the API never disagree.
"""

import asyncio
import csv
import io
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.metrics import api, page_queries, pageviews, queries
from services.metrics.pagetext import pick_lang, stamp, translator
from services.metrics.periods import parse_scope
from shared.auth import Principal, find_token
from shared.pagelinks import InvalidPageLink, PageGrant, read_page_token
from shared.periods import Period, current_periods, local_today, next_month
from shared.workdays import due_soon_limits

router = APIRouter(prefix="/pages", include_in_schema=False)
COOKIE = "dvc_pages_token"
MAX_FORM_BYTES = 4096
HISTORY_LIMIT = 50
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # a unit page's URL may hold its signed token
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a template with the language helpers; every value is escaped by the template engine."""
    lang = pick_lang(request.query_params.get("lang"))
    switched = request.url.include_query_params(lang="en" if lang == "vi" else "vi")
    html = TEMPLATES.get_template(name).render(
        t=translator(lang), lang=lang, switch_url=f"{switched.path}?{switched.query}", **context
    )
    headers = dict(SECURITY_HEADERS)
    if "started" in context:  # the whole server time of the page, queries and template (bench/pages.py)
        headers["Server-Timing"] = f"page;dur={(time.perf_counter() - context['started']) * 1000:.1f}"
    return HTMLResponse(html, status_code=status_code, headers=headers)


def refused(request: Request, reason: str, status_code: int = 403) -> HTMLResponse:
    """Return the page of a refused link or an unknown unit."""
    return render(request, "message.html", status_code=status_code, reason=reason)


def to_login(request: Request) -> RedirectResponse:
    """Send the visitor to the login form, then back here."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/pages/login?next={quote(target, safe='')}", status_code=303)


async def signed_in(request: Request) -> Principal | None:
    """Return the principal of the cookie's API token, if it is still valid."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 200:
        return None
    return await find_token(request.app.state.pool, token)


def page_grant(request: Request, token: str) -> PageGrant:
    """Return what a unit page's signed token grants, or raise InvalidPageLink."""
    key = request.app.state.pages_key
    if key is None:
        raise InvalidPageLink("liên kết trang đơn vị chưa được bật / page links are not enabled")
    return read_page_token(key, token, now=datetime.now(UTC))


def csv_response(filename: str, header: list[str], rows: list[list[Any]]) -> Response:
    """Return rows as a CSV download (UTF-8 with BOM, so spreadsheet programs read Vietnamese)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    headers = {**SECURITY_HEADERS, "Content-Disposition": content_disposition(filename)}
    return Response("\ufeff" + buffer.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def content_disposition(filename: str) -> str:
    """Return an attachment header for any file name: an ASCII fallback plus the UTF-8 name (RFC 6266)."""
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in ".-_") else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def trend_months(today: date, count: int = 12) -> list[date]:
    """Return the first days of the last `count` months, the oldest first."""
    first = today.replace(day=1)
    months = [first]
    while len(months) < count:
        months.insert(0, (months[0] - timedelta(days=1)).replace(day=1))
    return months


@router.get("")
async def pages_home() -> RedirectResponse:
    """The pages start at the province overview."""
    return RedirectResponse("/pages/province", status_code=307)


@router.get("/province", response_model=None)
async def province_page(request: Request, scope: str = "province") -> Response:
    """The province overview (or a level or a district subtree): KPIs, units below target, trend."""
    started = time.perf_counter()
    if not request.app.state.read_public and await signed_in(request) is None:
        return to_login(request)
    lang = pick_lang(request.query_params.get("lang"))
    today = local_today()
    month, year = current_periods(today)
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as connection:
        tree = api.UnitTree.from_rows(await queries.fetch_units(connection))
    try:
        parsed = parse_scope(scope)
        unit_ids, target_unit, target_level = tree.resolve(parsed)
    except ValueError as exc:
        return refused(request, str(exc), 400)
    months = trend_months(today)
    # The reads are independent: run them at once, each on its own pooled connection.
    month_report, all_units, (monthly, year_counts, as_of) = await asyncio.gather(
        api.read_kpis(request, scope=scope, period=month.name),
        api.read_units(request),
        read_year_and_trend(pool, unit_ids, months, year, today),
    )
    year_kpis = api.figures(
        year_counts,
        request.app.state.targets,
        unit_id=target_unit,
        level=target_level,
        year=year.last.year,
        judge_yearly=api.judges_yearly(parsed, year),  # as the API judges the same scope and year
    )
    in_scope = set(unit_ids)
    units = [unit for unit in all_units if unit.unit_id in in_scope]
    ranked = pageviews.rank_below(units, lang)
    if request.query_params.get("format") == "csv":
        return csv_response(
            "don-vi-khong-dat.csv",
            ["rank", "unit_id", "name", "level", "kpis_below"],
            [[i, u.unit_id, u.name, u.level_name, "; ".join(u.below)] for i, u in enumerate(ranked, 1)],
        )
    targets = {figure.kpi: figure.target for figure in month_report.kpis}
    return render(
        request,
        "province.html",
        scope=scope,
        scope_name=scope_name(tree, scope, lang),
        levels=levels_of(tree),
        districts=districts_of(tree),
        rows=pageviews.kpi_rows(month_report.kpis, year_kpis, {}, lang),
        month=month.name.partition(":")[2],
        year=year.first.year,
        ranked=ranked,
        units=[pageviews_unit(unit, lang) for unit in units],
        charts=pageviews.trend_charts(monthly, months, targets, lang),
        report_links=pageviews.report_links(scope, today, lang, page_token=None),
        as_of=stamp(as_of or month_report.as_of, lang),
        updating=month_report.updating,
        render_ms=round((time.perf_counter() - started) * 1000),
        started=started,
    )


async def read_year_and_trend(
    pool: asyncpg.Pool, unit_ids: list[str], months: list[date], year: Period, today: date
) -> tuple[dict[tuple[date, str], tuple[int, int]], dict[str, tuple[int, int]], datetime | None]:
    """Return the scope's monthly counts, its year counts (as `fetch_rollups` gives them) and the time of
    the latest count, reading the year's day cells once for both the trend and the year's figures."""
    first, last = min(months[0], year.first), max(next_month(months[-1]) - timedelta(days=1), year.last)
    async with pool.acquire() as connection:
        daily = await page_queries.fetch_daily_rollups(connection, unit_ids=unit_ids, first=first, last=last)
        year_counts = await queries.fetch_other_rollups(
            connection, unit_ids=unit_ids, first=year.first, last=year.last, now=datetime.now(UTC)
        )
        as_of = await page_queries.fetch_latest_count_time(connection, since=today - timedelta(days=2))
    monthly: dict[tuple[date, str], tuple[int, int]] = {}
    for (day, kpi), (numerator, denominator) in daily.items():
        add_counts(monthly, (day.replace(day=1), kpi), numerator, denominator)
        if year.first <= day <= year.last:
            add_counts(year_counts, kpi, numerator, denominator)
    return monthly, year_counts, as_of


def add_counts(totals: dict[Any, tuple[int, int]], key: Any, numerator: int, denominator: int) -> None:
    """Add counts to a running total (exact integers: the sum of the days is the sum of the period)."""
    before = totals.get(key, (0, 0))
    totals[key] = (before[0] + numerator, before[1] + denominator)


def scope_name(tree: api.UnitTree, scope: str, lang: str) -> str:
    """Return the scope's title: the province, a level's name or a unit's name."""
    kind, _, value = scope.partition(":")
    if kind == "level":
        return next((row["level_name"] for row in tree.rows.values() if row["level"] == value), value)
    if kind in ("subtree", "unit"):
        return str(tree.rows[value]["name"])
    return translator(lang)("province")


def levels_of(tree: api.UnitTree) -> list[tuple[str, str]]:
    """Return (level id, level name) in rank order."""
    seen: dict[str, str] = {}
    for row in tree.rows.values():
        seen.setdefault(row["level"], row["level_name"])
    return list(seen.items())


def districts_of(tree: api.UnitTree) -> list[tuple[str, str]]:
    """Return (unit id, name) of the units with units below them, except the root."""
    return [
        (unit_id, row["name"])
        for unit_id, row in tree.rows.items()
        if tree.children.get(unit_id) and row["parent_id"] is not None
    ]


def pageviews_unit(unit: api.UnitStatus, lang: str) -> dict[str, Any]:
    """Return a unit's row of the overview's table of every unit."""
    by_kpi = {figure.kpi: figure for figure in unit.kpis}
    return {
        "unit_id": unit.unit_id,
        "name": unit.name,
        "level_name": unit.level_name,
        "on_time": pageviews.value_text(by_kpi["on_time_rate"], lang),
        "on_time_status": by_kpi["on_time_rate"].status,
        "overdue": by_kpi["overdue_open"].numerator,
        "overdue_status": by_kpi["overdue_open"].status,
        "below": sum(figure.status == "below" for figure in unit.kpis),
    }


@router.get("/units/{unit_id:path}", response_model=None)  # a unit id may hold a slash
async def unit_page(request: Request, unit_id: str, t: str = "") -> Response:
    """A unit's page: KPIs against its own target, budget, forecast, overdue cases, alerts."""
    started = time.perf_counter()
    grant = await unit_page_grant(request, unit_id, t)
    if isinstance(grant, Response):
        return grant
    lang = pick_lang(request.query_params.get("lang"))
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as connection:
        tree = api.UnitTree.from_rows(await queries.fetch_units(connection))
    if unit_id not in tree.rows:
        return refused(request, f"không có đơn vị này / unknown unit {unit_id!r}", 404)
    cases = await api.read_overdue_cases(request, unit_id)
    overdue = pageviews.overdue_rows(cases, lang)
    if request.query_params.get("format") == "csv":
        return overdue_csv(unit_id, cases)
    today = local_today()
    month, year = current_periods(today)
    month_report = await api.read_kpis(request, scope=f"unit:{unit_id}", period=month.name, by="procedure")
    year_report = await api.read_kpis(request, scope=f"unit:{unit_id}", period=year.name)
    async with pool.acquire() as connection:
        states = await page_queries.fetch_alert_states(connection, unit_id=unit_id, periods=[month.name])
        history = await page_queries.fetch_alert_history(connection, unit_id=unit_id, limit=HISTORY_LIMIT)
        as_of = await page_queries.fetch_latest_count_time(
            connection, since=today - timedelta(days=2), unit_id=unit_id
        )
        due_soon, next_end = await read_due_soon(request, connection, unit_id)
    row = tree.rows[unit_id]
    return render(
        request,
        "unit.html",
        unit_id=unit_id,
        unit_name=row["name"],
        level_name=row["level_name"],
        rows=pageviews.kpi_rows(
            month_report.kpis, year_report.kpis, {state["kpi"]: state for state in states}, lang
        ),
        month=month.name.partition(":")[2],
        year=year.first.year,
        overdue=overdue,
        late_procedures=pageviews.late_procedure_rows(month_report.groups or [], lang),
        due_soon=pageviews.due_soon_rows(due_soon, next_end, lang),
        due_soon_days=request.app.state.due_soon_days,
        lookback_days=request.app.state.processing_lookback_days,
        alerts=pageviews.alert_rows(history, lang),
        ack_base=request.app.state.alerts_url.rstrip("/") if grant else None,
        page_token=t if grant else None,
        report_links=pageviews.report_links(f"unit:{unit_id}", today, lang, page_token=t if grant else None),
        signed_in=grant is None,
        as_of=stamp(as_of or month_report.as_of, lang),
        updating=month_report.updating,
        render_ms=round((time.perf_counter() - started) * 1000),
        started=started,
    )


async def unit_page_grant(request: Request, unit_id: str, token: str) -> PageGrant | None | Response:
    """Return the page link's grant (None for a signed-in user), or the refusal or login to answer with."""
    if not token:
        return None if await signed_in(request) is not None else to_login(request)
    try:
        grant = page_grant(request, token)
    except InvalidPageLink as exc:
        return refused(request, str(exc))
    if grant.unit_id != unit_id:
        return refused(request, "liên kết của đơn vị khác / a link of another unit")
    return grant


def overdue_csv(unit_id: str, cases: list[api.OverdueCase]) -> Response:
    """The unit's overdue cases as a CSV download."""
    return csv_response(
        f"qua-han-{unit_id}.csv",
        ["case_id", "procedure_code", "deadline", "days_overdue", "apologized"],
        [
            [c.case_id, c.procedure_code or "", c.deadline.isoformat(), c.late_seconds // 86400, c.apologized]
            for c in cases
        ],
    )


async def read_due_soon(
    request: Request, connection: asyncpg.Connection, unit_id: str
) -> tuple[list[asyncpg.Record], datetime]:
    """Return the unit's "Sắp đến hạn" cases as the alerts digest lists them (open, running, due by the
    end of the ALERTS_DUE_SOON_WORKING_DAYS-th working day) and the end of the next working day."""
    now = datetime.now(UTC)
    overrides = await page_queries.fetch_holiday_overrides(connection)
    next_end, last_end = due_soon_limits(now, request.app.state.due_soon_days, overrides)
    cases = await page_queries.fetch_due_soon_cases(
        connection,
        unit_id=unit_id,
        now=now,
        until=last_end,
        lookback_days=request.app.state.processing_lookback_days,
    )
    return cases, next_end


@router.get("/login", response_model=None)
async def login_form(request: Request, next: str = "/pages/province") -> HTMLResponse:
    """The form that takes an API token."""
    return render(request, "login.html", next=safe_next(next), failed=False)


def safe_next(target: str) -> str:
    """Return a place inside the pages to go back to (never another site)."""
    return (
        target
        if target.startswith("/pages/") and "//" not in target and "\\" not in target
        else "/pages/province"
    )


@router.post("/login", response_model=None)
async def log_in(request: Request) -> Response:
    """Check the token; keep it in an HttpOnly cookie and go back, or show the form again."""
    body = await request.body()
    fields = parse_qs(body.decode("utf-8", "replace")) if len(body) <= MAX_FORM_BYTES else {}
    token = (fields.get("token") or [""])[0].strip()
    target = safe_next((fields.get("next") or ["/pages/province"])[0])
    principal = await find_token(request.app.state.pool, token) if 0 < len(token) <= 200 else None
    if principal is None:
        return render(request, "login.html", status_code=401, next=target, failed=True)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/pages",
        max_age=12 * 3600,
    )
    return response


@router.post("/logout")
async def log_out() -> RedirectResponse:
    """Forget the cookie."""
    response = RedirectResponse("/pages/login", status_code=303)
    response.delete_cookie(COOKIE, path="/pages")
    return response
