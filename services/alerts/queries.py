"""SQL of alerts: states, alerts, state-change events, the notification outbox, silences, holidays, digests."""

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

Key = tuple[str, str, str]  # (unit_id, kpi, period)
STATE_COLUMNS = (
    "unit_id, kpi, period, state, since, numerator, denominator, figures, streak, streak_since, "
    "computed_at, evaluated_at, alert_id"
)


async def fetch_units(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    """Return every unit with its head's contact details."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT unit_id, name, level, parent_id, head_name, head_email, head_webhook_url FROM units"""
    )
    return rows


async def lock_states(connection: asyncpg.Connection, *, keys: Sequence[Key]) -> list[asyncpg.Record]:
    """Lock and return the stored states of the given keys (in key order, against deadlocks)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        f"""
        SELECT {STATE_COLUMNS} FROM alert_states
        WHERE (unit_id, kpi, period) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
        ORDER BY unit_id, kpi, period FOR UPDATE
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    return rows


async def lock_states_of_periods(
    connection: asyncpg.Connection, *, periods: Sequence[str]
) -> list[asyncpg.Record]:
    """Lock and return every stored state of the given periods (the timer's re-evaluation)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        f"""SELECT {STATE_COLUMNS} FROM alert_states WHERE period = ANY($1::text[])
            ORDER BY unit_id, kpi, period FOR UPDATE""",
        list(periods),
    )
    return rows


async def upsert_state(connection: asyncpg.Connection, *, values: Sequence[Any]) -> None:
    """Store one state row (values in STATE_COLUMNS order)."""
    await connection.execute(
        f"""
        INSERT INTO alert_states ({STATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        ON CONFLICT (unit_id, kpi, period) DO UPDATE SET
            state = EXCLUDED.state, since = EXCLUDED.since, numerator = EXCLUDED.numerator,
            denominator = EXCLUDED.denominator, figures = EXCLUDED.figures, streak = EXCLUDED.streak,
            streak_since = EXCLUDED.streak_since, computed_at = EXCLUDED.computed_at,
            evaluated_at = EXCLUDED.evaluated_at, alert_id = EXCLUDED.alert_id
        """,
        *values,
    )


async def insert_alert(
    connection: asyncpg.Connection, *, key: Key, figures: dict[str, Any], now: datetime
) -> int:
    """Open an alert and return its id."""
    alert_id: int = await connection.fetchval(
        """INSERT INTO alerts (unit_id, kpi, period, figures, opened_at) VALUES ($1, $2, $3, $4, $5)
           RETURNING alert_id""",
        *key,
        figures,
        now,
    )
    return alert_id


async def resolve_alert(
    connection: asyncpg.Connection, *, alert_id: int, resolution: str, now: datetime
) -> None:
    """Close an alert (recovered, or expired with its period)."""
    await connection.execute(
        "UPDATE alerts SET resolved_at = $2, resolution = $3 WHERE alert_id = $1 AND resolved_at IS NULL",
        alert_id,
        now,
        resolution,
    )


async def fetch_alert(connection: asyncpg.Connection, *, alert_id: int) -> asyncpg.Record | None:
    """Return one alert."""
    row: asyncpg.Record | None = await connection.fetchrow(
        "SELECT * FROM alerts WHERE alert_id = $1", alert_id
    )
    return row


async def acknowledge_alert(
    connection: asyncpg.Connection, *, alert_id: int, by: str, via: str, note: str, now: datetime
) -> asyncpg.Record | None:
    """Record an acknowledgement (the first one stamps the alert); return the alert, None if unknown."""
    row: asyncpg.Record | None = await connection.fetchrow(
        """UPDATE alerts SET acknowledged_at = coalesce(acknowledged_at, $2),
                             acknowledged_by = coalesce(acknowledged_by, $3)
           WHERE alert_id = $1 RETURNING *""",
        alert_id,
        now,
        by,
    )
    if row is not None:
        await connection.execute(
            """INSERT INTO acknowledgements (alert_id, acknowledged_by, via, note, acknowledged_at)
               VALUES ($1, $2, $3, $4, $5)""",
            alert_id,
            by,
            via,
            note,
            now,
        )
    return row


async def fetch_acknowledgements(connection: asyncpg.Connection, *, alert_id: int) -> list[asyncpg.Record]:
    """Return an alert's acknowledgements, oldest first."""
    rows: list[asyncpg.Record] = await connection.fetch(
        "SELECT * FROM acknowledgements WHERE alert_id = $1 ORDER BY ack_id", alert_id
    )
    return rows


async def lock_escalation_due(
    connection: asyncpg.Connection, *, notified_before: datetime
) -> list[asyncpg.Record]:
    """Lock and return open, unacknowledged, not yet escalated alerts whose page went out (or failed
    for good) before the given time."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT a.* FROM alerts a
           WHERE a.resolved_at IS NULL AND a.acknowledged_at IS NULL AND a.escalated_at IS NULL
             AND EXISTS (SELECT FROM notifications n
                         WHERE n.alert_id = a.alert_id AND n.kind = 'firing' AND n.channel = 'email'
                           AND n.status IN ('sent', 'failed')
                           AND coalesce(n.sent_at, n.failed_at, n.next_attempt_at) <= $1)
           ORDER BY a.alert_id FOR UPDATE OF a SKIP LOCKED""",
        notified_before,
    )
    return rows


async def mark_escalated(
    connection: asyncpg.Connection, *, alert_id: int, parent_id: str | None, now: datetime
) -> None:
    """Stamp an alert as escalated to the parent unit."""
    await connection.execute(
        "UPDATE alerts SET escalated_at = $2, escalated_to = $3 WHERE alert_id = $1", alert_id, now, parent_id
    )


async def lock_open_alerts_not_in(
    connection: asyncpg.Connection, *, periods: Sequence[str]
) -> list[asyncpg.Record]:
    """Lock and return open alerts whose period is no longer evaluated (out of the lookback)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT * FROM alerts WHERE resolved_at IS NULL AND NOT (period = ANY($1::text[]))
           ORDER BY alert_id FOR UPDATE SKIP LOCKED""",
        list(periods),
    )
    return rows


