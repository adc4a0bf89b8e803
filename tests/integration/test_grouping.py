"""Issue 11 items 4 and 6 end to end: the real alerts service (fed through real Kafka, PostgreSQL) sends
e-mail to a real SMTP server (aiosmtpd); one message per head per group window, no mail from flapping,
a restart in the middle of a group window, and the morning digest's "sắp đến hạn" section built from
the data at send time."""

import asyncio
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import asyncpg
import pytest

from shared.units import Head, Level, Registry, Unit
from shared.workdays import working_day_after
from tests.conftest import MigratedDatabase, ServiceRunner, wait_until
from tests.faults.test_delivery import SmtpSink
from tests.integration.test_alerts import (
    C1,
    C2,
    LOCAL,
    Harness,
    Receiver,
    head,
    previous_month,
    quiet,
    text_of,
    update,
)
from tests.integration.test_alerts import clean as clean  # noqa: PLC0414 (fixture re-export)
from tests.integration.test_alerts import receiver as receiver  # noqa: PLC0414 (fixture re-export)

pytestmark = pytest.mark.integration

HEAD = "truong.phong@dvc-monitor.example"
COMMUNES = ("g.c1", "g.c2", "g.c3")


def one_head_registry() -> Registry:
    """A district and three communes whose head is one person (one address)."""
    levels = [
        Level(id="district", name="Cấp huyện", name_en="District"),
        Level(id="commune", name="Cấp xã", name_en="Commune"),
    ]
    units = [
        Unit(id="g", name="Huyện G", level="district", parent=None, head=Head(name="Ông Ba", email=head("g")))
    ]
    units += [
        Unit(
            id=unit_id,
            name=f"Xã G{n}",
            level="commune",
            parent="g",
            head=Head(name="Bà Năm", email=HEAD),
        )
        for n, unit_id in enumerate(COMMUNES, 1)
    ]
    return Registry(registry="grouping-test", levels=levels, units=units)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    running = SmtpSink()
    running.up()
    yield running
    running.down()


@pytest.fixture
def harness(
    clean: None,  # noqa: ARG001 (fixture)
    service_runner: ServiceRunner,
    sink: SmtpSink,
    receiver: Receiver,
    database: MigratedDatabase,
    operator_token: str,
) -> Iterator[Harness]:
    running = Harness(service_runner, sink.mailbox, sink.port, receiver, database, operator_token)
    yield running
    if running.service is not None:
        running.service.stop()


async def test_a_head_of_three_units_falling_below_target_within_the_wait_gets_one_message_even_across_a_restart(
    harness: Harness, admin_db: asyncpg.Connection
) -> None:
    period = previous_month()
    service = await harness.start(
        units=one_head_registry(), DVC_ALERTS_GROUP_WAIT_SECONDS="8", DVC_ALERTS_GROUP_INTERVAL_SECONDS="60"
    )
    for unit_id in COMMUNES:  # one after the other, 1.5 s apart
        await harness.publish(update(unit_id, period, on_time_rate=(60, 80)))
        await asyncio.sleep(1.5)

    async def all_held() -> bool:
        return (
            await admin_db.fetchval("SELECT count(*) FROM notifications WHERE held AND recipient = $1", HEAD)
            == 3
        )

    await wait_until(all_held, timeout=20)
    assert harness.mailbox.messages == []
    assert service.stop() in (0, -signal.SIGTERM)  # a restart in the middle of the group window
    await harness.start(
        units=one_head_registry(), DVC_ALERTS_GROUP_WAIT_SECONDS="8", DVC_ALERTS_GROUP_INTERVAL_SECONDS="60"
    )

    [message] = await harness.wait_mail(HEAD, 1, timeout=30)
    await quiet(4)
    assert len(harness.mailbox.to(HEAD)) == 1 and len(harness.mailbox.messages) == 1
    assert str(message["Subject"]) == "[Tổng hợp cảnh báo] 3 thay đổi: 3 cảnh báo mới"
    text = text_of(message)
    assert [n for n in (1, 2, 3) if f"{n}. [Cảnh báo] Xã G{n} – Tỷ lệ hồ sơ" in text] == [1, 2, 3]
    assert text.count("/ack?token=") == 3  # each alert keeps its own acknowledgement link
    rows = await admin_db.fetch(
        "SELECT notification_id, kind, status, group_id FROM notifications WHERE channel = 'email' ORDER BY 1"
    )
    [group] = [r for r in rows if r["kind"] == "group"]
    assert str(message["X-DVC-Notification"]) == str(group["notification_id"])
    assert [(r["kind"], r["status"], r["group_id"]) for r in rows if r["kind"] != "group"] == [
        ("firing", "sent", group["notification_id"])
    ] * 3
    print(f"\nhead of 3 units: {len(harness.mailbox.to(HEAD))} message(s) for 3 breaches, across a restart")  # noqa: T201


