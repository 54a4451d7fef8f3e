"""The import rules the layout stands for, read from the source with ``ast``.

- The modules of ``model_assigner`` (core and bot together) import each
  other without cycles, every import counted: at module level, inside
  functions, under TYPE_CHECKING. Each cycle found is reported as a path.
- Only ``bot/web/`` imports the web framework (flask, werkzeug, gunicorn),
  and the command line reaches none of it but the local page of ``setup``
  (bot/web/setup_page.py), imported when that command runs: ``plan``, the
  queue worker and the operator commands build what they need through
  bot/wiring.py, never through the Flask module.
- No file under tests/ imports a test module (``test_*.py``) or a
  ``conftest.py`` (relative imports included): what tests share lives in a
  support module; a conftest holds fixtures, which pytest loads itself.

Every module under core/ and bot/ is parsed; nothing is imported. That
``core/`` is pure (no bot, framework, network, filesystem, thread or clock
module, so ``bot -> core`` is the only direction) is tests/core/test_imports.py's
rule, over the same kind of scan.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "model_assigner"

WEB_FRAMEWORKS = ("flask", "werkzeug", "gunicorn")
WEB_PACKAGE = f"{PACKAGE}.bot.web"
# The one web module a command may import, and only inside the command's function.
CLI_MAY_REACH = {f"{PACKAGE}.bot.web.setup_page": f"{PACKAGE}.bot.cli.setup"}


def module_files() -> dict[str, Path]:
    """``model_assigner.bot.cli.ops`` -> bot/cli/ops.py, for every module."""
    found: dict[str, Path] = {}
    for top in ("core", "bot"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "shipped" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([PACKAGE, *parts])] = path
    return found


def imported_names(module: str, path: Path) -> set[str]:
    """Every name ``module`` imports anywhere in its file (module level,
    functions, TYPE_CHECKING blocks), relative imports resolved; for ``from
    package import name`` both ``package`` and ``package.name``."""
    names: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def import_graph(files: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (a ``from pkg import name`` that
    names a submodule counts as importing that submodule)."""
    return {
        module: {name for name in imported_names(module, path)
                 if name in files and name != module}
        for module, path in files.items()
    }


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """Tarjan's components with more than one module: each holds a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(start: str) -> None:
        # Iterative, so a deep import chain cannot hit the recursion limit.
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def cycle_paths(graph: Mapping[str, Iterable[str]], component: set[str]) -> list[str]:
    """For each module of a component, the shortest cycle through it, as
    ``a -> b -> a`` (each cycle once)."""
    paths: dict[frozenset[str], str] = {}
    for start in sorted(component):
        came_from: dict[str, str] = {}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if start in graph[node] and (node != start):
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                chain = [*reversed(path), start]
                short = [name.removeprefix(f"{PACKAGE}.") for name in chain]
                paths.setdefault(frozenset(chain), " -> ".join(short))
                break
            for child in sorted(graph[node]):
                if child in component and child not in came_from and child != start:
                    came_from[child] = node
                    queue.append(child)
    return sorted(paths.values())


def top_level(name: str) -> str:
    """``model_assigner.core.x`` -> ``model_assigner.core``; ``os.path`` -> ``os``."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == PACKAGE else parts[0]


FILES = module_files()
GRAPH = import_graph(FILES)


def test_the_scan_sees_the_layout() -> None:
    # A scan that found nothing would pass every rule below.
    for module in ("model_assigner.core.selection", "model_assigner.bot.handling.handler",
                   "model_assigner.bot.cli", "model_assigner.bot.cli.errors",
                   "model_assigner.bot.web.app", "model_assigner.bot.github.api",
                   "model_assigner.bot.queue.worker", "model_assigner.bot.wiring"):
        assert module in FILES, module
    assert "model_assigner.bot.cli.errors" in GRAPH["model_assigner.bot.cli.stores"]


def test_no_import_cycles_among_our_modules() -> None:
    report = [path for component in strongly_connected(GRAPH)
              for path in cycle_paths(GRAPH, component)]
    assert not report, "import cycles:\n" + "\n".join(report)


def test_only_the_web_package_imports_the_web_framework() -> None:
    outside = sorted(
        f"{module} imports {name}"
        for module, path in FILES.items()
        if not (module == WEB_PACKAGE or module.startswith(WEB_PACKAGE + "."))
        for name in imported_names(module, path)
        if top_level(name) in WEB_FRAMEWORKS
    )
    assert not outside, "the web framework outside bot/web/:\n" + "\n".join(outside)


