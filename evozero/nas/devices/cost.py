"""Cost record of an architecture: size, work, memory traffic, peak memory and the
latency estimated on device profiles.

Record keys (float32 everywhere; "per example" figures do not depend on the batch):

- ``params``: trainable parameters: conv kh*kw*Cin*Cout (no bias), dwconv kh*kw*C,
  bn 2*C (scale and shift), dense Cin*classes + classes (weight and bias).
- ``buffers``: batch norm running mean and variance, 2*C per bn (state, not trained).
- ``weight_bytes``: 4 * (params + buffers), everything inference reads besides activations.
- ``macs``: multiply-accumulates of inference, per example: conv Ho*Wo*kh*kw*Cin*Cout,
  dwconv Ho*Wo*kh*kw*C, dense Cin*classes; no other layer counts (the NAS-Bench "FLOPs").
- ``flops``: 2 * macs, plus per example: one per output element of bn (its folded
  per-channel affine, counted like a multiply-add) and of relu; (k - 1) per output
  element of an add of k tensors; kh*kw per output element of a pool (the whole window,
  padding positions included); one per input element of gap; one per class for the dense
  bias. input, concat, slice and zero count nothing.
- ``train_macs``: multiply-accumulates of one training step per example: every conv,
  dwconv and dense layer counts its ``macs`` three times (forward, input gradient,
  weight gradient), except that a layer reading the network input needs no input
  gradient and counts them twice.
- ``activation_bytes``: per example, the sum over layers of the activation bytes each
  reads and writes: its input tensors in full and its output; a slice reads only the
  channels it keeps; zero writes only (its input gives just the shape); the input layer
  neither. Weights are not included.
- ``peak_activation_bytes``: the largest total of activation tensors alive at once while
  the layers run in order, at ``batch`` examples: a layer's output is alive from that
  layer until its last reader has run (zero's input is not read). Every layer's output is
  counted as its own tensor, so a bn-relu pair counts both.
- ``train_peak_activation_bytes``: every layer's output (the input included) kept alive
  for the backward pass, at ``train_batch`` examples (``batch`` when none is given).
- ``latency_ms``: ``{profile: estimated inference ms for a batch of batch examples}``;
  ``latency_ms_train_batch``: the same at ``train_batch`` (only when it is given).
- ``feasible``: ``{profile: bool}``, false when the profile's memory limit is below the
  peak activation memory at ``batch``. A latency is ``inf`` where the peak at its batch
  exceeds the limit.
- ``batch``, ``train_batch``: the batch sizes the figures above were taken at.

Latency is estimated as the executor runs the network (:mod:`evozero.nas.training.model`): one
*step* per layer in order, except that a bn whose only reader is a relu runs fused with it
as one ``bn_relu`` step; the input layer is no step. A step's time comes from, in order
of precedence, a measured lookup table (:func:`lut_key`), the profile's per-kind fitted
model (:func:`fit_features`), or the roofline
``max(flops / peak, bytes / bandwidth) / efficiency + overhead`` with bytes the step's
activation bytes at the batch plus its weight bytes.
The network's time is the profile's per-call overhead plus the sum of its steps
(sequential execution on one core), times the profile's drift factor at the batch size
(:func:`drift_factor`; 1 unless a run or benchmark measured the machine's drift).
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from evozero.config.yaml_file import read_yaml
from evozero.errors import EvozeroError
from evozero.nas.spaces.network import Architecture, Shape

BYTES_PER_VALUE = 4
#: Step kinds the estimator knows: the layer kinds the executor runs plus the fused pair.
STEP_KINDS = ("conv", "dwconv", "bn", "bn_relu", "relu", "maxpool", "avgpool", "add",
              "concat", "slice", "zero", "gap", "dense")
#: Coefficients of a per-kind fitted model, one per :func:`fit_features` term.
FIT_TERMS = ("intercept_us", "ns_per_flop", "ns_per_byte", "ns_per_window_value")
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
#: Key of ``machine`` in a calibrated profile: {batch: the calibration's reference
#: networks' ms, one per network in order} (profiles calibrated before held their total).
REFERENCE_KEY = "reference_networks_ms"


def _elements(shape: Shape) -> int:
    return shape[0] * shape[1] * shape[2]


# -- steps ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One kernel call of the executor with its per-example counts (see the module
    docstring for what is counted)."""

    kind: str
    in_shapes: tuple[Shape, ...]
    shape: Shape
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    pad: tuple[int, int] = (0, 0)

    @property
    def params(self) -> int:
        """Trainable parameters."""
        kh, kw = self.kernel
        channels = self.shape[2]
        if self.kind == "conv":
            return kh * kw * self.in_shapes[0][2] * channels
        if self.kind == "dwconv":
            return kh * kw * channels
        if self.kind in ("bn", "bn_relu"):
            return 2 * channels
        if self.kind == "dense":
            return self.in_shapes[0][2] * channels + channels
        return 0

    @property
    def buffers(self) -> int:
        """Running statistics (bn)."""
        return 2 * self.shape[2] if self.kind in ("bn", "bn_relu") else 0

    @property
    def macs(self) -> int:
        """Multiply-accumulates per example."""
        kh, kw = self.kernel
        if self.kind == "conv":
            return _elements(self.shape) * kh * kw * self.in_shapes[0][2]
        if self.kind == "dwconv":
            return _elements(self.shape) * kh * kw
        if self.kind == "dense":
            return self.in_shapes[0][2] * self.shape[2]
        return 0

    @property
    def flops(self) -> int:
        """Floating-point operations per example."""
        out = _elements(self.shape)
        extra = {"bn": out, "relu": out, "bn_relu": 2 * out,
                 "add": (len(self.in_shapes) - 1) * out,
                 "maxpool": out * self.kernel[0] * self.kernel[1],
                 "avgpool": out * self.kernel[0] * self.kernel[1],
                 "gap": _elements(self.in_shapes[0]) if self.in_shapes else 0,
                 "dense": self.shape[2]}
        return 2 * self.macs + extra.get(self.kind, 0)

    @property
    def window_values(self) -> int:
        """Input values gathered by sliding windows per example (conv, dwconv, pools):
        Ho*Wo*kh*kw*Cin, the size of an im2col matrix."""
        if self.kind not in ("conv", "dwconv", "maxpool", "avgpool"):
            return 0
        height, width, _ = self.shape
        return height * width * self.kernel[0] * self.kernel[1] * self.in_shapes[0][2]

    @property
    def activation_bytes(self) -> int:
        """Activation bytes read and written per example."""
        written = _elements(self.shape)
        if self.kind == "zero":
            read = 0
        elif self.kind == "slice":
            read = written
        else:
            read = sum(_elements(s) for s in self.in_shapes)
        return BYTES_PER_VALUE * (read + written)

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights and running statistics read."""
        return BYTES_PER_VALUE * (self.params + self.buffers)


def layer_step(arch: Architecture, index: int) -> Step:
    """Layer ``index`` of ``arch`` as a step of its own."""
    layer = arch.layers[index]
    in_shapes = tuple(arch.layers[i].shape for i in layer.inputs)
    return Step(layer.kind, in_shapes, layer.shape, layer.kernel, layer.stride, layer.pad)


def execution_steps(arch: Architecture) -> list[Step]:
    """The steps the executor runs for ``arch``, in order."""
    fused = arch.fused_relus()
    skipped = set(fused.values())
    steps = []
    for index in range(1, len(arch.layers)):
        if index in skipped:
            continue
        step = layer_step(arch, index)
        if index in fused:
            step = Step("bn_relu", step.in_shapes, step.shape)
        steps.append(step)
    return steps


# -- memory -----------------------------------------------------------------------------

def peak_activation_elements(arch: Architecture) -> int:
    """Largest number of activation values alive at once in inference, per example."""
    last_use = list(range(len(arch.layers)))
    for index, layer in enumerate(arch.layers):
        if layer.kind == "zero":       # reads its input's shape only
            continue
        for source in layer.inputs:
            last_use[source] = max(last_use[source], index)
    sizes = [_elements(layer.shape) for layer in arch.layers]
    return max(sum(size for j, size in enumerate(sizes[:i + 1]) if last_use[j] >= i)
               for i in range(len(arch.layers)))


# -- device profiles --------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceProfile:
    """A device's cost model (module docstring); loaded from YAML by
    :func:`load_profile`.

    ``efficiency`` maps a step kind to the fraction of the peak (compute and bandwidth) it
    reaches (1 when absent). ``fitted`` maps a step kind to :data:`FIT_TERMS`
    coefficients at the measured batch sizes. ``lut`` maps :func:`lut_key` strings to
    measured ms. ``machine`` describes where a calibrated profile was measured, with the
    reference networks' times (:data:`REFERENCE_KEY`). ``drift`` maps batch sizes to the
    factor every estimate is multiplied by (:func:`drift_factor`): how fast the machine
    runs now against its calibration (:mod:`evozero.nas.devices.drift`); a run or a benchmark sets
    it, the YAML form never holds it.
    """

    name: str
    description: str
    peak_gflops: float
    bandwidth_gbs: float
    overhead_us: float
    call_overhead_us: float = 0.0
    efficiency: Mapping[str, float] = field(default_factory=dict)
    memory_limit_bytes: int | None = None
    fitted: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    lut: Mapping[str, float] = field(default_factory=dict)
    machine: Mapping[str, Any] = field(default_factory=dict)
    drift: Mapping[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for batch, factor in self.drift.items():
            if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
                raise EvozeroError(f"the {self.name} profile: drift: batch size {batch!r} "
                                   f"must be a whole number >= 1")
            _number({f"drift.{batch}": factor}, f"drift.{batch}", f"the {self.name} profile")

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (optional parts left out when empty; ``drift`` never)."""
        data: dict[str, Any] = {
            "name": self.name, "description": self.description,
            "peak_gflops": self.peak_gflops, "bandwidth_gbs": self.bandwidth_gbs,
            "overhead_us": self.overhead_us, "call_overhead_us": self.call_overhead_us}
        optional = {"efficiency": dict(self.efficiency),
                    "memory_limit_bytes": self.memory_limit_bytes,
                    "fitted": {kind: dict(terms) for kind, terms in self.fitted.items()},
                    "lut": dict(self.lut), "machine": dict(self.machine)}
        data.update({key: value for key, value in optional.items() if value})
        return data


