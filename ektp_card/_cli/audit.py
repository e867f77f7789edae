"""ektp audit: the clone, forgery and skimming catalogue run against a card, and the attack cards a
reviewer rehearses it with."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ektp_card._cli.options import TIMEOUT
from ektp_card._cli.passwords import card_password
from ektp_card._cli.personalize import MASTER_KEY_FILE, document_signer, issuer_trust, master_key
from ektp_card._cli.pki import DS_PASS
from ektp_card._cli.util import (
    Ctx,
    ExitCode,
    FilePath,
    Finite,
    Word,
    check_output,
    explain,
    fail,
    one_line,
    read_input,
)
from ektp_card._cli.verify import terminal_options

if TYPE_CHECKING:
    from ektp_card.audit.catalogue.authenticity import TearKit
    from ektp_card.audit.engine import AuditReport, AuditTest, CardTarget
    from ektp_card.verify.card import Terminal


@click.command()
@click.option("--reader", "-r", metavar="NAME|INDEX",
              help="PC/SC reader (name substring or index; default: the first reader with a card).")
@click.option("--virtual", "virtual", metavar="IMAGE", type=FilePath(path_type=Path, dir_okay=False),
              help="Virtual card image (saved back after every session, so any change shows in the file).")
@click.option("--timeout", type=TIMEOUT, default=5.0, show_default=True, help="Seconds to wait for a card.")
@click.option("--can", envvar="EKTP_CAN", metavar="CAN|-",
              help="Card access number printed on the card; '-' asks for it (hidden). Default: $EKTP_CAN.")
@click.option("--trust", "trust_dir", metavar="DIR", type=FilePath(path_type=Path, file_okay=False),
              help="Trusted country signing CA certificates and CRLs, for the Passive Authentication tests "
                   "(without it they are not applicable).")
@terminal_options("For the tests that need Terminal Authentication.")
@click.option("--only", "only", multiple=True, metavar="ID,...", type=Word(2000),
              help="Run only these tests (comma-separated IDs, or repeat the option).")
@click.option("--list", "list_only", is_flag=True, help="List the catalogue and exit; no card is needed.")
@click.option("--destructive", is_flag=True,
              help="Also run the tests that may alter or block the card (retry counters, writes, tearing); "
                   "asks for confirmation on a real card.")
@click.option("--yes", "-y", "assume_yes", is_flag=True,
              help="Confirm --destructive on a real card without asking (for scripts).")
@click.option("--junit", type=FilePath(path_type=Path, dir_okay=False), metavar="FILE",
              help="Also write the report as JUnit XML for CI servers.")
@click.option("--relay-bound", "relay_bound", type=Finite(min=0, min_open=True, max=60_000), metavar="MS",
              help="The verifier's relay bound in milliseconds for RELAY-LATENCY (default 250).")
@click.option("--challenges", type=click.IntRange(min=2, max=65_536), metavar="N",
              help="Random challenges RNG-QUALITY draws (default 256).")
@click.option("--printed", type=FilePath(path_type=Path, dir_okay=False), metavar="FILE.json",
              help="The fields printed on the card surface, as a JSON object field -> text, for PRINT-CHIP.")
@click.option("--fingerprint", type=FilePath(path_type=Path, dir_okay=False), metavar="FILE",
              help="A fresh capture of the holder's finger (ISO/IEC 19794-2), for BIO-MOC's timing measure "
                   "of on-card comparison (without it that part is not applicable).")
@click.option("--make", "make", type=(str, FilePath(path_type=Path, dir_okay=False),
                                      FilePath(path_type=Path, dir_okay=False)),
              metavar="KIND GENUINE_IMAGE OUT_IMAGE", default=None,
              help="Build an attack card of KIND (see --list) from what GENUINE_IMAGE gives away when read "
                   "with --can; GENUINE_IMAGE is not changed. Runs no audit.")
@click.option("--make-clone", "make_clone", type=(FilePath(path_type=Path, dir_okay=False),
                                                  FilePath(path_type=Path, dir_okay=False)),
              metavar="GENUINE_IMAGE OUT_IMAGE", default=None, help="The same as --make clone.")
@click.option("--delay-ms", type=click.IntRange(min=0, max=60_000), metavar="N",
              help="With --make relay: milliseconds the relay adds to every answer.")
@click.option("--force", is_flag=True, help="With --make: overwrite an existing OUT_IMAGE.")
@click.option("--tear-blank", type=FilePath(path_type=Path, dir_okay=False, exists=True), metavar="IMAGE",
              help="TEAR-PERSO: a blank card image of the issuer; every cut personalises a fresh copy of it "
                   "(the image itself is never written). Needs --pki and the master key.")
@click.option("--pki", "pki_dir", metavar="DIR",
              type=FilePath(path_type=Path, file_okay=False, exists=True),
              help="TEAR-PERSO: the issuer PKI folder whose document signer signs the torn cards.")
@DS_PASS
@MASTER_KEY_FILE
@click.pass_obj
def audit(
    obj: Ctx, reader: str | None, virtual: Path | None, timeout: float, can: str | None,
    trust_dir: Path | None, terminal_chain: tuple[Path, ...], terminal_key: Path | None,
    terminal_pkcs11: str | None, terminal_token: str | None, terminal_key_label: str | None,
    terminal_pin_env: str, only: tuple[str, ...], list_only: bool, destructive: bool, assume_yes: bool,
    junit: Path | None, relay_bound: float | None, challenges: int | None, printed: Path | None,
    fingerprint: Path | None, make: tuple[str, Path, Path] | None, make_clone: tuple[Path, Path] | None,
    delay_ms: int | None,
    force: bool, tear_blank: Path | None, pki_dir: Path | None, ds_env: str,
    master_key_file: Path | None,
) -> None:
    """Run the security audit catalogue against a card: what a cloner, forger or skimmer would try,
    with a verdict and the deciding APDUs per test.

    Safe by default: tests that may alter or block the card run only with --destructive (confirmed
    on a real card). Exit 0 when no test failed, 20 when at least one did; 8 for a wrong CAN (checked
    once before any test runs), 2 for an unknown test ID.

    --make KIND GENUINE_IMAGE OUT_IMAGE (or --make-clone GENUINE_IMAGE OUT_IMAGE) builds an attack
    card to rehearse with instead.
    """
    if list_only:
        if make or make_clone:
            fail("--list goes alone, without --make", ExitCode.USAGE)
        _list(obj)
        return
    if make is not None and make_clone is not None:
        fail("give --make or --make-clone, not both", ExitCode.USAGE)
    if make_clone is not None:
        make = ("clone", *make_clone)
    if make is None and delay_ms is not None:
        fail("--delay-ms goes with --make relay", ExitCode.USAGE)
    tear_only = bool(only) and make is None and {t.id for t in _select(only)} == {"TEAR-PERSO"}
    can = card_password(can, "CAN")
    if not can and not (tear_only and reader is None and virtual is None):
        fail("give the card access number with --can (or $EKTP_CAN)", ExitCode.USAGE)
    if make is not None:
        if reader is not None or virtual is not None:
            fail("--make reads GENUINE_IMAGE: give it without --reader or --virtual", ExitCode.USAGE)
        _make(obj, make, can or "", delay_ms, force)
        return
    if reader is not None and virtual is not None:
        raise click.UsageError("use only one of --reader, --virtual")
    tests = _select(only)
    if junit is not None:
        check_output(junit)  # before the audit, not after it
    # Nothing to confirm when none of the chosen tests is destructive.
    # A tearing-only run without a card works on in-memory copies of the blank image: nothing to confirm.
    copies_only = tear_only and virtual is None and reader is None
    warning = _consent(destructive and not copies_only and any(t.destructive for t in tests), virtual,
                       assume_yes)

    from ektp_card.audit.engine import AuditOptions, run_audit

    options = AuditOptions(can=can or "", destructive=destructive)
    if relay_bound is not None:
        options.relay_bound_ms = relay_bound
    if challenges is not None:
        options.challenges = challenges
    if printed is not None:
        options.printed = _load_printed(printed)
    if fingerprint is not None:
        from ektp_card.lds.biometrics import MinutiaeRecord

        options.fingerprint = MinutiaeRecord.load(fingerprint).encode()
    if trust_dir is not None:
        from ektp_card._cli.verify import _load_trust

        options.trust = _load_trust(trust_dir, (), ())
    options.terminal = _terminal(terminal_chain, terminal_key, terminal_pkcs11, terminal_token,
                                 terminal_key_label, terminal_pin_env)
    if tear_blank is not None or pki_dir is not None:
        options.tear = _tear_kit(tear_blank, pki_dir, ds_env, master_key_file)
    try:
        if tear_only and reader is None and virtual is None:
            # Tearing alone: the card under audit is the blank one; each cut works on its own copy.
            if options.tear is None:
                fail("TEAR-PERSO alone needs --tear-blank IMAGE and --pki DIR", ExitCode.USAGE)
            target: CardTarget = options.tear.blank()
        else:
            target = _target(reader, virtual, timeout)
            _check_can(target, options.can)
        if warning is not None:
            click.echo(one_line(warning), err=True)
        report = run_audit(target, options, tests, progress=_progress(len(tests)) if _watched() else None)
    finally:
        close = getattr(getattr(options.terminal, "signer", None), "close", None)
        if callable(close):
            close()
    if junit is not None:
        from ektp_card.files import write_atomic

        write_atomic(junit, report.to_junit_xml(), mode=0o644)
    if obj.json:
        obj.emit(report.to_json())
    else:
        _render(obj, report, junit)
    if report.failures:
        raise click.exceptions.Exit(int(ExitCode.AUDIT_FINDINGS))


def _tear_kit(blank: Path | None, pki_dir: Path | None, ds_env: str, key_file: Path | None) -> TearKit:
    """What TEAR-PERSO needs: fresh copies of a blank card image, a synthetic citizen's plan (tearing is
    about the chip, not the data), the master key and the issuer's document signer."""
    if blank is None or pki_dir is None:
        fail("TEAR-PERSO needs --tear-blank IMAGE and --pki DIR together", ExitCode.USAGE)
    from ektp_card.audit.catalogue.authenticity import TearKit
    from ektp_card.audit.targets import VirtualTarget
    from ektp_card.files import CARD_IMAGE_LIMIT
    from ektp_card.lds.synthetic import synthetic_record
    from ektp_card.personalize import plan_from_record
    from ektp_card.virtual.card import VirtualCard
    from ektp_card.virtual.perso import PersoState, personalisation_state

    image = read_input(blank, CARD_IMAGE_LIMIT)
    card = VirtualCard.loads(image, str(blank))
    if personalisation_state(card) is not PersoState.BLANK:
        fail(f"{blank} is not a blank card: TEAR-PERSO personalises copies of a blank one", ExitCode.USAGE)
    key = master_key(key_file)
    trust = issuer_trust(pki_dir, require_crl=True)
    signer = document_signer(pki_dir, ds_env, None, trust)

    def fresh_blank() -> VirtualTarget:
        # Each cut gets its own in-memory copy: the image on disk stays as it was.
        return VirtualTarget(VirtualCard.loads(image, str(blank)))

    return TearKit(fresh_blank, plan_from_record(synthetic_record(1)), key, signer, trust)


