"""BIO-MOC and BIO-MOC-BLOCK: the audit of on-card comparison, against genuine cards and a card that
leaks its reference."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ektp_card.audit.attacks import make_leaky_reference_card
from ektp_card.audit.engine import AuditOptions, Outcome, run_audit, select_tests
from ektp_card.audit.targets import VirtualTarget
from ektp_card.pki.cvc import VERIFY_BIOMETRIC
from ektp_card.verify.card import Terminal
from ektp_card.virtual.bio import TRIES_KEY

if TYPE_CHECKING:
    from fixtures.cards import CaptureOf, Fresh, HolderCard, IssuerOf
    from fixtures.terminal_pki import MakeTerminalPki, TerminalOf

TESTS = ("BIO-MOC", "BIO-MOC-BLOCK")


@pytest.fixture(scope="module")
def bio_terminal(make_terminal_pki: MakeTerminalPki) -> Terminal:
    pki = make_terminal_pki(rights=("read-dg3", VERIFY_BIOMETRIC))
    return Terminal((pki.dv, pki.terminal), pki.terminal_key)


def options(can: str, issuer: IssuerOf, terminal: Terminal | None, capture: bytes | None,
            destructive: bool) -> AuditOptions:
    return AuditOptions(can=can, trust=issuer().trust, terminal=terminal, destructive=destructive,
                        fingerprint=capture)


def test_a_genuine_on_card_card_passes(on_card_card: HolderCard, bio_terminal: Terminal, capture: CaptureOf,
                                       issuer: IssuerOf) -> None:
    card, can = on_card_card()
    report = run_audit(VirtualTarget(card), options(can, issuer, bio_terminal, capture().encode(), True),
                       select_tests(TESTS))
    results = {r.id: r for r in report.results}
    assert results["BIO-MOC"].outcome is Outcome.PASS, results["BIO-MOC"].reason
    figures = results["BIO-MOC"].figures
    assert figures["VERIFY after PACE alone"] == "6982"
    assert figures["VERIFY before Chip Authentication"] == "6982"
    assert figures["plain VERIFY inside secure messaging"] == "6988"
    assert figures["tries left"] == 5
    match, far = figures["median ms (match)"], figures["median ms (far miss)"]
    assert isinstance(match, float) and isinstance(far, float) and abs(match - far) < 5.0
    block = results["BIO-MOC-BLOCK"]
    assert block.outcome is Outcome.PASS, block.reason
    assert block.figures["answers"] == "63C4 63C3 63C2 63C1 63C0"
    assert block.figures["holder's capture once blocked"] == "6983"
    assert card.keys[TRIES_KEY] == b"\x00"
    # Evidence: the captures are redacted, not shown.
    assert all(capture().encode()[:8].hex().upper() not in e.command for e in results["BIO-MOC"].evidence)


def test_not_destructive_spends_no_try(on_card_card: HolderCard, bio_terminal: Terminal, capture: CaptureOf,
                                       issuer: IssuerOf) -> None:
    card, can = on_card_card()
    report = run_audit(VirtualTarget(card), options(can, issuer, bio_terminal, capture().encode(), False),
                       select_tests(TESTS))
    assert report.result("BIO-MOC").outcome is Outcome.PASS, report.result("BIO-MOC").reason
    assert report.result("BIO-MOC-BLOCK").outcome is Outcome.SKIPPED
    assert card.keys.get(TRIES_KEY, b"\x05") == b"\x05"


def test_without_the_right_verify_is_refused(on_card_card: HolderCard, terminal: TerminalOf,
                                             issuer: IssuerOf) -> None:
    card, can = on_card_card()
    report = run_audit(VirtualTarget(card), options(can, issuer, terminal(), None, True), select_tests(TESTS))
    result = report.result("BIO-MOC")
    assert result.outcome is Outcome.PASS, result.reason
    assert result.figures["VERIFY without the verify-biometric right"] == "6982"
    assert report.result("BIO-MOC-BLOCK").outcome is Outcome.NOT_APPLICABLE


def test_a_card_that_leaks_its_reference_fails(on_card_card: HolderCard, bio_terminal: Terminal,
                                               issuer: IssuerOf) -> None:
    card, can = on_card_card()
    leaky = make_leaky_reference_card(card)
    report = run_audit(VirtualTarget(leaky), options(can, issuer, bio_terminal, None, False),
                       select_tests(TESTS))
    result = report.result("BIO-MOC")
    assert result.outcome is Outcome.FAIL
    assert "SELECT EF.BIOREF by FID, READ BINARY after PACE" in result.reason


def test_a_card_without_on_card_comparison_is_not_applicable(fresh: Fresh, issuer: IssuerOf,
                                                             bio_terminal: Terminal) -> None:
    card, can = fresh()  # issued with DG3 only
    chosen = select_tests(TESTS)
    report = run_audit(VirtualTarget(card), options(can, issuer, bio_terminal, None, True), chosen)
    assert report.result("BIO-MOC").outcome is Outcome.NOT_APPLICABLE
    assert report.result("BIO-MOC").reason == "DG14 offers no on-card comparison"
    assert report.result("BIO-MOC-BLOCK").outcome is Outcome.NOT_APPLICABLE
