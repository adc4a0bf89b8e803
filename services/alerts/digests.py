"""What a daily digest lists, read from the data when the digest is built, and again when it is sent.

A digest lists a unit's open overdue cases, the cases that went overdue this month and were closed
without an apology, the 100 %-target KPIs missed this month, and its open, running cases due by the
end of the next working day and within ALERTS_DUE_SOON_WORKING_DAYS working days ("Sắp đến hạn"), each
with the median processing days of the unit x procedure over ALERTS_PROCESSING_LOOKBACK_DAYS. The
sender rebuilds a digest before every attempt (`refreshed_digest`), so a case resolved after the digest
was queued is never listed, and a digest left with nothing to say is cancelled. A head gets one
digest e-mail for all the units they head (matched by address).
"""

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from services.alerts import queries
from services.alerts.lifecycle import Engine
from services.alerts.messages import DigestCase, DueSoonCase
from services.alerts.notices import DigestContent, Row, head_digest_rows
from shared.periods import parse_published_period
from shared.workdays import due_soon_limits, local_now


async def digest_contents(
    connection: asyncpg.Connection, engine: Engine, now: datetime, *, unit_id: str | None = None
) -> dict[str, DigestContent]:
    """Return the digest content of every unit with something to tell (or of one unit), as of `now`."""
    settings = engine.settings
    overrides = {row["day"]: row["working"] for row in await queries.fetch_holiday_overrides(connection)}
    next_end, last_end = due_soon_limits(now, settings.ALERTS_DUE_SOON_WORKING_DAYS, overrides)
    month = parse_published_period(f"month:{local_now(now).date():%Y-%m}")
    cases: dict[str, list[DigestCase]] = defaultdict(list)
    for row in [
        # data time: a case is overdue only as far as the data has arrived (completeness watermark)
        *await queries.fetch_overdue_open_cases(
            connection, now=min(now, engine.as_of or now), unit_id=unit_id
        ),
        *await queries.fetch_closed_overdue_without_apology(
            connection, first=month.first, last=month.last, unit_id=unit_id
        ),
    ]:
        cases[row["unit_id"]].append(DigestCase(**{k: row[k] for k in DigestCase.__slots__}))
    breaches: dict[str, list[Row]] = defaultdict(list)
    for row in await queries.fetch_zero_tolerance_breaches(connection, period=month.name, unit_id=unit_id):
        breaches[row["unit_id"]].append(dict(row))
    due_soon: dict[str, list[DueSoonCase]] = defaultdict(list)
    for row in await queries.fetch_due_soon_cases(
        connection,
        now=now,
        until=last_end,
        lookback_days=settings.ALERTS_PROCESSING_LOOKBACK_DAYS,
        unit_id=unit_id,
    ):
        median = row["median_days"]
        due_soon[row["unit_id"]].append(
            DueSoonCase(
                row["case_id"],
                row["procedure_code"],
                row["deadline"],
                None if median is None else float(median),
                int(row["resolved"] or 0),
            )
        )
    return {
        unit: DigestContent(
            cases[unit],
            breaches[unit],
            due_soon[unit],
            next_end,
            last_end,
            settings.ALERTS_DUE_SOON_WORKING_DAYS,
            settings.ALERTS_PROCESSING_LOOKBACK_DAYS,
        )
        for unit in cases.keys() | breaches.keys() | due_soon.keys()
    }


async def refreshed_digest(
    connection: asyncpg.Connection, engine: Engine, row: Mapping[str, Any], now: datetime
) -> Row | None:
    """Return a digest notification rebuilt from the data now (None: nothing left to tell), and store it.
    An e-mail covers every unit its recipient heads; a webhook, its own unit."""
    if row["channel"] == "email":
        units = [
            u for u in engine.directory.units.values() if u.head_email.lower() == row["recipient"].lower()
        ]
    else:
        units = [u for u in [engine.directory.units.get(row["unit_id"])] if u is not None]
    one = units[0].unit_id if len(units) == 1 else None
    contents = await digest_contents(connection, engine, now, unit_id=one)
    told = [
        (unit, contents[unit.unit_id])
        for unit in sorted(units, key=lambda u: u.unit_id)
        if unit.unit_id in contents
    ]
    if not told:
        return None
    fresh = next(
        (r for r in head_digest_rows(told, links=engine.links, now=now) if r["channel"] == row["channel"]),
        None,
    )
    if fresh is None:
        return None
    await queries.update_notification_content(
        connection, notification_id=int(row["notification_id"]), fields=fresh
    )
    return {**dict(row), **{key: fresh.get(key) for key in ("subject", "body_text", "body_html", "payload")}}