# --- the catalogue --------------------------------------------------------------------------------


def _list(obj: Ctx) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ektp_card.audit.attacks import ATTACK_KINDS
    from ektp_card.audit.engine import select_tests

    tests = select_tests()
    if obj.json:
        obj.emit({
            "tests": [
                {"id": t.id, "title": t.title, "threat": str(t.threat), "destructive": t.destructive,
                 "needs": list(t.needs), "description": t.description}
                for t in tests
            ],
            "attack_cards": [
                {"kind": k.name, "caught_by": k.caught_by, "description": k.description}
                for k in ATTACK_KINDS.values()
            ],
        })
        return
    table = Table(title=f"Audit catalogue: {len(tests)} tests")
    table.add_column("ID", no_wrap=True)
    table.add_column("threat")
    table.add_column("destructive")
    table.add_column("description")
    for t in tests:
        table.add_row(t.id, str(t.threat), "[yellow]yes[/yellow]" if t.destructive else "no",
                      f"[bold]{escape(t.title)}[/bold]. {escape(t.description)}")
    obj.out.print(table)
    kinds = Table(title="Attack cards (--make KIND GENUINE_IMAGE OUT_IMAGE)")
    kinds.add_column("KIND", no_wrap=True)
    kinds.add_column("caught by", no_wrap=True)
    kinds.add_column("what it is")
    for kind in ATTACK_KINDS.values():
        kinds.add_row(kind.name, kind.caught_by, escape(kind.description))
    obj.out.print(kinds)


