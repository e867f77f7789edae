"""The card's ISO/IEC 7816-4 and 7816-9 commands, one handler per INS.

A handler takes the card and the (already unwrapped, already de-chained) command and returns the
response. It refuses by raising an :class:`~ektp_card.errors.ApduError` carrying the status word to
answer; the dispatcher in :mod:`ektp_card.virtual.card` turns it into bytes, splits long responses
for GET RESPONSE and applies secure messaging.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, NoReturn

from ektp_card.apdu.command import EXTENDED_MAX_LE, SHORT_MAX_LE, CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW, error_for
from ektp_card.apdu.tlv import Tlv, encode_length, parse_list
from ektp_card.errors import TlvError
from ektp_card.lds.conditions import AccessCondition
from ektp_card.virtual.fcp import TAG_FMD, Fcp
from ektp_card.virtual.fs import MF_FID, SFI_RANGE, CardFile, DedicatedFile, ElementaryFile, LifeCycle

if TYPE_CHECKING:
    from ektp_card.virtual.card import VirtualCard

#: ISO/IEC 7816-4 has no separate word for "selected file in termination state" in the SW enum.
SW_FILE_TERMINATED = 0x6285
#: The longest GET CHALLENGE answer: one short response.
MAX_CHALLENGE = 256
#: A data object 53 (discretionary data) or 73 (its constructed form) carries binary data in the
#: odd-INS READ / UPDATE BINARY; 54 carries the offset (ISO/IEC 7816-4 section 7.2.2).
TAG_OFFSET, TAG_DATA, TAG_DATA_CONSTRUCTED = 0x54, 0x53, 0x73

Handler = Callable[["VirtualCard", CommandApdu], ResponseApdu]


class Chaining(Enum):
    """How a command takes part in command chaining (CLA bit 0x10, ISO/IEC 7816-4 section 5.3.3)."""

    #: Chained commands are refused with 6884.
    NONE = "none"
    #: The card collects the parts and runs the handler once on the joined data field.
    BUFFER = "buffer"
    #: Every part goes to the handler, which sees the chaining bit (e.g. GENERAL AUTHENTICATE in
    #: BSI TR-03110 PACE, where each link of the chain is one protocol step).
    EACH = "each"


@dataclass(frozen=True)
class Command:
    """One entry of the dispatch table."""

    name: str
    handler: Handler
    chaining: Chaining = Chaining.NONE


def refuse(sw: int) -> NoReturn:
    """Abort the command with status word ``sw``."""
    raise error_for(sw)


def ok(data: bytes = b"") -> ResponseApdu:
    return ResponseApdu(data, SW.OK)


def require_usable(f: CardFile) -> None:
    """A deactivated or terminated file (or one under such a DF) answers 6985.

    6985 "conditions of use not satisfied" rather than 6982: no authentication can fix the file's
    state, and 6982 would send a terminal off to authenticate in vain.
    """
    if not f.usable:
        refuse(SW.CONDITIONS_NOT_SATISFIED)


def require(card: VirtualCard, condition: AccessCondition) -> None:
    if not card.security.satisfies(condition):
        refuse(SW.SECURITY_STATUS_NOT_SATISFIED)


def is_wildcard_le(apdu: CommandApdu) -> bool:
    """Le field of only 00 bytes: "as many bytes as available, up to 256 / 65536"."""
    return apdu.le == (EXTENDED_MAX_LE if apdu.extended else SHORT_MAX_LE)


# --- SELECT ----------------------------------------------------------------------------------


def _fid(data: bytes) -> int:
    if len(data) != 2:
        refuse(SW.LC_INCONSISTENT_WITH_P1P2)
    return int.from_bytes(data, "big")


def _path(data: bytes) -> list[int]:
    if len(data) % 2:
        refuse(SW.LC_INCONSISTENT_WITH_P1P2)
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _by_fid(card: VirtualCard, fid: int) -> CardFile:
    """P1 = 00: the MF, the current DF, its children, its parent, then the parent's children."""
    if fid == MF_FID:
        return card.fs.mf
    current = card.current_df
    if fid == current.fid:
        return current
    found = current.child(fid)
    parent = current.parent
    if found is None and parent is not None:
        found = parent if parent.fid == fid else parent.child(fid)
    if found is None:
        refuse(SW.FILE_NOT_FOUND)
    return found


