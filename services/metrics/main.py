"""Metrics service: `python -m services.metrics.main`."""

from functools import partial

from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY

from services.metrics import api, pagereports, pages, reports_api
from services.metrics.exporter import REFRESH_SECONDS, KpiCollector
from services.metrics.handlers import (
    ASSIGNMENT,
    CONSUMER,
    SWEEP_INTERVAL_SECONDS,
    SWEEPER,
    router,
    sweep_deadlines,
)
from shared import topics
from shared.app import create_app, serve
from shared.backoff import periodic
from shared.config import Settings
from shared.targets import Targets


def create(settings: Settings) -> FastAPI:
    """Build the metrics app."""
    targets = Targets()
    collector = KpiCollector()
    REGISTRY.register(collector)
    routes = APIRouter()
    routes.include_router(api.router)
    routes.include_router(reports_api.router)
    routes.include_router(pages.router)  # the web pages
    routes.include_router(pagereports.router)  # report downloads from the pages
    return create_app(
        "metrics",
        router,
        settings,
        api_router=routes,
        title="dvc-monitor metrics: chỉ số theo đơn vị / KPIs per unit",
        state={
            "targets": targets,
            "read_public": settings.API_READ_PUBLIC,
            "pages_key": settings.PAGES_SIGNING_KEY.get_secret_value()
            if settings.PAGES_SIGNING_KEY
            else None,
            "alerts_url": settings.ALERTS_URL,
            "topic_prefix": settings.TOPIC_PREFIX,
            "hold_seconds": settings.WATERMARK_HOLD_SECONDS,
            "due_soon_days": settings.ALERTS_DUE_SOON_WORKING_DAYS,
            "processing_lookback_days": settings.ALERTS_PROCESSING_LOOKBACK_DAYS,
        },
        background=[
            periodic(
                partial(
                    sweep_deadlines,
                    lookback_days=settings.ALERTS_LOOKBACK_DAYS,
                    topic_prefix=settings.TOPIC_PREFIX,
                ),
                every=SWEEP_INTERVAL_SECONDS,
                retrying=SWEEPER,
            ),
            periodic(
                partial(collector.refresh, targets=targets, topic_prefix=settings.TOPIC_PREFIX),
                every=REFRESH_SECONDS,
                retrying=collector.retrying,
            ),
        ],
        consumed={"dvc-metrics": [topics.CHANGES]},
        consumer_ready=lambda: bool(ASSIGNMENT.partitions) and not (CONSUMER.waiting or SWEEPER.waiting),
    )


if __name__ == "__main__":
    settings = Settings()
    serve(create(settings), settings)
