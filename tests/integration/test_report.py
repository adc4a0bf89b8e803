"""The periodic report end to end (Kafka -> ingest -> metrics -> files): a hand-worked period boundary,
and every figure of the XLSX and DOCX read back and compared with the API's for the same scope and period.
"""

import os
import re
import subprocess
import sys
from io import BytesIO
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from docx import Document
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from shared import topics
from shared.units import read_registry
from tests.conftest import (
    REPO,
    MigratedDatabase,
    ServiceProcess,
    ServiceRunner,
    bearer,
    load_registry,
    produce,
    wait_until,
)
from tests.factories import at, case_event, encode, received, small_registry

pytestmark = pytest.mark.integration

COMMUNE, OTHER, AGENCY = "r.c1", "r.c2", "p.agency"
LEAVES = ("received_online", "received_offline", "carried_over", "resolved_early", "resolved_on_time",
          "resolved_late", "open_in_time", "open_overdue")  # fmt: skip
FORM_KEYS = ("received_total", "received_online", "received_offline", "carried_over", "resolved_total",
             "resolved_early", "resolved_on_time", "resolved_late", "open_total", "open_in_time", "open_overdue")  # fmt: skip


def ev(kind: str, case_id: str, when: str, unit: str = COMMUNE, **fields: Any) -> dict[str, Any]:
    return case_event(kind, case_id, unit, at(when), **fields)


def rec(
    case_id: str, when: str, due: str | None, channel: str, unit: str = COMMUNE, code: str = "1.001"
) -> dict[str, Any]:
    due_at = None if due is None else (due if "T" in due else at(due))
    return received(case_id, unit, at(when), due_at=due_at, channel=channel, procedure_code=code)


def boundary_scenario() -> list[dict[str, Any]]:
    """Cases around report-month:2026-11 = [15/10/2026 00:00, 15/11/2026 00:00) local; expected counts below."""
    return [
        # A: carried over (received 10/10), resolved early on 18/10.
        rec("A", "2026-10-10 08:00", "2026-10-20 17:00", "online"),
        ev("resolved", "A", "2026-10-18 09:00", outcome="approved"),
        # B: received one minute before the period, never resolved: carried over, overdue at the end, apologised.
        rec("B", "2026-10-14 23:59", "2026-10-16 17:00", "in_person"),
        ev("apology_issued", "B", "2026-11-01 08:00", due_at=at("2026-11-30 17:00")),
        # C: received at the period's first instant, due after it: received online, open in time.
        rec("C", "2026-10-15 00:00", "2026-11-20 17:00", "online"),
        # D: received and resolved before the period: nowhere.
        rec("D", "2026-10-01 08:00", "2026-10-20 17:00", "online"),
        ev("resolved", "D", "2026-10-14 23:59", outcome="approved"),
        # E: received by post in the last minute, due 30 s before the end: overdue at the end.
        rec("E", "2026-11-14 23:59", "2026-11-14T23:59:30+07:00", "postal"),
        # F: received at the next period's first instant: not in this period.
        rec("F", "2026-11-15 00:00", "2026-11-30 17:00", "online"),
        # G: paused on 05/11 past its deadline of 10/11, resumed on 20/11: paused at the end, so in time.
        rec("G", "2026-10-20 08:00", "2026-11-10 17:00", "online"),
        ev("supplement_requested", "G", "2026-11-05 08:00"),
        ev("supplement_received", "G", "2026-11-20 08:00", due_at=at("2026-11-25 17:00")),
        # H: resumed on 28/10 with due 05/11, paused again on 20/11: running and overdue at the end.
        rec("H", "2026-10-20 08:00", "2026-11-01 17:00", "online"),
        ev("supplement_requested", "H", "2026-10-25 08:00"),
        ev("supplement_received", "H", "2026-10-28 08:00", due_at=at("2026-11-05 17:00")),
        ev("supplement_requested", "H", "2026-11-20 08:00"),
        # I: due 03/11, paused and resumed only after the end: overdue at the end (judged from its history).
        rec("I", "2026-10-20 08:00", "2026-11-03 17:00", "online"),
        ev("supplement_requested", "I", "2026-11-16 08:00"),
        ev("supplement_received", "I", "2026-11-18 08:00", due_at=at("2026-11-30 17:00")),
        # J: resolved late in the period, apologised in it.
        rec("J", "2026-10-16 08:00", "2026-10-25 17:00", "online"),
        ev("apology_issued", "J", "2026-10-26 08:00", due_at=at("2026-10-31 17:00")),
        ev("resolved", "J", "2026-10-30 08:00", outcome="approved"),
        # K: resolved only after the end, overdue since 25/10: open and overdue at the end.
        rec("K", "2026-10-16 08:00", "2026-10-25 17:00", "in_person", code="2.002"),
        ev("resolved", "K", "2026-11-16 08:00", outcome="approved"),
        # L: no deadline, resolved; M: refused. Received in person, in none of the resolved columns.
        rec("L", "2026-10-17 08:00", None, "in_person"),
        ev("resolved", "L", "2026-10-20 08:00", outcome="approved"),
        rec("M", "2026-10-17 08:00", "2026-10-30 17:00", "in_person", code="2.002"),
        ev("refused", "M", "2026-10-17 09:00"),
        # N: resolved on its due date: on time.
        rec("N", "2026-10-20 08:00", "2026-11-14 17:00", "online"),
        ev("resolved", "N", "2026-11-14 16:00", outcome="approved"),
        # O: the agency (province level): received online and resolved early.
        rec("O", "2026-11-01 08:00", "2026-11-10 17:00", "online", unit=AGENCY),
        ev("resolved", "O", "2026-11-05 08:00", outcome="approved", unit=AGENCY),
    ]


