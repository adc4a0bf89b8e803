"""Delivery faults against the real alerts service, PostgreSQL, Kafka, SMTP servers (aiosmtpd), Prometheus and
Alertmanager: a mail outage loses no notification and duplicates none; past the retry horizon a notification
is `failed` and the operators are mailed through Alertmanager."""

import asyncio
import email.utils
import os
import re
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib
import asyncpg
import pytest
from aiosmtpd.controller import Controller

from services.alerts.delivery import email_sender
from shared.config import AlertsSettings
from tests.conftest import REPO, MigratedDatabase, ServiceRunner, free_port, wait_until
from tests.integration.test_alerts import (
    AGENCY,
    C1,
    C2,
    DISTRICT,
    LOCAL,
    PROVINCE,
    SIGNING_KEY,
    WEBHOOK_SECRET,
    Harness,
    Mailbox,
    Receiver,
    head,
    html_of,
    previous_month,
    text_of,
    update,
)
from tests.integration.test_alerts import clean as clean  # noqa: PLC0414 (fixture re-export)
from tests.integration.test_alerts import receiver as receiver  # noqa: PLC0414 (fixture re-export)

pytestmark = pytest.mark.integration

MESSAGE_ID = re.compile(r"^<dvc\.(\d+)\.\d{14}@dvc-monitor\.example>$")
NASTY_CASE = "HS-0001\r\nBcc: attacker@evil.example\r\n<script>alert(1)</script>"
OPERATORS = "ops@dvc-monitor.example"


@dataclass
class SmtpSink:
    """A real SMTP server on a fixed port that can be taken down and brought back."""

    mailbox: Mailbox = field(default_factory=Mailbox)
    port: int = field(default_factory=free_port)
    controller: Controller | None = None

    def up(self) -> None:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def heads_smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.down()


@pytest.fixture
def harness(
    clean: None,  # noqa: ARG001 (fixture)
    service_runner: ServiceRunner,
    heads_smtp: SmtpSink,
    receiver: Receiver,
    database: MigratedDatabase,
    operator_token: str,
) -> Iterator[Harness]:
    running = Harness(service_runner, heads_smtp.mailbox, heads_smtp.port, receiver, database, operator_token)
    yield running
    if running.service is not None:
        running.service.stop()


async def metric(harness: Harness, name: str) -> float:
    async with harness.api() as client:
        text = (await client.get("/metrics")).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, name
    return float(found.group(1))


