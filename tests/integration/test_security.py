"""Who may do what, tried against the real services: API tokens on the metrics and alerts APIs, the
acknowledgement link of a real e-mail (a scanner's GET changes nothing, the form's POST acknowledges,
wrong, foreign, expired and non-ASCII tokens get a 403 page), dvc_reader refused everything but the
reporting views, and a real webhook checked (and its replay refused) by the README's example."""

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from cli.tokens import create_token, revoke_token
from services.alerts.signing import webhook_signature_valid
from shared.auth import Role
from tests.conftest import (
    MigratedDatabase,
    ServiceProcess,
    ServiceRunner,
    bearer,
    load_registry,
    wait_until,
)
from tests.factories import small_registry
from tests.integration import test_alerts
from tests.integration.test_alerts import (
    C1,
    C2,
    PUBLIC_URL,
    WEBHOOK_SECRET,
    Harness,
    head,
    previous_month,
    quiet,
    text_of,
    update,
)
from tests.integration.test_boards import SQL_QUERIES, VARIABLES, expand_sql

pytestmark = pytest.mark.integration
clean, harness, receiver, smtp = (
    test_alerts.clean,
    test_alerts.harness,
    test_alerts.receiver,
    test_alerts.smtp,
)

REPO = Path(__file__).resolve().parent.parent.parent
REFUSED = (asyncpg.InsufficientPrivilegeError, asyncpg.UndefinedTableError)


# ---------------------------------------------------------------------------------------------- API


@pytest.fixture
async def metrics(database: MigratedDatabase, service_runner: ServiceRunner) -> ServiceProcess:
    await load_registry(database, small_registry("s.c1", "s.c2"))
    return await service_runner.start("metrics")


async def test_metrics_api_needs_a_valid_unrevoked_unexpired_token_and_health_stays_open(
    metrics: ServiceProcess, database: MigratedDatabase, viewer_token: str
) -> None:
    kpis = {"scope": "province", "period": "month:2021-03"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics.port}") as client:
        anonymous = await client.get("/api/v1/kpis", params=kpis)
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
        assert anonymous.json()["detail"].startswith("cần mã truy cập")  # Vietnamese first
        assert (await client.get("/api/v1/units")).status_code == 401
        assert (await client.get("/api/v1/units/s.c1/overdue")).status_code == 401
        assert (await client.get("/api/v1/kpis", params=kpis, headers=bearer("dvc_nope"))).status_code == 401
        assert (await client.get("/api/v1/kpis", params={"scope": "x"})).status_code == 401  # before 400
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200, path

        assert (
            await client.get("/api/v1/kpis", params=kpis, headers=bearer(viewer_token))
        ).status_code == 200
        overdue = await client.get("/api/v1/units/s.c1/overdue", headers=bearer(viewer_token))
        assert overdue.status_code == 200 and overdue.json() == []

        connection = await asyncpg.connect(database.admin_dsn)
        try:
            token_id, token = await create_token(connection, name="to revoke", role=Role.viewer)
            assert (await client.get("/api/v1/units", headers=bearer(token))).status_code == 200
            assert await revoke_token(connection, token_id)
            assert (await client.get("/api/v1/units", headers=bearer(token))).status_code == 401  # at once
            _, old = await create_token(
                connection,
                name="expired",
                role=Role.viewer,
                expires_at=datetime.now(UTC) - timedelta(seconds=1),
            )
            assert (await client.get("/api/v1/units", headers=bearer(old))).status_code == 401
            stored = await connection.fetch("SELECT token_hash, prefix FROM api_tokens")
        finally:
            await connection.close()
    assert all(token not in row["token_hash"] and len(row["prefix"]) == 10 for row in stored)  # hashed


async def test_read_public_opens_kpi_reads_only(
    database: MigratedDatabase, service_runner: ServiceRunner
) -> None:
    await load_registry(database, small_registry("s.c1", "s.c2"))
    open_metrics = await service_runner.start("metrics", DVC_API_READ_PUBLIC="true")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{open_metrics.port}") as client:
        kpis = await client.get("/api/v1/kpis", params={"scope": "province", "period": "month:2021-03"})
        assert kpis.status_code == 200
        assert (await client.get("/api/v1/units")).status_code == 200
        assert (await client.get("/api/v1/units/s.c1/overdue")).status_code == 401  # case ids: never open


