"""Handover (ektp_card.desk.handover): the card must be the registry's, genuine, and the holder's finger
must match DG3 before the registry records the handover."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ektp_card.desk.batch import PrintedCard, VirtualCardDir, issue_batch
from ektp_card.desk.handover import HandoverResult, Refusal, check_card, hand_over, handover_candidate
from ektp_card.desk.registry import CardState, Registry, open_registry
from ektp_card.errors import RegistryError
from ektp_card.lds.biometrics import MinutiaeRecord
from ektp_card.lds.ektp import EKTP_AID
from ektp_card.pki.trust import TrustStore
from ektp_card.verify.card import Terminal
from ektp_card.verify.passive import Status
from ektp_card.virtual import VirtualCard

if TYPE_CHECKING:
    from fixtures.desk import Citizens, DeskCapture, DeskStranger, LoadIssuance, MakeIssuerPki, WriteBatch
    from fixtures.terminal_pki import MakeTerminalPki, Pki, TerminalOf

DESK, ACTOR = "desk-handover", "officer-2"
MASTER = bytes.fromhex("303132333435363738393A3B3C3D3E3F")


@dataclass(frozen=True)
class Issued:
    root: Path
    serials: tuple[str, str]

    @property
    def issuance_dir(self) -> Path:
        return self.root / "pki"


@pytest.fixture(scope="module")
def issued(
    tmp_path_factory: pytest.TempPathFactory,
    citizens: Citizens,
    write_batch: WriteBatch,
    make_issuer_pki: MakeIssuerPki,
    load_issuance: LoadIssuance,
    terminal_chain: Pki,
) -> Issued:
    """Two cards (citizens 0 and 1) issued with the terminal PKI's CVCA as their trust point."""
    root = tmp_path_factory.mktemp("handover")
    make_issuer_pki(root / "pki")
    issuance = load_issuance(root / "pki", MASTER, cvca=terminal_chain.cvca.encode())
    batch = write_batch(root / "batch.jsonl", [citizens()[0].record, citizens()[1].record])
    with open_registry(str(root / "registry.sqlite")) as reg:
        summary = issue_batch(batch, reg, VirtualCardDir(root / "cards", MASTER), issuance, desk=DESK,
                              actor=ACTOR)
    first, second = (o.serial for o in summary.issued)
    assert first is not None and second is not None
    return Issued(root, (first, second))


@dataclass
class Desk:
    registry: Registry
    cards: Path
    serials: tuple[str, str]
    issued: Issued
    trust: TrustStore  # the issuer's, from the PKI folder
    terminal: Terminal  # of the terminal PKI whose CVCA the cards trust

    def card(self, serial: str) -> tuple[VirtualCard, str]:
        card = VirtualCard.load(self.cards / f"{serial}.card")
        card.power_on()
        return card, PrintedCard.decode((self.cards / f"{serial}.print.json").read_bytes()).can


@pytest.fixture
def desk(issued: Issued, tmp_path: Path, load_issuance: LoadIssuance, terminal: TerminalOf) -> Iterator[Desk]:
    """A private copy of the registry and the card folder for one test."""
    shutil.copy(issued.root / "registry.sqlite", tmp_path / "registry.sqlite")
    shutil.copytree(issued.root / "cards", tmp_path / "cards")
    reg = open_registry(str(tmp_path / "registry.sqlite"))
    trust = load_issuance(issued.issuance_dir, MASTER).trust
    yield Desk(reg, tmp_path / "cards", issued.serials, issued, trust, terminal())
    reg.close()


def run(d: Desk, serial: str, finger: MinutiaeRecord, *, card_serial: str | None = None,
        term: Terminal | None = None) -> HandoverResult:
    card, can = d.card(card_serial or serial)
    return hand_over(card, d.registry, serial, can, d.trust, term or d.terminal, finger, desk=DESK,
                     actor=ACTOR)


