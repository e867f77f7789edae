"""ICAO eMRTD data groups this library decodes for inspection: DG1 (the machine readable zone), DG11
(additional personal details) and DG12 (additional document details).

DG1 is tag 61 around the MRZ data element 5F1F, the zone's lines run together (ICAO Doc 9303-10
section 4.7.1). The field positions are those of ICAO Doc 9303-4 (TD3, passports), 9303-5 (TD1, ID
cards) and 9303-6 (TD2); the check digits, composite included, are verified by
:meth:`ektp_card.crypto.mrz.MrzInfo.from_mrz`. DG2 (the face) uses the same ISO/IEC 19794-5 template
as the e-KTP: :func:`ektp_card.lds.ektp.decode_dg2`. DG11 (tag 6B) and DG12 (tag 6C) start with a tag
list (5C) naming the data elements that follow (sections 4.7.11 and 4.7.12); text elements are UTF-8,
dates YYYYMMDD.
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


# --- DG11 and DG12 ---------------------------------------------------------------------------------

TAG_DG11, TAG_DG12, TAG_TAG_LIST = 0x6B, 0x6C, 0x5C
#: ICAO Doc 9303-10 section 4.7.11: DG11's data elements, by tag.
DG11_FIELDS: dict[int, str] = {
    0x5F0E: "full_name", 0x5F0F: "other_name", 0x5F10: "personal_number", 0x5F2B: "date_of_birth",
    0x5F11: "place_of_birth", 0x5F42: "address", 0x5F12: "telephone", 0x5F13: "profession",
    0x5F14: "title", 0x5F15: "personal_summary", 0x5F16: "proof_of_citizenship",
    0x5F17: "other_travel_documents", 0x5F18: "custody_information",
}
#: ICAO Doc 9303-10 section 4.7.12: DG12's data elements, by tag.
DG12_FIELDS: dict[int, str] = {
    0x5F19: "issuing_authority", 0x5F26: "date_of_issue", 0xA0: "other_persons",
    0x5F1B: "endorsements", 0x5F1C: "tax_exit_requirements", 0x5F1D: "image_of_front",
    0x5F1E: "image_of_rear", 0x5F55: "date_of_personalisation", 0x5F56: "personalisation_system",
}
#: Elements that hold images, not text: listed with their size only.
_BINARY = frozenset({0x5F16, 0x5F1D, 0x5F1E})


@dataclass(frozen=True)
class AdditionalDetails:
    """DG11 or DG12 decoded: each present element by name, text (``other_name`` and the like may repeat:
    joined with "; "), images as ``<N bytes>``; ``unknown`` lists tags this library does not name."""

    group: int
    fields: tuple[tuple[str, str], ...]
    unknown: tuple[int, ...] = ()

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.fields if key == name), None)

    def to_json(self) -> dict[str, Any]:
        return {"data_group": self.group, "fields": dict(self.fields),
                "unknown_tags": [f"{t:X}" for t in self.unknown]}


def _text_of(tag: int, value: bytes) -> str:
    if tag in _BINARY:
        return f"<{len(value)} bytes>"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise LdsFormatError(f"element {tag:X} is not UTF-8 text") from None
    if not text.isprintable():
        # Names hold '<' fillers and spaces, never control characters: refuse them rather than print them.
        raise LdsFormatError(f"element {tag:X} holds control characters")
    return text


def _decode_details(data: bytes, group: int, tag: int, names: dict[int, str]) -> AdditionalDetails:
    from ektp_card.apdu.tlv import parse_list

    try:
        outer, end = parse_one(bytes(data))
        if outer.tag != tag or end != len(data):
            raise LdsFormatError(f"DG{group} is not one tag {tag:X} object")
        items = parse_list(outer.value)
    except TlvError as exc:
        raise LdsFormatError(f"DG{group} is malformed: {exc}") from None
    if not items or items[0].tag != TAG_TAG_LIST:
        raise LdsFormatError(f"DG{group} does not start with its tag list (5C)")
    fields: list[tuple[str, str]] = []
    unknown: list[int] = []
    for item in items[1:]:
        name = names.get(item.tag)
        if name is None:
            unknown.append(item.tag)
            continue
        if item.tag == 0xA0:  # other persons: a count and names, listed by count only
            fields.append((name, f"<{len(item.value)} bytes>"))
            continue
        text = _text_of(item.tag, bytes(item.value))
        previous = next((i for i, (key, _) in enumerate(fields) if key == name), None)
        if previous is None:
            fields.append((name, text))
        else:
            fields[previous] = (name, f"{fields[previous][1]}; {text}")
    return AdditionalDetails(group, tuple(fields), tuple(unknown))


def decode_dg11(data: bytes) -> AdditionalDetails:
    """DG11, additional personal details; :class:`LdsFormatError` if malformed."""
    return _decode_details(data, 11, TAG_DG11, DG11_FIELDS)


def decode_dg12(data: bytes) -> AdditionalDetails:
    """DG12, additional document details; :class:`LdsFormatError` if malformed."""
    return _decode_details(data, 12, TAG_DG12, DG12_FIELDS)


def _encode_details(tag: int, names: dict[int, str], values: dict[str, str]) -> bytes:
    from ektp_card.apdu.tlv import Tlv

    by_name = {name: t for t, name in names.items()}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ValueError(f"not a field of this data group: {', '.join(unknown)}")
    elements = [Tlv(by_name[name], value.encode("utf-8")) for name, value in values.items()]
    tag_list = b"".join(t.tag.to_bytes(2 if t.tag > 0xFF else 1, "big") for t in elements)
    return Tlv.of(tag, Tlv(TAG_TAG_LIST, tag_list), *elements).encode()


def encode_dg11(**values: str) -> bytes:
    """DG11 from text fields named as in :data:`DG11_FIELDS` (e.g. ``full_name``, ``place_of_birth``)."""
    return _encode_details(TAG_DG11, DG11_FIELDS, values)


def encode_dg12(**values: str) -> bytes:
    """DG12 from text fields named as in :data:`DG12_FIELDS` (e.g. ``issuing_authority``)."""
    return _encode_details(TAG_DG12, DG12_FIELDS, values)


__all__ = [
    "DG11_FIELDS",
    "DG12_FIELDS",
    "AdditionalDetails",
    "MrzFields",
    "decode_dg11",
    "decode_dg12",
    "decode_emrtd_dg1",
    "encode_dg11",
    "encode_dg12",
    "encode_emrtd_dg1",
    "parse_mrz_fields",
]
