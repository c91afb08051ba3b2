"""``evozero cost``: published benchmark figures through the command, in text and strict
JSON, and clear errors for bad input."""
from __future__ import annotations

import json

import pytest

from evozero.cli import main

pytestmark = pytest.mark.nas


def _no_constants(name: str) -> float:
    raise ValueError(f"not strict JSON: {name}")


def strict_json(text: str):
    return json.loads(text, parse_constant=_no_constants)


# NAS-Bench-201 architectures with the parameters and FLOPs the benchmark gives them at
# its own scale (C = 16, N = 5, 32x32x3, 10 classes unless stated). Sources: the
# benchmark API's cost info quoted in D-X-Y/NATS-Bench#36 (0.802426 M, 113.95137 M) and
# #24 (architecture 0: FLOPs 15.64737 M on CIFAR-10, 15.65322 M on CIFAR-100,
# 3.91948 M on ImageNet16-120); the largest cell and the parameter-free cells
# (1.531546 M / 220.11969 M and 0.073306 M / 7.78305 M) and the cell with convs from an
# unreached node (1.288506 M / 184.73025 M) as the benchmark lists them. Where only the
# FLOPs were published, the parameters follow the benchmark's rule (a conv3x3 edge adds
# 243,040, a conv1x1 edge 28,000); so do the ResNet cell's counts.
PUBLISHED = [
    ("|skip_connect~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     [], 802_426, 113_951_370),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
     "nor_conv_3x3~2|", [], 1_531_546, 220_119_690),
    ("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|"
     "skip_connect~2|", [], 73_306, 7_783_050),
    ("|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     [], 1_288_506, 184_730_250),
    ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|"
     "skip_connect~2|", [], 129_306, 15_647_370),
    ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|"
     "skip_connect~2|", ["--classes", "100"], 135_156, 15_653_220),
    ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|"
     "skip_connect~2|", ["--input", "16x16x3", "--classes", "120"], 136_456, 3_919_480),
    ("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
     [], 559_386, 78_561_930),
]


@pytest.mark.parametrize("cell, options, params, flops", PUBLISHED)
def test_published_nb201_figures_through_the_command(capsys, cell, options, params, flops):
    assert main(["cost", cell, *options, "--format", "json"]) == 0
    report = strict_json(capsys.readouterr().out)
    cost = report["cost"]
    assert (cost["params"], cost["benchmark_flops"]) == (params, flops)
    assert cost["benchmark_flops"] == cost["macs"] + report["classes"]
    assert report["space"] == "nb201" and report["cell"] == cell
    assert set(cost["latency_ms"]) == set(cost["feasible"]) and cost["peak_activation_bytes"] > 0
    assert main(["cost", cell, *options]) == 0
    text = capsys.readouterr().out
    assert f"{params:,}" in text and f"{flops:,}" in text and f"{flops / 1e6:.5f} M" in text


def test_the_nb101_readme_cell_in_both_forms(capsys):
    matrix = ("[[0,1,1,1,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,1],[0,0,0,0,1,0,0],"
              "[0,0,0,0,0,0,1],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]]")
    ops = "input,conv1x1-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output"
    line = json.dumps({"matrix": json.loads(matrix), "ops": ops.split(",")})
    reports = []
    for args in (["--matrix", matrix, "--ops", ops], [line]):
        assert main(["cost", *args, "--format", "json", "--train-batch", "8"]) == 0
        reports.append(strict_json(capsys.readouterr().out))
    assert reports[0] == reports[1]
    report = reports[0]
    # NAS-Bench-101's published count for its README cell (stem 128, 3 stacks x 3 cells).
    assert report["cost"]["params"] == 2_694_282
    assert (report["stem_channels"], report["stacks"], report["cells_per_stack"]) == (128, 3, 3)
    assert report["cost"]["train_batch"] == 8 and report["cost"]["latency_ms_train_batch"]


def test_a_profile_that_cannot_hold_the_network_gives_null_latency(capsys):
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|"
    assert main(["cost", cell, "--format", "json", "--batch", "16", "--profile",
                 "microcontroller", "--profile", "server-gpu"]) == 0
    cost = strict_json(capsys.readouterr().out)["cost"]
    assert cost["feasible"] == {"microcontroller": False, "server-gpu": True}
    assert cost["latency_ms"]["microcontroller"] is None
    assert cost["latency_ms"]["server-gpu"] > 0
    assert main(["cost", cell, "--batch", "16", "--profile", "microcontroller"]) == 0
    assert "latency_ms[microcontroller]: does not fit" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["|nor_conv_3x3~0|+|none~1|"], "3 groups separated by '+'"),
    (["|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "edge 0->1 has op 'conv'"),
    (["nor_conv_3x3"], "a cell is a NAS-Bench-201 string"),
    ([], "give a cell"),
    (["--matrix", "[[0,1],[0,0]]"], "--matrix and --ops go together"),
    (["--matrix", "[[0,1],[0,0", "--ops", "input,output"], "not JSON"),
    (["--matrix", "[[0,1],[0,0]]", "--ops", "input,conv9x9,output"], "give one op per vertex"),
    (["|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--input", "7x7x1",
      "--stacks", "2"], "needs even sizes; at most 1 stack fits 7x7x1"),
    (["|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--profile", "toaster"],
     "unknown device profile 'toaster'; known: "),
    # The skeleton's numbers follow the nas section's ranges: a huge one cannot hang.
    (["|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--cells-per-stack",
      "100000"], "--cells-per-stack: cells_per_stack: must be an integer in [1, 64]"),
    (["|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--stem", "100000000"],
     "--stem: stem_channels: must be an integer in [1, 4096]"),
])
def test_bad_input_exits_2_with_a_clear_message(capsys, args, message):
    assert main(["cost", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("value", ["32x32", "0x8x1", "axbxc", "8x8x1x1"])
def test_a_bad_input_shape_is_an_argument_error(capsys, value):
    cell = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    with pytest.raises(SystemExit) as stop:
        main(["cost", cell, "--input", value])
    assert stop.value.code == 2
    assert "argument --input: must be HxWxC" in capsys.readouterr().err
