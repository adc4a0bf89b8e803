"""Vietnamese alert messages (pure): firing, resolution, escalation and the daily digest.

Each message has a subject, a plain-text body and an HTML body. Every upstream string (unit and head
names, case ids, procedure codes) goes through `one_line` where it is put into a sentence: control
characters, line breaks and bidirectional overrides become a space and the length is capped, so a
case id cannot add lines, headers or a fake link to a mail. Every line is cleaned again when
rendered, and everything goes through `html.escape` in HTML. The e-mail headers themselves are
built by `email.message.EmailMessage`, which encodes non-ASCII text and rejects line breaks.
"""

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.kpis import KPI_BY_ID
from shared.periods import parse_published_period
from shared.workdays import local_now

# C0/C1 controls (newlines included), zero-width and direction marks, line/paragraph separators,
# bidirectional embeddings, overrides and isolates, byte-order mark
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]+")
NAME_LIMIT = 200  # unit and head names
ID_LIMIT = 100  # case ids, procedure codes
LINE_LIMIT = 2000
COMPARATOR = {">=": "≥", ">": ">", "<=": "≤"}
ALLOWANCE = {  # "còn được phép <phrase> trong tháng"
    "on_time_rate": "trễ {k} hồ sơ",
    "satisfaction_rate": "có {k} đánh giá không hài lòng",
    "online_offer_rate": "có {k} thủ tục chưa có hồ sơ trực tuyến",
    "online_intake_rate": "có {k} hồ sơ không nộp trực tuyến",
    "portal_sync_rate": "có {k} hồ sơ chưa đồng bộ",
    "paperless_rate": "gửi {k} văn bản không điện tử",
    "signed_rate": "có {k} văn bản chưa ký số",
    "apology_coverage": "có {k} hồ sơ quá hạn chưa có văn bản xin lỗi",
    "overdue_open": "có {k} hồ sơ quá hạn",
    "online_report_rate": "có {k} báo cáo không trực tuyến",
    "digital_inspection_rate": "có {k} cuộc kiểm tra không qua môi trường số",
    "units_inspected_rate": "có {k} đơn vị chưa được kiểm tra",
}


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered notice."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class DigestCase:
    """An offending case file of a digest."""

    case_id: str
    procedure_code: str | None
    overdue_since: datetime
    apologized: bool
    still_open: bool


@dataclass(frozen=True, slots=True)
class DueSoonCase:
    """An open case file due soon, with how long its unit usually takes for its procedure."""

    case_id: str
    procedure_code: str | None
    deadline: datetime
    median_days: float | None  # None: no case of this procedure resolved by the unit in the lookback
    resolved: int  # how many the median is taken over


Line = str | tuple[str, str]  # a sentence, or (label, URL)
HTML_HEAD = '<!DOCTYPE html><html lang="vi"><body>'
HTML_TAIL = "</body></html>"


def one_line(text: str, limit: int = NAME_LIMIT) -> str:
    """Return text fit for one line of a mail or a header: unsafe characters made a space, at most `limit` characters."""
    cleaned = UNSAFE.sub(" ", text).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def header_safe(text: str, limit: int = 200) -> str:
    """Return text fit for a mail header (a subject)."""
    return one_line(text, limit)


def percent(value: float | None) -> str:
    """Format a ratio the Vietnamese way: 0.98 -> "98,0%"."""
    if value is None:
        return "—"
    scaled = value * 100
    text = f"{scaled:.1f}" if round(scaled, 1) == round(scaled, 2) else f"{scaled:.2f}"
    return text.replace(".", ",") + "%"


def period_label(period: str) -> str:
    """Return "tháng 11/2025" or "năm 2025"."""
    parsed = parse_published_period(period)
    return f"tháng {parsed.first:%m/%Y}" if parsed.kind == "month" else f"năm {parsed.first.year}"


def period_word(period: str) -> str:
    """Return "tháng" or "năm"."""
    return "tháng" if parse_published_period(period).kind == "month" else "năm"


def stamp(moment: datetime) -> str:
    """Return "14:30 ngày 26/11/2025" in local time."""
    local = local_now(moment)
    return f"{local:%H:%M} ngày {local:%d/%m/%Y}"


