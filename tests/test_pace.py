"""PACE-ECDH-GM: ICAO Doc 9303-11 Appendix G.1 known answers, then terminal and virtual card together;
PACE-ECDH-IM: Appendix H.1 known answers, the point encoding, then terminal and virtual card together in
every cipher and curve the encoding applies to."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.iso7816 import Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW, describe
from ektp_card.crypto.kdf import Cipher, session_keys
from ektp_card.crypto.pace import (
    ECDH_GM_3DES,
    ECDH_GM_AES128,
    ECDH_GM_AES192,
    ECDH_GM_AES256,
    ECDH_IM_3DES,
    ECDH_IM_AES128,
    ECDH_IM_AES192,
    ECDH_IM_AES256,
    PaceAlgorithm,
    PaceParameters,
    Password,
    PasswordType,
    authentication_token,
    decrypt_nonce,
    encode_point,
    encrypt_nonce,
    integrated_generator,
    map_generator,
    mse_set_at,
    password_key,
    perform_pace,
    point_encoding_applies,
    pseudo_random,
    shared_secret,
)
from ektp_card.crypto.sm import SecureMessagingSession
from ektp_card.ec import BRAINPOOLP256R1, STANDARDIZED_CURVES, Curve, Point, PrivateKey
from ektp_card.errors import (
    ApduError,
    ConditionsNotSatisfiedError,
    IncorrectParametersError,
    PaceError,
    PacePasswordError,
    ReferencedDataNotFoundError,
    SecureMessagingObjectsError,
    SecurityStatusNotSatisfiedError,
    VerificationFailedError,
)
from ektp_card.lds import PaceInfo
from ektp_card.log import TRAFFIC
from ektp_card.session.card import read_card_access
from ektp_card.virtual import AccessCondition, SecurityAttributes, VirtualCard, demo_card
from ektp_card.virtual.demo import DEMO_AID
from ektp_card.virtual.pace import (
    PIN_RETRIES_KEY,
    ChipPace,
    install_pace,
    pin_retries,
)

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "icao9303-part11.json").read_text())
G1 = VECTORS["pace_ecdh_gm_brainpoolp256r1_aes128"]
G1_PARAMETERS = PaceParameters(ECDH_GM_AES128, 13)
H1 = VECTORS["pace_ecdh_im_brainpoolp256r1_aes128"]
H1_PARAMETERS = PaceParameters(ECDH_IM_AES128, 13)
#: The password of the Integrated Mapping exchange tests: the MRZ of Appendix G.1 (H.1 starts from the nonce).
MRZ_INFORMATION = G1["mrz_information"]

CAN, PIN = "123456", "2468"
#: An EF of the demo application readable only after PACE.
EF_PACE_FID, EF_PACE_SFI = 0x0105, 5
PACE_CONTENT = b"readable after PACE only"


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def point(xy: list[str]) -> Point:
    return Point(int(xy[0], 16), int(xy[1], 16))


def encoded(xy: list[str]) -> bytes:
    return h("04" + xy[0] + xy[1])


def keys_from(*values: str) -> Callable[[Curve], int]:
    """A key source handing out fixed private keys, in order."""
    it: Iterator[str] = iter(values)
    return lambda curve: int(next(it), 16)


# --- Appendix G.1 known answers ------------------------------------------------------------------


def test_g1_password() -> None:
    password = Password.mrz(G1["document_number"], G1["date_of_birth"], G1["date_of_expiry"])
    assert password.type is PasswordType.MRZ
    assert password.key == h(G1["k"])
    assert password_key(password, Cipher.AES128) == h(G1["k_pi"])
    assert Password.from_mrz_information(G1["mrz_information"]) == password
    assert repr(password) == "Password(MRZ)"


def test_g1_nonce() -> None:
    k_pi = h(G1["k_pi"])
    assert decrypt_nonce(Cipher.AES128, k_pi, h(G1["encrypted_nonce"])) == h(G1["nonce"])
    assert encrypt_nonce(Cipher.AES128, k_pi, h(G1["nonce"])) == h(G1["encrypted_nonce"])


def test_g1_mapping_and_key_agreement() -> None:
    c = BRAINPOOLP256R1
    t_map, c_map = int(G1["terminal_map_private"], 16), int(G1["chip_map_private"], 16)
    assert c.multiply(t_map, c.generator) == point(G1["terminal_map_public"])
    assert c.multiply(c_map, c.generator) == point(G1["chip_map_public"])
    shared = c.multiply(t_map, point(G1["chip_map_public"]))
    assert shared == c.multiply(c_map, point(G1["terminal_map_public"]))
    mapped = map_generator(c, h(G1["nonce"]), shared)
    assert mapped == point(G1["mapped_generator"])
    t_eph, c_eph = int(G1["terminal_eph_private"], 16), int(G1["chip_eph_private"], 16)
    assert c.multiply(t_eph, mapped) == point(G1["terminal_eph_public"])
    assert c.multiply(c_eph, mapped) == point(G1["chip_eph_public"])
    secret = c.multiply(t_eph, point(G1["chip_eph_public"]))
    assert secret is not None and secret.x.to_bytes(32, "big") == h(G1["shared_secret"])


def test_g1_tokens() -> None:
    k_mac = h(G1["ks_mac"])
    assert authentication_token(ECDH_GM_AES128, k_mac, encoded(G1["chip_eph_public"])) == h(G1["t_ifd"])
    assert authentication_token(ECDH_GM_AES128, k_mac, encoded(G1["terminal_eph_public"])) == h(G1["t_ic"])


def test_g1_mse_set_at() -> None:
    assert mse_set_at(G1_PARAMETERS, PasswordType.MRZ).encode() == h(G1["mse_set_at"])
    with_id = mse_set_at(G1_PARAMETERS, PasswordType.CAN, send_parameter_id=True).encode()
    assert with_id == h("0022C1A412800A04007F00070202040202830102840 10D".replace(" ", ""))


def g1_exchange() -> list[tuple[str, str]]:
    """The exact APDUs of the G.1 run: (terminal command, chip response)."""
    t_map, c_map = encoded(G1["terminal_map_public"]).hex(), encoded(G1["chip_map_public"]).hex()
    t_eph, c_eph = encoded(G1["terminal_eph_public"]).hex(), encoded(G1["chip_eph_public"]).hex()
    return [
        (G1["mse_set_at"], "9000"),
        ("10860000027C0000", "7C1280" + "10" + G1["encrypted_nonce"] + "9000"),
        ("10860000457C438141" + t_map + "00", "7C438241" + c_map + "9000"),
        ("10860000457C438341" + t_eph + "00", "7C438441" + c_eph + "9000"),
        ("008600000C7C0A8508" + G1["t_ifd"] + "00", "7C0A8608" + G1["t_ic"] + "9000"),
    ]


class ScriptedCard:
    """A transport that checks each command against a script and plays the chip's answers."""

    def __init__(self, script: list[tuple[str, str]]) -> None:
        self.script = [(h(c), h(r)) for c, r in script]

    def transceive(self, command: bytes) -> bytes:
        expected, response = self.script.pop(0)
        assert command.hex().upper() == expected.hex().upper()
        return response


