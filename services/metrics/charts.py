"""Server-made SVG charts (pure): the geometry of a monthly trend line against its target.

The template draws the SVG from these numbers (autoescaped like everything else); no script runs.
"""

from dataclasses import dataclass

WIDTH, HEIGHT = 360, 150
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 24


@dataclass(frozen=True, slots=True)
class Point:
    """A month's value placed on the chart."""

    x: float
    y: float
    label: str
    value_text: str


@dataclass(frozen=True, slots=True)
class TrendChart:
    """A line of monthly ratios (None where a month has no counts) and a dashed target line."""

    title: str
    width: int
    height: int
    points: list[Point]
    segments: list[str]  # SVG polyline point lists, broken where a month has no counts
    target_y: float | None
    ticks: list[tuple[float, str]]  # (y, label) of the value axis
    x_labels: list[Point]


def scale(value: float, low: float, high: float) -> float:
    """Return the y coordinate of a ratio between low (bottom) and high (top)."""
    span = high - low or 1.0
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - (value - low) / span)


def value_range(values: list[float], target: float | None) -> tuple[float, float]:
    """Return the axis range: the values and the target, with a margin, within 0..1."""
    seen = values + ([target] if target is not None else [])
    if not seen:
        return 0.0, 1.0
    low, high = min(seen), max(seen)
    margin = max((high - low) * 0.15, 0.01)
    return max(0.0, low - margin), min(1.0, high + margin)


def trend_chart(
    title: str, months: list[tuple[str, float | None, str]], target: float | None, fmt: "PercentFormat"
) -> TrendChart:
    """Lay out (month label, ratio, value text) points left to right."""
    values = [value for _, value, _ in months if value is not None]
    low, high = value_range(values, target)
    step = (WIDTH - LEFT - RIGHT) / max(len(months) - 1, 1)
    points: list[Point] = []
    segments: list[str] = []
    current: list[str] = []
    labels: list[Point] = []
    for index, (label, value, text) in enumerate(months):
        x = LEFT + index * step
        labels.append(Point(x, HEIGHT - 6, label, text))
        if value is None:
            if current:
                segments.append(" ".join(current))
            current = []
            continue
        point = Point(x, scale(value, low, high), label, text)
        points.append(point)
        current.append(f"{point.x:.1f},{point.y:.1f}")
    if current:
        segments.append(" ".join(current))
    ticks = [(scale(v, low, high), fmt(v)) for v in (low, (low + high) / 2, high)]
    return TrendChart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        points=points,
        segments=segments,
        target_y=scale(target, low, high) if target is not None else None,
        ticks=ticks,
        x_labels=labels[:: max(1, len(labels) // 6)],
    )


class PercentFormat:
    """Format an axis value as a percentage in a page's language."""

    def __init__(self, decimal_comma: bool) -> None:
        self.decimal_comma = decimal_comma

    def __call__(self, value: float) -> str:
        text = f"{value * 100:.1f}%"
        return text.replace(".", ",") if self.decimal_comma else text