def module_level_imports(path: Path) -> set[str]:
    """The names imported by the statements at the top of a module (run on import)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_command_line_never_imports_the_web_app() -> None:
    # Everything the CLI's modules reach, transitively, through our imports.
    reached: dict[str, str] = {}  # module -> the module that imports it
    todo = [(module, module) for module in FILES if module.startswith(f"{PACKAGE}.bot.cli")]
    while todo:
        module, importer = todo.pop()
        if module in reached:
            continue
        reached[module] = importer
        todo.extend((child, module) for child in GRAPH[module])
    web = sorted(
        f"{reached[module]} -> {module}" for module in reached
        if module.startswith(WEB_PACKAGE + ".") and module not in CLI_MAY_REACH
        and module != f"{WEB_PACKAGE}.signature"  # hmac only: send-sample signs with it
    )
    assert not web, "the CLI reaches the web app:\n" + "\n".join(web)
    for page, command in CLI_MAY_REACH.items():
        assert page not in module_level_imports(FILES[command]), (
            f"{command} imports {page} at module level: every command would load Flask")


def test_the_cycle_finder_finds_what_it_must() -> None:
    # The rule above is only as good as the finder: a known graph.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}}
    components = sorted(strongly_connected(graph), key=sorted)
    assert components == [{"a", "b", "c"}, {"e", "f"}]
    assert cycle_paths(graph, {"a", "b", "c"}) == ["a -> b -> c -> a"]
    assert cycle_paths(graph, {"e", "f"}) == ["e -> f -> e"]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(("module", "line", "expected"), [
    ("model_assigner.bot.cli.ops", "from .errors import CliError",
     {"model_assigner.bot.cli.errors", "model_assigner.bot.cli.errors.CliError"}),
    ("model_assigner.bot.cli", "from . import ops",
     {"model_assigner.bot.cli", "model_assigner.bot.cli.ops"}),
])
def test_relative_imports_are_resolved(
    module: str, line: str, expected: set[str], tmp_path: Path
) -> None:
    path = tmp_path / ("__init__.py" if module.endswith(".cli") else "ops.py")
    path.write_text(f"def f() -> None:\n    {line}\n")
    assert imported_names(module, path) == expected


def test_building_the_parser_loads_no_web_framework() -> None:
    # The same rule at run time: `model-assigner --help` and every command but
    # `setup` and `serve` (which execs gunicorn) start without Flask.
    probe = (
        "import sys\n"
        "from model_assigner.bot.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'flask', 'werkzeug', 'gunicorn'}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_test_import_scan_finds_what_it_must(tmp_path: Path) -> None:
    path = tmp_path / "test_x.py"
    path.write_text("from tests.bot import test_handler\n"
                    "def f() -> None:\n    from tests.bot.test_store import NOW\n"
                    "from tests.bot.support import REPO\n"
                    "from tests.bot.conftest import WEBHOOKS\n"
                    "import tests.conftest\n"
                    "from .test_fork import x\n"
                    "from . import conftest\n"
                    "from .. import test_readme\n"
                    "from ..helpers import NOW\n")
    assert sorted(imported_test_modules(path, "tests.bot.web.test_x")) == [
        "tests.bot.conftest", "tests.bot.test_handler", "tests.bot.test_readme",
        "tests.bot.test_store", "tests.bot.web.conftest", "tests.bot.web.test_fork",
        "tests.conftest"]


def _is_test_or_conftest(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return name.startswith("tests.") and (last.startswith("test_") or last == "conftest")


def imported_test_modules(path: Path, module: str | None = None) -> list[str]:
    """The test modules (``test_*``) and conftests that the file at ``path``
    (the module ``module``, by default its place under the checkout) imports,
    relative imports resolved. A conftest is pytest's to load: imported as a
    module as well, it would exist twice."""
    if module is None:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    is_package = path.name == "__init__.py"
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names = [source, *(f"{source}.{a.name}" for a in node.names)]
        else:
            continue
        found += [n for n in names if _is_test_or_conftest(n)]
    return found


def test_no_test_module_imports_another() -> None:
    # Every file under tests/ (support modules and conftests too): none
    # imports a test module or a conftest.
    report = {
        str(path.relative_to(ROOT)): imported
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if (imported := imported_test_modules(path))
    }
    assert not report, f"files importing test modules or conftests: {report}"
