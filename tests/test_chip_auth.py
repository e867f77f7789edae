"""Chip Authentication (ICAO Doc 9303-11 section 6.2, BSI TR-03110 version 2): terminal and virtual card.

ICAO Doc 9303-11 publishes no Chip Authentication worked example, so the key agreement is checked
against OpenSSL's ECDH (through ``cryptography``) instead, and the protocol end to end against the
virtual card: PACE or BAC, Chip Authentication, then files read under the new keys.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.iso7816 import Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import Tlv
from ektp_card.crypto.bac import bac
from ektp_card.crypto.ca import (
    CA_ECDH_3DES,
    CA_ECDH_AES128,
    CA_ECDH_AES192,
    CA_ECDH_AES256,
    CaAlgorithm,
    CaParameters,
    CaResult,
    CaVariant,
    ca_session_keys,
    ca_token,
    chip_authenticate,
    general_authenticate,
    mse_set_at,
    mse_set_kat,
)
from ektp_card.crypto.kdf import Cipher
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.crypto.pace import Password, perform_pace
from ektp_card.crypto.sm import SecureMessagingSession
from ektp_card.ec import BRAINPOOLP256R1, SECP256R1, SECP384R1, Curve
from ektp_card.errors import ChipAuthenticationError, SecureMessagingError
from ektp_card.lds.dg14 import DG14_FID, DG14_SFI, Dg14
from ektp_card.lds.dg15 import DG15_FID, DG15_SFI
from ektp_card.lds.public_key import cryptography_curve
from ektp_card.session.card import read_card_access
from ektp_card.virtual import AccessCondition, SecurityAttributes, VirtualCard, demo_card
from ektp_card.virtual.bac import enable_bac
from ektp_card.virtual.ca import CA_INFO, CA_PRIVATE_KEY, CA_PUBLIC_KEY, ChipCa, chip_key, install_chip_keys
from ektp_card.virtual.commands import Command, refuse
from ektp_card.virtual.demo import DEMO_AID, EF_PUBLIC_SFI, PUBLIC_CONTENT
from ektp_card.virtual.pace import install_pace

CAN = "123456"
MRZ = MrzInfo("L898902C3", "690806", "940623")
#: Readable after PACE or BAC, as the data groups of an eMRTD.
AFTER_ACCESS_CONTROL = AccessCondition.require("PACE") | AccessCondition.require("BAC")
#: Readable only after Chip Authentication: shows the card granted CA.
EF_CA_FID, EF_CA_SFI = 0x0106, 6
CA_CONTENT = b"readable after Chip Authentication only"


def ca_card(
    curve: Curve = BRAINPOOLP256R1,
    algorithm: CaAlgorithm = CA_ECDH_AES128,
    version: int = 1,
    *,
    key_id: int | None = None,
    dg14: bytes | None = None,
    pace: bool = True,
) -> tuple[VirtualCard, bytes]:
    """A demo card with PACE (or BAC), Chip Authentication keys and EF.DG14 / EF.DG15 in the demo
    application; ``dg14`` replaces the card's own DG14 (a copy taken from another chip)."""
    card = demo_card()
    if pace:
        install_pace(card, can=CAN)
    else:
        enable_bac(card, MRZ)
    own_dg14, dg15 = install_chip_keys(
        card, curve=curve, ca_algorithm=algorithm, ca_version=version, key_id=key_id
    )
    app = card.fs.application(DEMO_AID)
    readable = SecurityAttributes(AFTER_ACCESS_CONTROL, AccessCondition.NEVER)
    card.fs.create_ef(app, DG14_FID, data=dg14 or own_dg14, sfi=DG14_SFI, access=readable)
    card.fs.create_ef(app, DG15_FID, data=dg15, sfi=DG15_SFI, access=readable)
    only_ca = SecurityAttributes(AccessCondition.require("CA"), AccessCondition.NEVER)
    card.fs.create_ef(app, EF_CA_FID, data=CA_CONTENT, sfi=EF_CA_SFI, access=only_ca)
    return card, own_dg14


def open_session(card: VirtualCard, *, pace: bool = True) -> tuple[ApduProtocol, Iso7816Session]:
    """PACE with the CAN (or BAC), then the demo application selected."""
    protocol = ApduProtocol(card)
    session = Iso7816Session(protocol)
    if pace:
        parameters, explicit = read_card_access(session).choose_pace()
        perform_pace(protocol, Password.can(CAN), parameters, send_parameter_id=explicit)
    else:
        bac(protocol, MRZ)
    session.select_aid(DEMO_AID)
    return protocol, session


