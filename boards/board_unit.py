"""Đơn vị (uid dvc-unit, variable `unit`): alert messages link to /d/dvc-unit?var-unit=<id>."""

from boards import rules as r
from boards import sql
from boards.kpi_panels import BUDGET_STEPS, KPI_NAMES, MERGE, MONTH, kpi_table, kpi_title
from boards.panels import (
    Json,
    Panel,
    bar_gauge,
    dashboard,
    organize,
    override,
    pg,
    prom,
    stat,
    table,
    time_series,
    variable_sql,
)
from boards.thresholds import BoardTargets, threshold_steps
from shared.kpis import KPI_BY_ID, KPIS


def budget_panels(targets: BoardTargets) -> list[Panel]:
    """Failures still allowed this month, per KPI: bars to read at a glance, then the table behind them."""
    targeted = [kpi.id for kpi in KPIS if kpi.id in targets.comparators and not kpi.yearly]
    how = (
        "Ước tính: số hồ sơ (văn bản, lượt đánh giá) cả tháng = số hiện có × số ngày trong tháng / số ngày đã qua; "
        "được phép không đạt = phần (1 − chỉ tiêu) của số đó; còn lại = được phép − đã không đạt. Âm: đã vượt. "
        "/ Month-end estimate of failures still allowed before the unit misses its target."
    )
    bars = bar_gauge(
        "Số trường hợp còn được phép không đạt trong tháng (ước tính)",
        how,
        [
            prom(f'{r.REMAINING}{{unit_id="$unit", kpi="{kpi}"}}', legend=KPI_BY_ID[kpi].name_vi)
            for kpi in targeted
        ],
        width=12,
        height=9,
        thresholds=BUDGET_STEPS,
        decimals=0,
    )
    selector = '{unit_id="$unit"}'
    columns = {
        "kpi": "Chỉ số",
        "Value #A": "Được phép (ước tính)",
        "Value #B": "Đã không đạt",
        "Value #C": "Còn lại",
    }
    detail = table(
        "Ngân sách không đạt tháng này",
        how,
        [prom(f"{name}{selector}", table=True) for name in (r.ALLOWED, r.FAILURES, r.REMAINING)],
        width=12,
        height=9,
        decimals=0,
    )
    detail.transformations = [
        MERGE,
        organize(hide=("Time", "unit_id", "period"), rename=columns, order=tuple(columns)),
    ]
    detail.overrides = [override("Chỉ số", mappings=KPI_NAMES)]
    return [bars, detail]


def unit_board(targets: BoardTargets) -> Json:
    """Đơn vị (uid dvc-unit, variable `unit`: alert messages link to /d/dvc-unit?var-unit=<id>)."""
    info = table(
        "Thông tin đơn vị", "Danh mục đơn vị. / The unit in the registry.", [pg(sql.UNIT_INFO)], height=3
    )
    overdue_count = stat(
        kpi_title("overdue_open", targets.province),
        "Hồ sơ đang mở đã quá hạn (không tính hồ sơ đang chờ bổ sung). / Open cases past their deadline now.",
        prom(f'{r.VALUE}{{unit_id="$unit", kpi="overdue_open", {MONTH}}}'),
        width=6,
        height=9,
        thresholds=threshold_steps(targets.province.get("overdue_open"), is_count=True),
        decimals=0,
    )
    overdue_list = table(
        "Danh sách hồ sơ đang quá hạn",
        "Hạn cũ nhất trước. Số ngày quá hạn tính theo ngày lịch. / Open overdue cases, oldest deadline first.",
        [pg(sql.OVERDUE_CASES)],
        width=18,
        height=9,
    )
    late_procedures = table(
        "Thủ tục gây trễ hạn",
        "Thủ tục có hồ sơ giải quyết trễ hạn trong tháng này hoặc đang quá hạn, nhiều nhất trước (như trang "
        "đơn vị). / Procedures with files resolved late this month or overdue now, the most first.",
        [pg(sql.LATE_PROCEDURES)],
        height=8,
        decimals=0,
    )
    trend = time_series(
        "Xu hướng theo tháng — đơn vị",
        "Tỷ lệ mỗi tháng của đơn vị, từ số liệu ngày trong PostgreSQL. / The unit's monthly ratios.",
        [pg(sql.monthly_trend(unit_filter=True), series=True)],
        unit="percentunit",
        decimals=1,
        min=0,
        max=1,
    )
    alerts = table(
        "Cảnh báo gần đây",
        "50 cảnh báo mới nhất của đơn vị (dịch vụ cảnh báo). / The unit's latest alerts.",
        [pg(sql.RECENT_ALERTS)],
        height=8,
    )
    month = kpi_table(
        "Chỉ số tháng này",
        "Giá trị = tử số / mẫu số của tháng hiện tại; chỉ tiêu của chính đơn vị (theo cấp hoặc riêng). "
        "/ This month's KPIs against the unit's own targets.",
        "month",
    )
    year = kpi_table("Chỉ số năm nay", "Như trên, từ đầu năm. / The same, year to date.", "year")
    annotation = {
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": False,
        "iconColor": "red",
        "name": "Cảnh báo của đơn vị",
        "target": {"limit": 100, "matchAny": False, "tags": ["unit:$unit"], "type": "tags"},
    }
    return dashboard(
        "dvc-unit",
        "Đơn vị",
        "Chi tiết một đơn vị: chỉ số, hồ sơ quá hạn, thủ tục gây trễ hạn, cảnh báo, số trường hợp còn được "
        "phép không đạt. "
        "/ Unit drill-down.",
        [
            [info],
            [month],
            [overdue_count, overdue_list],
            [late_procedures],
            budget_panels(targets),
            [year],
            [trend],
            [alerts],
        ],
        time_from="now-1y",
        refresh="1m",
        variables=[variable_sql("unit", "Đơn vị", sql.UNIT_VARIABLE)],
        annotations=[annotation],
    )
