"""`GET /pages/reports`: the periodic report's files downloaded from the pages, with the pages' own access.

An official signed in (the pages' cookie) may download any scope, as `GET /api/v1/reports` allows a
viewer token; a unit head's signed page link (`t`, never an API token) opens only its own unit's
report; DVC_API_READ_PUBLIC=true opens every report, as it opens the API's. The file is built by the
same function as the API's, so a download from a page and one from the API are the same figures.
"""

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from services.metrics.pages import SECURITY_HEADERS, page_grant, refused, signed_in, to_login
from services.metrics.reports_api import MEDIA_TYPES, report_response
from shared.pagelinks import InvalidPageLink

router = APIRouter(prefix="/pages", include_in_schema=False)


@router.get("/reports", response_model=None)
async def download_report(
    request: Request,
    scope: str,
    period: str,
    format: str = "xlsx",  # noqa: A002
    t: str = "",
) -> Response:
    """The report of a scope and period as XLSX or DOCX, for the visitor the page let in."""
    if format not in MEDIA_TYPES:
        return refused(request, f"định dạng không hỗ trợ / unsupported format {format[:20]!r}", 400)
    if t:
        try:
            grant = page_grant(request, t)
        except InvalidPageLink as exc:
            return refused(request, str(exc))
        if scope != f"unit:{grant.unit_id}":
            return refused(
                request, "liên kết chỉ mở báo cáo của đơn vị mình / the link opens only its unit's report"
            )
    elif not request.app.state.read_public and await signed_in(request) is None:
        return to_login(request)
    try:
        response = await report_response(
            request, scope=scope, period=period, format=format, headers=SECURITY_HEADERS
        )
    except HTTPException as exc:
        return refused(request, str(exc.detail), exc.status_code)
    assert isinstance(response, Response)  # json is never asked for here
    return response
