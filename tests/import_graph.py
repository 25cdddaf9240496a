"""The import graph of a package tree, read from its source (every import: top-level, inside functions, under
TYPE_CHECKING), and the three rules bridge/'s layout keeps: no import circle, each package imports only the
packages of the layers below it, and each outside client library is imported in its own folder only.

`python tests/import_graph.py` prints what breaks a rule (exit 1), as `make lint` runs it; the tests in
tests/test_import_layers.py hold the real tree to it and prove on small made-up trees that it catches each break.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer)
    for layer in (
        {"bridge", "bridge.errors", "bridge.logs", "bridge.tracking"},  # `bridge` itself: its version
        {"bridge.polyaxon"},
        {"bridge.contract"},
        {"bridge.config", "bridge.executors"},
        {"bridge.engine", "bridge.kafka"},
        {"bridge.service", "bridge.client", "bridge.dash"},
        {"bridge.optuna"},
        {"bridge.app"},
        {"bridge.local"},
        {"bridge.cli"},
        {"bridge.__main__"},
    )
)
"""Bottom to top: a package or top-level module imports only those of lower layers (and itself)."""

CONFINED: Mapping[str, str] = {"aiokafka": "bridge.kafka", "ray": "bridge.executors.ray", "optuna": "bridge.optuna"}
"""An outside library, and the one package or module that may import it."""


def modules(root: Path) -> dict[str, Path]:
    """Every module under `root` (a package folder), by dotted name."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The dotted names `name` imports: a module of the tree where one matches, else the name as written."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the tree it imports, for every module under `root`."""
    mods = modules(root)
    out: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for imported in imports(name, path, mods):
            target = imported
            while target not in mods and "." in target:  # `bridge.x.Name` -> `bridge.x`
                target = target.rpartition(".")[0]
            if target in mods and target != name:
                targets.add(target)
        out[name] = targets
    return out


def circles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Each import circle (a strongly connected set of two or more modules), as a path that closes on itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:  # Tarjan's algorithm, iteratively: no recursion limit to meet
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(sorted(members))

    for name in sorted(edges):
        if name not in index:
            visit(name)
    return found


def unit_of(module: str, layers: Sequence[frozenset[str]]) -> str | None:
    """The package or top-level module of `layers` that `module` belongs to (the longest that contains it); the
    root package's `__init__` is a unit of its own, not the home of every module."""
    units = [u for layer in layers for u in layer if module == u or ("." in u and module.startswith(u + "."))]
    return max(units, key=len) if units else None


def layer_breaks(edges: Mapping[str, set[str]], layers: Sequence[frozenset[str]] = LAYERS) -> list[str]:
    """Each import that goes sideways or up the layers, and each module no layer names."""
    level = {unit: i for i, layer in enumerate(layers) for unit in layer}
    out: list[str] = []
    for module in sorted(edges):
        unit = unit_of(module, layers)
        if unit is None:
            out.append(f"{module}: in no layer of LAYERS")
            continue
        for target in sorted(edges[module]):
            other = unit_of(target, layers)
            if other is None or other == unit:
                continue
            if level[other] >= level[unit]:
                out.append(f"{module} imports {target}: {unit} may import only the layers below it, not {other}")
    return out


def confinement_breaks(root: Path, confined: Mapping[str, str] = CONFINED) -> list[str]:
    """Each module that imports a confined library outside the place that may."""
    mods = modules(root)
    out: list[str] = []
    for name, path in mods.items():
        for target in imports(name, path, mods):
            library = target.partition(".")[0]
            home = confined.get(library)
            if home is not None and name != home and not name.startswith(home + "."):
                out.append(f"{name} imports {target}: only {home} may import {library}")
    return sorted(set(out))


def problems(root: Path) -> list[str]:
    """Everything in the tree at `root` that breaks one of the three rules."""
    edges = graph(root)
    found = [f"import circle: {' -> '.join([*c, c[0]])}" for c in circles(edges)]
    return found + layer_breaks(edges) + confinement_breaks(root)


def main() -> int:
    root = Path(__file__).resolve().parents[1] / "bridge"
    found = problems(root)
    for line in found:
        print(f"import_graph: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