async def test_alerts_api_writes_need_an_operator_and_personal_data_too(
    harness: Harness, viewer_token: str, admin_db: asyncpg.Connection
) -> None:
    period = previous_month()
    service = await harness.start()
    await harness.publish(update(C1, period, on_time_rate=(60, 80)))
    await harness.wait_mail(head(C1), 1)
    alert_id = await admin_db.fetchval("SELECT alert_id FROM alerts WHERE unit_id = $1", C1)
    silence = {"ends_at": "2099-01-01T00:00:00Z", "created_by": "kẻ lạ"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as client:
        anonymous = await client.post("/api/v1/silences", json=silence)
        assert anonymous.status_code == 401 and anonymous.json()["detail"].startswith("cần mã truy cập")
        viewer = bearer(viewer_token)
        refused = await client.post("/api/v1/silences", json=silence, headers=viewer)
        assert refused.status_code == 403 and refused.json()["detail"].startswith(
            "mã truy cập không có quyền"
        )
        ack = {"by": "kẻ lạ"}
        assert (await client.post(f"/api/v1/alerts/{alert_id}/ack", json=ack)).status_code == 401
        assert (
            await client.post(f"/api/v1/alerts/{alert_id}/ack", json=ack, headers=viewer)
        ).status_code == 403
        assert (await client.delete("/api/v1/silences/1", headers=viewer)).status_code == 403
        assert (await client.get(f"/api/v1/alerts/{alert_id}")).status_code == 401
        assert (
            await client.get(f"/api/v1/alerts/{alert_id}", headers=viewer)
        ).status_code == 403  # recipients
        assert (await client.get("/api/v1/alerts")).status_code == 401
        assert (await client.get("/api/v1/alerts", headers=viewer)).status_code == 200
        assert (await client.get("/api/v1/silences", headers=viewer)).json() == []
        assert await admin_db.fetchval("SELECT count(*) FROM silences") == 0
        assert (
            await admin_db.fetchval("SELECT acknowledged_at FROM alerts WHERE alert_id = $1", alert_id)
            is None
        )

    async with harness.api() as operator:  # the operator's token
        created = await operator.post("/api/v1/silences", json={**silence, "created_by": "Quản trị A"})
        assert created.status_code == 201
        assert created.json()["created_by"] == "Quản trị A [mã truy cập / token: test operator]"
        history = await operator.get(f"/api/v1/alerts/{alert_id}")
        assert history.status_code == 200
        assert head(C1) in {n["recipient"] for n in history.json()["notifications"]}


# ------------------------------------------------------------------------------ acknowledgement link


def ack_link(message_text: str, service: ServiceProcess) -> str:
    """The acknowledgement link of a received e-mail, pointed at the test's service."""
    line = next(line for line in message_text.splitlines() if "/ack?token=" in line)
    return line.split(": ", 1)[1].replace(PUBLIC_URL, f"http://127.0.0.1:{service.port}")


def assert_refusal_page(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert "Không thể xác nhận / Cannot acknowledge" in response.text and reason in response.text


async def acknowledged(admin_db: asyncpg.Connection, alert_id: int) -> tuple[Any, int]:
    at = await admin_db.fetchval("SELECT acknowledged_at FROM alerts WHERE alert_id = $1", alert_id)
    count = await admin_db.fetchval("SELECT count(*) FROM acknowledgements WHERE alert_id = $1", alert_id)
    return at, count


async def test_a_scanners_get_changes_nothing_and_the_pages_form_acknowledges(
    harness: Harness, admin_db: asyncpg.Connection
) -> None:
    period = previous_month()
    service = await harness.start()
    await harness.publish(
        update(C1, period, on_time_rate=(60, 80)), update(C2, period, on_time_rate=(60, 80))
    )
    [page_c1] = await harness.wait_mail(head(C1), 1)
    [page_c2] = await harness.wait_mail(head(C2), 1)
    link, link_c2 = ack_link(text_of(page_c1), service), ack_link(text_of(page_c2), service)
    alert_id = int(link.split("/alerts/")[1].split("/")[0])
    token = link.split("token=", 1)[1]

    async with httpx.AsyncClient(headers={"User-Agent": "Microsoft Office Safe Links scanner"}) as scanner:
        for _ in range(3):
            shown = await scanner.get(link)
            assert shown.status_code == 200 and "Xác nhận cảnh báo / Acknowledge an alert" in shown.text
        assert (await scanner.head(link)).status_code in (200, 405)
    assert "Thủ trưởng a.c1" in shown.text and 'action="ack/confirm"' in shown.text
    assert shown.headers["x-frame-options"] == "DENY" and shown.headers["referrer-policy"] == "no-referrer"
    assert "&lt;1&gt; &amp; Co" in shown.text and "<1>" not in shown.text  # the unit name, escaped
    assert await acknowledged(admin_db, alert_id) == (None, 0)  # GET changed nothing

    confirm = link.split("?")[0] + "/confirm"
    async with httpx.AsyncClient() as browser:
        assert_refusal_page(await browser.get(link.replace("token=", "token=0")), "không hợp lệ")
        assert_refusal_page(await browser.get(link.split("?")[0]), "không hợp lệ")  # no token
        assert_refusal_page(await browser.get(link + "%C4%91"), "không hợp lệ")  # non-ASCII (đ)
        assert_refusal_page(await browser.get(link[:-4] + "%FF%FE"), "không hợp lệ")  # not even UTF-8
        assert_refusal_page(await browser.get(link + "x" * 5000), "không hợp lệ")
        foreign = link_c2.split("token=", 1)[1]  # C2's link, on C1's alert
        assert_refusal_page(await browser.post(confirm, data={"token": foreign}), "không hợp lệ")
        assert_refusal_page(await browser.post(confirm, data={"token": "đ" * 10}), "không hợp lệ")
        assert_refusal_page(
            await browser.post(confirm, content=b"\xff\xfe", headers={"Content-Type": "x"}), ""
        )
        assert await acknowledged(admin_db, alert_id) == (None, 0)

        done = await browser.post(confirm, data={"token": token})
    assert done.status_code == 200 and "Đã xác nhận cảnh báo / Alert acknowledged" in done.text
    at, count = await acknowledged(admin_db, alert_id)
    assert at is not None and count == 1
    row = await admin_db.fetchrow(
        "SELECT acknowledged_by, via FROM acknowledgements WHERE alert_id = $1", alert_id
    )
    assert row["via"] == "link" and row["acknowledged_by"].startswith("Thủ trưởng a.c1 (")


async def test_an_expired_link_gets_a_403_page(harness: Harness, admin_db: asyncpg.Connection) -> None:
    period = previous_month()
    service = await harness.start(DVC_ALERTS_ACK_LINK_DAYS=str(3 / 86400))  # links work for 3 seconds
    await harness.publish(update(C1, period, on_time_rate=(60, 80)))
    [page] = await harness.wait_mail(head(C1), 1)
    sent = time.monotonic()
    link = ack_link(text_of(page), service)
    async with httpx.AsyncClient() as browser:
        if time.monotonic() - sent < 1.5:  # still valid: the page shows
            assert (await browser.get(link)).status_code == 200
        await quiet(4)
        assert_refusal_page(await browser.get(link), "đã hết hạn")
        token = link.split("token=", 1)[1]
        assert_refusal_page(
            await browser.post(link.split("?")[0] + "/confirm", data={"token": token}), "đã hết hạn"
        )
    assert await admin_db.fetchval("SELECT count(*) FROM acknowledgements") == 0


# ----------------------------------------------------------------------------------------- webhooks


def readme_webhook_check() -> Any:
    """The receiver's check as the README documents it (its Python block defining verify_dvc_webhook)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "def verify_dvc_webhook" in b]
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    return namespace["verify_dvc_webhook"]


async def test_a_real_webhook_passes_the_readme_check_and_its_replay_does_not(harness: Harness) -> None:
    verify = readme_webhook_check()
    await harness.start(webhooks={C2: "/hook-ok"})
    await harness.publish(update(C2, previous_month(), satisfaction_rate=(10, 40)))

    async def delivered() -> bool:
        return bool(harness.receiver.on("/hook-ok"))

    await wait_until(delivered, timeout=30)
    [call] = harness.receiver.on("/hook-ok")
    headers, body, now = call.headers, call.body, time.time()
    assert verify(WEBHOOK_SECRET, headers, body, now=now)
    assert not verify(WEBHOOK_SECRET, headers, body, now=now + 301)  # replayed 5 minutes later
    assert not verify(WEBHOOK_SECRET, headers, body + b" ", now=now)  # altered body
    assert not verify("another-secret-0123456789", headers, body, now=now)
    later = now + 301  # replayed 5 minutes later with the timestamp re-dated: the signature no longer fits
    assert not verify(WEBHOOK_SECRET, {**headers, "X-DVC-Timestamp": str(int(later))}, body, now=later)
    assert not verify(WEBHOOK_SECRET, {**headers, "X-DVC-Signature": "sha256=đ"}, body, now=now)
    timestamp, signature = headers["X-DVC-Timestamp"], headers["X-DVC-Signature"]
    assert webhook_signature_valid(WEBHOOK_SECRET, timestamp, signature, body, now=now)
    assert not webhook_signature_valid(WEBHOOK_SECRET, timestamp, signature, body, now=now + 301)


# ---------------------------------------------------------------------------------------- dvc_reader


async def test_dvc_reader_is_refused_every_table_and_reads_only_reporting_views(
    database: MigratedDatabase, admin_db: asyncpg.Connection
) -> None:
    tables = [
        row["name"]
        for row in await admin_db.fetch(
            """SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"""
        )
    ]
    assert {"units", "events", "cases", "notifications", "api_tokens"} <= set(tables)
    reader = await asyncpg.connect(database.dsn("reader"))
    try:
        for statement in (
            "SELECT head_email FROM units",
            "SELECT payload FROM events",
            "SELECT head_email FROM public.units",
            "SELECT head_webhook_url FROM public.units",
            "SELECT recipient, last_error FROM public.notifications",
            "SELECT history FROM public.cases",
            "SELECT token_hash FROM public.api_tokens",
        ):
            with pytest.raises(REFUSED):
                await reader.fetch(statement)
        for table in tables:  # everything in public, partitions and sequences included
            with pytest.raises(REFUSED):
                await reader.fetch(f'SELECT 1 FROM public."{table}" LIMIT 0')
        for statement in (
            "SELECT head_email FROM reporting.units",
            "SELECT payload FROM reporting.unit_last_events",
            "SELECT acknowledged_by FROM reporting.alerts",
        ):
            with pytest.raises(asyncpg.UndefinedColumnError):
                await reader.fetch(statement)
        columns = await reader.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'reporting'"
        )
        assert await reader.fetchval("SELECT count(*) FROM reporting.units") >= 0
    finally:
        await reader.close()
    forbidden = {
        "head_email",
        "head_webhook_url",
        "payload",
        "history",
        "recipient",
        "last_error",
        "body_text",
        "body_html",
        "subject",
        "acknowledged_by",
        "token_hash",
        "created_by",
        "note",
    }
    assert {row["table_name"] for row in columns} >= {"units", "cases", "alerts", "notifications"}
    assert not {row["column_name"] for row in columns} & forbidden


async def test_kpi_functions_run_for_their_roles_only(database: MigratedDatabase) -> None:
    """The KPI SQL of migration 0019: dvc_reader calls the `reporting` ones, never those over the tables;
    alerts gets the overdue and due-soon lists, not the rollups (metrics' cells)."""
    reader = await asyncpg.connect(database.dsn("reader"))
    alerts = await asyncpg.connect(database.dsn("alerts"))
    try:
        for statement in (
            "SELECT * FROM public.overdue_open_cases(now())",
            "SELECT * FROM public.due_soon_cases(now(), now(), 30, NULL)",
            "SELECT * FROM public.kpi_rollups(ARRAY['x'], current_date, current_date, now(), true)",
        ):
            with pytest.raises(REFUSED):
                await reader.fetch(statement)
        await reader.fetch("SELECT case_id, apology_at FROM reporting.overdue_open_cases(now())")
        await reader.fetch("SELECT kpi FROM reporting.kpi_rollups(NULL, current_date, current_date, now())")
        with pytest.raises(asyncpg.UndefinedColumnError):
            await reader.fetch("SELECT history FROM reporting.overdue_open_cases(now())")
        await alerts.fetch("SELECT case_id FROM overdue_open_cases(now())")
        await alerts.fetch("SELECT case_id FROM due_soon_cases(now(), now(), 30, NULL)")
        with pytest.raises(REFUSED):
            await alerts.fetch(
                "SELECT kpi FROM kpi_rollups(ARRAY['x'], current_date, current_date, now(), true)"
            )
    finally:
        await reader.close()
        await alerts.close()


async def test_every_panel_sql_runs_as_dvc_reader(database: MigratedDatabase) -> None:
    raws = sorted({q.target["rawSql"] for q in SQL_QUERIES} | {v["query"] for v in VARIABLES.values()})
    assert len(raws) >= 10
    reader = await asyncpg.connect(database.dsn("reader"))
    try:
        for raw in raws:
            await reader.fetch(expand_sql(raw, unit="s.c1"))  # raises if any relation is refused
    finally:
        await reader.close()


def run_dvc(database: MigratedDatabase, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `dvc` CLI with the admin DSN, as an administrator does."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DVC_")}
    env["DVC_DATABASE_URL"] = database.admin_dsn
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_dvc_tokens_create_list_revoke_through_the_cli(
    database: MigratedDatabase, metrics: ServiceProcess
) -> None:
    created = run_dvc(database, "tokens", "create", "--name", "Chuyên viên B", "--role", "operator")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("dvc_") and "không hiện lại" in created.stderr  # shown once, on stdout only
    [line] = [
        line for line in run_dvc(database, "tokens", "list").stdout.splitlines() if "Chuyên viên B" in line
    ]
    token_id, role, prefix = line.split("\t")[:3]
    assert role == "operator" and prefix == token[:10] + "…" and token not in line
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{metrics.port}", headers=bearer(token)
    ) as client:
        assert (await client.get("/api/v1/units")).status_code == 200
        assert run_dvc(database, "tokens", "revoke", token_id).returncode == 0
        assert (await client.get("/api/v1/units")).status_code == 401
    again = run_dvc(database, "tokens", "revoke", token_id)
    assert again.returncode == 1 and "Không có mã còn hiệu lực" in again.stderr
    assert (
        run_dvc(database, "tokens", "create", "--name", "x", "--role", "admin").returncode == 2
    )  # no such role
