"""The report as a DOCX to edit and sign, laid out as Decree 30/2020/NĐ-CP, Annex I wants.

A4; margins top/bottom 20 mm, left 30 mm, right 15 mm; Times New Roman; the issuing body top left and
the national motto top right; "Số: …/BC-…" with the place and date in italics on one line; the title
BÁO CÁO and its summary; body 14 pt justified; "Nơi nhận:" and the signature block; the tables as
annexes (Phụ lục I, II, III) on landscape A4 pages.
"""

from io import BytesIO

from docx import Document
from docx.document import Document as DocumentObject
from docx.enum.section import WD_ORIENT, WD_SECTION
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Mm, Pt
from docx.table import Table
from docx.text.paragraph import Paragraph

from services.metrics.report import Report
from services.metrics.report_docx_tables import annex_tables
from services.metrics.report_labels import grouped, percent, period_title, vn_date
from services.metrics.report_xlsx import report_days
from shared.kpis import LOCAL_TZ


def styled(
    paragraph: Paragraph,
    text: str,
    *,
    size: float = 14,
    bold: bool = False,
    italic: bool = False,
    underline: bool = False,
    align: WD_ALIGN_PARAGRAPH | None = None,
) -> Paragraph:
    """Append a run to a paragraph with the given look."""
    run = paragraph.add_run(text)
    run.font.size, run.font.bold, run.font.italic, run.font.underline = Pt(size), bold, italic, underline
    if align is not None:
        paragraph.alignment = align
    paragraph.paragraph_format.space_after = Pt(0)
    return paragraph


def new_document() -> DocumentObject:
    """Return an empty A4 portrait document in Times New Roman 14 with the Decree's margins."""
    document = Document()
    normal = document.styles["Normal"]
    normal.font.name, normal.font.size = "Times New Roman", Pt(14)
    fonts = normal.element.rPr.rFonts  # East Asian and complex-script runs too
    for attribute in ("w:eastAsia", "w:cs"):
        fonts.set(qn(attribute), "Times New Roman")
    section = document.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(20), Mm(20)
    section.left_margin, section.right_margin = Mm(30), Mm(15)
    return document


def place_of(issuer: str) -> str:
    """Return the place for the date line: the province in the issuer's name, else an ellipsis."""
    for marker in ("tỉnh ", "Tỉnh ", "thành phố ", "Thành phố "):
        if marker in issuer:
            return issuer.split(marker, 1)[1].strip()
    return "…"


