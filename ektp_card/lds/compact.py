"""Finger minutiae in the ISO/IEC 19794-2 compact card format, and the on-card comparison objects.

On-card comparison (ISO/IEC 7816-11, ISO/IEC 24787) keeps the holder's fingerprint reference inside
the chip: the terminal sends a fresh capture with VERIFY and the chip answers match or no match. Both
sides use the compact card format of ISO/IEC 19794-2:2005 section 8 (no record header, three bytes a
minutia), which a card's memory and a short APDU can hold::

    minutia (3 bytes)
        x (1)              units of 0.1 mm from the image origin (0..25.5 mm)
        y (1)              units of 0.1 mm, downwards
        type (2 bits) + angle (6 bits)
                           type 01 ridge ending, 10 bifurcation, 00 other; angle in units of
                           360/64 = 5.625 degrees, counter-clockwise from the x axis

A capture travels in VERIFY (INS 21) as the biometric data template of ISO/IEC 7816-11::

    7F2E  biometric data template
      81  finger minutiae, compact card format (3 bytes x count)

The reference is written at personalisation into a file no command reads (EF.BIOREF,
:data:`REFERENCE_FID` in the e-KTP application), one biometric information template per finger::

    7F60  biometric information template (ISO/IEC 7816-11)
      83  reference data qualifier (1: finger number, from 1)
      A1  biometric header template: 81 type (08 finger), 82 subtype (the finger, ISO/IEC 7816-11
          Table C.3), 87 format owner (0101, ISO/IEC JTC 1/SC 37), 88 format type (0004, finger
          minutiae card format, compact size)
      B1  comparison parameters (this profile's): 80 threshold (score 0..100), 81 fewest paired
          minutiae, 82 tries (the retry counter's initial value, 1..15)
      5F2E  biometric data block: the compact minutiae

Threshold and tries are fixed at personalisation: the file is written under ``PERSO`` and never
after the lock, so no terminal can lower the threshold or refill the counter.

Decoding is strict (:class:`~ektp_card.errors.BiometricFormatError`): a length that is not a multiple
of three, more than :data:`MAX_MINUTIAE`, a coordinate beyond the format's range, an unknown tag or a
missing object. ``decode(x.encode()) == x`` and ``decode(data).encode() == data`` for what decodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import core  # type: ignore[import-untyped]

from ektp_card.apdu.tlv import Tlv, parse_list
from ektp_card.errors import ASN1_ERRORS, BiometricFormatError, LdsFormatError, TlvError, one_line
from ektp_card.lds.biometrics import (
    FingerPosition,
    FingerView,
    Minutia,
    MinutiaeRecord,
    MinutiaType,
    first_view,
)
from ektp_card.lds.card_access import OtherSecurityInfo
from ektp_card.lds.dg14 import Dg14
from ektp_card.pki.arc import EKTP_ARC

#: Bytes of one compact minutia.
COMPACT_MINUTIA_LENGTH = 3
#: Compact coordinates are tenths of a millimetre: 100 "pixels" per centimetre.
COMPACT_RESOLUTION = 100
#: Largest coordinate (one byte).
MAX_COMPACT_COORDINATE = 0xFF
#: Angle units per turn (6 bits).
COMPACT_ANGLE_UNITS = 64
#: Most minutiae a reference or a capture holds: what one short VERIFY carries comfortably, and
#: more than a good capture of the e-KTP's sensor size has.
MAX_MINUTIAE = 64
#: CBEFF format owner and type of the compact card format (ISO/IEC JTC 1/SC 37 registrations).
FORMAT_OWNER_SC37 = 0x0101
FORMAT_TYPE_COMPACT_CARD = 0x0004
BIOMETRIC_TYPE_FINGER = 0x08

TAG_BIOMETRIC_DATA_TEMPLATE = 0x7F2E
TAG_FINGER_MINUTIAE = 0x81
TAG_BIT = 0x7F60
TAG_QUALIFIER = 0x83
TAG_BHT = 0xA1
TAG_PARAMETERS = 0xB1
TAG_BDB = 0x5F2E

#: The biometric-verification protocol in the project's OID arc (docs/on-card-comparison.md):
#: the SecurityInfo in DG14 by which a chip offers on-card comparison.
ID_ON_CARD_COMPARISON = f"{EKTP_ARC}.3.2"
#: Version of the OnCardComparisonInfo this library writes and reads.
ON_CARD_COMPARISON_VERSION = 1
#: Consecutive failed comparisons before the reference is blocked, by default.
DEFAULT_TRIES = 5
#: EF.BIOREF, the reference file in the e-KTP application: no short identifier, read NEVER.
REFERENCE_FID = 0x0120
#: VERIFY's P2 for the fingerprint reference: specific reference data (b8), number 1.
VERIFY_P2 = 0x81


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BiometricFormatError(message)


@dataclass(frozen=True)
class CompactMinutia:
    """One minutia in the compact card format: x, y in 0.1 mm, angle in 5.625 degree units."""

    type: MinutiaType
    x: int
    y: int
    angle: int

    def __post_init__(self) -> None:
        _check(self.type in MinutiaType.__members__.values(), f"minutia type {self.type} is reserved")
        object.__setattr__(self, "type", MinutiaType(self.type))
        _check(0 <= self.x <= MAX_COMPACT_COORDINATE and 0 <= self.y <= MAX_COMPACT_COORDINATE,
               "compact minutia coordinates must fit in one byte")
        _check(0 <= self.angle < COMPACT_ANGLE_UNITS, "compact minutia angle must be 0..63")

    def encode(self) -> bytes:
        return bytes((self.x, self.y, int(self.type) << 6 | self.angle))


def encode_minutiae(minutiae: Sequence[CompactMinutia]) -> bytes:
    """The minutiae, three bytes each, in the given order."""
    _check(len(minutiae) <= MAX_MINUTIAE, f"at most {MAX_MINUTIAE} compact minutiae")
    return b"".join(m.encode() for m in minutiae)


def decode_minutiae(data: bytes) -> tuple[CompactMinutia, ...]:
    """Parse compact minutiae; :class:`BiometricFormatError` if malformed."""
    data = bytes(data)
    _check(len(data) % COMPACT_MINUTIA_LENGTH == 0,
           f"{len(data)} bytes of compact minutiae are not a multiple of {COMPACT_MINUTIA_LENGTH}")
    count = len(data) // COMPACT_MINUTIA_LENGTH
    _check(0 < count <= MAX_MINUTIAE, f"a compact template holds 1 to {MAX_MINUTIAE} minutiae, not {count}")
    out = []
    for i in range(0, len(data), COMPACT_MINUTIA_LENGTH):
        x, y, packed = data[i], data[i + 1], data[i + 2]
        _check(packed >> 6 != 3, f"minutia type 3 is reserved (minutia {i // 3 + 1})")
        out.append(CompactMinutia(MinutiaType(packed >> 6), x, y, packed & 0x3F))
    return tuple(out)


def compact_from_record(record: MinutiaeRecord | FingerView) -> tuple[CompactMinutia, ...]:
    """The first finger view of ``record`` in the compact card format, ordered by y then x.

    Positions are scaled by the record's resolution (a view alone is taken at 500 dpi) and rounded to
    0.1 mm, angles to 5.625 degrees; minutiae beyond 25.5 mm of the origin do not fit the format and
    are dropped, and of more than :data:`MAX_MINUTIAE` the best (by quality, then order) are kept.
    """
    view, x_res, y_res = first_view(record)
    converted: list[tuple[int, CompactMinutia]] = []
    for m in view.minutiae:
        x = round(m.x * COMPACT_RESOLUTION / x_res)
        y = round(m.y * COMPACT_RESOLUTION / y_res)
        if x > MAX_COMPACT_COORDINATE or y > MAX_COMPACT_COORDINATE:
            continue
        angle = round(m.angle * COMPACT_ANGLE_UNITS / 256) % COMPACT_ANGLE_UNITS
        converted.append((m.quality, CompactMinutia(m.type, x, y, angle)))
    _check(bool(converted), "no minutia fits the compact card format")
    if len(converted) > MAX_MINUTIAE:
        ranked = sorted(range(len(converted)), key=lambda i: -converted[i][0])[:MAX_MINUTIAE]
        converted = [converted[i] for i in sorted(ranked)]
    return tuple(sorted((c for _, c in converted), key=lambda c: (c.y, c.x, c.angle, int(c.type))))


def record_from_compact(minutiae: Sequence[CompactMinutia],
                        position: FingerPosition = FingerPosition.UNKNOWN) -> MinutiaeRecord:
    """Compact minutiae as a 19794-2 record at 100 pixels per centimetre (one pixel is 0.1 mm), the
    form the project's matcher compares; angles in 256ths of a turn."""
    scale = 256 // COMPACT_ANGLE_UNITS
    view = FingerView(position, tuple(Minutia(m.type, m.x, m.y, m.angle * scale) for m in minutiae))
    return MinutiaeRecord(MAX_COMPACT_COORDINATE + 1, MAX_COMPACT_COORDINATE + 1, (view,),
                          COMPACT_RESOLUTION, COMPACT_RESOLUTION)