def test_g1_terminal_exact_bytes() -> None:
    card = ScriptedCard(g1_exchange())
    protocol = ApduProtocol(card)
    password = Password.from_mrz_information(G1["mrz_information"])
    keys = keys_from(G1["terminal_map_private"], G1["terminal_eph_private"])
    result = perform_pace(protocol, password, G1_PARAMETERS, key_source=keys)
    assert not card.script
    assert (result.k_enc, result.k_mac) == (h(G1["ks_enc"]), h(G1["ks_mac"]))
    assert result.chip_public_key == encoded(G1["chip_eph_public"])
    assert result.terminal_public_key == encoded(G1["terminal_eph_public"])
    assert result.id_picc == h(G1["chip_eph_public"][0])
    assert result.password_type is PasswordType.MRZ and result.cipher is Cipher.AES128
    assert isinstance(protocol.secure_messaging, SecureMessagingSession)
    assert protocol.secure_messaging.ssc == 0
    # The session keys never show in repr.
    assert G1["ks_enc"] not in repr(result).upper() and G1["ks_mac"] not in repr(result).upper()


def test_g1_chip_exact_bytes() -> None:
    password = Password.from_mrz_information(G1["mrz_information"])
    chip = ChipPace(
        G1_PARAMETERS,
        PasswordType.MRZ,
        password.key,
        random_bytes=lambda n: h(G1["nonce"])[:n],
        key_source=keys_from(G1["chip_map_private"], G1["chip_eph_private"]),
    )
    assert chip.encrypted_nonce() == h(G1["encrypted_nonce"])
    assert chip.mapping(encoded(G1["terminal_map_public"])) == encoded(G1["chip_map_public"])
    assert chip.key_agreement(encoded(G1["terminal_eph_public"])) == encoded(G1["chip_eph_public"])
    assert chip.session_keys() == (h(G1["ks_enc"]), h(G1["ks_mac"]))
    assert chip.tokens(h(G1["t_ifd"])) == h(G1["t_ic"])
    assert chip.tokens(bytes(8)) is None


# --- against the virtual card ------------------------------------------------------------------------


def pace_card(infos: tuple[PaceInfo, ...] | None = None, *, pin: str | None = PIN) -> VirtualCard:
    card = demo_card()
    app = card.fs.application(DEMO_AID)
    card.fs.create_ef(
        app,
        EF_PACE_FID,
        data=PACE_CONTENT,
        sfi=EF_PACE_SFI,
        access=SecurityAttributes(AccessCondition.require("PACE"), AccessCondition.NEVER),
    )
    if infos is None:
        install_pace(card, can=CAN, pin=pin)
    else:
        install_pace(card, can=CAN, pin=pin, infos=infos)
    return card


