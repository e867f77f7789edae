"""`ektp personalize`, `ektp virtual blank`, `ektp record synthetic` and `ektp demo` as a user runs them."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ektp_card._cli.personalize import StepTracker, run_personalisation
from ektp_card._cli.util import CliError, ExitCode
from ektp_card.errors import CardRemovedError
from ektp_card.lds.record import load_record, write_record
from ektp_card.lds.synthetic import synthetic_record
from ektp_card.personalize import Biometrics, DocumentSigner, plan_from_record
from ektp_card.pki.issuer import IssuerPki
from ektp_card.pki.signer import KeySpec
from ektp_card.pki.trust import TrustStore
from ektp_card.verify.passive import Policy
from ektp_card.virtual import VirtualCard
from ektp_card.virtual.perso import PersoState, blank_card, personalisation_state
from ektp_card.virtual.ta import TRUST_POINT_KEY

if TYPE_CHECKING:
    from fixtures.terminal_pki import PaceTaCa, Pki

MASTER = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
SERIAL = "0011223344556677"
PASS = {"EKTP_CSCA_PASSPHRASE": "csca-pass", "EKTP_DS_PASSPHRASE": "ds-pass"}


def ektp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EKTP_")}
    return subprocess.run(
        [sys.executable, "-m", "ektp_card", *args], capture_output=True, text=True, timeout=60,
        env={**clean, **(env or {})}, stdin=subprocess.DEVNULL, check=False,
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PKI folder (key files, current CRL), a master key file and a synthetic record."""
    root = tmp_path_factory.mktemp("desk")
    pki = IssuerPki.create(root / "pki", b"csca-pass", spec=KeySpec.parse("brainpoolP256r1"), country="ID",
                           common_name="CSCA CLI Test")
    pki.issue_document_signer(b"csca-pass", b"ds-pass", common_name="DS CLI Test")
    pki.publish_crl(b"csca-pass")
    (root / "master.hex").write_text(MASTER.hex() + "\n")
    write_record(synthetic_record(11), root / "record.json")
    return root


def blank(path: Path) -> Path:
    blank_card(MASTER, bytes.fromhex(SERIAL)).save(path)
    return path


def perso_args(desk: Path, image: Path, record: Path | None = None) -> list[str]:
    # DG3 too: these tests read the fingerprints back (the default, on-card only, has no DG3).
    return ["personalize", str(record or desk / "record.json"), "--pki", str(desk / "pki"),
            "--virtual", str(image), "--master-key-file", str(desk / "master.hex"), "--biometrics", "both"]


@pytest.mark.parametrize(("choice", "dg3", "reference"), [(None, False, True), ("on-card", False, True),
                                                         ("dg3", True, False), ("both", True, True)])
def test_biometrics_choice(desk: Path, tmp_path: Path, choice: str | None, dg3: bool,
                           reference: bool) -> None:
    from ektp_card.lds.compact import REFERENCE_FID, offers_on_card_comparison
    from ektp_card.lds.dg14 import Dg14
    from ektp_card.lds.ektp import EKTP_AID

    image = blank(tmp_path / "card.img")
    args = perso_args(desk, image)[:-2] + ([] if choice is None else ["--biometrics", choice])
    proc = ektp("--json", *args, env=PASS)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert ("DG3" in out["data_groups"]) is dg3
    assert [c["status"] for c in out["checks"]] == ["pass"] * 9
    app = VirtualCard.load(image).fs.application(EKTP_AID)
    assert (app.child_ef(0x0103) is not None) is dg3
    assert (app.child_ef(REFERENCE_FID) is not None) is reference
    dg14 = app.child_ef(0x010E)
    assert dg14 is not None and offers_on_card_comparison(Dg14.decode(bytes(dg14.data))) is reference


def test_personalise_a_blank_image_json(desk: Path, tmp_path: Path) -> None:
    image = tmp_path / "card.img"
    env = {"EKTP_PERSO_MASTER_KEY": MASTER.hex()}
    proc = ektp("virtual", "blank", str(image), "--serial", SERIAL, env=env)
    assert proc.returncode == 0, proc.stderr
    assert SERIAL.upper() in proc.stdout
    proc = ektp("--json", *perso_args(desk, image), env=PASS)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ok"] is True and out["card_serial"] == SERIAL.upper() and out["synthetic"] is True
    assert len(out["can"]) == 6 and out["can"].isdigit()
    assert out["can"] not in proc.stderr
    assert [c["status"] for c in out["checks"]] == ["pass"] * 9
    assert {c["name"] for c in out["checks"]} >= {"passive-authentication", "chip-authentication", "pace"}
    assert set(out["data_groups"]) == {"DG1", "DG2", "DG3", "DG7", "DG14", "DG15"}
    assert personalisation_state(VirtualCard.load(image)) is PersoState.LOCKED
    # A second run meets a locked card: refused, one line.
    assert_clean_error(ektp(*perso_args(desk, image), env=PASS), ExitCode.CARD_STATUS, "locked")


