"""`GET /api/v1/reports`: the periodic report (form II.06a/VPCP/KSTT) as XLSX, DOCX or JSON."""

from datetime import UTC, datetime
from typing import Literal

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from services.metrics.api import KPI_READER, parse_or_400
from services.metrics.periods import Scope
from services.metrics.report import Report, build_report, file_name
from services.metrics.report_docx import render_docx
from services.metrics.report_xlsx import render_xlsx
from shared.periods import Period

router = APIRouter(prefix="/api/v1")
MEDIA_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


@router.get(
    "/reports",
    summary="The periodic report (form II.06a/VPCP/KSTT) for a scope and period",
    dependencies=[KPI_READER],
    response_model=None,
)
async def read_report(
    request: Request,
    scope: str = Query(description="unit:<id>, level:<name>, subtree:<id> or province"),
    period: str = Query(
        description="a reporting period (report-month:YYYY-MM, report-quarter:YYYY-Qn, …) or a calendar one"
    ),
    format: Literal["xlsx", "docx", "json"] = Query("xlsx", description="xlsx, docx or json"),  # noqa: A002
) -> Response | Report:
    """The report's file, or its content as JSON (the same figures)."""
    return await report_response(request, scope=scope, period=period, format=format)


async def report_response(
    request: Request,
    *,
    scope: str,
    period: str,
    format: str,
    headers: dict[str, str] | None = None,  # noqa: A002
) -> Response | Report:
    """Build the report and return its file (or the Report for json); bad input raises HTTPException 400."""
    parsed_scope = parse_or_400(scope, Scope)
    parsed_period = parse_or_400(period, Period)
    assert isinstance(parsed_scope, Scope) and isinstance(parsed_period, Period)
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as connection:
        try:
            report = await build_report(
                connection,
                scope=parsed_scope,
                scope_text=scope,
                period=parsed_period,
                targets=request.app.state.targets,
                now=datetime.now(UTC),
            )
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
    if format == "json":
        return report
    render = render_xlsx if format == "xlsx" else render_docx
    content = await run_in_threadpool(render, report)
    disposition = {"Content-Disposition": f'attachment; filename="{file_name(report, format)}"'}
    return Response(content, media_type=MEDIA_TYPES[format], headers={**(headers or {}), **disposition})
