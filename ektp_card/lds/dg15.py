"""DG15: the Active Authentication public key.

ICAO Doc 9303-10 (data group 15, tag 6F) and ICAO Doc 9303-11 section 6.1: the content is the
chip's public key as a DER SubjectPublicKeyInfo (RSA, or EC with the hash of its signatures named
in DG14's ActiveAuthenticationInfo). The key is kept as encoded, so the file re-encodes byte for
byte; :attr:`Dg15.public_key` parses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ektp_card.apdu.tlv import Tlv, parse_one
from ektp_card.errors import LdsFormatError, TlvError
from ektp_card.lds.public_key import (
    ParametersForm,
    PublicKey,
    decode_public_key_info,
    encode_public_key_info,
)

#: EF.DG15 in the eMRTD application: FID 010F, SFI 0F, tag 6F (ICAO Doc 9303-10).
DG15_FID, DG15_SFI, DG15_TAG = 0x010F, 0x0F, 0x6F


@dataclass(frozen=True)
class Dg15:
    """The parsed content of EF.DG15: the DER SubjectPublicKeyInfo."""

    public_key_info: bytes

    @classmethod
    def of(cls, key: PublicKey, form: ParametersForm = ParametersForm.EXPLICIT) -> Dg15:
        """DG15 for ``key``; ``form`` says how an EC key gives its domain parameters."""
        return cls(encode_public_key_info(key, form))

    @property
    def public_key(self) -> PublicKey:
        """The parsed key; :class:`LdsFormatError` if malformed or not supported."""
        return decode_public_key_info(self.public_key_info)

    def encode(self) -> bytes:
        """The whole data group: 6F { SubjectPublicKeyInfo }."""
        return Tlv(DG15_TAG, self.public_key_info).encode()

    @classmethod
    def decode(cls, data: bytes) -> Dg15:
        """Parse the whole data group (tag 6F); :class:`LdsFormatError` if the wrapping is wrong.
        The key itself is parsed by :attr:`public_key`."""
        try:
            tlv, end = parse_one(data)
            inner, inner_end = parse_one(tlv.value)
        except TlvError as exc:
            raise LdsFormatError(f"malformed DG15: {exc}") from None
        if tlv.tag != DG15_TAG or end != len(data):
            raise LdsFormatError("DG15 must be one data object with tag 6F")
        if inner.tag != 0x30 or inner_end != len(tlv.value):
            raise LdsFormatError("DG15 must hold one SubjectPublicKeyInfo")
        return cls(tlv.value)


__all__ = ["DG15_FID", "DG15_SFI", "DG15_TAG", "Dg15"]