# --- the VERIFY data field ---------------------------------------------------------------------------


def encode_capture(minutiae: Sequence[CompactMinutia]) -> bytes:
    """VERIFY's data field: 7F2E { 81 compact minutiae }."""
    return Tlv.of(TAG_BIOMETRIC_DATA_TEMPLATE, Tlv(TAG_FINGER_MINUTIAE, encode_minutiae(minutiae))).encode()


def decode_capture(data: bytes) -> tuple[CompactMinutia, ...]:
    """Parse VERIFY's data field; :class:`BiometricFormatError` unless it is exactly one 7F2E holding
    exactly one 81."""
    try:
        outer = parse_list(bytes(data))
        _check(len(outer) == 1 and outer[0].tag == TAG_BIOMETRIC_DATA_TEMPLATE,
               "VERIFY data is not one biometric data template (7F2E)")
        inner = parse_list(outer[0].value)
    except TlvError as exc:
        raise BiometricFormatError(f"malformed biometric data template: {exc}") from None
    _check(len(inner) == 1 and inner[0].tag == TAG_FINGER_MINUTIAE,
           "the biometric data template holds not exactly one finger minutiae object (81)")
    return decode_minutiae(inner[0].value)


# --- the reference ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BiometricReference:
    """One finger's reference as the chip keeps it (see the module docstring)."""

    qualifier: int
    position: FingerPosition
    minutiae: tuple[CompactMinutia, ...]
    threshold: int
    min_paired: int
    tries: int = DEFAULT_TRIES

    def __post_init__(self) -> None:
        _check(1 <= self.qualifier <= 0xFF, "the reference qualifier must be 1..255")
        _check(self.position in FingerPosition.__members__.values(),
               f"finger position {self.position} invalid")
        object.__setattr__(self, "position", FingerPosition(self.position))
        _check(0 < len(self.minutiae) <= MAX_MINUTIAE, f"a reference holds 1 to {MAX_MINUTIAE} minutiae")
        _check(0 <= self.threshold <= 100, "the threshold is a score of 0..100")
        _check(0 <= self.min_paired <= MAX_MINUTIAE, f"the fewest paired minutiae must be 0..{MAX_MINUTIAE}")
        _check(1 <= self.tries <= 15, "the tries must be 1..15 (63Cx counts to 15)")

    def encode(self) -> bytes:
        bht = Tlv.of(TAG_BHT, Tlv(0x81, bytes((BIOMETRIC_TYPE_FINGER,))),
                     Tlv(0x82, bytes((self.position.cbeff_subtype,))),
                     Tlv(0x87, FORMAT_OWNER_SC37.to_bytes(2, "big")),
                     Tlv(0x88, FORMAT_TYPE_COMPACT_CARD.to_bytes(2, "big")))
        parameters = Tlv.of(TAG_PARAMETERS, Tlv(0x80, bytes((self.threshold,))),
                            Tlv(0x81, bytes((self.min_paired,))), Tlv(0x82, bytes((self.tries,))))
        return Tlv.of(TAG_BIT, Tlv(TAG_QUALIFIER, bytes((self.qualifier,))), bht, parameters,
                      Tlv(TAG_BDB, encode_minutiae(self.minutiae))).encode()

    @classmethod
    def from_record(cls, qualifier: int, record: MinutiaeRecord, *, threshold: int, min_paired: int,
                    tries: int = DEFAULT_TRIES) -> BiometricReference:
        return cls(qualifier, record.views[0].position, compact_from_record(record), threshold, min_paired,
                   tries)


