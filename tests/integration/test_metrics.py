"""Metrics end to end (Kafka -> ingest -> metrics -> API), on small hand-worked scenarios of kpis.md."""

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from services.metrics.audit import audit, rebuild_cells
from shared import topics
from shared.kpis import KPIS
from tests.conftest import (
    MigratedDatabase,
    ServiceProcess,
    ServiceRunner,
    bearer,
    load_registry,
    produce,
    wait_until,
)
from tests.factories import at, case_event, document_sent, encode, random_id, received, small_registry

pytestmark = pytest.mark.integration

COMMUNE, OTHER, AGENCY = "m.c1", "m.c2", "p.agency"


def ev(kind: str, case_id: str, when: str, unit: str = COMMUNE, **fields: Any) -> dict[str, Any]:
    return case_event(kind, case_id, unit, at(when), **fields)


def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Hand-worked case and document events; the expected counts are in the tests below."""
    cases: list[dict[str, Any]] = []
    # A: pause across the deadline, resumed with a later deadline, resolved in time -> on_time (March).
    cases += [
        received("A", COMMUNE, at("2021-03-01 08:00"), due_at=at("2021-03-05 17:00")),
        ev("supplement_requested", "A", "2021-03-04 09:00"),
        ev("supplement_received", "A", "2021-03-08 09:00", due_at=at("2021-03-10 17:00")),
        ev("resolved", "A", "2021-03-10 16:00", outcome="approved"),
    ]
    # B: late; the apology's new date does not move the deadline -> late, overdue 03-05, apologised.
    cases += [
        received("B", COMMUNE, at("2021-03-01 08:00"), due_at=at("2021-03-05 17:00"), procedure_code="2.002"),
        ev("apology_issued", "B", "2021-03-06 08:00", due_at=at("2021-03-12 17:00")),
        ev("resolved", "B", "2021-03-11 10:00", outcome="approved"),
    ]
    # C: no deadline: out of every timing KPI.
    cases += [
        received(
            "C",
            COMMUNE,
            at("2021-03-02 08:00"),
            due_at=None,
            channel="in_person",
            service_level=2,
            procedure_code="3.003",
        ),
        ev("resolved", "C", "2021-03-20 08:00", outcome="approved"),
    ]
    # D, E: due 31/03 23:59:59 local; D resolved 23:59 (on time, March), E at 00:01 on 01/04 (late, April,
    # although both are 31/03 in UTC). E went overdue on 31/03 23:59:59 local, without an apology.
    for case_id, done in (("D", "2021-03-31 23:59"), ("E", "2021-04-01 00:01")):
        cases += [
            received(case_id, COMMUNE, at("2021-03-30 08:00"), due_at="2021-03-31T23:59:59+07:00"),
            ev("resolved", case_id, done, outcome="approved"),
        ]
    # F: a rating replaced by a later one, in the next month: counts once, satisfied, in April.
    cases += [
        received("F", COMMUNE, at("2021-03-03 08:00"), due_at=at("2021-03-20 17:00"), synced=True),
        ev("rated", "F", "2021-03-25 08:00", rating="dissatisfied"),
        ev("rated", "F", "2021-04-02 08:00", rating="satisfied"),
    ]
    # G: year boundary: resolved 01/01/2022 00:30 local (31/12/2021 UTC) -> counts in 2022; H refused.
    cases += [
        received("G", COMMUNE, at("2021-12-30 08:00"), due_at=at("2022-01-05 17:00")),
        ev("resolved", "G", "2022-01-01 00:30", outcome="approved"),
        received(
            "H",
            COMMUNE,
            at("2021-03-02 08:00"),
            due_at=at("2021-03-03 17:00"),
            channel="postal",
            service_level=3,
            procedure_code="2.002",
        ),
        ev("refused", "H", "2021-03-02 09:00"),
        ev("synced", "H", "2021-05-01 09:00"),
    ]
    documents = []
    for unit in (COMMUNE, AGENCY):  # 19 of 20 electronic: the commune meets 95%, the agency misses 100%
        documents += [
            document_sent(random_id("vb"), unit, at("2021-03-10 09:00"), medium="electronic")
            for _ in range(19)
        ]
        documents += [document_sent(random_id("vb"), unit, at("2021-03-10 10:00"), medium="paper")]
        documents += [
            document_sent(random_id("vb"), unit, at("2021-03-10 11:00"), medium="paper", secrecy="secret")
        ]
    documents += [
        document_sent(random_id("vb"), COMMUNE, at("2021-03-11 09:00"), medium="both", signed=False)
    ]
    return cases, documents


async def kpis(metrics: ServiceProcess, scope: str, period: str) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(headers=metrics.headers) as client:
        response = await client.get(
            f"http://127.0.0.1:{metrics.port}/api/v1/kpis", params={"scope": scope, "period": period}
        )
    assert response.status_code == 200, response.text
    return {figure["kpi"]: figure for figure in response.json()["kpis"]}


def counts(report: dict[str, dict[str, Any]], kpi: str) -> tuple[int, int | None]:
    return report[kpi]["numerator"], report[kpi]["denominator"]


@pytest.fixture
async def pipeline(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection, viewer_token: str
) -> ServiceProcess:
    await admin_db.execute(
        "TRUNCATE events, event_ids, cases, documents, reports, inspections, kpi_day_cells, procedure_days, "
        "overdue_days, inspected_days"
    )
    await load_registry(database, small_registry(COMMUNE, OTHER))
    await service_runner.start("ingest")
    metrics = await service_runner.start("metrics")
    metrics.headers = bearer(viewer_token)
    return metrics


async def produce_and_settle(
    service_runner: ServiceRunner,
    pipeline: ServiceProcess,
    cases: list[dict[str, Any]],
    documents: list[dict[str, Any]],
) -> None:
    """Send the scenario's case and document events, then wait until the commune's 2021 counts hold them."""
    await produce(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.CASE_EVENTS,
        [encode(e) for e in cases],
    )
    await produce(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.DOCUMENT_EVENTS,
        [encode(d) for d in documents],
    )

    async def settled() -> bool:
        report = await kpis(pipeline, f"unit:{COMMUNE}", "year:2021")
        return counts(report, "paperless_rate") == (19, 21) and counts(report, "on_time_rate")[1] == 4

    await wait_until(settled, timeout=60)


async def test_hand_worked_scenario_shuffled_and_duplicated(
    database: MigratedDatabase, service_runner: ServiceRunner, pipeline: ServiceProcess
) -> None:
    cases, documents = scenario()
    shuffled = cases + random.Random(7).sample(cases, len(cases) // 2)  # duplicates
    random.Random(3).shuffle(shuffled)  # out of order, `resolved` before `received` included
    await produce_and_settle(service_runner, pipeline, shuffled, documents)
    march = await kpis(pipeline, f"unit:{COMMUNE}", "month:2021-03")
    april = await kpis(pipeline, f"unit:{COMMUNE}", "month:2021-04")
    assert counts(march, "on_time_rate") == (2, 3)  # A on time, D on time, B late; C has no deadline
    assert counts(april, "on_time_rate") == (0, 1)  # E, resolved 00:01 local on 01/04
    # B (apologised), E (overdue 31/03, no apology), F (still open, overdue since 20/03)
    assert counts(march, "apology_coverage") == (1, 3)
    assert counts(april, "apology_coverage") == (0, 0)
    assert counts(march, "satisfaction_rate") == (0, 0) and counts(april, "satisfaction_rate") == (1, 1)
    # received in March at level 3-4: A, B, D, E, F (online) and H (postal); C is level 2
    assert counts(march, "online_intake_rate") == (5, 6)
    assert counts(march, "portal_sync_rate") == (2, 6)  # F (flag), H (synced in May) count in March
    assert counts(march, "online_offer_rate") == (2, 3)  # 1.001 and 2.002 online; 3.003 only at level 2
    assert counts(march, "paperless_rate") == (19, 21)  # secret excluded; `both` is not electronic
    assert counts(march, "signed_rate") == (19, 19)
    assert march["paperless_rate"]["status"] == "below"  # 90.5% < 95%
    assert counts(await kpis(pipeline, f"unit:{COMMUNE}", "year:2022"), "on_time_rate") == (1, 1)
    assert counts(await kpis(pipeline, f"unit:{COMMUNE}", "day:2021-03-31"), "on_time_rate") == (1, 1)
    assert counts(await kpis(pipeline, f"unit:{COMMUNE}", "quarter:2021-Q1"), "on_time_rate") == (2, 3)
    assert counts(await kpis(pipeline, f"unit:{COMMUNE}", "ytd:2021-03-31"), "apology_coverage") == (1, 3)
    assert march["overdue_open"]["numerator"] == 1 and march["overdue_open"]["status"] == "below"  # F

    differences = await audit(
        database.dsn("metrics"),
        first=datetime(2021, 1, 1).date(),
        last=datetime(2022, 12, 31).date(),
    )
    assert differences == []


CELL_COLUMNS = {
    "kpi_day_cells": "unit_id, day, kpi, numerator, denominator",
    "procedure_days": "unit_id, day, procedure_code, online",
    "overdue_days": "unit_id, day, case_id, apologized",
    "inspected_days": "unit_id, day",
}


async def live_cells(admin_db: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: [
            tuple(row) for row in await admin_db.fetch(f"SELECT {columns} FROM {table} ORDER BY {columns}")
        ]
        for table, columns in CELL_COLUMNS.items()
    }


async def test_recompute_restores_damaged_cells_month_by_month(
    database: MigratedDatabase,
    service_runner: ServiceRunner,
    pipeline: ServiceProcess,
    admin_db: asyncpg.Connection,
) -> None:
    """`dvc metrics recompute` rebuilds the cells from the raw events a month per progress step, in the
    server: damaged, missing and stray cells come back exactly as the live path computed them, whatever
    the number of parts the case fold is split in."""
    await produce_and_settle(service_runner, pipeline, *scenario())
    pipeline.stop()  # nothing else writes cells while they are compared
    first, last = datetime(2021, 1, 1).date(), datetime(2022, 12, 31).date()
    for workers in (1, 3):  # the case fold in one part, or three folded at once: the same cells
        assert await audit(database.dsn("metrics"), first=first, last=last, workers=workers) == []
    before = await live_cells(admin_db)
    assert before["kpi_day_cells"] and before["procedure_days"] and before["overdue_days"]  # no inspections
    await admin_db.execute("UPDATE kpi_day_cells SET numerator = 0 WHERE kpi = 'on_time_rate'")
    await admin_db.execute("DELETE FROM procedure_days WHERE day < '2021-03-05'")
    await admin_db.execute("DELETE FROM overdue_days")
    await admin_db.execute(
        "INSERT INTO kpi_day_cells (unit_id, day, kpi, numerator, denominator) "
        "VALUES ($1, '2021-07-01', 'signed_rate', 1, 1)",
        OTHER,
    )
    steps: list[tuple[str, int]] = []
    rebuilt = await rebuild_cells(
        database.dsn("metrics"),
        first=first,
        last=last,
        progress=lambda done, total: steps.append((done, total)),
    )
    assert await live_cells(admin_db) == before
    assert rebuilt == {table: len(rows) for table, rows in before.items()}
    months = [done for done, _ in steps if "recomputed 20" in done]
    assert months[0].endswith("recomputed 2021-03") and months == sorted(months, key=lambda m: m[-7:])
    assert any(month.endswith("recomputed 2022-01") for month in months)  # G, resolved 01/01/2022
    assert len(steps) == steps[-1][1]  # the bar ends full


async def test_audit_recomputes_passed_deadlines_without_a_broker(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    """`dvc metrics audit` brings the cells of passed deadlines up to date itself and publishes nothing:
    it needs no broker, and it leaves the sweep's mark to the metrics service, which publishes the counts."""
    await admin_db.execute(
        "TRUNCATE events, event_ids, cases, documents, reports, inspections, kpi_day_cells, procedure_days, "
        "overdue_days, inspected_days, sweeper_state"
    )
    await load_registry(database, small_registry(COMMUNE, OTHER))
    await service_runner.start("ingest")  # no metrics service: the deadline below is never swept
    now = datetime.now(UTC)
    case = received(
        "Z", COMMUNE, (now - timedelta(days=5)).isoformat(), due_at=(now - timedelta(days=1)).isoformat()
    )
    await produce(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.CASE_EVENTS, [encode(case)]
    )

    async def stored() -> bool:
        return bool(await admin_db.fetchval("SELECT count(*) FROM cases WHERE case_id = 'Z'"))

    await wait_until(stored, timeout=60)
    await audit(
        database.dsn("metrics"), first=datetime(2000, 1, 1).date(), last=datetime(2099, 12, 31).date()
    )
    assert await admin_db.fetchval("SELECT count(*) FROM overdue_days WHERE case_id = 'Z'") == 1
    assert await admin_db.fetchval("SELECT swept_until FROM sweeper_state") is None


