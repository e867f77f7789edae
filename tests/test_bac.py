"""Basic Access Control: ICAO Doc 9303-11 Appendix D byte for byte, and against the virtual card."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW
from ektp_card.crypto.bac import (
    bac,
    basic_access_keys,
    chip_authenticate,
    derive_session,
    key_seed,
    seal,
)
from ektp_card.crypto.kdf import Cipher
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.crypto.sm import CardSecureMessaging, SecureMessagingSession
from ektp_card.errors import (
    InsNotSupportedError,
    SecureMessagingError,
    SecurityStatusNotSatisfiedError,
    VerificationFailedError,
)
from ektp_card.virtual import AccessCondition, SecurityAttributes, VirtualCard, demo_card
from ektp_card.virtual.bac import KSEED_KEY, enable_bac
from ektp_card.virtual.demo import DEMO_AID, LARGE_CONTENT, PUBLIC_CONTENT

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "icao9303-part11.json").read_text())
BAC = VECTORS["bac"]
SM = VECTORS["secure_messaging_3des"]
MRZ = MrzInfo("L898902C", "690806", "940623")
OTHER_MRZ = MrzInfo("L898902C", "690806", "940624")


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def feed(*chunks: bytes) -> Callable[[int], bytes]:
    """A random source that hands out ``chunks`` in order."""
    queue: Iterator[bytes] = iter(chunks)
    return lambda n: next(queue)


APPENDIX_D_RANDOM = (h(BAC["rnd_ifd"]), h(BAC["k_ifd"]))


class Script:
    """A transport that checks each command against the expected bytes and plays back the answer."""

    def __init__(self, exchanges: list[tuple[str, str]]) -> None:
        self.exchanges = list(exchanges)

    def transceive(self, command: bytes) -> bytes:
        expected, answer = self.exchanges.pop(0)
        assert command.hex().upper() == expected
        return h(answer)


# --- Appendix D -------------------------------------------------------------------------------


def test_appendix_d_keys() -> None:
    assert MRZ.mrz_information == BAC["mrz_information"]
    assert key_seed(MRZ) == h(BAC["kseed"])
    assert basic_access_keys(h(BAC["kseed"])) == (h(BAC["k_enc"]), h(BAC["k_mac"]))


def test_appendix_d_terminal_cryptogram() -> None:
    request = seal(h(BAC["k_enc"]), h(BAC["k_mac"]), h(BAC["rnd_ifd"] + BAC["rnd_ic"] + BAC["k_ifd"]))
    assert request == h(BAC["e_ifd"] + BAC["m_ifd"])


def test_appendix_d_session() -> None:
    ks_enc, ks_mac, ssc = derive_session(h(BAC["k_ifd"]), h(BAC["k_ic"]), h(BAC["rnd_ic"]), h(BAC["rnd_ifd"]))
    assert (ks_enc, ks_mac, ssc.to_bytes(8, "big")) == (h(BAC["ks_enc"]), h(BAC["ks_mac"]), h(BAC["ssc"]))


def test_appendix_d_chip_side() -> None:
    request = h(BAC["e_ifd"] + BAC["m_ifd"])
    result = chip_authenticate(h(BAC["kseed"]), h(BAC["rnd_ic"]), request, h(BAC["k_ic"]))
    assert result is not None
    answer, channel = result
    assert answer == h(BAC["e_ic"] + BAC["m_ic"])
    assert isinstance(channel, CardSecureMessaging) and channel.ssc == int(BAC["ssc"], 16)
    # The card's session answers Appendix D's SELECT EF.COM exactly.
    channel.unwrap(CommandApdu.decode(h(SM["select_ef_com_protected"])))
    assert channel.wrap(ResponseApdu(b"", SW.OK)).encode() == h(SM["select_ef_com_response"])


def test_chip_side_rejects() -> None:
    kseed, rnd_ic, request = h(BAC["kseed"]), h(BAC["rnd_ic"]), h(BAC["e_ifd"] + BAC["m_ifd"])
    k_ic = h(BAC["k_ic"])
    assert chip_authenticate(kseed, bytes(8), request, k_ic) is None  # another challenge
    assert chip_authenticate(key_seed(OTHER_MRZ), rnd_ic, request, k_ic) is None  # another MRZ
    assert chip_authenticate(kseed, rnd_ic, request[:-1], k_ic) is None
    assert chip_authenticate(kseed, rnd_ic, request[:-1] + b"\x00", k_ic) is None


def challenge_then(answer: str) -> list[tuple[str, str]]:
    """GET CHALLENGE answered with Appendix D's RND.IC, then ``answer`` to its MUTUAL AUTHENTICATE."""
    return [("0084000008", BAC["rnd_ic"] + "9000"), (BAC["mutual_authenticate_apdu"], answer)]