_POSITIONS = {p.cbeff_subtype: p for p in FingerPosition}


def _exact(objects: list[Tlv], tags: tuple[int, ...], what: str) -> list[bytes]:
    _check([o.tag for o in objects] == list(tags),
           f"{what} must hold exactly {' '.join(f'{t:X}' for t in tags)} in that order")
    return [o.value for o in objects]


def _byte(value: bytes, what: str) -> int:
    _check(len(value) == 1, f"{what} is one byte")
    return value[0]


def decode_reference_file(data: bytes) -> tuple[BiometricReference, ...]:
    """The references of EF.BIOREF (one or more 7F60, nothing else); :class:`BiometricFormatError`."""
    try:
        templates = parse_list(bytes(data))
        _check(bool(templates), "no biometric information template")
        out = []
        for template in templates:
            _check(template.tag == TAG_BIT, f"tag {template.tag:X} is not a biometric information template")
            order = (TAG_QUALIFIER, TAG_BHT, TAG_PARAMETERS, TAG_BDB)
            qualifier, bht, parameters, bdb = _exact(parse_list(template.value), order, "7F60")
            kind, subtype, owner, ftype = _exact(parse_list(bht), (0x81, 0x82, 0x87, 0x88), "the header A1")
            _check(_byte(kind, "the biometric type") == BIOMETRIC_TYPE_FINGER, "not a finger reference")
            _check(owner == FORMAT_OWNER_SC37.to_bytes(2, "big")
                   and ftype == FORMAT_TYPE_COMPACT_CARD.to_bytes(2, "big"),
                   "not the ISO/IEC 19794-2 compact card format (0101/0004)")
            position = _POSITIONS.get(_byte(subtype, "the biometric subtype"))
            _check(position is not None, "the biometric subtype names no finger")
            assert position is not None  # noqa: S101 - checked just above
            threshold, paired, tries = (_byte(v, "a comparison parameter")
                                        for v in _exact(parse_list(parameters), (0x80, 0x81, 0x82), "B1"))
            out.append(BiometricReference(_byte(qualifier, "the qualifier"), position,
                                          decode_minutiae(bdb), threshold, paired, tries))
    except TlvError as exc:
        raise BiometricFormatError(f"malformed biometric reference: {exc}") from None
    _check(len({r.qualifier for r in out}) == len(out), "two references share a qualifier")
    return tuple(out)