async def test_flapping_inside_a_group_window_never_reaches_a_mail(
    harness: Harness, admin_db: asyncpg.Connection
) -> None:
    period = previous_month()
    await harness.start(DVC_ALERTS_GROUP_WAIT_SECONDS="3", DVC_ALERTS_GROUP_INTERVAL_SECONDS="12")
    # C1 fires and resolves before the first wait is over: nothing is sent
    await harness.publish(update(C1, period, on_time_rate=(950, 1000)))
    await harness.wait_state(C1, period, "on_time_rate", "below_target")
    await harness.publish(
        update(C1, period, on_time_rate=(995, 1000)), update(C1, period, on_time_rate=(996, 1000))
    )
    await harness.wait_state(C1, period, "on_time_rate", "ok", numerator=996)
    # C2 fires (one message), then resolves and fires again within the group interval: no more mail
    await harness.publish(update(C2, period, on_time_rate=(950, 1000)))
    [page] = await harness.wait_mail(head(C2), 1, timeout=20)
    assert str(page["Subject"]).startswith("[Cảnh báo] Xã Hai")
    await harness.publish(
        update(C2, period, on_time_rate=(995, 1000)), update(C2, period, on_time_rate=(996, 1000))
    )
    await harness.wait_state(C2, period, "on_time_rate", "ok", numerator=996)
    await harness.publish(update(C2, period, on_time_rate=(940, 1000)))
    await harness.wait_state(C2, period, "on_time_rate", "below_target", numerator=940)
    await quiet(16)  # past the group interval: the flap would have been sent by now
    assert harness.mailbox.to(head(C1)) == []
    assert len(harness.mailbox.to(head(C2))) == 1 and len(harness.mailbox.messages) == 1
    rows = await admin_db.fetch(
        "SELECT unit_id, kind, status FROM notifications WHERE channel = 'email' ORDER BY notification_id"
    )
    assert [tuple(r) for r in rows] == [
        (C1, "firing", "cancelled"),  # resolved before release
        (C2, "firing", "sent"),  # the one message
        (C2, "resolved", "cancelled"),  # resolution and new firing cancel out...
        (C2, "firing", "sent"),  # ...the head already knows: recorded as told, no mail
    ]


