"""Ctrl-C stops everything `scripts/up.sh` started within 10 s, and leaves other infrastructure alone.

Each test runs the real up.sh with its own data directory and free ports, so it starts a private
PostgreSQL, Kafka and Prometheus next to the shared ones, then the three services, the SMTP sink
and the simulator. Once the simulator reports, SIGINT goes to up.sh's process group, the way a
terminal sends Ctrl-C. Everything it started must then be gone within 10 s: the processes of its
session, every process it snapshotted as its own (any process whose environment carries its data
directory, and the pids in its infrastructure pidfiles), and up.sh itself.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, infra_setting

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

UP_SH = REPO / "scripts" / "up.sh"
STOP_SECONDS = 10.0
START_SECONDS = 150.0
# up.sh replays the history first (services not started yet), then simulates live: wait for the live part
SIMULATOR_REPORTS = "continuing the simulation in real time"
EVERYTHING_STOPPED = "Đã dừng tất cả / everything stopped"
KEPT_VARIABLES = ("DVC_KAFKA_LIB_DIR",)  # the machine's Kafka jar cache: reused, never written


@dataclass(frozen=True)
class Proc:
    """A process, told apart from a later one with a recycled pid by its start time."""

    pid: int
    start: int
    session: int
    cmdline: str


def read_proc(pid: int) -> Proc | None:
    """Read a live (not zombie) process from /proc; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # fields 3.. of proc(5): state, ppid, pgrp, session, ...
    if fields[0] in ("Z", "X"):
        return None
    return Proc(pid, int(fields[19]), int(fields[3]), cmdline.replace(b"\0", b" ").decode(errors="replace"))


def all_procs() -> list[Proc]:
    """Every live process on the machine."""
    found = (read_proc(int(entry)) for entry in os.listdir("/proc") if entry.isdigit())
    return [proc for proc in found if proc is not None]


def carries(pid: int, assignment: bytes) -> bool:
    """Tell whether a process's environment holds the exact VAR=value assignment."""
    try:
        return assignment in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def pidfile_pids(data_dir: Path) -> list[int]:
    """The pids in a data directory's infrastructure pidfiles (scripts/infra.sh writes run/<component>.pid)."""
    texts = (path.read_text().strip() for path in (data_dir / "run").glob("*.pid"))
    return [int(text) for text in texts if text.isdigit()]


def port_variables() -> set[str]:
    """Every DVC_*PORT variable that the scripts read, so that the test can give each a free port."""
    text = "\n".join(path.read_text() for path in (REPO / "scripts").glob("*.sh"))
    return set(re.findall(r"\$\{?(DVC_[A-Z0-9_]*PORT)\b", text))


def up_environment(data_dir: Path) -> dict[str, str]:
    """The environment of a private up.sh: its own data dir and ports, this venv, a small slow demo."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("DVC_") or key in KEPT_VARIABLES
    }
    env.update({name: str(free_port()) for name in port_variables()})
    env.update(
        DVC_DATA_DIR=str(data_dir),
        DVC_VENV=sys.prefix,  # the running venv, already installed: up.sh installs nothing
        DVC_DEMO_DAYS="1",
        DVC_DEMO_SCALE="0.05",
        DVC_DEMO_SPEED="100",  # a simulated day takes 15 minutes: the simulator is still running at Ctrl-C
    )
    return env


def own_procs(session: int | None, data_assignment: bytes, data_dir: Path) -> list[Proc]:
    """What up.sh runs now: its session, every process carrying its data dir, its infrastructure pids."""
    infra = set(pidfile_pids(data_dir))
    return [
        proc
        for proc in all_procs()
        if proc.pid != os.getpid()
        and (proc.session == session or proc.pid in infra or carries(proc.pid, data_assignment))
    ]


def still_running(snapshot: list[Proc], run: "PrivateUp", keep: frozenset[Proc]) -> list[Proc]:
    """The snapshotted processes still alive (same start time), and any process the run has now, but `keep`."""
    alive = {proc for proc in snapshot if read_proc(proc.pid) == proc}
    return sorted((alive | set(run.procs())) - keep, key=lambda proc: proc.pid)


def wait_for_simulator(up: subprocess.Popen[bytes], output: Path) -> None:
    """Wait until up.sh has started everything and the simulator reports what it sent."""
    deadline = time.monotonic() + START_SECONDS
    while SIMULATOR_REPORTS not in output.read_text(errors="replace"):
        if up.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(up.pid, signal.SIGTERM)
            up.wait(timeout=60)
            pytest.fail(
                f"up.sh did not get the simulator running:\n{output.read_text(errors='replace')[-3000:]}"
            )
        time.sleep(0.5)


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


@dataclass
class PrivateUp:
    """One private run of up.sh: its data dir, output file and environment; its process once started."""

    data_dir: Path
    output: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def assignment(self) -> bytes:
        """The environment entry that every process of this run inherits."""
        return f"DVC_DATA_DIR={self.data_dir}".encode()

    def procs(self) -> list[Proc]:
        """What this run runs now: up.sh's session and every process of its data dir."""
        return own_procs(self.process.pid if self.process else None, self.assignment, self.data_dir)

    def infra(self, command: str) -> None:
        """Run `scripts/infra.sh <command>` on this run's data dir and ports."""
        result = subprocess.run(  # noqa: S603 (fixed command)
            ["bash", str(REPO / "scripts" / "infra.sh"), command],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def private_up(tmp_path: Path) -> Iterator[PrivateUp]:
    """A private up.sh run; whatever it leaves behind (a failed test) is stopped afterwards.

    The data dir is not under tmp_path: infra.sh lets the postgres user traverse its parents, and a
    concurrent pytest session resets /tmp/pytest-of-<user> to 0700.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="dvc-up-sigint-")).resolve()
    run = PrivateUp(data_dir, tmp_path / "up.out", up_environment(data_dir))
    yield run
    if run.procs():
        with contextlib.suppress(AssertionError):
            run.infra("down")
        for proc in run.procs():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
    if run.process:
        run.process.wait(timeout=60)
    shutil.rmtree(data_dir, ignore_errors=True)


def run_up_and_interrupt(
    run: PrivateUp, command: list[str], interrupts: int, keep: frozenset[Proc] = frozenset()
) -> float:
    """Start up.sh, wait for the simulator, send `interrupts` SIGINTs to its group; seconds until all is gone.

    `keep`: processes that must survive (an infrastructure that ran before up.sh).
    """
    with run.output.open("wb") as sink:
        run.process = up = subprocess.Popen(  # noqa: S603 (fixed command)
            command,
            cwd=REPO,
            env=run.env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for_simulator(up, run.output)
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
