"""The processor stack against a scripted transport: exact bytes sent, exact responses returned."""

from __future__ import annotations

import logging

import pytest

from ektp_card import errors
from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.log import TRAFFIC


class Script:
    """A transport that expects exact commands and plays back responses."""

    def __init__(self, *exchanges: tuple[str, str]) -> None:
        self.exchanges = [(bytes.fromhex(c), bytes.fromhex(r)) for c, r in exchanges]
        self.sent: list[bytes] = []

    def transceive(self, command: bytes) -> bytes:
        self.sent.append(command)
        expected, response = self.exchanges[len(self.sent) - 1]
        assert command.hex().upper() == expected.hex().upper()
        return response

    def done(self) -> bool:
        return len(self.sent) == len(self.exchanges)


def test_plain_exchange() -> None:
    t = Script(("00A4020C02011E", "9000"))
    ApduProtocol(t).send(CommandApdu(0, 0xA4, 2, 0x0C, bytes.fromhex("011E")))
    assert t.done()


def test_response_chaining_61xx() -> None:
    t = Script(("00B0000000", "AABB6103"), ("00C0000003", "CCDDEE6100"), ("00C0000000", "FF9000"))
    r = ApduProtocol(t).send(CommandApdu(0, 0xB0, le=256))
    assert r.data == bytes.fromhex("AABBCCDDEEFF") and r.sw == 0x9000
    assert t.done()


def test_le_correction_6cxx() -> None:
    t = Script(("00B0000000", "6C05"), ("00B0000005", "01020304059000"))
    assert ApduProtocol(t).send(CommandApdu(0, 0xB0, le=256)).data == bytes.fromhex("0102030405")
    assert t.done()


def test_command_chaining_short() -> None:
    data = bytes(range(256)) + bytes(range(44))
    t = Script(
        ("10D60000FF" + data[:255].hex(), "9000"),
        ("00D600002D" + data[255:].hex(), "9000"),
    )
    ApduProtocol(t).send(CommandApdu(0, 0xD6, data=data))
    assert t.done()


def test_command_chaining_stops_on_error() -> None:
    t = Script(("10D60000FF" + "00" * 255, "6A84"))
    with pytest.raises(errors.NotEnoughMemoryError):
        ApduProtocol(t).send(CommandApdu(0, 0xD6, data=bytes(300)))
    assert t.done()


def test_extended_sends_one_apdu() -> None:
    data = bytes(300)
    t = Script(("00D6000000012C" + data.hex(), "9000"), ("00B00000000000", "AA" * 3 + "9000"))
    p = ApduProtocol(t, extended=True)
    p.send(CommandApdu(0, 0xD6, data=data))
    assert p.send(CommandApdu(0, 0xB0, le=65536)).data == b"\xAA" * 3
    assert t.done()


def test_large_le_without_extended_is_capped() -> None:
    t = Script(("00B0000000", "9000"))
    ApduProtocol(t).send(CommandApdu(0, 0xB0, le=1000))
    assert t.done()


def test_error_raised_once_with_data() -> None:
    t = Script(("0020008106313233343536", "63C1"))
    with pytest.raises(errors.VerificationFailedError) as info:
        ApduProtocol(t).send(CommandApdu(0, 0x20, 0, 0x81, b"123456", sensitive=True))
    assert info.value.retries == 1
    assert "123456" not in str(info.value)


def test_allow_and_transmit() -> None:
    t = Script(("00B0000010", "AA6282"), ("00B0000010", "6B00"))
    p = ApduProtocol(t)
    assert p.send(CommandApdu(0, 0xB0, le=16), allow=frozenset({0x9000, 0x6282})).data == b"\xAA"
    assert p.transmit(CommandApdu(0, 0xB0, le=16)).sw == 0x6B00


class XorSm:
    """A toy wrapper: proves the slot sits between chaining and the wire."""

    max_short_data = 255

    def wrap(self, apdu: CommandApdu) -> CommandApdu:
        return apdu.with_(cla=apdu.cla | 0x0C, data=bytes(b ^ 0xFF for b in apdu.data))

    def unwrap(self, response: ResponseApdu) -> ResponseApdu:
        return ResponseApdu(bytes(b ^ 0xFF for b in response.data), response.sw)


def test_secure_messaging_slot() -> None:
    t = Script(("0CA4020C02FEE1", "FF009000"))
    p = ApduProtocol(t)
    p.secure_messaging = XorSm()
    assert p.send(CommandApdu(0, 0xA4, 2, 0x0C, bytes.fromhex("011E"))).data == b"\x00\xFF"
    p.secure_messaging = None
    assert p.secure_messaging is None


def test_traffic_log_redacts_secrets(caplog: pytest.LogCaptureFixture) -> None:
    t = Script(("0020008106313233343536", "9000"), ("00A4020C02011E", "9000"))
    p = ApduProtocol(t)
    with caplog.at_level(TRAFFIC, logger="ektp_card.apdu"):
        p.send(CommandApdu(0, 0x20, 0, 0x81, b"123456"))
        p.send(CommandApdu(0, 0xA4, 2, 0x0C, bytes.fromhex("011E")))
    text = caplog.text
    assert "313233343536" not in text and "redacted" in text
    assert ">> 00A4020C02011E" in text
    assert all(r.levelno == TRAFFIC for r in caplog.records)
    assert logging.getLevelName(TRAFFIC) == "TRAFFIC"


def test_endless_61xx_is_bounded() -> None:
    class Endless:
        def transceive(self, command: bytes) -> bytes:
            return b"\x00" * 256 + b"\x61\x00"

    with pytest.raises(errors.ApduFormatError, match="61xx"):
        ApduProtocol(Endless()).send(CommandApdu(0, 0xB0, le=256))