def test_malformed_record_leaves_the_card_untouched(desk: Path, tmp_path: Path) -> None:
    image = blank(tmp_path / "card.img")
    before = image.read_bytes()
    bad = json.loads((desk / "record.json").read_text())
    bad["nik"] = "1234"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert_clean_error(ektp(*perso_args(desk, image, tmp_path / "bad.json"), env=PASS), ExitCode.USAGE,
                       "nik.digits")
    (tmp_path / "broken.json").write_text("{not json")
    assert_clean_error(ektp(*perso_args(desk, image, tmp_path / "broken.json"), env=PASS), ExitCode.USAGE,
                       "not valid JSON")
    assert_clean_error(ektp(*perso_args(desk, image, tmp_path / "missing.json"), env=PASS), ExitCode.FILE,
                       "cannot read")
    assert image.read_bytes() == before


def test_wrong_passphrase_and_missing_master_key_leave_the_card_untouched(desk: Path, tmp_path: Path) -> None:
    image = blank(tmp_path / "card.img")
    before = image.read_bytes()
    wrong = {**PASS, "EKTP_DS_PASSPHRASE": "not-it"}
    proc = ektp(*perso_args(desk, image), env=wrong)
    assert_clean_error(proc, ExitCode.FILE, "wrong passphrase")
    assert "not-it" not in proc.stderr
    no_key = [a for a in perso_args(desk, image) if a not in ("--master-key-file", str(desk / "master.hex"))]
    assert_clean_error(ektp(*no_key, env=PASS), ExitCode.FILE, "EKTP_PERSO_MASTER_KEY")
    (tmp_path / "short.hex").write_text("0011")
    short = [*no_key, "--master-key-file", str(tmp_path / "short.hex")]
    proc = ektp(*short, env=PASS)
    assert_clean_error(proc, ExitCode.FILE, "16 or 32 bytes")
    assert "0011" not in proc.stderr
    assert image.read_bytes() == before


def test_expired_document_signer_leaves_the_card_untouched(tmp_path: Path) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    pki = IssuerPki.create(tmp_path / "pki", b"csca-pass", spec=KeySpec.parse("brainpoolP256r1"),
                           country="ID", common_name="CSCA Old", not_before=long_ago)
    pki.issue_document_signer(b"csca-pass", b"ds-pass", common_name="DS Old", key_usage_days=30,
                              not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=200))
    pki.publish_crl(b"csca-pass")
    (tmp_path / "master.hex").write_text(MASTER.hex())
    write_record(synthetic_record(11), tmp_path / "record.json")
    image = blank(tmp_path / "card.img")
    before = image.read_bytes()
    assert_clean_error(ektp(*perso_args(tmp_path, image), env=PASS), ExitCode.FILE, "key usage period ended")
    assert image.read_bytes() == before


class PulledOut:
    """The card leaves the field at command ``cut``."""

    def __init__(self, card: VirtualCard, cut: int) -> None:
        self.card, self.cut, self.count = card, cut, 0

    def transceive(self, command: bytes) -> bytes:
        self.count += 1
        if self.count > self.cut:
            raise CardRemovedError("the card left the field")
        return self.card.transceive(command)


def test_card_pulled_out_mid_write_is_one_line_and_the_card_is_not_locked(desk: Path) -> None:
    pki = IssuerPki(desk / "pki")
    trust = TrustStore((pki.csca,), ())
    ds = DocumentSigner(*pki.document_signer(None, b"ds-pass"))
    card = blank_card(MASTER, bytes.fromhex(SERIAL))
    card.power_on()
    plan = plan_from_record(load_record(desk / "record.json"), biometrics=Biometrics.BOTH)
    with pytest.raises(CliError) as exc:
        run_personalisation(PulledOut(card, 8), plan, MASTER, ds, trust, Policy(require_crl=False),
                            StepTracker())
    assert exc.value.code is ExitCode.NO_CARD
    assert "writing the data groups" in str(exc.value) and "not locked" in str(exc.value)
    assert plan.can not in str(exc.value)
    assert personalisation_state(card) is not PersoState.LOCKED


