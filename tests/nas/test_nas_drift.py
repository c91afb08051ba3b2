"""The machine-drift correction of latency estimates: the math, where a run keeps the
factors and that a resumed run reuses them, old profiles, and bad values."""
from __future__ import annotations

import io
import math
from dataclasses import replace

import pytest
import yaml
from helpers import nas_config, small_config
from hypothesis import given
from hypothesis import strategies as st

from evozero.bench.nas_latency import _summary, verdict
from evozero.config import load_config
from evozero.domains import domain_for, resume_run, start_run
from evozero.errors import EvozeroError
from evozero.nas.devices import drift as drift_module
from evozero.nas.devices.calibrate import REFERENCE_CELLS
from evozero.nas.devices.cost import (
    REFERENCE_KEY,
    DeviceProfile,
    drift_factor,
    estimate_ms,
    execution_steps,
    load_profile,
    load_profiles,
)
from evozero.nas.devices.drift import Drift, drift_from_timings, measure_drift, settle_run_drift
from evozero.nas.evaluate import Evaluator
from evozero.nas.spaces.cells import Nb201Cell
from evozero.nas.spaces.network import Architecture, Builder

pytestmark = pytest.mark.nas

NETWORKS = 2 * REFERENCE_CELLS
CALIBRATED = {1: [0.1 + 0.01 * i for i in range(NETWORKS)],
              64: [2.0 + 0.1 * i for i in range(NETWORKS)]}
PROFILE = {"name": "host", "description": "calibrated here", "peak_gflops": 50.0,
           "bandwidth_gbs": 10.0, "overhead_us": 5.0, "call_overhead_us": 1.0,
           "machine": {"cpu": "test", REFERENCE_KEY: CALIBRATED}}


def network() -> Architecture:
    b = Builder((8, 8, 1))
    b.dense(b.gap(b.conv_bn_relu(0, 8, 3)), 10)
    return b.build()