async def test_paperless_target_is_95_for_communes_and_100_for_the_province(
    service_runner: ServiceRunner, pipeline: ServiceProcess
) -> None:
    documents = []
    for unit in (OTHER, AGENCY):
        documents += [document_sent(random_id("vb"), unit, at("2021-06-10 09:00")) for _ in range(19)]
        documents += [document_sent(random_id("vb"), unit, at("2021-06-10 10:00"), medium="paper")]
    await produce(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.DOCUMENT_EVENTS,
        [encode(d) for d in documents],
    )

    async def settled() -> bool:
        return counts(await kpis(pipeline, f"unit:{AGENCY}", "month:2021-06"), "paperless_rate") == (19, 20)

    await wait_until(settled, timeout=60)
    commune = await kpis(pipeline, f"unit:{OTHER}", "month:2021-06")
    agency = await kpis(pipeline, f"unit:{AGENCY}", "month:2021-06")
    assert (commune["paperless_rate"]["target"], commune["paperless_rate"]["status"]) == (0.95, "meets")
    assert (agency["paperless_rate"]["target"], agency["paperless_rate"]["status"]) == (1.0, "below")
    level = await kpis(pipeline, "level:commune", "month:2021-06")
    province = await kpis(pipeline, "province", "month:2021-06")
    subtree = await kpis(pipeline, "subtree:p.district", "month:2021-06")
    assert counts(level, "paperless_rate") == (19, 20) and counts(subtree, "paperless_rate") == (19, 20)
    assert counts(province, "paperless_rate") == (38, 40)


