"""Ingest service: `python -m services.ingest.main`."""

from functools import partial

from fastapi import FastAPI

from services.ingest.handlers import ASSIGNMENT, router
from services.ingest.storage_policy import CONSUMER
from services.ingest.validation import unit_ids_cache
from services.ingest.watermarks import store_lag_marks
from shared import topics
from shared.app import create_app, serve
from shared.config import Settings


def create(settings: Settings) -> FastAPI:
    """Build the ingest app."""
    return create_app(
        "ingest",
        router,
        settings,
        state={"registry": unit_ids_cache()},
        consumer_ready=lambda: bool(ASSIGNMENT.partitions) and not CONSUMER.waiting,
        consumed={"dvc-ingest": [topics.CASE_EVENTS, topics.DOCUMENT_EVENTS]},
        on_lag=partial(store_lag_marks, grace=settings.WATERMARK_GRACE_SECONDS),
    )


if __name__ == "__main__":
    settings = Settings()
    serve(create(settings), settings)
