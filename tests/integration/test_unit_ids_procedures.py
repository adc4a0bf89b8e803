"""Contract v1.1 unit ids and per-procedure KPIs end to end (Kafka -> ingest -> metrics -> API, page, links)."""

import html
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli.procedures import Catalogue, Procedure, store_catalogue
from services.alerts.directory import Unit as Recipient
from services.alerts.notices import Links
from shared import topics
from shared.units import Head, Level, Registry, Unit
from tests.conftest import (
    MigratedDatabase,
    ServiceProcess,
    ServiceRunner,
    bearer,
    load_registry,
    produce,
    wait_until,
)
from tests.factories import case_event, encode, random_id, received

pytestmark = pytest.mark.integration

PAGES_KEY = "test-pages-key-unit-ids-0123456789abcdef"
ROOT, NATIONAL = "000.00.00.H52", "000.00.17.H52"
ODD = [
    NATIONAL.lower(),  # case-sensitive: a different unit from 000.00.17.H52
    "UBND xã Cẩm Xuyên / Phòng Tư pháp",  # spaces, a slash, Vietnamese letters
    "<script>alert('x')</script>&?#%20",  # markup and URL metacharacters
    "H52.01 Đức Thọ",
]
KNOWN = {"1.001193": ("Đăng ký khai sinh", "Hộ tịch"), "2.000815": ("Chứng thực bản sao", "Chứng thực")}
UNKNOWN_CODE = "9.999999"  # not in the catalogue: kept and shown, never rejected


def registry() -> Registry:
    levels = [
        Level(id="province", name="Cấp tỉnh", name_en="Province"),
        Level(id="commune", name="Cấp xã", name_en="Commune"),
    ]

    def unit(unit_id: str, level: str, parent: str | None) -> Unit:
        return Unit(
            id=unit_id,
            name=f"Đơn vị {unit_id}",
            level=level,
            parent=parent,
            head=Head(name="Chủ tịch", email=f"u{abs(hash(unit_id))}@dvc-monitor.example"),
        )

    units = [unit(ROOT, "province", None), unit(NATIONAL, "commune", ROOT)]
    units += [unit(odd, "commune", ROOT) for odd in ODD]
    return Registry(registry="ids-v1.1", levels=levels, units=units)


def march_cases(rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, Counter[str]]]:
    """Random cases of NATIONAL in March 2021 and the expected counts per procedure, computed here."""
    events: list[dict[str, Any]] = []
    expected: dict[str, Counter[str]] = {}
    for number in range(60):
        code = rng.choice([*KNOWN, UNKNOWN_CODE])
        case_id = f"HS-{number}-{random_id('x')}"
        day = rng.randint(1, 20)
        received_at = datetime(2021, 3, day, 8, tzinfo=UTC)
        due = received_at + timedelta(days=rng.randint(1, 5))
        events.append(
            received(case_id, NATIONAL, received_at.isoformat(), due_at=due.isoformat(), procedure_code=code)
        )
        counts = expected.setdefault(code, Counter())
        fate = rng.choice(["early", "on_time", "late", "open_overdue", "open_overdue_apology"])
        if fate in ("early", "on_time", "late"):
            done = {"early": received_at + timedelta(hours=1), "on_time": due - timedelta(hours=1)}.get(
                fate, due + timedelta(days=2)
            )
            events.append(case_event("resolved", case_id, NATIONAL, done.isoformat(), outcome="approved"))
            counts["resolved"] += 1
            counts["on_time"] += fate != "late"
        if fate not in (
            "early",
            "on_time",
        ):  # late ones and open ones went overdue at their deadline, in March
            counts["overdue"] += 1
        if fate.startswith("open"):
            counts["open_overdue"] += 1
        if fate == "open_overdue_apology":
            apology = due + timedelta(hours=2)
            events.append(
                case_event(
                    "apology_issued",
                    case_id,
                    NATIONAL,
                    apology.isoformat(),
                    due_at=(due + timedelta(days=9)).isoformat(),
                )
            )
            counts["apologized"] += 1
    return events, expected


@pytest.fixture
async def pipeline(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection, viewer_token: str
) -> ServiceProcess:
    await admin_db.execute(
        "TRUNCATE events, event_ids, cases, documents, kpi_day_cells, procedure_days, overdue_days"
    )
    await load_registry(database, registry())
    await store_catalogue(
        admin_db,
        Catalogue(
            catalogue="test",
            procedures=[Procedure(code=c, name=n, field=f, level="commune") for c, (n, f) in KNOWN.items()],
        ),
    )
    await service_runner.start("ingest")
    metrics = await service_runner.start("metrics", DVC_PAGES_SIGNING_KEY=PAGES_KEY)
    metrics.headers = bearer(viewer_token)
    return metrics


async def get(metrics: ServiceProcess, path: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{metrics.port}", headers=metrics.headers
    ) as client:
        return await client.get(path, params=params)


def counts(figures: list[dict[str, Any]], kpi: str) -> tuple[int, int | None]:
    found = next(f for f in figures if f["kpi"] == kpi)
    return found["numerator"], found["denominator"]


