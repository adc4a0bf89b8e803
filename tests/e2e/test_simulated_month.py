"""End to end: simulator -> Kafka -> ingest -> metrics -> alerts -> SMTP, for a simulated month with bad input.

The simulated month is the last 30 days, so its periods are live ones: the previous and the current
local month are checked KPI by KPI, and alerts evaluate them as they would in production.
"""

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller

from services.metrics.audit import audit
from shared import topics
from shared.kpis import KPIS
from shared.units import read_registry
from simulator.publish import publish
from simulator.stream import generate_events, truth_line
from tests.conftest import (
    MigratedDatabase,
    ServiceRunner,
    bearer,
    free_port,
    kafka_settings,
    load_registry,
    read_topic,
    wait_until,
)
from tests.e2e.truth import ICT, expected_counts

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REGISTRY = Path(__file__).resolve().parents[2] / "deploy" / "units" / "ha-tinh-2021.yaml"


class Recorder:
    """An SMTP handler that records each message's recipients."""

    def __init__(self, mailbox: list[tuple[str, ...]]) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        self.mailbox.append(tuple(envelope.rcpt_tos))
        return "250 OK"


def raw_bytes(line: dict[str, Any]) -> bytes:
    """Return the bytes of a bad message as the simulator recorded them."""
    return line["raw"].encode() if "raw" in line else bytes.fromhex(line["raw_hex"])


