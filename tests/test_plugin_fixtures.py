"""The fixtures the installed plugin gives integrators: each card verifies to what it is, every test gets
its own copy, a card can leave the field mid-way, and a card can sit behind a real PC/SC reader."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from ektp_card.access import parse_mrz
from ektp_card.errors import CardRemovedError
from ektp_card.lds.synthetic import synthetic_record
from ektp_card.pki.revocation import load_revocation_list
from ektp_card.pytest_plugin import ATTACK_VERDICTS, AttackCard, IssuedCard, Passport
from ektp_card.verify.card import verify_card
from ektp_card.verify.passport import verify_passport


def test_an_issued_card_is_genuine_and_knows_its_holder(ektp_issued_card: IssuedCard) -> None:
    c = ektp_issued_card
    report = verify_card(c.card, c.can, c.trust, terminal=c.terminal, fingerprint=c.holder_finger)
    assert report.verdict.value == "genuine" and report.personal is not None
    assert report.personal.nik == c.nik == c.record.personal.nik
    c.card.power_off()
    c.card.power_on()
    other = verify_card(c.card, c.can, c.trust, terminal=c.terminal, fingerprint=c.other_finger)
    assert other.verdict.value == "holder mismatch"
    assert "can=" not in repr(c) and c.can not in repr(c)


@pytest.mark.parametrize("kind", sorted(ATTACK_VERDICTS))
def test_attack_cards_verify_to_their_documented_verdict(
    ektp_attack_card: Callable[[str], AttackCard], kind: str
) -> None:
    attack = ektp_attack_card(kind)
    revocations = load_revocation_list(attack.revocations.read_bytes(), attack.trust)
    report = verify_card(attack.card, attack.can, attack.trust, revocations=revocations)
    assert report.verdict.value == (attack.expected_verdict or "genuine"), report.reasons


def test_an_unknown_attack_kind(ektp_attack_card: Callable[[str], AttackCard]) -> None:
    with pytest.raises(ValueError, match="known: clone"):
        ektp_attack_card("teleport")


@pytest.mark.parametrize("pace", [False, True])
def test_passports(ektp_passport: Callable[..., Passport], pace: bool) -> None:
    passport = ektp_passport(pace=pace)
    report = verify_passport(passport.card, parse_mrz(passport.mrz), passport.trust)
    assert report.verdict.value == "genuine"
    assert report.access is not None and report.access.protocol.value == ("PACE" if pace else "BAC")


def test_a_card_issued_from_the_tests_own_record(ektp_issue_card: Callable[..., IssuedCard]) -> None:
    record = synthetic_record(77)
    issued = ektp_issue_card(record)
    report = verify_card(issued.card, issued.can, issued.trust)
    assert report.verdict.value == "genuine" and report.personal == record.personal


def test_a_card_that_leaves_the_field(
    ektp_issued_card: IssuedCard, ektp_removed_after: Callable[[Any, int], Any]
) -> None:
    with pytest.raises(CardRemovedError):
        card = ektp_issued_card
        verify_card(ektp_removed_after(card.card, 6), card.can, card.trust)


@pytest.mark.parametrize("turn", [1, 2])
def test_every_test_gets_its_own_card(ektp_issued_card: IssuedCard, ektp_office: Any, turn: int) -> None:
    # Whatever the first run does to its card, the second finds the office's card as issued.
    assert ektp_issued_card.image.read_bytes() == ektp_office.genuine.image.read_bytes()
    ektp_issued_card.card.fs.mf.children.clear()
    ektp_issued_card.card.save(ektp_issued_card.image)
    assert ektp_issued_card.image.read_bytes() != ektp_office.genuine.image.read_bytes()


def test_a_card_behind_a_real_pcsc_reader(
    ektp_issued_card: IssuedCard, ektp_pcsc_reader: Callable[[Any], str], pcscd: str
) -> None:
    from ektp_card.apdu.pcsc import PcscTransport

    reader = ektp_pcsc_reader(ektp_issued_card.card)
    with PcscTransport.open(reader) as transport:
        report = verify_card(transport, ektp_issued_card.can, ektp_issued_card.trust)
    assert report.verdict.value == "genuine"
    tool = shutil.which("opensc-tool")
    if tool is None:
        pytest.fail("opensc-tool is missing (apt-get install opensc; scripts/install.sh installs it)")
    # Another PC/SC stack than ours: OpenSC's tool sends SELECT MF and shows the card's answer.
    out = subprocess.run([tool, "--reader", reader, "--send-apdu", "00A4000C023F00"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "SW1=0x90, SW2=0x00" in out.stdout, out.stdout + out.stderr


def test_destructive_device_fixtures_refuse_a_card_that_is_not_blank(
    ektp_issued_card: IssuedCard, ektp_office: Any
) -> None:
    from ektp_card.pytest_plugin import require_blank
    from ektp_card.virtual.perso import blank_card

    with pytest.raises(pytest.fail.Exception, match="not blank"):
        require_blank(ektp_issued_card.card)
    blank = blank_card(ektp_office.master_key)
    blank.power_on()
    require_blank(blank)  # a blank chip is the one card a destructive test may write
