"""The statistics losslab draws conclusions with (scipy): intervals over seeds, paired and
unpaired differences, Holm's correction for a family of tests, equivalence (TOST) and power.

The method (docs/study.md, "How it decides"): a difference is a finding only with its spread; runs
paired by seed get a paired test; a table of tests is a family (Holm); equality is claimed only
by an equivalence test with a margin fixed before the run, otherwise the word is "inconclusive",
with the smallest difference the design could have detected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

__all__ = [
    "ALPHA",
    "POWER",
    "decide",
    "detectable_difference",
    "holm",
    "paired",
    "power",
    "seeds_to_decide",
    "summarize",
    "tost",
    "tost_power",
    "welch",
]

ALPHA = 0.05  # two-sided level of every test, before Holm's adjustment
POWER = 0.8  # the power the detectable difference and the seeds needed are computed for


def summarize(values: Sequence[float], confidence: float = 0.95) -> dict[str, float | int | None]:
    """n, mean, sample standard deviation and the two-sided Student-t confidence interval of
    the mean (``scipy.stats.t``). With n = 1 there is no spread: std and interval are None."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    out: dict[str, float | int | None] = {"n": n, "mean": float(x.mean()) if n else None}
    out.update(std=None, ci_low=None, ci_high=None)
    if n >= 2:
        std, mean = float(x.std(ddof=1)), float(x.mean())
        low = high = mean  # identical values: the interval is the point itself
        if std > 0:
            low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=stats.sem(x))
        out.update(std=std, ci_low=float(low), ci_high=float(high))
    return out


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """mean(a) - mean(b), its 95% confidence interval and p-value by Welch's t-test (unequal
    variances): for samples that are not paired."""
    test = stats.ttest_ind(a, b, equal_var=False)
    diff = float(np.mean(a) - np.mean(b))
    if not math.isfinite(test.statistic):  # both constant: no spread to test against
        return {"diff": diff, "ci_low": diff, "ci_high": diff, "p": 0.0 if diff else 1.0}
    ci = test.confidence_interval(0.95)
    return {
        "diff": diff,
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "p": float(test.pvalue),
    }


def _differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """``a - b`` of two equally long sequences of at least 2 pairs: one pair has no spread to
    test against, and sequences of different lengths are not paired."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(
            f"a paired test needs two sequences of equal length, at least 2 pairs; got lengths "
            f"{x.size} and {y.size}"
        )
    return x - y


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """The paired comparison of ``a`` and ``b`` (``a[i]`` and ``b[i]`` share a seed): the mean of
    the differences ``a - b``, their sample standard deviation, the 95% confidence interval of
    the mean and the two-sided p-value of the paired t-test (``scipy.stats.ttest_rel``).
    Differences that are all the same: the limit of the test (p = 0, or 1 when they are 0).

    Raises:
        ValueError: fewer than 2 pairs, or ``a`` and ``b`` of different lengths.
    """
    d = _differences(a, b)
    n, diff = len(d), float(d.mean())
    sd = float(d.std(ddof=1))
    if not sd > 0:  # constant differences: no spread to test against
        return {
            "n": n,
            "diff": diff,
            "sd": sd,
            "ci_low": diff,
            "ci_high": diff,
            "p": 0.0 if diff else 1.0,
        }
    test = stats.ttest_rel(a, b)
    ci = test.confidence_interval(0.95)
    return {
        "n": n,
        "diff": diff,
        "sd": sd,
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "p": float(test.pvalue),
    }


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values of a family of tests (step-down: the k-th smallest
    p-value times ``m - k + 1``, kept non-decreasing, at most 1). Reject where adjusted < alpha.

    Example:
        >>> [round(p, 6) for p in holm([0.01, 0.04, 0.03, 0.005])]
        [0.03, 0.06, 0.06, 0.02]
    """
    m = len(pvalues)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running  # unrounded: a p of 1e-20 stays 2e-20 in a family of two
    return adjusted


