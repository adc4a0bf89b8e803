"""Contract v1.1 report and inspection events through every service, against real Kafka and PostgreSQL.

Kafka -> ingest (exactly once, dead letters) -> metrics (cells, API, Prometheus exposition, audit) ->
alerts (evaluation of the three KPIs), with duplicates, shuffling and one bad message per reason code.
The KPIs are checked against hand-worked figures and an independent count of the events sent.
"""

import random
import secrets
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from prometheus_client.parser import text_string_to_metric_families

from services.metrics.audit import audit
from shared import topics
from shared.kpis import LOCAL_TZ
from tests.conftest import (
    MigratedDatabase,
    ServiceRunner,
    bearer,
    free_port,
    load_registry,
    produce,
    read_topic,
    wait_until,
)
from tests.factories import inspection_completed, random_id, report_submitted, small_registry

pytestmark = pytest.mark.integration

C1, C2, AGENCY, DISTRICT, ROOT = "r.c1", "r.c2", "p.agency", "p.district", "p"
UNITS = (ROOT, AGENCY, DISTRICT, C1, C2)


class Sink:
    """An SMTP handler that accepts every message (alerts may mail the heads)."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        return "250 OK"


def instants(count: int) -> list[str]:
    """Return `count` increasing instants inside the current local month, none in the future."""
    now = datetime.now(LOCAL_TZ)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    step = (now - start) / (count + 1)
    return [(start + step * (i + 1)).isoformat(timespec="microseconds") for i in range(count)]


def good_events() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Hand-worked reports and inspections; the expected figures are in the test."""
    t = instants(60)
    reports = [report_submitted(f"bc-{i}", C1, t[10 + i]) for i in range(1, 7)]  # R1-R6 online, connected
    reports += [report_submitted(f"bc-{i}", C1, t[10 + i], connected=False) for i in (7, 8)]
    reports += [report_submitted(f"bc-{i}", C1, t[10 + i], channel="paper", connected=False) for i in (9, 10)]
    reports += [report_submitted("bc-1", C1, t[40], channel="paper", connected=False)]  # later: ignored
    reports += [report_submitted("bc-7", C1, t[2])]  # earlier: R7's first event, online and connected
    # p.agency: 30 reports, 10 online and connected: 33% against 80%, enough to alert on
    reports += [
        report_submitted(random_id("bc"), AGENCY, t[20 + i % 20], channel="online" if i < 10 else "paper")
        for i in range(30)
    ]
    inspections = [
        inspection_completed("kt-1", AGENCY, C1, t[30], digital=True),
        inspection_completed("kt-2", AGENCY, C2, t[31], topic="other"),
        inspection_completed("kt-2", AGENCY, C2, t[5]),  # earlier first event: administrative reform
        inspection_completed("kt-3", AGENCY, DISTRICT, t[32]),
        inspection_completed("kt-4", AGENCY, C1, t[33]),  # C1 again: still one unit
        inspection_completed("kt-5", DISTRICT, C2, t[34], topic="other", digital=True),
    ]
    return reports, inspections


