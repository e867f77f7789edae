"""CLI plumbing: the typed context, the one error contract, output helpers.

Kept light: every command imports it, so rich and json are imported by the first command that prints
(or prints --json), logging when a command runs; none of them to parse arguments or print --help.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ektp_card import errors

if TYPE_CHECKING:
    from rich.console import Console


class ExitCode(IntEnum):
    """Documented exit codes (docs/cli.md). Verification verdicts will take 10 and above."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    PCSC_UNAVAILABLE = 3
    READER_NOT_FOUND = 4
    NO_CARD = 5
    CARD_STATUS = 6
    FILE = 7
    SECURITY = 8
    PARTIAL = 9  # a batch ran to its end but rejected some records (listed in its summary)
    VERIFY_FAILED = 10  # a verification ran and found the document not authentic
    # `ektp verify` verdicts (docs/cli.md), most serious first when several apply:
    FORGED = 11  # Passive Authentication or the printed data failed: not what the issuer signed
    CLONED = 12  # the signed data is genuine but Chip or Active Authentication failed: not its chip
    HOLDER_MISMATCH = 13  # a genuine card whose fingerprint does not match the person presenting it
    REVOKED = 14  # a genuine card whose serial is on the issuer's signed revocation list
    REGISTRY = 15  # the desk registry refused the operation or could not be reached
    CARD_FULL = 16  # the record does not fit the card's memory (checked before the first write)
    AUDIT_FINDINGS = 20  # `ektp audit` ran and at least one test failed


class CliError(Exception):
    """One clear line on stderr and a documented exit code (printed by the one handler in main)."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


@cache
def exit_codes() -> dict[type[errors.EktpError], ExitCode]:
    """The exit code of every library error class: the one table behind every command's exit codes.

    A class not listed takes the code of its nearest listed base class (:func:`exit_code_for`);
    tests/test_cli_errors.py holds every :class:`~ektp_card.errors.EktpError` subclass to a place here.
    Built on the first error, so that the modules defining errors outside :mod:`ektp_card.errors` are
    imported only then.
    """
    from ektp_card.desk.backend import ConstraintViolation, DatabaseError
    from ektp_card.ec import InvalidPointError

    e, code = errors, ExitCode
    return {
        # Files and issuer material the user named.
        e.CardImageError: code.FILE,
        e.PkiError: code.FILE,
        e.RecordFileError: code.FILE,
        e.IssuerMaterialError: code.FILE,
        e.InputFileError: code.FILE,
        e.PrintJobError: code.FILE,
        # Terminal Authentication reaches a command only when the terminal's chain and key do not go
        # together (a refusal by the chip is a check of the verification report).
        e.TerminalAuthenticationError: code.FILE,
        # Values the user typed, and options this installation cannot serve.
        e.ApduFormatError: code.USAGE,
        e.MrzError: code.USAGE,
        e.CvcNameError: code.USAGE,
        e.RecordError: code.USAGE,
        e.PlanError: code.USAGE,
        e.AuditError: code.USAGE,
        e.MissingExtraError: code.USAGE,
        # The link to the card.
        e.TransportError: code.NO_CARD,
        e.PcscUnavailableError: code.PCSC_UNAVAILABLE,
        e.ReaderNotFoundError: code.READER_NOT_FOUND,
        e.NoCardError: code.NO_CARD,
        e.CardRemovedError: code.NO_CARD,
        # Refused passwords and keys, broken protection (6987/6988), a failed PACE, CA or AA, an
        # invalid point from the other side: authentication failures, not card status. 6982 (not
        # authenticated) stays a card status.
        e.SecureMessagingError: code.SECURITY,
        e.VerificationFailedError: code.SECURITY,
        e.PacePasswordError: code.SECURITY,
        e.AuthenticationBlockedError: code.SECURITY,
        e.SecureMessagingObjectsError: code.SECURITY,
        e.PaceError: code.SECURITY,
        e.AuthenticationProtocolError: code.SECURITY,
        e.ChipAuthenticationError: code.SECURITY,
        e.ActiveAuthenticationError: code.SECURITY,
        e.PersoAuthenticationError: code.SECURITY,
        e.PersoKeyRefusedError: code.SECURITY,
        InvalidPointError: code.SECURITY,
        # What the card answered or holds.
        e.ApduError: code.CARD_STATUS,
        e.WrongLengthError: code.CARD_STATUS,
        e.SecurityStatusNotSatisfiedError: code.CARD_STATUS,
        e.ConditionsNotSatisfiedError: code.CARD_STATUS,
        e.CommandNotAllowedError: code.CARD_STATUS,
        e.CardFileNotFoundError: code.CARD_STATUS,
        e.FileExistsOnCardError: code.CARD_STATUS,
        e.NotEnoughMemoryError: code.CARD_STATUS,
        e.IncorrectParametersError: code.CARD_STATUS,
        e.FunctionNotSupportedError: code.CARD_STATUS,
        e.ReferencedDataNotFoundError: code.CARD_STATUS,
        e.InsNotSupportedError: code.CARD_STATUS,
        e.ClaNotSupportedError: code.CARD_STATUS,
        e.ChainingError: code.CARD_STATUS,
        e.TlvError: code.CARD_STATUS,
        e.LdsFormatError: code.CARD_STATUS,
        e.BiometricFormatError: code.CARD_STATUS,
        # Personalisation: a card that refused a write, or is locked for good; one that does not
        # verify when read back.
        e.PersonalisationError: code.CARD_STATUS,
        e.PersonalisationRefusedError: code.CARD_STATUS,
        e.CardLockedError: code.CARD_STATUS,
        e.ReadBackError: code.VERIFY_FAILED,
        # The record does not fit the card's memory: a smaller face or signature may make it fit.
        e.CardCapacityError: code.CARD_FULL,
        # The desk registry.
        e.RegistryError: code.REGISTRY,
        e.DuplicateActiveCardError: code.REGISTRY,
        ConstraintViolation: code.REGISTRY,
        DatabaseError: code.REGISTRY,
    }


def exit_code_for(error: errors.EktpError | type[errors.EktpError]) -> ExitCode:
    """The table's code for ``error`` (or an error class): its own, else its nearest listed base
    class's along the method resolution order; INTERNAL for none (a bug)."""
    table = exit_codes()
    cls = error if isinstance(error, type) else type(error)
    for base in cls.__mro__:
        if base in table:
            return table[base]
    return ExitCode.INTERNAL


