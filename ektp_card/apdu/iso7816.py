"""A session with any ISO/IEC 7816-4 card: selection, transparent files, EF.ATR/INFO, GET CHALLENGE.

Card applications (the e-KTP profile, ICAO eMRTD) build their sessions on this one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ektp_card.apdu.command import SHORT_MAX_LE, CommandApdu, ResponseApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import Tlv, encode_length, parse_dict, parse_list
from ektp_card.errors import IncorrectParametersError, TlvError, WrongLengthError

log = logging.getLogger("ektp_card.iso7816")

#: EF.ATR/INFO under the MF (ISO/IEC 7816-4 section 8.2.1.1; ICAO Doc 9303-10 section 3.12).
EF_ATR_INFO_FID = 0x2F01
EF_ATR_INFO_SFI = 0x01

_READ_OK = frozenset({SW.OK, SW.END_OF_FILE})
#: Read sizes tried, largest first, when a card refuses a short READ BINARY with 6700: buffer limits
#: seen in chips (231 and 223 are what a protected response of 3DES and AES secure messaging carries
#: in one short APDU; 128 and smaller are buffer sizes), then halving down to one byte.
_SHORT_READ_LADDER = (0xE7, 0xDF, 0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01)
#: READ BINARY B0 carries the offset in 15 bits; beyond that the odd INS B1 with DO 54 is needed.
_MAX_B0_OFFSET = 0x7FFF


@dataclass(frozen=True)
class CardInfo:
    """What EF.ATR/INFO says about the card's buffers (ISO/IEC 7816-4 section 12.7.1, DO 7F66)."""

    command_chaining: bool
    extended_length: bool
    max_command_apdu: int | None
    max_response_apdu: int | None

    @classmethod
    def parse(cls, data: bytes) -> CardInfo:
        """Parse the BER-TLV content of EF.ATR/INFO; unknown objects are ignored."""
        objects = parse_dict(data)
        caps = objects.get(0x47, b"")
        third = caps[2] if len(caps) >= 3 else 0
        max_cmd = max_rsp = None
        if 0x7F66 in objects:
            ints = [t for t in parse_list(objects[0x7F66]) if t.tag == 0x02]
            if len(ints) < 2:
                raise TlvError("DO 7F66 needs two INTEGERs", 0)
            max_cmd = int.from_bytes(ints[0].value, "big")
            max_rsp = int.from_bytes(ints[1].value, "big")
        return cls(
            command_chaining=bool(third & 0x80),
            extended_length=bool(third & 0x40) or max_cmd is not None,
            max_command_apdu=max_cmd,
            max_response_apdu=max_rsp,
        )

    @property
    def max_read(self) -> int:
        """The largest Ne worth asking for in one READ BINARY."""
        if self.extended_length and self.max_response_apdu:
            # The response APDU carries SW1-SW2 besides the data; B1 responses add a DO 53 header.
            return max(SHORT_MAX_LE, min(65536, self.max_response_apdu - 2))
        return SHORT_MAX_LE


