"""KPI targets from deploy/targets.yaml (data, shared by metrics and alerts): validated on load, reloaded on change."""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.kpis import KPI_BY_ID

TARGETS_PATH = Path(__file__).resolve().parents[1] / "deploy" / "targets.yaml"
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]


class TargetRule(BaseModel):
    """One rule: a KPI's threshold, optionally only for a level, a unit or a year."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kpi: str
    level: str | None = None
    unit: str | None = None
    year: int | None = None
    min: Ratio | None = None
    above: Ratio | None = None
    max: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def check_rule(self) -> "TargetRule":
        """Known KPI, exactly one comparator, and `max` only for counts."""
        kpi = KPI_BY_ID.get(self.kpi)
        if kpi is None:
            raise ValueError(f"unknown KPI {self.kpi!r}")
        comparators = [c for c in (self.min, self.above, self.max) if c is not None]
        if len(comparators) != 1:
            raise ValueError(f"{self.kpi}: give exactly one of min, above, max")
        if (self.max is not None) != kpi.is_count:
            raise ValueError(f"{self.kpi}: use `max` for counts and `min`/`above` for ratios")
        return self

    def specificity(self) -> int:
        """Rank rules: a unit beats a level beats any; a year-specific rule beats an every-year rule."""
        return (4 if self.unit else 0) + (2 if self.level else 0) + (1 if self.year else 0)


class TargetsFile(BaseModel):
    """The whole targets file."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    targets: list[TargetRule]


@dataclass(frozen=True, slots=True)
class Target:
    """The threshold in force for one unit, KPI and year."""

    comparator: str  # ">=", ">" or "<="
    value: float

    def met_by(self, value: float) -> bool:
        """Return True if a ratio (or a count) meets the target."""
        if self.comparator == ">=":
            return value >= self.value - 1e-12
        if self.comparator == ">":
            return value > self.value
        return value <= self.value


class Targets:
    """Targets loaded from a file, reloaded when its modification time changes."""

    def __init__(self, path: Path = TARGETS_PATH) -> None:
        self.path = path
        self.mtime = -1.0
        self.rules: list[TargetRule] = []
        self.reload_if_changed()

    def reload_if_changed(self) -> None:
        """Reload the file if it changed; a broken file keeps the previous targets and raises."""
        mtime = self.path.stat().st_mtime
        if mtime != self.mtime:
            loaded = TargetsFile.model_validate(yaml.safe_load(self.path.read_text(encoding="utf-8")))
            self.rules, self.mtime = loaded.targets, mtime

    def for_unit(self, kpi: str, *, unit_id: str | None, level: str | None, year: int) -> Target | None:
        """Return the target of a KPI for a unit (or a level, or everything), or None if informational."""
        matching = [
            rule
            for rule in self.rules
            if rule.kpi == kpi
            and rule.unit in (None, unit_id)
            and rule.level in (None, level)
            and rule.year in (None, year)
        ]
        if not matching:
            return None
        rule = max(matching, key=TargetRule.specificity)
        if rule.min is not None:
            return Target(">=", rule.min)
        if rule.above is not None:
            return Target(">", rule.above)
        return Target("<=", float(rule.max or 0))
