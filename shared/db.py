"""Database plumbing: an asyncpg pool with JSON codecs, opened in a lifespan, never at import time."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson

JSONB_FORMAT_VERSION = b"\x01"  # jsonb's binary wire format: a version byte, then the JSON text


def _encode_jsonb(value: Any) -> bytes:
    return JSONB_FORMAT_VERSION + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def init_connection(connection: asyncpg.Connection) -> None:
    """Encode and decode jsonb with orjson, in binary so that COPY works too."""
    await connection.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )


@asynccontextmanager
async def open_pool(dsn: str, *, min_size: int = 1, max_size: int = 5) -> AsyncIterator[asyncpg.Pool]:
    """Open a pool for the lifetime of the block."""
    async with asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        command_timeout=60,
        # Plan each statement for its arguments: a generic plan cached while a table was still small
        # (a sequential scan) must not outlive the table's growth; planning costs little per batch.
        server_settings={"plan_cache_mode": "force_custom_plan"},
    ) as pool:
        yield pool