def _by_name(card: VirtualCard, name: bytes, occurrence: int) -> DedicatedFile:
    """P1 = 04: full or partial DF name; P2 bits 2-1 pick the first, last, next or previous match."""
    if not 1 <= len(name) <= 16:
        refuse(SW.LC_INCONSISTENT_WITH_P1P2)
    candidates = card.fs.applications(name)
    if not candidates:
        refuse(SW.FILE_NOT_FOUND)
    current = card.current_df
    index = next((i for i, df in enumerate(candidates) if df is current), None)
    if occurrence == 0b00:
        return candidates[0]
    if occurrence == 0b01:
        return candidates[-1]
    if occurrence == 0b10:
        pick = 0 if index is None else index + 1
    else:
        pick = len(candidates) - 1 if index is None else index - 1
    if not 0 <= pick < len(candidates):
        refuse(SW.FILE_NOT_FOUND)
    return candidates[pick]


def resolve(card: VirtualCard, p1: int, data: bytes, occurrence: int = 0) -> CardFile:
    """The file a SELECT-style P1 and data field name (ISO/IEC 7816-4, SELECT)."""
    current = card.current_df
    if p1 == 0x00:
        return card.fs.mf if not data else _by_fid(card, _fid(data))
    if p1 == 0x01:
        df = current.child_df(_fid(data))
        if df is None:
            refuse(SW.FILE_NOT_FOUND)
        return df
    if p1 == 0x02:
        ef = current.child_ef(_fid(data))
        if ef is None:
            refuse(SW.FILE_NOT_FOUND)
        return ef
    if p1 == 0x03:
        if data:
            refuse(SW.LC_INCONSISTENT_WITH_P1P2)
        if current.parent is None:
            refuse(SW.FILE_NOT_FOUND)
        return current.parent
    if p1 == 0x04:
        return _by_name(card, data, occurrence)
    if p1 == 0x08:
        return card.fs.get(_path(data))
    if p1 == 0x09:
        return card.fs.get(_path(data), start=current)
    refuse(SW.INCORRECT_P1P2)


