"""Pure alert rules: statistics against alerting-design.md section 2, states, hysteresis, calendar, messages."""

import hashlib
import hmac
from datetime import UTC, date, datetime, time

import pytest

from services.alerts.calendar import elapsed_fraction, is_office_time, parse_office_hours
from services.alerts.directory import Unit
from services.alerts.messages import DigestCase, header_safe, percent
from services.alerts.notices import (
    MAX_LISTED,
    AlertRef,
    DigestContent,
    Links,
    alert_message,
    alert_rows,
    digest_message,
)
from services.alerts.rules import (
    AT_RISK,
    BELOW,
    INSUFFICIENT,
    OK,
    Memory,
    Policy,
    Silence,
    Verdict,
    advance,
    evaluate,
    silenced_until,
)
from services.alerts.signing import (
    InvalidLink,
    ack_token,
    read_ack_token,
    webhook_signature,
    webhook_signature_valid,
)
from services.alerts.stats import (
    _normal_cdf,
    beta_binomial_cdf,
    failure_budget,
    probability_of_meeting,
    wilson_interval,
)
from shared.periods import in_lookback, parse_published_period
from shared.targets import Target
from shared.workdays import is_working_day

ON_TIME = Target(">=", 0.985)
POLICY = Policy(min_samples=20, recovery_margin=0.005, confirm_seconds=600, resolve_seconds=1800)


@pytest.mark.parametrize(
    ("good", "total", "low", "high"),
    [(9, 10, 0.596, 0.982), (19, 20, 0.764, 0.991), (97, 100, 0.915, 0.990), (20, 20, 0.839, 1.000)],
)
def test_wilson_interval_matches_the_design_table(good: int, total: int, low: float, high: float) -> None:
    assert wilson_interval(good, total) == pytest.approx((low, high), abs=0.0006)


@pytest.mark.parametrize(
    ("target", "total", "allowed"),
    [
        (0.985, 50, 0),
        (0.985, 100, 1),
        (0.985, 200, 3),
        (0.985, 1000, 15),
        (0.95, 20, 1),
        (0.95, 100, 5),
        (0.9, 10, 1),
    ],
)
def test_failure_budget_is_floor_of_the_slack(target: float, total: int, allowed: int) -> None:
    assert failure_budget(target, ">=", total) == allowed


def test_strict_comparator_budget_excludes_the_boundary() -> None:
    assert failure_budget(0.30, ">", 10) == 6  # 4/10 online is not > 30 %... 7 offline of 10 would be 30 %
    assert failure_budget(0.50, ">", 10) == 4


@pytest.mark.parametrize(
    ("good", "total", "expected_total", "p_meet"),
    [
        (99, 100, 300, 0.67),
        (98, 100, 300, 0.30),
        (97, 100, 300, 0.07),
        (150, 150, 300, 0.99),
        (39, 40, 120, 0.19),
    ],
)
def test_probability_of_meeting_matches_the_design_table(
    good: int, total: int, expected_total: int, p_meet: float
) -> None:
    assert probability_of_meeting(good, total, expected_total, 0.985, ">=") == pytest.approx(
        p_meet, abs=0.006
    )


def test_beta_binomial_sums_to_one_and_both_tails_agree() -> None:
    assert beta_binomial_cdf(-1, 10, 2.5, 98.5) == 0.0
    assert beta_binomial_cdf(10, 10, 2.5, 98.5) == 1.0
    for k in range(0, 40, 7):  # the lower-tail and upper-tail summations meet
        assert 0.0 <= beta_binomial_cdf(k, 40, 3.0, 5.0) <= beta_binomial_cdf(k + 1, 40, 3.0, 5.0) <= 1.0
    assert beta_binomial_cdf(19, 40, 4.0, 4.0) == pytest.approx(
        1 - beta_binomial_cdf(20, 40, 4.0, 4.0), abs=1e-12
    )


def test_normal_approximation_is_close_to_the_exact_sum_for_large_samples() -> None:
    exact = beta_binomial_cdf(150, 4000, 40.5, 960.5)
    assert _normal_cdf(150, 4000, 40.5, 960.5) == pytest.approx(exact, abs=0.02)
    assert beta_binomial_cdf(6000, 30000, 50.5, 200.5) == pytest.approx(
        0.4, abs=0.1
    )  # both tails > EXACT_TERMS