def explain(error: errors.EktpError, message: str) -> CliError:
    """``error`` told with what only the command knows (a file name, a hint), under the code the table
    gives ``error``: a command adds context to a library error, never another exit code."""
    return CliError(message, exit_code_for(error))


@contextmanager
def about(prefix: str, *kinds: type[errors.EktpError]) -> Iterator[None]:
    """Library errors (of ``kinds``; default: all) raised in the block start with ``prefix`` (e.g. the
    file the library read from bytes and so cannot name)."""
    caught = kinds or (errors.EktpError,)
    try:
        yield
    except caught as e:
        raise explain(e, f"{prefix}: {e}") from e


def fail(message: str, code: ExitCode) -> NoReturn:
    raise CliError(message, code)


#: Warnings shown when the command has done its work (:func:`warn_later`).
LATER: list[str] = []


def warn_later(text: str) -> None:
    """A warning shown on stderr after the command's output, and only when the command got that far:
    a command that then fails prints its one error line alone."""
    LATER.append(text)


def read_input(path: Path, limit: int, what: str = "") -> bytes:
    """The file ``path`` (a regular file of at most ``limit`` bytes, see :mod:`ektp_card.files`); a
    file problem (exit 7) naming it otherwise."""
    from ektp_card.files import read_file

    try:
        return read_file(path, limit)
    except OSError as e:
        fail(f"{path}: {what + ': ' if what else ''}{e.strerror or e}", ExitCode.FILE)


def visible(text: str) -> str:
    """``text`` with its control characters (but line breaks) and lone surrogates shown escaped."""
    return "".join(c if c.isprintable() or c == "\n" else ascii(c)[1:-1] for c in text)


def _visible_hook() -> Any:
    """A rich render hook that passes every rendered text through :func:`visible` (rich itself sends
    an escape sequence in a table cell to the terminal as it is)."""
    from rich.console import ConsoleOptions, ConsoleRenderable, RenderHook, RenderResult
    from rich.segment import Segment

    class Visible:
        def __init__(self, renderable: ConsoleRenderable) -> None:
            self.renderable = renderable

        def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
            for segment in console.render(self.renderable, options):
                yield segment if segment.control else Segment(visible(segment.text), segment.style)

    class Hook(RenderHook):
        def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
            return [Visible(r) for r in renderables]

    return Hook()


