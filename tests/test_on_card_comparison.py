"""On-card comparison in process: VERIFY (INS 21) with a capture, the retry counter, the refusals, and
a reference no command reads."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.iso7816 import Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW
from ektp_card.crypto.pace import Password, perform_pace
from ektp_card.errors import PkiError
from ektp_card.lds.biometrics import MinutiaeRecord
from ektp_card.lds.compact import (
    DEFAULT_TRIES,
    REFERENCE_FID,
    VERIFY_P2,
    BiometricReference,
    compact_from_record,
    encode_capture,
)
from ektp_card.lds.ektp import EKTP_AID
from ektp_card.lds.synthetic import ENROLLED_FINGERS, impression, make_finger
from ektp_card.pki.arc import EKTP_ARC
from ektp_card.pki.cvc import (
    ID_EKTP_AUTHORIZATION,
    VERIFY_BIOMETRIC,
    CvCertificate,
    Role,
    TerminalType,
    create_cvca,
    create_link,
    ektp_authorization,
    issue,
    split_rights,
)
from ektp_card.session.card import read_card_access
from ektp_card.verify.matcher import DEFAULT_MIN_PAIRED, DEFAULT_THRESHOLD
from ektp_card.virtual.bio import TRIES_KEY, install_reference
from ektp_card.virtual.card import VirtualCard

if TYPE_CHECKING:
    from fixtures.cards import CaptureOf, Fresh, HolderCard
    from fixtures.terminal_pki import MakeTerminalPki, PaceTaCa, Pki

    from ektp_card.lds.synthetic import SyntheticCitizen

#: The tries personalisation fixes by default.
TRIES = DEFAULT_TRIES
#: The fixtures' first day (tests/fixtures/terminal_pki.py).
D0 = dt.date(2026, 1, 15)


@pytest.fixture
def moc_card(holder_card: HolderCard) -> tuple[VirtualCard, str]:
    """A card issued with DG3 and EF.BIOREF (``both``), the CVCA of ``terminal_chain`` its trust point."""
    return holder_card()


@pytest.fixture(scope="module")
def bio_pki(make_terminal_pki: MakeTerminalPki) -> Pki:
    return make_terminal_pki(rights=("read-dg3", VERIFY_BIOMETRIC))


def stranger() -> MinutiaeRecord:
    finger = make_finger(random.Random(4321), ENROLLED_FINGERS[0])  # noqa: S311 - synthetic test data
    return impression(finger, random.Random(7)).record  # noqa: S311 - synthetic test data


def verify(protocol: ApduProtocol, capture: MinutiaeRecord | None) -> int:
    data = b"" if capture is None else encode_capture(compact_from_record(capture))
    return protocol.transmit(CommandApdu(0x00, 0x21, 0x00, VERIFY_P2, data)).sw


def test_matching_and_other_captures(moc_card: tuple[VirtualCard, str], bio_pki: Pki, pace_ta_ca: PaceTaCa,
                                     capture: CaptureOf) -> None:
    card, can = moc_card
    session, ta, ca = pace_ta_ca(card, can, bio_pki)
    assert ta.passed and ca
    protocol = session.protocol
    assert verify(protocol, None) == SW.counter(TRIES)
    for finger in (0, 1):
        response = protocol.transmit(CommandApdu(0x00, 0x21, 0x00, VERIFY_P2,
                                                 encode_capture(compact_from_record(capture(finger)))))
        assert response.sw == SW.OK and response.data == b""  # no score, not which finger
    assert verify(protocol, stranger()) == SW.counter(TRIES - 1)
    assert verify(protocol, capture(0, seed=5)) == SW.OK
    assert verify(protocol, None) == SW.counter(TRIES)  # a match gives the tries back


def test_retry_counter_blocks_and_survives_power(moc_card: tuple[VirtualCard, str], bio_pki: Pki,
                                                 pace_ta_ca: PaceTaCa, capture: CaptureOf) -> None:
    card, can = moc_card
    session, _, _ = pace_ta_ca(card, can, bio_pki)
    assert verify(session.protocol, stranger()) == SW.counter(TRIES - 1)
    card.power_off()
    session, _, _ = pace_ta_ca(card, can, bio_pki)
    protocol = session.protocol
    assert verify(protocol, None) == SW.counter(TRIES - 1)
    for left in range(TRIES - 2, -1, -1):
        assert verify(protocol, stranger()) == SW.counter(left)
    assert verify(protocol, capture(0)) == SW.AUTH_METHOD_BLOCKED
    assert verify(protocol, None) == SW.AUTH_METHOD_BLOCKED
    assert card.keys[TRIES_KEY] == b"\x00"
    # Blocked for good, also in a new session and through a saved image.
    copy = VirtualCard.loads(card.dumps())
    session, _, _ = pace_ta_ca(copy, can, bio_pki)
    assert verify(session.protocol, capture(0)) == SW.AUTH_METHOD_BLOCKED


def test_malformed_capture_spends_no_try(moc_card: tuple[VirtualCard, str], bio_pki: Pki,
                                         pace_ta_ca: PaceTaCa) -> None:
    card, can = moc_card
    session, _, _ = pace_ta_ca(card, can, bio_pki)
    protocol = session.protocol
    for data in (b"\x7f\x2e\x04\x81\x02\x01\x02", b"\x81\x03\x01\x02\x03", b"\x7f\x2e\x00"):
        assert protocol.transmit(CommandApdu(0x00, 0x21, 0x00, VERIFY_P2, data)).sw == SW.INCORRECT_DATA
    assert verify(protocol, None) == SW.counter(TRIES)
    assert protocol.transmit(CommandApdu(0x00, 0x21, 0x00, 0x80, b"")).sw == SW.INCORRECT_P1P2


def test_refused_without_the_right(moc_card: tuple[VirtualCard, str], terminal_chain: Pki,
                                   pace_ta_ca: PaceTaCa, capture: CaptureOf) -> None:
    card, can = moc_card
    session, ta, ca = pace_ta_ca(card, can, terminal_chain)  # read-dg3 and read-dg4 only
    assert ta.passed and ca
    assert verify(session.protocol, capture(0)) == SW.SECURITY_STATUS_NOT_SATISFIED
    assert TRIES_KEY not in card.keys


def _pace_only(card: VirtualCard, can: str) -> ApduProtocol:
    card.power_on()
    protocol = ApduProtocol(card)
    session = Iso7816Session(protocol)
    parameters, explicit = read_card_access(session).choose_pace()
    perform_pace(protocol, Password.can(can), parameters, send_parameter_id=explicit)
    session.select_aid(EKTP_AID)
    return protocol


def test_refused_without_terminal_authentication_or_secure_messaging(
    moc_card: tuple[VirtualCard, str], capture: CaptureOf
) -> None:
    card, can = moc_card
    protocol = _pace_only(card, can)
    assert verify(protocol, capture(0)) == SW.SECURITY_STATUS_NOT_SATISFIED
    # In the clear: no secure messaging at all, then a plain VERIFY inside a PACE channel.
    card.power_on()
    plain = encode_capture(compact_from_record(capture(0)))
    assert card.transceive(bytes((0x00, 0x21, 0x00, VERIFY_P2, len(plain))) + plain)[-2:] == b"\x69\x82"
    _pace_only(card, can)
    assert card.transceive(bytes((0x00, 0x21, 0x00, VERIFY_P2, len(plain))) + plain)[-2:] == b"\x69\x88"
    assert TRIES_KEY not in card.keys


def test_no_command_reads_the_reference(moc_card: tuple[VirtualCard, str], bio_pki: Pki,
                                        pace_ta_ca: PaceTaCa) -> None:
    card, can = moc_card
    session, _, _ = pace_ta_ca(card, can, bio_pki)
    protocol = session.protocol
    fid = REFERENCE_FID.to_bytes(2, "big")
    assert protocol.transmit(CommandApdu(0x00, 0xA4, 0x02, 0x0C, fid)).sw == SW.OK
    read = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256)
    assert protocol.transmit(read).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    odd = CommandApdu(0x00, 0xB1, fid[0], fid[1], b"\x54\x01\x00", le=256)
    assert protocol.transmit(odd).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    # Its FCP says it is there and how large, nothing of its content.
    fcp = protocol.transmit(CommandApdu(0x00, 0xA4, 0x02, 0x04, fid, le=256))
    assert fcp.sw == SW.OK and card.fs.application(EKTP_AID).child_ef(REFERENCE_FID) is not None
    ef = card.fs.application(EKTP_AID).child_ef(REFERENCE_FID)
    assert ef is not None and bytes(ef.data)[-30:] not in fcp.data


def test_a_card_without_reference_does_not_know_verify(fresh: Fresh) -> None:
    card, _ = fresh()  # issued with DG3 only
    assert card.transceive(bytes.fromhex("00210081"))[-2:] == b"\x6d\x00"


def test_install_reference_makes_a_file_no_command_reads(fresh: Fresh, citizen: SyntheticCitizen) -> None:
    card, can = fresh()
    records = [MinutiaeRecord.decode(f) for f in citizen.record.fingerprints]
    refs = [BiometricReference.from_record(i + 1, r, threshold=round(DEFAULT_THRESHOLD),
                                           min_paired=DEFAULT_MIN_PAIRED, tries=3)
            for i, r in enumerate(records)]
    ef = install_reference(card, refs, card.fs.application(EKTP_AID))
    assert str(ef.access.read) == "NEVER" and ef.sfi is None
    protocol = _pace_only(card, can)
    # It knows VERIFY now, and refuses it without Terminal Authentication; the file stays unread.
    assert verify(protocol, stranger()) == SW.SECURITY_STATUS_NOT_SATISFIED
    select = CommandApdu(0x00, 0xA4, 0x02, 0x0C, REFERENCE_FID.to_bytes(2, "big"))
    assert protocol.transmit(select).sw == SW.OK
    read = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256)
    assert protocol.transmit(read).sw == SW.SECURITY_STATUS_NOT_SATISFIED


# --- the verify-biometric right -------------------------------------------------------------------------


def _ec(signer: Any) -> ec.EllipticCurvePublicKey:
    key = signer.public_key
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def test_the_right_is_an_extension_in_the_projects_arc(bio_pki: Pki) -> None:
    for cert in (bio_pki.cvca, bio_pki.dv, bio_pki.terminal):
        assert [e.oid for e in cert.body.extensions] == [ID_EKTP_AUTHORIZATION]
        assert ID_EKTP_AUTHORIZATION.startswith(EKTP_ARC + ".")
        assert cert.ektp_rights == 1 and VERIFY_BIOMETRIC in cert.right_names
        assert CvCertificate.decode(cert.encode()) == cert
    assert bio_pki.terminal.right_names == ("read-dg3", VERIFY_BIOMETRIC)
    assert not bio_pki.terminal.chat.grants(VERIFY_BIOMETRIC)  # not a CHAT bit


def test_only_a_chain_that_holds_it_everywhere_grants_it(
    moc_card: tuple[VirtualCard, str], terminal_chain: Pki, cv_signer: Callable[[int], Any],
    pace_ta_ca: PaceTaCa, capture: CaptureOf,
) -> None:
    cvca_key = cv_signer(1)  # terminal_chain's CVCA key
    dv_key, terminal_key = cv_signer(901), cv_signer(902)
    # A DV without the right cannot grant it...
    dv = issue(cvca_key, terminal_chain.cvca, _ec(dv_key), holder="IDDVNOBIO0001", role=Role.DV_DOMESTIC,
               rights=["read-dg3"], effective=D0, expiration=D0 + dt.timedelta(days=90))
    with pytest.raises(PkiError, match="does not hold verify-biometric"):
        issue(dv_key, dv, _ec(terminal_key), holder="IDGATEBIO0001", role=Role.TERMINAL,
              rights=["read-dg3", VERIFY_BIOMETRIC], effective=D0 + dt.timedelta(days=10),
              expiration=D0 + dt.timedelta(days=40))
    # ...and a terminal certificate that carries the extension anyway gets nothing from the chip.
    forced = issue(dv_key, dv, _ec(terminal_key), holder="IDGATEBIO0001", role=Role.TERMINAL,
                   rights=["read-dg3"], extensions=ektp_authorization(1),
                   effective=D0 + dt.timedelta(days=10), expiration=D0 + dt.timedelta(days=40))
    assert forced.ektp_rights == 1
    card, can = moc_card
    session, ta, ca = pace_ta_ca(card, can, replace(terminal_chain, dv=dv, terminal=forced,
                                                    terminal_key=terminal_key))
    assert ta.passed and ca
    assert verify(session.protocol, capture(0)) == SW.SECURITY_STATUS_NOT_SATISFIED


def test_a_link_certificate_keeps_the_right(cv_signer: Callable[[int], Any]) -> None:
    old_key, new_key = cv_signer(903), cv_signer(904)
    cvca = create_cvca(old_key, holder="IDCVCABIO0001", terminal_type=TerminalType.IS,
                       rights=["read-dg3", VERIFY_BIOMETRIC], effective=D0,
                       expiration=D0 + dt.timedelta(days=900))
    link = create_link(old_key, cvca, _ec(new_key), holder="IDCVCABIO0002", effective=D0,
                       expiration=D0 + dt.timedelta(days=900))
    assert link.ektp_rights == 1 and link.right_names == ("read-dg3", VERIFY_BIOMETRIC)
    assert split_rights(["read-dg3", VERIFY_BIOMETRIC, "read-dg4"]) == (("read-dg3", "read-dg4"), 1)