class Iso7816Session:
    """Basic interindustry commands over an :class:`ApduProtocol`."""

    def __init__(self, protocol: ApduProtocol, cla: int = 0x00) -> None:
        self.protocol = protocol
        self.cla = cla
        #: Largest Ne for one READ BINARY; raised after reading EF.ATR/INFO.
        self.max_read = SHORT_MAX_LE
        self._told_eof = False
        #: The Le the card named (6Cxx) for the last read, if it named one.
        self._named: int | None = None

    @property
    def read_size(self) -> int:
        """Ne for one READ BINARY now: :attr:`max_read`, or under secure messaging in short form
        the most whose protected answer still fits one response (223 bytes for AES), which saves
        a GET RESPONSE round trip per read."""
        sm = self.protocol.secure_messaging
        if sm is not None and not self.protocol.extended:
            return min(self.max_read, sm.max_short_data)
        return self.max_read

    def select_mf(self) -> None:
        self.protocol.send(CommandApdu(self.cla, 0xA4, 0x00, 0x0C))

    def select_aid(self, aid: bytes) -> None:
        """SELECT by DF name (P1 04), no response data."""
        self.protocol.send(CommandApdu(self.cla, 0xA4, 0x04, 0x0C, aid))

    def select_ef(self, fid: int) -> int | None:
        """SELECT an EF under the current DF and return its size from the FCP (tag 80 or 81)."""
        resp = self.protocol.send(CommandApdu(self.cla, 0xA4, 0x02, 0x04, fid.to_bytes(2, "big"), le=256))
        if not resp.data:
            return None
        fcp = parse_dict(Tlv.decode(resp.data).value) if resp.data[0] == 0x62 else {}
        size = fcp.get(0x80, fcp.get(0x81))
        return int.from_bytes(size, "big") if size is not None else None

    def read_card_info(self) -> CardInfo:
        """Read EF.ATR/INFO from the MF by its short file ID and adopt its buffer sizes."""
        data = self.read_file(sfi=EF_ATR_INFO_SFI)
        info = CardInfo.parse(data)
        self.max_read = info.max_read
        if info.extended_length and not self.protocol.extended:
            self.protocol.extended = True
        return info

    def _send_read(self, make: Callable[[int], CommandApdu], le: int) -> tuple[ResponseApdu, int]:
        """Send a READ BINARY built for Ne ``le``; return the response and the Ne it answered (fewer
        bytes than that, with 9000, mean the end of the file).

        A card that answers 6700 to a long read cannot give what EF.ATR/INFO promised (or a reader
        in between cannot carry it): fall back to short reads for the rest of the session. A card
        that answers 6700 to a short read has a smaller buffer: try the sizes of
        :data:`_SHORT_READ_LADDER` below it and keep to the first that works. 6Cxx is corrected lower
        in the stack (see :meth:`_answered`), 6B00 is the caller's end of file.
        """
        self.protocol.take_le_correction()
        try:
            resp = self.protocol.send(make(le), allow=_READ_OK)
        except WrongLengthError as e:
            if e.exact_le is not None:
                raise
            refused = e
        else:
            return self._answered(resp, le)
        if le > SHORT_MAX_LE:
            log.info("the card refused a %d-byte read (6700); reading in short APDUs from now on", le)
            self.max_read = SHORT_MAX_LE
            self.protocol.extended = False
            le = min(le, self.read_size)
            try:
                return self._answered(self.protocol.send(make(le), allow=_READ_OK), le)
            except WrongLengthError as e:
                if e.exact_le is not None:
                    raise
                refused = e
        for smaller in (n for n in _SHORT_READ_LADDER if n < le):
            try:
                resp = self.protocol.send(make(smaller), allow=_READ_OK)
            except WrongLengthError as e:
                if e.exact_le is not None:
                    raise
                continue
            log.info("the card refused a %d-byte read (6700) but reads %d bytes: reading at most %d bytes "
                     "at a time from now on", le, smaller, smaller)
            self.max_read = smaller
            return self._answered(resp, smaller)
        raise refused

    def _answered(self, resp: ResponseApdu, le: int) -> tuple[ResponseApdu, int]:
        """``resp`` to a read of Ne ``le``, and the Ne it answered: the one the card named, when it
        named one with 6Cxx. At the end of a file that is what is left; on a chip with a smaller buffer
        its size, so its answer is no end of file. The same size named twice in a row is the buffer:
        reads keep to it from then on."""
        named = self.protocol.take_le_correction()
        if named is not None and named < le:
            if named == self._named and named < self.max_read:
                log.info("the card named Le %d (6Cxx) twice for a %d-byte read: reading at most %d bytes "
                         "at a time from now on", named, le, named)
                self.max_read = named
            self._named = named
            return resp, named
        self._named = None
        if resp.sw == SW.END_OF_FILE and le in (SHORT_MAX_LE, 65536) and resp.data and not self._told_eof:
            # Le 00 asks for "up to the end": a warning then is a chip's habit, and still the end.
            self._told_eof = True
            log.info("the card warns 6282 (end of file) at the end of a file read with Le 00; taken as "
                     "the end of the file")
        return resp, le

    def _read_chunk(self, offset: int, length: int) -> tuple[bytes, bool, int]:
        """One READ BINARY: the data, whether the card said end of file (6282), and how many data
        bytes were asked for (fewer than ``length`` after a fallback to short reads)."""
        if offset <= _MAX_B0_OFFSET:
            resp, le = self._send_read(
                lambda ne: CommandApdu(self.cla, 0xB0, offset >> 8, offset & 0xFF, le=ne), length
            )
            return resp.data, resp.sw == SW.END_OF_FILE, le
        # Offset DO 54 in, discretionary data DO 53 out (ISO/IEC 7816-4 section 11.2.3). Ne counts
        # the DO 53 header too, so ask for that much more.
        offset_do = Tlv(0x54, offset.to_bytes(3 if offset > 0xFFFF else 2, "big")).encode()
        header = 1 + len(encode_length(length))
        resp, le = self._send_read(
            lambda ne: CommandApdu(self.cla, 0xB1, 0, 0, offset_do, le=ne),
            min(length + header, self.read_size),
        )
        data = Tlv.decode(resp.data).value if resp.data else b""
        return data, resp.sw == SW.END_OF_FILE, le - header

    def read_binary(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` of the current EF (fewer at end of file).

        A card that gives fewer bytes than asked although more are wanted (some answer 6Cxx naming
        their buffer, the terminal then asks that much; some just stop short) is read on, in parts
        of the size it gave from then on."""
        out = bytearray()
        while len(out) < length:
            at = offset + len(out)
            chunk, eof, asked = self._read_chunk(at, min(length - len(out), self.read_size))
            out += chunk
            if eof or not chunk:
                break
            short = len(chunk) < asked and len(chunk) < self.max_read
            if short and len(out) < length and at <= _MAX_B0_OFFSET:
                log.info("the card gave %d bytes where %d were asked for; reading at most %d bytes at a "
                         "time from now on", len(chunk), asked, len(chunk))
                self.max_read = len(chunk)
        return bytes(out)

    def read_file(self, *, sfi: int | None = None, fid: int | None = None) -> bytes:
        """Read a whole transparent EF, selecting it by short file ID (P1 100xxxxx) or by FID.

        Reads in chunks of :attr:`read_size`; the end is the size in the FCP when selected by FID,
        else 6282, a short B0 answer, an empty answer or 6B00 (offset past the end).
        """
        if (sfi is None) == (fid is None):
            raise ValueError("give exactly one of sfi or fid")
        out = bytearray()
        size: int | None = None
        step = self.read_size
        if sfi is not None:
            resp, asked = self._send_read(
                lambda ne: CommandApdu(self.cla, 0xB0, 0x80 | sfi, 0x00, le=ne), step
            )
            out += resp.data
            if resp.sw == SW.END_OF_FILE or len(resp.data) < asked:
                return bytes(out)
            step = self.read_size
        elif fid is not None:
            size = self.select_ef(fid)
        while size is None or len(out) < size:
            offset = len(out)
            want = step if size is None else min(step, size - offset)
            try:
                chunk, eof, asked = self._read_chunk(offset, want)
            except IncorrectParametersError as e:
                # Offset past the end of a file of unknown size: that is the end.
                if e.sw == SW.WRONG_P1P2 and size is None:
                    break
                raise
            out += chunk
            step = self.read_size
            if eof or not chunk or (size is None and offset <= _MAX_B0_OFFSET and len(chunk) < asked):
                break
        return bytes(out)

    def update_binary(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` of the current EF (chained or extended as the stack allows)."""
        if offset > _MAX_B0_OFFSET:
            raise ValueError("UPDATE BINARY offsets above 32767 are not supported")
        self.protocol.send(CommandApdu(self.cla, 0xD6, offset >> 8, offset & 0xFF, data))

    def get_challenge(self, length: int = 8) -> bytes:
        return self.protocol.send(CommandApdu(self.cla, 0x84, 0, 0, le=length)).data