async def lock_open_alerts_never_notified(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    """Lock and return open alerts no notice was ever queued for (opened while notices were held)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT * FROM alerts a WHERE resolved_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.alert_id = a.alert_id)
           ORDER BY alert_id FOR UPDATE SKIP LOCKED"""
    )
    return rows


async def lock_resolutions_never_told(
    connection: asyncpg.Connection, *, resolved_after: datetime
) -> list[asyncpg.Record]:
    """Lock and return alerts recovered since `resolved_after` whose opening or escalation was told
    (sent, or on its way in a group message) but whose resolution was never queued (it happened while
    notices were held), with the state and figures they recovered to."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT a.*, e.state AS resolved_state, e.figures AS resolved_figures FROM alerts a
           JOIN LATERAL (SELECT state, figures FROM alert_events WHERE alert_id = a.alert_id
                         ORDER BY event_id DESC LIMIT 1) e ON true
           WHERE a.resolution = 'recovered' AND a.resolved_at > $1
             AND EXISTS (SELECT 1 FROM notifications n
                          WHERE n.alert_id = a.alert_id AND n.kind IN ('firing', 'escalation')
                            AND (n.status = 'sent' OR (n.status = 'pending' AND n.group_id IS NOT NULL)))
             AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.alert_id = a.alert_id AND n.kind = 'resolved')
           ORDER BY a.alert_id FOR UPDATE OF a SKIP LOCKED""",
        resolved_after,
    )
    return rows


async def fetch_input_watermarks(
    connection: asyncpg.Connection, *, topics: Sequence[str]
) -> list[asyncpg.Record]:
    """Return the stored watermark of every input partition of the topics."""
    rows: list[asyncpg.Record] = await connection.fetch(
        "SELECT topic, partition, complete_until FROM input_watermarks WHERE topic = ANY($1::text[])",
        list(topics),
    )
    return rows


