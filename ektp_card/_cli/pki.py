"""ektp pki: the issuer's country signing CA, document signers, CRLs, and EF.SOD signing and checking."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from cryptography import x509

from ektp_card import errors
from ektp_card._cli.util import Ctx, ExitCode, fail

PKI_DIR = click.argument("pki_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
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
        value = os.environ.get(variable)
        if value:
            return value.encode()
        if not sys.stdin.isatty():
            fail(f"set {variable} to the {what} passphrase (no terminal to prompt on)", ExitCode.USAGE)
        entered = click.prompt(f"{what} passphrase", hide_input=True, confirmation_prompt=confirm, err=True)
        return str(entered).encode()

    return read


@contextmanager
def pki_errors() -> Iterator[None]:
    """Key, certificate and PKI-folder problems are file problems for the user (exit code 7)."""
    try:
        yield
    except errors.PkiError as e:
        fail(str(e), ExitCode.FILE)


def _data_groups(values: tuple[str, ...]) -> dict[int, bytes]:
    groups: dict[int, bytes] = {}
    for value in values:
        number, sep, path = value.partition("=")
        if not sep or not number.isdigit() or not 1 <= int(number) <= 16:
            fail(f"--dg wants N=FILE with N in 1..16, got {value!r}", ExitCode.USAGE)
        groups[int(number)] = Path(path).read_bytes()
    return groups


DG_OPTION = click.option("--dg", "dgs", multiple=True, metavar="N=FILE", required=True,
                         help="Data group N as read from the card (whole file); repeat for each.")


@click.group()
def pki() -> None:
    """Issuer PKI: country signing CA, document signers, CRLs, EF.SOD."""


@pki.group()
def csca() -> None:
    """The country signing CA."""


@csca.command("create")
@PKI_DIR
@click.option("--country", required=True, help="Two-letter issuing country code, e.g. ID.")
@click.option("--cn", "common_name", required=True, help="Common name of the CSCA.")
@click.option("--org", "organization", help="Organization name.")
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

    with pki_errors():
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


def _issue_options(func: Callable[..., None]) -> Callable[..., None]:
    for decorator in reversed([
        PKI_DIR,
        click.option("--cn", "common_name", required=True, help="Common name of the document signer."),
        click.option("--org", "organization", help="Organization name."),
        click.option("--key", "key_type", type=click.Choice(KEY_TYPES), help="Key type (default: CSCA's)."),
        click.option("--days", type=click.IntRange(1, 92), default=90, show_default=True,
                     help="Private key usage period in days (ICAO 9303-12: at most 3 months)."),
        click.option("--document-years", type=click.IntRange(1, 20), default=10, show_default=True),
        CSCA_PASS,
        DS_PASS,
    ]):
        func = decorator(func)
    return func


@ds.command("issue")
@_issue_options
@click.pass_obj
def ds_issue(obj: Ctx, pki_dir: Path, common_name: str, organization: str | None, key_type: str | None,
             days: int, document_years: int, csca_env: str, ds_env: str) -> None:
    """Issue a document signer; it becomes the current one."""
    _issue(obj, pki_dir, common_name, organization, key_type, days, document_years, csca_env, ds_env, None)


@ds.command("rotate")
@_issue_options
@click.option("--destroy-old-key", is_flag=True,
              help="Delete the previous signer's private key (its certificate stays valid).")
@click.pass_obj
def ds_rotate(obj: Ctx, pki_dir: Path, common_name: str, organization: str | None, key_type: str | None,
              days: int, document_years: int, csca_env: str, ds_env: str, destroy_old_key: bool) -> None:
    """Replace the current document signer with a new one."""
    _issue(obj, pki_dir, common_name, organization, key_type, days, document_years, csca_env, ds_env,
           destroy_old_key)


def _issue(obj: Ctx, pki_dir: Path, common_name: str, organization: str | None, key_type: str | None,
           days: int, document_years: int, csca_env: str, ds_env: str, destroy_old_key: bool | None) -> None:
    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.signer import KeySpec

    with pki_errors():
        issuer = IssuerPki(pki_dir)
        kwargs = {"common_name": common_name, "organization": organization,
                  "spec": KeySpec.parse(key_type) if key_type else None, "key_usage_days": days,
                  "document_validity_years": document_years}
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
    obj.out.print(f"Issued document signer {info['subject']} serial {info['serial']}")
    if old is not None:
        obj.out.print(f"  replaces {old.serial:X}" + (" (private key destroyed)" if destroy_old_key else ""))


@ds.command("revoke")
@PKI_DIR
@click.argument("serial")
@click.option("--reason", type=click.Choice(REASON_NAMES))
@click.pass_obj
def ds_revoke(obj: Ctx, pki_dir: Path, serial: str, reason: str | None) -> None:
    """Revoke document signer SERIAL (hex); publish a CRL afterwards."""
    from ektp_card.pki.issuer import IssuerPki

    try:
        number = int(serial.replace(":", ""), 16)
    except ValueError:
        fail(f"serial must be hex, got {serial!r}", ExitCode.USAGE)
    with pki_errors():
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

    with pki_errors():
        entries = IssuerPki(pki_dir).document_signers()
    rows = [{**_cert_json(e.certificate), "current": e.current, "key": e.has_key,
             "revoked": e.revocation.revoked_at.isoformat() if e.revocation else None} for e in entries]
    if obj.json:
        obj.emit(rows)
        return
    for r in rows:
        marks = (("current", r["current"]), ("revoked", r["revoked"]), ("no key", not r["key"]))
        flags = " ".join(f for f, on in marks if on)
        obj.out.print(f"{r['serial']}  {r['subject']}  {r['not_before']} .. {r['not_after']}  {flags}")


@pki.group()
def crl() -> None:
    """Certificate revocation lists."""


@crl.command("publish")
@PKI_DIR
@click.option("--days", type=click.IntRange(1, 90), default=90, show_default=True,
              help="Days until the next update (ICAO 9303-12: at most 90).")
@click.option("--out", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the CRL here (DER when the name ends in .der, else PEM).")
@CSCA_PASS
@click.pass_obj
def crl_publish(obj: Ctx, pki_dir: Path, days: int, out: Path | None, csca_env: str) -> None:
    """Sign a CRL of every revocation so far (also when there is none)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.signer import write_file

    with pki_errors():
        result = IssuerPki(pki_dir).publish_crl(passphrase(csca_env, "CSCA key"), next_update_days=days)
    if out is not None:
        write_file(out, result.public_bytes(Encoding.DER if out.suffix == ".der" else Encoding.PEM))
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
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="EF.SOD file.")
@click.option("--hash", "hash_name", type=click.Choice(["sha256", "sha384", "sha512"]), default="sha256",
              show_default=True)
