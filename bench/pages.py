"""Server time of the web pages for Hà Tĩnh's 250 units with a year of data.

A scratch database gets a year of KPI day cells (COPY, for the 344 days before the last three weeks:
250 units x 6 day-cell KPIs x every day, plus procedure and overdue rows) and the last three weeks as
simulated events through the real ingest, metrics and alerts services. Then the overview, a level
drill-down and unit pages are fetched repeatedly; the server time is the page's `Server-Timing`
header (queries and template), the wall time includes HTTP. Optionally writes the README screenshots.

    python -m bench.pages [--requests 30] [--scale 0.3] [--screenshots docs/pages] [--keep]
    python -m bench.pages --reuse DATABASE,PREFIX [--code /path/to/other/checkout]  # a kept database again
"""

import argparse
import asyncio
import random
import statistics
import subprocess
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from bench.common import (
    REGISTRY_FILE,
    REPO,
    Scratch,
    create_scratch,
    drop_scratch,
    infra_env,
    publish_events,
    start_service,
    wait_ready,
)
from cli.tokens import create_token
from cli.web import take_screenshots
from shared.auth import Role
from shared.kpis import DAY_CELL_KPIS, LOCAL_TZ
from shared.units import read_registry
from simulator.stream import generate_events

PAGES_KEY = "bench-pages-key-0123456789abcdef"
RATES = {  # typical share of "good" per KPI, and daily volume per unit
    "on_time_rate": (0.985, 40),
    "satisfaction_rate": (0.93, 15),
    "online_intake_rate": (0.6, 30),
    "portal_sync_rate": (0.9, 30),
    "paperless_rate": (0.96, 20),
    "signed_rate": (0.9, 18),
}


def year_of_cells(units: list[str], first: date, last: date, seed: int = 7) -> list[tuple[object, ...]]:
    """Return kpi_day_cells rows for every unit, day-cell KPI and day in [first, last]."""
    rng = random.Random(seed)
    rows: list[tuple[object, ...]] = []
    skill = {unit: rng.uniform(-0.04, 0.015) for unit in units}
    day = first
    while day <= last:
        for unit in units:
            for kpi in DAY_CELL_KPIS:
                share, volume = RATES[kpi]
                total = max(1, int(rng.gauss(volume, volume / 4)))
                good = min(total, int(total * min(1.0, share + skill[unit] + rng.gauss(0, 0.01))))
                rows.append((unit, day, kpi, good, total))
        day += timedelta(days=1)
    return rows


async def load_history(scratch: Scratch, units: list[str], first: date, last: date) -> int:
    """COPY a year of cells (and procedure/overdue rows) into the scratch database; return the cell count."""
    cells = year_of_cells(units, first, last)
    procedures = [
        (u, d, f"1.{n:03d}", n % 2 == 0) for u, d, *_ in cells[:: len(DAY_CELL_KPIS)] for n in range(3)
    ]
    overdue = [(u, d, f"old-{u}-{d}", True) for u, d, *_ in cells[:: len(DAY_CELL_KPIS) * 7]]
    connection = await asyncpg.connect(scratch.admin_dsn)
    try:
        await connection.copy_records_to_table(
            "kpi_day_cells", records=cells, columns=["unit_id", "day", "kpi", "numerator", "denominator"]
        )
        await connection.copy_records_to_table(
            "procedure_days", records=procedures, columns=["unit_id", "day", "procedure_code", "online"]
        )
        await connection.copy_records_to_table(
            "overdue_days", records=overdue, columns=["unit_id", "day", "case_id", "apologized"]
        )
    finally:
        await connection.close()
    return len(cells)


async def caught_up(scratch: Scratch, expected: int) -> None:
    """Wait until ingest stored every event and the counts stopped changing."""
    connection = await asyncpg.connect(scratch.admin_dsn)
    try:
        while int(await connection.fetchval("SELECT count(*) FROM event_ids")) < expected:
            await asyncio.sleep(1)
        previous = None
        while (latest := await connection.fetchval("SELECT max(updated_at) FROM kpi_day_cells")) != previous:
            previous = latest
            await asyncio.sleep(3)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


async def timings(client: httpx.AsyncClient, path: str, count: int) -> tuple[list[float], list[float]]:
    """GET a page `count` times; return server and wall milliseconds."""
    server, wall = [], []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get(path)
        wall.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        server.append(float(response.headers["server-timing"].split("dur=")[1]))
    return server, wall


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered):6.1f} ms, p95 {p95:6.1f} ms, max {ordered[-1]:6.1f} ms"