async def insert_event(
    connection: asyncpg.Connection,
    *,
    key: Key,
    alert_id: int | None,
    previous_state: str | None,
    state: str,
    counts: tuple[int, int],
    figures: dict[str, Any],
    now: datetime,
) -> None:
    """Record a state change (published to dvc.alerts.v1 by the outbox publisher)."""
    await connection.execute(
        """INSERT INTO alert_events (unit_id, kpi, period, alert_id, previous_state, state, numerator,
                                     denominator, figures, changed_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        *key,
        alert_id,
        previous_state,
        state,
        counts[0],
        counts[1],
        figures,
        now,
    )


async def lock_unpublished_events(connection: asyncpg.Connection, *, limit: int) -> list[asyncpg.Record]:
    """Lock and return the oldest unpublished state changes."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT * FROM alert_events WHERE published_at IS NULL
           ORDER BY event_id LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit,
    )
    return rows


async def mark_events_published(
    connection: asyncpg.Connection, *, event_ids: Sequence[int], now: datetime
) -> None:
    """Stamp state changes as published."""
    await connection.execute(
        "UPDATE alert_events SET published_at = $2 WHERE event_id = ANY($1::bigint[])", list(event_ids), now
    )


async def count_states(connection: asyncpg.Connection, *, periods: Sequence[str]) -> dict[str, int]:
    """Return how many (unit, KPI, period) are in each state, over the given periods."""
    rows = await connection.fetch(
        "SELECT state, count(*) AS n FROM alert_states WHERE period = ANY($1::text[]) GROUP BY state",
        list(periods),
    )
    return {row["state"]: int(row["n"]) for row in rows}


async def count_open_alerts(connection: asyncpg.Connection) -> dict[bool, int]:
    """Return the number of open alerts by acknowledged or not."""
    rows = await connection.fetch(
        """SELECT acknowledged_at IS NOT NULL AS acked, count(*) AS n FROM alerts
           WHERE resolved_at IS NULL GROUP BY 1"""
    )
    return {bool(row["acked"]): int(row["n"]) for row in rows}


async def insert_notification(connection: asyncpg.Connection, *, fields: dict[str, Any]) -> bool:
    """Queue a notification (idempotent on dedupe key, channel and recipient); return True if new."""
    names = ", ".join(fields)
    placeholders = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    status = await connection.execute(
        f"""INSERT INTO notifications ({names}) VALUES ({placeholders})
            ON CONFLICT (dedupe_key, channel, recipient) DO NOTHING""",
        *fields.values(),
    )
    return bool(status == "INSERT 0 1")


async def cancel_pending_notifications(connection: asyncpg.Connection, *, alert_id: int) -> int:
    """Cancel an alert's notices not yet sent (it resolved before they went out); return how many."""
    status = await connection.execute(
        """UPDATE notifications SET status = 'cancelled'
           WHERE alert_id = $1 AND status = 'pending' AND group_id IS NULL""",  # a grouped one is on its way
        alert_id,
    )
    return int(status.split()[-1])


async def fetch_notified_recipients(connection: asyncpg.Connection, *, alert_id: int) -> list[asyncpg.Record]:
    """Return who got (or was attempted) a firing or escalation notice of an alert, per channel."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT DISTINCT channel, recipient, recipient_unit_id FROM notifications
           WHERE alert_id = $1 AND kind IN ('firing', 'escalation')
             AND (status IN ('sent', 'failed') OR (status = 'pending' AND group_id IS NOT NULL))
           ORDER BY channel, recipient""",
        alert_id,
    )
    return rows


