"""Notification rows (pure): what each notice says, to whom, through which channel.

A notice becomes one outbox row per channel: e-mail to the head's address; the head's webhook when the
registry gives one (JSON body, see delivery.py); a Grafana annotation for alert openings and
resolutions when a Grafana token is configured. Rows are rendered when queued, so the history keeps
exactly what was sent. Alert e-mails are queued `held`: grouping.py releases them per recipient, one
message per group window (`group_rows` composes a message of several). Webhooks and annotations are
per event (machines keep every transition; each delivery has its own id). Digests are rebuilt from the
data when they are sent (digests.py).
"""

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from services.alerts.directory import Unit
from services.alerts.messages import (
    ID_LIMIT,
    DigestCase,
    DueSoonCase,
    Line,
    Message,
    budget_lines,
    combine,
    days_text,
    forecast_lines,
    one_line,
    percent,
    period_label,
    render,
    stamp,
    target_text,
    value_text,
)
from services.alerts.signing import ack_url, dashboard_url
from shared.kpis import KPI_BY_ID
from shared.pagelinks import page_token, unit_page_url
from shared.workdays import local_now

Row = dict[str, Any]
MAX_LISTED = 100  # case lines per digest section


@dataclass(frozen=True, slots=True)
class Links:
    """Where links point and which optional channels are on."""

    public_url: str
    grafana_url: str | None  # None: no Grafana, no board link
    signing_key: str
    grafana_enabled: bool
    escalation_seconds: float
    ack_link_seconds: float = 7 * 86400.0
    pages_url: str = "http://127.0.0.1:8002"
    pages_key: str | None = None  # None: unit page links without a token (the reader signs in)
    page_link_seconds: float = 30 * 86400.0
    as_of: datetime | None = None  # the completeness watermark at the evaluation (shared/watermark.py)

    def data_as_of(self, now: datetime) -> datetime:
        """The instant the notice's data is complete up to: min(now, watermark)."""
        return now if self.as_of is None else min(now, self.as_of)

    def ack_url(self, alert_id: int, recipient: Unit, now: datetime) -> str:
        """Return the acknowledgement link of an alert for one recipient, valid `ack_link_seconds`."""
        expires = int(now.timestamp() + self.ack_link_seconds)
        return ack_url(self.public_url, self.signing_key, alert_id, recipient.unit_id, expires)

    def unit_page_url(self, unit_id: str, recipient: Unit, now: datetime) -> str:
        """Return the link to a unit's page, signed for one recipient for `page_link_seconds`."""
        if self.pages_key is None:
            return unit_page_url(self.pages_url, unit_id)
        expires = int(now.timestamp() + self.page_link_seconds)
        return unit_page_url(
            self.pages_url, unit_id, page_token(self.pages_key, unit_id, recipient.unit_id, expires)
        )

    def unit_links(self, unit_id: str, recipient: Unit, now: datetime) -> list[Line]:
        """Return the unit page link, and the Grafana board's when a Grafana is configured."""
        lines: list[Line] = [("Trang của đơn vị", self.unit_page_url(unit_id, recipient, now))]
        if self.grafana_url:
            lines.append(("Bảng Grafana của đơn vị", dashboard_url(self.grafana_url, unit_id)))
        return lines


@dataclass(frozen=True, slots=True)
class AlertRef:
    """The alert a notice is about."""

    alert_id: int
    unit: Unit
    kpi: str
    period: str
    state: str
    figures: dict[str, Any]


def duration_text(seconds: float) -> str:
    """Return "45 giây", "30 phút" or "4 giờ"."""
    if seconds < 120:
        return f"{seconds:.0f} giây"
    if seconds < 7200:
        return f"{seconds / 60:.0f} phút"
    return f"{seconds / 3600:.0f} giờ"