COMMUNE_NOVEMBER = {
    "received_online": 6,  # C G H I J N
    "received_offline": 4,  # E K L M
    "carried_over": 2,  # A B
    "resolved_early": 1,  # A
    "resolved_on_time": 1,  # N
    "resolved_late": 1,  # J
    "open_in_time": 2,  # C G
    "open_overdue": 5,  # B E H I K
    "resolved_late_apologized": 1,  # J
    "open_overdue_apologized": 1,  # B
    "resolved_without_deadline": 1,  # L
    "refused_or_withdrawn": 1,  # M
}


async def get(metrics: ServiceProcess, path: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(headers=metrics.headers, timeout=60) as client:
        response = await client.get(f"http://127.0.0.1:{metrics.port}{path}", params=params)
    assert response.status_code == 200, response.text
    return response


async def report_json(metrics: ServiceProcess, scope: str, period: str) -> dict[str, Any]:
    return dict((await get(metrics, "/api/v1/reports", scope=scope, period=period, format="json")).json())


async def api_kpis(metrics: ServiceProcess, scope: str, period: str) -> dict[str, dict[str, Any]]:
    body = (await get(metrics, "/api/v1/kpis", scope=scope, period=period)).json()
    return {figure["kpi"]: figure for figure in body["kpis"]}


def form_values(counts: dict[str, int]) -> tuple[int, ...]:
    """The 11 numeric columns (3-13) of a form row."""
    total = {
        "received_total": counts["received_online"] + counts["received_offline"] + counts["carried_over"],
        "resolved_total": counts["resolved_early"] + counts["resolved_on_time"] + counts["resolved_late"],
        "open_total": counts["open_in_time"] + counts["open_overdue"],
    }
    return tuple(total.get(key, counts.get(key, 0)) for key in FORM_KEYS)


def evaluate(sheet: Worksheet, ref: str) -> int:
    """Evaluate a cell: a number, or a formula of cell references joined by + and -."""
    value = sheet[ref].value
    if not (isinstance(value, str) and value.startswith("=")):
        return int(value)
    if match := re.fullmatch(r"=SUM\(([A-Z]+)(\d+):\1(\d+)\)", value):
        column, first, last = match.group(1), int(match.group(2)), int(match.group(3))
        return sum(evaluate(sheet, f"{column}{row}") for row in range(first, last + 1))
    total = 0
    for sign, other in re.findall(r"([+-]?)([A-Z]+\d+)", value[1:]):
        total += -evaluate(sheet, other) if sign == "-" else evaluate(sheet, other)
    return total


def check_xlsx(content: bytes, report: dict[str, Any], kpis: dict[str, dict[str, Any]]) -> None:
    """Every figure of the workbook equals the API's (form, apology split, KPIs)."""
    book = load_workbook(BytesIO(content))
    form, apology, kpi_sheet = book.worksheets
    for index, row in enumerate(report["form"]):
        r = 7 + index
        assert form[f"B{r}"].value == row["label"]
        got = tuple(evaluate(form, f"{letter}{r}") for letter in "CDEFGHIJKLM")
        assert got == form_values(row["counts"]), (row["label"], got)
    units = [row for row in report["form"] if row["kind"] != "procedure"]
    for index, row in enumerate(units):
        r, c = 6 + index, row["counts"]
        expected = (c["resolved_late"], c["resolved_late_apologized"], c["resolved_late"] - c["resolved_late_apologized"],
                    c["open_overdue"], c["open_overdue_apologized"], c["open_overdue"] - c["open_overdue_apologized"])  # fmt: skip
        assert tuple(evaluate(apology, f"{letter}{r}") for letter in "CDEFGH") == expected
    for index, figure in enumerate(report["kpis"]):
        r = 6 + index
        api = kpis[figure["kpi"]]
        assert kpi_sheet[f"B{r}"].value == api["name_vi"]
        assert (kpi_sheet[f"C{r}"].value, kpi_sheet[f"D{r}"].value) == (api["numerator"], api["denominator"])
        ratio = api["ratio"]  # a workbook keeps 15 significant digits, as Excel does (1/33 loses the 17th)
        assert kpi_sheet[f"E{r}"].value == (None if ratio is None else pytest.approx(ratio, rel=1e-14))


def number(text: str) -> int:
    return int(text.replace(".", "").replace(",", ""))


def check_docx(content: bytes, report: dict[str, Any], kpis: dict[str, dict[str, Any]]) -> None:
    """Every figure of the document's annexes equals the API's; the layout is Decree 30's."""
    document = Document(BytesIO(content))
    heading, _closing, form, apology, kpi_table, _below = document.tables
    assert heading.rows[0].cells[1].paragraphs[0].text == "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
    assert document.sections[0].left_margin.mm == pytest.approx(30, abs=0.1)
    assert document.sections[1].page_width > document.sections[1].page_height  # landscape annexes
    assert document.styles["Normal"].font.name == "Times New Roman"
    shown = (
        report["form"]
        if len(report["form"]) <= 400
        else [r for r in report["form"] if r["kind"] != "procedure"]
    )
    assert len(form.rows) == 1 + len(shown)
    for table_row, row in zip(form.rows[1:], shown, strict=True):
        cells = [cell.text for cell in table_row.cells]
        assert cells[1] == row["label"] and tuple(number(t) for t in cells[2:]) == form_values(row["counts"])
    units = [row for row in report["form"] if row["kind"] != "procedure"]
    for table_row, row in zip(apology.rows[1:], units, strict=True):
        c = row["counts"]
        assert [number(cell.text) for cell in table_row.cells[2:4]] == [
            c["resolved_late"],
            c["resolved_late_apologized"],
        ]
        assert [number(cell.text) for cell in table_row.cells[5:7]] == [
            c["open_overdue"],
            c["open_overdue_apologized"],
        ]
    for table_row, figure in zip(kpi_table.rows[1:], report["kpis"], strict=True):
        api = kpis[figure["kpi"]]
        cells = [cell.text for cell in table_row.cells]
        denominator = None if cells[3] == "-" else number(cells[3])
        assert (cells[1], number(cells[2]), denominator) == (
            api["name_vi"],
            api["numerator"],
            api["denominator"],
        )


def run_cli(database: MigratedDatabase, tmp_path: Path, scope: str, period: str, fmt: str) -> bytes:
    """Run `dvc report` as an operator would, with the metrics role's DSN."""
    output = tmp_path / f"report.{fmt}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    env["DVC_DATABASE_URL"] = database.dsn("metrics")
    args = ["report", "--scope", scope, "--period", period, "--format", fmt, "--output", str(output)]
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Đã ghi báo cáo" in done.stdout
    return output.read_bytes()


@pytest.fixture
async def pipeline(
    database: MigratedDatabase, service_runner: ServiceRunner, admin_db: asyncpg.Connection, viewer_token: str
) -> ServiceProcess:
    await admin_db.execute(
        "TRUNCATE events, event_ids, cases, documents, reports, inspections, kpi_day_cells, procedure_days, "
        "overdue_days, inspected_days"
    )
    await load_registry(database, small_registry(COMMUNE, OTHER))
    await service_runner.start("ingest")
    metrics = await service_runner.start("metrics")
    metrics.headers = bearer(viewer_token)
    return metrics


async def send_cases(service_runner: ServiceRunner, events: list[dict[str, Any]]) -> None:
    await produce(
        service_runner.kafka_bootstrap,
        service_runner.topic_prefix + topics.CASE_EVENTS,
        [encode(e) for e in events],
    )


async def test_the_form_across_a_reporting_period_boundary_and_its_files(
    database: MigratedDatabase, service_runner: ServiceRunner, pipeline: ServiceProcess, tmp_path: Path
) -> None:
    await send_cases(service_runner, boundary_scenario())
    unit_scope, period = f"unit:{COMMUNE}", "report-month:2026-11"
    async with httpx.AsyncClient() as anonymous:  # a viewer token is needed, as for the other reads
        url = f"http://127.0.0.1:{pipeline.port}/api/v1/reports"
        refused = await anonymous.get(url, params={"scope": unit_scope, "period": period})
        assert refused.status_code == 401
        bad = await anonymous.get(
            url, params={"scope": unit_scope, "period": "report-month:2026-13"}, headers=pipeline.headers
        )
        assert bad.status_code == 400 and "invalid period" in bad.json()["detail"]

    async def settled() -> bool:
        report = await report_json(pipeline, unit_scope, period)
        on_time = (await api_kpis(pipeline, unit_scope, period))["on_time_rate"]
        return bool(report["form"][0]["counts"] == COMMUNE_NOVEMBER and on_time["denominator"] == 3)

    try:
        await wait_until(settled, timeout=60)
    finally:
        got = (await report_json(pipeline, unit_scope, period))["form"][0]["counts"]
    assert got == COMMUNE_NOVEMBER
    report = await report_json(pipeline, unit_scope, period)
    assert (report["first_day"], report["last_day"]) == ("2026-10-15", "2026-11-14")
    assert [(r["kind"], r["label"]) for r in report["form"]][2:] == [("unit", "Đơn vị r.c1"), ("procedure", "1.001"), ("procedure", "2.002")]  # fmt: skip
    assert (
        report["form"][4]["counts"]["open_overdue"] == 1
        and report["form"][4]["counts"]["refused_or_withdrawn"] == 1
    )  # K, M
    # The next reporting month starts with exactly what was still open at this one's end.
    december = (await report_json(pipeline, unit_scope, "report-month:2026-12"))["form"][0]["counts"]
    assert december["carried_over"] == COMMUNE_NOVEMBER["open_in_time"] + COMMUNE_NOVEMBER["open_overdue"]
    assert december["received_online"] == 1  # F
    # The form's resolved columns are the API's on-time KPI for the same 15th-to-14th period.
    kpis = await api_kpis(pipeline, unit_scope, period)
    assert (kpis["on_time_rate"]["numerator"], kpis["on_time_rate"]["denominator"]) == (2, 3)
    assert [f["kpi"] for f in report["kpis"]] == list(kpis)
    for figure in report["kpis"]:
        assert {k: figure[k] for k in ("numerator", "denominator", "ratio", "target", "status")} == {
            k: kpis[figure["kpi"]][k] for k in ("numerator", "denominator", "ratio", "target", "status")
        }
    check_xlsx(
        (await get(pipeline, "/api/v1/reports", scope=unit_scope, period=period, format="xlsx")).content,
        report,
        kpis,
    )
    check_docx(
        (await get(pipeline, "/api/v1/reports", scope=unit_scope, period=period, format="docx")).content,
        report,
        kpis,
    )


@pytest.mark.parametrize("scope", ["province", "level:commune", f"unit:{AGENCY}"])
async def test_province_level_and_unit_files_equal_the_api(
    database: MigratedDatabase,
    service_runner: ServiceRunner,
    pipeline: ServiceProcess,
    tmp_path: Path,
    scope: str,
) -> None:
    await send_cases(service_runner, boundary_scenario())
    period = "report-quarter:2026-Q4"  # 15/09/2026 .. 14/12/2026

    async def settled() -> bool:  # resolved in the quarter: A D J K N O
        kpis = await api_kpis(pipeline, "province", period)
        form = (await report_json(pipeline, "province", period))["form"][0]["counts"]
        return bool(kpis["on_time_rate"]["denominator"] == 6 and sum(form[k] for k in LEAVES[3:6]) == 6)

    await wait_until(settled, timeout=60)
    report = await report_json(pipeline, scope, period)
    kpis = await api_kpis(pipeline, scope, period)
    levels = [r["label"] for r in report["form"] if r["kind"] == "level"]
    assert levels == {"province": ["Cấp tỉnh", "Cấp huyện", "Cấp xã"], "level:commune": ["Cấp xã"]}.get(
        scope, ["Cấp tỉnh"]
    )
    total = report["form"][0]["counts"]
    assert (total["resolved_early"] + total["resolved_on_time"], sum(total[k] for k in LEAVES[3:6])) == (
        kpis["on_time_rate"]["numerator"],
        kpis["on_time_rate"]["denominator"],
    )
    check_xlsx(run_cli(database, tmp_path, scope, period, "xlsx"), report, kpis)
    check_docx(run_cli(database, tmp_path, scope, period, "docx"), report, kpis)


async def test_the_two_level_registry_of_2025(
    database: MigratedDatabase,
    service_runner: ServiceRunner,
    admin_db: asyncpg.Connection,
    viewer_token: str,
    tmp_path: Path,
) -> None:
    await admin_db.execute(
        "TRUNCATE events, event_ids, cases, documents, reports, inspections, kpi_day_cells, procedure_days, "
        "overdue_days, inspected_days"
    )
    registry = read_registry(REPO / "deploy" / "units" / "ha-tinh-2025.yaml")
    await load_registry(database, registry)
    await service_runner.start("ingest")
    metrics = await service_runner.start("metrics")
    metrics.headers = bearer(viewer_token)
    commune = next(u.id for u in registry.units if u.level == "commune")
    agency = next(u.id for u in registry.units if u.level == "province" and u.parent is not None)
    events = [
        rec("Y1", "2026-10-20 08:00", "2026-10-25 17:00", "online", unit=commune),
        ev("resolved", "Y1", "2026-10-30 08:00", unit=commune, outcome="approved"),
        rec("Y2", "2026-10-20 08:00", "2026-11-25 17:00", "in_person", unit=agency),
    ]
    await send_cases(service_runner, events)
    period = "report-quarter:2026-Q4"

    async def settled() -> bool:
        form = (await report_json(metrics, "province", period))["form"][0]["counts"]
        on_time = (await api_kpis(metrics, "province", period))["on_time_rate"]
        return bool(
            form["received_offline"] == 1 and form["resolved_late"] == 1 and on_time["denominator"] == 1
        )

    await wait_until(settled, timeout=60)
    for scope in ("province", "level:commune"):
        report = await report_json(metrics, scope, period)
        kpis = await api_kpis(metrics, scope, period)
        levels = [r["label"] for r in report["form"] if r["kind"] == "level"]
        assert levels == (["Cấp tỉnh", "Cấp xã"] if scope == "province" else ["Cấp xã"])
        assert report["form"][0]["counts"]["resolved_late"] == 1
        check_xlsx(run_cli(database, tmp_path, scope, period, "xlsx"), report, kpis)
        check_docx(run_cli(database, tmp_path, scope, period, "docx"), report, kpis)
