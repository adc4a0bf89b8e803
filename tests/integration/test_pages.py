"""The web pages in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium),
against the real ingest, metrics and alerts processes fed through real Kafka, a real SMTP server and
PostgreSQL: the pages show what the APIs say, acknowledging through a unit page works (and a GET
does not), the English switch, a phone-width viewport, and markup in names shown as text."""

import re
import secrets
import shutil
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from services.alerts import queries as alerts_queries
from services.metrics.periods import current_and_previous_report_periods
from shared import topics
from shared.auth import Role
from shared.config import Settings
from shared.units import Head, Level, Registry, Unit
from shared.workdays import due_soon_limits, working_day_after
from tests.conftest import (
    MigratedDatabase,
    ServiceProcess,
    ServiceRunner,
    bearer,
    create_api_token,
    drop_topics,
    free_port,
    load_registry,
    prepare_topics,
    produce,
    wait_until,
)
from tests.factories import ICT, case_event, encode, received
from tests.integration.test_alerts import Mailbox, text_of
from tests.integration.test_report import check_docx, check_xlsx

pytestmark = pytest.mark.integration
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PAGES_KEY = "test-pages-key-0123456789abcdef"
SIGNING_KEY = "test-signing-key-0123456789abcdef"
BAD, GOOD = "p.bad", "p.good"
BAD_NAME = 'Xã <script>alert("x")</script> & "Co"'
SCRIPT_CASE = '<script>alert("case")</script>-001'
MONTH = datetime.now(ICT).strftime("%Y-%m")


def browser(width: int = 1280, height: int = 900) -> WebDriver:
    """Start headless Chromium (skip when it is not installed: scripts/test.sh installs it)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(
            "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={max(width, 500)},{height}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    if width < 500:  # a window is at least 500 px wide: emulate the phone's viewport instead
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True},
        )
    return driver


def registry() -> Registry:
    levels = [
        Level(id="province", name="Cấp tỉnh", name_en="Province"),
        Level(id="district", name="Cấp huyện", name_en="District"),
        Level(id="commune", name="Cấp xã", name_en="Commune"),
    ]
    tree = [
        ("p", "Tỉnh", "province", None),
        ("p.agency", "Sở Nội vụ", "province", "p"),
        ("p.district", "Huyện A", "district", "p"),
        (BAD, BAD_NAME, "commune", "p.district"),
        (GOOD, "Xã Hai", "commune", "p.district"),
    ]
    units = [
        Unit(
            id=unit_id,
            name=name,
            level=level,
            parent=parent,
            head=Head(name=f"Thủ trưởng {unit_id}", email=f"{unit_id}@dvc-monitor.example"),
        )
        for unit_id, name, level, parent in tree
    ]
    return Registry(registry="pages-test", levels=levels, units=units)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def due_soon_deadlines(now: datetime, overrides: dict[date, bool]) -> dict[str, datetime]:
    """Open files at GOOD due at 10:00 on the next working day ("tomorrow") and on the 4th working day."""
    today = now.astimezone(ICT).date()
    return {
        f"{GOOD}-due-next": datetime.combine(working_day_after(today, 1, overrides), time(10), ICT),
        f"{GOOD}-due-4th": datetime.combine(working_day_after(today, 4, overrides), time(10), ICT),
    }


def events(now: datetime, overrides: dict[date, bool]) -> list[dict[str, Any]]:
    """Files resolved today (30 of 40 late at BAD, none of 30 at GOOD), open overdue files at BAD, and
    open files at GOOD due on the next working day and on the 4th one."""
    out: list[dict[str, Any]] = []
    start = max(now - timedelta(hours=3), now.astimezone(ICT).replace(day=1, hour=0, minute=1))
    for unit_id, total, late in ((BAD, 40, 30), (GOOD, 30, 0)):
        for n in range(total):
            case_id = f"{unit_id}-{secrets.token_hex(4)}-{n}"
            due = start + timedelta(minutes=1) if n < late else now + timedelta(days=10)
            out.append(received(case_id, unit_id, iso(start), due_at=iso(due)))
            out.append(
                case_event(
                    "resolved", case_id, unit_id, iso(start + timedelta(minutes=30)), outcome="approved"
                )
            )
    for n, case_id in enumerate([SCRIPT_CASE, f"{BAD}-open-2", f"{BAD}-open-3"]):
        received_at = now - timedelta(days=9 - n)
        out.append(
            received(
                case_id,
                BAD,
                iso(received_at),
                due_at=iso(received_at + timedelta(days=2)),
                procedure_code=f"2.00{n}",
            )
        )
    for case_id, due in due_soon_deadlines(now, overrides).items():
        out.append(received(case_id, GOOD, iso(now - timedelta(hours=1)), due_at=iso(due)))
    out.append(
        case_event(
            "apology_issued",
            f"{BAD}-open-3",
            BAD,
            iso(now - timedelta(hours=1)),
            due_at=iso(now + timedelta(days=5)),
        )
    )
    return out


@dataclass
class Site:
    """The three services, the mailbox and the tokens of a pages test module."""

    metrics: ServiceProcess
    alerts: ServiceProcess
    mailbox: Mailbox
    viewer: str
    database: MigratedDatabase

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.metrics.port}"

    async def api(self, path: str, **params: str) -> Any:
        async with httpx.AsyncClient(base_url=self.base, headers=bearer(self.viewer)) as client:
            response = await client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def page_link(self, unit_id: str) -> str:
        """The unit page link of the latest alert mail to the unit's head."""
        mails = [m for m in self.mailbox.messages if m["X-Envelope-To"] == f"{unit_id}@dvc-monitor.example"]
        text = text_of(mails[-1])
        line = next(line for line in text.splitlines() if "/pages/units/" in line)
        return line.split(": ", 1)[1].strip()


