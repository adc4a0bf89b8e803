"""Văn bản điện tử (uid dvc-documents): paperless and signed documents, province and by level."""

from boards import rules as r
from boards import sql
from boards.kpi_panels import MERGE, MONTH, SUMMED, province_stat, ranking
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
    value_mappings,
)
from boards.thresholds import BoardTargets, threshold_steps
from shared.kpis import KPI_BY_ID


def level_bars(title: str, kpi: str, targets: BoardTargets) -> Panel:
    """One bar per administrative level, each with its level's own target and Vietnamese name."""
    entry = KPI_BY_ID[kpi]
    panel = bar_gauge(
        title,
        f"{entry.name_vi} theo cấp hành chính, tháng này. {SUMMED} cùng cấp. "
        f"/ {entry.name_en} per administrative level, this month.",
        [prom(f'{r.LEVEL_VALUE}{{kpi="{kpi}", {MONTH}}}', legend="{{level}}")],
        width=12,
        height=8,
        thresholds=threshold_steps(targets.province.get(kpi), is_count=False),
        unit="percentunit",
        decimals=1,
        min=0,
        max=1,
    )
    panel.overrides = [
        override(
            level,
            displayName=targets.level_names.get(level, level),
            thresholds=threshold_steps(by_kpi.get(kpi), is_count=False),
        )
        for level, by_kpi in targets.by_level.items()
    ]
    return panel


def documents_board(targets: BoardTargets) -> Json:
    """Văn bản điện tử: paperless and signed documents, province and by level."""
    paperless, signed = "paperless_rate", "signed_rate"
    sent = stat(
        "Văn bản đã gửi trong tháng (trừ văn bản mật)",
        "Số văn bản thường đã gửi tháng này. / Non-secret documents sent this month.",
        prom(f'{r.PROVINCE_DENOMINATOR}{{kpi="{paperless}", {MONTH}}}'),
        thresholds={"mode": "absolute", "steps": [{"color": "blue", "value": None}]},
        decimals=0,
    )
    columns = {
        "level": "Cấp",
        "Value #A": "Văn bản điện tử",
        "Value #B": "Tổng văn bản",
        "Value #C": "Tỷ lệ",
        "Value #D": "Số đơn vị chưa đạt",
    }
    selector = f'{{kpi="{paperless}", {MONTH}}}'
    by_level = table(
        "Văn bản điện tử theo cấp (tháng này)",
        "Đơn vị chưa đạt: so với chỉ tiêu của chính đơn vị. / Per level: counts, ratio, units below their target.",
        [
            prom(f"{name}{selector}", table=True)
            for name in (r.LEVEL_NUMERATOR, r.LEVEL_DENOMINATOR, r.LEVEL_VALUE, r.LEVEL_BELOW)
        ],
        height=6,
    )
    by_level.transformations = [
        MERGE,
        organize(hide=("Time", "kpi", "period"), rename=columns, order=tuple(columns)),
    ]
    by_level.overrides = [
        override(
            "Cấp",
            mappings=value_mappings({level: (name, None) for level, name in targets.level_names.items()}),
        ),
        override("Tỷ lệ", unit="percentunit", decimals=1),
    ]
    trend = time_series(
        "Tỷ lệ văn bản điện tử theo cấp — từng tháng",
        f"Từ số liệu ngày trong PostgreSQL. {SUMMED} cùng cấp. / Monthly paperless ratio per level.",
        [pg(sql.level_trend(paperless), series=True)],
        unit="percentunit",
        decimals=1,
        min=0,
        max=1,
    )
    rank = ranking(
        "Đơn vị chưa đạt tỷ lệ văn bản điện tử (kém nhất trước)",
        "Chênh lệch = tỷ lệ − chỉ tiêu của chính đơn vị. / Units ranked by distance to their paperless target.",
        paperless,
        height=10,
    )
    return dashboard(
        "dvc-documents",
        "Văn bản điện tử",
        "Văn bản điện tử và ký số theo cấp hành chính (trừ văn bản mật). / Paperless documents by level.",
        [
            [province_stat(paperless, targets), province_stat(signed, targets), sent],
            [
                level_bars("Tỷ lệ văn bản điện tử theo cấp", paperless, targets),
                level_bars("Tỷ lệ văn bản có ký số theo cấp", signed, targets),
            ],
            [by_level],
            [rank],
            [trend],
        ],
        time_from="now-1y",
        refresh="1m",
    )