def alert_message(kind: str, ref: AlertRef, *, recipient: Unit, links: Links, now: datetime) -> Message:
    """Render a firing, escalation or resolution notice."""
    kpi_name = KPI_BY_ID[ref.kpi].name_vi
    label = period_label(ref.period)
    so_far = "" if ref.figures.get("period_ended") else " (đến nay)"
    value, target = value_text(ref.figures, ref.kpi), target_text(ref.figures, ref.kpi)
    title = {"firing": "Cảnh báo", "resolved": "Đã khắc phục", "escalation": "Chuyển cấp"}[kind]
    unit_name = one_line(ref.unit.name)
    lines: list[Line] = []
    if kind == "escalation":
        lines.append(
            f"Cảnh báo của {unit_name} chưa được thủ trưởng đơn vị xác nhận sau "
            f"{duration_text(links.escalation_seconds)}; thư này gửi thủ trưởng đơn vị cấp trên."
        )
    lines.append(f"{unit_name} – {kpi_name} {label}{so_far}: {value}, chỉ tiêu {target}.")
    if kind == "resolved":
        lines.append(f"Chỉ số đã trở lại mức đạt; cảnh báo số {ref.alert_id} đã được đóng.")
    else:
        lines += budget_lines(ref.figures, ref.kpi, ref.period) + forecast_lines(ref.figures, ref.period)
    lines += links.unit_links(ref.unit.unit_id, recipient, now)
    if kind != "resolved":
        lines.append(("Xác nhận đã nhận cảnh báo", links.ack_url(ref.alert_id, recipient, now)))
    lines.append(f"Số liệu tính đến {stamp(links.data_as_of(now))}. Mã cảnh báo: {ref.alert_id}.")
    subject = f"[{title}] {unit_name} – {kpi_name} {label}: {value}"
    return render(subject, greeting(recipient), lines)


def alert_payload(
    kind: str, ref: AlertRef, message: Message, *, recipient: Unit, links: Links, now: datetime
) -> Row:
    """Return the webhook JSON body of an alert notice."""
    return {
        "version": "1",
        "kind": kind,
        "alert_id": ref.alert_id,
        "unit": {"id": ref.unit.unit_id, "name": ref.unit.name},
        "recipient_unit_id": recipient.unit_id,
        "kpi": {"id": ref.kpi, "name": KPI_BY_ID[ref.kpi].name_vi},
        "period": ref.period,
        "state": ref.state,
        "figures": ref.figures,
        "subject": message.subject,
        "text": message.text,
        "links": {
            "dashboard": links.unit_page_url(ref.unit.unit_id, recipient, now),
            "ack": links.ack_url(ref.alert_id, recipient, now) if kind != "resolved" else None,
        },
        "created_at": now.isoformat(),
    }


def annotation(kind: str, ref: AlertRef, message: Message, *, now: datetime) -> Row:
    """Return the Grafana annotation (POST /api/annotations) of an alert opening or resolution."""
    return {
        "time": int(now.timestamp() * 1000),
        "tags": ["dvc-monitor", f"unit:{ref.unit.unit_id}", f"kpi:{ref.kpi}", f"period:{ref.period}", kind],
        "text": html.escape(message.subject),
    }


def alert_rows(kind: str, ref: AlertRef, *, recipient: Unit, links: Links, now: datetime) -> list[Row]:
    """Return the outbox rows of an alert notice to one unit head (plus Grafana for openings)."""
    message = alert_message(kind, ref, recipient=recipient, links=links, now=now)
    base = {
        "dedupe_key": f"alert:{ref.alert_id}:{kind}",
        "alert_id": ref.alert_id,
        "unit_id": ref.unit.unit_id,
        "kpi": ref.kpi,
        "kind": kind,
        "recipient_unit_id": recipient.unit_id,
        "subject": message.subject,
        "body_text": message.text,
    }
    rows = [
        {
            **base,
            "channel": "email",
            "recipient": recipient.head_email,
            "body_html": message.html,
            "held": True,
        }
    ]
    if recipient.head_webhook_url:
        payload = alert_payload(kind, ref, message, recipient=recipient, links=links, now=now)
        rows.append(
            {**base, "channel": "webhook", "recipient": recipient.head_webhook_url, "payload": payload}
        )
    if links.grafana_enabled and kind in ("firing", "resolved"):
        rows.append(
            {
                **base,
                "channel": "grafana",
                "recipient": "grafana",
                "payload": annotation(kind, ref, message, now=now),
            }
        )
    return rows


GROUP_TITLES = {"firing": "cảnh báo mới", "resolved": "đã khắc phục", "escalation": "chuyển cấp"}


def group_message(recipient: Unit, members: Sequence[Row]) -> Message:
    """Compose one message of several alert notices to the same head (each as it was rendered)."""
    counts = [f"{sum(m['kind'] == kind for m in members)} {title}" for kind, title in GROUP_TITLES.items()]
    summary = ", ".join(count for count in counts if not count.startswith("0 "))
    parts = [Message(m["subject"], m["body_text"], m["body_html"] or "") for m in members]
    return combine(
        f"[Tổng hợp cảnh báo] {len(members)} thay đổi: {summary}",
        f"Kính gửi {one_line(recipient.head_name)},",
        f"Các thay đổi về chỉ tiêu của các đơn vị đồng chí phụ trách ({len(members)}), gộp trong một thư:",
        parts,
    )


