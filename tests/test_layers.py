"""No module imports from a higher layer (videodd.layers.LAYERS), lazy imports included, and no modules
import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

from videodd.layers import LAYERS, layer_of

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "videodd"


def package_sources(root: Path = PACKAGE) -> dict[str, str]:
    """``{module name: source}`` of every module of the package (``videodd.x.y``; a package is its __init__)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path.read_text(encoding="utf-8")
    return out


def imports(name: str, source: str, modules: set[str], is_package: bool) -> set[str]:
    """Modules of the package that ``source`` imports anywhere (function bodies and TYPE_CHECKING too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{base}" if base else parent
            targets = [f"{base}.{a.name}" for a in node.names] or [base]
        for target in targets:
            while target and target not in modules:  # `from videodd.x import name` -> videodd.x
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    modules = set(sources)
    packages = {m for m in modules if any(o.startswith(m + ".") for o in modules)}
    return {m: imports(m, src, modules, m in packages) for m, src in sources.items()}


def upward_imports(sources: dict[str, str]) -> list[str]:
    """``"A (layer) imports B (higher layer)"`` for every violation, and modules in no layer."""
    problems = []
    for module, targets in import_graph(sources).items():
        try:
            mine = layer_of(module)
        except ValueError as err:
            problems.append(str(err))
            continue
        for target in sorted(targets):
            theirs = layer_of(target)
            if theirs > mine:
                problems.append(f"{module} ({LAYERS[mine][0]}) imports {target} ({LAYERS[theirs][0]})")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), ignoring a module's imports of
    its own ancestor packages (a package __init__ re-exports its modules)."""
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_from_a_higher_layer():
    assert upward_imports(package_sources()) == []


def test_no_import_cycles():
    assert cycles(import_graph(package_sources())) == []


def test_a_planted_upward_import_is_caught():
    sources = package_sources()
    lazy = "\n\ndef f():\n    from videodd.distill import distill\n"  # a lazy import counts too
    planted = {**sources, "videodd.data.store": sources["videodd.data.store"] + lazy}
    assert upward_imports(planted) == ["videodd.data.store (data) imports videodd.distill (loop)"]
    root = "\nfrom videodd import DistilledSet\n"
    planted = {**sources, "videodd.models.base": sources["videodd.models.base"] + root}
    assert upward_imports(planted) == ["videodd.models.base (models) imports videodd (api)"]
    planted = {**sources, "videodd.newthing": "x = 1\n"}
    assert upward_imports(planted) == ["module videodd.newthing is in no layer of videodd.layers.LAYERS"]


def test_a_planted_cycle_is_caught():
    graph = import_graph(package_sources())
    graph["videodd.selection.base"] = graph["videodd.selection.base"] | {"videodd.selection.herding"}
    assert ["videodd.selection.base", "videodd.selection.feature_space", "videodd.selection.herding"] in cycles(graph)
