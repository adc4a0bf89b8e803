"""Alerts end to end: the real service process fed through real Kafka, with PostgreSQL, a real SMTP server
(aiosmtpd), a webhook receiver and a fake Grafana on loopback; every test counts what arrived."""

import asyncio
import email
import email.policy
import hashlib
import hmac
import itertools
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller

from shared import topics
from shared.events import AlertStateChanged, UnitKpisComputed
from shared.kpis import KPI_BY_ID
from shared.units import Head, Level, Registry, Unit
from tests.conftest import (
    MigratedDatabase,
    ServiceProcess,
    ServiceRunner,
    bearer,
    free_port,
    load_registry,
    produce,
    read_topic,
    wait_until,
)

pytestmark = pytest.mark.integration

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
SIGNING_KEY = "test-signing-key-0123456789abcdef"
WEBHOOK_SECRET = "test-webhook-secret-0123456789abcdef"
GRAFANA_TOKEN = "glsa_test_token"
PUBLIC_URL = "https://giamsat.dvc.test"
PROVINCE, DISTRICT, AGENCY, C1, C2 = "p", "p.district", "p.agency", "a.c1", "a.c2"
C1_NAME = 'Xã "Kỳ Anh" <1> & Co'
COMPUTED = itertools.count(int(time.time() * 1000))


def head(unit_id: str) -> str:
    return f"{unit_id}@dvc-monitor.example"


# ---------------------------------------------------------------------------------------------- SMTP


@dataclass
class Mailbox:
    """Messages received by the in-process SMTP server."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str, *, subject: str = "") -> list[EmailMessage]:
        return [m for m in self.messages if m["X-Envelope-To"] == address and subject in str(m["Subject"])]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


# ------------------------------------------------------------------------- webhooks and fake Grafana


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver(ThreadingHTTPServer):
    """Webhook endpoints (/hook-ok answers 200, /hook-down 503) and Grafana's POST /api/annotations."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.requests: list[Received] = []
        self.annotation_errors: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
        if self.path == "/api/annotations":
            problem = annotation_problem(self.headers.get("Authorization"), body)
            if problem:
                self.server.annotation_errors.append(problem)
            self.answer(400 if problem else 200, {"message": problem or "Annotation added", "id": 1})
        else:
            self.answer(200 if self.path == "/hook-ok" else 503, {})

    def answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server API)
        pass


def annotation_problem(authorization: str | None, body: bytes) -> str | None:
    """Check the request shape of Grafana's POST /api/annotations (HTTP API docs)."""
    if authorization != f"Bearer {GRAFANA_TOKEN}":
        return "missing service-account token"
    payload = json.loads(body)
    if not isinstance(payload.get("time"), int) or payload["time"] < 1_600_000_000_000:
        return "time must be epoch milliseconds"
    if not isinstance(payload.get("text"), str) or not payload["text"]:
        return "text required"
    tags = payload.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags) or "dvc-monitor" not in tags:
        return "tags must be strings"
    return None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# ----------------------------------------------------------------------------- registry and service


def registry(webhooks: dict[str, str]) -> Registry:
    levels = [
        Level(id="province", name="Cấp tỉnh", name_en="Province"),
        Level(id="district", name="Cấp huyện", name_en="District"),
        Level(id="commune", name="Cấp xã", name_en="Commune"),
    ]
    tree = [
        (PROVINCE, "Tỉnh", "province", None),
        (AGENCY, "Sở Nội vụ", "province", PROVINCE),
        (DISTRICT, "Huyện A", "district", PROVINCE),
        (C1, C1_NAME, "commune", DISTRICT),
        (C2, "Xã Hai", "commune", DISTRICT),
    ]
    units = [
        Unit(
            id=unit_id,
            name=name,
            level=level,
            parent=parent,
            head=Head(name=f"Thủ trưởng {unit_id}", email=head(unit_id), webhook_url=webhooks.get(unit_id)),
        )
        for unit_id, name, level, parent in tree
    ]
    return Registry(registry="alerts-test", levels=levels, units=units)


@pytest.fixture
async def clean(database: MigratedDatabase, admin_db: asyncpg.Connection) -> None:
    await admin_db.execute(
        "TRUNCATE alert_states, alert_events, acknowledgements, notifications, alerts, silences, "
        "holiday_overrides, cases"
    )
    await load_registry(database, registry({}))


