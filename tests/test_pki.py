"""Issuer PKI: key files, CSCA and document signer profiles, CRLs; OpenSSL as the independent judge."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ektp_card.errors import PkiError
from ektp_card.pki.certs import (
    OID_DOCUMENT_TYPE_LIST,
    OID_PRIVATE_KEY_USAGE_PERIOD,
    create_csca,
    issue_document_signer,
    parse_private_key_usage_period,
    sign_certificate,
    verify_certificate_signature,
    verify_crl_signature,
)
from ektp_card.pki.crl import build_crl
from ektp_card.pki.signer import KeyFileSigner, KeySpec, passphrase_from_env, signature_algorithm

if TYPE_CHECKING:
    from fixtures.document_pki import CrlFor, Key, PkiFactory
    from fixtures.tools import OpenSsl

SPECS = ("brainpoolP256r1", "secp384r1", "rsa-pss-2048")
#: The epoch of the ``pki`` fixture's certificates (tests/fixtures/document_pki.py).
T0 = dt.datetime(2026, 1, 15, 8, 0, 0, tzinfo=dt.UTC)


def pem(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(Encoding.PEM)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_key_spec_parse() -> None:
    assert KeySpec.parse("brainpoolP384r1") == KeySpec("ec", curve="brainpoolP384r1")
    assert KeySpec.parse("P-256") == KeySpec("ec", curve="secp256r1")
    assert KeySpec.parse("rsa-pss-3072") == KeySpec("rsa", bits=3072)
    for bad in ("rsa-pss-1024", "secp192r1", "ed25519", "rsa-pss-x"):
        with pytest.raises(PkiError, match="unknown key type"):
            KeySpec.parse(bad)


def test_key_file_is_encrypted_0600_and_needs_the_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k" / "csca.key"
    signer = KeyFileSigner.generate(path, KeySpec.parse("brainpoolP256r1"), b"correct horse")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    loaded = KeyFileSigner.load(path, lambda: b"correct horse")
    assert loaded.public_key.public_numbers() == signer.public_key.public_numbers()
    with pytest.raises(PkiError) as e:
        KeyFileSigner.load(path, b"wrong horse")
    assert "horse" not in str(e.value)
    with pytest.raises(PkiError, match="refusing to overwrite"):
        KeyFileSigner.generate(path, KeySpec.parse("secp256r1"), b"x")
    assert "correct" not in repr(loaded)


def test_passphrase_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openssl: OpenSsl
) -> None:
    path = tmp_path / "ds.key"
    monkeypatch.setenv("EKTP_TEST_PASS", "s3cret-pass")
    KeyFileSigner.generate(path, KeySpec.parse("secp256r1"), passphrase_from_env("EKTP_TEST_PASS"))
    KeyFileSigner.load(path, passphrase_from_env("EKTP_TEST_PASS"))
    # OpenSSL reads the same file with the same passphrase: the PKCS#8 encryption is standard.
    result = openssl("pkey", "-in", path, "-passin", "env:EKTP_TEST_PASS", "-noout")
    assert result.returncode == 0, result.stderr
    monkeypatch.delenv("EKTP_TEST_PASS")
    with pytest.raises(PkiError, match="EKTP_TEST_PASS .* not set"):
        KeyFileSigner.load(path, passphrase_from_env("EKTP_TEST_PASS"))


@pytest.mark.parametrize("spec", SPECS)
def test_signatures_verify_with_the_public_key(spec: str, key: Key) -> None:
    from ektp_card.pki.signer import verify_signature

    signer = key(spec)
    sig = signer.sign(b"data", "sha384")
    alg = signature_algorithm(signer.public_key, "sha384")
    assert verify_signature(signer.public_key, alg, sig, b"data") is None
    assert verify_signature(signer.public_key, alg, sig, b"datb") == "the signature does not verify"


def test_csca_profile(pki: PkiFactory) -> None:
    p = pki("brainpoolP256r1")
    c = p.csca
    assert c.version is x509.Version.v3
    assert c.serial_number == 0x1001
    assert c.subject == c.issuer
    assert c.subject.rfc4514_string() == "CN=CSCA Indonesia Test,O=Dukcapil,C=ID"
    assert c.not_valid_before_utc == T0
    # key used 5 years, then valid for 10 years of documents plus the last signer's 3 months
    assert c.not_valid_after_utc == dt.datetime(2041, 1, 15, 8, 0, tzinfo=dt.UTC) + dt.timedelta(days=92)
    ext = c.extensions
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
    assert parse_private_key_usage_period(c) == (T0, dt.datetime(2031, 1, 15, 8, 0, tzinfo=dt.UTC))
    assert not ext.get_extension_for_oid(OID_PRIVATE_KEY_USAGE_PERIOD).critical
    country = c.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0]
    assert country._type.name == "PrintableString"
    assert verify_certificate_signature(c, c) is None


def test_document_signer_profile(pki: PkiFactory) -> None:
    p = pki("brainpoolP256r1")
    d = p.ds
    assert d.issuer == p.csca.subject
    assert d.subject.rfc4514_string() == "CN=DS Jakarta 1,O=Dukcapil,C=ID"
    ext = d.extensions
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    with pytest.raises(x509.ExtensionNotFound):
        ext.get_extension_for_class(x509.BasicConstraints)
    csca_ski = p.csca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == csca_ski
    start = T0 + dt.timedelta(days=1)
    assert parse_private_key_usage_period(d) == (start, start + dt.timedelta(days=90))
    assert d.not_valid_after_utc == (start + dt.timedelta(days=90)).replace(year=2036)
    # DocumentTypeListSyntax: SEQUENCE { INTEGER 0, SET { PrintableString "ID" } }
    doc_types = ext.get_extension_for_oid(OID_DOCUMENT_TYPE_LIST).value
    assert isinstance(doc_types, x509.UnrecognizedExtension)
    assert doc_types.value == bytes.fromhex("3009020100310413024944")
    assert verify_certificate_signature(d, p.csca) is None
    assert verify_certificate_signature(d, pki("secp384r1").csca) is not None


@pytest.mark.parametrize("spec", SPECS)
def test_signature_checks_read_the_outer_signature_algorithm(
    spec: str, pki: PkiFactory, crl_for: CrlFor
) -> None:
    # The checks take the algorithm from the certificate's and the CRL's own signatureAlgorithm (RFC 5280
    # 4.1.1.2, 5.1.1.2): rewritten there (another hash for ECDSA, another salt length for RSASSA-PSS),
    # the same signature over the same TBS must no longer verify. (A CRL cannot get that far.)
    from asn1crypto import crl as asn1_crl

    p = pki(spec)
    crl = crl_for(p)
    assert verify_certificate_signature(p.ds, p.csca) is None
    assert verify_crl_signature(crl, p.csca) is None

    def rewritten(algorithm: dict[str, object]) -> dict[str, object]:
        if algorithm["algorithm"] == "rsassa_pss":
            params = dict(algorithm["parameters"])  # type: ignore[call-overload]
            params["salt_length"] = 20
            return {"algorithm": "rsassa_pss", "parameters": params}
        return {"algorithm": "sha512_ecdsa"}

    cert = asn1_x509.Certificate.load(p.ds.public_bytes(Encoding.DER))
    changed_cert = asn1_x509.Certificate({
        "tbs_certificate": cert["tbs_certificate"],
        "signature_algorithm": rewritten(cert["signature_algorithm"].native),
        "signature_value": cert["signature_value"],
    })
    listed = asn1_crl.CertificateList.load(crl.public_bytes(Encoding.DER))
    changed_crl = asn1_crl.CertificateList({
        "tbs_cert_list": listed["tbs_cert_list"],
        "signature_algorithm": rewritten(listed["signature_algorithm"].native),
        "signature": listed["signature"],
    })
    assert verify_certificate_signature(
        x509.load_der_x509_certificate(changed_cert.dump()), p.csca) == "the signature does not verify"
    with pytest.raises(ValueError, match="Inner and outer"):  # cryptography refuses such a CRL itself
        x509.load_der_x509_crl(changed_crl.dump())


def test_profile_limits(pki: PkiFactory) -> None:
    p = pki("brainpoolP256r1")
    for years in (2, 6):
        with pytest.raises(PkiError, match="3 to 5 years"):
            create_csca(p.csca_signer, country="ID", common_name="x", key_usage_years=years)
    with pytest.raises(PkiError, match="1 to 92 days"):
        issue_document_signer(
            p.csca_signer, p.csca, p.ds_signer.public_key, common_name="x", key_usage_days=93, not_before=T0
        )
    with pytest.raises(PkiError, match="two-letter"):
        create_csca(p.csca_signer, country="id", common_name="x")
    with pytest.raises(PkiError, match="does not match"):
        issue_document_signer(p.ds_signer, p.csca, p.ds_signer.public_key, common_name="x", not_before=T0)
    with pytest.raises(PkiError, match="1 to 90 days"):
        build_crl(p.csca_signer, p.csca, [], crl_number=1, next_update_days=91)


def test_empty_crl_profile(pki: PkiFactory, crl_for: CrlFor) -> None:
    p = pki("secp384r1")
    crl = crl_for(p, this_update=T0)
    assert len(crl) == 0
    assert crl.issuer == p.csca.subject
    assert crl.last_update_utc == T0
    assert crl.next_update_utc == T0 + dt.timedelta(days=90)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == p.csca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert crl.is_signature_valid(p.csca.public_key())  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", SPECS)
def test_openssl_accepts_chain_and_crl(
    spec: str, tmp_path: Path, pki: PkiFactory, crl_for: CrlFor, openssl: OpenSsl
) -> None:
    p = pki(spec)
    csca = write(tmp_path / "csca.pem", pem(p.csca))
    ds = write(tmp_path / "ds.pem", pem(p.ds))
    crl = write(tmp_path / "crl.pem", pem(crl_for(p)))
    r = openssl("verify", "-x509_strict", "-CAfile", csca, "-CRLfile", crl, "-crl_check", ds)
    assert r.returncode == 0 and r.stdout.strip() == f"{ds}: OK", r.stdout + r.stderr
    r = openssl("crl", "-in", crl, "-CAfile", csca, "-noout")
    assert r.returncode == 0 and "verify OK" in r.stderr + r.stdout
    r = openssl("x509", "-in", ds, "-noout", "-text")
    assert r.returncode == 0
    assert "X509v3 Private Key Usage Period" in r.stdout and "Digital Signature" in r.stdout


def test_openssl_rejects_revoked_and_tampered(
    tmp_path: Path, pki: PkiFactory, crl_for: CrlFor, openssl: OpenSsl
) -> None:
    p = pki("brainpoolP256r1")
    csca = write(tmp_path / "csca.pem", pem(p.csca))
    ds = write(tmp_path / "ds.pem", pem(p.ds))
    revoked = write(tmp_path / "revoked.pem", pem(crl_for(p, revoked=(0x2001,))))
    r = openssl("verify", "-CAfile", csca, "-CRLfile", revoked, "-crl_check", ds)
    assert r.returncode != 0 and "certificate revoked" in r.stdout + r.stderr

    der = bytearray(_der(p.ds))
    tbs = asn1_x509.Certificate.load(bytes(der))["tbs_certificate"]
    start = bytes(der).index(tbs["subject"].dump())
    der[start + len(tbs["subject"].dump()) - 1] ^= 0x01  # one bit of the subject's common name
    bad = write(tmp_path / "bad.der", bytes(der))
    r = openssl("verify", "-CAfile", csca, bad)
    assert r.returncode != 0

    crl_der = bytearray(_crl_der(crl_for(p)))
    crl_der[-3] ^= 0x01  # inside the signature
    bad_crl = write(tmp_path / "bad.crl", bytes(crl_der))
    r = openssl("crl", "-inform", "DER", "-in", bad_crl, "-CAfile", csca, "-noout")
    assert "verify failure" in r.stdout + r.stderr  # openssl crl exits 0 even then: read its output


def test_openssl_rejects_signer_from_another_ca(tmp_path: Path, pki: PkiFactory, openssl: OpenSsl) -> None:
    other = pki("secp384r1")
    csca = write(tmp_path / "csca.pem", pem(other.csca))  # same subject name, different key
    ds = write(tmp_path / "ds.pem", pem(pki("brainpoolP256r1").ds))
    r = openssl("verify", "-CAfile", csca, ds)
    assert r.returncode != 0
    assert "unable to get local issuer certificate" in r.stdout + r.stderr


def test_sign_certificate_keeps_builder_fields(pki: PkiFactory) -> None:
    p = pki("rsa-pss-2048")
    builder = (
        x509.CertificateBuilder()
        .subject_name(p.ds.subject)
        .issuer_name(p.csca.subject)
        .public_key(p.ds_signer.public_key)
        .serial_number(42)
        .not_valid_before(T0)
        .not_valid_after(T0 + dt.timedelta(days=1))
    )
    cert = sign_certificate(builder, p.csca_signer, "sha512")
    assert cert.serial_number == 42
    assert verify_certificate_signature(cert, p.csca) is None


def _der(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def _crl_der(crl: x509.CertificateRevocationList) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return crl.public_bytes(Encoding.DER)


def test_key_file_written_atomically_survives_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ektp_card.pki import signer as signer_mod

    path = tmp_path / "x.key"

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(signer_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        signer_mod.write_file(path, b"secret", private=True)
    assert os.listdir(tmp_path) == []
