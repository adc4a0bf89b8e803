"""The unit directory of alerts: names, levels, parents and heads, reloaded when the registry version changes."""

from dataclasses import dataclass

import asyncpg

from services.alerts import queries
from shared.registry import RegistryCache


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


async def load_units(connection: asyncpg.Connection) -> dict[str, Unit]:
    """Return the registry's units by id."""
    return {row["unit_id"]: Unit(**dict(row)) for row in await queries.fetch_units(connection)}


class Directory(RegistryCache[dict[str, Unit]]):
    """Units by id: the shared registry cache (`refresh`) with the lookups alerts needs."""

    def __init__(self) -> None:
        super().__init__(load=load_units, value={})

    @property
    def units(self) -> dict[str, Unit]:
        """The units by id, as last loaded."""
        return self.value

    def parent_of(self, unit: Unit) -> Unit | None:
        """Return the parent unit, if it is in the registry."""
        return self.value.get(unit.parent_id) if unit.parent_id else None
