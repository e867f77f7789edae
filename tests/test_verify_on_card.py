"""`verify_card` with a card that compares fingerprints itself: the chip's answer decides, the report
says which path decided and how many tries are left."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest

from ektp_card.lds.biometrics import MinutiaeRecord
from ektp_card.lds.synthetic import ENROLLED_FINGERS, impression, make_finger
from ektp_card.personalize.plan import DEFAULT_TRIES
from ektp_card.pki.cvc import VERIFY_BIOMETRIC
from ektp_card.verify.card import Terminal, Verdict, verify_card
from ektp_card.verify.passive import Status

if TYPE_CHECKING:
    from fixtures.cards import CaptureOf, HolderCard, IssuerOf
    from fixtures.terminal_pki import MakeTerminalPki, Pki, TerminalOf


@pytest.fixture(scope="module")
def bio_terminal(make_terminal_pki: MakeTerminalPki) -> Terminal:
    pki: Pki = make_terminal_pki(rights=("read-dg3", VERIFY_BIOMETRIC))
    return Terminal((pki.dv, pki.terminal), pki.terminal_key)


def stranger() -> MinutiaeRecord:
    finger = make_finger(random.Random(1234), ENROLLED_FINGERS[0])  # noqa: S311 - synthetic test data
    return impression(finger, random.Random(98)).record  # noqa: S311 - synthetic test data


@pytest.mark.parametrize("finger_index", [0, 1])
def test_the_chip_decides_a_match(finger_index: int, on_card_card: HolderCard, bio_terminal: Terminal,
                                  capture: CaptureOf, issuer: IssuerOf) -> None:
    card, can = on_card_card()
    report = verify_card(card, can, issuer().trust, terminal=bio_terminal, fingerprint=capture(finger_index))
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert report.fingerprint_path == "on-card"
    assert report.fingerprint is None  # no score: the chip gives none
    assert report.on_card is not None and report.on_card.matched
    assert report.holder_matched is True  # whichever comparison decided
    assert report.on_card.tries_left == DEFAULT_TRIES
    assert report.check("fingerprint").reason == f"matches: compared on the card ({DEFAULT_TRIES} tries left)"
    assert report.check("dg3").status is Status.NOT_SUPPORTED
    assert 3 not in report.data_groups
    assert report.to_json()["fingerprint_path"] == "on-card"


def test_the_chip_decides_a_mismatch_and_counts_down(on_card_card: HolderCard, bio_terminal: Terminal,
                                                     issuer: IssuerOf) -> None:
    card, can = on_card_card()
    for left in range(DEFAULT_TRIES - 1, -1, -1):
        card.power_on()
        report = verify_card(card, can, issuer().trust, terminal=bio_terminal, fingerprint=stranger())
        assert report.verdict is Verdict.HOLDER_MISMATCH and report.holder_matched is False
        assert report.on_card is not None and report.on_card.tries_left == left
    assert report.check("fingerprint").reason == "on-card comparison blocked: the card has no tries left"
    card.power_on()
    report = verify_card(card, can, issuer().trust, terminal=bio_terminal, fingerprint=stranger())
    assert report.verdict is Verdict.HOLDER_MISMATCH
    assert report.on_card is not None and report.on_card.blocked


def test_a_terminal_without_the_right_cannot_compare(on_card_card: HolderCard, terminal: TerminalOf,
                                                     capture: CaptureOf, issuer: IssuerOf) -> None:
    card, can = on_card_card()
    report = verify_card(card, can, issuer().trust, terminal=terminal(), fingerprint=capture())
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert report.fingerprint_path is None and report.holder_matched is None
    fingerprint = report.check("fingerprint")
    assert fingerprint.status is Status.NOT_SUPPORTED
    assert "the card compares fingerprints itself" in fingerprint.reason


def test_a_card_with_both_uses_the_chip(holder_card: HolderCard, bio_terminal: Terminal, capture: CaptureOf,
                                        issuer: IssuerOf) -> None:
    card, can = holder_card()
    report = verify_card(card, can, issuer().trust, terminal=bio_terminal, fingerprint=capture())
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert report.fingerprint_path == "on-card"
    assert report.check("dg3").status is Status.PASS  # read (this terminal may), not compared