def _select(only: tuple[str, ...]) -> tuple[AuditTest, ...]:
    from ektp_card.audit.engine import select_tests

    ids = [part for value in only for part in value.split(",") if part.strip()]
    if only and not ids:
        fail("--only names no test", ExitCode.USAGE)
    return select_tests(ids or None)


# --- safety -----------------------------------------------------------------------------------------


def _interactive() -> bool:
    """Whether a person can answer a confirmation (stdin is a terminal)."""
    return sys.stdin.isatty()


def _consent(destructive: bool, virtual: Path | None, assume_yes: bool) -> str | None:
    """--destructive on a real card needs a confirmation; on an image it only warns: the warning is
    returned, to be shown once every check has passed (a refused command stays one line)."""
    if not destructive:
        return None
    if virtual is not None:
        return (f"Warning: --destructive tests may alter or block the card in {virtual} (retry counters, "
                "writes, an interrupted personalisation); audit a copy to keep it.")
    if assume_yes:
        return None
    if not _interactive():
        fail("--destructive may alter or block the card in the reader: confirm on a terminal or add --yes",
             ExitCode.USAGE)
    click.confirm("The destructive tests may alter or block the card in the reader (retry counters, "
                  "writes, an interrupted personalisation). Run them?", abort=True, err=True)
    return None


