"""ektp trust: the verifier's trust folder, filled from ICAO PKD LDIF files and CMS master lists."""

from __future__ import annotations

from pathlib import Path

import click

from ektp_card._cli.util import Country, Ctx, FilePath, about, read_input

TRUST_DIR = click.option(
    "--trust-dir", "trust_dir", required=True, envvar="EKTP_TRUST_DIR", show_envvar=True, metavar="DIR",
    type=FilePath(path_type=Path, file_okay=False),
    help="The trust folder (`ektp verify --trust DIR`); an import makes it when it is not there.",
)
COUNTRY = click.option("--country", type=Country(), metavar="XX",
                       help="Only this country (two upper-case letters, e.g. ID).")


@click.group()
def trust() -> None:
    """The verifier's trust folder: import ICAO PKD LDIF files and CSCA master lists, list it."""


@trust.command("import")
@click.argument("file", metavar="FILE", type=FilePath(path_type=Path, dir_okay=False))
@TRUST_DIR
@COUNTRY
@click.pass_obj
def trust_import(obj: Ctx, file: Path, trust_dir: Path, country: str | None) -> None:
    """Import FILE (an ICAO PKD LDIF file, or a DER CMS CSCA master list) into the trust folder.

    Each master list must be signed by a signer that a CSCA of the folder, or a CSCA in the list
    itself, issued; its CSCAs, and the document signers and CRLs that a trusted CSCA signed, are added.
    The report says per country what was added, already there (duplicate) or skipped and why. A
    corrupt file is one error (exit 7) and changes nothing in the folder.
    """
    from ektp_card.errors import PkiError
    from ektp_card.files import MASTER_LIST_LIMIT
    from ektp_card.pki.trust_import import Outcome, import_trust

    data = read_input(file, MASTER_LIST_LIMIT)
    with about(str(file), PkiError):
        report = import_trust(data, trust_dir, source=str(file), country=country)
    if obj.json:
        obj.emit({**report.to_json(), "trust_dir": str(trust_dir)})
        return
    out = obj.out
    for ml in report.master_lists:
        verdict = "believed" if ml.believed else "NOT believed"
        out.print(f"Master list by {ml.signer or '?'} ({ml.certificates} certificates): {verdict}: "
                  f"{ml.reason}")
    counts = report.counts()
    if not counts:
        out.print("Nothing for " + (f"country {country}" if country else "any country") + f" in {file}")
    for code, numbers in counts.items():
        out.print(f"{code}: {numbers['added']} added, {numbers['duplicate']} duplicate, "
                  f"{numbers['skipped']} skipped")
        for item in report.items:
            if item.country == code and item.outcome is not Outcome.DUPLICATE:
                out.print(f"  {item.outcome.value:8} {item.kind.value:4} {item.subject}: {item.reason}")
    out.print(f"Trust folder {trust_dir}: {len(report.files)} files written")


@trust.command("list")
@TRUST_DIR
@COUNTRY
@click.pass_obj
def trust_list(obj: Ctx, trust_dir: Path, country: str | None) -> None:
    """List the trust folder: CSCAs, CRLs and document signers by country."""
    from ektp_card.errors import PkiError
    from ektp_card.pki.trust_import import list_trust

    with about(str(trust_dir), PkiError):
        entries = list_trust(trust_dir, country=country)
    if obj.json:
        obj.emit([e.to_json() for e in entries])
        return
    if not entries:
        obj.out.print(f"No trust anchor{' for country ' + country if country else ''} in {trust_dir}")
    for e in entries:
        until = "" if e.not_after is None else f" until {e.not_after:%Y-%m-%d}"
        label = {"csca": "CSCA", "crl": "CRL ", "ds": "DS  "}[e.kind.value]
        number = f" number {e.serial}" if e.kind.value == "crl" else f" serial {e.serial}"
        obj.out.print(f"{e.country}  {label}  {e.subject}{number}{until}  {e.path.relative_to(trust_dir)}")
