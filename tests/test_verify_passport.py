"""`ektp verify --mrz` and verify_passport: a virtual ICAO passport (BAC or PACE-MRZ), genuine, forged
and cloned; DG1's MRZ decoded (the ICAO Doc 9303-4 specimen)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ektp_card._cli.util import ExitCode
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.errors import LdsFormatError, MrzError, PacePasswordError, VerificationFailedError
from ektp_card.lds.ektp import decode_dg2
from ektp_card.lds.emrtd import decode_emrtd_dg1, encode_emrtd_dg1, parse_mrz_fields
from ektp_card.lds.profile import EMRTD_AID
from ektp_card.verify.card import Verdict
from ektp_card.verify.passive import Status
from ektp_card.verify.passport import verify_passport
from ektp_card.virtual import VirtualCard

if TYPE_CHECKING:
    from fixtures.cards import BuildPassport, FreshPassport, IssuerOf, RunCli

#: ICAO Doc 9303-4 Appendix B specimen (TD3).
SPECIMEN = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<" "L898902C36UTO7408122F1204159ZE184226B<<<<<10"
KEY = MrzInfo("L898902C3", "740812", "120415")


def ef(card: VirtualCard, sfi: int) -> bytearray:
    data = card.fs.application(EMRTD_AID).child_ef(0x0100 + sfi).data  # type: ignore[union-attr]
    assert isinstance(data, bytearray)
    return data


# --- DG1 ------------------------------------------------------------------------------------------


def test_specimen_mrz_fields() -> None:
    dg1 = encode_emrtd_dg1(SPECIMEN)
    assert dg1[:5] == bytes.fromhex("615b5f1f58") and dg1[5:] == SPECIMEN.encode()
    fields = decode_emrtd_dg1(dg1)
    assert (fields.format, fields.document_type, fields.issuing_state) == ("TD3", "P", "UTO")
    assert (fields.primary_identifier, fields.secondary_identifier) == ("ERIKSSON", "ANNA MARIA")
    assert (fields.document_number, fields.nationality, fields.sex) == ("L898902C3", "UTO", "F")
    assert (fields.date_of_birth, fields.date_of_expiry) == ("740812", "120415")
    assert fields.optional_data == "ZE184226B"
    assert fields.key.mrz_information == KEY.mrz_information


def test_td1_fields() -> None:
    # ICAO Doc 9303-5 Appendix B specimen.
    td1 = "I<UTOD231458907<<<<<<<<<<<<<<<" "7408122F1204159UTO<<<<<<<<<<<6" "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"
    fields = parse_mrz_fields(td1)
    assert (fields.format, fields.document_type, fields.document_number) == ("TD1", "I", "D23145890")
    assert (fields.date_of_birth, fields.sex, fields.date_of_expiry, fields.nationality) == (
        "740812", "F", "120415", "UTO")
    assert fields.primary_identifier == "ERIKSSON"


def test_bad_check_digit_and_malformed_dg1() -> None:
    with pytest.raises(MrzError):
        parse_mrz_fields(SPECIMEN[:53] + "3" + SPECIMEN[54:])  # date of birth 740813, check digit 2
    with pytest.raises(LdsFormatError):
        decode_emrtd_dg1(b"\x61\x03\x5f\x1e\x00")


# --- the library ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pace", [False, True], ids=["bac", "pace-mrz"])
def test_genuine_passport(pace: bool, fresh_passport: FreshPassport, issuer: IssuerOf) -> None:
    card = fresh_passport(pace)
    report = verify_passport(card, KEY, issuer().trust)
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert report.access is not None and report.access.protocol == ("PACE" if pace else "BAC")
    got = {c.name: c.status for c in report.checks}
    assert got["pace" if pace else "bac"] is Status.PASS
    assert got["passive-authentication"] is Status.PASS
    assert got["printed-data"] is Status.PASS
    assert got["active-authentication"] is Status.PASS
    assert got["chip-authentication"] is Status.NOT_SUPPORTED  # EF.SOD covers no DG14
    assert sorted(report.data_groups) == [1, 2, 15]
    assert report.document is not None and report.document.primary_identifier == "ERIKSSON"
    assert report.face is not None and report.face.image == decode_dg2(bytes(ef(card, 2)))[0].image
    assert report.active is not None and report.active.passed


def test_changed_dg1_byte_is_forged(fresh_passport: FreshPassport, issuer: IssuerOf) -> None:
    card = fresh_passport()
    dg1 = ef(card, 1)
    at = bytes(dg1).index(b"ANNA")
    dg1[at] = ord("E")  # "ENNA": still a valid MRZ (names carry no check digit)
    report = verify_passport(card, KEY, issuer().trust)
    assert report.verdict is Verdict.FORGED
    assert "data groups 1 do not match their hash" in report.check("passive-authentication").reason


def test_swapped_aa_key_is_cloned(
    fresh_passport: FreshPassport, build_passport: BuildPassport, issuer: IssuerOf
) -> None:
    card = fresh_passport()
    other = build_passport(pace=False)  # its own Active Authentication key
    for name in list(card.keys):
        if name.startswith("aa."):
            card.keys[name] = other.keys[name]
    report = verify_passport(card, KEY, issuer().trust)
    assert report.verdict is Verdict.CLONED, report.reasons
    assert report.check("passive-authentication").status is Status.PASS
    assert report.check("active-authentication").status is Status.FAIL


def test_card_without_aa_fails_the_downgrade_policy(fresh_passport: FreshPassport, issuer: IssuerOf) -> None:
    card = fresh_passport()
    for name in [n for n in card.keys if n.startswith("aa.")]:
        del card.keys[name]
    report = verify_passport(card, KEY, issuer().trust)
    assert report.verdict is Verdict.CLONED


def test_wrong_mrz_raises(fresh_passport: FreshPassport, issuer: IssuerOf) -> None:
    wrong = MrzInfo("L898902C3", "740812", "120416")
    with pytest.raises(VerificationFailedError):
        verify_passport(fresh_passport(False), wrong, issuer().trust)
    with pytest.raises(PacePasswordError):
        verify_passport(fresh_passport(True), wrong, issuer().trust)


# --- the command line ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["genuine", "forged", "cloned", "wrong-mrz", "table"])
def test_cli(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    trust_dir: Path,
    kind: str,
    fresh_passport: FreshPassport,
    build_passport: BuildPassport,
    run_cli: RunCli,
) -> None:
    card = fresh_passport()
    mrz = "L898902C3,740812,120415"
    if kind == "forged":
        ef(card, 2)[-1] ^= 0x01
    elif kind == "cloned":
        card.keys["aa.private"] = build_passport(pace=False).keys["aa.private"]
    elif kind == "wrong-mrz":
        mrz = "L898902C3,740812,120416"
    path = tmp_path / "passport.img"
    card.save(path)
    face = tmp_path / "face.jpg"
    json_flag = () if kind == "table" else ("--json",)
    code, out, err = run_cli(capsys, *json_flag, "verify", "--virtual", str(path), "--mrz", mrz,
                             "--trust", str(trust_dir), "--face-out", str(face))
    expected = {"genuine": ExitCode.OK, "forged": ExitCode.FORGED, "cloned": ExitCode.CLONED,
                "wrong-mrz": ExitCode.SECURITY, "table": ExitCode.OK}[kind]
    assert code == expected, err
    if kind == "wrong-mrz":
        assert err.startswith("Error: ") and "Traceback" not in err and "740812" not in err
    elif kind == "table":
        assert "GENUINE" in out and "ERIKSSON" in out and "active-authentication" in out
    else:
        data = json.loads(out)
        assert data["verdict"] == kind
        assert data["document"]["document_number"] == "L898902C3"
        assert face.read_bytes()[:2] == b"\xff\xd8"


def test_cli_usage(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    trust_dir: Path,
    fresh_passport: FreshPassport,
    run_cli: RunCli,
) -> None:
    path = tmp_path / "passport.img"
    fresh_passport().save(path)
    code, _, err = run_cli(capsys, "verify", "--virtual", str(path), "--mrz", "L898902C3,740812",
                           "--trust", str(trust_dir))
    assert code == ExitCode.USAGE and "--mrz" in err
    code, _, err = run_cli(capsys, "verify", "--virtual", str(path), "--mrz", "L898902C3,740812,120415",
                           "--can", "123456", "--trust", str(trust_dir))
    assert code == ExitCode.USAGE
