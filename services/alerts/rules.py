"""Alert rules (pure): classify a unit's KPI counts for a period, then apply hysteresis.

States (alerting-design.md sections 2-3), for a ratio KPI with target t, n events of which `bad`
failed, elapsed share f of the period:

- N̂ (expected period total) = n / f (pace so far); budget B = floor((1 - t) * N̂) failures allowed,
  reported as "còn được phép trễ B - bad hồ sơ"; forecast = expected period-end ratio, and
  P(meet) = beta-binomial predictive probability of ending within the budget (stats.py).
- sufficient = n >= min_samples and B >= 1, i.e. (1 - t) * N̂ >= 1: below that one failure already
  breaches, so the rate says nothing and nobody is paged for it (1 late file out of 3).
- breach certain = sufficient and bad > budget of N̂_max = n + 2 * (N̂ - n) (the rest of the period at
  twice the pace); once a period has ended N̂_max = n, so any final breach is certain.
- below_target: breach certain, or sufficient and the Wilson 95 % upper bound misses the target;
  at_risk: the ratio misses the target without that confidence (small samples included), or
  P(meet) < 0.5; insufficient_data: no events, or an insufficient sample that meets the target;
  ok otherwise.
- Zero-tolerance KPIs (counts such as overdue_open, and 100 % targets such as apology_coverage) have
  no budget: below_target at the first offence, without hysteresis, and are notified per offending
  case in the daily digest, never paged.

Hysteresis (`advance`): enter below_target at once on a certain breach, else after two consecutive
below evaluations of changed counts (a timer re-evaluation keeps the streak but does not extend it) or
once the breach has persisted `confirm_seconds` (Alertmanager's `for:`); meanwhile the state shows
at_risk. Leave only when clearly recovered (Wilson lower bound meets the target, or the ratio is at
least t + margin, margin capped at half the budget, or the period has ended meeting the target) for
two consecutive evaluations of changed counts or for `resolve_seconds` (`keep_firing_for:`).
"""

from dataclasses import asdict, dataclass
from typing import Any

from services.alerts.stats import (
    expected_final_ratio,
    failure_budget,
    probability_of_meeting,
    wilson_interval,
)
from shared.events import ALERT_STATES
from shared.targets import Target

STATES = ALERT_STATES
OK, AT_RISK, BELOW, INSUFFICIENT = STATES


@dataclass(frozen=True, slots=True)
class Policy:
    """Tunable thresholds (AlertsSettings)."""

    min_samples: int = 20
    recovery_margin: float = 0.005
    confirm_seconds: float = 600.0
    resolve_seconds: float = 1800.0


@dataclass(frozen=True, slots=True)
class Figures:
    """Everything a message or the API shows about one evaluation."""

    numerator: int
    denominator: int
    ratio: float | None
    target: float
    comparator: str
    expected_total: int
    budget: int
    failures: int
    failures_allowed: int  # budget - failures; negative when over the budget
    forecast_ratio: float | None
    p_meet: float | None
    wilson_low: float | None
    wilson_high: float | None
    zero_tolerance: bool
    sufficient: bool
    certain_breach: bool
    period_ended: bool

    def as_json(self) -> dict[str, Any]:
        """Return the figures as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The raw state of one evaluation and whether it shows a clear recovery."""

    state: str
    figures: Figures
    recovered: bool


@dataclass(frozen=True, slots=True)
class Memory:
    """What hysteresis remembers per (unit, KPI, period): the shown state and a pending streak."""

    state: str
    streak: int = 0
    streak_since: float | None = None


def is_zero_tolerance(target: Target) -> bool:
    """Return True for a count ceiling or a 100 % target: every offence is a breach."""
    return target.comparator == "<=" or target.value >= 1.0


def evaluate(
    counts: tuple[int, int], target: Target, *, is_count: bool, elapsed: float, policy: Policy
) -> Verdict:
    """Classify one KPI's period-to-date counts (elapsed: share of the period gone, 1.0 when ended)."""
    if is_count:
        return evaluate_count(counts[0], target)
    good, total = counts
    bad = total - good
    ended = elapsed >= 1.0
    expected = total if ended else max(total, round(total / elapsed))
    budget = failure_budget(target.value, target.comparator, expected)
    sufficient = total >= policy.min_samples and budget >= 1
    plausible_max = expected + (expected - total)
    certain = sufficient and bad > failure_budget(target.value, target.comparator, plausible_max)
    low, high = wilson_interval(good, total)
    figures = Figures(
        numerator=good,
        denominator=total,
        ratio=good / total if total else None,
        target=target.value,
        comparator=target.comparator,
        expected_total=expected,
        budget=budget,
        failures=bad,
        failures_allowed=budget - bad,
        forecast_ratio=expected_final_ratio(good, total, expected),
        p_meet=probability_of_meeting(good, total, expected, target.value, target.comparator)
        if total
        else None,
        wilson_low=low if total else None,
        wilson_high=high if total else None,
        zero_tolerance=is_zero_tolerance(target),
        sufficient=sufficient,
        certain_breach=certain,
        period_ended=ended,
    )
    state = classify(figures, target)
    return Verdict(state, figures, state != BELOW and clearly_recovered(figures, target, policy))


