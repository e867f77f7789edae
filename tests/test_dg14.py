"""DG14 and DG15: SecurityInfos of Chip and Active Authentication, and the public keys they carry."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from asn1crypto import core  # type: ignore[import-untyped]
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from ektp_card.crypto.aa import SIGNATURE_HASHES
from ektp_card.crypto.ca import CA_ALGORITHMS, CA_ECDH_3DES, CA_ECDH_AES128, CA_ECDH_AES256, ID_PK_DH
from ektp_card.crypto.pace import PACE_ALGORITHMS
from ektp_card.ec import BRAINPOOLP256R1, SECP256R1, SECP384R1, STANDARDIZED_CURVES, Curve
from ektp_card.errors import ChipAuthenticationError, LdsFormatError
from ektp_card.lds.card_access import OtherSecurityInfo, PaceInfo
from ektp_card.lds.dg14 import (
    ActiveAuthenticationInfo,
    ChipAuthenticationInfo,
    ChipAuthenticationPublicKeyInfo,
    Dg14,
    Dg14Info,
)
from ektp_card.lds.dg15 import Dg15
from ektp_card.lds.public_key import (
    EcPublicKey,
    ParametersForm,
    PublicKey,
    decode_public_key_info,
    encode_public_key_info,
    parameters_form,
    public_key_from,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def ec_key(curve: Curve, k: int) -> EcPublicKey:
    point = curve.multiply(k, curve.generator)
    assert point is not None
    return EcPublicKey(curve, curve.encode_point(point))


#: A few keys, computed once: generating keys inside hypothesis examples would be slow.
EC_KEYS = [ec_key(STANDARDIZED_CURVES[pid], 0xC0FFEE + pid) for pid in (8, 9, 12, 13, 14, 15, 17, 18)]
RSA_KEYS = [public_key_from(rsa.generate_private_key(65537, bits).public_key()) for bits in (1024, 1536)]
#: TerminalAuthenticationInfo ::= SEQUENCE { id-TA, version 1 }: kept as it is (BSI TR-03110-3 A.1.1.3).
TA_INFO = h("300D 0608 04007F0007020202 020101")

# --- exact bytes, assembled by hand -----------------------------------------------------------------

#: ChipAuthenticationInfo { id-CA-ECDH-AES-CBC-CMAC-128 (0.4.0.127.0.7.2.2.3.2.2), version 1 }
CA_INFO_DER = h("300F 060A 04007F00070202030202 020101")
#: ActiveAuthenticationInfo { id-AA (2.23.136.1.1.5), version 1,
#:     ecdsa-plain-SHA256 (0.4.0.127.0.7.1.1.4.1.3) }
AA_INFO_DER = h("3017 0606 678108010105 020101 060A 04007F00070101040103")
G = BRAINPOOLP256R1.encode_point(BRAINPOOLP256R1.generator)
#: SubjectPublicKeyInfo { { standardizedDomainParameters (0.4.0.127.0.7.1.2), 13 }, BIT STRING 00 04 .. }
SPKI_STANDARDIZED = h("3052 300C 0607 04007F00070102 02010D 0342 00") + G
#: ChipAuthenticationPublicKeyInfo { id-PK-ECDH (0.4.0.127.0.7.2.2.1.2), that key, keyId 1 }
CAPK_DER = h("3062 0609 04007F000702020102") + SPKI_STANDARDIZED + h("020101")


def test_exact_infos() -> None:
    assert ChipAuthenticationInfo(CA_ECDH_AES128.oid).encode() == CA_INFO_DER
    assert ActiveAuthenticationInfo.for_hash("sha256").encode() == AA_INFO_DER
    key = EcPublicKey(BRAINPOOLP256R1, G)
    assert encode_public_key_info(key, ParametersForm.STANDARDIZED) == SPKI_STANDARDIZED
    assert ChipAuthenticationPublicKeyInfo.of(key, 1, ParametersForm.STANDARDIZED).encode() == CAPK_DER
    assert ChipAuthenticationInfo.decode(CA_INFO_DER) == ChipAuthenticationInfo(CA_ECDH_AES128.oid, 1, None)
    assert ActiveAuthenticationInfo.decode(AA_INFO_DER).hash_name == "sha256"


def test_exact_dg14() -> None:
    # DER sorts the SET OF by the encodings: 30 0F.., 30 17.., 30 62.. (ITU-T X.690 section 11.6).
    infos = CA_INFO_DER + AA_INFO_DER + CAPK_DER
    expected = h("6E 81 91 31 81 8E") + infos
    assert len(infos) == 0x8E
    key = EcPublicKey(BRAINPOOLP256R1, G)
    capk = ChipAuthenticationPublicKeyInfo.of(key, 1, ParametersForm.STANDARDIZED)
    built = Dg14.of(
        [capk, ActiveAuthenticationInfo.for_hash("sha256"), ChipAuthenticationInfo(CA_ECDH_AES128.oid)]
    )
    assert built.encode() == expected
    parsed = Dg14.decode(expected)
    assert parsed == built and parsed.encode() == expected
    assert parsed.active_authentication_info == ActiveAuthenticationInfo.for_hash("sha256")
    assert parsed.chip_authentication_public_keys[0].public_key == key
    parameters = parsed.ca_parameters()
    assert (parameters.algorithm, parameters.version, parameters.curve, parameters.key_id) == (
        CA_ECDH_AES128,
        1,
        BRAINPOOLP256R1,
        1,
    )
    assert parameters.chip_public_key == G


def test_exact_dg15() -> None:
    key = EcPublicKey(BRAINPOOLP256R1, G)
    assert Dg15.of(key, ParametersForm.STANDARDIZED).encode() == h("6F 54") + SPKI_STANDARDIZED
    assert Dg15.decode(h("6F 54") + SPKI_STANDARDIZED).public_key == key


# --- round trips ----------------------------------------------------------------------------------------

key_ids = st.none() | st.integers(0, 2**31)
ca_infos = st.builds(
    ChipAuthenticationInfo, st.sampled_from(sorted(CA_ALGORITHMS)), st.sampled_from([1, 2]), key_ids
)
ca_keys = st.builds(
    ChipAuthenticationPublicKeyInfo.of,
    st.sampled_from(EC_KEYS),
    key_ids,
    st.sampled_from(list(ParametersForm)),
)
aa_infos = st.builds(ActiveAuthenticationInfo, st.sampled_from(sorted(SIGNATURE_HASHES)))
pace_infos = st.builds(
    PaceInfo, st.sampled_from(sorted(PACE_ALGORITHMS)), st.just(2), st.none() | st.integers(0, 31)
)
others = st.just(OtherSecurityInfo("0.4.0.127.0.7.2.2.2", TA_INFO))
any_info: st.SearchStrategy[Dg14Info] = st.one_of(ca_infos, ca_keys, aa_infos, pace_infos, others)


@given(st.lists(any_info, max_size=6))
def test_dg14_round_trip(infos: list[Dg14Info]) -> None:
    dg14 = Dg14(tuple(infos))
    encoded = dg14.encode()
    assert Dg14.decode(encoded) == dg14
    assert Dg14.decode(encoded).encode() == encoded
    ordered = Dg14.of(infos)
    assert sorted(ordered.infos, key=repr) == sorted(infos, key=repr)
    assert Dg14.decode(ordered.encode()).encode() == ordered.encode()


@given(st.sampled_from(EC_KEYS + RSA_KEYS), st.sampled_from(list(ParametersForm)))
def test_dg15_round_trip(key: PublicKey, form: ParametersForm) -> None:
    dg15 = Dg15.of(key, form)
    assert Dg15.decode(dg15.encode()) == dg15
    assert dg15.public_key == key
    assert parameters_form(dg15.public_key_info) is (form if isinstance(key, EcPublicKey) else None)


# --- public keys against OpenSSL ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "curve",
    [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1(), ec.BrainpoolP256R1(), ec.BrainpoolP512R1()],
    ids=lambda c: c.name,
)
def test_named_form_is_what_cryptography_writes(curve: ec.EllipticCurve) -> None:
    public = ec.generate_private_key(curve).public_key()
    ours = public_key_from(public)
    expected = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert encode_public_key_info(ours, ParametersForm.NAMED) == expected
    assert decode_public_key_info(expected) == ours
    assert ours.to_cryptography() == public


def test_rsa_spki_is_what_cryptography_writes() -> None:
    public = rsa.generate_private_key(65537, 1024).public_key()  # noqa: S505 - a test key, fast
    expected = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert encode_public_key_info(public_key_from(public)) == expected
    assert decode_public_key_info(expected) == public_key_from(public)


def openssl_explicit(openssl: str, tmp_path: Path, curve: str) -> bytes:
    """A fresh key on ``curve`` as OpenSSL writes it with explicit parameters (``-param_enc explicit``)."""
    key = tmp_path / "key.pem"
    run = [openssl, "ecparam", "-name", curve, "-genkey", "-noout", "-out", str(key)]
    subprocess.run(run, check=True, capture_output=True)  # noqa: S603
    export = [openssl, "ec", "-in", str(key), "-pubout", "-outform", "DER", "-param_enc", "explicit"]
    return subprocess.run(export, check=True, capture_output=True).stdout  # noqa: S603


def test_explicit_form_is_what_openssl_writes(openssl_path: str, tmp_path: Path) -> None:
    # For the Brainpool curves OpenSSL writes no seed: the same bytes as ours.
    spki = openssl_explicit(openssl_path, tmp_path, "brainpoolP256r1")
    key = decode_public_key_info(spki)
    assert isinstance(key, EcPublicKey) and key.curve == BRAINPOOLP256R1
    assert encode_public_key_info(key) == spki
    assert parameters_form(spki) is ParametersForm.EXPLICIT


@pytest.mark.parametrize(("name", "curve"), [("prime256v1", SECP256R1), ("secp384r1", SECP384R1)])
def test_explicit_with_seed_from_openssl(openssl_path: str, tmp_path: Path, name: str, curve: Curve) -> None:
    # OpenSSL adds the curve seed for the NIST curves; the parameters still identify the curve.
    spki = openssl_explicit(openssl_path, tmp_path, name)
    key = decode_public_key_info(spki)
    assert isinstance(key, EcPublicKey) and key.curve == curve
    # Inside DG14 the key stays as encoded, seed and all.
    info = ChipAuthenticationPublicKeyInfo("0.4.0.127.0.7.2.2.1.2", spki)
    assert ChipAuthenticationPublicKeyInfo.decode(info.encode()) == info


# --- refusals ------------------------------------------------------------------------------------------


def _explicit_with(b: int) -> bytes:
    """A brainpoolP256r1 key whose explicit parameters have another b: no standardized curve."""
    spki = encode_public_key_info(EcPublicKey(BRAINPOOLP256R1, G))
    return spki.replace(BRAINPOOLP256R1.b.to_bytes(32, "big"), b.to_bytes(32, "big"))


def test_unsupported_or_malformed_keys() -> None:
    with pytest.raises(LdsFormatError, match="none of the standardized curves"):
        decode_public_key_info(_explicit_with(7))
    with pytest.raises(LdsFormatError, match="not on brainpoolP256r1"):
        decode_public_key_info(SPKI_STANDARDIZED[:-1] + bytes((G[-1] ^ 1,)))
    ed = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(LdsFormatError, match="1.3.101.112 is not supported"):
        decode_public_key_info(ed)
    with pytest.raises(LdsFormatError, match="malformed"):
        decode_public_key_info(b"\x30\x03\x02\x01")
    secp256k1 = h("3056 3010 0607 2A8648CE3D0201 0605 2B8104000A 0342 00") + b"\x04" + bytes(64)
    with pytest.raises(LdsFormatError, match="1.3.132.0.10 is not a standardized curve"):
        decode_public_key_info(secp256k1)


@pytest.mark.parametrize(
    "data",
    [
        h("6F 02 3100"),  # the DG15 tag
        h("6E 02 3100 00"),  # bytes after the data group
        h("6E 03 3101"),  # malformed TLV
        h("6E 04 3102 0400"),  # not SecurityInfos
        h("6E 0A 3108 3006 0601 80 020101"),  # a malformed OID
    ],
)
def test_malformed_dg14(data: bytes) -> None:
    with pytest.raises(LdsFormatError):
        Dg14.decode(data)


def test_malformed_dg15() -> None:
    with pytest.raises(LdsFormatError):
        Dg15.decode(h("6E 02 3000"))
    with pytest.raises(LdsFormatError):
        Dg15.decode(h("6F 04 3000 3000"))


def test_unknown_infos_kept() -> None:
    # ChipAuthenticationDomainParameterInfo { id-CA-ECDH, { standardizedDomainParameters, 13 } }
    domain = h("3019 0609 04007F000702020302 300C 0607 04007F00070102 02010D")
    dg14 = Dg14.decode(Dg14((OtherSecurityInfo("x", domain), OtherSecurityInfo("y", TA_INFO))).encode())
    assert dg14.infos == (
        OtherSecurityInfo("0.4.0.127.0.7.2.2.3.2", domain),
        OtherSecurityInfo("0.4.0.127.0.7.2.2.2", TA_INFO),
    )
    assert not dg14.offers_chip_authentication
    with pytest.raises(ChipAuthenticationError, match="no Chip Authentication public key"):
        dg14.ca_parameters()


# --- choosing the Chip Authentication ------------------------------------------------------------------


def test_strongest_cipher_wins() -> None:
    key = ChipAuthenticationPublicKeyInfo.of(EC_KEYS[2])
    dg14 = Dg14.of(
        [ChipAuthenticationInfo(CA_ECDH_3DES.oid), ChipAuthenticationInfo(CA_ECDH_AES256.oid), key]
    )
    assert dg14.ca_parameters().algorithm is CA_ECDH_AES256


def test_keys_paired_by_key_id() -> None:
    first, second = (
        ChipAuthenticationPublicKeyInfo.of(EC_KEYS[2], 1),
        ChipAuthenticationPublicKeyInfo.of(EC_KEYS[3], 2),
    )
    infos = [ChipAuthenticationInfo(CA_ECDH_AES128.oid, 1, 1), ChipAuthenticationInfo(CA_ECDH_3DES.oid, 1, 2)]
    chosen = Dg14.of([first, second, *infos]).ca_parameters()
    assert (chosen.key_id, chosen.curve, chosen.algorithm) == (1, EC_KEYS[2].curve, CA_ECDH_AES128)
    unmatched = [ChipAuthenticationInfo(CA_ECDH_AES128.oid, 1, 3)]
    with pytest.raises(ChipAuthenticationError, match="no ChipAuthenticationInfo matches"):
        Dg14.of([first, second, *unmatched]).ca_parameters()


def test_key_without_info_means_3des_version_1() -> None:
    chosen = Dg14.of([ChipAuthenticationPublicKeyInfo.of(EC_KEYS[2])]).ca_parameters()
    assert (chosen.algorithm, chosen.version) == (CA_ECDH_3DES, 1)


def test_dh_is_not_supported() -> None:
    rsa_spki = encode_public_key_info(RSA_KEYS[0])  # stands in for a DH key: neither is ECDH
    dh_key = ChipAuthenticationPublicKeyInfo(ID_PK_DH, rsa_spki)
    dh_info = ChipAuthenticationInfo("0.4.0.127.0.7.2.2.3.1.2")
    with pytest.raises(ChipAuthenticationError, match="id-CA-DH-AES-CBC-CMAC-128 is not supported"):
        Dg14.of([dh_key, dh_info]).ca_parameters()
    assert core.ObjectIdentifier(ID_PK_DH).dotted == ID_PK_DH


def test_unknown_signature_algorithm() -> None:
    from ektp_card.errors import ActiveAuthenticationError

    with pytest.raises(ActiveAuthenticationError, match="1.2.3 is not supported"):
        _ = ActiveAuthenticationInfo("1.2.3").hash_name
    with pytest.raises(ValueError, match="md5"):
        ActiveAuthenticationInfo.for_hash("md5")
