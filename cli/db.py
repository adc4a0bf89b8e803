"""`dvc db`: apply the versioned SQL migrations in deploy/postgres/migrations and set role passwords."""

import asyncio
import re
from pathlib import Path

import asyncpg
import typer

from shared.config import MigrationSettings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "deploy" / "postgres" / "migrations"
MIGRATION_LOCK = 7_240_513  # pg_advisory_lock key: one migrator at a time
SERVICE_ROLES = {
    "dvc_ingest": "INGEST_DB_PASSWORD",
    "dvc_metrics": "METRICS_DB_PASSWORD",
    "dvc_alerts": "ALERTS_DB_PASSWORD",
    "dvc_reader": "READER_DB_PASSWORD",
}

app = typer.Typer(help="Cơ sở dữ liệu / Database schema.", no_args_is_help=True)


def list_migrations() -> list[tuple[int, Path]]:
    """Return the migration files as (version, path), in order."""
    found = []
    for path in MIGRATIONS_DIR.glob("*.sql"):
        match = re.match(r"(\d{4})_[a-z0-9_]+\.sql$", path.name)
        if match is None:
            raise ValueError(f"badly named migration: {path.name}")
        found.append((int(match.group(1)), path))
    return sorted(found)


async def migrate(settings: MigrationSettings) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the names applied."""
    connection = await asyncpg.connect(settings.DATABASE_URL.get_secret_value())
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        await connection.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY, name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {row["version"] for row in await connection.fetch("SELECT version FROM schema_migrations")}
        done = []
        for version, path in list_migrations():
            if version in applied:
                continue
            async with connection.transaction():
                await connection.execute(path.read_text(encoding="utf-8"))
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, path.name
                )
            done.append(path.name)
        await set_role_passwords(connection, settings)
        return done
    finally:
        await connection.close()


async def set_role_passwords(connection: asyncpg.Connection, settings: MigrationSettings) -> None:
    """Give each service role its password from the settings (quoted by PostgreSQL's format())."""
    for role, field in SERVICE_ROLES.items():
        password = getattr(settings, field).get_secret_value()
        statement = await connection.fetchval(
            "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)", role, password
        )
        await connection.execute(statement)


@app.command("migrate")
def migrate_command() -> None:
    """Áp dụng các migration còn thiếu / Apply pending migrations."""
    applied = asyncio.run(migrate(MigrationSettings()))
    if applied:
        for name in applied:
            typer.echo(f"Đã áp dụng / applied: {name}")
    else:
        typer.echo("Lược đồ đã mới nhất / schema is up to date")
