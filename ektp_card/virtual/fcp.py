"""File control parameters: the FCP template (62) that SELECT returns and CREATE FILE takes.

ISO/IEC 7816-4 section 7.4.3 (table "File control parameter data objects"). The data objects used:

    80  number of data bytes in the file (transparent EF); 81 is accepted instead on input
    82  file descriptor byte: 01 transparent working EF, 38 DF
    83  file identifier
    84  DF name (AID), DFs only
    88  short EF identifier in bits 8-4 (EFs only); empty = no SFI; absent = bits 5-1 of the FID
    8A  life-cycle status byte (section 7.4.10)
    86  security attributes in proprietary format: our access conditions, see SecurityAttributes
"""

from __future__ import annotations

from dataclasses import dataclass

from ektp_card.apdu.tlv import Tlv, encode_list, parse_dict
from ektp_card.errors import TlvError
from ektp_card.lds.conditions import SecurityAttributes
from ektp_card.virtual.fs import DF_NAME_MAX, SFI_RANGE, CardFile, DedicatedFile, ElementaryFile, LifeCycle

TAG_FCP = 0x62
TAG_FCI = 0x6F
TAG_FMD = 0x64

DESCRIPTOR_TRANSPARENT_EF = 0x01
DESCRIPTOR_DF = 0x38

#: Security attributes in formats this card does not implement (compact 8C, expanded 8B, 8D, 8E and
#: the templates A0-AF). Silently ignoring them would create a file less protected than asked for.
_UNSUPPORTED_SECURITY_TAGS = frozenset({0x8B, 0x8C, 0x8D, 0x8E, *range(0xA0, 0xB0)})


def _size_bytes(n: int) -> bytes:
    return n.to_bytes(max(2, (n.bit_length() + 7) // 8), "big")


@dataclass(frozen=True)
class Fcp:
    """Parsed file control parameters of one DF or transparent EF.

    ``sfi`` is the effective short EF identifier: decoding applies the ISO rule that an absent DO 88
    means "bits 5-1 of the file identifier", and an empty one "no SFI".
    """

    fid: int
    df: bool
    size: int | None = None
    df_name: bytes | None = None
    sfi: int | None = None
    lcs: LifeCycle | None = None
    security: SecurityAttributes | None = None

    @classmethod
    def for_file(cls, f: CardFile) -> Fcp:
        if isinstance(f, DedicatedFile):
            return cls(f.fid, True, df_name=f.name, lcs=f.lcs, security=f.access)
        if isinstance(f, ElementaryFile):
            return cls(f.fid, False, size=f.size, sfi=f.sfi, lcs=f.lcs, security=f.access)
        raise TypeError(f"not a card file: {f!r}")

    def _objects(self) -> list[Tlv]:
        objects: list[Tlv] = []
        if not self.df and self.size is not None:
            objects.append(Tlv(0x80, _size_bytes(self.size)))
        objects.append(Tlv(0x82, bytes((DESCRIPTOR_DF if self.df else DESCRIPTOR_TRANSPARENT_EF,))))
        objects.append(Tlv(0x83, self.fid.to_bytes(2, "big")))
        if self.df and self.df_name is not None:
            objects.append(Tlv(0x84, self.df_name))
        if not self.df:
            objects.append(Tlv(0x88, b"" if self.sfi is None else bytes((self.sfi << 3,))))
        if self.lcs is not None:
            objects.append(Tlv(0x8A, bytes((self.lcs,))))
        if self.security is not None:
            objects.append(Tlv(0x86, self.security.encode()))
        return objects

    def encode(self) -> bytes:
        """The FCP template, tag 62."""
        return Tlv(TAG_FCP, encode_list(self._objects())).encode()

    def encode_fci(self) -> bytes:
        """The FCI template, tag 6F, carrying the same data objects (this card has no FMD)."""
        return Tlv(TAG_FCI, encode_list(self._objects())).encode()

    @classmethod
    def decode(cls, data: bytes) -> Fcp:
        """Parse an FCP template (62) for CREATE FILE; raises :class:`TlvError` on anything wrong."""
        template = Tlv.decode(data)
        if template.tag != TAG_FCP:
            raise TlvError(f"expected an FCP template (62), found tag {template.tag:X}", 0)
        fields = parse_dict(template.value)
        for tag in fields:
            if tag in _UNSUPPORTED_SECURITY_TAGS:
                raise TlvError(f"security attribute format {tag:X} is not supported", 0)
        descriptor = fields.get(0x82)
        if descriptor is None or not 1 <= len(descriptor) <= 2:
            raise TlvError("file descriptor (82) missing or not one or two bytes", 0)
        # Bit 7 (shareable) and the optional data coding byte do not change anything here.
        kind = descriptor[0] & 0xBF
        if kind not in (DESCRIPTOR_DF, DESCRIPTOR_TRANSPARENT_EF):
            raise TlvError(f"file descriptor {descriptor[0]:02X}: only DFs and transparent EFs", 0)
        df = kind == DESCRIPTOR_DF
        raw_fid = fields.get(0x83)
        if raw_fid is None or len(raw_fid) != 2:
            raise TlvError("file identifier (83) missing or not two bytes", 0)
        fid = int.from_bytes(raw_fid, "big")

        size = None
        name = None
        sfi = None
        if df:
            if 0x88 in fields:
                raise TlvError("a DF has no short EF identifier", 0)
            name = fields.get(0x84)
            if name is not None and not 1 <= len(name) <= DF_NAME_MAX:
                raise TlvError("a DF name has 1 to 16 bytes", 0)
        else:
            if 0x84 in fields:
                raise TlvError("an EF has no DF name", 0)
            raw_size = fields.get(0x80, fields.get(0x81))
            if raw_size is None or not 1 <= len(raw_size) <= 4:
                raise TlvError("EF size (80) missing or longer than four bytes", 0)
            size = int.from_bytes(raw_size, "big")
            raw_sfi = fields.get(0x88)
            if raw_sfi is None:
                sfi = fid & 0x1F if fid & 0x1F in SFI_RANGE else None
            elif len(raw_sfi) == 1 and raw_sfi[0] & 0x07 == 0 and raw_sfi[0] >> 3 in SFI_RANGE:
                sfi = raw_sfi[0] >> 3
            elif raw_sfi:
                raise TlvError("short EF identifier (88) malformed", 0)

        lcs = None
        if 0x8A in fields:
            raw_lcs = fields[0x8A]
            lcs = LifeCycle.from_byte(raw_lcs[0]) if len(raw_lcs) == 1 else None
            if lcs is None:
                raise TlvError("life-cycle status (8A) malformed", 0)
        security = SecurityAttributes.decode(fields[0x86]) if 0x86 in fields else None
        return cls(fid, df, size=size, df_name=name, sfi=sfi, lcs=lcs, security=security)