async def test_a_deadline_passing_without_events_counts_within_a_minute(
    service_runner: ServiceRunner, pipeline: ServiceProcess
) -> None:
    now = datetime.now(UTC)
    case_id = random_id("hs")
    soon = (now + timedelta(seconds=3)).isoformat()
    events = [received(case_id, COMMUNE, now.isoformat(), due_at=soon)]
    await produce(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.CASE_EVENTS,
        [encode(e) for e in events],
    )
    local_day = (now + timedelta(hours=7)).date()

    async def overdue() -> bool:
        async with httpx.AsyncClient(headers=pipeline.headers) as client:
            listed = (
                await client.get(f"http://127.0.0.1:{pipeline.port}/api/v1/units/{COMMUNE}/overdue")
            ).json()
        report = await kpis(pipeline, f"unit:{COMMUNE}", f"day:{local_day}")
        return [c["case_id"] for c in listed] == [case_id] and counts(report, "apology_coverage") == (0, 1)

    await wait_until(overdue, timeout=60, interval=1)
    resolved = ev("resolved", case_id, "2000-01-01 00:00", outcome="approved")
    resolved["occurred_at"] = datetime.now(UTC).isoformat()
    await produce(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.CASE_EVENTS, [encode(resolved)]
    )

    async def cleared() -> bool:
        report = await kpis(pipeline, f"unit:{COMMUNE}", f"month:{local_day:%Y-%m}")
        return report["overdue_open"]["numerator"] == 0 and counts(report, "on_time_rate") == (0, 1)

    await wait_until(cleared, timeout=30)