def heading_block(document: DocumentObject, report: Report) -> None:
    """Write the issuing body and number (left), the national motto and the place and date (right)."""
    table: Table = document.add_table(rows=2, cols=2)
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    left, right = table.rows[0].cells
    styled(left.paragraphs[0], report.issuer.upper(), size=13, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    styled(
        right.paragraphs[0],
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        size=13,
        bold=True,
        align=WD_ALIGN_PARAGRAPH.CENTER,
    )
    styled(
        right.add_paragraph(),
        "Độc lập - Tự do - Hạnh phúc",
        size=14,
        bold=True,
        underline=True,
        align=WD_ALIGN_PARAGRAPH.CENTER,
    )
    number, date_cell = table.rows[1].cells
    styled(number.paragraphs[0], "Số:      /BC-…", size=14, align=WD_ALIGN_PARAGRAPH.CENTER)
    today = report.as_of.astimezone(LOCAL_TZ).date()
    styled(
        date_cell.paragraphs[0],
        f"{place_of(report.issuer)}, ngày {today.day:02d} tháng {today.month:02d} năm {today.year}",
        size=14,
        italic=True,
        align=WD_ALIGN_PARAGRAPH.CENTER,
    )
    for row in table.rows:
        row.cells[0].width, row.cells[1].width = Mm(62), Mm(103)
    table.autofit = False  # LibreOffice and Word lay the table out by its grid columns
    table.columns[0].width, table.columns[1].width = Mm(62), Mm(103)


def title_block(document: DocumentObject, report: Report) -> None:
    """Write BÁO CÁO and its summary line."""
    document.add_paragraph()
    styled(document.add_paragraph(), "BÁO CÁO", size=14, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    summary = f"Tình hình, kết quả giải quyết thủ tục hành chính {period_title(report.period, *report_days(report))}"
    styled(document.add_paragraph(), summary, size=14, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    styled(document.add_paragraph(), "_______", size=14, align=WD_ALIGN_PARAGRAPH.CENTER)


def body_lines(report: Report) -> list[str]:
    """Return the body's paragraphs: the period's figures in words, pointing to the annexes."""
    total = report.form[0].counts
    first, last = report_days(report)
    on_time = total.resolved_early + total.resolved_on_time
    share = percent(on_time / total.resolved_total) if total.resolved_total else "-"
    below_units = len({b.unit_id for b in report.units_below_target})
    return [
        f"Báo cáo số liệu của {report.scope_name} từ ngày {vn_date(first)} đến ngày {vn_date(last)}, "
        f"tổng hợp tự động từ hệ thống một cửa điện tử (dvc-monitor), số liệu đến {report.as_of.astimezone(LOCAL_TZ):%H:%M ngày %d/%m/%Y}.",
        f"1. Số hồ sơ nhận giải quyết: {grouped(total.received_total)}, trong đó trực tuyến {grouped(total.received_online)}, "
        f"trực tiếp và dịch vụ bưu chính {grouped(total.received_offline)}, từ kỳ trước chuyển sang {grouped(total.carried_over)}.",
        f"2. Số hồ sơ đã giải quyết: {grouped(total.resolved_total)}, trong đó trước hạn {grouped(total.resolved_early)}, "
        f"đúng hạn {grouped(total.resolved_on_time)}, quá hạn {grouped(total.resolved_late)} (tỷ lệ trước và đúng hạn {share}).",
        f"3. Số hồ sơ đang giải quyết: {grouped(total.open_total)}, trong đó trong hạn {grouped(total.open_in_time)}, "
        f"quá hạn {grouped(total.open_overdue)}.",
        f"4. Hồ sơ quá hạn đã có văn bản xin lỗi: {grouped(total.resolved_late_apologized)} hồ sơ đã giải quyết và "
        f"{grouped(total.open_overdue_apologized)} hồ sơ đang giải quyết; chưa có văn bản xin lỗi: "
        f"{grouped(total.resolved_late - total.resolved_late_apologized)} và "
        f"{grouped(total.open_overdue - total.open_overdue_apologized)}.",
        f"5. Số cơ quan, đơn vị có chỉ tiêu không đạt kế hoạch: {grouped(below_units)}.",
        "Chi tiết tại Phụ lục I (Biểu II.06a/VPCP/KSTT), Phụ lục II (hồ sơ quá hạn và văn bản xin lỗi) và "
        "Phụ lục III (các chỉ tiêu của Kế hoạch, cơ quan, đơn vị không đạt) kèm theo.",
    ]


def closing_block(document: DocumentObject) -> None:
    """Write "Nơi nhận:" (left) and the signature block (right)."""
    table = document.add_table(rows=1, cols=2)
    recipients, signature = table.rows[0].cells
    styled(recipients.paragraphs[0], "Nơi nhận:", size=12, bold=True, italic=True)
    for line in ("- Văn phòng UBND tỉnh;", "- Lưu: VT."):
        styled(recipients.add_paragraph(), line, size=11)
    styled(signature.paragraphs[0], "THỦ TRƯỞNG CƠ QUAN", size=14, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    styled(
        signature.add_paragraph(),
        "(Ký, ghi rõ họ tên, đóng dấu)",
        size=14,
        italic=True,
        align=WD_ALIGN_PARAGRAPH.CENTER,
    )


def landscape_section(document: DocumentObject) -> None:
    """Start a new landscape A4 section for an annex."""
    section = document.add_section(WD_SECTION.NEW_PAGE)
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = Mm(297), Mm(210)
    section.top_margin, section.bottom_margin = Mm(20), Mm(20)
    section.left_margin, section.right_margin = Mm(20), Mm(15)


def render_docx(report: Report) -> bytes:
    """Return the document's bytes."""
    document = new_document()
    heading_block(document, report)
    title_block(document, report)
    for line in body_lines(report):
        paragraph = styled(document.add_paragraph(), line, size=14, align=WD_ALIGN_PARAGRAPH.JUSTIFY)
        paragraph.paragraph_format.first_line_indent = Mm(10)
        paragraph.paragraph_format.space_after = Pt(6)
    document.add_paragraph()
    closing_block(document)
    for index, (title, fill) in enumerate(annex_tables(report)):
        landscape_section(document)
        styled(
            document.add_paragraph(),
            f"Phụ lục {('I', 'II', 'III')[index]}",
            size=14,
            bold=True,
            align=WD_ALIGN_PARAGRAPH.CENTER,
        )
        styled(document.add_paragraph(), title, size=13, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
        styled(
            document.add_paragraph(),
            f"(Kèm theo Báo cáo số      /BC-… ngày {vn_date(report.as_of.astimezone(LOCAL_TZ).date())})",
            size=13,
            italic=True,
            align=WD_ALIGN_PARAGRAPH.CENTER,
        )
        fill(document)
    buffer = BytesIO()
    document.save(buffer)
    return buffer.getvalue()
