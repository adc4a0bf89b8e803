"""A private PostgreSQL cluster a test may stop and start, so the shared one stays up for everyone else."""

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

OS_USER = "postgres"  # initdb and postgres refuse to run as root


def pg_bin() -> Path:
    """Return the newest /usr/lib/postgresql/*/bin with initdb and pg_ctl."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if not found:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql")
    return found[-1].parent


def as_os_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", OS_USER, "--", *command] if os.geteuid() == 0 else command


@dataclass
class PrivatePostgres:
    """initdb'd in a temporary directory, listening on 127.0.0.1 on a free port, trust authentication."""

    folder: Path
    port: int

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @classmethod
    def create(cls) -> "PrivatePostgres":
        folder = Path(tempfile.mkdtemp(prefix="dvc-private-pg-"))
        if os.geteuid() == 0:
            shutil.chown(folder, OS_USER, OS_USER)
        cluster = cls(folder, free_port())
        subprocess.run(
            as_os_user([str(pg_bin() / "initdb"), "-D", str(cluster.data), "-U", "postgres", "--auth=trust"]),
            check=True,
            capture_output=True,
            cwd="/",
        )
        return cluster

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off"
        subprocess.run(
            as_os_user(
                [
                    str(pg_bin() / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.folder / "log"),
                    "-o",
                    options,
                ]
                + ["-w", "start"]
            ),
            check=True,
            capture_output=True,
            cwd="/",
        )

    def stop(self) -> None:
        subprocess.run(
            as_os_user([str(pg_bin() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            check=True,
            capture_output=True,
            cwd="/",
        )

    def remove(self) -> None:
        subprocess.run(
            as_os_user([str(pg_bin() / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            cwd="/",
        )
        shutil.rmtree(self.folder, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
