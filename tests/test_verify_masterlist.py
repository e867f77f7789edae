"""`ektp verify --master-list FILE --master-list-anchor CERT`: an ICAO CSCA master list as trust store."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card._cli.util import ExitCode
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.pki.certs import build_name, create_csca, sign_certificate
from ektp_card.pki.masterlist import build_master_list
from ektp_card.pki.signer import KeySpec, PrivateKeySigner
from ektp_card.pki.trust import TrustStore, load_master_list
from ektp_card.verify.card import Verdict, verify_card
from ektp_card.verify.passport import verify_passport

if TYPE_CHECKING:
    from fixtures.cards import Fresh, FreshPassport, IssuerOf, RunCli

Capture = pytest.CaptureFixture[str]
MRZ = "L898902C3,740812,120415"
KEY = MrzInfo("L898902C3", "740812", "120415")  # the ICAO specimen passport's (fresh_passport)
NOW = dt.datetime.now(dt.UTC)
Written = tuple[Path, Path, Path, Path]


@dataclass(frozen=True)
class MasterListPki:
    anchor: x509.Certificate  # the CSCA that issued the master list signer
    other: x509.Certificate  # a CSCA that did not
    master_list: bytes  # lists the CSCA of the test cards and passports (the issuer fixture's)


def _csca(name: str) -> tuple[PrivateKeySigner, x509.Certificate]:
    signer = PrivateKeySigner(KeySpec.parse("secp256r1").generate())
    return signer, create_csca(signer, country="UT", common_name=name,
                               not_before=NOW - dt.timedelta(days=2))


@pytest.fixture(scope="module")
def ml_pki(issuer: IssuerOf) -> MasterListPki:
    anchor_signer, anchor = _csca("CSCA Master List Anchor")
    _, other = _csca("CSCA Other")
    mls_signer = PrivateKeySigner(KeySpec.parse("secp256r1").generate())
    builder = (
        x509.CertificateBuilder()
        .subject_name(build_name("UT", "Master List Signer"))
        .issuer_name(anchor.subject)
        .public_key(mls_signer.public_key)
        .serial_number(0x4D4C)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
    )
    mls = sign_certificate(builder, anchor_signer, "sha256")
    return MasterListPki(anchor, other, build_master_list(mls_signer, mls, [issuer().csca]))


def test_master_list_trust_store_verifies_a_passport_and_an_ektp(
    fresh: Fresh, fresh_passport: FreshPassport, issuer: IssuerOf, ml_pki: MasterListPki
) -> None:
    p = ml_pki
    store = load_master_list(p.master_list, TrustStore((p.anchor,), (issuer().crl,)))
    assert store.cscas == (p.anchor, issuer().csca)
    report = verify_passport(fresh_passport(), KEY, store)
    assert report.verdict is Verdict.GENUINE, report.reasons
    card, can = fresh()
    assert verify_card(card, can, store).verdict is Verdict.GENUINE
    # Without the master list, the passport's signer is unknown: forged.
    assert verify_passport(fresh_passport(), KEY, TrustStore((p.anchor,), (issuer().crl,))).verdict \
        is Verdict.FORGED


@pytest.fixture
def written(tmp_path: Path, ml_pki: MasterListPki, issuer: IssuerOf) -> Written:
    """The master list, its anchor (PEM), another CSCA (DER) and a folder with the listed CSCA's CRL."""
    p = ml_pki
    ml = tmp_path / "ml.der"
    ml.write_bytes(p.master_list)
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(p.anchor.public_bytes(Encoding.PEM))
    other = tmp_path / "other.der"
    other.write_bytes(p.other.public_bytes(Encoding.DER))
    crls = tmp_path / "crls"
    crls.mkdir()
    (crls / "csca.crl").write_bytes(issuer().crl.public_bytes(Encoding.DER))
    return ml, anchor, other, crls


def test_cli_master_list_passport_genuine(
    capsys: Capture,
    tmp_path: Path,
    fresh_passport: FreshPassport,
    run_cli: RunCli,
    written: Written,
) -> None:
    ml, anchor, _, crls = written
    path = tmp_path / "passport.img"
    fresh_passport().save(path)
    code, out, err = run_cli(capsys, "--json", "verify", "--virtual", str(path), "--mrz", MRZ,
                             "--master-list", str(ml), "--master-list-anchor", str(anchor),
                             "--trust", str(crls))
    assert code == ExitCode.OK, err
    assert json.loads(out)["verdict"] == "genuine"
    # Without a CRL for the listed CSCA, --no-crl is needed.
    code, out, err = run_cli(capsys, "--json", "verify", "--virtual", str(path), "--mrz", MRZ,
                             "--master-list", str(ml), "--master-list-anchor", str(anchor))
    assert code == ExitCode.FORGED, err
    code, out, err = run_cli(capsys, "--json", "verify", "--virtual", str(path), "--mrz", MRZ,
                             "--master-list", str(ml), "--master-list-anchor", str(anchor), "--no-crl")
    assert code == ExitCode.OK, err


def test_cli_master_list_ektp_genuine(
    capsys: Capture, tmp_path: Path, fresh: Fresh, run_cli: RunCli, written: Written
) -> None:
    ml, anchor, _, crls = written
    card, can = fresh()
    card.save(tmp_path / "card.img")
    code, out, err = run_cli(capsys, "--json", "verify", "--virtual", str(tmp_path / "card.img"),
                             "--can", can, "--master-list", str(ml), "--master-list-anchor", str(anchor),
                             "--trust", str(crls))
    assert code == ExitCode.OK, err
    assert json.loads(out)["verdict"] == "genuine"


def test_cli_master_list_not_signed_by_the_anchor(
    capsys: Capture,
    tmp_path: Path,
    fresh_passport: FreshPassport,
    run_cli: RunCli,
    ml_pki: MasterListPki,
    written: Written,
) -> None:
    ml, anchor, other, _ = written
    path = tmp_path / "passport.img"
    fresh_passport().save(path)
    code, _, err = run_cli(capsys, "verify", "--virtual", str(path), "--mrz", MRZ,
                           "--master-list", str(ml), "--master-list-anchor", str(other), "--no-crl")
    assert code == ExitCode.FILE == 7
    assert err.startswith("Error: ") and "does not chain to a trusted CSCA" in err and "Traceback" not in err
    tampered = bytearray(ml_pki.master_list)
    tampered[-1] ^= 0x01  # the signature
    ml.write_bytes(bytes(tampered))
    code, _, err = run_cli(capsys, "verify", "--virtual", str(path), "--mrz", MRZ,
                           "--master-list", str(ml), "--master-list-anchor", str(anchor), "--no-crl")
    assert code == ExitCode.FILE and "master list" in err


def test_cli_master_list_usage(
    capsys: Capture,
    tmp_path: Path,
    fresh_passport: FreshPassport,
    run_cli: RunCli,
    written: Written,
) -> None:
    ml, anchor, _, _ = written
    path = tmp_path / "passport.img"
    fresh_passport().save(path)
    code, _, err = run_cli(capsys, "verify", "--virtual", str(path), "--mrz", MRZ)
    assert code == ExitCode.USAGE and "--trust" in err
    code, _, err = run_cli(capsys, "verify", "--virtual", str(path), "--mrz", MRZ,
                           "--master-list", str(ml))
    assert code == ExitCode.USAGE and "--master-list-anchor" in err
    code, _, err = run_cli(capsys, "verify", "--virtual", str(path), "--mrz", MRZ, "--master-list",
                           str(tmp_path / "missing.der"), "--master-list-anchor", str(anchor))
    assert code == ExitCode.FILE and "missing.der" in err
