"""The statistics of a study: success rates, efforts, fitnesses and the comparison of two
arms over paired seeds, each with a 95 % interval.

Pure numpy and the standard library. Every function documents its method. A quantity that
is undefined for the data (the mean of nothing, the spread of one value, a ratio of two
zero rates) is None, never NaN, so a summary is strict JSON as it stands.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

#: Confidence level of every interval.
CONFIDENCE = 0.95
#: Resamples of a bootstrap interval.
BOOTSTRAP_RESAMPLES = 10_000
#: Seed of a bootstrap interval (fixed: a summary is reproducible).
BOOTSTRAP_SEED = 0
#: Two fitnesses within this absolute distance are a tie in a paired comparison (fitnesses
#: and accuracies live on a scale of about 1, so this only absorbs rounding).
TIE_TOLERANCE = 1e-9
# Resamples drawn at a time, so a bootstrap of many values stays within a few megabytes.
_BOOTSTRAP_CHUNK_CELLS = 1_000_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with the bounds of its interval; None where undefined."""

    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class MeanSE:
    """The mean of ``n`` values and its standard error (None for fewer than 2 values)."""

    mean: float | None
    se: float | None
    n: int


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` over the seeds both arms have: the mean with its interval, and how often
    ``a`` is higher (wins), equal within TIE_TOLERANCE (ties) or lower (losses)."""

    n: int
    mean: float | None
    low: float | None
    high: float | None
    wins: int
    ties: int
    losses: int


def normal_quantile(probability: float) -> float:
    """The standard normal quantile (1.96 for 0.975)."""
    return NormalDist().inv_cdf(probability)


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> Estimate:
    """The success rate ``successes / trials`` with its Wilson score interval.

    Method: Wilson (1927), the interval that inverts the score test: the rates p with
    ``|k/n - p| <= z sqrt(p (1 - p) / n)``. Unlike the normal (Wald) interval it stays in
    [0, 1] and is not empty at 0 or n successes. No trials: all None.
    """
    _check_counts(successes, trials)
    if trials == 0:
        return Estimate(None, None, None)
    z = normal_quantile(0.5 + confidence / 2)
    rate = successes / trials
    z2n = z * z / trials
    centre = (rate + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(rate * (1 - rate) / trials + z2n / (4 * trials)) / (1 + z2n)
    # At 0 or n successes a bound is exactly 0 or 1; rounding must not move it off.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Estimate(rate, low, high)


def bootstrap_median(values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> Estimate:
    """The median of ``values`` with a percentile bootstrap interval.

    Method: ``resamples`` resamples of the values with replacement (numpy's PCG64 seeded
    with ``seed``, so the interval is reproducible); the bounds are the (1 - confidence)/2
    and (1 + confidence)/2 percentiles of the resamples' medians. No values: all None; one
    value: the median without an interval (a resample of one value says nothing about
    spread).
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or not np.isfinite(data).all():
        raise ValueError("bootstrap_median needs a flat sequence of finite numbers")
    if data.size == 0:
        return Estimate(None, None, None)
    median = float(np.median(data))
    if data.size == 1:
        return Estimate(median, None, None)
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK_CELLS // data.size)
    medians = []
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        medians.append(np.median(data[rng.integers(0, data.size, (rows, data.size))], axis=1))
    low, high = np.percentile(np.concatenate(medians),
                              [50 * (1 - confidence), 50 * (1 + confidence)])
    return Estimate(median, float(low), float(high))


def mean_se(values: Sequence[float]) -> MeanSE:
    """The mean and its standard error ``s / sqrt(n)`` (``s`` with n - 1 degrees of
    freedom). No values: mean None; one value: SE None."""
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or not np.isfinite(data).all():
        raise ValueError("mean_se needs a flat sequence of finite numbers")
    if data.size == 0:
        return MeanSE(None, None, 0)
    mean = float(data.mean())
    if data.size == 1:
        return MeanSE(mean, None, 1)
    return MeanSE(mean, float(data.std(ddof=1) / math.sqrt(data.size)), int(data.size))


def success_ratio(successes_a: int, trials_a: int, successes_b: int, trials_b: int,
                  confidence: float = CONFIDENCE) -> Estimate:
    """The ratio of two success rates ``(k_a / n_a) / (k_b / n_b)`` with an interval.

    Method: Katz et al. (1978) log method, ``exp(log ratio +- z sqrt(1/k_a - 1/n_a + 1/k_b
    - 1/n_b))``, when both arms have successes. When one arm has none the ratio is 0 or
    infinite and the log method is undefined; then the interval is one-sided, from the two
    arms' Wilson bounds: b at 0 successes gives the lower bound ``low_a / high_b`` (Wilson
    lower bound of a over the Wilson upper bound of b; each holds with probability 0.975,
    so both at once with at least 0.95) and no upper bound (None; the value is None too, as
    infinity is not JSON); a at 0 successes gives the ratio 0 and the upper bound
    ``high_a / low_b``. Both at 0, or an arm without runs: all None.
    """
    _check_counts(successes_a, trials_a)
    _check_counts(successes_b, trials_b)
    if trials_a == 0 or trials_b == 0 or (successes_a == 0 and successes_b == 0):
        return Estimate(None, None, None)
    a = wilson_interval(successes_a, trials_a, confidence)
    b = wilson_interval(successes_b, trials_b, confidence)
    assert a.low is not None and a.high is not None and b.low is not None and b.high is not None
    if successes_b == 0:
        return Estimate(None, a.low / b.high, None)
    if successes_a == 0:
        return Estimate(0.0, 0.0, a.high / b.low)
    ratio = (successes_a / trials_a) / (successes_b / trials_b)
    spread = normal_quantile(0.5 + confidence / 2) * math.sqrt(
        1 / successes_a - 1 / trials_a + 1 / successes_b - 1 / trials_b)
    return Estimate(ratio, ratio * math.exp(-spread), ratio * math.exp(spread))


def paired_difference(a: Mapping[int, float | None], b: Mapping[int, float | None],
                      tolerance: float = TIE_TOLERANCE,
                      confidence: float = CONFIDENCE) -> PairedDifference:
    """``a[seed] - b[seed]`` over the seeds where both are numbers.

    Method: the mean difference with a Student t interval (``mean +- t_{n-1} s / sqrt(n)``),
    the classical paired-t interval; wins, ties and losses count the seeds where ``a`` is
    higher, within ``tolerance`` (absolute), or lower. One seed: no interval (None); no
    seeds: mean None too.
    """
    seeds = sorted(seed for seed in set(a) & set(b) if _finite(a[seed]) and _finite(b[seed]))
    differences = np.array([float(a[s]) - float(b[s]) for s in seeds],  # type: ignore[arg-type]
                           dtype=np.float64)
    wins = int(np.sum(differences > tolerance))
    losses = int(np.sum(differences < -tolerance))
    ties = len(seeds) - wins - losses
    summary = mean_se(differences.tolist())
    if summary.se is None:
        return PairedDifference(len(seeds), summary.mean, None, None, wins, ties, losses)
    assert summary.mean is not None
    half = t_quantile(0.5 + confidence / 2, len(seeds) - 1) * summary.se
    return PairedDifference(len(seeds), summary.mean, summary.mean - half,
                            summary.mean + half, wins, ties, losses)


def zero_success_density_bound(evaluations: float, confidence: float = CONFIDENCE) -> float:
    """The upper bound on the per-evaluation success probability after ``evaluations``
    independent evaluations without a success.

    Method: the exact one-sided (Clopper-Pearson) bound, the q with ``(1 - q)^N = 1 -
    confidence``: ``1 - 0.05^(1/N)``, about 3/N (the rule of three). It assumes independent
    evaluations, which holds for random search; for evolution it is only a yardstick.
    """
    if not evaluations > 0 or not math.isfinite(evaluations):
        raise ValueError(f"evaluations must be a finite number > 0, got {evaluations!r}")
    return -math.expm1(math.log(1 - confidence) / evaluations)


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with ``df`` (an integer >= 1) degrees of freedom.

    Method: the closed-form finite series for integer degrees of freedom (Abramowitz and
    Stegun 26.7.3 and 26.7.4), in theta = atan(t / sqrt(df)).
    """
    if df < 1 or int(df) != df:
        raise ValueError(f"degrees of freedom must be an integer >= 1, got {df!r}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    theta = math.atan(abs(t) / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    # A = P(|T| <= |t|): a sum of df // 2 (even) or (df - 1) // 2 (odd) terms.
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        inside = math.sin(theta) * total
    else:
        total = 0.0
        if df > 1:
            term = total = 1.0
            for k in range(1, (df - 1) // 2):
                term *= cos2 * (2 * k) / (2 * k + 1)
                total += term
        inside = 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    inside = min(1.0, max(0.0, inside))
    return 0.5 + inside / 2 if t >= 0 else 0.5 - inside / 2


def t_quantile(probability: float, df: int) -> float:
    """The ``probability`` quantile of Student's t with ``df`` degrees of freedom (2.262
    for 0.975 and 9): :func:`t_cdf` inverted by bisection to machine precision."""
    if not 0 < probability < 1:
        raise ValueError(f"probability must be in (0, 1), got {probability!r}")
    if probability < 0.5:
        return -t_quantile(1 - probability, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < probability:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if t_cdf(middle, df) < probability:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _check_counts(successes: int, trials: int) -> None:
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