def state(good: int, total: int, elapsed: float = 1.0, target: Target = ON_TIME) -> Verdict:
    return evaluate((good, total), target, is_count=False, elapsed=elapsed, policy=POLICY)


def test_one_late_file_out_of_three_is_at_risk_not_below_target() -> None:
    verdict = state(2, 3)  # even in a period that has ended: a target of 98.5 % has no budget for 3 files
    assert verdict.state == AT_RISK
    assert not verdict.figures.sufficient and not verdict.figures.certain_breach


def test_a_small_clean_sample_is_insufficient_data() -> None:
    assert state(3, 3).state == INSUFFICIENT
    assert state(0, 0).state == INSUFFICIENT


def test_a_breach_certain_at_period_end_is_below_target() -> None:
    verdict = state(60, 80)  # 20 late, 1 allowed in 80 files
    assert verdict.state == BELOW and verdict.figures.certain_breach
    assert verdict.figures.failures_allowed == 1 - 20


def test_confidently_below_mid_period_is_below_target_but_not_certain() -> None:
    verdict = state(900, 1000, elapsed=0.1)  # Wilson upper 0.917 < 0.985; 18,000 more files could absorb 100
    assert verdict.state == BELOW and not verdict.figures.certain_breach


def test_slightly_below_target_without_confidence_is_at_risk() -> None:
    verdict = state(984, 1000, elapsed=0.5)
    assert verdict.state == AT_RISK
    assert verdict.figures.wilson_high is not None and verdict.figures.wilson_high > 0.985


def test_a_low_chance_of_meeting_the_target_is_at_risk() -> None:
    verdict = state(99, 100, elapsed=1 / 3)  # 99 % now, P(meet) 0.67: ok
    assert verdict.state == OK and verdict.figures.p_meet == pytest.approx(0.67, abs=0.01)
    verdict = state(985, 1000, elapsed=0.1)  # meets the target now, but 10 % into the month: P(meet) 0.49
    assert verdict.figures.p_meet is not None and verdict.figures.p_meet < 0.5
    assert verdict.state == AT_RISK


def test_zero_tolerance_kpis_breach_at_the_first_offence() -> None:
    apology = Target(">=", 1.0)
    assert evaluate((1, 2), apology, is_count=False, elapsed=0.5, policy=POLICY).state == BELOW
    assert evaluate((2, 2), apology, is_count=False, elapsed=0.5, policy=POLICY).state == OK
    overdue = Target("<=", 0.0)
    assert evaluate((1, 0), overdue, is_count=True, elapsed=0.5, policy=POLICY).state == BELOW
    assert evaluate((0, 0), overdue, is_count=True, elapsed=0.5, policy=POLICY).state == OK


def run(sequence: list[tuple[int, int]], *, elapsed: float = 0.1, start: Memory | None = None) -> list[str]:
    """Feed changed counts one second apart; return the shown states."""
    memory, shown = start, []
    for second, (good, total) in enumerate(sequence):
        memory = advance(memory, state(good, total, elapsed), now=float(second), new_data=True, policy=POLICY)
        shown.append(memory.state)
    return shown


def test_hysteresis_enters_after_two_consecutive_below_evaluations() -> None:
    assert run([(990, 1000), (900, 1000), (899, 1000)]) == [OK, AT_RISK, BELOW]


def test_hysteresis_enters_at_once_on_a_certain_breach() -> None:
    assert run([(990, 1000), (900, 1000)], elapsed=1.0) == [OK, BELOW]


def test_oscillation_around_the_target_never_enters() -> None:
    shown = run([(900, 1000), (995, 1000)] * 10)
    assert BELOW not in shown


def test_oscillation_while_firing_never_resolves_and_two_clear_evaluations_do() -> None:
    firing = Memory(BELOW)
    assert run([(995, 1000), (900, 1000)] * 5, start=firing)[-1] == BELOW
    assert run([(995, 1000), (996, 1000)], start=firing) == [BELOW, OK]


def test_a_recovery_just_above_the_target_is_not_clear_enough() -> None:
    assert run([(986, 1000), (987, 1000), (988, 1000)], start=Memory(BELOW)) == [BELOW, BELOW, BELOW]