def read_dg14(session: Iso7816Session) -> Dg14:
    return Dg14.decode(session.read_file(sfi=DG14_SFI))


def openssl_keys(
    card: VirtualCard, parameters: CaParameters, terminal_key: bytes, nonce: bytes = b""
) -> tuple[bytes, bytes]:
    """The session keys from OpenSSL's ECDH with the card's private key: an independent check of
    the key agreement both sides computed with :mod:`ektp_card.ec`."""
    named = cryptography_curve(parameters.curve)
    assert named is not None
    private = ec.derive_private_key(int.from_bytes(card.keys[CA_PRIVATE_KEY], "big"), named)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(named, terminal_key)
    return ca_session_keys(private.exchange(ec.ECDH(), peer), parameters.cipher, nonce)


def record_commands(card: VirtualCard, *ins: int) -> list[CommandApdu]:
    """Record the plain commands (after secure messaging is removed) the card runs for ``ins``."""
    seen: list[CommandApdu] = []
    for code in ins:
        original = card.commands[code]

        def handler(c: VirtualCard, apdu: CommandApdu, run: Command = original) -> ResponseApdu:
            seen.append(apdu)
            return run.handler(c, apdu)

        card.commands[code] = Command(original.name, handler, original.chaining)
    return seen


# --- the commands ------------------------------------------------------------------------------------


def test_command_bytes() -> None:
    # OID 0.4.0.127.0.7.2.2.3.2.2 = 04 00 7F 00 07 02 02 03 02 02 (ICAO Doc 9303-11 section 9.2.7).
    assert mse_set_at(CA_ECDH_AES128).encode().hex().upper() == "002241A40C800A04007F00070202030202"
    assert mse_set_at(CA_ECDH_AES256, 0x0102).encode().hex().upper() == (
        "002241A410800A04007F0007020203020484020102"
    )
    point = BRAINPOOLP256R1.encode_point(BRAINPOOLP256R1.generator)
    assert mse_set_kat(point, 1).encode() == bytes.fromhex("002241A646" + "9141") + point + bytes.fromhex(
        "840101"
    )
    assert (
        general_authenticate(point).encode()
        == bytes.fromhex("0086000045" + "7C43" + "8041") + point + b"\x00"
    )


def test_algorithms_table() -> None:
    assert CA_ECDH_3DES.cipher is Cipher.TDES and CA_ECDH_AES192.cipher is Cipher.AES192
    assert CA_ECDH_AES128.name == "id-CA-ECDH-AES-CBC-CMAC-128"
    assert CA_ECDH_AES128.oid_bytes == bytes.fromhex("04007F00070202030202")


def test_version_2_token_input() -> None:
    # T = CMAC(K_MAC, 7F49 { 06 OID, 86 PK }) truncated to 8 bytes (TR-03110-3 A.2.4).
    from cryptography.hazmat.primitives.ciphers.algorithms import AES
    from cryptography.hazmat.primitives.cmac import CMAC

    key, point = bytes(range(16)), b"\x04" + bytes(64)
    mac = CMAC(AES(key))
    mac.update(bytes.fromhex("7F494F060A04007F000702020302028641") + point)
    assert ca_token(CA_ECDH_AES128, key, point) == mac.finalize()[:8]


# --- PACE or BAC, Chip Authentication, files read under the new keys ------------------------------------


CASES = [
    (BRAINPOOLP256R1, CA_ECDH_AES128, 1, CaVariant.GENERAL_AUTHENTICATE),
    (SECP256R1, CA_ECDH_AES128, 1, CaVariant.GENERAL_AUTHENTICATE),
    (SECP384R1, CA_ECDH_AES256, 1, CaVariant.GENERAL_AUTHENTICATE),
    (BRAINPOOLP256R1, CA_ECDH_3DES, 1, CaVariant.SET_KAT),
    (SECP256R1, CA_ECDH_3DES, 1, CaVariant.GENERAL_AUTHENTICATE),
    (BRAINPOOLP256R1, CA_ECDH_AES128, 2, CaVariant.GENERAL_AUTHENTICATE),
    (SECP384R1, CA_ECDH_AES192, 2, CaVariant.GENERAL_AUTHENTICATE),
]


