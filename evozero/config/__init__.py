"""Experiment configs: a frozen dataclass tree loaded from YAML, checked before anything runs.

The dataclasses *are* the schema: every field carries a small checker object in its
metadata, and every problem is an :class:`EvozeroError` of one shape::

    experiments/demo.yaml:12: search_tasks.num_tasks: must be an integer >= 1, got -3

(``file:line: dotted.key: problem``); values given with ``--set`` are located as
``file: --set key=value`` instead of a line.

Sequences are stored as tuples so a loaded config cannot be changed by accident;
``mutations`` is a plain ``dict`` (so :class:`Config` is comparable but not hashable).
Paths in a loaded config are absolute, which is why the resolved config written into a run
directory loads back to an equal config from anywhere.

Modules: ``schema`` (the checker framework and the error format), ``program`` (the
program-search sections), ``cell_search`` (the ``nas`` section), ``root`` (:class:`Config`,
islands, plain-data conversion), ``loading`` (YAML files with line marks, ``--set``,
writing YAML back), ``yaml_file`` (bounded YAML parsing).
"""
from evozero.config.cell_search import Nas, NasConstraints, NasHurdle, NasObjective, NasTraining
from evozero.config.loading import dump_config, load_config, load_task_spec
from evozero.config.program import (
                                    DEMO_OPS,
                                    INITIAL_POPULATIONS,
                                    Budget,
                                    ComputeBudget,
                                    Fec,
                                    Hurdles,
                                    Memory,
                                    OpLists,
                                    SizeBounds,
                                    Sizes,
                                    TaskSpec,
)
from evozero.config.root import (
                                    ISLAND_KEYS,
                                    Config,
                                    config_from_dict,
                                    config_to_dict,
                                    default_config,
                                    island_config,
                                    island_count,
)

__all__ = [
    "DEMO_OPS", "INITIAL_POPULATIONS", "ISLAND_KEYS", "Budget", "ComputeBudget", "Config", "Fec",
    "Hurdles", "Memory", "Nas", "NasConstraints", "NasHurdle", "NasObjective", "NasTraining",
    "OpLists", "SizeBounds", "Sizes", "TaskSpec", "config_from_dict", "config_to_dict",
    "default_config", "dump_config", "island_config", "island_count", "load_config",
    "load_task_spec",
]
