"""Hostile and careless inputs before a run starts: every one is a clear error.

Each case goes through ``evozero.cli.main`` (exit code 2, one ``error:`` line naming the
file, key or argument and what is allowed, and no run directory left behind) or through
the API (:class:`EvozeroError`). Memory bombs are refused before they allocate: the
tests that would otherwise need gigabytes pin the machine's available memory instead.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import evozero.analysis.transfer
import evozero.evaluation.npz_files
import evozero.evaluation.tasks
import evozero.runs.preflight
from evozero.cli import main
from evozero.config import load_config, load_task_spec
from evozero.domains import domain_for
from evozero.errors import EvozeroError
from evozero.evaluation.tasks import make_tasks
from evozero.runs.preflight import check_before_start, estimate_memory

FAST = settings(max_examples=30)
GIB = 2**30
BASE = """\
seed: 0
workers: 1
population_size: 20
tournament_size: 2
max_experiments: 1
budget: {individuals: 200, train_steps: null}
search_tasks: {num_tasks: 2, train: 40, valid: 10}
select_tasks: {num_tasks: 2, train: 40, valid: 10}
final_tasks: {num_tasks: 2, train: 40, valid: 10}
"""
NAS = """\
seed: 0
workers: 1
population_size: 4
tournament_size: 2
max_experiments: 1
budget: {individuals: 4, train_steps: null}
nas: {dataset: digits, training: {epochs: 1}}
"""
PROGRAM = "def Setup():\ndef Predict():\n  s1 = dot(v0, v1)\ndef Learn():\n"


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


GOOD = npz_bytes(x=np.random.default_rng(0).normal(size=(60, 4)), y=np.zeros(60))


@pytest.fixture(autouse=True)
def no_run_starts(monkeypatch):
    """A case that slips through must fail at once, not run a search."""
    def refuse(self):
        raise AssertionError("the run started")
    monkeypatch.setattr("evozero.runs.flow.Run.execute", refuse)


@pytest.fixture
def machine(monkeypatch):
    """Pin the available memory every check compares with (so results do not depend on
    the machine running the tests); returns the setter."""
    def pin(available: int) -> None:
        for module in (evozero.runs.preflight, evozero.evaluation.tasks,
                       evozero.evaluation.npz_files, evozero.analysis.transfer):
            monkeypatch.setattr(module, "available_memory", lambda: available)
    pin(16 * GIB)
    return pin


def run_cli(tmp_path: Path, config_text: str | bytes, *args: str,
            capsys: pytest.CaptureFixture) -> str:
    """``evozero run`` of a config; asserts exit 2, one error line, no run directory; returns
    the message."""
    path = tmp_path / "exp.yaml"
    if isinstance(config_text, bytes):
        path.write_bytes(config_text)
    else:
        path.write_text(config_text, encoding="utf-8")
    out = tmp_path / "runs"
    code = main(["run", str(path), "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir()), "a run directory was created"
    return err


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def npz_config(path: Path, section: str = "search_tasks", train: int = 40,
               valid: int = 10) -> str:
    plain = f"{section}: {{num_tasks: 2, train: 40, valid: 10}}"
    return BASE.replace(plain, f"{section}: {{kind: npz, num_tasks: 2, train: {train}, "
                               f"valid: {valid}, path: {path}}}")


# --- task files ------------------------------------------------------------------------

CORRUPT = bytearray(GOOD)
CORRUPT[200:400] = b"\xff" * 200
BAD_FILES = {
    "truncated": (GOOD[:len(GOOD) // 2], "not a zip archive"),
    "corrupt": (bytes(CORRUPT), "not a readable .npz file"),
    "empty": (b"", "it is empty"),
    "non-zip": (bytes(range(256)) * 8, "not a zip archive"),
    "text": (b"x,y\n1,2\n3,4\n", "not a zip archive"),
    "complex": (npz_bytes(x=np.ones((60, 4)) * (1 + 2j), y=np.zeros(60)), "complex numbers"),
    "strings": (npz_bytes(x=np.full((60, 4), "a"), y=np.zeros(60)), "must be numeric"),
    "nan": (npz_bytes(x=np.where(np.eye(60, 4) > 0, np.nan, 1.0), y=np.zeros(60)),
            "NaN or infinite"),
    "inf": (npz_bytes(x=np.ones((60, 4)), y=np.full(60, np.inf)), "NaN or infinite"),
    "wrong names": (npz_bytes(X=np.ones((60, 4)), y=np.zeros(60)), "missing array(s) x"),
}


@pytest.mark.parametrize("section", ["search_tasks", "final_tasks"])
@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_task_files_are_refused_before_the_run_exists(tmp_path, capsys, name, section):
    data, expected = BAD_FILES[name]
    path = write(tmp_path, "data.npz", data)
    message = run_cli(tmp_path, npz_config(path, section), capsys=capsys)
    assert f"{section}: {path}" in message and expected in message


def test_a_text_file_given_as_npz_never_mentions_pickles(tmp_path, capsys):
    path = write(tmp_path, "data.npz", "just some text\n")
    assert "pickle" not in run_cli(tmp_path, npz_config(path), capsys=capsys)


def test_too_small_a_file_is_reported_with_the_configured_sizes(tmp_path, capsys):
    path = write(tmp_path, "small.npz", npz_bytes(x=np.ones((5, 4)), y=np.zeros(5)))
    message = run_cli(tmp_path, npz_config(path, "final_tasks"), capsys=capsys)
    assert "final_tasks:" in message
    assert "train + valid = 50 exceeds the 5 examples" in message


def test_forged_npy_header_is_refused_without_allocating(tmp_path, machine):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 4)})
    path = tmp_path / "forged.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(64))
        archive.writestr("y.npy", header.getvalue() + bytes(64))
    with pytest.raises(EvozeroError, match=r"declares shape \(1000000000000, 4\).*truncated"):
        make_tasks("npz", 1, None, 10, 10, path=path)


def test_npz_decompressing_beyond_memory_is_refused_from_its_headers(tmp_path, machine,
                                                                     capsys):
    rows = 2_000_000  # 64 MB of zeros, about 64 KB compressed
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", _npy(np.zeros((rows, 4))))
        archive.writestr("y.npy", _npy(np.zeros(rows)))
    assert path.stat().st_size < 1_000_000
    machine(50 * 2**20)
    message = run_cli(tmp_path, npz_config(path), capsys=capsys)
    assert "decompress to 153 MiB" in message and "50.0 MiB of memory available" in message


def test_npz_loaded_by_every_process_counts_in_the_estimate(tmp_path, machine, capsys):
    rows = 2_000_000
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", _npy(np.zeros((rows, 4))))
        archive.writestr("y.npy", _npy(np.zeros(rows)))
    machine(400 * 2**20)  # one load fits, the main process's and a worker's do not
    message = run_cli(tmp_path, npz_config(path), capsys=capsys)
    assert "the largest part is the task files (305 MiB)" in message


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@FAST
@given(data=st.binary(max_size=2000))
def test_any_bytes_as_npz_are_tasks_or_a_clear_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("npz") / "data.npz"
    path.write_bytes(data)
    with pytest.raises(EvozeroError, match=str(path)):
        make_tasks("npz", 1, None, 1, 1, path=path)


@FAST
@given(cut=st.integers(0, len(GOOD) - 1))
def test_every_truncation_of_a_good_file_is_a_clear_error(tmp_path_factory, cut):
    path = tmp_path_factory.mktemp("npz") / "data.npz"
    path.write_bytes(GOOD[:cut])
    with pytest.raises(EvozeroError, match="not a readable .npz file"):
        make_tasks("npz", 1, None, 40, 10, path=path)


# --- YAML -------------------------------------------------------------------------------

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("text, expected", [
    (LAUGHS, "aliases expand to more than 100,000 values"),
    ("population_size: &a [*a]\n", "refers to its own anchor"),
    ("population_size: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 64 levels"),
    ("a: " + "{b: " * 5000 + "1" + "}" * 5000 + "\n", "nested more than 64 levels"),
    ("population_size: " + "9" * 4000 + "\n",
     "population_size: must be an integer in [2, 1000000000]"),
    ("memory: {scalars: " + "9" * 4000 + "}\n", "memory.scalars: must be an integer in"),
    ("seed: " + "9" * 5000 + "\n", "invalid YAML"),
])
def test_hostile_yaml_is_refused_quickly(tmp_path, capsys, text, expected):
    assert len(LAUGHS) < 600
    message = run_cli(tmp_path, text, capsys=capsys)
    assert str(tmp_path / "exp.yaml") in message and expected in message


def test_non_utf8_config_names_the_line_and_byte(tmp_path, capsys):
    message = run_cli(tmp_path, b"seed: 0\n# caf\xe9\n", capsys=capsys)
    assert "exp.yaml:2: cannot read the config file: it is not UTF-8 text (byte 0xe9" in message


def test_alias_bomb_in_a_set_value_is_refused(tmp_path, capsys):
    # Eight levels of ten aliases each, inline: 10**8 values once expanded.
    levels = ", ".join(f"&l{k} [{', '.join([f'*l{k - 1}'] * 10)}]" for k in range(1, 8))
    text = f"[&l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], {levels}]"
    message = run_cli(tmp_path, BASE, "--set", f"population_size={text}", capsys=capsys)
    assert "--set population_size=" in message and "aliases expand" in message


@FAST
@given(depth=st.integers(1, 80), width=st.integers(1, 6))
def test_nested_aliases_are_loaded_or_refused_by_size(tmp_path_factory, depth, width):
    lines = ["a0: &a0 [1]"] + [
        f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * width)}]" for k in range(1, depth)]
    path = tmp_path_factory.mktemp("yaml") / "exp.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    size, total = 2, 1 + 2 + 2        # a0 is a list and its item; the root; key a0
    for _ in range(1, depth):
        size = 1 + width * size
        total += 1 + size
    with pytest.raises(EvozeroError) as caught:
        load_config(path)
    message = str(caught.value)
    if total > 10**5:
        assert "aliases expand" in message or "nested more than 64" in message
    elif depth + 1 > 64:
        assert "nested more than 64 levels" in message
    else:   # a small document: read in full, then its first key is unknown
        assert message.startswith(f"{path}:1: a0: unknown key")


# --- seeds and numbers ------------------------------------------------------------------

@pytest.mark.parametrize("seed, expected", [
    ("18446744073709551616", "got 18446744073709551616"),
    ("-1", "got -1"),
    ("9" * 4000, "got 999999"),
])
def test_seeds_outside_the_supported_range(tmp_path, capsys, seed, expected):
    message = run_cli(tmp_path, BASE, "--seed", seed, capsys=capsys)
    assert "--seed" in message and expected in message
    assert "seed: must be an integer in [0, 18446744073709551615]" in message


SETTING_LIMITS = {
    "fec.decimals": (15, "an integer in [0, 15]"),
    "search_tasks.features": (10_000, "an integer in [1, 10000]"),
    "fec.cache_size": (10**9, "an integer in [1, 1000000000]"),
    "memory.scalars": (10_000, "an integer in [2, 10000]"),
    "sizes.learn": (10_000, "an integer in [0, 10000]"),
    "nas.stacks": (8, "an integer in [1, 8]"),
    "population_size": (10**9, "an integer in [2, 1000000000]"),
    "budget.individuals": (2**62, "an integer in [1, 4611686018427387904]"),
    "migrate_every": (2**62, "an integer in [1, 4611686018427387904]"),
    "search_tasks.seed": (2**64 - 1, "an integer in [0, 18446744073709551615]"),
    "hurdles.window": (10**9, "an integer in [0, 1000000000]"),
    "islands": (10_000, "an integer in [1, 10000]"),
    "workers": (4096, "an integer in [1, 4096]"),
}


@FAST
@given(key=st.sampled_from(sorted(SETTING_LIMITS)), excess=st.integers(1, 10**30))
def test_every_bounded_setting_states_its_range(tmp_path_factory, key, excess):
    limit, allowed = SETTING_LIMITS[key]
    path = tmp_path_factory.mktemp("limits") / "exp.yaml"
    path.write_text(NAS if key.startswith("nas.") else BASE, encoding="utf-8")
    with pytest.raises(EvozeroError) as caught:
        load_config(path, (f"{key}={limit + excess}",))
    message = str(caught.value)
    assert f"--set {key}=" in message and allowed in message and str(limit + excess)[:20] \
        in message


@pytest.mark.parametrize("value", ["nan", ".nan", ".inf", "1e999", "-1", "0"])
def test_max_abs_error_must_be_a_finite_positive_number(tmp_path, capsys, value):
    message = run_cli(tmp_path, BASE + f"max_abs_error: {value}\n", capsys=capsys)
    assert "exp.yaml:10: max_abs_error: must be a number > 0" in message


# --- memory -----------------------------------------------------------------------------

@pytest.mark.parametrize("setting, part, change", [
    ("population_size=100000000", "the populations", "population_size"),
    ("fec.cache_size=1000000000", "the FEC caches", "fec.cache_size"),
    ("sizes.learn=10000", "the populations", "population_size or sizes"),
    ("search_tasks.train=100000000", "the search tasks", "search_tasks.num_tasks, train"),
    ("search_tasks.features=10000", "the VM memories", "memory.scalars, vectors, matrices"),
    ("final_tasks.num_tasks=1000000", "the final tasks", "final_tasks.num_tasks"),
    ("hurdles.window=1000000000", "the hurdle windows", "hurdles.window"),
])
def test_runs_beyond_memory_are_refused_with_the_estimate(tmp_path, capsys, machine,
                                                          setting, part, change):
    machine(4 * GIB)
    extra = ["--set", "population_size=100000"] if setting.startswith("sizes") else []
    message = run_cli(tmp_path, BASE, "--set", setting, *extra, capsys=capsys)
    assert "the run needs about" in message and "4.0 GiB available" in message
    assert f"the largest part is {part}" in message and f"lower {change}" in message


def test_a_huge_nas_network_is_refused_with_the_estimate(tmp_path, capsys, machine):
    message = run_cli(tmp_path, NAS, "--set", "nas.stacks=4", "--set",
                      "nas.stem_channels=4096", capsys=capsys)
    assert "the largest part is the networks" in message and "nas.stem_channels" in message


def test_the_estimate_grows_with_islands_and_matches_its_parts(tmp_path):
    path = write(tmp_path, "exp.yaml", BASE)
    config = load_config(path, ("population_size=1000000",))
    one, parts = estimate_memory(domain_for(config), 1)
    two, _ = estimate_memory(domain_for(config), 2)
    assert one == sum(parts.values())
    # 1e6 programs of 20 rows: code, constants, lengths and fitness, twice (island and
    # the main process's snapshot).
    assert parts["the populations"] == 2 * 10**6 * 8 * (7 * 20 + 4)
    assert two > one + parts["the populations"] // 2


def test_synthetic_tasks_beyond_memory_are_refused_in_the_api(machine):
    with pytest.raises(EvozeroError, match=r"1000000 tasks of 1000 \+ 1000 examples with "
                                           r"1000 features .* more than the 16.0 GiB"):
        make_tasks("linear", 1_000_000, 1000, 1000, 1000)


def test_resume_checks_the_same_way(tmp_path, machine):
    config = load_config(write(tmp_path, "exp.yaml", BASE), ("population_size=100000000",))
    with pytest.raises(EvozeroError, match="lower population_size"):
        check_before_start(domain_for(config), workers=1)


# --- device profiles and initial populations ---------------------------------------------

@pytest.mark.parametrize("profile, expected", [
    (b"name: host\ndescription: caf\xe9\n", "profile.yaml:2: cannot read the device profile: "
                                            "it is not UTF-8 text"),
    (b"name: host\ndescription: x\npeak_gflops: -1\nbandwidth_gbs: 1\noverhead_us: 0\n",
     "peak_gflops: must be a number > 0, got -1"),
    (LAUGHS.encode(), "aliases expand"),
])
def test_bad_device_profiles_are_refused_before_the_run_exists(tmp_path, capsys, profile,
                                                                expected):
    path = write(tmp_path, "profile.yaml", profile)
    text = NAS.replace("training:", f"profiles_file: {path}, training:")
    assert expected in run_cli(tmp_path, text, capsys=capsys)


def test_unknown_profile_name_is_refused_before_the_run_exists(tmp_path, capsys):
    message = run_cli(tmp_path, NAS.replace("training:", "profile: banana, training:"),
                      capsys=capsys)
    assert "no device profile named 'banana'" in message and "known: host" in message


def test_bad_initial_populations_are_refused_before_the_run_exists(tmp_path, capsys):
    path = write(tmp_path, "programs.txt", "def Setup():\n  banana\n")
    message = run_cli(tmp_path, BASE + f"initial_population: {path}\n", capsys=capsys)
    assert f"{path}: program 1" in message and "banana" in message


def test_initial_programs_that_do_not_fit_are_refused_before_the_run_exists(tmp_path, capsys):
    path = write(tmp_path, "programs.txt", "def Setup():\n  s9 = 0.5\ndef Predict():\n"
                                          "def Learn():\n")
    message = run_cli(tmp_path, BASE + f"initial_population: {path}\n", capsys=capsys)
    assert "program needs memory (10, 1, 0)" in message


# --- evozero eval -------------------------------------------------------------------------

def eval_cli(tmp_path: Path, tasks: Path, *args: str, capsys: pytest.CaptureFixture,
             program: str = PROGRAM) -> str:
    program_path = write(tmp_path, "program.txt", program)
    code = main(["eval", str(program_path), "--tasks", str(tasks), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_eval_names_the_unknown_key_of_a_task_spec(tmp_path, capsys):
    spec = write(tmp_path, "spec.yaml", "kind: linear\nnum_tasks: 2\nbanana: 3\n")
    message = eval_cli(tmp_path, spec, capsys=capsys)
    assert 'spec.yaml:3: banana: unknown key "banana"' in message
    assert "allowed keys: kind, num_tasks" in message and '"kind"' not in message


@pytest.mark.parametrize("name, data, expected", [
    ("spec.yaml", b"kind: linear # caf\xe9\n", "not UTF-8 text"),
    ("spec.yaml", LAUGHS.encode(), "aliases expand"),
    ("spec.yaml", b"- 1\n- 2\n", "must be a task spec"),
    ("tasks.npz", b"x,y\n1,2\n", "not a zip archive"),
    ("tasks.npz", BAD_FILES["complex"][0], "complex numbers"),
    ("tasks.npz", b"", "it is empty"),
])
def test_eval_bad_task_files(tmp_path, capsys, name, data, expected):
    path = write(tmp_path, name, data)
    message = eval_cli(tmp_path, path, capsys=capsys)
    assert str(path) in message and expected in message


def test_eval_seed_outside_the_range(tmp_path, capsys):
    spec = write(tmp_path, "spec.yaml", "kind: linear\nnum_tasks: 2\n")
    message = eval_cli(tmp_path, spec, "--seed", "-1", capsys=capsys)
    assert "--seed: must be an integer in [0, 18446744073709551615], got -1" in message


def test_eval_refuses_a_program_whose_memory_would_not_fit(tmp_path, capsys, machine):
    spec = write(tmp_path, "spec.yaml", "kind: linear\nnum_tasks: 10\nfeatures: 2000\n"
                                        "train: 10\nvalid: 10\n")
    program = "def Setup():\n  m9999 = outer(v0, v0)\ndef Predict():\ndef Learn():\n"
    message = eval_cli(tmp_path, spec, capsys=capsys, program=program)
    assert "needs 2.9 TiB of VM memory" in message and "10000 matrices" in message


def test_a_task_spec_file_is_checked_like_a_config(tmp_path):
    spec = write(tmp_path, "spec.yaml", "kind: linear\nnum_tasks: 0\n")
    with pytest.raises(EvozeroError, match=r"spec.yaml:2: num_tasks: must be an integer in "
                                           r"\[1, 1000000\], got 0"):
        load_task_spec(spec)


def test_a_small_file_that_fits_the_config_also_fits_the_kernel_warm_up(tmp_path):
    from evozero.runs.island import warm_up

    path = write(tmp_path, "six.npz", npz_bytes(x=np.ones((6, 4)), y=np.zeros(6)))
    text = BASE.replace("search_tasks: {num_tasks: 2, train: 40, valid: 10}",
                        f"search_tasks: {{kind: npz, num_tasks: 2, train: 3, valid: 2, "
                        f"path: {path}}}")
    config = load_config(write(tmp_path, "exp.yaml", text))
    check_before_start(domain_for(config))
    warm_up(config)   # used to ask the file for 4 + 4 examples


# --- evozero calibrate ---------------------------------------------------------------------

@pytest.mark.parametrize("where", ["folder", "under a file"])
def test_calibrate_refuses_an_unwritable_output_before_measuring(tmp_path, capsys, where):
    blocker = write(tmp_path, "file.txt", "not a folder")
    output = tmp_path if where == "folder" else blocker / "host.yaml"
    code = main(["calibrate", "--output", str(output), "--seconds", "1"])
    err = capsys.readouterr()
    assert code == 2 and err.err.startswith("error: ") and "Traceback" not in err.err
    assert "calibrating" not in err.out   # refused before anything was measured
