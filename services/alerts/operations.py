"""What operators do by hand (`dvc alerts`): read alert states, acknowledge an alert, silence notices,
swap working days. Each function runs on one connection and owns its transaction."""

from datetime import UTC, date, datetime, timedelta

import asyncpg

from services.alerts import queries


async def list_alert_states(
    connection: asyncpg.Connection, *, state: str | None, unit_id: str | None, period: str | None
) -> list[asyncpg.Record]:
    """Return the alert states (with their open alert), filtered."""
    return await queries.list_states(connection, state=state, unit_id=unit_id, period=period)


async def acknowledge_alert(
    connection: asyncpg.Connection, *, alert_id: int, by: str, via: str, note: str
) -> asyncpg.Record | None:
    """Acknowledge an alert now (the first acknowledgement stops its escalation); None if unknown."""
    async with connection.transaction():
        return await queries.acknowledge_alert(
            connection, alert_id=alert_id, by=by, via=via, note=note, now=datetime.now(UTC)
        )


async def add_silence(
    connection: asyncpg.Connection,
    *,
    by: str,
    unit_id: str | None,
    kpi: str | None,
    hours: float,
    comment: str,
) -> asyncpg.Record:
    """Silence the notices of a unit and/or KPI (every one if None) from now for `hours`."""
    now = datetime.now(UTC)
    fields = {
        "unit_id": unit_id,
        "kpi": kpi,
        "starts_at": now,
        "ends_at": now + timedelta(hours=hours),
        "created_by": by,
        "comment": comment,
    }
    return await queries.insert_silence(connection, fields=fields)


async def list_silences(connection: asyncpg.Connection, *, include_ended: bool) -> list[asyncpg.Record]:
    """Return the silences not yet ended (every silence if `include_ended`), newest first."""
    return await queries.fetch_silences(connection, active_after=None if include_ended else datetime.now(UTC))


async def end_silence(connection: asyncpg.Connection, *, silence_id: int) -> bool:
    """End a silence now (it stays in the history); return False if unknown."""
    return await queries.expire_silence(connection, silence_id=silence_id, now=datetime.now(UTC))


async def set_working_day(connection: asyncpg.Connection, *, day: date, working: bool, note: str) -> None:
    """Make a day a working day or a day off, whatever the holiday calendar says."""
    await queries.upsert_holiday_override(connection, day=day, working=working, note=note)


async def list_working_day_swaps(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    """Return every working-day swap (holiday override), by day."""
    return await queries.fetch_holiday_overrides(connection)
