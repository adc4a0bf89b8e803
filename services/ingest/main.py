"""Ingest service: `python -m services.ingest.main`."""

from faststream.asgi import AsgiFastStream

from services.ingest.handlers import ASSIGNMENT, CONSUMER, UnitRegistry, router
from shared.app import create_app, serve
from shared.config import Settings


def create(settings: Settings) -> AsgiFastStream:
    """Build the ingest app."""
    return create_app(
        "ingest",
        router,
        settings,
        context={"registry": UnitRegistry()},
        consumer_ready=lambda: bool(ASSIGNMENT.partitions) and not CONSUMER.waiting,
    )


if __name__ == "__main__":
    settings = Settings()
    serve(create(settings), settings)