@pytest.mark.parametrize(
    ("curve", "algorithm", "version", "variant"),
    CASES,
    ids=[f"{c.name}-{a.cipher.value[0]}-v{v}-{x.name}" for c, a, v, x in CASES],
)
def test_pace_then_chip_authentication(
    curve: Curve, algorithm: CaAlgorithm, version: int, variant: CaVariant
) -> None:
    card, _ = ca_card(curve, algorithm, version)
    protocol, session = open_session(card)
    pace_session = protocol.secure_messaging
    assert card.security.granted == {"PACE", "PACE_CAN"}

    parameters = read_dg14(session).ca_parameters()
    assert (parameters.algorithm, parameters.version, parameters.curve) == (algorithm, version, curve)
    seen = record_commands(card, 0x22, 0x86)
    result = chip_authenticate(protocol, parameters, variant=variant)

    assert result.passed and result.supported, result.reason
    assert result.variant is variant and result.parameters == parameters
    assert card.security.granted == {"PACE", "PACE_CAN", "CA"}
    assert (result.k_enc, result.k_mac) != (b"", b"")
    # The chip computed the same K as OpenSSL does from its private key.
    if version == 1:
        assert (result.k_enc, result.k_mac) == openssl_keys(card, parameters, result.terminal_public_key)
    # The plain commands the chip ran, after secure messaging was taken off.
    key = result.terminal_public_key
    if variant is CaVariant.SET_KAT:
        assert [c.encode() for c in seen] == [mse_set_kat(key).encode()]
    else:
        assert [c.encode() for c in seen] == [
            mse_set_at(algorithm).encode(),
            general_authenticate(key).encode(),
        ]
    # New secure messaging, SSC restarted at 0 (the confirmation in version 1 used 1 and 2).
    sm = protocol.secure_messaging
    assert isinstance(sm, SecureMessagingSession) and sm is not pace_session
    assert sm.cipher is algorithm.cipher and sm.ssc == (2 if version == 1 else 0)
    assert isinstance(pace_session, SecureMessagingSession) and pace_session.closed
    # Files read under the new keys; the one behind CA is readable now.
    assert session.read_file(sfi=EF_PUBLIC_SFI) == PUBLIC_CONTENT
    assert session.read_file(sfi=EF_CA_SFI) == CA_CONTENT


def test_version_2_keys_match_openssl() -> None:
    card, _ = ca_card(SECP256R1, CA_ECDH_AES128, 2)
    protocol, session = open_session(card)
    parameters = read_dg14(session).ca_parameters()
    answers: list[bytes] = []
    original = card.commands[0x86]

    def keep_answer(c: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
        response = original.handler(c, apdu)
        answers.append(response.data)
        return response

    card.commands[0x86] = Command(original.name, keep_answer, original.chaining)
    result = chip_authenticate(protocol, parameters)
    assert result.passed
    nonce = Tlv.decode(answers[0]).value[2:10]  # 7C { 81 08 <nonce> 82 08 <token> }
    assert (result.k_enc, result.k_mac) == openssl_keys(card, parameters, result.terminal_public_key, nonce)


def test_bac_then_chip_authentication() -> None:
    card, _ = ca_card(SECP256R1, CA_ECDH_3DES, pace=False)
    protocol, session = open_session(card, pace=False)
    result = chip_authenticate(protocol, read_dg14(session).ca_parameters())
    assert result.passed and result.variant is CaVariant.SET_KAT
    assert card.security.granted == {"BAC", "CA"}
    assert session.read_file(sfi=EF_CA_SFI) == CA_CONTENT


def test_key_id() -> None:
    card, _ = ca_card(key_id=7)
    protocol, session = open_session(card)
    parameters = read_dg14(session).ca_parameters()
    assert parameters.key_id == 7
    seen = record_commands(card, 0x22)
    assert chip_authenticate(protocol, parameters).passed
    assert seen[0].data.endswith(bytes.fromhex("840107"))


def test_wrong_key_id_refused() -> None:
    card, _ = ca_card(key_id=7)
    protocol, session = open_session(card)
    parameters = read_dg14(session).ca_parameters()
    wrong = CaParameters(parameters.algorithm, 1, parameters.curve, parameters.chip_public_key, 8)
    result = chip_authenticate(protocol, wrong)
    assert not result.passed and "6A88" in result.reason
    # The refusal came before the key switch: the PACE session goes on.
    assert session.read_file(sfi=EF_PUBLIC_SFI) == PUBLIC_CONTENT


# --- a cloned chip: DG14 copied, the private key not -----------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "version"),
    [(CA_ECDH_AES128, 1), (CA_ECDH_3DES, 1), (CA_ECDH_AES256, 2)],
    ids=["v1-AES", "v1-3DES-KAT", "v2-AES"],
)
def test_cloned_chip_fails(algorithm: CaAlgorithm, version: int) -> None:
    _, genuine_dg14 = ca_card(SECP256R1, algorithm, version)
    clone, _ = ca_card(SECP256R1, algorithm, version, dg14=genuine_dg14)
    protocol, session = open_session(clone)
    result = chip_authenticate(protocol, read_dg14(session).ca_parameters())

    assert not result.passed and result.supported
    assert "private key" in result.reason and "cloned" in result.reason
    if version == 2:
        assert "token" in result.reason
    with pytest.raises(ChipAuthenticationError, match="^Chip Authentication failed: "):
        result.require()
    # No session survives: the terminal dropped its keys, and the chip refuses what follows (6988
    # if it still held a channel, which the plain command ends; 6982 if the MAC failure ended it).
    assert protocol.secure_messaging is None
    answer = protocol.transmit(CommandApdu(0x00, 0xB0, 0x80 | EF_CA_SFI, 0, le=256))
    assert answer.sw in (SW.SM_DATA_OBJECTS_INCORRECT, SW.SECURITY_STATUS_NOT_SATISFIED) and not answer.data
    assert not clone.security.granted and clone.security.channel is None


