"""`ektp verify` with the terminal key in a PKCS#11 token (SoftHSM2): TA, DG3 and the fingerprint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card._cli.util import ExitCode
from ektp_card.pki.pkcs11 import Pkcs11Signer
from ektp_card.pki.signer import KeySpec

if TYPE_CHECKING:
    from fixtures.cards import CaptureOf, HolderCard, IssuerOf, RunCli
    from fixtures.terminal_pki import MakeTerminalPki, Pki
    from fixtures.tools import SoftHsmToken

KEY_LABEL = "verify-terminal"


@pytest.fixture(scope="module")
def terminal_pki(token: SoftHsmToken, make_terminal_pki: MakeTerminalPki) -> Pki:
    """The test DV's terminal certificate for a key generated once in the module's token."""
    # Closed before any command runs: an open session of this process would keep the token logged in.
    spec = KeySpec.parse("brainpoolP256r1")
    with Pkcs11Signer.generate(token.module, token.label, KEY_LABEL, spec, token.pin) as hsm:
        return make_terminal_pki(terminal_signer=hsm)


@pytest.fixture
def files(
    terminal_pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    token: SoftHsmToken,
    holder_card: HolderCard,
    capture: CaptureOf,
    issuer: IssuerOf,
) -> Path:
    """A card image, the trust folder, and the chain of the terminal whose key is in the token."""
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "csca.pem").write_bytes(issuer().csca.public_bytes(Encoding.PEM))
    (trust / "csca.crl").write_bytes(issuer().crl.public_bytes(Encoding.DER))
    p = terminal_pki
    (tmp_path / "dv.cvcert").write_bytes(p.dv.encode())
    (tmp_path / "terminal.cvcert").write_bytes(p.terminal.encode())
    (tmp_path / "holder.fmr").write_bytes(capture().encode())
    the_card, can = holder_card()
    the_card.save(tmp_path / "card.img")
    (tmp_path / "can").write_text(can)
    monkeypatch.setenv("EKTP_TERMINAL_PIN", token.pin.decode())
    monkeypatch.delenv("EKTP_TERMINAL_PASSPHRASE", raising=False)
    return tmp_path


@pytest.fixture
def cli(run_cli: RunCli) -> RunCli:
    """``cli(capsys, folder, *extra)``: ``ektp --json verify`` of the card in ``folder`` (see ``files``)."""

    def run(capsys: pytest.CaptureFixture[str], d: Path, *extra: str) -> tuple[int, str, str]:
        return run_cli(capsys, "--json", "verify", "--virtual", str(d / "card.img"), "--can",
                       (d / "can").read_text(), "--trust", str(d / "trust"), "--terminal-chain",
                       str(d / "dv.cvcert"), "--terminal-chain", str(d / "terminal.cvcert"), *extra)

    return run


def hsm_args(token: SoftHsmToken, key_label: str = KEY_LABEL) -> tuple[str, ...]:
    return ("--terminal-pkcs11", token.module, "--terminal-token", token.label,
            "--terminal-key-label", key_label)


def test_terminal_key_in_token(
    capsys: pytest.CaptureFixture[str], files: Path, token: SoftHsmToken, cli: RunCli
) -> None:
    code, out, err = cli(capsys, files, *hsm_args(token), "--fingerprint", str(files / "holder.fmr"))
    assert code == 0, err
    data = json.loads(out)
    assert data["verdict"] == "genuine"
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["terminal-authentication"]["status"] == "pass"
    assert checks["terminal-authentication"]["reason"] == "the chip accepted IDGATE00001"
    assert checks["dg3"]["status"] == "pass" and checks["fingerprint"]["status"] == "pass"
    assert data["fingerprint"]["matched"] is True


def test_wrong_pin_and_bad_choices(
    capsys: pytest.CaptureFixture[str],
    files: Path,
    token: SoftHsmToken,
    monkeypatch: pytest.MonkeyPatch,
    cli: RunCli,
) -> None:
    monkeypatch.setenv("EKTP_TERMINAL_PIN", "0000")
    code, out, err = cli(capsys, files, *hsm_args(token))
    assert code == int(ExitCode.FILE) == 7
    assert err == f"Error: cannot log in to token '{token.label}': PinIncorrect\n", err
    assert "0000" not in out + err and token.pin.decode() not in out + err and "Traceback" not in err
    # the PIN from another variable
    monkeypatch.setenv("OTHER_PIN", token.pin.decode())
    code, _, err = cli(capsys, files, *hsm_args(token), "--terminal-pin-env", "OTHER_PIN")
    assert code == 0, err
    monkeypatch.setenv("EKTP_TERMINAL_PIN", token.pin.decode())
    code, _, err = cli(capsys, files, *hsm_args(token, "missing"))
    assert code == ExitCode.FILE and f"no key pair labelled 'missing' on token '{token.label}'" in err
    code, _, err = cli(capsys, files, "--terminal-pkcs11", token.module, "--terminal-token", token.label)
    assert code == ExitCode.USAGE and "go together" in err
    code, _, err = cli(capsys, files, *hsm_args(token), "--terminal-key", str(files / "can"))
    assert code == ExitCode.USAGE and "not both" in err