def test_a_timer_evaluation_keeps_the_streak_and_confirms_after_the_delay() -> None:
    below = state(900, 1000, 0.1)
    pending = advance(None, below, now=0.0, new_data=True, policy=POLICY)
    assert pending == Memory(AT_RISK, 1, 0.0)
    assert advance(pending, below, now=10.0, new_data=False, policy=POLICY) == pending
    assert advance(pending, below, now=600.0, new_data=False, policy=POLICY).state == BELOW


def test_periods_parse_and_elapse_in_local_time() -> None:
    march = parse_published_period("month:2021-03")
    assert (march.first, march.last) == (date(2021, 3, 1), date(2021, 3, 31))
    assert parse_published_period("year:2024").last == date(2024, 12, 31)
    with pytest.raises(ValueError, match="invalid period"):
        parse_published_period("day:2021-03-01")
    mid = datetime(2021, 3, 16, 17, 0, tzinfo=UTC)  # 17 March 00:00 local
    assert elapsed_fraction(march, mid) == pytest.approx(16 / 31)
    assert elapsed_fraction(march, datetime(2021, 2, 28, 17, 30, tzinfo=UTC)) == pytest.approx(1 / 31)
    assert elapsed_fraction(march, datetime(2021, 5, 1, tzinfo=UTC)) == 1.0


def test_lookback_keeps_recent_and_started_periods_only() -> None:
    now = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
    assert in_lookback(parse_published_period("month:2026-11"), now, 45)
    assert in_lookback(parse_published_period("month:2026-10"), now, 45)
    assert in_lookback(parse_published_period("year:2026"), now, 45)
    assert not in_lookback(parse_published_period("month:2026-09"), now, 45)
    assert not in_lookback(parse_published_period("month:2021-03"), now, 45)
    assert not in_lookback(parse_published_period("month:2026-12"), now, 45)


def test_working_days_follow_holidays_and_overrides() -> None:
    assert is_working_day(date(2026, 11, 26), {})  # Thursday
    assert not is_working_day(date(2026, 11, 28), {})  # Saturday
    assert not is_working_day(date(2026, 9, 2), {})  # National Day
    assert not is_working_day(date(2026, 2, 17), {})  # Tết
    assert is_working_day(date(2025, 4, 26), {date(2025, 4, 26): True})  # a swapped working Saturday
    assert not is_working_day(date(2026, 11, 26), {date(2026, 11, 26): False})


def test_office_hours_in_local_time() -> None:
    hours = parse_office_hours("07:30-11:30,13:30-17:00")
    assert hours == ((time(7, 30), time(11, 30)), (time(13, 30), time(17, 0)))
    assert is_office_time(datetime(2026, 11, 26, 1, 0, tzinfo=UTC), hours, {})  # 08:00 local
    assert not is_office_time(datetime(2026, 11, 26, 5, 0, tzinfo=UTC), hours, {})  # 12:00: lunch
    assert not is_office_time(datetime(2026, 11, 26, 10, 0, tzinfo=UTC), hours, {})  # 17:00
    assert not is_office_time(datetime(2026, 11, 28, 2, 0, tzinfo=UTC), hours, {})  # Saturday
    assert is_office_time(
        datetime(2026, 11, 28, 16, 59, tzinfo=UTC),
        parse_office_hours("00:00-24:00"),
        {date(2026, 11, 28): True},
    )
    with pytest.raises(ValueError, match="office hours"):
        parse_office_hours("8h-17h")


def test_silences_match_unit_kpi_and_time() -> None:
    silences = [Silence("u1", None, 0.0, 100.0), Silence(None, "on_time_rate", 50.0, 200.0)]
    assert silenced_until(silences, unit_id="u1", kpi="satisfaction_rate", now=10.0) == 100.0
    assert silenced_until(silences, unit_id="u2", kpi="satisfaction_rate", now=10.0) is None
    assert silenced_until(silences, unit_id="u2", kpi="on_time_rate", now=60.0) == 200.0
    assert silenced_until(silences, unit_id="u1", kpi="on_time_rate", now=60.0) == 200.0
    assert silenced_until(silences, unit_id="u2", kpi=None, now=60.0) is None  # a digest: not on_time_rate
    assert (
        silenced_until([Silence("u2", "apology_coverage", 0.0, 9.0)], unit_id="u2", kpi=None, now=1.0) == 9.0
    )


