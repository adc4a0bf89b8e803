"""Every board panel against a real Prometheus and PostgreSQL, on a known event set; rules checked by promtool.

The stack: ingest and metrics (and alerts, once it exists) as real subprocesses on free ports, our own
Prometheus process rendered from deploy/prometheus/prometheus.native.yml with the project's rule files
(1 s scrape and evaluation), and the session's migrated database. Every query of every panel is run with
its template variables substituted: it must parse and return data, and a KPI panel must return exactly the
series and values worked out by hand below (units, levels, province: counts summed, then divided).
"""

import asyncio
import json
import math
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
import yaml

from boards import rules as r
from boards import sql
from boards.alert_rules import ACTIVITY_CHANGES
from boards.provisioning import DASHBOARDS_DIR, RULES_DIR, build_files
from boards.thresholds import load_board_targets
from shared import topics
from shared.kpis import KPI_BY_ID, KPIS
from shared.targets import Target, Targets
from tests.conftest import (
    REPO,
    MigratedDatabase,
    ServiceProcess,
    ServiceRunner,
    free_port,
    load_registry,
    prepare_topics,
    produce,
)
from tests.factories import (
    case_event,
    document_sent,
    encode,
    inspection_completed,
    random_id,
    received,
    report_submitted,
    small_registry,
)

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTS_MAIN = REPO / "services" / "alerts" / "main.py"
C1, C2, AGENCY = "b.c1", "b.c2", "p.agency"
LEVELS = {"p": "province", AGENCY: "province", "p.district": "district", C1: "commune", C2: "commune"}
PARENTS = {"p": "", AGENCY: "p", "p.district": "p", C1: "p.district", C2: "p.district"}
LEVEL_NAMES = {"province": "Cấp tỉnh", "district": "Cấp huyện", "commune": "Cấp xã"}
OVERDUE_CASE = "hs-a7"
# (numerator, denominator) per unit and KPI, worked out by hand from event_set(): every event falls in
# the current local month, so this month's and this year's counts are the same. Absent = (0, 0).
COUNTS: dict[str, dict[str, tuple[int, int]]] = {
    C1: {
        "on_time_rate": (4, 5),  # A1-A4 early, A5 late; A6 has no deadline
        "overdue_open": (1, 0),  # A7 open past its deadline
        "apology_coverage": (1, 2),  # A5 (apologised) and A7 went overdue
        "satisfaction_rate": (2, 3),  # very satisfied, satisfied, dissatisfied
        "online_offer_rate": (1, 2),  # 1.001 at level 4; 3.003 only at level 2
        "online_intake_rate": (6, 6),  # A1-A5, A7 online at level 4; A6 is level 2
        "portal_sync_rate": (1, 6),  # A1 synced
        "paperless_rate": (19, 20),  # 19 electronic, 1 paper; the secret one is out: 95% = commune target
        "signed_rate": (18, 19),
        "online_report_rate": (3, 4),  # 3 online through the national system, 1 on paper
        "units_inspected_rate": (1, 1),  # inspected on administrative reform by p.agency
    },
    C2: {
        "on_time_rate": (1, 1),
        "online_offer_rate": (1, 1),
        "online_intake_rate": (1, 1),
        "portal_sync_rate": (0, 1),
        "paperless_rate": (9, 10),  # 90% < 95%
        "signed_rate": (9, 9),
    },
    AGENCY: {
        "on_time_rate": (1, 3),  # M1, M2 late
        "apology_coverage": (0, 2),  # M1, M2 went overdue, no apology
        "online_offer_rate": (1, 1),
        "online_intake_rate": (1, 3),  # 33% > 30%: meets the strict target
        "portal_sync_rate": (0, 3),
        "paperless_rate": (10, 10),
        "signed_rate": (10, 10),
        "online_report_rate": (1, 1),
        "digital_inspection_rate": (1, 2),  # of b.c1 (digital) and b.c2 (not)
    },
}
PROVINCE_OFFER = (2, 3)  # distinct procedure codes over the province: 1.001, 2.002 online; 3.003 not


# --------------------------------------------------------------------------------------------------
# The known event set


@dataclass(frozen=True)
class Clock:
    """Instants inside the current local month, before now."""

    month_start: datetime
    now: datetime

    @classmethod
    def current(cls) -> "Clock":
        now = datetime.now(LOCAL)
        return cls(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now)

    def at(self, fraction: float) -> str:
        return (self.month_start + (self.now - self.month_start) * fraction).isoformat()

    def minutes_left_in_month(self) -> float:
        following = (self.month_start + timedelta(days=32)).replace(day=1)
        return (following - self.now).total_seconds() / 60


def oversight_set(clock: Clock) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Reports and inspections behind COUNTS."""
    reports = [report_submitted(random_id("bc"), C1, clock.at(0.3)) for _ in range(3)]
    reports += [report_submitted(random_id("bc"), C1, clock.at(0.3), channel="paper", connected=False)]
    reports += [report_submitted(random_id("bc"), AGENCY, clock.at(0.3))]
    inspections = [
        inspection_completed(random_id("kt"), AGENCY, C1, clock.at(0.35), digital=True),
        inspection_completed(random_id("kt"), AGENCY, C2, clock.at(0.35), topic="other"),
    ]
    return reports, inspections


def event_set(clock: Clock) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Cases and documents behind COUNTS."""
    at, future = clock.at, (clock.now + timedelta(days=10)).isoformat()
    cases: list[dict[str, Any]] = []

    def case(case_id: str, unit: str, *, due: str | None, resolved: str | None = None, **fields: Any) -> None:
        cases.append(received(case_id, unit, at(0.10), due_at=due, **fields))
        if resolved:
            cases.append(case_event("resolved", case_id, unit, resolved, outcome="approved"))

    for index in range(1, 5):
        case(f"hs-a{index}", C1, due=future, resolved=at(0.20), synced=index == 1)
    case("hs-a5", C1, due=at(0.15), resolved=at(0.30))
    cases.append(case_event("apology_issued", "hs-a5", C1, at(0.18), due_at=future))
    case(
        "hs-a6", C1, due=None, resolved=at(0.20), channel="in_person", service_level=2, procedure_code="3.003"
    )
    case(OVERDUE_CASE, C1, due=at(0.12))
    for case_id, rating in (("hs-a1", "very_satisfied"), ("hs-a2", "satisfied"), ("hs-a3", "dissatisfied")):
        cases.append(case_event("rated", case_id, C1, at(0.40), rating=rating))
    case("hs-b1", C2, due=future, resolved=at(0.20), service_level=3, procedure_code="2.002")
    case("hs-m1", AGENCY, due=at(0.11), resolved=at(0.20), channel="postal", service_level=3)
    case("hs-m2", AGENCY, due=at(0.11), resolved=at(0.20), channel="postal", service_level=3)
    case("hs-m3", AGENCY, due=future, resolved=at(0.20))

    documents: list[dict[str, Any]] = []

    def sent(unit: str, when: float, count: int, **fields: Any) -> None:
        documents.extend(document_sent(random_id("vb"), unit, at(when), **fields) for _ in range(count))

    sent(C1, 0.50, 18)
    sent(C1, 0.50, 1, signed=False)
    sent(C1, 0.50, 1, medium="paper")
    sent(C1, 0.50, 1, secrecy="secret")
    sent(C2, 0.55, 9)
    sent(C2, 0.55, 1, medium="paper")
    sent(AGENCY, 0.60, 10)
    return cases, documents


