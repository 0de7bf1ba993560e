"""Import rules. The modules of `app` import one another without a cycle: each one's dependencies can be read
before it (every import counts, those inside functions and under TYPE_CHECKING too: a reader follows them all the
same). Tests import what they share from tests.helpers only, which ruff's banned-api enforces by name."""

from __future__ import annotations

import ast
import graphlib
import tomllib
from pathlib import Path

import pytest

import app

ROOT = Path(app.__file__).parent
TESTS = Path(__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The app modules a file imports: `from app.x import y` counts app.x.y when y is a module, else app.x."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in modules}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in ROOT.rglob("*.py")}
    modules = set(paths)
    return {name: imported(path, modules) - {name} for name, path in paths.items()}


def test_app_has_no_import_cycle() -> None:
    graph = import_graph()
    assert graph["app.clients.http1"] >= {"app.clients.connection"}  # the graph sees the imports it should
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_a_cycle_would_be_found() -> None:
    graph = {**import_graph(), "app.clients.connection": {"app.clients.http1"}}
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()


def test_ruff_bans_importing_any_test_module_or_conftest() -> None:
    """Every test folder and top-level test module is on the banned-api list: a new one missing from it could be
    imported by another test again."""
    config = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
    banned = set(config["tool"]["ruff"]["lint"]["flake8-tidy-imports"]["banned-api"])
    folders = {path.name for path in TESTS.iterdir() if (path / "__init__.py").exists()} - {"helpers"}
    modules = {path.stem for path in TESTS.glob("*.py") if path.stem.startswith("test_") or path.stem == "conftest"}
    assert {f"tests.{name}" for name in folders | modules} <= banned
