"""SQL of the board panels, run by Grafana as the read-only role dvc_reader.

dvc_reader reads only the views of the `reporting` schema (migration 0006), never the tables.

Period counts come from PostgreSQL (the KPI day cells), summed then divided, like the metrics API.
Grafana macros used: $__timeFrom(), $__timeTo(); variables: ${unit:sqlstring}.
"""

from shared.kpis import KPIS

LOCAL_TZ = "'Asia/Ho_Chi_Minh'"
UNIT = "${unit:sqlstring}"
FIRST_DAY = f"date_trunc('month', $__timeFrom()::timestamptz AT TIME ZONE {LOCAL_TZ})::date"
LAST_DAY = f"($__timeTo()::timestamptz AT TIME ZONE {LOCAL_TZ})::date"
MONTH_START = f"date_trunc('month', now() AT TIME ZONE {LOCAL_TZ})::date"


def quote(text: str) -> str:
    """Return a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def kpi_names(kpis: list[str] | None = None) -> str:
    """Return a VALUES list (kpi, name, position) of the KPI catalogue's Vietnamese names."""
    rows = [
        f"('{kpi.id}', {quote(kpi.name_vi)}, {index})"
        for index, kpi in enumerate(KPIS)
        if kpis is None or kpi.id in kpis
    ]
    return "(VALUES " + ", ".join(rows) + ") AS k(kpi, name, position)"


def kpi_variable(kpis: list[str]) -> str:
    """The KPIs with a target, as variable options (Vietnamese name shown, id used)."""
    return f"SELECT k.name AS __text, k.kpi AS __value FROM {kpi_names(kpis)} ORDER BY k.position"


UNIT_VARIABLE = """
SELECT u.unit_id AS __value, u.name || ' (' || l.name || ')' AS __text
FROM reporting.units u JOIN reporting.unit_levels l ON l.level = u.level
ORDER BY l.rank, u.name
"""

UNIT_INFO = f"""
SELECT u.name AS "Đơn vị", l.name AS "Cấp", coalesce(p.name, '—') AS "Đơn vị cấp trên",
       u.head_name AS "Thủ trưởng", u.unit_id AS "Mã đơn vị"
FROM reporting.units u
JOIN reporting.unit_levels l ON l.level = u.level
LEFT JOIN reporting.units p ON p.unit_id = u.parent_id
WHERE u.unit_id = {UNIT}
"""

OVERDUE_CASES = f"""
SELECT c.case_id AS "Mã hồ sơ", c.procedure_code AS "Mã TTHC", c.received_at AS "Ngày tiếp nhận",
       c.deadline AS "Hạn giải quyết",
       round(extract(epoch FROM now() - c.deadline) / 86400.0, 1) AS "Số ngày quá hạn",
       CASE WHEN c.apology_at IS NULL THEN 'Chưa có' ELSE 'Đã có' END AS "Văn bản xin lỗi"
FROM reporting.cases c
WHERE c.unit_id = {UNIT} AND c.closed_at IS NULL AND c.paused_since IS NULL AND c.deadline < now()
ORDER BY c.deadline
LIMIT 500
"""

# Per procedure, as the unit page's list (metrics' by=procedure figures): resolved late this local month
# (on_time_rate's denominator minus its numerator) and open past the deadline now (overdue_open).
LATE_PROCEDURES = f"""
WITH counts AS (
  SELECT c.procedure_code,
         count(*) FILTER (
           WHERE c.close_type = 'resolved' AND c.timeliness NOT IN ('early', 'on_time')
             AND c.closed_at >= ({MONTH_START}::timestamp AT TIME ZONE {LOCAL_TZ})
             AND c.closed_at < (({MONTH_START} + interval '1 month')::timestamp AT TIME ZONE {LOCAL_TZ})
         ) AS late,
         count(*) FILTER (WHERE c.closed_at IS NULL AND c.paused_since IS NULL AND c.deadline < now()) AS overdue
  FROM reporting.cases c
  WHERE c.unit_id = {UNIT}
  GROUP BY c.procedure_code
)
SELECT coalesce(c.procedure_code, '—') AS "Mã TTHC", coalesce(p.name, 'chưa có trong danh mục') AS "Tên thủ tục",
       c.late AS "Giải quyết trễ hạn (tháng)", c.overdue AS "Đang quá hạn"
FROM counts c LEFT JOIN reporting.procedures p ON p.procedure_code = c.procedure_code
WHERE c.late > 0 OR c.overdue > 0
ORDER BY c.late + c.overdue DESC, c.procedure_code
LIMIT 50
"""

OFFER_RATE_THIS_MONTH = f"""
SELECT count(DISTINCT procedure_code) FILTER (WHERE online)::float8
       / nullif(count(DISTINCT procedure_code), 0) AS "Tỷ lệ"
FROM reporting.procedure_days
WHERE day >= {MONTH_START} AND day < ({MONTH_START} + interval '1 month')::date
"""