async def test_the_morning_digest_warns_of_cases_due_soon_from_the_data_at_send_time(
    harness: Harness, sink: SmtpSink, admin_db: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    today = datetime.now(LOCAL).date()
    tomorrow_ten = datetime.combine(today + timedelta(days=1), time(10), LOCAL)
    fourth_working_day = datetime.combine(working_day_after(today, 4, {}), time(10), LOCAL)
    cases = [  # (case, deadline, closed): open ones, and three of 1.004 resolved in 2, 4 and 9 days
        ("HS-DUE-TOMORROW", tomorrow_ten, None),
        ("HS-DUE-4-WORKING-DAYS", fourth_working_day, None),
        ("HS-DUE-TOMORROW-RESOLVED-LATER", tomorrow_ten + timedelta(hours=1), None),
        ("HS-OVERDUE", now - timedelta(days=1), None),
        ("HS-OVERDUE-RESOLVED-LATER", now - timedelta(days=2), None),
        ("HS-DONE-2", now - timedelta(days=20), now - timedelta(days=28)),
        ("HS-DONE-4", now - timedelta(days=20), now - timedelta(days=26)),
        ("HS-DONE-9", now - timedelta(days=20), now - timedelta(days=21)),
    ]
    await admin_db.executemany(
        """INSERT INTO cases (case_id, unit_id, received_at, procedure_code, deadline, clock_since, closed_at,
                              close_type, history)
           VALUES ($1, $2, now() - interval '30 days', '1.004', $3, now() - interval '30 days', $4,
                   CASE WHEN $4::timestamptz IS NULL THEN NULL ELSE 'resolved' END, '[]')""",
        [(case, C1, deadline, closed) for case, deadline, closed in cases],
    )
    # resolved ones: received 2, 4 and 9 days before they were closed
    for case, days in (("HS-DONE-2", 2), ("HS-DONE-4", 4), ("HS-DONE-9", 9)):
        await admin_db.execute(
            "UPDATE cases SET received_at = closed_at - make_interval(days => $2) WHERE case_id = $1",
            case,
            days,
        )
    await (
        admin_db.execute(  # a working day whatever the calendar says, office hours all day: "morning" is now
            "INSERT INTO holiday_overrides (day, working, note) VALUES ($1, true, 'test')", today
        )
    )
    sink.down()  # the digest is queued, but cannot be sent yet
    await harness.start(DVC_ALERTS_OFFICE_HOURS="00:00-24:00", DVC_ALERTS_RETRY_MAX_DELAY_SECONDS="1")

    async def queued_and_tried() -> bool:
        row = await admin_db.fetchrow(
            "SELECT attempts, body_text FROM notifications WHERE kind = 'digest' AND channel = 'email'"
        )
        return row is not None and row["attempts"] >= 1

    await wait_until(queued_and_tried, timeout=20)
    queued = await admin_db.fetchval("SELECT body_text FROM notifications WHERE kind = 'digest'")
    assert "HS-DUE-TOMORROW-RESOLVED-LATER" in queued and "HS-OVERDUE-RESOLVED-LATER" in queued
    await admin_db.execute(  # resolved after the evaluation, before the digest goes out
        "UPDATE cases SET closed_at = now(), close_type = 'resolved' WHERE case_id LIKE '%RESOLVED-LATER'"
    )
    sink.up()
    [digest] = await harness.wait_mail(head(C1), 1, timeout=30)
    text = text_of(digest)
    lines = text.splitlines()
    assert str(digest["Subject"]).endswith(": 1 hồ sơ quá hạn, 1 chưa có văn bản xin lỗi, 1 sắp đến hạn")
    assert "Sắp đến hạn (1):" in lines and "Đến hết ngày làm việc tiếp theo (1):" in lines
    [line] = [line for line in lines if "HS-DUE-TOMORROW" in line]
    assert line == (
        f"- HS-DUE-TOMORROW (thủ tục 1.004): hạn 10:00 ngày {tomorrow_ten:%d/%m/%Y}; đơn vị thường giải quyết "
        "thủ tục này trong 9,0 ngày (trung vị 5 hồ sơ, 90 ngày qua)"
    )  # 2, 4, 9 days, and the two resolved just now after 30 days: the data at send time
    assert "HS-DUE-4-WORKING-DAYS" not in text
    assert "RESOLVED-LATER" not in text and "- HS-OVERDUE (thủ tục 1.004): quá hạn từ" in text
    await quiet(3)
    assert len(harness.mailbox.messages) == 1


async def test_a_head_of_several_units_gets_one_digest_a_day_for_all_of_them(
    harness: Harness, admin_db: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    await admin_db.executemany(
        """INSERT INTO cases (case_id, unit_id, received_at, procedure_code, deadline, clock_since, history)
           VALUES ($1, $2, $3::timestamptz - interval '10 days', '2.001', $3, $3::timestamptz - interval '10 days', '[]')""",
        [
            ("HS-G1-LATE", COMMUNES[0], now - timedelta(days=1)),
            ("HS-G2-DUE", COMMUNES[1], now + timedelta(hours=3)),
        ],
    )
    await admin_db.execute(
        "INSERT INTO holiday_overrides (day, working, note) VALUES ($1, true, 'test')",
        datetime.now(LOCAL).date(),
    )
    await harness.start(units=one_head_registry(), DVC_ALERTS_OFFICE_HOURS="00:00-24:00")
    [digest] = await harness.wait_mail(HEAD, 1, timeout=20)
    await quiet(3)
    assert len(harness.mailbox.messages) == 1
    assert str(digest["Subject"]) == "[Tổng hợp hằng ngày] Bà Năm: 2 đơn vị, 1 hồ sơ quá hạn, 1 sắp đến hạn"
    text = text_of(digest)
    assert (
        "1. [Tổng hợp hằng ngày] Xã G1: 1 hồ sơ quá hạn" in text
        and "- HS-G1-LATE (thủ tục 2.001): quá hạn" in text
    )
    assert (
        "2. [Tổng hợp hằng ngày] Xã G2: 0 hồ sơ quá hạn" in text
        and "- HS-G2-DUE (thủ tục 2.001): hạn" in text
    )