def one_line(text: str) -> str:
    """``text`` fit for one line of a terminal: control characters (a line break, an ANSI escape that
    would recolour or clear the screen) and lone surrogates shown escaped, never sent raw."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _hint(param: click.Parameter | None, ctx: click.Context | None) -> str:
    return param.get_error_hint(ctx).strip("'") if param is not None and ctx is not None else "value"


class Word(click.ParamType[str, str]):
    """Text the command stores or prints (a reason, a name, a reference): printable, at most
    ``max_length`` characters; else one line and exit 2."""

    name = "text"

    def __init__(self, max_length: int = 200) -> None:
        self.max_length = max_length

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text.isprintable():
            fail(f"{_hint(param, ctx)}: control characters or bytes that are not UTF-8 text are not "
                 "allowed", ExitCode.USAGE)
        if len(text) > self.max_length:
            fail(f"{_hint(param, ctx)}: at most {self.max_length} characters", ExitCode.USAGE)
        return text


#: A card serial as the desk and the chip know it: 8 bytes, 16 hex digits.
SERIAL_DIGITS = 16


class Serial(click.ParamType[str, str]):
    """A card serial (16 hex digits, upper-cased): never anything a file name could be made of."""

    name = "serial"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if len(text) != SERIAL_DIGITS or any(c not in "0123456789abcdefABCDEF" for c in text):
            fail(f"{_hint(param, ctx)}: a card serial is {SERIAL_DIGITS} hex digits", ExitCode.USAGE)
        return text.upper()


class Country(click.ParamType[str, str]):
    """A two-letter country code (ISO 3166-1 alpha-2, upper case)."""

    name = "country"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if len(text) != 2 or not ("A" <= text[0] <= "Z" and "A" <= text[1] <= "Z"):
            fail(f"{_hint(param, ctx)}: a country is two upper-case letters, e.g. ID", ExitCode.USAGE)
        return text


class Nik(click.ParamType[str, str]):
    """A NIK: 16 digits."""

    name = "nik"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if len(text) != 16 or not (text.isascii() and text.isdigit()):
            fail(f"{_hint(param, ctx)}: a NIK is 16 digits", ExitCode.USAGE)
        return text


class Capacity(click.ParamType[int, str]):
    """A card's memory size: ``8K``, ``8192``, ``64KiB``, ``1M``
    (:func:`ektp_card.lds.capacity.parse_capacity`); else one line and exit 2."""

    name = "size"

    def convert(self, value: str | int, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from ektp_card.lds.capacity import parse_capacity

        if isinstance(value, int):
            return value
        try:
            return parse_capacity(str(value))
        except ValueError as exc:
            fail(f"{_hint(param, ctx)}: {exc}", ExitCode.USAGE)


class Finite(click.FloatRange):
    """:class:`click.FloatRange` that also refuses ``nan`` and ``inf`` (which compare as inside any
    range, or make every bound meaningless)."""

    def convert(self, value: float, param: click.Parameter | None, ctx: click.Context | None) -> float:
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return float(number)


def check_output(path: Path, *, folder: bool = False) -> None:
    """Refuse an output path that cannot be written, before the work it would hold is done: a folder
    where a file goes (with ``folder``: a file where a folder goes), or no folder to put it in."""
    if folder:
        if path.exists() and not path.is_dir():
            fail(f"{path}: not a folder", ExitCode.FILE)
        ancestor = next((p for p in (path, *path.parents) if p.exists()), Path("."))
        if not ancestor.is_dir():
            fail(f"{path}: {ancestor} is not a folder", ExitCode.FILE)
        return
    if path.is_dir():
        fail(f"{path}: a folder, not a file", ExitCode.FILE)
    if not path.parent.is_dir():
        fail(f"{path}: there is no folder {path.parent} to write it in", ExitCode.FILE)


class FilePath(click.Path):
    """:class:`click.Path` whose refusals (no such file, a folder where a file belongs, a file where a
    folder belongs) are file problems like any other: one line and exit 7, not a usage error."""

    def fail(self, message: str, param: click.Parameter | None = None,
             ctx: click.Context | None = None) -> NoReturn:
        where = param.get_error_hint(ctx).strip("'") if param is not None and ctx is not None else "path"
        raise CliError(f"{where}: {message}", ExitCode.FILE)


@dataclass
class Ctx:
    """Typed state shared by every command (instead of string keys in ctx.obj)."""

    json: bool = False
    verbosity: int = 0

    @cached_property
    def out(self) -> Console:
        """The console for human-readable output (rich is imported by the first command that prints).

        What it prints comes also from cards, files and the registry (a name in DG1, a revocation
        reason someone typed): control characters in it are shown escaped, never sent to the terminal."""
        from rich.console import Console

        console = Console(highlight=False, soft_wrap=True)
        console.push_render_hook(_visible_hook())
        return console

    def emit(self, data: Any) -> None:
        """Machine-readable output for --json."""
        import json

        click.echo(json.dumps(data, indent=2, sort_keys=False))


def setup_logging(verbosity: int) -> None:
    import logging

    from ektp_card.log import TRAFFIC

    level = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}.get(verbosity, TRAFFIC)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("ektp_card")
    root.handlers[:] = [handler]
    root.setLevel(level)
    # nfcpy logs its own warnings when a card leaves the field; our error line already says so. Python
    # warnings from libraries (cryptography's about a certificate it reads) likewise show only with -vv.
    logging.captureWarnings(True)
    for name in ("nfc", "py.warnings"):
        quiet = logging.getLogger(name)
        quiet.handlers[:] = [handler] if verbosity >= 2 else [logging.NullHandler()]
        quiet.propagate = False
        quiet.setLevel(level)


def parse_hex(value: str, what: str) -> bytes:
    cleaned = "".join(value.split()).replace(":", "")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        fail(f"{what} is not valid hex: {value!r}", ExitCode.USAGE)
