"""On-card comparison end to end through a real pcscd: VERIFY with matching and other captures, the
retry counter, and `ektp verify --fingerprint` deciding by the chip's answer."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Under CI=true a module skipped for want of an optional package fails instead (tests/conftest.py).
pytest.importorskip("smartcard", reason="pyscard is not installed (pip install -e '.[test]')")

from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

from ektp_card._cli.util import ExitCode  # noqa: E402
from ektp_card.apdu.pcsc import PcscTransport  # noqa: E402
from ektp_card.crypto.ta import EphemeralKey  # noqa: E402
from ektp_card.lds.biometrics import MinutiaeRecord  # noqa: E402
from ektp_card.lds.dg14 import Dg14  # noqa: E402
from ektp_card.lds.synthetic import ENROLLED_FINGERS, impression, make_finger  # noqa: E402
from ektp_card.pki.cvc import VERIFY_BIOMETRIC  # noqa: E402
from ektp_card.pki.signer import KeyFileSigner, KeySpec  # noqa: E402
from ektp_card.session.document import EktpSession  # noqa: E402
from ektp_card.verify.card import Terminal, Verdict, verify_card  # noqa: E402

if TYPE_CHECKING:
    from fixtures.cards import CaptureOf, HolderCard, IssuerOf
    from fixtures.terminal_pki import MakeTerminalPki

pytestmark = pytest.mark.pcscd

Serve = Callable[..., Any]
ROOT = Path(__file__).parent.parent
PASSPHRASE = "terminal-pass"  # noqa: S105 - a test key file only


def stranger() -> MinutiaeRecord:
    finger = make_finger(random.Random(1234), ENROLLED_FINGERS[0])  # noqa: S311 - synthetic test data
    return impression(finger, random.Random(98)).record  # noqa: S311 - synthetic test data


@pytest.fixture(scope="module")
def bio_terminal(make_terminal_pki: MakeTerminalPki) -> Terminal:
    pki = make_terminal_pki(rights=("read-dg3", VERIFY_BIOMETRIC))
    return Terminal((pki.dv, pki.terminal), pki.terminal_key)


def test_verify_apdus_through_pcscd(vpcd_bridge: Serve, pcscd: str, on_card_card: HolderCard,
                                    bio_terminal: Terminal, capture: CaptureOf) -> None:
    card, can = on_card_card()
    bridge = vpcd_bridge(card)
    with PcscTransport.open(pcscd, timeout=5) as transport:
        session = EktpSession(transport)
        session.authenticate(can)
        dg14 = Dg14.decode(session.read_data_group(14))
        ephemeral = EphemeralKey.generate(dg14.ca_parameters().curve)
        assert session.terminal_authenticate(bio_terminal.chain, bio_terminal.signer, ephemeral).passed
        assert session.chip_authenticate(dg14, key_source=ephemeral.key_source).passed
        assert session.fingerprint_tries().tries_left == 5
        assert session.compare_fingerprint(capture(0)).matched
        miss = session.compare_fingerprint(stranger())
        assert not miss.matched and miss.tries_left == 4 and not miss.blocked
        assert session.compare_fingerprint(capture(1)).matched
        assert session.fingerprint_tries().tries_left == 5
    assert bridge.commands > 10


def test_verify_card_through_pcscd_decides_on_the_card(vpcd_bridge: Serve, pcscd: str,
                                                       on_card_card: HolderCard, bio_terminal: Terminal,
                                                       capture: CaptureOf, issuer: IssuerOf) -> None:
    card, can = on_card_card()
    vpcd_bridge(card)
    for probe, verdict, left in ((capture(), Verdict.GENUINE, 5), (stranger(), Verdict.HOLDER_MISMATCH, 4)):
        with PcscTransport.open(pcscd, timeout=5) as transport:
            report = verify_card(transport, can, issuer().trust, terminal=bio_terminal, fingerprint=probe)
        assert report.verdict is verdict, report.reasons
        assert report.fingerprint_path == "on-card"
        assert report.on_card is not None and report.on_card.tries_left == left


def test_cli_verify_on_card_through_pcscd(vpcd_bridge: Serve, pcscd: str, tmp_path: Path,
                                          on_card_card: HolderCard, issuer: IssuerOf, capture: CaptureOf,
                                          make_terminal_pki: MakeTerminalPki) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "csca.pem").write_bytes(issuer().csca.public_bytes(Encoding.PEM))
    (trust / "csca.crl").write_bytes(issuer().crl.public_bytes(Encoding.DER))
    key = tmp_path / "terminal.key"
    pki = make_terminal_pki(rights=("read-dg3", VERIFY_BIOMETRIC), terminal_signer=KeyFileSigner.generate(
        key, KeySpec.parse("brainpoolP256r1"), PASSPHRASE.encode()))
    (tmp_path / "dv.cvcert").write_bytes(pki.dv.encode())
    (tmp_path / "terminal.cvcert").write_bytes(pki.terminal.encode())
    (tmp_path / "holder.fmr").write_bytes(capture().encode())
    card, can = on_card_card()
    vpcd_bridge(card)
    args = ["-m", "ektp_card", "--json", "verify", "--reader", pcscd, "--timeout", "5", "--can", can,
            "--trust", str(trust), "--terminal-chain", str(tmp_path / "dv.cvcert"), "--terminal-chain",
            str(tmp_path / "terminal.cvcert"), "--terminal-key", str(key), "--fingerprint",
            str(tmp_path / "holder.fmr")]
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "EKTP_TERMINAL_PASSPHRASE": PASSPHRASE}, check=False)
    assert proc.returncode == ExitCode.OK, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "genuine" and data["fingerprint_path"] == "on-card"
    assert data["on_card_comparison"] == {"matched": True, "tries_left": 5, "blocked": False}
    assert data["fingerprint"] is None and 3 not in data["data_groups"]
