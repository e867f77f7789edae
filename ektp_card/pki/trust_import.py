"""Trust imports: ICAO PKD LDIF files and CMS master lists into a trust folder (docs/trust.md).

A master list (ICAO 9303-12 section 9) is believed only when its CMS signature holds and its signer's
certificate was issued by a CSCA the folder already trusts, or by a CSCA in the list itself (the
self-contained form the standard describes: the issuing state's own CSCA is in its list; the report
names it and its fingerprint, for the operator to compare with the one that state publishes). Each
certificate in a believed list is then judged alone: a CA (basic constraints cA and key usage
keyCertSign), valid now, self-signed or a link certificate signed by a CSCA already known, with one
country code. Document signer certificates and CRLs of an LDIF file are kept when a trusted CSCA signed
them. CSCAs outside a master list (a bare certificate in an LDIF entry) are never trusted.

Everything is decided before the first write, and the new files go to disk together or not at all
(:func:`~ektp_card.files.write_files`), so a corrupt file or a failed write leaves the folder as it was.

Layout: the files of a trust folder's top (any ``*.pem``/``.crt``/``.cer``/``.der`` CSCA and ``*.crl``,
as before) stay; an import writes under the country's folder::

    XX/csca-<sha256 prefix>.pem    a CSCA (or link) certificate of country XX
    XX/crl-<issuer hash>.crl       the newest CRL of each CSCA name and key (DER)
    XX/ds/<sha256 prefix>.pem      a document signer certificate (no trust anchor; not loaded as one)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card.errors import ASN1_ERRORS, PkiError, one_line
from ektp_card.files import write_files
from ektp_card.log import printable
from ektp_card.pki.certs import (
    country_of,
    load_certificate,
    verify_certificate_signature,
    verify_crl_signature,
)
from ektp_card.pki.ldif import LdifRecord, looks_like_ldif, parse_ldif
from ektp_card.pki.trust import (
    CERT_SUFFIXES,
    MasterList,
    TrustStore,
    is_country_folder,
    parse_master_list,
    trust_files,
)

_FILE_MODE, _FOLDER_MODE = 0o644, 0o755


class Kind(Enum):
    CSCA = "csca"
    DOCUMENT_SIGNER = "ds"
    CRL = "crl"


class Outcome(Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Item:
    """What happened to one certificate or CRL of the file."""

    country: str
    kind: Kind
    outcome: Outcome
    subject: str
    reason: str
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {"country": self.country, "kind": self.kind.value, "outcome": self.outcome.value,
                "subject": self.subject, "reason": self.reason,
                "file": None if self.path is None else str(self.path)}


@dataclass(frozen=True)
class MasterListReport:
    """One master list of the file: who signed it, whether it was believed and on what grounds."""

    signer: str | None
    country: str | None
    signing_time: dt.datetime | None
    believed: bool
    reason: str
    certificates: int

    def to_json(self) -> dict[str, Any]:
        return {"signer": self.signer, "country": self.country,
                "signing_time": None if self.signing_time is None else self.signing_time.isoformat(),
                "believed": self.believed, "reason": self.reason, "certificates": self.certificates}


@dataclass(frozen=True)
class ImportReport:
    """The whole import: each master list, each item, and the files written (or to write)."""

    source: str
    items: tuple[Item, ...]
    master_lists: tuple[MasterListReport, ...]
    files: dict[Path, bytes] = field(default_factory=dict, repr=False)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per country: how many items were added, duplicated, skipped."""
        table: dict[str, Counter[str]] = {}
        for item in self.items:
            table.setdefault(item.country, Counter())[item.outcome.value] += 1
        return {c: {o.value: table[c][o.value] for o in Outcome} for c in sorted(table)}

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "countries": self.counts(),
                "master_lists": [m.to_json() for m in self.master_lists],
                "items": [i.to_json() for i in self.items]}


def _name(name: x509.Name) -> str:
    return printable(name.rfc4514_string())


def _country(name: x509.Name) -> str | None:
    """The country code of ``name``, upper-cased, when it is two ASCII letters (it names a folder)."""
    value = country_of(name)
    if value is None or len(value) != 2 or not value.isascii() or not value.isalpha():
        return None
    return value.upper()


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    except x509.ExtensionNotFound:
        return False


def _aki(crl: x509.CertificateRevocationList) -> bytes:
    try:
        return crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier or b""
    except x509.ExtensionNotFound:
        return b""


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return -1


