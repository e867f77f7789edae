"""Secure messaging: ICAO Doc 9303-11 Appendix D byte for byte, and both ends against each other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher as BlockCipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import Tlv, parse_list
from ektp_card.crypto.kdf import Cipher
from ektp_card.crypto.sm import (
    CardSecureMessaging,
    SecureMessagingSession,
    SmCrypto,
    max_short_data,
    pad,
    retail_mac,
    unpad,
)
from ektp_card.errors import ApduError, SecureMessagingError

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "icao9303-part11.json").read_text())
BAC = VECTORS["bac"]
SM = VECTORS["secure_messaging_3des"]


def h(s: str) -> bytes:
    return bytes.fromhex(s)


KS_ENC, KS_MAC, SSC = h(BAC["ks_enc"]), h(BAC["ks_mac"]), int(BAC["ssc"], 16)
# Appendix D: SELECT EF.COM, READ BINARY of 4 bytes, READ BINARY of 18 bytes at offset 4.
APPENDIX_D = [
    (h(SM["select_ef_com_plain"]), h(SM["select_ef_com_protected"]), h(SM["select_ef_com_response"]), b""),
    (
        h("00B0000004"),
        h(SM["read_binary_4_protected"]),
        h(SM["read_binary_4_response"] + SM["read_binary_4_response_mac"]),
        h(SM["read_binary_4_plain_data"]),
    ),
    (
        h("00B0000412"),
        h(SM["read_binary_18_at_4_protected"]),
        h(SM["read_binary_18_at_4_response"]),
        h(SM["ef_com"])[4:],
    ),
]

ALL_CIPHERS = [Cipher.TDES, Cipher.AES128, Cipher.AES192, Cipher.AES256]


def keys(cipher: Cipher) -> tuple[bytes, bytes]:
    return bytes(range(1, 1 + cipher.key_length)), bytes(range(0x80, 0x80 + cipher.key_length))


def pair(cipher: Cipher, ssc: int = 0) -> tuple[SecureMessagingSession, CardSecureMessaging]:
    k_enc, k_mac = keys(cipher)
    return SecureMessagingSession(cipher, k_enc, k_mac, ssc), CardSecureMessaging(cipher, k_enc, k_mac, ssc)


# --- Appendix D -------------------------------------------------------------------------------


def test_appendix_d_terminal_side() -> None:
    session = SecureMessagingSession(Cipher.TDES, KS_ENC, KS_MAC, SSC)
    for plain, protected, response, data in APPENDIX_D:
        assert session.wrap(CommandApdu.decode(plain)).encode() == protected
        assert session.unwrap(ResponseApdu.decode(response)) == ResponseApdu(data, SW.OK)
    assert session.ssc.to_bytes(8, "big") == h(SM["final_ssc"])
    assert not session.closed


def test_appendix_d_card_side() -> None:
    channel = CardSecureMessaging(Cipher.TDES, KS_ENC, KS_MAC, SSC)
    for plain, protected, response, data in APPENDIX_D:
        inner = channel.unwrap(CommandApdu.decode(protected))
        expected = CommandApdu.decode(plain)
        assert (inner.cla, inner.ins, inner.p1, inner.p2, inner.data, inner.le) == (
            expected.cla, expected.ins, expected.p1, expected.p2, expected.data, expected.le,
        )
        assert channel.wrap(ResponseApdu(data, SW.OK)).encode() == response
    assert channel.ssc.to_bytes(8, "big") == h(SM["final_ssc"])


def test_retail_mac_of_appendix_d_bac() -> None:
    e_ifd = h(BAC["e_ifd"])
    assert retail_mac(h(BAC["k_mac"]), pad(e_ifd, 8)) == h(BAC["m_ifd"])
    assert retail_mac(h(BAC["k_mac"]), pad(h(BAC["e_ic"]), 8)) == h(BAC["m_ic"])


# --- building blocks --------------------------------------------------------------------------


def test_padding_method_2() -> None:
    assert pad(b"", 8) == h("8000000000000000")
    assert pad(h("01020304050607"), 8) == h("0102030405060780")
    assert pad(bytes(8), 8) == bytes(8) + h("8000000000000000")
    assert len(pad(bytes(15), 16)) == 16 and len(pad(bytes(16), 16)) == 32
    assert unpad(h("0102030405060780"), 8) == h("01020304050607")
    assert unpad(h("8000000000000000"), 8) == b""
    for bad in ("0102030405060708", "0000000000000000", "0180000000000001", "0180" + "00" * 14):
        assert unpad(h(bad), 8) is None


def test_max_short_data_is_tight() -> None:
    assert max_short_data(Cipher.TDES) == 231
    assert max_short_data(Cipher.AES128) == max_short_data(Cipher.AES256) == 223
    for cipher in ALL_CIPHERS:
        n = max_short_data(cipher)
        terminal, card = pair(cipher)
        fits = terminal.wrap(CommandApdu(0x00, 0xD6, 0, 0, bytes(n), le=n))
        assert not fits.extended and len(fits.data) <= 255
        assert len(card.unwrap(fits).data) == n
        reply = card.wrap(ResponseApdu(bytes(n), SW.OK))
        assert len(reply.data) <= 256
        terminal.unwrap(reply)
        too_long = terminal.wrap(CommandApdu(0x00, 0xD6, 0, 0, bytes(n + 1), le=1))
        assert too_long.extended and too_long.le == 65536 and len(too_long.data) > 255
        card.unwrap(too_long)
        assert len(card.wrap(ResponseApdu(bytes(n + 1), SW.OK)).data) > 256


def test_protected_command_layout() -> None:
    terminal, _ = pair(Cipher.AES128)
    # Case 1: only DO8E, and Le 00 since the response carries DO99 and DO8E.
    case1 = terminal.wrap(CommandApdu(0x00, 0x44, 0x00, 0x00))
    terminal.close()
    assert case1.encode()[:5] == h("0C4400000A") and case1.encode()[-1] == 0x00
    assert [t.tag for t in parse_list(case1.data)] == [0x8E]

    terminal, _ = pair(Cipher.AES128)
    # Odd INS: DO85 without the padding-content indicator; extended Ne: two-byte DO97, Le 0000.
    odd = terminal.wrap(CommandApdu(0x00, 0xB1, 0x01, 0x01, h("540100"), le=1000))
    objects = parse_list(odd.data)
    assert [t.tag for t in objects] == [0x85, 0x97, 0x8E]
    assert len(objects[0].value) == 16 and objects[1].value == h("03E8") and len(objects[2].value) == 8
    assert odd.extended and odd.encode()[-2:] == h("0000") and odd.cla == 0x0C

    terminal, _ = pair(Cipher.AES128)
    # Ne 256 is DO97 "00" and 65536 is "0000"; chaining and proprietary class bits survive.
    assert parse_list(terminal.wrap(CommandApdu(0x10, 0xB0, 0, 0, le=256)).data)[0] == Tlv(0x97, h("00"))
    terminal, _ = pair(Cipher.AES128)
    wrapped = terminal.wrap(CommandApdu(0x90, 0xB0, 0, 0, b"\x01", le=65536))
    assert wrapped.cla == 0x9C
    assert parse_list(wrapped.data)[1] == Tlv(0x97, h("0000"))


def test_aes_iv_is_the_encrypted_counter() -> None:
    k_enc, k_mac = keys(Cipher.AES128)
    terminal = SecureMessagingSession(Cipher.AES128, k_enc, k_mac, 41)
    wrapped = terminal.wrap(CommandApdu(0x00, 0xD6, 0, 0, b"abc"))
    ssc = (42).to_bytes(16, "big")
    ecb = BlockCipher(algorithms.AES(k_enc), modes.ECB()).encryptor()  # noqa: S305 - the IV definition
    iv = ecb.update(ssc) + ecb.finalize()
    cbc = BlockCipher(algorithms.AES(k_enc), modes.CBC(iv)).encryptor()
    assert parse_list(wrapped.data)[0].value == b"\x01" + cbc.update(b"abc\x80" + bytes(12)) + cbc.finalize()
    # MAC: AES-CMAC over SSC || padded header || DO87, padded again (ICAO pads before the CMAC too).
    mac_input = ssc + h("0CD60000800000000000000000000000") + wrapped.data[:-10]
    assert len(mac_input) == 16 + 16 + 19
    c = cmac.CMAC(algorithms.AES(k_mac))
    c.update(mac_input + h("80") + bytes(12))
    assert parse_list(wrapped.data)[1].value == c.finalize()[:8]


# --- round trips ------------------------------------------------------------------------------

NE = st.one_of(st.none(), st.integers(1, 300), st.sampled_from([256, 257, 4096, 65535, 65536]))


@settings(max_examples=150, deadline=None)
@given(
    cipher=st.sampled_from(ALL_CIPHERS),
    ssc=st.integers(0, 2**32),
    ins=st.sampled_from([0xA4, 0xB0, 0xB1, 0xD6, 0xD7, 0x2A]),
    data=st.binary(max_size=300),
    ne=NE,
    force_extended=st.booleans(),
    reply=st.binary(max_size=300),
    sw=st.sampled_from([0x9000, 0x6282, 0x6A82, 0x6982, 0x63C2]),
)
def test_round_trip(
    cipher: Cipher,
    ssc: int,
    ins: int,
    data: bytes,
    ne: int | None,
    force_extended: bool,
    reply: bytes,
    sw: int,
) -> None:
    terminal, card = pair(cipher, ssc)
    plain = CommandApdu(0x00, ins, 0x12, 0x34, data, le=ne, extended=force_extended)
    protected = terminal.wrap(plain)
    # What crosses the wire is bytes: decode them as the card would.
    wire = CommandApdu.decode(protected.encode())
    assert wire.cla == 0x0C and wire.le in (256, 65536)
    assert wire.extended == (len(protected.data) > 255 or (ne or 0) > 256 or force_extended)
    inner = card.unwrap(wire)
    assert (inner.cla, inner.ins, inner.p1, inner.p2) == (0x00, ins, 0x12, 0x34)
    assert (inner.data, inner.le) == (data, ne)
    response = card.wrap(ResponseApdu(reply, sw))
    assert response.sw == sw
    tag = 0x85 if ins & 1 else 0x87
    assert [t.tag for t in parse_list(response.data)] == ([tag] if reply else []) + [0x99, 0x8E]
    assert terminal.unwrap(ResponseApdu.decode(response.encode())) == ResponseApdu(reply, sw)
    assert terminal.ssc == card.ssc == ssc + 2


@pytest.mark.parametrize("cipher", ALL_CIPHERS)
def test_long_session(cipher: Cipher) -> None:
    terminal, card = pair(cipher, 2**32 - 3)
    for i in range(20):
        inner = card.unwrap(terminal.wrap(CommandApdu(0x00, 0xB0, 0, i, le=i + 1)))
        assert inner.le == i + 1
        assert terminal.unwrap(card.wrap(ResponseApdu(bytes([i]) * i, SW.OK))).data == bytes([i]) * i
    assert terminal.ssc == 2**32 - 3 + 40


# --- failures, terminal side ------------------------------------------------------------------


def started(cipher: Cipher = Cipher.AES128) -> tuple[SecureMessagingSession, CardSecureMessaging]:
    terminal, card = pair(cipher)
    card.unwrap(terminal.wrap(CommandApdu(0x00, 0xB0, 0, 0, le=16)))
    return terminal, card


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def assert_fails(terminal: SecureMessagingSession, response: ResponseApdu, words: str) -> None:
    with pytest.raises(SecureMessagingError, match=words) as info:
        terminal.unwrap(response)
    assert terminal.closed
    k_enc, k_mac = keys(terminal.cipher)
    assert k_enc.hex() not in str(info.value).lower() and k_mac.hex() not in str(info.value).lower()
    # A closed session refuses everything after.
    with pytest.raises(SecureMessagingError, match="closed"):
        terminal.wrap(CommandApdu(0x00, 0xB0, 0, 0, le=1))
    with pytest.raises(SecureMessagingError, match="closed"):
        terminal.unwrap(response)


def test_tampered_response_mac() -> None:
    terminal, card = started()
    good = card.wrap(ResponseApdu(b"secret data", SW.OK))
    assert_fails(terminal, ResponseApdu(flip(good.data, len(good.data) - 1), SW.OK), "MAC does not verify")


def test_tampered_response_cryptogram() -> None:
    terminal, card = started()
    good = card.wrap(ResponseApdu(b"secret data", SW.OK))
    assert_fails(terminal, ResponseApdu(flip(good.data, 5), SW.OK), "MAC does not verify")


def test_tampered_status_word() -> None:
    terminal, card = started()
    good = card.wrap(ResponseApdu(b"", SW.OK))
    assert good.data[:4] == h("99029000")
    assert_fails(terminal, ResponseApdu(h("99026A82") + good.data[4:], SW.OK), "MAC does not verify")


@pytest.mark.parametrize("sw", [0x6987, 0x6988])
def test_card_rejects_secure_messaging(sw: int) -> None:
    terminal, _ = started()
    assert_fails(terminal, ResponseApdu(b"", sw), f"card rejected the secure messaging \\({sw:04X}\\)")


def test_unprotected_error_word() -> None:
    terminal, _ = started()
    assert_fails(terminal, ResponseApdu(b"", 0x6A82), "6A82 without secure messaging")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("8E08" + "00" * 8, "no status word"),
        ("99029000", "no MAC"),
        ("990290008E0400000000", "MAC of the wrong length"),
        ("8E080000000000000000" + "99029000", "after the MAC"),
        ("9902900099029000" + "8E08" + "00" * 8, "unexpected or repeated"),
        ("99039000008E08" + "00" * 8, "malformed protected status word"),
        ("9902900087", "malformed secure messaging data objects"),
        ("51029000", "no MAC"),
    ],
)
def test_malformed_responses(data: str, words: str) -> None:
    terminal, _ = started()
    assert_fails(terminal, ResponseApdu(h(data), SW.OK), words)


def _sealed_response(cipher: Cipher, ssc: int, cryptogram_value: bytes) -> ResponseApdu:
    """A response with a correct MAC around an arbitrary DO87 value (as only a key holder makes)."""
    k_enc, k_mac = keys(cipher)
    body = Tlv(0x87, cryptogram_value).encode() + h("99029000")
    mac = SmCrypto(cipher, k_enc, k_mac).mac(ssc.to_bytes(cipher.block_size, "big") + body)
    return ResponseApdu(body + Tlv(0x8E, mac).encode(), SW.OK)


def test_bad_padding_after_good_mac() -> None:
    terminal, _ = started(Cipher.AES128)
    k_enc, _ = keys(Cipher.AES128)
    ssc = (2).to_bytes(16, "big")
    ecb = BlockCipher(algorithms.AES(k_enc), modes.ECB()).encryptor()  # noqa: S305 - the IV definition
    cbc = BlockCipher(algorithms.AES(k_enc), modes.CBC(ecb.update(ssc))).encryptor()
    unpadded = cbc.update(bytes(range(16))) + cbc.finalize()
    assert_fails(terminal, _sealed_response(Cipher.AES128, 2, b"\x01" + unpadded), "does not decrypt")


def test_bad_padding_indicator_and_length() -> None:
    terminal, _ = started(Cipher.AES128)
    assert_fails(terminal, _sealed_response(Cipher.AES128, 2, b"\x02" + bytes(16)), "padding-content")
    terminal, _ = started(Cipher.AES128)
    assert_fails(terminal, _sealed_response(Cipher.AES128, 2, b"\x01" + bytes(15)), "does not decrypt")


def test_out_of_step_use() -> None:
    terminal, _ = pair(Cipher.TDES)
    with pytest.raises(SecureMessagingError, match="no protected command"):
        terminal.unwrap(ResponseApdu(h("99029000"), SW.OK))
    assert terminal.closed
    terminal, _ = pair(Cipher.TDES)
    terminal.wrap(CommandApdu(0x00, 0xB0, 0, 0, le=1))
    with pytest.raises(SecureMessagingError, match="out of step"):
        terminal.wrap(CommandApdu(0x00, 0xB0, 0, 0, le=1))
    assert terminal.closed
    terminal, _ = pair(Cipher.TDES)
    with pytest.raises(SecureMessagingError, match="already protected"):
        terminal.wrap(CommandApdu(0x0C, 0xB0, 0, 0, le=1))


def test_counter_exhausted() -> None:
    terminal, _ = pair(Cipher.TDES, 2**64 - 1)
    with pytest.raises(SecureMessagingError, match="exhausted"):
        terminal.wrap(CommandApdu(0x00, 0xB0, 0, 0, le=1))


def test_keys_never_shown() -> None:
    for cipher in ALL_CIPHERS:
        k_enc, k_mac = keys(cipher)
        for obj in (*pair(cipher), SmCrypto(cipher, k_enc, k_mac)):
            text = repr(obj) + str(obj)
            assert k_enc.hex() not in text.lower() and k_mac.hex() not in text.lower()
            assert repr(k_enc) not in text and cipher.value[0] in text
    terminal, _ = pair(Cipher.TDES)
    assert repr(terminal) == "SecureMessagingSession(3DES, open)"
    terminal.close()
    assert repr(terminal) == "SecureMessagingSession(3DES, closed)"


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="AES-256 session keys have 32 bytes"):
        SecureMessagingSession(Cipher.AES256, bytes(16), bytes(32), 0)
    with pytest.raises(ValueError, match="counter has 8 bytes"):
        CardSecureMessaging(Cipher.TDES, bytes(16), bytes(16), 2**64)
    with pytest.raises(ValueError, match="counter has 16 bytes"):
        SecureMessagingSession(Cipher.AES128, bytes(16), bytes(16), -1)


# --- failures, card side ----------------------------------------------------------------------


def card_refuses(card: CardSecureMessaging, apdu: CommandApdu, sw: int) -> None:
    with pytest.raises(ApduError) as info:
        card.unwrap(apdu)
    assert info.value.sw == sw
    assert card.closed


def test_card_bad_mac_and_replay() -> None:
    terminal, card = pair(Cipher.AES256)
    first = terminal.wrap(CommandApdu(0x00, 0xB0, 0, 0, le=4))
    card.unwrap(first)
    terminal.unwrap(card.wrap(ResponseApdu(b"abcd", SW.OK)))
    # The same bytes again: the counter has moved on, so the MAC no longer verifies.
    card_refuses(card, first, SW.SM_DATA_OBJECTS_INCORRECT)
    # Closed for good, even for a command that would have verified.
    card_refuses(card, terminal.wrap(CommandApdu(0x00, 0xB0, 0, 0, le=4)), SW.SM_DATA_OBJECTS_INCORRECT)

    terminal, card = pair(Cipher.AES256)
    good = terminal.wrap(CommandApdu(0x00, 0xD6, 0, 0, b"payload"))
    card_refuses(card, good.with_(data=flip(good.data, 4)), SW.SM_DATA_OBJECTS_INCORRECT)
    terminal, card = pair(Cipher.AES256)
    good = terminal.wrap(CommandApdu(0x00, 0xD6, 0, 0, b"payload"))
    card_refuses(card, good.with_(p2=1), SW.SM_DATA_OBJECTS_INCORRECT)  # the header is authenticated


def test_card_bad_padding_answers_like_bad_mac() -> None:
    cipher = Cipher.TDES
    k_enc, k_mac = keys(cipher)
    card = CardSecureMessaging(cipher, k_enc, k_mac, 0)
    ssc = (1).to_bytes(8, "big")
    # Correctly MACed, but the cryptogram decrypts to data without ISO/IEC 9797-1 method 2 padding.
    from ektp_card.crypto.sm import tdes_cbc

    do87 = Tlv(0x87, b"\x01" + tdes_cbc(k_enc, bytes(8))).encode()
    mac = SmCrypto(cipher, k_enc, k_mac).mac(ssc + pad(h("0CD60000"), 8) + do87)
    card_refuses(card, CommandApdu(0x0C, 0xD6, 0, 0, do87 + Tlv(0x8E, mac).encode(), le=256), 0x6988)


@pytest.mark.parametrize(
    ("data", "sw"),
    [
        ("", SW.SM_DATA_OBJECTS_MISSING),
        ("970100", SW.SM_DATA_OBJECTS_MISSING),
        ("8E08" + "00" * 8 + "970100", SW.SM_DATA_OBJECTS_INCORRECT),
        ("970100870901" + "00" * 8 + "8E08" + "00" * 8, SW.SM_DATA_OBJECTS_INCORRECT),
        ("99029000" + "8E08" + "00" * 8, SW.SM_DATA_OBJECTS_INCORRECT),
        ("8E07" + "00" * 7, SW.SM_DATA_OBJECTS_INCORRECT),
        ("8E09" + "00" * 8, SW.SM_DATA_OBJECTS_INCORRECT),
    ],
)
def test_card_malformed_commands(data: str, sw: int) -> None:
    _, card = pair(Cipher.AES128)
    card_refuses(card, CommandApdu(0x0C, 0xB0, 0, 0, h(data), le=256), sw)


def test_card_refuses_other_sm_indications() -> None:
    terminal, card = pair(Cipher.AES128)
    good = terminal.wrap(CommandApdu(0x00, 0xB0, 0, 0, le=4))
    card_refuses(card, good.with_(cla=0x08), SW.SM_DATA_OBJECTS_INCORRECT)


def test_card_bad_le_object() -> None:
    cipher = Cipher.AES128
    k_enc, k_mac = keys(cipher)
    card = CardSecureMessaging(cipher, k_enc, k_mac, 0)
    do97 = h("9703000100")
    mac = SmCrypto(cipher, k_enc, k_mac).mac((1).to_bytes(16, "big") + pad(h("0CB00000"), 16) + do97)
    card_refuses(card, CommandApdu(0x0C, 0xB0, 0, 0, do97 + Tlv(0x8E, mac).encode(), le=256), 0x6988)