# --- inputs -----------------------------------------------------------------------------------------


def _load_printed(path: Path) -> Mapping[str, str]:
    from ektp_card.files import SMALL_JSON_LIMIT, parse_json

    try:
        text = read_input(path, SMALL_JSON_LIMIT).decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{path}: not UTF-8 text", ExitCode.USAGE)
    try:
        data = parse_json(text)
    except json.JSONDecodeError as e:
        fail(f"{path}: not JSON: {e.msg} (line {e.lineno})", ExitCode.USAGE)
    # Printed text has no control characters (nor lone surrogates, which no card can carry).
    if not isinstance(data, dict) or not all(isinstance(v, str) and v.isprintable() for v in data.values()):
        fail(f"{path}: give a JSON object of field name -> printed text", ExitCode.USAGE)
    return {str(k): v for k, v in data.items()}


def _terminal(
    chain: tuple[Path, ...], key: Path | None, module: str | None, token: str | None,
    key_label: str | None, pin_env: str,
) -> Terminal | None:
    from ektp_card._cli.verify import load_terminal, terminal_token_choice

    hsm = terminal_token_choice(key, module, token, key_label, pin_env)
    has_key = key is not None or hsm is not None
    if bool(chain) != has_key:
        fail("give --terminal-chain and --terminal-key (or --terminal-pkcs11) together", ExitCode.USAGE)
    return load_terminal(chain, key, hsm) if has_key else None


def _target(reader: str | None, virtual: Path | None, timeout: float) -> CardTarget:
    from ektp_card.audit.targets import PcscTarget, VirtualTarget

    if virtual is not None:
        return VirtualTarget(virtual)
    return PcscTarget(reader, timeout)