def target_text(figures: dict[str, Any], kpi: str) -> str:
    """Return "≥ 98,5%" (or "≤ 0" for counts)."""
    sign = COMPARATOR.get(str(figures["comparator"]), str(figures["comparator"]))
    value = figures["target"]
    return f"{sign} {int(value)}" if KPI_BY_ID[kpi].is_count else f"{sign} {percent(float(value))}"


def value_text(figures: dict[str, Any], kpi: str) -> str:
    """Return "98,0% (98/100)" or "3 hồ sơ" for counts."""
    if KPI_BY_ID[kpi].is_count:
        return f"{figures['numerator']} hồ sơ"
    return f"{percent(figures['ratio'])} ({figures['numerator']}/{figures['denominator']})"


def budget_lines(figures: dict[str, Any], kpi: str, period: str) -> list[Line]:
    """Return the failures-allowed sentences: budget, used, still allowed or over."""
    word = period_word(period)
    phrase = ALLOWANCE.get(kpi, "có {k} trường hợp không đạt")
    left = int(figures["failures_allowed"])
    lines: list[Line] = [
        f"Số được phép trong {word} (ước tính theo nhịp hiện tại, {figures['expected_total']} trường hợp): "
        f"{figures['budget']}; đã có: {figures['failures']}."
    ]
    if left >= 0:
        lines.append(f"Còn được phép {phrase.format(k=left)} trong {word}.")
    else:
        lines.append(f"Đã vượt mức cho phép: {phrase.format(k=-left)} quá mức trong {word}.")
    return lines


def forecast_lines(figures: dict[str, Any], period: str) -> list[Line]:
    """Return the forecast sentence, and the certain-breach note."""
    if figures.get("p_meet") is None:
        return []
    word = period_word(period)
    lines: list[Line] = [
        f"Dự báo cuối {word}: {percent(figures['forecast_ratio'])}; "
        f"khả năng đạt chỉ tiêu: {round(float(figures['p_meet']) * 100)}%."
    ]
    if figures.get("certain_breach"):
        lines.append(f"Chắc chắn không đạt chỉ tiêu {word} này.")
    return lines


def render(subject: str, greeting: str, lines: Sequence[Line]) -> Message:
    """Build the text and escaped HTML bodies from sentences and links."""
    greeting = one_line(greeting, LINE_LIMIT)
    text = [greeting, ""]
    parts = [f"<p>{html.escape(greeting)}</p>"]
    for line in lines:
        if isinstance(line, tuple):
            label, url = one_line(line[0], LINE_LIMIT), one_line(line[1], LINE_LIMIT)
            text.append(f"{label}: {url}")
            parts.append(f'<p>{html.escape(label)}: <a href="{html.escape(url)}">{html.escape(url)}</a></p>')
        else:
            line = one_line(line, LINE_LIMIT)
            text.append(line)
            parts.append(f"<p>{html.escape(line)}</p>")
    body = HTML_HEAD + "".join(parts) + HTML_TAIL
    return Message(header_safe(subject), "\n".join(text) + "\n", body)


def combine(subject: str, greeting: str, intro: str, parts: Sequence[Message]) -> Message:
    """Build one message of several rendered ones (each without its greeting), numbered, in order."""
    greeting, intro = one_line(greeting, LINE_LIMIT), one_line(intro, LINE_LIMIT)
    text = [greeting, "", intro]
    html_parts = [f"<p>{html.escape(greeting)}</p><p>{html.escape(intro)}</p>"]
    for number, part in enumerate(parts, 1):
        text += ["", f"{number}. {part.subject}", *part.text.splitlines()[2:]]
        html_parts.append(f"<hr><h3>{number}. {html.escape(part.subject)}</h3>{without_greeting(part.html)}")
    return Message(header_safe(subject), "\n".join(text) + "\n", HTML_HEAD + "".join(html_parts) + HTML_TAIL)


def without_greeting(body: str) -> str:
    """Return the inner HTML of a `render`ed body after its greeting paragraph (already escaped)."""
    inner = body.removeprefix(HTML_HEAD).removesuffix(HTML_TAIL)
    return inner.split("</p>", 1)[1] if "</p>" in inner else inner


def days_text(days: float) -> str:
    """Return "4,5 ngày"."""
    return f"{days:.1f}".replace(".", ",") + " ngày"
