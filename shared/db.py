"""Database plumbing: an asyncpg pool with JSON codecs, opened in a lifespan, never at import time."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson


def _encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def init_connection(connection: asyncpg.Connection) -> None:
    """Encode and decode json/jsonb with orjson."""
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=_encode_json, decoder=orjson.loads, schema="pg_catalog"
        )


@asynccontextmanager
async def open_pool(dsn: str, *, min_size: int = 1, max_size: int = 5) -> AsyncIterator[asyncpg.Pool]:
    """Open a pool for the lifetime of the block."""
    async with asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, command_timeout=60
    ) as pool:
        yield pool
