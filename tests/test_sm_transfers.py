"""Whole files over PACE secure messaging: short APDUs with 61xx continuations, and extended length."""

from __future__ import annotations

import pytest

from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.iso7816 import Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.crypto.pace import Password, perform_pace
from ektp_card.lds.conditions import AccessCondition, SecurityAttributes
from ektp_card.session.card import read_card_access
from ektp_card.virtual import DEMO_AID, VirtualCard, demo_card
from ektp_card.virtual.pace import install_pace

CAN = "271828"
CONTENT = bytes((i * 13 + 5) % 256 for i in range(20000))


class Wire:
    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        self.ins: list[int] = []

    def transceive(self, command: bytes) -> bytes:
        self.ins.append(command[1])
        return self.card.transceive(command)


def card_with_protected_file(extended: bool) -> VirtualCard:
    card = demo_card(extended_length=extended)
    install_pace(card, can=CAN)
    app = card.fs.application(DEMO_AID)
    pace = AccessCondition.require("PACE")
    card.fs.create_ef(app, 0x0120, data=CONTENT, sfi=0x12,
                      access=SecurityAttributes(pace, AccessCondition.NEVER))
    card.power_on()
    return card


@pytest.mark.parametrize("extended", [False, True])
def test_read_20k_over_pace(extended: bool) -> None:
    wire = Wire(card_with_protected_file(extended))
    protocol = ApduProtocol(wire)
    session = Iso7816Session(protocol)
    session.select_mf()
    session.read_card_info()
    parameters, explicit = read_card_access(session).choose_pace()
    perform_pace(protocol, Password.can(CAN), parameters, send_parameter_id=explicit)
    session.select_aid(DEMO_AID)
    before = len(wire.ins)
    assert session.read_file(fid=0x0120) == CONTENT
    assert session.read_file(sfi=0x12) == CONTENT
    reads = [ins for ins in wire.ins[before:] if ins in (0xB0, 0xB1)]
    if extended:
        assert len(reads) == 2  # one extended READ BINARY per file
    else:
        # 223-byte reads (AES SM in short form): each protected answer fits one response.
        assert len(reads) == 2 * -(-len(CONTENT) // 223)
    assert 0xC0 not in wire.ins[before:]


def test_protected_answer_longer_than_a_short_response() -> None:
    wire = Wire(card_with_protected_file(False))
    protocol = ApduProtocol(wire)
    session = Iso7816Session(protocol)
    parameters, explicit = read_card_access(session).choose_pace()
    perform_pace(protocol, Password.can(CAN), parameters, send_parameter_id=explicit)
    session.select_aid(DEMO_AID)
    session.select_ef(0x0120)
    before = len(wire.ins)
    # Ne 256 protected outgrows 256 bytes: the card hands out the rest behind 61xx, collected
    # with a plain GET RESPONSE that neither breaks the channel nor the MAC check.
    assert protocol.send(CommandApdu(0, 0xB0, 0, 0, le=256)).data == CONTENT[:256]
    assert wire.ins[before:] == [0xB0, 0xC0]
    assert session.read_binary(256, 10) == CONTENT[256:266]
