"""Small-sample statistics of alerting (pure): Wilson interval, failure budgets, beta-binomial forecast.

Worked numbers: alerting-design.md section 2 (checked in tests/unit/test_alert_rules.py). scipy is not
available, so the beta-binomial is summed term by term with `math.lgamma` over the shorter tail, and
approximated by a normal distribution (continuity-corrected) when both tails exceed `EXACT_TERMS`.
"""

import math

Z95 = 1.959964
JEFFREYS = 0.5  # Beta(0.5, 0.5) prior: a0 = b0
EXACT_TERMS = 5000
EPSILON = 1e-9  # (1 - 0.9) * 10 is 0.9999999999999998 in floating point


def wilson_interval(good: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Return the Wilson score interval of good/total ((0, 1) when total is 0)."""
    if total <= 0:
        return 0.0, 1.0
    p = good / total
    z2 = z * z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def failure_budget(target: float, comparator: str, total: float) -> int:
    """Return how many failures `total` events may contain and still meet the target."""
    slack = (1 - target) * total
    if comparator == ">":  # ratio > t  <=>  failures < (1 - t) * total
        return max(0, math.ceil(slack - EPSILON) - 1)
    return max(0, math.floor(slack + EPSILON))


def _log_pmf(i: int, m: int, a: float, b: float) -> float:
    """Return log P(X = i) for X ~ BetaBinomial(m, a, b)."""
    log_choose = math.lgamma(m + 1) - math.lgamma(i + 1) - math.lgamma(m - i + 1)
    log_beta_ratio = (
        math.lgamma(i + a)
        + math.lgamma(m - i + b)
        - math.lgamma(m + a + b)
        - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    )
    return log_choose + log_beta_ratio


def _normal_cdf(k: int, m: int, a: float, b: float) -> float:
    """Approximate P(X <= k) for a large BetaBinomial(m, a, b) (continuity-corrected)."""
    mean = m * a / (a + b)
    variance = m * a * b * (a + b + m) / ((a + b) ** 2 * (a + b + 1))
    return 0.5 * (1 + math.erf((k + 0.5 - mean) / math.sqrt(2 * variance)))


def beta_binomial_cdf(k: int, m: int, a: float, b: float) -> float:
    """Return P(X <= k) for X ~ BetaBinomial(m, a, b)."""
    if k < 0:
        return 0.0
    if k >= m:
        return 1.0
    if k + 1 <= m - k:
        terms = range(k + 1) if k + 1 <= EXACT_TERMS else None
        lower = True
    else:
        terms = range(k + 1, m + 1) if m - k <= EXACT_TERMS else None
        lower = False
    if terms is None:
        return _normal_cdf(k, m, a, b)
    tail = math.fsum(math.exp(_log_pmf(i, m, a, b)) for i in terms)
    return min(1.0, max(0.0, tail if lower else 1.0 - tail))


def probability_of_meeting(
    good: int, total: int, expected_total: int, target: float, comparator: str
) -> float:
    """Return P(the period ends meeting the target): beta-binomial predictive over the remaining events.

    Future failures among the `expected_total - total` remaining events follow
    BetaBinomial(m, b0 + bad, a0 + good) (Jeffreys prior); the target is met if the failures so far
    plus the future ones fit the budget of `expected_total` events.
    """
    bad = total - good
    remaining = max(0, expected_total - total)
    allowed = failure_budget(target, comparator, max(expected_total, total)) - bad
    return beta_binomial_cdf(allowed, remaining, JEFFREYS + bad, JEFFREYS + good)


def expected_final_ratio(good: int, total: int, expected_total: int) -> float | None:
    """Return the expected period-end ratio: the posterior mean rate applied to the remaining events."""
    final = max(expected_total, total)
    if final <= 0:
        return None
    rate = (good + JEFFREYS) / (total + 2 * JEFFREYS)
    return (good + rate * (final - total)) / final
