"""EF.CardSecurity: the issuer's signed SecurityInfos in the MF, where a PACE-CAM chip keeps the key PACE-CAM
proves (ICAO Doc 9303-10 section 3.11, 9303-11 section 9.2). Built and parsed; read after PACE only; a
passport whose CAM key is only there verified genuine, in process and through pcscd; and every way the
file can fail to vouch for the key (another signer, a changed byte, no file at all) is not genuine."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ektp_card.access import parse_mrz
from ektp_card.apdu.iso7816 import Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.crypto.pace import ECDH_CAM_AES128, MappingType
from ektp_card.ec import BRAINPOOLP256R1
from ektp_card.errors import CardRemovedError, LdsFormatError, SecurityStatusNotSatisfiedError
from ektp_card.lds import PaceInfo
from ektp_card.lds.capacity import ALLOCATION_UNIT
from ektp_card.lds.card_security import (
    CARD_SECURITY_FID,
    OID_SECURITY_OBJECT,
    build_card_security,
    parse_card_security,
)
from ektp_card.lds.conditions import AccessCondition, SecurityAttributes
from ektp_card.lds.dg14 import ChipAuthenticationInfo, ChipAuthenticationPublicKeyInfo, Dg14
from ektp_card.lds.ektp import EKTP_AID
from ektp_card.lds.profile import EMRTD_AID
from ektp_card.lds.public_key import EcPublicKey
from ektp_card.lds.sod import OID_LDS_SECURITY_OBJECT
from ektp_card.personalize import personalize, plan_from_record
from ektp_card.personalize.budget import card_security_size, plan_budget, sod_size
from ektp_card.personalize.plan import Algorithms
from ektp_card.pki.certs import create_csca, issue_document_signer
from ektp_card.pki.cms import signed_data
from ektp_card.pki.signer import KeyFileSigner, KeySpec
from ektp_card.sandbox import SPECIMEN_MRZ, Sandbox, make_passport
from ektp_card.verify.card import verify_card
from ektp_card.verify.passive import Status, signed_object_authentication
from ektp_card.verify.passport import verify_passport
from ektp_card.verify.report import Verdict
from ektp_card.virtual import VirtualCard
from ektp_card.virtual.ca import CA_PRIVATE_KEY
from ektp_card.virtual.perso import PERSO_KEY, PERSO_TRIES, PersoState, blank_card, personalisation_state

if TYPE_CHECKING:
    from cryptography import x509
    from fixtures.cards import CutTransport, IssuerOf

    from ektp_card.lds.synthetic import SyntheticCitizen

MASTER = bytes.fromhex("606162636465666768696A6B6C6D6E6F")
MRZ = parse_mrz(SPECIMEN_MRZ[:44] + "\n" + SPECIMEN_MRZ[44:])
CARD_SECURITY = ("EF.CardSecurity", OID_SECURITY_OBJECT, "id-SecurityObject")


def _infos() -> Dg14:
    point = BRAINPOOLP256R1.encode_point(BRAINPOOLP256R1.generator)
    return Dg14.of((
        PaceInfo(ECDH_CAM_AES128.oid, 2, 13),
        ChipAuthenticationInfo("0.4.0.127.0.7.2.2.3.2.2", 1, None),
        ChipAuthenticationPublicKeyInfo.of(EcPublicKey(BRAINPOOLP256R1, point)),
    ))


def _card_security(card: VirtualCard) -> Any:
    ef = card.fs.mf.child_ef(CARD_SECURITY_FID)
    assert ef is not None
    return ef


def _stranger(tmp_path: Path) -> tuple[KeyFileSigner, x509.Certificate]:
    """A document signer under a CSCA nobody trusts (same country, same names as the office's)."""
    spec = KeySpec.parse("brainpoolP256r1")
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    csca_key = KeyFileSigner.generate(tmp_path / "csca.key", spec, b"stranger")
    csca = create_csca(csca_key, country="ID", common_name="CSCA Stranger", not_before=start)
    ds_key = KeyFileSigner.generate(tmp_path / "ds.key", spec, b"stranger")
    ds = issue_document_signer(csca_key, csca, ds_key.public_key, common_name="DS Stranger",
                               not_before=start + dt.timedelta(days=1))
    return ds_key, ds


@pytest.fixture(scope="module")
def cam_passports(ektp_office: Sandbox) -> dict[str, bytes]:
    """A CAM passport's image with the key in EF.CardSecurity only, in DG14 only, in both."""
    return {where: make_passport(ektp_office, pace=MappingType.CAM, cam_key_in=where).dumps()
            for where in ("card-security", "dg14", "both")}


# --- the file -----------------------------------------------------------------------------------


def test_build_and_parse(ektp_office: Sandbox) -> None:
    signer = ektp_office.document_signer
    data = build_card_security(_infos(), signer.signer, signer.certificate)
    parsed = parse_card_security(data)
    assert parsed.infos == _infos()
    assert parsed.signed.econtent_type == OID_SECURITY_OBJECT
    assert parsed.signed.signer_certificate() == signer.certificate
    result = signed_object_authentication(parsed.signed, CARD_SECURITY, ektp_office.trust)
    assert result.ok, result.failures
    assert result.document_signer == signer.certificate


def test_another_content_type_is_not_card_security(ektp_office: Sandbox) -> None:
    signer = ektp_office.document_signer
    data = signed_data(OID_LDS_SECURITY_OBJECT, _infos().encode_security_infos(), signer.signer,
                       signer.certificate, hash_name="sha256")
    with pytest.raises(LdsFormatError, match="not id-SecurityObject"):
        parse_card_security(data)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_a_changed_byte_is_refused_or_fails_its_signature(
    ektp_office: Sandbox, position: int, value: int
) -> None:
    # A structure error is LdsFormatError; anything that still parses must fail Passive Authentication.
    signer = ektp_office.document_signer
    data = bytearray(build_card_security(_infos(), signer.signer, signer.certificate))
    position %= len(data)
    if data[position] == value:
        return
    data[position] = value
    try:
        parsed = parse_card_security(bytes(data))
    except LdsFormatError:
        return
    assert not signed_object_authentication(parsed.signed, CARD_SECURITY, ektp_office.trust).ok


def test_card_security_is_read_after_pace_only(cam_passports: dict[str, bytes]) -> None:
    card = VirtualCard.loads(cam_passports["card-security"])
    card.power_on()
    iso = Iso7816Session(ApduProtocol(card))
    iso.select_mf()
    with pytest.raises(SecurityStatusNotSatisfiedError):
        iso.read_file(sfi=0x1D)


# --- the verdict --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "source"),
    [("card-security", "EF.CardSecurity"), ("dg14", "DG14"), ("both", "DG14")],
)
def test_cam_key_from_card_security_or_dg14(cam_passports: dict[str, bytes], ektp_office: Sandbox,
                                             where: str, source: str) -> None:
    card = VirtualCard.loads(cam_passports[where])
    card.power_on()
    report = verify_passport(card, MRZ, ektp_office.trust)
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert report.proved_by == ("CAM", "AA")
    assert report.check("chip-authentication").reason == f"PACE-CAM: the chip proved {source}'s key in PACE"


