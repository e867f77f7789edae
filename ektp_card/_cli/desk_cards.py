"""`ektp desk show|handover|activate|lost|damaged|revoke|replace|audit-verify`: one card's life cycle.

Thin commands over :mod:`ektp_card.desk.registry` (and :mod:`ektp_card.desk.handover`); the registry
checks every transition itself, so a refused change is one line and exit 15.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ektp_card._cli.options import TIMEOUT
from ektp_card._cli.passwords import card_password
from ektp_card._cli.util import Ctx, ExitCode, FilePath, Nik, Serial, Word, fail, one_line
from ektp_card._cli.verify import terminal_options

if TYPE_CHECKING:
    from ektp_card.desk.handover import HandoverResult
    from ektp_card.desk.registry import CardRow, Registry
    from ektp_card.pki.trust import TrustStore

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_REGISTRY = "ektp-registry.sqlite"


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


REGISTRY = click.option(
    "--registry", "registry_target", envvar="EKTP_REGISTRY", default=DEFAULT_REGISTRY, show_default=True,
    metavar="PATH|URL",
    help="The registry: a SQLite file, sqlite:///PATH or postgresql://... (env EKTP_REGISTRY).",
)


def registry_options(func: F) -> F:
    """--registry / --desk / --actor (env EKTP_REGISTRY, EKTP_DESK, EKTP_ACTOR)."""
    decorators = [
        REGISTRY,
        click.option("--desk", "desk_id", envvar="EKTP_DESK", default=socket.gethostname, type=Word(100),
                     show_default="the host name", metavar="ID",
                     help="This desk's ID, recorded with every change (env EKTP_DESK)."),
        click.option("--actor", envvar="EKTP_ACTOR", default=_login_name, show_default="the login name",
                     type=Word(100),
                     metavar="NAME", help="Who acts, recorded with every change (env EKTP_ACTOR)."),
    ]
    for d in reversed(decorators):
        func = d(func)
    return func


@contextmanager
def open_desk_registry(target: str, *, create: bool = False) -> Iterator[Registry]:
    """The registry at ``target``; a failure to open it is a RegistryError (exit 15). Only with
    ``create`` is a new registry made where there is none (a command that only reads or changes
    cards never leaves an empty registry behind)."""
    from ektp_card.desk.registry import open_registry

    registry = open_registry(target, create=create)
    try:
        yield registry
    finally:
        registry.close()


def row_json(row: CardRow) -> dict[str, Any]:
    data = {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    data["state"] = str(row.state)
    return data


def _print_card(obj: Ctx, row: CardRow) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Card {row.serial}", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for name, value in row_json(row).items():
        if value is not None and value is not False:
            table.add_row(name.replace("_", " "), escape(str(value)))
    obj.out.print(table)


def _print_rows(obj: Ctx, rows: list[CardRow]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Cards of the NIK, oldest first")
    for column in ("serial", "state", "desk", "updated", "note"):
        table.add_column(column, overflow="fold")
    for row in rows:
        note = "; ".join(x for x in (
            row.reason or "",
            f"police report {row.police_report}" if row.police_report else "",
            "surrendered" if row.surrendered else "",
        ) if x)
        table.add_row(row.serial, str(row.state), escape(row.desk), row.updated_at[:19], escape(note))
    obj.out.print(table)


def _changed(obj: Ctx, row: CardRow, what: str) -> None:
    if obj.json:
        obj.emit(row_json(row))
    else:
        obj.out.print(f"Card {row.serial} {what}: now {row.state}", markup=False)


# --- show -------------------------------------------------------------------------------------------------


@click.command()
@click.argument("serial", required=False, type=Serial())
@click.option("--nik", metavar="NIK", type=Nik(),
              help="Every card of this NIK, oldest first, instead of one SERIAL.")
@registry_options
@click.pass_obj
def show(
    obj: Ctx, serial: str | None, nik: str | None, registry_target: str, desk_id: str, actor: str
) -> None:
    """Show card SERIAL (or every card of --nik NIK) as the registry holds it."""
    del desk_id, actor  # accepted like every desk command's, unused by a query
    if (serial is None) == (nik is None):
        fail("give a card SERIAL or --nik NIK", ExitCode.USAGE)
    with open_desk_registry(registry_target) as registry:
        if serial is not None:
            row = registry.get(serial.upper())
            if row is None:
                fail(f"card {serial.upper()} is not in the registry", ExitCode.REGISTRY)
            rows = [row]
        else:
            assert nik is not None  # noqa: S101 - checked above
            rows = registry.cards_for(nik)
            if not rows:
                fail("the registry has no card for this NIK", ExitCode.REGISTRY)
    if obj.json:
        obj.emit(row_json(rows[0]) if serial is not None else [row_json(r) for r in rows])
    elif serial is not None:
        _print_card(obj, rows[0])
    else:
        _print_rows(obj, rows)


# --- life-cycle changes -----------------------------------------------------------------------------------


@click.command()
@click.argument("serial", type=Serial())
@registry_options
@click.pass_obj
def activate(obj: Ctx, serial: str, registry_target: str, desk_id: str, actor: str) -> None:
    """The handed-over card SERIAL is in use."""
    with open_desk_registry(registry_target) as registry:
        row = registry.activate(serial.upper(), desk=desk_id, actor=actor)
    _changed(obj, row, "activated")


@click.command()
@click.argument("serial", type=Serial())
@click.option("--police-report", required=True, metavar="REF", type=Word(100),
              help="The police report reference (required).")
@registry_options
@click.pass_obj
def lost(obj: Ctx, serial: str, police_report: str, registry_target: str, desk_id: str, actor: str) -> None:
    """The holder reports card SERIAL lost; the NIK may then get a replacement."""
    if not police_report.strip():
        fail("a lost card needs a police report reference", ExitCode.USAGE)
    with open_desk_registry(registry_target) as registry:
        row = registry.report_lost(serial.upper(), police_report.strip(), desk=desk_id, actor=actor)
    _changed(obj, row, "reported lost")


@click.command()
@click.argument("serial", type=Serial())
@click.option("--surrendered", is_flag=True,
              help="The damaged card has been handed in at the desk (required).")
@registry_options
@click.pass_obj
def damaged(obj: Ctx, serial: str, surrendered: bool, registry_target: str, desk_id: str, actor: str) -> None:
    """Card SERIAL is damaged and was surrendered at the desk."""
    if not surrendered:
        fail("a damaged card must be surrendered: take it in, then give --surrendered", ExitCode.USAGE)
    with open_desk_registry(registry_target) as registry:
        row = registry.report_damaged(serial.upper(), surrendered=True, desk=desk_id, actor=actor)
    _changed(obj, row, "recorded as damaged")


@click.command()
@click.argument("serial", type=Serial())
@click.option("--reason", required=True, metavar="TEXT", type=Word(500),
              help="Why the card is withdrawn (required).")
@registry_options
@click.pass_obj
def revoke(obj: Ctx, serial: str, reason: str, registry_target: str, desk_id: str, actor: str) -> None:
    """Withdraw card SERIAL for a stated reason."""
    if not reason.strip():
        fail("give the reason for the revocation", ExitCode.USAGE)
    with open_desk_registry(registry_target) as registry:
        row = registry.revoke(serial.upper(), reason.strip(), desk=desk_id, actor=actor)
    _changed(obj, row, "revoked")


@click.command()
@click.argument("old_serial", metavar="OLD", type=Serial())
@click.argument("new_serial", metavar="NEW", type=Serial())
@registry_options
@click.pass_obj
def replace(
    obj: Ctx, old_serial: str, new_serial: str, registry_target: str, desk_id: str, actor: str
) -> None:
    """Register card NEW for the NIK of card OLD (lost, damaged or revoked first)."""
    with open_desk_registry(registry_target) as registry:
        row = registry.replace(old_serial.upper(), new_serial.upper(), desk=desk_id, actor=actor)
    _changed(obj, row, f"registered as the replacement of {old_serial.upper()}")


# --- audit ------------------------------------------------------------------------------------------------


def _anchor(text: str | None) -> Any:
    from ektp_card.desk.audit import AuditAnchor

    if text is None:
        return None
    seq, _, digest = text.partition(":")
    digest = digest.strip().lower()
    if not seq.strip().isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        fail(f"--anchor {text!r}: give SEQ:HASH (the entry number and its 64 hex digit hash)", ExitCode.USAGE)
    return AuditAnchor(int(seq), digest)


@click.command("audit-verify")
@click.option("--anchor", metavar="SEQ:HASH",
              help="A head kept elsewhere earlier: the entry SEQ must still carry HASH (catches a log "
                   "truncated or rewritten from scratch).")
@registry_options
@click.pass_obj
def audit_verify(obj: Ctx, anchor: str | None, registry_target: str, desk_id: str, actor: str) -> None:
    """Check the registry's hash-chained audit log: exit 0 when it verifies, 10 at the first entry that
    was edited, removed or reordered."""
    del desk_id, actor  # accepted like every desk command's, unused by a check
    wanted = _anchor(anchor)
    with open_desk_registry(registry_target) as registry:
        problem = registry.verify(wanted)
        head = registry.audit_head()
    if obj.json:
        obj.emit({"ok": problem is None, "head": {"seq": head.seq, "hash": head.hash},
                  "problem": None if problem is None else {"seq": problem.seq, "reason": problem.reason}})
    elif problem is None:
        obj.out.print(f"The audit log verifies: {head.seq} entries, head {head.seq}:{head.hash}",
                      markup=False)
    if problem is not None:
        if not obj.json:
            click.echo(f"Error: the audit log does not verify at entry {problem.seq}: {problem.reason}",
                       err=True)
        raise click.exceptions.Exit(int(ExitCode.VERIFY_FAILED))


# --- handover ---------------------------------------------------------------------------------------------


def _handover_card(reader: str | None, virtual_dir: Path | None, serial: str, timeout: float) -> Any:
    """The card to check: DIR/SERIAL.card, or the card in the reader."""
    from ektp_card.desk.batch import CARD_SUFFIX
    from ektp_card.device import CardSource, open_card

    if virtual_dir is not None:
        image = virtual_dir / f"{serial}{CARD_SUFFIX}"
        if not image.is_file():
            fail(f"no card image {image}", ExitCode.FILE)
        return open_card(CardSource(virtual=image, timeout=timeout))
    return open_card(CardSource(reader=reader, timeout=timeout))


def _printed_can(virtual_dir: Path, serial: str) -> str:
    from ektp_card.desk.batch import PRINT_SUFFIX, PrintedCard

    path = virtual_dir / f"{serial}{PRINT_SUFFIX}"
    try:
        return PrintedCard.load(path).can
    except OSError as e:
        fail(f"cannot read the CAN from {path}: {e.strerror or e} (give --can)", ExitCode.FILE)
    except ValueError:
        fail(f"{path} is not a print job of `ektp desk issue` (give --can)", ExitCode.FILE)


def _handover_trust(issuer_dir: Path | None, trust_dir: Path | None, no_crl: bool) -> TrustStore:
    from ektp_card._cli.personalize import issuer_trust
    from ektp_card._cli.verify import _load_trust

    if (issuer_dir is None) == (trust_dir is None):
        fail("give the trusted CSCA with --issuer DIR (the issuer PKI folder) or --trust DIR", ExitCode.USAGE)
    if issuer_dir is not None:
        return issuer_trust(issuer_dir, require_crl=not no_crl)
    return _load_trust(trust_dir, (), ())


def _handover_exit() -> dict[str, ExitCode]:
    from ektp_card.desk.handover import Refusal

    return {
        Refusal.FORGED: ExitCode.FORGED,
        Refusal.CLONED: ExitCode.CLONED,
        Refusal.NOT_THIS_CARD: ExitCode.VERIFY_FAILED,
        Refusal.HOLDER_MISMATCH: ExitCode.HOLDER_MISMATCH,
        Refusal.NOT_COMPARED: ExitCode.SECURITY,
    }


@click.command()
@click.argument("serial", type=Serial())
@click.option("--fingerprint", required=True, type=FilePath(path_type=Path, dir_okay=False, exists=True),
              metavar="FILE", help="The holder's fresh capture, an ISO/IEC 19794-2 minutiae record.")
@click.option("--can", envvar="EKTP_CAN", metavar="CAN|-",
              help="The CAN printed on the card; '-' asks for it (hidden). Default: $EKTP_CAN, or with "
                   "--virtual-dir the card's print job.")
@click.option("--reader", "-r", metavar="NAME|INDEX", help="PC/SC reader holding the card.")
@click.option("--virtual-dir", type=FilePath(path_type=Path, file_okay=False, exists=True), metavar="DIR",
              help="The virtual card directory of `ektp desk issue`: the card is DIR/SERIAL.card.")
@click.option("--timeout", type=TIMEOUT, default=5.0, show_default=True, help="Seconds to wait for a card.")
@click.option("--issuer", "--pki", "issuer_dir", metavar="DIR",
              type=FilePath(path_type=Path, file_okay=False),
              help="The issuer PKI folder: its CSCA and CRL are trusted.")
@click.option("--trust", "trust_dir", type=FilePath(path_type=Path, file_okay=False), metavar="DIR",
              help="Instead of --issuer: a folder of trusted CSCA certificates and CRLs (as `ektp verify`).")
@terminal_options("The desk's terminal: DG3 is read after Terminal Authentication.", required=True)
@click.option("--no-crl", is_flag=True, help="Accept a document signer when no current CRL is at hand.")
@registry_options
@click.pass_obj
def handover(
    obj: Ctx, serial: str, fingerprint: Path, can: str | None, reader: str | None, virtual_dir: Path | None,
    timeout: float, issuer_dir: Path | None, trust_dir: Path | None, terminal_chain: tuple[Path, ...],
    terminal_key: Path | None, terminal_pkcs11: str | None, terminal_token: str | None,
    terminal_key_label: str | None, terminal_pin_env: str, no_crl: bool, registry_target: str, desk_id: str,
    actor: str,
) -> None:
    """Hand card SERIAL to its holder: the card must verify as the registry's SERIAL and the holder's
    finger must match DG3, then the registry records the handover.

    Exit 0 when handed over; 13 when the finger matches neither DG3 template, 10 when the card is not
    the registered SERIAL, 11 forged, 12 cloned, 8 when the finger could not be compared (Terminal
    Authentication refused, DG3 unreadable). A refused card stays personalised. 15: the registry does not
    allow the handover (not personalised, unknown).
    """
    from ektp_card._cli.verify import _load_fingerprint, load_terminal, terminal_token_choice
    from ektp_card.desk.handover import hand_over, handover_candidate
    from ektp_card.verify.passive import Policy

    if reader is not None and virtual_dir is not None:
        raise click.UsageError("use only one of --reader, --virtual-dir")
    serial = serial.upper()
    hsm = terminal_token_choice(
        terminal_key, terminal_pkcs11, terminal_token, terminal_key_label, terminal_pin_env
    )
    if terminal_key is None and hsm is None:
        fail("give the terminal key with --terminal-key (or --terminal-pkcs11): DG3 is read only after "
             "Terminal Authentication", ExitCode.USAGE)
    capture = _load_fingerprint(fingerprint)
    trust = _handover_trust(issuer_dir, trust_dir, no_crl)
    secret = card_password(can, "CAN")
    if not secret and virtual_dir is None:
        fail("give the CAN printed on the card with --can (or $EKTP_CAN)", ExitCode.USAGE)
    with open_desk_registry(registry_target) as registry:
        # An unknown or unpersonalised card is the registry's refusal (15), found before its print
        # job, the card and the terminal key are touched.
        handover_candidate(registry, serial)
        if not secret:
            assert virtual_dir is not None  # noqa: S101 - checked above
            secret = _printed_can(virtual_dir, serial)
        terminal = load_terminal(terminal_chain, terminal_key, hsm)
        try:
            with _handover_card(reader, virtual_dir, serial, timeout) as transport:
                result = hand_over(transport, registry, serial, secret, trust, terminal, capture,
                                   desk=desk_id, actor=actor, policy=Policy(require_crl=not no_crl))
        finally:
            close = getattr(terminal.signer, "close", None)
            if callable(close):
                close()
    _render_handover(obj, result)
    if result.refusal is not None:
        raise click.exceptions.Exit(int(_handover_exit()[result.refusal]))


def _render_handover(obj: Ctx, result: HandoverResult) -> None:
    if obj.json:
        obj.emit(result.to_json())
        return
    o = obj.out
    for c in result.report.checks:
        o.print(f"  {c.name:<24} {c.status.value:<14} {c.reason}", markup=False)
    same = "matches" if result.sod_sha256 == result.registered_sod_sha256 else "does NOT match"
    o.print(f"  {'registry':<24} EF.SOD {same} the one registered for card {result.serial}", markup=False)
    if result.refusal is None:
        o.print(f"Card {result.serial} handed over to its holder", markup=False)
    else:
        click.echo(one_line(f"Error: card {result.serial} not handed over ({result.refusal.value}): "
                            + "; ".join(result.reasons)), err=True)


__all__ = [
    "activate", "audit_verify", "damaged", "handover", "lost", "open_desk_registry", "registry_options",
    "replace", "revoke", "row_json", "show",
]
