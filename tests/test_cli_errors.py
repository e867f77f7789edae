"""The one error contract of the ektp command line, and what its start imports.

Every library error class has one exit code (``ektp_card._cli.util.exit_codes``), documented in
docs/cli.md; a missing optional extra is one line naming the extra; `ektp --version`, `ektp --help` and a
command's own help import no more than they need.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

import ektp_card
from ektp_card import errors
from ektp_card._cli import COMMANDS, cli
from ektp_card._cli.util import CliError, ExitCode, about, exit_code_for, exit_codes, explain

ROOT = Path(__file__).resolve().parent.parent


def _import_everything() -> None:
    """Import every module of the library, so that every error class is defined."""
    for module in pkgutil.walk_packages(ektp_card.__path__, "ektp_card."):
        if module.name.endswith("__main__"):
            continue  # runs the command line
        try:
            importlib.import_module(module.name)
        except errors.MissingExtraError:
            pass  # an adapter whose extra is not installed here defines no error class


def _subclasses(cls: type[errors.EktpError]) -> set[type[errors.EktpError]]:
    found = set()
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("ektp_card."):
            found.add(sub)
        found |= _subclasses(sub)
    return found


def _documented_codes() -> dict[int, str]:
    """The exit-code table of docs/cli.md: code -> meaning."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    return {int(m[1]): m[2] for m in re.finditer(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE)}


def test_every_library_error_has_a_documented_exit_code() -> None:
    _import_everything()
    classes = _subclasses(errors.EktpError)
    # Every class in ektp_card.errors at least; and a new one anywhere must be placed in the table.
    assert {c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.EktpError)
            and c is not errors.EktpError} <= classes
    documented = _documented_codes()
    table = exit_codes()
    unplaced = sorted(c.__qualname__ for c in classes if c not in table)
    assert not unplaced, f"add these to ektp_card._cli.util.exit_codes: {unplaced}"
    for cls in classes:
        code = exit_code_for(cls)
        assert code is not ExitCode.INTERNAL and int(code) in documented, (cls, code)


def test_the_table_is_the_documented_one() -> None:
    documented = _documented_codes()
    assert set(documented) == {int(c) for c in ExitCode} | {130}
    assert all(int(code) in documented for code in exit_codes().values())
    # A few placements the commands rely on (docs/cli.md says so for each).
    assert exit_code_for(errors.PacePasswordError) is ExitCode.SECURITY
    assert exit_code_for(errors.SecurityStatusNotSatisfiedError) is ExitCode.CARD_STATUS
    assert exit_code_for(errors.RecordError) is ExitCode.USAGE
    assert exit_code_for(errors.RecordFileError) is ExitCode.FILE
    assert exit_code_for(errors.PkiError) is ExitCode.FILE
    assert exit_code_for(errors.CvcNameError) is ExitCode.USAGE
    assert exit_code_for(errors.PlanError) is ExitCode.USAGE
    assert exit_code_for(errors.IssuerMaterialError) is ExitCode.FILE
    assert exit_code_for(errors.PersoAuthenticationError) is ExitCode.SECURITY
    assert exit_code_for(errors.ReadBackError) is ExitCode.VERIFY_FAILED
    assert exit_code_for(errors.CardLockedError) is ExitCode.CARD_STATUS
    assert exit_code_for(errors.MissingExtraError) is ExitCode.USAGE


def test_a_class_outside_the_table_takes_its_base_class_code() -> None:
    class Unlisted(errors.PcscUnavailableError):
        pass

    assert exit_code_for(Unlisted("x")) is ExitCode.PCSC_UNAVAILABLE
    assert exit_code_for(errors.EktpError("a bug")) is ExitCode.INTERNAL


def test_context_never_changes_the_code() -> None:
    error = errors.PkiError("not a CV certificate")
    told = explain(error, "cvca.cvcert: not a CV certificate")
    assert told.code is ExitCode.FILE and str(told) == "cvca.cvcert: not a CV certificate"
    with pytest.raises(CliError) as caught, about("--mrz", errors.MrzError):
        raise errors.MrzError("the birth date check digit does not match")
    assert caught.value.code is ExitCode.USAGE
    assert str(caught.value) == "--mrz: the birth date check digit does not match"
    with pytest.raises(errors.PkiError), about("--mrz", errors.MrzError):
        raise errors.PkiError("other kinds pass through unchanged")


