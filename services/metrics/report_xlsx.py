"""The report as an XLSX workbook (openpyxl): one sheet per table, real numbers, formulas for totals."""

from datetime import date
from io import BytesIO

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from services.metrics.report import LEAF_COLUMNS, FormRow, Report
from services.metrics.report_labels import (
    APOLOGY_HEADINGS,
    BELOW_HEADINGS,
    FORM_CODE,
    FORM_HEADINGS,
    FORM_TITLE,
    KPI_HEADINGS,
    ROMAN,
    STATUS_VI,
    period_title,
    target_text,
)
from shared.kpis import KPI_BY_ID

THIN = Side(style="thin")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
FIRST_DATA_ROW = 7  # rows 1-4 title, 5-6 the two heading rows
LEAF_LETTERS = ("D", "E", "F", "H", "I", "J", "L", "M")  # where LEAF_COLUMNS go
TOTAL_FORMULAS = {"C": "=D{r}+E{r}+F{r}", "G": "=H{r}+I{r}+J{r}", "K": "=L{r}+M{r}"}
COLUMN_INDEX = {"C": 2, "G": 6, "K": 10}  # 0-based, inserted in this order among the leaf values
ROW_FONTS = {
    "total": Font(bold=True),
    "level": Font(bold=True),
    "unit": Font(),
    "procedure": Font(italic=True),
}


def sum_formula(letter: str, rows: list[int]) -> str:
    """Return the formula summing a column over rows: SUM of a range when they are contiguous."""
    if len(rows) > 1 and rows[-1] - rows[0] == len(rows) - 1:
        return f"=SUM({letter}{rows[0]}:{letter}{rows[-1]})"
    return "=" + "+".join(f"{letter}{row}" for row in rows)


def write_title(sheet: Worksheet, report: Report, title: str, width: int) -> None:
    """Write the sheet's title, scope and period over `width` columns."""
    lines = (title, report.scope_name, period_title(report.period, *report_days(report)))
    for row, text in enumerate(lines, start=1):
        sheet.cell(row=row, column=1, value=text).font = Font(bold=row == 1, size=13 if row == 1 else 11)
        sheet.merge_cells(start_row=row, start_column=1, end_row=row, end_column=width)


def report_days(report: Report) -> tuple[date, date]:
    """Return the report's first and last day."""
    return date.fromisoformat(report.first_day), date.fromisoformat(report.last_day)


def write_headings(sheet: Worksheet, row: int, headings: tuple[str, ...]) -> None:
    """Write one row of bold, boxed, wrapped headings."""
    for column, text in enumerate(headings, start=1):
        cell = sheet.cell(row=row, column=column, value=text)
        cell.font, cell.border = Font(bold=True), BOX
        cell.alignment = Alignment(wrap_text=True, horizontal="center", vertical="center")


def form_sheet(book: Workbook, report: Report) -> None:
    """Write Phụ lục I: the form, with each unit, level and the total summed by formulas."""
    sheet = book.active
    sheet.title = "Phu luc I - II.06a"
    write_title(sheet, report, f"Biểu {FORM_CODE}: {FORM_TITLE}", 13)
    write_form_headings(sheet)
    places = {id(row): FIRST_DATA_ROW + index for index, row in enumerate(report.form)}
    children = form_children(report.form)
    level_no = unit_no = 0
    for row in report.form:
        r = places[id(row)]
        if row.kind == "level":
            level_no, unit_no = level_no + 1, 0
        unit_no += row.kind == "unit"
        stt = {"level": ROMAN[(level_no - 1) % len(ROMAN)], "unit": str(unit_no)}.get(row.kind, "")
        values: list[int | str] = [stt, row.label]
        parts = [places[id(child)] for child in children.get(id(row), [])]
        for name, letter in zip(LEAF_COLUMNS, LEAF_LETTERS, strict=True):
            values.append(sum_formula(letter, parts) if parts else getattr(row.counts, name))
        for letter, formula in TOTAL_FORMULAS.items():
            values.insert(COLUMN_INDEX[letter], formula.format(r=r))
        font = ROW_FONTS[row.kind]
        for column, value in enumerate(values, start=1):
            cell = sheet.cell(row=r, column=column, value=value)
            cell.border, cell.font = BOX, font
    sheet.column_dimensions["B"].width = 48
    sheet.freeze_panes = f"C{FIRST_DATA_ROW}"
    sheet.print_title_rows = f"5:{FIRST_DATA_ROW - 1}"


def print_landscape(sheet: Worksheet) -> None:
    """Print on landscape A4, every column on one page width."""
    sheet.page_setup.orientation, sheet.page_setup.paperSize = "landscape", sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight = 1, 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True