async def test_a_mail_outage_delays_every_notification_and_loses_or_duplicates_none(
    harness: Harness, heads_smtp: SmtpSink, admin_db: asyncpg.Connection
) -> None:
    period = previous_month()
    now = datetime.now(UTC)
    await admin_db.execute(
        """INSERT INTO cases (case_id, unit_id, received_at, procedure_code, deadline, clock_since, history)
           VALUES ($1, $2, $3::timestamptz - interval '10 days', '1.004', $3, $3::timestamptz - interval '10 days', '[]')""",
        NASTY_CASE,
        C1,
        now - timedelta(days=2),
    )
    await admin_db.execute(  # today is a working day, whatever the calendar says: the digest is due
        "INSERT INTO holiday_overrides (day, working, note) VALUES ($1, true, 'test')",
        datetime.now(LOCAL).date(),
    )
    # SMTP is down (nothing listens on its port) when the service starts and pages
    down_since = time.monotonic()
    await harness.start(
        DVC_ALERTS_RETRY_BASE_SECONDS="0.5",
        DVC_ALERTS_RETRY_MAX_DELAY_SECONDS="4",
        DVC_ALERTS_RETRY_HORIZON_SECONDS="600",
        DVC_ALERTS_ESCALATION_SECONDS="3",
        DVC_ALERTS_OFFICE_HOURS="00:00-24:00",
        DVC_ALERTS_GROUP_WAIT_SECONDS="2",  # both escalations to the district head go in one message
    )
    await harness.publish(*(update(unit, period, on_time_rate=(60, 80)) for unit in (C1, C2, AGENCY)))

    async def all_retrying() -> bool:
        rows = await admin_db.fetch("SELECT attempts, last_error FROM notifications WHERE channel = 'email'")
        return len(rows) == 4 and all(r["attempts"] >= 2 and r["last_error"] for r in rows)

    await wait_until(all_retrying, timeout=20)  # 3 pages and the digest, each failed at least twice
    await asyncio.sleep(max(0.0, 20 - (time.monotonic() - down_since)))
    assert harness.mailbox.messages == []
    assert await metric(harness, 'alerts_notifications_retrying{channel="email"}') == 4
    assert await metric(harness, 'alerts_notifications_oldest_retry_seconds{channel="email"}') >= 10
    attempts_while_down = await admin_db.fetchval(
        "SELECT sum(attempts) FROM notifications WHERE channel = 'email'"
    )

    heads_smtp.up()
    back = time.monotonic()
    pages = [*await harness.wait_mail(head(C1), 2, timeout=30)]  # the page and the digest
    pages += await harness.wait_mail(head(C2), 1, timeout=30)
    pages += await harness.wait_mail(head(AGENCY), 1, timeout=30)
    first_four = time.monotonic() - back
    # escalations follow the pages that went out late (nobody acknowledged): C1, C2 -> district (one
    # message for both: grouped per recipient), agency -> province
    [district] = await harness.wait_mail(head(DISTRICT), 1, timeout=30)
    assert str(district["Subject"]) == "[Tổng hợp cảnh báo] 2 thay đổi: 2 chuyển cấp"
    await harness.wait_mail(head(PROVINCE), 1, timeout=30)
    all_seven = time.monotonic() - back
    await asyncio.sleep(3)  # any duplicate would have arrived by now

    messages = harness.mailbox.messages
    ids = [str(m["Message-ID"]) for m in messages]
    print(  # noqa: T201 (the measured figures of the fault test)
        f"\nSMTP down {back - down_since:.1f} s; {attempts_while_down} attempts while down; after it came back: "
        f"4 delayed mails in {first_four:.1f} s, all {len(messages)} (with 3 escalations in 2) in {all_seven:.1f} s; "
        f"{len(set(ids))} distinct Message-IDs of {len(ids)}"
    )
    assert len(messages) == 6 and len(set(ids)) == 6
    assert all(MESSAGE_ID.match(i) for i in ids), ids
    for message in messages:
        date = email.utils.parsedate_to_datetime(str(message["Date"]))
        assert date.utcoffset() == timedelta(hours=7) and abs(datetime.now(UTC) - date) < timedelta(minutes=5)
    rows = await admin_db.fetch(
        "SELECT notification_id, kind, status, attempts, group_id FROM notifications WHERE channel = 'email'"
    )
    assert sorted(r["kind"] for r in rows) == [
        "digest",
        "escalation",
        "escalation",
        "escalation",
        "firing",
        "firing",
        "firing",
        "group",
    ]
    assert all(r["status"] == "sent" for r in rows)  # the two grouped escalations share their message's
    [group_id] = [r["notification_id"] for r in rows if r["kind"] == "group"]
    assert sum(r["group_id"] == group_id for r in rows) == 2
    rows = [r for r in rows if r["group_id"] is None]  # the messages themselves
    assert {int(MESSAGE_ID.match(i).group(1)) for i in ids} == {r["notification_id"] for r in rows}  # type: ignore[union-attr]
    assert {m["X-DVC-Notification"] for m in messages} == {str(r["notification_id"]) for r in rows}

    [digest] = harness.mailbox.to(head(C1), subject="[Tổng hợp hằng ngày]")
    text, body = text_of(digest), html_of(digest)
    assert "Bcc" not in digest
    [line] = [line for line in text.splitlines() if "HS-0001" in line]
    assert line.startswith("- HS-0001 Bcc: attacker@evil.example <script>") and "\r" not in text
    assert not any(line.startswith("Bcc:") for line in text.splitlines())
    assert "&lt;script&gt;" in body and "<script>" not in body
    assert await metric(harness, 'alerts_notifications_retrying{channel="email"}') == 0


