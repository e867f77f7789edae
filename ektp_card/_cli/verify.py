"""ektp verify: the clerk's check of an e-KTP - genuine, not cloned, the holder's finger - as a table or
JSON and an exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ektp_card._cli.options import card_source_options, make_source, pace_mapping_option
from ektp_card._cli.options import pace_mapping as mapping_of
from ektp_card._cli.passwords import card_password, prompt_if_asked
from ektp_card._cli.util import Ctx, ExitCode, FilePath, about, check_output, fail, read_input, warn_later

if TYPE_CHECKING:
    from ektp_card._cli.pkcs11 import Pkcs11Choice
    from ektp_card.crypto.mrz import MrzInfo
    from ektp_card.lds.biometrics import MinutiaeRecord
    from ektp_card.pki.revocation import RevocationList
    from ektp_card.pki.signer import Signer
    from ektp_card.pki.trust import TrustStore
    from ektp_card.verify.card import Terminal, VerificationReport
    from ektp_card.verify.timing import TimingReport

F = TypeVar("F", bound=Callable[..., Any])


def terminal_options(purpose: str, *, required: bool = False) -> Callable[[F], F]:
    """The options naming the terminal of Terminal Authentication: its CV certificate chain and its key
    in a file or a PKCS#11 token (parameters ``terminal_chain``, ``terminal_key``, ``terminal_pkcs11``,
    ``terminal_token``, ``terminal_key_label``, ``terminal_pin_env``)."""
    options = [
        click.option("--terminal-chain", multiple=True, required=required, metavar="FILE",
                     type=FilePath(path_type=Path, dir_okay=False, exists=True),
                     help=f"The terminal's CV certificates (binary), DV then terminal (repeat the option). "
                          f"{purpose}"),
        click.option("--terminal-key", type=FilePath(path_type=Path, dir_okay=False, exists=True),
                     metavar="FILE", help="The terminal certificate's encrypted key file (passphrase from "
                                          "$EKTP_TERMINAL_PASSPHRASE, else prompted for)."),
        click.option("--terminal-pkcs11", metavar="MODULE",
                     help="Instead of --terminal-key: the terminal key is in a PKCS#11 token (module path, "
                          "e.g. libsofthsm2.so)."),
        click.option("--terminal-token", metavar="LABEL", help="Token label (with --terminal-pkcs11)."),
        click.option("--terminal-key-label", metavar="LABEL",
                     help="Key pair label on the token (with --terminal-pkcs11)."),
        click.option("--terminal-pin-env", default="EKTP_TERMINAL_PIN", show_default=True, metavar="NAME",
                     help="Environment variable holding the token PIN (prompted for when unset on a "
                          "terminal)."),
    ]

    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


@click.command()
@card_source_options
@click.option("--can", envvar="EKTP_CAN", metavar="CAN|-",
              help="Card access number printed on the card; '-' asks for it (hidden). Default: $EKTP_CAN.")
@click.option("--mrz", metavar="MRZ|-",
              help="Verify an ICAO passport (eMRTD) instead: its whole MRZ, or DOCUMENT,BIRTH,EXPIRY "
                   "(dates YYMMDD), for PACE-MRZ or BAC; '-' asks for it (hidden).")
@click.option("--trust", "trust_dir", metavar="DIR",
              type=FilePath(path_type=Path, file_okay=False),
              help="Folder of trusted country signing CA certificates (.pem/.crt/.cer/.der) and CRLs (.crl), "
                   "also in its country folders (`ektp trust import`).")
@click.option("--master-list", "master_lists", multiple=True, metavar="FILE",
              type=FilePath(path_type=Path, dir_okay=False),
              help="An ICAO CSCA master list (DER CMS, ICAO 9303-12 section 9) whose CSCAs are trusted too "
                   "(repeat the option); its signer must chain to a CSCA of --master-list-anchor or --trust.")
@click.option("--master-list-anchor", "anchors", multiple=True, metavar="CERT",
              type=FilePath(path_type=Path, dir_okay=False),
              help="A CSCA certificate (PEM or DER) trusted to issue master list signers "
                   "(repeat the option).")
@click.option("--face-out", type=FilePath(path_type=Path, dir_okay=False), metavar="PATH",
              help="Write the holder's face image from DG2 to PATH, in the format its suffix names: "
                   ".jpg/.jpeg (a JPEG face as stored on the card) or .png; JPEG 2000 faces and PNG output "
                   "are converted with Pillow (the 'images' extra).")
@terminal_options("Runs Terminal Authentication and reads DG3.")
@click.option("--fingerprint", type=FilePath(path_type=Path, dir_okay=False, exists=True), metavar="FILE",
              help="The holder's freshly captured ISO/IEC 19794-2 template: compared by the chip itself when "
                   "the card offers on-card comparison and the terminal holds verify-biometric, else with "
                   "DG3's (needs --terminal-chain and a terminal key).")
@click.option("--no-crl", is_flag=True, help="Accept a document signer when no current CRL is in --trust.")
@click.option("--revocations", "revocations_file", metavar="FILE",
              type=FilePath(path_type=Path, dir_okay=False),
              help="A signed card revocation list (`ektp desk revocations`); its signer must chain to a "
                   "trusted CSCA. A card on it is refused (exit 14) although its signatures are valid.")
@click.option("--allow-stale-revocations", is_flag=True,
              help="Use a --revocations list past its next update (a bad signature is never accepted).")
@click.option("--short", is_flag=True, help="Short APDUs only, even when the card offers extended length.")
@pace_mapping_option
@click.option("--timing", is_flag=True,
              help="Also report the APDUs and bytes each way, and the modelled ISO 14443 air time at "
                   "106/212/424/848 kbit/s against the raw-bits floor.")
@click.pass_obj
def verify(
    obj: Ctx, reader: str | None, nfc: str | None, virtual: Path | None, timeout: float, can: str | None,
    mrz: str | None, trust_dir: Path | None, master_lists: tuple[Path, ...], anchors: tuple[Path, ...],
    face_out: Path | None, terminal_chain: tuple[Path, ...],
    terminal_key: Path | None, terminal_pkcs11: str | None, terminal_token: str | None,
    terminal_key_label: str | None, terminal_pin_env: str, fingerprint: Path | None, no_crl: bool,
    revocations_file: Path | None, allow_stale_revocations: bool, short: bool, pace_mapping: str,
    timing: bool,
) -> None:
    """Verify an e-KTP like a clerk: PACE with the CAN, Passive, Chip and Active Authentication; with
    a terminal, Terminal Authentication, DG3 and the holder's fingerprint.

    With --mrz, verify an ICAO passport: PACE-MRZ or BAC, Passive, Chip and Active Authentication,
    DG1's MRZ decoded and DG2's face.

    PACE with Chip Authentication Mapping proves the chip inside PACE, and counts only when EF.SOD
    covers the key it proved; the report names what proved the chip (CAM, CA, AA).

    Exit 0 when the card is genuine, 11 forged (not what the issuer signed), 12 cloned (the issuer's
    data on another chip), 13 holder mismatch (the fingerprint matches neither DG3 template, or the chip
    says no match), 14 revoked
    (on the --revocations list); 8 for a wrong CAN or MRZ, 5 for a card that left the field, 7 for a
    trust folder or master list that cannot be used (a master list's signer must chain to
    --master-list-anchor or --trust). A --revocations file that cannot be read or parsed exits 7; one
    whose signature or signer does not verify, or that is past its next update, exits 8.
    """
    from ektp_card.device import open_card
    from ektp_card.verify.card import Verdict, verify_card
    from ektp_card.verify.passive import Policy
    from ektp_card.verify.timing import CountingTransport, timing_report

    hsm = terminal_token_choice(
        terminal_key, terminal_pkcs11, terminal_token, terminal_key_label, terminal_pin_env
    )
    has_key = terminal_key is not None or hsm is not None
    if bool(terminal_chain) != has_key:
        fail("give --terminal-chain and --terminal-key (or --terminal-pkcs11) together", ExitCode.USAGE)
    if fingerprint is not None and not has_key:
        fail("--fingerprint needs --terminal-chain and --terminal-key (or --terminal-pkcs11): DG3 is read "
             "only after Terminal Authentication", ExitCode.USAGE)
    if mrz is not None and (can is not None or has_key):
        fail("--mrz verifies a passport: give it without --can, --terminal-chain and the terminal key",
             ExitCode.USAGE)
    if revocations_file is not None and mrz is not None:
        fail("--revocations lists e-KTP cards: give it without --mrz", ExitCode.USAGE)
    capture = None if fingerprint is None else _load_fingerprint(fingerprint)
    mrz_info = None if mrz is None else _parse_mrz(prompt_if_asked(mrz, "MRZ"))
    can = None if mrz_info is not None else card_password(can, "CAN")
    if not can and mrz_info is None:
        fail("give the card access number with --can (or $EKTP_CAN)", ExitCode.USAGE)
    if trust_dir is None and not master_lists:
        fail("give the trusted CSCAs with --trust DIR or --master-list FILE", ExitCode.USAGE)
    if anchors and not master_lists:
        fail("--master-list-anchor goes with --master-list: it says whose master lists to trust",
             ExitCode.USAGE)
    if master_lists and trust_dir is None and not anchors:
        fail("--master-list needs --master-list-anchor CERT (or --trust DIR): a master list is only as "
             "trustworthy as the CSCA that issued its signer", ExitCode.USAGE)
    if face_out is not None:
        from ektp_card._cli.faces import needs_pillow, require_pillow

        check_output(face_out)
        if needs_pillow(face_out):
            require_pillow()
    trust = _load_trust(trust_dir, master_lists, anchors)
    revocations = (None if revocations_file is None
                   else _load_revocations(revocations_file, trust, allow_stale_revocations))
    source = make_source(reader, nfc, virtual, timeout)
    terminal = None if not has_key else load_terminal(terminal_chain, terminal_key, hsm)
    policy = Policy(require_crl=not no_crl)
    mapping = mapping_of(pace_mapping)
    report: VerificationReport
    extended = False if short else None
    try:
        with open_card(source) as card:
            transport = CountingTransport(card)
            if mrz_info is not None:
                from ektp_card.verify.passport import verify_passport

                report = verify_passport(transport, mrz_info, trust, policy=policy, extended=extended,
                                         pace_mapping=mapping)
            else:
                assert can is not None  # noqa: S101 - checked above
                report = verify_card(transport, can, trust, policy=policy, extended=extended,
                                     terminal=terminal, fingerprint=capture, revocations=revocations,
                                     pace_mapping=mapping)
    finally:
        # A token session stays logged in until closed.
        close = getattr(terminal.signer if terminal is not None else None, "close", None)
        if callable(close):
            close()
    air = timing_report(transport.trace) if timing else None
    face_path: Path | None = None
    if face_out is not None and report.face is not None:
        from ektp_card._cli.faces import convert_face
        from ektp_card.files import write_atomic

        face_bytes = convert_face(report.face.image, face_out)
        write_atomic(face_out, face_bytes, mode=0o600)  # the holder's face: owner only
        face_path = face_out
    if obj.json:
        data = report.to_json()
        data["face_file"] = None if face_path is None else str(face_path)
        if revocations is not None:
            data["revocation_list"] = {"sequence": revocations.sequence, "issuer": revocations.issuer,
                                       "this_update": revocations.this_update.isoformat(),
                                       "next_update": revocations.next_update.isoformat()}
        if air is not None:
            data["timing"] = air.to_json()
        obj.emit(data)
    else:
        if air is not None:
            _render_timing(obj, air)
        _render(obj, report, face_path, face_out)
    codes = {
        Verdict.GENUINE: ExitCode.OK,
        Verdict.FORGED: ExitCode.FORGED,
        Verdict.CLONED: ExitCode.CLONED,
        Verdict.HOLDER_MISMATCH: ExitCode.HOLDER_MISMATCH,
        Verdict.REVOKED: ExitCode.REVOKED,
    }
    if report.verdict is not Verdict.GENUINE:
        raise click.exceptions.Exit(int(codes[report.verdict]))


def _load_trust(
    trust_dir: Path | None, master_lists: tuple[Path, ...], anchors: tuple[Path, ...]
) -> TrustStore:
    """--trust, extended by each master list whose signer chains to a CSCA of --trust or the anchors."""
    from ektp_card.errors import PkiError
    from ektp_card.files import MASTER_LIST_LIMIT
    from ektp_card.pki.trust import TrustStore, load_master_list

    trust = TrustStore(()) if trust_dir is None else TrustStore.from_folder(trust_dir)
    if trust_dir is not None and not trust.cscas and not master_lists:
        fail(f"{trust_dir} holds no certificate to trust", ExitCode.FILE)
    if master_lists:
        anchor_store = TrustStore.from_files(anchors)
        base = TrustStore(trust.cscas + anchor_store.cscas, trust.crls + anchor_store.crls)
        for path in master_lists:
            data = read_input(path, MASTER_LIST_LIMIT)
            with about(str(path), PkiError):
                base = load_master_list(data, base)
        trust = base
    return trust


def _load_revocations(path: Path, trust: TrustStore, allow_stale: bool) -> RevocationList:
    """The --revocations list: exit 7 when unreadable or malformed, 8 when its signature, signer or
    (unless allowed) its dates do not hold."""
    from ektp_card.errors import PkiError
    from ektp_card.files import DOCUMENT_LIMIT
    from ektp_card.pki.revocation import parse_revocation_list

    data = read_input(path, DOCUMENT_LIMIT)
    with about(str(path), PkiError):
        revocations = parse_revocation_list(data)
    problem = revocations.trust_problem(trust)
    if problem is not None:
        fail(f"{path}: revocation list refused: {problem}", ExitCode.SECURITY)
    stale = revocations.stale_problem()
    if stale is not None:
        if not allow_stale:
            fail(f"{path}: revocation list refused: {stale} (or give --allow-stale-revocations)",
                 ExitCode.SECURITY)
        warn_later(f"Warning: {path}: {stale}; used anyway (--allow-stale-revocations)")
    return revocations


def _parse_mrz(text: str | None) -> MrzInfo:
    from ektp_card.access import parse_mrz
    from ektp_card.errors import MrzError

    with about("--mrz", MrzError):
        return parse_mrz(text or "")


def _load_fingerprint(path: Path) -> MinutiaeRecord:
    from ektp_card.lds.biometrics import MinutiaeRecord

    return MinutiaeRecord.load(path)


def terminal_token_choice(
    key_file: Path | None, module: str | None, token: str | None, key_label: str | None, pin_env: str
) -> Pkcs11Choice | None:
    """The --terminal-pkcs11 choice, checked for completeness and against --terminal-key; exit 2."""
    given = [v for v in (module, token, key_label) if v]
    if not given:
        return None
    from ektp_card._cli.pkcs11 import Pkcs11Choice  # with the PKI commands' helpers: only for a token
    if len(given) != 3:
        fail("--terminal-pkcs11, --terminal-token and --terminal-key-label go together", ExitCode.USAGE)
    if key_file is not None:
        fail("give the terminal key either as --terminal-key or in a token (--terminal-pkcs11), not both",
             ExitCode.USAGE)
    assert module and token and key_label  # noqa: S101 - checked above
    return Pkcs11Choice(module, token, key_label, pin_env)


def load_terminal(chain: tuple[Path, ...], key: Path | None, hsm: Pkcs11Choice | None) -> Terminal:
    from ektp_card._cli.pkcs11 import open_signer
    from ektp_card._cli.pki import passphrase
    from ektp_card.pki.cvc import CvCertificate
    from ektp_card.pki.signer import KeyFileSigner
    from ektp_card.verify.card import Terminal

    certificates = [CvCertificate.load(path) for path in chain]
    signer: Signer | None = None
    try:
        if hsm is not None:
            signer = open_signer(hsm)
        else:
            assert key is not None  # noqa: S101 - the caller gives one of the two
            signer = KeyFileSigner.load(key, passphrase("EKTP_TERMINAL_PASSPHRASE", "terminal key"))
        return Terminal(tuple(certificates), signer)
    except BaseException:
        # A token session stays logged in until closed.
        close = getattr(signer, "close", None)
        if callable(close):
            close()
        raise


def _render(obj: Ctx, report: VerificationReport, face_path: Path | None, face_out: Path | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ektp_card.verify.passive import Status

    o = obj.out
    marks = {Status.PASS: "[green]pass[/green]", Status.FAIL: "[red]FAIL[/red]",
             Status.SKIP: "[dim]skipped[/dim]", Status.NOT_SUPPORTED: "[yellow]not supported[/yellow]"}
    table = Table(title="Checks")
    table.add_column("check")
    table.add_column("result")
    table.add_column("reason")
    for c in report.checks:
        table.add_row(c.name, marks[c.status], escape(c.reason))
    o.print(table)
    personal = report.personal
    if personal is not None:
        synthetic = " - SYNTHETIC, no real person" if personal.synthetic else ""
        fields = Table(title=f"Printed data (DG1){synthetic}")
        fields.add_column("field")
        fields.add_column("value")
        for name in type(personal).__dataclass_fields__:
            if name == "synthetic":
                continue
            value = getattr(personal, name)
            shown = personal.validity_text if name == "valid_until" else str(value)
            fields.add_row(name.replace("_", " "), escape(shown))
        o.print(fields)
    document = getattr(report, "document", None)
    if document is not None:
        fields = Table(title=f"Machine readable zone (DG1, {document.format})")
        fields.add_column("field")
        fields.add_column("value")
        for name, value in document.to_json().items():
            if name != "format":
                fields.add_row(name.replace("_", " "), escape(str(value)))
        o.print(fields)
    if report.nik is not None:
        nik = "agrees with sex and date of birth" if report.nik.ok else "; ".join(report.nik.problems)
        o.print(f"NIK {escape(report.nik.nik)}: {escape(nik)}")
    for number, signature in enumerate(report.signatures, 1):
        o.print(f"displayed signature {number} (DG7): {escape(signature.describe())}")
    other = getattr(report, "other_groups", ())
    if other:
        o.print(f"other data groups read (not decoded): {', '.join(f'DG{n}' for n in other)}")
    for note in getattr(report, "notes", ()):
        o.print(f"note: {escape(note)}")
    if face_path is not None:
        o.print(f"face image written to {escape(str(face_path))}")
    elif face_out is not None:
        o.print("no face image on the card (DG2 not read)")
    if report.access is not None and report.access.parameters is not None:
        o.print(f"PACE: {escape(report.access.parameters.algorithm.name)}")
    o.print(f"chip proved by: {', '.join(report.proved_by) or 'nothing'}")
    verdict = report.verdict.value.upper()
    if report.genuine:
        o.print(f"[bold green]{verdict}[/bold green]")
    else:
        o.print(f"[bold red]{escape(verdict)}[/bold red]: {escape('; '.join(report.reasons))}")


def _render_timing(obj: Ctx, air: TimingReport) -> None:
    from rich.table import Table

    table = Table(title=f"Air time (ISO 14443 Type A model, docs/airtime.md): {air.apdus} APDUs, "
                        f"{air.bytes_to_card} bytes to the card, {air.bytes_from_card} from it")
    for column in ("kbit/s", "air ms", "raw-bits floor ms", "x floor", "blocks"):
        table.add_column(column, justify="right")
    for r in air.rates:
        table.add_row(str(r.bit_rate), f"{r.air * 1e3:.1f}", f"{r.floor * 1e3:.1f}",
                      f"{r.air / r.floor:.1f}" if r.floor else "-", str(r.blocks))
    obj.out.print(table)