def appendix_d_script() -> list[tuple[str, str]]:
    return challenge_then(BAC["e_ic"] + BAC["m_ic"] + "9000")


def test_appendix_d_over_the_protocol() -> None:
    """Every APDU of Appendix D, from GET CHALLENGE to the last READ BINARY, through ApduProtocol."""
    script = Script(
        appendix_d_script()
        + [
            (SM["select_ef_com_protected"], SM["select_ef_com_response"]),
            (SM["read_binary_4_protected"], SM["read_binary_4_response"] + SM["read_binary_4_response_mac"]),
            (SM["read_binary_18_at_4_protected"], SM["read_binary_18_at_4_response"]),
        ]
    )
    protocol = ApduProtocol(script)
    session = bac(protocol, MRZ, random=feed(*APPENDIX_D_RANDOM))
    assert protocol.secure_messaging is session and session.ssc == int(BAC["ssc"], 16)
    assert protocol.send(CommandApdu(0x00, 0xA4, 0x02, 0x0C, h("011E"))) == ResponseApdu(b"", SW.OK)
    head = protocol.send(CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4)).data
    assert head == h(SM["read_binary_4_plain_data"])
    rest = protocol.send(CommandApdu(0x00, 0xB0, 0x00, 0x04, le=head[1] + 2 - 4)).data
    assert head + rest == h(SM["ef_com"])
    assert session.ssc.to_bytes(8, "big") == h(SM["final_ssc"])
    assert not script.exchanges


def test_bac_accepts_a_whole_mrz() -> None:
    mrz = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C<3UTO6908061F9406236ZE184226B<<<<<14"
    session = bac(ApduProtocol(Script(appendix_d_script())), mrz, random=feed(*APPENDIX_D_RANDOM))
    assert session.ssc == int(BAC["ssc"], 16)


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (BAC["e_ic"] + BAC["m_ic"][:-2] + "00", "does not verify"),
        (BAC["e_ic"] + BAC["m_ic"][:-2], "does not verify"),
        ("", "does not verify"),
    ],
)
def test_terminal_rejects_bad_chip_answers(answer: str, words: str) -> None:
    script = Script(challenge_then(answer + "9000"))
    protocol = ApduProtocol(script)
    with pytest.raises(SecureMessagingError, match=words):
        bac(protocol, MRZ, random=feed(*APPENDIX_D_RANDOM))
    assert protocol.secure_messaging is None


def test_terminal_rejects_an_answer_to_another_exchange() -> None:
    # Well sealed with the right keys, but echoing another terminal nonce.
    k_enc, k_mac = h(BAC["k_enc"]), h(BAC["k_mac"])
    answer = seal(k_enc, k_mac, h(BAC["rnd_ic"]) + bytes(8) + h(BAC["k_ic"]))
    script = Script(challenge_then(answer.hex() + "9000"))
    protocol = ApduProtocol(script)
    with pytest.raises(SecureMessagingError, match="does not belong to this exchange"):
        bac(protocol, MRZ, random=feed(*APPENDIX_D_RANDOM))
    assert protocol.secure_messaging is None


def test_terminal_refused_by_the_card() -> None:
    script = Script(challenge_then("6300"))
    with pytest.raises(VerificationFailedError, match="check the document number") as info:
        bac(ApduProtocol(script), MRZ, random=feed(*APPENDIX_D_RANDOM))
    assert info.value.sw == 0x6300 and "L898902C" not in str(info.value)


def test_terminal_checks_challenge_and_random_source() -> None:
    with pytest.raises(SecureMessagingError, match="challenge has 4 bytes"):
        bac(ApduProtocol(Script([("0084000008", "01020304" + "9000")])), MRZ)
    script = Script([("0084000008", BAC["rnd_ic"] + "9000")])
    with pytest.raises(ValueError, match="random source returned 7 bytes"):
        bac(ApduProtocol(script), MRZ, random=lambda n: bytes(n - 1))