# --------------------------------------------------------------------------------------------------
# The oracle: what every recorded series must hold, from COUNTS and the targets (same arithmetic order
# as the rules, so the expected floats are the very same floats)

Labels = frozenset[tuple[str, str]]
Series = dict[Labels, float]


def labels(**pairs: str) -> Labels:
    return frozenset(pairs.items())


@dataclass
class Oracle:
    """Expected series of every recorded metric."""

    day: date  # local day of the evaluation (the failure budget extrapolates by days)
    targets: Targets = field(default_factory=Targets)
    series: dict[str, Series] = field(default_factory=dict)

    def count(self, unit: str, kpi: str) -> tuple[int, int]:
        # units_inspected_rate: every registry unit is in its own denominator (none is inspected here)
        return COUNTS.get(unit, {}).get(kpi, (0, 1) if kpi in r.YEARLY else (0, 0))

    def target(self, unit: str, kpi: str) -> Target | None:
        return self.targets.for_unit(kpi, unit_id=unit, level=LEVELS[unit], year=self.day.year)

    def build(self) -> "Oracle":
        self.unit_series()
        self.budget_series()
        self.scope_series()
        return self

    def unit_series(self) -> None:
        s = self.series
        for name in (r.NUMERATOR, r.DENOMINATOR, r.VALUE, r.GAP, r.BELOW, r.TARGET, r.UNIT_INFO):
            s[name] = {}
        for unit, level in LEVELS.items():
            s[r.UNIT_INFO][labels(unit_id=unit, level=level, parent_id=PARENTS[unit])] = 1.0
            for kpi in KPIS:
                target = self.target(unit, kpi.id)
                if target is not None:
                    s[r.TARGET][labels(unit_id=unit, kpi=kpi.id)] = target.value
                for period in ("month", "year"):
                    key = labels(unit_id=unit, kpi=kpi.id, period=period)
                    n, d = self.count(unit, kpi.id)
                    s[r.NUMERATOR][key], s[r.DENOMINATOR][key] = float(n), float(d)
                    value = float(n) if kpi.is_count else (n / d if d else None)
                    if value is None:
                        continue
                    s[r.VALUE][key] = value
                    if target is not None and not (kpi.yearly and period == "month"):
                        s[r.GAP][key] = -(value - target.value) if kpi.is_count else value - target.value
                        s[r.BELOW][key] = float(below(value, target))

    def budget_series(self) -> None:
        s, month_days = (
            self.series,
            ((self.day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)).day,
        )
        for name in (r.FORECAST, r.ALLOWED, r.FAILURES, r.REMAINING):
            s[name] = {}
        for unit in LEVELS:
            for kpi in KPIS:
                target, (n, d) = self.target(unit, kpi.id), self.count(unit, kpi.id)
                key = labels(unit_id=unit, kpi=kpi.id, period="month")
                if kpi.is_count and target is not None:
                    allowed, failures = target.value, float(n)
                elif target is not None and d > 0 and not kpi.yearly:
                    forecast = float(d) * month_days / self.day.day
                    s[r.FORECAST][key] = forecast
                    if target.comparator == ">=":
                        allowed = float(math.floor(forecast * (1 - target.value) + 1e-9))
                    else:
                        allowed = float(math.ceil(forecast * (1 - target.value) - 1e-9) - 1)
                    failures = float(d - n)
                else:
                    continue
                s[r.ALLOWED][key], s[r.FAILURES][key], s[r.REMAINING][key] = (
                    allowed,
                    failures,
                    allowed - failures,
                )

    def scope_series(self) -> None:
        s = self.series
        scopes = {
            (r.LEVEL_NUMERATOR, r.LEVEL_DENOMINATOR, r.LEVEL_VALUE): lambda unit: {"level": LEVELS[unit]},
            (r.PROVINCE_NUMERATOR, r.PROVINCE_DENOMINATOR, r.PROVINCE_VALUE): lambda unit: {},
        }
        for (numerator, denominator, value), scope_of in scopes.items():
            s[numerator], s[denominator], s[value] = {}, {}, {}
            for key, n in s[r.NUMERATOR].items():
                pairs = dict(key)
                if pairs["kpi"] in r.NOT_ADDITIVE:
                    continue
                scoped = labels(**scope_of(pairs["unit_id"]), kpi=pairs["kpi"], period=pairs["period"])
                s[numerator][scoped] = s[numerator].get(scoped, 0.0) + n
                s[denominator][scoped] = s[denominator].get(scoped, 0.0) + s[r.DENOMINATOR][key]
            for key, n in s[numerator].items():
                d = s[denominator][key]
                if KPI_BY_ID[dict(key)["kpi"]].is_count:
                    s[value][key] = n
                elif d > 0:
                    s[value][key] = n / d
        s[r.LEVEL_BELOW], s[r.PROVINCE_BELOW], worst = {}, {}, {}
        for key, flag in s[r.BELOW].items():
            pairs = dict(key)
            for name, scoped in (
                (
                    r.LEVEL_BELOW,
                    labels(level=LEVELS[pairs["unit_id"]], kpi=pairs["kpi"], period=pairs["period"]),
                ),
                (r.PROVINCE_BELOW, labels(kpi=pairs["kpi"], period=pairs["period"])),
            ):
                s[name][scoped] = s[name].get(scoped, 0.0) + flag
            unit_period = (pairs["unit_id"], pairs["period"])
            worst[unit_period] = max(worst.get(unit_period, 0.0), flag)
        s[r.PROVINCE_BELOW_ANY] = {}
        for (_, period), flag in worst.items():
            key = labels(period=period)
            s[r.PROVINCE_BELOW_ANY][key] = s[r.PROVINCE_BELOW_ANY].get(key, 0.0) + flag
        s[r.PROVINCE_UNITS] = {labels(): float(len(LEVELS))}


