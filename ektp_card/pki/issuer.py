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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card.errors import PkiError
from ektp_card.pki.certs import (
    create_csca,
    issue_document_signer,
    issue_revocation_signer,
    now,
    parse_private_key_usage_period,
)
from ektp_card.pki.crl import REASONS, Revocation, build_crl
from ektp_card.pki.signer import KeyFileSigner, KeySpec, Passphrase, PublicKey, write_file

STATE_VERSION = 1


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


class IssuerPki:
    """One issuer's PKI folder. Methods that sign take the passphrase source of the key they open."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if not (root / "state.json").is_file() or not (root / "csca.pem").is_file():
            raise PkiError(f"{root} is not an issuer PKI folder (create one with `ektp pki csca create`)")
        self._state = self._load_state()

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
        """A new folder with a fresh CSCA key and self-signed certificate."""
        if (root / "csca.pem").exists() or (root / "csca.key").exists():
            raise PkiError(f"{root} already holds a CSCA")
        signer = KeyFileSigner.generate(root / "csca.key", spec, passphrase)
        cert = create_csca(signer, country=country, common_name=common_name, organization=organization,
                           key_usage_years=key_usage_years, document_validity_years=document_validity_years,
                           not_before=not_before)
        write_file(root / "csca.pem", cert.public_bytes(Encoding.PEM))
        state = {"version": STATE_VERSION, "spec": str(spec), "current": None, "crl_number": 1, "revoked": []}
        write_file(root / "state.json", json.dumps(state, indent=2).encode())
        return cls(root)

    # --- reading ------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        try:
            state = json.loads((self.root / "state.json").read_text())
        except (OSError, ValueError) as e:
            raise PkiError(f"cannot read {self.root / 'state.json'}: {e}") from None
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise PkiError(f"{self.root / 'state.json'} is not a version {STATE_VERSION} PKI state")
        return state

    def _save_state(self) -> None:
        write_file(self.root / "state.json", json.dumps(self._state, indent=2).encode())

    @property
    def csca(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.root / "csca.pem").read_bytes())

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
            cert = x509.load_pem_x509_certificate(pem.read_bytes())
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
    ) -> DocumentSignerEntry:
        """A new document signer key and certificate; it becomes the current signer."""
        csca_signer = self.csca_signer(csca_passphrase)
        cert = self._new_signer("ds", ds_passphrase, spec, lambda key: issue_document_signer(
            csca_signer, self.csca, key, common_name=common_name, organization=organization,
            key_usage_days=key_usage_days, document_validity_years=document_validity_years,
            not_before=not_before,
        ))
        self._state["current"] = f"{cert.serial_number:x}"
        self._save_state()
        return self.find(cert.serial_number)

    def _new_signer(
        self, folder: str, passphrase: Passphrase, spec: KeySpec | None,
        certify: Callable[[PublicKey], x509.Certificate],
    ) -> x509.Certificate:
        """A new key file and its certificate in ``folder``, named by the certificate serial; the key is
        generated under a temporary name first, so a refused certificate leaves no key behind."""
        key_spec = spec or KeySpec.parse(self._state["spec"])
        tmp_key = self.root / folder / ".new.key"
        signer = KeyFileSigner.generate(tmp_key, key_spec, passphrase, overwrite=True)
        try:
            cert = certify(signer.public_key)
        except BaseException:
            tmp_key.unlink(missing_ok=True)
            raise
        name = f"{cert.serial_number:x}"
        tmp_key.replace(self.root / folder / f"{name}.key")
        write_file(self.root / folder / f"{name}.pem", cert.public_bytes(Encoding.PEM))
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
                    this_update: dt.datetime | None = None) -> x509.CertificateRevocationList:
        """Sign a CRL of every revocation so far (possibly none) and write it to ``csca.crl``."""
        number = int(self._state["crl_number"])
        crl = build_crl(self.csca_signer(csca_passphrase), self.csca, self._revocations().values(),
                        crl_number=number, this_update=this_update, next_update_days=next_update_days)
        write_file(self.root / "csca.crl", crl.public_bytes(Encoding.PEM))
        self._state["crl_number"] = number + 1
        self._save_state()
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
        cert = self._new_signer("rs", rs_passphrase, spec, lambda key: issue_revocation_signer(
            csca_signer, self.csca, key, common_name=common_name, organization=organization,
            validity_days=validity_days, not_before=not_before,
        ))
        self._state["revocation_signer"] = f"{cert.serial_number:x}"
        self._save_state()
        return cert

    def revocation_signer_certificate(self) -> x509.Certificate:
        """The current revocation list signer's certificate."""
        name = self._state.get("revocation_signer")
        if name is None:
            raise PkiError(f"{self.root} has no revocation list signer; issue one with "
                           "`ektp desk revocation-signer`")
        path = self.root / "rs" / f"{name}.pem"
        try:
            return x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as e:
            raise PkiError(f"cannot read the revocation list signer certificate {path}: {e}") from None

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
        number = int(self._state.get("revocation_list_number", 1))
        self._state["revocation_list_number"] = number + 1
        self._save_state()
        return number
