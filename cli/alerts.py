"""`dvc alerts`: list alert states, acknowledge, manage silences and holiday overrides (DVC_DATABASE_URL)."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, TypeVar

import asyncpg
import typer

from services.alerts import operations
from shared.config import Settings
from shared.db import init_connection
from shared.kpis import KPI_BY_ID

T = TypeVar("T")
app = typer.Typer(help="Cảnh báo / Alerts.", no_args_is_help=True)
silences_app = typer.Typer(help="Khoảng tắt cảnh báo (bảo trì) / Maintenance silences.", no_args_is_help=True)
holidays_app = typer.Typer(help="Ngày nghỉ / Holidays.", no_args_is_help=True)
override_app = typer.Typer(help="Hoán đổi ngày làm việc / Working-day swaps.", no_args_is_help=True)
app.add_typer(silences_app, name="silences")
app.add_typer(holidays_app, name="holidays")
holidays_app.add_typer(override_app, name="override")


def with_connection(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on a connection to DVC_DATABASE_URL."""

    async def run() -> T:
        connection = await asyncpg.connect(Settings().DATABASE_URL.get_secret_value())
        await init_connection(connection)
        try:
            return await work(connection)
        finally:
            await connection.close()

    return asyncio.run(run())


@app.command("list")
def list_command(
    state: Annotated[str | None, typer.Option(help="ok | at_risk | below_target | insufficient_data")] = None,
    unit: Annotated[str | None, typer.Option(help="unit id")] = None,
    period: Annotated[str | None, typer.Option(help="month:YYYY-MM or year:YYYY")] = None,
) -> None:
    """Liệt kê trạng thái cảnh báo / List alert states (with the open alert id)."""
    rows = with_connection(
        lambda c: operations.list_alert_states(c, state=state, unit_id=unit, period=period)
    )
    for row in rows:
        figures = row["figures"]
        ratio = "—" if figures.get("ratio") is None else f"{figures['ratio'] * 100:.2f}%"
        alert = f"alert {row['alert_id']}" if row["alert_id"] else ""
        acked = " (acknowledged)" if row["acknowledged_at"] else ""
        typer.echo(
            f"{row['unit_id']}\t{row['period']}\t{row['kpi']}\t{row['state']}\t{ratio} "
            f"({row['numerator']}/{row['denominator']})\t{alert}{acked}"
        )


@app.command("ack")
def ack_command(
    alert_id: int,
    by: Annotated[str, typer.Option(help="who acknowledges")],
    note: Annotated[str, typer.Option(help="note")] = "",
) -> None:
    """Xác nhận cảnh báo / Acknowledge an alert (stops its escalation)."""
    acknowledged = with_connection(
        lambda c: operations.acknowledge_alert(c, alert_id=alert_id, by=by, via="cli", note=note)
    )
    if acknowledged is None:
        typer.echo(f"Không có cảnh báo này / unknown alert {alert_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Đã xác nhận / acknowledged alert {alert_id}")


@silences_app.command("add")
def silence_add_command(
    by: Annotated[str, typer.Option(help="who creates the silence")],
    unit: Annotated[str | None, typer.Option(help="unit id (default: every unit)")] = None,
    kpi: Annotated[str | None, typer.Option(help="KPI id (default: every KPI)")] = None,
    hours: Annotated[float, typer.Option(help="duration from now, in hours")] = 2.0,
    comment: Annotated[str, typer.Option(help="why")] = "",
) -> None:
    """Tắt cảnh báo trong thời gian bảo trì / Silence notices of a unit and/or KPI for some hours."""
    if kpi is not None and kpi not in KPI_BY_ID:
        typer.echo(f"Không có chỉ số này / unknown KPI {kpi}", err=True)
        raise typer.Exit(2)
    row = with_connection(
        lambda c: operations.add_silence(c, by=by, unit_id=unit, kpi=kpi, hours=hours, comment=comment)
    )
    typer.echo(f"Đã tạo / created silence {row['silence_id']} until {row['ends_at'].isoformat()}")


@silences_app.command("list")
def silence_list_command(
    include_expired: Annotated[bool, typer.Option("--all", help="include ended silences")] = False,
) -> None:
    """Liệt kê khoảng tắt / List silences."""
    for row in with_connection(lambda c: operations.list_silences(c, include_ended=include_expired)):
        typer.echo(
            f"{row['silence_id']}\t{row['unit_id'] or '*'}\t{row['kpi'] or '*'}\t{row['starts_at'].isoformat()}"
            f"\t{row['ends_at'].isoformat()}\t{row['created_by']}\t{row['comment']}"
        )


@silences_app.command("delete")
def silence_delete_command(silence_id: int) -> None:
    """Kết thúc khoảng tắt ngay / End a silence now."""
    if not with_connection(lambda c: operations.end_silence(c, silence_id=silence_id)):
        typer.echo(f"Không có khoảng tắt này / unknown silence {silence_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Đã kết thúc / ended silence {silence_id}")


@override_app.command("add")
def override_add_command(
    day: Annotated[str, typer.Argument(help="YYYY-MM-DD")],
    working: Annotated[bool, typer.Option("--working/--day-off", help="a working day or a day off")],
    note: Annotated[str, typer.Option(help="e.g. the decision that swaps the day")] = "",
) -> None:
    """Đặt một ngày là ngày làm việc hoặc ngày nghỉ / Make a day a working day or a day off."""
    parsed = date.fromisoformat(day)
    with_connection(lambda c: operations.set_working_day(c, day=parsed, working=working, note=note))
    typer.echo(f"{parsed.isoformat()}: {'ngày làm việc / working day' if working else 'ngày nghỉ / day off'}")


@override_app.command("list")
def override_list_command() -> None:
    """Liệt kê các ngày hoán đổi / List holiday overrides."""
    for row in with_connection(operations.list_working_day_swaps):
        kind = "working" if row["working"] else "day-off"
        typer.echo(f"{row['day'].isoformat()}\t{kind}\t{row['note']}")