def evaluate_count(count: int, target: Target) -> Verdict:
    """Classify a count KPI (overdue_open): any count above the ceiling is a breach."""
    allowed = int(target.value)
    breach = not target.met_by(count)
    figures = Figures(
        numerator=count,
        denominator=0,
        ratio=None,
        target=target.value,
        comparator=target.comparator,
        expected_total=count,
        budget=allowed,
        failures=count,
        failures_allowed=allowed - count,
        forecast_ratio=None,
        p_meet=None,
        wilson_low=None,
        wilson_high=None,
        zero_tolerance=True,
        sufficient=True,
        certain_breach=breach,
        period_ended=False,
    )
    return Verdict(BELOW if breach else OK, figures, not breach)


def classify(figures: Figures, target: Target) -> str:
    """Return the raw state of a ratio KPI's figures."""
    if figures.ratio is None or figures.wilson_high is None:
        return INSUFFICIENT
    if figures.zero_tolerance:
        return OK if target.met_by(figures.ratio) else BELOW
    if figures.certain_breach or (figures.sufficient and not target.met_by(figures.wilson_high)):
        return BELOW
    if not target.met_by(figures.ratio):
        return AT_RISK
    if not figures.sufficient:
        return INSUFFICIENT
    if figures.p_meet is not None and figures.p_meet < 0.5:
        return AT_RISK
    return OK


def clearly_recovered(figures: Figures, target: Target, policy: Policy) -> bool:
    """Return True if the figures are clearly back on target (the condition to leave below_target)."""
    if figures.ratio is None or figures.wilson_low is None:
        return True  # the counts were withdrawn: nothing is below target any more
    margin = min(policy.recovery_margin, (1 - target.value) / 2)
    return (
        target.met_by(figures.wilson_low)
        or figures.ratio >= target.value + margin
        or (figures.period_ended and target.met_by(figures.ratio))
    )


def advance(
    previous: Memory | None, verdict: Verdict, *, now: float, new_data: bool, policy: Policy
) -> Memory:
    """Return the next hysteresis memory after an evaluation (new_data: the counts changed)."""
    if verdict.figures.zero_tolerance:
        return Memory(verdict.state)
    if previous is None or previous.state != BELOW:
        if verdict.state != BELOW:
            return Memory(verdict.state)
        if verdict.figures.certain_breach:
            return Memory(BELOW)
        streak, since = extend_streak(previous, now, new_data)
        if streak >= 2 or now - since >= policy.confirm_seconds:
            return Memory(BELOW)
        return Memory(AT_RISK, streak, since)
    if not verdict.recovered:
        return Memory(BELOW)
    streak, since = extend_streak(previous, now, new_data)
    if streak >= 2 or now - since >= policy.resolve_seconds:
        return Memory(verdict.state)
    return Memory(BELOW, streak, since)


def extend_streak(previous: Memory | None, now: float, new_data: bool) -> tuple[int, float]:
    """Start a streak, or extend the running one by one if the counts changed."""
    if previous is None or previous.streak == 0 or previous.streak_since is None:
        return 1, now
    return previous.streak + (1 if new_data else 0), previous.streak_since


ZERO_TOLERANCE_KPIS = ("overdue_open", "apology_coverage")  # what a digest (kpi None) is about


@dataclass(frozen=True, slots=True)
class Silence:
    """A maintenance silence: None matches every unit / KPI."""

    unit_id: str | None
    kpi: str | None
    starts_at: float
    ends_at: float


def silenced_until(silences: list[Silence], *, unit_id: str, kpi: str | None, now: float) -> float | None:
    """Return when the last active silence matching a notice ends, or None if it is not silenced."""
    ends = [
        silence.ends_at
        for silence in silences
        if silence.starts_at <= now < silence.ends_at
        and silence.unit_id in (None, unit_id)
        and (
            silence.kpi is None or silence.kpi == kpi or (kpi is None and silence.kpi in ZERO_TOLERANCE_KPIS)
        )
    ]
    return max(ends) if ends else None