# --- against the virtual card -----------------------------------------------------------------

EF_BAC_FID, EF_BAC_SFI = 0x0105, 5
BAC_CONTENT = bytes(range(256)) * 2


@pytest.fixture
def passport() -> VirtualCard:
    """The demo card with BAC keyed to the Appendix D MRZ and a 512-byte EF only BAC opens."""
    card = demo_card()
    app = card.fs.applications(DEMO_AID)[0]
    never = AccessCondition.NEVER
    card.fs.create_ef(
        app, EF_BAC_FID, data=BAC_CONTENT, sfi=EF_BAC_SFI,
        access=SecurityAttributes(AccessCondition.require("BAC"), never, never),
    )
    enable_bac(card, MRZ)
    return card


class Wire:
    """A transport in front of the card that records the bytes and can tamper with them."""

    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        self.sent: list[bytes] = []
        self.tamper_command: Callable[[bytes], bytes] | None = None
        self.tamper_response: Callable[[bytes], bytes] | None = None

    def transceive(self, command: bytes) -> bytes:
        if self.tamper_command is not None:
            command, self.tamper_command = self.tamper_command(command), None
        self.sent.append(command)
        response = self.card.transceive(command)
        if self.tamper_response is not None:
            response, self.tamper_response = self.tamper_response(response), None
        return response


def raw(card: VirtualCard, apdu: bytes) -> tuple[bytes, int]:
    out = card.transceive(apdu)
    return out[:-2], int.from_bytes(out[-2:], "big")


def flip_mac(apdu: bytes) -> bytes:
    # The MAC is the last 8 bytes before Le (00) of a short protected command.
    return apdu[:-2] + bytes([apdu[-2] ^ 0x01]) + apdu[-1:]


Opened = tuple[ApduProtocol, Wire, SecureMessagingSession]


def opened_on(wire: Wire, *, extended: bool = False) -> Opened:
    """BAC through ``wire``, then the demo application selected under secure messaging."""
    protocol = ApduProtocol(wire, extended=extended)
    session = bac(protocol, MRZ)
    protocol.send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, DEMO_AID))
    return protocol, wire, session


def opened(passport: VirtualCard, *, extended: bool = False) -> Opened:
    return opened_on(Wire(passport), extended=extended)


def read(protocol: ApduProtocol, sfi: int, le: int) -> bytes:
    return protocol.send(CommandApdu(0x00, 0xB0, 0x80 | sfi, 0x00, le=le)).data


SELECT_APP = CommandApdu(0x00, 0xA4, 0x04, 0x0C, DEMO_AID).encode()
READ_BAC_FILE = CommandApdu(0x00, 0xB0, 0x80 | EF_BAC_SFI, 0x00, le=16).encode()


def test_bac_opens_the_file(passport: VirtualCard) -> None:
    assert raw(passport, SELECT_APP)[1] == SW.OK
    assert raw(passport, READ_BAC_FILE) == (b"", SW.SECURITY_STATUS_NOT_SATISFIED)
    protocol, wire, session = opened(passport)
    assert passport.security.granted == {"BAC"} and passport.security.channel is not None
    assert read(protocol, EF_BAC_SFI, 200) == BAC_CONTENT[:200]
    offset, out = 0, b""
    while offset < len(BAC_CONTENT):  # short APDUs: at most 231 plain bytes per 3DES response
        le = min(session.max_short_data, len(BAC_CONTENT) - offset)
        chunk = protocol.send(CommandApdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=le))
        out += chunk.data
        offset += len(chunk.data)
    assert out == BAC_CONTENT
    # Everything after BAC went over the wire protected, nothing in the clear.
    assert all(apdu[0] == 0x0C for apdu in wire.sent[2:])
    assert BAC_CONTENT[:32] not in b"".join(wire.sent)


def test_extended_length_under_bac(passport: VirtualCard) -> None:
    protocol, wire, _ = opened(passport, extended=True)
    assert read(protocol, 3, 1500) == LARGE_CONTENT
    assert wire.sent[-1][4:7] == b"\x00\x00\x0E"  # extended Lc: DO97 (970205DC) and DO8E
    scratch = bytes(range(64))
    protocol.send(CommandApdu(0x00, 0xD6, 0x84, 0x00, scratch))
    assert read(protocol, 4, 64) == scratch


