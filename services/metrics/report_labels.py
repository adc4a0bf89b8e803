"""Vietnamese labels of the report files: the form's column headings, periods, statuses, numbers."""

from datetime import date

FORM_CODE = "II.06a/VPCP/KSTT"
FORM_TITLE = "Tình hình, kết quả giải quyết TTHC tại cơ quan, đơn vị trực tiếp giải quyết TTHC"
# (group heading, column heading) of the 13 columns, as provincial software copies the form.
FORM_HEADINGS = (
    ("STT", "STT"),
    ("Lĩnh vực, công việc giải quyết theo cấp", "Lĩnh vực, công việc giải quyết theo cấp"),
    ("Số hồ sơ nhận giải quyết", "Tổng số"),
    ("Số hồ sơ nhận giải quyết", "Trực tuyến"),
    ("Số hồ sơ nhận giải quyết", "Trực tiếp và dịch vụ bưu chính"),
    ("Số hồ sơ nhận giải quyết", "Từ kỳ trước"),
    ("Số hồ sơ đã giải quyết", "Tổng số"),
    ("Số hồ sơ đã giải quyết", "Trước hạn"),
    ("Số hồ sơ đã giải quyết", "Đúng hạn"),
    ("Số hồ sơ đã giải quyết", "Quá hạn"),
    ("Số lượng hồ sơ đang giải quyết", "Tổng số"),
    ("Số lượng hồ sơ đang giải quyết", "Trong hạn"),
    ("Số lượng hồ sơ đang giải quyết", "Quá hạn"),
)
APOLOGY_HEADINGS = (
    "STT",
    "Cơ quan, đơn vị",
    "Đã giải quyết quá hạn",
    "Trong đó: đã có văn bản xin lỗi",
    "Chưa có văn bản xin lỗi",
    "Đang giải quyết quá hạn",
    "Trong đó: đã có văn bản xin lỗi",
    "Chưa có văn bản xin lỗi",
)
KPI_HEADINGS = ("STT", "Chỉ tiêu", "Tử số", "Mẫu số", "Kết quả", "Chỉ tiêu kế hoạch", "Đánh giá")
BELOW_HEADINGS = (
    "STT",
    "Cơ quan, đơn vị",
    "Cấp",
    "Chỉ tiêu",
    "Tử số",
    "Mẫu số",
    "Kết quả",
    "Chỉ tiêu kế hoạch",
)
STATUS_VI = {"meets": "Đạt", "below": "Không đạt", "no_data": "Chưa có số liệu", "informational": "Theo dõi"}
COMPARATOR_SIGN = {">=": "≥", ">": ">", "<=": "≤"}
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X")
REPORT_NAMES = {
    "report-month": "tháng {m} năm {y}",
    "report-quarter": "quý {q} năm {y}",
    "report-half": "6 tháng đầu năm {y}",
    "report-nine-months": "9 tháng năm {y}",
    "report-year": "năm {y}",
}


def vn_date(day: date) -> str:
    """Return dd/mm/yyyy."""
    return f"{day:%d/%m/%Y}"


def period_title(name: str, first: date, last: date) -> str:
    """Describe a period in words, with its first and last day."""
    kind, _, value = name.partition(":")
    span = f"từ ngày {vn_date(first)} đến ngày {vn_date(last)}"
    template = REPORT_NAMES.get(kind)
    if template is None:
        return span
    year = value[:4]
    month = int(value[5:7]) if kind == "report-month" else 0
    quarter = ROMAN[int(value[-1]) - 1] if kind == "report-quarter" else ""
    return f"{template.format(m=month, y=year, q=quarter)} (kỳ báo cáo {span})"


def grouped(value: int) -> str:
    """Return an integer with Vietnamese thousands separators (12.128)."""
    return f"{value:,}".replace(",", ".")


def percent(value: float | None) -> str:
    """Return a ratio as a Vietnamese percentage (comma decimal), or a dash."""
    return "-" if value is None else f"{value * 100:.2f}%".replace(".", ",")


def target_text(target: float | None, comparator: str | None, is_count: bool) -> str:
    """Return a target as officials write it (≥ 98,50%, = 0 …)."""
    if target is None or comparator is None:
        return "-"
    sign = COMPARATOR_SIGN.get(comparator, comparator)
    return f"{sign} {int(target)}" if is_count else f"{sign} {percent(target)}"
