"""EF.SOD build and parse; OpenSSL's cms -verify as the independent check."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from ektp_card.apdu.tlv import parse_one
from ektp_card.errors import LdsFormatError
from ektp_card.lds.sod import LdsSecurityObject, build_sod, hash_data_groups, parse_sod, unwrap

if TYPE_CHECKING:
    from fixtures.document_pki import PkiFactory
    from fixtures.tools import OpenSsl

SPECS = ("brainpoolP256r1", "secp384r1", "rsa-pss-2048")
#: The epoch of the ``pki`` fixture's certificates (tests/fixtures/document_pki.py).
T0 = dt.datetime(2026, 1, 15, 8, 0, 0, tzinfo=dt.UTC)
SIGNED = T0 + dt.timedelta(days=3)
#: A card's worth of data groups (sizes as on an e-KTP: face, fingerprints, signature image...).
DATA_GROUPS = {
    1: b"\x61\x5b" + bytes(range(91)),
    2: b"\x75\x82\x4e\x20" + bytes(i % 251 for i in range(20000)),
    3: b"\x63\x82\x07\xd0" + bytes(i % 13 for i in range(2000)),
    14: b"\x6e\x10" + bytes(16),
}


def pem(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(Encoding.PEM)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_lds_security_object_exact_encoding() -> None:
    lso = LdsSecurityObject("sha256", ((1, b"\x11" * 32), (2, b"\x22" * 32)))
    expected = (
        "3060"  # LDSSecurityObject
        "020100"  # version v0
        "300b0609608648016503040201"  # sha256, parameters absent (RFC 5754 section 2)
        "304e"  # dataGroupHashValues
        "3025020101"
        "0420" + "11" * 32 + "3025020102"
        "0420" + "22" * 32
    )
    assert lso.encode().hex() == expected
    assert LdsSecurityObject.decode(lso.encode()) == lso


def test_lds_version_info_makes_v1() -> None:
    lso = LdsSecurityObject("sha512", ((1, bytes(64)), (15, bytes(64))), ("0108", "040000"))
    der = lso.encode()
    assert der[:6] == bytes.fromhex("3081b1020101")
    assert der.endswith(bytes.fromhex("300e1304303130381306303430303030"))
    assert LdsSecurityObject.decode(der) == lso


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_build_and_parse(hash_name: str, pki: PkiFactory) -> None:
    p = pki("brainpoolP256r1")
    sod = build_sod(DATA_GROUPS, p.ds_signer, p.ds, hash_name=hash_name, signing_time=SIGNED)  # type: ignore[arg-type]
    assert sod[0] == 0x77
    parsed = parse_sod(sod)
    assert parsed.security_object.hash_algorithm == hash_name
    assert parsed.security_object.by_number == {
        n: hashlib.new(hash_name, d).digest() for n, d in DATA_GROUPS.items()
    }
    assert parsed.digest_algorithm == hash_name
    assert parsed.signing_time == SIGNED
    assert parsed.econtent_type == "2.23.136.1.1.1"
    assert parsed.content_type_attr == "2.23.136.1.1.1"
    assert parsed.message_digest == hashlib.new(hash_name, parsed.econtent).digest()
    assert parsed.signer_certificate() == p.ds
    assert parsed.certificates == (p.ds,)
    info = cms.ContentInfo.load(unwrap(sod))
    sd = info["content"]
    assert sd["version"].native == "v3"
    si = sd["signer_infos"][0]
    assert si["version"].native == "v1"
    # signed attributes in DER order (X.690 section 11.6): content type, signing time, message digest
    assert [a["type"].native for a in si["signed_attrs"]] == [
        "content_type",
        "signing_time",
        "message_digest",
    ]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("hash_name", ["sha256", "sha512"])
def test_openssl_cms_verify(
    spec: str, hash_name: str, tmp_path: Path, pki: PkiFactory, openssl: OpenSsl
) -> None:
    p = pki(spec)
    sod = build_sod(DATA_GROUPS, p.ds_signer, p.ds, hash_name=hash_name, signing_time=SIGNED)  # type: ignore[arg-type]
    der = write(tmp_path / "sod.der", unwrap(sod))
    csca = write(tmp_path / "csca.pem", pem(p.csca))
    out = tmp_path / "lso.der"
    r = openssl(
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        der,
        "-CAfile",
        csca,
        "-out",
        out,
        "-attime",
        str(int(SIGNED.timestamp())),
    )
    assert r.returncode == 0 and "Verification successful" in r.stderr, r.stderr
    assert out.read_bytes() == parse_sod(sod).econtent


def test_openssl_rejects_tampered_sod(tmp_path: Path, pki: PkiFactory, openssl: OpenSsl) -> None:
    p = pki("secp384r1")
    sod = bytearray(unwrap(build_sod(DATA_GROUPS, p.ds_signer, p.ds, signing_time=SIGNED)))
    dg1_hash = hashlib.sha256(DATA_GROUPS[1]).digest()
    at = bytes(sod).index(dg1_hash)
    sod[at] ^= 0x80
    der = write(tmp_path / "sod.der", bytes(sod))
    csca = write(tmp_path / "csca.pem", pem(p.csca))
    r = openssl(
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        der,
        "-CAfile",
        csca,
        "-out",
        tmp_path / "o",
        "-attime",
        str(int(SIGNED.timestamp())),
    )
    assert r.returncode != 0 and "Verification failure" in r.stderr


def test_openssl_rejects_unknown_ca(tmp_path: Path, pki: PkiFactory, openssl: OpenSsl) -> None:
    p = pki("secp384r1")
    der = write(tmp_path / "sod.der", unwrap(build_sod(DATA_GROUPS, p.ds_signer, p.ds, signing_time=SIGNED)))
    other = write(tmp_path / "csca.pem", pem(pki("brainpoolP256r1").csca))
    r = openssl(
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        der,
        "-CAfile",
        other,
        "-out",
        tmp_path / "o",
        "-attime",
        str(int(SIGNED.timestamp())),
    )
    assert r.returncode != 0 and "Verification failure" in r.stderr


def test_build_refuses_bad_input(pki: PkiFactory) -> None:
    p = pki("brainpoolP256r1")
    with pytest.raises(LdsFormatError, match="2 to 16"):
        build_sod({1: b"x"}, p.ds_signer, p.ds)
    with pytest.raises(LdsFormatError, match="2 to 16"):
        build_sod({1: b"x", 17: b"y"}, p.ds_signer, p.ds)
    with pytest.raises(LdsFormatError, match="does not match"):
        build_sod(DATA_GROUPS, p.csca_signer, p.ds)
    with pytest.raises(LdsFormatError, match="unsupported"):
        build_sod(DATA_GROUPS, p.ds_signer, p.ds, hash_name="sha1")  # type: ignore[arg-type]


def test_parse_rejects_wrapping_errors(pki: PkiFactory) -> None:
    p = pki("brainpoolP256r1")
    sod = build_sod(DATA_GROUPS, p.ds_signer, p.ds, signing_time=SIGNED)
    with pytest.raises(LdsFormatError, match="not 77"):
        parse_sod(b"\x76" + sod[1:])
    with pytest.raises(LdsFormatError, match="after its tag 77"):
        parse_sod(sod + b"\x00")
    tlv, _ = parse_one(sod)
    with pytest.raises(LdsFormatError):
        parse_sod(sod[:-1])
    with pytest.raises(LdsFormatError):
        parse_sod(b"\x77" + bytes([len(tlv.value[:100])]) + tlv.value[:100])


@pytest.fixture(scope="module")
def small_sod(pki: PkiFactory) -> bytes:
    p = pki("brainpoolP256r1")
    return build_sod({1: b"a", 2: b"b"}, p.ds_signer, p.ds, signing_time=SIGNED)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_truncated_or_corrupted_sod_is_a_format_error_or_parses(
    small_sod: bytes, data: st.DataObject
) -> None:
    sod = bytearray(small_sod)
    cut = data.draw(st.integers(0, len(sod) - 1))
    if data.draw(st.booleans()):
        with pytest.raises(LdsFormatError):
            parse_sod(bytes(sod[:cut]))
    else:
        sod[cut] ^= data.draw(st.integers(1, 255))
        try:
            parse_sod(bytes(sod))
        except LdsFormatError:
            pass


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["sha256", "sha384", "sha512"]),
    st.dictionaries(st.integers(1, 16), st.binary(max_size=64), min_size=2, max_size=16),
    st.one_of(
        st.none(),
        st.tuples(st.from_regex(r"[0-9]{4}", fullmatch=True), st.from_regex(r"[0-9]{6}", fullmatch=True)),
    ),
)
def test_lds_security_object_round_trip(
    hash_name: str, groups: dict[int, bytes], version: tuple[str, str] | None
) -> None:
    lso = LdsSecurityObject(hash_name, hash_data_groups(groups, hash_name), version)
    assert LdsSecurityObject.decode(lso.encode()) == lso
