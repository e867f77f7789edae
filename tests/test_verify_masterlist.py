"""`ektp verify --master-list FILE --master-list-anchor CERT`: an ICAO CSCA master list as trust store."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import test_verify as tv
import test_verify_passport as tp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card._cli.util import ExitCode
from ektp_card.pki.certs import build_name, create_csca, sign_certificate
from ektp_card.pki.masterlist import build_master_list
from ektp_card.pki.signer import KeySpec, PrivateKeySigner
from ektp_card.pki.trust import TrustStore, load_master_list
from ektp_card.verify.card import Verdict, verify_card
from ektp_card.verify.passport import verify_passport

Capture = pytest.CaptureFixture[str]
MRZ = "L898902C3,740812,120415"


@dataclass(frozen=True)
class MasterListPki:
    anchor: x509.Certificate  # the CSCA that issued the master list signer
    other: x509.Certificate  # a CSCA that did not
    master_list: bytes  # lists the CSCA of the test cards and passports (tv.issuer())


def _csca(name: str) -> tuple[PrivateKeySigner, x509.Certificate]:
    signer = PrivateKeySigner(KeySpec.parse("secp256r1").generate())
    return signer, create_csca(signer, country="UT", common_name=name,
                               not_before=tv.NOW - dt.timedelta(days=2))


@cache
def ml_pki() -> MasterListPki:
    anchor_signer, anchor = _csca("CSCA Master List Anchor")
    _, other = _csca("CSCA Other")
    mls_signer = PrivateKeySigner(KeySpec.parse("secp256r1").generate())
    builder = (
        x509.CertificateBuilder()
        .subject_name(build_name("UT", "Master List Signer"))
        .issuer_name(anchor.subject)
        .public_key(mls_signer.public_key)
        .serial_number(0x4D4C)
        .not_valid_before(tv.NOW - dt.timedelta(days=1))
        .not_valid_after(tv.NOW + dt.timedelta(days=365))
    )
    mls = sign_certificate(builder, anchor_signer, "sha256")
    return MasterListPki(anchor, other, build_master_list(mls_signer, mls, [tv.issuer().csca]))


def test_master_list_trust_store_verifies_a_passport_and_an_ektp() -> None:
    p = ml_pki()
    store = load_master_list(p.master_list, TrustStore((p.anchor,), (tv.issuer().crl,)))
    assert store.cscas == (p.anchor, tv.issuer().csca)
    report = verify_passport(tp.fresh(), tp.KEY, store)
    assert report.verdict is Verdict.GENUINE, report.reasons
    card, can = tv.fresh()
    assert verify_card(card, can, store).verdict is Verdict.GENUINE
    # Without the master list, the passport's signer is unknown: forged.
    assert verify_passport(tp.fresh(), tp.KEY, TrustStore((p.anchor,), (tv.issuer().crl,))).verdict \
        is Verdict.FORGED


def _write(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    p = ml_pki()
    ml = tmp_path / "ml.der"
    ml.write_bytes(p.master_list)
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(p.anchor.public_bytes(Encoding.PEM))
    other = tmp_path / "other.der"
    other.write_bytes(p.other.public_bytes(Encoding.DER))
    crls = tmp_path / "crls"
    crls.mkdir()
    (crls / "csca.crl").write_bytes(tv.issuer().crl.public_bytes(Encoding.DER))
    return ml, anchor, other, crls


def test_cli_master_list_passport_genuine(capsys: Capture, tmp_path: Path) -> None:
    ml, anchor, _, crls = _write(tmp_path)
    path = tmp_path / "passport.img"
    tp.fresh().save(path)
    code, out, err = tv.run_cli(capsys, "--json", "verify", "--virtual", str(path), "--mrz", MRZ,
                                "--master-list", str(ml), "--master-list-anchor", str(anchor),
                                "--trust", str(crls))
    assert code == ExitCode.OK, err
    assert json.loads(out)["verdict"] == "genuine"
    # Without a CRL for the listed CSCA, --no-crl is needed.
    code, out, err = tv.run_cli(capsys, "--json", "verify", "--virtual", str(path), "--mrz", MRZ,
                                "--master-list", str(ml), "--master-list-anchor", str(anchor))
    assert code == ExitCode.FORGED, err
    code, out, err = tv.run_cli(capsys, "--json", "verify", "--virtual", str(path), "--mrz", MRZ,
                                "--master-list", str(ml), "--master-list-anchor", str(anchor), "--no-crl")
    assert code == ExitCode.OK, err


def test_cli_master_list_ektp_genuine(capsys: Capture, tmp_path: Path) -> None:
    ml, anchor, _, crls = _write(tmp_path)
    card, can = tv.fresh()
    code, out, err = tv.run_cli(capsys, "--json", "verify", "--virtual", str(tv.image(tmp_path, card)),
                                "--can", can, "--master-list", str(ml), "--master-list-anchor", str(anchor),
                                "--trust", str(crls))
    assert code == ExitCode.OK, err
    assert json.loads(out)["verdict"] == "genuine"


def test_cli_master_list_not_signed_by_the_anchor(capsys: Capture, tmp_path: Path) -> None:
    ml, anchor, other, _ = _write(tmp_path)
    path = tmp_path / "passport.img"
    tp.fresh().save(path)
    code, _, err = tv.run_cli(capsys, "verify", "--virtual", str(path), "--mrz", MRZ,
                              "--master-list", str(ml), "--master-list-anchor", str(other), "--no-crl")
    assert code == ExitCode.FILE == 7
    assert err.startswith("Error: ") and "does not chain to a trusted CSCA" in err and "Traceback" not in err
    tampered = bytearray(ml_pki().master_list)
    tampered[-1] ^= 0x01  # the signature
    ml.write_bytes(bytes(tampered))
    code, _, err = tv.run_cli(capsys, "verify", "--virtual", str(path), "--mrz", MRZ,
                              "--master-list", str(ml), "--master-list-anchor", str(anchor), "--no-crl")
    assert code == ExitCode.FILE and "master list" in err


def test_cli_master_list_usage(capsys: Capture, tmp_path: Path) -> None:
    ml, anchor, _, _ = _write(tmp_path)
    path = tmp_path / "passport.img"
    tp.fresh().save(path)
    code, _, err = tv.run_cli(capsys, "verify", "--virtual", str(path), "--mrz", MRZ)
    assert code == ExitCode.USAGE and "--trust" in err
    code, _, err = tv.run_cli(capsys, "verify", "--virtual", str(path), "--mrz", MRZ,
                              "--master-list", str(ml))
    assert code == ExitCode.USAGE and "--master-list-anchor" in err
    code, _, err = tv.run_cli(capsys, "verify", "--virtual", str(path), "--mrz", MRZ, "--master-list",
                              str(tmp_path / "missing.der"), "--master-list-anchor", str(anchor))
    assert code == ExitCode.FILE and "missing.der" in err
