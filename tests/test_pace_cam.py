"""PACE-ECDH-CAM (ICAO Doc 9303-11 sections 4.4.3.3.3 and 4.4.3.5): the chip authentication data and
its encryption, terminal and virtual card together, and the verdict on passports and e-KTPs: proven
only with a key EF.SOD covers, CLONED when the data is wrong."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher as BlockCipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from ektp_card.access import parse_mrz
from ektp_card.apdu.iso7816 import Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.crypto.pace import (
    ECDH_CAM_AES128,
    ECDH_CAM_AES192,
    ECDH_CAM_AES256,
    ECDH_GM_AES128,
    ECDH_IM_AES128,
    ChipAuthenticationMapping,
    MappingType,
    PaceAlgorithm,
    PaceParameters,
    Password,
    chip_authentication_data,
    decrypt_chip_authentication_data,
    encrypt_chip_authentication_data,
    perform_pace,
)
from ektp_card.ec import BRAINPOOLP256R1, STANDARDIZED_CURVES
from ektp_card.errors import PaceError, ReferencedDataNotFoundError
from ektp_card.lds import PaceInfo
from ektp_card.lds.sod import build_sod, parse_sod
from ektp_card.personalize import personalize, plan_from_record
from ektp_card.personalize.plan import Algorithms, PlanError
from ektp_card.session.card import read_card_access
from ektp_card.verify.card import verify_card
from ektp_card.verify.passive import Status
from ektp_card.verify.passport import verify_passport
from ektp_card.verify.report import Verdict
from ektp_card.virtual import VirtualCard, demo_card
from ektp_card.virtual.ca import CA_PRIVATE_KEY, install_chip_authentication
from ektp_card.virtual.pace import install_pace
from ektp_card.virtual.perso import blank_card

if TYPE_CHECKING:
    from fixtures.cards import IssuerOf

    from ektp_card.lds.synthetic import SyntheticCitizen
    from ektp_card.pytest_plugin import Passport
    from ektp_card.sandbox import Sandbox

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "icao9303-part11.json").read_text())
G1 = VECTORS["pace_ecdh_gm_brainpoolp256r1_aes128"]
CAN = "123456"
MASTER = bytes.fromhex("404142434445464748494A4B4C4D4E4F")


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# --- the chip authentication data -----------------------------------------------------------------


def test_chip_authentication_data_proves_the_static_key() -> None:
    """CA_IC = SK_IC^-1 * SK_map mod n, so CA_IC * PK_IC = PK_map (section 4.4.3.5); G.1's mapping key."""
    curve = BRAINPOOLP256R1
    map_private = int(G1["chip_map_private"], 16)
    static_private = int(G1["chip_eph_private"], 16)  # any valid scalar serves as the static key
    data = chip_authentication_data(curve, static_private, map_private)
    assert len(data) == 32
    chip_map = "04" + G1["chip_map_public"][0] + G1["chip_map_public"][1]
    cam = ChipAuthenticationMapping(curve, h(chip_map), data)
    static_public = curve.encode_point(curve.multiply(static_private, curve.generator))
    assert cam.verify(static_public)
    assert not cam.verify(curve.encode_point(curve.generator))
    assert not cam.verify(b"\x04" + bytes(64))  # not a point: proves nothing, raises nothing


def test_encryption_of_the_chip_authentication_data() -> None:
    """A_IC = AES-CBC(K_Enc, IV = AES(K_Enc, FF..FF)) of CA_IC padded (ISO/IEC 9797-1 method 2),
    checked against the cipher applied by hand with G.1's K_Enc."""
    k_enc = h(G1["ks_enc"])
    data = bytes(range(32))
    encrypted = encrypt_chip_authentication_data(k_enc, data)
    iv_enc = BlockCipher(algorithms.AES(k_enc), modes.ECB()).encryptor()  # noqa: S305 - one block
    iv = iv_enc.update(b"\xff" * 16) + iv_enc.finalize()
    plain = BlockCipher(algorithms.AES(k_enc), modes.CBC(iv)).decryptor()
    assert plain.update(encrypted) + plain.finalize() == data + b"\x80" + bytes(15)
    assert len(encrypted) == 48
    assert decrypt_chip_authentication_data(k_enc, encrypted) == data
    with pytest.raises(PaceError, match="whole number of blocks"):
        decrypt_chip_authentication_data(k_enc, encrypted[:-1])
    with pytest.raises(PaceError, match="padding"):
        decrypt_chip_authentication_data(bytes(16), encrypted)


def test_cam_runs_with_aes_only() -> None:
    with pytest.raises(PaceError, match="not a PACE protocol"):
        PaceParameters.of("0.4.0.127.0.7.2.2.4.6.1", 13)  # no CAM with 3DES in section 9.2.3


# --- terminal and virtual card ----------------------------------------------------------------------


def cam_card(algorithm: PaceAlgorithm, parameter_id: int, *, ca_curve: int | None = None) -> VirtualCard:
    card = demo_card()
    install_pace(card, can=CAN, infos=(PaceInfo(algorithm.oid, 2, parameter_id),))
    install_chip_authentication(card, curve=STANDARDIZED_CURVES[ca_curve or parameter_id])
    return card


