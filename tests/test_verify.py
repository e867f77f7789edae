"""`ektp verify` and its library: genuine, forged, cloned and downgraded virtual e-KTPs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ektp_card._cli.util import ExitCode
from ektp_card.errors import PacePasswordError
from ektp_card.lds.ektp import EKTP_AID, decode_dg2
from ektp_card.personalize import DocumentSigner, personalize, plan_from_record
from ektp_card.pki.certs import create_csca, issue_document_signer
from ektp_card.pki.crl import Revocation, build_crl
from ektp_card.pki.signer import KeySpec, PrivateKeySigner
from ektp_card.pki.trust import TrustStore
from ektp_card.verify.card import Verdict, VerificationReport, verify_card
from ektp_card.verify.passive import Status
from ektp_card.virtual import VirtualCard
from ektp_card.virtual.ca import CA_PRIVATE_KEY
from ektp_card.virtual.perso import blank_card

if TYPE_CHECKING:
    from fixtures.cards import Fresh, IssuerOf, RecordOf, RunCli

MASTER = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
NOW = dt.datetime.now(dt.UTC)
EVERY_CHECK = (
    "card-access", "card-info", "pace", "read", "passive-authentication", "printed-data",
    "chip-authentication", "active-authentication", "terminal-authentication", "dg3", "fingerprint",
)


def ef(card: VirtualCard, number: int) -> bytearray:
    app = card.fs.application(EKTP_AID)
    data = app.child_ef(0x0100 + number).data  # type: ignore[union-attr]
    assert isinstance(data, bytearray)
    return data


def statuses(report: VerificationReport) -> dict[str, Status]:
    return {c.name: c.status for c in report.checks}


# --- the library ------------------------------------------------------------------------------------


def test_genuine_card_passes_every_check(fresh: Fresh, issuer: IssuerOf, record: RecordOf) -> None:
    card, can = fresh()
    report = verify_card(card, can, issuer().trust)
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert tuple(c.name for c in report.checks) == EVERY_CHECK
    got = statuses(report)
    for name in EVERY_CHECK[:8]:
        assert got[name] is Status.PASS, report.check(name)
    assert got["terminal-authentication"] is Status.NOT_SUPPORTED
    assert got["dg3"] is Status.NOT_SUPPORTED
    assert got["fingerprint"] is Status.NOT_SUPPORTED
    assert sorted(report.data_groups) == [1, 2, 7, 14, 15]
    assert report.refused == (3,)  # DG3 needs Terminal Authentication
    assert report.personal is not None and report.personal == record().personal
    assert report.nik is not None and report.nik.ok
    assert report.face is not None
    assert report.face.image == decode_dg2(bytes(ef(card, 2)))[0].image
    assert report.face.image[:2] == b"\xff\xd8"  # a JPEG the clerk can open
    assert report.chip is not None and report.chip.passed
    assert report.active is not None and report.active.passed and len(report.active.challenge) == 8


def test_fresh_challenge_each_time(fresh: Fresh, issuer: IssuerOf) -> None:
    card, can = fresh()
    first = verify_card(card, can, issuer().trust)
    card.power_on()
    second = verify_card(card, can, issuer().trust)
    assert first.active is not None and second.active is not None
    assert first.active.challenge != second.active.challenge


def test_altered_data_group_is_forged(fresh: Fresh, issuer: IssuerOf, record: RecordOf) -> None:
    card, can = fresh()
    name = record().personal.name.encode()
    dg1 = ef(card, 1)
    at = bytes(dg1).index(name)
    dg1[at] = ord("X") if dg1[at] != ord("X") else ord("Y")
    report = verify_card(card, can, issuer().trust)
    assert report.verdict is Verdict.FORGED
    passive = report.check("passive-authentication")
    assert passive.status is Status.FAIL and "data groups 1 do not match their hash" in passive.reason
    # The chip itself is still the issuer's: only the data was changed.
    assert statuses(report)["chip-authentication"] is Status.PASS


def test_unknown_signer_is_forged(fresh: Fresh, issuer: IssuerOf) -> None:
    card, can = fresh()
    stranger = issuer("Stranger")
    report = verify_card(card, can, stranger.trust)
    assert report.verdict is Verdict.FORGED
    assert "no trusted CSCA named" in report.check("passive-authentication").reason


def test_revoked_signer_is_forged(issuer: IssuerOf, record: RecordOf) -> None:
    # A CSCA whose current CRL revokes the document signer that signed the card.
    csca_signer = PrivateKeySigner(KeySpec.parse("secp256r1").generate())
    csca = create_csca(csca_signer, country="ID", common_name="CSCA Revoking",
                       not_before=NOW - dt.timedelta(days=2))
    ds = issue_document_signer(csca_signer, csca, issuer().ds.signer.public_key, common_name="DS Revoked",
                               not_before=NOW - dt.timedelta(days=1))
    crl = build_crl(csca_signer, csca, [Revocation(ds.serial_number, NOW - dt.timedelta(minutes=5))],
                    crl_number=2, this_update=NOW - dt.timedelta(minutes=1))
    revoked_card = blank_card(MASTER, (9).to_bytes(8, "big"))
    result = personalize(revoked_card, plan_from_record(record()), MASTER,
                         DocumentSigner(issuer().ds.signer, ds))
    revoked_card.power_on()
    report = verify_card(revoked_card, result.can, TrustStore((csca,), (crl,)))
    assert report.verdict is Verdict.FORGED, report.reasons
    assert "revocation" in report.check("passive-authentication").reason


def test_clone_with_other_chip_keys_is_cloned(fresh: Fresh, issuer: IssuerOf) -> None:
    original, can = fresh(1)
    other, _ = fresh(2)  # another genuine card: its own CA and AA keys
    for name in list(original.keys):
        if name.startswith(("ca.", "aa.")):
            original.keys[name] = other.keys[name]
    report = verify_card(original, can, issuer().trust)
    assert report.verdict is Verdict.CLONED, report.reasons
    assert statuses(report)["passive-authentication"] is Status.PASS
    assert statuses(report)["chip-authentication"] is Status.FAIL


def test_clone_refusing_chip_authentication_fails_the_downgrade_policy(
    fresh: Fresh, issuer: IssuerOf
) -> None:
    card, can = fresh()
    del card.keys[CA_PRIVATE_KEY]  # a copy that cannot run CA "does not support" it
    report = verify_card(card, can, issuer().trust)
    assert report.verdict is Verdict.CLONED, report.reasons
    assert statuses(report)["chip-authentication"] is Status.FAIL
    assert statuses(report)["passive-authentication"] is Status.PASS


def test_wrong_can_raises(fresh: Fresh, issuer: IssuerOf) -> None:
    card, can = fresh()
    wrong = "000000" if can != "000000" else "111111"
    with pytest.raises(PacePasswordError):
        verify_card(card, wrong, issuer().trust)


# --- the command line ---------------------------------------------------------------------------------


def image(tmp_path: Path, card: VirtualCard) -> Path:
    path = tmp_path / "card.img"
    card.save(path)
    return path


Capture = pytest.CaptureFixture[str]


def test_cli_genuine_json_and_face(
    capsys: Capture, tmp_path: Path, trust_dir: Path, fresh: Fresh, record: RecordOf, run_cli: RunCli
) -> None:
    card, can = fresh()
    face = tmp_path / "face.jpg"
    path = image(tmp_path, card)
    code, out, err = run_cli(capsys, "--json", "verify", "--virtual", str(path), "--can", can,
                             "--trust", str(trust_dir), "--face-out", str(face))
    assert code == 0, err
    data = json.loads(out)
    assert data["verdict"] == "genuine" and data["reasons"] == []
    assert [c["name"] for c in data["checks"]] == list(EVERY_CHECK)
    assert data["printed"]["nik"] == record().personal.nik
    assert data["face_file"] == str(face) and face.read_bytes()[:2] == b"\xff\xd8"
    assert can not in out and can not in err


def test_cli_human_table(
    capsys: Capture, tmp_path: Path, trust_dir: Path, fresh: Fresh, record: RecordOf, run_cli: RunCli
) -> None:
    card, can = fresh()
    code, out, err = run_cli(capsys, "verify", "--virtual", str(image(tmp_path, card)), "--can", can,
                             "--trust", str(trust_dir))
    assert code == 0, err
    assert "GENUINE" in out and "chip-authentication" in out and record().personal.name in out


@pytest.mark.parametrize("kind", ["forged", "cloned"])
def test_cli_exit_codes(
    capsys: Capture, tmp_path: Path, trust_dir: Path, kind: str, fresh: Fresh, run_cli: RunCli
) -> None:
    card, can = fresh()
    if kind == "forged":
        ef(card, 7)[-1] ^= 0x01
    else:
        del card.keys[CA_PRIVATE_KEY]
    code, out, _ = run_cli(capsys, "--json", "verify", "--virtual", str(image(tmp_path, card)), "--can", can,
                           "--trust", str(trust_dir))
    assert code == {"forged": ExitCode.FORGED, "cloned": ExitCode.CLONED}[kind]
    assert json.loads(out)["verdict"] == kind


def test_cli_wrong_can_and_usage(
    capsys: Capture, tmp_path: Path, trust_dir: Path, fresh: Fresh, run_cli: RunCli
) -> None:
    card, can = fresh()
    path = image(tmp_path, card)
    wrong = "000000" if can != "000000" else "111111"
    trust = str(trust_dir)
    code, _, err = run_cli(capsys, "verify", "--virtual", str(path), "--can", wrong, "--trust", trust)
    assert code == ExitCode.SECURITY and err.startswith("Error: ") and "Traceback" not in err
    code, _, err = run_cli(capsys, "verify", "--virtual", str(path), "--trust", str(trust_dir))
    assert code == ExitCode.USAGE and "--can" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "verify", "--virtual", str(path), "--can", can, "--trust", str(empty))
    assert code == ExitCode.FILE and "no certificate" in err
    code, _, err = run_cli(capsys, "verify", "--virtual", str(tmp_path / "missing.img"), "--can", can,
                           "--trust", str(trust_dir))
    assert code == ExitCode.FILE, err
