"""Terminal Authentication version 2 (BSI TR-03110-2 section 3.4, ICAO Doc 9303-11 section 7.1):
terminal side (ektp_card.crypto.ta) against the virtual card (ektp_card.virtual.ta), in the eMRTD
order PACE -> TA -> CA with one ephemeral key, and the card's refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.iso7816 import Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import Tlv
from ektp_card.crypto.ca import chip_authenticate
from ektp_card.crypto.pace import PaceResult, Password, perform_pace
from ektp_card.crypto.ta import (
    EphemeralKey,
    TaResult,
    certificates_to_send,
    compress,
    external_authenticate,
    get_challenge,
    mse_set_at,
    mse_set_dst,
    pso_verify_certificate,
    sign_plain,
    signed_data,
    terminal_authenticate,
)
from ektp_card.ec import BRAINPOOLP256R1
from ektp_card.errors import ApduError, PkiError, TerminalAuthenticationError
from ektp_card.lds.dg14 import DG14_FID, DG14_SFI, Dg14
from ektp_card.pki.cvc import CvCertificate, Role, TerminalType, create_link, issue
from ektp_card.pki.pkcs11 import Pkcs11Signer
from ektp_card.pki.sam import VirtualSam
from ektp_card.pki.signer import KeySpec, Signer
from ektp_card.session.card import read_card_access
from ektp_card.virtual import AccessCondition, SecurityAttributes, VirtualCard, demo_card
from ektp_card.virtual.ca import install_chip_keys
from ektp_card.virtual.commands import Command, ok
from ektp_card.virtual.pace import install_pace
from ektp_card.virtual.ta import (
    CURRENT_DATE_KEY,
    EF_CVCA_FID,
    TRUST_POINT_KEY,
    current_date,
    install_trust_point,
    terminal_rights,
)

if TYPE_CHECKING:
    from fixtures.terminal_pki import CvSigner, MakeTerminalPki, Pki
    from fixtures.tools import SoftHsmToken

CAN = "123456"
AID = bytes.fromhex("D3600000004545544101")
DG3_CONTENT = b"\x63\x05fingr"
D0 = dt.date(2026, 1, 15)
IS = TerminalType.IS
CURVE = "brainpoolP256r1"


def pub(s: Signer) -> ec.EllipticCurvePublicKey:
    k = s.public_key
    assert isinstance(k, ec.EllipticCurvePublicKey)
    return k


def make_card(pki: Pki, *, extended_length: bool = True) -> VirtualCard:
    """PACE (CAN), Chip Authentication keys, the trust point, and an application with DG14 and DG3."""
    card = demo_card(extended_length=extended_length)
    install_pace(card, can=CAN)
    dg14, _ = install_chip_keys(card, curve=BRAINPOOLP256R1)
    app = card.fs.create_df(card.fs.mf, 0xDF02, name=AID,
                            access=SecurityAttributes(AccessCondition.ALWAYS, AccessCondition.NEVER))
    after_pace = SecurityAttributes(AccessCondition.require("PACE"), AccessCondition.NEVER)
    card.fs.create_ef(app, DG14_FID, data=dg14, sfi=DG14_SFI, access=after_pace)
    card.fs.create_ef(app, 0x0103, data=DG3_CONTENT, sfi=3,
                      access=SecurityAttributes(AccessCondition.parse("PACE+TA"), AccessCondition.NEVER))
    install_trust_point(card, pki.cvca, application=app)
    return card


@dataclass
class Open:
    protocol: ApduProtocol
    session: Iso7816Session
    pace: PaceResult
    ephemeral: EphemeralKey
    dg14: Dg14


def open_card(card: VirtualCard) -> Open:
    card.power_on()
    protocol = ApduProtocol(card)
    session = Iso7816Session(protocol)
    parameters, explicit = read_card_access(session).choose_pace()
    pace = perform_pace(protocol, Password.can(CAN), parameters, send_parameter_id=explicit)
    session.select_aid(AID)
    dg14 = Dg14.decode(session.read_file(sfi=DG14_SFI))
    return Open(protocol, session, pace, EphemeralKey.generate(dg14.ca_parameters().curve), dg14)


def run_ta(o: Open, pki: Pki, signer_: Signer | None = None, chain: list[CvCertificate] | None = None,
           trusted: tuple[str, ...] = ()) -> TaResult:
    return terminal_authenticate(o.protocol, chain or [pki.cvca, pki.dv, pki.terminal],
                                 signer_ or pki.terminal_key, id_picc=o.pace.id_picc,
                                 ephemeral=o.ephemeral.compressed, trusted=trusted)


def read_dg3(o: Open) -> bytes:
    return o.session.read_file(sfi=3)


@pytest.fixture(scope="module")
def pki(terminal_chain: Pki) -> Pki:
    return terminal_chain


# --- the full run -------------------------------------------------------------------------------------


def test_pace_ta_ca_then_dg3(pki: Pki) -> None:
    card = make_card(pki)
    o = open_card(card)
    result = run_ta(o, pki)
    assert result.passed, result.reason
    rights = terminal_rights(card)
    assert rights is not None and rights.names == ("read-dg3", "read-dg4")
    # EAC2: the terminal's rights wait for Chip Authentication (BSI TR-03110-2).
    assert "TA" not in card.security.granted
    with pytest.raises(ApduError) as info:
        read_dg3(o)
    assert info.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    ca = chip_authenticate(o.protocol, o.dg14.ca_parameters(), key_source=o.ephemeral.key_source)
    assert ca.passed, ca.reason
    assert "TA" in card.security.granted
    assert read_dg3(o) == DG3_CONTENT
    # The chip's date moved on to the terminal certificate's effective date (a domestic DV's).
    assert current_date(card) == D0 + dt.timedelta(days=10)
    assert card.keys[CURRENT_DATE_KEY] == bytes([2, 6, 0, 1, 2, 5])


def test_without_ta_dg3_is_refused(pki: Pki) -> None:
    o = open_card(make_card(pki))
    with pytest.raises(ApduError) as info:
        read_dg3(o)
    assert info.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_terminal_without_read_dg3(pki: Pki, make_terminal_pki: MakeTerminalPki) -> None:
    weak = make_terminal_pki(rights=("read-dg4",))
    card = make_card(weak)
    o = open_card(card)
    result = run_ta(o, weak)
    assert result.passed
    rights = terminal_rights(card)
    assert rights is not None and rights.names == ("read-dg4",)
    assert "TA" not in card.security.granted
    with pytest.raises(ApduError) as info:
        read_dg3(o)
    assert info.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_chain_from_another_cvca(pki: Pki, make_terminal_pki: MakeTerminalPki) -> None:
    card = make_card(pki)
    # Same CVCA name, another key: Set DST finds the reference, the DV's signature fails.
    impostor = make_terminal_pki(cvca_key=2)
    result = run_ta(open_card(card), impostor)
    assert not result.passed
    assert result.step == "PSO:VERIFY CERTIFICATE of IDDVPOL00001"
    assert result.sw == SW.VERIFICATION_FAILED
    assert "TA" not in card.security.granted
    # Another CVCA name: the card knows no such key.
    other = make_terminal_pki(cvca_key=3, holder="IDCVCAX00001")
    result = run_ta(open_card(card), other)
    assert (result.step, result.sw) == ("MSE:Set DST IDCVCAX00001", SW.REFERENCED_DATA_NOT_FOUND)


def test_a_refusal_raised_names_the_step_and_status_word(
    pki: Pki, make_terminal_pki: MakeTerminalPki
) -> None:
    impostor = make_terminal_pki(cvca_key=2)
    result = run_ta(open_card(make_card(pki)), impostor)
    with pytest.raises(TerminalAuthenticationError) as info:
        result.require()
    assert str(info.value) == (
        "Terminal Authentication failed: the chip refused PSO:VERIFY CERTIFICATE of IDDVPOL00001"
        " (6300: verification failed)"
    )
    step = "PSO:VERIFY CERTIFICATE of IDDVPOL00001"
    assert (info.value.step, info.value.sw) == (step, SW.VERIFICATION_FAILED)


def test_a_short_challenge_fails_at_get_challenge(pki: Pki) -> None:
    card = make_card(pki)
    o = open_card(card)
    original = card.commands[0x84]
    card.commands[0x84] = Command(original.name, lambda c, apdu: ok(bytes(4)), original.chaining)
    result = run_ta(o, pki)
    assert not result.passed and (result.step, result.sw) == ("GET CHALLENGE", SW.OK)
    assert result.reason == "the chip answered GET CHALLENGE with 4 bytes, not 8"


def test_expired_terminal_certificate(pki: Pki, make_terminal_pki: MakeTerminalPki) -> None:
    old = make_terminal_pki(terminal_days=(1, 20))
    card = make_card(old)
    install_trust_point(card, old.cvca, date=D0 + dt.timedelta(days=30))  # the chip saw a later cert
    result = run_ta(open_card(card), old)
    assert (result.step, result.sw) == ("PSO:VERIFY CERTIFICATE of IDGATE00001", SW.VERIFICATION_FAILED)
    assert current_date(card) == D0 + dt.timedelta(days=30)


def test_wrong_terminal_key_6300(pki: Pki, cv_signer: CvSigner) -> None:
    card = make_card(pki)
    o = open_card(card)
    with pytest.raises(TerminalAuthenticationError, match="does not hold the key of IDGATE00001"):
        run_ta(o, pki, signer_=cv_signer(99))
    # The same run by hand, signed with another key.
    for cert in (pki.dv, pki.terminal):
        assert o.protocol.transmit(mse_set_dst(cert.car)).sw == SW.OK
        assert o.protocol.transmit(pso_verify_certificate(cert)).sw == SW.OK
    assert o.protocol.transmit(mse_set_at(pki.terminal.chr, o.ephemeral.compressed)).sw == SW.OK
    challenge = o.protocol.transmit(get_challenge()).data
    data = signed_data(o.pace.id_picc, challenge, o.ephemeral.compressed)
    bad = sign_plain(cv_signer(99), data, pki.terminal.public_key)
    assert o.protocol.transmit(external_authenticate(bad)).sw == SW.VERIFICATION_FAILED
    assert card.security.terminal is None and "TA" not in card.security.granted
    # The run is over: EXTERNAL AUTHENTICATE with no TA in progress (and no BAC key) is refused.
    assert o.protocol.transmit(external_authenticate(bad)).sw == SW.CONDITIONS_NOT_SATISFIED
    # ... and the secure messaging of PACE still works.
    assert o.session.read_file(sfi=DG14_SFI)


def test_ca_must_use_the_ta_key(pki: Pki) -> None:
    card = make_card(pki)
    o = open_card(card)
    assert run_ta(o, pki).passed
    other = EphemeralKey.generate(o.ephemeral.curve)
    ca = chip_authenticate(o.protocol, o.dg14.ca_parameters(), key_source=other.key_source)
    assert not ca.passed and "6A80" in ca.reason


def test_signature_binds_id_picc_and_challenge(pki: Pki) -> None:
    card = make_card(pki)
    o = open_card(card)
    for cert in (pki.dv, pki.terminal):
        o.protocol.send(mse_set_dst(cert.car))
        o.protocol.send(pso_verify_certificate(cert))
    o.protocol.send(mse_set_at(pki.terminal.chr, o.ephemeral.compressed))
    challenge = o.protocol.send(get_challenge()).data
    # Signed for another chip (another ID_PICC): refused.
    data = signed_data(bytes(32), challenge, o.ephemeral.compressed)
    sig = sign_plain(pki.terminal_key, data, pki.terminal.public_key)
    assert o.protocol.transmit(external_authenticate(sig)).sw == SW.VERIFICATION_FAILED


def test_link_certificate_moves_the_trust_point(pki: Pki, cv_signer: CvSigner) -> None:
    card = make_card(pki)
    new_key = cv_signer(5)
    link = create_link(cv_signer(1), pki.cvca, pub(new_key), holder="IDCVCA00002",
                       effective=D0 + dt.timedelta(days=5), expiration=D0 + dt.timedelta(days=900))
    dv = issue(new_key, link, pub(cv_signer(105)), holder="IDDVPOL00002", role=Role.DV_DOMESTIC,
               rights=["read-dg3"], effective=D0 + dt.timedelta(days=5),
               expiration=D0 + dt.timedelta(days=90))
    term = issue(cv_signer(105), dv, pub(cv_signer(205)), holder="IDGATE00002", role=Role.TERMINAL,
                 rights=["read-dg3"], effective=D0 + dt.timedelta(days=6),
                 expiration=D0 + dt.timedelta(days=30))
    new = dataclasses.replace(pki, dv=dv, terminal=term, terminal_key=cv_signer(205))
    o = open_card(card)
    assert run_ta(o, new, chain=[pki.cvca, link, dv, term], trusted=("IDCVCA00001",)).passed
    assert CvCertificate.decode(card.keys[TRUST_POINT_KEY]).chr == "IDCVCA00002"
    ef = card.fs.application(AID).child_ef(EF_CVCA_FID)
    assert ef is not None
    expected = Tlv(0x42, b"IDCVCA00002").encode() + Tlv(0x42, b"IDCVCA00001").encode()
    assert bytes(ef.data) == expected + bytes(36 - len(expected))
    # Once the card trusts the new CVCA, the terminal skips the link certificate.
    assert certificates_to_send([pki.cvca, link, dv, term], ["IDCVCA00002"]) == [dv, term]


def test_trust_point_and_date_survive_the_image(pki: Pki, tmp_path: Path) -> None:
    card = make_card(pki)
    assert run_ta(open_card(card), pki).passed
    path = tmp_path / "card.img"
    card.save(path)
    loaded = VirtualCard.load(path)
    assert current_date(loaded) == D0 + dt.timedelta(days=10)
    assert run_ta(open_card(loaded), pki).passed


def test_commands_outside_pace(pki: Pki) -> None:
    card = make_card(pki)
    card.power_on()
    assert card.transceive(mse_set_dst("IDCVCA00001").encode()) == bytes.fromhex("6982")
    # INS 82 with no TA run and no BAC key: 6985 on a card with a trust point, 6D00 without one.
    assert card.transceive(bytes.fromhex("0082000002AABB")) == bytes.fromhex("6985")
    assert demo_card().transceive(bytes.fromhex("0082000002AABB")) == bytes.fromhex("6D00")


def test_encodings(pki: Pki) -> None:
    assert mse_set_dst("IDCVCA00001").encode() == bytes.fromhex("002281B60D830B") + b"IDCVCA00001"
    pso = pso_verify_certificate(pki.dv)
    assert pso.encode()[:4] == bytes.fromhex("002A00BE")
    assert Tlv(0x7F21, pso.data).encode() == pki.dv.encode()
    at = mse_set_at("IDGATE00001", bytes(range(32)))
    assert at.encode() == (bytes.fromhex("002281A42F830B") + b"IDGATE00001" + bytes.fromhex("9120")
                           + bytes(range(32)))
    assert external_authenticate(b"\x01\x02").encode() == bytes.fromhex("00820000020102")
    key = EphemeralKey.generate(BRAINPOOLP256R1)
    assert compress(BRAINPOOLP256R1, key.public) == key.public[1:33] == key.compressed


def test_install_trust_point_refuses_non_cvca(pki: Pki) -> None:
    with pytest.raises(PkiError, match="not a CVCA"):
        install_trust_point(demo_card(), pki.dv)


# --- where the terminal key lives --------------------------------------------------------------------


def test_terminal_key_in_virtual_sam(make_terminal_pki: MakeTerminalPki) -> None:
    sam = VirtualSam.generate(CURVE)
    p = make_terminal_pki(cvca_key=7, terminal_signer=sam)
    sam.install_chain([p.dv, p.terminal])
    assert "IDGATE00001" in repr(sam)
    card = make_card(p)
    o = open_card(card)
    result = terminal_authenticate(o.protocol, sam.chain, sam, id_picc=o.pace.id_picc,
                                   ephemeral=o.ephemeral.compressed)
    assert result.passed and sam.signatures == 1
    assert chip_authenticate(o.protocol, o.dg14.ca_parameters(), key_source=o.ephemeral.key_source).passed
    assert read_dg3(o) == DG3_CONTENT
    with pytest.raises(PkiError):
        VirtualSam.generate(CURVE).install_chain([p.dv, p.terminal])


@pytest.fixture
def hsm(token: SoftHsmToken) -> Iterator[Pkcs11Signer]:
    spec = KeySpec.parse(CURVE)
    with Pkcs11Signer.generate(token.module, token.label, "ta-terminal", spec, token.pin) as s:
        yield s


def test_terminal_key_in_softhsm(hsm: Pkcs11Signer, make_terminal_pki: MakeTerminalPki) -> None:
    p = make_terminal_pki(cvca_key=8, terminal_signer=hsm)
    card = make_card(p)
    o = open_card(card)
    assert run_ta(o, p).passed
    assert chip_authenticate(o.protocol, o.dg14.ca_parameters(), key_source=o.ephemeral.key_source).passed
    assert read_dg3(o) == DG3_CONTENT


def test_short_apdus_chain_the_link_certificate(pki: Pki, cv_signer: CvSigner) -> None:
    """Without extended length the link certificate (with domain parameters) needs command chaining."""
    card = make_card(pki, extended_length=False)
    new_key = cv_signer(6)
    link = create_link(cv_signer(1), pki.cvca, pub(new_key), holder="IDCVCA00003",
                       effective=D0, expiration=D0 + dt.timedelta(days=900))
    assert len(pso_verify_certificate(link).data) > 255
    o = open_card(card)
    o.protocol.send(mse_set_dst(link.car))
    assert o.protocol.transmit(pso_verify_certificate(link)).sw == SW.OK
    assert CvCertificate.decode(card.keys[TRUST_POINT_KEY]).chr == "IDCVCA00003"


def test_apdu_builder_types() -> None:
    assert isinstance(get_challenge(), CommandApdu) and get_challenge().le == 8
