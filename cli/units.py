"""`dvc units`: load the unit registry from YAML or CSV into PostgreSQL, and export it."""

import asyncio
import csv
import io
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from shared.config import Settings

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

app = typer.Typer(help="Danh mục đơn vị / Unit registry.", no_args_is_help=True)


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


async def store_registry(connection: asyncpg.Connection, registry: Registry) -> None:
    """Replace the stored registry with `registry` in one transaction and bump its version."""
    async with connection.transaction():
        await connection.execute("SET CONSTRAINTS ALL DEFERRED")
        await connection.execute("DELETE FROM units")
        await connection.execute("DELETE FROM unit_levels")
        await connection.executemany(
            "INSERT INTO unit_levels (level, rank, name, name_en) VALUES ($1, $2, $3, $4)",
            [(lv.id, rank, lv.name, lv.name_en) for rank, lv in enumerate(registry.levels)],
        )
        await connection.copy_records_to_table(
            "units",
            records=[
                (
                    u.id,
                    u.name,
                    u.level,
                    u.parent,
                    u.head.name,
                    u.head.email,
                    str(u.head.webhook_url) if u.head.webhook_url else None,
                )
                for u in registry.units
            ],
            columns=["unit_id", "name", "level", "parent_id", "head_name", "head_email", "head_webhook_url"],
        )
        await connection.execute(
            """INSERT INTO registry_version (version, source) VALUES (1, $1)
               ON CONFLICT (singleton) DO UPDATE
               SET version = registry_version.version + 1, loaded_at = now(), source = EXCLUDED.source""",
            registry.registry,
        )


async def fetch_registry(connection: asyncpg.Connection) -> Registry:
    """Read the stored registry back."""
    source = await connection.fetchval("SELECT source FROM registry_version") or "empty"
    levels = await connection.fetch("SELECT level, name, name_en FROM unit_levels ORDER BY rank")
    units = await connection.fetch(
        """SELECT u.* FROM units u JOIN unit_levels l USING (level) ORDER BY l.rank, u.unit_id"""
    )
    return Registry(
        registry=source,
        levels=[Level(id=r["level"], name=r["name"], name_en=r["name_en"]) for r in levels],
        units=[
            Unit(
                id=r["unit_id"],
                name=r["name"],
                level=r["level"],
                parent=r["parent_id"],
                head=Head(name=r["head_name"], email=r["head_email"], webhook_url=r["head_webhook_url"]),
            )
            for r in units
        ],
    )


async def _load(path: Path) -> Registry:
    registry = read_registry(path)
    connection = await asyncpg.connect(Settings().DATABASE_URL.get_secret_value())
    try:
        await store_registry(connection, registry)
    finally:
        await connection.close()
    return registry


async def _export() -> Registry:
    connection = await asyncpg.connect(Settings().DATABASE_URL.get_secret_value())
    try:
        return await fetch_registry(connection)
    finally:
        await connection.close()


@app.command("load")
def load_command(path: Path) -> None:
    """Nạp danh mục đơn vị từ tệp YAML/CSV / Load the registry from a YAML or CSV file."""
    registry = _load_or_exit(path)
    typer.echo(
        f"Đã nạp {len(registry.units)} đơn vị, {len(registry.levels)} cấp / loaded {len(registry.units)} units, {len(registry.levels)} levels ({registry.registry})"
    )


def _load_or_exit(path: Path) -> Registry:
    try:
        return asyncio.run(_load(path))
    except (ValueError, OSError, yaml.YAMLError) as exc:
        typer.echo(f"Tệp danh mục không hợp lệ / invalid registry file {path}: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("export")
def export_command(fmt: Annotated[str, typer.Option("--format", help="yaml | csv")] = "yaml") -> None:
    """Xuất danh mục đơn vị / Export the registry as YAML or CSV."""
    registry = asyncio.run(_export())
    if fmt == "csv":
        typer.echo(registry_to_csv(registry), nl=False)
    else:
        typer.echo(
            yaml.safe_dump(registry.model_dump(mode="json"), allow_unicode=True, sort_keys=False), nl=False
        )
