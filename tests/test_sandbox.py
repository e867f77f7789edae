"""The sandbox: a whole issuing office from synthetic data, whose cards verify to what they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from ektp_card.desk.registry import CardState, open_registry
from ektp_card.device import CardSource, open_card
from ektp_card.lds.record import read_batch
from ektp_card.pki.revocation import load_revocation_list
from ektp_card.pki.trust import TrustStore
from ektp_card.sandbox import Sandbox, build_sandbox
from ektp_card.verify.card import Verdict, verify_card


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    return build_sandbox(tmp_path_factory.mktemp("sandbox") / "office", seed=11)


def _verdict(sandbox: Sandbox, image: Path, can: str, capture: Path | None = None) -> Verdict:
    revocations = load_revocation_list(sandbox.revocations.read_bytes(), sandbox.trust)
    with open_card(CardSource(virtual=image)) as transport:
        finger = None if capture is None else capture.read_bytes()
        report = verify_card(transport, can, sandbox.trust, terminal=sandbox.terminal,
                             revocations=revocations, fingerprint=finger)
    return report.verdict


def test_each_card_verifies_to_what_it_is(sandbox: Sandbox) -> None:
    genuine = sandbox.genuine
    assert _verdict(sandbox, genuine.image, genuine.can, genuine.holder_capture) is Verdict.GENUINE
    assert _verdict(sandbox, genuine.image, genuine.can, genuine.other_capture) is Verdict.HOLDER_MISMATCH
    assert _verdict(sandbox, sandbox.clone, genuine.can) is Verdict.CLONED
    assert _verdict(sandbox, sandbox.lost.image, sandbox.lost.can) is Verdict.REVOKED
    assert _verdict(sandbox, sandbox.cards[1].image, sandbox.cards[1].can) is Verdict.GENUINE


def test_registry_and_folders(sandbox: Sandbox) -> None:
    with open_registry(sandbox.registry) as registry:
        states = {card.serial: registry.get(card.serial) for card in sandbox.cards}
    assert {s: row.state if row else None for s, row in states.items()} == {
        sandbox.cards[0].serial: CardState.HANDED_OVER,
        sandbox.cards[1].serial: CardState.PERSONALISED,
        sandbox.cards[2].serial: CardState.LOST,
    }
    assert TrustStore.from_folder(sandbox.trust_dir).cscas == sandbox.trust.cscas
    rows = list(read_batch(sandbox.batch))
    assert len(rows) == 20 and [r.line for r in rows if r.record is None] == [2, 5]
    assert "can=" not in repr(sandbox.genuine) and f"'{sandbox.genuine.can}'" not in repr(sandbox)


def test_the_cli_verifies_with_the_offices_files(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # What an integrator outside Python gets: files for `ektp verify`, a passphrase in the environment.
    from ektp_card._cli import main

    t = sandbox.terminal_dir
    monkeypatch.setenv("EKTP_TERMINAL_PASSPHRASE", sandbox.passphrase.decode())
    args = ["verify", "--virtual", str(sandbox.cards[1].image), "--can", sandbox.cards[1].can, "--trust",
            str(sandbox.trust_dir), "--terminal-chain", str(t / "dv.cvcert"), "--terminal-chain",
            str(t / "terminal.cvcert"), "--terminal-key", str(t / "terminal.key")]
    for finger, code in ((sandbox.cards[1].holder_capture, 0), (sandbox.cards[1].other_capture, 13)):
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--fingerprint", str(finger)])
        assert exit_info.value.code == code, capsys.readouterr().err
    assert (t / "cvca.cvcert").read_bytes() == sandbox.cvca_certificate
    assert (t / "terminal.key").stat().st_mode & 0o077 == 0