def run_pace(card: VirtualCard, password: Password, protocol: ApduProtocol | None = None) -> ApduProtocol:
    protocol = protocol or ApduProtocol(card)
    session = Iso7816Session(protocol)
    parameters, explicit = read_card_access(session).choose_pace()
    perform_pace(protocol, password, parameters, send_parameter_id=explicit)
    return protocol


def read_protected(protocol: ApduProtocol) -> bytes:
    session = Iso7816Session(protocol)
    session.select_aid(DEMO_AID)
    return session.read_file(sfi=EF_PACE_SFI)


COMBINATIONS = [
    (algorithm, pid)
    for algorithm in (ECDH_GM_AES128, ECDH_GM_AES192, ECDH_GM_AES256, ECDH_GM_3DES)
    for pid in (12, 13, 15, 16, 17, 18)
] + [(ECDH_GM_AES128, pid) for pid in (8, 9, 10, 11, 14)]


@pytest.mark.parametrize(
    ("algorithm", "parameter_id"),
    COMBINATIONS,
    ids=lambda v: v.name[8:] if isinstance(v, PaceAlgorithm) else v,
)
def test_pace_with_virtual_card(algorithm: PaceAlgorithm, parameter_id: int) -> None:
    card = pace_card((PaceInfo(algorithm.oid, 2, parameter_id),))
    protocol = ApduProtocol(card)
    session = Iso7816Session(protocol)
    session.select_aid(DEMO_AID)
    with pytest.raises(SecurityStatusNotSatisfiedError):
        session.read_file(sfi=EF_PACE_SFI)
    parameters, explicit = read_card_access(session).choose_pace()
    assert (parameters.algorithm, parameters.parameter_id, explicit) == (algorithm, parameter_id, False)
    result = perform_pace(protocol, Password.can(CAN), parameters)
    assert result.cipher is algorithm.cipher
    assert len(result.k_enc) == len(result.k_mac) == algorithm.cipher.key_length
    assert card.security.granted == {"PACE", "PACE_CAN"}
    assert card.security.channel is not None
    assert read_protected(protocol) == PACE_CONTENT


def test_parameter_id_sent_when_card_offers_several() -> None:
    card = pace_card((PaceInfo(ECDH_GM_AES128.oid, 2, 12), PaceInfo(ECDH_GM_AES128.oid, 2, 13)))
    for pid in (12, 13):
        card.power_on()
        protocol = ApduProtocol(card)
        result = perform_pace(
            protocol, Password.can(CAN), PaceParameters(ECDH_GM_AES128, pid), send_parameter_id=True
        )
        assert result.parameters.parameter_id == pid
        assert read_protected(protocol) == PACE_CONTENT


def test_plain_command_after_pace_ends_the_session() -> None:
    card = pace_card()
    protocol = run_pace(card, Password.can(CAN))
    plain = ApduProtocol(card)
    with pytest.raises(SecureMessagingObjectsError):
        plain.send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, DEMO_AID))
    assert not card.security.granted and card.security.channel is None
    with pytest.raises(SecurityStatusNotSatisfiedError):
        read_protected(plain)
    assert protocol.secure_messaging is not None  # the terminal learns on its next command


def test_pace_session_ends_at_power_off() -> None:
    card = pace_card()
    run_pace(card, Password.can(CAN))
    card.power_on()
    assert not card.security.granted and card.security.channel is None
    assert card.session.protocol_state is None


def test_wrong_can() -> None:
    card = pace_card()
    protocol = ApduProtocol(card)
    with pytest.raises(PacePasswordError) as info:
        run_pace(card, Password.can("654321"), protocol)
    error = info.value
    assert isinstance(error, VerificationFailedError)
    assert (error.sw, error.password, error.retries) == (SW.VERIFICATION_FAILED, "CAN", None)
    assert not error.blocked
    assert str(error) == "PACE failed: wrong CAN"
    assert "654321" not in str(error) and CAN not in str(error)
    assert not card.security.granted and card.security.channel is None
    assert protocol.secure_messaging is None
    # The card is fine for the right CAN afterwards.
    assert read_protected(run_pace(card, Password.can(CAN))) == PACE_CONTENT


def test_password_not_on_card() -> None:
    card = pace_card(pin=None)
    with pytest.raises(ReferencedDataNotFoundError):
        run_pace(card, Password.pin(PIN))


def wrong_pin(card: VirtualCard, protocol: ApduProtocol | None = None) -> PacePasswordError:
    with pytest.raises(PacePasswordError) as info:
        run_pace(card, Password.pin("0000"), protocol)
    return info.value


def can_session(card: VirtualCard) -> ApduProtocol:
    protocol = run_pace(card, Password.can(CAN))
    assert card.security.granted == {"PACE", "PACE_CAN"}
    return protocol