def test_wrong_cam_data_against_card_security_is_cloned(
    cam_passports: dict[str, bytes], ektp_office: Sandbox
) -> None:
    card = VirtualCard.loads(cam_passports["card-security"])
    card.keys[CA_PRIVATE_KEY] = (4242).to_bytes(32, "big")  # a clone without the chip's private key
    card.power_on()
    report = verify_passport(card, MRZ, ektp_office.trust)
    assert report.verdict is Verdict.CLONED
    check = report.check("chip-authentication")
    assert check.status is Status.FAIL and "does not match EF.CardSecurity's key" in check.reason


def test_card_security_from_an_untrusted_signer_proves_nothing(
    cam_passports: dict[str, bytes], ektp_office: Sandbox, tmp_path: Path
) -> None:
    # The cloner's way around CAM: their own key in an EF.CardSecurity they sign themselves.
    card = VirtualCard.loads(cam_passports["card-security"])
    signer, certificate = _stranger(tmp_path)
    ef = _card_security(card)
    infos = parse_card_security(bytes(ef.data)).infos
    ef.data = bytearray(build_card_security(infos, signer, certificate))
    card.power_on()
    report = verify_passport(card, MRZ, ektp_office.trust)
    assert report.verdict is Verdict.CLONED
    assert "CAM" not in report.proved_by
    check = report.check("chip-authentication")
    assert check.status is Status.FAIL
    assert "EF.CardSecurity is not signed by a trusted document signer" in check.reason
    assert "certificate-chain" in check.reason and "covers no DG14" in check.reason


def test_changed_card_security_proves_nothing(cam_passports: dict[str, bytes], ektp_office: Sandbox) -> None:
    card = VirtualCard.loads(cam_passports["card-security"])
    ef = _card_security(card)
    ef.data[-1] ^= 0x01  # the last byte of the signature
    card.power_on()
    report = verify_passport(card, MRZ, ektp_office.trust)
    assert report.verdict is Verdict.CLONED
    assert "cms-signature" in report.check("chip-authentication").reason


def test_cam_with_no_signed_key_anywhere_is_not_genuine(
    cam_passports: dict[str, bytes], ektp_office: Sandbox
) -> None:
    card = VirtualCard.loads(cam_passports["card-security"])
    card.fs.mf.children = [c for c in card.fs.mf.children if c.fid != CARD_SECURITY_FID]
    card.power_on()
    report = verify_passport(card, MRZ, ektp_office.trust)
    assert report.verdict is Verdict.CLONED
    reason = report.check("chip-authentication").reason
    assert "no signed key proves it" in reason and "EF.CardSecurity could not be read" in reason


