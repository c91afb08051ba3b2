"""``evozero show STUDY`` and ``evozero plot STUDY`` on synthetic studies."""
from __future__ import annotations

import json

import pytest
from study_fixtures import hand_records, random_study, run_record, write_study

from evozero.cli import EXIT_BAD_INPUT, main
from evozero.study import plot as study_plot
from evozero.study.plot import plot_study
from evozero.study.show import show_study
from evozero.study.summary import summarize


@pytest.fixture
def hand_study(tmp_path):
    return write_study(tmp_path / "study", hand_records())


def _row(text: str, label: str) -> str:
    """The line of the table that starts with ``label`` (after its indent)."""
    rows = [line for line in text.splitlines() if line.strip().startswith(label)]
    assert len(rows) == 1, f"{label!r} in {text}"
    return rows[0]


def test_show_prints_the_hand_computed_figures(hand_study, capsys):
    assert main(["show", str(hand_study)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"study synthetic ({hand_study}): 10 of 10 runs finished; "
                           f"2 arms x 5 seeds; success: solved")
    # Wilson 4/5 = [0.376, 0.964] and 1/5 = [0.036, 0.624] (by hand, z = 1.96).
    assert _row(text, "success rate [").split()[-8:] == \
        "0.800 (4/5) [0.376, 0.964] 0.200 (1/5) [0.036, 0.624]".split()
    # Median of 100..400 is 250; its bootstrap bounds are two of the four values.
    assert _row(text, "individuals").split()[1:2] == ["250"]
    assert "1,000 (n=1)" in _row(text, "individuals")
    assert _row(text, "final tasks (held out)").split()[-8:] == \
        "0.7000 ± 0.0707 (n=5) 0.6800 ± 0.0735 (n=5)".split()
    assert "0.6600 (n=1)" in _row(text, "tuned, final tasks")
    assert _row(text, "logistic (mean 0.6500)").split()[-10:] == \
        "4 of 5 (0 ties) 4 of 5 (0 ties)".split()
    # Katz 4 [0.657, 24.4]; paired t over the differences 0.1, 0, 0, -0.1, 0.1.
    assert _row(text, "ratio of success rates").endswith("4 [0.657, 24.4]")
    assert _row(text, "difference, final tasks").endswith(
        "+0.0200 [-0.0839, +0.1239] over 5 seeds: 2 wins, 2 ties, 1 losses")
    assert "best run: evolution seed 0 (runs/evolution/seed-0), fitness on final tasks " \
           "(held out) 0.9000, succeeded" in text
    assert "    s1 = 0" in text
    assert "Katz log interval" in text and "Wilson score interval" in text


def test_show_json_is_the_summary(hand_study, capsys):
    assert main(["show", str(hand_study), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == summarize(hand_study)


def test_show_of_a_study_still_running_and_of_one_not_started(tmp_path, capsys):
    running = write_study(tmp_path / "running", hand_records()[:3], torn='{"arm": "rand')
    assert main(["show", str(running)]) == 0
    text = capsys.readouterr().out
    assert "3 of 10 runs finished" in text
    assert _row(text, "runs finished").split()[-6:] == "3 of 5 0 of 5".split()
    empty = write_study(tmp_path / "empty", [])
    assert main(["show", str(empty)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == \
        "no run has finished yet; the figures appear as runs finish"


def test_show_says_the_bound_when_an_arm_never_succeeds(tmp_path):
    records = [run_record("evolution", 0, success=True, to_success={"individuals": 9}),
               run_record("random", 0, individuals=20_000)]
    text = show_study(write_study(tmp_path, records, seeds=1))
    # 1 - 0.05^(1/20000) = 1.4979e-4.
    assert _row(text, "no success: chance per evaluation").endswith("0.00015 (0 in 20,000)")
    assert "≥ " in _row(text, "ratio of success rates")
    assert "random never succeeded" in text


def test_show_names_accuracies_in_a_cell_study_and_skips_empty_efforts(tmp_path):
    text = show_study(random_study(tmp_path, seeds=4, nas=True))
    assert "test accuracy" in text and "validation accuracy" in text
    assert "median to success" not in text
    assert "undefined (no success in either arm" in text


def test_show_history_of_a_study_is_refused(hand_study, capsys):
    assert main(["show", str(hand_study), "--history"]) == EXIT_BAD_INPUT
    assert "--history shows one run" in capsys.readouterr().err


def test_a_broken_study_is_a_clear_error_from_the_cli(hand_study, capsys):
    (hand_study / "runs.jsonl").write_text("garbage\n{}\n")
    output = hand_study / "x.png"
    for command in (["show", str(hand_study)], ["plot", str(hand_study), "-o", str(output)]):
        assert main(command) == EXIT_BAD_INPUT
        assert "runs.jsonl:1: corrupt line" in capsys.readouterr().err
    assert not output.exists()


class _Captured:
    """The figure plot_study hands to save_figure, kept for inspection."""

    def __init__(self, monkeypatch):
        self.figure = None
        real = study_plot.save_figure

        def save(figure, output):
            self.figure = figure
            return real(figure, output)

        monkeypatch.setattr(study_plot, "save_figure", save)

    def titles(self) -> list[str]:
        return [axes.get_title() for axes in self.figure.axes]


def test_plot_of_a_study_draws_rates_efforts_fitnesses_and_differences(tmp_path, monkeypatch,
                                                                        capsys):
    captured = _Captured(monkeypatch)
    study = write_study(tmp_path / "study", hand_records())
    output = tmp_path / "study.png"
    assert main(["plot", str(study), "-o", str(output), "--x", "seconds"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {output}"
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    titles = captured.titles()
    assert titles[0] == "success rate (95 % Wilson interval)"
    assert titles[1].startswith("seconds to success")
    assert titles[3].endswith("2 wins, 2 ties, 1 losses")
    rates, efforts = captured.figure.axes[:2]
    assert efforts.get_yscale() == "log" and efforts.get_ylabel() == "seconds"
    # One point per successful run: 4 of evolution, 1 of random search.
    points = [line for line in efforts.get_lines() if line.get_marker() == "o"]
    assert sorted(len(line.get_xdata()) for line in points) == [1, 4]
    labels = [text.get_text() for text in rates.texts]
    assert labels == ["4/5", "1/5"]


def test_plot_of_a_study_without_success_shows_fitnesses_only(tmp_path, monkeypatch):
    captured = _Captured(monkeypatch)
    plot_study(random_study(tmp_path / "nas", seeds=6, nas=True), tmp_path / "nas.png")
    assert len(captured.figure.axes) == 2
    fitnesses, differences = captured.figure.axes
    assert fitnesses.get_ylabel() == "fitness, test accuracy"
    assert "wins" in differences.get_title()
    # Six paired seeds: six joining lines and six differences.
    joins = [line for line in fitnesses.get_lines() if len(line.get_xdata()) == 2]
    assert len(joins) == 6
    assert len(differences.get_lines()[1].get_xdata()) == 6


def test_plot_refuses_an_empty_study_and_a_study_mixed_with_runs(tmp_path, capsys):
    empty = write_study(tmp_path / "empty", [])
    assert main(["plot", str(empty), "-o", str(tmp_path / "e.png")]) == EXIT_BAD_INPUT
    assert "no run of the study has finished yet" in capsys.readouterr().err
    study = write_study(tmp_path / "study", hand_records())
    output = tmp_path / "x.png"
    assert main(["plot", str(study), str(tmp_path / "run"), "-o", str(output)]) == \
        EXIT_BAD_INPUT
    assert "plot it alone" in capsys.readouterr().err
    assert main(["plot", str(study), "--compare", "-o", str(output)]) == EXIT_BAD_INPUT
    assert "plot it alone" in capsys.readouterr().err
    assert not (tmp_path / "e.png").exists() and not output.exists()


def test_show_simplifies_the_best_program_with_its_runs_memory(tmp_path):
    from helpers import random_program, small_config

    from evozero.config.loading import dump_config
    from evozero.programs.simplify import simplify

    config = small_config()
    program = random_program(5, (6, 2, 6), memory=config.memory.sizes)
    simplified = str(simplify(program, config.memory.sizes))
    assert simplified != str(program)
    study = write_study(tmp_path / "study", [run_record("evolution", 0, program=str(program),
                                                        final_fitness=0.9)])
    text = show_study(study)
    assert "(dead code removed)" not in text  # no run directory: the program as recorded
    assert "\n".join("  " + line for line in str(program).splitlines()) in text
    (study / "runs" / "evolution" / "seed-0").mkdir(parents=True)
    (study / "runs" / "evolution" / "seed-0" / "config.yaml").write_text(dump_config(config))
    text = show_study(study)
    assert "its program, simplified (dead code removed):\n" + "\n".join(
        "  " + line for line in simplified.splitlines()) in text
