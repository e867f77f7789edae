"""Personalisation with a Terminal Authentication trust point: PUT DATA 80 DA 7F 21 with the CVCA
certificate before LOCK, then PACE (CAN) -> TA -> CA -> DG3 on the locked card; the desk's checks and
the card's refusals."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import Tlv
from ektp_card.errors import ApduError, CardRemovedError, PersonalisationError
from ektp_card.lds.ektp import EKTP_AID
from ektp_card.personalize import (
    Biometrics,
    CardPlan,
    PersoResult,
    PersoSession,
    personalize,
    plan_from_data_groups,
    plan_from_record,
    read_back,
)
from ektp_card.personalize.plan import check_trust_point
from ektp_card.pki.cvc import CvCertificate
from ektp_card.virtual import VirtualCard
from ektp_card.virtual.perso import PersoState, blank_card, personalisation_state
from ektp_card.virtual.ta import EF_CVCA_FID, TRUST_POINT_KEY, terminal_rights

if TYPE_CHECKING:
    from fixtures.cards import CutTransport, IssuerOf, RecordOf
    from fixtures.terminal_pki import MakeTerminalPki, PaceTaCa, Pki

DG3_SFI = 3
MASTER = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
SERIAL = bytes.fromhex("0011223344556677")
Run = Callable[..., PersoResult]
TaPlan = Callable[["Pki"], CardPlan]


@pytest.fixture(scope="module")
def pki(terminal_chain: Pki) -> Pki:
    return terminal_chain


@pytest.fixture(scope="module")
def run(issuer: IssuerOf) -> Run:
    """``run(card, plan, *, verify=True)``: personalise with MASTER and the issuer's document signer
    (read back against its trust store unless ``verify`` is false)."""

    def personalise(card: Any, the_plan: CardPlan, *, verify: bool = True) -> PersoResult:
        return personalize(card, the_plan, MASTER, issuer().ds, trust=issuer().trust if verify else None)

    return personalise


def send(card: VirtualCard, apdu: str) -> tuple[bytes, int]:
    raw = card.transceive(bytes.fromhex(apdu.replace(" ", "")))
    return raw[:-2], int.from_bytes(raw[-2:], "big")


@pytest.fixture(scope="module")
def ta_plan(record: RecordOf) -> TaPlan:
    """``ta_plan(pki)``: the plan of the citizen's card with ``pki``'s CVCA as its trust point."""
    return lambda pki: plan_from_record(record(), cvca_certificate=pki.cvca, biometrics=Biometrics.BOTH)


@pytest.mark.parametrize("extended", [True, False], ids=["extended", "short"])
def test_personalised_card_opens_dg3_to_a_terminal_of_its_cvca(
    pki: Pki, extended: bool, run: Run, pace_ta_ca: PaceTaCa, ta_plan: TaPlan
) -> None:
    the_plan = ta_plan(pki)
    card = blank_card(MASTER, SERIAL, extended_length=extended)
    result = run(card, the_plan)
    assert result.verification is not None and result.verification.ok
    assert card.keys[TRUST_POINT_KEY] == pki.cvca.encode()
    ef_cvca = card.fs.application(EKTP_AID).child_ef(EF_CVCA_FID)
    assert ef_cvca is not None and bytes(ef_cvca.data) == Tlv(0x42, b"IDCVCA00001").encode()
    assert the_plan.file("EF.CVCA").content == bytes(ef_cvca.data)
    session, ta, ca_passed = pace_ta_ca(card, the_plan.can, pki)
    assert ta.passed, ta.reason
    assert ca_passed
    rights = terminal_rights(card)
    assert rights is not None and rights.grants("read-dg3")
    assert session.read_file(sfi=DG3_SFI) == the_plan.data_groups[3]


def test_without_a_cvca_the_card_refuses_terminal_authentication(
    pki: Pki, run: Run, record: RecordOf, pace_ta_ca: PaceTaCa
) -> None:
    the_plan = plan_from_record(record(), biometrics=Biometrics.BOTH)
    card = blank_card(MASTER, SERIAL)
    run(card, the_plan)
    assert TRUST_POINT_KEY not in card.keys
    session, ta, _ = pace_ta_ca(card, the_plan.can, pki)
    assert not ta.passed
    with pytest.raises(ApduError) as info:
        session.read_file(sfi=DG3_SFI)
    assert info.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_a_terminal_of_another_cvca_is_refused(
    pki: Pki,
    run: Run,
    make_terminal_pki: MakeTerminalPki,
    pace_ta_ca: PaceTaCa,
    ta_plan: TaPlan,
) -> None:
    the_plan = ta_plan(pki)
    card = blank_card(MASTER, SERIAL)
    run(card, the_plan, verify=False)
    other = make_terminal_pki(cvca_key=7, holder="IDCVCA00009")
    session, ta, _ = pace_ta_ca(card, the_plan.can, other)
    assert not ta.passed
    with pytest.raises(ApduError):
        session.read_file(sfi=DG3_SFI)


def test_plan_derives_ef_cvca_from_the_certificate(pki: Pki, record: RecordOf) -> None:
    groups = plan_from_record(record(), biometrics=Biometrics.BOTH).data_groups
    as_bytes = plan_from_data_groups(groups, cvca_certificate=pki.cvca.encode())
    agreeing = plan_from_data_groups(groups, cvca=["IDCVCA00001"], cvca_certificate=pki.cvca)
    for p in (as_bytes, agreeing):
        assert p.trust_point == pki.cvca.encode()
        assert p.file("EF.CVCA").content == bytes.fromhex("420B") + b"IDCVCA00001"
    assert "trust_point" not in repr(as_bytes)
    with pytest.raises(PersonalisationError, match="disagree"):
        plan_from_data_groups(groups, cvca=["IDCVCA00002"], cvca_certificate=pki.cvca)
    # References alone still work as before, with no trust point.
    assert plan_from_data_groups(groups, cvca=["IDCVCA00001"]).trust_point is None


def _tampered(cert: CvCertificate) -> bytes:
    data = bytearray(cert.encode())
    data[-1] ^= 0x01  # last byte of the signature
    return bytes(data)


def test_not_a_cvca_is_refused_before_the_first_command(
    pki: Pki, run: Run, record: RecordOf, ta_plan: TaPlan
) -> None:
    groups = plan_from_record(record(), biometrics=Biometrics.BOTH).data_groups
    for bad, match in ((pki.dv, "not a CVCA"), (pki.terminal, "not a CVCA"),
                       (_tampered(pki.cvca), "does not verify"), (b"\x7f\x21\x01\x00", "not a usable")):
        with pytest.raises(PersonalisationError, match=match):
            plan_from_data_groups(groups, cvca_certificate=bad)
        with pytest.raises(PersonalisationError, match=match):
            check_trust_point(bad)
    # A plan made by hand with a DV certificate: personalize() refuses it before the card is touched.
    hand_made = ta_plan(pki).__class__(**{**ta_plan(pki).__dict__, "trust_point": pki.dv.encode()})
    card = blank_card(MASTER, SERIAL)
    sent: list[bytes] = []

    class Counting:
        def transceive(self, command: bytes) -> bytes:
            sent.append(command)
            return card.transceive(command)

    with pytest.raises(PersonalisationError, match="not a CVCA"):
        run(Counting(), hand_made, verify=False)
    assert sent == []


def _perso_session(card: VirtualCard) -> PersoSession:
    session = PersoSession(card)
    session.open()
    session.authenticate(MASTER)
    return session


def test_card_answers_6a80_for_a_bad_certificate_and_6982_outside_the_session(pki: Pki) -> None:
    card = blank_card(MASTER, SERIAL)
    card.power_on()
    # Plain, without the perso session: 6982.
    _, sw = send(card, "80DA7F21" + f"{len(pki.cvca.encode()):06X}" + pki.cvca.encode().hex())
    assert sw == SW.SECURITY_STATUS_NOT_SATISFIED
    session = _perso_session(card)
    for bad in (pki.dv.encode(), _tampered(pki.cvca), b"\x7f\x21\x01\x00", b""):
        with pytest.raises(PersonalisationError, match="6A80"):
            session.set_trust_point(bad)
    assert TRUST_POINT_KEY not in card.keys
    session.set_trust_point(pki.cvca.encode())
    assert card.keys[TRUST_POINT_KEY] == pki.cvca.encode()
    session.lock()
    # Locked: 6985 even to a terminal that would hold the key.
    card.power_on()
    _, sw = send(card, "80DA7F21" + f"{len(pki.cvca.encode()):06X}" + pki.cvca.encode().hex())
    assert sw == SW.CONDITIONS_NOT_SATISFIED


def test_interruption_at_every_apdu_with_a_trust_point(
    pki: Pki,
    run: Run,
    issuer: IssuerOf,
    cut_transport: type[CutTransport],
    ta_plan: TaPlan,
) -> None:
    """Short APDUs (the certificate goes in a command chain): cut before and after every command;
    the card is locked with its trust point, or not locked and a fresh run completes it."""
    the_plan = ta_plan(pki)
    for cut in itertools.count():
        for after in (False, True):
            card = blank_card(MASTER, SERIAL, extended_length=False)
            cutting = cut_transport(card, cut, after=after)
            try:
                run(cutting, the_plan, verify=False)
            except CardRemovedError:
                pass
            else:
                # Runs differ by a command now and then (EF.SOD's signature length), so either may end.
                assert cut >= 25 and card.keys[TRUST_POINT_KEY] == pki.cvca.encode()
                return
            card.power_on()
            if personalisation_state(card) is PersoState.LOCKED:
                assert card.keys[TRUST_POINT_KEY] == pki.cvca.encode()
                assert read_back(card, the_plan.can, issuer().trust).ok
                continue
            assert TRUST_POINT_KEY not in card.keys or cutting.cut_command[1] in (0xDA, 0xF0)
            run(card, the_plan, verify=False)
            assert card.keys[TRUST_POINT_KEY] == pki.cvca.encode()