def group_row(recipient: Unit, address: str, members: Sequence[Row], now: datetime) -> Row:
    """Return the outbox row of a group message (its members keep their own rows and links)."""
    message = group_message(recipient, members)
    return {
        "dedupe_key": f"group:{members[0]['notification_id']}",
        "unit_id": recipient.unit_id,
        "kind": "group",
        "channel": "email",
        "recipient": address,
        "recipient_unit_id": recipient.unit_id,
        "subject": message.subject,
        "body_text": message.text,
        "body_html": message.html,
        "released_at": now,
        "next_attempt_at": now,
        "created_at": now,
    }


@dataclass(frozen=True, slots=True)
class DigestContent:
    """What a unit's digest lists, read from the data when it is built."""

    cases: Sequence[DigestCase]
    breaches: Sequence[Row]
    due_soon: Sequence[DueSoonCase]
    next_end: datetime  # end of the next working day
    last_end: datetime  # end of the last working day of the due-soon horizon
    working_days: int
    lookback_days: int

    @property
    def empty(self) -> bool:
        """Return True when there is nothing to tell."""
        return not (self.cases or self.breaches or self.due_soon)


def due_soon_lines(content: DigestContent) -> list[Line]:
    """Return the "Sắp đến hạn" section: by the end of the next working day, then within the horizon."""
    if not content.due_soon:
        return []
    first = [case for case in content.due_soon if case.deadline < content.next_end]
    later = [case for case in content.due_soon if case.deadline >= content.next_end]
    lines: list[Line] = [f"Sắp đến hạn ({len(content.due_soon)}):"]
    if first:
        lines.append(f"Đến hết ngày làm việc tiếp theo ({len(first)}):")
        lines += [due_soon_line(case, content.lookback_days) for case in first[:MAX_LISTED]]
    if later:
        lines.append(f"Trong {content.working_days} ngày làm việc tới ({len(later)}):")
        lines += [due_soon_line(case, content.lookback_days) for case in later[:MAX_LISTED]]
    return lines


def due_soon_line(case: DueSoonCase, lookback_days: int) -> str:
    """Return "- HS (thủ tục 1.004): hạn 10:00 ngày 02/12/2026; đơn vị thường giải quyết trong 4,5 ngày (...)"."""
    procedure = f" (thủ tục {one_line(case.procedure_code, ID_LIMIT)})" if case.procedure_code else ""
    if case.median_days is None:
        usual = f"đơn vị chưa giải quyết hồ sơ nào của thủ tục này trong {lookback_days} ngày qua"
    else:
        usual = (
            f"đơn vị thường giải quyết thủ tục này trong {days_text(case.median_days)} "
            f"(trung vị {case.resolved} hồ sơ, {lookback_days} ngày qua)"
        )
    return f"- {one_line(case.case_id, ID_LIMIT)}{procedure}: hạn {stamp(case.deadline)}; {usual}"


def digest_message(unit: Unit, content: DigestContent, *, links: Links, now: datetime) -> Message:
    """Render the daily digest of a unit: zero-tolerance offences, then the cases due soon."""
    cases, breaches = content.cases, content.breaches
    open_cases = [case for case in cases if case.still_open]
    missing = [case for case in cases if not case.apologized]
    lines: list[Line] = []
    if open_cases:
        lines.append(f"Hồ sơ đang quá hạn ({len(open_cases)}):")
        lines += listed(open_cases)
    closed = [case for case in cases if not case.still_open]
    if closed:
        lines.append(f"Hồ sơ đã quá hạn trong tháng, chưa có văn bản xin lỗi ({len(closed)}):")
        lines += listed(closed)
    for breach in breaches:
        figures = breach["figures"]
        lines.append(
            f"{KPI_BY_ID[breach['kpi']].name_vi} tháng này: {percent(figures['ratio'])} "
            f"({figures['numerator']}/{figures['denominator']}), chỉ tiêu {target_text(figures, breach['kpi'])}."
        )
    lines += due_soon_lines(content)
    lines += links.unit_links(unit.unit_id, unit, now)
    lines.append(f"Số liệu tính đến {stamp(links.data_as_of(now))}.")
    subject = (
        f"[Tổng hợp hằng ngày] {one_line(unit.name)}: {len(open_cases)} hồ sơ quá hạn, "
        f"{len(missing)} chưa có văn bản xin lỗi"
    )
    if content.due_soon:
        subject += f", {len(content.due_soon)} sắp đến hạn"
    return render(subject, greeting(unit), lines)