@DS_PASS
@click.pass_obj
def sign_sod(obj: Ctx, pki_dir: Path, dgs: tuple[str, ...], out: Path, hash_name: str, ds_env: str) -> None:
    """Sign EF.SOD over the given data groups with the current document signer."""
    from ektp_card.lds.sod import build_sod
    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.signer import write_file

    groups = _data_groups(dgs)
    with pki_errors():
        signer, cert = IssuerPki(pki_dir).document_signer(None, passphrase(ds_env, "document signer key"))
        try:
            sod = build_sod(groups, signer, cert, hash_name=hash_name)  # type: ignore[arg-type]
        except errors.LdsFormatError as e:
            fail(str(e), ExitCode.USAGE)
    write_file(out, sod)
    if obj.json:
        obj.emit({"file": str(out), "size": len(sod), "data_groups": sorted(groups),
                  "signer": f"{cert.serial_number:X}"})
    else:
        numbers = ", ".join(map(str, sorted(groups)))
        obj.out.print(f"Wrote {out} ({len(sod)} bytes) over data groups {numbers}")


@pki.command("verify-sod")
@click.argument("sod_file", metavar="SOD", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@DG_OPTION
@click.option("--trust", "trust_dir", required=True,
              type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Folder of trusted CSCA certificates and their CRLs.")
@click.option("--master-list", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="ICAO CSCA master list whose signer chains to a CSCA in --trust.")
@click.option("--country", help="Expected issuing country.")
@click.option("--no-crl", "no_crl", is_flag=True, help="Do not fail when no current CRL is available.")
@click.pass_obj
def verify_sod(obj: Ctx, sod_file: Path, dgs: tuple[str, ...], trust_dir: Path, master_list: Path | None,
               country: str | None, no_crl: bool) -> None:
    """Passive Authentication of data groups against EF.SOD; exit 10 when any check fails."""
    from ektp_card.verify import Policy, Status, TrustStore, load_master_list, passive_authentication

    groups = _data_groups(dgs)
    with pki_errors():
        store = TrustStore.from_folder(trust_dir)
        if master_list is not None:
            store = load_master_list(master_list.read_bytes(), store)
    result = passive_authentication(sod_file.read_bytes(), groups, store,
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


def _cert_json(cert: x509.Certificate) -> dict[str, str]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "serial": f"{cert.serial_number:X}",
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }
