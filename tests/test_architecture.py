"""The layers of docs/architecture.md, held against every module's imports.

Each module of ``src/healthkit`` belongs to one layer (``LAYERS``: path patterns
relative to ``src/healthkit``). A module may import its own layer and the layers
below it, never one above; no module inside the package imports the package root
``healthkit`` (it re-exports, so it sits above everything); and the runtime
imports have no cycle. Imports are read with ``ast``: module-level and inside
functions alike. Those under ``if TYPE_CHECKING:`` are exempt from the layer and
cycle rules (they never run), not from the root rule.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "healthkit"
DOC = ROOT / "docs" / "architecture.md"

#: Layer number, name, path patterns (relative to src/healthkit; ``*`` spans folders).
#: Keep in step with the module map of docs/architecture.md (a test checks the patterns).
LAYERS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        0,
        "values",
        (
            "_status.py",
            "_result.py",
            "_secret.py",
            "_url.py",
            "_frozen.py",
            "_errors.py",
            "validators.py",
            "_walk.py",
            "_proto/*",
        ),
    ),
    (
        1,
        "contracts and config",
        (
            "_strategy.py",
            "_hookspecs.py",
            "_registrar.py",
            "_monitor_settings.py",
            "_configuration/*",
            "_notifier.py",
            "_config.py",
        ),
    ),
    (2, "toolkit", ("_guard.py", "_gate.py", "_redact.py", "_isolation.py", "toolkit/*")),
    (
        3,
        "plugins and instances",
        (
            "strategies/*",
            "notify/*",
            "_plugins.py",
            "_plugin_failure.py",
            "_registry.py",
            "_resolver.py",
            "_plan.py",
        ),
    ),
    (
        4,
        "facade and runtime",
        (
            "_healthkit.py",
            "_monitoring/*",
            "_monitor.py",
            "_metrics.py",
            "_watchdog.py",
            "history/*",
            "_operations.py",
        ),
    ),
    (5, "integrations", ("asgi/*", "kserve/*", "grpc_health/*", "ray/*")),
    (6, "front ends", ("cli/*", "testing/*", "__main__.py")),
    (7, "package root", ("__init__.py",)),
)

ROOT_MODULE = "healthkit"


@attrs.frozen
class Import:
    source: str  # dotted module name
    target: str  # dotted module name the names come from (a submodule when one is named)
    line: int
    type_checking: bool
    #: Written as ``import healthkit`` or ``from healthkit import ...``.
    names_root: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(path: Path) -> tuple[int, str] | None:
    """The layer of one module: an exact path beats a folder pattern (``history/*``)."""
    rel = path.relative_to(PACKAGE).as_posix()
    found = [
        (number, pattern)
        for number, _, patterns in LAYERS
        for pattern in patterns
        if fnmatch.fnmatchcase(rel, pattern)
    ]
    exact = [(number, pattern) for number, pattern in found if pattern == rel]
    found = exact or found
    assert len(found) <= 1, f"src/healthkit/{rel} matches several layer patterns: {found}"
    return found[0] if found else None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, text: str, *, is_package: bool, known: set[str]) -> Iterator[Import]:
    """The imports of healthkit's own modules in module ``name`` (source ``text``)."""
    tree = ast.parse(text, name)
    package = name if is_package else name.rpartition(".")[0]

    def walk(node: ast.AST, type_checking: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk_one(stmt, True)
                for stmt in child.orelse:
                    yield from walk_one(stmt, type_checking)
            else:
                yield from walk_one(child, type_checking)

    def walk_one(node: ast.AST, type_checking: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == ROOT_MODULE:
                    root = alias.name == ROOT_MODULE
                    yield Import(name, alias.name, node.lineno, type_checking, root)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            if origin.split(".")[0] != ROOT_MODULE:
                return
            for alias in node.names:
                sub = f"{origin}.{alias.name}"
                target = sub if sub in known else origin
                # ``from healthkit import validators`` names a submodule, not the root's names.
                root = origin == ROOT_MODULE and target == ROOT_MODULE
                yield Import(name, target, node.lineno, type_checking, root)
        else:
            yield from walk(node, type_checking)

    yield from walk(tree, False)


def all_imports() -> list[Import]:
    found = modules()
    known = set(found)
    # One entry per imported module and statement: ``from x import a, b`` is one import of x.
    return list(
        dict.fromkeys(
            imp
            for name, path in found.items()
            for imp in imports_of(
                name,
                path.read_text(encoding="utf-8"),
                is_package=path.name == "__init__.py",
                known=known,
            )
        )
    )


def where(imp: Import) -> str:
    path = modules()[imp.source].relative_to(ROOT).as_posix()
    return f"{path}:{imp.line}"


def test_every_module_is_in_one_layer() -> None:
    missing = [
        path.relative_to(ROOT).as_posix() for path in modules().values() if layer_of(path) is None
    ]
    assert not missing, (
        f"modules in no layer: {missing}. Declare each in LAYERS of tests/test_architecture.py "
        "(a path pattern relative to src/healthkit, in the lowest layer whose modules it "
        "imports) and in the module map of docs/architecture.md"
    )


def packages_run_by(imp: Import) -> list[str]:
    """The packages whose ``__init__`` importing ``imp.target`` runs (not the source's own)."""
    parts = imp.target.split(".")
    return [
        package
        for package in (".".join(parts[:n]) for n in range(2, len(parts)))
        if not (imp.source == package or imp.source.startswith(package + "."))
    ]


def test_no_module_imports_a_higher_layer() -> None:
    found = modules()
    names = {number: name for number, name, _ in LAYERS}
    upward = []
    for imp in all_imports():
        if imp.type_checking or imp.target not in found or imp.names_root:
            continue  # the root is test_no_module_inside_imports_the_package_root's
        source = layer_of(found[imp.source])
        if source is None:
            continue  # reported by test_every_module_is_in_one_layer
        # Importing a module runs its packages' __init__ first: those count too.
        for target_name in (imp.target, *packages_run_by(imp)):
            target = layer_of(found[target_name])
            if target is None or target[0] <= source[0]:
                continue
            how = "imports" if target_name == imp.target else f"imports {imp.target}, so runs"
            upward.append(
                f"{where(imp)}: {imp.source} (layer {source[0]}, {names[source[0]]}) {how} "
                f"{target_name} (layer {target[0]}, {names[target[0]]})"
            )
    assert not upward, (
        "imports up the layers (move the imported code down, or the importer up; "
        "see docs/architecture.md):\n" + "\n".join(upward)
    )


def test_no_module_inside_imports_the_package_root() -> None:
    offenders = [
        f"{where(imp)}: {imp.source} imports from the package root; import from the module "
        f"that defines the name (say healthkit._status for Status)"
        for imp in all_imports()
        if imp.names_root and imp.source != ROOT_MODULE
    ]
    assert not offenders, "\n".join(offenders)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), or a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def runtime_graph() -> tuple[dict[str, set[str]], list[Import]]:
    found = modules()
    graph: dict[str, set[str]] = {name: set() for name in found}
    edges = [imp for imp in all_imports() if not imp.type_checking and imp.target in found]
    for imp in edges:
        graph[imp.source].add(imp.target)
    return graph, edges


def test_runtime_imports_have_no_cycle() -> None:
    graph, edges = runtime_graph()
    report = []
    for component in _cycles(graph):
        members = set(component)
        ties = [
            f"  {where(imp)}: {imp.source} -> {imp.target}"
            for imp in edges
            if imp.source in members and imp.target in members
        ]
        report.append(f"cycle among {component}:\n" + "\n".join(ties))
    assert not report, "\n".join(report)


def test_the_cycle_finder_finds_a_cycle() -> None:
    # The checks above pass on an empty answer; the finder itself must see a loop.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}}) == [["a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_reader_sees_every_kind_of_import() -> None:
    text = (
        "from typing import TYPE_CHECKING\n"
        "from healthkit import validators\n"
        "from healthkit import Status\n"
        "from .. import _status\n"
        "from ..toolkit import ResultBuilder\n"
        "import healthkit._monitor\n"
        "if TYPE_CHECKING:\n"
        "    from ..asgi import ShowDetails\n"
        "def late():\n"
        "    from ..cli import cli\n"
    )
    found = imports_of("healthkit.strategies.probe", text, is_package=False, known=set(modules()))
    assert {(imp.target, imp.type_checking, imp.names_root) for imp in found} == {
        ("healthkit.validators", False, False),
        ("healthkit", False, True),
        ("healthkit._status", False, False),
        ("healthkit.toolkit", False, False),
        ("healthkit._monitor", False, False),
        ("healthkit.asgi", True, False),
        ("healthkit.cli", False, False),
    }


def test_the_doc_names_every_layer_pattern() -> None:
    shown = set(re.findall(r"`([^`]+)`", DOC.read_text(encoding="utf-8")))
    missing = [p for _, _, patterns in LAYERS for p in patterns if p not in shown]
    assert not missing, f"docs/architecture.md does not name these layer patterns: {missing}"


def test_loading_a_config_runs_nothing_above_the_config_layer() -> None:
    # What the layer rule means at run time: the config loader (layer 1) pulls in no
    # runtime package (the history store, notifiers, the monitor) nor their libraries.
    code = (
        "import sys, healthkit._config\n"
        "heavy = ('healthkit.history', 'healthkit.notify', 'healthkit._monitor', "
        "'healthkit._resolver', 'sqlite3', 'tenacity')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