def monthly_trend(*, unit_filter: bool) -> str:
    """Monthly ratio of every KPI (summed counts over the province or one unit) in the time range."""
    where = f"day BETWEEN {FIRST_DAY} AND {LAST_DAY}" + (f" AND unit_id = {UNIT}" if unit_filter else "")
    return f"""
WITH counts AS (
  SELECT date_trunc('month', day)::date AS month, kpi, sum(numerator) AS n, sum(denominator) AS d
  FROM reporting.kpi_day_cells WHERE {where} GROUP BY 1, 2
  UNION ALL
  SELECT date_trunc('month', day)::date, 'online_offer_rate',
         count(DISTINCT procedure_code) FILTER (WHERE online), count(DISTINCT procedure_code)
  FROM reporting.procedure_days WHERE {where} GROUP BY 1
  UNION ALL
  SELECT date_trunc('month', day)::date, 'apology_coverage',
         count(DISTINCT case_id) FILTER (WHERE apologized), count(DISTINCT case_id)
  FROM reporting.overdue_days WHERE {where} GROUP BY 1
  UNION ALL
  SELECT date_trunc('month', day)::date, 'units_inspected_rate', count(DISTINCT unit_id),
         (SELECT count(*) FROM reporting.units{f" WHERE unit_id = {UNIT}" if unit_filter else ""})
  FROM reporting.inspected_days WHERE {where} GROUP BY 1
)
SELECT c.month::timestamp AT TIME ZONE {LOCAL_TZ} AS "time", k.name AS metric, c.n::float8 / c.d AS value
FROM counts c JOIN {kpi_names()} USING (kpi)
WHERE c.d > 0
ORDER BY 1, k.position
"""


def level_trend(kpi: str) -> str:
    """Monthly ratio of a day-cell KPI per administrative level (summed counts) in the time range."""
    return f"""
SELECT date_trunc('month', c.day)::timestamp AT TIME ZONE {LOCAL_TZ} AS "time", l.name AS metric,
       sum(c.numerator)::float8 / sum(c.denominator) AS value
FROM reporting.kpi_day_cells c
JOIN reporting.units u ON u.unit_id = c.unit_id
JOIN reporting.unit_levels l ON l.level = u.level
WHERE c.kpi = '{kpi}' AND c.day BETWEEN {FIRST_DAY} AND {LAST_DAY}
GROUP BY 1, 2, l.rank
HAVING sum(c.denominator) > 0
ORDER BY 1, l.rank
"""


LAST_EVENTS = """
SELECT u.name AS "Đơn vị", l.name AS "Cấp", e.last_event_at AS "Sự kiện gần nhất",
       round(extract(epoch FROM now() - e.last_event_at) / 3600.0, 1) AS "Số giờ", u.unit_id AS "Mã đơn vị"
FROM reporting.units u
JOIN reporting.unit_levels l ON l.level = u.level
JOIN reporting.unit_last_events e ON e.unit_id = u.unit_id
ORDER BY e.last_event_at NULLS FIRST, l.rank, u.name
"""

RECENT_ALERTS = f"""
SELECT a.opened_at AS "Mở lúc", coalesce(k.name, a.kpi) AS "Chỉ tiêu", a.period AS "Kỳ",
       CASE WHEN a.resolved_at IS NULL THEN 'Đang mở'
            WHEN a.resolution = 'recovered' THEN 'Đã đạt lại' ELSE 'Hết kỳ' END AS "Trạng thái",
       a.acknowledged_at AS "Đã xác nhận lúc", a.escalated_at AS "Báo cấp trên lúc", a.resolved_at AS "Đóng lúc"
FROM reporting.alerts a LEFT JOIN {kpi_names()} USING (kpi)
WHERE a.unit_id = {UNIT}
ORDER BY a.opened_at DESC
LIMIT 50
"""

NOTIFICATIONS = """
SELECT channel AS "Kênh",
       count(notification_id) FILTER (WHERE status = 'sent') AS "Đã gửi",
       count(notification_id) FILTER (WHERE status = 'pending') AS "Đang chờ",
       count(notification_id) FILTER (WHERE status = 'failed') AS "Thất bại",
       count(notification_id) FILTER (WHERE status IN ('cancelled', 'expired')) AS "Huỷ/hết hạn",
       extract(epoch FROM max(now() - created_at) FILTER (WHERE status = 'pending')) AS "Chờ lâu nhất"
FROM reporting.notifications
WHERE created_at BETWEEN $__timeFrom()::timestamptz AND $__timeTo()::timestamptz
GROUP BY channel
ORDER BY channel
"""