def write_profile(tmp_path, data=None, name="host.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(PROFILE if data is None else data))
    return str(path)


# -- the math ---------------------------------------------------------------------------

def test_drift_is_the_median_of_the_networks_ratios_per_batch():
    calibrated = {1: [1.0, 2.0, 4.0], 64: [10.0, 20.0]}
    now = {1: [0.5, 1.0, 40.0], 64: [5.0, 30.0]}   # one network caught by a slow spell
    assert drift_from_timings(calibrated, now, "p") == {1: 0.5, 64: 1.0}


def test_a_profile_calibrated_with_totals_drifts_by_the_ratio_of_totals():
    assert drift_from_timings({1: 7.0}, {1: [0.5, 1.0, 4.0]}, "p") == pytest.approx(
        {1: 5.5 / 7.0})


@given(st.floats(0.05, 20.0), st.floats(0.05, 20.0), st.sampled_from([1, 2, 8, 64, 100, 512]))
def test_scaled_estimates_are_the_factor_times_the_calibrated_ones(small, large, batch):
    base = load_profiles()["mobile-cpu"]
    scaled = replace(base, drift={1: small, 64: large})
    steps = execution_steps(network())
    # on log batch size: 8 is halfway from 1 to 64; beyond 64 the last factor holds
    expected = {1: small, 2: small + (large - small) / 6, 8: (small + large) / 2,
                64: large, 100: large, 512: large}[batch]
    assert drift_factor(scaled, batch) == pytest.approx(expected)
    assert estimate_ms(steps, scaled, batch) == pytest.approx(
        expected * estimate_ms(steps, base, batch))


def test_measured_drift_scales_estimates_by_the_re_timed_ratio(tmp_path, monkeypatch):
    profile = load_profile(write_profile(tmp_path))
    factors = {1: 0.6, 64: 0.8}
    # every reference network re-times at its calibration time times the batch's factor
    fake_seconds = [1e-3 * ms * factors[batch] for batch in (1, 64) for ms in CALIBRATED[batch]]
    monkeypatch.setattr(drift_module, "sample_repeats", lambda call: 1)
    monkeypatch.setattr(drift_module, "interleaved_median_seconds",
                        lambda calls, repeats, rounds, deadline: fake_seconds[:len(calls)])
    drift = measure_drift(profile)
    assert drift is not None and drift.networks == NETWORKS
    assert drift.factors == pytest.approx(factors)
    scaled = replace(profile, drift=drift.factors)
    steps = execution_steps(network())
    for batch in (1, 64):
        assert estimate_ms(steps, scaled, batch) == pytest.approx(
            factors[batch] * estimate_ms(steps, profile, batch))


def test_the_bench_reports_the_share_within_20_percent_before_and_after():
    import numpy as np
    measured = np.array([1.0, 2.0, 4.0, 8.0])
    raw = 1.6 * measured                       # the calibrated profile 1.6x too slow
    figures = _summary(raw, raw / 1.6, measured, measured, measured, 1 / 1.6, 1 / 1.6)
    assert figures["within_20"] == 0 and figures["median_ratio"] == pytest.approx(1.6)
    assert figures["within_20_corrected"] == 1
    assert figures["median_ratio_corrected"] == pytest.approx(1.0)
    assert figures["rho"] == pytest.approx(1.0)
    assert verdict(figures, 1) == "meets goals"
    moved = _summary(raw, raw / 1.6, measured, measured, measured, 1 / 1.6, 1.0)
    assert verdict(moved, 1).endswith("the machine's speed changed after the start")


# -- old profiles -----------------------------------------------------------------------

def test_profiles_without_reference_timings_load_and_are_not_corrected(tmp_path):
    old = {k: v for k, v in PROFILE.items() if k != "machine"}
    profile = load_profile(write_profile(tmp_path, old))
    assert profile.drift == {} and measure_drift(profile) is None
    assert measure_drift(load_profiles()["host"]) is None   # the shipped defaults
    totals = load_profile(write_profile(tmp_path, {**PROFILE, "machine": {
        REFERENCE_KEY: {1: 4.07, 64: 29.45}}}, "totals.yaml"))
    assert totals.machine[REFERENCE_KEY] == {1: 4.07, 64: 29.45}


def test_a_profile_written_by_calibration_round_trips_its_reference_timings(tmp_path):
    profile = load_profile(write_profile(tmp_path))
    assert profile.machine[REFERENCE_KEY] == CALIBRATED
    again = load_profile(write_profile(tmp_path, profile.to_dict(), "again.yaml"))
    assert again == profile
    # the drift is the run's, not the profile file's
    assert "drift" not in replace(profile, drift={1: 0.5}).to_dict()


# -- a run keeps the factors ------------------------------------------------------------

def host_latency(record: dict) -> float:
    return record["cost"]["latency_ms"]["host"]


def test_a_run_measures_once_keeps_the_factors_and_a_resume_reuses_them(tmp_path,
                                                                         monkeypatch):
    profile_path = write_profile(tmp_path)
    measured = Drift({1: 0.5, 64: 0.75}, NETWORKS, 2.0)
    monkeypatch.setattr(drift_module, "measure_drift", lambda profile: measured)
    out = io.StringIO()
    config = nas_config(nas={"profiles_file": profile_path})
    assert config.nas.latency_drift == "measure"
    run = start_run(config, str(tmp_path / "runs"), out=out)
    assert "x0.500 at batch 1, x0.750 at batch 64" in out.getvalue()
    stored = load_config(run.rundir.config_path)
    assert stored.nas.latency_drift == ((1, 0.5), (64, 0.75))
    written = yaml.safe_load(run.rundir.config_path.read_text())
    assert written["nas"]["latency_drift"] == {"1": 0.5, "64": 0.75}
    run.rundir.release()

    def no_second_measurement(profile: DeviceProfile) -> Drift:
        raise AssertionError("a resumed run measured the drift again")

    monkeypatch.setattr(drift_module, "measure_drift", no_second_measurement)
    resumed = resume_run(str(run.rundir.path), out=io.StringIO())
    resumed.execute()
    # a cache hit carries the record of an isomorphic cell trained before
    records = [r for r in resumed.rundir.read_evaluations() if not r["cache_hit"]]
    assert records
    plain = Evaluator(replace(stored.nas, latency_drift="none"), stored.seed)
    scaled = Evaluator(stored.nas, stored.seed)
    for record in records:
        cost = plain.cost(plain.architecture(Nb201Cell.parse(record["genome"])))
        assert host_latency(record) == pytest.approx(0.5 * cost["latency_ms"]["host"])
        assert record["cost"]["latency_ms_train_batch"]["host"] == pytest.approx(
            0.75 * cost["latency_ms_train_batch"]["host"])
        # other devices are not this machine
        assert record["cost"]["latency_ms"]["mobile-cpu"] == cost["latency_ms"]["mobile-cpu"]
    # what show reports uses the same factors
    assert scaled.profiles["host"].drift == {1: 0.5, 64: 0.75}


def as_before_the_drift(run_path, config_yaml_drift=None) -> None:
    """Make a new run's directory look like one from before nas.latency_drift existed:
    the key gone from its checkpoint's config and hash, and from config.yaml unless
    ``config_yaml_drift`` puts a value there."""
    import hashlib
    import json

    from evozero.runs.checkpointing import RESUME_CHANGEABLE
    checkpoint = sorted((run_path / "checkpoint").glob("*.json"))[-1]
    data = json.loads(checkpoint.read_text())
    config = data["state"]["config"]
    del config["nas"]["latency_drift"]
    bound = {k: v for k, v in config.items() if k not in RESUME_CHANGEABLE}
    data["state"]["config_sha256"] = hashlib.sha256(
        json.dumps(bound, sort_keys=True).encode()).hexdigest()
    checkpoint.write_text(json.dumps(data))
    written = yaml.safe_load((run_path / "config.yaml").read_text())
    del written["nas"]["latency_drift"]
    if config_yaml_drift is not None:
        written["nas"]["latency_drift"] = config_yaml_drift
    (run_path / "config.yaml").write_text(yaml.safe_dump(written))


def test_a_run_from_before_the_drift_resumes_uncorrected(tmp_path, monkeypatch):
    monkeypatch.setattr(drift_module, "measure_drift",
                        lambda profile: Drift({1: 0.5, 64: 0.75}, NETWORKS, 2.0))
    config = nas_config(nas={"profiles_file": write_profile(tmp_path)})
    runs = []
    for name, drift in (("old", None), ("edited", {1: 0.5})):
        run = start_run(replace(config, name=name), str(tmp_path / "runs"), out=io.StringIO())
        run.rundir.release()
        as_before_the_drift(run.rundir.path, drift)
        runs.append(run.rundir.path)
    resumed = resume_run(str(runs[0]), out=io.StringIO())
    resumed.execute()
    plain = Evaluator(replace(config.nas, latency_drift="none"), config.seed)
    for record in resumed.rundir.read_evaluations():
        if not record["cache_hit"]:
            cost = plain.cost(plain.architecture(Nb201Cell.parse(record["genome"])))
            assert host_latency(record) == cost["latency_ms"]["host"]
    # a key added since, but not at its default, changes the run: refused
    with pytest.raises(EvozeroError, match="nas.latency_drift"):
        resume_run(str(runs[1]), out=io.StringIO())


def test_without_reference_timings_a_run_records_none_with_a_note(tmp_path):
    old = {k: v for k, v in PROFILE.items() if k != "machine"}
    lines: list[str] = []
    nas = settle_run_drift(nas_config(nas={"profiles_file": write_profile(tmp_path, old)}).nas,
                           lines.append)
    assert nas.latency_drift == "none"
    assert len(lines) == 1 and "no reference timings" in lines[0]
    assert load_profiles(nas.profiles_file)["host"].drift == {}


def test_given_factors_and_none_are_kept_without_measuring(tmp_path, monkeypatch):
    monkeypatch.setattr(drift_module, "measure_drift", lambda profile: pytest.fail("measured"))
    for value, kept in (("none", "none"), ({1: 0.9, 64: 1.1}, ((1, 0.9), (64, 1.1)))):
        nas = nas_config(nas={"latency_drift": value}).nas
        assert settle_run_drift(nas, print).latency_drift == kept


def test_a_domain_settles_what_a_new_run_measures_and_programs_leave_nothing(tmp_path):
    program = small_config()
    assert domain_for(program).settle(pytest.fail) is program
    old = {k: v for k, v in PROFILE.items() if k != "machine"}
    cells = nas_config(nas={"profiles_file": write_profile(tmp_path, old)})
    settled = domain_for(cells).settle(print)
    assert settled.nas.latency_drift == "none"
    assert replace(settled, nas=cells.nas) == cells
    assert (domain_for(program).candidates, domain_for(cells).candidates) == ("programs",
                                                                              "cells")


# -- bad values -------------------------------------------------------------------------

@pytest.mark.parametrize("factor", [0, -0.5, math.nan, math.inf])
def test_bad_drift_factors_are_clear_errors(factor):
    base = load_profiles()["host"]
    with pytest.raises(EvozeroError, match=r"host profile: drift\.64: must be a number > 0"):
        replace(base, drift={1: 1.0, 64: factor})
    with pytest.raises(EvozeroError, match="nas.latency_drift"):
        nas_config(nas={"latency_drift": {1: factor}})
    with pytest.raises(EvozeroError, match="re-timed reference network at batch 1"):
        drift_from_timings({1: [1.0]}, {1: [factor]}, "the host profile")
    with pytest.raises(EvozeroError, match="batch size 0"):
        replace(base, drift={0: 1.0})


def test_reference_timings_of_another_set_of_networks_are_a_clear_error():
    with pytest.raises(EvozeroError, match="3 times for 2 reference networks.*calibrate"):
        drift_from_timings({1: [1.0, 2.0, 3.0]}, {1: [1.0, 2.0]}, "the host profile")


def test_calibration_keeps_every_reference_networks_time_and_re_timing_reads_them(tmp_path):
    from evozero.nas.devices.calibrate import calibrate
    profile = calibrate(str(tmp_path / "host.yaml"), seconds_budget=1.0, out=io.StringIO())
    timings = profile.machine[REFERENCE_KEY]
    assert sorted(timings) == [1, 64]
    assert all(len(ms) == NETWORKS and min(ms) > 0 for ms in timings.values())
    drift = measure_drift(profile, seconds=0.1)
    assert drift is not None and sorted(drift.factors) == [1, 64]
    assert all(math.isfinite(f) and f > 0 for f in drift.factors.values())
