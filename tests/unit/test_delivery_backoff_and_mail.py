"""Pure parts of delivery: backoff with jitter until the horizon, the mail headers, sanitised upstream strings."""

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from services.alerts.delivery import email_message, next_step, retry_delay
from services.alerts.directory import Unit
from services.alerts.messages import DigestCase, one_line
from services.alerts.notices import DigestContent, Links, digest_message
from shared.config import AlertsSettings

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def settings(**extra: Any) -> AlertsSettings:
    return AlertsSettings(
        DATABASE_URL="postgresql://u:not-a-placeholder@127.0.0.1/x",  # type: ignore[arg-type]
        ALERTS_SIGNING_KEY="k" * 32,  # type: ignore[arg-type]
        WEBHOOK_SECRET="w" * 32,  # type: ignore[arg-type]
        SMTP_FROM="giamsat-dvc@ha-tinh.gov.vn",
        **extra,
    )


@pytest.mark.parametrize(
    ("attempts", "low", "high"), [(1, 15, 30), (2, 30, 60), (5, 240, 480), (6, 450, 900), (60, 450, 900)]
)
def test_the_delay_doubles_is_capped_and_keeps_at_least_half_of_it(
    attempts: int, low: float, high: float
) -> None:
    assert retry_delay(attempts, base=30, cap=900, draw=lambda: 0.0) == low
    assert retry_delay(attempts, base=30, cap=900, draw=lambda: 1.0) == high


def test_retries_go_on_until_the_horizon_then_the_notification_is_failed() -> None:
    config = settings(ALERTS_RETRY_HORIZON_SECONDS=3600)
    first = {"attempts": 0, "first_attempt_at": None}
    assert next_step(first, config, "SMTPConnectError", NOW)[:2] == ("pending", "retry")  # type: ignore[arg-type]
    later = {"attempts": 9, "first_attempt_at": NOW - timedelta(seconds=3500)}
    status, _, next_at = next_step(later, config, "SMTPConnectError", NOW)  # type: ignore[arg-type]
    assert status == "pending" and next_at == NOW + timedelta(seconds=100)  # the last retry is at the horizon
    past = {"attempts": 10, "first_attempt_at": NOW - timedelta(seconds=3600)}
    assert next_step(past, config, "SMTPConnectError", NOW) == ("failed", "failed", NOW)  # type: ignore[arg-type]
    assert next_step(past, config, None, NOW) == ("sent", "sent", NOW)  # type: ignore[arg-type]


def test_a_mail_has_a_date_and_a_message_id_that_retries_keep() -> None:
    row = {
        "notification_id": 42,
        "created_at": NOW,
        "subject": "[Cảnh báo] x",
        "recipient": "head@ha-tinh.gov.vn",
        "body_text": "x\n",
        "body_html": None,
    }
    first, retry = email_message(row, settings()), email_message(row, settings())  # type: ignore[arg-type]
    assert first["Message-ID"] == retry["Message-ID"] == "<dvc.42.20261126030000@ha-tinh.gov.vn>"
    assert parsedate_to_datetime(str(first["Date"])) == NOW and str(first["Date"]).endswith("+0700")
    other = email_message(row, settings(SMTP_MESSAGE_ID_DOMAIN="mail.example"))  # type: ignore[arg-type]
    assert str(other["Message-ID"]).endswith("@mail.example>")


def test_upstream_strings_lose_line_breaks_controls_and_bidi_overrides_and_are_capped() -> None:
    assert one_line("HS-1\r\nBcc: x@evil\u202e\x00gpj.exe") == "HS-1 Bcc: x@evil gpj.exe"
    assert one_line("x" * 500, 100) == "x" * 99 + "…"


def test_a_digest_keeps_each_case_on_one_line_and_escapes_it_in_html() -> None:
    unit = Unit("a.c1", "Xã\nMột <b>", "commune", None, "Thủ trưởng\r\nBcc: x@evil", "h@x.vn", None)
    case = DigestCase("HS-1\nTo: victim@x <a href='http://evil'>", None, NOW - timedelta(days=1), False, True)
    links = Links("https://dvc.example", "https://grafana.example", "k" * 32, False, 14400)
    message = digest_message(unit, overdue_only([case]), links=links, now=NOW)
    lines = message.text.splitlines()
    assert lines[0] == "Kính gửi Thủ trưởng Bcc: x@evil (Xã Một <b>),"
    assert not any(line.startswith(("To:", "Bcc:")) for line in lines)
    assert "- HS-1 To: victim@x <a href='http://evil'>: quá hạn từ" in message.text
    assert (
        "<a href='http://evil'>" not in message.html
        and "&lt;a href=&#x27;http://evil&#x27;&gt;" in message.html
    )
    assert "\n" not in message.subject and "Xã Một <b>" in message.subject


def overdue_only(cases: list[DigestCase]) -> DigestContent:
    """A digest content listing overdue cases only."""
    end = datetime(2026, 11, 27, tzinfo=UTC)
    return DigestContent(cases, [], [], end, end, 3, 90)
