"""The same signing flows with keys in a PKCS#11 token: SoftHSM2 with a private configuration."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card.errors import PkiError
from ektp_card.lds.sod import build_sod, unwrap
from ektp_card.pki.certs import create_csca, issue_document_signer
from ektp_card.pki.crl import build_crl
from ektp_card.pki.pkcs11 import Pkcs11Signer
from ektp_card.pki.signer import KeySpec
from ektp_card.verify import Policy, TrustStore, passive_authentication

if TYPE_CHECKING:
    from fixtures.document_pki import PkiFactory
    from fixtures.tools import OpenSsl, SoftHsmToken

#: The epoch of the ``pki`` fixture's certificates (tests/fixtures/document_pki.py).
T0 = dt.datetime(2026, 1, 15, 8, 0, 0, tzinfo=dt.UTC)
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


@pytest.mark.parametrize("spec", ["secp256r1", "brainpoolP256r1", "rsa-pss-2048"])
def test_document_signer_in_token(
    token: SoftHsmToken, spec: str, tmp_path: Path, pki: PkiFactory, openssl: OpenSsl
) -> None:
    p = pki(spec if spec != "secp256r1" else "brainpoolP256r1")
    with Pkcs11Signer.generate(
        token.module, token.label, f"ds-{spec}", KeySpec.parse(spec), token.pin
    ) as hsm:
        ds = issue_document_signer(p.csca_signer, p.csca, hsm.public_key, common_name="DS HSM", not_before=T0)
        signed = T0 + dt.timedelta(days=2)
        sod = build_sod(DATA_GROUPS, hsm, ds, hash_name="sha384", signing_time=signed)
    # reopen by label: the key persists in the token
    with Pkcs11Signer(token.module, token.label, f"ds-{spec}", token.pin) as again:
        assert again.public_key.public_numbers() == hsm.public_key.public_numbers()
    der = write(tmp_path / "sod.der", unwrap(sod))
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
        str(int(signed.timestamp())),
    )
    assert r.returncode == 0 and "Verification successful" in r.stderr, r.stderr
    now = T0 + dt.timedelta(days=10)
    crl = build_crl(p.csca_signer, p.csca, [], crl_number=1, this_update=now)
    result = passive_authentication(sod, DATA_GROUPS, TrustStore((p.csca,), (crl,)), Policy(at=now))
    assert result.ok, result.failures


def test_csca_and_crl_in_token(token: SoftHsmToken, tmp_path: Path, openssl: OpenSsl) -> None:
    spec = KeySpec.parse("secp384r1")
    with Pkcs11Signer.generate(token.module, token.label, "csca", spec, token.pin) as hsm:
        cert = create_csca(hsm, country="ID", common_name="CSCA in HSM", not_before=T0)
        crl = build_crl(hsm, cert, [], crl_number=3, this_update=T0)
    csca = write(tmp_path / "csca.pem", pem(cert))
    r = openssl("verify", "-x509_strict", "-CAfile", csca, csca)
    assert r.returncode == 0, r.stdout + r.stderr
    crl_file = write(tmp_path / "csca.crl", pem(crl))
    r = openssl("crl", "-in", crl_file, "-CAfile", csca, "-noout")
    assert r.returncode == 0 and "verify OK" in r.stdout + r.stderr


def test_token_errors_are_clean(token: SoftHsmToken) -> None:
    spec = KeySpec.parse("secp256r1")
    Pkcs11Signer.generate(token.module, token.label, "pin-test", spec, token.pin).close()
    with pytest.raises(PkiError, match="cannot log in") as e:
        Pkcs11Signer(token.module, token.label, "pin-test", b"0000")
    assert "0000" not in str(e.value)
    with pytest.raises(PkiError, match="no PKCS#11 token 'nope'"):
        Pkcs11Signer(token.module, "nope", "pin-test", token.pin)
    with pytest.raises(PkiError, match="no key pair labelled 'missing'"):
        Pkcs11Signer(token.module, token.label, "missing", token.pin)