def test_pin_success_resets_counter() -> None:
    card = pace_card()
    assert pin_retries(card) == 3
    error = wrong_pin(card)
    assert (error.sw, error.password, error.retries) == (0x63C2, "PIN", 2)
    assert str(error) == "PACE failed: wrong PIN: 2 tries left"
    assert pin_retries(card) == 2
    protocol = run_pace(card, Password.pin(PIN))
    assert card.security.granted == {"PACE", "PACE_PIN"}
    assert pin_retries(card) == 3
    assert read_protected(protocol) == PACE_CONTENT


def test_pin_suspended_then_resumed_with_can() -> None:
    card = pace_card()
    wrong_pin(card)
    error = wrong_pin(card)
    assert (error.sw, error.retries) == (0x63C1, 1)
    assert "suspended" in str(error)
    # Suspended: PACE-PIN alone is refused at MSE:Set AT, and the counter stays.
    with pytest.raises(PacePasswordError, match="suspended: run PACE with the CAN first") as info:
        run_pace(card, Password.pin(PIN))
    assert info.value.sw == 0x63C1 and info.value.retries == 1
    assert pin_retries(card) == 1
    # PACE-CAN, then PACE-PIN inside the CAN's secure messaging.
    recorder = Recorder(card)
    protocol = run_pace(card, Password.can(CAN), ApduProtocol(recorder))
    assert card.security.granted == {"PACE", "PACE_CAN"}
    recorder.sent.clear()
    run_pace(card, Password.pin(PIN), protocol)
    assert card.security.granted == {"PACE", "PACE_PIN"}
    assert pin_retries(card) == 3
    # MSE:Set AT and every GENERAL AUTHENTICATE travelled protected (CLA 0C, chained 1C).
    pace_commands = [c[:2].hex().upper() for c in recorder.sent if c[1] in (0x22, 0x86)]
    assert pace_commands == ["0C22", "1C86", "1C86", "1C86", "0C86"]
    assert read_protected(protocol) == PACE_CONTENT


class Recorder:
    """A transport in front of the card that keeps every command sent."""

    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        self.sent: list[bytes] = []

    def transceive(self, command: bytes) -> bytes:
        self.sent.append(command)
        return self.card.transceive(command)


def test_pin_blocked_after_failed_resume() -> None:
    card = pace_card()
    wrong_pin(card)
    wrong_pin(card)
    protocol = can_session(card)
    error = wrong_pin(card, protocol)
    assert (error.sw, error.retries, error.blocked) == (0x63C0, 0, True)
    assert str(error) == "PACE failed: the PIN is blocked"
    # The failed run ended the CAN session on both sides.
    assert protocol.secure_messaging is None and not card.security.granted
    make_protocols: list[Callable[[], ApduProtocol]] = [lambda: ApduProtocol(card), lambda: can_session(card)]
    for make_protocol in make_protocols:
        with pytest.raises(PacePasswordError) as info:
            run_pace(card, Password.pin(PIN), make_protocol())
        assert (info.value.sw, info.value.retries, info.value.blocked) == (SW.AUTH_METHOD_BLOCKED, 0, True)


def test_pin_counter_persists_in_image(tmp_path: Path) -> None:
    card = pace_card()
    wrong_pin(card)
    path = tmp_path / "card.json"
    card.save(path)
    loaded = VirtualCard.load(path)
    assert loaded.keys[PIN_RETRIES_KEY] == b"\x02"
    # MSE:Set AT warns with 63C2; the next failure suspends the PIN.
    assert loaded.transceive(h("0022C1A40F800A04007F00070202040202830103")) == h("63C2")
    error = wrong_pin(loaded)
    assert error.retries == 1
    loaded.save(path)
    assert VirtualCard.load(path).keys[PIN_RETRIES_KEY] == b"\x01"


def test_secrets_stay_out_of_logs(caplog: pytest.LogCaptureFixture) -> None:
    card = pace_card()
    password = Password.can(CAN)
    with caplog.at_level(TRAFFIC, logger="ektp_card"):
        run_pace(card, password)
        card.power_on()
        with pytest.raises(PacePasswordError):
            run_pace(card, Password.can("999999"))
    text = caplog.text.upper()
    assert "PACE COMPLETED" in text and ">> 0022C1A4" in text
    # K_pi nowhere, not even in the APDU hex; the passwords in no message (the APDU hex is left
    # out there only because random bytes could spell six digits).
    assert password_key(password, Cipher.AES128).hex().upper() not in text
    messages = " ".join(r.getMessage() for r in caplog.records if r.levelno > TRAFFIC)
    assert "PACE" in messages
    for secret in (CAN, "999999", CAN.encode().hex()):
        assert secret not in messages
    assert repr(password) == "Password(CAN)" and CAN not in repr(password)


# --- refusals and hostile answers ---------------------------------------------------------------------


def test_card_without_pace() -> None:
    card = demo_card()
    assert card.transceive(h("0022C1A40F800A04007F00070202040202830102")) == h("6A88")
    assert card.transceive(h("10860000027C0000")) == h("6985")