def bad_messages() -> list[tuple[str, bytes, str]]:
    """One message per reason code and topic: (topic, value, expected reason)."""
    t = instants(3)[0]
    report = report_submitted("bc-bad", C1, t)
    inspection = inspection_completed("kt-bad", AGENCY, C1, t)
    out: list[tuple[str, bytes, str]] = []
    for topic, good in ((topics.REPORT_EVENTS, report), (topics.INSPECTION_EVENTS, inspection)):
        subject, enum_field = ("report_id", "channel") if "report_id" in good else ("inspection_id", "topic")

        def broken(base: dict[str, Any] = good, **changes: Any) -> bytes:
            body = {**base, "event_id": random_id("bad"), **changes}
            return orjson.dumps({k: v for k, v in body.items() if v != "<absent>"})

        out += [
            (topic, orjson.dumps(good)[:-3], "not_json"),
            (topic, orjson.dumps([good]), "not_object"),
            (topic, broken(event_type="sent"), "unknown_event_type"),
            (topic, broken(**{subject: "<absent>"}), "missing_field"),
            (topic, broken(**{enum_field: None}), "null_field"),
            (topic, broken(occurred_at=1614824100), "wrong_type"),
            (topic, broken(occurred_at="0001-01-01T00:00:00+07:00"), "bad_timestamp"),
            (topic, broken(occurred_at=t[:26]), "naive_timestamp"),
            (topic, broken(**{enum_field: "fax"}), "bad_enum"),
            (topic, broken(**{subject: "x" * 129}), "bad_length"),
            (topic, broken(unit_id="000.00.99.H99"), "unknown_unit"),
        ]
    # an unknown inspected unit (checked after unit_id)
    out.append(
        (
            topics.INSPECTION_EVENTS,
            orjson.dumps({**inspection, "inspected_unit_id": "xa-moi"}),
            "unknown_unit",
        )
    )
    return out


def first_events(events: list[dict[str, Any]], subject: str) -> list[dict[str, Any]]:
    """Independent reading of kpis.md v1.1: each subject's first event (earliest, ties: lowest event id)."""
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_subject[event[subject]].append(event)
    return [
        min(group, key=lambda e: (datetime.fromisoformat(e["occurred_at"]), e["event_id"]))
        for group in by_subject.values()
    ]


def independent_counts(
    reports: list[dict[str, Any]], inspections: list[dict[str, Any]], unit_ids: tuple[str, ...]
) -> dict[str, tuple[int, int]]:
    """The three KPIs over a set of units, counted straight from the events sent."""
    chosen = set(unit_ids)
    firsts = [r for r in first_events(reports, "report_id") if r["unit_id"] in chosen]
    done = first_events(inspections, "inspection_id")
    by_scope = [i for i in done if i["unit_id"] in chosen]
    inspected = {i["inspected_unit_id"] for i in done if i["topic"] == "administrative_reform"}
    return {
        "online_report_rate": (
            sum(r["channel"] == "online" and r["connected_to_national_system"] for r in firsts),
            len(firsts),
        ),
        "digital_inspection_rate": (sum(i["digital"] for i in by_scope), len(by_scope)),
        "units_inspected_rate": (len(inspected & chosen), len(chosen)),
    }


async def kpis(client: httpx.AsyncClient, scope: str, period: str) -> dict[str, tuple[int, int]]:
    response = await client.get("/api/v1/kpis", params={"scope": scope, "period": period})
    assert response.status_code == 200, response.text
    return {f["kpi"]: (f["numerator"], f["denominator"]) for f in response.json()["kpis"]}


