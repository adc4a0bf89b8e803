"""`dvc report`: the periodic report (form II.06a/VPCP/KSTT) as XLSX or DOCX, from the live counts."""

import asyncio
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from services.metrics.periods import parse_scope
from services.metrics.report import Report, build_report, file_name
from services.metrics.report_docx import render_docx
from services.metrics.report_xlsx import render_xlsx
from shared.config import Settings
from shared.db import init_connection
from shared.periods import parse_period
from shared.targets import Targets

STEPS = 6  # connect, form, KPIs, units below target, render, write


class Format(StrEnum):
    """The file formats of the report."""

    xlsx = "xlsx"
    docx = "docx"


async def fetch_report(dsn: str, *, scope: str, period: str, progress: Progress, task: int) -> Report:
    """Compute the report from the database, advancing the progress bar at each step."""

    def step(text: str) -> None:
        progress.update(task, advance=1, description=text)  # type: ignore[arg-type]

    connection = await asyncpg.connect(dsn)
    await init_connection(connection)
    try:
        step("Kết nối / connected")
        return await build_report(
            connection,
            scope=parse_scope(scope),
            scope_text=scope,
            period=parse_period(period),
            targets=Targets(),
            now=datetime.now(UTC),
            progress=step,
        )
    finally:
        await connection.close()


def report_command(
    scope: Annotated[str, typer.Option(help="province, level:<cấp>, unit:<id> hoặc/or subtree:<id>")],
    period: Annotated[
        str,
        typer.Option(
            help="report-month:YYYY-MM, report-quarter:YYYY-Qn, report-half:YYYY, report-nine-months:YYYY, report-year:YYYY, month:YYYY-MM …"
        ),
    ],
    format: Annotated[Format, typer.Option("--format", help="xlsx hoặc/or docx")] = Format.xlsx,  # noqa: A002
    output: Annotated[Path | None, typer.Option(help="tệp kết quả / output file")] = None,
) -> None:
    """Lập báo cáo định kỳ (biểu II.06a/VPCP/KSTT) / Produce the periodic report."""
    try:
        parse_scope(scope), parse_period(period)
    except ValueError as exc:
        typer.echo(f"Lỗi / error: {exc}", err=True)
        raise typer.Exit(2) from exc
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("Lập báo cáo / building the report", total=STEPS)
        try:
            dsn = Settings().DATABASE_URL.get_secret_value()
            report = asyncio.run(fetch_report(dsn, scope=scope, period=period, progress=progress, task=task))
        except ValueError as exc:
            typer.echo(f"Lỗi / error: {exc}", err=True)
            raise typer.Exit(2) from exc
        progress.update(task, advance=1, description=f"Tạo tệp / rendering {format.value.upper()}")
        content = (render_xlsx if format is Format.xlsx else render_docx)(report)
        path = output or Path(file_name(report, format.value))
        path.write_bytes(content)
        progress.update(task, advance=1, description="Xong / done")
    typer.echo(f"Đã ghi báo cáo / report written: {path} ({len(content):,} bytes)")
