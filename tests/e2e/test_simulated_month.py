"""End to end: simulator -> Kafka -> ingest -> metrics -> alerts -> SMTP, for a simulated month with bad input."""

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from cli.sim.publish import publish
from cli.sim.stream import generate_events, truth_line
from cli.units import read_registry
from shared import topics
from shared.kpis import KPIS
from tests.conftest import MigratedDatabase, ServiceRunner, load_registry, read_topic, wait_until
from tests.e2e.truth import expected_counts

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REGISTRY = Path(__file__).resolve().parents[2] / "deploy" / "units" / "ha-tinh-2021.yaml"
MONTH = "2021-03"


async def test_a_simulated_month_matches_the_ground_truth(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection
) -> None:
    registry = read_registry(REGISTRY)
    await admin_db.execute(
        "TRUNCATE events, event_ids, cases, documents, kpi_day_cells, procedure_days, overdue_days"
    )
    await load_registry(database, registry)
    events = list(
        generate_events(
            registry,
            start=date(2021, 3, 1),
            days=31,
            seed=5,
            scale=0.03,
            bad_rate=0.01,
            duplicate_rate=0.01,
            shuffle_window=50,
            id_prefix="e2e.",
        )
    )
    truth = [orjson.loads(truth_line(event)) for event in events]
    bad = [line for line in truth if line["expected_reason"] is not None]
    good_ids = {line["event"]["event_id"] for line in truth if line["expected_reason"] is None}
    assert len(bad) > 20 and len(good_ids) > 5_000

    await service_runner.start("ingest")
    metrics = await service_runner.start("metrics")
    await publish(events, bootstrap=service_runner.kafka_bootstrap, topic_prefix=service_runner.topic_prefix)

    async def all_stored() -> bool:
        return int(await admin_db.fetchval("SELECT count(*) FROM event_ids")) >= len(good_ids)

    await wait_until(all_stored, timeout=180, interval=1)
    assert {row["event_id"] for row in await admin_db.fetch("SELECT event_id FROM event_ids")} == good_ids

    letters = await read_topic(
        service_runner.kafka_bootstrap, service_runner.topic_prefix + topics.DEAD_LETTERS, expect=len(bad)
    )
    assert Counter(dict(r.headers)["dvc-reason"].decode() for r in letters) == Counter(
        line["expected_reason"] for line in bad
    )

    expected = expected_counts(truth, MONTH, datetime.now(UTC))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics.port}", timeout=30) as client:

        async def province_settled() -> bool:
            report = (
                await client.get("/api/v1/kpis", params={"scope": "province", "period": f"month:{MONTH}"})
            ).json()
            figures = {f["kpi"]: f for f in report["kpis"]}
            want = sum(d for (_, kpi), (_, d) in expected.items() if kpi == "on_time_rate")
            return figures["on_time_rate"]["denominator"] == want

        await wait_until(province_settled, timeout=120, interval=1)
        mismatches = []
        for unit in registry.units:
            report = (
                await client.get(
                    "/api/v1/kpis", params={"scope": f"unit:{unit.id}", "period": f"month:{MONTH}"}
                )
            ).json()
            for figure in report["kpis"]:
                if figure["kpi"] == "overdue_open":
                    continue
                want = expected.get((unit.id, figure["kpi"]), (0, 0))
                if (figure["numerator"], figure["denominator"]) != want:
                    mismatches.append(
                        (unit.id, figure["kpi"], (figure["numerator"], figure["denominator"]), want)
                    )
        assert mismatches == []
        assert {kpi.id for kpi in KPIS} - {"overdue_open"} <= {kpi for (_, kpi) in expected}
