"""The verifier's trust store: country signing CA certificates and the CRLs they published.

Loaded from a folder (PEM or DER files; ``*.crl`` are CRLs, everything else certificates; at its top
and in its country folders, see docs/trust.md) or from an ICAO CSCA master list (ICAO 9303-12
section 9: CMS SignedData over ``CscaMasterList``).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card.errors import ASN1_ERRORS, PkiError, one_line
from ektp_card.files import CERTIFICATE_LIMIT, CRL_LIMIT, read_file
from ektp_card.pki.certs import load_certificate, verify_certificate_signature, verify_crl_signature
from ektp_card.pki.signer import as_public_key, digest, verify_signature

CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der")
CRL_SUFFIXES = (".crl",)
#: Signature checks a trust store remembers; past it the memory starts afresh (a desk meets a few
#: document signers a year, so this is never reached in use, only bounded against a flood).
SIGNATURE_MEMORY = 4096


def is_country_folder(path: Path) -> bool:
    """A country folder of a trust folder: two upper-case letters (ISO 3166-1 alpha-2)."""
    name = path.name
    return len(name) == 2 and all("A" <= c <= "Z" for c in name) and path.is_dir()


def trust_files(folder: Path) -> list[Path]:
    """The certificate and CRL files of a trust folder: those at its top, then each country folder's."""
    def named(where: Path) -> list[Path]:
        return [p for p in sorted(where.iterdir()) if p.suffix.lower() in CERT_SUFFIXES + CRL_SUFFIXES]

    files = named(folder)
    for country in sorted(p for p in folder.iterdir() if is_country_folder(p)):
        files += named(country)
    return files


def _load_certs(data: bytes) -> list[x509.Certificate]:
    if b"-----BEGIN" in data:
        return list(x509.load_pem_x509_certificates(data))
    return [x509.load_der_x509_certificate(data)]


def _load_crl(data: bytes) -> x509.CertificateRevocationList:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


