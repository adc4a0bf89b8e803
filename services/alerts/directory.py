"""The unit directory of alerts: names, levels, parents and heads, reloaded when the registry version changes."""

import time
from dataclasses import dataclass, field

import asyncpg

from services.alerts import queries


@dataclass(frozen=True, slots=True)
class Unit:
    """A registry unit and the head who receives its alerts."""

    unit_id: str
    name: str
    level: str
    parent_id: str | None
    head_name: str
    head_email: str
    head_webhook_url: str | None


@dataclass(slots=True)
class Directory:
    """Units by id, refreshed at most every `max_age` seconds and only when the registry changed."""

    units: dict[str, Unit] = field(default_factory=dict)
    version: int = -2
    checked_at: float = 0.0

    async def refresh(self, connection: asyncpg.Connection, *, max_age: float) -> None:
        """Reload the units if the registry version changed since the last load."""
        if time.monotonic() - self.checked_at < max_age:
            return
        version = await queries.fetch_registry_version(connection)
        if version != self.version:
            rows = await queries.fetch_units(connection)
            self.units = {row["unit_id"]: Unit(**dict(row)) for row in rows}
            self.version = version
        self.checked_at = time.monotonic()

    def parent_of(self, unit: Unit) -> Unit | None:
        """Return the parent unit, if it is in the registry."""
        return self.units.get(unit.parent_id) if unit.parent_id else None
