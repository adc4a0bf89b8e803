"""Ingest service: `python -m services.ingest.main`."""

import logging

import uvicorn
from faststream.asgi import AsgiFastStream

from services.ingest.handlers import ASSIGNMENT, UnitRegistry, router
from shared.app import create_app
from shared.config import Settings


def create() -> AsgiFastStream:
    """Build the ingest app from the environment."""
    settings = Settings()
    return create_app(
        "ingest",
        router,
        settings,
        context={"registry": UnitRegistry()},
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
