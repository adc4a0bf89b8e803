"""What the web pages say, in Vietnamese (the default) and English, and how they format numbers."""

from collections.abc import Callable
from datetime import datetime

from shared.kpis import KPI_BY_ID, LOCAL_TZ

LANGS = ("vi", "en")
TEXT: dict[str, tuple[str, str]] = {
    "province_title": ("Tổng quan tỉnh", "Province overview"),
    "unit_title": ("Trang đơn vị", "Unit page"),
    "switch": ("English", "Tiếng Việt"),
    "as_of": ("Số liệu tính đến", "Data as of"),
    "no_counts": ("chưa có số liệu", "no counts yet"),
    "scope": ("Phạm vi", "Scope"),
    "province": ("Toàn tỉnh", "Whole province"),
    "levels": ("Theo cấp", "By level"),
    "districts": ("Theo huyện (đơn vị và cấp dưới)", "By district (unit and below)"),
    "kpis": ("Chỉ số so với chỉ tiêu", "KPIs against their targets"),
    "kpi": ("Chỉ số", "KPI"),
    "month": ("Tháng", "Month"),
    "year": ("Năm", "Year"),
    "value": ("Giá trị", "Value"),
    "target": ("Chỉ tiêu", "Target"),
    "status": ("Trạng thái", "Status"),
    "meets": ("Đạt", "Meets"),
    "below": ("Không đạt", "Below"),
    "no_data": ("Chưa có số liệu", "No data"),
    "informational": ("Tham khảo", "Information"),
    "below_units": (
        "Đơn vị không đạt chỉ tiêu tháng này (kém nhất trước)",
        "Units below target this month (worst first)",
    ),
    "below_units_none": ("Không có đơn vị nào dưới chỉ tiêu.", "No unit is below target."),
    "ranking_note": (
        "Xếp theo số chỉ số không đạt, rồi theo mức thiếu hụt lớn nhất.",
        "Ranked by the number of KPIs below target, then by the largest shortfall.",
    ),
    "rank": ("Hạng", "Rank"),
    "unit": ("Đơn vị", "Unit"),
    "level": ("Cấp", "Level"),
    "kpis_below": ("Chỉ số không đạt", "KPIs below target"),
    "all_units": ("Tất cả đơn vị trong phạm vi", "Every unit in scope"),
    "on_time": ("Đúng hạn", "On time"),
    "overdue_open": ("Đang quá hạn", "Overdue now"),
    "trend": ("Xu hướng theo tháng (12 tháng)", "Monthly trend (12 months)"),
    "budget": ("Còn được phép (tháng)", "Still allowed (month)"),
    "forecast": ("Dự báo cuối tháng", "Month-end forecast"),
    "p_meet": ("khả năng đạt", "chance to meet"),
    "certain_breach": ("chắc chắn không đạt", "certain to miss"),
    "overdue_cases": ("Hồ sơ đang quá hạn (cũ nhất trước)", "Open overdue case files (oldest first)"),
    "late_procedures": (
        "Thủ tục có hồ sơ trễ hạn tháng này hoặc đang quá hạn",
        "Procedures with files resolved late this month or overdue now",
    ),
    "late_procedures_none": ("Không có thủ tục nào có hồ sơ trễ hạn.", "No procedure has late files."),
    "procedure_name": ("Tên thủ tục", "Procedure"),
    "late_files": ("Giải quyết trễ hạn (tháng)", "Resolved late (month)"),
    "not_in_catalogue": ("chưa có trong danh mục", "not in the catalogue"),
    "overdue_none": ("Không có hồ sơ đang quá hạn.", "No open case file is overdue."),
    "due_soon": ("Sắp đến hạn", "Due soon"),
    "due_soon_note": (
        "Hồ sơ đang xử lý, hạn đến hết ngày làm việc tiếp theo (đánh dấu) hoặc trong {n} ngày làm việc tới;"
        " thời gian thường giải quyết là trung vị của đơn vị cho thủ tục trong {d} ngày qua.",
        "Open, running files due by the end of the next working day (marked) or within {n} working days;"
        " usual time is the unit's median for the procedure over the last {d} days.",
    ),
    "due_soon_none": ("Không có hồ sơ sắp đến hạn.", "No file is due soon."),
    "next_working_day": ("Hết ngày làm việc tiếp theo", "By the next working day"),
    "usual_time": ("Đơn vị thường giải quyết trong", "The unit usually takes"),
    "usual_none": ("chưa có hồ sơ đã giải quyết", "no resolved file yet"),
    "days": ("ngày", "days"),
    "files": ("hồ sơ", "files"),
    "case_id": ("Mã hồ sơ", "Case id"),
    "procedure": ("Thủ tục", "Procedure"),
    "deadline": ("Hạn xử lý", "Deadline"),
    "days_overdue": ("Số ngày quá hạn", "Days overdue"),
    "apology": ("Văn bản xin lỗi", "Apology letter"),
    "yes": ("Có", "Yes"),
    "no": ("Chưa", "No"),
    "alerts": ("Lịch sử cảnh báo", "Alert history"),
    "alerts_none": ("Chưa có cảnh báo.", "No alerts yet."),
    "alert_id": ("Số", "No."),
    "period": ("Kỳ", "Period"),
    "opened": ("Mở lúc", "Opened"),
    "state": ("Tình trạng", "State"),
    "open": ("Đang mở", "Open"),
    "acknowledged": ("Đã xác nhận", "Acknowledged"),
    "resolved": ("Đã đóng", "Resolved"),
    "escalated": ("đã chuyển cấp trên", "escalated"),
    "acknowledge": ("Xác nhận…", "Acknowledge…"),
    "ack_by_mail": (
        "Thủ trưởng đơn vị xác nhận bằng liên kết trong thư cảnh báo.",
        "The unit head acknowledges through the link in the alert message.",
    ),
    "unit_page_link": ("Trang đơn vị", "Unit page"),
    "csv": ("Tải CSV", "Download CSV"),
    "reports": ("Báo cáo định kỳ (biểu II.06a/VPCP/KSTT)", "Periodic reports (form II.06a/VPCP/KSTT)"),
    "report_period": ("Kỳ báo cáo", "Reporting period"),
    "report_span": ("Từ ngày – đến ngày", "From – to"),
    "report_download": ("Tải về", "Download"),
    "report-month": ("Tháng", "Month"),
    "report-quarter": ("Quý", "Quarter"),
    "report-year": ("Năm", "Year"),
    "report_current": ("kỳ hiện tại, số liệu đến nay", "current period, so far"),
    "report_previous": ("kỳ trước", "previous period"),
    "login_title": ("Đăng nhập", "Sign in"),
    "login_help": (
        "Nhập mã truy cập (viewer hoặc operator) do quản trị cấp: dvc tokens create --role viewer.",
        "Enter an API token (viewer or operator) from the administrators: dvc tokens create --role viewer.",
    ),
    "token": ("Mã truy cập", "API token"),
    "login": ("Đăng nhập", "Sign in"),
    "logout": ("Đăng xuất", "Sign out"),
    "login_failed": (
        "Mã truy cập không hợp lệ, đã hết hạn hoặc đã bị thu hồi.",
        "Invalid, expired or revoked API token.",
    ),
    "link_refused": ("Không mở được trang", "Cannot open the page"),
    "overview_link": ("Tổng quan tỉnh", "Province overview"),
}
ALLOWANCE = {  # "còn được phép <phrase>", as in the alert messages
    "on_time_rate": ("trễ {k} hồ sơ", "{k} more late files"),
    "satisfaction_rate": ("có {k} đánh giá không hài lòng", "{k} more unsatisfied ratings"),
    "online_offer_rate": (
        "có {k} thủ tục chưa có hồ sơ trực tuyến",
        "{k} more procedures without online files",
    ),
    "online_intake_rate": ("có {k} hồ sơ không nộp trực tuyến", "{k} more files not filed online"),
    "portal_sync_rate": ("có {k} hồ sơ chưa đồng bộ", "{k} more unsynced files"),
    "paperless_rate": ("gửi {k} văn bản không điện tử", "{k} more paper documents"),
    "signed_rate": ("có {k} văn bản chưa ký số", "{k} more unsigned documents"),
    "apology_coverage": (
        "có {k} hồ sơ quá hạn chưa có văn bản xin lỗi",
        "{k} more overdue files without apology",
    ),
    "overdue_open": ("có {k} hồ sơ quá hạn", "{k} more overdue files"),
    "online_report_rate": ("có {k} báo cáo không trực tuyến", "{k} more reports not filed online"),
    "digital_inspection_rate": (
        "có {k} cuộc kiểm tra không qua môi trường số",
        "{k} more non-digital inspections",
    ),
    "units_inspected_rate": ("có {k} đơn vị chưa được kiểm tra", "{k} more units not inspected"),
}
COMPARATOR = {">=": "≥", ">": ">", "<=": "≤"}


