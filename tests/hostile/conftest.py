"""The hostile-input sweep's fixtures: the office (tests/hostile/office.py, built once per session), a
private copy of it per case, the sweep's table (tests/hostile/sweep.py) and its runner
(tests/hostile/runner.py), and one test per case for every test that asks for ``hostile_case``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from . import runner, sweep
from .office import Office, build_office


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hostile_case" in metafunc.fixturenames:
        cases = sweep.all_cases()
        metafunc.parametrize("hostile_case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def office(tmp_path_factory: pytest.TempPathFactory) -> Office:
    """The template folder, built once per session (about two seconds)."""
    return build_office(tmp_path_factory.mktemp("office") / "template")


@pytest.fixture
def workspace(office: Office, tmp_path: Path) -> Path:
    """A private copy of the office for one case."""
    target = tmp_path / "ws"
    shutil.copytree(office.root, target, symlinks=True)
    return target


@pytest.fixture(scope="session")
def hostile_sweep() -> ModuleType:
    """tests/hostile/sweep.py: the commands, their markers and the hostile variants of each."""
    return sweep


@pytest.fixture(scope="session")
def hostile_runner() -> ModuleType:
    """tests/hostile/runner.py: running a case in this process, the snapshot, the stderr contract."""
    return runner


@pytest.fixture
def ektp(
    office: Office, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    """``ektp(*argv)``: the command line in this process in the office copy; (code, stdout, stderr),
    the stderr contract checked on every call. ``{fact}`` in an argument is one of the office's facts."""

    def call(*argv: str) -> tuple[int, str, str]:
        case = sweep.Case("finding", "", tuple(argv), frozenset())
        args = [a.format(**office.facts) for a in argv]
        code, out, err = runner.run(args, case, workspace, office, monkeypatch)
        monkeypatch.undo()
        assert runner.stderr_problem(err, code) is None, err
        return code, out, err

    return call
