"""EF.CardSecurity: the SecurityInfos a chip's issuer signs for protocols that run outside an application.

ICAO Doc 9303-10 section 3.11 and 9303-11 section 9.2: a chip that offers PACE with Chip Authentication
Mapping keeps EF.CardSecurity (FID 011D, SFI 1D) in the MF. It is a CMS ContentInfo holding SignedData
(RFC 5652 section 5), signed by a document signer as EF.SOD is, whose encapsulated content (type
id-SecurityObject, BSI TR-03110-3) is a DER SET OF SecurityInfo: the infos of EF.CardAccess and the Chip
Authentication public keys (ChipAuthenticationPublicKeyInfo) that PACE-CAM proves. Unlike EF.CardAccess
it is read after PACE, and unlike DG14 no hash in EF.SOD covers it: its own signature does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ektp_card.errors import LdsFormatError
from ektp_card.lds.dg14 import Dg14
from ektp_card.lds.sod import SignedData, parse_signed_data

if TYPE_CHECKING:
    import datetime as dt

    from cryptography import x509

    from ektp_card.pki.signer import HashName, Signer

#: BSI TR-03110-3: id-SecurityObject {bsi-de applications(3) eID(2) 1}, the eContentType of EF.CardSecurity.
OID_SECURITY_OBJECT = "0.4.0.127.0.7.3.2.1"
CARD_SECURITY_FID = 0x011D
CARD_SECURITY_SFI = 0x1D


@dataclass(frozen=True)
class CardSecurity:
    """A parsed EF.CardSecurity: its SignedData and the SecurityInfos it signs (in the form DG14's
    content takes, which is the same ASN.1)."""

    signed: SignedData
    infos: Dg14


def parse_card_security(data: bytes) -> CardSecurity:
    """Parse EF.CardSecurity, the structure only (the verifier's
    :func:`~ektp_card.verify.passive.signed_object_authentication` checks the signature and the signer);
    :class:`LdsFormatError` when it is malformed or does not hold SecurityInfos."""
    signed = parse_signed_data(data, "EF.CardSecurity")
    if signed.econtent_type != OID_SECURITY_OBJECT:
        raise LdsFormatError(
            f"EF.CardSecurity holds content of type {signed.econtent_type}, not id-SecurityObject"
        )
    try:
        infos = Dg14.decode_security_infos(signed.econtent)
    except LdsFormatError as exc:
        raise LdsFormatError(f"EF.CardSecurity: {exc}") from None
    return CardSecurity(signed, infos)


def build_card_security(
    infos: Dg14,
    signer: Signer,
    certificate: x509.Certificate,
    *,
    hash_name: HashName = "sha256",
    signing_time: dt.datetime | None = None,
) -> bytes:
    """EF.CardSecurity signing ``infos`` (the chip's SecurityInfos) with a document signer's key."""
    from ektp_card.pki.cms import signed_data  # issuing only: a verifier does not load asn1crypto's CMS

    return signed_data(OID_SECURITY_OBJECT, infos.encode_security_infos(), signer, certificate,
                       hash_name=hash_name, signing_time=signing_time)


__all__ = [
    "CARD_SECURITY_FID",
    "CARD_SECURITY_SFI",
    "OID_SECURITY_OBJECT",
    "CardSecurity",
    "build_card_security",
    "parse_card_security",
]
