"""The bank's onboarding check against issued, attacked, lost and half-read cards: only the public
fixtures of the installed ektp-card plugin, no test data of our own."""

from __future__ import annotations

import pytest
from bank_onboarding import onboard

from ektp_card.pki.revocation import load_revocation_list


def test_a_genuine_card_carried_by_its_holder_is_accepted(ektp_issued_card):
    card = ektp_issued_card
    finger = card.holder_finger
    decision = onboard(card.card, card.can, card.trust, terminal=card.terminal, fingerprint=finger)
    assert decision.accepted and decision.nik == card.nik


def test_someone_else_with_the_card_is_refused(ektp_issued_card):
    card = ektp_issued_card
    decision = onboard(card.card, card.can, card.trust, terminal=card.terminal, fingerprint=card.other_finger)
    assert not decision.accepted and decision.reason == "refused: holder mismatch"


@pytest.mark.parametrize("kind", ["clone", "downgrade-clone", "forged", "revoked"])
def test_attack_cards_are_refused(ektp_attack_card, kind):
    attack = ektp_attack_card(kind)
    revocations = load_revocation_list(attack.revocations.read_bytes(), attack.trust)
    decision = onboard(attack.card, attack.can, attack.trust, revocations=revocations)
    assert not decision.accepted and decision.reason == f"refused: {attack.expected_verdict}"


def test_a_wrong_can(ektp_issued_card):
    wrong = "000000" if ektp_issued_card.can != "000000" else "111111"
    decision = onboard(ektp_issued_card.card, wrong, ektp_issued_card.trust)
    assert not decision.accepted and "CAN" in decision.reason


def test_a_card_taken_away_too_early(ektp_issued_card, ektp_removed_after):
    card = ektp_issued_card
    decision = onboard(ektp_removed_after(card.card, 8), card.can, card.trust)
    assert not decision.accepted and "keep the card" in decision.reason
