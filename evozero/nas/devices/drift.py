"""Machine drift: how fast this machine runs now against its calibration, which scales
the host profile's latency estimates.

A machine's speed wanders after calibration (busy neighbours on a shared machine,
frequency scaling, caches and memory in another state), and the calibrated estimates
keep their ranking but lose their scale. :func:`measure_drift` re-times the calibration's
reference networks (:func:`evozero.nas.devices.calibrate.reference_networks`) in the conditions
calibration measured them in, for about :data:`DRIFT_SECONDS`, and takes per batch size
the median over the networks of their time now over their time at calibration
(:func:`drift_from_timings`; the median, so that one network caught by a passing spell
does not move it). The host profile's estimates at that batch size are multiplied by it
(:func:`evozero.nas.devices.cost.drift_factor`).

A run measures the drift once, when it is created (:func:`settle_run_drift`): the
factors replace ``measure`` in its config.yaml as ``nas.latency_drift``, every worker's
evaluator applies them (they travel in the nas section, nothing is re-measured there), and
a resumed run keeps them, so that its cost records, constraints and objective mean the
same from its first network to its last. A profile without reference timings (the
shipped defaults, or a calibration from before they were kept) is not corrected: the run
says so in one line and records ``none``.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from threadpoolctl import threadpool_limits

from evozero.config import Nas
from evozero.errors import EvozeroError
from evozero.nas.devices.calibrate import (
    forward_call,
    interleaved_median_seconds,
    reference_networks,
    sample_repeats,
)
from evozero.nas.devices.cost import REFERENCE_KEY, DeviceProfile, host_profile
from ops import neural

#: Seconds of timing rounds when a run or a benchmark measures the drift (the warm-up
#: calls before them load the kernels the run or benchmark needs anyway).
DRIFT_SECONDS = 1.5
# Rounds at most: a quick machine stops here before the time budget ends.
MAX_ROUNDS = 200


@dataclass(frozen=True)
class Drift:
    """A measured drift: ``factors`` per batch size (time now / time at calibration),
    from ``networks`` reference networks, in ``seconds`` (warm-up included)."""

    factors: dict[int, float]
    networks: int
    seconds: float


def _positive(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise EvozeroError(f"{what}: must be a finite number > 0, got {value!r}")
    return float(value)


def drift_from_timings(calibrated: Mapping[int, Sequence[float] | float],
                       now: Mapping[int, Sequence[float]], where: str) -> dict[int, float]:
    """Per batch size of ``calibrated``, the median over the reference networks of their
    ms ``now`` over their ms at calibration; where calibration kept only the networks'
    total (profiles from before per-network times), the ratio of the totals. ``where``
    names the profile in errors."""
    factors = {}
    for batch, then in calibrated.items():
        times = [_positive(t, f"{where}: re-timed reference network at batch {batch}")
                 for t in now[batch]]
        if isinstance(then, (int, float)):
            total = _positive(then, f"{where}: machine.{REFERENCE_KEY}.{batch}")
            factors[batch] = sum(times) / total
            continue
        if len(then) != len(times):
            raise EvozeroError(f"{where}: machine.{REFERENCE_KEY}.{batch}: {len(then)} times "
                               f"for {len(times)} reference networks (calibrated by another "
                               f"version); run `evozero calibrate` again, or set "
                               f"nas.latency_drift: none")
        factors[batch] = statistics.median(
            t / _positive(c, f"{where}: machine.{REFERENCE_KEY}.{batch}")
            for t, c in zip(times, then))
    return factors


def measure_drift(profile: DeviceProfile, seconds: float = DRIFT_SECONDS) -> Drift | None:
    """Re-time ``profile``'s reference networks (module docstring) at the batch sizes it
    holds times for; None when it holds none."""
    calibrated = profile.machine.get(REFERENCE_KEY)
    if not calibrated:
        return None
    networks = reference_networks()
    batches = sorted(calibrated)
    began = time.perf_counter()
    neural.retain_freed_memory()
    with threadpool_limits(limits=1):
        calls = [forward_call(arch, batch) for batch in batches for arch in networks]
        repeats = [sample_repeats(call) for call in calls]
        ms = [1e3 * t for t in interleaved_median_seconds(calls, repeats, MAX_ROUNDS,
                                                          time.perf_counter() + seconds)]
    now = {batch: ms[i * len(networks):(i + 1) * len(networks)]
           for i, batch in enumerate(batches)}
    return Drift(drift_from_timings(calibrated, now, f"the {profile.name} profile"),
                 len(networks), time.perf_counter() - began)


def describe_drift(factors: Mapping[int, float]) -> str:
    """The factors as text: ``x0.640 at batch 1, x0.710 at batch 64``."""
    return ", ".join(f"x{factor:.3f} at batch {batch}" for batch, factor in sorted(factors.items()))


def recorded_drift(nas: Nas) -> dict[int, float]:
    """The drift factors the nas section holds (none before a run has measured them, or
    when it says ``none``)."""
    drift = nas.latency_drift
    return dict(drift) if isinstance(drift, tuple) else {}


def settle_run_drift(nas: Nas, say: Callable[[str], None]) -> Nas:
    """The nas section of a run being created: ``latency_drift: measure`` replaced by the
    drift measured now on the host profile, or by ``none`` (with a note) when that profile
    has no reference timings; any other value is kept."""
    if nas.latency_drift != "measure":
        return nas
    profile = host_profile(nas.profiles_file)
    drift = measure_drift(profile) if profile is not None else None
    if drift is None:
        reason = ("this machine is not calibrated (`evozero calibrate`)" if profile is None
                  else f"the {profile.name} profile has no reference timings (calibrate "
                       f"again to record them)")
        say(f"latency drift: not measured, {reason}; host estimates are used as they are")
        return replace(nas, latency_drift="none")
    say(f"latency drift: host estimates scaled {describe_drift(drift.factors)} "
        f"({drift.networks} reference networks re-timed in {drift.seconds:.1f} s; kept "
        f"in config.yaml as nas.latency_drift)")
    # Four decimals: what the config shows is what the evaluators use.
    return replace(nas, latency_drift=tuple((batch, round(factor, 4))
                                            for batch, factor in sorted(drift.factors.items())))
