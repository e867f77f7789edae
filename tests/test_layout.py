"""The test suite's own layout: test modules share nothing by importing each other. What two modules
need lives in a fixture (tests/fixtures/, registered in tests/conftest.py), and the helper modules beside
them (pg_server, jpeg_decoder, batch_runner) are reached through those fixtures too; a test package may
import its own helper modules relatively. A test module may
name a type from a plugin for its annotations, under ``if TYPE_CHECKING:`` only."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The import statements inside ``if TYPE_CHECKING:`` blocks."""
    guarded: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for inner in node.body:
                guarded.update(n for n in ast.walk(inner) if isinstance(n, ast.Import | ast.ImportFrom))
    return guarded


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return ["." * node.level + (node.module or "")]
    return [alias.name for alias in node.names]


def local_imports(source: str, local: set[str]) -> list[tuple[int, str, bool]]:
    """(line, module, under TYPE_CHECKING) for every import of a module of the test suite itself:
    ``local`` names its top-level modules and packages; relative imports are always local."""
    tree = ast.parse(source)
    guarded = _type_checking_only(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in _imported(node):
                if name.startswith(".") or name.split(".")[0] in local:
                    found.append((node.lineno, name, node in guarded))
    return found


def layout_problems(root: Path) -> list[str]:
    """What breaks the rule in the test suite under ``root``, one line each."""
    packages = {p.name for p in root.iterdir() if (p / "__init__.py").is_file()}
    local = {p.stem for p in root.glob("*.py")} | packages
    problems = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root)
        is_test = path.name.startswith("test_")
        for line, name, typing_only in local_imports(path.read_text(encoding="utf-8"), local):
            target = name.lstrip(".").split(".")
            if any(part.startswith("test_") for part in target):
                problems.append(f"{where}:{line} imports the test module {name}")
            elif name.startswith("."):
                # A test package's own helpers (tests/hostile/: the sweep's table and runner) are its
                # own: parametrisation needs them at import, where no fixture reaches.
                continue
            elif is_test and not typing_only:
                problems.append(f"{where}:{line} imports {name}: reach it through a fixture")
    return problems


def test_no_test_module_imports_another() -> None:
    assert layout_problems(TESTS) == []


def test_the_layout_check_finds_each_kind_of_import(tmp_path: Path) -> None:
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "__init__.py").write_text("")
    (tmp_path / "fixtures" / "kit.py").write_text("import test_b\n")
    (tmp_path / "helper.py").write_text("X = 1\n")
    (tmp_path / "test_b.py").write_text("X = 1\n")
    (tmp_path / "test_a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import pytest\n"
        "from test_b import X\n"
        "import test_b as b\n"
        "if TYPE_CHECKING:\n"
        "    from fixtures.kit import Kit\n"
        "    from test_b import Y\n"
        "def test_x() -> None:\n"
        "    from helper import X\n"
    )
    assert layout_problems(tmp_path) == [
        "fixtures/kit.py:1 imports the test module test_b",
        "test_a.py:3 imports the test module test_b",
        "test_a.py:4 imports the test module test_b",
        "test_a.py:7 imports the test module test_b",
        "test_a.py:9 imports helper: reach it through a fixture",
    ]