async def claim_due_notifications(
    connection: asyncpg.Connection, *, channel: str, now: datetime, lease_seconds: float, limit: int
) -> list[asyncpg.Record]:
    """Claim due pending notifications of a channel for a lease (another sender skips them meanwhile)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """
        UPDATE notifications n SET next_attempt_at = $2 + make_interval(secs => $3), claimed_at = $2
        FROM (SELECT notification_id FROM notifications
              WHERE status = 'pending' AND channel = $1 AND next_attempt_at <= $2 AND NOT held
              ORDER BY next_attempt_at, notification_id LIMIT $4 FOR UPDATE SKIP LOCKED) due
        WHERE n.notification_id = due.notification_id
        RETURNING n.*
        """,
        channel,
        now,
        lease_seconds,
        limit,
    )
    return sorted(rows, key=lambda row: int(row["notification_id"]))


async def record_delivery(
    connection: asyncpg.Connection,
    *,
    notification_id: int,
    status: str,
    attempts: int,
    next_attempt_at: datetime,
    error: str | None,
    now: datetime,
) -> None:
    """Store the result of a delivery attempt (sent, failed for good, or pending until the next retry);
    the first attempt starts the retry horizon."""
    await connection.execute(
        """UPDATE notifications SET status = $2, attempts = $3, next_attempt_at = $4, last_error = $5,
                                    sent_at = CASE WHEN $2 = 'sent' THEN $6 ELSE sent_at END,
                                    failed_at = CASE WHEN $2 = 'failed' THEN $6 ELSE failed_at END,
                                    first_attempt_at = coalesce(first_attempt_at, $6), claimed_at = NULL
           WHERE notification_id = $1""",
        notification_id,
        status,
        attempts,
        next_attempt_at,
        error,
        now,
    )
    if status != "pending":  # the notices folded into a group message share its fate
        await connection.execute(
            """UPDATE notifications SET status = $2, attempts = $3, last_error = $4,
                                        sent_at = CASE WHEN $2 = 'sent' THEN $5 ELSE sent_at END,
                                        failed_at = CASE WHEN $2 = 'failed' THEN $5 ELSE failed_at END
               WHERE group_id = $1 AND status = 'pending'""",
            notification_id,
            status,
            attempts,
            error,
            now,
        )


async def hasten_retries(
    connection: asyncpg.Connection, *, channel: str, now: datetime, lease_seconds: float
) -> int:
    """Make a channel's notifications waiting for a retry due now (the channel works again); rows being
    sent (claimed within the lease) are left alone. Return how many."""
    status = await connection.execute(
        """UPDATE notifications SET next_attempt_at = $2
           WHERE status = 'pending' AND channel = $1 AND last_error IS NOT NULL AND next_attempt_at > $2
             AND (claimed_at IS NULL OR claimed_at <= $2 - make_interval(secs => $3))""",
        channel,
        now,
        lease_seconds,
    )
    return int(status.split()[-1])


async def count_delivery_problems(
    connection: asyncpg.Connection, *, now: datetime, failed_since: datetime
) -> list[asyncpg.Record]:
    """Per channel: notifications waiting for a retry, the age of the oldest one's first attempt (seconds),
    and notifications given up since `failed_since`."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT channel,
                  count(*) FILTER (WHERE status = 'pending' AND last_error IS NOT NULL) AS retrying,
                  extract(epoch FROM $1 - min(first_attempt_at)
                                    FILTER (WHERE status = 'pending' AND last_error IS NOT NULL)) AS oldest,
                  count(*) FILTER (WHERE status = 'failed') AS failed
           FROM notifications
           WHERE (status = 'pending' AND last_error IS NOT NULL) OR (status = 'failed' AND failed_at > $2)
           GROUP BY channel""",
        now,
        failed_since,
    )
    return rows


async def list_notifications(
    connection: asyncpg.Connection,
    *,
    status: str | None,
    channel: str | None,
    unit_id: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Return notifications, newest first, filtered by status, channel or unit (the API)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT notification_id, alert_id, unit_id, kpi, kind, channel, recipient, recipient_unit_id, status,
                  attempts, last_error, created_at, first_attempt_at, next_attempt_at, sent_at, failed_at
           FROM notifications
           WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR channel = $2)
             AND ($3::text IS NULL OR unit_id = $3)
           ORDER BY notification_id DESC LIMIT $4""",
        status,
        channel,
        unit_id,
        limit,
    )
    return rows


