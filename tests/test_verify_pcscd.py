"""`ektp verify` end to end through a real pcscd: a personalised virtual card in vpcd's reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Under CI=true a module skipped for want of an optional package fails instead (tests/conftest.py).
pytest.importorskip("smartcard", reason="pyscard is not installed (pip install -e '.[test]')")

from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

from ektp_card._cli.util import ExitCode  # noqa: E402
from ektp_card.apdu.pcsc import PcscTransport  # noqa: E402
from ektp_card.errors import CardRemovedError  # noqa: E402
from ektp_card.pki.signer import KeyFileSigner, KeySpec  # noqa: E402
from ektp_card.verify.card import Verdict, VerificationReport, verify_card  # noqa: E402
from ektp_card.verify.passive import Status  # noqa: E402
from ektp_card.virtual import VirtualCard  # noqa: E402

if TYPE_CHECKING:
    from fixtures.cards import CaptureOf, HolderCard, IssuerOf
    from fixtures.terminal_pki import MakeTerminalPki, TerminalOf

pytestmark = pytest.mark.pcscd

Serve = Callable[..., Any]
ROOT = Path(__file__).parent.parent
CardIn = Callable[[Path], "tuple[VirtualCard, str]"]
PASSPHRASE = "terminal-pass"  # noqa: S105 - a test key file only
EVERY_CHECK = (
    "card-access", "card-info", "pace", "read", "passive-authentication", "printed-data",
    "chip-authentication", "active-authentication", "terminal-authentication", "dg3", "fingerprint",
)


@pytest.fixture(scope="module")
def card_in(holder_card: HolderCard) -> CardIn:
    """``card_in(folder)``: a holder card (trust point: ``terminal_chain``'s CVCA) saved in ``folder`` and
    loaded from there, and its CAN."""

    def load(folder: Path) -> tuple[VirtualCard, str]:
        the_card, can = holder_card()
        path = folder / "card.img"
        the_card.save(path)
        return VirtualCard.load(path), can

    return load


class RemovedAfter:
    """A card that leaves the reader after answering its ``after``-th command (the bridge is stopped
    from another thread, as a hand pulling the card away while the terminal keeps talking)."""

    def __init__(self, card: VirtualCard, after: int) -> None:
        self.card = card
        self.after = after
        self.count = 0
        self.stop: Callable[[], None] = lambda: None

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def power_on(self) -> bytes:
        return self.card.power_on()

    def power_off(self) -> None:
        self.card.power_off()

    def transceive(self, command: bytes) -> bytes:
        self.count += 1
        if self.count == self.after:
            threading.Thread(target=self.stop, daemon=True).start()
        return self.card.transceive(command)


@pytest.fixture
def files(
    tmp_path: Path, issuer: IssuerOf, capture: CaptureOf, make_terminal_pki: MakeTerminalPki
) -> dict[str, Path]:
    """The trust folder, the terminal's CV certificates and encrypted key, the holder's capture."""
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
    return {"dir": tmp_path, "trust": trust, "key": key}


def statuses(report: VerificationReport) -> dict[str, Status]:
    return {c.name: c.status for c in report.checks}


def run_verify(
    reader: str, can: str, files: dict[str, Path], *extra: str
) -> subprocess.CompletedProcess[str]:
    args = ["-m", "ektp_card", "--json", "verify", "--reader", reader, "--timeout", "5", "--can", can,
            "--trust", str(files["trust"]), *extra]
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "EKTP_TERMINAL_PASSPHRASE": PASSPHRASE}, check=False,
    )


def test_verify_card_over_pcsc_passes_every_check(
    vpcd_bridge: Serve,
    pcscd: str,
    tmp_path: Path,
    card_in: CardIn,
    issuer: IssuerOf,
    capture: CaptureOf,
    terminal: TerminalOf,
) -> None:
    the_card, can = card_in(tmp_path)
    bridge = vpcd_bridge(the_card)
    with PcscTransport.open(pcscd, timeout=5) as transport:
        report = verify_card(transport, can, issuer().trust, terminal=terminal(),
                             fingerprint=capture().encode())
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert tuple(c.name for c in report.checks) == EVERY_CHECK
    assert all(s is Status.PASS for s in statuses(report).values()), report.checks
    assert sorted(report.data_groups) == [1, 2, 3, 7, 14, 15] and report.refused == ()
    assert report.fingerprint is not None and report.fingerprint.matched
    assert bridge.commands > 20  # every command went through pcscd to the card


def test_cli_verify_through_pcscd(
    vpcd_bridge: Serve, pcscd: str, files: dict[str, Path], card_in: CardIn
) -> None:
    the_card, can = card_in(files["dir"])
    vpcd_bridge(the_card)
    d = files["dir"]
    proc = run_verify(pcscd, can, files, "--terminal-chain", str(d / "dv.cvcert"), "--terminal-chain",
                      str(d / "terminal.cvcert"), "--terminal-key", str(files["key"]),
                      "--fingerprint", str(d / "holder.fmr"))
    assert proc.returncode == ExitCode.OK, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "genuine" and data["reasons"] == []
    assert {c["name"]: c["status"] for c in data["checks"]} == dict.fromkeys(EVERY_CHECK, "pass")
    assert data["fingerprint"]["matched"] is True
    assert data["data_groups"] == [1, 2, 3, 7, 14, 15]


def test_card_removed_mid_verify(
    vpcd_bridge: Serve,
    pcscd: str,
    tmp_path: Path,
    card_in: CardIn,
    issuer: IssuerOf,
) -> None:
    the_card, can = card_in(tmp_path)
    leaving = RemovedAfter(the_card, after=8)  # after PACE has started, long before the end
    bridge = vpcd_bridge(leaving)
    leaving.stop = bridge.stop
    with (PcscTransport.open(pcscd, timeout=5) as transport,
          pytest.raises(CardRemovedError, match="removed") as info):
        verify_card(transport, can, issuer().trust)
    assert "\n" not in str(info.value) and can not in str(info.value)
    assert 8 <= bridge.commands < 20


def test_cli_card_removed_mid_verify(
    vpcd_bridge: Serve, pcscd: str, files: dict[str, Path], card_in: CardIn
) -> None:
    the_card, can = card_in(files["dir"])
    leaving = RemovedAfter(the_card, after=12)
    bridge = vpcd_bridge(leaving)
    leaving.stop = bridge.stop
    proc = run_verify(pcscd, can, files)
    assert proc.returncode == ExitCode.NO_CARD, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "removed" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and can not in proc.stderr
