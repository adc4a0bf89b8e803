"""SQL of the periodic report (form II.06a/VPCP/KSTT): case counts per unit and procedure for a period.

A period is the half-open instant range [$2, $3): its first instant and the instant after its last.
"From the previous period" means received before $2 and still open at $2; files still being handled
are those open at the period's last instant, and whether they are overdue is judged then. The state
at that instant comes from the case's current row when nothing has changed its clock since (the
common case); a case resumed after the period's end (a later `supplement_received` moved its
deadline) is judged from its stored event history instead.
"""

from collections.abc import Sequence
from datetime import datetime

import asyncpg

# The deadline and pause in force at $3 for a case whose clock restarted at or after $3, from its history:
# the receipt's due_at replaced by each earlier supplement_received; paused if the last earlier
# supplement event is a request (kpis.md, "Precise readings" 2-5).
HISTORY = "jsonb_array_elements(c.history) WITH ORDINALITY h(e, n)"
AT = "(h.e->>'occurred_at')::timestamptz"
OVERDUE_FROM_HISTORY = f"""
    (SELECT CASE WHEN r.due IS NULL THEN false
                 ELSE coalesce(
                          (SELECT (h.e->>'due_at')::timestamptz FROM {HISTORY}
                           WHERE h.e->>'event_type' = 'supplement_received' AND {AT} < $3
                           ORDER BY {AT} DESC, h.n DESC LIMIT 1),
                          r.due) < $3
                      AND coalesce(
                          (SELECT h.e->>'event_type' FROM {HISTORY}
                           WHERE h.e->>'event_type' IN ('supplement_requested', 'supplement_received') AND {AT} < $3
                           ORDER BY {AT} DESC, h.n DESC LIMIT 1) <> 'supplement_requested',
                          true)
            END
     FROM (SELECT (h.e->>'due_at')::timestamptz AS due FROM {HISTORY}
           WHERE h.e->>'event_type' = 'received' ORDER BY {AT}, h.n LIMIT 1) r)
"""

FORM_ROWS = f"""
    WITH scoped AS (
        SELECT c.unit_id, coalesce(c.procedure_code, '') AS procedure_code, c.received_at, c.channel,
               c.closed_at, c.close_type, c.timeliness, c.apology_at IS NOT NULL AND c.apology_at < $3 AS apologized,
               (c.closed_at IS NULL OR c.closed_at >= $3) AS open_at_end,
               CASE WHEN c.closed_at IS NOT NULL AND c.closed_at < $3 THEN false
                    WHEN c.clock_since < $3 THEN c.deadline < $3 AND NOT coalesce(c.paused_since < $3, false)
                    ELSE {OVERDUE_FROM_HISTORY.strip()}
               END AS overdue_at_end
        FROM cases c
        WHERE c.unit_id = ANY($1::text[]) AND c.received_at < $3 AND (c.closed_at IS NULL OR c.closed_at >= $2)
    )
    SELECT unit_id, procedure_code,
           count(*) FILTER (WHERE received_at >= $2 AND channel = 'online') AS received_online,
           count(*) FILTER (WHERE received_at >= $2 AND channel <> 'online') AS received_offline,
           count(*) FILTER (WHERE received_at < $2) AS carried_over,
           count(*) FILTER (WHERE NOT open_at_end AND close_type = 'resolved' AND timeliness = 'early') AS resolved_early,
           count(*) FILTER (WHERE NOT open_at_end AND close_type = 'resolved' AND timeliness = 'on_time') AS resolved_on_time,
           count(*) FILTER (WHERE NOT open_at_end AND close_type = 'resolved' AND timeliness = 'late') AS resolved_late,
           count(*) FILTER (WHERE open_at_end AND NOT coalesce(overdue_at_end, false)) AS open_in_time,
           count(*) FILTER (WHERE open_at_end AND overdue_at_end) AS open_overdue,
           count(*) FILTER (WHERE NOT open_at_end AND close_type = 'resolved' AND timeliness = 'late' AND apologized)
               AS resolved_late_apologized,
           count(*) FILTER (WHERE open_at_end AND overdue_at_end AND apologized) AS open_overdue_apologized,
           count(*) FILTER (WHERE NOT open_at_end AND close_type = 'resolved' AND timeliness IS NULL)
               AS resolved_without_deadline,
           count(*) FILTER (WHERE NOT open_at_end AND close_type <> 'resolved') AS refused_or_withdrawn
    FROM scoped
    GROUP BY unit_id, procedure_code
    ORDER BY unit_id, procedure_code
"""


async def fetch_form_rows(
    connection: asyncpg.Connection, *, unit_ids: Sequence[str], start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """Return the form's counts per (unit, procedure code) for the instants [start, end)."""
    rows: list[asyncpg.Record] = await connection.fetch(FORM_ROWS, list(unit_ids), start, end)
    return rows
