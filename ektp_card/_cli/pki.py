"""ektp pki: the issuer's country signing CA, document signers, CRLs, EF.SOD signing and checking, and the
terminal PKI (CV certificates for Terminal Authentication)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ektp_card import errors
from ektp_card._cli.util import Country, Ctx, ExitCode, FilePath, Word, about, check_output, fail, read_input
from ektp_card.files import CERTIFICATE_LIMIT, DOCUMENT_LIMIT, MASTER_LIST_LIMIT

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from ektp_card.pki.cvc import CvCertificate, Role, TerminalType
    from ektp_card.pki.signer import KeyFileSigner

PKI_DIR = click.argument("pki_dir", metavar="DIR", type=FilePath(path_type=Path, file_okay=False))
CSCA_PASS = click.option(
    "--passphrase-env", "csca_env", default="EKTP_CSCA_PASSPHRASE", show_default=True, metavar="NAME",
    help="Environment variable holding the CSCA key passphrase (prompted for when unset on a terminal).",
)
DS_PASS = click.option(
    "--ds-passphrase-env", "ds_env", default="EKTP_DS_PASSPHRASE", show_default=True, metavar="NAME",
    help="Environment variable holding the document signer key passphrase (prompted for when unset).",
)
REASON_NAMES = ["unspecified", "key-compromise", "ca-compromise", "affiliation-changed", "superseded",
                "cessation-of-operation"]
KEY_TYPES = ["brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1", "secp256r1", "secp384r1", "secp521r1",
             "rsa-pss-2048", "rsa-pss-3072", "rsa-pss-4096"]


def passphrase(variable: str, what: str, *, confirm: bool = False) -> Callable[[], bytes]:
    """Read the passphrase from ``variable``, else prompt on the terminal; never from an argument."""

    def read() -> bytes:
        from ektp_card.pki.signer import env_bytes

        value = env_bytes(variable)  # the bytes as set: a passphrase need not be UTF-8
        if value:
            return value
        if not sys.stdin.isatty():
            fail(f"set {variable} to the {what} passphrase (no terminal to prompt on)", ExitCode.USAGE)
        entered = click.prompt(f"{what} passphrase", hide_input=True, confirmation_prompt=confirm, err=True)
        return str(entered).encode()

    return read


def _data_groups(values: tuple[str, ...]) -> dict[int, bytes]:
    groups: dict[int, bytes] = {}
    for value in values:
        number, sep, path = value.partition("=")
        if not sep or not number.isdigit() or not 1 <= int(number) <= 16:
            fail(f"--dg wants N=FILE with N in 1..16, got {value!r}", ExitCode.USAGE)
        data = read_input(Path(path), DOCUMENT_LIMIT, f"data group {number}")
        if not data:
            fail(f"{path}: data group {number} is empty", ExitCode.FILE)
        groups[int(number)] = data
    return groups


#: A country code as certificates carry it (ISO 3166-1 alpha-2).
COUNTRY = Country()

DG_OPTION = click.option("--dg", "dgs", multiple=True, metavar="N=FILE", required=True,
                         help="Data group N as read from the card (whole file); repeat for each.")


@click.group()
def pki() -> None:
    """Issuer PKI: country signing CA, document signers, CRLs, EF.SOD; CV certificates."""


@pki.group()
def csca() -> None:
    """The country signing CA."""


@csca.command("create")
@PKI_DIR
@click.option("--country", required=True, type=COUNTRY, help="Two-letter issuing country code, e.g. ID.")
@click.option("--cn", "common_name", required=True, type=Word(64), help="Common name of the CSCA.")
@click.option("--org", "organization", type=Word(64), help="Organization name.")
@click.option("--key", "key_type", type=click.Choice(KEY_TYPES), default="brainpoolP256r1", show_default=True)
@click.option("--years", type=click.IntRange(3, 5), default=5, show_default=True,
              help="Private key usage period in years (ICAO 9303-12: 3 to 5).")
@click.option("--document-years", type=click.IntRange(1, 20), default=10, show_default=True,
              help="Validity of the documents it will sign; extends the certificate's validity.")
@CSCA_PASS
@click.pass_obj
def csca_create(obj: Ctx, pki_dir: Path, country: str, common_name: str, organization: str | None,
                key_type: str, years: int, document_years: int, csca_env: str) -> None:
    """Create DIR with a new CSCA key (encrypted) and self-signed certificate."""
    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.signer import KeySpec

    issuer = IssuerPki.create(pki_dir, passphrase(csca_env, "CSCA key", confirm=True),
                              spec=KeySpec.parse(key_type), country=country, common_name=common_name,
                              organization=organization, key_usage_years=years,
                              document_validity_years=document_years)
    cert = issuer.csca
    info = _cert_json(cert)
    if obj.json:
        obj.emit({"dir": str(pki_dir), "csca": info})
    else:
        obj.out.print(f"Created CSCA {info['subject']} serial {info['serial']} in {pki_dir}")
        obj.out.print(f"  valid {info['not_before']} to {info['not_after']}")


@pki.group()
def ds() -> None:
    """Document signers: issue, rotate, revoke, list."""


class DocType(click.ParamType[str, str]):
    """An MRZ document code a document signer may sign (``ID``, ``P``, ``I<``): the filler dropped."""

    name = "doc-type"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from ektp_card.pki.certs import document_type

        try:
            return document_type(str(value))
        except errors.PkiError:
            fail(f"--doc-type: one or two letters A-Z (an MRZ document code such as ID, P or I<), "
                 f"got {value!r}", ExitCode.USAGE)


def _issue_options(func: Callable[..., None]) -> Callable[..., None]:
    for decorator in reversed([
        PKI_DIR,
        click.option("--cn", "common_name", required=True, type=Word(64),
                     help="Common name of the document signer."),
        click.option("--org", "organization", type=Word(64), help="Organization name."),
        click.option("--key", "key_type", type=click.Choice(KEY_TYPES), help="Key type (default: CSCA's)."),
        click.option("--days", type=click.IntRange(1, 92), default=90, show_default=True,
                     help="Private key usage period in days (ICAO 9303-12: at most 3 months)."),
        click.option("--document-years", type=click.IntRange(1, 20), default=10, show_default=True),
        click.option("--doc-type", "doc_types", type=DocType(), multiple=True, metavar="CODE",
                     help="A document type the signer may sign (MRZ document code: ID, P, I<, ...); repeat "
                          "for each. Written as its Document Type List (ICAO 9303-12). Default: ID, the "
                          "e-KTP's."),
        CSCA_PASS,
        DS_PASS,
    ]):
        func = decorator(func)
    return func


@ds.command("issue")
@_issue_options
@click.pass_obj
def ds_issue(obj: Ctx, pki_dir: Path, common_name: str, organization: str | None, key_type: str | None,
             days: int, document_years: int, doc_types: tuple[str, ...], csca_env: str, ds_env: str) -> None:
    """Issue a document signer; it becomes the current one."""
    _issue(obj, pki_dir, common_name, organization, key_type, days, document_years, doc_types, csca_env,
           ds_env, None)


@ds.command("rotate")
@_issue_options
@click.option("--destroy-old-key", is_flag=True,
              help="Delete the previous signer's private key (its certificate stays valid).")
@click.pass_obj
def ds_rotate(obj: Ctx, pki_dir: Path, common_name: str, organization: str | None, key_type: str | None,
              days: int, document_years: int, doc_types: tuple[str, ...], csca_env: str, ds_env: str,
              destroy_old_key: bool) -> None:
    """Replace the current document signer with a new one."""
    _issue(obj, pki_dir, common_name, organization, key_type, days, document_years, doc_types, csca_env,
           ds_env, destroy_old_key)


def _issue(obj: Ctx, pki_dir: Path, common_name: str, organization: str | None, key_type: str | None,
           days: int, document_years: int, doc_types: tuple[str, ...], csca_env: str, ds_env: str,
           destroy_old_key: bool | None) -> None:
    from ektp_card.pki.certs import EKTP_DOCUMENT_TYPE
    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.signer import KeySpec

    issuer = IssuerPki(pki_dir)
    kwargs = {"common_name": common_name, "organization": organization,
              "spec": KeySpec.parse(key_type) if key_type else None, "key_usage_days": days,
              "document_validity_years": document_years,
              "document_types": tuple(dict.fromkeys(doc_types)) or (EKTP_DOCUMENT_TYPE,)}
    csca_pass = passphrase(csca_env, "CSCA key")
    ds_pass = passphrase(ds_env, "document signer key", confirm=True)
    old = None
    if destroy_old_key is None:
        new = issuer.issue_document_signer(csca_pass, ds_pass, **kwargs)  # type: ignore[arg-type]
    else:
        old, new = issuer.rotate(csca_pass, ds_pass, destroy_old_key=destroy_old_key, **kwargs)
    info = _cert_json(new.certificate)
    if obj.json:
        obj.emit({"document_signer": info, "previous": f"{old.serial:X}" if old else None,
                  "previous_key_destroyed": bool(old and destroy_old_key)})
        return
    obj.out.print(f"Issued document signer {info['subject']} serial {info['serial']} for document types "
                  f"{', '.join(info['document_types'] or ['any'])}")
    if old is not None:
        obj.out.print(f"  replaces {old.serial:X}" + (" (private key destroyed)" if destroy_old_key else ""))


@ds.command("revoke")
@PKI_DIR
@click.argument("serial", type=Word(64))
@click.option("--reason", type=click.Choice(REASON_NAMES))
@click.pass_obj
def ds_revoke(obj: Ctx, pki_dir: Path, serial: str, reason: str | None) -> None:
    """Revoke document signer SERIAL (hex); publish a CRL afterwards."""
    from ektp_card.pki.issuer import IssuerPki

    try:
        number = int(serial.replace(":", ""), 16)
    except ValueError:
        fail(f"serial must be hex, got {serial!r}", ExitCode.USAGE)
    revocation = IssuerPki(pki_dir).revoke(number, reason)
    if obj.json:
        obj.emit({"serial": f"{number:X}", "revoked_at": revocation.revoked_at.isoformat(), "reason": reason})
    else:
        obj.out.print(f"Revoked {number:X}; run `ektp pki crl publish {pki_dir}` to tell verifiers")


@ds.command("list")
@PKI_DIR
@click.pass_obj
def ds_list(obj: Ctx, pki_dir: Path) -> None:
    """List document signers."""
    from ektp_card.pki.issuer import IssuerPki

    entries = IssuerPki(pki_dir).document_signers()
    rows = [{**_cert_json(e.certificate), "current": e.current, "key": e.has_key,
             "revoked": e.revocation.revoked_at.isoformat() if e.revocation else None} for e in entries]
    if obj.json:
        obj.emit(rows)
        return
    for r in rows:
        marks = (("current", r["current"]), ("revoked", r["revoked"]), ("no key", not r["key"]))
        flags = " ".join(f for f, on in marks if on)
        types = ",".join(r["document_types"] or []) or "any"
        obj.out.print(f"{r['serial']}  {r['subject']}  {r['not_before']} .. {r['not_after']}  {types}  "
                      f"{flags}")


@pki.group()
def crl() -> None:
    """Certificate revocation lists."""


@crl.command("publish")
@PKI_DIR
@click.option("--days", type=click.IntRange(1, 90), default=90, show_default=True,
              help="Days until the next update (ICAO 9303-12: at most 90).")
@click.option("--out", "-o", type=FilePath(path_type=Path, dir_okay=False),
              help="Also write the CRL here (DER when the name ends in .der, else PEM).")
@CSCA_PASS
@click.pass_obj
def crl_publish(obj: Ctx, pki_dir: Path, days: int, out: Path | None, csca_env: str) -> None:
    """Sign a CRL of every revocation so far (also when there is none)."""
    from ektp_card.pki.issuer import IssuerPki

    if out is not None:
        check_output(out)
    # The folder's CRL, its number and the copy go to disk together, or nothing does.
    result = IssuerPki(pki_dir).publish_crl(passphrase(csca_env, "CSCA key"), next_update_days=days,
                                            copy_to=out)
    info = {"file": str(pki_dir / "csca.crl"), "revoked": len(result),
            "this_update": result.last_update_utc.isoformat(),
            "next_update": result.next_update_utc.isoformat() if result.next_update_utc else None}
    if obj.json:
        obj.emit(info)
    else:
        obj.out.print(f"Published CRL with {info['revoked']} revoked, next update {info['next_update']}")


@pki.command("sign-sod")
@PKI_DIR
@DG_OPTION
@click.option("--out", "-o", required=True, type=FilePath(path_type=Path, dir_okay=False),
              help="EF.SOD file.")
@click.option("--hash", "hash_name", type=click.Choice(["sha256", "sha384", "sha512"]), default="sha256",
              show_default=True)
@DS_PASS
@click.pass_obj
def sign_sod(obj: Ctx, pki_dir: Path, dgs: tuple[str, ...], out: Path, hash_name: str, ds_env: str) -> None:
    """Sign EF.SOD over the given data groups with the current document signer."""
    from ektp_card.files import write_atomic
    from ektp_card.lds.sod import build_sod
    from ektp_card.pki.issuer import IssuerPki

    check_output(out)
    issuer = IssuerPki(pki_dir)
    issuer.current()  # a folder without a signer fails before any file is read
    groups = _data_groups(dgs)
    if len(groups) < 2:
        fail("EF.SOD covers 2 to 16 data groups: give --dg for each", ExitCode.USAGE)
    signer, cert = issuer.document_signer(None, passphrase(ds_env, "document signer key"))
    sod = build_sod(groups, signer, cert, hash_name=hash_name)  # type: ignore[arg-type]
    write_atomic(out, sod, mode=0o644)
    if obj.json:
        obj.emit({"file": str(out), "size": len(sod), "data_groups": sorted(groups),
                  "signer": f"{cert.serial_number:X}"})
    else:
        numbers = ", ".join(map(str, sorted(groups)))
        obj.out.print(f"Wrote {out} ({len(sod)} bytes) over data groups {numbers}")


@pki.command("verify-sod")
@click.argument("sod_file", metavar="SOD", type=FilePath(path_type=Path, dir_okay=False, exists=True))
@DG_OPTION
@click.option("--trust", "trust_dir", required=True,
              type=FilePath(path_type=Path, file_okay=False, exists=True),
              help="Folder of trusted CSCA certificates and their CRLs.")
@click.option("--master-list", type=FilePath(path_type=Path, dir_okay=False, exists=True),
              help="ICAO CSCA master list whose signer chains to a CSCA in --trust.")
@click.option("--country", type=COUNTRY, help="Expected issuing country.")
@click.option("--no-crl", "no_crl", is_flag=True, help="Do not fail when no current CRL is available.")
@click.pass_obj
def verify_sod(obj: Ctx, sod_file: Path, dgs: tuple[str, ...], trust_dir: Path, master_list: Path | None,
               country: str | None, no_crl: bool) -> None:
    """Passive Authentication of data groups against EF.SOD; exit 10 when any check fails."""
    from ektp_card.verify import Policy, Status, TrustStore, load_master_list, passive_authentication

    groups = _data_groups(dgs)
    sod = read_input(sod_file, DOCUMENT_LIMIT, "EF.SOD")
    store = TrustStore.from_folder(trust_dir)
    if not store.cscas and master_list is None:
        fail(f"{trust_dir} holds no certificate to trust", ExitCode.FILE)  # as for `ektp verify`
    if master_list is not None:
        with about(str(master_list), errors.PkiError):
            store = load_master_list(read_input(master_list, MASTER_LIST_LIMIT), store)
    result = passive_authentication(sod, groups, store,
                                    Policy(require_crl=not no_crl, expected_country=country))
    if obj.json:
        obj.emit(result.to_json())
    else:
        from rich.markup import escape

        marks = {Status.PASS: "[green]pass[/green]", Status.FAIL: "[red]FAIL[/red]",
                 Status.SKIP: "[dim]skip[/dim]"}
        for c in result.checks:
            obj.out.print(f"{marks[c.status]}  {c.name:<18} {escape(c.reason)}")
        obj.out.print("[bold]authentic[/bold]" if result.ok else "[bold red]NOT authentic[/bold red]")
    if not result.ok:
        raise click.exceptions.Exit(int(ExitCode.VERIFY_FAILED))


def _cert_json(cert: x509.Certificate) -> dict[str, Any]:
    from ektp_card.pki.certs import document_types

    try:
        types = document_types(cert)
    except ValueError:
        types = None
    return {
        "subject": cert.subject.rfc4514_string(),
        "serial": f"{cert.serial_number:X}",
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "document_types": None if types is None else list(types),
    }


# --- terminal PKI: CV certificates (BSI TR-03110-3 appendix C) -------------------------------------------

EC_KEY_TYPES = [k for k in KEY_TYPES if not k.startswith("rsa")]
TERMINAL_TYPES = ["is", "at", "st"]
CVCA_PASS = click.option(
    "--cvca-passphrase-env", "cvca_env", default="EKTP_CVCA_PASSPHRASE", show_default=True, metavar="NAME",
    help="Environment variable holding the CVCA key passphrase (prompted for when unset on a terminal).",
)
DV_PASS = click.option(
    "--dv-passphrase-env", "dv_env", default="EKTP_DV_PASSPHRASE", show_default=True, metavar="NAME",
    help="Environment variable holding the DV key passphrase (prompted for when unset on a terminal).",
)
TERMINAL_PASS = click.option(
    "--terminal-passphrase-env", "terminal_env", default="EKTP_TERMINAL_PASSPHRASE", show_default=True,
    metavar="NAME",
    help="Environment variable holding the terminal key passphrase (prompted for when unset on a terminal).",
)
CERT_OUT = click.argument("cert_out", metavar="CERT", type=FilePath(path_type=Path, dir_okay=False))
EXISTING = FilePath(path_type=Path, dir_okay=False, exists=True)
NEW_KEY = FilePath(path_type=Path, dir_okay=False)
DATE = click.DateTime(formats=["%Y-%m-%d"])
EFFECTIVE = click.option("--effective", type=DATE, metavar="YYYY-MM-DD",
                         help="Effective date (default: today, UTC).")
RIGHTS = click.option(
    "--right", "rights", multiple=True, metavar="NAME",
    help="Access right to grant, e.g. read-dg3 (fingerprints), read-dg4 (iris) or verify-biometric "
         "(on-card fingerprint comparison, the project's own right); repeat for each. None by default.",
)


def _days(default: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return click.option("--days", type=click.IntRange(1, 3653), default=default, show_default=True,
                        help="Validity in days, counting the effective date.")


def _validity(effective: dt.datetime | None, days: int) -> tuple[dt.date, dt.date]:
    from ektp_card.pki.cvc import today

    start = effective.date() if effective is not None else today()
    return start, start + dt.timedelta(days=days - 1)


def _holder(country: str, mnemonic: str, sequence: str, terminal_type: TerminalType, role: Role,
            rights: tuple[str, ...]) -> str:
    """Check what the user typed before any key is opened: a bad reference or right is a usage error
    (:class:`~ektp_card.errors.CvcNameError`)."""
    from ektp_card.pki.cvc import Chat, holder_reference, split_rights

    Chat.of(terminal_type, role, split_rights(rights)[0])
    return holder_reference(country, mnemonic, sequence)


def _read_cvc(path: Path) -> CvCertificate:
    from ektp_card.pki.cvc import CvCertificate

    return CvCertificate.load(path)


def _ec_key(key: object, what: str) -> EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    if not isinstance(key, EllipticCurvePublicKey):
        fail(f"{what} is not an elliptic-curve key; CV certificates use ECDSA", ExitCode.FILE)
    return key


def _public_key_file(path: Path) -> EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

    data = read_input(path, CERTIFICATE_LIMIT, "public key")
    try:
        key = load_pem_public_key(data) if data.lstrip().startswith(b"-----") else load_der_public_key(data)
    except (ValueError, TypeError):
        fail(f"{path} is not a PEM or DER public key", ExitCode.FILE)
    return _ec_key(key, str(path))


@dataclass
class _NewKey:
    """A new key, in memory until its certificate is written with it (:func:`_emit_cvc`)."""

    path: Path
    signer: KeyFileSigner
    pem: bytes


def _new_key(path: Path, spec: str, secret: Callable[[], bytes]) -> _NewKey:
    """A new key for ``path``, generated but not written: the key file goes to disk with its
    certificate or not at all (no key without its certificate, no certificate without its key)."""
    from ektp_card.pki.signer import KeyFileSigner, KeySpec

    _writable(path, "refusing to overwrite a private key")
    signer, pem = KeyFileSigner.prepare(path, KeySpec.parse(spec), secret)
    return _NewKey(path, signer, pem)


def _writable(path: Path, refusal: str = "refusing to overwrite it") -> None:
    """Refuse an output path that exists or cannot be written, before any key is opened or generated."""
    if path.exists() or path.is_symlink():
        fail(f"{path} exists; {refusal}", ExitCode.FILE)
    check_output(path)


def _emit_cvc(obj: Ctx, verb: str, cert: CvCertificate, cert_out: Path, key: _NewKey | None,
              also: dict[Path, bytes] | None = None) -> None:
    from ektp_card.files import write_files

    files = {cert_out: cert.encode(), **(also or {})}
    if key is not None:
        files[key.path] = key.pem
    write_files(files, mode=0o644, modes={key.path: 0o600} if key is not None else None)
    key_path = key.path if key is not None else None
    info = {**_cvc_json(cert), "file": str(cert_out), "key": str(key_path) if key_path else None}
    if obj.json:
        obj.emit(info)
        return
    obj.out.print(f"{verb} {info['role']} certificate {cert.chr} (signed by {cert.car}): {cert_out}")
    obj.out.print(f"  valid {info['effective']} to {info['expiration']}; "
                  f"rights: {', '.join(info['rights']) or 'none'}")
    if key_path:
        obj.out.print(f"  private key: {key_path}")


@pki.group()
def cvca() -> None:
    """The country verifying CA of the terminal PKI (BSI TR-03110)."""


@cvca.command("create")
@CERT_OUT
@click.option("--key", "key_out", required=True, type=NEW_KEY, help="New CVCA private key file (encrypted).")
@click.option("--country", required=True, type=COUNTRY, help="Two-letter country code, e.g. ID.")
@click.option("--mnemonic", default="CVCA", show_default=True, type=Word(16),
              help="Holder mnemonic, up to 9 characters.")
@click.option("--sequence", default="00001", show_default=True, type=Word(16),
              help="5-character sequence number.")
@click.option("--type", "terminal_type", type=click.Choice(TERMINAL_TYPES), default="is", show_default=True,
              help="Terminal type: is (inspection system), at (authentication), st (signature).")
@RIGHTS
@click.option("--curve", type=click.Choice(EC_KEY_TYPES), default="brainpoolP256r1", show_default=True)
@EFFECTIVE
@_days(1095)
@CVCA_PASS
@click.pass_obj
def cvca_create(obj: Ctx, cert_out: Path, key_out: Path, country: str, mnemonic: str, sequence: str,
                terminal_type: str, rights: tuple[str, ...], curve: str, effective: dt.datetime | None,
                days: int, cvca_env: str) -> None:
    """Create a CVCA key and its self-signed CV certificate CERT (with the domain parameters)."""
    from ektp_card.pki.cvc import Role, TerminalType, create_cvca

    start, end = _validity(effective, days)
    holder = _holder(country, mnemonic, sequence, TerminalType(terminal_type), Role.CVCA, rights)
    _writable(cert_out)
    key = _new_key(key_out, curve, passphrase(cvca_env, "CVCA key", confirm=True))
    cert = create_cvca(key.signer, holder=holder, terminal_type=TerminalType(terminal_type),
                       rights=rights, effective=start, expiration=end)
    _emit_cvc(obj, "Created", cert, cert_out, key)


@cvca.command("link")
@CERT_OUT
@click.option("--cvca", "cvca_file", required=True, type=EXISTING, help="The current CVCA certificate.")
@click.option("--cvca-key", required=True, type=EXISTING, help="The current CVCA private key file.")
@click.option("--key", "key_out", required=True, type=NEW_KEY, help="New CVCA private key file (encrypted).")
@click.option("--sequence", required=True, type=Word(16),
              help="Sequence number of the new key (5 characters).")
@click.option("--curve", type=click.Choice(EC_KEY_TYPES), help="Curve of the new key (default: the current).")
@EFFECTIVE
@_days(1095)
@CVCA_PASS
@click.option("--new-passphrase-env", "new_env", default="EKTP_CVCA_NEW_PASSPHRASE", show_default=True,
              metavar="NAME", help="Environment variable holding the new CVCA key passphrase.")
@click.pass_obj
def cvca_link(obj: Ctx, cert_out: Path, cvca_file: Path, cvca_key: Path, key_out: Path, sequence: str,
              curve: str | None, effective: dt.datetime | None, days: int, cvca_env: str,
              new_env: str) -> None:
    """Change the CVCA key: a link certificate CERT for a new key, signed by the current key.

    Cards that trust the current CVCA accept the new key through CERT; the new key's self-signed
    certificate goes next to CERT with `-self` added to its name, for verifiers that start there.
    """
    from ektp_card.pki.cvc import Role, create_cvca, create_link, split_reference
    from ektp_card.pki.signer import KeyFileSigner

    old = _read_cvc(cvca_file)
    start, end = _validity(effective, days)
    country, mnemonic, _ = split_reference(old.chr)
    holder = _holder(country, mnemonic, sequence, old.chat.terminal_type, Role.CVCA, ())
    self_out = cert_out.with_name(f"{cert_out.stem}-self{cert_out.suffix}")
    _writable(cert_out)
    _writable(self_out)
    old_signer = KeyFileSigner.load(cvca_key, passphrase(cvca_env, "current CVCA key"))
    spec = curve or (old.public_key.domain.name if old.public_key.domain else "brainpoolP256r1")
    key = _new_key(key_out, spec, passphrase(new_env, "new CVCA key", confirm=True))
    new_key = _ec_key(key.signer.public_key, str(key_out))
    link = create_link(old_signer, old, new_key, holder=holder, effective=start, expiration=end)
    self_signed = create_cvca(key.signer, holder=holder, terminal_type=old.chat.terminal_type,
                              rights=link.right_names, effective=start, expiration=end)
    _emit_cvc(obj, "Linked", link, cert_out, key, also={self_out: self_signed.encode()})


@dataclass(frozen=True)
class _Subject:
    """The holder options shared by `dv issue` and `terminal issue`."""

    country: str | None
    mnemonic: str
    sequence: str
    rights: tuple[str, ...]
    effective: dt.datetime | None
    days: int
    key_out: Path | None
    public_key: Path | None


def _issue_cvc(obj: Ctx, cert_out: Path, issuer_file: Path, issuer_key: Path,
               issuer_pass: Callable[[], bytes], subject: _Subject, subject_pass: Callable[[], bytes],
               role: Role) -> None:
    from ektp_card.pki.cvc import curve_of, issue, split_reference
    from ektp_card.pki.signer import KeyFileSigner

    key_out, public_key = subject.key_out, subject.public_key
    if key_out is not None and public_key is not None:
        fail("give either --key (generate a new key) or --public-key (certify an existing one), not both",
             ExitCode.USAGE)
    if key_out is None and public_key is None:
        fail("give --key (generate a new key) or --public-key (certify an existing one)", ExitCode.USAGE)
    issuer = _read_cvc(issuer_file)
    start, end = _validity(subject.effective, subject.days)
    country = subject.country or split_reference(issuer.chr)[0]
    reference = _holder(country, subject.mnemonic, subject.sequence, issuer.chat.terminal_type, role,
                        subject.rights)
    _writable(cert_out)
    subject_key = None if public_key is None else _public_key_file(public_key)
    if key_out is not None:
        _writable(key_out, "refusing to overwrite a private key")
    signer = KeyFileSigner.load(issuer_key, issuer_pass)

    def certify(key: EllipticCurvePublicKey) -> CvCertificate:
        return issue(signer, issuer, key, holder=reference, role=role, rights=subject.rights,
                     effective=start, expiration=end)

    new = None
    if subject_key is not None:
        cert = certify(subject_key)
    else:
        assert key_out is not None  # noqa: S101 - checked above
        new = _new_key(key_out, curve_of(_ec_key(signer.public_key, str(issuer_key))).name, subject_pass)
        cert = certify(_ec_key(new.signer.public_key, str(key_out)))
    _emit_cvc(obj, "Issued", cert, cert_out, new)


@pki.group()
def dv() -> None:
    """Document verifiers: CV certificates under the CVCA."""


@dv.command("issue")
@CERT_OUT
@click.option("--cvca", "cvca_file", required=True, type=EXISTING, help="The CVCA certificate.")
@click.option("--cvca-key", required=True, type=EXISTING, help="The CVCA private key file.")
@click.option("--key", "key_out", type=NEW_KEY, help="Generate the DV key into this file (encrypted).")
@click.option("--public-key", type=EXISTING, help="Certify this DV public key (PEM or DER) instead.")
@click.option("--country", type=COUNTRY, help="Country code of the DV (default: the CVCA's).")
@click.option("--mnemonic", required=True, type=Word(16),
              help="Holder mnemonic, up to 9 characters (e.g. POLRI).")
@click.option("--sequence", default="00001", show_default=True, type=Word(16),
              help="5-character sequence number.")
@click.option("--foreign", is_flag=True, help="A foreign DV (role bits 01) instead of a domestic one (10).")
@RIGHTS
@EFFECTIVE
@_days(90)
@CVCA_PASS
@DV_PASS
@click.pass_obj
def dv_issue(obj: Ctx, cert_out: Path, cvca_file: Path, cvca_key: Path, key_out: Path | None,
             public_key: Path | None, country: str | None, mnemonic: str, sequence: str, foreign: bool,
             rights: tuple[str, ...], effective: dt.datetime | None, days: int, cvca_env: str,
             dv_env: str) -> None:
    """Issue a DV certificate CERT signed by the CVCA."""
    from ektp_card.pki.cvc import Role

    subject = _Subject(country, mnemonic, sequence, rights, effective, days, key_out, public_key)
    _issue_cvc(obj, cert_out, cvca_file, cvca_key, passphrase(cvca_env, "CVCA key"), subject,
               passphrase(dv_env, "DV key", confirm=True), Role.DV_FOREIGN if foreign else Role.DV_DOMESTIC)


@pki.group()
def terminal() -> None:
    """Terminals: CV certificates under a DV."""


@terminal.command("issue")
@CERT_OUT
@click.option("--dv", "dv_file", required=True, type=EXISTING, help="The DV certificate.")
@click.option("--dv-key", required=True, type=EXISTING, help="The DV private key file.")
@click.option("--key", "key_out", type=NEW_KEY, help="Generate the terminal key into this file (encrypted).")
@click.option("--public-key", type=EXISTING, help="Certify this terminal public key (PEM or DER) instead.")
@click.option("--country", type=COUNTRY, help="Country code of the terminal (default: the DV's).")
@click.option("--mnemonic", required=True, type=Word(16), help="Holder mnemonic, up to 9 characters.")
@click.option("--sequence", default="00001", show_default=True, type=Word(16),
              help="5-character sequence number.")
@RIGHTS
@EFFECTIVE
@_days(30)
@DV_PASS
@TERMINAL_PASS
@click.pass_obj
def terminal_issue(obj: Ctx, cert_out: Path, dv_file: Path, dv_key: Path, key_out: Path | None,
                   public_key: Path | None, country: str | None, mnemonic: str, sequence: str,
                   rights: tuple[str, ...], effective: dt.datetime | None, days: int, dv_env: str,
                   terminal_env: str) -> None:
    """Issue a terminal certificate CERT signed by a DV."""
    from ektp_card.pki.cvc import Role

    subject = _Subject(country, mnemonic, sequence, rights, effective, days, key_out, public_key)
    _issue_cvc(obj, cert_out, dv_file, dv_key, passphrase(dv_env, "DV key"), subject,
               passphrase(terminal_env, "terminal key", confirm=True), Role.TERMINAL)


@pki.group()
def cvc() -> None:
    """Card-verifiable certificates: decode and verify."""


@cvc.command("show")
@click.argument("cert_file", metavar="CERT", type=EXISTING)
@click.option("--trust", "trusted", multiple=True, type=EXISTING,
              help="Trusted CVCA certificate; repeat for several. Verifies the chain to CERT.")
@click.option("--chain", "chain", multiple=True, type=EXISTING,
              help="Intermediate certificate (link, DV) in order from the CVCA; repeat for each.")
@click.option("--at", "at", type=DATE, metavar="YYYY-MM-DD",
              help="Check validity on this date (default: today, UTC).")
@click.pass_obj
def cvc_show(obj: Ctx, cert_file: Path, trusted: tuple[Path, ...], chain: tuple[Path, ...],
             at: dt.datetime | None) -> None:
    """Decode a CV certificate; with --trust verify its chain (exit 10 when it does not verify).

    Without --trust, a self-signed CVCA certificate has its self-signature checked.
    """
    from ektp_card.pki.cvc import Role, verify_chain

    cert = _read_cvc(cert_file)
    result: dict[str, Any] = {"certificate": _cvc_json(cert), "verified": None, "reason": None}
    if trusted:
        anchors = [_read_cvc(p) for p in trusted]
        path = [*(_read_cvc(p) for p in chain), cert]
        try:
            verified = verify_chain(path, anchors, at=at.date() if at else None)
        except errors.PkiError as e:
            result.update(verified=False, reason=str(e))
        else:
            result.update(verified=True, chain=[c.chr for c in verified.certificates],
                          curve=verified.domain.name, effective_role=verified.chat.role.label,
                          effective_rights=list(verified.chat.names))
    elif cert.self_signed and cert.role is Role.CVCA and cert.public_key.domain is not None:
        ok = cert.verify_signature(cert.public_key)
        result.update(verified=ok, reason=None if ok else "the self-signature does not verify")
    if obj.json:
        obj.emit(result)
    else:
        _print_cvc(obj, result)
    if result["verified"] is False:
        raise click.exceptions.Exit(int(ExitCode.VERIFY_FAILED))


def _print_cvc(obj: Ctx, result: dict[str, Any]) -> None:
    from rich.markup import escape

    info = result["certificate"]
    for label, key in (("CAR", "car"), ("CHR", "chr"), ("Role", "role"), ("Terminal type", "terminal_type"),
                       ("Algorithm", "algorithm"), ("Domain parameters", "curve"), ("Effective", "effective"),
                       ("Expiration", "expiration")):
        value = info[key] if info[key] is not None else "inherited from the CVCA"
        obj.out.print(f"{label + ':':<19}{escape(str(value))}")
    obj.out.print(f"{'Rights:':<19}{', '.join(info['rights']) or 'none'}  (CHAT {info['chat']})")
    for oid in info["extensions"]:
        obj.out.print(f"{'Extension:':<19}{oid}")
    if result["verified"] is True and "chain" in result:
        obj.out.print("[green]chain verified[/green]: " + " -> ".join(map(escape, result["chain"])))
        rights = ", ".join(result["effective_rights"]) or "none"
        obj.out.print(f"  effective authorization: {result['effective_role']}; rights: {rights}")
    elif result["verified"] is True:
        obj.out.print("[green]self-signature verified[/green]")
    elif result["verified"] is False:
        obj.out.print(f"[bold red]NOT verified[/bold red]: {escape(result['reason'])}")


def _cvc_json(cert: CvCertificate) -> dict[str, Any]:
    body = cert.body
    return {
        "car": cert.car,
        "chr": cert.chr,
        "role": cert.role.label,
        "terminal_type": cert.chat.terminal_type.value,
        "rights": list(cert.right_names),
        "chat": cert.chat.template.hex().upper(),
        "algorithm": cert.public_key.algorithm_name,
        "curve": cert.public_key.domain.name if cert.public_key.domain else None,
        "effective": body.effective_date.isoformat(),
        "expiration": body.expiration_date.isoformat(),
        "extensions": [e.oid for e in body.extensions],
    }
