"""A strict BER-TLV codec (ISO/IEC 7816-4 section 5.2, ISO/IEC 8825-1).

Tags of one to three bytes, definite lengths of one to four bytes (up to 0x83 XX XX XX). Anything
else - truncated input, an indefinite or over-long length, a length running past the data, trailing
bytes - raises :class:`TlvError` with the offset where it was found.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ektp_card.errors import TlvError

MAX_TAG_BYTES = 3
MAX_LENGTH = 0xFFFFFF


def tag_bytes(tag: int) -> bytes:
    """The wire form of a tag number as written in the standards (e.g. 0x5F1F -> 5F 1F)."""
    if tag < 0:
        raise ValueError("negative tag")
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def is_constructed(tag: int) -> bool:
    """Bit 6 of the first tag byte marks a constructed data object."""
    return bool(tag_bytes(tag)[0] & 0x20)


def encode_length(n: int) -> bytes:
    """Shortest definite length encoding."""
    if n < 0 or n > MAX_LENGTH:
        raise ValueError(f"length out of range: {n}")
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _read_tag(data: bytes, offset: int) -> tuple[int, int]:
    start = offset
    if offset >= len(data):
        raise TlvError("truncated tag", offset)
    first = data[offset]
    offset += 1
    tag = first
    if first & 0x1F == 0x1F:
        while True:
            if offset >= len(data):
                raise TlvError("truncated multi-byte tag", start)
            b = data[offset]
            if offset == start + 1 and b == 0x80:
                raise TlvError("tag number with a leading zero byte", offset)
            tag = (tag << 8) | b
            offset += 1
            if not b & 0x80:
                break
            if offset - start >= MAX_TAG_BYTES:
                raise TlvError(f"tag longer than {MAX_TAG_BYTES} bytes", start)
    return tag, offset


def _read_length(data: bytes, offset: int, strict: bool) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError("truncated length", offset)
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    if first == 0x80:
        raise TlvError("indefinite length not allowed", offset)
    count = first & 0x7F
    if count > 3:
        raise TlvError(f"length field of {count + 1} bytes is too long", offset)
    if offset + 1 + count > len(data):
        raise TlvError("truncated length", offset)
    n = int.from_bytes(data[offset + 1 : offset + 1 + count], "big")
    if strict and len(encode_length(n)) != count + 1:
        raise TlvError("length not in its shortest form", offset)
    return n, offset + 1 + count


@dataclass(frozen=True)
class Tlv:
    """One data object: tag number (as written, e.g. 0x5F1F) and value bytes."""

    tag: int
    value: bytes = b""

    @property
    def constructed(self) -> bool:
        return is_constructed(self.tag)

    @property
    def children(self) -> list[Tlv]:
        """The nested data objects of a constructed object."""
        if not self.constructed:
            raise TlvError(f"tag {self.tag:X} is primitive", 0)
        return parse_list(self.value)

    def encode(self) -> bytes:
        return tag_bytes(self.tag) + encode_length(len(self.value)) + self.value

    def __bytes__(self) -> bytes:
        return self.encode()

    @classmethod
    def of(cls, tag: int, *parts: bytes | Tlv) -> Tlv:
        """Build an object whose value is the concatenation of raw bytes and encoded children."""
        return cls(tag, b"".join(p.encode() if isinstance(p, Tlv) else bytes(p) for p in parts))

    @classmethod
    def decode(cls, data: bytes, *, strict: bool = True) -> Tlv:
        """Exactly one data object; trailing bytes are an error."""
        tlv, end = parse_one(data, 0, strict=strict)
        if end != len(data):
            raise TlvError(f"{len(data) - end} trailing bytes", end)
        return tlv


def encoded_size(data: bytes) -> int | None:
    """How many bytes the BER-TLV object starting ``data`` takes by its tag and length fields (its
    value may be cut short in ``data``); ``None`` when the fields themselves are malformed or cut."""
    try:
        _, offset = _read_tag(data, 0)
        length, offset = _read_length(data, offset, strict=False)
    except TlvError:
        return None
    return offset + length


def parse_one(data: bytes, offset: int = 0, *, strict: bool = True) -> tuple[Tlv, int]:
    """Decode the data object at ``offset``; return it and the offset after it."""
    tag, pos = _read_tag(data, offset)
    length, pos = _read_length(data, pos, strict)
    end = pos + length
    if end > len(data):
        raise TlvError(f"length {length} runs past the end of the data", pos)
    return Tlv(tag, bytes(data[pos:end])), end


def iter_tlv(data: bytes, *, strict: bool = True) -> Iterator[Tlv]:
    """Decode consecutive data objects filling ``data`` exactly."""
    offset = 0
    while offset < len(data):
        tlv, offset = parse_one(data, offset, strict=strict)
        yield tlv


def parse_list(data: bytes, *, strict: bool = True) -> list[Tlv]:
    return list(iter_tlv(data, strict=strict))


def parse_dict(data: bytes, *, strict: bool = True) -> dict[int, bytes]:
    """Tag -> value; a repeated tag is an error since a dict would hide it."""
    out: dict[int, bytes] = {}
    offset = 0
    while offset < len(data):
        start = offset
        tlv, offset = parse_one(data, offset, strict=strict)
        if tlv.tag in out:
            raise TlvError(f"repeated tag {tlv.tag:X}", start)
        out[tlv.tag] = tlv.value
    return out


def unpack(tag: int, data: bytes, *, strict: bool = True) -> bytes:
    """The value of a single data object that must carry ``tag``."""
    tlv = Tlv.decode(data, strict=strict)
    if tlv.tag != tag:
        raise TlvError(f"expected tag {tag:X}, found {tlv.tag:X}", 0)
    return tlv.value


def encode_list(items: Iterable[Tlv]) -> bytes:
    return b"".join(t.encode() for t in items)