@dataclass(frozen=True)
class TrustStore:
    """Trusted CSCA certificates and the CRLs available to check document signers against."""

    cscas: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    # Outcomes of signature checks under this store's CSCAs, keyed by the bytes that decide them (the
    # issuer's certificate and the whole signed object: a certificate, which hashes and compares by its
    # DER encoding, or a CRL's DER): a changed CRL or certificate is a new key, so a remembered outcome
    # can never stand for different bytes. A changed trust folder is a new store.
    _signatures: dict[tuple[x509.Certificate, x509.Certificate | bytes], str | None] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_folder(cls, folder: Path) -> TrustStore:
        """Every certificate and CRL file in ``folder`` and in its country folders (``ID/``, ``FR/``:
        what ``ektp trust import`` writes, docs/trust.md); a country's ``ds/`` is not read: document
        signers are no trust anchors."""
        if not folder.is_dir():
            raise PkiError(f"trust store {folder} is not a folder")
        # Everything named like a certificate or CRL is read (and must be a regular file): a FIFO or a
        # link to a device there is refused, not skipped and not read forever.
        return cls.from_files(trust_files(folder))

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> TrustStore:
        """Certificates (PEM, possibly several, or DER) and CRLs (``*.crl``) from ``paths``."""
        certs: list[x509.Certificate] = []
        crls: list[x509.CertificateRevocationList] = []
        for path in paths:
            suffix = path.suffix.lower()
            try:
                data = read_file(path, CRL_LIMIT if suffix in CRL_SUFFIXES else CERTIFICATE_LIMIT)
            except OSError as e:
                raise PkiError(f"{path}: {e.strerror or e}") from None
            try:
                if suffix in CRL_SUFFIXES:
                    crls.append(_load_crl(data))
                else:
                    certs.extend(_load_certs(data))
            except ValueError:
                raise PkiError(f"{path} is not a readable certificate or CRL") from None
        return cls(tuple(certs), tuple(crls))

    def with_crls(self, crls: Iterable[x509.CertificateRevocationList]) -> TrustStore:
        return TrustStore(self.cscas, self.crls + tuple(crls))

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """Trusted CSCAs whose subject is ``cert``'s issuer, best key-identifier match first."""
        candidates = [c for c in self.cscas if c.subject == cert.issuer]
        try:
            aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        except x509.ExtensionNotFound:
            return candidates

        def matches(c: x509.Certificate) -> bool:
            try:
                ski = c.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                return False
            return ski == aki

        return sorted(candidates, key=lambda c: not matches(c))

    def crls_for(self, issuer: x509.Certificate) -> list[x509.CertificateRevocationList]:
        return [c for c in self.crls if c.issuer == issuer.subject]

    def certificate_signature(self, cert: x509.Certificate, issuer: x509.Certificate) -> str | None:
        """:func:`~ektp_card.pki.certs.verify_certificate_signature`, checked once per store: a clerk's
        second card from the same document signer skips the signature check of its certificate."""
        return self._remember((issuer, cert), lambda: verify_certificate_signature(cert, issuer))

    def crl_signature(self, crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> str | None:
        """:func:`~ektp_card.pki.certs.verify_crl_signature`, checked once per store and CRL."""
        return self._remember((issuer, crl.public_bytes(Encoding.DER)),
                              lambda: verify_crl_signature(crl, issuer))

    def _remember(self, key: tuple[x509.Certificate, x509.Certificate | bytes],
                  check: Callable[[], str | None]) -> str | None:
        try:
            return self._signatures[key]
        except KeyError:
            pass
        outcome = check()
        if len(self._signatures) >= SIGNATURE_MEMORY:
            self._signatures.clear()
        self._signatures[key] = outcome
        return outcome


@dataclass(frozen=True)
class MasterList:
    """A CSCA master list as parsed: its certificates, its signer and whether the signature holds."""

    cscas: tuple[x509.Certificate, ...]
    #: The master list signer's certificate (from the SignedData), None when it is missing.
    signer: x509.Certificate | None
    #: Why the signature does not hold (digest, signer, key or signature), None when it does.
    problem: str | None
    signing_time: dt.datetime | None = None

    def issuers(self, anchors: Iterable[x509.Certificate]) -> list[x509.Certificate]:
        """Those of ``anchors`` whose key signed the master list signer's certificate."""
        signer = self.signer
        if signer is None:
            return []
        return [ca for ca in anchors
                if ca.subject == signer.issuer and verify_certificate_signature(signer, ca) is None]


def parse_master_list(data: bytes) -> MasterList:
    """An ICAO CSCA master list (ICAO 9303-12 section 9) with its CMS signature checked, not its trust:
    :class:`PkiError` when it is malformed; a signature that does not hold is :attr:`MasterList.problem`."""
    # Here, not at the top: a trust folder alone needs neither CMS nor the master list's ASN.1.
    from asn1crypto import cms  # type: ignore[import-untyped]

    from ektp_card.pki.masterlist import OID_CSCA_MASTER_LIST, CscaMasterList

    try:
        if data[:1] != b"\x30":
            raise ValueError("not a DER SEQUENCE")
        info = cms.ContentInfo.load(data, strict=True)
        sd = info["content"]
        econtent_type = sd["encap_content_info"]["content_type"].dotted
        if info["content_type"].native != "signed_data" or econtent_type != OID_CSCA_MASTER_LIST:
            raise PkiError("not an ICAO CSCA master list (ICAO 9303-12 section 9)")
        econtent = bytes(sd["encap_content_info"]["content"])
        master = CscaMasterList.load(econtent, strict=True)
        listed = [load_certificate(c.dump()) for c in master["cert_list"]]
        si = sd["signer_infos"][0]
        signers = [
            load_certificate(c.chosen.dump())
            for c in sd["certificates"]
            if c.name == "certificate"
        ]
        sid = si["sid"].chosen
        by_serial = si["sid"].name == "issuer_and_serial_number"
        signer_serial = sid["serial_number"].native if by_serial else None
        attrs = si["signed_attrs"]
        md = next(a["values"][0].native for a in attrs if a["type"].native == "message_digest")
        signing_time = next((a["values"][0].native for a in attrs if a["type"].native == "signing_time"),
                            None)
        hash_name = si["digest_algorithm"]["algorithm"].native
        signed_attrs = cms.CMSAttributes(list(attrs)).dump()
        signature = bytes(si["signature"].native)
        sig_alg = si["signature_algorithm"]
        for cert in (*listed, *signers):
            # cryptography parses these fields when first asked: a corrupted certificate in the list is
            # a malformed list now, not an internal error when it is used as a trust anchor.
            _ = (cert.subject.public_bytes(), cert.issuer.public_bytes(), cert.extensions)
    except PkiError:
        raise
    except (*ASN1_ERRORS, StopIteration) as e:
        raise PkiError(f"malformed master list: {one_line(e)}") from None
    when = signing_time if isinstance(signing_time, dt.datetime) else None
    signer = next((c for c in signers if by_serial and c.serial_number == signer_serial), None)
    if md != digest(hash_name, econtent):
        mismatch = "master list content does not match its message digest"
        return MasterList(tuple(listed), signer, mismatch, when)
    if signer is None:
        return MasterList(tuple(listed), None, "master list signer certificate is missing", when)
    try:
        key = as_public_key(signer.public_key())
    except (PkiError, ValueError, UnsupportedAlgorithm) as e:
        return MasterList(tuple(listed), signer, f"master list signer key is unusable: {one_line(e)}", when)
    reason = verify_signature(key, sig_alg, signature, signed_attrs)
    problem = None if reason is None else f"master list signature: {reason}"
    return MasterList(tuple(listed), signer, problem, when)


def load_master_list(data: bytes, anchors: TrustStore) -> TrustStore:
    """The CSCA certificates of an ICAO master list whose signer chains to a CSCA in ``anchors``.

    ICAO 9303-12 section 9: the master list signer's certificate is issued by a CSCA; the list is
    only as trustworthy as that CSCA, so the caller names the CSCAs it already trusts.
    """
    master = parse_master_list(data)
    if master.problem is not None:
        raise PkiError(master.problem)
    if master.issuers(anchors.cscas):
        listed = list(master.cscas)
        new = [c for i, c in enumerate(listed) if c not in anchors.cscas and c not in listed[:i]]
        return TrustStore(anchors.cscas + tuple(new), anchors.crls)
    raise PkiError("master list signer does not chain to a trusted CSCA")


class TrustFolder:
    """A trust folder as a long-running verifier (the station) keeps it: loaded once, and loaded again
    when a file in it changes, so a new CRL or CSCA counts from the next document without a restart.

    Between changes the same :class:`TrustStore` is handed out, with the signature checks it has
    remembered. A folder that no longer loads (a CRL half copied, say) raises :class:`PkiError` on
    every call until it loads again: a verifier must not go on trusting what the folder withdrew.
    """

    def __init__(self, folder: Path, load: Callable[[Path], TrustStore] = TrustStore.from_folder) -> None:
        self.folder = folder
        self._load = load
        self._lock = threading.Lock()
        self._stamp = self._fingerprint()
        self._store = load(folder)

    def store(self) -> TrustStore:
        """The trust store for the folder as it is now."""
        stamp = self._fingerprint()
        with self._lock:
            if stamp != self._stamp:
                self._store = self._load(self.folder)
                self._stamp = stamp
            return self._store

    def _fingerprint(self) -> tuple[tuple[str, int, int, int], ...]:
        # Names, sizes, modification times and inodes: a file replaced by rename (as every writer of
        # this project does) changes its inode even within the same clock tick.
        entries = []
        try:
            for root, dirs, names in os.walk(self.folder):
                dirs.sort()
                for name in sorted(names):
                    path = os.path.join(root, name)
                    st = os.stat(path)
                    relative = os.path.relpath(path, self.folder)
                    entries.append((relative, st.st_size, st.st_mtime_ns, st.st_ino))
            st = os.stat(self.folder)
        except OSError as e:
            raise PkiError(f"trust store {self.folder}: {e.strerror or e}") from None
        entries.append((".", st.st_size, st.st_mtime_ns, st.st_ino))
        return tuple(entries)
