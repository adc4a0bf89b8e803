"""`dvc metrics recompute|audit`: rebuild KPI counts from the raw event store, or prove live = rebuilt."""

import asyncio
from datetime import date
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.metrics.audit import audit, count_steps, rebuild_cells
from shared.config import Settings

app = typer.Typer(help="Chỉ số / KPI counts.", no_args_is_help=True)
FromDay = Annotated[str, typer.Option("--from", help="first local day, YYYY-MM-DD")]
ToDay = Annotated[str, typer.Option("--to", help="last local day, YYYY-MM-DD")]


@app.command("recompute")
def recompute_command(first: FromDay, last: ToDay) -> None:
    """Tính lại toàn bộ số liệu từ sự kiện gốc / Rebuild every count from the raw event store."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns) as progress:
        task = progress.add_task(
            "Đang tính lại / recomputing: gộp sự kiện / folding events", total=count_steps(0)
        )

        def advance(done: str, total: int) -> None:
            progress.update(task, advance=1, total=total, description=done)

        settings = Settings()
        counts = asyncio.run(
            rebuild_cells(
                settings.DATABASE_URL.get_secret_value(),
                first=date.fromisoformat(first),
                last=date.fromisoformat(last),
                progress=advance,
                workers=settings.RECOMPUTE_WORKERS,
            )
        )
    for table, rows in counts.items():
        typer.echo(f"Đã tính lại / recomputed {table}: {rows} dòng / rows")


@app.command("audit")
def audit_command(first: FromDay = "2000-01-01", last: ToDay = "2099-12-31") -> None:
    """Đối chiếu số liệu trực tiếp với tính lại / Compare live counts with a recomputation."""
    settings = Settings()
    differences = asyncio.run(
        audit(
            settings.DATABASE_URL.get_secret_value(),
            first=date.fromisoformat(first),
            last=date.fromisoformat(last),
            workers=settings.RECOMPUTE_WORKERS,
        )
    )
    for line in differences:
        typer.echo(line)
    if differences:
        typer.echo(f"Có {len(differences)} chênh lệch / {len(differences)} differences", err=True)
        raise typer.Exit(1)
    typer.echo("Không có chênh lệch / no differences")