@dataclass
class _Folder:
    """The trust folder as it is, and what this import adds to it."""

    root: Path
    store: TrustStore
    known: set[bytes]
    added: list[x509.Certificate] = field(default_factory=list)
    files: dict[Path, bytes] = field(default_factory=dict)
    crls: dict[Path, x509.CertificateRevocationList] = field(default_factory=dict)

    @property
    def cscas(self) -> tuple[x509.Certificate, ...]:
        return self.store.cscas + tuple(self.added)


def _open_folder(root: Path) -> _Folder:
    if root.exists() and not root.is_dir():
        raise PkiError(f"trust folder {root} is not a folder")
    if not root.exists():
        return _Folder(root, TrustStore(()), set())
    store = TrustStore.from_folder(root)
    known = {_der(c) for c in store.cscas}
    for country in (p for p in root.iterdir() if is_country_folder(p)):
        ds = country / "ds"
        if ds.is_dir():
            for path in sorted(ds.iterdir()):
                if path.suffix.lower() in CERT_SUFFIXES:
                    known.add(_der(_read_certificate(path)))
    crls = {}
    for path in trust_files(root):
        if path.suffix.lower() == ".crl" and is_country_folder(path.parent):
            crls[path] = TrustStore.from_files([path]).crls[0]
    return _Folder(root, store, known, crls=crls)


def _read_certificate(path: Path) -> x509.Certificate:
    try:
        return TrustStore.from_files([path]).cscas[0]
    except IndexError:
        raise PkiError(f"{path} holds no certificate") from None


def _master_list_basis(master: MasterList, folder: _Folder, at: dt.datetime) -> tuple[bool, str]:
    """Whether the master list is believed, and why (or why not)."""
    if master.problem is not None:
        return False, master.problem
    signer = master.signer
    assert signer is not None  # noqa: S101 - a list without a signer has a problem
    if not signer.not_valid_before_utc <= at <= signer.not_valid_after_utc:
        return False, (f"master list signer certificate expired or not yet valid "
                       f"({signer.not_valid_before_utc:%Y-%m-%d} to {signer.not_valid_after_utc:%Y-%m-%d})")
    anchored = master.issuers(folder.store.cscas)
    if anchored:
        return True, f"signer issued by trusted CSCA {_name(anchored[0].subject)}"
    own = [c for c in master.issuers(master.cscas)
           if c.issuer == c.subject and verify_certificate_signature(c, c) is None]
    if own:
        ca = own[0]
        return True, (f"signer issued by the list's own CSCA {_name(ca.subject)} "
                      f"(SHA-256 {fingerprint(_der(ca))}): compare it with the one its state publishes")
    return False, "master list signer does not chain to a trusted CSCA or to a CSCA in the list"


def _judge_csca(cert: x509.Certificate, folder: _Folder, pool: Iterable[x509.Certificate],
                at: dt.datetime) -> str | None:
    """Why a listed certificate is not taken as a CSCA, or None."""
    if not _is_ca(cert):
        return "not a CA (basic constraints and key usage keyCertSign)"
    if cert.not_valid_after_utc < at:
        return f"expired {cert.not_valid_after_utc:%Y-%m-%d}"
    # Self-signed, or a link certificate (ICAO 9303-12 section 7.1.1: the new CSCA key certified by the
    # old one, often under the same name) signed by a CSCA known or listed.
    issuers = [cert] if cert.issuer == cert.subject else []
    issuers += [c for c in (*folder.cscas, *pool) if c.subject == cert.issuer and c is not cert]
    if not issuers:
        return f"bad signature: a link certificate from {_name(cert.issuer)}, a CSCA not known"
    if all(verify_certificate_signature(cert, ca) is not None for ca in issuers):
        return "bad signature"
    return None


