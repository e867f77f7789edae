"""CLI plumbing: the typed context, the one error contract, output helpers."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NoReturn

import click
from rich.console import Console

from ektp_card import errors
from ektp_card.log import TRAFFIC


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
    AUDIT_FINDINGS = 20  # `ektp audit` ran and at least one test failed


class CliError(Exception):
    """One clear line on stderr and a documented exit code (printed by the one handler in main)."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


_ERROR_CODES: list[tuple[type[errors.EktpError], ExitCode]] = [
    (errors.PcscUnavailableError, ExitCode.PCSC_UNAVAILABLE),
    (errors.RegistryError, ExitCode.REGISTRY),
    (errors.ReaderNotFoundError, ExitCode.READER_NOT_FOUND),
    (errors.NoCardError, ExitCode.NO_CARD),
    (errors.CardRemovedError, ExitCode.NO_CARD),
    (errors.TransportError, ExitCode.NO_CARD),
    (errors.CardImageError, ExitCode.FILE),
    (errors.SecureMessagingError, ExitCode.SECURITY),
    # Refused passwords and keys, broken protection (6987/6988), a failed PACE: authentication
    # failures, not card status. 6982 (not authenticated) stays a card status.
    (errors.VerificationFailedError, ExitCode.SECURITY),
    (errors.AuthenticationBlockedError, ExitCode.SECURITY),
    (errors.SecureMessagingObjectsError, ExitCode.SECURITY),
    (errors.PaceError, ExitCode.SECURITY),
    (errors.ApduError, ExitCode.CARD_STATUS),
    (errors.ApduFormatError, ExitCode.USAGE),
    (errors.TlvError, ExitCode.CARD_STATUS),
    (errors.LdsFormatError, ExitCode.CARD_STATUS),
    (errors.MrzError, ExitCode.USAGE),
]


def exit_code_for(error: errors.EktpError) -> ExitCode:
    for cls, code in _ERROR_CODES:
        if isinstance(error, cls):
            return code
    return ExitCode.INTERNAL


def fail(message: str, code: ExitCode) -> NoReturn:
    raise CliError(message, code)


@dataclass
class Ctx:
    """Typed state shared by every command (instead of string keys in ctx.obj)."""

    json: bool = False
    verbosity: int = 0
    out: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))

    def emit(self, data: Any) -> None:
        """Machine-readable output for --json."""
        click.echo(json.dumps(data, indent=2, sort_keys=False))


def setup_logging(verbosity: int) -> None:
    level = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}.get(verbosity, TRAFFIC)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("ektp_card")
    root.handlers[:] = [handler]
    root.setLevel(level)
    # nfcpy logs its own warnings when a card leaves the field; our error line already says so.
    nfc_log = logging.getLogger("nfc")
    nfc_log.handlers[:] = [handler] if verbosity >= 2 else [logging.NullHandler()]
    nfc_log.propagate = False
    nfc_log.setLevel(level)


def parse_hex(value: str, what: str) -> bytes:
    cleaned = "".join(value.split()).replace(":", "")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        fail(f"{what} is not valid hex: {value!r}", ExitCode.USAGE)
