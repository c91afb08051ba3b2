"""Reading configs and task specs from YAML files, ``--set`` overrides, writing YAML back.

Every key read from a file is marked with its ``file:line`` (and every ``--set`` value
with ``file: --set key=value``) so the checkers in ``schema`` can say where a bad value
came from; bounded YAML parsing itself is ``yaml_file``'s.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from evozero.config.program import TaskSpec
from evozero.config.root import _CONFIG, Config, config_to_dict
from evozero.config.schema import _Context, _join, _Section, _show, _Spec, _unknown
from evozero.config.yaml_file import parse_yaml, read_yaml
from evozero.errors import EvozeroError


def load_task_spec(path: str | os.PathLike) -> TaskSpec:
    """The tasks a YAML file describes: one task spec (the keys of a task section, with
    ``kind``; defaults as for ``final_tasks``) or a whole experiment config (its
    ``final_tasks``). Relative paths resolve against the file's directory."""
    path = os.fspath(path)
    data, node = read_yaml(path, "task spec or config")
    ctx = _Context(path, _yaml_marks(node, path) if node is not None else {},
                   os.path.dirname(os.path.abspath(path)))
    if data is not None and not isinstance(data, dict):
        raise ctx.error("", f"must be a task spec (a mapping with kind, num_tasks, ...) or an "
                            f"experiment config, got {_show(data)}")
    if data and "kind" in data:  # a config has no top-level kind: this is a task spec
        return _CONFIG.spec("final_tasks").parse(data, "", ctx)
    return _CONFIG.parse(dict(data or {}), "", ctx).final_tasks


def dump_config(config: Config) -> str:
    """YAML text of the resolved config (every default written out)."""
    header = "# evozero resolved config: every default filled in, paths absolute.\n"
    return header + yaml.dump(config_to_dict(config), Dumper=_Dumper, sort_keys=False,
                              default_flow_style=False, width=120, allow_unicode=True)


class _Dumper(yaml.SafeDumper):
    """Block-style mappings, one-line lists: ``setup: [SCALAR_SUM, VECTOR_SUM]``."""


_Dumper.add_representer(list, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=True))


def load_config(path: str | os.PathLike, overrides: Sequence[str] = (),
                seed: int | None = None) -> Config:
    """Read a YAML config, apply ``--set key=value`` overrides and ``seed``, validate.

    Override values are parsed as YAML (``ops.setup=[scalar_sum, vector_sum]``,
    ``budget.seconds=null``). A null ``name`` becomes the file's stem.
    """
    path = os.fspath(path)
    data, marks = _read_yaml(path)
    ctx = _Context(path, marks, os.path.dirname(os.path.abspath(path)))
    for item in overrides:
        _apply_override(data, item, ctx)
    if seed is not None:
        _set_value(data, "seed", seed, f"{path}: --seed {seed}", ctx)
    config = _CONFIG.parse(data, "", ctx)
    if config.name is None:
        config = dataclasses.replace(config, name=Path(path).stem)
    return config


# --- YAML with line numbers ------------------------------------------------------------


def _read_yaml(path: str) -> tuple[dict, dict[str, str]]:
    """The top-level mapping of a YAML file and ``path:line`` of every key in it."""
    data, node = read_yaml(path, "config file")
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        line = node.start_mark.line + 1 if node is not None else 1
        raise EvozeroError(f"{path}:{line}: the config must be a mapping of keys (such as "
                           f"population_size) to values, got {_show(data)}")
    assert node is not None   # a mapping was read from a node
    return data, _yaml_marks(node, path)


def _yaml_marks(node: yaml.Node, path: str) -> dict[str, str]:
    """``path:line`` of every dotted key and list item under the root ``node``."""
    marks: dict[str, str] = {}
    _mark_nodes(node, "", path, marks)
    return marks


def _mark_nodes(node: yaml.Node, key: str, path: str, marks: dict[str, str]) -> None:
    """Record ``path:line`` for every dotted key and list item under ``node``."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            name = str(key_node.value)
            child = _join(key, name)
            if name in seen:
                raise EvozeroError(f"{path}:{key_node.start_mark.line + 1}: {child}: "
                                   f"duplicate key; give each key once")
            seen.add(name)
            marks[child] = f"{path}:{key_node.start_mark.line + 1}"
            _mark_nodes(value_node, child, path, marks)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = f"{key}[{i}]"
            marks[child] = f"{path}:{item.start_mark.line + 1}"
            _mark_nodes(item, child, path, marks)


# --- --set overrides -----------------------------------------------------------------


def _apply_override(data: dict, item: str, ctx: _Context) -> None:
    """Apply one ``key=value`` override (value parsed as YAML) to the raw data."""
    where = f"{ctx.source}: --set {item}"
    if not isinstance(item, str) or "=" not in item:
        raise EvozeroError(f"{where}: an override must look like key=value (for example "
                           f"population_size=100 or search_tasks.num_tasks=5)")
    key, text = item.split("=", 1)
    key = key.strip()
    value, _ = parse_yaml(text, f"{where}: cannot parse the value {text!r}", lines=False)
    _set_value(data, key, value, where, ctx)


def _set_value(data: dict, key: str, value: Any, where: str, ctx: _Context) -> None:
    """Set dotted ``key`` in the raw data, checking each part against the schema."""
    parts = key.split(".")
    spec: _Spec = _CONFIG
    target = data
    for depth, part in enumerate(parts):
        allowed = spec.subkeys()
        prefix = ".".join(parts[:depth])
        if allowed is None:
            raise EvozeroError(f"{where}: {key}: unknown key; {prefix} is a single value "
                               f"and has no sub-keys; use --set {prefix}=VALUE")
        if part not in allowed:
            scope = f" keys under {prefix}" if prefix else " keys"
            raise EvozeroError(f"{where}: {key}: "
                               + _unknown("key", part, tuple(allowed), scope))
        if depth == len(parts) - 1:
            target[part] = value
            break
        spec = spec.spec(part) if isinstance(spec, _Section) else _Spec()
        if spec.subkeys() is not None:
            target[part] = spec.expand(target.get(part), _join(prefix, part), ctx)
            target = target[part]
    # Later errors about this key (or anything below it) point at the override.
    stale = [k for k in ctx.marks if k == key or k.startswith((key + ".", key + "["))]
    for k in stale:
        del ctx.marks[k]
    ctx.marks[key] = where