class _Importer:
    def __init__(self, folder: _Folder, country: str | None, at: dt.datetime) -> None:
        self.folder = folder
        self.country = country
        self.at = at
        self.items: list[Item] = []
        self.master_lists: list[MasterListReport] = []

    def note(self, country: str | None, kind: Kind, outcome: Outcome, subject: str, reason: str,
             path: Path | None = None) -> None:
        self.items.append(Item(country or "??", kind, outcome, subject, reason, path))

    def selected(self, country: str | None) -> bool:
        return self.country is None or country == self.country

    def master_list(self, data: bytes, where: str) -> None:
        master = parse_master_list(data)
        believed, reason = _master_list_basis(master, self.folder, self.at)
        signer = master.signer
        self.master_lists.append(MasterListReport(
            None if signer is None else _name(signer.subject),
            None if signer is None else _country(signer.subject),
            master.signing_time, believed, reason, len(master.cscas)))
        for cert in master.cscas:
            country = _country(cert.subject)
            if not self.selected(country):
                continue
            subject = _name(cert.subject)
            if country is None:
                self.note(None, Kind.CSCA, Outcome.SKIPPED, subject,
                          "no two-letter country code in its subject")
                continue
            if not believed:
                self.note(country, Kind.CSCA, Outcome.SKIPPED, subject, f"{where}: {reason}")
                continue
            der = _der(cert)
            if der in self.folder.known:
                self.note(country, Kind.CSCA, Outcome.DUPLICATE, subject, "already in the trust folder")
                continue
            problem = _judge_csca(cert, self.folder, master.cscas, self.at)
            if problem is not None:
                self.note(country, Kind.CSCA, Outcome.SKIPPED, subject, problem)
                continue
            path = self.folder.root / country / f"csca-{fingerprint(der)[:20]}.pem"
            self.folder.files[path] = cert.public_bytes(Encoding.PEM)
            self.folder.known.add(der)
            self.folder.added.append(cert)
            self.note(country, Kind.CSCA, Outcome.ADDED, subject, f"from the master list of {where}", path)

    def _signed_by_csca(self, issuer: x509.Name, verify: Any) -> str | None:
        candidates = [c for c in self.folder.cscas if c.subject == issuer]
        if not candidates:
            return f"no trusted CSCA named {_name(issuer)}"
        if all(verify(ca) is not None for ca in candidates):
            return "bad signature: no trusted CSCA of that name signed it"
        return None

    def document_signer(self, der: bytes, dn_country: str | None) -> None:
        try:
            cert = load_certificate(der)
        except ValueError as e:
            raise PkiError(f"{one_line(e)}") from None
        country = _country(cert.subject)
        if not self.selected(country):
            return
        subject = _name(cert.subject)
        problem: str | None = None
        if country is None:
            problem = "no two-letter country code in its subject"
        elif dn_country is not None and dn_country.upper() != country:
            problem = f"filed under country {printable(dn_country)} but its subject names {country}"
        elif _der(cert) in self.folder.known:
            kind = Kind.CSCA if _is_ca(cert) else Kind.DOCUMENT_SIGNER
            self.note(country, kind, Outcome.DUPLICATE, subject, "already in the trust folder")
            return
        elif _is_ca(cert):
            problem = ("a CA certificate outside a master list: CSCAs are taken from verified master "
                       "lists only")
        elif cert.not_valid_after_utc < self.at:
            problem = f"expired {cert.not_valid_after_utc:%Y-%m-%d}"
        else:
            problem = self._signed_by_csca(cert.issuer, lambda ca: verify_certificate_signature(cert, ca))
        if problem is not None:
            self.note(country, Kind.DOCUMENT_SIGNER, Outcome.SKIPPED, subject, problem)
            return
        assert country is not None  # noqa: S101 - checked above
        path = self.folder.root / country / "ds" / f"{fingerprint(_der(cert))[:20]}.pem"
        self.folder.files[path] = cert.public_bytes(Encoding.PEM)
        self.folder.known.add(_der(cert))
        self.note(country, Kind.DOCUMENT_SIGNER, Outcome.ADDED, subject, "signed by a trusted CSCA", path)

    def crl(self, der: bytes, dn_country: str | None) -> None:
        try:
            crl = x509.load_der_x509_crl(der)
            crl.issuer.rfc4514_string()
            _ = (crl.extensions, crl.last_update_utc, crl.next_update_utc, len(crl))
        except (*ASN1_ERRORS, x509.DuplicateExtension, x509.InvalidVersion) as e:
            raise PkiError(f"malformed CRL: {one_line(e)}") from None
        country = _country(crl.issuer)
        if not self.selected(country):
            return
        subject = _name(crl.issuer)
        if country is None:
            self.note(None, Kind.CRL, Outcome.SKIPPED, subject, "no two-letter country code in its issuer")
            return
        if dn_country is not None and dn_country.upper() != country:
            self.note(country, Kind.CRL, Outcome.SKIPPED, subject,
                      f"filed under country {printable(dn_country)} but its issuer names {country}")
            return
        problem = self._signed_by_csca(crl.issuer, lambda ca: verify_crl_signature(crl, ca))
        if problem is not None:
            self.note(country, Kind.CRL, Outcome.SKIPPED, subject, problem)
            return
        # One file per CSCA name and key: after a key rollover both keys' CRLs are current.
        name = fingerprint(crl.issuer.public_bytes() + _aki(crl))[:20]
        path = self.folder.root / country / f"crl-{name}.crl"
        held = self.folder.crls.get(path)
        if held is not None and held.public_bytes(Encoding.DER) == der:
            self.note(country, Kind.CRL, Outcome.DUPLICATE, subject, "already in the trust folder")
            return
        if held is not None and (_crl_number(held), held.last_update_utc) >= (_crl_number(crl),
                                                                                crl.last_update_utc):
            self.note(country, Kind.CRL, Outcome.SKIPPED, subject,
                      f"older than the CRL held (number {_crl_number(held)})")
            return
        self.folder.files[path] = crl.public_bytes(Encoding.DER)
        self.folder.crls[path] = crl
        reason = "replaces an older CRL" if held is not None else "signed by a trusted CSCA"
        self.note(country, Kind.CRL, Outcome.ADDED, subject, f"{reason}, number {_crl_number(crl)}", path)


