"""What a verification says when the trust folder lacks the document's country, and when the document
signer may not sign the document's type (ICAO 9303-12 section 7.1.1.3)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ektp_card.crypto.mrz import MrzInfo
from ektp_card.lds.profile import EMRTD_AID
from ektp_card.lds.sod import build_sod
from ektp_card.pki.certs import create_csca, issue_document_signer
from ektp_card.pki.signer import PrivateKeySigner
from ektp_card.pki.trust import TrustStore
from ektp_card.verify.passive import Status
from ektp_card.verify.passport import verify_passport
from ektp_card.verify.report import Verdict
from ektp_card.virtual import VirtualCard

if TYPE_CHECKING:
    from fixtures.cards import FreshPassport, RunCli

KEY = MrzInfo("L898902C3", "740812", "120415")
MRZ = "L898902C3,740812,120415"


def _ef(card: VirtualCard, sfi: int) -> bytearray:
    data = card.fs.application(EMRTD_AID).child_ef(0x0100 + sfi).data  # type: ignore[union-attr]
    assert isinstance(data, bytearray)
    return data


def _resign(card: VirtualCard, types: tuple[str, ...]) -> TrustStore:
    """EF.SOD replaced by one over the same data groups, signed by a new signer for ``types``."""
    now = dt.datetime.now(dt.UTC)
    csca_signer = PrivateKeySigner(ec.generate_private_key(ec.SECP256R1()))
    csca = create_csca(csca_signer, country="ID", common_name="CSCA Types",
                       not_before=now - dt.timedelta(days=1))
    ds_signer = PrivateKeySigner(ec.generate_private_key(ec.SECP256R1()))
    ds = issue_document_signer(csca_signer, csca, ds_signer.public_key, common_name="DS Types",
                               not_before=now - dt.timedelta(hours=1), document_types=types)
    groups = {n: bytes(_ef(card, n)) for n in (1, 2, 15)}
    sod = _ef(card, 0x1D)
    sod[:] = build_sod(groups, ds_signer, ds)
    return TrustStore((csca,))


@pytest.mark.parametrize(("types", "verdict"), [(("ID",), Verdict.FORGED), (("P", "ID"), Verdict.GENUINE)])
def test_passport_against_its_signers_document_types(types: tuple[str, ...], verdict: Verdict,
                                                    fresh_passport: FreshPassport) -> None:
    from ektp_card.verify.passive import Policy

    card = fresh_passport()
    trust = _resign(card, types)
    report = verify_passport(card, KEY, trust, policy=Policy(require_crl=False))
    assert report.verdict is verdict, report.reasons
    check = report.passive.check("document-type")  # type: ignore[union-attr]
    if verdict is Verdict.FORGED:
        assert check.status is Status.FAIL
        assert report.reasons == ("passive-authentication: document-type: document type P is not among "
                                  "those the document signer may sign (ID)",)
    else:
        assert check.status is Status.PASS
        assert check.reason == "document type P, one the signer may sign (ID, P)"


def test_cli_names_the_country_without_trust_anchor(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fresh_passport: FreshPassport, run_cli: RunCli,
) -> None:
    from ektp_card.pki.masterlist import build_master_list

    # A trust folder filled by an import, holding another country's CSCA only.
    signer = PrivateKeySigner(ec.generate_private_key(ec.SECP256R1()))
    now = dt.datetime.now(dt.UTC)
    csca = create_csca(signer, country="FD", common_name="CSCA FD", not_before=now - dt.timedelta(days=1))
    ml_signer = PrivateKeySigner(ec.generate_private_key(ec.SECP256R1()))
    ml = issue_document_signer(signer, csca, ml_signer.public_key, common_name="ML FD", not_before=now)
    (tmp_path / "ml.der").write_bytes(build_master_list(ml_signer, ml, [csca]))
    trust = tmp_path / "trust"
    code, _, err = run_cli(capsys, "trust", "import", str(tmp_path / "ml.der"), "--trust-dir", str(trust))
    assert code == 0, err
    path = tmp_path / "passport.img"
    fresh_passport().save(path)
    code, out, err = run_cli(capsys, "--json", "verify", "--virtual", str(path), "--mrz", MRZ, "--trust",
                             str(trust))
    assert code == 11, err
    data = json.loads(out)
    assert data["verdict"] == "forged"
    reasons = data["reasons"]
    assert any("certificate-chain: no trust anchor for country ID" in r for r in reasons), reasons
    code, out, _ = run_cli(capsys, "verify", "--virtual", str(path), "--mrz", MRZ, "--trust", str(trust))
    assert code == 11 and "no trust anchor for country ID" in out
