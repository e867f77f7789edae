"""PACE-ECDH-IM: ICAO Doc 9303-11 Appendix H.1 known answers, the point encoding, then terminal and
virtual card together in every cipher and curve the encoding applies to."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ektp_card.apdu.iso7816 import Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.crypto.kdf import Cipher, session_keys
from ektp_card.crypto.pace import (
    ECDH_GM_AES128,
    ECDH_IM_3DES,
    ECDH_IM_AES128,
    ECDH_IM_AES192,
    ECDH_IM_AES256,
    PaceAlgorithm,
    PaceParameters,
    Password,
    PasswordType,
    authentication_token,
    encode_point,
    encrypt_nonce,
    integrated_generator,
    password_key,
    perform_pace,
    point_encoding_applies,
    pseudo_random,
    shared_secret,
)
from ektp_card.ec import STANDARDIZED_CURVES, Curve, Point, PrivateKey
from ektp_card.errors import IncorrectParametersError, PaceError, PacePasswordError
from ektp_card.lds import PaceInfo
from ektp_card.lds.conditions import PACE, AccessCondition, SecurityAttributes
from ektp_card.session.card import read_card_access
from ektp_card.virtual import VirtualCard, demo_card
from ektp_card.virtual.demo import DEMO_AID
from ektp_card.virtual.pace import ChipPace, install_pace

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "icao9303-part11.json").read_text())
H1 = VECTORS["pace_ecdh_im_brainpoolp256r1_aes128"]
H1_PARAMETERS = PaceParameters(ECDH_IM_AES128, 13)
#: The password of the exchange tests: the MRZ of Appendix G.1 (H.1 starts from the nonce).
MRZ_INFORMATION = VECTORS["pace_ecdh_gm_brainpoolp256r1_aes128"]["mrz_information"]


CAN = "123456"
#: An EF of the demo application readable only after PACE.
EF_PACE_FID, EF_PACE_SFI = 0x0105, 5
PACE_CONTENT = b"readable after PACE only"


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def pace_card(infos: tuple[PaceInfo, ...]) -> VirtualCard:
    card = demo_card()
    app = card.fs.application(DEMO_AID)
    access = SecurityAttributes(AccessCondition.require(PACE), AccessCondition.NEVER)
    card.fs.create_ef(app, EF_PACE_FID, data=PACE_CONTENT, sfi=EF_PACE_SFI, access=access)
    install_pace(card, can=CAN, infos=infos)
    return card


def run_pace(card: VirtualCard, password: Password) -> ApduProtocol:
    protocol = ApduProtocol(card)
    parameters, explicit = read_card_access(Iso7816Session(protocol)).choose_pace()
    perform_pace(protocol, password, parameters, send_parameter_id=explicit)
    return protocol


def read_protected(protocol: ApduProtocol) -> bytes:
    session = Iso7816Session(protocol)
    session.select_aid(DEMO_AID)
    return session.read_file(sfi=EF_PACE_SFI)


class ScriptedCard:
    """A transport that checks each command against a script and plays the chip's answers."""

    def __init__(self, script: list[tuple[str, str]]) -> None:
        self.script = [(h(c), h(r)) for c, r in script]

    def transceive(self, command: bytes) -> bytes:
        expected, response = self.script.pop(0)
        assert command.hex().upper() == expected.hex().upper()
        return response


def encoded(xy: list[str]) -> bytes:
    return h("04" + xy[0] + xy[1])


def keys_from(*values: str) -> Callable[[Curve], int]:
    it: Iterator[str] = iter(values)
    return lambda curve: int(next(it), 16)


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


# --- the pieces ---------------------------------------------------------------------------------------


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


# --- terminal and virtual card ----------------------------------------------------------------------

IM_ALGORITHMS = (ECDH_IM_AES128, ECDH_IM_AES192, ECDH_IM_AES256, ECDH_IM_3DES)
COMBINATIONS = [(algorithm, pid) for algorithm in IM_ALGORITHMS for pid in (12, 13, 15, 17, 18)] + [
    (ECDH_IM_AES128, pid) for pid in (8, 9, 11, 14, 16)
]


@pytest.mark.parametrize(
    ("algorithm", "parameter_id"),
    COMBINATIONS,
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