def test_skipping_the_confirmation_shows_the_clone_on_the_next_command() -> None:
    _, genuine_dg14 = ca_card()
    clone, _ = ca_card(dg14=genuine_dg14)
    protocol, session = open_session(clone)
    result = chip_authenticate(protocol, read_dg14(session).ca_parameters(), confirm_with=None)
    assert result.passed and "next protected answer" in result.reason
    with pytest.raises(SecureMessagingError, match="6988"):
        session.read_file(sfi=EF_PUBLIC_SFI)


# --- the card's refusals -----------------------------------------------------------------------------------


def test_chip_authentication_needs_a_secure_session() -> None:
    card, dg14 = ca_card()
    protocol = ApduProtocol(card)
    parameters = Dg14.decode(dg14).ca_parameters()
    with pytest.raises(ChipAuthenticationError, match="inside the secure messaging"):
        chip_authenticate(protocol, parameters)
    # The card refuses the commands outside PACE / BAC as well.
    assert protocol.transmit(mse_set_at(CA_ECDH_AES128)).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    point = parameters.chip_public_key
    assert protocol.transmit(mse_set_kat(point)).sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_card_without_chip_authentication() -> None:
    card = demo_card()
    install_pace(card, can=CAN)
    protocol, _ = open_session(card)
    assert protocol.transmit(mse_set_at(CA_ECDH_AES128)).sw == SW.INCORRECT_P1P2
    assert protocol.transmit(CommandApdu(0x00, 0x22, 0x81, 0xB6, b"\x83\x01\x01")).sw == SW.INCORRECT_P1P2


@pytest.mark.parametrize(
    ("commands", "sw"),
    [
        ([mse_set_at(CA_ECDH_AES256)], SW.INCORRECT_DATA),  # not the card's protocol
        ([CommandApdu(0x00, 0x22, 0x41, 0xA4, bytes.fromhex("8301 01"))], SW.INCORRECT_DATA),  # no DO 80
        ([mse_set_kat(b"\x04" + bytes(64))], SW.FUNCTION_NOT_SUPPORTED),  # KAT only for 3DES
        ([general_authenticate(b"\x04" + bytes(64))], SW.CONDITIONS_NOT_SATISFIED),  # no MSE first
        (
            [mse_set_at(CA_ECDH_AES128), general_authenticate(b"\x04" + bytes(64))],
            SW.INCORRECT_DATA,
        ),  # not a point
        (
            [mse_set_at(CA_ECDH_AES128), CommandApdu(0x00, 0x86, 0, 0, bytes.fromhex("7C028100"), le=256)],
            SW.INCORRECT_DATA,
        ),
        (
            [mse_set_at(CA_ECDH_AES128), CommandApdu(0x10, 0x86, 0, 0, bytes.fromhex("7C00"), le=256)],
            SW.CONDITIONS_NOT_SATISFIED,
        ),
    ],
    ids=["other-oid", "no-oid", "kat-for-aes", "ga-alone", "bad-point", "wrong-do", "chained"],
)
def test_refusals_keep_the_session(commands: list[CommandApdu], sw: int) -> None:
    card, _ = ca_card()
    protocol, session = open_session(card)
    responses = [protocol.transmit(c).sw for c in commands]
    assert responses[-1] == sw and all(r == SW.OK for r in responses[:-1])
    assert card.session.protocol_state is None and "CA" not in card.security.granted
    # The PACE session goes on.
    assert session.read_file(sfi=EF_PUBLIC_SFI) == PUBLIC_CONTENT