def start(runner: ServiceRunner, service: str, port: int, **extra: str) -> ServiceProcess:
    env = runner.env(service, **extra)
    env["DVC_HTTP_PORT"] = str(port)
    process = ServiceProcess(service, env, runner.tmp_path / f"{service}.log").start()
    runner.started.append(process)
    return process


@pytest.fixture(scope="module")
async def site(
    database: MigratedDatabase, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Site]:
    connection = await asyncpg.connect(database.admin_dsn)
    await connection.execute(
        "TRUNCATE alert_states, alert_events, acknowledgements, notifications, alerts, silences, cases, "
        "kpi_day_cells, overdue_days, procedure_days"
    )
    overrides = {r["day"]: r["working"] for r in await connection.fetch("SELECT * FROM holiday_overrides")}
    await connection.close()
    await load_registry(database, registry())
    mailbox, smtp_port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    prefix = f"t{secrets.token_hex(4)}."
    prepare_topics(prefix)  # the module's own topics and ACLs (topic_prefix is per test)
    runner = ServiceRunner(database, kafka_bootstrap, prefix, tmp_path_factory.mktemp("pages"))
    metrics_port, alerts_port = free_port(), free_port()
    common = {"DVC_PAGES_SIGNING_KEY": PAGES_KEY, "DVC_REGISTRY_REFRESH_SECONDS": "0.5"}
    try:
        processes = [
            start(runner, "ingest", free_port()),
            start(
                runner, "metrics", metrics_port, DVC_ALERTS_URL=f"http://127.0.0.1:{alerts_port}", **common
            ),
            start(
                runner,
                "alerts",
                alerts_port,
                DVC_PAGES_URL=f"http://127.0.0.1:{metrics_port}",
                DVC_PUBLIC_URL=f"http://127.0.0.1:{alerts_port}",
                DVC_SMTP_HOST="127.0.0.1",
                DVC_SMTP_PORT=str(smtp_port),
                DVC_SMTP_TLS="off",  # the aiosmtpd sink offers no STARTTLS (required by default)
                DVC_ALERTS_SIGNING_KEY=SIGNING_KEY,
                DVC_WEBHOOK_SECRET="test-webhook-secret-0123456789abcdef",
                DVC_ALERTS_EVALUATION_SECONDS="1",
                DVC_ALERTS_CONFIRM_SECONDS="1",
                DVC_ALERTS_SEND_POLL_SECONDS="0.1",
                DVC_ALERTS_GROUP_WAIT_SECONDS="0.5",
                **common,
            ),
        ]
        for process in processes:
            await process.wait_ready()
        now = datetime.now(UTC)
        await produce(
            kafka_bootstrap,
            runner.topic_prefix + topics.CASE_EVENTS,
            [encode(e) for e in events(now, overrides)],
        )
        site = Site(
            processes[1], processes[2], mailbox, await create_api_token(database, Role.viewer), database
        )

        async def counted() -> bool:
            report = await site.api("/api/v1/kpis", scope="province", period=f"month:{MONTH}")
            figures = {k["kpi"]: k for k in report["kpis"]}
            return figures["on_time_rate"]["denominator"] == 70 and figures["overdue_open"]["numerator"] == 3

        await wait_until(counted, timeout=90)
        try:
            await wait_until(lambda: mailed(mailbox, BAD), timeout=90)
        except AssertionError:
            connection = await asyncpg.connect(database.admin_dsn)
            states = await connection.fetch(
                "SELECT unit_id, kpi, period, state, figures FROM alert_states WHERE state <> 'ok'"
            )
            notes = await connection.fetch("SELECT kind, channel, status, last_error FROM notifications")
            raise AssertionError(f"no mail: {[dict(r) for r in states]} {[dict(r) for r in notes]}") from None
        yield site
    finally:
        for process in runner.started:
            if process.process is not None and process.process.poll() is None:
                process.stop(signal.SIGKILL)
        controller.stop()
        drop_topics(prefix)


