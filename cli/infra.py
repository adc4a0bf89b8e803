"""`dvc infra`: the native infrastructure (PostgreSQL, Kafka, Alertmanager, Prometheus) through scripts/infra.sh."""

import subprocess
from pathlib import Path
from typing import Annotated

import typer

INFRA_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "infra.sh"
COMPONENTS = ("postgres", "kafka", "alertmanager", "prometheus")

app = typer.Typer(help="Hạ tầng chạy trực tiếp trên máy / Native infrastructure.", no_args_is_help=True)
Component = Annotated[
    str | None, typer.Argument(help="postgres | kafka | alertmanager | prometheus (default: all)")
]


def run_infra(action: str, component: str | None) -> None:
    """Run scripts/infra.sh and exit with its status."""
    if component is not None and component not in COMPONENTS:
        typer.echo(f"Thành phần không hợp lệ / unknown component: {component}", err=True)
        raise typer.Exit(2)
    args = ["bash", str(INFRA_SCRIPT), action, *([component] if component else [])]
    raise typer.Exit(subprocess.run(args, check=False).returncode)


@app.command()
def up(component: Component = None) -> None:
    """Cài (nếu thiếu) và khởi động / Install if missing and start."""
    run_infra("up", component)


@app.command()
def down(component: Component = None) -> None:
    """Dừng những gì đã khởi động / Stop what was started."""
    run_infra("down", component)


@app.command()
def status(component: Component = None) -> None:
    """Trạng thái / Status."""
    run_infra("status", component)


@app.command()
def logs(component: Component = None) -> None:
    """Xem nhật ký / Tail the logs."""
    run_infra("logs", component)