def test_holder_finger_hands_the_card_over(desk: Desk, desk_capture: DeskCapture) -> None:
    serial = desk.serials[0]
    result = run(desk, serial, desk_capture(0, finger=1))
    assert result.handed_over and result.refusal is None, result.reasons
    assert result.row is not None and result.row.state is CardState.HANDED_OVER
    assert result.sod_sha256 == result.registered_sod_sha256
    statuses = {c.name: c.status for c in result.report.checks}
    assert all(s is Status.PASS for s in statuses.values()), statuses
    row = desk.registry.get(serial)
    assert row is not None and row.state is CardState.HANDED_OVER
    last = desk.registry.audit_entries()[-1]
    assert last.action == "state:handed_over" and last.details["serial"] == serial and last.actor == ACTOR
    # A card handed over is not handed over again; nothing touches the card for that.
    with pytest.raises(RegistryError, match="only a personalised card is handed over"):
        handover_candidate(desk.registry, serial)


def test_wrong_finger_leaves_the_card_personalised(
    desk: Desk,
    caplog: pytest.LogCaptureFixture,
    desk_capture: DeskCapture,
    desk_stranger: DeskStranger,
) -> None:
    serial = desk.serials[0]
    head = desk.registry.audit_head()
    with caplog.at_level(logging.WARNING, logger="ektp_card.desk.handover"):
        result = run(desk, serial, desk_stranger())
    assert result.refusal is Refusal.HOLDER_MISMATCH
    assert result.reasons[0].startswith("fingerprint: matches no DG3 template")
    assert result.row is None
    row = desk.registry.get(serial)
    assert row is not None and row.state is CardState.PERSONALISED
    # Only one audit entry more: the refusal, naming the card and why.
    entries = desk.registry.audit_entries(after=head.seq)
    assert [(e.action, dict(e.details)) for e in entries] == [
        ("event:handover-refused", {"refusal": Refusal.HOLDER_MISMATCH.value, "serial": serial})]
    assert desk.registry.verify_chain() is None
    assert f"handover of card {serial} refused" in caplog.text and "holder mismatch" in caplog.text
    # The other citizen's finger is a mismatch too.
    assert run(desk, serial, desk_capture(1)).refusal is Refusal.HOLDER_MISMATCH


def test_another_genuine_card_is_not_this_card(desk: Desk, desk_capture: DeskCapture) -> None:
    first, second = desk.serials
    result = run(desk, first, desk_capture(1), card_serial=second)
    assert result.refusal is Refusal.NOT_THIS_CARD
    assert f"not the one registered for card {first}" in result.reasons[-1]
    assert result.report.genuine
    row = desk.registry.get(first)
    assert row is not None and row.state is CardState.PERSONALISED


def test_forged_card_is_refused(desk: Desk, desk_capture: DeskCapture) -> None:
    serial = desk.serials[0]
    card, can = desk.card(serial)
    dg1 = card.fs.application(EKTP_AID).child_ef(0x0101).data  # type: ignore[union-attr]
    assert isinstance(dg1, bytearray)
    dg1[-1] ^= 0x01
    row = handover_candidate(desk.registry, serial)
    result = check_card(card, row, can, desk.trust, desk.terminal, desk_capture(0))
    assert result.refusal is Refusal.FORGED


def test_a_terminal_without_the_dg3_right_cannot_compare(
    desk: Desk, terminal: TerminalOf, make_terminal_pki: MakeTerminalPki, desk_capture: DeskCapture
) -> None:
    serial = desk.serials[0]
    result = run(desk, serial, desk_capture(0), term=terminal(make_terminal_pki(rights=("read-dg4",))))
    assert result.refusal is Refusal.NOT_COMPARED
    assert any("lacks the read-dg3 right" in r for r in result.reasons)
    row = desk.registry.get(serial)
    assert row is not None and row.state is CardState.PERSONALISED


def test_registry_rows_that_cannot_be_handed_over(desk: Desk, desk_capture: DeskCapture) -> None:
    with pytest.raises(RegistryError, match="not in the registry"):
        handover_candidate(desk.registry, "FFFFFFFFFFFFFFFF")
    desk.registry.register("0102030405060708", "3174012501900001", desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="no EF.SOD hash"):
        handover_candidate(desk.registry, "0102030405060708")
    serial = desk.serials[1]
    desk.registry.revoke(serial, "test", desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="is revoked"):
        run(desk, serial, desk_capture(1))
