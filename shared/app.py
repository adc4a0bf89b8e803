"""Wire one process: a Kafka broker with Prometheus middleware, a database pool, health routes."""

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from faststream import ContextRepo
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY, make_asgi_app

from shared.config import Settings
from shared.db import open_pool


def create_broker(service_name: str, settings: Settings) -> KafkaBroker:
    """Create the broker: idempotent producer, metrics middleware, graceful stop after the batch in hand."""
    return KafkaBroker(
        settings.KAFKA_BOOTSTRAP_SERVERS,
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
    context: Mapping[str, Any] | None = None,
    consumer_ready: Callable[[], bool] = lambda: True,
) -> AsgiFastStream:
    """Build the ASGI app of a consumer service: /metrics, /healthz and /readyz next to the broker."""
    broker = create_broker(service_name, settings)
    broker.include_router(router, prefix=settings.TOPIC_PREFIX)
    resources: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(repo: ContextRepo) -> AsyncIterator[None]:
        async with open_pool(settings.DATABASE_URL.get_secret_value()) as pool:
            resources["pool"] = pool
            repo.set_global("pool", pool)
            repo.set_global("settings", settings)
            repo.set_global("topic_prefix", settings.TOPIC_PREFIX)
            for key, value in (context or {}).items():
                repo.set_global(key, value)
            yield

    @get
    async def healthz(_scope: Any) -> AsgiResponse:
        return AsgiResponse(b"ok", status_code=200)

    @get
    async def readyz(_scope: Any) -> AsgiResponse:
        ready = consumer_ready() and await database_answers(resources.get("pool"))
        return AsgiResponse(b"ready" if ready else b"not ready", status_code=200 if ready else 503)

    return AsgiFastStream(
        broker,
        asgi_routes=[("/metrics", make_asgi_app(REGISTRY)), ("/healthz", healthz), ("/readyz", readyz)],
        lifespan=lifespan,
    )
