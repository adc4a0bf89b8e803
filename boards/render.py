"""Draw a board's panel grid (positions, titles, kinds, thresholds) from its JSON, for the README."""

import re
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

COLUMN, ROW, MARGIN, HEADER = 48, 30, 20, 64
FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
)
KINDS = {
    "stat": "Số liệu / stat",
    "bargauge": "Thanh / bar gauge",
    "table": "Bảng / table",
    "timeseries": "Biểu đồ theo thời gian / time series",
    "text": "Ghi chú / text",
}
COLORS = {"red": "#d44a3a", "green": "#56a64b", "blue": "#3274d9", "yellow": "#e0b400"}
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def font(size: int, *, bold: bool = False) -> Font:
    """DejaVu Sans (it has every Vietnamese letter), else Pillow's own font."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in FONT_DIRS:
        if (folder / name).exists():
            return ImageFont.truetype(str(folder / name), size)
    return ImageFont.load_default(size)


def wrap(draw: ImageDraw.ImageDraw, text: str, width: int, face: Font, lines: int) -> list[str]:
    """Break text into at most `lines` lines that fit `width`, with an ellipsis if cut."""
    out: list[str] = []
    for word in text.split():
        if out and draw.textlength(f"{out[-1]} {word}", font=face) <= width:
            out[-1] = f"{out[-1]} {word}"
        else:
            out.append(word)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1].rstrip(".,") + " …"
    return out


def bound(value: float, unit: str) -> str:
    """A threshold as officials read it; a value just above a round one means "more than"."""
    shown = round(value, 6)
    text = f"{shown * 100:g}%" if unit == "percentunit" else f"{shown:g}"
    return ("> " if shown != value else "≥ ") + text.replace(".", ",")


def threshold_labels(panel: dict[str, Any]) -> list[tuple[str, str]]:
    """(colour, label) per threshold step: "< 98,5%" then "≥ 98,5%"."""
    defaults = panel["fieldConfig"]["defaults"]
    steps = defaults.get("thresholds", {}).get("steps", [])
    unit = defaults.get("unit", "")
    labels = []
    for index, step in enumerate(steps):
        if step["value"] is None:
            following = steps[index + 1]["value"] if index + 1 < len(steps) else None
            text = (
                ""
                if following is None
                else "< " + bound(following, unit).removeprefix("≥ ").removeprefix("> ")
            )
        else:
            text = bound(step["value"], unit)
        labels.append((COLORS.get(step["color"], "#999999"), text))
    return labels


def columns(panel: dict[str, Any]) -> list[str]:
    """Table columns as the organize transformation names and orders them."""
    for step in panel.get("transformations", []):
        if step["id"] == "organize":
            order = step["options"]["indexByName"]
            rename = step["options"]["renameByName"]
            return [rename.get(name, name) for name in sorted(order, key=order.__getitem__)]
    raw = " ".join(target.get("rawSql", "") for target in panel["targets"])
    return re.findall(r'AS "([^"]+)"', raw)  # SQL panels name their columns in Vietnamese


def override_label(item: dict[str, Any], panel: dict[str, Any]) -> str:
    """A series' display name, with its own target when the override sets thresholds."""
    values = {prop["id"]: prop["value"] for prop in item["properties"]}
    name = str(values.get("displayName", item["matcher"]["options"]))
    if "thresholds" not in values:
        return name
    own = {
        **panel,
        "fieldConfig": {"defaults": {**panel["fieldConfig"]["defaults"], "thresholds": values["thresholds"]}},
    }
    return f"{name} ({threshold_labels(own)[-1][1]})" if len(values["thresholds"]["steps"]) > 1 else name


def sketch(draw: ImageDraw.ImageDraw, panel: dict[str, Any], box: tuple[int, int, int, int]) -> None:
    """Draw a hint of the visualisation: threshold colours, bars, lines or table columns."""
    left, top, right, bottom = box
    small, kind = font(11), panel["type"]
    if kind == "stat":
        labels = threshold_labels(panel) or [("#bbbbbb", "")]
        width = (right - left) // len(labels)
        for index, (colour, text) in enumerate(labels):
            x = left + index * width
            draw.rectangle((x, top, x + width - 4, bottom), fill=colour)
            draw.text((x + 6, bottom - 16), text, fill="white", font=small)
    elif kind == "bargauge":
        names = [t.get("legendFormat", "") for t in panel["targets"]]
        if len(names) == 1:  # one query, one bar per series: the overrides name them (and may set thresholds)
            names = [override_label(item, panel) for item in panel["fieldConfig"]["overrides"]][:6] or names
        count = max(1, min(len(names) if len(names) > 1 else 4, (bottom - top) // 16))
        colour = (threshold_labels(panel) or [("#999999", "")])[-1][0]
        for index in range(count):
            y = top + index * (bottom - top) // count
            name = names[index] if len(names) > 1 else ""
            draw.text((left, y), name[:38], fill="#444444", font=small)
            start = left + (right - left) * 2 // 5 if name else left
            draw.rectangle(
                (start, y + 3, start + (right - start) * (count - index) // (count + 1), y + 11), fill=colour
            )
    elif kind == "timeseries":
        points = [
            (left + (right - left) * i // 6, bottom - (bottom - top) * (2 + (i * 3) % 5) // 8)
            for i in range(7)
        ]
        draw.line(points, fill=COLORS["blue"], width=2)
    elif kind == "table":
        names = columns(panel)
        width = (right - left) // max(1, len(names))
        for index, name in enumerate(names):
            draw.text((left + index * width, top), name[: max(4, width // 7)], fill="#444444", font=small)
        for y in range(top + 16, bottom, 12):
            draw.line((left, y, right, y), fill="#dddddd")


def render_board(board: dict[str, Any]) -> Image.Image:
    """Return the picture of a board: one box per panel where Grafana puts it, with its title and kind."""
    panels = board["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    image = Image.new("RGB", (2 * MARGIN + 24 * COLUMN, HEADER + MARGIN + rows * ROW), "#f4f5f5")
    draw = ImageDraw.Draw(image)
    draw.text(
        (MARGIN, 14), f"{board['title']}  (uid {board['uid']})", fill="#1f1f20", font=font(22, bold=True)
    )
    variables = ", ".join(f"{v['label']} (${v['name']})" for v in board["templating"]["list"])
    subtitle = f"Biến / variables: {variables}" if variables else board["description"][:150]
    draw.text((MARGIN, 42), subtitle, fill="#555555", font=font(12))
    title_font, kind_font = font(13, bold=True), font(11)
    for panel in panels:
        grid = panel["gridPos"]
        left = MARGIN + grid["x"] * COLUMN + 3
        top = HEADER + grid["y"] * ROW + 3
        right, bottom = left + grid["w"] * COLUMN - 6, top + grid["h"] * ROW - 6
        draw.rounded_rectangle((left, top, right, bottom), radius=6, fill="white", outline="#c7d0d9")
        title = re.sub(r"\$\{(\w+)(?::\w+)?\}", r"‹\1›", panel["title"])  # a variable's value goes there
        lines = wrap(draw, title, right - left - 16, title_font, 2 if grid["h"] > 3 else 1)
        for index, line in enumerate(lines):
            draw.text((left + 8, top + 6 + index * 16), line, fill="#1f1f20", font=title_font)
        text_bottom = top + 8 + len(lines) * 16
        draw.text(
            (left + 8, text_bottom), KINDS.get(panel["type"], panel["type"]), fill="#6e7681", font=kind_font
        )
        if bottom - text_bottom > 34:
            sketch(draw, panel, (left + 10, text_bottom + 18, right - 10, bottom - 10))
    return image
