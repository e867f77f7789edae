"""The issuer's PKI kept in one folder: the CSCA, its document signers, revocations and CRLs.

Layout (private keys 0600, encrypted PKCS#8; everything else public)::

    csca.key  csca.pem          the country signing CA
    ds/<serial>.key  .pem       document signers, serial in hex
    csca.crl                    the latest CRL (PEM)
    rs/<serial>.key  .pem       card revocation list signers (docs/desk-revocation.md)
    state.json                  current document signer, revocations, next CRL number, current
                                revocation list signer and next revocation list number

Rotation (ICAO 9303-12 section 5): a new document signer takes over; the old certificate stays valid
so the documents it signed still verify, and its private key may be destroyed at once, since its
usage period is over.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card.errors import PkiError
from ektp_card.files import (
    CERTIFICATE_LIMIT,
    CRL_LIMIT,
    SMALL_JSON_LIMIT,
    parse_json,
    read_file,
    read_text,
    write_files,
)
from ektp_card.pki.certs import (
    EKTP_DOCUMENT_TYPE,
    create_csca,
    document_type_list,
    issue_document_signer,
    issue_revocation_signer,
    now,
    parse_private_key_usage_period,
    verify_crl_signature,
)
from ektp_card.pki.crl import REASONS, Revocation, build_crl
from ektp_card.pki.signer import KeyFileSigner, KeySpec, Passphrase, PublicKey


def _state_bytes(state: Mapping[str, Any]) -> bytes:
    return json.dumps(state, indent=2).encode()

STATE_VERSION = 1
#: Serials this folder names files by: lower-case hex of at most 20 octets (RFC 5280 section 4.1.2.2).
_SERIAL = re.compile(r"[0-9a-f]{1,40}")
#: The key file and certificate of a new signer, and the state, go to disk together or not at all.
_PUBLIC, _PRIVATE = 0o644, 0o600


@dataclass(frozen=True)
class DocumentSignerEntry:
    serial: int
    certificate: x509.Certificate
    key_path: Path
    current: bool
    revocation: Revocation | None

    @property
    def has_key(self) -> bool:
        return self.key_path.exists()


def _state_problem(state: object) -> str | None:
    """Why ``state`` is not a PKI state this code wrote, or None. Every value that becomes a file name,
    a number in a signed list or a date is checked here, before anything is signed or written."""
    if not isinstance(state, dict):
        return "not a JSON object"
    if state.get("version") != STATE_VERSION or isinstance(state.get("version"), bool):
        return f"not version {STATE_VERSION}"
    try:
        KeySpec.parse(str(state.get("spec")))
    except PkiError:
        return "unknown key type"
    for key in ("current", "revocation_signer"):
        value = state.get(key)
        if value is not None and not (isinstance(value, str) and _SERIAL.fullmatch(value)):
            return f"{key!r} is not a certificate serial"
    for key, required in (("crl_number", True), ("revocation_list_number", False)):
        value = state.get(key)
        if value is None and not required:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 1 << 159:
            return f"{key!r} is not a positive number of at most 20 octets"
    revoked = state.get("revoked")
    if not isinstance(revoked, list):
        return "'revoked' is not a list"
    for entry in revoked:
        if not isinstance(entry, dict) or not isinstance(entry.get("serial"), str) \
                or not _SERIAL.fullmatch(entry["serial"]):
            return "a revocation names no certificate serial"
        if entry.get("reason") is not None and entry.get("reason") not in REASONS:
            return "a revocation has an unknown reason"
        try:
            when = dt.datetime.fromisoformat(str(entry.get("revoked_at")))
        except ValueError:
            return "a revocation has no valid date"
        if when.tzinfo is None:
            return "a revocation date has no time zone"
    return None


def _certificate(path: Path) -> x509.Certificate:
    """The PEM certificate in ``path``; :class:`PkiError` naming it when it cannot be read or parsed."""
    try:
        return x509.load_pem_x509_certificate(read_file(path, CERTIFICATE_LIMIT))
    except OSError as e:
        raise PkiError(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError:
        raise PkiError(f"{path} is not a PEM certificate") from None


class IssuerPki:
    """One issuer's PKI folder. Methods that sign take the passphrase source of the key they open.

    Opening the folder checks it whole: the state, the CSCA certificate, every certificate in ``ds/``
    and ``rs/`` (issued by this CSCA) and the CRL (signed by this CSCA). A folder an operator spoilt
    (a stray file, another CSCA's CRL, a state pointing elsewhere) is a :class:`PkiError` before any
    key is opened or anything written."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if not (root / "state.json").is_file() or not (root / "csca.pem").is_file():
            raise PkiError(f"{root} is not an issuer PKI folder (create one with `ektp pki csca create`)")
        self._state = self._load_state()
        self._csca = _certificate(root / "csca.pem")
        self._check()

    def _check(self) -> None:
        for folder in ("ds", "rs"):
            for pem in sorted((self.root / folder).glob("*.pem")):
                cert = _certificate(pem)
                if cert.issuer != self._csca.subject:
                    raise PkiError(f"{pem} was not issued by the CSCA of {self.root}")
        for key, folder, what in (("current", "ds", "document signer"),
                                  ("revocation_signer", "rs", "revocation list signer")):
            name = self._state.get(key)
            if name is not None and not (self.root / folder / f"{name}.pem").is_file():
                raise PkiError(f"{self.root / 'state.json'} names a {what} the folder does not hold")
        self.crl()

    # --- creation -----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        root: Path,
        passphrase: Passphrase,
        *,
        spec: KeySpec,
        country: str,
        common_name: str,
        organization: str | None = None,
        key_usage_years: int = 5,
        document_validity_years: int = 10,
        not_before: dt.datetime | None = None,
    ) -> IssuerPki:
        """A new folder with a fresh CSCA key and self-signed certificate. Nothing is written, and the
        folder not made, until the certificate is signed; then key, certificate and state together."""
        if (root / "csca.pem").exists() or (root / "csca.key").exists():
            raise PkiError(f"{root} already holds a CSCA")
        if root.exists() and not root.is_dir():
            raise PkiError(f"{root} is not a folder")
        signer, pem = KeyFileSigner.prepare(root / "csca.key", spec, passphrase)
        cert = create_csca(signer, country=country, common_name=common_name, organization=organization,
                           key_usage_years=key_usage_years, document_validity_years=document_validity_years,
                           not_before=not_before)
        state = {"version": STATE_VERSION, "spec": str(spec), "current": None, "crl_number": 1, "revoked": []}
        write_files({root / "csca.key": pem, root / "csca.pem": cert.public_bytes(Encoding.PEM),
                     root / "state.json": _state_bytes(state)},
                    mode=_PUBLIC, modes={root / "csca.key": _PRIVATE}, folder_mode=0o700)
        return cls(root)

    # --- reading ------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        path = self.root / "state.json"
        try:
            state = parse_json(read_text(path, SMALL_JSON_LIMIT))
        except OSError as e:
            raise PkiError(f"cannot read {path}: {e.strerror or e}") from None
        except ValueError as e:  # not UTF-8, not JSON
            raise PkiError(f"cannot read {path}: {e}") from None
        problem = _state_problem(state)
        if problem is not None:
            raise PkiError(f"{path} is not a version {STATE_VERSION} PKI state: {problem}")
        assert isinstance(state, dict)  # noqa: S101 - checked above
        return state

    def _save_state(self) -> None:
        self.save()

    def save(self, also: Mapping[Path, bytes] | None = None) -> None:
        """Write the state, and with it ``also`` (public files: e.g. a revocation list numbered from the
        state), all of them or none."""
        write_files({self.root / "state.json": _state_bytes(self._state), **(also or {})}, mode=_PUBLIC)

    @property
    def csca(self) -> x509.Certificate:
        return self._csca

    def crl(self) -> x509.CertificateRevocationList | None:
        """The folder's CRL (``csca.crl``), checked to be this CSCA's; None when there is none."""
        path = self.root / "csca.crl"
        if not path.exists() and not path.is_symlink():
            return None
        try:
            crl = x509.load_pem_x509_crl(read_file(path, CRL_LIMIT))
        except OSError as e:
            raise PkiError(f"cannot read {path}: {e.strerror or e}") from None
        except ValueError:
            raise PkiError(f"{path} is not a PEM CRL") from None
        if crl.issuer != self._csca.subject or verify_crl_signature(crl, self._csca) is not None:
            raise PkiError(f"{path} is not a CRL of the CSCA of {self.root}: another CSCA's, or altered")
        return crl

    def csca_signer(self, passphrase: Passphrase) -> KeyFileSigner:
        return KeyFileSigner.load(self.root / "csca.key", passphrase)

    def _revocations(self) -> dict[int, Revocation]:
        return {
            int(r["serial"], 16): Revocation(int(r["serial"], 16), dt.datetime.fromisoformat(r["revoked_at"]),
                                             r.get("reason"))
            for r in self._state["revoked"]
        }

    def document_signers(self) -> list[DocumentSignerEntry]:
        """Every document signer issued here, oldest first."""
        revoked = self._revocations()
        entries = []
        for pem in sorted((self.root / "ds").glob("*.pem")):
            cert = _certificate(pem)
            entries.append(DocumentSignerEntry(cert.serial_number, cert, pem.with_suffix(".key"),
                                               self._state["current"] == f"{cert.serial_number:x}",
                                               revoked.get(cert.serial_number)))
        return sorted(entries, key=lambda e: e.certificate.not_valid_before_utc)

    def find(self, serial: int) -> DocumentSignerEntry:
        for entry in self.document_signers():
            if entry.serial == serial:
                return entry
        raise PkiError(f"no document signer with serial {serial:X} in {self.root}")

    def current(self) -> DocumentSignerEntry:
        if self._state["current"] is None:
            raise PkiError("no current document signer; issue one with `ektp pki ds issue`")
        return self.find(int(self._state["current"], 16))

    def document_signer(
        self, serial: int | None, passphrase: Passphrase
    ) -> tuple[KeyFileSigner, x509.Certificate]:
        """The signer and certificate of document signer ``serial`` (default: the current one)."""
        entry = self.current() if serial is None else self.find(serial)
        if entry.revocation is not None:
            raise PkiError(f"document signer {entry.serial:X} is revoked")
        if not entry.has_key:
            raise PkiError(f"the private key of document signer {entry.serial:X} was destroyed")
        period = parse_private_key_usage_period(entry.certificate)
        end = period[1] if period else None
        if end is not None and now() > end:
            raise PkiError(f"document signer {entry.serial:X} key usage period ended {end:%Y-%m-%d}; rotate")
        return KeyFileSigner.load(entry.key_path, passphrase), entry.certificate

    # --- changes ------------------------------------------------------------------------------

    def issue_document_signer(
        self,
        csca_passphrase: Passphrase,
        ds_passphrase: Passphrase,
        *,
        common_name: str,
        organization: str | None = None,
        spec: KeySpec | None = None,
        key_usage_days: int = 90,
        document_validity_years: int = 10,
        not_before: dt.datetime | None = None,
        document_types: Sequence[str] = (EKTP_DOCUMENT_TYPE,),
    ) -> DocumentSignerEntry:
        """A new document signer key and certificate; it becomes the current signer. It may sign the
        ``document_types`` (MRZ document codes; default the e-KTP's, ``ID``)."""
        document_type_list(document_types)  # refused before a key is opened
        csca_signer = self.csca_signer(csca_passphrase)
        cert = self._new_signer("ds", "current", ds_passphrase, spec, lambda key: issue_document_signer(
            csca_signer, self.csca, key, common_name=common_name, organization=organization,
            key_usage_days=key_usage_days, document_validity_years=document_validity_years,
            not_before=not_before, document_types=document_types,
        ))
        return self.find(cert.serial_number)

    def _new_signer(
        self, folder: str, role: str, passphrase: Passphrase, spec: KeySpec | None,
        certify: Callable[[PublicKey], x509.Certificate],
    ) -> x509.Certificate:
        """A new key and its certificate in ``folder``, named by the certificate serial, and the state
        naming it the current ``role``: written together once the certificate is signed, so a refused
        certificate or a failed write leaves no key, certificate or state change behind."""
        key_spec = spec or KeySpec.parse(self._state["spec"])
        signer, pem = KeyFileSigner.prepare(self.root / folder / "new.key", key_spec, passphrase)
        cert = certify(signer.public_key)
        name = f"{cert.serial_number:x}"
        state = {**self._state, role: name}
        key_path = self.root / folder / f"{name}.key"
        write_files({key_path: pem, self.root / folder / f"{name}.pem": cert.public_bytes(Encoding.PEM),
                     self.root / "state.json": _state_bytes(state)},
                    mode=_PUBLIC, modes={key_path: _PRIVATE}, folder_mode=0o700)
        self._state = state
        return cert

    def rotate(self, csca_passphrase: Passphrase, ds_passphrase: Passphrase, *, destroy_old_key: bool = False,
               **issue: Any) -> tuple[DocumentSignerEntry | None, DocumentSignerEntry]:
        """Issue a new current document signer; optionally destroy the previous one's private key."""
        old = self.current() if self._state["current"] is not None else None
        new = self.issue_document_signer(csca_passphrase, ds_passphrase, **issue)
        if old is not None and destroy_old_key:
            old.key_path.unlink(missing_ok=True)
        return old, new

    def revoke(self, serial: int, reason: str | None = None, when: dt.datetime | None = None) -> Revocation:
        """Record a revocation; it takes effect for verifiers with the next published CRL."""
        if reason is not None and reason not in REASONS:
            raise PkiError(f"unknown revocation reason {reason!r}; use one of {', '.join(REASONS)}")
        entry = self.find(serial)
        if entry.revocation is not None:
            raise PkiError(f"document signer {serial:X} is already revoked")
        revocation = Revocation(serial, (when or now()).astimezone(dt.UTC), reason)
        self._state["revoked"].append(
            {"serial": f"{serial:x}", "revoked_at": revocation.revoked_at.isoformat(), "reason": reason}
        )
        if self._state["current"] == f"{serial:x}":
            self._state["current"] = None
        self._save_state()
        return revocation

    def publish_crl(self, csca_passphrase: Passphrase, *, next_update_days: int = 90,
                    this_update: dt.datetime | None = None,
                    copy_to: Path | None = None) -> x509.CertificateRevocationList:
        """Sign a CRL of every revocation so far (possibly none) and write it to ``csca.crl`` (and to
        ``copy_to``: DER when its name ends in ``.der``, else PEM) with the next CRL number: all of it
        or, when a write fails, none (the number is not used up)."""
        number = int(self._state["crl_number"])
        crl = build_crl(self.csca_signer(csca_passphrase), self.csca, self._revocations().values(),
                        crl_number=number, this_update=this_update, next_update_days=next_update_days)
        files = {self.root / "csca.crl": crl.public_bytes(Encoding.PEM)}
        if copy_to is not None:
            files[copy_to] = crl.public_bytes(Encoding.DER if copy_to.suffix == ".der" else Encoding.PEM)
        state = {**self._state, "crl_number": number + 1}
        write_files({**files, self.root / "state.json": _state_bytes(state)}, mode=_PUBLIC)
        self._state = state
        return crl

    # --- card revocation list signer (docs/desk-revocation.md) ----------------------------------

    def issue_revocation_signer(
        self,
        csca_passphrase: Passphrase,
        rs_passphrase: Passphrase,
        *,
        common_name: str,
        organization: str | None = None,
        spec: KeySpec | None = None,
        validity_days: int = 365,
        not_before: dt.datetime | None = None,
    ) -> x509.Certificate:
        """A new card revocation list signer key and certificate; it becomes the current one."""
        csca_signer = self.csca_signer(csca_passphrase)
        return self._new_signer("rs", "revocation_signer", rs_passphrase, spec,
                                lambda key: issue_revocation_signer(
                                    csca_signer, self.csca, key, common_name=common_name,
                                    organization=organization, validity_days=validity_days,
                                    not_before=not_before))

    def revocation_signer_certificate(self) -> x509.Certificate:
        """The current revocation list signer's certificate."""
        name = self._state.get("revocation_signer")
        if name is None:
            raise PkiError(f"{self.root} has no revocation list signer; issue one with "
                           "`ektp desk revocation-signer`")
        return _certificate(self.root / "rs" / f"{name}.pem")

    def revocation_signer(self, passphrase: Passphrase) -> tuple[KeyFileSigner, x509.Certificate]:
        """The current revocation list signer's key and certificate; refused outside its validity."""
        cert = self.revocation_signer_certificate()
        if not cert.not_valid_before_utc <= now() <= cert.not_valid_after_utc:
            raise PkiError(f"revocation list signer {cert.serial_number:X} is not valid now "
                           f"(until {cert.not_valid_after_utc:%Y-%m-%d}); issue a new one")
        key_path = self.root / "rs" / f"{cert.serial_number:x}.key"
        return KeyFileSigner.load(key_path, passphrase), cert

    def next_revocation_list_number(self) -> int:
        """Take the next revocation list sequence number (saved at once, so no number is used twice)."""
        number = self.reserve_revocation_list_number()
        self._save_state()
        return number

    def reserve_revocation_list_number(self) -> int:
        """The next revocation list sequence number, taken in this object only: :meth:`save` the state
        together with the list it numbers, so that neither is written without the other."""
        number = int(self._state.get("revocation_list_number", 1))
        self._state["revocation_list_number"] = number + 1
        return number