async def defer_notification(
    connection: asyncpg.Connection, *, notification_id: int, until: datetime, status: str = "pending"
) -> None:
    """Postpone a notification without counting an attempt (silenced), or expire it."""
    await connection.execute(
        "UPDATE notifications SET next_attempt_at = $2, status = $3, claimed_at = NULL WHERE notification_id = $1",
        notification_id,
        until,
        status,
    )


async def fetch_notifications(connection: asyncpg.Connection, *, alert_id: int) -> list[asyncpg.Record]:
    """Return an alert's notifications, oldest first (the delivery history)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT notification_id, kind, channel, recipient, recipient_unit_id, status, attempts, last_error,
                  created_at, sent_at
           FROM notifications WHERE alert_id = $1 ORDER BY notification_id""",
        alert_id,
    )
    return rows


async def fetch_existing_keys(connection: asyncpg.Connection, *, keys: Sequence[str]) -> set[str]:
    """Return which of the given dedupe keys are already queued (e.g. today's digests)."""
    rows = await connection.fetch(
        "SELECT DISTINCT dedupe_key FROM notifications WHERE dedupe_key = ANY($1::text[])", list(keys)
    )
    return {row["dedupe_key"] for row in rows}


async def fetch_overdue_open_cases(
    connection: asyncpg.Connection, *, now: datetime, unit_id: str | None = None
) -> list[asyncpg.Record]:
    """Return open, running cases past their deadline, per unit (or of one unit), the oldest deadline first."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT unit_id, case_id, procedure_code, greatest(deadline, clock_since) AS overdue_since,
                  apology_at IS NOT NULL AS apologized, true AS still_open
           FROM overdue_open_cases($1)
           WHERE $2::text IS NULL OR unit_id = $2
           ORDER BY unit_id, deadline, case_id""",
        now,
        unit_id,
    )
    return rows


async def fetch_closed_overdue_without_apology(
    connection: asyncpg.Connection, *, first: date, last: date, unit_id: str | None = None
) -> list[asyncpg.Record]:
    """Return closed cases that went overdue in the local day range and never got an apology (of one
    unit). Read from the case table alone, as ingest stores it (a closed case's crossings are final), so
    that the list is as complete as the watermark says, even while metrics is still catching up."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT c.unit_id, c.case_id, c.procedure_code,
                  (min((x.at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date)::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh')
                      AS overdue_since,
                  false AS apologized, false AS still_open
           FROM cases c CROSS JOIN LATERAL unnest(c.overdue_at) AS x(at)
           WHERE cardinality(c.overdue_at) > 0 AND c.closed_at IS NOT NULL AND c.apology_at IS NULL
             AND x.at >= ($1::date::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh')
             AND x.at < (($2::date + 1)::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh')
             AND ($3::text IS NULL OR c.unit_id = $3)
           GROUP BY c.unit_id, c.case_id, c.procedure_code
           ORDER BY c.unit_id, c.case_id""",
        first,
        last,
        unit_id,
    )
    return rows


async def fetch_zero_tolerance_breaches(
    connection: asyncpg.Connection, *, period: str, unit_id: str | None = None
) -> list[asyncpg.Record]:
    """Return the 100 %-target ratio KPIs below target in a period (listed in digests as figures)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT unit_id, kpi, figures FROM alert_states
           WHERE period = $1 AND state = 'below_target' AND (figures->>'zero_tolerance')::boolean
             AND denominator > 0 AND ($2::text IS NULL OR unit_id = $2)
           ORDER BY unit_id, kpi""",
        period,
        unit_id,
    )
    return rows