def test_signatures_are_hmac_sha256() -> None:
    key = "k" * 32
    expires = 1_800_000_000
    token = ack_token(key, 42, "a.c1", expires)
    digest = hmac.new(key.encode(), f"ack.42.YS5jMQ.{expires}".encode(), hashlib.sha256).hexdigest()
    assert token == f"{expires}.YS5jMQ.{digest}"  # base64url("a.c1") = YS5jMQ
    grant = read_ack_token(key, 42, token, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert (grant.alert_id, grant.recipient_unit_id) == (42, "a.c1")
    expected = hmac.new(b"secret", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert webhook_signature("secret", 1700000000, b"{}") == f"sha256={expected}"


@pytest.mark.parametrize(
    ("alert_id", "token", "now", "reason"),
    [
        (43, None, datetime(2026, 1, 1, tzinfo=UTC), "invalid"),  # another alert
        (42, None, datetime(2027, 2, 1, tzinfo=UTC), "expired"),  # after 2027-01-15
        (42, "CHANGE_RECIPIENT", datetime(2026, 1, 1, tzinfo=UTC), "invalid"),  # other recipient, same HMAC
        (42, "CHANGE_EXPIRY", datetime(2026, 1, 1, tzinfo=UTC), "invalid"),  # extended expiry
        (42, "1800000000.YS5jMQ.đã", datetime(2026, 1, 1, tzinfo=UTC), "malformed"),  # non-ASCII
        (42, "", datetime(2026, 1, 1, tzinfo=UTC), "malformed"),
        (42, "x" * 5000, datetime(2026, 1, 1, tzinfo=UTC), "malformed"),
        (42, "-1.YS5jMQ.00", datetime(2026, 1, 1, tzinfo=UTC), "malformed"),
        (42, "LEADING_ZERO", datetime(2026, 1, 1, tzinfo=UTC), "malformed"),  # same HMAC, other text
        (42, "1800000000.YS5jMQ", datetime(2026, 1, 1, tzinfo=UTC), "malformed"),
    ],
)
def test_a_wrong_expired_or_malformed_ack_token_is_refused(
    alert_id: int, token: str | None, now: datetime, reason: str
) -> None:
    key = "k" * 32
    good = ack_token(key, 42, "a.c1", 1_800_000_000)  # 2027-01-15
    expires, recipient, digest = good.split(".")
    token = {
        None: good,
        "CHANGE_RECIPIENT": f"{expires}.YS5jMg.{digest}",
        "CHANGE_EXPIRY": f"1900000000.{recipient}.{digest}",
        "LEADING_ZERO": f"0{good}",
    }.get(token, token)
    with pytest.raises(InvalidLink, match=reason):
        read_ack_token(key, alert_id, token, now=now)


def test_a_webhook_signature_is_checked_with_its_timestamp_tolerance() -> None:
    body = b'{"kind":"firing"}'
    signature = webhook_signature("secret", 1_700_000_000, body)
    assert webhook_signature_valid("secret", "1700000000", signature, body, now=1_700_000_299)
    assert not webhook_signature_valid("secret", "1700000000", signature, body, now=1_700_000_301)  # replay
    assert not webhook_signature_valid("secret", "1700000000", signature, body + b" ", now=1_700_000_000)
    assert not webhook_signature_valid("secret", "1700000001", signature, body, now=1_700_000_000)
    assert not webhook_signature_valid("secret", "١٧", signature, body, now=1_700_000_000)  # non-ASCII digits


HOSTILE = Unit(
    "x.1", 'Xã <b>"A"</b>\r\nBcc: evil@example.com', "commune", "x", "Ông <script>", "head@x.example", None
)
LINKS = Links("https://dvc.example/", "http://grafana:3000/", "k" * 32, True, 14400.0)


def test_messages_state_the_figures_in_vietnamese() -> None:
    figures = state(98, 100, elapsed=1 / 3).figures.as_json()
    unit = Unit("c1", "Xã Kỳ Anh", "commune", "d1", "Bà Lan", "c1@x.example", None)
    ref = AlertRef(7, unit, "on_time_rate", "month:2025-11", BELOW, figures)
    message = alert_message(
        "firing", ref, recipient=unit, links=LINKS, now=datetime(2025, 11, 26, 7, 30, tzinfo=UTC)
    )
    assert (
        message.subject
        == "[Cảnh báo] Xã Kỳ Anh – Tỷ lệ hồ sơ giải quyết trước và đúng hạn tháng 11/2025: 98,0% (98/100)"
    )
    assert "98,0% (98/100), chỉ tiêu ≥ 98,5%" in message.text
    assert "(ước tính theo nhịp hiện tại, 300 trường hợp): 4; đã có: 2." in message.text
    assert "Còn được phép trễ 2 hồ sơ trong tháng." in message.text
    assert "khả năng đạt chỉ tiêu: 29%" in message.text  # 0.295 (design table: 0.30)
    assert "http://grafana:3000/d/dvc-unit?var-unit=c1" in message.text
    expires = int(datetime(2025, 11, 26, 7, 30, tzinfo=UTC).timestamp()) + 7 * 86400
    assert (
        f"https://dvc.example/api/v1/alerts/7/ack?token={ack_token('k' * 32, 7, 'c1', expires)}"
        in message.text
    )
    assert "Số liệu tính đến 14:30 ngày 26/11/2025" in message.text


def test_user_data_is_escaped_in_html_and_kept_out_of_headers() -> None:
    ref = AlertRef(1, HOSTILE, "on_time_rate", "month:2025-11", BELOW, state(60, 80).figures.as_json())
    message = alert_message(
        "firing", ref, recipient=HOSTILE, links=LINKS, now=datetime(2025, 12, 1, tzinfo=UTC)
    )
    assert "<b>" not in message.html and "<script>" not in message.html
    assert "&lt;b&gt;&quot;A&quot;&lt;/b&gt;" in message.html
    assert "\r" not in message.subject and "\n" not in message.subject
    assert header_safe("a\r\nb\x00c") == "a b c"
    rows = alert_rows("firing", ref, recipient=HOSTILE, links=LINKS, now=datetime(2025, 12, 1, tzinfo=UTC))
    assert [row["channel"] for row in rows] == ["email", "grafana"]
    assert "<b>" not in rows[1]["payload"]["text"]


def test_percent_shows_a_second_decimal_only_when_needed() -> None:
    assert percent(0.98) == "98,0%"
    assert percent(0.9843) == "98,43%"
    assert percent(None) == "—"


def test_the_digest_lists_offending_cases_with_their_apology_status() -> None:
    unit = Unit("c1", "Xã <Một>", "commune", "d1", "Bà Lan", "c1@x.example", None)
    since = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    cases = [
        DigestCase("HS-1", "1.004", since, apologized=False, still_open=True),
        DigestCase("HS-2", None, since, apologized=True, still_open=True),
        DigestCase("HS-3<x>", "2.001", since, apologized=False, still_open=False),
    ]
    message = digest_message(
        unit, overdue_only(cases), links=LINKS, now=datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    )
    assert message.subject == "[Tổng hợp hằng ngày] Xã <Một>: 2 hồ sơ quá hạn, 2 chưa có văn bản xin lỗi"
    assert "- HS-1 (thủ tục 1.004): quá hạn từ 17:00 ngày 20/11/2026; chưa có văn bản xin lỗi" in message.text
    assert "- HS-2: quá hạn từ 17:00 ngày 20/11/2026; đã có văn bản xin lỗi" in message.text
    assert "Hồ sơ đã quá hạn trong tháng, chưa có văn bản xin lỗi (1):" in message.text
    assert "HS-3&lt;x&gt;" in message.html and "Xã &lt;Một&gt;" in message.html
    many = [DigestCase(f"HS-{i}", None, since, False, True) for i in range(MAX_LISTED + 5)]
    assert "… và 5 hồ sơ khác" in digest_message(unit, overdue_only(many), links=LINKS, now=since).text


def overdue_only(cases: list[DigestCase]) -> DigestContent:
    """A digest content listing overdue cases only."""
    end = datetime(2026, 11, 27, tzinfo=UTC)
    return DigestContent(cases, [], [], end, end, 3, 90)