def below(value: float, target: Target) -> bool:
    if target.comparator == ">=":
        return value < target.value - 1e-12
    if target.comparator == ">":
        return value <= target.value
    return value > target.value


MATCHER = re.compile(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"\s*,?')


def select(series: Series, matchers: str) -> Series:
    """Return the series that a PromQL label selector `{...}` keeps."""
    tests = MATCHER.findall(matchers.strip("{}"))

    def keeps(key: Labels) -> bool:
        pairs = dict(key)
        for name, op, wanted in tests:
            value = pairs.get(name, "")
            matched = value == wanted if op in ("=", "!=") else re.fullmatch(wanted, value) is not None
            if matched != (op in ("=", "=~")):
                return False
        return True

    return {key: value for key, value in series.items() if keeps(key)}


SELECTOR = r"([a-z_:]+)(\{[^}]*\})?"


def expected_series(expr: str, oracle: Oracle) -> Series | None:
    """What a KPI panel query must return; None for a query this oracle does not cover."""
    s = oracle.series
    if match := re.fullmatch(rf"topk\((\d+), {SELECTOR} > 0\)", expr):
        kept = {k: v for k, v in select(s[match[2]], match[3] or "").items() if v > 0}
        return dict(sorted(kept.items(), key=lambda item: -item[1])[: int(match[1])])
    if match := re.fullmatch(
        rf"{SELECTOR} \* 0 \+ on \(unit_id, kpi\) group_left {re.escape(r.TARGET)}", expr
    ):
        targets = s[r.TARGET]
        found = {}
        for key in select(s[match[1]], match[2] or ""):
            pairs = dict(key)
            target_key = labels(unit_id=pairs["unit_id"], kpi=pairs["kpi"])
            if target_key in targets:
                found[key] = targets[target_key]
        return found
    if match := re.fullmatch(rf"{SELECTOR} and {SELECTOR}", expr):
        kept = select(s[match[3]], match[4] or "")
        return {k: v for k, v in select(s[match[1]], match[2] or "").items() if k in kept}
    if (match := re.fullmatch(SELECTOR, expr)) and match[1] in s:
        return select(s[match[1]], match[2] or "")
    return None


# --------------------------------------------------------------------------------------------------
# Our own Prometheus


class PrometheusProcess:
    """/usr/bin/prometheus on a free loopback port, config rendered from the project's native config."""

    def __init__(self, folder: Path, ports: dict[str, int]) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = render_config(folder, {**ports, "DVC_PROMETHEUS_PORT": self.port})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "PrometheusProcess":
        log = (self.folder / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def log_tail(self) -> str:
        return "\n".join((self.folder / "prometheus.log").read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def render_config(folder: Path, ports: dict[str, int]) -> Path:
    """The native config with the test's ports, 1 s intervals, and the rule files next to it (like infra.sh)."""
    text = (REPO / "deploy" / "prometheus" / "prometheus.native.yml").read_text(encoding="utf-8")
    for name, port in ports.items():
        text = text.replace("${" + name + "}", str(port))
    config = yaml.safe_load(text)
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    for source in sorted((REPO / RULES_DIR).glob("*.yml")):
        rules = yaml.safe_load(source.read_text(encoding="utf-8"))
        for group in rules["groups"]:
            if "interval" in group:
                group["interval"] = "1s"
        (folder / "rules" / source.name).write_text(
            yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8"
        )
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# The stack


@dataclass
class Stack:
    prometheus: PrometheusProcess
    services: dict[str, ServiceProcess]
    database: MigratedDatabase
    clock: Clock
    alerts_running: bool
    alerts_error: str | None

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.prometheus.url, timeout=30) as client:
            response = await client.post("/api/v1/query", data={"query": expr})
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{expr}\n{body}"
        assert body["data"]["resultType"] in ("vector", "scalar"), body["data"]["resultType"]
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def query_range(self, expr: str) -> list[dict[str, Any]]:
        end = time.time()
        async with httpx.AsyncClient(base_url=self.prometheus.url, timeout=30) as client:
            response = await client.post(
                "/api/v1/query_range", data={"query": expr, "start": end - 120, "end": end, "step": "5s"}
            )
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{expr}\n{body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def oracle(self) -> Oracle:
        return Oracle(day=datetime.now(LOCAL).date()).build()


def as_series(result: list[dict[str, Any]]) -> Series:
    return {
        frozenset((k, v) for k, v in item["metric"].items() if k != "__name__"): float(item["value"][1])
        for item in result
    }


def alerts_env() -> dict[str, str]:
    """What the alerts service needs to start in a test: local SMTP, throw-away signing secrets."""
    return {
        "DVC_ALERTS_SIGNING_KEY": secrets.token_hex(24),
        "DVC_WEBHOOK_SECRET": secrets.token_hex(24),
        "DVC_SMTP_HOST": "127.0.0.1",
        "DVC_SMTP_PORT": str(free_port()),
        "DVC_PUBLIC_URL": "http://127.0.0.1:8003",
    }


async def wait_for(predicate: Callable[[], Any], what: str, timeout: float, tail: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await predicate():
                return
        except (httpx.HTTPError, KeyError, ValueError):  # not up yet, or not answering JSON yet
            pass
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what} not reached within {timeout}s\n{tail()}")


EVENT_TABLES = (
    "events, event_ids, cases, documents, reports, inspections, kpi_day_cells, procedure_days, overdue_days, "
    "inspected_days"
)
ALERT_TABLES = "alert_states, alert_events, notifications, acknowledgements, alerts"


async def clean_tables(database: MigratedDatabase) -> None:
    """Empty what this module fills: the event store, KPI cells and (if migrated) the alert history."""
    admin = await asyncpg.connect(database.admin_dsn)
    try:
        await admin.execute(f"TRUNCATE {EVENT_TABLES}")
        if await admin.fetchval("SELECT to_regclass('alerts') IS NOT NULL"):
            await admin.execute(f"TRUNCATE {ALERT_TABLES}")
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def stack(
    database: MigratedDatabase, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    clock = Clock.current()
    if clock.minutes_left_in_month() < 10:
        pytest.skip("the local month ends in under 10 minutes: the boards show the current month")
    await clean_tables(database)
    await load_registry(database, small_registry(C1, C2))
    folder = tmp_path_factory.mktemp("boards")
    runner = ServiceRunner(database, kafka_bootstrap, f"t{secrets.token_hex(4)}.", folder)
    prepare_topics(runner.topic_prefix)
    prometheus: PrometheusProcess | None = None
    try:
        services = {name: await runner.start(name) for name in ("ingest", "metrics")}
        alerts_error = None
        if ALERTS_MAIN.exists():
            try:
                services["alerts"] = await runner.start("alerts", **alerts_env())
            except AssertionError as exc:  # its own tests say why; the boards are still tested without it
                alerts_error = str(exc)
            await insert_alert_history(database)
        cases, documents = event_set(clock)
        reports, inspections = oversight_set(clock)
        await produce(
            kafka_bootstrap, runner.topic_prefix + topics.REPORT_EVENTS, [encode(e) for e in reports]
        )
        await produce(
            kafka_bootstrap, runner.topic_prefix + topics.INSPECTION_EVENTS, [encode(e) for e in inspections]
        )
        await produce(kafka_bootstrap, runner.topic_prefix + topics.CASE_EVENTS, [encode(e) for e in cases])
        await produce(
            kafka_bootstrap, runner.topic_prefix + topics.DOCUMENT_EVENTS, [encode(d) for d in documents]
        )
        ports = {
            "DVC_INGEST_HTTP_PORT": services["ingest"].port,
            "DVC_METRICS_HTTP_PORT": services["metrics"].port,
            "DVC_ALERTS_HTTP_PORT": services["alerts"].port if "alerts" in services else free_port(),
        }
        prometheus = PrometheusProcess(folder, ports).start()
        result = Stack(prometheus, services, database, clock, "alerts" in services, alerts_error)

        async def ready() -> bool:
            assert prometheus.process is not None and prometheus.process.poll() is None, "prometheus exited"
            async with httpx.AsyncClient(base_url=prometheus.url) as client:
                if (await client.get("/-/ready")).status_code != 200:
                    return False
                targets = (await client.get("/api/v1/targets")).json()["data"]["activeTargets"]
            up = {target["labels"]["job"] for target in targets if target["health"] == "up"}
            return {"ingest", "metrics", "prometheus"} <= up

        await wait_for(ready, "Prometheus ready, scraping ingest and metrics", 60, prometheus.log_tail)

        async def settled() -> bool:
            expected = select(result.oracle().series[r.VALUE], '{period="month"}')
            return as_series(await result.query(f'{r.VALUE}{{period="month"}}')) == expected

        await wait_for(settled, "Prometheus holding the hand-worked values", 120, prometheus.log_tail)
        await asyncio.sleep(2)  # one more evaluation of every group
        yield result
    finally:
        if prometheus is not None:
            prometheus.stop()
        for process in runner.started:
            if process.process is not None and process.process.poll() is None:
                process.stop(signal.SIGKILL)
        await clean_tables(database)  # later modules count rows from an empty store


# --------------------------------------------------------------------------------------------------
# The boards' queries


def committed_boards() -> list[dict[str, Any]]:
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((REPO / DASHBOARDS_DIR).glob("*.json"))
    ]


@dataclass(frozen=True)
class PanelQuery:
    board: str
    panel: int
    target: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.board}:panel-{self.panel}:{self.target['refId']}"


QUERIES = [
    PanelQuery(board["uid"], panel["id"], target)
    for board in committed_boards()
    for panel in board["panels"]
    for target in panel["targets"]
]
PROM_QUERIES = [q for q in QUERIES if q.target["datasource"]["uid"] == "dvc-prometheus"]
SQL_QUERIES = [q for q in QUERIES if q.target["datasource"]["uid"] == "dvc-postgres"]
VARIABLES = {
    (board["uid"], variable["name"]): variable
    for board in committed_boards()
    for variable in board["templating"]["list"]
}
RANGE_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s"}
ALERT_TABLES_SQL = {sql.RECENT_ALERTS.strip(), sql.NOTIFICATIONS.strip()}


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def expand_sql(raw: str, *, unit: str | None = None, span: timedelta = timedelta(days=365)) -> str:
    """Substitute Grafana's macros and ${unit:sqlstring} as Grafana does (RFC 3339 UTC strings, quoted values)."""
    now = datetime.now(UTC)
    text = raw.replace("$__timeFrom()", quote(f"{now - span:%Y-%m-%dT%H:%M:%SZ}"))
    text = text.replace("$__timeTo()", quote(f"{now:%Y-%m-%dT%H:%M:%SZ}"))
    if unit is not None:
        text = text.replace("${unit:sqlstring}", quote(unit))
    assert "$" not in text, f"unexpanded Grafana variable in:\n{text}"
    return text


async def variable_options(database: MigratedDatabase, board: str, name: str) -> list[str]:
    """Run a board variable's query as Grafana would, as the read-only role; return the values."""
    connection = await asyncpg.connect(database.dsn("reader"))
    try:
        rows = await connection.fetch(expand_sql(VARIABLES[(board, name)]["query"]))
    finally:
        await connection.close()
    return [row["__value"] for row in rows]


async def expansions(stack: Stack, query: PanelQuery) -> list[str]:
    """The query once per combination of its template variables' values."""
    expr = query.target["expr"]
    for name, value in RANGE_VARIABLES.items():
        expr = expr.replace(name, value)
    combos = [expr]
    for name in sorted(set(re.findall(r"\$(\w+)", expr))):
        options = await variable_options(stack.database, query.board, name)
        combos = [combo.replace(f"${name}", option) for combo in combos for option in options]
    assert all("$" not in combo for combo in combos), combos
    return combos


def assert_series(got: Series, expected: Series, expr: str) -> None:
    show = lambda series: sorted((sorted(k), v) for k, v in series.items())  # noqa: E731
    assert set(got) == set(expected), f"{expr}\n got {show(got)}\nwant {show(expected)}"
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-12, abs_tol=1e-12), (
            f"{expr} {sorted(key)}: {got[key]} != {value}"
        )


def is_kpi_query(expr: str) -> bool:
    """A query of a recorded KPI series (unit, level or province): it needs a hand-worked expectation."""
    return re.search(r":dvc_(kpi|units)", expr) is not None


@pytest.mark.integration
@pytest.mark.parametrize("query", PROM_QUERIES, ids=lambda q: q.name)
async def test_prometheus_panel_returns_the_hand_worked_values(stack: Stack, query: PanelQuery) -> None:
    oracle, returned = stack.oracle(), False
    for expr in await expansions(stack, query):
        result = await stack.query(expr)
        returned = returned or bool(result)
        expected = expected_series(expr, oracle)
        if is_kpi_query(expr):
            assert expected is not None, f"no hand-worked expectation for the KPI query {expr}: add one"
        if expected is not None:
            assert_series(as_series(result), expected, expr)
        if not query.target["instant"]:
            assert await stack.query_range(expr), f"range query returned nothing: {expr}"
    assert returned, f"{query.name}: no series for any value of its variables"


@pytest.mark.integration
async def test_services_up_panel_is_exact(stack: Stack) -> None:
    assert stack.alerts_error is None, (
        f"services/alerts/main.py exists but the service did not start:\n{stack.alerts_error}"
    )
    query = next(q for q in PROM_QUERIES if q.target["expr"].startswith("min by (job) (up"))
    got = as_series(await stack.query(query.target["expr"]))
    want = {
        labels(job="ingest"): 1.0,
        labels(job="metrics"): 1.0,
        labels(job="alerts"): float(stack.alerts_running),
    }
    assert got == want


# --------------------------------------------------------------------------------------------------
# SQL panels (as dvc_reader, the role Grafana's PostgreSQL datasource uses)


def trend_rows(counts: dict[str, tuple[int, int]], month: datetime) -> list[tuple[Any, ...]]:
    return [
        (month, kpi.name_vi, counts[kpi.id][0] / counts[kpi.id][1])
        for kpi in KPIS
        if counts.get(kpi.id, (0, 0))[1] > 0 and not kpi.is_count
    ]


def province_counts() -> dict[str, tuple[int, int]]:
    summed: dict[str, tuple[int, int]] = {}
    for by_kpi in COUNTS.values():
        for kpi, (n, d) in by_kpi.items():
            before = summed.get(kpi, (0, 0))
            summed[kpi] = (before[0] + n, before[1] + d)
    # units_inspected_rate: units inspected (by union) over every registry unit, never a sum
    inspected = sum(by_kpi.get("units_inspected_rate", (0, 0))[0] for by_kpi in COUNTS.values())
    return {**summed, "online_offer_rate": PROVINCE_OFFER, "units_inspected_rate": (inspected, len(LEVELS))}


ANY = object()  # a column whose value the test does not fix (e.g. a now() default)


def rows_equal(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> bool:
    if len(got) != len(want):
        return False
    for row, wanted in zip(got, want, strict=True):
        for value, expected in zip(row, wanted, strict=True):
            if expected is ANY:
                continue
            if isinstance(expected, float):
                if not math.isclose(float(value), expected, rel_tol=1e-12):
                    return False
            elif value != expected:
                return False
    return True


def sql_expectations(clock: Clock) -> dict[str, Callable[[str | None], list[tuple[Any, ...]] | None]]:
    """Expected rows per panel SQL (and unit); None = only 'it runs and returns rows'."""
    month = clock.month_start
    names = {
        "p": "Đơn vị p",
        AGENCY: "Đơn vị p.agency",
        "p.district": "Đơn vị p.district",
        C1: "Đơn vị b.c1",
        C2: "Đơn vị b.c2",
    }
    order = ["p", AGENCY, "p.district", C1, C2]
    # ranked per month: units_inspected_rate is judged on years only
    targeted = [
        k for k in KPIS if not k.is_count and not k.yearly and k.id in load_board_targets().comparators
    ]
    return {
        sql.OFFER_RATE_THIS_MONTH: lambda unit: [(PROVINCE_OFFER[0] / PROVINCE_OFFER[1],)],
        sql.monthly_trend(unit_filter=False): lambda unit: trend_rows(province_counts(), month),
        sql.monthly_trend(unit_filter=True): lambda unit: trend_rows(COUNTS.get(unit or "", {}), month),
        sql.level_trend("paperless_rate"): lambda unit: [
            (month, "Cấp tỉnh", 1.0),
            (month, "Cấp xã", 28 / 30),
        ],
        sql.UNIT_INFO: lambda unit: [
            (
                names[unit or ""],
                LEVEL_NAMES[LEVELS[unit or ""]],
                names.get(PARENTS[unit or ""], "—"),
                f"Thủ trưởng {unit}",
                unit,
            )
        ],
        sql.OVERDUE_CASES: lambda unit: None if unit == C1 else [],
        # 1.001: A5 resolved late and A7 overdue at b.c1, M1 and M2 resolved late at p.agency (name: below)
        sql.LATE_PROCEDURES: lambda unit: {C1: [("1.001", ANY, 1, 1)], AGENCY: [("1.001", ANY, 2, 0)]}.get(
            unit or "", []
        ),
        sql.LAST_EVENTS: lambda unit: None,
        sql.UNIT_VARIABLE: lambda unit: [(u, f"{names[u]} ({LEVEL_NAMES[LEVELS[u]]})") for u in order],
        sql.kpi_variable([k.id for k in targeted]): lambda unit: [(k.name_vi, k.id) for k in targeted],
        sql.RECENT_ALERTS: lambda unit: (
            [(ANY, KPI_BY_ID["on_time_rate"].name_vi, "month:2021-03", "Đang mở", None, None, None)]
            if unit == "p.district"
            else None
        ),
        sql.NOTIFICATIONS: lambda unit: None,
    }


async def insert_alert_history(database: MigratedDatabase) -> None:
    """What the alerts service writes, for a unit it cannot have alerted on (no data): one alert, two notices."""
    connection = await asyncpg.connect(database.admin_dsn)
    try:
        alert_id = await connection.fetchval(
            """INSERT INTO alerts (unit_id, kpi, period, figures) VALUES ('p.district', 'on_time_rate', 'month:2021-03', '{}')
               RETURNING alert_id"""
        )
        for channel, status in (("email", "sent"), ("webhook", "failed")):
            await connection.execute(
                """INSERT INTO notifications (dedupe_key, alert_id, unit_id, kpi, kind, channel, recipient, subject, body_text, status)
                   VALUES ($1, $2, 'p.district', 'on_time_rate', 'firing', $3, 'test', 'test', 'test', $4)""",
                f"test:{secrets.token_hex(4)}",
                alert_id,
                channel,
                status,
            )
    finally:
        await connection.close()


@pytest.mark.integration
@pytest.mark.parametrize(
    "raw",
    sorted({q.target["rawSql"] for q in SQL_QUERIES} | {v["query"] for v in VARIABLES.values()}),
    ids=lambda raw: raw.split("\n")[1][:50] if "\n" in raw else raw[:50],
)
async def test_sql_panel_returns_the_hand_worked_rows(stack: Stack, raw: str) -> None:
    if raw.strip() in ALERT_TABLES_SQL and not ALERTS_MAIN.exists():
        pytest.skip(
            "services/alerts/main.py does not exist yet: the alert-history panels are tested once it does"
        )
    expectations = {text.strip(): check for text, check in sql_expectations(stack.clock).items()}
    assert raw.strip() in expectations, f"no expectation for this panel SQL: add one\n{raw}"
    units = list(LEVELS) if "${unit:sqlstring}" in raw else [None]
    connection = await asyncpg.connect(stack.database.dsn("reader"))
    returned = False
    try:
        for unit in units:
            rows = [tuple(row) for row in await connection.fetch(expand_sql(raw, unit=unit))]
            returned = returned or bool(rows)
            want = expectations[raw.strip()](unit)
            if want is not None:
                assert rows_equal(rows, want), f"unit {unit}:\n got {rows}\nwant {want}\n{raw}"
    finally:
        await connection.close()
    assert returned, f"no rows for any unit:\n{raw}"


@pytest.mark.integration
async def test_overdue_list_and_last_events_are_exact(stack: Stack) -> None:
    connection = await asyncpg.connect(stack.database.dsn("reader"))
    try:
        overdue = await connection.fetch(expand_sql(sql.OVERDUE_CASES, unit=C1))
        last = await connection.fetch(expand_sql(sql.LAST_EVENTS))
        late = await connection.fetch(expand_sql(sql.LATE_PROCEDURES, unit=AGENCY))
        catalogue = await connection.fetchval(
            "SELECT name FROM reporting.procedures WHERE procedure_code = '1.001'"
        )
    finally:
        await connection.close()
    assert [row["Mã hồ sơ"] for row in overdue] == [OVERDUE_CASE]
    assert overdue[0]["Văn bản xin lỗi"] == "Chưa có"
    assert [row["Mã đơn vị"] for row in last] == ["p", "p.district", C1, C2, AGENCY]  # never reported first
    assert [(row["Mã TTHC"], row["Tên thủ tục"]) for row in late] == [
        ("1.001", catalogue or "chưa có trong danh mục")
    ]


# --------------------------------------------------------------------------------------------------
# Nothing references a metric nobody exports; every rule evaluates


PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, keywords, labels, durations)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("(") or match.group() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def exposition_names(text: str) -> set[str]:
    """Sample names in a /metrics page, plus the series names its TYPE lines promise."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            base = name.removesuffix("_total")
            names |= {name, base + "_total", base + "_created"} if kind == "counter" else {name}
            if kind in ("histogram", "summary"):
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def rule_documents() -> list[dict[str, Any]]:
    return [
        yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted((REPO / RULES_DIR).glob("*.yml"))
    ]


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for doc in rule_documents()
        for group in doc["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


@pytest.mark.integration
async def test_every_metric_of_the_boards_and_rules_is_exported(stack: Stack) -> None:
    exported = set(PROMETHEUS_OWN) | recorded_names()
    async with httpx.AsyncClient() as client:
        for process in stack.services.values():
            exported |= exposition_names((await client.get(f"http://127.0.0.1:{process.port}/metrics")).text)
    rules = [rule["expr"] for doc in rule_documents() for group in doc["groups"] for rule in group["rules"]]
    for expr in [q.target["expr"] for q in PROM_QUERIES] + rules:
        missing = metric_names(expr) - exported
        if missing and not stack.alerts_running:
            missing = {name for name in missing if not name.startswith("alerts_")}
        assert not missing, f"nobody exports {sorted(missing)} (used by {expr!r})"


@pytest.mark.integration
async def test_every_rule_evaluates_without_error(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.prometheus.url) as client:
        groups = (await client.get("/api/v1/rules")).json()["data"]["groups"]
    found = {rule["name"]: rule for group in groups for rule in group["rules"]}
    expected = {
        rule.get("record") or rule.get("alert")
        for doc in rule_documents()
        for group in doc["groups"]
        for rule in group["rules"]
    }
    assert set(found) == expected
    broken = {name: rule.get("lastError") for name, rule in found.items() if rule["health"] != "ok"}
    assert not broken, broken
    assert ACTIVITY_CHANGES in found


# --------------------------------------------------------------------------------------------------
# Without infrastructure: generated files, the real tools' checks, alert semantics, board structure


def test_committed_files_are_what_dvc_grafana_build_writes() -> None:
    for relative, content in build_files(load_board_targets()).items():
        path = REPO / relative
        assert path.exists() and path.read_text(encoding="utf-8") == content, (
            f"{relative} is stale: run `dvc grafana build`"
        )


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; CI installs it)")
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=300, check=False)


def test_promtool_accepts_both_configs_and_every_rule_file(tmp_path: Path) -> None:
    rules = sorted(str(path) for path in (REPO / RULES_DIR).glob("*.yml"))
    assert len(rules) >= 2
    checked = run_promtool("check", "rules", *rules)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    native = render_config(
        tmp_path / "native",
        {
            name: 9000 + i
            for i, name in enumerate(
                (
                    "DVC_INGEST_HTTP_PORT",
                    "DVC_METRICS_HTTP_PORT",
                    "DVC_ALERTS_HTTP_PORT",
                    "DVC_PROMETHEUS_PORT",
                )
            )
        },
    )
    compose = yaml.safe_load(
        (REPO / "deploy" / "prometheus" / "prometheus.compose.yml").read_text(encoding="utf-8")
    )
    assert compose["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    compose["rule_files"] = [
        str(REPO / RULES_DIR / "*.yml")
    ]  # where docker-compose.yml mounts the same folder
    (tmp_path / "compose.yml").write_text(yaml.safe_dump(compose), encoding="utf-8")
    for config in (native, tmp_path / "compose.yml"):
        checked = run_promtool("check", "config", str(config))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        rule_files = len(list((REPO / RULES_DIR).glob("*.yml")))
        assert f"SUCCESS: {rule_files} rule files found" in checked.stdout, checked.stdout


def expected_alert(name: str, **label_values: str) -> dict[str, Any]:
    """The alert as promtool reports it: our labels and annotations with $labels expanded."""
    rule = next(
        rule
        for doc in rule_documents()
        for group in doc["groups"]
        for rule in group["rules"]
        if rule.get("alert") == name
    )

    def expand(text: str) -> str:
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda match: label_values[match[1]], text)

    return {
        "exp_labels": {**rule["labels"], **label_values},
        "exp_annotations": {key: expand(value) for key, value in rule["annotations"].items()},
    }


def unit_activity(unit: str, values: str) -> list[dict[str, str]]:
    """A unit's year counts as the exporter publishes them (one KPI is enough for activity)."""
    return [
        {
            "series": f'dvc_kpi_denominator{{unit_id="{unit}", kpi="on_time_rate", period="year"}}',
            "values": values,
        },
        {
            "series": f'dvc_kpi_numerator{{unit_id="{unit}", kpi="on_time_rate", period="year"}}',
            "values": "0x2160",
        },
    ]


def alert_tests() -> list[dict[str, Any]]:
    """Each platform alert fires when it should and not before; the clock starts 1970-01-01 07:00 local (Thu)."""
    dead = "ingest_dead_letters_total"
    bucket = "metrics_update_latency_seconds_bucket"
    return [
        {
            "interval": "1m",
            "input_series": [
                {"series": 'up{job="ingest", instance="i:1"}', "values": "1 1 0x10"},
                {"series": 'up{job="metrics", instance="m:1"}', "values": "1x12"},
                {
                    "series": 'dvc_kpi_snapshot_timestamp_seconds{job="metrics", instance="m:1"}',
                    "values": "0x10",
                },
                {
                    "series": 'dvc_kpi_snapshot_timestamp_seconds{job="metrics", instance="m:2"}',
                    "values": "0+60x10",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "DvcServiceDown", "exp_alerts": []},
                {
                    "eval_time": "5m",
                    "alertname": "DvcServiceDown",
                    "exp_alerts": [expected_alert("DvcServiceDown", job="ingest", instance="i:1")],
                },
                {"eval_time": "2m", "alertname": "DvcKpiSnapshotStale", "exp_alerts": []},
                {
                    "eval_time": "5m",
                    "alertname": "DvcKpiSnapshotStale",
                    "exp_alerts": [expected_alert("DvcKpiSnapshotStale", job="metrics", instance="m:1")],
                },
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                {"series": f'{dead}{{reason="not_json"}}', "values": "0+5x30"},
                {"series": f'{dead}{{reason="bad_enum"}}', "values": "0x30"},
                {"series": f'{dead}{{reason="handler_error"}}', "values": "0x20 1x10"},
                {"series": 'ingest_events_stored_total{topic="dvc.case-events.v1"}', "values": "0+100x30"},
                {"series": 'ingest_duplicate_events_total{topic="dvc.case-events.v1"}', "values": "0x30"},
                {"series": f'{bucket}{{le="10.0"}}', "values": "0x30"},
                {"series": f'{bucket}{{le="30.0"}}', "values": "0+10x30"},
                {"series": f'{bucket}{{le="+Inf"}}', "values": "0+10x30"},
                {  # the oldest unconsumed case event waits longer and longer from 0m (30 s per minute): over 300 s from 11m
                    "series": 'dvc_consumer_lag_seconds{group="dvc-ingest", topic="dvc.case-events.v1", partition="0", instance="i:1"}',
                    "values": "0+30x30",
                },
                {  # the broker deleted 3,501 unread records at 20m
                    "series": 'dvc_consumer_records_lost_total{group="dvc-ingest", topic="dvc.case-events.v1", partition="1", instance="i:1"}',
                    "values": "0x20 3501x10",
                },
                {
                    "series": 'alerts_last_tick_timestamp_seconds{job="alerts", instance="a:1"}',
                    "values": "0+60x5 300x25",
                },
                {  # a mail retried since 10 min before the start, then delivered at 16m
                    "series": 'alerts_notifications_oldest_retry_seconds{channel="email", instance="a:1"}',
                    "values": "600+60x15 0x15",
                },
                {
                    "series": 'alerts_notifications_oldest_retry_seconds{channel="webhook", instance="a:1"}',
                    "values": "0x30",
                },
                {  # a webhook call given up at 14m (both instances report the same database count)
                    "series": 'alerts_notifications_failed{channel="webhook", instance="a:1"}',
                    "values": "0x13 1x17",
                },
                {
                    "series": 'alerts_notifications_failed{channel="webhook", instance="a:2"}',
                    "values": "0x13 1x17",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "DvcDeadLettersHigh", "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": "DvcDeadLettersHigh",
                    "exp_alerts": [expected_alert("DvcDeadLettersHigh", reason="not_json")],
                },
                {"eval_time": "20m", "alertname": "DvcRecordsLost", "exp_alerts": []},
                {
                    "eval_time": "22m",
                    "alertname": "DvcRecordsLost",
                    "exp_alerts": [
                        expected_alert("DvcRecordsLost", group="dvc-ingest", topic="dvc.case-events.v1")
                    ],
                },
                {"eval_time": "20m", "alertname": "DvcStorageFailing", "exp_alerts": []},
                {
                    "eval_time": "22m",
                    "alertname": "DvcStorageFailing",
                    "exp_alerts": [expected_alert("DvcStorageFailing")],
                },
                {"eval_time": "8m", "alertname": "DvcKpiUpdatesLagging", "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": "DvcKpiUpdatesLagging",
                    "exp_alerts": [expected_alert("DvcKpiUpdatesLagging")],
                },
                {"eval_time": "12m", "alertname": "DvcConsumerLagging", "exp_alerts": []},
                {
                    "eval_time": "25m",
                    "alertname": "DvcConsumerLagging",
                    "exp_alerts": [
                        expected_alert("DvcConsumerLagging", group="dvc-ingest", topic="dvc.case-events.v1")
                    ],
                },
                {
                    "eval_time": "7m",
                    "alertname": "DvcAlertsTimerStale",
                    "exp_alerts": [],
                },  # ticks stopped at 5m
                {
                    "eval_time": "12m",
                    "alertname": "DvcAlertsTimerStale",
                    "exp_alerts": [expected_alert("DvcAlertsTimerStale", job="alerts", instance="a:1")],
                },
                {"eval_time": "4m", "alertname": "DvcNotificationsFailing", "exp_alerts": []},
                {
                    "eval_time": "6m",
                    "alertname": "DvcNotificationsFailing",
                    "exp_alerts": [expected_alert("DvcNotificationsFailing", channel="email")],
                },
                {"eval_time": "17m", "alertname": "DvcNotificationsFailing", "exp_alerts": []},
                {"eval_time": "13m", "alertname": "DvcNotificationsFailed", "exp_alerts": []},
                {
                    "eval_time": "15m",
                    "alertname": "DvcNotificationsFailed",
                    "exp_alerts": [expected_alert("DvcNotificationsFailed", channel="webhook")],
                },
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                # reports every minute for a day (from Thu 07:00 local), then stops; u.quiet never reports
                *unit_activity("u.active", "0+1x1440 1440x720"),
                *unit_activity("u.quiet", "0x2160"),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "26h",
                    "alertname": "DvcUnitSilent",
                    "exp_alerts": [],
                },  # Fri 09:00: before 11:00
                {
                    "eval_time": "29h",  # Fri 12:00: silent since 07:00, a unit that usually reports
                    "alertname": "DvcUnitSilent",
                    "exp_alerts": [expected_alert("DvcUnitSilent", unit_id="u.active")],
                },
                {
                    "eval_time": "36h",
                    "alertname": "DvcUnitSilent",
                    "exp_alerts": [],
                },  # Fri 19:00: out of office
            ],
        },
    ]