def infra(data_dir: Path, command: str, component: str, **env: str) -> None:
    """Run scripts/infra.sh on a private data dir (never the shared infrastructure)."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "infra.sh"), command, component],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("DVC_")},
            "DVC_DATA_DIR": str(data_dir),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def operators_smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.up()
    yield sink
    sink.down()


async def test_past_the_horizon_a_notification_is_failed_and_alertmanager_mails_the_operators(
    harness: Harness, operators_smtp: SmtpSink, admin_db: asyncpg.Connection, tmp_path: Path
) -> None:
    period = previous_month()
    service = await harness.start(  # the heads' SMTP never comes up
        DVC_ALERTS_RETRY_BASE_SECONDS="0.5",
        DVC_ALERTS_RETRY_MAX_DELAY_SECONDS="1",
        DVC_ALERTS_RETRY_HORIZON_SECONDS="4",
    )
    data_dir = tmp_path / "infra"  # a private Prometheus and Alertmanager, with the real config and rules
    ports = {
        "DVC_PROMETHEUS_PORT": str(free_port()),
        "DVC_ALERTMANAGER_PORT": str(free_port()),
        "DVC_ALERTS_HTTP_PORT": str(service.port),
        "DVC_INGEST_HTTP_PORT": str(free_port()),
        "DVC_METRICS_HTTP_PORT": str(free_port()),
    }
    mail = {
        "DVC_OPERATOR_EMAILS": OPERATORS,
        "DVC_ALERTMANAGER_SMARTHOST": f"127.0.0.1:{operators_smtp.port}",
        "DVC_SMTP_FROM": "giamsat-dvc@dvc-monitor.example",
        "DVC_SMTP_TLS": "off",
        "DVC_ALERTMANAGER_GROUP_WAIT": "1s",
    }
    try:
        infra(data_dir, "up", "alertmanager", **ports, **mail)
        infra(data_dir, "up", "prometheus", **ports)
        await harness.publish(update(C1, period, on_time_rate=(60, 80)))

        async def failed() -> bool:
            status = await admin_db.fetchval("SELECT status FROM notifications WHERE channel = 'email'")
            return bool(status == "failed")

        await wait_until(failed, timeout=30)
        failed_seen = time.monotonic()
        row = await admin_db.fetchrow("SELECT * FROM notifications WHERE channel = 'email'")
        assert row["failed_at"] - row["first_attempt_at"] >= timedelta(seconds=4)
        assert row["attempts"] >= 4 and "Connect" in row["last_error"]
        async with harness.api() as client:
            listed = (await client.get("/api/v1/notifications", params={"status": "failed"})).json()
            assert (await client.get("/api/v1/notifications", params={"status": "nope"})).status_code == 400
        assert [(n["notification_id"], n["status"], n["kind"]) for n in listed] == [
            (row["notification_id"], "failed", "firing")
        ]

        async def gauge_set() -> bool:
            return await metric(harness, 'alerts_notifications_failed{channel="email"}') == 1

        await wait_until(gauge_set, timeout=10)

        async def operators_mailed() -> bool:
            return any("DvcNotificationsFailed" in str(m["Subject"]) for m in operators_smtp.mailbox.messages)

        await wait_until(operators_mailed, timeout=60, interval=0.5)
        waited = time.monotonic() - failed_seen
        [alert] = [
            m for m in operators_smtp.mailbox.messages if "DvcNotificationsFailed" in str(m["Subject"])
        ]
        print(  # noqa: T201 (the measured figure of the fault test)
            f"\nfailed after {(row['failed_at'] - row['first_attempt_at']).total_seconds():.1f} s "
            f"({row['attempts']} attempts); operator mail from Alertmanager {waited:.1f} s after: {alert['Subject']}"
        )
        assert alert["X-Envelope-To"] == OPERATORS and "CẢNH BÁO / FIRING" in str(alert["Subject"])
        assert "Thông báo không gửi được" in str(alert["Subject"])
        assert harness.mailbox.messages == []
    finally:
        for component in ("prometheus", "alertmanager"):
            infra(data_dir, "down", component, **ports, **mail)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """Make a certificate for 127.0.0.1 with openssl; return (certificate, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def notification_row(notification_id: int) -> dict[str, object]:
    """The columns of a notifications row that the e-mail sender reads."""
    return {
        "notification_id": notification_id,
        "created_at": datetime.now(UTC),
        "subject": "[Cảnh báo] thử / test",
        "recipient": head(C1),
        "body_text": "Kính gửi,\n",
        "body_html": None,
    }


def mail_settings(port: int, **extra: str) -> AlertsSettings:
    return AlertsSettings(
        DATABASE_URL="postgresql://u:not-a-placeholder@127.0.0.1/x",  # type: ignore[arg-type]
        ALERTS_SIGNING_KEY=SIGNING_KEY,  # type: ignore[arg-type]
        WEBHOOK_SECRET=WEBHOOK_SECRET,  # type: ignore[arg-type]
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=port,
        SMTP_FROM="giamsat-dvc@dvc-monitor.example",
        **extra,  # type: ignore[arg-type]
    )


async def test_starttls_is_required_unless_switched_off_explicitly(tmp_path: Path) -> None:
    plain, secure = SmtpSink(), SmtpSink()
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    plain.up()
    secure.controller = Controller(
        secure.mailbox, hostname="127.0.0.1", port=secure.port, tls_context=context, require_starttls=True
    )
    secure.controller.start()
    try:
        with pytest.raises(aiosmtplib.SMTPException, match="STARTTLS"):  # the default: no STARTTLS, no mail
            await email_sender(mail_settings(plain.port))(notification_row(1))  # type: ignore[arg-type]
        with pytest.raises(ssl.SSLCertVerificationError):  # the relay's certificate is checked
            await email_sender(mail_settings(secure.port))(notification_row(2))  # type: ignore[arg-type]
        with pytest.raises(aiosmtplib.SMTPResponseException, match="STARTTLS"):  # a relay that insists on TLS
            await email_sender(mail_settings(secure.port, SMTP_TLS="off"))(notification_row(3))  # type: ignore[arg-type]
        await email_sender(mail_settings(secure.port, SMTP_CA_FILE=str(cert)))(notification_row(4))  # type: ignore[arg-type]
        await email_sender(mail_settings(plain.port, SMTP_TLS="off"))(notification_row(5))  # type: ignore[arg-type]
    finally:
        plain.down()
        secure.down()
    assert [m["X-DVC-Notification"] for m in secure.mailbox.messages] == ["4"]
    assert [m["X-DVC-Notification"] for m in plain.mailbox.messages] == ["5"]
    with pytest.raises(ValueError, match="TLS"):
        mail_settings(plain.port, SMTP_TLS="off", SMTP_USERNAME="u", SMTP_PASSWORD="p")
    with pytest.raises(ValueError, match="SMTP_PASSWORD"):
        mail_settings(plain.port, SMTP_USERNAME="u")