def test_a_withheld_dg14_fails_though_card_security_could_prove_the_chip(
    cam_passports: dict[str, bytes], ektp_office: Sandbox
) -> None:
    # EF.SOD lists DG14, so the card must give it: EF.CardSecurity does not stand in for a listed file.
    card = VirtualCard.loads(cam_passports["both"])
    dg14 = card.fs.application(EMRTD_AID).child_ef(0x010E)
    assert dg14 is not None
    dg14.access = SecurityAttributes(AccessCondition.NEVER)
    card.power_on()
    report = verify_passport(card, MRZ, ektp_office.trust)
    assert report.verdict is Verdict.CLONED
    check = report.check("chip-authentication")
    assert check.status is Status.FAIL and check.reason == "EF.SOD covers DG14 but the card did not give it"
    assert report.refused == (14,)


# --- an e-KTP issued with PACE-CAM --------------------------------------------------------------


def test_ektp_issued_with_cam_gets_card_security(issuer: IssuerOf, citizen: SyntheticCitizen) -> None:
    card = blank_card(MASTER, bytes.fromhex("C5C5C5C5C5C5C5C5"))
    blank_used = card.fs.used
    perso_keys = card.keys.storage(PERSO_KEY) + card.keys.storage(PERSO_TRIES)
    plan = plan_from_record(citizen.record, algorithms=Algorithms(pace_protocol=ECDH_CAM_AES128.oid))
    ds = issuer().ds
    budget = plan_budget(plan, sod_size(plan, ds.signer, ds.certificate),
                         card_security_bytes=card_security_size(plan, ds.signer, ds.certificate))
    result = personalize(card, plan, MASTER, ds, trust=issuer().trust)
    assert result.verification is not None and result.verification.ok, result.verification.summary()
    # The desk counted EF.CardSecurity too: what the card took, give or take the two signatures' lengths.
    taken = card.fs.used - blank_used + perso_keys
    assert 0 <= budget.total - taken <= 2 * ALLOCATION_UNIT
    assert budget.line("EF.CardSecurity").size >= len(_card_security(card).data)

    parsed = parse_card_security(bytes(_card_security(card).data))
    assert signed_object_authentication(parsed.signed, CARD_SECURITY, issuer().trust).ok
    app = card.fs.application(EKTP_AID)
    dg14_ef = app.child_ef(0x010E)
    assert dg14_ef is not None
    dg14 = Dg14.decode(bytes(dg14_ef.data))
    # The key PACE-CAM proves is DG14's, and EF.CardAccess's PACEInfo is there as ICAO asks.
    assert parsed.infos.chip_authentication_public_keys == dg14.chip_authentication_public_keys
    assert [p.protocol for p in parsed.infos.pace_infos] == [ECDH_CAM_AES128.oid]

    card.power_on()
    report = verify_card(card, result.can, issuer().trust)
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert report.proved_by == ("CAM", "AA")


def test_cam_personalisation_cut_anywhere_then_run_again(
    issuer: IssuerOf, citizen: SyntheticCitizen, cut_transport: type[CutTransport]
) -> None:
    """The card leaves the field after each command in turn, EF.CardSecurity's (written last, in the MF)
    among them; the next run erases what the torn one left and the card verifies."""
    plan = plan_from_record(citizen.record, algorithms=Algorithms(pace_protocol=ECDH_CAM_AES128.oid))
    ds = issuer().ds
    for cut in itertools.count():
        card = blank_card(MASTER, bytes.fromhex("C7C7C7C7C7C7C7C7"))
        try:
            personalize(cut_transport(card, cut, after=True), plan, MASTER, ds)
        except CardRemovedError:
            pass
        else:
            break
        card.power_on()
        if personalisation_state(card) is PersoState.LOCKED:
            continue  # cut after LOCK: the card is done, only the answer was lost
        result = personalize(card, plan, MASTER, ds, trust=issuer().trust)
        verification = result.verification
        assert verification is not None and verification.ok, (cut, verification.summary())
        assert card.fs.mf.child_ef(CARD_SECURITY_FID) is not None
    assert cut > 20


def test_ektp_issued_without_cam_has_no_card_security(issuer: IssuerOf, citizen: SyntheticCitizen) -> None:
    card = blank_card(MASTER, bytes.fromhex("C6C6C6C6C6C6C6C6"))
    plan = plan_from_record(citizen.record)
    assert not plan.algorithms.cam and "EF.CardSecurity" not in [f.name for f in plan.files]
    personalize(card, plan, MASTER, issuer().ds)
    assert card.fs.mf.child_ef(CARD_SECURITY_FID) is None
