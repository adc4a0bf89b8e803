"""The pages behind an e-mail's acknowledgement link (pure): confirmation, result and refusal.

Mail scanners fetch every link, so the link (GET) only shows the alert and a button; the button's
form POSTs the link's token back (the token is the form's CSRF token: a page elsewhere cannot know
it). Every value is escaped; the pages load nothing, cannot be framed and are never cached.
"""

import html
from dataclasses import dataclass
from typing import Any

from fastapi.responses import HTMLResponse

from services.alerts.directory import Unit
from services.alerts.messages import period_label, stamp, target_text, value_text
from shared.kpis import KPI_BY_ID

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never hand it to another site
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}
STYLE = "body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}button{font-size:1.1em}"


@dataclass(frozen=True, slots=True)
class AlertView:
    """What the pages say about an alert."""

    alert_id: int
    unit_name: str
    kpi_name: str
    period: str
    figures: str
    opened: str
    acknowledged: str | None
    resolved: bool


def describe(row: Any, unit: Unit | None) -> AlertView:
    """Describe an `alerts` row (with the unit from the directory, if known)."""
    kpi = row["kpi"]
    try:
        figures = f"{value_text(row['figures'], kpi)}, chỉ tiêu {target_text(row['figures'], kpi)}"
        period = period_label(row["period"])
    except (KeyError, ValueError, TypeError):  # figures of another version: show what is certain
        figures, period = "—", str(row["period"])
    acknowledged = row["acknowledged_at"]
    return AlertView(
        alert_id=row["alert_id"],
        unit_name=unit.name if unit else row["unit_id"],
        kpi_name=KPI_BY_ID[kpi].name_vi if kpi in KPI_BY_ID else kpi,
        period=period,
        figures=figures,
        opened=stamp(row["opened_at"]),
        acknowledged=stamp(acknowledged) if acknowledged else None,
        resolved=row["resolved_at"] is not None,
    )


def page(title: str, paragraphs: list[str], *, form: str = "", status_code: int = 200) -> HTMLResponse:
    """Return a small Vietnamese page; `paragraphs` are plain text, escaped here."""
    body = "".join(f"<p>{html.escape(text)}</p>" for text in paragraphs)
    document = (
        '<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}{form}</body></html>"
    )
    return HTMLResponse(document, status_code=status_code, headers=SECURITY_HEADERS)


def summary(view: AlertView) -> list[str]:
    """The alert in three sentences."""
    lines = [
        f"Cảnh báo số {view.alert_id}: {view.unit_name} – {view.kpi_name} {view.period}.",
        f"Số liệu khi mở cảnh báo: {view.figures}. Mở lúc {view.opened}.",
    ]
    if view.resolved:
        lines.append("Cảnh báo này đã được đóng (chỉ số đã đạt lại hoặc hết kỳ).")
    if view.acknowledged:
        lines.append(f"Cảnh báo đã được xác nhận lúc {view.acknowledged}.")
    return lines


def confirmation_page(view: AlertView, token: str, recipient_name: str) -> HTMLResponse:
    """The page a link opens: the alert, its figures and a button that POSTs the token."""
    form = (
        '<form method="post" action="ack/confirm">'
        f'<input type="hidden" name="token" value="{html.escape(token, quote=True)}">'
        '<button type="submit">Xác nhận đã nhận cảnh báo / Acknowledge</button></form>'
    )
    return page(
        "Xác nhận cảnh báo / Acknowledge an alert",
        [
            *summary(view),
            f"Xác nhận với tư cách: {recipient_name}. Chưa có gì thay đổi cho đến khi bấm nút dưới đây; "
            "xác nhận sẽ dừng việc chuyển cảnh báo lên cấp trên. / Nothing changes until you press the button.",
        ],
        form=form,
    )


def done_page(view: AlertView) -> HTMLResponse:
    """The page after the form was posted."""
    return page(
        "Đã xác nhận cảnh báo / Alert acknowledged",
        [*summary(view), "Cảm ơn. Cảnh báo sẽ không được chuyển lên cấp trên. / Thank you."],
    )


def refused_page(reason: str, status_code: int = 403) -> HTMLResponse:
    """The page of a wrong, expired or malformed link (403) or an unknown alert (404)."""
    return page(
        "Không thể xác nhận / Cannot acknowledge",
        [
            reason,
            "Hãy dùng liên kết trong thư mới nhất, hoặc liên hệ quản trị hệ thống. / "
            "Use the link of the latest message, or contact the administrators.",
        ],
        status_code=status_code,
    )