def select(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """SELECT (A4). P2 bits 4-3: 00 FCI, 04 FCP, 08 FMD, 0C nothing; bits 2-1: occurrence (P1=04)."""
    p2 = apdu.p2
    occurrence = p2 & 0x03
    if p2 & 0xF0 or (occurrence and apdu.p1 != 0x04):
        refuse(SW.INCORRECT_P1P2)
    target = resolve(card, apdu.p1, apdu.data, occurrence)
    card.select(target)
    sw: int = SW.OK
    if target.lcs is LifeCycle.OPERATIONAL_DEACTIVATED:
        sw = SW.FILE_DEACTIVATED
    elif target.lcs is LifeCycle.TERMINATED:
        sw = SW_FILE_TERMINATED
    kind = p2 & 0x0C
    if kind == 0x0C:
        data = b""
    elif kind == 0x04:
        data = Fcp.for_file(target).encode()
    elif kind == 0x00:
        data = Fcp.for_file(target).encode_fci()
    else:
        # File management data: this card keeps none, so the template is empty.
        data = Tlv(TAG_FMD).encode()
    return ResponseApdu(data, sw)


# --- READ BINARY / UPDATE BINARY -------------------------------------------------------------


def _by_sfi(card: VirtualCard, sfi: int) -> ElementaryFile:
    """Find an EF of the current DF by short identifier and make it the current EF."""
    if sfi not in SFI_RANGE:
        refuse(SW.INCORRECT_P1P2)
    ef = card.current_df.child_by_sfi(sfi)
    if ef is None:
        refuse(SW.FILE_NOT_FOUND)
    card.select(ef)
    return ef


def _current_ef(card: VirtualCard) -> ElementaryFile:
    ef = card.current_ef
    if ef is None:
        refuse(SW.COMMAND_NOT_ALLOWED)
    return ef


def _even_target(card: VirtualCard, apdu: CommandApdu) -> tuple[ElementaryFile, int]:
    """Even INS (B0, D6): P1 bit 8 = 0: 15-bit offset in P1-P2 on the current EF;
    P1 = 100xxxxx: short EF identifier xxxxx, offset in P2."""
    p1, p2 = apdu.p1, apdu.p2
    if p1 & 0x80:
        if p1 & 0x60:
            refuse(SW.INCORRECT_P1P2)
        return _by_sfi(card, p1 & 0x1F), p2
    return _current_ef(card), (p1 << 8) | p2


def _odd_target(card: VirtualCard, apdu: CommandApdu) -> ElementaryFile:
    """Odd INS (B1, D7): P1-P2 0000 is the current EF; 0001-001E a short EF identifier; anything
    else the identifier of an EF under the current DF."""
    fid = (apdu.p1 << 8) | apdu.p2
    if fid == 0:
        return _current_ef(card)
    if fid in SFI_RANGE:
        return _by_sfi(card, fid)
    ef = card.current_df.child_ef(fid)
    if ef is None:
        refuse(SW.FILE_NOT_FOUND)
    card.select(ef)
    return ef


def _offset(tlv: Tlv) -> int:
    if tlv.tag != TAG_OFFSET or not 1 <= len(tlv.value) <= 4:
        refuse(SW.INCORRECT_DATA)
    return int.from_bytes(tlv.value, "big")


def _readable(card: VirtualCard, ef: ElementaryFile, offset: int) -> int:
    """Check life cycle, access and offset; return the bytes available from ``offset``."""
    require_usable(ef)
    require(card, ef.access.read)
    if offset > ef.size:
        refuse(SW.WRONG_P1P2)
    return ef.size - offset


def _end_of_file(card: VirtualCard, apdu: CommandApdu, available: int, room: int) -> bool:
    """6282 when the file ends before the asked-for length. An all-zero Le means "up to the end of
    the file" (ISO/IEC 7816-4, READ BINARY), so it only warns when nothing at all is left - unless
    the chip warns at every end of file (a quirk some makes have)."""
    always = card.config.quirks.end_of_file_warning
    return available < room and (available == 0 or always or not is_wildcard_le(apdu))


def _check_read_limit(card: VirtualCard, apdu: CommandApdu) -> None:
    """A chip that reads at most N bytes at a time refuses more: 6700, or 6Cxx naming N."""
    quirks = card.config.quirks
    if quirks.read_limit and (apdu.le or 0) > quirks.read_limit:
        word = quirks.read_limit_word
        refuse(SW.WRONG_LENGTH if word == SW.WRONG_LENGTH else SW.wrong_le(quirks.read_limit))


def read_binary(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """READ BINARY (B0)."""
    if apdu.data or apdu.le is None:
        refuse(SW.WRONG_LENGTH)
    _check_read_limit(card, apdu)
    ef, offset = _even_target(card, apdu)
    available = _readable(card, ef, offset)
    count = min(available, card.response_limit(apdu))
    data = bytes(ef.data[offset : offset + count])
    return ResponseApdu(data, SW.END_OF_FILE if _end_of_file(card, apdu, available, apdu.le) else SW.OK)


def _room_in_do53(ne: int) -> int:
    """Most data bytes whose DO 53 (tag, length, value) fits in ``ne`` bytes; -1 if none does."""
    n = ne - 2
    while n > 0 and 1 + len(encode_length(n)) + n > ne:
        n -= 1
    return n if n >= 0 else -1


def read_binary_odd(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """READ BINARY with odd INS (B1): offset in DO 54 (any size file), data returned in DO 53."""
    if apdu.le is None:
        refuse(SW.WRONG_LENGTH)
    _check_read_limit(card, apdu)
    ef = _odd_target(card, apdu)
    try:
        offset = _offset(Tlv.decode(apdu.data))
    except TlvError:
        refuse(SW.INCORRECT_DATA)
    available = _readable(card, ef, offset)
    room = _room_in_do53(card.response_limit(apdu))
    if room < 0:
        refuse(SW.WRONG_LENGTH)
    count = min(available, room)
    data = Tlv(TAG_DATA, bytes(ef.data[offset : offset + count])).encode()
    eof = _end_of_file(card, apdu, available, _room_in_do53(apdu.le))
    return ResponseApdu(data, SW.END_OF_FILE if eof else SW.OK)


def _write(card: VirtualCard, ef: ElementaryFile, offset: int, data: bytes) -> None:
    require_usable(ef)
    require(card, ef.access.update)
    if offset > ef.size:
        refuse(SW.WRONG_P1P2)
    # Writing past the end answers 6A84 "not enough memory space in the file", not 6700: the APDU
    # is well formed (Lc matches the data), it is the fixed-size file that has no room, and
    # UPDATE BINARY never grows a file. Nothing is written in that case.
    if offset + len(data) > ef.size:
        refuse(SW.NOT_ENOUGH_MEMORY)
    ef.data[offset : offset + len(data)] = data


def update_binary(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """UPDATE BINARY (D6)."""
    if not apdu.data:
        refuse(SW.WRONG_LENGTH)
    ef, offset = _even_target(card, apdu)
    _write(card, ef, offset, apdu.data)
    return ok()


def update_binary_odd(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """UPDATE BINARY with odd INS (D7): DO 54 offset followed by DO 53 (or 73) with the data."""
    if not apdu.data:
        refuse(SW.WRONG_LENGTH)
    ef = _odd_target(card, apdu)
    try:
        objects = parse_list(apdu.data)
    except TlvError:
        refuse(SW.INCORRECT_DATA)
    if len(objects) != 2 or objects[1].tag not in (TAG_DATA, TAG_DATA_CONSTRUCTED):
        refuse(SW.INCORRECT_DATA)
    _write(card, ef, _offset(objects[0]), objects[1].value)
    return ok()


# --- file management (ISO/IEC 7816-9) --------------------------------------------------------


def create_file(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """CREATE FILE (E0): an FCP template (62) in the data creates a DF or transparent EF under the
    current DF, guarded by that DF's admin condition; the new file becomes the current file."""
    if apdu.p1 or apdu.p2:
        refuse(SW.INCORRECT_P1P2)
    if not apdu.data:
        refuse(SW.WRONG_LENGTH)
    parent = card.current_df
    require_usable(parent)
    require(card, parent.access.admin)
    try:
        fcp = Fcp.decode(apdu.data)
    except TlvError:
        refuse(SW.INCORRECT_DATA)
    lcs = fcp.lcs if fcp.lcs not in (None, LifeCycle.NO_INFORMATION) else LifeCycle.CREATION
    # A new file starts before the operational phase; ACTIVATE FILE takes it there.
    if not lcs.before_operational:
        refuse(SW.INCORRECT_DATA)
    created: CardFile
    if fcp.df:
        created = card.fs.create_df(parent, fcp.fid, name=fcp.df_name, access=fcp.security, lcs=lcs)
    else:
        size = fcp.size or 0
        created = card.fs.create_ef(parent, fcp.fid, size=size, sfi=fcp.sfi, access=fcp.security, lcs=lcs)
    card.select(created)
    return ok()


def _management_target(card: VirtualCard, apdu: CommandApdu) -> CardFile:
    """ACTIVATE / DEACTIVATE / TERMINATE address a file like SELECT (P2 = 00); with P1 = 00 and no
    data they act on the current file (the current EF if any, else the current DF)."""
    if apdu.p2:
        refuse(SW.INCORRECT_P1P2)
    if apdu.p1 == 0x00 and not apdu.data:
        target: CardFile = card.current_ef or card.current_df
    else:
        target = resolve(card, apdu.p1, apdu.data)
    card.select(target)
    require(card, target.access.admin)
    return target


def activate_file(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """ACTIVATE FILE (44): creation, initialisation or deactivated -> operational activated.
    Activating the MF makes the card operational."""
    target = _management_target(card, apdu)
    if target.lcs is LifeCycle.TERMINATED:
        refuse(SW.CONDITIONS_NOT_SATISFIED)
    target.lcs = LifeCycle.OPERATIONAL_ACTIVATED
    return ok()


def deactivate_file(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """DEACTIVATE FILE (04): operational activated -> operational deactivated."""
    target = _management_target(card, apdu)
    if target.lcs not in (LifeCycle.OPERATIONAL_ACTIVATED, LifeCycle.OPERATIONAL_DEACTIVATED):
        refuse(SW.CONDITIONS_NOT_SATISFIED)
    target.lcs = LifeCycle.OPERATIONAL_DEACTIVATED
    return ok()


def _terminate(card: VirtualCard, apdu: CommandApdu, want_df: bool) -> ResponseApdu:
    target = _management_target(card, apdu)
    if target.is_df != want_df:
        refuse(SW.INCOMPATIBLE_FILE_STRUCTURE)
    target.lcs = LifeCycle.TERMINATED
    return ok()


def terminate_df(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """TERMINATE DF (E6): irreversible. Terminating the MF terminates the card."""
    return _terminate(card, apdu, want_df=True)


def terminate_ef(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """TERMINATE EF (E8): irreversible."""
    return _terminate(card, apdu, want_df=False)


def terminate_card_usage(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """TERMINATE CARD USAGE (FE): the MF, and with it the card, enters the termination state."""
    if apdu.p1 or apdu.p2:
        refuse(SW.INCORRECT_P1P2)
    if apdu.data:
        refuse(SW.WRONG_LENGTH)
    require(card, card.fs.mf.access.admin)
    card.fs.mf.lcs = LifeCycle.TERMINATED
    return ok()


# --- GET CHALLENGE / GET RESPONSE ------------------------------------------------------------


def get_challenge(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """GET CHALLENGE (84): Ne random bytes (at most 256) from the card's random source, remembered
    for the next authentication."""
    if apdu.p1 or apdu.p2:
        refuse(SW.INCORRECT_P1P2)
    if apdu.data or apdu.le is None:
        refuse(SW.WRONG_LENGTH)
    challenge = card.random.bytes(min(apdu.le, MAX_CHALLENGE))
    card.security.challenge = challenge
    return ok(challenge)


def get_response(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """GET RESPONSE (C0): the rest of the previous response (announced with 61xx)."""
    if apdu.p1 or apdu.p2:
        refuse(SW.INCORRECT_P1P2)
    if apdu.data or apdu.le is None:
        refuse(SW.WRONG_LENGTH)
    waiting = card.session.offered
    if not waiting:
        refuse(SW.CONDITIONS_NOT_SATISFIED)
    return ResponseApdu(waiting, card.session.offered_sw)


#: The interindustry command set of the base card OS, keyed by INS.
INTERINDUSTRY: Mapping[int, Command] = MappingProxyType(
    {
        0xA4: Command("SELECT", select),
        0xB0: Command("READ BINARY", read_binary),
        0xB1: Command("READ BINARY", read_binary_odd),
        0xD6: Command("UPDATE BINARY", update_binary, Chaining.BUFFER),
        0xD7: Command("UPDATE BINARY", update_binary_odd, Chaining.BUFFER),
        0xE0: Command("CREATE FILE", create_file, Chaining.BUFFER),
        0x44: Command("ACTIVATE FILE", activate_file),
        0x04: Command("DEACTIVATE FILE", deactivate_file),
        0xE6: Command("TERMINATE DF", terminate_df),
        0xE8: Command("TERMINATE EF", terminate_ef),
        0xFE: Command("TERMINATE CARD USAGE", terminate_card_usage),
        0x84: Command("GET CHALLENGE", get_challenge),
        0xC0: Command("GET RESPONSE", get_response),
    }
)
