"""`dvc units`: load the unit registry from YAML or CSV into PostgreSQL, and export it."""

import asyncio
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
import yaml

from shared.config import Settings
from shared.units import Head, Level, Registry, Unit, read_registry, registry_to_csv

app = typer.Typer(help="Danh mục đơn vị / Unit registry.", no_args_is_help=True)


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
