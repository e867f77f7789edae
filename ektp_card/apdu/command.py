"""Command and response APDUs (ISO/IEC 7816-3 section 12.1, 7816-4 section 5.1), short and extended."""

from __future__ import annotations

from dataclasses import dataclass, field

from ektp_card.apdu.sw import SW, describe
from ektp_card.errors import ApduFormatError

#: Largest Nc / Ne in short form and in extended form.
SHORT_MAX_LC = 255
SHORT_MAX_LE = 256
EXTENDED_MAX_LC = 65535
EXTENDED_MAX_LE = 65536


@dataclass(frozen=True)
class CommandApdu:
    """A command APDU.

    ``le`` is Ne, the number of response bytes expected: ``None`` for none (cases 1 and 3), 256 for
    short "00", 65536 for extended "0000". ``extended`` forces extended-length encoding even when
    the values would fit in short form. ``sensitive`` marks a data field that must not be logged
    (passwords, keys); it takes no part in equality.
    """

    cla: int
    ins: int
    p1: int = 0
    p2: int = 0
    data: bytes = b""
    le: int | None = None
    extended: bool = False
    sensitive: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ApduFormatError(f"{name.upper()} out of range: {value}")
        if len(self.data) > EXTENDED_MAX_LC:
            raise ApduFormatError(f"command data too long: {len(self.data)} bytes")
        if self.le is not None and not 1 <= self.le <= EXTENDED_MAX_LE:
            raise ApduFormatError(f"Le out of range: {self.le}")
        if not isinstance(self.data, bytes):
            object.__setattr__(self, "data", bytes(self.data))

    @property
    def case(self) -> int:
        """ISO 7816-3 case: 1 (no data, no Le), 2 (Le), 3 (data), 4 (data and Le)."""
        return 1 + (self.le is not None) + 2 * bool(self.data)

    @property
    def needs_extended(self) -> bool:
        """True when the values cannot be expressed in short form."""
        return len(self.data) > SHORT_MAX_LC or (self.le or 0) > SHORT_MAX_LE

    def with_(self, **changes: object) -> CommandApdu:
        """A copy with some fields replaced."""
        values = {
            "cla": self.cla, "ins": self.ins, "p1": self.p1, "p2": self.p2, "data": self.data,
            "le": self.le, "extended": self.extended, "sensitive": self.sensitive,
        }
        values.update(changes)
        return CommandApdu(**values)  # type: ignore[arg-type]

    def encode(self, extended: bool | None = None) -> bytes:
        """The wire bytes; extended form when forced, asked for, or needed."""
        ext = self.extended or self.needs_extended if extended is None else extended
        if not ext and self.needs_extended:
            raise ApduFormatError("command needs extended length but short form was required")
        out = bytearray((self.cla, self.ins, self.p1, self.p2))
        nc = len(self.data)
        if ext:
            if nc:
                out += b"\x00" + nc.to_bytes(2, "big") + self.data
            if self.le is not None:
                le = self.le & 0xFFFF  # 65536 encodes as 0000
                out += (b"" if nc else b"\x00") + le.to_bytes(2, "big")
        else:
            if nc:
                out += bytes((nc,)) + self.data
            if self.le is not None:
                out.append(self.le & 0xFF)  # 256 encodes as 00
        return bytes(out)

    @classmethod
    def decode(cls, raw: bytes) -> CommandApdu:
        """Parse wire bytes, rejecting every encoding ISO/IEC 7816-3 does not define."""
        n = len(raw)
        if n < 4:
            raise ApduFormatError(f"command APDU too short: {n} bytes")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        if n == 4:
            return cls(cla, ins, p1, p2)
        b = raw[4]
        if n == 5:
            return cls(cla, ins, p1, p2, le=b or SHORT_MAX_LE)
        if b != 0:
            if n == 5 + b:
                return cls(cla, ins, p1, p2, bytes(raw[5:]))
            if n == 6 + b:
                return cls(cla, ins, p1, p2, bytes(raw[5:-1]), le=raw[-1] or SHORT_MAX_LE)
            raise ApduFormatError(f"short Lc {b} inconsistent with APDU length {n}")
        # B1 = 00 introduces extended length.
        if n == 7:
            le = int.from_bytes(raw[5:7], "big") or EXTENDED_MAX_LE
            return cls(cla, ins, p1, p2, le=le, extended=True)
        if n < 8:
            raise ApduFormatError(f"malformed extended length field ({n} bytes)")
        nc = int.from_bytes(raw[5:7], "big")
        if nc == 0:
            raise ApduFormatError("extended Lc of zero")
        if n == 7 + nc:
            return cls(cla, ins, p1, p2, bytes(raw[7:]), extended=True)
        if n == 9 + nc:
            le = int.from_bytes(raw[-2:], "big") or EXTENDED_MAX_LE
            return cls(cla, ins, p1, p2, bytes(raw[7:-2]), le=le, extended=True)
        raise ApduFormatError(f"extended Lc {nc} inconsistent with APDU length {n}")


@dataclass(frozen=True)
class ResponseApdu:
    """A response APDU: data field and the two status bytes."""

    data: bytes
    sw: int

    def __post_init__(self) -> None:
        if not 0 <= self.sw <= 0xFFFF:
            raise ApduFormatError(f"status word out of range: {self.sw}")

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == SW.OK

    @property
    def meaning(self) -> str:
        """What the status word means, in words."""
        return describe(self.sw)

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def decode(cls, raw: bytes) -> ResponseApdu:
        if len(raw) < 2:
            raise ApduFormatError(f"response APDU too short: {len(raw)} bytes")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))
