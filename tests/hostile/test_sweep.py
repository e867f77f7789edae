"""Every command keeps its contract under hostile input: a documented exit code, one line on stderr
without a traceback, and not a byte written or changed (tests/hostile/sweep.py has the cases).

Each case runs in-process (``main([...])``) in its own copy of the office, with a timer against a read
that hangs and an address-space limit against one that fills the memory. A full disk is an ENOSPC and
an interruption a KeyboardInterrupt raised by the first write to a file.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import click
import pytest

from ektp_card._cli import cli

if TYPE_CHECKING:
    from hostile.office import Office
    from hostile.sweep import Case


def _leaf_commands() -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            ctx = click.Context(command, info_name=path[-1] if path else "ektp")
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, (*path, name))
        else:
            found[" ".join(path)] = command

    walk(cli, ())
    return found


# --- the tree is covered --------------------------------------------------------------------------------


def test_every_leaf_command_has_cases(hostile_sweep: ModuleType) -> None:
    leaves = set(_leaf_commands())
    swept = {spec.command for spec in hostile_sweep.SPECS}
    assert leaves - swept == set(), "add hostile cases for these commands to tests/hostile/sweep.py"
    assert swept - leaves == set(), "the sweep names commands that do not exist"
    assert set(hostile_sweep.COMMAND_CODES) == leaves


#: Options that take a path or a number but need no hostile case, and why.
NOT_SWEPT = {
    ("station", "--demo-dir"): "--demo builds a sandbox: covered by the station's own tests",
    ("verify", "--nfc"): "an nfcpy device path, not a file",
    ("read", "--nfc"): "an nfcpy device path, not a file",
    ("apdu", "--nfc"): "an nfcpy device path, not a file",
    ("personalize", "--nfc"): "an nfcpy device path, not a file",
    ("personalize", "--ds-cert"): "with a PKCS#11 token only",
    ("desk issue", "--ds-cert"): "with a PKCS#11 token only",
    ("desk issue", "--print-dir"): "with --reader only",
    ("desk revocations", "--rs-cert"): "with a PKCS#11 token only",
    ("record synthetic", "--count"): "a click.IntRange(1, 100000)",
    ("record synthetic", "--seed"): "a click.IntRange(0)",
}


def test_every_file_and_number_option_is_swept(hostile_sweep: ModuleType) -> None:
    missing = []
    for name, command in _leaf_commands().items():
        covered: set[str] = set()
        for spec in (s for s in hostile_sweep.SPECS if s.command == name):
            for index, arg in enumerate(spec.argv):
                if isinstance(arg, hostile_sweep.Marker):
                    covered.add(hostile_sweep.option_of(spec.argv, index) or f"arg:{index}")
        for param in command.params:
            if not isinstance(param.type, click.Path | click.types._NumberParamTypeBase) or param.name in (
                "help",
                "version",
            ):
                continue
            if isinstance(param, click.Argument):
                if not any(c.startswith("arg:") for c in covered):
                    missing.append(f"{name} {param.name}")
            elif not set(param.opts) & covered and (name, param.opts[0]) not in NOT_SWEPT:
                missing.append(f"{name} {param.opts[0]}")
    assert missing == [], "sweep these options in tests/hostile/sweep.py (or say in NOT_SWEPT why not)"


def test_the_markers_hold_their_contract(hostile_sweep: ModuleType) -> None:
    """Every file marker has the usual variants, so a new one is swept like the others."""
    s = hostile_sweep
    names = {v.name for v in s.In("x.json").variants()}
    assert {"missing", "folder", "empty", "dev-zero", "fifo", "huge", "truncated", "garbage"} <= names
    assert {"full-disk", "interrupted"} <= {v.name for v in s.Out("x").variants()}
    assert {"full-disk", "interrupted"} <= {v.name for v in s.OutDir("x").variants()}
    assert {"nan", "inf", "huge"} <= {v.name for v in s.Num("1").variants()}


def test_hostile_input(
    hostile_case: Case,
    hostile_runner: ModuleType,
    hostile_sweep: ModuleType,
    office: Office,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One case (tests/hostile/conftest.py makes one test per case of the sweep)."""
    case, r = hostile_case, hostile_runner
    argv = r.prepare(case, workspace, office)
    before = r.snapshot(workspace)
    code, _, err = r.run(argv, case, workspace, office, monkeypatch)
    monkeypatch.undo()  # back to the real os.write and working folder before looking
    changed = r.changes(before, r.snapshot(workspace), case.allow)
    shown = err[:600]
    documented = hostile_sweep.COMMAND_CODES[case.command]
    assert code in documented, f"exit {code}, not documented for `ektp {case.command}`: {shown}"
    assert code in case.codes, f"exit {code}, expected one of {sorted(case.codes)}: {shown}"
    problem = r.stderr_problem(err, code)
    assert problem is None, f"stderr has {problem}: {shown}"
    assert changed == [], f"files changed: {changed}"
