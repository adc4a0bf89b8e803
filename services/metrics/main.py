"""Metrics service: `python -m services.metrics.main`."""

import logging
from functools import partial

import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY

from services.metrics import api
from services.metrics.exporter import KpiCollector
from services.metrics.handlers import ASSIGNMENT, router, sweep_deadlines_forever
from shared.app import create_api_app
from shared.config import Settings
from shared.targets import Targets


def create() -> FastAPI:
    """Build the metrics app from the environment."""
    settings = Settings()
    targets = Targets()
    collector = KpiCollector()
    REGISTRY.register(collector)
    return create_api_app(
        "metrics",
        router,
        api.router,
        settings,
        title="dvc-monitor metrics: chỉ số theo đơn vị / KPIs per unit",
        state={"targets": targets},
        background=[sweep_deadlines_forever, partial(collector.refresh_forever, targets=targets)],
        consumer_ready=lambda: bool(ASSIGNMENT.partitions),
    )


if __name__ == "__main__":
    settings = Settings()
    logging.basicConfig(level=settings.LOG_LEVEL)
    uvicorn.run(
        create(),
        host=settings.HTTP_HOST,
        port=settings.HTTP_PORT,
        log_level=settings.LOG_LEVEL.lower(),
        timeout_graceful_shutdown=90,
    )