@pytest.mark.parametrize(
    ("mse", "sw"),
    [
        pytest.param("0022C1A40F800A04007F00070202040204830102", "6A80", id="protocol-not-offered"),
        pytest.param("0022C1A412800A04007F0007020204020283010284010C", "6A88", id="parameters-not-offered"),
        pytest.param("0022C1A40F800A04007F00070202040202830109", "6A80", id="bad-password-reference"),
        pytest.param("0022C1A40F800A04007F00070202040202830104", "6A88", id="no-puk"),
        pytest.param("0022C1A40C800A04007F00070202040202", "6A80", id="no-password-reference"),
        pytest.param("002241A40F800A04007F00070202040202830102", "6A86", id="not-set-at-for-pace"),
        pytest.param("0022C1A4037F4C00", "6A80", id="only-a-chat"),
    ],
)
def test_mse_set_at_refusals(mse: str, sw: str) -> None:
    card = pace_card()
    assert card.transceive(h(mse)) == h(sw)
    assert card.session.protocol_state is None


def test_mse_set_at_ignores_unknown_data_objects() -> None:
    # ICAO Doc 9303-11 section 4.4.4.1, note 2: a CHAT (7F4C) and other objects are ignored.
    card = pace_card()
    chat = "7F4C12060904007F00070301020253050000000000"
    mse = "800A04007F00070202040202830102" + chat
    assert card.transceive(h(f"0022C1A4{len(mse) // 2:02X}{mse}")) == h("9000")
    assert isinstance(card.session.protocol_state, ChipPace)


def start_card_run(card: VirtualCard) -> None:
    assert card.transceive(h("0022C1A40F800A04007F00070202040202830102")) == h("9000")
    response = card.transceive(h("10860000027C0000"))
    assert response[:3] == h("7C1280") and response[-2:] == h("9000")


@pytest.mark.parametrize(
    ("mapping_key", "why"),
    [
        (b"\x00", "infinity"),
        (b"\x04" + bytes(64), "off-curve"),
        (BRAINPOOLP256R1.encode_point(BRAINPOOLP256R1.generator)[:-1] + b"\x00", "off-curve-y"),
        (b"\x03" + BRAINPOOLP256R1.generator.x.to_bytes(32, "big"), "compressed"),
    ],
)
def test_card_refuses_invalid_terminal_points(mapping_key: bytes, why: str) -> None:
    card = pace_card()
    start_card_run(card)
    body = bytes((0x81, len(mapping_key))) + mapping_key
    command = h("10860000") + bytes((len(body) + 2, 0x7C, len(body))) + body + b"\x00"
    assert card.transceive(command) == h("6A80"), why
    # The run is over: the next step is out of order.
    assert card.session.protocol_state is None and card.session.chain is None
    assert card.transceive(h("10860000027C0000")) == h("6985")


def test_card_refuses_reflected_key() -> None:
    c = BRAINPOOLP256R1
    chip = ChipPace(G1_PARAMETERS, PasswordType.CAN, CAN.encode(), key_source=keys_from("05", "07"))
    chip.encrypted_nonce()
    own = c.multiply(5, c.generator)
    assert own is not None
    with pytest.raises(PaceError, match="equals our own"):
        chip.mapping(c.encode_point(own))


def test_card_checks_step_order_and_chaining() -> None:
    card = pace_card()
    assert card.transceive(h("0022C1A40F800A04007F00070202040202830102")) == h("9000")
    # Step 1 must be chained (CLA 10): unchained it aborts the run.
    assert card.transceive(h("00860000027C0000")) == h("6985")
    assert card.transceive(h("10860000027C0000")) == h("6985")
    start_card_run(card)
    # A token where the mapping data belongs.
    assert card.transceive(h("108600000C7C0A85080000000000000000")) == h("6A80")
    start_card_run(card)
    # Another command inside the chain breaks it (ISO/IEC 7816-4 section 5.3.3).
    assert card.transceive(h("00A4000C023F00")) == h("6883")


class RefuseStep:
    """A transport in front of the virtual card that answers the ``nth`` PACE command (1: MSE:Set AT,
    then the GENERAL AUTHENTICATE steps) with ``sw`` instead of passing it on."""

    def __init__(self, card: VirtualCard, nth: int, sw: int) -> None:
        self.card, self.nth, self.sw, self.seen = card, nth, sw, 0

    def transceive(self, command: bytes) -> bytes:
        if command[1] in (0x22, 0x86):
            self.seen += 1
            if self.seen == self.nth:
                return self.sw.to_bytes(2, "big")
        return self.card.transceive(command)


