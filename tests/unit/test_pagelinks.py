"""Signed unit-page links: what they grant, what is refused, and where the messages point."""

import dataclasses
from datetime import UTC, datetime

import pytest

from services.alerts.directory import Unit
from services.alerts.notices import AlertRef, Links, alert_message
from services.alerts.rules import BELOW
from shared.pagelinks import InvalidPageLink, page_token, read_page_token, unit_page_url

KEY = "p" * 32
NOW = datetime(2026, 11, 26, 7, 30, tzinfo=UTC)
LATER = int(NOW.timestamp()) + 3600
UNIT = Unit("x.c1", "Xã <b>A</b>", "commune", "x", "Bà Lan", "c1@x.example", None)
LINKS = Links(
    "https://alerts.example", None, "k" * 32, False, 14400.0, pages_url="https://pages.example", pages_key=KEY
)
FIGURES = {
    "ratio": 0.5,
    "numerator": 10,
    "denominator": 20,
    "target": 0.985,
    "comparator": ">=",
    "budget": 1,
    "failures": 10,
    "failures_allowed": -9,
    "expected_total": 60,
    "p_meet": 0.0,
    "forecast_ratio": 0.5,
    "period_ended": False,
}


def test_a_page_token_grants_its_unit_and_recipient_until_it_expires() -> None:
    grant = read_page_token(KEY, page_token(KEY, "x.c1", "x", LATER), now=NOW)
    assert (grant.unit_id, grant.recipient_unit_id, grant.expires) == ("x.c1", "x", LATER)


@pytest.mark.parametrize(
    "token",
    [
        page_token("q" * 32, "x.c1", "x.c1", LATER),  # another key
        page_token(KEY, "x.c1", "x.c1", int(NOW.timestamp()) - 1),  # expired
        page_token(KEY, "x.c1", "x.c1", LATER).replace(".", ":", 1),
        page_token(KEY, "x.c1", "x.c1", LATER)[:-1] + "0",
        "đ" * 20,
        "1." * 300,
        "",
    ],
)
def test_forged_expired_or_malformed_page_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidPageLink):
        read_page_token(KEY, token, now=NOW)


def test_a_token_for_one_unit_cannot_be_moved_to_another() -> None:
    unit, recipient, expires, digest = page_token(KEY, "x.c1", "x.c1", LATER).split(".")
    other = page_token(KEY, "x.c2", "x.c2", LATER).split(".")[1]
    with pytest.raises(InvalidPageLink):
        read_page_token(KEY, ".".join([unit, other, expires, digest]), now=NOW)


def test_alert_mails_link_to_the_signed_unit_page_and_to_grafana_only_when_configured() -> None:
    ref = AlertRef(7, UNIT, "on_time_rate", "month:2026-11", BELOW, FIGURES)
    text = alert_message("firing", ref, recipient=UNIT, links=LINKS, now=NOW).text
    link = next(line for line in text.splitlines() if "/pages/units/" in line).split(": ", 1)[1]
    assert link.startswith(unit_page_url("https://pages.example", "x.c1") + "?t=")
    grant = read_page_token(KEY, link.split("?t=", 1)[1], now=NOW)
    assert (grant.unit_id, grant.recipient_unit_id) == ("x.c1", "x.c1")
    assert "/d/dvc-unit" not in text and "grafana" not in text.lower()
    with_grafana = dataclasses.replace(LINKS, grafana_url="https://grafana.example")
    text = alert_message("firing", ref, recipient=UNIT, links=with_grafana, now=NOW).text
    assert "https://grafana.example/d/dvc-unit?var-unit=x.c1" in text