async def run(
    requests: int, scale: float, shots: Path | None, keep: bool, reuse: str | None, code: Path
) -> None:
    env = infra_env()
    if reuse:  # a database kept by --keep: time the pages again, e.g. of another checkout (--code)
        database, _, prefix = reuse.partition(",")
        scratch = Scratch(env, database, prefix)
    else:
        scratch = await create_scratch(env)
    print(
        f"database {scratch.database}, topics {scratch.prefix}* (--reuse {scratch.database},{scratch.prefix})"
    )
    logs = Path(tempfile.mkdtemp())
    common = {"DVC_PAGES_SIGNING_KEY": PAGES_KEY}
    processes = [start_service(scratch, "metrics", logs / "metrics.log", code=code, **common)]
    try:
        if not reuse:
            processes += await simulate(scratch, scale, logs, metrics_port=processes[0][1])
        await wait_ready(processes[0][1])
        connection = await asyncpg.connect(scratch.admin_dsn)
        await connection.execute("VACUUM ANALYZE")
        token = (await create_token(connection, name="bench pages", role=Role.viewer))[1]
        await connection.close()
        base = f"http://127.0.0.1:{processes[0][1]}"
        await time_pages(base, token, requests)
        if shots is not None:
            for path in take_screenshots(base, token, shots, unit=None, pages_key=PAGES_KEY):
                print(f"screenshot {path} ({path.stat().st_size // 1000} KB)")
    finally:
        for process, _ in processes:
            process.terminate()
            process.wait(60)
        if not keep and not reuse:
            await drop_scratch(scratch)
        print(f"logs: {logs}; local time {time.strftime('%Y-%m-%d %H:%M')} ({LOCAL_TZ}); code {code}")


async def simulate(
    scratch: Scratch, scale: float, logs: Path, *, metrics_port: int
) -> list[tuple[subprocess.Popen[bytes], int]]:
    """Load a year of history, then play three weeks through ingest and alerts; return their processes."""
    registry = read_registry(REGISTRY_FILE)
    units = [unit.id for unit in registry.units]
    today = datetime.now(LOCAL_TZ).date()
    live_start = today - timedelta(days=21)
    cells = await load_history(scratch, units, today - timedelta(days=365), live_start - timedelta(days=1))
    print(
        f"history: {cells:,} KPI day cells for {len(units)} units ({today - timedelta(days=365)}..{live_start})"
    )
    common = {"DVC_PAGES_SIGNING_KEY": PAGES_KEY}
    processes = [
        start_service(scratch, "ingest", logs / "ingest.log"),
        start_service(
            scratch,
            "alerts",
            logs / "alerts.log",
            DVC_ALERTS_SIGNING_KEY="bench-signing-key-0123456789abcdef",
            DVC_WEBHOOK_SECRET="bench-webhook-secret-0123456789abcdef",
            DVC_SMTP_PORT="1",  # nowhere: notices wait in the outbox
            DVC_PAGES_URL=f"http://127.0.0.1:{metrics_port}",
            DVC_ALERTS_EVALUATION_SECONDS="5",
            DVC_ALERTS_CONFIRM_SECONDS="5",
            **common,
        ),
    ]
    for _, port in [*processes, (None, metrics_port)]:
        await wait_ready(port)
    events = list(generate_events(registry, start=live_start, days=21, seed=11, scale=scale))
    print(
        f"live: {len(events):,} simulated events from {live_start} at {await publish_events(scratch, events):,.0f} msg/s"
    )
    await caught_up(scratch, len(events))
    await asyncio.sleep(15)  # alerts evaluate the counts (every 5 s) before the unit pages are timed
    return processes


async def time_pages(base: str, token: str, requests: int) -> None:
    """Print the server and wall times of the overview, its drill-downs and unit pages."""
    async with httpx.AsyncClient(base_url=base, cookies={"dvc_pages_token": token}, timeout=60) as client:
        units_json = (await client.get("/api/v1/units", headers={"Authorization": f"Bearer {token}"})).json()
        unit_ids = [u["unit_id"] for u in units_json]
        district = next(u["unit_id"] for u in units_json if u["level"] == "district")
        for label, path in (
            ("overview (province, 250 units)", "/pages/province"),
            ("overview (level: commune)", "/pages/province?scope=level:commune"),
            ("overview (district subtree)", f"/pages/province?scope=subtree:{district}"),
            ("unit page (a commune)", f"/pages/units/{unit_ids[-1]}"),
            ("unit page (province root)", f"/pages/units/{unit_ids[0]}"),
        ):
            await client.get(path)  # warm the connection pool and the template cache
            server, wall = await timings(client, path, requests)
            print(f"{label:32s} server {summary(server)} | wall {summary(wall)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--scale", type=float, default=0.3, help="simulated volume of the last 3 weeks")
    parser.add_argument("--screenshots", type=Path, default=None, help="write the README screenshots here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--reuse", metavar="DATABASE,PREFIX", help="time the pages over a kept scratch database"
    )
    parser.add_argument("--code", type=Path, default=REPO, help="run the metrics service from this checkout")
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.scale, args.screenshots, args.keep, args.reuse, args.code))


if __name__ == "__main__":
    main()