def encode_reference_file(references: Sequence[BiometricReference]) -> bytes:
    """EF.BIOREF's content."""
    _check(bool(references), "no reference")
    _check(len({r.qualifier for r in references}) == len(references), "two references share a qualifier")
    return b"".join(r.encode() for r in references)


# --- the SecurityInfo advertising on-card comparison --------------------------------------------------


class _OnCardComparisonInfo(core.Sequence):  # type: ignore[misc]
    _fields = [("protocol", core.ObjectIdentifier), ("version", core.Integer)]


def on_card_comparison_info() -> bytes:
    """OnCardComparisonInfo ::= SEQUENCE { protocol id-ektp-onCardComparison, version INTEGER (1) },
    the DER of the SecurityInfo DG14 carries."""
    return bytes(_OnCardComparisonInfo({"protocol": ID_ON_CARD_COMPARISON,
                                        "version": ON_CARD_COMPARISON_VERSION}).dump())


def offers_on_card_comparison(dg14: Dg14) -> bool:
    """Whether ``dg14`` holds an OnCardComparisonInfo of a version this library speaks."""
    for info in dg14.infos:
        if isinstance(info, OtherSecurityInfo) and info.protocol == ID_ON_CARD_COMPARISON:
            try:
                if on_card_comparison_version(info.der) == ON_CARD_COMPARISON_VERSION:
                    return True
            except LdsFormatError:
                continue
    return False


def on_card_comparison_version(der: bytes) -> int:
    """The version of an OnCardComparisonInfo; :class:`LdsFormatError` if malformed."""
    try:
        parsed = _OnCardComparisonInfo.load(bytes(der), strict=True)
        version = int(parsed["version"].native)
        protocol = str(parsed["protocol"].dotted)
    except ASN1_ERRORS as exc:
        raise LdsFormatError(f"malformed OnCardComparisonInfo: {one_line(exc)}") from None
    if protocol != ID_ON_CARD_COMPARISON:
        raise LdsFormatError("not an OnCardComparisonInfo")
    return version


__all__ = [
    "COMPACT_MINUTIA_LENGTH",
    "DEFAULT_TRIES",
    "ID_ON_CARD_COMPARISON",
    "MAX_MINUTIAE",
    "REFERENCE_FID",
    "VERIFY_P2",
    "BiometricReference",
    "CompactMinutia",
    "compact_from_record",
    "decode_capture",
    "decode_minutiae",
    "decode_reference_file",
    "encode_capture",
    "encode_minutiae",
    "encode_reference_file",
    "offers_on_card_comparison",
    "on_card_comparison_info",
    "on_card_comparison_version",
    "record_from_compact",
]
