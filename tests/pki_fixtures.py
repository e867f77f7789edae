"""Shared builders for the PKI, EF.SOD and Passive Authentication tests (imported, not a conftest)."""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card.pki.certs import create_csca, issue_document_signer
from ektp_card.pki.crl import Revocation, build_crl
from ektp_card.pki.signer import KeySpec, PrivateKeySigner

OPENSSL = "/usr/bin/openssl"
SPECS = ("brainpoolP256r1", "secp384r1", "rsa-pss-2048")
T0 = dt.datetime(2026, 1, 15, 8, 0, 0, tzinfo=dt.UTC)

#: A card's worth of data groups (sizes as on an e-KTP: face, fingerprints, signature image...).
DATA_GROUPS = {
    1: b"\x61\x5b" + bytes(range(91)),
    2: b"\x75\x82\x4e\x20" + bytes(i % 251 for i in range(20000)),
    3: b"\x63\x82\x07\xd0" + bytes(i % 13 for i in range(2000)),
    14: b"\x6e\x10" + bytes(16),
}


@dataclass(frozen=True)
class Pki:
    csca_signer: PrivateKeySigner
    csca: x509.Certificate
    ds_signer: PrivateKeySigner
    ds: x509.Certificate


@cache
def key(spec: str, n: int = 0) -> PrivateKeySigner:
    """Generated once per test session per (spec, n): RSA generation is the slow part."""
    return PrivateKeySigner(KeySpec.parse(spec).generate())


@cache
def pki(spec: str = "brainpoolP256r1") -> Pki:
    csca_signer = key(spec, 0)
    csca = create_csca(
        csca_signer,
        country="ID",
        common_name="CSCA Indonesia Test",
        organization="Dukcapil",
        not_before=T0,
        serial_number=0x1001,
    )
    ds_signer = key(spec, 1)
    ds = issue_document_signer(
        csca_signer,
        csca,
        ds_signer.public_key,
        common_name="DS Jakarta 1",
        organization="Dukcapil",
        not_before=T0 + dt.timedelta(days=1),
        serial_number=0x2001,
    )
    return Pki(csca_signer, csca, ds_signer, ds)


def crl_for(
    p: Pki, revoked: tuple[int, ...] = (), this_update: dt.datetime | None = None
) -> x509.CertificateRevocationList:
    return build_crl(
        p.csca_signer,
        p.csca,
        [Revocation(s, T0 + dt.timedelta(days=2), "key-compromise") for s in revoked],
        crl_number=7,
        this_update=this_update,
    )


def pem(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(Encoding.PEM)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPENSSL, *map(str, args)], capture_output=True, text=True, timeout=30)
