"""Targets as boards and rules need them: one comparator per KPI, threshold steps, level names (all data)."""

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from shared.kpis import KPIS, LOCAL_TZ
from shared.targets import TARGETS_PATH, Target, Targets

REPO = Path(__file__).resolve().parents[1]
UNITS_DIR = REPO / "deploy" / "units"
COMPARATOR_TEXT = {">=": "≥", ">": ">", "<=": "≤"}


@dataclass(frozen=True, slots=True)
class BoardTargets:
    """The targets a build shows: per KPI its comparator, the province's target and each level's."""

    year: int
    comparators: dict[str, str]  # KPIs without any rule are informational and absent here
    province: dict[str, Target]
    by_level: dict[str, dict[str, Target]]  # level -> KPI -> target, for every level the data names
    level_names: dict[str, str]  # level id -> Vietnamese name, from the registry files (top level first)

    def kpis_with(self, *comparators: str) -> list[str]:
        """Return the KPI ids whose rules use one of the comparators, in catalogue order."""
        return [kpi.id for kpi in KPIS if self.comparators.get(kpi.id) in comparators]


def registry_levels(units_dir: Path = UNITS_DIR) -> dict[str, str]:
    """Return level id -> name from the registry files (the newest file's names and order first)."""
    names: dict[str, str] = {}
    for path in sorted(units_dir.glob("*.yaml"), reverse=True):
        for level in yaml.safe_load(path.read_text(encoding="utf-8")).get("levels", []):
            names.setdefault(str(level["id"]), str(level["name"]))
    return names


def comparators_of(targets: Targets) -> dict[str, str]:
    """Return each KPI's comparator; a KPI whose rules mix comparators cannot be drawn or recorded."""
    found: dict[str, set[str]] = {}
    for rule in targets.rules:
        comparator = ">=" if rule.min is not None else ">" if rule.above is not None else "<="
        found.setdefault(rule.kpi, set()).add(comparator)
    mixed = sorted(kpi for kpi, comparators in found.items() if len(comparators) > 1)
    if mixed:
        raise ValueError(f"targets mix comparators for {mixed}: use one of min/above/max per KPI")
    return {kpi: comparators.pop() for kpi, comparators in found.items()}


def load_board_targets(path: Path = TARGETS_PATH, *, year: int | None = None) -> BoardTargets:
    """Resolve the targets file for a year (default: this year) as shared.targets resolves it."""
    targets = Targets(path)
    year = year or datetime.now(LOCAL_TZ).year
    levels = registry_levels()
    named = {rule.level for rule in targets.rules if rule.level}
    top = next(iter(levels), None)

    def resolved(level: str | None) -> dict[str, Target]:
        found = {kpi.id: targets.for_unit(kpi.id, unit_id=None, level=level, year=year) for kpi in KPIS}
        return {kpi: target for kpi, target in found.items() if target is not None}

    return BoardTargets(
        year=year,
        comparators=comparators_of(targets),
        province=resolved(top),
        by_level={level: resolved(level) for level in sorted(set(levels) | named)},
        level_names=levels,
    )


def threshold_steps(target: Target | None, *, is_count: bool) -> dict[str, Any]:
    """Return Grafana thresholds that turn a value green exactly when it meets the target."""
    if target is None:
        return {"mode": "absolute", "steps": [{"color": "blue", "value": None}]}
    if target.comparator == "<=":  # counts are whole numbers: above the maximum means >= max + 1
        limit = int(target.value) + 1 if is_count else math.nextafter(target.value, math.inf)
        return {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": limit}],
        }
    # Grafana colours a value with the last step whose value is <= it: ">" starts just above the target
    value = target.value if target.comparator == ">=" else math.nextafter(target.value, math.inf)
    return {
        "mode": "absolute",
        "steps": [{"color": "red", "value": None}, {"color": "green", "value": value}],
    }


def target_text(target: Target | None, *, is_count: bool) -> str:
    """Return the target as officials read it: "chỉ tiêu ≥ 98,5%", "chỉ tiêu 0", or "tham khảo"."""
    if target is None:
        return "tham khảo, không có chỉ tiêu"
    if is_count:
        return "chỉ tiêu 0" if target.value == 0 else f"chỉ tiêu ≤ {int(target.value)}"
    percent = f"{target.value * 100:.1f}".rstrip("0").rstrip(".").replace(".", ",")
    return f"chỉ tiêu {COMPARATOR_TEXT[target.comparator]} {percent}%"