@pytest.mark.parametrize(
    ("nth", "sw", "error", "step"),
    [
        (1, 0x6982, SecurityStatusNotSatisfiedError, "MSE:Set AT"),
        (2, 0x6982, SecurityStatusNotSatisfiedError, "GENERAL AUTHENTICATE (nonce)"),
        (3, 0x6A80, IncorrectParametersError, "GENERAL AUTHENTICATE (mapping)"),
        (4, 0x6985, ConditionsNotSatisfiedError, "GENERAL AUTHENTICATE (key agreement)"),
        (5, 0x6982, SecurityStatusNotSatisfiedError, "GENERAL AUTHENTICATE (tokens)"),
    ],
)
def test_a_refused_step_raises_the_typed_error_naming_it(
    nth: int, sw: int, error: type[ApduError], step: str
) -> None:
    card = pace_card()
    with pytest.raises(error) as info:
        run_pace(card, Password.can(CAN), ApduProtocol(RefuseStep(card, nth, sw)))
    assert type(info.value) is error and info.value.sw == sw
    assert str(info.value) == f"PACE: the card refused {step}: card returned {sw:04X}: {describe(sw)}"


class Tamper:
    """A transport in front of the virtual card that rewrites chosen GENERAL AUTHENTICATE answers."""

    def __init__(self, card: VirtualCard, rewrite: Callable[[bytes, bytes], bytes]) -> None:
        self.card = card
        self.rewrite = rewrite

    def transceive(self, command: bytes) -> bytes:
        response = self.card.transceive(command)
        return self.rewrite(command, response) if command[1] == 0x86 else response


def ga_reply(tag: int, value: bytes) -> bytes:
    body = bytes((tag, len(value))) + value
    return bytes((0x7C, len(body))) + body + h("9000")


def command_point(command: bytes) -> bytes:
    return command[9:-1]  # CLA INS P1 P2 Lc 7C L 8x L <point> Le


@pytest.mark.parametrize(
    ("rewrite", "message"),
    [
        pytest.param(
            lambda c, r: ga_reply(0x82, b"\x04" + bytes(64)) if r[2:3] == b"\x82" else r,
            "chip's mapping key is invalid",
            id="mapping-off-curve",
        ),
        pytest.param(
            lambda c, r: ga_reply(0x82, command_point(c)) if r[2:3] == b"\x82" else r,
            "chip's mapping key equals our own",
            id="mapping-reflected",
        ),
        pytest.param(
            lambda c, r: ga_reply(0x84, command_point(c)) if r[2:3] == b"\x84" else r,
            "chip's ephemeral key equals our own",
            id="ephemeral-reflected",
        ),
        pytest.param(
            lambda c, r: ga_reply(0x84, b"\x04" + b"\xff" * 64) if r[2:3] == b"\x84" else r,
            "chip's ephemeral key is invalid",
            id="ephemeral-out-of-range",
        ),
        pytest.param(
            lambda c, r: ga_reply(0x86, bytes(8)) if r[2:3] == b"\x86" else r,
            "chip's authentication token is wrong",
            id="wrong-chip-token",
        ),
        pytest.param(
            lambda c, r: h("7C028000" + "9000") if r[2:3] == b"\x80" else r,
            "whole number of cipher blocks",
            id="empty-nonce",
        ),
        pytest.param(
            lambda c, r: h("7C00" + "9000") if r[2:3] == b"\x82" else r,
            "without DO 82",
            id="missing-mapping-data",
        ),
        pytest.param(
            lambda c, r: h("7D00" + "9000") if r[2:3] == b"\x80" else r,
            "malformed GENERAL AUTHENTICATE response",
            id="not-dynamic-authentication-data",
        ),
    ],
)
def test_terminal_refuses_hostile_answers(rewrite: Callable[[bytes, bytes], bytes], message: str) -> None:
    card = pace_card()
    protocol = ApduProtocol(Tamper(card, rewrite))
    with pytest.raises(PaceError, match=message):
        perform_pace(protocol, Password.can(CAN), G1_PARAMETERS)
    assert protocol.secure_messaging is None


def test_unsupported_parameters() -> None:
    with pytest.raises(PaceError, match="not supported"):
        PaceParameters.of("0.4.0.127.0.7.2.2.4.3.2", 13)  # DH Integrated Mapping
    with pytest.raises(PaceError, match="not a supported curve"):
        PaceParameters(ECDH_GM_AES128, 2)
    with pytest.raises(PaceError, match="not a PACE protocol"):
        PaceParameters.of("1.2.3", 13)


# === Integrated Mapping: Appendix H.1 known answers, the point encoding, then terminal and card ====


# --- Appendix H.1 known answers ----------------------------------------------------------------------


def test_h1_pseudo_random_function() -> None:
    curve = H1_PARAMETERS.curve
    out = pseudo_random(Cipher.AES128, h(H1["nonce"]), h(H1["terminal_nonce"]), curve.p)
    assert out == h(H1["pseudo_random"])
    assert int.from_bytes(out, "big") % curve.p == int(H1["pseudo_random_mod_p"], 16)


def test_h1_point_encoding() -> None:
    curve = H1_PARAMETERS.curve
    mapped = encode_point(curve, int(H1["pseudo_random_mod_p"], 16))
    assert curve.encode_point(mapped) == encoded(H1["mapped_generator"])
    assert integrated_generator(H1_PARAMETERS, h(H1["nonce"]), h(H1["terminal_nonce"])) == mapped


