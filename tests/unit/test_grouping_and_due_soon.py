"""Pure parts of issue 11 items 4 and 6: coalescing a recipient's notices, the group message, working-day
arithmetic of the "sắp đến hạn" horizon and its digest lines."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.alerts.directory import Unit
from services.alerts.grouping import Held, coalesce
from services.alerts.messages import DueSoonCase, render
from services.alerts.notices import DigestContent, Links, digest_message, group_message
from shared.workdays import due_soon_limits, start_of, working_day_after

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
HEAD = Unit("c1", "Xã Một", "commune", "d1", "Bà Lan <Trưởng>", "lan@x.example", None)
LINKS = Links("https://a.test", None, "k" * 32, grafana_enabled=False, escalation_seconds=3600)


def test_a_friday_before_a_holiday_monday_counts_working_days_over_it() -> None:
    # 2025-08-29 is a Friday; 1 and 2 September 2025 (Monday, Tuesday) are public holidays
    friday = date(2025, 8, 29)
    assert working_day_after(friday, 1, {}) == date(2025, 9, 3)
    assert working_day_after(friday, 3, {}) == date(2025, 9, 5)
    # 2026-04-24 is a Friday; 27 April (Hùng Kings, moved), 30 April and 1 May 2026 are days off
    assert [working_day_after(date(2026, 4, 24), n, {}) for n in (1, 2, 3)] == [
        date(2026, 4, 28),
        date(2026, 4, 29),
        date(2026, 5, 4),
    ]
    # an override makes that Monday a working day again; a Saturday made a working day counts
    assert working_day_after(friday, 1, {date(2025, 9, 1): True}) == date(2025, 9, 1)
    assert working_day_after(date(2026, 12, 4), 1, {date(2026, 12, 5): True}) == date(2026, 12, 5)


def test_the_due_soon_horizon_ends_at_local_midnight_after_the_next_and_the_third_working_day() -> None:
    friday_morning = datetime(2025, 8, 29, 8, 0, tzinfo=LOCAL)
    next_end, last_end = due_soon_limits(friday_morning, 3, {})
    assert next_end == start_of(date(2025, 9, 4)) and last_end == start_of(date(2025, 9, 6))
    tuesday = datetime(2026, 12, 1, 8, 0, tzinfo=LOCAL)
    next_end, last_end = due_soon_limits(tuesday, 3, {})
    assert next_end == start_of(date(2026, 12, 3)) and last_end == start_of(date(2026, 12, 5))
    tomorrow_ten = datetime(2026, 12, 2, 10, 0, tzinfo=LOCAL)
    in_four = datetime(2026, 12, 7, 10, 0, tzinfo=LOCAL)  # Wed, Thu, Fri, Mon: the 4th working day
    assert tomorrow_ten < next_end and in_four >= last_end


def held(notification_id: int, kind: str, kpi: str = "on_time_rate", unit: str = "c1") -> Held:
    return Held(notification_id, (unit, kpi, "month:2026-11"), kind)


def test_a_resolution_then_a_new_firing_is_no_news_and_the_last_change_of_each_kpi_is_kept() -> None:
    flapped = coalesce([held(1, "resolved"), held(2, "firing")])
    assert (flapped.keep, flapped.cancel, flapped.told) == ([], [1], [2])
    settled = coalesce([held(1, "resolved"), held(2, "firing"), held(3, "resolved")])
    assert (settled.keep, settled.cancel, settled.told) == ([3], [1, 2], [])
    three_units = coalesce([held(5, "firing", unit="c3"), held(4, "firing", unit="c2"), held(6, "firing")])
    assert three_units.keep == [4, 5, 6] and three_units.cancel == three_units.told == []
    mixed = coalesce([held(1, "firing"), held(2, "escalation", kpi="satisfaction_rate")])
    assert mixed.keep == [1, 2]


def test_a_group_message_lists_every_change_with_its_own_links_and_escapes_them() -> None:
    members = []
    for number, (unit, kind) in enumerate([("Xã <A>", "firing"), ("Xã B", "firing"), ("Xã C", "resolved")]):
        part = render(
            f"[Cảnh báo] {unit}", "Kính gửi ai đó,", [f"{unit}: 95,0%", ("Xác nhận", f"https://a/{number}")]
        )
        members.append(
            {"kind": kind, "subject": part.subject, "body_text": part.text, "body_html": part.html}
        )
    message = group_message(HEAD, members)
    assert message.subject == "[Tổng hợp cảnh báo] 3 thay đổi: 2 cảnh báo mới, 1 đã khắc phục"
    lines = message.text.splitlines()
    assert lines[0] == "Kính gửi Bà Lan <Trưởng>," and "Kính gửi ai đó," not in message.text
    assert "1. [Cảnh báo] Xã <A>" in lines and "3. [Cảnh báo] Xã C" in lines
    assert [line for line in lines if line.startswith("Xác nhận")] == [
        f"Xác nhận: https://a/{n}" for n in range(3)
    ]
    assert (
        "&lt;A&gt;" in message.html and "<A>" not in message.html and "Bà Lan &lt;Trưởng&gt;" in message.html
    )


def test_the_digest_warns_of_cases_due_soon_with_the_units_usual_processing_time() -> None:
    now = datetime(2026, 12, 1, 8, 0, tzinfo=LOCAL)
    next_end, last_end = due_soon_limits(now, 3, {})
    due = [
        DueSoonCase("HS-TOMORROW", "1.004", datetime(2026, 12, 2, 10, 0, tzinfo=LOCAL), 4.5, 12),
        DueSoonCase("HS-FRIDAY", None, datetime(2026, 12, 4, 9, 0, tzinfo=LOCAL), None, 0),
    ]
    message = digest_message(
        HEAD, DigestContent([], [], due, next_end, last_end, 3, 90), links=LINKS, now=now
    )
    text = message.text
    assert message.subject.endswith("0 hồ sơ quá hạn, 0 chưa có văn bản xin lỗi, 2 sắp đến hạn")
    assert "Sắp đến hạn (2):" in text and "Đến hết ngày làm việc tiếp theo (1):" in text
    assert (
        "- HS-TOMORROW (thủ tục 1.004): hạn 10:00 ngày 02/12/2026; đơn vị thường giải quyết thủ tục này "
        "trong 4,5 ngày (trung vị 12 hồ sơ, 90 ngày qua)"
    ) in text
    assert "Trong 3 ngày làm việc tới (1):" in text
    assert "- HS-FRIDAY: hạn 09:00 ngày 04/12/2026; đơn vị chưa giải quyết hồ sơ nào" in text
    assert now.astimezone(UTC) + timedelta(days=3) < last_end
