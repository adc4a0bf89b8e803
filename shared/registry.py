"""The unit registry as the services read it: a cached view, reloaded when the registry version changes.

`dvc units load` bumps the one row of `registry_version` (1 for the first load). A registry that was
never loaded has version 0, a real state that is cached like any other (an empty view); the cache
starts at `NEVER_LOADED` (-1), which no stored version equals, so its first refresh always loads.
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import asyncpg

T = TypeVar("T")
NEVER_LOADED = -1


async def fetch_registry_version(connection: asyncpg.Connection) -> int:
    """Return the registry version (0 when no registry was ever loaded)."""
    return int(await connection.fetchval("SELECT coalesce(max(version), 0) FROM registry_version"))


@dataclass(slots=True)
class RegistryCache(Generic[T]):
    """A view of the registry (`load` builds it), reloaded at most every `max_age` seconds and only
    when the registry version changed (no restart needed)."""

    load: Callable[[asyncpg.Connection], Awaitable[T]]
    value: T
    version: int = NEVER_LOADED
    checked_at: float = 0.0

    def due(self, max_age: float) -> bool:
        """Return True if the version was last checked `max_age` seconds ago or more."""
        return time.monotonic() - self.checked_at >= max_age

    async def refresh(self, connection: asyncpg.Connection, *, max_age: float) -> None:
        """Reload the view if the stored version changed, checking at most every `max_age` seconds."""
        if not self.due(max_age):
            return
        version = await fetch_registry_version(connection)
        if version != self.version:
            self.value = await self.load(connection)
            self.version = version
        self.checked_at = time.monotonic()
