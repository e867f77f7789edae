"""`ektp verify` with a terminal: PACE -> TA -> CA, DG3 and the holder's fingerprint 1:1."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card._cli.util import ExitCode
from ektp_card.errors import TerminalAuthenticationError
from ektp_card.lds.biometrics import MinutiaeRecord
from ektp_card.lds.ektp import decode_dg3
from ektp_card.lds.synthetic import (
    ENROLLED_FINGERS,
    impression,
    make_finger,
)
from ektp_card.pki.signer import KeyFileSigner, KeySpec
from ektp_card.verify.card import Terminal, Verdict, VerificationReport, verify_card
from ektp_card.verify.passive import Status

if TYPE_CHECKING:
    from fixtures.cards import CaptureOf, HolderCard, IssuerOf, RunCli
    from fixtures.terminal_pki import MakeTerminalPki, Pki, TerminalOf

PASSPHRASE = "terminal-pass"  # noqa: S105 - a test key file only


def stranger() -> MinutiaeRecord:
    finger = make_finger(random.Random(1234), ENROLLED_FINGERS[0])  # noqa: S311 - synthetic test data
    return impression(finger, random.Random(98)).record  # noqa: S311 - synthetic test data


def statuses(report: VerificationReport) -> dict[str, Status]:
    return {c.name: c.status for c in report.checks}


@pytest.mark.parametrize("finger_index", [0, 1], ids=["right-index", "left-index"])
def test_holder_finger_matches(
    finger_index: int, holder_card: HolderCard, capture: CaptureOf, terminal: TerminalOf, issuer: IssuerOf
) -> None:
    the_card, can = holder_card()
    report = verify_card(the_card, can, issuer().trust, terminal=terminal(),
                         fingerprint=capture(finger_index).encode())
    assert report.verdict is Verdict.GENUINE, report.reasons
    got = statuses(report)
    assert all(s is Status.PASS for s in got.values()), report.checks
    assert report.terminal is not None and report.terminal.passed
    assert report.check("terminal-authentication").reason == "the chip accepted IDGATE00001"
    assert report.check("dg3").reason == "2 minutiae templates"
    assert f"matches DG3 template {finger_index + 1}" in report.check("fingerprint").reason
    assert 3 in report.data_groups and report.refused == ()
    assert len(decode_dg3(report.data_groups[3])) == 2
    assert report.fingerprint is not None and report.fingerprint.matched and report.holder_matched is True


def test_another_finger_is_a_holder_mismatch(
    holder_card: HolderCard, terminal: TerminalOf, issuer: IssuerOf
) -> None:
    the_card, can = holder_card()
    report = verify_card(the_card, can, issuer().trust, terminal=terminal(), fingerprint=stranger())
    assert report.verdict is Verdict.HOLDER_MISMATCH
    assert statuses(report)["fingerprint"] is Status.FAIL
    assert report.reasons[0].startswith("fingerprint: matches no DG3 template")
    assert report.fingerprint is not None and not report.fingerprint.matched
    assert report.holder_matched is False


def test_without_a_terminal_the_fingerprint_is_not_compared(
    holder_card: HolderCard, capture: CaptureOf, issuer: IssuerOf
) -> None:
    the_card, can = holder_card()
    report = verify_card(the_card, can, issuer().trust, fingerprint=capture())
    assert report.verdict is Verdict.GENUINE, report.reasons
    got = statuses(report)
    assert got["terminal-authentication"] is Status.NOT_SUPPORTED
    assert got["dg3"] is Status.NOT_SUPPORTED and got["fingerprint"] is Status.NOT_SUPPORTED
    assert report.refused == (3,) and report.fingerprint is None


def test_a_terminal_without_the_read_dg3_right(
    holder_card: HolderCard, terminal: TerminalOf, make_terminal_pki: MakeTerminalPki, issuer: IssuerOf
) -> None:
    the_card, can = holder_card()
    no_dg3 = make_terminal_pki(rights=("read-dg4",))
    report = verify_card(the_card, can, issuer().trust, terminal=terminal(no_dg3), fingerprint=stranger())
    assert report.verdict is Verdict.GENUINE, report.reasons
    got = statuses(report)
    assert got["terminal-authentication"] is Status.PASS  # the chip accepts it, without DG3
    assert got["chip-authentication"] is Status.PASS  # with TA's ephemeral key
    assert got["dg3"] is Status.NOT_SUPPORTED
    assert report.check("dg3").reason == (
        "the card refused DG3 to this terminal: IDGATE00001 lacks the read-dg3 right")
    assert got["fingerprint"] is Status.NOT_SUPPORTED and report.refused == (3,)


def test_a_terminal_of_another_cvca_fails_ta_but_decides_nothing(
    holder_card: HolderCard,
    capture: CaptureOf,
    terminal: TerminalOf,
    make_terminal_pki: MakeTerminalPki,
    issuer: IssuerOf,
) -> None:
    the_card, can = holder_card()
    other = make_terminal_pki(cvca_key=7, holder="IDCVCA00009")
    report = verify_card(the_card, can, issuer().trust, terminal=terminal(other), fingerprint=capture())
    got = statuses(report)
    assert got["terminal-authentication"] is Status.FAIL
    assert got["dg3"] is Status.NOT_SUPPORTED and got["fingerprint"] is Status.NOT_SUPPORTED
    assert report.verdict is Verdict.GENUINE, report.reasons


def test_terminal_key_must_fit_the_chain(terminal_chain: Pki, make_terminal_pki: MakeTerminalPki) -> None:
    with pytest.raises(TerminalAuthenticationError, match="not the key of IDGATE00001"):
        Terminal((terminal_chain.dv, terminal_chain.terminal), make_terminal_pki(cvca_key=3).terminal_key)
    with pytest.raises(TerminalAuthenticationError, match="terminal certificate"):
        Terminal((terminal_chain.dv,), terminal_chain.terminal_key)


# --- the command line ---------------------------------------------------------------------------------


@pytest.fixture
def files(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    holder_card: HolderCard,
    capture: CaptureOf,
    make_terminal_pki: MakeTerminalPki,
    issuer: IssuerOf,
) -> dict[str, Path]:
    """A card image, the trust folder, and a terminal with its key in an encrypted key file."""
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "csca.pem").write_bytes(issuer().csca.public_bytes(Encoding.PEM))
    (trust / "csca.crl").write_bytes(issuer().crl.public_bytes(Encoding.DER))
    key = tmp_path / "terminal.key"
    p = make_terminal_pki(terminal_signer=KeyFileSigner.generate(key, KeySpec.parse("brainpoolP256r1"),
                                                                 PASSPHRASE.encode()))
    (tmp_path / "dv.cvcert").write_bytes(p.dv.encode())
    (tmp_path / "terminal.cvcert").write_bytes(p.terminal.encode())
    (tmp_path / "holder.fmr").write_bytes(capture().encode())
    (tmp_path / "stranger.fmr").write_bytes(stranger().encode())
    the_card, can = holder_card()
    the_card.save(tmp_path / "card.img")
    (tmp_path / "can").write_text(can)
    monkeypatch.setenv("EKTP_TERMINAL_PASSPHRASE", PASSPHRASE)
    return {"dir": tmp_path, "trust": trust, "key": key}


@pytest.fixture
def cli(run_cli: RunCli) -> RunCli:
    """``cli(capsys, files, *extra)``: ``ektp --json verify`` of the card in ``files``."""

    def run(capsys: pytest.CaptureFixture[str], files: dict[str, Path], *extra: str) -> tuple[int, str, str]:
        d = files["dir"]
        return run_cli(capsys, "--json", "verify", "--virtual", str(d / "card.img"), "--can",
                       (d / "can").read_text(), "--trust", str(files["trust"]), *extra)

    return run


def terminal_args(files: dict[str, Path]) -> tuple[str, ...]:
    d = files["dir"]
    return ("--terminal-chain", str(d / "dv.cvcert"), "--terminal-chain", str(d / "terminal.cvcert"),
            "--terminal-key", str(files["key"]))


def test_cli_holder_and_mismatch(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], cli: RunCli
) -> None:
    d = files["dir"]
    code, out, err = cli(capsys, files, *terminal_args(files), "--fingerprint", str(d / "holder.fmr"))
    assert code == 0, err
    data = json.loads(out)
    assert data["verdict"] == "genuine"
    assert {c["name"]: c["status"] for c in data["checks"]}["fingerprint"] == "pass"
    assert data["fingerprint"]["matched"] is True
    code, out, err = cli(capsys, files, *terminal_args(files), "--fingerprint", str(d / "stranger.fmr"))
    assert code == ExitCode.HOLDER_MISMATCH == 13, err
    assert json.loads(out)["verdict"] == "holder mismatch"


def test_cli_usage_and_file_errors(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, cli: RunCli
) -> None:
    d = files["dir"]
    code, _, err = cli(capsys, files, "--fingerprint", str(d / "holder.fmr"))
    assert code == ExitCode.USAGE and "--terminal-chain" in err
    code, _, err = cli(capsys, files, "--terminal-key", str(files["key"]))
    assert code == ExitCode.USAGE and "together" in err
    code, _, err = cli(capsys, files, *terminal_args(files), "--fingerprint", str(d / "can"))
    assert code == ExitCode.FILE and "19794-2" in err and "Traceback" not in err
    monkeypatch.setenv("EKTP_TERMINAL_PASSPHRASE", "wrong")
    code, _, err = cli(capsys, files, *terminal_args(files))
    assert code == ExitCode.FILE and "wrong passphrase" in err and "wrong" not in err.replace(
        "wrong passphrase", "")