def test_h1_key_agreement_and_tokens() -> None:
    curve = H1_PARAMETERS.curve
    mapped = integrated_generator(H1_PARAMETERS, h(H1["nonce"]), h(H1["terminal_nonce"]))
    chip = PrivateKey(curve, int(H1["chip_private"], 16))
    terminal = PrivateKey(curve, int(H1["terminal_private"], 16))
    chip_public, terminal_public = chip.multiply(mapped), terminal.multiply(mapped)
    secret = shared_secret(curve, terminal, chip_public)
    assert secret == shared_secret(curve, chip, terminal_public) == h(H1["shared_secret"])
    k_enc, k_mac = session_keys(secret, Cipher.AES128)
    assert (k_enc, k_mac) == (h(H1["k_enc"]), h(H1["k_mac"]))
    assert ECDH_IM_AES128.oid_bytes == h(H1["oid"])
    token = authentication_token(ECDH_IM_AES128, k_mac, curve.encode_point(chip_public))
    assert token == h(H1["terminal_token"])
    token = authentication_token(ECDH_IM_AES128, k_mac, curve.encode_point(terminal_public))
    assert token == h(H1["chip_token"])


def h1_exchange() -> list[tuple[str, str]]:
    """The APDUs of a run with H.1's nonces and keys: (terminal command, chip response)."""
    curve = H1_PARAMETERS.curve
    password = Password.from_mrz_information(MRZ_INFORMATION)
    encrypted = encrypt_nonce(Cipher.AES128, password_key(password, Cipher.AES128), h(H1["nonce"]))
    mapped = integrated_generator(H1_PARAMETERS, h(H1["nonce"]), h(H1["terminal_nonce"]))
    chip_eph = curve.encode_point(PrivateKey(curve, int(H1["chip_private"], 16)).multiply(mapped)).hex()
    term_eph = curve.encode_point(PrivateKey(curve, int(H1["terminal_private"], 16)).multiply(mapped)).hex()
    return [
        ("0022C1A40F800A" + H1["oid"] + "830101", "9000"),
        ("10860000027C0000", "7C128010" + encrypted.hex() + "9000"),
        # Step 2 carries t in DO 81; the chip's answer is an empty 7C.
        ("10860000147C128110" + H1["terminal_nonce"] + "00", "7C009000"),
        ("10860000457C438341" + term_eph + "00", "7C438441" + chip_eph + "9000"),
        ("008600000C7C0A8508" + H1["terminal_token"] + "00", "7C0A8608" + H1["chip_token"] + "9000"),
    ]


def test_h1_terminal_exact_bytes() -> None:
    card = ScriptedCard(h1_exchange())
    protocol = ApduProtocol(card)
    result = perform_pace(
        protocol,
        Password.from_mrz_information(MRZ_INFORMATION),
        H1_PARAMETERS,
        key_source=keys_from(H1["terminal_private"]),
        random_bytes=lambda n: h(H1["terminal_nonce"])[:n],
    )
    assert not card.script
    assert (result.k_enc, result.k_mac) == (h(H1["k_enc"]), h(H1["k_mac"]))


def test_h1_chip_exact_bytes() -> None:
    password = Password.from_mrz_information(MRZ_INFORMATION)
    chip = ChipPace(
        H1_PARAMETERS,
        PasswordType.MRZ,
        password.key,
        random_bytes=lambda n: h(H1["nonce"])[:n],
        key_source=keys_from(H1["chip_private"]),
    )
    chip.encrypted_nonce()
    assert chip.mapping(h(H1["terminal_nonce"])) == b""
    mapped = integrated_generator(H1_PARAMETERS, h(H1["nonce"]), h(H1["terminal_nonce"]))
    curve = H1_PARAMETERS.curve
    terminal = curve.encode_point(PrivateKey(curve, int(H1["terminal_private"], 16)).multiply(mapped))
    chip.key_agreement(terminal)
    assert chip.session_keys() == (h(H1["k_enc"]), h(H1["k_mac"]))
    assert chip.tokens(h(H1["terminal_token"])) == h(H1["chip_token"])


# --- Integrated Mapping's pieces ----------------------------------------------------------------------


ENCODABLE = sorted(pid for pid, curve in STANDARDIZED_CURVES.items() if point_encoding_applies(curve))


@settings(max_examples=60, deadline=None)
@given(pid=st.sampled_from(ENCODABLE), r=st.integers(min_value=0))
def test_point_encoding_lands_on_the_curve(pid: int, r: int) -> None:
    curve = STANDARDIZED_CURVES[pid]
    try:
        mapped = encode_point(curve, r)
    except PaceError:
        # Only the field elements where alpha + alpha^2 vanishes: t = 0 or t^2 = 1.
        assert pow(r % curve.p, 2, curve.p) in (0, 1)
        return
    assert curve.contains(mapped)
    assert curve.multiply(curve.n, mapped) is None