async def test_national_and_odd_unit_ids_and_per_procedure_counts(
    service_runner: ServiceRunner, pipeline: ServiceProcess
) -> None:
    rng = random.Random(14)
    events, expected = march_cases(rng)
    now = datetime.now(UTC)
    for odd in ODD:  # one open case each, overdue since yesterday
        events.append(
            received(
                random_id("hs"),
                odd,
                (now - timedelta(days=3)).isoformat(),
                due_at=(now - timedelta(days=1)).isoformat(),
            )
        )
    shuffled = events + rng.sample(events, len(events) // 3)  # duplicates
    rng.shuffle(shuffled)
    await produce(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.CASE_EVENTS,
        [encode(e) for e in shuffled],
    )
    total = sum(c["resolved"] for c in expected.values())

    async def settled() -> bool:
        month = (await get(pipeline, "/api/v1/kpis", scope=f"unit:{NATIONAL}", period="month:2021-03")).json()
        odd_ok = True
        for odd in ODD:
            odd_report = await get(pipeline, "/api/v1/kpis", scope=f"unit:{odd}", period=f"month:{now:%Y-%m}")
            odd_ok = odd_ok and counts(odd_report.json()["kpis"], "overdue_open")[0] == 1
        return counts(month["kpis"], "on_time_rate")[1] == total and odd_ok

    await wait_until(settled, timeout=90, interval=1)

    # by=procedure for a unit and a month equals the counts computed above from the events sent
    report = (
        await get(pipeline, "/api/v1/kpis", scope=f"unit:{NATIONAL}", period="month:2021-03", by="procedure")
    ).json()
    groups = {g["key"]: g for g in report["groups"]}
    assert set(groups) == set(expected)
    for code, want in expected.items():
        got = groups[code]["kpis"]
        assert counts(got, "on_time_rate") == (want["on_time"], want["resolved"]), code
        assert counts(got, "apology_coverage") == (want["apologized"], want["overdue"]), code
        assert counts(got, "overdue_open")[0] == want["open_overdue"], code
    assert groups[UNKNOWN_CODE]["in_catalogue"] is False and groups[UNKNOWN_CODE]["name"].startswith(
        "chưa có trong danh mục"
    )
    assert groups["1.001193"]["name"] == "Đăng ký khai sinh" and groups["1.001193"]["field"] == "Hộ tịch"
    for kpi in ("on_time_rate", "apology_coverage", "online_intake_rate"):  # the groups add up to the unit
        summed = [sum(x) for x in zip(*(counts(g["kpis"], kpi) for g in report["groups"]), strict=True)]
        assert tuple(summed) == counts(report["kpis"], kpi), kpi

    by_field = (
        await get(pipeline, "/api/v1/kpis", scope="province", period="month:2021-03", by="field")
    ).json()
    fields = {g["key"]: g for g in by_field["groups"]}
    assert set(fields) == {"Hộ tịch", "Chứng thực", None}
    assert counts(fields[None]["kpis"], "on_time_rate")[1] == expected[UNKNOWN_CODE]["resolved"]

    # every odd id: URL-encoded scope and path, Prometheus label, a signed page link as mailed
    async with httpx.AsyncClient() as client:
        exposition = (await client.get(f"http://127.0.0.1:{pipeline.port}/metrics")).text
    labelled = {
        sample.labels["unit_id"]
        for family in text_string_to_metric_families(exposition)
        if family.name == "dvc_kpi_numerator"
        for sample in family.samples
    }
    assert labelled == {ROOT, NATIONAL, *ODD}
    links = Links(
        public_url="http://alerts.example",
        grafana_url="http://grafana.example",
        signing_key="ack-key",
        grafana_enabled=False,
        escalation_seconds=60,
        pages_url=f"http://127.0.0.1:{pipeline.port}",
        pages_key=PAGES_KEY,
    )
    for odd in ODD:
        overdue = await get(pipeline, f"/api/v1/units/{quote(odd, safe='')}/overdue")
        assert overdue.status_code == 200 and len(overdue.json()) == 1, (odd, overdue.text)
        recipient = Recipient(odd, "x", "commune", ROOT, "Chủ tịch", "h@dvc-monitor.example", None)
        (_, page_link), (_, board_link) = links.unit_links(odd, recipient, now)
        assert board_link.endswith("var-unit=" + quote(odd, safe=""))
        async with httpx.AsyncClient() as client:
            page = await client.get(page_link)
        assert page.status_code == 200, (odd, page_link, page.text[:300])
        assert f"Đơn vị {odd}" in html.unescape(page.text) and "<script>alert" not in page.text
        # the page's procedure section lists this unit's one overdue file (code 1.001, not in the catalogue)
        section = html.unescape(page.text.split('id="late-procedures"', 1)[1].split("</table>", 1)[0])
        assert 'data-procedure="1.001"' in section and "chưa có trong danh mục" in section
        forged = links.unit_page_url(NATIONAL, recipient, now).replace(
            quote(NATIONAL, safe=""), quote(odd, safe="")
        )
        async with httpx.AsyncClient() as client:
            assert (await client.get(forged)).status_code == 403  # a link of another unit opens nothing