def lut_key(step: Step, batch: int) -> str:
    """The lookup-table key of ``step`` at ``batch``, e.g.
    ``conv 8x8x16 > 8x8x32 k3x3 s1 p1x1 b64`` (several inputs joined by ``+``)."""
    def text(shape: Shape) -> str:
        return "x".join(str(d) for d in shape)

    inputs = "+".join(text(s) for s in step.in_shapes) if step.kind != "zero" else "-"
    return (f"{step.kind} {inputs} > {text(step.shape)} k{step.kernel[0]}x{step.kernel[1]} "
            f"s{step.stride} p{step.pad[0]}x{step.pad[1]} b{batch}")


def fit_features(step: Step, batch: int) -> tuple[float, ...]:
    """What a fitted per-kind model multiplies by its :data:`FIT_TERMS` coefficients for
    ``batch`` examples: 1, flops, bytes moved (activations and weights), window values."""
    return (1.0, float(batch * step.flops),
            float(batch * step.activation_bytes + step.weight_bytes),
            float(batch * step.window_values))


def step_ms(step: Step, profile: DeviceProfile, batch: int) -> float:
    """Estimated ms of one step on ``profile`` for ``batch`` examples."""
    measured = profile.lut.get(lut_key(step, batch))
    if measured is not None:
        return measured
    features = fit_features(step, batch)
    terms = profile.fitted.get(step.kind)
    if terms is not None:
        # The intercept is in us, the other coefficients in ns per unit.
        return sum(terms[name] * value * (1e-3 if name == "intercept_us" else 1e-6)
                   for name, value in zip(FIT_TERMS, features))
    flops, moved = features[1:3]
    seconds = max(flops / (profile.peak_gflops * 1e9), moved / (profile.bandwidth_gbs * 1e9))
    return seconds * 1e3 / profile.efficiency.get(step.kind, 1.0) + profile.overhead_us * 1e-3