async def mailed(mailbox: Mailbox, unit_id: str) -> bool:
    return any(
        m["X-Envelope-To"] == f"{unit_id}@dvc-monitor.example" and "/pages/units/" in text_of(m)
        for m in mailbox.messages
    )


@pytest.fixture(scope="module")
def chrome() -> Iterator[WebDriver]:
    driver = browser()
    yield driver
    driver.quit()


def sign_in(driver: WebDriver, site: Site, target: str = "/pages/province") -> None:
    driver.delete_all_cookies()
    driver.get(site.base + target)
    assert "/pages/login" in driver.current_url  # no cookie yet: the form
    driver.find_element(By.ID, "token").send_keys(site.viewer)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 10).until(lambda d: "/pages/login" not in d.current_url)
    assert driver.current_url == site.base + target


def switch(driver: WebDriver) -> None:
    """Press the language switch and wait for the other language's page."""
    before = driver.find_element(By.TAG_NAME, "html").get_attribute("lang")
    driver.find_element(By.ID, "lang-switch").click()
    WebDriverWait(driver, 10).until(
        lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") != before
    )


def rows(driver: WebDriver, table: str) -> list[Any]:
    return list(driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr"))


async def test_the_overview_lists_exactly_the_units_below_target_that_the_api_lists(
    site: Site, chrome: WebDriver
) -> None:
    sign_in(chrome, site)
    units = await site.api("/api/v1/units")
    below = {u["unit_id"] for u in units if any(k["status"] == "below" for k in u["kpis"])}
    shown = [row.get_attribute("data-unit") for row in rows(chrome, "below-units")]
    assert BAD in below and GOOD not in below
    assert set(shown) == below and len(shown) == len(below)
    report = await site.api("/api/v1/kpis", scope="province", period=f"month:{MONTH}")
    for figure in report["kpis"]:
        cell = chrome.find_element(By.CSS_SELECTOR, f'#kpis tr[data-kpi="{figure["kpi"]}"] .month-status')
        assert cell.get_attribute("data-status") == figure["status"]
    assert len(chrome.find_elements(By.CSS_SELECTOR, ".charts svg polyline")) >= 1  # the trend, as SVG
    chrome.find_element(By.CSS_SELECTOR, f'#below-units tr[data-unit="{BAD}"] a').click()
    WebDriverWait(chrome, 10).until(lambda d: "/pages/units/" in d.current_url)
    assert chrome.current_url.startswith(f"{site.base}/pages/units/{BAD}")  # the link to the unit page


async def test_a_district_drill_down_shows_the_subtree_figures(site: Site, chrome: WebDriver) -> None:
    sign_in(chrome, site, "/pages/province?scope=subtree:p.district")
    report = await site.api("/api/v1/kpis", scope="subtree:p.district", period=f"month:{MONTH}")
    on_time = next(k for k in report["kpis"] if k["kpi"] == "on_time_rate")
    cell = chrome.find_element(By.CSS_SELECTOR, '#kpis tr[data-kpi="on_time_rate"] .month-value')
    assert f"({on_time['numerator']}/{on_time['denominator']})" in cell.text
    assert {row.get_attribute("data-unit") for row in rows(chrome, "all-units")} == {"p.district", BAD, GOOD}


async def test_the_unit_page_from_the_mail_shows_the_api_figures_and_overdue_cases(
    site: Site, chrome: WebDriver
) -> None:
    chrome.delete_all_cookies()
    chrome.get(site.page_link(BAD))
    assert chrome.find_element(By.ID, "unit-name").text == BAD_NAME  # markup shown as text
    report = await site.api("/api/v1/kpis", scope=f"unit:{BAD}", period=f"month:{MONTH}")
    for figure in report["kpis"]:
        row = chrome.find_element(By.CSS_SELECTOR, f'#kpis tr[data-kpi="{figure["kpi"]}"]')
        status = row.find_element(By.CSS_SELECTOR, ".month-status").get_attribute("data-status")
        value = row.find_element(By.CSS_SELECTOR, ".month-value").text
        assert status == figure["status"], figure
        if figure["denominator"] is None:
            assert value == str(figure["numerator"])
        elif figure["denominator"]:
            assert f"({figure['numerator']}/{figure['denominator']})" in value
    budget = chrome.find_element(By.CSS_SELECTOR, '#kpis tr[data-kpi="on_time_rate"] .budget').text
    assert budget.startswith("Đã vượt mức cho phép") or budget.startswith("Còn được phép trễ")
    overdue = await site.api(f"/api/v1/units/{BAD}/overdue")
    shown = [row.find_element(By.CSS_SELECTOR, ".case-id").text for row in rows(chrome, "overdue")]
    assert shown == [case["case_id"] for case in overdue] and SCRIPT_CASE in shown
    with pytest.raises(NoAlertPresentException):
        chrome.switch_to.alert.text  # noqa: B018 (no script ran)
    assert "&lt;script&gt;" in chrome.page_source


async def test_the_unit_page_lists_the_cases_due_soon_as_the_digest_does(
    site: Site, chrome: WebDriver
) -> None:
    sign_in(chrome, site, f"/pages/units/{GOOD}")
    shown = [
        (
            row.find_element(By.CSS_SELECTOR, ".case-id").text,
            row.find_element(By.CSS_SELECTOR, ".procedure").text,
            row.get_attribute("data-deadline"),
            row.find_element(By.CSS_SELECTOR, ".usual").text,
        )
        for row in rows(chrome, "due-soon")
    ]
    assert f"{GOOD}-due-next" in [case for case, *_ in shown]  # due tomorrow (next working day) 10:00
    assert f"{GOOD}-due-4th" not in [case for case, *_ in shown]  # due in 4 working days
    # the digest's own list for the unit: its SQL and working-day horizon, with the same settings
    defaults = Settings.model_fields
    connection = await asyncpg.connect(site.database.admin_dsn)
    try:
        overrides = {
            r["day"]: r["working"] for r in await connection.fetch("SELECT * FROM holiday_overrides")
        }
        now = datetime.now(UTC)
        _, last_end = due_soon_limits(now, defaults["ALERTS_DUE_SOON_WORKING_DAYS"].default, overrides)
        digest = await alerts_queries.fetch_due_soon_cases(
            connection,
            now=now,
            until=last_end,
            lookback_days=defaults["ALERTS_PROCESSING_LOOKBACK_DAYS"].default,
            unit_id=GOOD,
        )
    finally:
        await connection.close()
    assert [case for case, *_ in shown] == [row["case_id"] for row in digest]
    for (case_id, procedure, deadline, usual), row in zip(shown, digest, strict=True):
        assert procedure == row["procedure_code"] and datetime.fromisoformat(deadline) == row["deadline"]
        median = f"{float(row['median_days']):.1f}".replace(".", ",")  # 30 files resolved in 30 minutes
        assert usual == f"{median} ngày ({row['resolved']} hồ sơ)", (case_id, usual)


async def test_acknowledging_through_the_unit_page_works_and_a_get_does_not(
    site: Site, chrome: WebDriver
) -> None:
    connection = await asyncpg.connect(site.database.admin_dsn)
    try:
        alert_id = await connection.fetchval(
            "SELECT alert_id FROM alerts WHERE unit_id = $1 AND resolved_at IS NULL", BAD
        )
        link = site.page_link(BAD)
        async with httpx.AsyncClient() as scanner:  # a mail scanner fetching every link
            assert (await scanner.get(link)).status_code == 200
            ack = (
                f"http://127.0.0.1:{site.alerts.port}/api/v1/alerts/{alert_id}/ack?page={link.split('t=')[1]}"
            )
            assert (await scanner.get(ack)).status_code == 200
            foreign = await scanner.get(ack.replace(f"/alerts/{alert_id}/", "/alerts/999999/"))
            assert foreign.status_code == 404
        assert (
            await connection.fetchval("SELECT acknowledged_at FROM alerts WHERE alert_id = $1", alert_id)
            is None
        )

        chrome.delete_all_cookies()
        chrome.get(link)
        chrome.find_element(By.CSS_SELECTOR, f'#alerts tr[data-alert="{alert_id}"] a.ack').click()
        WebDriverWait(chrome, 10).until(lambda d: "/ack?page=" in d.current_url)
        assert "Xác nhận cảnh báo" in chrome.find_element(By.TAG_NAME, "h1").text
        assert (
            await connection.fetchval("SELECT count(*) FROM acknowledgements WHERE alert_id = $1", alert_id)
            == 0
        )
        chrome.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        WebDriverWait(chrome, 10).until(lambda d: d.current_url.endswith("/ack/confirm"))
        assert "Đã xác nhận cảnh báo" in chrome.find_element(By.TAG_NAME, "h1").text
        row = await connection.fetchrow(
            "SELECT acknowledged_by, via FROM acknowledgements WHERE alert_id = $1", alert_id
        )
        assert row["via"] == "link" and row["acknowledged_by"].startswith(f"Thủ trưởng {BAD} (")
        chrome.get(link)
        state = chrome.find_element(By.CSS_SELECTOR, f'#alerts tr[data-alert="{alert_id}"] .alert-state').text
        assert state.startswith("Đã xác nhận")
    finally:
        await connection.close()


async def test_links_of_another_unit_or_forged_ones_are_refused(site: Site) -> None:
    link = site.page_link(BAD)
    async with httpx.AsyncClient() as client:
        assert (await client.get(link.replace(f"/units/{BAD}", f"/units/{GOOD}"))).status_code == 403
        assert (await client.get(link[:-3] + "000")).status_code == 403
        assert (await client.get(link.split("?")[0])).status_code == 303  # no token: the login form
        assert (await client.get(f"{site.base}/pages/province")).status_code == 303


async def test_the_english_switch(site: Site, chrome: WebDriver) -> None:
    chrome.delete_all_cookies()
    chrome.get(site.page_link(BAD))
    assert chrome.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi"
    switch(chrome)
    assert chrome.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    headings = [h.text for h in chrome.find_elements(By.TAG_NAME, "h2")]
    assert any(h.startswith("Open overdue case files") for h in headings), headings
    assert chrome.find_element(By.ID, "unit-name").text == BAD_NAME  # still allowed: the token came along
    switch(chrome)
    assert chrome.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi"


async def test_a_phone_wide_viewport_has_no_horizontal_scroll(site: Site) -> None:
    phone = browser(390, 844)
    try:
        sign_in(phone, site)
        phone.get(site.page_link(BAD))
        for url in (f"{site.base}/pages/province", site.page_link(BAD)):
            phone.get(url)
            width = phone.execute_script("return window.innerWidth")
            overflow = phone.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert width == 390 and overflow <= 0, (url, width, overflow)
    finally:
        phone.quit()


def report_hrefs(html: str) -> dict[tuple[str, str], str]:
    """Return the report download links of a page by (period, format)."""
    found = re.findall(r'<tr data-period="([^"]+)">.*?class="report-xlsx" href="([^"]+)".*?class="report-docx" href="([^"]+)"', html, re.S)  # fmt: skip
    links = {}
    for period, xlsx, docx in found:
        links[(period, "xlsx")], links[(period, "docx")] = unescape(xlsx), unescape(docx)
    return links


async def check_download(site: Site, client: httpx.AsyncClient, href: str, scope: str, fmt: str) -> None:
    """Download a report through a page link; every figure equals the API's for its scope and period."""
    period = parse_qs(urlsplit(href).query)["period"][0]
    response = await client.get(href)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-disposition"].startswith("attachment;")
    report = await site.api("/api/v1/reports", scope=scope, period=period, format="json")
    kpis = {k["kpi"]: k for k in (await site.api("/api/v1/kpis", scope=scope, period=period))["kpis"]}
    (check_xlsx if fmt == "xlsx" else check_docx)(response.content, report, kpis)


async def test_the_pages_offer_the_current_and_previous_reports_for_download(site: Site) -> None:
    current, previous = current_and_previous_report_periods(datetime.now(ICT).date())[0]
    async with httpx.AsyncClient(base_url=site.base, cookies={"dvc_pages_token": site.viewer}) as official:
        links = report_hrefs((await official.get("/pages/province")).text)
        assert {period for period, _ in links} == {
            p.name for pair in current_and_previous_report_periods(datetime.now(ICT).date()) for p in pair
        }
        assert all(site.viewer not in href for href in links.values())  # never an API token in a URL
        await check_download(site, official, links[(current.name, "xlsx")], "province", "xlsx")
        await check_download(site, official, links[(current.name, "docx")], "province", "docx")
        resolved = [  # today's 70 files (the last three hours may straddle a period boundary)
            (await site.api("/api/v1/reports", scope="province", period=p.name, format="json"))["form"][0]
            for p in (current, previous)
        ]
        assert sum(row["counts"]["resolved_late"] + row["counts"]["resolved_on_time"] + row["counts"]["resolved_early"] for row in resolved) == 70  # fmt: skip
    head_link = site.page_link(BAD)  # a unit head: the signed link of the mail, no cookie
    async with httpx.AsyncClient() as head:
        links = report_hrefs((await head.get(head_link)).text)
        href = site.base + links[(current.name, "xlsx")]
        assert "t=" in href and f"unit%3A{BAD}" in href
        await check_download(site, head, href, f"unit:{BAD}", "xlsx")
        assert (await head.get(site.base + links[(previous.name, "docx")])).status_code == 200
        other = href.replace(f"unit%3A{BAD}", f"unit%3A{GOOD}")
        assert (await head.get(other)).status_code == 403  # the link opens only its own unit's report
        assert (await head.get(href.replace(f"unit%3A{BAD}", "province"))).status_code == 403
        anonymous = site.base + links[(current.name, "xlsx")].split("&t=")[0]
        assert (await head.get(anonymous)).status_code == 303  # neither a link nor a sign-in: the login form


async def test_the_overviews_year_figures_equal_the_api(site: Site) -> None:
    year = datetime.now(ICT).year
    async with httpx.AsyncClient(base_url=site.base, cookies={"dvc_pages_token": site.viewer}) as official:
        for scope in ("province", "subtree:p.district", "level:commune"):
            html = (await official.get("/pages/province", params={"scope": scope})).text
            report = await site.api("/api/v1/kpis", scope=scope, period=f"year:{year}")
            pattern = (
                r'<tr data-kpi="([a-z_]+)">.*?year-value">([^<]*)<.*?year-status" data-status="([a-z_]+)"'
            )
            found = re.findall(pattern, html, re.S)
            shown = {kpi: value for kpi, value, _ in found}
            assert {kpi: status for kpi, _, status in found} == {
                k["kpi"]: k["status"] for k in report["kpis"]
            }
            for figure in report["kpis"]:
                counts = f"({figure['numerator']}/{figure['denominator']})"
                expected = str(figure["numerator"]) if figure["denominator"] is None else counts
                if figure["ratio"] is None and figure["denominator"] is not None:
                    expected = "—"
                assert expected in unescape(shown[figure["kpi"]]), (scope, figure, shown[figure["kpi"]])
