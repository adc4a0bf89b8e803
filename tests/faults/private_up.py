"""A private run of `scripts/up.sh`: its own data directory and free ports, so it starts its own
PostgreSQL, Kafka, Prometheus, Alertmanager, services, SMTP sink and simulator next to the shared
infrastructure, and the processes it runs can be told apart from every other (its session, the
processes carrying its data directory, the pids in its infrastructure pidfiles).
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

from tests.conftest import REPO, free_port

UP_SH = REPO / "scripts" / "up.sh"
KEPT_VARIABLES = ("DVC_KAFKA_LIB_DIR",)  # the machine's Kafka jar cache: reused, never written
# up.sh replays the history first (services not started yet), then simulates live: its last step
SIMULATOR_REPORTS = "continuing the simulation in real time"


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
    """The environment of a private up.sh: its own data dir and ports, this venv, a small demo."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("DVC_") or key in KEPT_VARIABLES
    }
    env.update({name: str(free_port()) for name in port_variables()})
    env.update(
        DVC_DATA_DIR=str(data_dir),
        DVC_VENV=sys.prefix,  # the running venv, already installed: up.sh installs nothing
        DVC_DEMO_DAYS="1",
        DVC_DEMO_SCALE="0.05",
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

    def text(self) -> str:
        """What up.sh printed so far."""
        return self.output.read_text(errors="replace")

    def start(self, command: list[str]) -> subprocess.Popen[bytes]:
        """Start up.sh (`command` runs it) in its own session, its output to `output`."""
        with self.output.open("wb") as sink:
            self.process = subprocess.Popen(  # noqa: S603 (fixed command)
                command,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.process

    def wait_for_simulator(self, timeout: float) -> None:
        """Wait until up.sh has started everything and reports the live simulation (else fail)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while SIMULATOR_REPORTS not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=60)
                pytest.fail(f"up.sh did not get the simulator running:\n{self.text()[-3000:]}")
            time.sleep(0.5)

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
    data_dir = Path(tempfile.mkdtemp(prefix="dvc-up-")).resolve()
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
