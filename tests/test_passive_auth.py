"""Passive Authentication: every check, and each way a forged or stale document must fail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

import ektp_card.pki.certs as certs_module
from ektp_card.errors import PkiError
from ektp_card.lds.sod import build_sod, unwrap
from ektp_card.pki.certs import build_name, create_csca, issue_document_signer, sign_certificate
from ektp_card.pki.crl import build_crl
from ektp_card.pki.masterlist import build_master_list
from ektp_card.pki.trust import TrustFolder
from ektp_card.verify import Policy, Status, TrustStore, load_master_list, passive_authentication
from ektp_card.verify.passive import CHECK_NAMES

if TYPE_CHECKING:
    from fixtures.document_pki import CrlFor, Key, Pki, PkiFactory
    from fixtures.tools import OpenSsl

#: The epoch of the ``pki`` fixture's certificates (tests/fixtures/document_pki.py).
T0 = dt.datetime(2026, 1, 15, 8, 0, 0, tzinfo=dt.UTC)
SIGNED = T0 + dt.timedelta(days=3)
NOW = T0 + dt.timedelta(days=30)
Trust = Callable[..., TrustStore]
#: A card's worth of data groups (sizes as on an e-KTP: face, fingerprints, signature image...).
DATA_GROUPS = {
    1: b"\x61\x5b" + bytes(range(91)),
    2: b"\x75\x82\x4e\x20" + bytes(i % 251 for i in range(20000)),
    3: b"\x63\x82\x07\xd0" + bytes(i % 13 for i in range(2000)),
    14: b"\x6e\x10" + bytes(16),
}


@pytest.fixture(scope="module")
def trust(crl_for: CrlFor) -> Trust:
    """``trust(pki, revoked=(), crl=True)``: the pki's CSCA and, unless ``crl`` is false, a CRL from
    yesterday revoking ``revoked``."""

    def make(p: Pki, *, revoked: tuple[int, ...] = (), crl: bool = True) -> TrustStore:
        return TrustStore(
            (p.csca,), (crl_for(p, revoked, this_update=NOW - dt.timedelta(days=1)),) if crl else ()
        )

    return make


def sod_for(p: Pki, **kw: object) -> bytes:
    return build_sod(DATA_GROUPS, p.ds_signer, p.ds, signing_time=SIGNED, **kw)  # type: ignore[arg-type]


def failed(result: object) -> dict[str, str]:
    return {c.name: c.reason for c in result.failures}  # type: ignore[attr-defined]


def pem(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(Encoding.PEM)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("spec", ["brainpoolP256r1", "rsa-pss-2048"])
def test_genuine_document_passes_every_check(spec: str, pki: PkiFactory, trust: Trust) -> None:
    p = pki(spec)
    result = passive_authentication(sod_for(p), DATA_GROUPS, trust(p), Policy(at=NOW), document_type="ID")
    assert [c.name for c in result.checks] == list(CHECK_NAMES)
    assert all(c.status is Status.PASS for c in result.checks), result.checks
    assert result.ok and result.document_signer == p.ds and result.csca == p.csca
    assert result.signing_time == SIGNED
    assert result.check("data-group-hashes").reason == "data groups 1, 2, 3, 14 match"
    assert result.to_json()["checks"][0] == {
        "name": "sod-structure",
        "status": "pass",
        "reason": "EF.SOD parsed, 4 data group hashes",
    }


def test_subset_of_data_groups_is_fine_but_an_unlisted_one_is_not(pki: PkiFactory, trust: Trust) -> None:
    p = pki()
    result = passive_authentication(sod_for(p), {1: DATA_GROUPS[1]}, trust(p), Policy(at=NOW))
    assert result.ok
    extra = {**DATA_GROUPS, 7: b"\x67\x00"}
    result = passive_authentication(sod_for(p), extra, trust(p), Policy(at=NOW))
    assert failed(result) == {"data-group-hashes": "data groups 7 are not in EF.SOD"}


@pytest.mark.parametrize("dg", [1, 2, 14])
def test_changed_data_group_byte(dg: int, pki: PkiFactory, trust: Trust) -> None:
    p = pki()
    changed = dict(DATA_GROUPS)
    data = bytearray(changed[dg])
    data[len(data) // 2] ^= 0x01
    changed[dg] = bytes(data)
    result = passive_authentication(sod_for(p), changed, trust(p), Policy(at=NOW))
    assert failed(result) == {"data-group-hashes": f"data groups {dg} do not match their hash"}
    assert not result.ok


def test_hash_algorithm_not_accepted_by_policy(pki: PkiFactory, trust: Trust) -> None:
    p = pki()
    result = passive_authentication(
        sod_for(p), DATA_GROUPS, trust(p), Policy(at=NOW, hash_algorithms=("sha512",))
    )
    assert set(failed(result)) == {"hash-algorithm", "data-group-hashes"}
    assert "sha256 is not accepted" in failed(result)["hash-algorithm"]


def test_hash_algorithm_relabelled_in_the_sod(pki: PkiFactory, trust: Trust) -> None:
    p = pki()
    sod = bytearray(sod_for(p))
    sha256_oid = bytes.fromhex("0609608648016503040201")
    at = bytes(sod).index(b"\x02\x01\x00\x30\x0b" + sha256_oid)  # the LDSSecurityObject's algorithm
    sod[at + 5 + len(sha256_oid) - 1] = 0x03  # now claims SHA-512 over SHA-256 sized hashes
    result = passive_authentication(bytes(sod), DATA_GROUPS, trust(p), Policy(at=NOW))
    reasons = failed(result)
    assert reasons["hash-algorithm"] == "hashes of data groups 1, 2, 3, 14 are not sha512 sized"
    assert reasons["cms-signature"] == "message-digest attribute does not match the LDS security object"


def test_signature_over_other_attributes_fails(pki: PkiFactory, trust: Trust) -> None:
    p = pki()
    sod = bytearray(sod_for(p))
    signed_at = SIGNED.strftime("%y%m%d%H%M%S").encode()
    at = bytes(sod).index(signed_at)
    sod[at + 11] ^= 0x01  # one second later: the message digest still matches, the signature not
    result = passive_authentication(bytes(sod), DATA_GROUPS, trust(p), Policy(at=NOW))
    assert failed(result) == {"cms-signature": "the signature does not verify"}


def test_signer_from_unknown_ca(pki: PkiFactory, key: Key, trust: Trust) -> None:
    p = pki()
    other_key = key("brainpoolP256r1", 5)
    impostor = create_csca(
        other_key, country="ID", common_name="CSCA Indonesia Test", organization="Dukcapil", not_before=T0
    )
    ds = issue_document_signer(
        other_key,
        impostor,
        p.ds_signer.public_key,
        common_name="DS Jakarta 1",
        not_before=T0 + dt.timedelta(days=1),
    )
    sod = build_sod(DATA_GROUPS, p.ds_signer, ds, signing_time=SIGNED)
    result = passive_authentication(sod, DATA_GROUPS, trust(p), Policy(at=NOW))
    reasons = failed(result)
    assert reasons["certificate-chain"] == (
        "no trusted CSCA signed the document signer certificate: the signature does not verify"
    )
    assert "revocation" not in reasons  # skipped: no CSCA to take a CRL from
    assert result.check("revocation").status is Status.SKIP

    stranger = create_csca(other_key, country="ID", common_name="Somebody Else", not_before=T0)
    ds2 = issue_document_signer(other_key, stranger, p.ds_signer.public_key, common_name="DS", not_before=T0)
    result = passive_authentication(
        build_sod(DATA_GROUPS, p.ds_signer, ds2, signing_time=SIGNED), DATA_GROUPS, trust(p), Policy(at=NOW)
    )
    assert failed(result)["certificate-chain"] == "no trusted CSCA named CN=Somebody Else,C=ID"


def test_expired_signer(pki: PkiFactory, crl_for: CrlFor) -> None:
    p = pki()
    ds = issue_document_signer(
        p.csca_signer,
        p.csca,
        p.ds_signer.public_key,
        common_name="DS old",
        not_before=T0,
        document_validity_years=1,
    )
    sod = build_sod(DATA_GROUPS, p.ds_signer, ds, signing_time=SIGNED)
    later = T0 + dt.timedelta(days=600)
    t = TrustStore((p.csca,), (crl_for(p, this_update=later - dt.timedelta(days=1)),))
    result = passive_authentication(sod, DATA_GROUPS, t, Policy(at=later))
    assert list(failed(result)) == ["validity"]
    assert failed(result)["validity"].startswith("document signer certificate is not valid now")


def test_signed_outside_private_key_usage_period(pki: PkiFactory, crl_for: CrlFor) -> None:
    p = pki()
    late = T0 + dt.timedelta(days=200)  # the signer's key was for 90 days from T0 + 1 day
    sod = build_sod(DATA_GROUPS, p.ds_signer, p.ds, signing_time=late)
    at = late + dt.timedelta(days=1)
    t = TrustStore((p.csca,), (crl_for(p, this_update=late),))
    result = passive_authentication(sod, DATA_GROUPS, t, Policy(at=at))
    assert failed(result) == {
        "validity": "signing time 2026-08-03T08:00:00+00:00 is outside the signer's private key usage period"
    }


def test_revoked_signer(pki: PkiFactory, trust: Trust) -> None:
    p = pki()
    result = passive_authentication(sod_for(p), DATA_GROUPS, trust(p, revoked=(0x2001,)), Policy(at=NOW))
    assert failed(result) == {
        "revocation": "document signer certificate revoked on 2026-01-17T08:00:00+00:00"
    }


def test_missing_stale_or_forged_crl(pki: PkiFactory, crl_for: CrlFor, trust: Trust) -> None:
    p = pki()
    result = passive_authentication(sod_for(p), DATA_GROUPS, trust(p, crl=False), Policy(at=NOW))
    assert failed(result) == {"revocation": "no CRL from the CSCA in the trust store"}
    result = passive_authentication(
        sod_for(p), DATA_GROUPS, trust(p, crl=False), Policy(at=NOW, require_crl=False)
    )
    assert result.ok and result.check("revocation").status is Status.SKIP

    stale = TrustStore((p.csca,), (crl_for(p, this_update=NOW - dt.timedelta(days=91)),))
    result = passive_authentication(sod_for(p), DATA_GROUPS, stale, Policy(at=NOW))
    assert failed(result) == {"revocation": "CRL is not current"}

    # a CRL under the CSCA's name but signed by another key must not count
    other = pki("secp384r1")
    forged = build_crl(
        other.csca_signer, other.csca, [], crl_number=1, this_update=NOW - dt.timedelta(days=1)
    )
    result = passive_authentication(sod_for(p), DATA_GROUPS, TrustStore((p.csca,), (forged,)), Policy(at=NOW))
    assert failed(result)["revocation"].startswith("CRL signature:")


def test_warm_store_checks_each_signature_once_and_never_trusts_other_bytes(
    pki: PkiFactory, key: Key, crl_for: CrlFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = pki()
    store = TrustStore((p.csca,), (crl_for(p, this_update=NOW - dt.timedelta(days=1)),))
    calls: list[str] = []
    original = certs_module.verify_signature

    def counting(*args: object) -> str | None:
        calls.append("verify")
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(certs_module, "verify_signature", counting)
    cold = passive_authentication(sod_for(p), DATA_GROUPS, store, Policy(at=NOW))
    assert cold.ok and len(calls) == 2  # the document signer's certificate and the CRL
    warm = passive_authentication(sod_for(p), DATA_GROUPS, store, Policy(at=NOW))
    assert warm.checks == cold.checks and len(calls) == 2

    # The same names and serial number, signed by a stranger's key: other bytes, checked afresh.
    other_key = key("brainpoolP256r1", 6)
    impostor = create_csca(other_key, country="ID", common_name=p.csca.subject.get_attributes_for_oid(
        x509.NameOID.COMMON_NAME)[0].value, organization="Dukcapil", not_before=T0)
    forged_ds = issue_document_signer(other_key, impostor, p.ds_signer.public_key, common_name="DS Jakarta 1",
                                      not_before=T0 + dt.timedelta(days=1), serial_number=p.ds.serial_number)
    forged = passive_authentication(build_sod(DATA_GROUPS, p.ds_signer, forged_ds, signing_time=SIGNED),
                                    DATA_GROUPS, store, Policy(at=NOW))
    assert failed(forged)["certificate-chain"].endswith("the signature does not verify")
    assert len(calls) == 3

    # A new CRL (another number) is a new object to check, even in a warm store's company.
    newer = store.with_crls((crl_for(p, this_update=NOW - dt.timedelta(hours=1)),))
    assert passive_authentication(sod_for(p), DATA_GROUPS, newer, Policy(at=NOW)).ok
    assert len(calls) > 3


def _custom_ds(p: Pki, *, key_cert_sign: bool = False, country: str = "ID") -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(build_name(country, "DS custom"))
        .issuer_name(p.csca.subject)
        .public_key(p.ds_signer.public_key)
        .serial_number(0x3001)
        .not_valid_before(T0)
        .not_valid_after(T0 + dt.timedelta(days=3650))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=key_cert_sign,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(p.csca_signer.public_key), critical=False
        )
    )
    return sign_certificate(builder, p.csca_signer, "sha256")


def test_wrong_key_usage(pki: PkiFactory, trust: Trust) -> None:
    p = pki()
    ds = _custom_ds(p, key_cert_sign=True)
    result = passive_authentication(
        build_sod(DATA_GROUPS, p.ds_signer, ds, signing_time=SIGNED), DATA_GROUPS, trust(p), Policy(at=NOW)
    )
    assert failed(result) == {"key-usage": "document signer key usage is not digitalSignature alone"}


def test_issuer_country_mismatch(pki: PkiFactory, trust: Trust) -> None:
    p = pki()
    ds = _custom_ds(p, country="MY")
    result = passive_authentication(
        build_sod(DATA_GROUPS, p.ds_signer, ds, signing_time=SIGNED), DATA_GROUPS, trust(p), Policy(at=NOW)
    )
    assert failed(result) == {
        "issuer-country": "country codes differ: document signer subject MY, "
        "document signer issuer ID, CSCA subject ID"
    }
    result = passive_authentication(sod_for(p), DATA_GROUPS, trust(p), Policy(at=NOW, expected_country="MY"))
    assert failed(result) == {"issuer-country": "issuing country ID is not the expected MY"}


@pytest.mark.parametrize("cut", [1, 10, 200, -1])
def test_truncated_sod(cut: int, pki: PkiFactory, trust: Trust) -> None:
    p = pki()
    sod = sod_for(p)
    result = passive_authentication(sod[:cut], DATA_GROUPS, trust(p), Policy(at=NOW))
    assert not result.ok
    assert result.checks[0].name == "sod-structure" and result.checks[0].status is Status.FAIL
    assert all(c.status is Status.SKIP for c in result.checks[1:])


def test_sod_without_certificate(pki: PkiFactory, trust: Trust) -> None:
    p = pki()
    info = cms.ContentInfo.load(unwrap(sod_for(p)))
    info["content"]["certificates"] = cms.CertificateSet([])
    der = info.dump(force=True)
    sod = b"\x77\x82" + len(der).to_bytes(2, "big") + der
    result = passive_authentication(sod, DATA_GROUPS, trust(p), Policy(at=NOW))
    assert failed(result) == {
        "cms-signature": "EF.SOD lacks the document signer certificate its signer info names"
    }


def test_trust_store_from_folder(tmp_path: Path, pki: PkiFactory, crl_for: CrlFor) -> None:
    p = pki()
    write(tmp_path / "csca.pem", pem(p.csca))
    write(tmp_path / "csca.crl", pem(crl_for(p, this_update=NOW - dt.timedelta(days=1))))
    write(tmp_path / "README.txt", b"ignored")
    store = TrustStore.from_folder(tmp_path)
    assert store.cscas == (p.csca,) and len(store.crls) == 1
    assert passive_authentication(sod_for(p), DATA_GROUPS, store, Policy(at=NOW)).ok


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_corrupted_byte_fails_cleanly(small_sod: bytes, pki: PkiFactory, data: st.DataObject) -> None:
    """One changed byte anywhere in EF.SOD: never an exception, never an authentic verdict."""
    p = pki()
    sod = bytearray(small_sod)
    at = data.draw(st.integers(0, len(sod) - 1))
    sod[at] ^= data.draw(st.integers(1, 255))
    groups = {1: b"a", 2: b"b"}
    result = passive_authentication(
        bytes(sod), groups, TrustStore((p.csca,)), Policy(at=NOW, require_crl=False)
    )
    assert not result.ok


@pytest.fixture(scope="module")
def small_sod(pki: PkiFactory) -> bytes:
    p = pki()
    return build_sod({1: b"a", 2: b"b"}, p.ds_signer, p.ds, signing_time=SIGNED)


def test_master_list_extends_the_trust_store(
    tmp_path: Path, pki: PkiFactory, key: Key, crl_for: CrlFor, openssl: OpenSsl
) -> None:
    home, foreign = pki("brainpoolP256r1"), pki("secp384r1")
    builder = (
        x509.CertificateBuilder()
        .subject_name(build_name("ID", "Master List Signer"))
        .issuer_name(home.csca.subject)
        .public_key(key("brainpoolP256r1", 7).public_key)
        .serial_number(0x4001)
        .not_valid_before(T0)
        .not_valid_after(T0 + dt.timedelta(days=365))
    )
    mls_cert = sign_certificate(builder, home.csca_signer, "sha256")
    ml = build_master_list(
        key("brainpoolP256r1", 7), mls_cert, [home.csca, foreign.csca], signing_time=SIGNED
    )
    r = openssl(
        "cms", "-verify", "-inform", "DER", "-in", write(tmp_path / "ml.der", ml),
        "-CAfile", write(tmp_path / "home.pem", pem(home.csca)), "-purpose", "any", "-out", tmp_path / "o",
        "-attime", str(int(SIGNED.timestamp())),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr

    store = load_master_list(ml, TrustStore((home.csca,)))
    assert store.cscas == (home.csca, foreign.csca)
    crl = crl_for(foreign, this_update=NOW - dt.timedelta(days=1))
    result = passive_authentication(sod_for(foreign), DATA_GROUPS, store.with_crls([crl]), Policy(at=NOW))
    assert result.ok, result.failures

    with pytest.raises(PkiError, match="does not chain to a trusted CSCA"):
        load_master_list(ml, TrustStore((foreign.csca,)))
    tampered = bytearray(ml)
    tampered[ml.index(foreign.csca.signature) + 5] ^= 1
    with pytest.raises(PkiError, match="message digest"):
        load_master_list(bytes(tampered), TrustStore((home.csca,)))
    with pytest.raises(PkiError, match="malformed master list"):
        load_master_list(ml[:-20], TrustStore((home.csca,)))


def test_a_trust_folder_is_read_again_when_a_file_in_it_changes(
    tmp_path: Path, pki: PkiFactory, crl_for: CrlFor
) -> None:
    p = pki()
    write(tmp_path / "csca.pem", pem(p.csca))
    crl_path = write(tmp_path / "csca.crl", pem(crl_for(p, this_update=NOW - dt.timedelta(days=1))))
    folder = TrustFolder(tmp_path)
    first = folder.store()
    assert passive_authentication(sod_for(p), DATA_GROUPS, first, Policy(at=NOW)).ok
    assert folder.store() is first  # unchanged: the same store, with what it has checked

    # The issuer revokes the document signer: the next document sees the new CRL, no restart.
    fresh = write(tmp_path / "new.crl", pem(crl_for(p, (p.ds.serial_number,), NOW - dt.timedelta(hours=2))))
    fresh.replace(crl_path)
    revoked = passive_authentication(sod_for(p), DATA_GROUPS, folder.store(), Policy(at=NOW))
    assert failed(revoked)["revocation"].startswith("document signer certificate revoked")

    # A file that does not load fails every call until it is mended; nothing stale is trusted.
    crl_path.write_bytes(b"half a CRL")
    for _ in range(2):
        with pytest.raises(PkiError, match="csca.crl is not a readable certificate or CRL"):
            folder.store()
    write(tmp_path / "csca.crl", pem(crl_for(p, this_update=NOW - dt.timedelta(days=1))))
    assert passive_authentication(sod_for(p), DATA_GROUPS, folder.store(), Policy(at=NOW)).ok
