"""The import contract: every module of ``ops`` and ``evozero`` imports only its own layer
and the layers below it (docs/design.md, "Layers").

The check reads the source (``ast``), so it sees imports inside functions too and needs
nothing installed beyond the standard library.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest layer first. A module belongs to the layer of the longest prefix that names it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("ops",),
    ("evozero.errors", "evozero.resources", "evozero.optable"),
    ("evozero.programs",),
    ("evozero.evaluation",),
    ("evozero.config",),
    ("evozero.search",),
    ("evozero.runs",),
    ("evozero.analysis",),
    ("evozero.nas.spaces",),
    ("evozero.nas.training",),
    ("evozero.nas.devices",),
    ("evozero.nas.evaluate",),
    ("evozero.nas.table",),
    ("evozero.nas.search",),
    ("evozero.nas.supernet",),
    ("evozero.nas.reports",),
    ("evozero.nas",),
    ("evozero.domains",),
    ("evozero.study",),
    ("evozero.bench", "evozero.cli", "evozero.__main__", "evozero"),
)


def layer_of(module: str) -> int | None:
    """The index in LAYERS of ``module``, or None for a module outside ops and evozero."""
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                # ``from evozero import nas`` imports the subpackage, not the public API.
                sub = f"{target}.{alias.name}"
                named_subpackage = (ROOT / sub.replace(".", "/")).exists() or \
                    (ROOT / (sub.replace(".", "/") + ".py")).exists()
                found.add((node.lineno, sub if named_subpackage else target))
    return sorted(found)


def sources() -> list[Path]:
    return sorted(p for top in ("ops", "evozero") for p in (ROOT / top).rglob("*.py"))


def test_the_layer_table_places_every_module():
    unplaced = [module_name(p) for p in sources() if layer_of(module_name(p)) is None]
    assert not unplaced, f"modules outside the layer table: {unplaced}"


def test_no_module_imports_a_higher_layer():
    violations = []
    for path in sources():
        module = module_name(path)
        own = layer_of(module)
        for line, target in imported_modules(path, module):
            theirs = layer_of(target)
            if theirs is not None and own is not None and theirs > own:
                violations.append(f"{path.relative_to(ROOT)}:{line}: {module} (layer "
                                  f"{' / '.join(LAYERS[own])}) imports {target} (layer "
                                  f"{' / '.join(LAYERS[theirs])})")
    assert not violations, "imports against the layering:\n" + "\n".join(violations)


@pytest.mark.parametrize("module, layer", [
    ("ops.neural.conv", 0), ("evozero.errors", 1), ("evozero.programs.program", 2),
    ("evozero.nas.supernet.island", 14), ("evozero.nas.reports.show", 15),
    ("evozero.nas.spaces.cells", 8), ("evozero.nas.domain", 16),
    ("evozero.study.stats", 18), ("evozero", 19), ("evozero.cli", 19),
    ("numpy", None)])
def test_layer_of(module, layer):
    assert layer_of(module) == layer