async def test_a_simulated_month_matches_the_ground_truth(
    database: MigratedDatabase,
    service_runner: ServiceRunner,
    admin_db: asyncpg.Connection,
    request: pytest.FixtureRequest,
    viewer_token: str,
) -> None:
    registry = read_registry(REGISTRY)
    await admin_db.execute(
        "TRUNCATE events, event_ids, cases, documents, reports, inspections, kpi_day_cells, procedure_days, "
        "overdue_days, inspected_days, "
        # alerts of earlier tests on the same registry: their heads' digest of the day would be spent
        "alert_states, alert_events, acknowledgements, notifications, alerts"
    )
    await load_registry(database, registry)
    now = datetime.now(UTC)
    start = (now - timedelta(days=30)).astimezone(ICT)
    events = list(
        generate_events(
            registry,
            start=start,
            days=30,
            seed=5,
            scale=0.03,
            bad_rate=0.01,
            duplicate_rate=0.01,
            shuffle_window=50,
            id_prefix=f"e2e{secrets.token_hex(3)}.",
        )
    )
    truth = [orjson.loads(truth_line(event)) for event in events]
    bad = [line for line in truth if line["expected_reason"] is not None]
    good_ids = {line["event"]["event_id"] for line in truth if line["expected_reason"] is None}
    assert len(bad) > 20 and len(good_ids) > 5_000

    mailbox: list[tuple[str, ...]] = []
    smtp = Controller(Recorder(mailbox), hostname="127.0.0.1", port=(smtp_port := free_port()))
    smtp.start()
    request.addfinalizer(smtp.stop)
    await service_runner.start("ingest")
    metrics = await service_runner.start("metrics")
    alerts = await service_runner.start(
        "alerts",
        DVC_SMTP_HOST="127.0.0.1",
        DVC_SMTP_PORT=str(smtp_port),
        DVC_SMTP_FROM="giamsat-dvc@dvc-monitor.example",
        DVC_SMTP_TLS="off",  # the aiosmtpd sink offers no STARTTLS (required by default)
        DVC_ALERTS_SIGNING_KEY=secrets.token_hex(16),
        DVC_WEBHOOK_SECRET=secrets.token_hex(16),
        DVC_PUBLIC_URL="http://127.0.0.1:8003",
        DVC_ALERTS_EVALUATION_SECONDS="1",
        DVC_ALERTS_CONFIRM_SECONDS="2",
        DVC_ALERTS_SEND_POLL_SECONDS="0.2",
        DVC_ALERTS_GROUP_WAIT_SECONDS="1",
        DVC_ALERTS_GROUP_INTERVAL_SECONDS="2",  # heads told of every unit within the wait below
        DVC_ALERTS_OFFICE_HOURS="00:00-24:00",
    )
    await publish(
        events,
        kafka=kafka_settings(service_runner.kafka_bootstrap, "simulator"),
        topic_prefix=service_runner.topic_prefix,
    )

    async def all_stored() -> bool:
        return int(await admin_db.fetchval("SELECT count(*) FROM event_ids")) >= len(good_ids)

    await wait_until(all_stored, timeout=180, interval=1)
    assert {row["event_id"] for row in await admin_db.fetch("SELECT event_id FROM event_ids")} == good_ids

    # Every bad message is in the dead-letter topic with its reason (at-least-once: never lost).
    letters = await read_topic(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.DEAD_LETTERS, expect=len(bad)
    )
    dead = {(r.value, dict(r.headers)["dvc-reason"].decode()) for r in letters}
    assert dead == {(raw_bytes(line), line["expected_reason"]) for line in bad}

    months = sorted({f"{start:%Y-%m}", f"{now.astimezone(ICT):%Y-%m}"})
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{metrics.port}", timeout=30, headers=bearer(viewer_token)
    ) as client:
        for month in months:
            expected = expected_counts(
                truth, month, datetime.now(UTC), unit_ids=tuple(unit.id for unit in registry.units)
            )

            async def province_settled(month: str = month, expected: dict[Any, Any] = expected) -> bool:
                report = (
                    await client.get("/api/v1/kpis", params={"scope": "province", "period": f"month:{month}"})
                ).json()
                figures = {f["kpi"]: f for f in report["kpis"]}
                want = sum(d for (_, kpi), (_, d) in expected.items() if kpi == "on_time_rate")
                return bool(figures["on_time_rate"]["denominator"] == want)

            await wait_until(province_settled, timeout=120, interval=1)
            mismatches = []
            for unit in registry.units:
                report = (
                    await client.get(
                        "/api/v1/kpis", params={"scope": f"unit:{unit.id}", "period": f"month:{month}"}
                    )
                ).json()
                for figure in report["kpis"]:
                    want = expected.get((unit.id, figure["kpi"]), (0, 0))
                    if (
                        figure["kpi"] != "overdue_open"
                        and (figure["numerator"], figure["denominator"]) != want
                    ):
                        mismatches.append(
                            (
                                month,
                                unit.id,
                                figure["kpi"],
                                (figure["numerator"], figure["denominator"]),
                                want,
                            )
                        )
            assert mismatches == []
        assert {kpi.id for kpi in KPIS} - {"overdue_open"} <= {kpi for (_, kpi) in expected}

    # The replay was shuffled and had duplicates: live counts still equal a recomputation from the raw events.
    assert (
        await audit(
            database.dsn("metrics"),
            first=start.date() - timedelta(days=1),
            last=now.date() + timedelta(days=1),
        )
        == []
    )

    # Every unit below target had its head notified: paged, or (zero-tolerance KPIs, current month)
    # in the daily digest.
    heads = {unit.id: unit.head.email for unit in registry.units}
    current = f"month:{now.astimezone(ICT):%Y-%m}"
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{alerts.port}", timeout=30, headers=bearer(viewer_token)
    ) as client:

        async def to_notify() -> set[str]:
            rows = (await client.get("/api/v1/alerts", params={"state": "below_target"})).json()
            return {
                row["unit_id"]
                for row in rows
                if row["period"].startswith("month:")
                and (not row["figures"]["zero_tolerance"] or row["period"] == current)
            }

        async def some_below() -> bool:
            return bool(await to_notify())

        async def all_notified() -> bool:
            notified = {recipient for message in mailbox for recipient in message}
            return all(heads[unit] in notified for unit in await to_notify())

        await wait_until(some_below, timeout=60, interval=1)
        await wait_until(all_notified, timeout=180, interval=1)  # once the holds lift; slower under load