def static_public(card: VirtualCard) -> bytes:
    from ektp_card.virtual.ca import chip_key

    key = chip_key(card)
    assert key is not None
    return key.curve.encode_point(key.curve.multiply(key.private, key.curve.generator))


@pytest.mark.parametrize(
    ("algorithm", "parameter_id"),
    [(a, pid) for a in (ECDH_CAM_AES128, ECDH_CAM_AES192, ECDH_CAM_AES256) for pid in (12, 13, 15, 17)],
    ids=lambda v: v.name[8:] if isinstance(v, PaceAlgorithm) else v,
)
def test_cam_with_virtual_card(algorithm: PaceAlgorithm, parameter_id: int) -> None:
    card = cam_card(algorithm, parameter_id)
    protocol = ApduProtocol(card)
    parameters, _ = read_card_access(Iso7816Session(protocol)).choose_pace()
    assert parameters.algorithm is algorithm
    result = perform_pace(protocol, Password.can(CAN), parameters)
    assert result.chip_authentication is not None
    assert result.chip_authentication.verify(static_public(card))
    assert card.security.granted == {"PACE", "PACE_CAN"}


def test_terminal_prefers_cam_and_can_be_kept_to_another_mapping() -> None:
    card = demo_card()
    infos = tuple(PaceInfo(a.oid, 2, 13) for a in (ECDH_GM_AES128, ECDH_IM_AES128, ECDH_CAM_AES128))
    install_pace(card, can=CAN, infos=infos)
    install_chip_authentication(card)
    access = read_card_access(Iso7816Session(ApduProtocol(card)))
    assert access.choose_pace()[0].algorithm is ECDH_CAM_AES128
    for mapping, expected in ((MappingType.IM, ECDH_IM_AES128), (MappingType.GM, ECDH_GM_AES128)):
        parameters, explicit = access.choose_pace(mapping)
        assert parameters.algorithm is expected
        card.power_on()
        result = perform_pace(ApduProtocol(card), Password.can(CAN), parameters, send_parameter_id=explicit)
        assert result.chip_authentication is None


def test_card_without_a_key_on_the_pace_curve_refuses_cam() -> None:
    card = cam_card(ECDH_CAM_AES128, 13, ca_curve=12)
    with pytest.raises(ReferencedDataNotFoundError):
        perform_pace(ApduProtocol(card), Password.can(CAN), PaceParameters(ECDH_CAM_AES128, 13))
    card = demo_card()
    install_pace(card, can=CAN, infos=(PaceInfo(ECDH_CAM_AES128.oid, 2, 13),))
    with pytest.raises(ReferencedDataNotFoundError):
        perform_pace(ApduProtocol(card), Password.can(CAN), PaceParameters(ECDH_CAM_AES128, 13))


class Rewrite:
    """A transport that rewrites the answer to the last GENERAL AUTHENTICATE."""

    def __init__(self, card: VirtualCard, rewrite: Callable[[bytes], bytes]) -> None:
        self.card, self.rewrite = card, rewrite

    def transceive(self, command: bytes) -> bytes:
        response = self.card.transceive(command)
        return self.rewrite(response) if command[:2] == b"\x00\x86" else response


@pytest.mark.parametrize(
    ("algorithm", "rewrite", "message"),
    [
        pytest.param(
            ECDH_CAM_AES128,
            lambda r: h("7C0A") + r[2:12] + r[-2:],
            "no chip authentication data",
            id="missing",
        ),
        pytest.param(
            ECDH_CAM_AES128,
            lambda r: r[:-3] + bytes([r[-3] ^ 1]) + r[-2:],
            "padding",
            id="tampered",
        ),
        pytest.param(
            ECDH_GM_AES128,
            lambda r: h("7C1C") + r[2:12] + h("8A10") + bytes(16) + r[-2:],
            "without Chip Authentication Mapping",
            id="unexpected",
        ),
    ],
)
def test_terminal_refuses_bad_chip_authentication_data(
    algorithm: PaceAlgorithm, rewrite: Callable[[bytes], bytes], message: str
) -> None:
    card = cam_card(algorithm, 13)
    protocol = ApduProtocol(Rewrite(card, rewrite))
    with pytest.raises(PaceError, match=message):
        perform_pace(protocol, Password.can(CAN), PaceParameters(algorithm, 13))
    assert protocol.secure_messaging is None


# --- the verdict: passports ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pace", "proved_by"),
    [
        (False, ("AA",)),
        (True, ("AA",)),
        (MappingType.IM, ("AA",)),
        (MappingType.CAM, ("CAM", "AA")),
    ],
    ids=["bac", "gm", "im", "cam"],
)
def test_passport_in_each_mapping_is_genuine(
    ektp_passport: Callable[..., Passport], pace: bool | MappingType, proved_by: tuple[str, ...]
) -> None:
    passport = ektp_passport(pace=pace)
    report = verify_passport(passport.card, parse_mrz(passport.mrz), passport.trust)
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert report.proved_by == proved_by
    assert report.to_json()["chip_proved_by"] == list(proved_by)
    assert report.access is not None and report.access.parameters is not None or pace is False
    if pace is not False:
        assert report.access is not None and report.access.parameters is not None
        mapping = MappingType.GM if pace is True else pace
        assert report.access.parameters.algorithm.mapping is mapping


