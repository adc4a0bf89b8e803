"""The unit registry file (deploy/units/*.yaml, or CSV): its validated model, read and written.

`dvc units load` stores it in PostgreSQL; the simulator generates events for its units.
"""

import csv
import io
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

# Contract v1.1: any characters, 1..64 of them, case-sensitive, compared exactly (e.g. `000.00.17.H52`).
UnitId = Annotated[str, Field(min_length=1, max_length=64)]
CSV_COLUMNS = [
    "id",
    "name",
    "level",
    "level_name",
    "level_name_en",
    "parent",
    "head_name",
    "head_email",
    "head_webhook_url",
]


class Level(BaseModel):
    """An administrative level; its position in the registry's list is its rank (top first)."""

    model_config = ConfigDict(frozen=True)
    id: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")]
    name: str
    name_en: str


class Head(BaseModel):
    """The unit head who receives the unit's alerts."""

    model_config = ConfigDict(frozen=True)
    name: str
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    webhook_url: HttpUrl | None = None


class Unit(BaseModel):
    """A unit (cơ quan, đơn vị) of the registry."""

    model_config = ConfigDict(frozen=True)
    id: UnitId
    name: Annotated[str, Field(min_length=1)]
    level: str
    parent: UnitId | None = None
    head: Head


class Registry(BaseModel):
    """A whole registry: ordered levels and the unit tree."""

    model_config = ConfigDict(frozen=True)
    registry: str
    levels: Annotated[list[Level], Field(min_length=1)]
    units: Annotated[list[Unit], Field(min_length=1)]

    @model_validator(mode="after")
    def check_tree(self) -> "Registry":
        """Ids unique, levels declared, every parent known and on a higher level."""
        rank = {level.id: position for position, level in enumerate(self.levels)}
        if len(rank) != len(self.levels):
            raise ValueError("duplicate level id")
        by_id = {unit.id: unit for unit in self.units}
        if len(by_id) != len(self.units):
            raise ValueError("duplicate unit id")
        for unit in self.units:
            if unit.level not in rank:
                raise ValueError(f"unit {unit.id}: undeclared level {unit.level!r}")
            parent = by_id.get(unit.parent) if unit.parent else None
            if unit.parent and parent is None:
                raise ValueError(f"unit {unit.id}: unknown parent {unit.parent!r}")
            if parent is not None and rank[parent.level] > rank[unit.level]:
                raise ValueError(f"unit {unit.id}: parent {parent.id} is on a lower level")
            if parent is not None and parent.id == unit.id:
                raise ValueError(f"unit {unit.id} is its own parent")
        return self


def read_registry(path: Path) -> Registry:
    """Read and validate a registry file (.yaml/.yml or .csv)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        return registry_from_csv(text, name=path.stem)
    return Registry.model_validate(yaml.safe_load(text))


def registry_from_csv(text: str, *, name: str) -> Registry:
    """Build a registry from CSV rows; levels are ranked in order of first appearance."""
    rows = list(csv.DictReader(io.StringIO(text)))
    levels: dict[str, Level] = {}
    units = []
    for row in rows:
        levels.setdefault(
            row["level"], Level(id=row["level"], name=row["level_name"], name_en=row["level_name_en"])
        )
        head = Head(
            name=row["head_name"], email=row["head_email"], webhook_url=row["head_webhook_url"] or None
        )
        units.append(
            Unit(id=row["id"], name=row["name"], level=row["level"], parent=row["parent"] or None, head=head)
        )
    return Registry(registry=name, levels=list(levels.values()), units=units)


def registry_to_csv(registry: Registry) -> str:
    """Write the registry as CSV, levels denormalised onto each unit row."""
    levels = {level.id: level for level in registry.levels}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    ordered = sorted(registry.units, key=lambda unit: [lv.id for lv in registry.levels].index(unit.level))
    for unit in ordered:
        level = levels[unit.level]
        writer.writerow(
            {
                "id": unit.id,
                "name": unit.name,
                "level": unit.level,
                "level_name": level.name,
                "level_name_en": level.name_en,
                "parent": unit.parent or "",
                "head_name": unit.head.name,
                "head_email": unit.head.email,
                "head_webhook_url": str(unit.head.webhook_url or ""),
            }
        )
    return out.getvalue()