def test_refused_result() -> None:
    card, _ = ca_card()
    protocol, session = open_session(card)
    parameters = read_dg14(session).ca_parameters()
    other = CaParameters(CA_ECDH_AES256, 1, parameters.curve, parameters.chip_public_key)
    result = chip_authenticate(protocol, other)
    assert not result.passed and result.reason.startswith(
        "the chip refused MSE:Set AT for Chip Authentication (6A80"
    )
    assert session.read_file(sfi=EF_PUBLIC_SFI) == PUBLIC_CONTENT


@pytest.mark.parametrize(
    ("ins", "step"),
    [(0x22, "MSE:Set AT for Chip Authentication"), (0x86, "GENERAL AUTHENTICATE for Chip Authentication")],
    ids=["mse-set-at", "general-authenticate"],
)
def test_a_refused_step_names_itself_and_its_status_word(ins: int, step: str) -> None:
    card, _ = ca_card()
    protocol, session = open_session(card)
    parameters = read_dg14(session).ca_parameters()
    original = card.commands[ins]

    def refusing(c: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
        refuse(SW.SECURITY_STATUS_NOT_SATISFIED)

    card.commands[ins] = Command(original.name, refusing, original.chaining)
    result = chip_authenticate(protocol, parameters)
    assert not result.passed and (result.step, result.sw) == (step, SW.SECURITY_STATUS_NOT_SATISFIED)
    assert result.reason == f"the chip refused {step} (6982: security status not satisfied)"
    with pytest.raises(ChipAuthenticationError) as info:
        result.require()
    assert str(info.value) == f"Chip Authentication failed: {result.reason}"
    assert (info.value.step, info.value.sw) == (step, SW.SECURITY_STATUS_NOT_SATISFIED)
    # The refusal came before the key switch: the PACE session goes on, and CA can run again.
    card.commands[ins] = original
    assert session.read_file(sfi=EF_PUBLIC_SFI) == PUBLIC_CONTENT
    again = chip_authenticate(protocol, parameters)
    assert again.passed and (again.step, again.sw) == ("", SW.OK)


def test_a_failure_without_a_refusal_names_no_step() -> None:
    _, genuine_dg14 = ca_card()
    clone, _ = ca_card(dg14=genuine_dg14)
    protocol, session = open_session(clone)
    result = chip_authenticate(protocol, read_dg14(session).ca_parameters())
    assert not result.passed and (result.step, result.sw) == ("", SW.OK)
    with pytest.raises(ChipAuthenticationError) as info:
        result.require()
    assert (info.value.step, info.value.sw) == ("", None)


def test_set_kat_only_for_3des_version_1() -> None:
    card, dg14 = ca_card()
    protocol, _ = open_session(card)
    with pytest.raises(ChipAuthenticationError, match="3DES only"):
        chip_authenticate(protocol, Dg14.decode(dg14).ca_parameters(), variant=CaVariant.SET_KAT)


# --- keys on the card -----------------------------------------------------------------------------------


def test_private_key_stays_on_the_card(tmp_path: object) -> None:
    card, _ = ca_card()
    private = card.keys[CA_PRIVATE_KEY]
    key = chip_key(card)
    assert key is not None and key.private == int.from_bytes(private, "big")
    assert repr(key) == "ChipKey(id-CA-ECDH-AES-CBC-CMAC-128, version 1, brainpoolP256r1)"
    assert {CA_PRIVATE_KEY, CA_PUBLIC_KEY, CA_INFO} <= card.keys.keys()
    # Every byte the card sends in a whole session: the private key is never among them.
    sent: list[bytes] = []

    class Tap:
        def transceive(self, command: bytes) -> bytes:
            response = card.transceive(command)
            sent.append(response)
            return response

    protocol = ApduProtocol(Tap())
    session = Iso7816Session(protocol)
    parameters, _ = read_card_access(session).choose_pace()
    perform_pace(protocol, Password.can(CAN), parameters)
    session.select_aid(DEMO_AID)
    assert chip_authenticate(protocol, read_dg14(session).ca_parameters()).passed
    assert all(private not in response for response in sent)


def test_keys_survive_the_card_image(tmp_path: pytest.TempPathFactory) -> None:
    card, _ = ca_card()
    path = tmp_path / "card.json"  # type: ignore[operator]
    card.save(path)
    loaded = VirtualCard.load(path)
    protocol, session = open_session(loaded)
    assert chip_authenticate(protocol, read_dg14(session).ca_parameters()).passed


def test_chip_side_agreement() -> None:
    card, _ = ca_card(version=2)
    key = chip_key(card)
    assert key is not None
    chip = ChipCa(key, random_bytes=lambda n: bytes(range(n)))
    terminal = BRAINPOOLP256R1.encode_point(BRAINPOOLP256R1.multiply(5, BRAINPOOLP256R1.generator))  # type: ignore[arg-type]
    answer, keys = chip.agree(terminal)
    token = ca_token(CA_ECDH_AES128, keys[1], terminal)
    assert answer == bytes.fromhex("7C14" + "8108 0001020304050607" + "8208") + token
    with pytest.raises(ChipAuthenticationError, match="invalid"):
        chip.agree(terminal[:-1])


def test_result_repr_hides_keys() -> None:
    card, _ = ca_card()
    protocol, session = open_session(card)
    result = chip_authenticate(protocol, read_dg14(session).ca_parameters())
    text = repr(result)
    assert result.k_enc.hex() not in text and result.k_mac.hex() not in text
    assert "CaParameters(id-CA-ECDH-AES-CBC-CMAC-128, version 1, brainpoolP256r1)" in text


def test_fixed_ephemeral_key() -> None:
    # A caller that ran Terminal Authentication version 2 first reuses its ephemeral key.
    card, _ = ca_card()
    protocol, session = open_session(card)
    fixed: Callable[[Curve], int] = lambda curve: 0x1234567890ABCDEF  # noqa: E731
    result = chip_authenticate(protocol, read_dg14(session).ca_parameters(), key_source=fixed)
    assert result.passed
    point = BRAINPOOLP256R1.multiply(0x1234567890ABCDEF, BRAINPOOLP256R1.generator)
    assert point is not None and result.terminal_public_key == BRAINPOOLP256R1.encode_point(point)


@pytest.mark.parametrize(
    ("version", "answer", "reason"),
    [
        (1, "7C0A8108" + "00" * 8, "answered Chip Authentication version 1 with version 2 data"),
        (2, "7C0A8108" + "00" * 8, "lacks its nonce (DO 81) or token (DO 82)"),
        (2, "7C0C8106" + "00" * 6 + "8202" + "0000", "lacks its nonce (DO 81) or token (DO 82)"),
        (2, "7C148108" + "00" * 8 + "8208" + "00" * 8, "token is wrong"),
        (1, "7D00", "malformed GENERAL AUTHENTICATE response"),
    ],
    ids=["v1-with-nonce", "v2-no-token", "v2-short-nonce", "v2-wrong-token", "v1-wrong-tag"],
)
def test_malformed_chip_answers(version: int, answer: str, reason: str) -> None:
    card, _ = ca_card(version=version)
    protocol, session = open_session(card)
    card.commands[0x86] = Command(
        "GENERAL AUTHENTICATE", lambda c, apdu: ResponseApdu(bytes.fromhex(answer), SW.OK)
    )
    result = chip_authenticate(protocol, read_dg14(session).ca_parameters())
    assert not result.passed and reason in result.reason
    # The chip said 9000, so it left the PACE session: the terminal drops it too.
    assert protocol.secure_messaging is None


def test_not_supported_result() -> None:
    result = CaResult.not_supported("DG14 offers no Chip Authentication this library supports")
    assert (result.passed, result.supported, result.parameters) == (False, False, None)
    with pytest.raises(ChipAuthenticationError, match="no Chip Authentication this library supports"):
        result.require()