def test_passport_kept_to_a_mapping_it_lacks_is_refused(ektp_passport: Callable[..., Passport]) -> None:
    passport = ektp_passport(pace=MappingType.IM)
    with pytest.raises(PaceError, match="no PACE with CAM"):
        verify_passport(passport.card, parse_mrz(passport.mrz), passport.trust, pace_mapping=MappingType.CAM)


def test_passport_with_wrong_cam_data_is_cloned(ektp_passport: Callable[..., Passport]) -> None:
    """A chip answering CAM with another key than DG14's (a clone without the private key)."""
    passport = ektp_passport(pace=MappingType.CAM)
    curve = BRAINPOOLP256R1
    passport.card.keys[CA_PRIVATE_KEY] = (12345).to_bytes((curve.n.bit_length() + 7) // 8, "big")
    report = verify_passport(passport.card, parse_mrz(passport.mrz), passport.trust)
    assert report.verdict is Verdict.CLONED
    check = report.check("chip-authentication")
    assert check.status is Status.FAIL and "does not match DG14's key" in check.reason
    assert "CAM" not in report.proved_by


def test_cam_passport_whose_key_ef_sod_does_not_cover_is_not_genuine(
    ektp_passport: Callable[..., Passport], ektp_office: Sandbox
) -> None:
    """EF.SOD re-signed by the document signer without DG14, and no EF.CardSecurity (the chip keeps its key
    in DG14 alone): CAM proves a key nobody signed."""
    from ektp_card.sandbox import make_passport

    passport = ektp_passport(pace=MappingType.CAM)
    passport = dataclasses.replace(passport, card=make_passport(ektp_office, pace=MappingType.CAM,
                                                                cam_key_in="dg14"))
    passport.card.power_on()
    app = passport.card.fs.application(bytes.fromhex("A0000002471001"))
    sod_ef = app.child_ef(0x011D)
    assert sod_ef is not None
    covered = [n for n, _ in parse_sod(bytes(sod_ef.data)).security_object.hashes]
    assert 14 in covered
    groups = {n: bytes(ef.data) for n in covered if n != 14 and (ef := app.child_ef(0x0100 + n)) is not None}
    signer = ektp_office.document_signer
    sod_ef.data = bytearray(build_sod(groups, signer.signer, signer.certificate))
    report = verify_passport(passport.card, parse_mrz(passport.mrz), passport.trust)
    assert report.verdict is not Verdict.GENUINE
    assert report.verdict is Verdict.CLONED
    check = report.check("chip-authentication")
    assert check.status is Status.FAIL and "covers no DG14" in check.reason
    assert "EF.CardSecurity could not be read" in check.reason
    assert report.proved_by == ("AA",)


# --- the verdict: e-KTP ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "proved_by"),
    [(ECDH_GM_AES128, ("CA", "AA")), (ECDH_IM_AES128, ("CA", "AA")), (ECDH_CAM_AES128, ("CAM", "AA"))],
    ids=["gm", "im", "cam"],
)
def test_ektp_in_each_mapping_is_genuine(
    issuer: IssuerOf, citizen: SyntheticCitizen, algorithm: PaceAlgorithm, proved_by: tuple[str, ...]
) -> None:
    card = blank_card(MASTER, (40).to_bytes(8, "big"))
    plan = plan_from_record(citizen.record, algorithms=Algorithms(pace_protocol=algorithm.oid))
    result = personalize(card, plan, MASTER, issuer().ds)
    card.power_on()
    report = verify_card(card, result.can, issuer().trust)
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert report.proved_by == proved_by
    assert report.access is not None and report.access.parameters is not None
    assert report.access.parameters.algorithm is algorithm
    if algorithm is ECDH_CAM_AES128:
        card.keys[CA_PRIVATE_KEY] = (777).to_bytes(32, "big")
        card.power_on()
        assert verify_card(card, result.can, issuer().trust).verdict is Verdict.CLONED


def test_cam_needs_the_chip_authentication_key_on_the_pace_curve() -> None:
    with pytest.raises(PlanError, match="another curve"):
        Algorithms(pace_protocol=ECDH_CAM_AES128.oid, ca_parameter_id=12)


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), data=st.binary(max_size=80))
def test_hostile_chip_authentication_data_is_a_pace_error(key: bytes, data: bytes) -> None:
    """Whatever a chip puts in DO 8A decrypts or is a PaceError; never another exception."""
    try:
        plain = decrypt_chip_authentication_data(key, data)
    except PaceError:
        return
    assert plain and encrypt_chip_authentication_data(key, plain) == data
    cam = ChipAuthenticationMapping(BRAINPOOLP256R1, data, plain)
    assert cam.verify(data) in (True, False)
