"""EF.CardAccess: SecurityInfos parsing and building (ICAO Doc 9303-11 section 9.2, TR-03110-3 A.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ektp_card.apdu.iso7816 import Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.crypto.kdf import Cipher
from ektp_card.crypto.pace import (
    ECDH_GM_3DES,
    ECDH_GM_AES128,
    ECDH_GM_AES256,
    PACE_ALGORITHMS,
    KeyAgreement,
    MappingType,
)
from ektp_card.ec import BRAINPOOLP256R1, SECP384R1
from ektp_card.errors import LdsFormatError, PaceError
from ektp_card.lds import (
    EF_CARD_ACCESS_FID,
    CardAccess,
    OtherSecurityInfo,
    PaceInfo,
)
from ektp_card.session.card import read_card_access
from ektp_card.virtual import demo_card
from ektp_card.virtual.pace import install_pace

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "icao9303-part11.json").read_text())
G1 = VECTORS["pace_ecdh_gm_brainpoolp256r1_aes128"]

# ChipAuthenticationInfo (id-CA-ECDH-AES-CBC-CMAC-128, version 2, keyId 1) and a
# PACEDomainParameterInfo shape (id-PACE-ECDH-GM with an AlgorithmIdentifier), neither parsed here.
CA_INFO = bytes.fromhex("3012" "060A04007F00070202030202" "020102" "020101")
PACE_DP_INFO = bytes.fromhex("3016" "060904007F000702020402" "3006" "06012A" "02010D" "020101")


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def set_of(*elements: bytes) -> bytes:
    body = b"".join(elements)
    assert len(body) < 0x80
    return bytes((0x31, len(body))) + body


def test_g1_pace_info_round_trip() -> None:
    raw = h(G1["pace_info"])
    info = PaceInfo.decode(raw)
    assert info == PaceInfo("0.4.0.127.0.7.2.2.4.2.2", 2, 13)
    assert info.encode() == raw
    assert info.algorithm is ECDH_GM_AES128
    assert info.algorithm.name == "id-PACE-ECDH-GM-AES-CBC-CMAC-128"
    assert info.supported
    assert info.parameters.curve is BRAINPOOLP256R1
    assert info.parameters.cipher is Cipher.AES128


def test_g1_security_infos_round_trip() -> None:
    raw = set_of(h(G1["pace_info"]))
    access = CardAccess.decode(raw)
    assert access.infos == (PaceInfo("0.4.0.127.0.7.2.2.4.2.2", 2, 13),)
    assert access.encode() == raw == h("3114") + h(G1["pace_info"])


def test_unknown_security_infos_are_kept_raw() -> None:
    raw = set_of(CA_INFO, h(G1["pace_info"]), PACE_DP_INFO)
    access = CardAccess.decode(raw)
    assert access.infos[0] == OtherSecurityInfo("0.4.0.127.0.7.2.2.3.2.2", CA_INFO)
    assert isinstance(access.infos[1], PaceInfo)
    # id-PACE-ECDH-GM alone (no cipher arc) names a PACEDomainParameterInfo, not a PACEInfo.
    assert access.infos[2] == OtherSecurityInfo("0.4.0.127.0.7.2.2.4.2", PACE_DP_INFO)
    assert access.pace_infos == (access.infos[1],)
    assert access.encode() == raw


def test_pace_info_without_parameter_id() -> None:
    info = PaceInfo("0.4.0.127.0.7.2.2.4.2.4", 2)
    assert info.encode() == h("300F060A04007F000702020402040201 02".replace(" ", ""))
    assert PaceInfo.decode(info.encode()) == info
    # Without a standardized parameter ID the chip would name proprietary parameters.
    assert not info.supported
    with pytest.raises(PaceError):
        _ = info.parameters


def test_oid_table() -> None:
    assert ECDH_GM_AES256.oid == "0.4.0.127.0.7.2.2.4.2.4"
    assert ECDH_GM_3DES.oid == "0.4.0.127.0.7.2.2.4.2.1"
    assert ECDH_GM_3DES.name == "id-PACE-ECDH-GM-3DES-CBC-CBC"
    assert ECDH_GM_AES128.oid_bytes == h("04007F00070202040202")
    dh_gm = PACE_ALGORITHMS["0.4.0.127.0.7.2.2.4.1.2"]
    assert (dh_gm.key_agreement, dh_gm.mapping, dh_gm.supported) == (KeyAgreement.DH, MappingType.GM, False)
    cam = PACE_ALGORITHMS["0.4.0.127.0.7.2.2.4.6.2"]
    assert cam.name == "id-PACE-ECDH-CAM-AES-CBC-CMAC-128" and cam.supported
    assert not PACE_ALGORITHMS["0.4.0.127.0.7.2.2.4.3.2"].supported  # DH Integrated Mapping
    assert "0.4.0.127.0.7.2.2.4.6.1" not in PACE_ALGORITHMS  # CAM has no 3DES variant
    assert len(PACE_ALGORITHMS) == 4 * 4 + 3


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(h(G1["pace_info"]), id="sequence-not-set"),
        pytest.param(set_of(h(G1["pace_info"])) + b"\x00", id="trailing-byte"),
        pytest.param(set_of(h(G1["pace_info"]))[:-1], id="truncated"),
        pytest.param(set_of(h("3005020102 0201 0D".replace(" ", ""))), id="no-oid"),
        # A PACE OID whose version is an OCTET STRING instead of an INTEGER.
        pytest.param(set_of(h("3012060A04007F0007020204020204010202010D")), id="version-not-integer"),
    ],
)
def test_malformed_card_access(data: bytes) -> None:
    with pytest.raises(LdsFormatError):
        CardAccess.decode(data)


def test_choose_pace_prefers_strongest() -> None:
    access = CardAccess(
        (
            PaceInfo(ECDH_GM_AES128.oid, 2, 13),
            PaceInfo(ECDH_GM_AES256.oid, 2, 15),
            PaceInfo("0.4.0.127.0.7.2.2.4.1.4", 2, 2),  # DH: not supported, skipped
            PaceInfo(ECDH_GM_3DES.oid, 2, 17),
        )
    )
    parameters, explicit = access.choose_pace()
    assert (parameters.algorithm, parameters.curve, explicit) == (ECDH_GM_AES256, SECP384R1, False)


def test_choose_pace_names_parameter_id_when_ambiguous() -> None:
    access = CardAccess((PaceInfo(ECDH_GM_AES128.oid, 2, 12), PaceInfo(ECDH_GM_AES128.oid, 2, 13)))
    parameters, explicit = access.choose_pace()
    assert explicit and parameters.parameter_id in (12, 13)


def test_choose_pace_without_supported_info() -> None:
    access = CardAccess((PaceInfo(ECDH_GM_AES128.oid, 1, 13), OtherSecurityInfo("1.2.3", h("3003060126"))))
    with pytest.raises(PaceError, match="no PACE"):
        access.choose_pace()


def test_virtual_card_serves_der_card_access() -> None:
    card = demo_card()
    infos = (PaceInfo(ECDH_GM_AES256.oid, 2, 17), PaceInfo(ECDH_GM_AES128.oid, 2, 13))
    install_pace(card, can="123456", infos=infos)
    session = Iso7816Session(ApduProtocol(card))
    session.select_mf()
    raw = session.read_file(sfi=0x1C)
    # DER: the SET OF elements in the order of their encodings.
    assert raw == set_of(*sorted(i.encode() for i in infos))
    assert read_card_access(session) == CardAccess(tuple(sorted(infos, key=lambda i: i.encode())))
    ef = card.fs.mf.child_ef(EF_CARD_ACCESS_FID)
    assert ef is not None and ef.sfi == 0x1C
    # Free to read, never writable.
    assert card.transceive(h("00D69C000100")) == h("6982")


def test_install_pace_keeps_other_infos() -> None:
    card = demo_card()
    install_pace(card, can="123456")
    ef = card.fs.mf.child_ef(EF_CARD_ACCESS_FID)
    assert ef is not None
    ef.data = bytearray(set_of(CA_INFO, bytes(ef.data)[2:]))
    install_pace(card, can="123456", infos=(PaceInfo(ECDH_GM_AES256.oid, 2, 16),))
    access = CardAccess.decode(bytes(ef.data))
    assert OtherSecurityInfo("0.4.0.127.0.7.2.2.3.2.2", CA_INFO) in access.infos
    assert access.pace_infos == (PaceInfo(ECDH_GM_AES256.oid, 2, 16),)


def test_choose_pace_prefers_the_strongest_mapping() -> None:
    im = PaceInfo("0.4.0.127.0.7.2.2.4.4.2", 2, 13)  # id-PACE-ECDH-IM-AES-CBC-CMAC-128
    gm = PaceInfo(ECDH_GM_AES256.oid, 2, 15)
    access = CardAccess((gm, im))
    parameters, _ = access.choose_pace()
    assert parameters.algorithm.mapping is MappingType.IM  # the mapping before the cipher
    parameters, _ = access.choose_pace(MappingType.GM)
    assert parameters.algorithm == ECDH_GM_AES256
    with pytest.raises(PaceError, match="no PACE with CAM"):
        access.choose_pace(MappingType.CAM)


def test_integrated_mapping_on_a_curve_without_point_encoding_is_not_supported() -> None:
    assert not PaceInfo("0.4.0.127.0.7.2.2.4.4.2", 2, 10).supported  # secp224r1: p = 1 mod 4
    assert PaceInfo("0.4.0.127.0.7.2.2.4.4.2", 2, 13).supported
