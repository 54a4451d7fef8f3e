"""The engine's import rules, read from its source: core/ is pure (no
filesystem, network, process or web framework modules, no bot code), and its
modules import each other without a cycle. Every import counts, also one
inside a function: a lazy import hides a dependency, it does not remove it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core"
# What the engine may import besides itself: computation, data and parsing.
ALLOWED = frozenset({
    "__future__", "bisect", "calendar", "collections", "dataclasses", "datetime", "enum",
    "functools", "hashlib", "heapq", "itertools", "json", "math", "operator", "re",
    "statistics", "typing", "numpy", "pydantic", "scipy", "yaml",
})


def imports_of(path: Path, package: str = "model_assigner.core") -> set[str]:
    """Every module ``path`` (a module of ``package``) imports, anywhere in it.
    Relative imports are resolved against ``package``: ``from ..bot import x``
    is ``model_assigner.bot`` and ``model_assigner.bot.x``, not core; one that
    climbs above the top package is reported as ``..`` (never allowed)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    found.add("..")
                    continue
                source = ".".join(parts[: len(parts) - (node.level - 1)]
                                  + ([node.module] if node.module else []))
                found.add(source)
                found |= {f"{source}.{alias.name}" for alias in node.names}
            elif node.module:
                found.add(node.module)
    return found


MODULES = sorted(CORE.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_imports_only_pure_modules(path: Path) -> None:
    foreign = sorted(
        name for name in imports_of(path)
        if not name.startswith("model_assigner.core") and name.split(".")[0] not in ALLOWED
    )
    assert foreign == [], f"core/{path.name} imports {foreign}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_never_imports_bot(path: Path) -> None:
    assert not any(
        name.startswith(("model_assigner.bot", "bot")) for name in imports_of(path)
    )


@pytest.mark.parametrize("line", [
    "from ..bot import wiring", "from .. import bot", "from ..bot.web.app import create_app",
    "def f() -> None:\n    from ..bot import wiring",
])
def test_a_relative_import_of_bot_is_caught(line: str, tmp_path: Path) -> None:
    path = tmp_path / "planted.py"
    path.write_text(line + "\n", encoding="utf-8")
    names = imports_of(path)
    assert any(name.startswith("model_assigner.bot") for name in names), names
    assert not any(name.startswith("model_assigner.core") for name in names), names


def test_relative_imports_inside_core_stay_in_core(tmp_path: Path) -> None:
    path = tmp_path / "planted.py"
    path.write_text("from .model import Task\nfrom . import scoring\n", encoding="utf-8")
    assert imports_of(path) == {
        "model_assigner.core.model", "model_assigner.core.model.Task",
        "model_assigner.core", "model_assigner.core.scoring"}


def test_core_modules_import_each_other_without_a_cycle() -> None:
    graph = {
        path.stem: {
            name.removeprefix("model_assigner.core.").split(".")[0]
            for name in imports_of(path)
            if name.startswith("model_assigner.core.")
        }
        for path in MODULES
    }
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            cycle = [*trail[trail.index(module):], module]
            pytest.fail("import cycle in core: " + " -> ".join(cycle))
        if module in done:
            return
        for other in sorted(graph.get(module, ())):
            visit(other, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