def test_platform_alerts_fire_as_specified(tmp_path: Path) -> None:
    tests = {
        "rule_files": sorted(str(path) for path in (REPO / RULES_DIR).glob("*.yml")),
        "evaluation_interval": "1m",
        "tests": alert_tests(),
    }
    path = tmp_path / "alerts.test.yml"
    path.write_text(yaml.safe_dump(tests, allow_unicode=True), encoding="utf-8")
    result = run_promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_boards_have_fixed_uids_vietnamese_titles_and_known_datasources() -> None:
    boards = {board["uid"]: board for board in committed_boards()}
    assert set(boards) == {"dvc-province", "dvc-unit", "dvc-documents", "dvc-operations"}
    assert [v["name"] for v in boards["dvc-unit"]["templating"]["list"]] == [
        "unit"
    ]  # alert links: /d/dvc-unit?var-unit=
    for board in boards.values():
        assert board["schemaVersion"] == 39 and board["title"] and board["description"]
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            assert panel["title"] and panel["description"], panel
            assert re.search(r"[^\x00-\x7f]", panel["title"]), f"not Vietnamese: {panel['title']}"
            assert " / " in panel["description"], f"Vietnamese, then English: {panel['description']}"
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
            mine = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not mine & cells, f"{panel['title']} overlaps another panel"
            cells |= mine
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in ("dvc-prometheus", "dvc-postgres")