def drift_factor(profile: DeviceProfile, batch: int) -> float:
    """What ``profile``'s estimates at ``batch`` are multiplied by: 1 without drift, the
    drift of ``batch`` where it was measured, else interpolated on the logarithm of the
    batch size between the nearest measured sizes (the nearest one's beyond them)."""
    if not profile.drift:
        return 1.0
    sizes = sorted(profile.drift)
    return float(np.interp(math.log(batch), [math.log(b) for b in sizes],
                           [profile.drift[b] for b in sizes]))


def estimate_ms(steps: Sequence[Step], profile: DeviceProfile, batch: int) -> float:
    """Estimated ms of one inference call running ``steps`` on ``profile`` (scaled by its
    drift)."""
    return drift_factor(profile, batch) * (
        profile.call_overhead_us * 1e-3 + sum(step_ms(s, profile, batch) for s in steps))


# -- the record -------------------------------------------------------------------------

def cost_record(arch: Architecture, profiles: Mapping[str, DeviceProfile], batch: int = 1,
                train_batch: int | None = None) -> dict[str, Any]:
    """The cost record of ``arch`` (keys in the module docstring)."""
    layers = [layer_step(arch, i) for i in range(1, len(arch.layers))]
    reads_input = [0 in arch.layers[i].inputs for i in range(1, len(arch.layers))]
    macs = sum(s.macs for s in layers)
    params = sum(s.params for s in layers)
    buffers = sum(s.buffers for s in layers)
    peak_per_example = BYTES_PER_VALUE * peak_activation_elements(arch)
    all_outputs = BYTES_PER_VALUE * sum(_elements(layer.shape) for layer in arch.layers)
    record: dict[str, Any] = {
        "params": params, "buffers": buffers,
        "weight_bytes": BYTES_PER_VALUE * (params + buffers),
        "macs": macs, "flops": sum(s.flops for s in layers),
        "train_macs": sum(s.macs * (2 if first else 3) for s, first in zip(layers, reads_input)),
        "activation_bytes": sum(s.activation_bytes for s in layers),
        "peak_activation_bytes": batch * peak_per_example,
        "train_peak_activation_bytes": (train_batch or batch) * all_outputs,
        "batch": batch, "train_batch": train_batch,
    }
    steps = execution_steps(arch)
    sizes = {"latency_ms": batch} if train_batch is None else {
        "latency_ms": batch, "latency_ms_train_batch": train_batch}
    record["feasible"] = {name: _fits(p, batch * peak_per_example) for name, p in profiles.items()}
    for key, size in sizes.items():
        record[key] = {name: estimate_ms(steps, p, size)
                       if _fits(p, size * peak_per_example) else math.inf
                       for name, p in profiles.items()}
    return record


