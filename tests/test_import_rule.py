"""The house rule of the package layout, read from the code's own imports (ast, nothing run):
a suite package imports only the core and the engines, never another suite; an engine imports
no suite; and no module imports itself back through others (no import circle)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_unlearn

PACKAGE = Path(pytest_unlearn.__file__).resolve().parent
# Folders under pytest_unlearn/ that are not suite packages.
NOT_SUITES = {"engines", "suites", "__pycache__"}


def _suite_packages() -> list[str]:
    return sorted(
        p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name not in NOT_SUITES and (p / "__init__.py").exists()
    )


def _imports(path: Path) -> set[str]:
    """Every pytest_unlearn module ``path`` imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("pytest_unlearn"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pytest_unlearn"):
            found.add(node.module)
            # `from pytest_unlearn.x import y` may name the module y.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "suites" not in p.relative_to(PACKAGE).parts[:1]}


def test_the_suite_packages_are_the_folders_we_expect():
    # A new suite package is welcome; this only guards the rule below from checking nothing.
    assert {"semeval", "tofu", "muse", "mcq", "genmu", "evallearn", "mufac", "rwku"} <= set(_suite_packages())


def test_a_suite_imports_only_the_core_and_the_engines():
    suites = _suite_packages()
    crossing = []
    for suite in suites:
        for path in sorted((PACKAGE / suite).rglob("*.py")):
            for name in sorted(_imports(path)):
                parts = name.split(".")
                if len(parts) > 1 and parts[1] in suites and parts[1] != suite:
                    crossing.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert crossing == []


def test_an_engine_imports_no_suite():
    suites = set(_suite_packages())
    crossing = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in sorted((PACKAGE / "engines").rglob("*.py"))
        for name in sorted(_imports(path))
        if len(name.split(".")) > 1 and name.split(".")[1] in suites
    ]
    assert crossing == []


def test_no_import_circle():
    modules = _modules()
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    # A package's __init__ importing its own submodules is how a package is made, not a circle.
    circles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert circles == []
