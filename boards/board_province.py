"""Tổng quan tỉnh (uid dvc-province): each KPI against its target, units below target, ranking, trend."""

from boards import rules as r
from boards import sql
from boards.kpi_panels import MONTH, SUMMED, UNITS_BELOW_STEPS, province_stat, ranking
from boards.panels import Json, bar_gauge, dashboard, pg, prom, stat, time_series, variable_sql
from boards.thresholds import BoardTargets, threshold_steps
from shared.kpis import KPI_BY_ID, KPIS


def province_board(targets: BoardTargets) -> Json:
    """Tổng quan tỉnh: each KPI against its target, units below target, ranking, monthly trend."""
    stats = [province_stat(kpi.id, targets) for kpi in KPIS]
    # monthly figures: a yearly KPI (units_inspected_rate) is judged on the year only
    targeted = [kpi.id for kpi in KPIS if kpi.id in targets.comparators and not kpi.yearly]
    below = bar_gauge(
        "Số đơn vị chưa đạt chỉ tiêu (tháng này)",
        "Mỗi thanh: số đơn vị có số liệu mà chưa đạt chỉ tiêu của chính đơn vị đó (chỉ tiêu theo cấp hoặc riêng "
        "từng đơn vị). / Units whose figure misses their own target this month, per KPI.",
        [
            prom(f'{r.PROVINCE_BELOW}{{kpi="{kpi}", {MONTH}}}', legend=KPI_BY_ID[kpi].name_vi)
            for kpi in targeted
        ],
        width=12,
        height=10,
        thresholds=UNITS_BELOW_STEPS,
        decimals=0,
    )
    any_below = stat(
        "Đơn vị chưa đạt ít nhất một chỉ tiêu",
        "Số đơn vị có ít nhất một chỉ tiêu chưa đạt trong tháng. / Units missing at least one target this month.",
        prom(f"{r.PROVINCE_BELOW_ANY}{{{MONTH}}}"),
        width=6,
        height=10,
        thresholds=UNITS_BELOW_STEPS,
        decimals=0,
    )
    units = stat(
        "Tổng số đơn vị",
        "Số đơn vị trong danh mục đang dùng. / Units in the loaded registry.",
        prom(r.PROVINCE_UNITS),
        width=6,
        height=10,
        thresholds={"mode": "absolute", "steps": [{"color": "blue", "value": None}]},
        decimals=0,
    )
    overdue = bar_gauge(
        "Đơn vị có nhiều hồ sơ đang quá hạn nhất",
        "15 đơn vị có nhiều hồ sơ đang mở đã quá hạn nhất (hiện tại). / Units with the most open overdue cases.",
        [prom(f'topk(15, {r.VALUE}{{kpi="overdue_open", {MONTH}}} > 0)', legend="{{unit_id}}")],
        width=24,
        height=8,
        thresholds=threshold_steps(targets.province.get("overdue_open"), is_count=True),
        decimals=0,
    )
    rank = ranking(
        "Xếp hạng đơn vị: ${kpi:text} (kém nhất trước), tháng này",
        "Chọn chỉ tiêu ở ô «Chỉ tiêu» phía trên. Chênh lệch = giá trị − chỉ tiêu của chính đơn vị (âm: chưa đạt). "
        "Bấm mã đơn vị để xem chi tiết. Đơn vị chưa có số liệu không được xếp hạng. / Units ranked by distance to "
        "their own target, worst first; units without data are not ranked.",
        "$kpi",
    )
    trend = time_series(
        "Xu hướng theo tháng — toàn tỉnh",
        f"Tỷ lệ mỗi tháng trong khoảng thời gian đã chọn, tính từ số liệu ngày trong PostgreSQL. {SUMMED}. "
        "/ Monthly ratios over the chosen time range, from the day cells in PostgreSQL.",
        [pg(sql.monthly_trend(unit_filter=False), series=True)],
        unit="percentunit",
        decimals=1,
        min=0,
        max=1,
    )
    variables = [
        variable_sql("kpi", "Chỉ tiêu", sql.kpi_variable([k for k in targeted if not KPI_BY_ID[k].is_count]))
    ]
    return dashboard(
        "dvc-province",
        "Tổng quan tỉnh",
        "Chỉ số cải cách hành chính của toàn tỉnh trong tháng hiện tại (giờ Việt Nam) so với chỉ tiêu Kế hoạch "
        "513/KH-UBND. / Province overview: this month's KPIs against the targets.",
        [stats, [below, any_below, units], [rank], [overdue], [trend]],
        time_from="now-1y",
        refresh="1m",
        variables=variables,
    )
