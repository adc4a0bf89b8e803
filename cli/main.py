"""`dvc`: the operators' single front door (infra, db, units, ...)."""

import typer

from cli import (
    alerts,
    db,
    deadletters,
    docs,
    grafana,
    infra,
    kafka,
    metrics,
    procedures,
    report,
    simulate,
    tokens,
    units,
    web,
)

app = typer.Typer(
    help="dvc-monitor: giám sát dịch vụ công trực tuyến / online public-service monitoring.",
    no_args_is_help=True,
)
app.add_typer(infra.app, name="infra")
app.add_typer(db.app, name="db")
app.add_typer(kafka.app, name="kafka")
app.add_typer(units.app, name="units")
app.add_typer(procedures.app, name="procedures")
app.add_typer(metrics.app, name="metrics")
app.add_typer(alerts.app, name="alerts")
app.add_typer(deadletters.app, name="deadletters")
app.add_typer(docs.app, name="docs")
app.add_typer(grafana.app, name="grafana")
app.add_typer(tokens.app, name="tokens")
app.add_typer(web.app, name="web")
app.command("simulate")(simulate.simulate_command)
app.command("report")(report.report_command)

if __name__ == "__main__":
    app()
