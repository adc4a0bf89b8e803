"""`dvc docs asyncapi`: the AsyncAPI document of every service's topics, generated from the code."""

from pathlib import Path
from typing import Annotated

import typer
import yaml
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from services.alerts.handlers import router as alerts_router
from services.ingest.handlers import router as ingest_router

ASYNCAPI_PATH = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"

app = typer.Typer(help="Tài liệu / Documentation.", no_args_is_help=True)


def render_asyncapi() -> str:
    """Render the AsyncAPI document of all services as YAML."""
    broker = KafkaBroker(
        "kafka:9092", description="dvc-monitor: Kafka topics of the public contract and between services"
    )
    for router in (ingest_router, alerts_router):
        broker.include_router(router)
    spec = AsyncAPI(
        broker, title="dvc-monitor", version="1.0.0", description="Event contract v1 (event-contract.md)"
    )
    # FastStream keeps publishers in a WeakSet: sort what it iterates, or the order varies between runs
    document = spec.to_specification().to_jsonable()
    for section in (document, document.get("components", {})):
        for key in ("channels", "operations", "messages", "schemas"):
            if isinstance(section.get(key), dict):
                section[key] = dict(sorted(section[key].items()))
    return str(yaml.dump(document, sort_keys=False))


@app.command("asyncapi")
def asyncapi_command(
    out: Annotated[Path, typer.Option(help="output file")] = ASYNCAPI_PATH,
    check: Annotated[bool, typer.Option(help="fail if the file differs from the code")] = False,
) -> None:
    """Sinh tài liệu AsyncAPI / Write (or check) docs/asyncapi.yaml."""
    rendered = render_asyncapi()
    if check:
        if not out.exists() or out.read_text(encoding="utf-8") != rendered:
            typer.echo(f"Tài liệu AsyncAPI đã cũ / {out} is out of date: run `dvc docs asyncapi`", err=True)
            raise typer.Exit(1)
        return
    out.write_text(rendered, encoding="utf-8")
    typer.echo(f"Đã ghi / wrote {out}")
