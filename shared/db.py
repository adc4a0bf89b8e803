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


# Errors that say the database (or the way to it) is unwell, not that the data is bad: wait and retry,
# never dead-letter. By SQLSTATE, then by SQLSTATE class (PostgreSQL manual, appendix A).
STORAGE_FAILURE_STATES = {
    "25006": "read_only",  # read_only_sql_transaction: a standby after a failover
    "42501": "permission",  # insufficient_privilege: a bad migration or grant
    "53100": "disk_full",
    "53200": "out_of_memory",
    "53300": "too_many_connections",
    "40001": "serialization",
    "40P01": "deadlock",
    "55P03": "lock_not_available",
    "57014": "query_canceled",  # statement_timeout
    "57P01": "shutdown",  # admin_shutdown
    "57P02": "shutdown",  # crash_shutdown
    "57P03": "starting",  # cannot_connect_now
}
STORAGE_FAILURE_CLASSES = {
    "08": "connection",
    "40": "rollback",
    "53": "resources",
    "57": "operator",
    "58": "system",
    "XX": "internal",
}


def storage_failure_kind(exc: BaseException) -> str | None:
    """Return the kind of an infrastructure failure (wait, then retry the same work), or None for an
    error the data may cause (a bad value, a constraint): only those may be pinned on one event."""
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return STORAGE_FAILURE_STATES.get(state) or STORAGE_FAILURE_CLASSES.get(state[:2])
    if isinstance(exc, asyncpg.InterfaceError):
        # A value asyncpg could not encode is the data's fault; the rest (connection closed, pool
        # closing, another operation in progress) is the client's plumbing.
        return None if isinstance(exc, ValueError) else "client"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return "connection"
    return None
