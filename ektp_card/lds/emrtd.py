"""ICAO eMRTD data groups this library decodes for inspection: DG1, the machine readable zone.

DG1 is tag 61 around the MRZ data element 5F1F, the zone's lines run together (ICAO Doc 9303-10
section 4.7.1). The field positions are those of ICAO Doc 9303-4 (TD3, passports), 9303-5 (TD1, ID
cards) and 9303-6 (TD2); the check digits, composite included, are verified by
:meth:`ektp_card.crypto.mrz.MrzInfo.from_mrz`. DG2 (the face) uses the same ISO/IEC 19794-5 template
as the e-KTP: :func:`ektp_card.lds.ektp.decode_dg2`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ektp_card.apdu.tlv import parse_one
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.errors import LdsFormatError, MrzError, TlvError

TAG_EMRTD_DG1 = 0x61
TAG_MRZ = 0x5F1F
#: (characters per line, lines) of each format, keyed by the total length.
_FORMATS = {90: ("TD1", 30), 72: ("TD2", 36), 88: ("TD3", 44)}


@dataclass(frozen=True)
class MrzFields:
    """The fields of a machine readable zone, fillers removed; dates as printed (YYMMDD)."""

    format: str
    document_type: str
    issuing_state: str
    document_number: str
    primary_identifier: str
    secondary_identifier: str
    nationality: str
    date_of_birth: str
    sex: str
    date_of_expiry: str
    optional_data: str

    @property
    def key(self) -> MrzInfo:
        """The access key fields (document number, birth, expiry)."""
        return MrzInfo(self.document_number, self.date_of_birth, self.date_of_expiry)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _text(field: str) -> str:
    return field.strip("<")


def _name(field: str) -> tuple[str, str]:
    # ICAO Doc 9303-3 section 4.6: primary and secondary identifiers separated by "<<", '<' between
    # name components.
    primary, _, secondary = field.partition("<<")
    return primary.strip("<").replace("<", " "), secondary.strip("<").replace("<", " ")


def parse_mrz_fields(mrz: str) -> MrzFields:
    """Every field of a TD1, TD2 or TD3 zone (lines run together or separated by line breaks);
    :class:`MrzError` when malformed or a check digit does not match."""
    joined = "".join(line.strip() for line in mrz.strip().splitlines()).upper()
    if len(joined) not in _FORMATS:
        raise MrzError("not a machine readable zone: expected 90 (TD1), 72 (TD2) or 88 (TD3) characters")
    info = MrzInfo.from_mrz(joined)  # verifies the check digits
    kind, width = _FORMATS[len(joined)]
    lines = [joined[i : i + width] for i in range(0, len(joined), width)]
    if kind == "TD1":
        upper, middle, lower = lines
        primary, secondary = _name(lower)
        optional = " ".join(p for p in (_text(upper[15:30]), _text(middle[18:29])) if p)
        return MrzFields(kind, _text(upper[0:2]), _text(upper[2:5]), info.document_number, primary, secondary,
                         _text(middle[15:18]), middle[0:6], _text(middle[7]), middle[8:14], optional)
    upper, lower = lines
    primary, secondary = _name(upper[5:])
    optional = _text(lower[28:42] if kind == "TD3" else lower[28:35])
    return MrzFields(kind, _text(upper[0:2]), _text(upper[2:5]), info.document_number, primary, secondary,
                     _text(lower[10:13]), lower[13:19], _text(lower[20]), lower[21:27], optional)


def encode_emrtd_dg1(mrz: str) -> bytes:
    """DG1 for a whole zone (lines run together), after checking it parses."""
    joined = "".join(line.strip() for line in mrz.strip().splitlines()).upper()
    parse_mrz_fields(joined)
    value = bytes([0x5F, 0x1F, len(joined)]) + joined.encode("ascii")
    return bytes([TAG_EMRTD_DG1, len(value)]) + value


def decode_emrtd_dg1(data: bytes) -> MrzFields:
    """The MRZ fields of an eMRTD DG1 (61 { 5F1F MRZ }); :class:`LdsFormatError` if malformed."""
    try:
        outer, end = parse_one(bytes(data))
        if outer.tag != TAG_EMRTD_DG1 or end != len(data):
            raise LdsFormatError(f"DG1 is not one tag 61 object (tag {outer.tag:X})")
        inner, inner_end = parse_one(outer.value)
    except TlvError as exc:
        raise LdsFormatError(f"DG1 is malformed: {exc}") from None
    if inner.tag != TAG_MRZ or inner_end != len(outer.value):
        raise LdsFormatError(f"DG1 holds tag {inner.tag:X}, not the MRZ (5F1F) alone")
    try:
        text = bytes(inner.value).decode("ascii")
        return parse_mrz_fields(text)
    except (UnicodeDecodeError, MrzError) as exc:
        raise LdsFormatError(f"DG1's MRZ: {exc}") from None


__all__ = ["MrzFields", "decode_emrtd_dg1", "encode_emrtd_dg1", "parse_mrz_fields"]