def test_point_encoding_refuses_a_curve_with_p_1_mod_4() -> None:
    secp224r1 = STANDARDIZED_CURVES[10]
    assert not point_encoding_applies(secp224r1)
    with pytest.raises(PaceError, match="no point encoding"):
        encode_point(secp224r1, 12345)
    with pytest.raises(PaceError, match="no point encoding"):
        PaceParameters(ECDH_IM_AES128, 10)


@pytest.mark.parametrize(
    ("cipher", "nonce_length", "terminal_length"),
    [(Cipher.TDES, 16, 16), (Cipher.AES128, 16, 16), (Cipher.AES192, 32, 24), (Cipher.AES256, 32, 32)],
)
def test_pseudo_random_lengths(cipher: Cipher, nonce_length: int, terminal_length: int) -> None:
    p = STANDARDIZED_CURVES[13].p
    out = pseudo_random(cipher, bytes(range(nonce_length)), bytes(range(terminal_length)), p)
    # n = ceil((log2 p + 64) / l) blocks of l bits: l = 128 gives 3, l = 256 gives 2.
    assert len(out) == (48 if nonce_length == 16 else 64)
    assert out != pseudo_random(cipher, bytes(range(nonce_length)), bytes(terminal_length), p)
    with pytest.raises(PaceError, match="terminal's nonce"):
        pseudo_random(cipher, bytes(nonce_length), bytes(terminal_length + 1), p)
    with pytest.raises(PaceError, match="nonce s"):
        pseudo_random(cipher, bytes(nonce_length + 8), bytes(terminal_length), p)


# --- Integrated Mapping: terminal and virtual card ----------------------------------------------------

IM_ALGORITHMS = (ECDH_IM_AES128, ECDH_IM_AES192, ECDH_IM_AES256, ECDH_IM_3DES)
IM_COMBINATIONS = [(algorithm, pid) for algorithm in IM_ALGORITHMS for pid in (12, 13, 15, 17, 18)] + [
    (ECDH_IM_AES128, pid) for pid in (8, 9, 11, 14, 16)
]


@pytest.mark.parametrize(
    ("algorithm", "parameter_id"),
    IM_COMBINATIONS,
    ids=lambda v: v.name[8:] if isinstance(v, PaceAlgorithm) else v,
)
def test_im_with_virtual_card(algorithm: PaceAlgorithm, parameter_id: int) -> None:
    card = pace_card((PaceInfo(algorithm.oid, 2, parameter_id),))
    protocol = run_pace(card, Password.can(CAN))
    assert card.security.granted == {"PACE", "PACE_CAN"}
    assert read_protected(protocol) == PACE_CONTENT


def test_im_wrong_can_is_refused() -> None:
    card = pace_card((PaceInfo(ECDH_IM_AES128.oid, 2, 13),))
    with pytest.raises(PacePasswordError):
        run_pace(card, Password.can("654321"))
    assert card.security.channel is None


def test_chip_refuses_a_terminal_nonce_of_the_wrong_length() -> None:
    card = pace_card((PaceInfo(ECDH_IM_AES128.oid, 2, 13),))
    protocol = ApduProtocol(card)
    with pytest.raises(IncorrectParametersError):
        perform_pace(protocol, Password.can(CAN), H1_PARAMETERS, random_bytes=lambda n: bytes(n - 1))
    assert card.security.channel is None and protocol.secure_messaging is None


class MappingDataChip:
    """A chip that answers Integrated Mapping's step 2 with mapping data, as Generic Mapping would."""

    def __init__(self, card: object) -> None:
        self.card = card

    def transceive(self, command: bytes) -> bytes:
        response: bytes = self.card.transceive(command)  # type: ignore[attr-defined]
        if command[:2] == b"\x10\x86" and response[:2] == b"\x7c\x00":
            return h("7C038201AA9000")
        return response


def test_terminal_refuses_mapping_data_in_integrated_mapping() -> None:
    card = pace_card((PaceInfo(ECDH_IM_AES128.oid, 2, 13),))
    protocol = ApduProtocol(MappingDataChip(card))
    with pytest.raises(PaceError, match="answered Integrated Mapping with mapping data"):
        perform_pace(protocol, Password.can(CAN), H1_PARAMETERS)
    assert protocol.secure_messaging is None


def test_generic_and_integrated_mapping_do_not_mix() -> None:
    """A card offering only GM refuses an IM run (the OID is not in EF.CardAccess)."""
    card = pace_card((PaceInfo(ECDH_GM_AES128.oid, 2, 13),))
    with pytest.raises(IncorrectParametersError):
        perform_pace(ApduProtocol(card), Password.can(CAN), H1_PARAMETERS)


def test_mapped_generator_depends_on_both_nonces() -> None:
    s, t = h(H1["nonce"]), h(H1["terminal_nonce"])
    base = integrated_generator(H1_PARAMETERS, s, t)
    assert integrated_generator(H1_PARAMETERS, bytes(16), t) != base
    assert integrated_generator(H1_PARAMETERS, s, bytes(16)) != base
    assert isinstance(base, Point)
