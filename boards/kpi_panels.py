"""Panels shared by the officials' boards: KPI stats against targets, unit rankings, KPI tables."""

from typing import Any

from boards import rules as r
from boards import sql
from boards.panels import (
    Json,
    Panel,
    organize,
    override,
    pg,
    prom,
    stat,
    table,
    value_mappings,
)
from boards.thresholds import BoardTargets, target_text, threshold_steps
from shared.kpis import KPI_BY_ID, KPIS
from shared.targets import Target

MONTH = 'period="month"'
STATUS = value_mappings({"0": ("Đạt", "green"), "1": ("Chưa đạt", "red")})
KPI_NAMES = value_mappings({kpi.id: (kpi.name_vi, None) for kpi in KPIS})
BUDGET_STEPS = {
    "mode": "absolute",
    "steps": [
        {"color": "red", "value": None},
        {"color": "yellow", "value": 0},
        {"color": "green", "value": 1},
    ],
}
UNITS_BELOW_STEPS = {
    "mode": "absolute",
    "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
}
UNIT_LINK = [{"title": "Xem đơn vị / open the unit board", "url": "/d/dvc-unit?var-unit=${__value.raw}"}]
SUMMED = "Tổng tử số chia tổng mẫu số của mọi đơn vị, không lấy trung bình các tỷ lệ"
COUNTS = r.alternatives(r.COUNT_KPIS)
MERGE = {"id": "merge", "options": {}}
COLOR_CELL = {"type": "color-background"}


def number_format(kpi: str) -> dict[str, Any]:
    """Ratios as percentages with one decimal, counts as whole numbers."""
    return (
        {"unit": "none", "decimals": 0} if KPI_BY_ID[kpi].is_count else {"unit": "percentunit", "decimals": 1}
    )


def kpi_title(kpi: str, targets: dict[str, Target]) -> str:
    """The KPI's Vietnamese name and its target as officials read it."""
    return f"{KPI_BY_ID[kpi].name_vi} ({target_text(targets.get(kpi), is_count=KPI_BY_ID[kpi].is_count)})"


def sort_by(column: str, *, descending: bool = False) -> Json:
    """Return a `sortBy` transformation."""
    return {"id": "sortBy", "options": {"fields": {}, "sort": [{"desc": descending, "field": column}]}}


def province_stat(kpi: str, targets: BoardTargets) -> Panel:
    """This month's province value of one KPI, green exactly when it meets the province target."""
    entry = KPI_BY_ID[kpi]
    if kpi in r.NOT_ADDITIVE:
        query = pg(sql.OFFER_RATE_THIS_MONTH)
        how = "Đếm các mã TTHC khác nhau của cả tỉnh (hợp của các đơn vị, không cộng)"
    elif entry.yearly:  # its target is per year: the year to date, the units inspected (counted once each)
        query, how = prom(f'{r.PROVINCE_VALUE}{{kpi="{kpi}", period="year"}}'), SUMMED
    else:
        query, how = prom(f'{r.PROVINCE_VALUE}{{kpi="{kpi}", {MONTH}}}'), SUMMED
    when_vi, when_en = ("từ đầu năm", "year to date") if entry.yearly else ("tháng này", "this month")
    description = (
        f"{entry.name_vi}, {when_vi}, toàn tỉnh. {how}. Chỉ tiêu lấy từ deploy/targets.yaml. "
        f"/ {entry.name_en}, {when_en}, whole province; target from deploy/targets.yaml."
    )
    thresholds = threshold_steps(targets.province.get(kpi), is_count=entry.is_count)
    return stat(
        kpi_title(kpi, targets.province), description, query, thresholds=thresholds, **number_format(kpi)
    )


def ranking(title: str, description: str, kpi: str, *, height: int = 12) -> Panel:
    """Units of one KPI this month, worst first: distance to each unit's own target, then the figures."""
    selector = f'{{kpi="{kpi}", {MONTH}}}'
    columns = {
        "Value #A": "Chênh lệch so với chỉ tiêu",
        "Value #B": "Giá trị",
        "Value #C": "Chỉ tiêu",
        "Value #D": "Tử số",
        "Value #E": "Mẫu số",
        "Value #F": "Trạng thái",
        "unit_id": "Mã đơn vị",
    }
    targets = [
        prom(f"{r.GAP}{selector}", table=True),
        prom(f"{r.VALUE}{selector}", table=True),
        prom(f"{r.VALUE}{selector} * 0 + on (unit_id, kpi) group_left {r.TARGET}", table=True),
        prom(f"{r.NUMERATOR}{selector} and {r.VALUE}{selector}", table=True),
        prom(f"{r.DENOMINATOR}{selector} and {r.VALUE}{selector}", table=True),
        prom(f"{r.BELOW}{selector}", table=True),
    ]
    panel = table(title, description, targets, height=height)
    panel.transformations = [
        MERGE,
        organize(hide=("Time", "kpi", "period"), rename=columns, order=("unit_id", *list(columns)[:-1])),
        sort_by("Chênh lệch so với chỉ tiêu"),
    ]
    panel.overrides = [
        override("Mã đơn vị", links=UNIT_LINK),
        *(
            override(name, unit="percentunit", decimals=1)
            for name in ("Chênh lệch so với chỉ tiêu", "Giá trị", "Chỉ tiêu")
        ),
        override("Trạng thái", mappings=STATUS, custom__cellOptions=COLOR_CELL),
    ]
    return panel


def kpi_table(title: str, description: str, period: str) -> Panel:
    """One row per ratio KPI of the chosen unit: value, counts, its own target, status."""
    selector = f'{{unit_id="$unit", period="{period}", kpi!~"{COUNTS}"}}'
    columns = {
        "kpi": "Chỉ số",
        "Value #A": "Giá trị",
        "Value #B": "Tử số",
        "Value #C": "Mẫu số",
        "Value #D": "Chỉ tiêu",
        "Value #E": "Trạng thái",
    }
    targets = [
        prom(f"{r.VALUE}{selector}", table=True),
        prom(f"{r.NUMERATOR}{selector}", table=True),
        prom(f"{r.DENOMINATOR}{selector}", table=True),
        prom(f"{r.NUMERATOR}{selector} * 0 + on (unit_id, kpi) group_left {r.TARGET}", table=True),
        prom(f"{r.BELOW}{selector}", table=True),
    ]
    panel = table(title, description, targets, height=10)
    panel.transformations = [
        MERGE,
        organize(hide=("Time", "unit_id", "period"), rename=columns, order=tuple(columns)),
    ]
    panel.overrides = [
        override("Chỉ số", mappings=KPI_NAMES, custom__width=420),
        *(override(name, unit="percentunit", decimals=1) for name in ("Giá trị", "Chỉ tiêu")),
        override("Trạng thái", mappings=STATUS, custom__cellOptions=COLOR_CELL),
    ]
    return panel
