"""Reading YAML the user gives us (configs, task specs, device profiles) with bounded cost.

PyYAML builds aliases as shared objects, so a 500-byte file of nested aliases ("billion
laughs") loads quickly, but everything that later walks the data as a tree (line marks,
validation, ``json.dumps``, the resolved config we write) expands it to billions of
nodes. A self-referencing alias makes those walks endless, and deep nesting exhausts the
Python stack inside the parser. Every document is therefore composed first and its node
graph measured, as a tree, before any Python object is built from it.
"""
from __future__ import annotations

import os
from typing import Any

import yaml

from evozero.errors import EvozeroError

#: Largest YAML file read (the biggest legitimate ones, calibrated device profiles with
#: their lookup tables, are a few hundred kilobytes).
MAX_FILE_BYTES = 16 * 2**20
#: Most nodes a document may have once every alias is expanded (configs have hundreds,
#: calibrated profiles a few thousand; every node becomes a line mark and a checked value).
MAX_NODES = 100_000
#: Deepest nesting of mappings and lists.
MAX_DEPTH = 64


def read_yaml(path: str, what: str) -> tuple[Any, yaml.Node | None]:
    """The data of the YAML file ``path`` (``what`` it is, for messages) and its root node
    (None for an empty document); every problem is an :class:`EvozeroError` naming ``path``."""
    if not os.path.exists(path):
        raise EvozeroError(f"{path}: no such {what}")
    if not os.path.isfile(path):
        raise EvozeroError(f"{path}: not a file (a YAML {what} is expected)")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise EvozeroError(f"{path}: cannot read the {what} ({error.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise EvozeroError(f"{path}: the {what} is larger than {MAX_FILE_BYTES // 2**20} MiB; "
                           f"a YAML {what} is expected")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise EvozeroError(f"{path}:{line}: cannot read the {what}: it is not UTF-8 text "
                           f"(byte 0x{raw[error.start]:02x} at offset {error.start}); save it "
                           f"as UTF-8") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, source: str, lines: bool = True) -> tuple[Any, yaml.Node | None]:
    """Data and root node of the YAML ``text``; ``source`` prefixes every error, followed
    by ``:line`` when ``lines`` (text from a file rather than a command-line value)."""
    try:
        # The reader refuses control characters as it is made: inside the try.
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as error:
        raise EvozeroError(f"{source}: invalid YAML: {str(error).splitlines()[0]}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_size(node, source, lines)
        return loader.construct_document(node), node
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark is not None and lines else ""
        problem = " ".join(p for p in (error.context, error.problem) if p)
        raise EvozeroError(f"{source}{line}: invalid YAML: {problem}") from None
    except RecursionError:
        raise EvozeroError(f"{source}: invalid YAML: nested more than {MAX_DEPTH} levels "
                           f"deep") from None
    except (yaml.YAMLError, ValueError, OverflowError) as error:
        # ValueError: a scalar PyYAML cannot convert (a 5000-digit integer, month 13).
        raise EvozeroError(f"{source}: invalid YAML: {str(error).splitlines()[0]}") from None
    finally:
        loader.dispose()


def _check_size(root: yaml.Node, source: str, lines: bool) -> None:
    """Refuse a node graph that is cyclic, has more than MAX_DEPTH levels of nested
    collections or, expanded as a tree, more than MAX_NODES values. Shared nodes (aliases)
    are measured once and counted at every use, so a bomb is caught without being
    expanded, and a node's depth is its deepest use, whichever use the walk meets first."""
    def where(node: yaml.Node) -> str:
        return f"{source}:{node.start_mark.line + 1}" if lines else source

    sizes: dict[int, int] = {}
    # Levels of collections from a node down to its deepest leaf.
    heights: dict[int, int] = {}
    # Iterative depth-first walk: the graph may be deeper than Python's stack.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            heights[key] = (isinstance(node, yaml.CollectionNode)
                            + max((heights[id(child)] for child in children), default=0))
            if heights[key] > MAX_DEPTH:
                raise EvozeroError(f"{where(node)}: invalid YAML: nested "
                                   f"more than {MAX_DEPTH} levels deep")
            if sizes[key] > MAX_NODES:
                raise EvozeroError(
                    f"{where(root)}: invalid YAML: its aliases expand "
                    f"to more than {MAX_NODES:,} values (a nested-alias bomb?); write the "
                    f"values out or use fewer nested aliases")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise EvozeroError(f"{where(node)}: invalid YAML: an alias "
                               f"refers to its own anchor, so the value would contain itself; "
                               f"remove the self-reference")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