async def test_bad_parameters_get_400_never_500(pipeline: ServiceProcess) -> None:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{pipeline.port}", headers=pipeline.headers
    ) as client:
        for params in (
            {"scope": "unit:nope", "period": "month:2021-03"},
            {"scope": "galaxy", "period": "year:2021"},
            {"scope": "province", "period": "month:2021-13"},
            {"scope": "province", "period": "week:3"},
            {"scope": "province"},
            {"scope": "level:planet", "period": "year:2021"},
        ):
            response = await client.get("/api/v1/kpis", params=params)
            assert response.status_code == 400, (params, response.text)
            assert response.json()["detail"]
        assert (await client.get("/api/v1/units/nope/overdue")).status_code == 404
        units = (await client.get("/api/v1/units")).json()
        assert {u["unit_id"] for u in units} == {"p", "p.agency", "p.district", COMMUNE, OTHER}
        assert (await client.get("/openapi.json")).json()["paths"].keys() >= {"/api/v1/kpis", "/api/v1/units"}


async def test_prometheus_series_are_bounded_by_the_registry(
    service_runner: ServiceRunner, pipeline: ServiceProcess
) -> None:
    now = datetime.now(UTC)
    events = [
        received(random_id("hs"), COMMUNE, now.isoformat(), due_at=None, channel="online", service_level=4),
        received(random_id("hs"), "not-a-unit", now.isoformat(), due_at=None),
    ]
    await produce(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.CASE_EVENTS,
        [encode(e) for e in events],
    )

    async def exported() -> list[str]:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{pipeline.port}/metrics")).text
        return [line for line in text.splitlines() if line.startswith("dvc_kpi_numerator{")]

    async def counted() -> bool:
        return any(
            f'unit_id="{COMMUNE}"' in line
            and 'kpi="online_intake_rate"' in line
            and 'period="month"' in line
            and line.endswith(" 1.0")
            for line in await exported()
        )

    await wait_until(counted, timeout=60, interval=1)
    series = await exported()
    units = {"p", "p.agency", "p.district", COMMUNE, OTHER}
    assert len(series) == len(units) * len(KPIS) * 2  # every registry unit, every KPI, month and year
    assert not any("not-a-unit" in line for line in series)
    assert {line.split('unit_id="', 1)[1].split('"', 1)[0] for line in series} == units
