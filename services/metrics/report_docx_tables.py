"""The DOCX report's annex tables: the form, the overdue files' apology split, the KPIs."""

from collections.abc import Callable, Sequence

from docx.document import Document as DocumentObject
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.shared import Mm, Pt
from docx.table import Table, _Cell

from services.metrics.report import FormRow, Report
from services.metrics.report_labels import (
    APOLOGY_HEADINGS,
    BELOW_HEADINGS,
    FORM_CODE,
    FORM_HEADINGS,
    FORM_TITLE,
    KPI_HEADINGS,
    ROMAN,
    STATUS_VI,
    grouped,
    percent,
    target_text,
)
from shared.kpis import KPI_BY_ID

LANDSCAPE_TEXT_WIDTH_MM = 262  # 297 mm less the annex margins (20 + 15)
MAX_FORM_ROWS = 400  # above this the DOCX form stops at units; the XLSX always has every procedure
Fill = Callable[[DocumentObject], None]


def write_cell(cell: _Cell, value: object, *, bold: bool = False, italic: bool = False) -> None:
    """Write a value into a table cell in 10 pt."""
    text = grouped(value) if isinstance(value, int) and not isinstance(value, bool) else str(value)
    run = cell.paragraphs[0].add_run("" if value is None else text)
    run.font.size, run.font.bold, run.font.italic = Pt(10), bold, italic


def new_table(document: DocumentObject, headings: Sequence[str]) -> Table:
    """Add a gridded table with one bold heading row: a narrow STT, a wide name, even number columns."""
    table: Table = document.add_table(rows=1, cols=len(headings))
    table.style, table.alignment, table.autofit = "Table Grid", WD_TABLE_ALIGNMENT.CENTER, False
    number_width = (LANDSCAPE_TEXT_WIDTH_MM - 12 - 60) / (len(headings) - 2)
    for index, column in enumerate(table.columns):
        column.width = Mm(12 if index == 0 else 60 if index == 1 else number_width)
    for cell, text in zip(table.rows[0].cells, headings, strict=True):
        write_cell(cell, text, bold=True)
    return table


def add_row(table: Table, values: Sequence[object], *, bold: bool = False, italic: bool = False) -> None:
    """Append a row of values."""
    row = table.add_row()  # type: ignore[no-untyped-call]
    # `row.cells` walks the whole table each time (quadratic for long tables): take this row's own cells.
    cells = [_Cell(tc, table) for tc in row._tr.tc_lst]
    for cell, value in zip(cells, values, strict=True):
        write_cell(cell, value, bold=bold, italic=italic)


def numbering(rows: Sequence[FormRow]) -> list[str]:
    """Return the STT of each row: Roman numerals for levels, 1, 2, … for units inside a level."""
    labels, level_no, unit_no = [], 0, 0
    for row in rows:
        if row.kind == "level":
            level_no, unit_no = level_no + 1, 0
        unit_no += row.kind == "unit"
        labels.append({"level": ROMAN[(level_no - 1) % len(ROMAN)], "unit": str(unit_no)}.get(row.kind, ""))
    return labels


def form_rows_shown(report: Report) -> list[FormRow]:
    """Return the form rows of the DOCX: every row, or only totals, levels and units when too long."""
    if len(report.form) <= MAX_FORM_ROWS:
        return report.form
    return [row for row in report.form if row.kind != "procedure"]


def fill_form(report: Report) -> Fill:
    """Return the writer of Phụ lục I."""

    def fill(document: DocumentObject) -> None:
        table = new_table(
            document, [f"{group}: {column}" if group != column else column for group, column in FORM_HEADINGS]
        )
        rows = form_rows_shown(report)
        for stt, row in zip(numbering(rows), rows, strict=True):
            c = row.counts
            values = (
                stt,
                row.label,
                c.received_total,
                c.received_online,
                c.received_offline,
                c.carried_over,
                c.resolved_total,
                c.resolved_early,
                c.resolved_on_time,
                c.resolved_late,
                c.open_total,
                c.open_in_time,
                c.open_overdue,
            )
            add_row(table, values, bold=row.kind in {"total", "level"}, italic=row.kind == "procedure")
        if len(rows) < len(report.form):
            document.add_paragraph("Chi tiết theo thủ tục hành chính: xem tệp XLSX kèm theo.")

    return fill


def fill_apology(report: Report) -> Fill:
    """Return the writer of Phụ lục II."""

    def fill(document: DocumentObject) -> None:
        table = new_table(document, APOLOGY_HEADINGS)
        rows = [row for row in report.form if row.kind != "procedure"]
        for stt, row in zip(numbering(rows), rows, strict=True):
            c = row.counts
            values = (
                stt,
                row.label,
                c.resolved_late,
                c.resolved_late_apologized,
                c.resolved_late - c.resolved_late_apologized,
                c.open_overdue,
                c.open_overdue_apologized,
                c.open_overdue - c.open_overdue_apologized,
            )
            add_row(table, values, bold=row.kind != "unit")

    return fill


def fill_kpis(report: Report) -> Fill:
    """Return the writer of Phụ lục III: the KPIs against their targets, then the units below target."""

    def fill(document: DocumentObject) -> None:
        table = new_table(document, KPI_HEADINGS)
        for index, fig in enumerate(report.kpis, start=1):
            is_count = KPI_BY_ID[fig.kpi].is_count
            ratio = fig.numerator if is_count else percent(fig.ratio)
            add_row(
                table,
                (
                    index,
                    fig.name_vi,
                    fig.numerator,
                    fig.denominator if fig.denominator is not None else "-",
                    ratio,
                    target_text(fig.target, fig.comparator, is_count),
                    STATUS_VI[fig.status],
                ),
            )
        document.add_paragraph("Cơ quan, đơn vị không đạt chỉ tiêu:")
        below = new_table(document, BELOW_HEADINGS)
        for index, item in enumerate(report.units_below_target, start=1):
            fig = item.figure
            is_count = KPI_BY_ID[fig.kpi].is_count
            add_row(
                below,
                (
                    index,
                    item.name,
                    item.level_name,
                    fig.name_vi,
                    fig.numerator,
                    fig.denominator if fig.denominator is not None else "-",
                    fig.numerator if is_count else percent(fig.ratio),
                    target_text(fig.target, fig.comparator, is_count),
                ),
            )

    return fill


def annex_tables(report: Report) -> list[tuple[str, Fill]]:
    """Return each annex's title and table writer, in order (Phụ lục I, II, III)."""
    return [
        (f"Biểu {FORM_CODE}: {FORM_TITLE}", fill_form(report)),
        ("Hồ sơ quá hạn và văn bản xin lỗi", fill_apology(report)),
        ("Kết quả thực hiện các chỉ tiêu của Kế hoạch", fill_kpis(report)),
    ]