def test_chained_write_under_bac() -> None:
    """Short APDUs only: a long UPDATE BINARY is chained in parts whose protected form fits."""
    card = demo_card(extended_length=False)
    app = card.fs.applications(DEMO_AID)[0]
    bac_only = AccessCondition.require("BAC")
    card.fs.create_ef(app, 0x0106, size=600, sfi=6, access=SecurityAttributes(bac_only, bac_only))
    enable_bac(card, MRZ)
    wire = Wire(card)
    protocol, _, session = opened_on(wire)
    payload = bytes(i % 253 for i in range(600))
    protocol.send(CommandApdu(0x00, 0xD6, 0x86, 0x00, payload))
    parts = [apdu for apdu in wire.sent if apdu[1] == 0xD6]
    assert [apdu[0] for apdu in parts] == [0x1C, 0x1C, 0x0C]
    assert all(len(apdu) <= 5 + 255 + 1 for apdu in parts)
    out = b""
    while len(out) < len(payload):
        le = min(session.max_short_data, len(payload) - len(out))
        out += protocol.send(CommandApdu(0x00, 0xB0, len(out) >> 8, len(out) & 0xFF, le=le)).data
    assert out == payload


def test_wrong_mrz(passport: VirtualCard) -> None:
    protocol = ApduProtocol(passport)
    with pytest.raises(VerificationFailedError) as info:
        bac(protocol, OTHER_MRZ)
    assert info.value.sw == 0x6300
    assert passport.security.granted == set() and passport.security.channel is None
    assert protocol.secure_messaging is None
    # The challenge was used up: answering it again needs a new GET CHALLENGE.
    request = seal(*basic_access_keys(key_seed(MRZ)), bytes(32))
    assert raw(passport, b"\x00\x82\x00\x00\x28" + request + b"\x28")[1] == SW.CONDITIONS_NOT_SATISFIED
    bac(protocol, MRZ)
    assert passport.security.granted == {"BAC"}


def test_mutual_authenticate_checks(passport: VirtualCard) -> None:
    request = bytes(40)
    assert raw(passport, b"\x00\x82\x00\x00\x28" + request + b"\x28")[1] == SW.CONDITIONS_NOT_SATISFIED
    raw(passport, h("0084000008"))
    assert raw(passport, b"\x00\x82\x01\x00\x28" + request + b"\x28")[1] == SW.INCORRECT_P1P2
    raw(passport, h("0084000008"))
    assert raw(passport, b"\x00\x82\x00\x00\x27" + request[:-1] + b"\x28")[1] == SW.WRONG_LENGTH
    raw(passport, h("0084000010"))  # a 16-byte challenge is no BAC challenge
    assert raw(passport, b"\x00\x82\x00\x00\x28" + request + b"\x28")[1] == SW.CONDITIONS_NOT_SATISFIED
    raw(passport, h("0084000008"))
    assert raw(passport, b"\x00\x82\x00\x00\x28" + request + b"\x28")[1] == SW.VERIFICATION_FAILED
    assert passport.security.granted == set() and passport.security.channel is None


def test_card_without_bac() -> None:
    card = demo_card()
    assert KSEED_KEY not in card.keys
    with pytest.raises(InsNotSupportedError):
        bac(ApduProtocol(card), MRZ)


def test_tampered_command_mac(passport: VirtualCard) -> None:
    protocol, wire, session = opened(passport)
    old = wire.sent[-1]
    wire.tamper_command = flip_mac
    with pytest.raises(SecureMessagingError, match="card rejected the secure messaging \\(6988\\)"):
        read(protocol, EF_BAC_SFI, 16)
    assert session.closed
    # The card closed its side: no channel, no access rights; protected commands find no session.
    assert passport.security.channel is None and passport.security.granted == set()
    assert raw(passport, old) == (b"", SW.SM_NOT_SUPPORTED)
    with pytest.raises(SecureMessagingError, match="closed"):
        read(protocol, EF_BAC_SFI, 16)
    protocol.secure_messaging = None
    with pytest.raises(SecurityStatusNotSatisfiedError):
        read(protocol, EF_BAC_SFI, 16)


