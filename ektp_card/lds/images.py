"""What kind of image a data group holds, and its size, without decoding it: JPEG (ITU-T T.81) or
JPEG 2000 (ISO/IEC 15444-1, as a JP2 file or a bare codestream), as DG2 faces and DG7 signatures are
stored (ICAO Doc 9303-10, DG2 and DG7).

Used to describe a displayed signature (:func:`displayed_signatures`); decoding pixels is left to the
faces of the library that have an imaging library (the CLI's ``--face-out``, the station)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ektp_card.lds.ektp import decode_dg7

#: The JP2 signature box (ISO/IEC 15444-1 Annex I.5.1) and the codestream's SOC + SIZ markers.
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
J2K_CODESTREAM = b"\xff\x4f\xff\x51"
JPEG_SOI = b"\xff\xd8"


def image_format(data: bytes) -> str:
    """``jpeg``, ``jpeg2000`` or ``unknown``, from the first bytes."""
    if data.startswith(JPEG_SOI):
        return "jpeg"
    if data.startswith(JP2_SIGNATURE) or data.startswith(J2K_CODESTREAM):
        return "jpeg2000"
    return "unknown"


#: JPEG start-of-frame markers (ITU-T T.81 Table B.1): C0-CF but DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    # The frame header's size, walking the marker segments before it (no decoding: a verifier shows
    # the size, it does not need lds.jpeg's whole structural check for that).
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _SOF:
            if length < 8 or pos + 9 > len(data):
                return None
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return (width, height) if width and height else None
        if marker in (0xD9, 0xDA) or length < 2:  # EOI or start of scan before any frame header
            return None
        pos += 2 + length
    return None


def _jpeg2000_size(data: bytes) -> tuple[int, int] | None:
    if data.startswith(J2K_CODESTREAM):
        # SIZ: Lsiz(2) Rsiz(2) Xsiz(4) Ysiz(4) XOsiz(4) YOsiz(4) after the two markers.
        if len(data) < 24:
            return None
        xsiz, ysiz = int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")
        xo, yo = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if xsiz <= xo or ysiz <= yo:
            return None
        return xsiz - xo, ysiz - yo
    # JP2: the image header box (ihdr) holds HEIGHT(4) WIDTH(4) first (Annex I.5.3.1).
    at = data.find(b"ihdr", len(JP2_SIGNATURE))
    if at < 0 or len(data) < at + 12:
        return None
    height = int.from_bytes(data[at + 4 : at + 8], "big")
    width = int.from_bytes(data[at + 8 : at + 12], "big")
    return (width, height) if width and height else None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image's headers; ``None`` when they are missing or malformed."""
    kind = image_format(data)
    if kind == "jpeg":
        return _jpeg_size(data)
    if kind == "jpeg2000":
        return _jpeg2000_size(data)
    return None


@dataclass(frozen=True)
class DisplayedSignature:
    """One displayed signature of DG7 (tag 5F43): the image as stored, its format and size."""

    image: bytes = field(repr=False)
    format: str
    width: int | None
    height: int | None

    @classmethod
    def of(cls, image: bytes) -> DisplayedSignature:
        size = image_size(image)
        return cls(image, image_format(image), *(size if size is not None else (None, None)))

    def describe(self) -> str:
        """``JPEG 300x80, 4211 bytes``."""
        names = {"jpeg": "JPEG", "jpeg2000": "JPEG 2000", "unknown": "image of unknown format"}
        size = "" if self.width is None else f" {self.width}x{self.height}"
        return f"{names[self.format]}{size}, {len(self.image)} bytes"

    def to_json(self) -> dict[str, object]:
        return {"format": self.format, "width": self.width, "height": self.height, "bytes": len(self.image)}


def displayed_signatures(dg7: bytes) -> tuple[DisplayedSignature, ...]:
    """DG7's displayed signatures, described; :class:`LdsFormatError` for a malformed DG7."""
    return tuple(DisplayedSignature.of(image) for image in decode_dg7(dg7))


__all__ = ["DisplayedSignature", "displayed_signatures", "image_format", "image_size"]
