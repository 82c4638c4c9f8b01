"""losslab.read.stats against independent references: scipy's tests, numpy, and values worked out by
hand (the paired t-test, Holm's correction, TOST, the detectable difference and the seeds that
would decide, the one word of a comparison, the mean and confidence interval over seeds)."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from losslab.read.stats import (
    decide,
    detectable_difference,
    holm,
    paired,
    power,
    seeds_to_decide,
    summarize,
    tost,
    tost_power,
    welch,
)

# -- summarize ----------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[0.91, 0.93, 0.92, 0.95, 0.90], [0.5, 0.7], [0.8, 0.81, 0.8]])
def test_summarize_equals_numpy_and_the_student_t_interval(values):
    s = summarize(values)
    x = np.array(values)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    assert s["n"] == len(x)
    assert s["mean"] == pytest.approx(x.mean(), abs=1e-15)
    assert s["std"] == pytest.approx(x.std(ddof=1), rel=1e-12)
    assert s["ci_low"] == pytest.approx(x.mean() - half, rel=1e-12)
    assert s["ci_high"] == pytest.approx(x.mean() + half, rel=1e-12)


def test_summarize_by_hand_for_two_values():
    # mean 0.6, sd = |0.7 - 0.5| / sqrt(2), half-width t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.1
    s = summarize([0.5, 0.7])
    assert s["std"] == pytest.approx(0.2 / math.sqrt(2))
    assert s["ci_high"] - s["mean"] == pytest.approx(12.7062047 * 0.1, rel=1e-7)


def test_summarize_gives_a_point_interval_for_identical_values_and_nothing_for_none():
    assert summarize([0.5, 0.5]) == {"n": 2, "mean": 0.5, "std": 0.0, "ci_low": 0.5, "ci_high": 0.5}
    assert summarize([0.93]) == {"n": 1, "mean": 0.93, "std": None, "ci_low": None, "ci_high": None}
    empty = {"n": 0, "mean": None, "std": None, "ci_low": None, "ci_high": None}
    assert summarize([math.nan, None]) == empty
    assert summarize([]) == empty
    assert summarize([0.5, None, 0.7, math.inf]) == summarize([0.5, 0.7])  # non-numbers skipped


# -- the paired test and Welch's --------------------------------------------------------------

PAIRS = [
    ([0.961, 0.958, 0.963, 0.960, 0.959], [0.955, 0.957, 0.951, 0.956, 0.950]),
    ([0.80, 0.82, 0.79], [0.81, 0.80, 0.80]),
    ([0.5, 0.6], [0.45, 0.62]),
]


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_paired_equals_scipy_ttest_rel_and_the_hand_computation(a, b):
    r = paired(a, b)
    reference = stats.ttest_rel(a, b)
    ci = reference.confidence_interval(0.95)
    assert r["p"] == pytest.approx(reference.pvalue, rel=1e-12)
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    # by hand: the one-sample t on the differences
    d = np.subtract(a, b)
    n, mean, sd = len(d), d.sum() / len(d), math.sqrt(((d - d.mean()) ** 2).sum() / (len(d) - 1))
    t = mean / (sd / math.sqrt(n))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    assert r["n"] == n
    assert r["diff"] == pytest.approx(mean, abs=1e-15)
    assert r["sd"] == pytest.approx(sd, rel=1e-12)
    assert r["p"] == pytest.approx(2 * stats.t.sf(abs(t), n - 1), rel=1e-10)
    assert r["ci_low"] == pytest.approx(mean - half, rel=1e-10)
    assert r["ci_high"] == pytest.approx(mean + half, rel=1e-10)


def test_paired_is_not_welch_when_the_seeds_pair_the_runs():
    # a seed effect shared by both losses: unpaired it hides the difference, paired it does not
    seed_effect = np.array([0.0, 0.02, -0.015, 0.01, -0.005])
    a, b = 0.95 + seed_effect + [0.002, 0.003, 0.002, 0.0025, 0.0025], 0.95 + seed_effect
    assert paired(a, b)["p"] < 0.001
    assert welch(a, b)["p"] > 0.5


def test_paired_refuses_fewer_than_two_pairs_and_unpaired_lengths():
    with pytest.raises(ValueError, match="at least 2 pairs"):
        paired([0.9], [0.8])  # one pair: no spread, never "significant"
    with pytest.raises(ValueError, match="lengths 1 and 2"):
        paired([0.9], [0.8, 0.7])  # numpy would broadcast it
    with pytest.raises(ValueError, match="lengths 3 and 2"):
        paired([0.9, 0.8, 0.7], [0.8, 0.7])


def test_constant_differences_give_the_limits_of_the_paired_test():
    assert paired([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])["p"] == 1.0
    r = paired([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])  # d = 0.5 exactly, sd 0: t = inf
    assert (r["n"], r["p"], r["diff"], r["ci_low"], r["ci_high"]) == (3, 0.0, 0.5, 0.5, 0.5)
    with warnings.catch_warnings():  # scipy warns of "catastrophic cancellation": sd is 0
        warnings.simplefilter("ignore", RuntimeWarning)
        assert r["p"] == stats.ttest_rel([1.0, 2.0, 3.0], [0.5, 1.5, 2.5]).pvalue


@pytest.mark.parametrize(("a", "b"), [([0.96, 0.962, 0.958, 0.961], [0.95, 0.955, 0.949]), *PAIRS])
def test_welch_equals_scipy(a, b):
    r = welch(a, b)
    reference = stats.ttest_ind(a, b, equal_var=False)
    ci = reference.confidence_interval(0.95)
    assert r["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert r["p"] == pytest.approx(reference.pvalue, rel=1e-12)
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_welch_of_two_constant_samples_is_certain_of_any_difference():
    assert welch([0.9, 0.9], [0.8, 0.8]) == {
        "diff": pytest.approx(0.1), "ci_low": pytest.approx(0.1), "ci_high": pytest.approx(0.1),
        "p": 0.0,
    }  # fmt: skip
    assert welch([0.9, 0.9, 0.9], [0.9, 0.9]) == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0,
                                                  "p": 1.0}  # fmt: skip


# -- Holm ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "adjusted"),
    [
        # sorted 0.005, 0.01, 0.03, 0.04: x4 = 0.02, x3 = 0.03, x2 = 0.06, x1 = 0.04 -> 0.06
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        # a tie: 0.02 x4 = 0.08, 0.02 x3 = 0.06 -> kept at 0.08; 0.3 x2 = 0.6; 0.5 x1 -> 0.6
        ([0.02, 0.02, 0.5, 0.3], [0.08, 0.08, 0.6, 0.6]),
        # capped: 0.6 x2 = 1.2 -> 1; 0.7 x1 = 0.7 -> 1
        ([0.7, 0.6], [1.0, 1.0]),
        # 0.001 x3 = 0.003; 0.3 x2 = 0.6; 0.4 x1 = 0.4 -> 0.6
        ([0.4, 0.3, 0.001], [0.6, 0.6, 0.003]),
        # a tiny p stays itself times m (not rounded away to 0)
        ([1e-20, 0.5], [2e-20, 0.5]),
        ([0.2], [0.2]),
        ([], []),
    ],
)
def test_holm_equals_the_hand_computation(p, adjusted):
    assert holm(p) == pytest.approx(adjusted, rel=1e-12, abs=0)


def test_holm_keeps_the_order_never_lowers_a_p_and_never_exceeds_one():
    rng = np.random.default_rng(0)
    for m in (2, 3, 6, 12):
        p = list(rng.uniform(0, 0.2, m) ** 2)
        adjusted = holm(p)
        assert all(x <= 1 for x in adjusted)
        assert all(x >= y for x, y in zip(adjusted, p, strict=True))
        order = np.argsort(p, kind="stable")
        assert all(np.diff(np.array(adjusted)[order]) >= 0)
        # the smallest is Bonferroni's, the largest at least the raw largest
        assert adjusted[order[0]] == pytest.approx(min(1.0, m * min(p)))


# -- TOST ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "margin"),
    [
        ([0.001, 0.002, 0.0, 0.001, 0.001], 0.005),
        ([0.004, -0.003, 0.006, 0.0, 0.001], 0.005),
        ([0.02, 0.03, 0.025, 0.018, 0.022], 0.005),
        ([-0.006, -0.004, -0.005, -0.007], 0.005),
        ([0.001, 0.003], 0.005),  # two differences: one degree of freedom
    ],
)
def test_tost_is_the_larger_p_of_two_one_sided_one_sample_tests(d, margin):
    above_lower = stats.ttest_1samp(np.array(d) + margin, 0.0, alternative="greater").pvalue
    below_upper = stats.ttest_1samp(np.array(d) - margin, 0.0, alternative="less").pvalue
    assert tost(d, margin) == pytest.approx(max(above_lower, below_upper), rel=1e-12)


def test_tost_by_hand():
    # d = 0.001 +- {0, 0.001, -0.001, 0, 0}: sd = sqrt(2e-6 / 4), se = sd / sqrt(5)
    d = [0.001, 0.002, 0.0, 0.001, 0.001]
    se = math.sqrt(2e-6 / 4) / math.sqrt(5)
    t_upper = (0.001 - 0.005) / se  # -12.65: far below +margin
    assert tost(d, 0.005) == pytest.approx(stats.t.cdf(t_upper, 4), rel=1e-9)
    assert tost(d, 0.005) < 0.001  # clearly equivalent within 0.5 points
    assert tost([0.02, 0.03, 0.025, 0.018, 0.022], 0.005) > 0.999  # clearly not
    # the margin's edge: mean exactly +margin (binary-exact numbers), t = 0, p = 1/2
    assert tost([0.125, 0.375, 0.25, 0.0, 0.5], 0.25) == pytest.approx(0.5, abs=1e-12)
    assert tost([-0.125, -0.375, -0.25, 0.0, -0.5], 0.25) == pytest.approx(0.5, abs=1e-12)


def test_tost_with_constant_differences_and_bad_arguments():
    assert tost([0.001, 0.001, 0.001], 0.005) == 0.0
    assert tost([0.01, 0.01], 0.005) == 1.0
    assert tost([0.25, 0.25], 0.25) == 1.0  # on the margin's edge is not inside it
    assert tost([-0.25, -0.25, -0.25], 0.25) == 1.0
    for margin in (0, -0.01, math.nan):
        with pytest.raises(ValueError, match="margin must be > 0"):
            tost([0.001, 0.002], margin)
    with pytest.raises(ValueError, match="at least 2"):
        tost([0.001], 0.005)  # one difference never shows equivalence


# -- power: the detectable difference and the seeds that would decide ---------------------------


def tail_above(c: float, n: int, nc: float) -> float:
    """P(T > c) for T = (Z + nc) / sqrt(V / df), Z standard normal, V chi-square with
    df = n - 1: the noncentral t integrated over V by quadrature (independent of scipy's nct):
    P(Z > c sqrt(V / df) - nc) = E_V[Phi(nc - c sqrt(V / df))]."""
    df = n - 1
    value, _ = integrate.quad(
        lambda v: stats.norm.cdf(nc - c * math.sqrt(v / df)) * stats.chi2.pdf(v, df),
        0,
        np.inf,
        epsabs=1e-13,
        limit=200,
    )
    return value


def power_two_sided(delta: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided one-sample t-test on n differences: P(T > c) + P(-T > c)."""
    crit, nc = stats.t.isf(alpha / 2, n - 1), delta / (sd / math.sqrt(n))
    return tail_above(crit, n, nc) + tail_above(crit, n, -nc)


def power_tost(delta: float, sd: float, n: int, margin: float, alpha: float = 0.05) -> float:
    """Lower bound of TOST's power: P(lower test rejects) + P(upper test rejects) - 1."""
    crit, se = stats.t.isf(alpha, n - 1), sd / math.sqrt(n)
    lower = tail_above(crit, n, (delta + margin) / se)
    upper = tail_above(crit, n, (margin - delta) / se)
    return max(0.0, lower + upper - 1)


@pytest.mark.parametrize(
    ("sd", "n", "alpha"), [(0.01, 2, 0.05), (0.01, 5, 0.05), (0.003, 10, 0.05), (1.0, 3, 0.0125)]
)
def test_the_detectable_difference_has_exactly_80_percent_power(sd, n, alpha):
    found = detectable_difference(sd, n, alpha)
    expected = optimize.brentq(lambda x: power_two_sided(x, sd, n, alpha) - 0.8, 1e-9, 20 * sd)
    assert found == pytest.approx(expected, rel=1e-5)
    assert power_two_sided(found, sd, n, alpha) == pytest.approx(0.8, abs=1e-6)


def test_the_detectable_difference_scales_with_sd_and_shrinks_with_more_seeds():
    # the normal approximation (z_0.975 + z_0.8) sd / sqrt(n), which t's heavier tails exceed
    assert detectable_difference(1.0, 200) == pytest.approx(2.8016 / math.sqrt(200), rel=0.01)
    assert detectable_difference(1.0, 10) > 2.8016 / math.sqrt(10)
    assert detectable_difference(0.02, 7) == pytest.approx(2 * detectable_difference(0.01, 7))
    # every n of a study (scipy's nct.cdf returns NaN at some: n = 2 and 78 once crashed here)
    found = [detectable_difference(0.01, n) for n in range(2, 120)]
    assert all(a > b for a, b in itertools.pairwise(found))
    assert detectable_difference(0.01, 5, alpha=0.01) > detectable_difference(0.01, 5)
    assert math.isnan(detectable_difference(0.01, 1))
    assert math.isnan(detectable_difference(0.0, 5))


def test_seeds_to_decide_is_the_fewest_seeds_with_80_percent_power():
    # a difference outside the margin: the paired t-test decides; d / sd = 1 needs 10 pairs
    n = seeds_to_decide(0.01, 0.01, 0.002)
    assert n == 10
    assert power_two_sided(0.01, 0.01, n) >= 0.8 > power_two_sided(0.01, 0.01, n - 1)
    # no difference: only equivalence can decide; TOST within +-0.5 points with sd 0.5 points
    n = seeds_to_decide(0.0, 0.005, 0.005)
    assert power_tost(0.0, 0.005, n, 0.005) >= 0.8 > power_tost(0.0, 0.005, n - 1, 0.005)
    assert (
        10 <= n <= 14
    )  # the normal approximation ((1.645 + 1.282) sd / margin)^2 = 8.6, t heavier
    # a difference inside the margin: whichever reaches 80% first
    diff, sd, margin, alpha = 0.003, 0.004, 0.005, 0.0125
    n = seeds_to_decide(diff, sd, margin, alpha)
    power = [max(power_two_sided(diff, sd, k, alpha), power_tost(diff, sd, k, margin, alpha))
             for k in (n - 1, n)]  # fmt: skip
    assert power[1] >= 0.8 > power[0]
    # the fewest: a difference of 100 sd needs 2 pairs (power 1.0); equivalence within 2 sd
    # needs 4 (power_tost: 0.817 with 4 pairs, 0.424 with 3)
    assert seeds_to_decide(1.0, 0.01, 0.005) == 2
    assert seeds_to_decide(0.0, 0.005, 0.01) == 4
    # a stricter level needs more seeds; no spread, or too many seeds: None
    assert seeds_to_decide(0.01, 0.01, 0.002, alpha=0.01) > seeds_to_decide(0.01, 0.01, 0.002)
    assert seeds_to_decide(0.01, 0.0, 0.005) is None
    assert seeds_to_decide(0.0, 1.0, 1e-4) is None


# -- decide: the one word -----------------------------------------------------------------------


def test_decide_gives_each_of_the_four_words():
    names = ("cee", "sse")
    assert decide(0.001, 0.5, 0.01, names, 0.005) == "equivalent within ±0.5 points"
    assert decide(0.02, 0.001, 0.9, names, 0.005) == "cee better"
    assert decide(-0.02, 0.001, 0.9, names, 0.005) == "sse better"
    assert decide(0.003, 0.2, 0.3, names, 0.005) == "inconclusive"
    # equivalence comes first: significant but inside the margin fixed before the run
    assert decide(0.002, 0.001, 0.01, names, 0.005) == "equivalent within ±0.5 points"
    assert decide(0.002, 0.001, 0.01, names, 0.01) == "equivalent within ±1 points"
    # the level is strict: 0.05 is not below 0.05
    assert decide(0.02, 0.05, 0.05, names, 0.005) == "inconclusive"


def test_a_significant_word_is_stated_only_when_it_would_come_out_again():
    names = ("cee", "sse")
    # significant, but its test finds it again with 55% (difference) / 70% (equivalence) only
    assert decide(0.02, 0.01, 0.9, names, 0.005, replication=(0.55, 0.0)) == "inconclusive"
    assert decide(0.001, 0.5, 0.01, names, 0.005, replication=(0.0, 0.7)) == "inconclusive"
    assert decide(0.02, 0.01, 0.9, names, 0.005, replication=(0.80, 0.0)) == "cee better"
    assert decide(0.001, 0.5, 0.01, names, 0.005, replication=(0.0, 0.8)) == (
        "equivalent within ±0.5 points"
    )
    # an equivalence that would not come out again leaves the difference to decide
    assert decide(0.002, 0.001, 0.01, names, 0.005, replication=(0.9, 0.5)) == "cee better"
    # lower is better: the word goes to the loss with the smaller value
    assert decide(0.2, 0.001, 0.9, names, 0.005, False, "{} memorizes less") == "sse memorizes less"


@pytest.mark.parametrize(
    ("delta", "sd", "n", "alpha"),
    [(0.01, 0.01, 5, 0.05), (0.003, 0.002, 5, 0.05 / 8), (-0.02, 0.03, 10, 0.01)],
)
def test_the_power_of_the_paired_test_is_the_noncentral_t_by_hand(delta, sd, n, alpha):
    crit = stats.t.isf(alpha / 2, n - 1)
    nc = abs(delta) * math.sqrt(n) / sd
    by_hand = stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc)
    assert power(delta, sd, n, alpha) == pytest.approx(by_hand, rel=1e-9)
    # and a simulation of the test agrees
    rng = np.random.default_rng(0)
    samples = rng.normal(delta, sd, size=(20_000, n))
    rejected = stats.ttest_1samp(samples, 0, axis=1).pvalue < alpha
    assert rejected.mean() == pytest.approx(by_hand, abs=0.01)


def test_the_tost_power_by_simulation_and_the_limits_without_spread():
    rng = np.random.default_rng(1)
    delta, sd, n, margin, alpha = 0.001, 0.002, 5, 0.005, 0.05
    samples = rng.normal(delta, sd, size=(20_000, n))
    lower = stats.ttest_1samp(samples, -margin, axis=1, alternative="greater").pvalue
    upper = stats.ttest_1samp(samples, margin, axis=1, alternative="less").pvalue
    simulated = (np.maximum(lower, upper) < alpha).mean()
    assert tost_power(delta, sd, n, margin, alpha) == pytest.approx(simulated, abs=0.02)
    assert (power(0.01, 0.0, 5, 0.05), power(0.0, 0.0, 5, 0.05)) == (1.0, 0.05)
    assert (tost_power(0.001, 0.0, 5, 0.005, 0.05), tost_power(0.01, 0.0, 5, 0.005, 0.05)) == (
        1.0,
        0.0,
    )