def test_tampered_response_mac(passport: VirtualCard) -> None:
    protocol, wire, session = opened(passport)
    wire.tamper_response = lambda r: r[:-3] + bytes([r[-3] ^ 0x80]) + r[-2:]
    with pytest.raises(SecureMessagingError, match="MAC does not verify"):
        read(protocol, EF_BAC_SFI, 16)
    assert session.closed
    # The card cannot tell; the terminal's next plain command ends its side, unprotected 6988.
    assert passport.security.channel is not None
    assert raw(passport, READ_BAC_FILE) == (b"", SW.SM_DATA_OBJECTS_INCORRECT)
    assert passport.security.channel is None and passport.security.granted == set()
    assert raw(passport, READ_BAC_FILE) == (b"", SW.SECURITY_STATUS_NOT_SATISFIED)


def test_replayed_command(passport: VirtualCard) -> None:
    protocol, wire, _ = opened(passport)
    assert read(protocol, EF_BAC_SFI, 16) == BAC_CONTENT[:16]
    recorded = wire.sent[-1]
    assert read(protocol, EF_BAC_SFI, 16) == BAC_CONTENT[:16]
    assert raw(passport, recorded) == (b"", SW.SM_DATA_OBJECTS_INCORRECT)
    assert passport.security.channel is None and passport.security.granted == set()
    # The terminal finds out with its next command: the card no longer speaks secure messaging.
    with pytest.raises(SecureMessagingError, match="6882 without secure messaging"):
        read(protocol, EF_BAC_SFI, 16)


def test_plain_command_after_bac(passport: VirtualCard) -> None:
    opened(passport)
    assert raw(passport, SELECT_APP) == (b"", SW.SM_DATA_OBJECTS_INCORRECT)
    assert passport.security.channel is None and passport.security.granted == set()
    # With secure messaging gone, plain commands run again, with no access rights.
    assert raw(passport, SELECT_APP) == (b"", SW.OK)
    assert raw(passport, READ_BAC_FILE)[1] == SW.SECURITY_STATUS_NOT_SATISFIED


def test_power_cycle_ends_the_session(passport: VirtualCard) -> None:
    protocol, _, session = opened(passport)
    passport.power_off()
    passport.power_on()
    assert passport.security.channel is None and passport.security.granted == set()
    with pytest.raises(SecureMessagingError, match="6882 without secure messaging"):
        read(protocol, EF_BAC_SFI, 16)
    assert session.closed
    bac(protocol, MRZ)
    protocol.send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, DEMO_AID))
    assert read(protocol, 1, 256) == PUBLIC_CONTENT


def test_bac_survives_the_card_image(passport: VirtualCard, tmp_path: Path) -> None:
    passport.save(tmp_path / "passport.card")
    loaded = VirtualCard.load(tmp_path / "passport.card")
    protocol = ApduProtocol(loaded)
    bac(protocol, MRZ)
    protocol.send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, DEMO_AID))
    assert read(protocol, EF_BAC_SFI, 8) == BAC_CONTENT[:8]


@pytest.mark.parametrize("cipher", [Cipher.AES128, Cipher.AES192, Cipher.AES256, Cipher.TDES])
def test_card_channel_serves_every_cipher(cipher: Cipher) -> None:
    """The card's hook runs any cipher suite: a channel opened as PACE would, with SSC 0."""
    card = demo_card()
    k_enc, k_mac = bytes(range(cipher.key_length)), bytes(range(1, cipher.key_length + 1))
    card.security.open_channel(CardSecureMessaging(cipher, k_enc, k_mac, 0))
    protocol = ApduProtocol(card, extended=True)
    protocol.secure_messaging = SecureMessagingSession(cipher, k_enc, k_mac, 0)
    protocol.send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, DEMO_AID))
    assert read(protocol, 3, 1500) == LARGE_CONTENT
    assert read(protocol, 1, 256) == PUBLIC_CONTENT
    odd = protocol.send(CommandApdu(0x00, 0xB1, 0x00, 0x03, h("540100"), le=300)).data
    assert odd[:4] == h("53820128") and odd[4:] == LARGE_CONTENT[:296]
