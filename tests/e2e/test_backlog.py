"""The backlog scenario (issue 11), at small scale: days of simulated history are already in Kafka when
ingest starts (an upstream outage, a restore, a first deployment, the demo's replay). Every case id named
in any notification must be really overdue at the mail's Date per the simulator's ground truth: open
and past its deadline (the digest's first section), or closed late without an apology this month
(its second section). The numbers are printed (and written to $DVC_BACKLOG_REPORT if set).
"""

import asyncio
import email
import email.policy
import logging
import os
import re
import secrets
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiosmtpd.controller import Controller

from shared.units import read_registry
from simulator.publish import publish
from simulator.stream import generate_events, truth_line
from tests.conftest import (
    MigratedDatabase,
    ServiceRunner,
    free_port,
    kafka_settings,
    load_registry,
    wait_until,
)
from tests.e2e.mail_truth import cases_of, judge
from tests.e2e.truth import ICT

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REGISTRY = Path(__file__).resolve().parents[2] / "deploy" / "units" / "ha-tinh-2021.yaml"
DAYS, SCALE, WATCH_SECONDS = 7, 0.5, 150  # a week of the province at half its volume


class Sink:
    """An SMTP handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


async def test_a_backlog_of_history_sends_no_false_notice(
    database: MigratedDatabase,
    service_runner: ServiceRunner,
    admin_db: asyncpg.Connection,
    request: pytest.FixtureRequest,
) -> None:
    registry = read_registry(REGISTRY)
    await admin_db.execute(
        "TRUNCATE events, event_ids, cases, documents, kpi_day_cells, procedure_days, overdue_days, "
        "alert_states, alert_events, acknowledgements, notifications, alerts"
    )
    await load_registry(database, registry)
    now = datetime.now(UTC)
    prefix = f"bl{secrets.token_hex(3)}."
    events = list(
        generate_events(
            registry, start=(now - timedelta(days=DAYS)).astimezone(ICT), days=DAYS, seed=11, scale=SCALE,
            id_prefix=prefix,
        )
    )  # fmt: skip
    truth = [orjson.loads(truth_line(event)) for event in events]
    by_case = cases_of(truth)
    # The history is in Kafka before ingest starts.
    await publish(
        events, kafka=kafka_settings(service_runner.kafka_bootstrap, "simulator"),
        topic_prefix=service_runner.topic_prefix,
    )  # fmt: skip
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=(smtp_port := free_port()))
    smtp.start()
    request.addfinalizer(smtp.stop)
    fast = {"DVC_LAG_POLL_SECONDS": "1"}
    await service_runner.start("metrics", **fast)
    await service_runner.start(
        "alerts",
        DVC_SMTP_HOST="127.0.0.1",
        DVC_SMTP_PORT=str(smtp_port),
        DVC_SMTP_FROM="giamsat-dvc@dvc-monitor.example",
        DVC_SMTP_TLS="off",
        DVC_ALERTS_SIGNING_KEY=secrets.token_hex(16),
        DVC_WEBHOOK_SECRET=secrets.token_hex(16),
        DVC_ALERTS_EVALUATION_SECONDS="1",
        DVC_ALERTS_CONFIRM_SECONDS="10",
        DVC_ALERTS_SEND_POLL_SECONDS="0.2",
        DVC_ALERTS_OFFICE_HOURS="00:00-24:00",
        **fast,
    )
    started = time.monotonic()
    await service_runner.start("ingest", **fast)
    good = sum(1 for line in truth if line["expected_reason"] is None)

    async def all_stored() -> bool:
        return int(await admin_db.fetchval("SELECT count(*) FROM event_ids")) >= good * 0.99

    await wait_until(all_stored, timeout=180, interval=1)
    stored_after = time.monotonic() - started
    await asyncio.sleep(max(0.0, WATCH_SECONDS - (time.monotonic() - started)))

    per_head = Counter(str(message["To"]) for message in sink.messages)
    judged = judge(sink.messages, by_case, rf"{re.escape(prefix)}[\w.\-]+")
    named, false = judged.total, judged.false
    report = (
        f"backlog: {good} good events, stored after {stored_after:.0f} s; in {WATCH_SECONDS} s: "
        f"{len(sink.messages)} notices to {len(per_head)} heads, max per head {max(per_head.values(), default=0)}, "
        f"{named} case mentions, {len(false)} false"
    )
    logging.getLogger(__name__).warning(report)
    if os.environ.get("DVC_BACKLOG_REPORT"):
        Path(os.environ["DVC_BACKLOG_REPORT"]).write_text(  # noqa: ASYNC240 (once, at the end)
            report + "\n" + "\n".join(map(str, false[:20])) + "\n"
        )
    assert false == [], report