async def fetch_due_soon_cases(
    connection: asyncpg.Connection, *, now: datetime, until: datetime, lookback_days: int, unit_id: str | None
) -> list[asyncpg.Record]:
    """Return open, running cases due between now and `until` (of one unit, or all), the earliest first,
    with the median processing days of their unit x procedure over the last `lookback_days` days
    (`due_soon_cases`, migration 0019: the unit pages list the same)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT unit_id, case_id, procedure_code, deadline, median_days, resolved
           FROM due_soon_cases($1, $2, $3, $4)
           ORDER BY unit_id, deadline, case_id""",
        now,
        until,
        lookback_days,
        unit_id,
    )
    return rows


async def cancel_empty_digest(connection: asyncpg.Connection, *, notification_id: int) -> None:
    """Cancel a digest left with nothing to tell, freeing its day's key: a later offence still gets one."""
    await connection.execute(
        """UPDATE notifications SET status = 'cancelled', claimed_at = NULL,
                                    dedupe_key = dedupe_key || ':empty:' || notification_id
           WHERE notification_id = $1""",
        notification_id,
    )


async def update_notification_content(
    connection: asyncpg.Connection, *, notification_id: int, fields: dict[str, Any]
) -> None:
    """Store what a notification says when it is rebuilt at send time (digests)."""
    await connection.execute(
        """UPDATE notifications SET subject = $2, body_text = $3, body_html = $4, payload = $5
           WHERE notification_id = $1""",
        notification_id,
        fields["subject"],
        fields["body_text"],
        fields.get("body_html"),
        fields.get("payload"),
    )


# ------------------------------------------------------------------------------------------ grouping


async def fetch_group_due_recipients(
    connection: asyncpg.Connection, *, now: datetime, wait_seconds: float, interval_seconds: float
) -> list[str]:
    """Return the addresses with held notices whose first wait and group interval have both passed."""
    rows = await connection.fetch(
        """SELECT h.recipient FROM notifications h
           WHERE h.held AND h.status = 'pending' AND h.group_id IS NULL AND h.channel = 'email'
           GROUP BY h.recipient
           HAVING min(h.created_at) <= $1::timestamptz - make_interval(secs => $2::float8)
              AND coalesce((SELECT max(r.released_at) FROM notifications r
                            WHERE r.recipient = h.recipient AND r.channel = 'email'), '-infinity')
                  <= $1::timestamptz - make_interval(secs => $3::float8)
           ORDER BY h.recipient""",
        now,
        wait_seconds,
        interval_seconds,
    )
    return [row["recipient"] for row in rows]


async def lock_held_notifications(connection: asyncpg.Connection, *, recipient: str) -> list[asyncpg.Record]:
    """Lock and return the held e-mail notices of a recipient with their alert's period, oldest first."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT n.*, a.period FROM notifications n LEFT JOIN alerts a USING (alert_id)
           WHERE n.held AND n.status = 'pending' AND n.group_id IS NULL AND n.channel = 'email'
             AND n.recipient = $1
           ORDER BY n.notification_id FOR UPDATE OF n SKIP LOCKED""",
        recipient,
    )
    return rows


async def settle_held(
    connection: asyncpg.Connection, *, ids: Sequence[int], status: str, now: datetime
) -> None:
    """Cancel held notices that coalesced away, or mark `sent` those an earlier message already told."""
    await connection.execute(
        """UPDATE notifications SET status = $2, held = false,
                                    sent_at = CASE WHEN $2 = 'sent' THEN $3 ELSE sent_at END
           WHERE notification_id = ANY($1::bigint[])""",
        list(ids),
        status,
        now,
    )


async def release_notification(
    connection: asyncpg.Connection, *, notification_id: int, now: datetime
) -> None:
    """Let the sender take a held notice now (the only change of its group)."""
    await connection.execute(
        "UPDATE notifications SET held = false, released_at = $2, next_attempt_at = $2 WHERE notification_id = $1",
        notification_id,
        now,
    )


