"""SQL of the board panels, run by Grafana as the read-only role dvc_reader.

dvc_reader reads only the views and functions of the `reporting` schema (migrations 0006, 0019), never
the tables.

Period counts come from PostgreSQL through the metrics API's own rollup (`reporting.kpi_rollups`), and the
overdue cases from its own definition (`reporting.overdue_open_cases`), judged at now().
Grafana macros used: $__timeFrom(), $__timeTo(); variables: ${unit:sqlstring}.
"""

from shared.kpis import KPIS

LOCAL_TZ = "'Asia/Ho_Chi_Minh'"
UNIT = "${unit:sqlstring}"
FIRST_DAY = f"date_trunc('month', $__timeFrom()::timestamptz AT TIME ZONE {LOCAL_TZ})::date"
LAST_DAY = f"($__timeTo()::timestamptz AT TIME ZONE {LOCAL_TZ})::date"
MONTH_START = f"date_trunc('month', now() AT TIME ZONE {LOCAL_TZ})::date"
# The local months of the time range, the last one cut at the range's last day.
MONTHS = f"""WITH months AS (
  SELECT m::date AS first_day, least((m + interval '1 month' - interval '1 day')::date, {LAST_DAY}) AS last_day
  FROM generate_series({FIRST_DAY}::timestamp, {LAST_DAY}::timestamp, interval '1 month') m
)"""


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
FROM reporting.overdue_open_cases(now()) c
WHERE c.unit_id = {UNIT}
ORDER BY c.deadline
LIMIT 500
"""

# Per procedure, as the unit page's list (metrics' by=procedure figures): resolved late this local month
# (on_time_rate's denominator minus its numerator) and open past the deadline now (overdue_open).
LATE_PROCEDURES = f"""
WITH counts AS (
  SELECT procedure_code, count(*) FILTER (WHERE late) AS late, count(*) FILTER (WHERE NOT late) AS overdue
  FROM (
    SELECT c.procedure_code, true AS late
    FROM reporting.cases c
    WHERE c.unit_id = {UNIT} AND c.close_type = 'resolved' AND c.timeliness NOT IN ('early', 'on_time')
      AND c.closed_at >= ({MONTH_START}::timestamp AT TIME ZONE {LOCAL_TZ})
      AND c.closed_at < (({MONTH_START} + interval '1 month')::timestamp AT TIME ZONE {LOCAL_TZ})
    UNION ALL
    SELECT o.procedure_code, false FROM reporting.overdue_open_cases(now()) o WHERE o.unit_id = {UNIT}
  ) cases
  GROUP BY procedure_code
)
SELECT coalesce(c.procedure_code, '—') AS "Mã TTHC", coalesce(p.name, 'chưa có trong danh mục') AS "Tên thủ tục",
       c.late AS "Giải quyết trễ hạn (tháng)", c.overdue AS "Đang quá hạn"
FROM counts c LEFT JOIN reporting.procedures p ON p.procedure_code = c.procedure_code
WHERE c.late > 0 OR c.overdue > 0
ORDER BY c.late + c.overdue DESC, c.procedure_code
LIMIT 50
"""

OFFER_RATE_THIS_MONTH = f"""
SELECT (SELECT r.numerator::float8 / nullif(r.denominator, 0)
        FROM reporting.kpi_rollups(NULL, {MONTH_START}, ({MONTH_START} + interval '1 month' - interval '1 day')::date, now()) r
        WHERE r.kpi = 'online_offer_rate') AS "Tỷ lệ"
"""


def monthly_trend(*, unit_filter: bool) -> str:
    """Monthly ratio of every KPI (of the province or one unit) in the time range.

    A month without an inspection draws no point of units_inspected_rate: that KPI is judged on the year
    (kpis.md), and the month's 0 would read as a failure.
    """
    units = f"ARRAY[{UNIT}]" if unit_filter else "NULL"
    return f"""
{MONTHS}
SELECT m.first_day::timestamp AT TIME ZONE {LOCAL_TZ} AS "time", k.name AS metric,
       r.numerator::float8 / r.denominator AS value
FROM months m
CROSS JOIN LATERAL reporting.kpi_rollups({units}, m.first_day, m.last_day, now()) r
JOIN {kpi_names()} USING (kpi)
WHERE r.denominator > 0 AND (r.numerator > 0 OR r.kpi <> 'units_inspected_rate')
ORDER BY 1, k.position
"""


def level_trend(kpi: str) -> str:
    """Monthly ratio of a day-cell KPI per administrative level (its units together) in the time range."""
    return f"""
{MONTHS}
SELECT m.first_day::timestamp AT TIME ZONE {LOCAL_TZ} AS "time", l.name AS metric,
       r.numerator::float8 / r.denominator AS value
FROM months m
CROSS JOIN reporting.unit_levels l
CROSS JOIN LATERAL reporting.kpi_rollups(
  ARRAY(SELECT u.unit_id FROM reporting.units u WHERE u.level = l.level), m.first_day, m.last_day, now()
) r
WHERE r.kpi = '{kpi}' AND r.denominator > 0
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