def write_form_headings(sheet: Worksheet) -> None:
    """Write the form's two heading rows, the groups merged over their columns."""
    write_headings(sheet, 5, tuple(group for group, _ in FORM_HEADINGS))
    write_headings(sheet, 6, tuple(column for _, column in FORM_HEADINGS))
    for first, last in ((1, 1), (2, 2), (3, 6), (7, 10), (11, 13)):
        sheet.merge_cells(start_row=5, start_column=first, end_row=5 if last > first else 6, end_column=last)
    for column in range(3, 14):
        sheet.column_dimensions[get_column_letter(column)].width = 12
    sheet.row_dimensions[6].height = 48


def form_children(rows: list[FormRow]) -> dict[int, list[FormRow]]:
    """Return the rows each total row sums: the total its levels, a level its units, a unit its procedures."""
    children: dict[int, list[FormRow]] = {}
    total: FormRow | None = None
    level: FormRow | None = None
    unit: FormRow | None = None
    for row in rows:
        parent: FormRow | None = {"level": total, "unit": level, "procedure": unit}.get(row.kind)
        if parent is not None:
            children.setdefault(id(parent), []).append(row)
        if row.kind == "total":
            total = row
        elif row.kind == "level":
            level = row
        elif row.kind == "unit":
            unit = row
    return children


def apology_sheet(book: Workbook, report: Report) -> None:
    """Write Phụ lục II: overdue files with and without an apology letter, per unit."""
    sheet = book.create_sheet("Phu luc II - Xin loi")
    write_title(sheet, report, "Hồ sơ quá hạn và văn bản xin lỗi", len(APOLOGY_HEADINGS))
    write_headings(sheet, 5, APOLOGY_HEADINGS)
    rows = [row for row in report.form if row.kind != "procedure"]
    places = {id(row): 6 + index for index, row in enumerate(rows)}
    children = {
        key: [c for c in value if c.kind != "procedure"] for key, value in form_children(report.form).items()
    }
    for row in rows:
        r = places[id(row)]
        parts = [places[id(child)] for child in children.get(id(row), [])]
        sheet.cell(row=r, column=2, value=row.label).font = Font(bold=row.kind != "unit")
        for letter, name in (
            ("C", "resolved_late"),
            ("D", "resolved_late_apologized"),
            ("F", "open_overdue"),
            ("G", "open_overdue_apologized"),
        ):
            value = getattr(row.counts, name)
            sheet[f"{letter}{r}"] = sum_formula(letter, parts) if parts else value
        sheet[f"E{r}"], sheet[f"H{r}"] = f"=C{r}-D{r}", f"=F{r}-G{r}"
    sheet.column_dimensions["B"].width = 48


def kpi_sheet(book: Workbook, report: Report) -> None:
    """Write Phụ lục III: every KPI of the plan against its target, then the units below target."""
    sheet = book.create_sheet("Phu luc III - Chi tieu")
    write_title(sheet, report, "Kết quả thực hiện các chỉ tiêu của Kế hoạch", len(BELOW_HEADINGS))
    write_headings(sheet, 5, KPI_HEADINGS)
    for index, fig in enumerate(report.kpis, start=1):
        is_count = KPI_BY_ID[fig.kpi].is_count
        values = (index, fig.name_vi, fig.numerator, fig.denominator, fig.ratio)
        for column, value in enumerate(values, start=1):
            sheet.cell(row=5 + index, column=column, value=value)
        sheet.cell(row=5 + index, column=5).number_format = "0.00%"
        sheet.cell(row=5 + index, column=6, value=target_text(fig.target, fig.comparator, is_count))
        sheet.cell(row=5 + index, column=7, value=STATUS_VI[fig.status])
    start = 7 + len(report.kpis)
    sheet.cell(row=start, column=1, value="Cơ quan, đơn vị không đạt chỉ tiêu").font = Font(bold=True)
    write_headings(sheet, start + 1, BELOW_HEADINGS)
    for index, below in enumerate(report.units_below_target, start=1):
        fig = below.figure
        target = target_text(fig.target, fig.comparator, KPI_BY_ID[fig.kpi].is_count)
        cells = (
            index,
            below.name,
            below.level_name,
            fig.name_vi,
            fig.numerator,
            fig.denominator,
            fig.ratio,
            target,
        )
        for column, value in enumerate(cells, start=1):
            sheet.cell(row=start + 1 + index, column=column, value=value)
        sheet.cell(row=start + 1 + index, column=7).number_format = "0.00%"
    sheet.column_dimensions["B"].width = 48
    sheet.column_dimensions["D"].width = 40


def render_xlsx(report: Report) -> bytes:
    """Return the workbook's bytes."""
    book = Workbook()
    form_sheet(book, report)
    apology_sheet(book, report)
    kpi_sheet(book, report)
    for sheet in book.worksheets:
        print_landscape(sheet)
    buffer = BytesIO()
    book.save(buffer)
    return buffer.getvalue()
