"""Alerts service: `python -m services.alerts.main`."""

from functools import partial

from fastapi import FastAPI

from services.alerts import api
from services.alerts.calendar import parse_office_hours
from services.alerts.delivery import send_forever
from services.alerts.grouping import GROUPER, release_due
from services.alerts.handlers import ASSIGNMENT, CONSUMER, router
from services.alerts.lifecycle import Engine
from services.alerts.tasks import TIMER, tick
from shared import topics
from shared.app import create_app, serve
from shared.backoff import periodic
from shared.config import AlertsSettings
from shared.notifications import CHANNELS
from shared.targets import Targets


def create(settings: AlertsSettings) -> FastAPI:
    """Build the alerts app."""
    parse_office_hours(settings.ALERTS_OFFICE_HOURS)  # fail at start, not at the first digest
    engine = Engine.from_settings(settings, Targets())
    return create_app(
        "alerts",
        router,
        settings,
        api_router=api.router,
        title="dvc-monitor alerts: cảnh báo đơn vị không đạt chỉ tiêu / units below target",
        state={"engine": engine},
        background=[
            periodic(partial(tick, engine=engine), every=settings.ALERTS_EVALUATION_SECONDS, retrying=TIMER),
            periodic(
                partial(release_due, engine=engine), every=settings.ALERTS_SEND_POLL_SECONDS, retrying=GROUPER
            ),
            *(partial(send_forever, engine=engine, channel=channel) for channel in CHANNELS),
        ],
        consumed={"dvc-alerts": [topics.KPI_UPDATES]},
        consumer_ready=lambda: (
            bool(ASSIGNMENT.partitions) and not (CONSUMER.waiting or TIMER.waiting or GROUPER.waiting)
        ),
    )


if __name__ == "__main__":
    settings = AlertsSettings()
    serve(create(settings), settings)
