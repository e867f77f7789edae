"""Iso7816Session against the virtual card: EF.ATR/INFO, whole-file reads across the B0/B1 boundary."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ektp_card.apdu.iso7816 import CardInfo, Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.tlv import Tlv
from ektp_card.errors import TlvError
from ektp_card.virtual import DEMO_AID, VirtualCard, demo_card

BIG = bytes((i * 7 + i // 251) % 256 for i in range(40000))


class Counting:
    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        self.commands: list[bytes] = []

    def transceive(self, command: bytes) -> bytes:
        self.commands.append(command)
        return self.card.transceive(command)


def big_card(extended: bool) -> VirtualCard:
    card = demo_card(extended_length=extended)
    app = card.fs.application(DEMO_AID)
    card.fs.create_ef(app, 0x0110, data=BIG, sfi=0x10)
    card.power_on()
    return card


@pytest.mark.parametrize("extended", [True, False])
def test_read_big_file_by_fid_and_sfi(extended: bool) -> None:
    t = Counting(big_card(extended))
    s = Iso7816Session(ApduProtocol(t))
    s.select_mf()
    info = s.read_card_info()
    assert info.extended_length is extended
    s.select_aid(DEMO_AID)
    before = len(t.commands)
    assert s.read_file(fid=0x0110) == BIG
    reads = [c for c in t.commands[before:] if c[1] in (0xB0, 0xB1)]
    if extended:
        assert len(reads) == 1  # one extended READ BINARY from offset 0 takes the whole file
    else:
        # 128 short reads reach offset 32768; past 32767 only the odd INS B1 can address the file
        # (ISO/IEC 7816-4 section 11.2.3), and each of its answers spends 4 bytes on DO 53's header.
        b0 = [c for c in reads if c[1] == 0xB0]
        b1 = [c for c in reads if c[1] == 0xB1]
        assert len(b0) == 128
        assert len(b1) == -(-(len(BIG) - 32768) // 252)
    assert s.read_file(sfi=0x10) == BIG


def test_card_info_parse() -> None:
    caps = Tlv(0x47, bytes((0xF4, 0x21, 0xE0)))
    ext = Tlv.of(0x7F66, Tlv(0x02, (65544).to_bytes(3, "big")), Tlv(0x02, (65538).to_bytes(3, "big")))
    info = CardInfo.parse(caps.encode() + ext.encode())
    assert info == CardInfo(command_chaining=True, extended_length=True, max_command_apdu=65544,
                            max_response_apdu=65538)
    assert info.max_read == 65536
    short = CardInfo.parse(Tlv(0x47, bytes((0xF4, 0x21, 0x80))).encode())
    assert (short.extended_length, short.max_read) == (False, 256)
    with pytest.raises(TlvError):
        CardInfo.parse(Tlv.of(0x7F66, Tlv(0x02, b"\x01")).encode())


@given(st.integers(0, 40000), st.integers(1, 3000))
def test_read_binary_any_offset(offset: int, length: int) -> None:
    card = big_card(True)
    s = Iso7816Session(ApduProtocol(card, extended=True))
    s.select_aid(DEMO_AID)
    s.select_ef(0x0110)
    assert s.read_binary(offset, length) == BIG[offset : offset + length]


class RefusesLongReads:
    """A card (or a reader in between) that answers 6700 to any READ BINARY asking for more than 256
    bytes, though EF.ATR/INFO advertises extended length."""

    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        self.refused = 0

    def transceive(self, command: bytes) -> bytes:
        extended_le = len(command) >= 7 and command[4] == 0
        if command[1] in (0xB0, 0xB1) and extended_le:
            self.refused += 1
            return b"\x67\x00"
        return self.card.transceive(command)


@pytest.mark.parametrize("by", ["fid", "sfi"])
def test_falls_back_to_short_reads_on_6700(by: str) -> None:
    wire = RefusesLongReads(big_card(True))
    protocol = ApduProtocol(wire)
    s = Iso7816Session(protocol)
    s.select_mf()
    assert s.read_card_info().extended_length and protocol.extended
    s.select_aid(DEMO_AID)
    data = s.read_file(fid=0x0110) if by == "fid" else s.read_file(sfi=0x10)
    assert data == BIG
    assert wire.refused == 1 and not protocol.extended and s.read_size == 256