def pick_lang(value: str | None) -> str:
    """Return "en" when asked for, else "vi"."""
    return "en" if value == "en" else "vi"


def translator(lang: str) -> Callable[[str], str]:
    """Return t(key) for a language."""
    index = LANGS.index(lang)
    return lambda key: TEXT[key][index]


def kpi_name(kpi: str, lang: str) -> str:
    """Return a KPI's name."""
    found = KPI_BY_ID.get(kpi)
    if found is None:
        return kpi
    return found.name_vi if lang == "vi" else found.name_en


def percent(value: float | None, lang: str) -> str:
    """Return "98,5%" (vi) or "98.5%" (en); "—" when there is no value."""
    if value is None:
        return "—"
    text = f"{value * 100:.1f}%"
    return text.replace(".", ",") if lang == "vi" else text


def decimal(value: float, lang: str) -> str:
    """Return "4,5" (vi) or "4.5" (en)."""
    text = f"{value:.1f}"
    return text.replace(".", ",") if lang == "vi" else text


def target_text(comparator: str | None, target: float | None, *, is_count: bool, lang: str) -> str:
    """Return "≥ 98,5%" or "≤ 0"."""
    if comparator is None or target is None:
        return "—"
    sign = COMPARATOR.get(comparator, comparator)
    return f"{sign} {int(target)}" if is_count else f"{sign} {percent(target, lang)}"


def stamp(moment: datetime | None, lang: str) -> str:
    """Return "14:30 26/11/2026" (local time), "—" for none."""
    if moment is None:
        return "—"
    return (
        f"{moment.astimezone(LOCAL_TZ):%H:%M %d/%m/%Y}"
        if lang == "vi"
        else f"{moment.astimezone(LOCAL_TZ):%Y-%m-%d %H:%M}"
    )


def allowance(kpi: str, left: int, lang: str) -> str:
    """Return "còn được phép trễ 3 hồ sơ" or "vượt mức 2" (over the budget)."""
    vi, en = ALLOWANCE.get(kpi, ("có {k} trường hợp không đạt", "{k} more failures"))
    if left >= 0:
        return f"Còn được phép {vi.format(k=left)}" if lang == "vi" else en.format(k=left) + " allowed"
    return f"Đã vượt mức cho phép {-left}" if lang == "vi" else f"{-left} over the allowance"
