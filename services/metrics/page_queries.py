"""SQL of the web pages: a unit's alert states and alert history (through the `reporting` views),
daily rollups (the trend and the year) and the time of the latest count."""

from collections.abc import Sequence
from datetime import date, datetime

import asyncpg


async def fetch_alert_states(
    connection: asyncpg.Connection, *, unit_id: str, periods: Sequence[str]
) -> list[asyncpg.Record]:
    """Return a unit's alert states (figures: failures still allowed, forecast) for the given periods."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """
        SELECT kpi, period, state, since, figures, evaluated_at, alert_id
        FROM reporting.alert_states WHERE unit_id = $1 AND period = ANY($2::text[])
        """,
        unit_id,
        list(periods),
    )
    return rows


async def fetch_alert_history(
    connection: asyncpg.Connection, *, unit_id: str, limit: int
) -> list[asyncpg.Record]:
    """Return a unit's latest alerts, the newest first."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """
        SELECT alert_id, kpi, period, opened_at, resolved_at, resolution, acknowledged_at, escalated_at
        FROM reporting.alerts WHERE unit_id = $1 ORDER BY opened_at DESC, alert_id DESC LIMIT $2
        """,
        unit_id,
        limit,
    )
    return rows


async def fetch_daily_rollups(
    connection: asyncpg.Connection, *, unit_ids: Sequence[str], first: date, last: date
) -> dict[tuple[date, str], tuple[int, int]]:
    """Return (numerator, denominator) per (day, KPI) of the day-cell KPIs over some units."""
    rows = await connection.fetch(
        """
        SELECT day, kpi, sum(numerator)::bigint AS n, sum(denominator)::bigint AS d
        FROM kpi_day_cells WHERE unit_id = ANY($1::text[]) AND day BETWEEN $2 AND $3
        GROUP BY day, kpi
        """,
        list(unit_ids),
        first,
        last,
    )
    return {(row["day"], row["kpi"]): (int(row["n"]), int(row["d"])) for row in rows}


async def fetch_latest_count_time(
    connection: asyncpg.Connection, *, since: date, unit_id: str | None = None
) -> datetime | None:
    """Return when a count (of one unit, or any) of a day since `since` last changed."""
    value: datetime | None = await connection.fetchval(
        """
        SELECT max(updated_at) FROM kpi_day_cells
        WHERE day >= $1 AND ($2::text IS NULL OR unit_id = $2)
        """,
        since,
        unit_id,
    )
    return value


async def fetch_holiday_overrides(connection: asyncpg.Connection) -> dict[date, bool]:
    """Return the working-day overrides (the government's yearly swaps), by day."""
    rows = await connection.fetch("SELECT day, working FROM holiday_overrides")
    return {row["day"]: bool(row["working"]) for row in rows}


async def fetch_due_soon_cases(
    connection: asyncpg.Connection, *, unit_id: str, now: datetime, until: datetime, lookback_days: int
) -> list[asyncpg.Record]:
    """Return a unit's open, running cases due between now and `until`, the earliest first, with the
    median processing days of the unit x procedure over the last `lookback_days` days (the definition of
    the alerts digest's "Sắp đến hạn" section: `due_soon_cases`, migration 0019)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """
        SELECT case_id, procedure_code, deadline, median_days, resolved
        FROM due_soon_cases($1, $2, $3, $4)
        ORDER BY deadline, case_id
        """,
        now,
        until,
        lookback_days,
        unit_id,
    )
    return rows
