"""`ektp desk issue|show|handover|activate|lost|damaged|revoke|replace|audit-verify` as a desk runs them:
exit codes, JSON, and a batch killed (SIGKILL) or stopped (Ctrl-C) mid-way and run again."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ektp_card._cli.desk_issue import INTERRUPTED, _clock
from ektp_card._cli.util import ExitCode
from ektp_card.desk.registry import CardState, open_registry
from ektp_card.pki.cvc import VERIFY_BIOMETRIC
from ektp_card.pki.signer import KeyFileSigner, KeySpec

if TYPE_CHECKING:
    from fixtures.cards import RunCli
    from fixtures.desk import (
        CheckEndState,
        Citizens,
        DeskCapture,
        DeskStranger,
        Invalid,
        MakeIssuerPki,
        Records,
        WriteBatch,
    )
    from fixtures.terminal_pki import MakeTerminalPki

MASTER = bytes.fromhex("303132333435363738393A3B3C3D3E3F")
TERMINAL_PASS = "terminal-pass"  # noqa: S105 - a test key file only
# The document signer's passphrase of make_issuer_pki's folders (tests/fixtures/desk.py).
ENV = {"EKTP_DS_PASSPHRASE": "ds-pass", "EKTP_TERMINAL_PASSPHRASE": TERMINAL_PASS}
RESUME = "again with the same options to resume"


@pytest.fixture(scope="module")
def files(
    tmp_path_factory: pytest.TempPathFactory,
    make_issuer_pki: MakeIssuerPki,
    make_terminal_pki: MakeTerminalPki,
    desk_capture: DeskCapture,
    desk_stranger: DeskStranger,
) -> Path:
    """Issuer PKI folder, master key file, the terminal PKI (CVCA for the chips, DV and terminal
    certificates, terminal key file) and the holder's and a stranger's captures."""
    root = tmp_path_factory.mktemp("desk-cli")
    make_issuer_pki(root / "pki")
    (root / "master.hex").write_text(MASTER.hex() + "\n")
    key = root / "terminal.key"
    # The desk's terminal may have the chip compare fingerprints: the cards are issued on-card.
    p = make_terminal_pki(rights=("read-dg3", "read-dg4", VERIFY_BIOMETRIC),
                          terminal_signer=KeyFileSigner.generate(key, KeySpec.parse("brainpoolP256r1"),
                                                                 TERMINAL_PASS.encode()))
    (root / "cvca.cvcert").write_bytes(p.cvca.encode())
    (root / "dv.cvcert").write_bytes(p.dv.encode())
    (root / "terminal.cvcert").write_bytes(p.terminal.encode())
    (root / "holder.fmr").write_bytes(desk_capture(0).encode())
    (root / "stranger.fmr").write_bytes(desk_stranger().encode())
    return root


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EKTP_REGISTRY", "EKTP_DESK", "EKTP_ACTOR", "EKTP_CAN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def issue_args(files: Path, batch: Path, work: Path, *extra: str) -> list[str]:
    return ["desk", "issue", str(batch), "--issuer", str(files / "pki"), "--master-key-file",
            str(files / "master.hex"), "--virtual-dir", str(work / "cards"), "--cvca",
            str(files / "cvca.cvcert"), "--registry", str(work / "registry.sqlite"), "--desk", "desk-cli",
            "--actor", "clerk", *extra]


def desk_args(work: Path, *args: str) -> list[str]:
    return ["desk", *args, "--registry", str(work / "registry.sqlite"), "--desk", "desk-cli", "--actor",
            "clerk"]


def handover_args(files: Path, work: Path, serial: str, finger: str) -> list[str]:
    return desk_args(work, "handover", serial, "--fingerprint", str(files / finger), "--virtual-dir",
                     str(work / "cards"), "--issuer", str(files / "pki"), "--terminal-chain",
                     str(files / "dv.cvcert"), "--terminal-chain", str(files / "terminal.cvcert"),
                     "--terminal-key", str(files / "terminal.key"))


def test_issue_then_every_life_cycle_command(
    capsys: pytest.CaptureFixture[str],
    files: Path,
    tmp_path: Path,
    env: None,
    citizens: Citizens,
    records: Records,
    write_batch: WriteBatch,
    invalid: Invalid,
    run_cli: RunCli,
) -> None:
    batch = write_batch(tmp_path / "batch.jsonl", [*records(0, 1), invalid(records(2)[0]), *records(3)])
    code, out, err = run_cli(capsys, "--json", *issue_args(files, batch, tmp_path))
    assert code == ExitCode.PARTIAL == 9, err
    summary = json.loads(out)
    assert (summary["issued"], summary["skipped"], summary["rejected"]) == (3, 0, 1)
    assert [(r["line"], r["status"], r["reason"]) for r in summary["records"] if r["status"] != "issued"] == [
        (3, "rejected", "nik.digits")]
    assert summary["complete"] is True and summary["cards_per_hour"] > 0
    serial, second, third = (r["serial"] for r in summary["records"] if r["status"] == "issued")
    # Again: nothing issued twice, every record skipped or rejected as before.
    code, out, err = run_cli(capsys, "--json", *issue_args(files, batch, tmp_path))
    assert code == ExitCode.PARTIAL, err
    again = json.loads(out)
    assert (again["issued"], again["skipped"], again["rejected"]) == (0, 3, 1)
    # The table form.
    code, out, err = run_cli(capsys, *issue_args(files, batch, tmp_path))
    assert code == ExitCode.PARTIAL and "Skipped and rejected records" in out and "nik.digits" in out

    code, out, _ = run_cli(capsys, "--json", *desk_args(tmp_path, "show", serial))
    row = json.loads(out)
    assert code == 0 and row["state"] == "personalised" and row["nik"] == citizens()[0].record.nik
    assert len(row["sod_sha256"]) == 64 and row["batch"] == summary["batch"]
    code, out, _ = run_cli(capsys, "--json", *desk_args(tmp_path, "show", "--nik", row["nik"]))
    assert code == 0 and [r["serial"] for r in json.loads(out)] == [serial]
    code, out, _ = run_cli(capsys, *desk_args(tmp_path, "show", serial))
    assert code == 0 and serial in out and "personalised" in out
    code, _, err = run_cli(capsys, *desk_args(tmp_path, "show", "FFFFFFFFFFFFFFFF"))
    assert code == ExitCode.REGISTRY and "not in the registry" in err
    code, _, err = run_cli(capsys, *desk_args(tmp_path, "show"))
    assert code == ExitCode.USAGE

    # Not active before it is handed over.
    code, _, err = run_cli(capsys, *desk_args(tmp_path, "activate", serial))
    assert code == ExitCode.REGISTRY and "cannot go from personalised to active" in err, err
    # A stranger's finger: exit 13, the card stays personalised.
    code, out, err = run_cli(capsys, "--json", *handover_args(files, tmp_path, serial, "stranger.fmr"))
    assert code == ExitCode.HOLDER_MISMATCH == 13, err
    assert json.loads(out)["refusal"] == "holder mismatch"
    assert _state(tmp_path, serial) == "personalised"
    code, out, err = run_cli(capsys, *handover_args(files, tmp_path, serial, "holder.fmr"))
    assert code == 0, err
    assert f"Card {serial} handed over to its holder" in out and "fingerprint" in out
    assert _state(tmp_path, serial) == "handed_over"
    code, _, err = run_cli(capsys, *handover_args(files, tmp_path, serial, "holder.fmr"))
    assert code == ExitCode.REGISTRY and "only a personalised card is handed over" in err
    # The holder's card presented for another card's serial.
    (tmp_path / "cards" / f"{second}.card").write_bytes((tmp_path / "cards" / f"{serial}.card").read_bytes())
    (tmp_path / "cards" / f"{second}.print.json").write_bytes(
        (tmp_path / "cards" / f"{serial}.print.json").read_bytes())
    code, out, err = run_cli(capsys, *handover_args(files, tmp_path, second, "holder.fmr"))
    assert code == ExitCode.VERIFY_FAILED and "not this card" in err, err

    code, out, _ = run_cli(capsys, "--json", *desk_args(tmp_path, "activate", serial))
    assert code == 0 and json.loads(out)["state"] == "active"
    code, _, err = run_cli(capsys, *desk_args(tmp_path, "lost", serial))
    assert code == ExitCode.USAGE and "--police-report" in err
    code, _, err = run_cli(capsys, *desk_args(tmp_path, "lost", serial, "--police-report", " "))
    assert code == ExitCode.USAGE and "police report" in err
    code, out, _ = run_cli(capsys, *desk_args(tmp_path, "lost", serial, "--police-report", "LP/123/XI/2026"))
    assert code == 0 and "now lost" in out
    code, out, _ = run_cli(capsys, "--json", *desk_args(tmp_path, "replace", serial, "a1b2c3d4e5f60718"))
    new = json.loads(out)
    assert code == 0 and new["serial"] == "A1B2C3D4E5F60718" and new["nik"] == row["nik"]
    assert new["state"] == "personalised"
    code, _, err = run_cli(capsys, *desk_args(tmp_path, "damaged", second))
    assert code == ExitCode.USAGE and "--surrendered" in err
    code, out, _ = run_cli(capsys, *desk_args(tmp_path, "damaged", second, "--surrendered"))
    assert code == 0 and "now damaged" in out
    code, out, _ = run_cli(capsys, *desk_args(tmp_path, "revoke", third, "--reason", "fraud suspected"))
    assert code == 0 and "now revoked" in out
    code, out, _ = run_cli(capsys, "--json", *desk_args(tmp_path, "show", third))
    assert json.loads(out)["reason"] == "fraud suspected"

    # The audit log verifies, against its head too; an edited entry is named.
    code, out, _ = run_cli(capsys, "--json", *desk_args(tmp_path, "audit-verify"))
    head = json.loads(out)["head"]
    assert code == 0 and json.loads(out)["ok"] is True and head["seq"] > 10
    anchor = f"{head['seq']}:{head['hash']}"
    code, out, _ = run_cli(capsys, *desk_args(tmp_path, "audit-verify", "--anchor", anchor))
    assert code == 0 and f"head {anchor}" in out
    code, _, err = run_cli(capsys, *desk_args(tmp_path, "audit-verify", "--anchor", "3:abc"))
    assert code == ExitCode.USAGE and "SEQ:HASH" in err
    wrong = f"{head['seq']}:{'0' * 64}"
    code, _, err = run_cli(capsys, *desk_args(tmp_path, "audit-verify", "--anchor", wrong))
    assert code == ExitCode.VERIFY_FAILED and f"entry {head['seq']}" in err
    raw = sqlite3.connect(str(tmp_path / "registry.sqlite"), isolation_level=None)
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("UPDATE audit SET actor = 'someone else' WHERE seq = 3")
    raw.close()
    code, out, err = run_cli(capsys, *desk_args(tmp_path, "audit-verify"))
    assert code == ExitCode.VERIFY_FAILED == 10
    assert "does not verify at entry 3: hash does not match" in err


def _state(work: Path, serial: str) -> str:
    with open_registry(str(work / "registry.sqlite")) as reg:
        row = reg.get(serial)
        assert row is not None
        return str(row.state)


def test_issue_usage_and_file_errors(
    capsys: pytest.CaptureFixture[str], files: Path, tmp_path: Path, env: None,
    monkeypatch: pytest.MonkeyPatch,
    records: Records,
    write_batch: WriteBatch,
    run_cli: RunCli,
) -> None:
    batch = write_batch(tmp_path / "batch.jsonl", records(0))
    args = issue_args(files, batch, tmp_path)
    no_source = [a for a in args if a not in ("--virtual-dir", str(tmp_path / "cards"))]
    code, _, err = run_cli(capsys, *no_source)
    assert code == ExitCode.USAGE and "--reader R or --virtual-dir DIR" in err
    code, _, err = run_cli(capsys, *args, "--reader", "0")
    assert code == ExitCode.USAGE
    code, _, err = run_cli(capsys, *no_source, "--reader", "0")
    assert code == ExitCode.USAGE and "--print-dir" in err
    code, _, err = run_cli(capsys, *args, "--print-dir", str(tmp_path))
    assert code == ExitCode.USAGE
    code, _, err = run_cli(capsys, *issue_args(files, tmp_path / "missing.jsonl", tmp_path))
    assert code == ExitCode.FILE and "cannot read" in err
    monkeypatch.setenv("EKTP_DS_PASSPHRASE", "wrong")
    code, _, err = run_cli(capsys, *args)
    assert code == ExitCode.FILE and "passphrase" in err and "Traceback" not in err
    assert not (tmp_path / "cards").exists() or not list((tmp_path / "cards").iterdir())
    with open_registry(str(tmp_path / "registry.sqlite")) as reg:
        assert reg.cards() == []


def test_clock() -> None:
    assert _clock(0) == "0:00:00" and _clock(3725.4) == "1:02:05"


# --- the real command, interrupted ------------------------------------------------------------------------


def _start(files: Path, batch: Path, work: Path) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EKTP_")}
    return subprocess.Popen(
        [sys.executable, "-m", "ektp_card", "--json", *issue_args(files, batch, work)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        env={**clean, **ENV},
    )


def _wait_for_first_card(proc: subprocess.Popen[str], cards: Path) -> None:
    deadline = time.monotonic() + 60
    while not (cards.is_dir() and any(cards.glob("*.card"))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_kill_9_mid_batch_then_resume(
    files: Path, tmp_path: Path, records: Records, write_batch: WriteBatch, check_end_state: CheckEndState
) -> None:
    batch = write_batch(tmp_path / "batch.jsonl", records(0, 1, 2, 3, 4, 5, 6, 7))
    proc = _start(files, batch, tmp_path)
    _wait_for_first_card(proc, tmp_path / "cards")
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    again = _start(files, batch, tmp_path)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    summary = json.loads(out)
    assert summary["rejected"] == 0 and summary["issued"] + summary["skipped"] == 8
    assert summary["skipped"] >= 1  # the card(s) issued before the kill
    check_end_state(str(tmp_path / "registry.sqlite"), {r.nik for r in records(0, 1, 2, 3, 4, 5, 6, 7)},
                    [tmp_path / "cards"])


def test_ctrl_c_stops_with_a_resume_line(
    files: Path, tmp_path: Path, records: Records, write_batch: WriteBatch, check_end_state: CheckEndState
) -> None:
    batch = write_batch(tmp_path / "batch.jsonl", records(0, 1, 2, 3, 4, 5, 6, 7))
    proc = _start(files, batch, tmp_path)
    _wait_for_first_card(proc, tmp_path / "cards")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == INTERRUPTED == 130, err
    assert RESUME in err and "Traceback" not in err
    stopped = json.loads(out)
    assert stopped["cancelled"] is True and 1 <= stopped["issued"] < 8
    with open_registry(str(tmp_path / "registry.sqlite")) as reg:
        assert reg.cards(states=[CardState.PENDING]) == []  # it finished the card in hand
    again = _start(files, batch, tmp_path)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert json.loads(out)["skipped"] == stopped["issued"]
    check_end_state(str(tmp_path / "registry.sqlite"), {r.nik for r in records(0, 1, 2, 3, 4, 5, 6, 7)},
                    [tmp_path / "cards"])
