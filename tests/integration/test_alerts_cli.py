"""`dvc alerts` against the real database: the commands an operator types, and what they store."""

import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import MigratedDatabase

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def run_dvc(database: MigratedDatabase, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `dvc alerts ...` with the admin DSN, as an administrator does."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DVC_")}
    env["DVC_DATABASE_URL"] = database.admin_dsn
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "alerts", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_silence_added_listed_and_ended(
    database: MigratedDatabase, admin_db: asyncpg.Connection
) -> None:
    added = run_dvc(database, "silences", "add", "--by", "Trực ban", "--kpi", "on_time_rate", "--hours", "2")
    assert added.returncode == 0, added.stderr
    silence_id = int(re.search(r"silence (\d+)", added.stdout).group(1))  # type: ignore[union-attr]
    row = await admin_db.fetchrow("SELECT * FROM silences WHERE silence_id = $1", silence_id)
    assert row["kpi"] == "on_time_rate" and row["unit_id"] is None and row["created_by"] == "Trực ban"
    assert 7190 < (row["ends_at"] - row["starts_at"]).total_seconds() <= 7200
    assert f"{silence_id}\t*\ton_time_rate\t" in run_dvc(database, "silences", "list").stdout

    assert run_dvc(database, "silences", "delete", str(silence_id)).returncode == 0
    assert f"{silence_id}\t" not in run_dvc(database, "silences", "list").stdout
    assert f"{silence_id}\t" in run_dvc(database, "silences", "list", "--all").stdout
    assert run_dvc(database, "silences", "delete", "987654321").returncode == 1
    assert run_dvc(database, "silences", "add", "--by", "x", "--kpi", "no_such_kpi").returncode == 2


async def test_working_day_swap_and_unknown_alert(
    database: MigratedDatabase, admin_db: asyncpg.Connection
) -> None:
    swapped = run_dvc(
        database, "holidays", "override", "add", "2031-01-04", "--working", "--note", "QĐ 1/2030"
    )
    assert swapped.returncode == 0, swapped.stderr
    assert await admin_db.fetchval("SELECT working FROM holiday_overrides WHERE day = '2031-01-04'") is True
    assert "2031-01-04\tworking\tQĐ 1/2030" in run_dvc(database, "holidays", "override", "list").stdout
    await admin_db.execute("DELETE FROM holiday_overrides WHERE day = '2031-01-04'")

    unknown = run_dvc(database, "ack", "987654321", "--by", "Trực ban")
    assert unknown.returncode == 1 and "unknown alert 987654321" in unknown.stderr
    assert run_dvc(database, "list", "--state", "below_target").returncode == 0
