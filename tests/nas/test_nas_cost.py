"""The cost record on hand-computed networks, device-profile estimation and loading, and
a short calibration."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import yaml

from evozero.errors import EvozeroError
from evozero.nas.devices.calibrate import calibrate, relative_nnls
from evozero.nas.devices.cost import (
    REFERENCE_KEY,
    DeviceProfile,
    cost_record,
    estimate_ms,
    execution_steps,
    load_profile,
    load_profiles,
    lut_key,
    step_ms,
)
from evozero.nas.spaces.network import Architecture, Builder
from evozero.nas.table.figures import ranks, spearman

pytestmark = pytest.mark.nas


def plain_network() -> Architecture:
    """conv3x3-bn-relu to 16 channels on 8x8x1, 2x2 max-pool, gap, dense to 10."""
    b = Builder((8, 8, 1))
    top = b.pool(b.conv_bn_relu(0, 16, 3), "maxpool", 2, 2)
    b.dense(b.gap(top), 10)
    return b.build()


def nb101_cell_network() -> Architecture:
    """A NAS-Bench-101 cell on a 2x2x4 input with 5 output channels: vertex 1 (conv3x3,
    3 channels) reads a projection of the input; vertex 2 (max-pool, 2 channels) reads
    vertex 1 truncated to 2 channels; the output concatenates both and adds a projection
    of the input; then gap and dense to 3."""
    b = Builder((2, 2, 4))
    v1 = b.conv_bn_relu(b.conv_bn_relu(0, 3, 1), 3, 3)      # layers 1-3, 4-6
    v2 = b.pool(b.truncate(v1, 2), "maxpool", 3, 1)          # 7 slice, 8 maxpool
    out = b.add([b.concat([v1, v2]), b.conv_bn_relu(0, 5, 1)])  # 9 concat, 10-12, 13 add
    b.dense(b.gap(out), 3)                                   # 14 gap, 15 dense
    return b.build()


def nb201_zero_reduction_network() -> Architecture:
    """A NAS-Bench-201 cell whose output is zero (no live edge reaches it) on 4x4x2, the
    residual reduction block to 4 channels, bn, relu, gap, dense to 2."""
    b = Builder((4, 4, 2))
    zero = b.zero(0, 2)                                      # 1
    branch = b.relu_conv_bn(zero, 4, 3, stride=2)            # 2 relu, 3 conv, 4 bn
    branch = b.relu_conv_bn(branch, 4, 3)                    # 5 relu, 6 conv, 7 bn
    shortcut = b.conv(b.pool(zero, "avgpool", 2, 2), 4, 1)   # 8 avgpool, 9 conv
    top = b.relu(b.bn(b.add([branch, shortcut])))            # 10 add, 11 bn, 12 relu
    b.dense(b.gap(top), 2)                                   # 13 gap, 14 dense
    return b.build()


def test_plain_network_record():
    record = cost_record(plain_network(), {}, batch=2, train_batch=8)
    # conv 3*3*1*16 = 144, bn 2*16 = 32, dense 16*10 + 10 = 170; bn buffers 2*16
    assert record["params"] == 144 + 32 + 170
    assert record["buffers"] == 32
    assert record["weight_bytes"] == 4 * (346 + 32)
    # conv 8*8 * 3*3*1*16 = 9216, dense 16*10 = 160
    assert record["macs"] == 9216 + 160
    # 2*macs; bn 1024, relu 1024; maxpool 4*4*16 outputs * 2*2 window = 1024;
    # gap 4*4*16 inputs = 256; dense bias 10
    assert record["flops"] == 2 * 9376 + 1024 + 1024 + 1024 + 256 + 10
    # the conv reads the network input: no input gradient, 2 * 9216; dense 3 * 160
    assert record["train_macs"] == 2 * 9216 + 3 * 160
    # values read + written: conv 64 + 1024, bn 2048, relu 2048, maxpool 1024 + 256,
    # gap 256 + 16, dense 16 + 10
    assert record["activation_bytes"] == 4 * (1088 + 2048 + 2048 + 1280 + 272 + 26)
    # largest live set: the bn output with its conv input, or with the relu output: 2048
    assert record["peak_activation_bytes"] == 2 * 4 * 2048
    # every output kept: 64 + 3 * 1024 + 256 + 16 + 10 = 3418 values
    assert record["train_peak_activation_bytes"] == 8 * 4 * 3418
    assert record["batch"] == 2 and record["train_batch"] == 8


def test_nb101_cell_record():
    arch = nb101_cell_network()
    record = cost_record(arch, {})
    # convs 1*1*4*3 = 12, 3*3*3*3 = 81, 1*1*4*5 = 20; bns 6 + 6 + 10; dense 5*3 + 3
    assert record["params"] == 12 + 81 + 20 + 22 + 18
    assert record["buffers"] == 22
    # convs 2*2*4*3 = 48, 2*2*9*3*3 = 324, 2*2*4*5 = 80; dense 5*3 = 15
    assert record["macs"] == 48 + 324 + 80 + 15
    # 2*467; bn 12 + 12 + 20; relu the same; maxpool 8 outputs * 9; add (2 - 1) * 20;
    # gap 20 inputs; dense bias 3
    assert record["flops"] == 934 + 44 + 44 + 72 + 20 + 20 + 3
    # both 1x1 projections read the input (twice their macs), the 3x3 conv thrice
    assert record["train_macs"] == 2 * 48 + 3 * 324 + 2 * 80 + 3 * 15
    # values per layer: conv 16+12, bn/relu/conv/bn/relu 24 each, slice 8+8 (reads the
    # kept channels only), maxpool 8+8, concat 12+8+20, conv 16+20, bn 40, relu 40,
    # add 20+20+20, gap 20+5, dense 5+3
    assert record["activation_bytes"] == 4 * (28 + 5 * 24 + 16 + 16 + 40 + 36 + 40 + 40
                                              + 60 + 25 + 8)
    # the input (16) stays alive until the second projection (layer 10); the peak is at
    # layers 11-13: concat output 20 + two 20-value tensors of the projection
    assert record["peak_activation_bytes"] == 4 * 60
    # outputs: 16 + 6 * 12 + 8 + 8 + 5 * 20 + 5 + 3 = 212
    assert record["train_peak_activation_bytes"] == 4 * 212
    kinds = [s.kind for s in execution_steps(arch)]
    assert kinds == ["conv", "bn_relu", "conv", "bn_relu", "slice", "maxpool", "concat",
                     "conv", "bn_relu", "add", "gap", "dense"]


def test_nb201_zero_and_reduction_record():
    arch = nb201_zero_reduction_network()
    record = cost_record(arch, {})
    # convs 3*3*2*4 = 72, 3*3*4*4 = 144, 1*1*2*4 = 8; bns 3 * 8; dense 4*2 + 2
    assert record["params"] == 72 + 144 + 8 + 24 + 10
    # stride-2 conv 2*2 * 9*2*4 = 288, conv 2*2 * 9*4*4 = 576, conv1x1 2*2 * 2*4 = 32,
    # dense 8
    assert record["macs"] == 288 + 576 + 32 + 8
    # 2*904; relu 32 + 16 + 16; bn 3 * 16; avgpool 8 outputs * 4; add 16; gap 16; bias 2
    assert record["flops"] == 1808 + 64 + 48 + 32 + 16 + 16 + 2
    # no weighted layer reads the network input (zero only takes its shape)
    assert record["train_macs"] == 3 * 904
    # zero writes 32 and reads nothing; relu 64, conv 48, bn 32, relu 32, conv 32, bn 32,
    # avgpool 32+8, conv 8+16, add 48, bn 32, relu 32, gap 20, dense 6
    assert record["activation_bytes"] == 4 * (32 + 64 + 48 + 4 * 32 + 40 + 24 + 48 + 64
                                              + 20 + 6)
    # at the stride-2 conv: zero output 32 (read later by the pool) + relu 32 + conv 16
    assert record["peak_activation_bytes"] == 4 * 80
    # outputs: 32 + 32 + 32 + 4 * 16 + 16 + 8 + 4 * 16 + 4 + 2 = 254
    assert record["train_peak_activation_bytes"] == 4 * 254
    kinds = [s.kind for s in execution_steps(arch)]
    # bn 4 is read only by relu 5: fused; bn 7 feeds the add: alone
    assert kinds == ["zero", "relu", "conv", "bn_relu", "conv", "bn", "avgpool", "conv",
                     "add", "bn_relu", "gap", "dense"]


def declared(**changes) -> DeviceProfile:
    fields = dict(name="test", description="declared", peak_gflops=1.0, bandwidth_gbs=1.0,
                  overhead_us=10.0, efficiency={"conv": 0.5})
    fields.update(changes)
    return DeviceProfile(**fields)


def one_layer(kind: str) -> Architecture:
    b = Builder((8, 8, 16))
    b.conv(0, 16, 3) if kind == "conv" else b.relu(0)
    return b.build()


def test_roofline_compute_and_memory_bound():
    profile = declared()
    conv = execution_steps(one_layer("conv"))
    # flops 2 * 8*8*9*16*16 = 294,912 at 1 GFLOP/s = 0.294912 ms; bytes 4 * (1024 + 1024)
    # + weights 4 * 2304 = 17,408 at 1 GB/s = 0.017408 ms: compute-bound, / 0.5 efficiency,
    # + 10 us
    assert estimate_ms(conv, profile, 1) == pytest.approx(0.294912 / 0.5 + 0.01)
    # batch 4: 1,179,648 flops (1.179648 ms) against 4 * 8192 + 9216 bytes (0.041984 ms)
    assert estimate_ms(conv, profile, 4) == pytest.approx(1.179648 / 0.5 + 0.01)
    relu = execution_steps(one_layer("relu"))
    # 1024 flops (1.024 us) against 8192 bytes (8.192 us): memory-bound, efficiency 1
    assert estimate_ms(relu, profile, 1) == pytest.approx(0.008192 + 0.01)
    calls = declared(call_overhead_us=3.0)
    assert estimate_ms(relu, calls, 1) == pytest.approx(0.008192 + 0.01 + 0.003)


def test_lut_then_fit_then_roofline():
    (conv,) = execution_steps(one_layer("conv"))
    (relu,) = execution_steps(one_layer("relu"))
    terms = {"intercept_us": 5.0, "ns_per_flop": 0.01, "ns_per_byte": 0.1,
             "ns_per_window_value": 0.5}
    profile = declared(lut={lut_key(conv, 1): 0.123}, fitted={"conv": terms})
    assert step_ms(conv, profile, 1) == 0.123
    # no table entry at batch 4: 5 us + 0.01 ns * 1,179,648 flops + 0.1 ns * 41,984 bytes
    # + 0.5 ns * 4 * 8*8*9*16 window values
    assert step_ms(conv, profile, 4) == pytest.approx(
        0.005 + 0.01179648 + 0.0041984 + 0.5 * 36864 * 1e-6)
    # relu has neither: roofline
    assert step_ms(relu, profile, 1) == pytest.approx(0.008192 + 0.01)


def test_memory_limit_makes_a_profile_infeasible():
    small = declared(name="small", memory_limit_bytes=10_000)
    record = cost_record(plain_network(), {"small": small}, batch=1, train_batch=2)
    # peak 4 * 2048 = 8192 bytes per example: fits at batch 1, not at batch 2
    assert record["feasible"] == {"small": True}
    assert math.isfinite(record["latency_ms"]["small"])
    assert record["latency_ms_train_batch"]["small"] == math.inf


def test_shipped_profiles_load_and_estimate():
    profiles = load_profiles(None)
    assert {"host", "mobile-cpu", "microcontroller", "server-gpu"} <= set(profiles)
    assert profiles["microcontroller"].memory_limit_bytes == 256 * 1024
    record = cost_record(plain_network(), profiles, train_batch=64)
    assert all(0 < ms < math.inf for ms in record["latency_ms"].values())
    # 64 * 8192 bytes of activations exceed the microcontroller's 256 KiB
    assert record["latency_ms_train_batch"]["microcontroller"] == math.inf
    # the slow declared device is slower than the fast one
    assert record["latency_ms"]["microcontroller"] > record["latency_ms"]["server-gpu"]


def write(tmp_path, data) -> str:
    path = tmp_path / "profile.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


VALID = {"name": "dev", "description": "a device", "peak_gflops": 1.0, "bandwidth_gbs": 2.0,
         "overhead_us": 3.0}


@pytest.mark.parametrize("change, words", [
    ({"peak_gflops": -1}, ["peak_gflops", "> 0", "-1"]),
    ({"overhead_us": "fast"}, ["overhead_us", "'fast'"]),
    ({"colour": "red"}, ["unknown key 'colour'", "peak_gflops"]),
    ({"efficiency": {"conv": 1.5}}, ["efficiency.conv", "(0, 1]", "1.5"]),
    ({"efficiency": {"convolution": 0.5}}, ["'convolution'", "conv, dwconv"]),
    ({"memory_limit_bytes": 1.5}, ["memory_limit_bytes", "1.5"]),
    ({"fitted": {"conv": {"intercept_us": 1.0}}}, ["fitted.conv", "ns_per_flop"]),
    ({"lut": {"nonsense key": 1.0}}, ["lut", "'nonsense key'", "step kind"]),
    ({"lut": {"conv 1x1x1 > 1x1x1 k1x1 s1 p0x0 b1": 0}}, ["lut", "> 0", "0"]),
    # the calibration's reference networks' times, which the drift correction reads
    ({"machine": {REFERENCE_KEY: {1: [0.1, -0.2]}}}, [f"{REFERENCE_KEY}.1", "> 0", "-0.2"]),
    ({"machine": {REFERENCE_KEY: {1: [0.1, math.nan]}}}, [f"{REFERENCE_KEY}.1", "nan"]),
    ({"machine": {REFERENCE_KEY: {1: [0.1, "fast"]}}}, [f"{REFERENCE_KEY}.1", "'fast'"]),
    ({"machine": {REFERENCE_KEY: {1: []}}}, [f"{REFERENCE_KEY}.1", "[]"]),
    ({"machine": {REFERENCE_KEY: {1: 0}}}, [f"{REFERENCE_KEY}.1", "> 0"]),
    ({"machine": {REFERENCE_KEY: {"one": [0.1]}}}, ["batch size 'one'", "whole numbers >= 1"]),
    ({"machine": {REFERENCE_KEY: {0: [0.1]}}}, ["batch size 0"]),
    ({"machine": {REFERENCE_KEY: [0.1, 0.2]}}, [REFERENCE_KEY, "must map batch sizes"]),
    ({"machine": {REFERENCE_KEY: {}}}, [REFERENCE_KEY, "must map batch sizes"]),
])
def test_profile_errors_name_file_key_value_and_allowed(tmp_path, change, words):
    path = write(tmp_path, {**VALID, **change})
    with pytest.raises(EvozeroError) as error:
        load_profile(path)
    message = str(error.value)
    assert message.startswith(path)
    for word in words:
        assert word in message


def test_profile_missing_key_and_bad_yaml(tmp_path):
    path = write(tmp_path, {k: v for k, v in VALID.items() if k != "bandwidth_gbs"})
    with pytest.raises(EvozeroError, match="missing key 'bandwidth_gbs'"):
        load_profile(path)
    with pytest.raises(EvozeroError, match="invalid YAML"):
        load_profile(write(tmp_path, "name: [unclosed"))
    with pytest.raises(EvozeroError, match="no such device profile"):
        load_profile(tmp_path / "absent.yaml")


def test_calibrated_host_replaces_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert load_profiles()["host"].description.startswith("Uncalibrated")
    host = tmp_path / "cache" / "evozero" / "profiles" / "host.yaml"
    host.parent.mkdir(parents=True)
    host.write_text(yaml.safe_dump({**VALID, "name": "host"}))
    assert load_profiles()["host"].description == "a device"
    explicit = write(tmp_path, {**VALID, "name": "host", "description": "explicit"})
    assert load_profiles(explicit)["host"].description == "explicit"
    with pytest.raises(EvozeroError, match="no such device profile"):
        load_profiles(tmp_path / "missing.yaml")


def test_profile_round_trips_through_yaml(tmp_path):
    profile = declared(memory_limit_bytes=4096, lut={"relu 1x1x1 > 1x1x1 k1x1 s1 p0x0 b1": 0.5},
                       fitted={"relu": {"intercept_us": 1.0, "ns_per_flop": 0.0,
                                        "ns_per_byte": 0.2, "ns_per_window_value": 0.0}})
    assert load_profile(write(tmp_path, profile.to_dict())) == profile


def test_relative_nnls_recovers_non_negative_coefficients():
    rng = np.random.default_rng(0)
    rows = rng.uniform(1, 10, size=(30, 3))
    truth = np.array([2.0, 0.0, 0.5])
    assert relative_nnls(rows, rows @ truth) == pytest.approx(truth, abs=1e-9)
    # the exact fit of x - 0.5 y needs a negative coefficient: y's is held at zero
    x, y = rng.uniform(5, 10, 30), rng.uniform(1, 2, 30)
    fitted = relative_nnls(np.column_stack([x, y]), x - 0.5 * y)
    assert fitted[1] == 0 and 0.8 < fitted[0] < 1


def test_spearman_averages_ties():
    assert list(ranks([10, 20, 20, 30])) == [1, 2.5, 2.5, 4]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1, 2, 3) against (1.5, 1.5, 3): covariance 1.5 over sqrt(2 * 1.5)
    assert spearman([1, 2, 3], [5, 5, 9]) == pytest.approx(1.5 / math.sqrt(3.0))


def test_short_calibration_writes_a_loadable_host_profile(tmp_path):
    path = tmp_path / "profiles" / "host.yaml"
    out = io.StringIO()
    profile = calibrate(str(path), seconds_budget=1.0, out=out)
    assert load_profile(path) == profile
    assert profile.name == "host" and profile.lut and profile.fitted
    assert profile.machine["threads"] == 1
    assert f"wrote {path}" in out.getvalue()
    # what was measured is what a matching step is estimated at
    key, ms = next(iter(profile.lut.items()))
    assert ms > 0 and key.split(" ", 1)[0] in profile.fitted


def test_calibrate_command_writes_the_host_profile_runs_use(tmp_path, monkeypatch, capsys):
    from evozero.cli import main
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["calibrate", "--seconds", "1"]) == 0
    written = tmp_path / "cache" / "evozero" / "profiles" / "host.yaml"
    assert f"wrote {written}" in capsys.readouterr().out
    assert load_profiles()["host"] == load_profile(written)
    assert not load_profiles()["host"].description.startswith("Uncalibrated")
    with pytest.raises(SystemExit) as stop:
        main(["calibrate", "--seconds", "-3"])
    assert stop.value.code == 2
