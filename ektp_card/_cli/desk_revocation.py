"""`ektp desk revocations` and `ektp desk revocation-signer`: the signed card revocation list for
verifiers (docs/desk-revocation.md) and the CSCA-issued key that signs it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ektp_card._cli.pkcs11 import Pkcs11Choice, token_choice, token_options
from ektp_card._cli.pki import CSCA_PASS, KEY_TYPES, passphrase
from ektp_card._cli.util import Ctx, ExitCode, FilePath, Word, check_output, fail, one_line, read_input

if TYPE_CHECKING:
    from cryptography import x509

    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.signer import Signer

REGISTRY = click.option(
    "--registry", "registry_target", envvar="EKTP_REGISTRY", default="ektp-registry.sqlite",
    show_default=True, metavar="URL_OR_PATH",
    help="The registry: a SQLite file (or sqlite:///path) or a postgresql:// URL. Default: $EKTP_REGISTRY.",
)
ISSUER = click.option(
    "--issuer", "--pki", "issuer_dir", required=True, metavar="DIR",
    type=FilePath(path_type=Path, file_okay=False),
    help="The issuer PKI folder (`ektp pki csca create`) holding the revocation list signer.",
)
RS_PASS = click.option(
    "--rs-passphrase-env", "rs_env", default="EKTP_RS_PASSPHRASE", show_default=True, metavar="NAME",
    help="Environment variable holding the revocation list signer key passphrase (prompted for when unset).",
)


@click.command("revocation-signer")
@ISSUER
@click.option("--cn", "common_name", required=True, type=Word(64),
              help="Common name of the revocation list signer.")
@click.option("--org", "organization", type=Word(64), help="Organization name.")
@click.option("--key", "key_type", type=click.Choice(KEY_TYPES), help="Key type (default: the CSCA's).")
@click.option("--days", type=click.IntRange(1, 3 * 366), default=365, show_default=True,
              help="Validity of the signer certificate (its key signs lists only within it).")
@CSCA_PASS
@RS_PASS
@click.pass_obj
def revocation_signer(obj: Ctx, issuer_dir: Path, common_name: str, organization: str | None,
                      key_type: str | None, days: int, csca_env: str, rs_env: str) -> None:
    """Issue a revocation list signer under the folder's CSCA; it becomes the current one."""
    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.signer import KeySpec

    issuer = IssuerPki(issuer_dir)
    cert = issuer.issue_revocation_signer(
        passphrase(csca_env, "CSCA key"), passphrase(rs_env, "revocation list signer key", confirm=True),
        common_name=common_name, organization=organization,
        spec=KeySpec.parse(key_type) if key_type else None, validity_days=days,
    )
    info = {"subject": cert.subject.rfc4514_string(), "serial": f"{cert.serial_number:X}",
            "not_after": cert.not_valid_after_utc.isoformat()}
    if obj.json:
        obj.emit({"revocation_signer": info})
        return
    obj.out.print(f"Issued revocation list signer {info['subject']} serial {info['serial']}, valid until "
                  f"{cert.not_valid_after_utc:%Y-%m-%d}", markup=False)


@click.command("revocations")
@REGISTRY
@ISSUER
@click.option("--out", "-o", required=True, type=FilePath(path_type=Path, dir_okay=False), metavar="FILE",
              help="Where to write the signed list (DER).")
@click.option("--validity", type=click.IntRange(1, 90), default=7, show_default=True, metavar="DAYS",
              help="Days until the list's next update; verifiers refuse it afterwards.")
@RS_PASS
@token_options("--rs-cert",
               "Certificate of the token's key (default: the folder's current revocation list signer).")
@click.pass_obj
def revocations(
    obj: Ctx, registry_target: str, issuer_dir: Path, out: Path, validity: int, rs_env: str,
    pkcs11_module: str | None, token_label: str | None, key_label: str | None, pin_env: str,
    rs_cert: Path | None,
) -> None:
    """Sign the list of lost, damaged, revoked and spoiled cards for `ektp verify --revocations`.

    Cards are named by the SHA-256 of their EF.SOD; a listed card the registry has no EF.SOD hash
    for cannot be listed and is reported. Exit 7 for a key or PKI folder problem, 15 for the registry.
    """
    from ektp_card.desk.registry import open_registry
    from ektp_card.desk.revocation import registry_entries
    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.revocation import build_revocation_list, parse_revocation_list

    hsm = token_choice(pkcs11_module, token_label, key_label, pin_env, rs_cert, "--rs-cert")
    check_output(out)
    issuer = IssuerPki(issuer_dir)
    if hsm is None or hsm.certificate is None:
        issuer.revocation_signer_certificate()  # the issuer's material first: no signer, no list
    # A missing registry is refused, not taken for an empty one: a list signed from a mistyped path
    # would tell verifiers that no card is lost.
    with open_registry(registry_target, create=False) as registry:
        entries, skipped = registry_entries(registry)
    signer: Signer | None = None
    try:
        signer, cert = _open_signer(issuer, hsm, rs_env)
        number = issuer.reserve_revocation_list_number()
        der = build_revocation_list(entries, signer, cert, sequence=number, validity_days=validity)
    finally:
        close = getattr(signer, "close", None)
        if callable(close):
            close()
    # The list and the state that numbered it go to disk together, or neither does.
    issuer.save(also={out: der})
    rl = parse_revocation_list(der)
    if obj.json:
        data = rl.to_json()
        data["file"] = str(out)
        data["not_listed_without_sod_hash"] = [row.serial for row in skipped]
        obj.emit(data)
        return
    counts = {state: sum(e.state == state for e in rl.entries) for state in ("lost", "damaged", "revoked",
                                                                              "spoiled")}
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no cards"
    obj.out.print(f"Wrote {out}: {rl.describe()}, {summary}; next update "
                  f"{rl.next_update:%Y-%m-%d %H:%M} UTC", markup=False)
    if skipped:
        listed = ", ".join(row.serial for row in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
        click.echo(one_line(f"Warning: {len(skipped)} card(s) not listed, the registry has no EF.SOD hash "
                            f"for them: {listed}"), err=True)


def _open_signer(issuer: IssuerPki, hsm: Pkcs11Choice | None, rs_env: str) -> tuple[Signer, x509.Certificate]:
    from cryptography import x509

    from ektp_card._cli.pkcs11 import open_signer

    if hsm is None:
        return issuer.revocation_signer(passphrase(rs_env, "revocation list signer key"))
    if hsm.certificate is not None:
        from ektp_card.files import CERTIFICATE_LIMIT

        data = read_input(hsm.certificate, CERTIFICATE_LIMIT, "certificate")
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError as e:
            fail(f"cannot read the certificate {hsm.certificate}: {e}", ExitCode.FILE)
    else:
        cert = issuer.revocation_signer_certificate()
    return open_signer(hsm), cert
