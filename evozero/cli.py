"""The ``evozero`` command: run, resume and inspect experiments; list ops; cell costs;
benchmarks.

Bad input (config, run directory, arguments) prints one ``error:`` line and exits with
code 2; an interrupted run exits with 130 after writing its checkpoint.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from evozero.errors import EvozeroError, InternalError

if TYPE_CHECKING:
    from evozero.runs.flow import Run

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


#: Longest measuring budget `evozero calibrate --seconds` takes (a day): an infinite or
#: absurd budget would measure forever.
_MAX_CALIBRATE_SECONDS = 86_400.0


def _calibrate_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= _MAX_CALIBRATE_SECONDS:
        raise argparse.ArgumentTypeError(f"must be a number of seconds in (0, "
                                         f"{_MAX_CALIBRATE_SECONDS:g}], got {text!r}")
    return value


def _feature_sizes(text: str) -> tuple[int, ...]:
    sizes = []
    for part in text.split(","):
        if not part.strip().isdigit() or not 1 <= int(part) <= 1024:
            raise argparse.ArgumentTypeError(
                f"must be feature sizes F in 1..1024 separated by commas, got {text!r}")
        sizes.append(int(part))
    return tuple(sizes)


def _input_shape(text: str) -> tuple[int, int, int]:
    from evozero.nas.reports.cost_command import parse_input_shape

    try:
        return parse_input_shape(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evozero", description="Evolve machine-learning algorithms from scratch.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="start an experiment from a YAML config")
    run.add_argument("config", help="the experiment's YAML file")
    run.add_argument("--seed", type=int, help="random seed (overrides the config's)")
    run.add_argument("--out", default="runs",
                     help="folder the run directory is created in (default: runs)")
    run.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY=VALUE", help="override a config value, e.g. "
                     "--set population_size=100 --set search_tasks.num_tasks=5")

    study = commands.add_parser("study", help="run arms (configs) over many seeds: a study")
    study.add_argument("study", help="the study's YAML file")
    study.add_argument("--out", default=None, metavar="DIR",
                       help="the study directory to make (default: studies/NAME)")
    study.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="runs at a time (default: the study file's workers)")

    resume = commands.add_parser("resume", help="continue a stopped run or study from its "
                                                "checkpoints")
    resume.add_argument("run", help="the run or study directory")
    resume.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                        help="workers to continue on (default: the config's; the run keeps "
                             "its islands, spread over these workers)")

    show = commands.add_parser("show", help="best program (raw and simplified), fitness and "
                                            "settings of a run")
    show.add_argument("run", help="the run directory, or a study directory")
    show.add_argument("--history", action="store_true",
                      help="every improvement of the best, with what changed")
    show.add_argument("--format", choices=("text", "json"), default="text")

    export = commands.add_parser("export", help="write a run's best program as Python")
    export.add_argument("run", help="a run directory (its best program), a program file or a "
                                    "built-in program (linear, logistic, affine, neural_net)")
    export.add_argument("--python", required=True, metavar="FILE", help="the .py file to write")
    export.add_argument("--name", default="EvolvedAlgorithm", help="name of the exported class")

    plot = commands.add_parser("plot", help="fitness curves of one or more runs, as a PNG")
    plot.add_argument("runs", nargs="+", help="run directories (several seeds give a band), "
                                              "or one study directory")
    plot.add_argument("-o", "--output", default="fitness.png", help="the PNG to write")
    plot.add_argument("--x", choices=("individuals", "seconds", "train_steps"),
                      default="individuals", help="what the horizontal axis counts (for a "
                                                  "study: which effort to success is shown)")
    plot.add_argument("--compare", action="store_true",
                      help="overlay runs grouped by config name, with a legend")

    evaluate = commands.add_parser("eval", help="evaluate a program on other tasks")
    evaluate.add_argument("program", help="a run directory (its best program), a program file "
                                          "or a built-in program (linear, logistic, affine, "
                                          "neural_net)")
    evaluate.add_argument("--tasks", required=True,
                          help="a .npz file (x, y), a YAML task spec, or an experiment config "
                               "(its final_tasks)")
    evaluate.add_argument("--seed", type=int, help="root seed of the tasks (overrides the file's)")
    evaluate.add_argument("--combine", choices=("mean", "median"), default="mean")
    evaluate.add_argument("--format", choices=("text", "json"), default="text")

    tune = commands.add_parser("tune", help="tune a program's constants on tasks, then test "
                                            "it on held-out tasks")
    tune.add_argument("program", help="a run directory (its best program), a program file, "
                                      "or a built-in program (linear, logistic, affine, "
                                      "neural_net)")
    tune.add_argument("--tasks", required=True,
                      help="the tuning tasks: a .npz file, a YAML task spec, or an experiment "
                           "config (its select_tasks; its final_tasks are then the held-out "
                           "tasks)")
    tune.add_argument("--test", help="held-out tasks, in the forms --tasks takes")
    tune.add_argument("--trials", type=_positive_int, default=100,
                      help="trials, the first being the program as given (default 100)")
    tune.add_argument("--seed", type=int, default=0, help="seed of the factors (default 0)")
    tune.add_argument("--output", metavar="FILE", help="write the tuned program's text here")
    tune.add_argument("--format", choices=("text", "json"), default="text")

    commands.add_parser("ops", help="list the instruction set")

    calibrate = commands.add_parser(
        "calibrate", help="measure this machine's layer latencies into a device profile "
                          "(used as profile 'host' by NAS runs)")
    calibrate.add_argument("--output", default=None, metavar="FILE",
                           help="the profile YAML to write (default: the user's host profile)")
    calibrate.add_argument("--seconds", type=_calibrate_seconds, default=45.0,
                           help="measuring budget in seconds (default 45)")

    cost = commands.add_parser(
        "cost", help="cost record of a cell's network (params, MACs, FLOPs, memory, latency "
                     "per device profile) without training it")
    cost.add_argument("cell", nargs="?", default=None,
                      help="a NAS-Bench-201 string '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' or a "
                           "NAS-Bench-101 JSON line '{\"matrix\": [[...]], \"ops\": [...]}'")
    cost.add_argument("--matrix", help="a NAS-Bench-101 adjacency matrix as JSON, with --ops")
    cost.add_argument("--ops", help="the NAS-Bench-101 ops, comma-separated, e.g. "
                                    "input,conv3x3-bn-relu,maxpool3x3,output")
    cost.add_argument("--input", type=_input_shape, metavar="HxWxC",
                      help="input shape (default: the benchmark's 32x32x3; 1x40x1 for "
                           "length-40 sequences)")
    cost.add_argument("--classes", type=_positive_int, help="classes (default 10)")
    cost.add_argument("--stem", type=_positive_int, metavar="C",
                      help="stem channels (default: 16 for nb201, 128 for nb101)")
    cost.add_argument("--stacks", type=_positive_int,
                      help="stacks (stages) of cells (default 3)")
    cost.add_argument("--cells-per-stack", type=_positive_int, metavar="N",
                      help="cells per stack (default: 5 for nb201, 3 for nb101)")
    cost.add_argument("--batch", type=_positive_int, default=1,
                      help="batch of the memory and latency figures (default 1)")
    cost.add_argument("--train-batch", type=_positive_int, default=None,
                      help="also give latency and peak memory at this training batch")
    cost.add_argument("--profiles", default=None, metavar="FILE",
                      help="calibrated host profile to use (default: the user's, if any)")
    cost.add_argument("--profile", action="append", default=[], metavar="NAME",
                      help="report only this device profile (repeatable; default: all)")
    cost.add_argument("--format", choices=("text", "json"), default="text")

    table = commands.add_parser(
        "table", help="the tabular benchmark: build, verify, query or describe a table")
    actions = table.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="train every NB-201 network of a config's "
                                             "recipe into a table (resumable)")
    build.add_argument("config", help="YAML config whose nas section is the recipe")
    build.add_argument("directory", help="build folder (run the same command to continue)")
    build.add_argument("--workers", type=_positive_int, default=None,
                       help="worker processes (default: this machine's cores)")
    build.add_argument("--second-seeds", type=int, default=2000, metavar="N",
                       help="networks trained with a second seed (default 2000)")
    build.add_argument("--backend", choices=("local", "ray"), default="local")
    build.add_argument("--address", default=None, help="Ray cluster address (with ray)")
    verify = actions.add_parser("verify", help="retrain random cells and compare them with "
                                               "the table bit for bit")
    verify.add_argument("table", nargs="?", default="nb201-mnist1d",
                        help="table file or shipped name (default nb201-mnist1d)")
    verify.add_argument("--cells", type=_positive_int, default=20)
    verify.add_argument("--seed", type=int, default=0)
    query = actions.add_parser("query", help="a cell's record in the table")
    query.add_argument("cell", help="a NAS-Bench-201 string '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'")
    query.add_argument("--table", default="nb201-mnist1d",
                       help="table file or shipped name (default nb201-mnist1d)")
    query.add_argument("--format", choices=("text", "json"), default="text")
    info = actions.add_parser("info", help="the table's figures: spread, best cell, seed "
                                           "noise, early epochs against the last")
    info.add_argument("table", nargs="?", default="nb201-mnist1d",
                      help="table file or shipped name (default nb201-mnist1d)")
    info.add_argument("--format", choices=("text", "json"), default="text")

    supernet = commands.add_parser(
        "supernet", help="supernet runs: rank cells with a trained supernet against a table")
    supernet_actions = supernet.add_subparsers(dest="action", required=True, metavar="ACTION")
    rank = supernet_actions.add_parser(
        "rank", help="Kendall tau, Spearman rho and top-k overlap of the shared-weight "
                     "scores against the table, for each run (a few-shot run also with its "
                     "one-shot weights) and for the parameter count")
    rank.add_argument("runs", nargs="+", metavar="RUN", help="supernet run directories")
    rank.add_argument("--cells", type=_positive_int, default=1000,
                      help="distinct networks scored, drawn uniformly (default 1000)")
    rank.add_argument("--all", action="store_true",
                      help="score every distinct network of the table instead")
    rank.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    rank.add_argument("--table", default=None,
                      help="table file or shipped name (default: the run's nas.table)")
    rank.add_argument("--format", choices=("text", "json"), default="text")

    bench = commands.add_parser("bench", help="speed benchmarks (ratios against references)")
    bench.add_argument("what", choices=("vm", "search", "scaling", "study", "nas", "layers"),
                       help="what to measure")
    bench.add_argument("--quick", action="store_true", help="smaller workload, rougher figures")
    bench.add_argument("--sizes", nargs="?", const="4,8,16,32,64,256", type=_feature_sizes,
                       metavar="F,F,...",
                       help="vm only: the VM at feature sizes F (default 4,8,16,32,64,256) on "
                            "the linear, two-layer and random-program workloads")
    bench.add_argument("--table", default=None, metavar="TABLE",
                       help="nas only: simulated networks per second of every cell-search "
                            "strategy against TABLE (a table file or a shipped name)")
    return parser


def _joined_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` with each value that starts with '-' joined to its option (``--input
    -1x32x3`` becomes ``--input=-1x32x3``), so argparse reads it as the option's value and
    its check names what is wrong with it, instead of reporting a missing argument."""
    takes_value: set[str] = set()
    options: set[str] = set()
    parsers = [parser]
    while parsers:
        current = parsers.pop()
        for action in current._actions:
            options.update(action.option_strings)
            if action.option_strings and action.nargs is None:
                takes_value.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    joined: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        following = argv[index + 1] if index + 1 < len(argv) else None
        if token in takes_value and following is not None and following.startswith("-") \
                and following not in options and following != "--":
            joined.append(f"{token}={following}")
            index += 2
            continue
        joined.append(token)
        index += 1
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``evozero`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(_joined_values(parser, list(sys.argv[1:] if argv is None
                                                         else argv)))
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        # `run` and `study` stop with a checkpoint of their own; every other command
        # writes its files whole (atomically) or not at all, so stopping is safe anywhere.
        print(f"\nstopped by SIGINT (Ctrl-C): evozero {args.command} wrote nothing "
              f"half-way", file=sys.stderr)
        return EXIT_INTERRUPTED
    except EvozeroError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except InternalError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INTERNAL
    except BrokenPipeError:
        # The reader (e.g. `| head`) left; silence the final flush at exit too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace) -> int:
    from evozero.config import load_config
    from evozero.domains import start_run

    # Validated completely before anything is created on disk.
    config = load_config(args.config, args.overrides, seed=args.seed)
    return _execute(start_run(config, args.out, source=args.config))


def _resume(args: argparse.Namespace) -> int:
    from evozero.domains import resume_run
    from evozero.study.summary import is_study

    if is_study(args.run):
        from evozero.study.command import resume_command
        return resume_command(args)
    return _execute(resume_run(args.run, workers=args.workers))


def _study(args: argparse.Namespace) -> int:
    from evozero.study.command import study_command

    return study_command(args)


def _execute(run: Run) -> int:
    from evozero.runs.flow import Interrupted

    try:
        run.execute()
    except Interrupted as stop:
        print(f"\nstopped by {stop}; checkpoint written. Continue with: "
              f"evozero resume {run.rundir.path}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"run directory: {run.rundir.path}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from evozero.domains import domain_for
    from evozero.runs.rundir import RunDir
    from evozero.study.summary import is_study

    if is_study(args.run):
        from evozero.study.show import show_study

        if args.history:
            raise EvozeroError(f"--history shows one run; give one of the study's runs, "
                               f"e.g. {os.path.join(args.run, 'runs', 'ARM', 'seed-0')}")
        print(show_study(args.run, args.format == "json"))
        return 0
    rundir = RunDir.open(args.run)
    domain = domain_for(rundir.read_config())
    print(domain.show(rundir, args.history, args.format == "json"))
    return 0


def _export(args: argparse.Namespace) -> int:
    from evozero.analysis.export import export_python
    from evozero.analysis.transfer import load_program
    from evozero.domains import domain_for
    from evozero.runs.files import atomic_write_text
    from evozero.runs.rundir import RunDir

    _check_output("--python", args.python)
    if os.path.isdir(args.run):
        rundir = RunDir.open(args.run)
        print(domain_for(rundir.read_config()).export(rundir, args.python, args.name))
        return 0
    program, _ = load_program(args.run)
    atomic_write_text(args.python, export_python(program, name=args.name))
    print(f"wrote {args.python}")
    return 0


def _check_output(option: str, path: str, example: str = "evolved.py",
                  folder_made: bool = False) -> None:
    """A file ``path`` can be written: not a folder, in a folder that exists unless the
    command makes it (``folder_made``), checked before anything is written, as an export
    writes more than one file and a plot would land beside the folder as FOLDER.png."""
    if os.path.isdir(path):
        raise EvozeroError(f"{option} {path}: is a folder; give the file to write, for "
                           f"example {os.path.join(path, example)}")
    folder = os.path.dirname(os.path.abspath(path))
    if not folder_made and not os.path.isdir(folder):
        raise EvozeroError(f"{option} {path}: the folder {folder} does not exist; create it "
                           f"or choose another path")


def _table(args: argparse.Namespace) -> int:
    from evozero.config import Nas, load_config
    from evozero.domains import domain_for
    from evozero.nas.table import command
    from evozero.nas.table.recipe import recipe_config
    from evozero.nas.table.store import load_table
    from evozero.runs.flow import Interrupted
    from evozero.runs.workers import cores

    if args.action in ("query", "info"):
        table = load_table(args.table)
        print(command.query_text(table, args.cell, args.format == "json")
              if args.action == "query" else command.describe(table, args.format == "json"))
        return 0
    if args.action == "verify":
        table = load_table(args.table)
        config = recipe_config(table.meta["recipe"])
        return command.verify_command(table, domain_for(config).section, args.cells, args.seed)
    config = load_config(args.config)
    nas = domain_for(config).section
    if not isinstance(nas, Nas):
        raise EvozeroError(f"{args.config}: has no nas section; a table is built from a "
                           f"cell-search config (see experiments/nb201_mnist1d_table.yaml)")
    try:
        return command.build_command(args.directory, config, nas, args.workers or cores(),
                                     args.second_seeds, args.backend, args.address)
    except Interrupted as stop:
        print(f"\nstopped by {stop}; every finished training is recorded. Continue with "
              f"the same command.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _supernet(args: argparse.Namespace) -> int:
    from evozero.domains import domain_for
    from evozero.nas.reports.supernet_rank import rank_runs, rank_text
    from evozero.runs.rundir import RunDir

    runs = []
    for path in args.runs:
        config = RunDir.open(path).read_config()
        runs.append((path, config, domain_for(config).section))
    rows = rank_runs(runs, None if args.all else args.cells, args.seed, args.table)
    print(rank_text(rows, args.format == "json"))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from evozero.nas.devices.calibrate import calibrate
    from evozero.nas.devices.cost import default_host_profile_path

    calibrate(args.output or str(default_host_profile_path()), seconds_budget=args.seconds)
    return 0


def _plot(args: argparse.Namespace) -> int:
    from evozero.domains import domain_for
    from evozero.runs.rundir import RunDir
    from evozero.study.summary import is_study

    _check_output("--output", args.output, "fitness.png", folder_made=True)
    studies = [path for path in args.runs if is_study(path)]
    if studies:
        from evozero.study.plot import plot_study

        if len(args.runs) > 1 or args.compare:
            raise EvozeroError(f"{studies[0]} is a study: plot it alone, without --compare "
                               f"(its figure already compares the arms)")
        print(f"wrote {plot_study(studies[0], args.output, effort=args.x)}")
        return 0
    runs = [(path, domain_for(RunDir.open(path).read_config())) for path in args.runs]
    path = runs[0][1].plot(runs, args.output, x=args.x, compare=args.compare)
    print(f"wrote {path}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from evozero.analysis.transfer import evaluation_report, load_program, load_tasks

    program, memory = load_program(args.program)
    report = evaluation_report(program, load_tasks(args.tasks, args.seed), memory, args.combine)
    if args.format == "json":
        from evozero.runs.files import json_text

        print(json_text(report, indent=2))
        return 0
    width = max(len(task["name"]) for task in report["tasks"])
    for task in report["tasks"]:
        print(f"{task['name']:<{width}}  {task['fitness']:.6f}")
    print(f"{args.combine} fitness over {len(report['tasks'])} tasks: {report['fitness']:.6f}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from evozero.analysis.tune_command import format_report, tune_report
    from evozero.runs.files import atomic_write_text, json_text

    if args.output is not None:
        _check_output("--output", args.output)
    report = tune_report(args.program, args.tasks, args.test, args.trials, args.seed)
    if args.output is not None:
        atomic_write_text(args.output, report["program"])
    print(json_text(report, indent=2) if args.format == "json" else format_report(report))
    return 0


def _ops(args: argparse.Namespace) -> int:
    from ops.table import markdown

    print(markdown())
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.sizes is not None and args.what != "vm":
        raise EvozeroError(f"--sizes applies to 'evozero bench vm' only, not {args.what!r}")
    if args.table is not None and args.what != "nas":
        raise EvozeroError(f"--table applies to 'evozero bench nas' only, not {args.what!r}")
    if args.what == "vm" and args.sizes is not None:
        from evozero.bench.vm_sizes import run as bench_vm_sizes
        bench_vm_sizes(quick=args.quick, sizes=args.sizes)
    elif args.what == "vm":
        from evozero.bench.vm import run as bench_vm
        bench_vm(programs=4000 if args.quick else 20_000, repeats=3 if args.quick else 7)
    elif args.what == "search":
        from evozero.bench.search import run as bench_search
        bench_search(quick=args.quick)
    elif args.what == "scaling":
        from evozero.bench.scaling import run as bench_scaling
        bench_scaling(quick=args.quick)
    elif args.what == "study":
        from evozero.bench.study import run as bench_study
        bench_study(quick=args.quick)
    elif args.what == "layers":
        from evozero.bench.layers import main as layers
        layers(["--steps", "400"] if args.quick else [])
    elif args.table is not None:
        from evozero.bench.nas_table import run as bench_nas_table
        bench_nas_table(args.table, quick=args.quick)
    else:
        from evozero.bench.nas import run as bench_nas
        bench_nas(quick=args.quick)
    return 0


def _cost(args: argparse.Namespace) -> int:
    from evozero.nas.reports.cost_command import (
        cost_report,
        format_report,
        network_for,
        parse_cell,
        report_json,
    )

    cell = parse_cell(args.cell, args.matrix, args.ops)
    network = network_for(cell, args.input, args.classes, args.stem, args.stacks,
                          args.cells_per_stack)
    report = cost_report(cell, network, args.batch, args.train_batch, args.profiles,
                         tuple(args.profile))
    print(report_json(report) if args.format == "json" else format_report(report))
    return 0


_COMMANDS = {"run": _run, "study": _study, "resume": _resume, "show": _show, "export": _export,
             "plot": _plot, "eval": _eval, "tune": _tune, "ops": _ops, "calibrate": _calibrate,
             "cost": _cost, "table": _table, "supernet": _supernet,
             "bench": _bench}