async def insert_group_notification(connection: asyncpg.Connection, *, fields: dict[str, Any]) -> int:
    """Queue a group message and return its id."""
    names = ", ".join(fields)
    placeholders = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    notification_id: int = await connection.fetchval(
        f"INSERT INTO notifications ({names}) VALUES ({placeholders}) RETURNING notification_id",
        *fields.values(),
    )
    return notification_id


async def fold_into_group(connection: asyncpg.Connection, *, ids: Sequence[int], group_id: int) -> None:
    """Attach held notices to their group message (they take its delivery status)."""
    await connection.execute(
        "UPDATE notifications SET group_id = $2 WHERE notification_id = ANY($1::bigint[])",
        list(ids),
        group_id,
    )


async def insert_silence(connection: asyncpg.Connection, *, fields: dict[str, Any]) -> asyncpg.Record:
    """Create a silence and return it."""
    row: asyncpg.Record = await connection.fetchrow(
        """INSERT INTO silences (unit_id, kpi, starts_at, ends_at, created_by, comment)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
        fields["unit_id"],
        fields["kpi"],
        fields["starts_at"],
        fields["ends_at"],
        fields["created_by"],
        fields["comment"],
    )
    return row


async def fetch_silences(
    connection: asyncpg.Connection, *, active_after: datetime | None
) -> list[asyncpg.Record]:
    """Return silences not yet ended at `active_after` (every silence if None), newest first."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT * FROM silences WHERE $1::timestamptz IS NULL OR ends_at > $1 ORDER BY silence_id DESC""",
        active_after,
    )
    return rows


async def expire_silence(connection: asyncpg.Connection, *, silence_id: int, now: datetime) -> bool:
    """End a silence now (kept as history); return False if unknown."""
    status = await connection.execute(
        "UPDATE silences SET ends_at = greatest(starts_at, least(ends_at, $2)) WHERE silence_id = $1",
        silence_id,
        now,
    )
    return bool(status == "UPDATE 1")


async def fetch_holiday_overrides(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    """Return every holiday override, by day."""
    rows: list[asyncpg.Record] = await connection.fetch("SELECT * FROM holiday_overrides ORDER BY day")
    return rows


async def upsert_holiday_override(
    connection: asyncpg.Connection, *, day: date, working: bool, note: str
) -> None:
    """Make a day a working day or a day off."""
    await connection.execute(
        """INSERT INTO holiday_overrides (day, working, note) VALUES ($1, $2, $3)
           ON CONFLICT (day) DO UPDATE SET working = EXCLUDED.working, note = EXCLUDED.note, updated_at = now()""",
        day,
        working,
        note,
    )


async def list_states(
    connection: asyncpg.Connection, *, state: str | None, unit_id: str | None, period: str | None
) -> list[asyncpg.Record]:
    """Return states with their open alert, filtered (the API and the CLI)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT s.unit_id, s.kpi, s.period, s.state, s.since, s.numerator, s.denominator, s.figures,
                  s.evaluated_at, a.alert_id, a.opened_at, a.acknowledged_at, a.acknowledged_by, a.escalated_at
           FROM alert_states s LEFT JOIN alerts a ON a.alert_id = s.alert_id AND a.resolved_at IS NULL
           WHERE ($1::text IS NULL OR s.state = $1) AND ($2::text IS NULL OR s.unit_id = $2)
             AND ($3::text IS NULL OR s.period = $3)
           ORDER BY s.unit_id, s.period, s.kpi""",
        state,
        unit_id,
        period,
    )
    return rows


async def fetch_state(connection: asyncpg.Connection, *, key: Key) -> asyncpg.Record | None:
    """Return one stored state, without locking it."""
    row: asyncpg.Record | None = await connection.fetchrow(
        f"SELECT {STATE_COLUMNS} FROM alert_states WHERE unit_id = $1 AND kpi = $2 AND period = $3", *key
    )
    return row


async def fetch_periods(connection: asyncpg.Connection) -> list[str]:
    """Return every period that has stored states."""
    return [row["period"] for row in await connection.fetch("SELECT DISTINCT period FROM alert_states")]
