"""The package's import graph, read from the source with ``ast``: no cycle among module-level imports, every
``abaw`` import names a module that exists, and ``abaw --help`` starts without the heavy libraries."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import networkx as nx  # a dependency of torch
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "abaw"
HEAVY = ("torch", "pandas", "scipy", "numpy", "sklearn", "cv2", "av", "matplotlib", "timm", "librosa")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module, module: str) -> tuple[set[str], set[str]]:
    """The ``abaw`` modules ``module`` imports: (at module level, inside functions). ``if TYPE_CHECKING`` blocks
    are left out (they never run)."""
    top: set[str] = set()
    deferred: set[str] = set()
    is_package = MODULES[module].name == "__init__.py"

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:  # relative import
            anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
            base = ".".join(anchor + ([base] if base else []))
        names = []
        for alias in node.names:  # ``from abaw import tasks`` imports the module abaw.tasks
            names.append(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        return names

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(ast.Module(body=[sub], type_ignores=[]), in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for name in targets(child):
                    if name == "abaw" or name.startswith("abaw."):
                        (deferred if in_function else top).add(name)
                continue
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return top, deferred


def _with_parents(names: set[str]) -> set[str]:
    """Importing ``abaw.a.b`` runs ``abaw/a/__init__.py`` first: the package is imported too."""
    out = set()
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return out


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``{module: modules it imports}`` at module level, and inside functions."""
    top: dict[str, set[str]] = {}
    deferred: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        t, d = _imports(ast.parse(path.read_text(encoding="utf-8"), str(path)), module)
        top[module] = _with_parents(t) - {module}
        deferred[module] = _with_parents(d) - {module}
    return top, deferred


def test_no_import_cycle_at_module_level() -> None:
    top, _ = import_graph()
    # A package does not depend on its own modules' import of it (Python imports the package first).
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in top.items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle at module level: {' -> '.join(exc.args[1])}")


def _cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module: each holds at least one cycle."""
    digraph = nx.DiGraph([(m, d) for m, deps in graph.items() for d in deps])
    return {frozenset(c) for c in nx.strongly_connected_components(digraph) if len(c) > 1}


def test_no_cycle_through_function_level_imports() -> None:
    """An import moved into a function breaks a cycle at start-up, not the tangle: two modules that need each other
    are one unit in disguise."""
    top, deferred = import_graph()
    graph = {m: {d for d in top[m] | deferred[m] if not m.startswith(d + ".")} for m in MODULES}
    assert [sorted(c) for c in _cycles(graph)] == []


def test_every_abaw_import_names_a_module() -> None:
    top, deferred = import_graph()
    missing = sorted(f"{m} imports {d}" for m in MODULES for d in top[m] | deferred[m] if d not in MODULES)
    assert missing == []


def test_the_root_vocabulary_does_not_import_sub_packages() -> None:
    """tasks, errors, fileio and metrics are what the sub-packages build on: they import only root modules."""
    top, deferred = import_graph()
    root = {m for m, p in MODULES.items() if m.count(".") == 1 and p.name != "__init__.py"}
    for module in ("abaw.tasks", "abaw.errors", "abaw.fileio", "abaw.metrics"):
        assert top[module] | deferred[module] <= root, module


def test_the_cycle_finders_see_cycles() -> None:
    graph = {"abaw.a": {"abaw.b"}, "abaw.b": {"abaw.c"}, "abaw.c": {"abaw.a", "abaw.d"}, "abaw.d": {"abaw.e"},
             "abaw.e": {"abaw.d"}, "abaw.f": {"abaw.a"}}
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter(graph).static_order())
    assert _cycles(graph) == {frozenset({"abaw.a", "abaw.b", "abaw.c"}), frozenset({"abaw.d", "abaw.e"})}
    assert _cycles({"abaw.a": {"abaw.b"}, "abaw.b": set()}) == set()


def _imported_at_start(*argv: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "abaw", *argv], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return {name.split(".")[0] for name in lines}


@pytest.mark.parametrize("argv", [("--help",), ("leaderboard", "--help")])
def test_help_starts_without_heavy_libraries(argv: tuple[str, ...]) -> None:
    imported = _imported_at_start(*argv)
    assert "abaw" in imported
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))
