"""Certificate revocation lists from the country signing CA (ICAO 9303-12 section 7.1.4, RFC 5280 section 5).

ICAO 9303-12 section 7.1.4: a v2 CRL with thisUpdate and nextUpdate, the authority key identifier
and a CRL number, issued at least every 90 days even when nothing is revoked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from ektp_card.errors import PkiError
from ektp_card.pki.certs import now, sign_crl
from ektp_card.pki.signer import HashName, Signer, same_key

MAX_NEXT_UPDATE_DAYS = 90

#: RFC 5280 section 5.3.1 reason codes by the names the CLI offers.
REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key-compromise": x509.ReasonFlags.key_compromise,
    "ca-compromise": x509.ReasonFlags.ca_compromise,
    "affiliation-changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation-of-operation": x509.ReasonFlags.cessation_of_operation,
}


@dataclass(frozen=True)
class Revocation:
    """One revoked certificate: its serial, when it was revoked and (optionally) why."""

    serial_number: int
    revoked_at: dt.datetime
    reason: str | None = None


def build_crl(
    csca_signer: Signer,
    csca_cert: x509.Certificate,
    revoked: Iterable[Revocation],
    *,
    crl_number: int,
    this_update: dt.datetime | None = None,
    next_update_days: int = MAX_NEXT_UPDATE_DAYS,
    hash_name: HashName | None = None,
) -> x509.CertificateRevocationList:
    """A CRL signed by the CSCA listing ``revoked`` (possibly none)."""
    if not 1 <= next_update_days <= MAX_NEXT_UPDATE_DAYS:
        raise PkiError(
            f"the next update is 1 to {MAX_NEXT_UPDATE_DAYS} days ahead (ICAO 9303-12 section 7.1.4)"
        )
    if crl_number < 0 or crl_number.bit_length() > 159:
        raise PkiError("a CRL number is a non-negative integer of at most 20 octets (RFC 5280 section 5.2.3)")
    if not same_key(csca_signer.public_key, csca_cert.public_key()):
        raise PkiError("the CSCA key does not match the CSCA certificate")
    start = (this_update or now()).astimezone(dt.UTC).replace(microsecond=0)
    ski = csca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(csca_cert.subject)
        .last_update(start)
        .next_update(start + dt.timedelta(days=next_update_days))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
    )
    for item in sorted(revoked, key=lambda r: r.serial_number):
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(item.serial_number)
            .revocation_date(item.revoked_at.astimezone(dt.UTC).replace(microsecond=0))
        )
        if item.reason is not None:
            if item.reason not in REASONS:
                raise PkiError(f"unknown revocation reason {item.reason!r}; use one of {', '.join(REASONS)}")
            entry = entry.add_extension(x509.CRLReason(REASONS[item.reason]), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return sign_crl(builder, csca_signer, hash_name or csca_signer.default_hash)