def plan_import(data: bytes, folder: Path, *, source: str = "", country: str | None = None,
                at: dt.datetime | None = None) -> ImportReport:
    """What importing ``data`` (an LDIF file or a DER CMS master list) into ``folder`` would add: every
    check done, nothing written. :class:`PkiError` for a file that is neither, or malformed."""
    now = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    state = _open_folder(folder)
    importer = _Importer(state, country, now)
    if looks_like_ldif(data):
        records = parse_ldif(data)
        if not records:
            raise PkiError("the LDIF file holds no entry")
        _import_ldif(importer, records)
    elif data[:1] == b"\x30":
        importer.master_list(data, "the file")
    else:
        raise PkiError("not an LDIF file or a DER CMS master list")
    return ImportReport(source, tuple(importer.items), tuple(importer.master_lists), dict(state.files))


def _import_ldif(importer: _Importer, records: list[LdifRecord]) -> None:
    # Master lists first: the CSCAs they bring vouch for the document signers and CRLs that follow.
    for record in records:
        for value in record.values("pkdMasterListContent"):
            where = f"LDIF entry at line {record.line}"
            try:
                importer.master_list(value, where)
            except PkiError as e:
                raise PkiError(f"{where}: {e}") from None
    for record in records:
        where = f"LDIF entry at line {record.line}"
        try:
            for value in record.values("userCertificate"):
                importer.document_signer(value, record.country)
            for value in record.values("certificateRevocationList"):
                importer.crl(value, record.country)
        except PkiError as e:
            raise PkiError(f"{where}: {e}") from None


def import_trust(data: bytes, folder: Path, *, source: str = "", country: str | None = None,
                 at: dt.datetime | None = None) -> ImportReport:
    """:func:`plan_import`, then its files written to ``folder``: all of them, or none."""
    report = plan_import(data, folder, source=source, country=country, at=at)
    if report.files:
        write_files(report.files, mode=_FILE_MODE, folder_mode=_FOLDER_MODE)
    return report


@dataclass(frozen=True)
class Entry:
    """One certificate or CRL of a trust folder, for ``ektp trust list``."""

    country: str
    kind: Kind
    subject: str
    serial: str | None
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    path: Path

    def to_json(self) -> dict[str, Any]:
        return {"country": self.country, "kind": self.kind.value, "subject": self.subject,
                "serial": self.serial,
                "not_before": None if self.not_before is None else self.not_before.isoformat(),
                "not_after": None if self.not_after is None else self.not_after.isoformat(),
                "file": str(self.path)}


def list_trust(folder: Path, *, country: str | None = None) -> list[Entry]:
    """Every CSCA, CRL and document signer of ``folder`` (of ``country`` only, when given)."""
    if not folder.is_dir():
        raise PkiError(f"trust folder {folder} is not a folder")
    entries: list[Entry] = []
    paths = trust_files(folder)
    for sub in sorted(p for p in folder.iterdir() if is_country_folder(p)):
        if (sub / "ds").is_dir():
            paths += [p for p in sorted((sub / "ds").iterdir()) if p.suffix.lower() in CERT_SUFFIXES]
    for path in paths:
        store = TrustStore.from_files([path])
        for crl in store.crls:
            entries.append(Entry(_country(crl.issuer) or "??", Kind.CRL, _name(crl.issuer),
                                 str(_crl_number(crl)), crl.last_update_utc, crl.next_update_utc, path))
        kind = Kind.DOCUMENT_SIGNER if path.parent.name == "ds" else Kind.CSCA
        for cert in store.cscas:
            entries.append(Entry(_country(cert.subject) or "??", kind, _name(cert.subject),
                                 f"{cert.serial_number:X}", cert.not_valid_before_utc,
                                 cert.not_valid_after_utc, path))
    chosen = [e for e in entries if country is None or e.country == country]
    order = {Kind.CSCA: 0, Kind.CRL: 1, Kind.DOCUMENT_SIGNER: 2}
    return sorted(chosen, key=lambda e: (e.country, order[e.kind], e.subject))


__all__ = ["Entry", "ImportReport", "Item", "Kind", "MasterListReport", "Outcome", "import_trust",
           "list_trust", "plan_import"]