@dataclass
class Harness:
    runner: ServiceRunner
    mailbox: Mailbox
    smtp_port: int
    receiver: Receiver
    database: MigratedDatabase
    token: str  # an operator's API token
    service: ServiceProcess | None = None

    async def start(
        self, *, webhooks: dict[str, str] | None = None, units: Registry | None = None, **extra: str
    ) -> ServiceProcess:
        await load_registry(
            self.database, units or registry({k: self.receiver.url + v for k, v in (webhooks or {}).items()})
        )
        settings = {
            "DVC_SMTP_HOST": "127.0.0.1",
            "DVC_SMTP_PORT": str(self.smtp_port),
            "DVC_SMTP_FROM": "giamsat-dvc@dvc-monitor.example",
            "DVC_SMTP_TLS": "off",  # aiosmtpd offers no STARTTLS (required by default)
            "DVC_ALERTS_SIGNING_KEY": SIGNING_KEY,
            "DVC_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "DVC_GRAFANA_URL": self.receiver.url,
            "DVC_GRAFANA_TOKEN": GRAFANA_TOKEN,
            "DVC_PUBLIC_URL": PUBLIC_URL,
            "DVC_ALERTS_EVALUATION_SECONDS": "1",
            "DVC_ALERTS_RETRY_BASE_SECONDS": "0.1",
            "DVC_ALERTS_RETRY_HORIZON_SECONDS": "60",
            "DVC_ALERTS_SEND_POLL_SECONDS": "0.1",
            "DVC_ALERTS_GROUP_WAIT_SECONDS": "0.5",  # grouping per recipient, shortened (30 s / 5 min)
            "DVC_ALERTS_GROUP_INTERVAL_SECONDS": "2",
            "DVC_REGISTRY_REFRESH_SECONDS": "0.5",
            **extra,
        }
        self.service = await self.runner.start("alerts", **settings)
        return self.service

    async def publish(self, *updates: UnitKpisComputed) -> None:
        await produce(
            self.runner.kafka_bootstrap,
            self.runner.topic_prefix + topics.KPI_UPDATES,
            [(u.unit_id.encode(), u.model_dump_json().encode()) for u in updates],
        )

    def api(self) -> httpx.AsyncClient:
        assert self.service is not None
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.service.port}", headers=bearer(self.token))

    async def states(self, **params: str) -> list[dict[str, Any]]:
        async with self.api() as client:
            response = await client.get("/api/v1/alerts", params=params)
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result

    async def wait_state(
        self, unit_id: str, period: str, kpi: str, state: str, *, numerator: int | None = None
    ) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def wanted(row: dict[str, Any]) -> bool:
            return (row["kpi"], row["state"]) == (kpi, state) and numerator in (None, row["numerator"])

        async def reached() -> bool:
            rows = await self.states(unit_id=unit_id, period=period)
            found.update(next((r for r in rows if wanted(r)), {}))
            return bool(found)

        await wait_until(reached, timeout=30)
        return found

    async def wait_mail(
        self, address: str, count: int, *, subject: str = "", timeout: float = 30
    ) -> list[EmailMessage]:
        async def arrived() -> bool:
            return len(self.mailbox.to(address, subject=subject)) >= count

        await wait_until(arrived, timeout=timeout, interval=0.1)
        return self.mailbox.to(address, subject=subject)


@pytest.fixture
def harness(
    clean: None,
    service_runner: ServiceRunner,
    smtp: tuple[Mailbox, int],
    receiver: Receiver,
    database: MigratedDatabase,
    operator_token: str,
) -> Iterator[Harness]:
    running = Harness(service_runner, smtp[0], smtp[1], receiver, database, operator_token)
    yield running
    if running.service is not None:  # leave the consumer group cleanly: the next test joins at once
        assert running.service.stop() in (0, -signal.SIGTERM), running.service.log_tail()
        assert "Finished server process" in running.service.log_tail()


def update(unit_id: str, period: str, **counts: tuple[int, int]) -> UnitKpisComputed:
    """A metrics update: the given counts, 0/0 for every other KPI."""
    full = dict.fromkeys(KPI_BY_ID, (0, 0)) | counts
    return UnitKpisComputed(unit_id=unit_id, period=period, counts=full, computed_at=next(COMPUTED) / 1000)


