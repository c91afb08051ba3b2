"""The study statistics against textbook values, closed forms, brute force and simulation."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evozero.study import stats

Z = 1.959963984540054  # the standard normal 0.975 quantile
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


# --- Wilson ------------------------------------------------------------------------------


@pytest.mark.parametrize("successes, trials, low, high", [
    # Newcombe (1998), Statistics in Medicine 17, 857-872, Table I, method 3 (Wilson).
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718)])
def test_wilson_matches_published_intervals(successes, trials, low, high):
    estimate = stats.wilson_interval(successes, trials)
    assert estimate.value == successes / trials
    assert estimate.low == pytest.approx(low, abs=6e-5)
    assert estimate.high == pytest.approx(high, abs=6e-5)


@given(st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_bounds_are_where_the_score_test_is_at_its_limit(counts):
    successes, trials = counts
    estimate = stats.wilson_interval(successes, trials)
    rate = successes / trials
    assert 0 <= estimate.low <= rate <= estimate.high <= 1
    for bound in (estimate.low, estimate.high):
        # (k/n - p)^2 = z^2 p (1 - p) / n at both ends: the definition of the interval.
        assert (rate - bound) ** 2 == pytest.approx(Z * Z * bound * (1 - bound) / trials,
                                                    abs=1e-12)
    assert (estimate.low == 0) == (successes == 0)
    assert (estimate.high == 1) == (successes == trials)


def test_wilson_of_no_trials_is_undefined_and_bad_counts_are_refused():
    assert stats.wilson_interval(0, 0) == stats.Estimate(None, None, None)
    for successes, trials in ((3, 2), (-1, 5)):
        with pytest.raises(ValueError):
            stats.wilson_interval(successes, trials)


@pytest.mark.parametrize("rate, trials", [(0.3, 50), (0.05, 100), (0.9, 20)])
def test_wilson_covers_the_true_rate_about_95_percent_of_the_time(rate, trials):
    rng = np.random.default_rng(1)
    draws = rng.binomial(trials, rate, size=4000)
    covered = [stats.wilson_interval(int(k), trials) for k in draws]
    coverage = np.mean([e.low <= rate <= e.high for e in covered])
    assert 0.92 <= coverage <= 0.985


# --- bootstrap median --------------------------------------------------------------------


def _exact_bootstrap_quantiles(values: list[float], probabilities: list[float]) -> list[float]:
    """Quantiles of the median over every one of the n^n equally likely resamples."""
    medians = sorted(float(np.median(sample)) for sample in
                     itertools.product(values, repeat=len(values)))
    return [medians[min(len(medians) - 1, int(p * len(medians)))] for p in probabilities]


@settings(max_examples=30)
@given(st.lists(st.integers(-50, 50), min_size=2, max_size=5))
def test_bootstrap_median_agrees_with_the_exact_bootstrap_distribution(values):
    estimate = stats.bootstrap_median(values)
    assert estimate.value == float(np.median(values))
    # The Monte Carlo percentile lies between the exact 1.5 % and 3.5 % (97.5 % +- 1 %)
    # quantiles: 10,000 resamples put it within about 0.3 % of the exact 2.5 %.
    below, above = _exact_bootstrap_quantiles(values, [0.015, 0.035])
    assert below <= estimate.low <= above
    below, above = _exact_bootstrap_quantiles(values, [0.965, 0.985])
    assert below <= estimate.high <= above


@given(st.lists(finite, min_size=2, max_size=60), st.integers(0, 2**32))
def test_bootstrap_median_interval_holds_the_median_and_is_seeded(values, seed):
    estimate = stats.bootstrap_median(values, resamples=500, seed=seed)
    assert min(values) <= estimate.low <= estimate.value <= estimate.high <= max(values)
    assert stats.bootstrap_median(values, resamples=500, seed=seed) == estimate


def test_bootstrap_median_of_nothing_and_of_one_value():
    assert stats.bootstrap_median([]) == stats.Estimate(None, None, None)
    assert stats.bootstrap_median([7.0]) == stats.Estimate(7.0, None, None)
    assert stats.bootstrap_median([3.0, 3.0, 3.0]) == stats.Estimate(3.0, 3.0, 3.0)
    with pytest.raises(ValueError):
        stats.bootstrap_median([1.0, math.nan])


def test_bootstrap_median_covers_the_true_median_by_simulation():
    # Exponential(1) has median ln 2; 300 samples of 41, each with 2,000 resamples.
    rng = np.random.default_rng(2)
    hits = 0
    for trial in range(300):
        estimate = stats.bootstrap_median(rng.exponential(size=41), resamples=2000, seed=trial)
        hits += estimate.low <= math.log(2) <= estimate.high
    assert 0.89 <= hits / 300 <= 0.99


# --- mean and standard error ---------------------------------------------------------------


@given(st.lists(finite, min_size=2, max_size=50))
def test_mean_se_is_the_textbook_formula(values):
    result = stats.mean_se(values)
    n = len(values)
    mean = math.fsum(values) / n
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    assert result.n == n
    assert result.mean == pytest.approx(mean, abs=1e-6)
    assert result.se == pytest.approx(math.sqrt(variance / n), rel=1e-6, abs=1e-6)


def test_mean_se_of_few_values():
    assert stats.mean_se([]) == stats.MeanSE(None, None, 0)
    assert stats.mean_se([2.5]) == stats.MeanSE(2.5, None, 1)
    assert stats.mean_se([1.0, 3.0]) == stats.MeanSE(2.0, 1.0, 2)


# --- ratio of success rates ----------------------------------------------------------------


def test_success_ratio_is_the_katz_log_interval_by_hand():
    # 14/20 against 3/20: ratio 14/3; SE of its log sqrt(1/14 - 1/20 + 1/3 - 1/20).
    estimate = stats.success_ratio(14, 20, 3, 20)
    spread = Z * math.sqrt(1 / 14 - 1 / 20 + 1 / 3 - 1 / 20)
    assert estimate.value == pytest.approx(14 / 3)
    assert estimate.low == pytest.approx(14 / 3 / math.exp(spread))
    assert estimate.high == pytest.approx(14 / 3 * math.exp(spread))
    assert estimate.low == pytest.approx(1.5816, abs=1e-4)
    assert estimate.high == pytest.approx(13.769, abs=1e-3)


@given(st.integers(1, 300), st.integers(1, 300), st.data())
def test_success_ratio_is_symmetric_in_log_and_swaps_with_the_arms(n_a, n_b, data):
    k_a, k_b = data.draw(st.integers(1, n_a)), data.draw(st.integers(1, n_b))
    forward, backward = stats.success_ratio(k_a, n_a, k_b, n_b), stats.success_ratio(k_b, n_b,
                                                                                     k_a, n_a)
    assert forward.low <= forward.value <= forward.high
    assert math.sqrt(forward.low * forward.high) == pytest.approx(forward.value)
    assert forward.value * backward.value == pytest.approx(1)
    assert forward.low * backward.high == pytest.approx(1)


def test_success_ratio_with_a_zero_arm_is_one_sided_from_the_wilson_bounds():
    a, zero = stats.wilson_interval(5, 20), stats.wilson_interval(0, 30)
    assert stats.success_ratio(5, 20, 0, 30) == stats.Estimate(None, a.low / zero.high, None)
    assert stats.success_ratio(0, 30, 5, 20) == stats.Estimate(0.0, 0.0, zero.high / a.low)
    assert stats.success_ratio(0, 10, 0, 10) == stats.Estimate(None, None, None)
    assert stats.success_ratio(3, 10, 0, 0) == stats.Estimate(None, None, None)
    # Every arm succeeding every time: the rates are equal and Katz's interval is a point.
    assert stats.success_ratio(10, 10, 10, 10) == stats.Estimate(1.0, 1.0, 1.0)


@pytest.mark.parametrize("rate_a, rate_b, trials", [(0.6, 0.3, 50), (0.5, 0.02, 40)])
def test_success_ratio_covers_the_true_ratio_by_simulation(rate_a, rate_b, trials):
    # The second case mostly has no success in b, where the one-sided bound applies.
    rng = np.random.default_rng(3)
    truth = rate_a / rate_b
    hits = 0
    for k_a, k_b in zip(rng.binomial(trials, rate_a, 3000), rng.binomial(trials, rate_b, 3000)):
        estimate = stats.success_ratio(int(k_a), trials, int(k_b), trials)
        low = 0.0 if estimate.low is None else estimate.low
        high = math.inf if estimate.high is None else estimate.high
        hits += low <= truth <= high
    assert hits / 3000 >= 0.93


# --- paired difference ---------------------------------------------------------------------


@pytest.mark.parametrize("df, quantile", [
    # Student t 0.975 quantiles as printed in every table (e.g. NIST/SEMATECH 1.3.6.7.2).
    (1, 12.706), (2, 4.303), (5, 2.571), (9, 2.262), (10, 2.228), (19, 2.093), (29, 2.045),
    (30, 2.042), (100, 1.984)])
def test_t_quantile_matches_the_printed_table(df, quantile):
    assert stats.t_quantile(0.975, df) == pytest.approx(quantile, abs=6e-4)
    assert stats.t_quantile(0.025, df) == pytest.approx(-quantile, abs=6e-4)


@settings(max_examples=40)
@given(st.integers(1, 60), st.floats(-8, 8))
def test_t_cdf_is_the_integral_of_the_t_density(df, t):
    # Simpson's rule on the density from 0 to t, plus the half below 0.
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    grid = np.linspace(0.0, t, 4001)
    density = np.exp(log_norm - (df + 1) / 2 * np.log1p(grid * grid / df))
    step = t / 4000
    integral = step / 3 * (density[0] + density[-1] + 4 * density[1:-1:2].sum()
                           + 2 * density[2:-1:2].sum())
    probability = stats.t_cdf(t, df)
    assert probability == pytest.approx(0.5 + integral, abs=1e-7)
    assert stats.t_quantile(probability, df) == pytest.approx(t, abs=1e-5)


@given(st.dictionaries(st.integers(0, 40), finite, min_size=2, max_size=30), st.data())
def test_paired_difference_is_the_paired_t_interval(a, data):
    b = {seed: data.draw(finite) for seed in a if data.draw(st.booleans())}
    b[max(a) + 1] = 0.0  # a seed only b ran is ignored
    common = sorted(set(a) & set(b))
    result = stats.paired_difference(a, b)
    differences = [a[s] - b[s] for s in common]
    assert result.n == len(common)
    assert result.wins == sum(d > stats.TIE_TOLERANCE for d in differences)
    assert result.losses == sum(d < -stats.TIE_TOLERANCE for d in differences)
    assert result.wins + result.ties + result.losses == len(common)
    if len(common) < 2:
        assert result.low is None and result.high is None
        return
    mean = math.fsum(differences) / len(common)
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in differences) / (len(common) - 1))
    half = stats.t_quantile(0.975, len(common) - 1) * sd / math.sqrt(len(common))
    assert result.mean == pytest.approx(mean, abs=1e-6)
    assert result.low == pytest.approx(mean - half, abs=1e-6)
    assert result.high == pytest.approx(mean + half, abs=1e-6)


def test_paired_difference_edge_cases():
    ties = stats.paired_difference({0: 0.5, 1: 0.7, 2: 0.9}, {0: 0.5, 1: 0.7 + 1e-12, 2: 0.9})
    assert (ties.wins, ties.ties, ties.losses) == (0, 3, 0)
    assert ties.low == pytest.approx(0.0, abs=1e-10) and ties.high == pytest.approx(0.0, abs=1e-10)
    exact = stats.paired_difference({0: 0.5, 1: 0.7}, {0: 0.5, 1: 0.7})
    assert exact == stats.PairedDifference(2, 0.0, 0.0, 0.0, 0, 2, 0)
    one = stats.paired_difference({4: 0.8}, {4: 0.6})
    assert (one.n, one.wins, one.low, one.high) == (1, 1, None, None)
    assert one.mean == pytest.approx(0.2)
    none = stats.paired_difference({0: 1.0, 1: None}, {1: 0.3, 2: 0.1})
    assert none == stats.PairedDifference(0, None, None, None, 0, 0, 0)


def test_paired_interval_covers_the_true_mean_difference_by_simulation():
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(2000):
        b = rng.normal(size=10)
        a = b + 0.3 + rng.normal(scale=0.5, size=10)
        result = stats.paired_difference(dict(enumerate(a)), dict(enumerate(b)))
        hits += result.low <= 0.3 <= result.high
    assert 0.93 <= hits / 2000 <= 0.97


# --- no success in N evaluations ------------------------------------------------------------


@given(st.floats(1, 1e12))
def test_zero_success_bound_leaves_5_percent_chance_of_no_success(evaluations):
    bound = stats.zero_success_density_bound(evaluations)
    assert 0 < bound <= 0.95
    # At the bound, N evaluations all fail with probability exactly 5 %.
    assert math.exp(evaluations * math.log1p(-bound)) == pytest.approx(0.05, rel=1e-9)


def test_zero_success_bound_is_the_rule_of_three_for_large_budgets():
    assert stats.zero_success_density_bound(1) == pytest.approx(0.95)
    assert stats.zero_success_density_bound(1e7) * 1e7 == pytest.approx(-math.log(0.05),
                                                                          rel=1e-6)
    assert stats.zero_success_density_bound(1e7) * 1e7 == pytest.approx(3, rel=0.002)
    for bad in (0, -5, math.inf, math.nan):
        with pytest.raises(ValueError):
            stats.zero_success_density_bound(bad)
