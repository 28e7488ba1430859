"""How the modules of `harness.injection` import one another: each names the sibling it needs (never the
package, whose `__init__` imports `lines`, which loads the backends), so the only circle left is `lines`
with its backends; the facts about code objects depend on nothing of the package."""

from __future__ import annotations

import ast
import pathlib

import harness.injection

PACKAGE = "harness.injection"
HERE = pathlib.Path(harness.injection.__file__).parent


def _imports(path: pathlib.Path) -> set[str]:
    """Every module of `harness.injection` that `path` imports: top level, under TYPE_CHECKING, in functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names = [node.module]  # `from harness.injection import x` imports the package, whatever x is
        else:
            continue
        found.update(name for name in names if name == PACKAGE or name.startswith(PACKAGE + "."))
    return found


def _modules() -> dict[str, pathlib.Path]:
    """Module name -> file, the package's `__init__` included."""
    return {PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}": path for path in HERE.glob("*.py")}


def test_submodules_import_their_siblings_never_the_package() -> None:
    through_package = {name for name, path in _modules().items() if name != PACKAGE and PACKAGE in _imports(path)}
    assert not through_package, f"import the sibling module directly, not through {PACKAGE}: {through_package}"


def test_the_only_import_circle_is_lines_with_its_backends() -> None:
    graph = {name: _imports(path) - {name} for name, path in _modules().items()}

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    in_circles = {name for name in graph if name in reach(name)}
    assert in_circles <= {f"{PACKAGE}.lines", f"{PACKAGE}._monitoring", f"{PACKAGE}._settrace"}, in_circles
