"""Wire one process: a Kafka broker with Prometheus middleware, a database pool, health routes."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import uvicorn
from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from shared.config import Settings
from shared.consuming import DeadLetterProducer
from shared.db import open_pool
from shared.kafka_auth import broker_security
from shared.lag import LagMonitor, OnMeasured

logger = logging.getLogger(__name__)

BackgroundTask = Callable[[asyncpg.Pool], Coroutine[Any, Any, None]]
ConsumedTopics = Mapping[str, Sequence[str]]  # consumer group -> its topics (unprefixed)
LagHandler = Callable[[asyncpg.Pool], OnMeasured]


def lag_task(
    service_name: str, settings: Settings, consumed: ConsumedTopics, on_lag: LagHandler | None
) -> BackgroundTask:
    """The background task measuring the service's consumer lag (and handing it to `on_lag`)."""

    async def run(pool: asyncpg.Pool) -> None:
        handler = on_lag(pool) if on_lag is not None else None
        await LagMonitor(settings, service_name, consumed, on_measured=handler).run_forever()

    return run


class PartitionAssignment(ConsumerRebalanceListener):  # type: ignore[misc]
    """Track the partitions a consumer owns (readiness needs at least one)."""

    def __init__(self) -> None:
        self.partitions: set[TopicPartition] = set()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.partitions -= set(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.partitions |= set(assigned)


def include_router(broker: KafkaBroker, router: KafkaRouter, prefix: str) -> None:
    """Include a router under the topic prefix; consumer groups get the prefix too, so deployments
    (or test runs) sharing one Kafka cluster under different prefixes never rebalance each other."""
    broker.include_router(router, prefix=prefix)
    for subscriber in broker.subscribers:
        group_id = getattr(subscriber, "group_id", None)
        if group_id and not group_id.startswith(prefix):
            subscriber.group_id = prefix + group_id  # type: ignore[attr-defined]  # KafkaSubscriber's


def create_broker(service_name: str, settings: Settings) -> KafkaBroker:
    """Create the broker: authenticated as the service's principal, idempotent producer, metrics
    middleware, graceful stop after the batch in hand. Topics exist beforehand (`dvc kafka setup`)."""
    return KafkaBroker(
        settings.KAFKA_BOOTSTRAP_SERVERS,
        security=broker_security(settings),
        allow_auto_create_topics=False,
        client_id=f"dvc-{service_name}",
        enable_idempotence=True,
        linger_ms=5,
        graceful_timeout=60.0,
        middlewares=(KafkaPrometheusMiddleware(registry=REGISTRY, app_name=service_name),),
    )


async def database_answers(pool: asyncpg.Pool | None) -> bool:
    """Return True if the database answers a query within two seconds."""
    if pool is None:
        return False
    try:
        async with asyncio.timeout(2):
            return bool(await pool.fetchval("SELECT true"))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False


def create_app(
    service_name: str,
    router: KafkaRouter,
    settings: Settings,
    *,
    api_router: APIRouter | None = None,
    title: str | None = None,
    state: Mapping[str, Any] | None = None,
    background: Sequence[BackgroundTask] = (),
    consumer_ready: Callable[[], bool] = lambda: True,
    consumed: ConsumedTopics | None = None,
    on_lag: LagHandler | None = None,
) -> FastAPI:
    """Build a service: its Kafka broker and background tasks in the lifespan, /metrics, /healthz and
    /readyz, and its JSON API if it has one (OpenAPI at /docs). `state` is on `app.state` and in the
    broker's context, next to `pool`, `settings` and `dead_letters`."""
    broker = create_broker(service_name, settings)
    include_router(broker, router, settings.TOPIC_PREFIX)
    dead_letters = DeadLetterProducer(settings, service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_pool(settings.DATABASE_URL.get_secret_value()) as pool:
            app.state.pool = pool
            app.state.broker = broker
            for key, value in (state or {}).items():
                setattr(app.state, key, value)
                broker.context.set_global(key, value)
            broker.context.set_global("pool", pool)
            broker.context.set_global("settings", settings)
            broker.context.set_global("dead_letters", dead_letters)
            await dead_letters.start()
            await broker.start()
            lag = [lag_task(service_name, settings, consumed, on_lag)] if consumed else []
            tasks = [asyncio.create_task(task(pool)) for task in [*background, *lag]]
            try:
                yield
            finally:
                await cancel_all(tasks)
                await broker.stop()  # waits for the batch in hand (graceful_timeout)
                await dead_letters.stop()
        logger.info("%s shut down gracefully", service_name)

    if api_router is None:  # no API: no documentation routes either
        app = FastAPI(title=title or service_name, lifespan=lifespan, openapi_url=None)
    else:
        app = FastAPI(title=title or service_name, lifespan=lifespan)
        app.include_router(api_router)
    add_operational_routes(app, consumer_ready)
    return app


def add_operational_routes(app: FastAPI, consumer_ready: Callable[[], bool]) -> None:
    """Add /metrics, /healthz and /readyz (ready: the consumer owns partitions and the database answers),
    and answer invalid request parameters with 400."""

    @app.exception_handler(RequestValidationError)
    async def reject_bad_parameters(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": jsonable_errors(exc)})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> PlainTextResponse:
        ready = consumer_ready() and await database_answers(getattr(request.app.state, "pool", None))
        return PlainTextResponse("ready" if ready else "not ready", status_code=200 if ready else 503)


async def cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel background tasks and wait for them to end."""
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Return the validation errors as plain JSON (location and message)."""
    return [{"loc": list(error.get("loc", ())), "msg": str(error.get("msg", ""))} for error in exc.errors()]


GC_YOUNG_THRESHOLD = 50_000  # allocations between young collections (default 700)


def tune_garbage_collector() -> None:
    """Collect young objects less often and never scan the objects that live as long as the process.

    A batch holds thousands of live objects (records, models, rows) until it is stored: with the default
    threshold (700 allocations) the young collection ran dozens of times per batch, and each run promoted
    live objects that the older collections then scanned again. Freezing what exists at start (modules,
    models, the app) keeps the full collections short. Measured on ingest: within the run-to-run noise
    (55.7 and 64.8 against 61.4 µs of CPU per event); kept, with peak RSS at 86-116 MB."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def serve(app: FastAPI, settings: Settings) -> None:
    """Run a service's app with uvicorn; SIGTERM finishes the batch in hand before the process exits."""
    logging.basicConfig(level=settings.LOG_LEVEL)
    tune_garbage_collector()
    uvicorn.run(
        app,
        host=settings.HTTP_HOST,
        port=settings.HTTP_PORT,
        log_level=settings.LOG_LEVEL.lower(),
        timeout_graceful_shutdown=90,
    )
