"""`dvc grafana build|push|render`: the boards and Prometheus rules, generated from code and the targets."""

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from boards.thresholds import REPO, load_board_targets

app = typer.Typer(help="Bảng theo dõi Grafana / Grafana boards and Prometheus rules.", no_args_is_help=True)


@app.command("build")
def build_command(
    check: Annotated[bool, typer.Option(help="fail if a committed file differs from the code")] = False,
) -> None:
    """Sinh bảng theo dõi và rules / Regenerate the dashboards, provisioning and rule files."""
    from boards.provisioning import build_files, write_files

    files = build_files(load_board_targets())
    if check:
        stale = [
            path
            for path, content in sorted(files.items())
            if not (REPO / path).exists() or (REPO / path).read_text(encoding="utf-8") != content
        ]
        for path in stale:
            typer.echo(f"Tệp đã cũ / out of date: {path} (run `dvc grafana build`)", err=True)
        raise typer.Exit(1 if stale else 0)
    changed = write_files(files)
    for path in changed:
        typer.echo(f"Đã ghi / wrote {path}")
    if not changed:
        typer.echo("Không có gì thay đổi / everything is up to date")


@app.command("push")
def push_command(
    url: Annotated[str, typer.Option(help="Grafana's address, e.g. https://grafana.example.gov.vn")],
    token: Annotated[str, typer.Option(envvar="DVC_GRAFANA_TOKEN", help="service-account token (Admin)")],
    prometheus_url: Annotated[
        str, typer.Option(envvar="DVC_PROMETHEUS_URL", help="Prometheus as Grafana reaches it")
    ] = "http://127.0.0.1:59090",
    pg_host: Annotated[
        str, typer.Option(envvar="DVC_PG_HOST", help="PostgreSQL host as Grafana reaches it")
    ] = "127.0.0.1",
    pg_port: Annotated[
        int, typer.Option(envvar="DVC_PG_PORT", help="used unless --pg-host has a port")
    ] = 55432,
    pg_database: Annotated[str, typer.Option(envvar="DVC_PG_DATABASE")] = "dvc",
    pg_user: Annotated[
        str, typer.Option(envvar="DVC_READER_DB_USER", help="the read-only role")
    ] = "dvc_reader",
    pg_sslmode: Annotated[str, typer.Option(help="disable, require, verify-ca or verify-full")] = "disable",
    rotate_password: Annotated[
        bool, typer.Option(help="send DVC_READER_DB_PASSWORD even if the datasource already has one")
    ] = False,
) -> None:
    """Đưa nguồn dữ liệu và bảng lên Grafana qua API / Provision datasources and boards over the HTTP API.

    Idempotent: reads each object first and writes only what differs. The read-only role's password is
    read from the environment (DVC_READER_DB_PASSWORD), never from the command line.
    """
    from boards.provisioning import DatasourceSettings
    from boards.push import PushError, push

    # docker-compose.yml's DVC_PG_HOST is host:port; scripts/infra.sh writes DVC_PG_HOST and DVC_PG_PORT
    address = pg_host if ":" in pg_host else f"{pg_host}:{pg_port}"
    settings = DatasourceSettings(prometheus_url, address, pg_database, pg_user, pg_sslmode)
    password = os.environ.get("DVC_READER_DB_PASSWORD") or None
    try:
        outcome = push(url, token, settings, password=password, rotate_password=rotate_password)
    except PushError as exc:
        typer.echo(f"Lỗi / error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for line in outcome:
        typer.echo(line)


@app.command("render")
def render_command(
    out: Annotated[Path, typer.Option(help="output folder")] = REPO / "docs" / "boards",
) -> None:
    """Vẽ sơ đồ bố cục các bảng / Draw each board's panel grid as a PNG (for the README).

    Reads the dashboard JSON in deploy/grafana/dashboards: run `dvc grafana build` first.
    """
    from boards.provisioning import DASHBOARDS_DIR
    from boards.render import render_board

    out.mkdir(parents=True, exist_ok=True)
    for source in sorted((REPO / DASHBOARDS_DIR).glob("*.json")):
        board = json.loads(source.read_text(encoding="utf-8"))
        path = out / f"{source.stem}.png"
        render_board(board).save(path, format="PNG", optimize=True)
        typer.echo(f"Đã vẽ / drew {path}")