def test_panel_thresholds_are_the_targets_file() -> None:
    """Read deploy/targets.yaml independently: each province stat turns green exactly at its default target."""
    rules = yaml.safe_load((REPO / "deploy" / "targets.yaml").read_text(encoding="utf-8"))["targets"]
    defaults = {rule["kpi"]: rule for rule in rules if set(rule) <= {"kpi", "min", "above", "max"}}
    province = next(board for board in committed_boards() if board["uid"] == "dvc-province")
    for kpi in KPIS:
        panel = next(
            p for p in province["panels"] if p["type"] == "stat" and p["title"].startswith(kpi.name_vi)
        )
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        rule = defaults.get(kpi.id)
        if rule is None:
            assert [step["color"] for step in steps] == ["blue"], kpi.id  # informational
        elif "min" in rule:
            assert steps[1] == {"color": "green", "value": rule["min"]}, kpi.id
        elif "above" in rule:
            assert steps[1]["color"] == "green" and steps[1]["value"] == math.nextafter(
                rule["above"], math.inf
            ), kpi.id
        else:
            assert steps[0]["color"] == "green" and steps[1] == {"color": "red", "value": rule["max"] + 1}, (
                kpi.id
            )


def test_readme_pictures_are_drawn_from_the_dashboards(tmp_path: Path) -> None:
    from boards.render import COLUMN, MARGIN, render_board

    for board in committed_boards():
        image = render_board(board)
        assert image.width == 2 * MARGIN + 24 * COLUMN
        assert (REPO / "docs" / "boards" / f"{board['uid']}.png").exists(), "run `dvc grafana render`"


def test_compose_mounts_the_provisioning_that_the_files_expect() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in grafana["volumes"] if volume.startswith("./"))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/dashboards/dvc-monitor.yaml").read_text(encoding="utf-8")
    )
    assert mounts["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    datasources = (REPO / "deploy/grafana/provisioning/datasources/dvc-monitor.yaml").read_text(
        encoding="utf-8"
    )
    assert set(re.findall(r"\$(\w+)", datasources)) <= set(grafana["environment"])
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${DVC_GRAFANA_ADMIN_PASSWORD:?")
