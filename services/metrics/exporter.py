"""Prometheus exposition of the KPI counts, read from PostgreSQL (cached) so every instance agrees."""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.metrics import queries
from shared.backoff import Retrying
from shared.kpis import KPIS
from shared.periods import current_periods, local_today
from shared.targets import Targets
from shared.watermark import read_completeness

logger = logging.getLogger(__name__)
REFRESH_SECONDS = 5.0


class KpiCollector(Collector):
    """Numerator, denominator and target per registry unit, KPI and current period (month, year)."""

    def __init__(self) -> None:
        self.families: list[GaugeMetricFamily] = []
        self.retrying = Retrying("kpi_snapshot", logger)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the last snapshot; the label set is bounded by the registry and the KPI list."""
        yield from self.families

    async def refresh(self, pool: asyncpg.Pool, targets: Targets, topic_prefix: str = "") -> None:
        """Read the current month's and year's counts of every registry unit in two queries, as of the
        completeness watermark (which also sets dvc_data_as_of_timestamp_seconds)."""
        now = datetime.now(UTC)
        today = local_today()
        labels = ["unit_id", "kpi", "period"]
        numerator = GaugeMetricFamily(
            "dvc_kpi_numerator", "KPI numerator for the current period (local time).", labels=labels
        )
        denominator = GaugeMetricFamily(
            "dvc_kpi_denominator", "KPI denominator for the current period.", labels=labels
        )
        target = GaugeMetricFamily(
            "dvc_kpi_target", "KPI target in force for the unit this year.", labels=["unit_id", "kpi"]
        )
        info = GaugeMetricFamily(
            "dvc_unit_info", "Registry units (value 1).", labels=["unit_id", "level", "parent_id"]
        )
        targets.reload_if_changed()
        async with pool.acquire() as connection:
            as_of = (await read_completeness(connection, topic_prefix=topic_prefix, now=now)).as_of
            units = await queries.fetch_units(connection)
            for period in current_periods(today):
                rollups = await queries.fetch_unit_rollups(
                    connection, first=period.first, last=period.last, now=as_of
                )
                for unit in units:
                    for kpi in KPIS:
                        n, d = rollups.get((unit["unit_id"], kpi.id), (0, 0))
                        key = [unit["unit_id"], kpi.id, period.name.partition(":")[0]]
                        numerator.add_metric(key, n)
                        denominator.add_metric(key, d)
        for unit in units:
            info.add_metric([unit["unit_id"], unit["level"], unit["parent_id"] or ""], 1)
            for kpi in KPIS:
                rule = targets.for_unit(kpi.id, unit_id=unit["unit_id"], level=unit["level"], year=today.year)
                if rule is not None:
                    target.add_metric([unit["unit_id"], kpi.id], rule.value)
        stamp = GaugeMetricFamily("dvc_kpi_snapshot_timestamp_seconds", "Unix time of the KPI snapshot.")
        stamp.add_metric([], now.timestamp())
        self.families = [numerator, denominator, target, info, stamp]
