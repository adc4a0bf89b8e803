"""KPI catalogue v1.1 (kpis.md): ids and names shared by metrics, alerts and the boards."""

from dataclasses import dataclass
from datetime import timedelta, timezone

# Periods are local calendar periods in Asia/Ho_Chi_Minh (kpis.md). It has been UTC+7 without daylight
# saving since 1975, so a fixed offset is exact for every date this system sees, and cheaper than ZoneInfo.
LOCAL_TZ = timezone(timedelta(hours=7), "ICT")


@dataclass(frozen=True, slots=True)
class Kpi:
    """A KPI: a ratio of two counts, or a plain count (`overdue_open`)."""

    id: str
    name_vi: str
    name_en: str
    is_count: bool = False
    distinct: bool = False  # rolled up by distinct counting, never by summing day cells
    yearly: bool = False  # its target is per year: a month's value is informational (not alerted)


KPIS: tuple[Kpi, ...] = (
    Kpi("on_time_rate", "Tỷ lệ hồ sơ giải quyết trước và đúng hạn", "Case files resolved early or on time"),
    Kpi("overdue_open", "Hồ sơ đang quá hạn", "Open case files past their deadline", is_count=True),
    Kpi(
        "apology_coverage",
        "Tỷ lệ hồ sơ quá hạn có văn bản xin lỗi",
        "Overdue case files with an apology letter",
        distinct=True,
    ),
    Kpi("satisfaction_rate", "Tỷ lệ hài lòng", "Satisfaction rate"),
    Kpi(
        "online_offer_rate",
        "Tỷ lệ TTHC có hồ sơ được cung cấp DVC trực tuyến mức 3, 4",
        "Procedures offered online at level 3-4",
        distinct=True,
    ),
    Kpi("online_intake_rate", "Tỷ lệ hồ sơ trực tuyến (mức 3, 4)", "Level 3-4 case files received online"),
    Kpi(
        "portal_sync_rate",
        "Tỷ lệ hồ sơ đồng bộ Cổng DVC quốc gia",
        "Level 3-4 case files synced to the national portal",
    ),
    Kpi("paperless_rate", "Tỷ lệ văn bản điện tử (trừ văn bản mật)", "Electronic documents (non-secret)"),
    Kpi("signed_rate", "Tỷ lệ văn bản điện tử có ký số", "Electronic documents digitally signed"),
    # v1.1 (contract v1.1: report and inspection events)
    Kpi(
        "online_report_rate",
        "Tỷ lệ báo cáo định kỳ thực hiện trực tuyến, liên thông hệ thống báo cáo quốc gia",
        "Periodic reports submitted online through the national reporting system",
    ),
    Kpi(
        "digital_inspection_rate",
        "Tỷ lệ hoạt động kiểm tra thực hiện qua môi trường số",
        "Inspections carried out digitally",
    ),
    Kpi(
        "units_inspected_rate",
        "Tỷ lệ cơ quan, đơn vị được kiểm tra CCHC",
        "Units inspected on administrative reform",
        distinct=True,
        yearly=True,
    ),
)
KPI_BY_ID = {kpi.id: kpi for kpi in KPIS}
DAY_CELL_KPIS = tuple(kpi.id for kpi in KPIS if not kpi.is_count and not kpi.distinct)