def greeting(recipient: Unit) -> str:
    """Return "Kính gửi <head> (<unit>),"."""
    return f"Kính gửi {one_line(recipient.head_name)} ({one_line(recipient.name)}),"


def listed(cases: Sequence[DigestCase]) -> list[Line]:
    """Return one line per case, at most MAX_LISTED, then how many more there are."""
    lines: list[Line] = [case_line(case) for case in cases[:MAX_LISTED]]
    if len(cases) > MAX_LISTED:
        lines.append(f"… và {len(cases) - MAX_LISTED} hồ sơ khác (xem bảng theo dõi).")
    return lines


def case_line(case: DigestCase) -> str:
    """Return "- 000.00.12.H42-201101-0001 (1.001): quá hạn từ 17:00 ngày 20/11/2026; chưa có văn bản xin lỗi"."""
    apology = "đã có văn bản xin lỗi" if case.apologized else "chưa có văn bản xin lỗi"
    procedure = f" (thủ tục {one_line(case.procedure_code, ID_LIMIT)})" if case.procedure_code else ""
    return (
        f"- {one_line(case.case_id, ID_LIMIT)}{procedure}: quá hạn từ {stamp(case.overdue_since)}; {apology}"
    )


def digest_key(unit_id: str, day: date) -> str:
    """Return the dedupe key of a unit's digest of a local day (at most one a day; webhooks)."""
    return f"digest:{unit_id}:{day.isoformat()}"


def head_digest_key(address: str, day: date) -> str:
    """Return the dedupe key of a head's digest e-mail of a local day (one a day, whatever their units)."""
    return f"digest:{address.lower()}:{day.isoformat()}"


def head_digest_rows(
    units: Sequence[tuple[Unit, DigestContent]], *, links: Links, now: datetime
) -> list[Row]:
    """Return the outbox rows of a head's digest for today: one e-mail for all their units (each unit's
    digest a numbered part when there are several), and each unit's webhook."""
    rows = [row for unit, content in units for row in digest_rows(unit, content, links=links, now=now)]
    emails = [row for row in rows if row["channel"] == "email"]
    first = emails[0]
    email = {**first, "dedupe_key": head_digest_key(first["recipient"], local_now(now).date())}
    if len(emails) > 1:
        head = units[0][0]
        parts = [Message(row["subject"], row["body_text"], row["body_html"]) for row in emails]
        message = combine(
            f"[Tổng hợp hằng ngày] {one_line(head.head_name)}: {len(emails)} đơn vị, "
            f"{sum(len([c for c in content.cases if c.still_open]) for _, content in units)} hồ sơ quá hạn, "
            f"{sum(len(content.due_soon) for _, content in units)} sắp đến hạn",
            f"Kính gửi {one_line(head.head_name)},",
            f"Tổng hợp hằng ngày của {len(emails)} đơn vị đồng chí phụ trách:",
            parts,
        )
        email |= {"subject": message.subject, "body_text": message.text, "body_html": message.html}
    return [email, *(row for row in rows if row["channel"] != "email")]


def digest_rows(unit: Unit, content: DigestContent, *, links: Links, now: datetime) -> list[Row]:
    """Return the outbox rows of a unit's digest for today (expiring at the end of the local day)."""
    cases = content.cases
    message = digest_message(unit, content, links=links, now=now)
    local_day = local_now(now).date()
    base = {
        "dedupe_key": digest_key(unit.unit_id, local_day),
        "unit_id": unit.unit_id,
        "kind": "digest",
        "recipient_unit_id": unit.unit_id,
        "subject": message.subject,
        "body_text": message.text,
        "expires_at": now + timedelta(hours=24),
    }
    rows = [{**base, "channel": "email", "recipient": unit.head_email, "body_html": message.html}]
    if unit.head_webhook_url:
        payload = {
            "version": "1",
            "kind": "digest",
            "unit": {"id": unit.unit_id, "name": unit.name},
            "cases": [
                {
                    "case_id": c.case_id,
                    "procedure_code": c.procedure_code,
                    "overdue_since": c.overdue_since.isoformat(),
                    "apologized": c.apologized,
                    "open": c.still_open,
                }
                for c in cases
            ],
            "due_soon": [
                {
                    "case_id": c.case_id,
                    "procedure_code": c.procedure_code,
                    "deadline": c.deadline.isoformat(),
                    "median_processing_days": c.median_days,
                }
                for c in content.due_soon
            ],
            "subject": message.subject,
            "text": message.text,
            "created_at": now.isoformat(),
        }
        rows.append({**base, "channel": "webhook", "recipient": unit.head_webhook_url, "payload": payload})
    return rows