def _check_can(target: CardTarget, can: str) -> None:
    """PACE once with the CAN before any test: with a wrong CAN every test would end in an error."""
    from ektp_card.errors import PacePasswordError
    from ektp_card.session.card import CardSession, Credentials

    try:
        with target.session() as transport:
            session = CardSession(transport)
            session.discover()
            session.authenticate(Credentials(can=can))
    except PacePasswordError as e:
        raise explain(e, f"{e}; no test was run") from e


# --- running and rendering -------------------------------------------------------------------------


def _watched() -> bool:
    """Whether a person watches stderr: progress lines go to a terminal only, so that a script reading
    stderr gets the one error line of the contract even when an audit fails half-way."""
    return sys.stderr.isatty()


def _progress(total: int) -> Callable[[AuditTest], None]:
    done = [0]

    def show(test: AuditTest) -> None:
        done[0] += 1
        click.echo(f"[{done[0]}/{total}] {test.id}: {test.title}", err=True)

    return show


_OUTCOME_STYLE = {
    "pass": "[green]pass[/green]",
    "fail": "[bold red]FAIL[/bold red]",
    "n/a": "[cyan]n/a[/cyan]",
    "skipped": "[dim]skipped[/dim]",
    "error": "[yellow]error[/yellow]",
}


def _render(obj: Ctx, report: AuditReport, junit: Path | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    o = obj.out
    table = Table(title=f"Audit of the {escape(report.card)}")
    table.add_column("ID", no_wrap=True)
    table.add_column("threat")
    table.add_column("outcome", no_wrap=True)
    table.add_column("reason")
    for r in report.results:
        table.add_row(r.id, str(r.threat), _OUTCOME_STYLE[str(r.outcome)], escape(r.reason))
    o.print(table)
    counts: dict[str, int] = {}
    for r in report.results:
        counts[str(r.outcome)] = counts.get(str(r.outcome), 0) + 1
    summary = ", ".join(f"{n} {name}" for name, n in counts.items())
    o.print(f"{len(report.results)} tests in {report.seconds:.1f} s: {summary}")
    o.print("What this audit cannot show:")
    for line in report.limitations:
        o.print(f"  - {escape(line)}")
    if junit is not None:
        o.print(f"JUnit XML written to {escape(str(junit))}")
    if report.failures:
        o.print(f"[bold red]FINDINGS[/bold red]: {', '.join(r.id for r in report.failures)}")
    else:
        o.print("[bold green]NO FINDINGS[/bold green]")


# --- attack cards -----------------------------------------------------------------------------------


def _make(obj: Ctx, make: tuple[str, Path, Path], can: str, delay_ms: int | None, force: bool) -> None:
    from ektp_card.audit import attacks
    from ektp_card.virtual.card import VirtualCard

    kind, genuine, out = make
    kind = kind.strip().lower()
    if kind not in attacks.ATTACK_KINDS:
        fail(f"unknown attack card {kind!r}; one of {', '.join(attacks.ATTACK_KINDS)}", ExitCode.USAGE)
    if delay_ms is not None and kind != "relay":
        fail("--delay-ms goes with --make relay", ExitCode.USAGE)
    if out.exists() and out.resolve() == genuine.resolve():
        fail("OUT_IMAGE is GENUINE_IMAGE: the genuine card is never overwritten", ExitCode.USAGE)
    if out.exists() and not force:
        fail(f"{out} exists; use --force to overwrite it", ExitCode.FILE)
    check_output(out)
    # Loaded, read, never saved: harvesting must leave the genuine image as it was.
    card = VirtualCard.load(genuine)
    if delay_ms is None:
        attack = attacks.make_attack_card(kind, card, can)
    else:
        attack = attacks.make_attack_card(kind, card, can, delay_ms=delay_ms)
    attack.save(out)
    if obj.json:
        obj.emit({"kind": kind, "genuine": str(genuine), "image": str(out)})
    else:
        from rich.markup import escape

        obj.out.print(f"{kind} card written to {escape(str(out))} (from what {escape(str(genuine))} gives "
                      "away when read)")
