"""Small builders for Grafana dashboard JSON (schema 39): queries, panels, layout, dashboards."""

from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]
SCHEMA_VERSION = 39
PROMETHEUS = {"type": "prometheus", "uid": "dvc-prometheus"}
POSTGRES = {"type": "grafana-postgresql-datasource", "uid": "dvc-postgres"}
GRID_COLUMNS = 24
TAG = "dvc-monitor"


def prom(expr: str, *, legend: str = "__auto", instant: bool = True, table: bool = False) -> Json:
    """Return a Prometheus query (instant by default: boards show the current period)."""
    return {
        "datasource": PROMETHEUS,
        "editorMode": "code",
        "expr": expr,
        "format": "table" if table else "time_series",
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
    }


def pg(raw: str, *, series: bool = False) -> Json:
    """Return a PostgreSQL query (run as the read-only role dvc_reader)."""
    return {
        "datasource": POSTGRES,
        "editorMode": "code",
        "format": "time_series" if series else "table",
        "rawQuery": True,
        "rawSql": raw.strip(),
    }


@dataclass
class Layout:
    """Place panels left to right on Grafana's 24-column grid, wrapping to a new line when full."""

    x: int = 0
    y: int = 0
    line_height: int = 0

    def place(self, width: int, height: int) -> Json:
        """Return the gridPos of the next panel."""
        if self.x + width > GRID_COLUMNS:
            self.newline()
        position = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.line_height = max(self.line_height, height)
        return position

    def newline(self) -> None:
        """Start a new line below the tallest panel of the current one."""
        if self.x:
            self.y += self.line_height
        self.x, self.line_height = 0, 0


@dataclass
class Panel:
    """A panel before layout: its type, texts, queries and field configuration."""

    kind: str
    title: str
    description: str
    targets: list[Json]
    width: int
    height: int
    defaults: Json = field(default_factory=dict)
    overrides: list[Json] = field(default_factory=list)
    options: Json = field(default_factory=dict)
    transformations: list[Json] = field(default_factory=list)

    def to_json(self, panel_id: int, grid: Json) -> Json:
        """Return the panel's JSON with refIds A, B, ... and a datasource (mixed if queries differ)."""
        sources = {target["datasource"]["uid"] for target in self.targets}
        if len(sources) == 1:
            datasource = self.targets[0]["datasource"]
        else:
            datasource = {"type": "datasource", "uid": "-- Mixed --"}
        targets = [{**target, "refId": chr(ord("A") + index)} for index, target in enumerate(self.targets)]
        return {
            "datasource": datasource,
            "description": self.description,
            "fieldConfig": {"defaults": self.defaults, "overrides": self.overrides},
            "gridPos": grid,
            "id": panel_id,
            "options": self.options,
            "targets": targets,
            "title": self.title,
            "transformations": self.transformations,
            "type": self.kind,
        }


def reduce_options(*, all_values: bool = False) -> Json:
    """Show the last value (instant queries give one), or every row of a table."""
    return {"calcs": ["lastNotNull"], "fields": "", "values": all_values}


def stat(
    title: str, description: str, target: Json, *, width: int = 8, height: int = 5, **defaults: Any
) -> Panel:
    """A big number coloured by its thresholds."""
    defaults = {"color": {"mode": "thresholds"}, **defaults}
    options = {
        "colorMode": "background",
        "graphMode": "none",
        "justifyMode": "center",
        "orientation": "auto",
        "reduceOptions": reduce_options(),
        "textMode": "value",
    }
    return Panel("stat", title, description, [target], width, height, defaults, options=options)


def bar_gauge(
    title: str, description: str, targets: list[Json], *, width: int, height: int, **defaults: Any
) -> Panel:
    """Horizontal bars, one per series, coloured by thresholds."""
    defaults = {"color": {"mode": "thresholds"}, **defaults}
    options = {
        "displayMode": "basic",
        "minVizHeight": 16,
        "namePlacement": "left",
        "orientation": "horizontal",
        "reduceOptions": reduce_options(),
        "showUnfilled": True,
        "valueMode": "color",
    }
    return Panel("bargauge", title, description, targets, width, height, defaults, options=options)


def table(
    title: str, description: str, targets: list[Json], *, width: int = 24, height: int = 9, **defaults: Any
) -> Panel:
    """A table; Prometheus instant queries are merged into one row per series."""
    options = {
        "cellHeight": "sm",
        "footer": {"show": False, "reducer": ["sum"], "fields": ""},
        "showHeader": True,
    }
    return Panel("table", title, description, targets, width, height, defaults, options=options)


def time_series(
    title: str, description: str, targets: list[Json], *, width: int = 24, height: int = 9, **defaults: Any
) -> Panel:
    """Lines over time."""
    defaults = {
        "custom": {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 0, "showPoints": "always"},
        **defaults,
    }
    options = {
        "legend": {"displayMode": "table", "placement": "right", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "none"},
    }
    return Panel("timeseries", title, description, targets, width, height, defaults, options=options)


def text(title: str, content: str, *, width: int = 24, height: int = 3) -> Panel:
    """A markdown note."""
    return Panel(
        "text", title, "", [], width, height, options={"content": content.strip(), "mode": "markdown"}
    )


def organize(
    *, hide: tuple[str, ...] = (), rename: dict[str, str] | None = None, order: tuple[str, ...] = ()
) -> Json:
    """Return an `organize` transformation: hide, rename and order table columns."""
    return {
        "id": "organize",
        "options": {
            "excludeByName": dict.fromkeys(hide, True),
            "indexByName": {name: index for index, name in enumerate(order)},
            "renameByName": rename or {},
        },
    }


def value_mappings(texts: dict[str, tuple[str, str | None]]) -> list[Json]:
    """Map raw values (ids, 0/1) to Vietnamese text and an optional colour."""
    options = {}
    for index, (value, (shown, color)) in enumerate(texts.items()):
        options[value] = {"index": index, "text": shown, **({"color": color} if color else {})}
    return [{"type": "value", "options": options}]


def override(name: str, **properties: Any) -> Json:
    """Return a field override by field name."""
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": key.replace("__", "."), "value": value} for key, value in properties.items()],
    }


def variable_sql(name: str, label: str, query: str) -> Json:
    """A single-value variable filled by SQL returning __value and __text."""
    return {
        "current": {},
        "datasource": POSTGRES,
        "definition": query,
        "hide": 0,
        "includeAll": False,
        "label": label,
        "multi": False,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 1,
        "skipUrlSync": False,
        "sort": 0,
        "type": "query",
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    rows: list[list[Panel]],
    *,
    time_from: str,
    refresh: str,
    variables: list[Json] | None = None,
    annotations: list[Json] | None = None,
) -> Json:
    """Lay the panels out line by line and return the dashboard JSON."""
    layout, panels = Layout(), list[Json]()
    for row in rows:
        for panel in row:
            panels.append(panel.to_json(len(panels) + 1, layout.place(panel.width, panel.height)))
        layout.newline()
    builtin = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    return {
        "annotations": {"list": [builtin, *(annotations or [])]},
        "description": description,
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [
            {
                "asDropdown": False,
                "icon": "external link",
                "includeVars": False,
                "keepTime": True,
                "tags": [TAG],
                "targetBlank": False,
                "title": "Bảng khác / other boards",
                "type": "dashboards",
            }
        ],
        "panels": panels,
        "refresh": refresh,
        "schemaVersion": SCHEMA_VERSION,
        "tags": [TAG],
        "templating": {"list": variables or []},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "Asia/Ho_Chi_Minh",
        "title": title,
        "uid": uid,
        "weekStart": "monday",
    }