async def test_reports_and_inspections_run_through_every_service(
    database: MigratedDatabase,
    service_runner: ServiceRunner,
    admin_db: asyncpg.Connection,
    no_stored_state: None,
    viewer_token: str,
    request: pytest.FixtureRequest,
) -> None:
    await admin_db.execute("TRUNCATE alert_states, alert_events, acknowledgements, notifications, alerts")
    await load_registry(database, small_registry(C1, C2))
    smtp = Controller(Sink(), hostname="127.0.0.1", port=(smtp_port := free_port()))
    smtp.start()
    request.addfinalizer(smtp.stop)
    reports, inspections = good_events()
    bad = bad_messages()
    reused = {**inspections[0], "digital": "yes"}  # kt-1's event_id: a rejected message claims no id
    bad.append((topics.INSPECTION_EVENTS, orjson.dumps(reused), "wrong_type"))
    assert Counter(reason for _, _, reason in bad).keys() >= {
        "not_json", "not_object", "unknown_event_type", "missing_field", "null_field", "wrong_type",
        "bad_timestamp", "naive_timestamp", "bad_enum", "bad_length", "unknown_unit",
    }  # fmt: skip
    sends = [(topics.REPORT_EVENTS, orjson.dumps(e)) for e in reports] * 2  # every good event twice
    sends += [(topics.INSPECTION_EVENTS, orjson.dumps(e)) for e in inspections] * 2
    sends += [(topic, value) for topic, value, _ in bad]
    random.Random(11).shuffle(sends)
    by_topic: dict[str, list[tuple[bytes | None, bytes]]] = defaultdict(list)
    for topic, value in sends:
        by_topic[topic].append((secrets.token_bytes(2), value))  # keys are not checked against unit_id

    await service_runner.start("ingest")
    metrics = await service_runner.start("metrics")
    alerts = await service_runner.start(
        "alerts",
        DVC_SMTP_HOST="127.0.0.1",
        DVC_SMTP_PORT=str(smtp_port),
        DVC_SMTP_FROM="giamsat-dvc@dvc-monitor.example",
        DVC_SMTP_TLS="off",
        DVC_ALERTS_SIGNING_KEY=secrets.token_hex(16),
        DVC_WEBHOOK_SECRET=secrets.token_hex(16),
        DVC_PUBLIC_URL="http://127.0.0.1:8003",
        DVC_ALERTS_EVALUATION_SECONDS="1",
        DVC_ALERTS_CONFIRM_SECONDS="2",
        DVC_ALERTS_OFFICE_HOURS="00:00-24:00",
    )
    for topic, messages in by_topic.items():
        await produce(service_runner.kafka_bootstrap, service_runner.topic_prefix + topic, messages)

    good_ids = {e["event_id"] for e in reports + inspections}

    async def all_stored() -> bool:
        return int(await admin_db.fetchval("SELECT count(*) FROM event_ids")) >= len(good_ids)

    await wait_until(all_stored, timeout=60)
    # Exactly once: each good event once, nothing else; one row per report and inspection.
    stored = await admin_db.fetch("SELECT event_id, topic FROM events")
    assert {row["event_id"] for row in stored} == good_ids and len(stored) == len(good_ids)
    assert Counter(row["topic"] for row in stored) == {
        topics.REPORT_EVENTS: len(reports),
        topics.INSPECTION_EVENTS: len(inspections),
    }
    assert await admin_db.fetchval("SELECT count(*) FROM reports") == 40
    assert await admin_db.fetchval("SELECT count(*) FROM inspections") == 5
    assert await admin_db.fetchval("SELECT topic FROM inspections WHERE inspection_id = 'kt-2'") == (
        "administrative_reform"
    )

    # Every bad message is dead-lettered, unchanged, with its reason.
    letters = await read_topic(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.DEAD_LETTERS, expect=len(bad)
    )
    assert Counter((r.value, dict(r.headers)["dvc-reason"].decode()) for r in letters) == Counter(
        (value, reason) for _, value, reason in bad
    )

    month = f"month:{datetime.now(LOCAL_TZ):%Y-%m}"
    year = f"year:{datetime.now(LOCAL_TZ):%Y}"
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{metrics.port}", headers=bearer(viewer_token), timeout=30
    ) as client:

        async def settled() -> bool:
            figures = await kpis(client, "province", month)
            return figures["digital_inspection_rate"] == (2, 5) and figures["online_report_rate"][1] == 40

        await wait_until(settled, timeout=60)
        # Hand-worked: R1 keeps its first (online) event, R7's earlier event makes it online: 7/10.
        assert (await kpis(client, f"unit:{C1}", month))["online_report_rate"] == (7, 10)
        assert (await kpis(client, f"unit:{AGENCY}", month))["digital_inspection_rate"] == (1, 4)
        # Inspected on administrative reform: r.c1 (twice), r.c2 (kt-2's first event), p.district.
        assert (await kpis(client, "province", year))["units_inspected_rate"] == (3, 5)
        assert (await kpis(client, f"unit:{ROOT}", year))["units_inspected_rate"] == (0, 1)
        scopes = {
            "province": UNITS,
            f"unit:{C1}": (C1,),
            f"unit:{AGENCY}": (AGENCY,),
            f"unit:{ROOT}": (ROOT,),
            f"subtree:{DISTRICT}": (DISTRICT, C1, C2),
            "level:commune": (C1, C2),
            "level:province": (ROOT, AGENCY),
        }
        for scope, unit_ids in scopes.items():
            for period in (month, year):
                figures = await kpis(client, scope, period)
                got = {kpi: figures[kpi] for kpi in independent_counts(reports, inspections, unit_ids)}
                assert got == independent_counts(reports, inspections, unit_ids), (scope, period)

        # units_inspected_rate is judged per year on a scope of units; a month or a single unit is informational
        for scope, period, status in (
            ("province", year, "meets"),  # 3/5 >= 35%
            ("province", month, "informational"),
            (f"unit:{ROOT}", year, "informational"),
            ("level:commune", year, "meets"),
        ):
            response = await client.get("/api/v1/kpis", params={"scope": scope, "period": period})
            figure = next(f for f in response.json()["kpis"] if f["kpi"] == "units_inspected_rate")
            assert figure["status"] == status, (scope, period, figure)
        units = (await client.get("/api/v1/units")).json()
        assert all(
            k["status"] == "informational"
            for u in units
            for k in u["kpis"]
            if k["kpi"] == "units_inspected_rate"
        )

        # Prometheus exposition (what Prometheus scrapes): the three KPIs per unit and period.
        wanted = {
            ("dvc_kpi_numerator", C1, "online_report_rate", "month"): 7,
            ("dvc_kpi_denominator", C1, "online_report_rate", "month"): 10,
            ("dvc_kpi_numerator", AGENCY, "online_report_rate", "month"): 10,
            ("dvc_kpi_numerator", AGENCY, "digital_inspection_rate", "month"): 1,
            ("dvc_kpi_denominator", AGENCY, "digital_inspection_rate", "month"): 4,
            ("dvc_kpi_numerator", C2, "units_inspected_rate", "year"): 1,
            ("dvc_kpi_numerator", ROOT, "units_inspected_rate", "year"): 0,
            ("dvc_kpi_denominator", ROOT, "units_inspected_rate", "year"): 1,
            ("dvc_kpi_target", C1, "units_inspected_rate", None): 0.35,
            ("dvc_kpi_target", AGENCY, "online_report_rate", None): 0.8,
            ("dvc_kpi_target", AGENCY, "digital_inspection_rate", None): 0.3,
        }

        async def exported() -> bool:
            samples = {
                (s.name, s.labels["unit_id"], s.labels["kpi"], s.labels.get("period")): s.value
                for family in text_string_to_metric_families((await client.get("/metrics")).text)
                for s in family.samples
                if s.name.startswith("dvc_kpi_") and "kpi" in s.labels
            }
            return all(samples.get(key) == value for key, value in wanted.items())

        await wait_until(exported, timeout=30, interval=1)

    # Alerts evaluate the new KPIs: p.agency's reports go below target; units_inspected_rate only per year.
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{alerts.port}", headers=bearer(viewer_token), timeout=30
    ) as client:

        async def agency_below() -> bool:
            states = (await client.get("/api/v1/alerts", params={"unit_id": AGENCY, "period": month})).json()
            return any(s["kpi"] == "online_report_rate" and s["state"] == "below_target" for s in states)

        await wait_until(agency_below, timeout=60, interval=1)
        evaluated = {
            (s["unit_id"], s["kpi"], s["period"]) for s in (await client.get("/api/v1/alerts")).json()
        }
    assert {(C1, "online_report_rate", month), (AGENCY, "digital_inspection_rate", month)} <= evaluated
    assert {(C1, "units_inspected_rate", year), (C2, "units_inspected_rate", year)} <= evaluated
    assert not {key for key in evaluated if key[1] == "units_inspected_rate" and key[2] == month}

    # The audit's independent SQL fold from the raw events agrees with the live rows and cells.
    today = datetime.now(UTC).date()
    differences = await audit(
        database.dsn("metrics"),
        first=today - timedelta(days=40),
        last=today + timedelta(days=1),
    )
    assert differences == []