def test_record_synthetic_files_and_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "rec.json"
    proc = ektp("record", "synthetic", str(out), "--seed", "4", "--files")
    assert proc.returncode == 0, proc.stderr
    assert "synthetic" in proc.stdout
    data = json.loads(out.read_text())
    assert data["synthetic"] is True and data["face"] == "rec-face.jpg"
    assert load_record(out).nik == synthetic_record(4).nik
    assert_clean_error(ektp("record", "synthetic", str(out)), ExitCode.FILE, "exists")
    many = tmp_path / "many.jsonl"
    assert ektp("record", "synthetic", str(many), "--count", "3", "--jsonl", "--seed", "4").returncode == 0
    rows = [json.loads(line) for line in many.read_text().splitlines()]
    assert len(rows) == 3 and all(r["synthetic"] is True and r["face"].startswith("base64:") for r in rows)
    assert ektp("record", "synthetic", str(tmp_path / "x.json"), "--count", "2").returncode == ExitCode.USAGE


def test_demo_issues_and_verifies_a_card(tmp_path: Path) -> None:
    image = tmp_path / "demo.img"
    proc = ektp("--json", "demo", "--image", str(image), "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["nik"] == synthetic_record(2).nik
    assert len(report["card_serial"]) == 16 and len(report["can"]) == 6
    names = {s["name"] for s in report["steps"]}
    assert {"read back: passive-authentication", "locked card refuses personalisation",
            "image reloaded, read back again"} <= names
    assert personalisation_state(VirtualCard.load(image)) is PersoState.LOCKED


# --- a trust point for Terminal Authentication ------------------------------------------------------------


def test_cli_cvca_option(terminal_chain: Pki, pace_ta_ca: PaceTaCa, tmp_path: Path) -> None:
    """``--cvca``: the card gets the CVCA as its trust point and opens DG3 to that CVCA's terminals."""
    pki = terminal_chain
    root = tmp_path / "desk"
    root.mkdir()
    pki_dir = IssuerPki.create(root / "pki", b"csca-pass", spec=KeySpec.parse("brainpoolP256r1"),
                               country="ID", common_name="CSCA CLI TA Test")
    pki_dir.issue_document_signer(b"csca-pass", b"ds-pass", common_name="DS CLI TA Test")
    pki_dir.publish_crl(b"csca-pass")
    (root / "master.hex").write_text(MASTER.hex() + "\n")
    write_record(synthetic_record(11), root / "record.json")
    (tmp_path / "cvca.cvcert").write_bytes(pki.cvca.encode())
    (tmp_path / "dv.cvcert").write_bytes(pki.dv.encode())
    image = blank(tmp_path / "card.img")
    before = image.read_bytes()
    # A DV certificate is refused before the card is opened.
    proc = ektp(*perso_args(root, image), "--cvca", str(tmp_path / "dv.cvcert"), env=PASS)
    assert_clean_error(proc, ExitCode.FILE, "not a CVCA")
    assert image.read_bytes() == before
    proc = ektp("--json", *perso_args(root, image), "--cvca", str(tmp_path / "cvca.cvcert"), env=PASS)
    assert proc.returncode == 0, proc.stderr
    card = VirtualCard.load(image)
    assert card.keys[TRUST_POINT_KEY] == pki.cvca.encode()
    session, ta, ca_passed = pace_ta_ca(card, json.loads(proc.stdout)["can"], pki)
    assert ta.passed and ca_passed
    assert session.read_file(sfi=3)[:1] == b"\x63"  # DG3


@pytest.mark.parametrize(("mapping", "proved_by"), [("im", ["CA", "AA"]), ("cam", ["CAM", "AA"])])
def test_pace_mapping_choice(desk: Path, tmp_path: Path, mapping: str, proved_by: list[str]) -> None:
    from ektp_card.crypto.pace import PACE_ALGORITHMS
    from ektp_card.lds.card_access import CardAccess

    image = blank(tmp_path / "card.img")
    proc = ektp("--json", *perso_args(desk, image), "--pace-mapping", mapping, env=PASS)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"] is True
    card_access = VirtualCard.load(image).fs.mf.child_ef(0x011C)
    assert card_access is not None
    (info,) = CardAccess.decode(bytes(card_access.data)).pace_infos
    assert PACE_ALGORITHMS[info.protocol].mapping.value == mapping.upper()
    can = json.loads(proc.stdout)["can"]
    verified = ektp("--json", "verify", "--virtual", str(image), "--can", can, "--trust", str(desk / "pki"))
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["chip_proved_by"] == proved_by