def nb201_flops(arch: Architecture) -> int:
    """FLOPs per example as NAS-Bench-201 counts them: one per multiply-accumulate of the
    convolutions and dense layers (``macs``) plus one per dense bias; pools, batch norms,
    ReLUs and additions count nothing."""
    return sum(layer_step(arch, i).macs + (layer.shape[2] if layer.kind == "dense" else 0)
               for i, layer in enumerate(arch.layers) if layer.kind in ("conv", "dwconv", "dense"))


def _fits(profile: DeviceProfile, peak_bytes: int) -> bool:
    return profile.memory_limit_bytes is None or peak_bytes <= profile.memory_limit_bytes


# -- loading ----------------------------------------------------------------------------

def default_host_profile_path() -> Path:
    """Where ``evozero calibrate`` writes the host profile unless told otherwise:
    ``$XDG_CACHE_HOME/evozero/profiles/host.yaml`` (``~/.cache`` without it)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "evozero" / "profiles" / "host.yaml"


def _number(data: Mapping, key: str, where: str, minimum: float = 0.0,
            open_low: bool = True) -> float:
    value = data[key]
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value > minimum if open_low else value >= minimum))
    if not ok:
        bound = f"> {minimum:g}" if open_low else f">= {minimum:g}"
        raise EvozeroError(f"{where}: {key}: must be a number {bound}, got {value!r}")
    return float(value)


def _mapping(data: Mapping, key: str, where: str) -> Mapping:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise EvozeroError(f"{where}: {key}: must be a mapping, got {value!r}")
    return value


def _kind(kind: Any, key: str, where: str) -> str:
    if kind not in STEP_KINDS:
        raise EvozeroError(f"{where}: {key}: unknown step kind {kind!r}; allowed: "
                           f"{', '.join(STEP_KINDS)}")
    return kind


_REQUIRED = ("name", "description", "peak_gflops", "bandwidth_gbs", "overhead_us")
_OPTIONAL = ("call_overhead_us", "efficiency", "memory_limit_bytes", "fitted", "lut",
             "machine")


def _check_reference_timings(machine: Mapping, where: str) -> None:
    timings = machine.get(REFERENCE_KEY)
    if timings is None:
        return
    key = f"machine.{REFERENCE_KEY}"
    allowed = ("must map batch sizes (whole numbers >= 1) to the reference networks' ms "
               "(a list of numbers > 0, one per network)")
    if not isinstance(timings, Mapping) or not timings:
        raise EvozeroError(f"{where}: {key}: {allowed}, got {timings!r}")
    for batch, ms in timings.items():
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise EvozeroError(f"{where}: {key}: batch size {batch!r}: {allowed}")
        # A single number: the total, as profiles calibrated before per-network times.
        for value in ms if isinstance(ms, list) and ms else [ms]:
            _number({f"{key}.{batch}": value}, f"{key}.{batch}", where)


def profile_from_dict(data: Any, where: str) -> DeviceProfile:
    """A profile from its YAML form; ``where`` (the file) prefixes every error."""
    if not isinstance(data, Mapping):
        raise EvozeroError(f"{where}: a device profile must be a mapping of keys, got "
                           f"{type(data).__name__}")
    for key in data:
        if key not in _REQUIRED + _OPTIONAL:
            raise EvozeroError(f"{where}: unknown key {key!r}; allowed: "
                               f"{', '.join(_REQUIRED + _OPTIONAL)}")
    for key in _REQUIRED:
        if key not in data:
            raise EvozeroError(f"{where}: missing key {key!r}")
    for key in ("name", "description"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise EvozeroError(f"{where}: {key}: must be a non-empty string, got "
                               f"{data[key]!r}")
    efficiency = {}
    for kind, value in _mapping(data, "efficiency", where).items():
        key = f"efficiency.{_kind(kind, 'efficiency', where)}"
        efficiency[kind] = _number({key: value}, key, where)
        if efficiency[kind] > 1:
            raise EvozeroError(f"{where}: {key}: must be a fraction in (0, 1], got {value!r}")
    limit = data.get("memory_limit_bytes")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                              or limit <= 0):
        raise EvozeroError(f"{where}: memory_limit_bytes: must be a whole number of bytes "
                           f"> 0, got {limit!r}")
    fitted = {}
    for kind, terms in _mapping(data, "fitted", where).items():
        key = f"fitted.{_kind(kind, 'fitted', where)}"
        if not isinstance(terms, Mapping) or set(terms) != set(FIT_TERMS):
            raise EvozeroError(f"{where}: {key}: must map exactly {', '.join(FIT_TERMS)} "
                               f"to numbers >= 0, got {terms!r}")
        fitted[kind] = {term: _number(terms, term, f"{where}: {key}", open_low=False)
                        for term in FIT_TERMS}
    lut = {}
    for entry, value in _mapping(data, "lut", where).items():
        if not isinstance(entry, str) or entry.split(" ", 1)[0] not in STEP_KINDS:
            raise EvozeroError(f"{where}: lut: key {entry!r} must start with a step kind "
                               f"({', '.join(STEP_KINDS)}), as written by calibration")
        lut[entry] = _number({entry: value}, entry, f"{where}: lut")
    machine = dict(_mapping(data, "machine", where))
    _check_reference_timings(machine, where)
    return DeviceProfile(
        name=data["name"], description=data["description"],
        peak_gflops=_number(data, "peak_gflops", where),
        bandwidth_gbs=_number(data, "bandwidth_gbs", where),
        overhead_us=_number(data, "overhead_us", where, open_low=False),
        call_overhead_us=_number(data, "call_overhead_us", where, open_low=False)
        if "call_overhead_us" in data else 0.0,
        efficiency=efficiency, memory_limit_bytes=limit, fitted=fitted, lut=lut,
        machine=machine)


def load_profile(path: str | os.PathLike) -> DeviceProfile:
    """The profile in the YAML file ``path``."""
    data, _ = read_yaml(os.fspath(path), "device profile")
    return profile_from_dict(data, str(path))


def host_profile(path: str | os.PathLike | None = None) -> DeviceProfile | None:
    """The calibrated profile of this machine: the one at ``path`` when given (it must
    exist), else the one at :func:`default_host_profile_path` if calibration has written
    it (None if not)."""
    host = Path(path) if path is not None else default_host_profile_path()
    return load_profile(host) if path is not None or host.exists() else None


def load_profiles(path: str | os.PathLike | None = None,
                  drift: Mapping[int, float] | None = None) -> dict[str, DeviceProfile]:
    """The shipped profiles, with ``host`` replaced by the calibrated one
    (:func:`host_profile` of ``path``). ``drift`` (factors per batch size) scales the
    profile of this machine, the calibrated one (the shipped ``host`` without
    calibration); the other devices' profiles are not this machine's."""
    profiles = {}
    for file in sorted(PROFILES_DIR.glob("*.yaml")):
        profile = load_profile(file)
        profiles[profile.name] = profile
    calibrated = host_profile(path)
    name = "host"
    if calibrated is not None:
        profiles[calibrated.name] = calibrated
        name = calibrated.name
    if drift:
        profiles[name] = replace(profiles[name], drift=dict(drift))
    return profiles
