"""Alerts service: `python -m services.alerts.main`."""

from functools import partial

from fastapi import FastAPI

from services.alerts import api
from services.alerts.calendar import parse_office_hours
from services.alerts.delivery import send_forever
from services.alerts.grouping import GROUPER, group_forever
from services.alerts.handlers import ASSIGNMENT, CONSUMER, router
from services.alerts.lifecycle import Engine
from services.alerts.tasks import TIMER, tick_forever
from shared import topics
from shared.app import create_app, serve
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
            partial(tick_forever, engine=engine),
            partial(group_forever, engine=engine),
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