def previous_month() -> str:
    """The month before the local current one: ended (its figures are final), within the lookback."""
    first = datetime.now(LOCAL).date().replace(day=1)
    return f"month:{first - timedelta(days=1):%Y-%m}"


async def quiet(seconds: float = 2.5) -> None:
    """Let several timer ticks and sender polls pass, so that any extra notice would have arrived."""
    await asyncio.sleep(seconds)


# ------------------------------------------------------------------------------------------- tests


async def test_unit_falling_below_target_pages_its_head_once_and_recovery_sends_one_resolution(
    harness: Harness,
) -> None:
    period = previous_month()
    await harness.start()
    await harness.publish(update(C1, period, on_time_rate=(990, 1000)))
    await harness.wait_state(C1, period, "on_time_rate", "ok")
    falling = update(C1, period, on_time_rate=(950, 1000))
    await harness.publish(falling)
    [page] = await harness.wait_mail(head(C1), 1)

    subject, text, body = str(page["Subject"]), text_of(page), html_of(page)
    assert (
        subject
        == f"[Cảnh báo] {C1_NAME} – Tỷ lệ hồ sơ giải quyết trước và đúng hạn tháng {period[-2:]}/{period[6:10]}: 95,0% (950/1000)"
    )
    assert page["From"] == "giamsat-dvc@dvc-monitor.example"
    assert "95,0% (950/1000), chỉ tiêu ≥ 98,5%." in text
    assert "1000 trường hợp): 15; đã có: 50." in text  # 15 late files allowed in 1000, 50 late
    assert "Đã vượt mức cho phép: trễ 35 hồ sơ quá mức trong tháng." in text
    assert "Chắc chắn không đạt chỉ tiêu tháng này." in text
    assert f"{harness.receiver.url}/d/dvc-unit?var-unit={C1}" in text
    assert f"{PUBLIC_URL}/api/v1/alerts/" in text and "/ack?token=" in text
    assert "&lt;1&gt; &amp; Co" in body and "<1>" not in body  # the unit name, escaped

    # the same counts redelivered, and a further fall, page nobody again
    await harness.publish(falling, update(C1, period, on_time_rate=(940, 1000)))
    below = await harness.wait_state(C1, period, "on_time_rate", "below_target", numerator=940)
    assert below["alert"]["alert_id"] > 0 and below["figures"]["failures_allowed"] == 15 - 60
    await quiet()
    assert len(harness.mailbox.messages) == 1

    await harness.publish(
        update(C1, period, on_time_rate=(995, 1000)), update(C1, period, on_time_rate=(996, 1000))
    )
    [_, resolution] = await harness.wait_mail(head(C1), 2)
    assert str(resolution["Subject"]).startswith(f"[Đã khắc phục] {C1_NAME}")
    assert "99,6% (996/1000), chỉ tiêu ≥ 98,5%" in text_of(resolution)
    await quiet()
    assert len(harness.mailbox.messages) == 2  # one page, one resolution, to the unit head only

    alert_id = below["alert"]["alert_id"]
    async with harness.api() as client:
        history = (await client.get(f"/api/v1/alerts/{alert_id}")).json()
        metrics = (await client.get("/metrics")).text
        assert (await client.get("/api/v1/alerts", params={"state": "bogus"})).status_code == 400
    assert history["resolution"] == "recovered"
    sent = sorted((n["kind"], n["channel"], n["status"]) for n in history["notifications"])
    assert sent == [
        ("firing", "email", "sent"),
        ("firing", "grafana", "sent"),
        ("resolved", "email", "sent"),
        ("resolved", "grafana", "sent"),
    ]
    annotations = harness.receiver.on("/api/annotations")
    assert len(annotations) == 2 and harness.receiver.annotation_errors == []
    assert f"unit:{C1}" in json.loads(annotations[0].body)["tags"]
    assert 'alerts_notifications_total{channel="email",result="sent"} 2.0' in metrics
    assert 'alerts_states{state="ok"}' in metrics and "alerts_open{" in metrics

    records = await read_topic(
        harness.runner.kafka_bootstrap, harness.runner.topic_prefix + topics.ALERTS, expect=11, timeout=15
    )
    changes = [AlertStateChanged.model_validate_json(r.value) for r in records]
    # 9 KPIs with a target judged on a month (units_inspected_rate: years only) evaluated once, then
    # on_time_rate down and back up
    assert len(changes) == 11
    on_time = [(c.previous_state, c.state, c.alert_id) for c in changes if c.kpi == "on_time_rate"]
    assert on_time == [(None, "ok", None), ("ok", "below_target", alert_id), ("below_target", "ok", alert_id)]
    assert {r.key for r in records} == {C1.encode()}