def test_root_help_lists_every_command_with_its_own_short_help() -> None:
    for name, (module, attribute, short_help) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command) and command.name == name
        assert command.get_short_help_str(10_000) == short_help, name
    ctx = click.Context(cli, info_name="ektp")
    assert cli.list_commands(ctx) == sorted(COMMANDS)


# --- missing optional extras ------------------------------------------------------------------------------


def _without(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``ektp ARGS`` in a process where importing ``module`` fails as if it were not installed."""
    script = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from ektp_card._cli import main\n"
        "main(sys.argv[1:])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EKTP_")}
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60,
                          env=env, stdin=subprocess.DEVNULL, check=False)


@pytest.mark.parametrize(
    ("module", "args", "line"),
    [
        ("smartcard", ["readers"], "Error: a PC/SC reader needs pyscard: pip install 'ektp-card[pcsc]'"),
        ("smartcard", ["read", "--reader", "0", "--can", "123456"],
         "Error: a PC/SC reader needs pyscard: pip install 'ektp-card[pcsc]'"),
        ("nfc", ["read", "--nfc", "usb", "--can", "123456"],
         "Error: an NFC reader needs nfcpy: pip install 'ektp-card[nfc]'"),
        ("psycopg", ["desk", "show", "0011223344556677", "--registry", "postgresql://127.0.0.1:9/none"],
         "Error: a PostgreSQL registry needs psycopg: pip install 'ektp-card[desk]'"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(module: str, args: list[str], line: str) -> None:
    proc = _without(module, *args)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert proc.stderr.splitlines() == [line]


def test_a_missing_pkcs11_module_names_the_hsm_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from ektp_card.pki import pkcs11

    monkeypatch.setattr(pkcs11, "_p11", None)
    with pytest.raises(errors.MissingExtraError) as caught:
        pkcs11.Pkcs11Signer("/usr/lib/softhsm/libsofthsm2.so", "token", "key", b"1234")
    assert caught.value.extra == "hsm" and caught.value.package == "python-pkcs11"
    assert str(caught.value) == "a PKCS#11 token needs python-pkcs11: pip install 'ektp-card[hsm]'"
    assert isinstance(caught.value, ImportError)  # callers guarding an optional import still catch it


# --- what a start imports (counted, not timed) -------------------------------------------------------------

#: Run ``ektp ARGS`` without exiting, then list the imported modules on stderr's last line.
PROBE = (
    "import json, sys\n"
    "from ektp_card._cli import cli\n"
    "if sys.argv[1:] != ['--import-only']:\n"
    "    cli.main(args=sys.argv[1:], prog_name='ektp', standalone_mode=False)\n"
    "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
)
HEAVY = ("rich", "cryptography", "asn1crypto", "ektp_card.desk", "ektp_card.audit", "ektp_card.virtual",
         "ektp_card.pki", "ektp_card.personalize", "ektp_card.verify", "ektp_card.apdu", "smartcard", "nfc")


def _imported(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60,
                          check=True)
    return set(json.loads(proc.stderr.splitlines()[-1]))


def _loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("args", [["--import-only"], ["--version"], ["--help"]])
def test_version_and_help_import_no_command(args: list[str]) -> None:
    modules = _imported(*args)
    assert not _loaded(modules, HEAVY)
    commands = {f"ektp_card._cli.{name}" for name in ("apdu", "audit", "demo", "desk", "personalize", "pki",
                                                      "read", "readers", "record", "verify", "virtual")}
    assert not modules & commands


def test_a_command_help_imports_only_that_command() -> None:
    modules = _imported("verify", "--help")
    assert "ektp_card._cli.verify" in modules
    assert not _loaded(modules, HEAVY)
    assert not {"ektp_card._cli.audit", "ektp_card._cli.desk", "ektp_card._cli.pki"} & modules


def test_reading_a_real_card_does_not_load_the_card_os() -> None:
    code = ("import json, sys\n"
            "import ektp_card.access, ektp_card.device, ektp_card.lds.profile\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=True)
    modules = set(json.loads(proc.stdout))
    assert "ektp_card.lds.profile" in modules
    assert not {m for m in modules if m.startswith("ektp_card.virtual")}
