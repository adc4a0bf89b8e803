"""`dvc procedures`: load the procedure catalogue (danh mục TTHC) from YAML or CSV into PostgreSQL."""

import asyncio
import csv
import io
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.config import Settings

app = typer.Typer(help="Danh mục thủ tục hành chính / Procedure catalogue.", no_args_is_help=True)
Text = Annotated[str, Field(min_length=1)]


class Procedure(BaseModel):
    """A procedure: its code in the national procedure database, name, field (lĩnh vực) and level."""

    model_config = ConfigDict(frozen=True)
    code: Annotated[str, Field(min_length=1, max_length=128)]
    name: Text
    field: Text
    level: Text


class Catalogue(BaseModel):
    """A whole catalogue."""

    model_config = ConfigDict(frozen=True)
    catalogue: Text
    procedures: Annotated[list[Procedure], Field(min_length=1)]

    @model_validator(mode="after")
    def check_unique(self) -> "Catalogue":
        """Each code once."""
        codes = [p.code for p in self.procedures]
        if len(set(codes)) != len(codes):
            duplicates = sorted({c for c in codes if codes.count(c) > 1})
            raise ValueError(f"duplicate procedure code {duplicates}")
        return self


def read_catalogue(path: Path) -> Catalogue:
    """Read and validate a catalogue file (.yaml/.yml, or .csv with columns code,name,field,level)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        return Catalogue(catalogue=path.stem, procedures=[Procedure.model_validate(row) for row in rows])
    return Catalogue.model_validate(yaml.safe_load(text))


async def store_catalogue(connection: asyncpg.Connection, catalogue: Catalogue) -> None:
    """Replace the stored catalogue in one transaction and bump its version."""
    async with connection.transaction():
        await connection.execute("DELETE FROM procedures")
        await connection.copy_records_to_table(
            "procedures",
            records=[(p.code, p.name, p.field, p.level) for p in catalogue.procedures],
            columns=["procedure_code", "name", "field", "level"],
        )
        await connection.execute(
            """INSERT INTO procedure_catalogue_version (version, source) VALUES (1, $1)
               ON CONFLICT (singleton) DO UPDATE SET version = procedure_catalogue_version.version + 1,
               loaded_at = now(), source = EXCLUDED.source""",
            catalogue.catalogue,
        )


async def _load(path: Path) -> Catalogue:
    catalogue = read_catalogue(path)
    connection = await asyncpg.connect(Settings().DATABASE_URL.get_secret_value())
    try:
        await store_catalogue(connection, catalogue)
    finally:
        await connection.close()
    return catalogue


@app.command("load")
def load_command(path: Path) -> None:
    """Nạp danh mục thủ tục từ tệp YAML/CSV / Load the procedure catalogue from a YAML or CSV file."""
    try:
        catalogue = asyncio.run(_load(path))
    except (ValueError, KeyError, OSError, yaml.YAMLError) as exc:
        typer.echo(f"Tệp danh mục thủ tục không hợp lệ / invalid catalogue file {path}: {exc}", err=True)
        raise typer.Exit(2) from exc
    fields = len({p.field for p in catalogue.procedures})
    typer.echo(
        f"Đã nạp {len(catalogue.procedures)} thủ tục, {fields} lĩnh vực / loaded "
        f"{len(catalogue.procedures)} procedures, {fields} fields ({catalogue.catalogue})"
    )