def tost(differences: Sequence[float], margin: float) -> float:
    """p-value of the paired two one-sided tests (TOST) for equivalence within ``±margin``:
    the larger p of H0 ``mean <= -margin`` and H0 ``mean >= +margin``; below alpha, the mean
    difference lies inside the margin. Differences that are all the same: the limit of the
    tests (0 inside the margin, 1 outside).

    Raises:
        ValueError: ``margin`` not > 0, or fewer than 2 differences (one has no spread: it can
            never show equivalence).
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin!r}")
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(f"TOST needs at least 2 paired differences, got {d.size}")
    if not d.std(ddof=1) > 0:
        return 0.0 if abs(float(d.mean())) < margin else 1.0
    lower = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, margin, alternative="less").pvalue
    return float(max(lower, upper))


def power(delta: float, sd: float, n: int, alpha: float) -> float:
    """Power of the two-sided paired t-test with ``n`` pairs for a true mean difference
    ``delta`` when the differences have standard deviation ``sd`` (noncentral t); differences
    with no spread: 1 for a difference, else alpha."""
    if not sd > 0:
        return 1.0 if delta else alpha
    df, nc = n - 1, abs(delta) * math.sqrt(n) / sd
    crit = stats.t.ppf(1 - alpha / 2, df)
    # P(T < -crit) written as the upper tail of -T: scipy's nct.cdf far below a large
    # noncentrality returns NaN (scipy 1.17: nct.cdf(-2.78, 4, 30)), nct.sf does not
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def detectable_difference(sd: float, n: int, alpha: float = ALPHA, wanted: float = POWER) -> float:
    """The smallest true difference the paired t-test with ``n`` pairs detects with power
    ``wanted`` at level ``alpha`` (two-sided), when the differences have standard deviation
    ``sd``."""
    if n < 2 or not sd > 0:
        return math.nan
    high = sd
    while power(high, sd, n, alpha) < wanted:
        high *= 2
    return float(optimize.brentq(lambda x: power(x, sd, n, alpha) - wanted, 0.0, high))


def tost_power(delta: float, sd: float, n: int, margin: float, alpha: float) -> float:
    """Approximate power of the paired TOST (both one-sided tests must reject; the bound
    ``P(A) + P(B) - 1`` of the two noncentral t tails); no spread: 1 inside the margin."""
    if not sd > 0:
        return 1.0 if abs(delta) < margin else 0.0
    df, scale = n - 1, math.sqrt(n) / sd
    crit = stats.t.ppf(1 - alpha, df)
    lower = stats.nct.sf(crit, df, (delta + margin) * scale)
    upper = stats.nct.sf(crit, df, (margin - delta) * scale)  # P(T < -crit), as in power
    return max(0.0, float(lower + upper - 1))


def seeds_to_decide(
    diff: float, sd: float, margin: float, alpha: float = ALPHA, wanted: float = POWER
) -> int | None:
    """How many seeds (pairs) would decide a comparison that came out inconclusive, if the true
    difference were the observed one and the spread stayed: the fewest for which either the
    paired t-test (a difference) or TOST (equivalence within ``±margin``) reaches ``power``.
    None: no number up to 10,000 would."""
    if not sd > 0:
        return None
    for n in range(2, 10_001):
        if (diff and power(diff, sd, n, alpha) >= wanted) or (
            abs(diff) < margin and tost_power(diff, sd, n, margin, alpha) >= wanted
        ):
            return n
    return None


def decide(
    diff: float,
    p_adjusted: float,
    tost_adjusted: float,
    names: tuple[str, str],
    margin: float,
    higher: bool = True,
    word: str = "{} better",
    replication: tuple[float, float] = (1.0, 1.0),
) -> str:
    """The verdict's one word for ``names[0] - names[1] = diff``: equivalent within the margin
    (TOST, Holm-adjusted p below alpha) first, else ``word`` of the better one (paired test,
    adjusted; ``higher``: a larger value is better), else inconclusive (``margin`` in the
    metric's units, 0.005 = 0.5 points). A difference both significant and inside the margin
    reads "equivalent": the margin, fixed before the run, says what size of difference matters.

    A word is stated only when it would come out again: ``replication`` holds the power of the
    paired test and of TOST at the observed difference and spread (:func:`power`,
    :func:`tost_power`, at the strictest Holm level), the chance that the same design on new
    seeds reaches the word again if the observed difference is the true one (another machine's
    rounding moves the runs less than new seeds do). Below :data:`POWER` a significant result
    is "inconclusive": a barely significant one is a coin flip for its replication."""
    difference, equivalence = replication
    if tost_adjusted < ALPHA and equivalence >= POWER:
        return f"equivalent within ±{100 * margin:g} points"
    if p_adjusted < ALPHA and difference >= POWER:
        return word.format(names[0] if (diff > 0) == higher else names[1])
    return "inconclusive"