async def test_input_oscillating_across_the_target_causes_no_notification_storm(harness: Harness) -> None:
    period = previous_month()
    await harness.start()
    await harness.publish(update(C1, period, on_time_rate=(995, 1000)))
    await harness.wait_state(C1, period, "on_time_rate", "ok")
    swings = [  # below (975..984: a certain breach) and clearly back (995..997), alternately
        update(C1, period, on_time_rate=(975 + i // 2, 1000) if i % 2 == 0 else (995 + i % 3, 1000))
        for i in range(20)
    ]
    for swing in swings:  # one message at a time, as metrics would publish them
        await harness.publish(swing)
    await harness.wait_mail(head(C1), 1)
    await quiet()
    assert len(harness.mailbox.to(head(C1), subject="[Cảnh báo]")) == 1  # entered once, on a certain breach
    assert harness.mailbox.to(head(C1), subject="[Đã khắc phục]") == []  # never one clear recovery in a row
    assert len(harness.mailbox.messages) == 1


async def test_a_running_month_hovering_at_the_target_pages_nobody(harness: Harness) -> None:
    now = datetime.now(LOCAL)
    month_end = (now.replace(day=28) + timedelta(days=4)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    if month_end - now < timedelta(days=1):
        pytest.skip("the last day of a month: its figures are about final, hovering below target is a breach")
    period = f"month:{now:%Y-%m}"
    await harness.start()
    for i in range(20):  # 98.51 % / 98.49 % of 10,000 files: never a confident or certain breach
        await harness.publish(update(C2, period, on_time_rate=(9851 - 2 * (i % 2), 10000)))
    # and twice in a row below: hysteresis alone would page now, the Wilson gate does not (upper 98.7 %)
    await harness.publish(update(C2, period, on_time_rate=(9848, 10000)))
    await harness.wait_state(C2, period, "on_time_rate", "at_risk", numerator=9848)
    await quiet()
    assert harness.mailbox.messages == []


async def test_a_commune_with_one_late_file_of_three_is_at_risk_and_a_certain_breach_pages(
    harness: Harness,
) -> None:
    period = previous_month()
    await harness.start()
    await harness.publish(update(C2, period, on_time_rate=(2, 3)))
    state = await harness.wait_state(C2, period, "on_time_rate", "at_risk")
    assert state["figures"]["sufficient"] is False and state["alert"] is None
    await quiet()
    assert harness.mailbox.messages == []  # nobody paged for one late file out of three

    await harness.publish(update(C2, period, on_time_rate=(60, 80)))  # 20 late where 1 was allowed
    [page] = await harness.wait_mail(head(C2), 1)
    assert "75,0% (60/80)" in str(page["Subject"])
    await quiet()
    assert len(harness.mailbox.messages) == 1


async def test_an_unacknowledged_alert_escalates_to_the_parent_head_and_an_acknowledged_one_does_not(
    harness: Harness,
) -> None:
    period = previous_month()
    service = await harness.start(DVC_ALERTS_ESCALATION_SECONDS="2")
    await harness.publish(*(update(unit, period, on_time_rate=(60, 80)) for unit in (C1, C2, AGENCY)))
    [page_c1] = await harness.wait_mail(head(C1), 1)
    await harness.wait_mail(head(C2), 1)
    [page_agency] = await harness.wait_mail(head(AGENCY), 1)
    opened = time.monotonic()

    link = next(line for line in text_of(page_c1).splitlines() if "/ack?token=" in line).split(": ", 1)[1]
    local_link = link.replace(PUBLIC_URL, f"http://127.0.0.1:{service.port}")
    async with harness.api() as client:
        assert (await client.get(local_link.replace("token=", "token=0"))).status_code == 403
        page = await client.get(local_link)  # C1: the signed link in the e-mail shows a confirmation page
        assert page.status_code == 200 and "Xác nhận cảnh báo" in page.text
        token = local_link.split("token=", 1)[1]
        acked = await client.post(local_link.split("?")[0] + "/confirm", data={"token": token})
        assert acked.status_code == 200 and "Đã xác nhận cảnh báo" in acked.text
        [c2] = [s for s in await harness.states(unit_id=C2) if s["kpi"] == "on_time_rate"]
        response = await client.post(
            f"/api/v1/alerts/{c2['alert']['alert_id']}/ack", json={"by": "Thủ trưởng a.c2"}
        )
        assert response.status_code == 200 and response.json()["acknowledgements"][0]["via"] == "api"

    [escalation] = await harness.wait_mail(head(PROVINCE), 1, timeout=15)
    assert time.monotonic() - opened >= 1.0  # not before the 2 s delay (the page itself took < 1 s)
    assert str(escalation["Subject"]).startswith("[Chuyển cấp] Sở Nội vụ")
    assert "chưa được thủ trưởng đơn vị xác nhận sau 2 giây" in text_of(escalation)
    assert "/ack?token=" in text_of(escalation) and "/ack?token=" in text_of(page_agency)
    await quiet(3)
    assert harness.mailbox.to(head(DISTRICT)) == []  # C1 and C2 were acknowledged: their parent is not told
    assert len(harness.mailbox.to(head(PROVINCE))) == 1
    assert len(harness.mailbox.messages) == 4


async def test_a_down_webhook_is_retried_with_backoff_and_recorded_failed_while_the_email_is_delivered(
    harness: Harness, admin_db: asyncpg.Connection
) -> None:
    period = previous_month()
    await harness.start(
        webhooks={C1: "/hook-down", C2: "/hook-ok"},
        DVC_ALERTS_RETRY_BASE_SECONDS="0.4",
        DVC_ALERTS_RETRY_HORIZON_SECONDS="2",
    )
    await harness.publish(
        update(C1, period, on_time_rate=(60, 80)), update(C2, period, satisfaction_rate=(10, 40))
    )
    await harness.wait_mail(head(C1), 1)
    await harness.wait_mail(head(C2), 1)

    async def gave_up() -> bool:
        status = await admin_db.fetchval(
            "SELECT status FROM notifications WHERE channel = 'webhook' AND unit_id = $1", C1
        )
        return bool(status == "failed")

    await wait_until(gave_up, timeout=20)
    await quiet(1)
    down = harness.receiver.on("/hook-down")
    # retried until the 2 s horizon after the first attempt: at 0.4 s * 2**(n-1), jittered down to half
    # of it at most, the last retry at the horizon itself
    assert 3 <= len(down) <= 6
    gaps = [b.at - a.at for a, b in itertools.pairwise(down)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4
    assert 1.9 <= down[-1].at - down[0].at <= 3.0
    row = await admin_db.fetchrow(
        "SELECT * FROM notifications WHERE channel = 'webhook' AND unit_id = $1", C1
    )
    assert row["attempts"] == len(down) and "503" in row["last_error"]
    assert row["failed_at"] - row["first_attempt_at"] >= timedelta(seconds=2)
    assert {r.headers["X-DVC-Delivery"] for r in down} == {str(row["notification_id"])}
    assert len(harness.mailbox.to(head(C1))) == 1  # the e-mail went out regardless

    [ok] = harness.receiver.on("/hook-ok")
    timestamp = ok.headers["X-DVC-Timestamp"]
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + ok.body, hashlib.sha256
    ).hexdigest()
    assert ok.headers["X-DVC-Signature"] == f"sha256={expected}"
    assert ok.headers["Content-Type"] == "application/json" and ok.headers["X-DVC-Event"] == "firing"
    payload = orjson.loads(ok.body)
    assert (payload["unit"]["id"], payload["kpi"]["id"], payload["period"]) == (
        C2,
        "satisfaction_rate",
        period,
    )
    assert payload["figures"]["numerator"] == 10 and payload["links"]["ack"].startswith(PUBLIC_URL)


async def test_overdue_cases_are_listed_in_the_unit_head_digest_once_a_day_on_working_time(
    harness: Harness, admin_db: asyncpg.Connection
) -> None:
    today = datetime.now(LOCAL).date()
    now = datetime.now(UTC)
    cases = [  # (case, unit, deadline, apology)
        ("HS-LATE-NO-APOLOGY", C1, now - timedelta(days=3), None),
        ("HS-LATE-APOLOGISED", C1, now - timedelta(days=2), now - timedelta(days=1)),
        ("HS-NOT-YET-DUE", C1, now + timedelta(days=2), None),
        ("HS-SILENCED-UNIT", C2, now - timedelta(days=1), None),
    ]
    await admin_db.executemany(
        """INSERT INTO cases (case_id, unit_id, received_at, procedure_code, deadline, clock_since, apology_at, history)
           VALUES ($1, $2, $3::timestamptz - interval '10 days', '1.004', $3, $3::timestamptz - interval '10 days', $4, '[]')""",
        cases,
    )
    await admin_db.execute(
        "INSERT INTO holiday_overrides (day, working, note) VALUES ($1, false, 'nghỉ bù')", today
    )
    service = await harness.start(DVC_ALERTS_OFFICE_HOURS="00:00-24:00")
    async with harness.api() as client:
        created = await client.post(
            "/api/v1/silences",
            json={
                "unit_id": C2,
                "ends_at": (now + timedelta(hours=1)).isoformat(),
                "created_by": "test",
                "comment": "bảo trì",
            },
        )
        assert created.status_code == 201, created.text
    await quiet(3)
    assert harness.mailbox.messages == []  # a day off (override): non-urgent digests wait

    await admin_db.execute("UPDATE holiday_overrides SET working = true WHERE day = $1", today)
    [digest] = await harness.wait_mail(head(C1), 1)
    text = text_of(digest)
    assert (
        str(digest["Subject"])
        == f"[Tổng hợp hằng ngày] {C1_NAME}: 2 hồ sơ quá hạn, 1 chưa có văn bản xin lỗi, 1 sắp đến hạn"
    )
    assert "- HS-LATE-NO-APOLOGY (thủ tục 1.004): quá hạn từ" in text
    assert [line for line in text.splitlines() if "HS-LATE-NO-APOLOGY" in line][0].endswith(
        "chưa có văn bản xin lỗi"
    )
    assert [line for line in text.splitlines() if "HS-LATE-APOLOGISED" in line][0].endswith(
        "đã có văn bản xin lỗi"
    )
    [not_yet_due] = [line for line in text.splitlines() if "HS-NOT-YET-DUE" in line]  # in 2 days: due soon
    assert ": hạn " in not_yet_due and "quá hạn" not in not_yet_due
    await quiet(3)
    assert len(harness.mailbox.messages) == 1  # once per day, and not to the silenced unit
    assert service.process is not None and service.process.poll() is None


async def test_a_silenced_alert_is_held_back_until_the_silence_ends(harness: Harness) -> None:
    period = previous_month()
    await harness.start()
    async with harness.api() as client:
        created = await client.post(
            "/api/v1/silences",
            json={
                "unit_id": C1,
                "kpi": "on_time_rate",
                "ends_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
                "created_by": "quản trị",
            },
        )
        silence_id = created.json()["silence_id"]
        assert (
            await client.post(
                "/api/v1/silences", json={"kpi": "nope", "ends_at": "2030-01-01T00:00:00Z", "created_by": "x"}
            )
        ).status_code == 400
        await harness.publish(update(C1, period, on_time_rate=(60, 80)))
        await harness.wait_state(C1, period, "on_time_rate", "below_target")
        await quiet()
        assert harness.mailbox.messages == []
        listed = (await client.get("/api/v1/silences")).json()
        assert [s["silence_id"] for s in listed] == [silence_id]
        assert (await client.delete(f"/api/v1/silences/{silence_id}")).status_code == 204
        assert (await client.get("/api/v1/silences")).json() == []
    await harness.wait_mail(head(C1), 1, timeout=20)  # the held page goes out once the silence has ended
    await quiet()
    assert len(harness.mailbox.messages) == 1
