"""`scripts/infra.sh up` on running infrastructure is idempotent and leaves one process each."""

import os
import stat
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_SH = REPO_ROOT / "scripts" / "infra.sh"
DATA_DIR = Path(os.path.realpath(os.environ.get("DVC_DATA_DIR") or REPO_ROOT / ".data"))
COMPONENTS = ("postgres", "kafka", "alertmanager", "prometheus")


def run_infra(*args: str) -> subprocess.CompletedProcess[str]:
    """Run scripts/infra.sh with the test's environment (same ports and data dir)."""
    return subprocess.run(
        ["bash", str(INFRA_SH), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
        check=False,
    )


def is_ours(component: str, argv: list[str]) -> bool:
    """Tell whether a process's argv is this data dir's process of the component."""
    if component == "postgres":
        return (
            Path(argv[0]).name == "postgres"
            and "-D" in argv[:-1]
            and argv[argv.index("-D") + 1] == str(DATA_DIR / "postgres")
        )
    if component == "kafka":
        return "kafka.Kafka" in argv and str(DATA_DIR / "kafka" / "server.properties") in argv
    if component == "alertmanager":
        storage = f"--storage.path={DATA_DIR / 'alertmanager' / 'data'}"
        return "alertmanager" in Path(argv[0]).name and storage in argv
    tsdb = f"--storage.tsdb.path={DATA_DIR / 'prometheus' / 'data'}"
    return Path(argv[0]).name == "prometheus" and tsdb in argv


def processes_of(component: str) -> list[int]:
    """Return the pids in /proc whose command line is the component's, for our data dir."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        argv = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
        if argv and is_ours(component, argv):
            pids.append(int(entry.name))
    return pids


def pidfile_pids() -> dict[str, int | None]:
    """Read $DVC_DATA_DIR/run/<component>.pid for every component."""
    pids: dict[str, int | None] = {}
    for component in COMPONENTS:
        path = DATA_DIR / "run" / f"{component}.pid"
        text = path.read_text().strip() if path.exists() else ""
        pids[component] = int(text) if text.isdigit() else None
    return pids


def test_second_up_changes_nothing_and_keeps_one_process_each() -> None:
    first = run_infra("up")
    assert first.returncode == 0, first.stdout + first.stderr
    started = pidfile_pids()

    second = run_infra("up")

    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("already running") == len(COMPONENTS), second.stdout
    assert pidfile_pids() == started
    for component in COMPONENTS:
        assert processes_of(component) == [started[component]], component
    status = run_infra("status")
    assert status.returncode == 0, status.stdout + status.stderr


def test_up_writes_env_files_for_other_scripts() -> None:
    result = run_infra("up")
    assert result.returncode == 0, result.stdout + result.stderr

    secrets = DATA_DIR / "secrets.env"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    keys = {line.split("=", 1)[0] for line in secrets.read_text().splitlines() if "=" in line}
    assert {
        "DVC_ADMIN_DATABASE_URL",
        "DVC_INGEST_DB_PASSWORD",
        "DVC_METRICS_DB_PASSWORD",
        "DVC_ALERTS_DB_PASSWORD",
        "DVC_READER_DB_PASSWORD",
        "DVC_ALERTS_SIGNING_KEY",
        "DVC_WEBHOOK_SECRET",
    } <= keys
    infra_env = (DATA_DIR / "infra.env").read_text()
    kafka_port = os.environ.get("DVC_KAFKA_PORT", "59092")
    prometheus_port = os.environ.get("DVC_PROMETHEUS_PORT", "59090")
    assert f"DVC_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{kafka_port}\n" in infra_env
    assert f"DVC_PROMETHEUS_URL=http://127.0.0.1:{prometheus_port}\n" in infra_env
    alertmanager_port = os.environ.get("DVC_ALERTMANAGER_PORT", "59094")
    assert f"DVC_ALERTMANAGER_URL=http://127.0.0.1:{alertmanager_port}\n" in infra_env
