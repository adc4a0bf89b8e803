"""Ctrl-C stops everything `scripts/up.sh` started within 10 s, and leaves other infrastructure alone.

Each test runs the real up.sh with its own data directory and free ports, so it starts a private
PostgreSQL, Kafka and Prometheus next to the shared ones, then the three services, the SMTP sink
and the simulator. Once the simulator reports, SIGINT goes to up.sh's process group, the way a
terminal sends Ctrl-C. Everything it started must then be gone within 10 s: the processes of its
session, every process it snapshotted as its own (any process whose environment carries its data
directory, and the pids in its infrastructure pidfiles), and up.sh itself.
"""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, infra_setting
from tests.faults.private_up import UP_SH, PrivateUp, Proc, pidfile_pids, read_proc
from tests.faults.private_up import private_up as private_up  # noqa: PLC0414 (fixture re-export)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

STOP_SECONDS = 10.0
START_SECONDS = 150.0
EVERYTHING_STOPPED = "Đã dừng tất cả / everything stopped"


def still_running(snapshot: list[Proc], run: "PrivateUp", keep: frozenset[Proc]) -> list[Proc]:
    """The snapshotted processes still alive (same start time), and any process the run has now, but `keep`."""
    alive = {proc for proc in snapshot if read_proc(proc.pid) == proc}
    return sorted((alive | set(run.procs())) - keep, key=lambda proc: proc.pid)


def shared_infra() -> tuple[Path, list[Proc]]:
    """The data dir of the infrastructure the other tests use, and its running processes."""
    data_dir = Path(os.environ.get("DVC_DATA_DIR") or REPO / ".data").resolve()
    procs = [proc for proc in map(read_proc, pidfile_pids(data_dir)) if proc is not None]
    return data_dir, procs


def postgres_answers(admin_url: str) -> bool:
    """Run `select 1` on a PostgreSQL through psql."""
    result = subprocess.run(
        ["psql", "-X", "-A", "-t", "-c", "select 1", admin_url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
    )
    return result.stdout.strip() == "1"


def run_up_and_interrupt(
    run: PrivateUp, command: list[str], interrupts: int, keep: frozenset[Proc] = frozenset()
) -> float:
    """Start up.sh, wait for the simulator, send `interrupts` SIGINTs to its group; seconds until all is gone.

    `keep`: processes that must survive (an infrastructure that ran before up.sh).
    """
    up = run.start(command)
    run.wait_for_simulator(START_SECONDS)
    deadline = time.monotonic() + 10  # the live simulator is started right after the message
    while "--mode realtime" not in (commands := " ".join(p.cmdline for p in run.procs())):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    snapshot = run.procs()
    commands = " ".join(proc.cmdline for proc in snapshot)
    snapshot = [proc for proc in snapshot if proc not in keep]
    for part in ("dvc simulate", "aiosmtpd", "services.ingest.main", "services.metrics.main",
                 "services.alerts.main", "kafka.Kafka", "prometheus", f"-D {run.data_dir}/postgres"):  # fmt: skip
        assert part in commands, f"{part!r} not among up.sh's processes: {commands}"

    started = time.monotonic()
    for _ in range(interrupts):
        os.killpg(up.pid, signal.SIGINT)
        time.sleep(0.3)
    left = still_running(snapshot, run, keep)
    while left and time.monotonic() - started < STOP_SECONDS:
        time.sleep(0.1)
        left = still_running(snapshot, run, keep)
    elapsed = time.monotonic() - started

    text = run.output.read_text(errors="replace")
    assert not left, (
        f"still running {elapsed:.1f}s after Ctrl-C: {[p.cmdline[:80] for p in left]}\n{text[-3000:]}"
    )
    assert EVERYTHING_STOPPED in text, text[-3000:]
    print(f"{interrupts} SIGINT: nothing of up.sh left after {elapsed:.1f}s")  # noqa: T201 (measurement)
    return elapsed


@pytest.fixture
def untouched_shared_infra() -> Iterator[None]:
    """Check that the shared infrastructure's processes outlive the test and its PostgreSQL answers."""
    admin_url = infra_setting("DVC_ADMIN_DATABASE_URL")
    data_dir, before = shared_infra()
    yield
    assert shared_infra() == (data_dir, before)
    assert postgres_answers(admin_url)


@pytest.mark.usefixtures("untouched_shared_infra")
def test_two_ctrl_c_stop_everything_up_sh_started_within_10_s(private_up: PrivateUp) -> None:
    # SIGINT at its default, as in a terminal; the second Ctrl-C comes while the first is being handled
    command = ["env", "--default-signal=INT", "bash", str(UP_SH)]

    elapsed = run_up_and_interrupt(private_up, command, interrupts=2)

    assert elapsed < STOP_SECONDS


@pytest.mark.usefixtures("untouched_shared_infra")
def test_one_ctrl_c_stops_up_sh_even_when_started_with_sigint_ignored(private_up: PrivateUp) -> None:
    # `bash scripts/up.sh &` in another script starts it with SIGINT ignored, which bash cannot trap
    command = ["bash", "-c", 'trap "" INT; exec bash "$0"', str(UP_SH)]

    elapsed = run_up_and_interrupt(private_up, command, interrupts=1)

    assert elapsed < STOP_SECONDS


@pytest.mark.usefixtures("untouched_shared_infra")
def test_ctrl_c_leaves_running_the_infrastructure_that_ran_before_up_sh(private_up: PrivateUp) -> None:
    private_up.infra("up")
    infra = frozenset(proc for proc in map(read_proc, pidfile_pids(private_up.data_dir)) if proc is not None)
    command = ["env", "--default-signal=INT", "bash", str(UP_SH)]

    elapsed = run_up_and_interrupt(private_up, command, interrupts=1, keep=infra)

    assert elapsed < STOP_SECONDS
    assert len(infra) >= 3
    assert all(read_proc(proc.pid) == proc for proc in infra), "up.sh stopped infrastructure it did not start"
    assert "left running" in private_up.output.read_text()
