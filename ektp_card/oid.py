"""OBJECT IDENTIFIER contents octets (ISO/IEC 8825-1 section 8.19), both ways: one codec for the CV
certificates, EF.SOD and every other structure that names an algorithm or a protocol by its OID."""

from __future__ import annotations

from functools import lru_cache

from ektp_card.errors import LdsFormatError, PkiError


def encode_oid(dotted: str) -> bytes:
    """The contents octets of an OBJECT IDENTIFIER (ISO/IEC 8825-1 section 8.19)."""
    try:
        arcs = [int(a) for a in dotted.split(".")]
    except ValueError:
        raise PkiError(f"not an object identifier: {dotted!r}") from None
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or min(arcs) < 0:
        raise PkiError(f"not an object identifier: {dotted!r}")
    out = bytearray()
    for n in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [n & 0x7F]
        n >>= 7
        while n:
            chunk.append(0x80 | (n & 0x7F))
            n >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


#: The longest OBJECT IDENTIFIER contents decoded (the UUID arc 2.25.x takes at most 21 bytes).
MAX_OID_BYTES = 128


# A passport's EF.SOD names the same handful of algorithms and attributes in every document: Passive
# Authentication decodes nine OIDs per document, each a few microseconds, each almost always seen before.
@lru_cache(maxsize=256)
def decode_oid(data: bytes) -> str:
    """Dotted form of OBJECT IDENTIFIER contents; sub-identifiers must be in their shortest form."""
    if not data or data[-1] & 0x80:
        raise LdsFormatError("truncated object identifier")
    if len(data) > MAX_OID_BYTES:
        # Python will not print an integer of more than 4300 digits; no OID of these protocols is close.
        raise LdsFormatError(f"object identifier longer than {MAX_OID_BYTES} bytes")
    values: list[int] = []
    n, first_byte = 0, True
    for b in data:
        if first_byte and b == 0x80:
            raise LdsFormatError("object identifier sub-identifier with a leading zero byte")
        n = (n << 7) | (b & 0x7F)
        first_byte = not b & 0x80
        if first_byte:
            values.append(n)
            n = 0
    head = values[0]
    arcs = [head // 40, head % 40] if head < 80 else [2, head - 80]
    return ".".join(map(str, arcs + values[1:]))
