"""The authenticity and integrity tests of the audit catalogue (issue #7): the genuine e-KTP passes
each, the card each one is meant for fails it, and a run without consent leaves the card as it was."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW
from ektp_card.audit.attacks import make_attack_card
from ektp_card.audit.catalogue.authenticity import TearKit, tear_personalisation
from ektp_card.audit.engine import (
    CATALOGUE,
    AuditOptions,
    AuditReport,
    Outcome,
    Recorder,
    Threat,
    run_audit,
    select_tests,
)
from ektp_card.audit.targets import VirtualTarget
from ektp_card.lds.conditions import AccessCondition, SecurityAttributes
from ektp_card.lds.ektp import EKTP_AID
from ektp_card.lds.nik import FEMALE
from ektp_card.lds.record import CitizenRecord, PersonalData
from ektp_card.personalize import DocumentSigner, personalize, plan_from_record
from ektp_card.pki.certs import create_csca, issue_document_signer
from ektp_card.pki.crl import Revocation, build_crl
from ektp_card.pki.signer import KeySpec, PrivateKeySigner
from ektp_card.pki.trust import TrustStore
from ektp_card.virtual import VirtualCard
from ektp_card.virtual import pace as virtual_pace
from ektp_card.virtual.commands import Command
from ektp_card.virtual.perso import blank_card

if TYPE_CHECKING:
    from fixtures.cards import Fresh, HolderCard, Issuer, IssuerOf, RecordOf
    from fixtures.terminal_pki import TerminalOf

#: The tests of this catalogue module, in catalogue order, and their threats.
THREATS = {
    "PA-TAMPER": Threat.FORGERY,
    "PA-TRUST": Threat.FORGERY,
    "CLONE-COPY": Threat.COUNTERFEIT,
    "CLONE-DOWNGRADE": Threat.COUNTERFEIT,
    "AA-REPLAY": Threat.COUNTERFEIT,
    "BIO-CONF": Threat.SKIMMING,
    "PRINT-CHIP": Threat.FORGERY,
    "LOCKED-WRITE": Threat.ABUSE_OF_FUNCTIONS,
    "FUZZ-APDU": Threat.MALFUNCTION,
    "TEAR-PERSO": Threat.MALFUNCTION,
}
IDS = tuple(THREATS)
RUN_WITHOUT_CONSENT = IDS[:-1]
MASTER = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
NOW = dt.datetime.now(dt.UTC)
Audit = Callable[..., AuditReport]


@pytest.fixture(scope="module")
def audit(issuer: IssuerOf) -> Audit:
    """``audit(card, can, *ids, **options)``: the tests ``ids`` (all of this module's by default) on a
    virtual card or image; the issuer's trust store unless ``trust`` is given."""

    def run(card: VirtualCard | Path, can: str, *ids: str, **options: Any) -> AuditReport:
        options.setdefault("trust", issuer().trust)
        return run_audit(VirtualTarget(card), AuditOptions(can=can, **options), select_tests(ids or IDS))

    return run


def ef(card: VirtualCard, number: int) -> bytearray:
    app = card.fs.application(EKTP_AID)
    data = app.child_ef(0x0100 + number).data  # type: ignore[union-attr]
    assert isinstance(data, bytearray)
    return data


@dataclasses.dataclass(frozen=True)
class Saved:
    report: AuditReport
    before: bytes
    after: bytes
    can: str
    keys: dict[str, bytes]


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory, audit: Audit, fresh: Fresh) -> Saved:
    """One audit without consent of a genuine card saved as an image, as `ektp audit --virtual` runs."""
    card, can = fresh()
    path = tmp_path_factory.mktemp("genuine") / "card.img"
    card.save(path)
    before = path.read_bytes()
    report = audit(path, can)
    return Saved(report, before, path.read_bytes(), can, dict(card.keys))


# --- the catalogue ---------------------------------------------------------------------------------


def test_catalogue_entries() -> None:
    select_tests()
    for test_id, threat in THREATS.items():
        entry = CATALOGUE[test_id]
        assert entry.threat is threat
        assert entry.destructive == (test_id == "TEAR-PERSO")
        assert len(entry.description) > 200 and " Pass: " in entry.description, test_id
    assert CATALOGUE["PA-TRUST"].needs == ("trust",)
    assert [t.id for t in select_tests(list(reversed(IDS)))] == list(IDS)


# --- the genuine card ------------------------------------------------------------------------------


@pytest.mark.parametrize("test_id", RUN_WITHOUT_CONSENT)
def test_genuine_card_passes(genuine: Saved, test_id: str) -> None:
    result = genuine.report.result(test_id)
    assert result.outcome is Outcome.PASS, result.reason
    assert result.apdus > 0 and result.evidence  # each test's own exchanges


def test_genuine_figures(genuine: Saved) -> None:
    tamper = genuine.report.result("PA-TAMPER").figures
    assert tamper["data_groups_compared"] == "DG1, DG2, DG7, DG14, DG15"
    assert tamper["bit_flips_detected"] == "5/5"
    assert tamper["not_compared"] == "DG3 (refused without Terminal Authentication)"
    bio = genuine.report.result("BIO-CONF").figures
    assert bio["READ BINARY DG3 by SFI"] == "6982" and bio["no PACE: READ BINARY DG3 by SFI"] == "6982"
    assert bio["READ BINARY odd INS B1, DG3 by FID at offset 16"] == "6982"
    assert bio["after Terminal Authentication"] == "n/a: no terminal given"
    locked = genuine.report.result("LOCKED-WRITE").figures
    assert locked["UPDATE BINARY EF.CardAccess with its own bytes"] == "6982"
    assert locked["UPDATE BINARY DG15 with its own bytes, after PACE"] == "6982"
    assert "TERMINATE CARD USAGE" not in locked  # needs consent
    fuzz = genuine.report.result("FUZZ-APDU").figures
    assert fuzz["class FF (reserved for PPS)"] == "6E00" and fuzz["logical channel 1"] == "6881"
    assert fuzz["empty APDU"] == "6700" and fuzz["protected command, MAC cut short"] == "6988"
    assert fuzz["plain INS 60 inside secure messaging"] == "6988"
    assert str(fuzz["usable afterwards"]).startswith("yes")
    trust = genuine.report.result("PA-TRUST").figures
    assert trust["csca"] == "CN=CSCA Verify Test,C=ID" and trust["crls"] == 1


def test_tear_perso_is_skipped_without_consent(genuine: Saved) -> None:
    assert genuine.report.result("TEAR-PERSO").outcome is Outcome.SKIPPED


def test_run_without_consent_leaves_the_image_byte_identical(genuine: Saved) -> None:
    assert genuine.after == genuine.before


def test_evidence_holds_no_can_and_no_keys(genuine: Saved) -> None:
    text = json.dumps(genuine.report.to_json())
    exchanges = [e for r in genuine.report.results for e in r.evidence]
    words = [r.reason for r in genuine.report.results] + [e.note for e in exchanges]
    words += [str(v) for r in genuine.report.results for v in r.figures.values()]
    assert not any(genuine.can in w for w in words)
    assert genuine.can.encode().hex().upper() not in text  # never sent in the clear either
    for name, key in genuine.keys.items():
        if len(key) >= 8:
            assert key.hex().upper() not in text.upper(), name


def test_deciding_exchanges_are_in_each_tests_evidence(genuine: Saved) -> None:
    def notes(test_id: str) -> list[str]:
        return [e.note for e in genuine.report.result(test_id).evidence if e.note]

    assert "READ BINARY EF.SOD: it carries the document signer" in notes("PA-TRUST")
    assert any(n.startswith("INTERNAL AUTHENTICATE 2") for n in notes("AA-REPLAY"))
    assert "Chip Authentication with DG14's key" in notes("CLONE-COPY")
    assert "READ BINARY DG1: the printed fields on the chip" in notes("PRINT-CHIP")
    assert any(n.startswith("full verification") for n in notes("PA-TAMPER"))


def test_consented_run_is_refused_everything_and_changes_nothing(
    tmp_path: Path, audit: Audit, fresh: Fresh
) -> None:
    card, can = fresh()
    path = tmp_path / "card.img"
    card.save(path)
    before = path.read_bytes()
    report = audit(path, can, "LOCKED-WRITE", "FUZZ-APDU", "TEAR-PERSO", destructive=True)
    locked = report.result("LOCKED-WRITE")
    assert locked.outcome is Outcome.PASS, locked.reason
    assert locked.figures["TERMINATE CARD USAGE"] == "6982"
    assert locked.figures["PUT DATA the card's own CAN, after PACE"] == "6985"
    assert locked.figures["INITIALIZE UPDATE (personalisation)"] == "6985"
    assert report.result("FUZZ-APDU").figures["UPDATE BINARY with Lc longer than its data"] == "6700"
    tear = report.result("TEAR-PERSO")
    assert tear.outcome is Outcome.NOT_APPLICABLE and "already personalised" in tear.reason
    assert path.read_bytes() == before


def test_with_a_terminal_dg3_is_readable_after_terminal_authentication(
    audit: Audit, holder_card: HolderCard, terminal: TerminalOf
) -> None:
    card, can = holder_card()
    report = audit(card, can, "BIO-CONF", "PA-TAMPER", terminal=terminal())
    bio = report.result("BIO-CONF")
    assert bio.outcome is Outcome.PASS, bio.reason
    assert str(bio.figures["after Terminal Authentication"]).startswith("readable after TA as IDGATE00001: ")
    notes = [e.note for e in bio.evidence if e.note]
    assert "READ BINARY DG3 after Terminal Authentication, before Chip Authentication" in notes
    assert bio.figures["READ BINARY DG3 by SFI"] == "6982"
    tamper = report.result("PA-TAMPER")
    assert tamper.outcome is Outcome.PASS, tamper.reason
    assert "DG3" in str(tamper.figures["data_groups_compared"])


# --- forged data ------------------------------------------------------------------------------------


def test_altered_data_group_fails_pa_tamper(audit: Audit, fresh: Fresh) -> None:
    card, can = fresh()
    ef(card, 7)[-1] ^= 0x01
    result = audit(card, can, "PA-TAMPER").result("PA-TAMPER")
    assert result.outcome is Outcome.FAIL
    assert "data-group-hashes: data groups 7 do not match their hash" in result.reason


def _card_signed_by(
    record: CitizenRecord, ds: DocumentSigner, serial: int, *, at: dt.datetime | None = None
) -> tuple[VirtualCard, str]:
    card = blank_card(MASTER, serial.to_bytes(8, "big"))
    result = personalize(card, plan_from_record(record), MASTER, ds, now=at)
    card.power_on()
    return card, result.can


def _revoking(issuer: Issuer, record: CitizenRecord) -> tuple[VirtualCard, str, TrustStore]:
    csca_signer = PrivateKeySigner(KeySpec.parse("secp256r1").generate())
    csca = create_csca(csca_signer, country="ID", common_name="CSCA Revoking",
                       not_before=NOW - dt.timedelta(days=2))
    ds = issue_document_signer(csca_signer, csca, issuer.ds.signer.public_key, common_name="DS Revoked",
                               not_before=NOW - dt.timedelta(days=1))
    crl = build_crl(csca_signer, csca, [Revocation(ds.serial_number, NOW - dt.timedelta(minutes=5))],
                    crl_number=2, this_update=NOW - dt.timedelta(minutes=1))
    card, can = _card_signed_by(record, DocumentSigner(issuer.ds.signer, ds), 21)
    return card, can, TrustStore((csca,), (crl,))


def _expired(issuer: Issuer, record: CitizenRecord) -> tuple[VirtualCard, str, TrustStore]:
    csca_signer = PrivateKeySigner(KeySpec.parse("secp256r1").generate())
    csca = create_csca(csca_signer, country="ID", common_name="CSCA Old",
                       not_before=NOW - dt.timedelta(days=800))
    start = NOW - dt.timedelta(days=400)
    ds = issue_document_signer(csca_signer, csca, issuer.ds.signer.public_key, common_name="DS Expired",
                               not_before=start, key_usage_days=30, document_validity_years=0)
    crl = build_crl(csca_signer, csca, [], crl_number=1, this_update=NOW - dt.timedelta(hours=1))
    signer = DocumentSigner(issuer.ds.signer, ds)
    card, can = _card_signed_by(record, signer, 22, at=start + dt.timedelta(days=5))
    return card, can, TrustStore((csca,), (crl,))


def test_pa_trust_names_the_problem(audit: Audit, fresh: Fresh, issuer: IssuerOf, record: RecordOf) -> None:
    card, can = fresh()
    stranger = audit(card, can, "PA-TRUST", trust=issuer("Stranger").trust).result("PA-TRUST")
    assert stranger.outcome is Outcome.FAIL
    assert stranger.reason.startswith("unknown signer: no trusted CSCA named CN=CSCA Verify Test,C=ID")
    revoked_card, revoked_can, revoked_trust = _revoking(issuer(), record())
    revoked = audit(revoked_card, revoked_can, "PA-TRUST", trust=revoked_trust).result("PA-TRUST")
    assert revoked.outcome is Outcome.FAIL and revoked.reason.startswith("revoked signer: document signer")
    old_card, old_can, old_trust = _expired(issuer(), record())
    expired = audit(old_card, old_can, "PA-TRUST", trust=old_trust).result("PA-TRUST")
    assert expired.outcome is Outcome.FAIL
    assert expired.reason.startswith("expired signer: document signer certificate is not valid now")
    without = audit(card, can, "PA-TRUST", trust=None).result("PA-TRUST")
    assert without.outcome is Outcome.NOT_APPLICABLE and without.apdus == 0
    # PA-TAMPER needs no trust store: the same cards' data and signatures are intact.
    assert audit(old_card, old_can, "PA-TAMPER", trust=None).result("PA-TAMPER").outcome is Outcome.PASS


def _personal_with_nik(card: VirtualCard, personal: PersonalData) -> None:
    """Give DG1's NIK the women's +40 on the day (or take it away): same length, so only the NIK
    contradicts DG1's sex."""
    nik = personal.nik.encode()
    dg1 = ef(card, 1)
    at = bytes(dg1).index(nik) + 6
    tens = dg1[at] - ord("0")
    dg1[at] = ord("0") + (tens - 4 if personal.sex == FEMALE else tens + 4)


def test_print_chip_compares_printed_fields_and_the_nik(audit: Audit, fresh: Fresh, record: RecordOf) -> None:
    card, can = fresh()
    personal = record().personal
    printed = {"NIK": personal.nik, "name": personal.name.lower(), "date of birth":
               personal.date_of_birth.strftime("%d-%m-%Y"), "valid_until": personal.validity_text}
    same = audit(card, can, "PRINT-CHIP", printed=printed).result("PRINT-CHIP")
    assert same.outcome is Outcome.PASS, same.reason
    assert same.figures["printed_fields_compared"] == 4
    other = audit(card, can, "PRINT-CHIP", printed={**printed, "name": "SOMEONE ELSE"}).result("PRINT-CHIP")
    assert other.outcome is Outcome.FAIL and other.reason == "printed name differ from DG1"
    typo = audit(card, can, "PRINT-CHIP", printed={"surname": "X"}).result("PRINT-CHIP")
    assert typo.outcome is Outcome.ERROR and "unknown printed field 'surname'" in typo.reason
    _personal_with_nik(card, personal)
    forged = audit(card, can, "PRINT-CHIP").result("PRINT-CHIP")
    assert forged.outcome is Outcome.FAIL and "NIK: the NIK's day" in forged.reason


# --- copies of the chip ------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "test_id", "why"), [
    ("clone", "CLONE-COPY", "Chip Authentication (DG14) failed"),
    ("downgrade-clone", "CLONE-DOWNGRADE",
     "EF.SOD commits to Chip Authentication (DG14) but the card does not offer it"),
    ("replay", "AA-REPLAY", "the card answered the same signature twice"),
])
def test_attack_card_fails_its_test(kind: str, test_id: str, why: str, audit: Audit, fresh: Fresh) -> None:
    card, can = fresh()
    attack = make_attack_card(kind, card, can)
    result = audit(attack, can, test_id).result(test_id)
    assert result.outcome is Outcome.FAIL
    assert why in result.reason


def test_a_card_with_another_cards_keys_fails_clone_copy(audit: Audit, fresh: Fresh) -> None:
    original, can = fresh(1)
    other, _ = fresh(2)
    for name in list(original.keys):
        if name.startswith(("ca.", "aa.")):
            original.keys[name] = other.keys[name]
    report = audit(original, can, "CLONE-COPY", "AA-REPLAY", "PA-TAMPER")
    assert report.result("PA-TAMPER").outcome is Outcome.PASS  # the data is the issuer's
    copy = report.result("CLONE-COPY")
    assert copy.outcome is Outcome.FAIL and "Active Authentication (DG15) failed" in copy.reason
    assert report.result("AA-REPLAY").outcome is Outcome.FAIL


# --- access to DG3, writes, garbage --------------------------------------------------------------------


def test_rights_granted_before_chip_authentication_fail_bio_conf(
    audit: Audit, holder_card: HolderCard, terminal: TerminalOf
) -> None:
    """A chip that opens DG3 on Terminal Authentication alone, before Chip Authentication (EAC1's
    order applied to EAC2), gives the fingerprints before it has proven itself."""
    from ektp_card.virtual.ta import grant_after_ca

    card, can = holder_card()
    external = card.commands[0x82]

    def early_rights(chip: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
        response = external.handler(chip, apdu)
        if response.sw == SW.OK:
            grant_after_ca(chip)
        return response

    card.commands[0x82] = Command(external.name, early_rights, external.chaining)
    result = audit(card, can, "BIO-CONF", terminal=terminal()).result("BIO-CONF")
    assert result.outcome is Outcome.FAIL
    assert "DG3 is given after Terminal Authentication but before Chip Authentication" in result.reason
    notes = [e.note for e in result.evidence if e.note]
    assert "READ BINARY DG3 after Terminal Authentication, before Chip Authentication" in notes


def test_dg3_readable_after_pace_fails_bio_conf(audit: Audit, fresh: Fresh) -> None:
    card, can = fresh()
    dg3 = card.fs.application(EKTP_AID).child_ef(0x0103)
    assert dg3 is not None
    dg3.access = SecurityAttributes(AccessCondition.require("PACE"), dg3.access.update, dg3.access.admin)
    result = audit(card, can, "BIO-CONF").result("BIO-CONF")
    assert result.outcome is Outcome.FAIL
    assert result.reason.startswith(
        "DG3 is readable without Terminal Authentication: READ BINARY DG3 by SFI: 9000")


def test_writable_card_fails_locked_write_and_is_still_unchanged(
    tmp_path: Path, audit: Audit, fresh: Fresh
) -> None:
    card, can = fresh()
    access = card.fs.mf.child_ef(0x011C)
    assert access is not None
    access.access = SecurityAttributes(access.access.read, AccessCondition.ALWAYS, access.access.admin)
    path = tmp_path / "card.img"
    card.save(path)
    before = path.read_bytes()
    result = audit(path, can, "LOCKED-WRITE").result("LOCKED-WRITE")
    assert result.outcome is Outcome.FAIL
    assert result.reason == ("the card accepted: UPDATE BINARY EF.CardAccess with its own bytes; "
                             "UPDATE BINARY odd INS EF.CardAccess with its own bytes")
    assert path.read_bytes() == before  # it accepted the very bytes it held


def test_card_accepting_an_unknown_instruction_fails_fuzz(audit: Audit, fresh: Fresh) -> None:
    card, can = fresh()
    card.commands[0x5A] = Command("LENIENT", lambda _card, _apdu: ResponseApdu(b"", SW.OK))
    result = audit(card, can, "FUZZ-APDU").result("FUZZ-APDU")
    assert result.outcome is Outcome.FAIL
    assert result.reason == "unknown INS 5A: 9000, not an error"
    assert str(result.figures["usable afterwards"]).startswith("yes")


# --- tearing during personalisation ---------------------------------------------------------------------


def _blank(serial: int, *, opens_early: bool = False) -> VirtualTarget:
    card = blank_card(MASTER, serial.to_bytes(8, "big"))
    if opens_early:
        # A flawed chip that runs PACE before LOCK: torn between the CAN and LOCK it passes for issued.
        mse = card.commands[0x22]

        def early(chip: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
            if (apdu.p1, apdu.p2) == (0xC1, 0xA4):
                return virtual_pace._set_at(chip, apdu.data)
            return mse.handler(chip, apdu)

        card.commands[0x22] = Command(mse.name, early, mse.chaining)
    return VirtualTarget(card)


@pytest.fixture(scope="module")
def tear_kit(issuer: IssuerOf, record: RecordOf) -> Callable[..., TearKit]:
    """``tear_kit(*, opens_early=False)``: the issuer's kit for TEAR-PERSO, on blank cards of serial 31."""

    def make(*, opens_early: bool = False) -> TearKit:
        return TearKit(lambda: _blank(31, opens_early=opens_early), plan_from_record(record()), MASTER,
                       issuer().ds, issuer().trust)

    return make


def test_tearing_after_each_command_finds_a_chip_that_runs_pace_before_lock(
    tear_kit: Callable[..., TearKit]
) -> None:
    """A chip that takes the CAN (PUT DATA) and runs PACE before LOCK, torn between the two, verifies
    while the issuer's key still opens it for personalisation. The sweep names that cut alone."""
    recorder = Recorder()
    finding = tear_personalisation(tear_kit(opens_early=True), variants=("after",), recorder=recorder)
    assert finding.outcome is Outcome.FAIL
    assert finding.reason.startswith("torn after command ")
    assert finding.reason.endswith("(PUT DATA), the card verifies while still open to personalisation")
    assert finding.figures["verifies_unlocked"] == 1 and finding.figures["complete_and_locked"] == 1
    assert finding.figures["resumed"] == finding.figures["tears"] - 2
    notes = [e.note for e in recorder.exchanges if e.note]
    assert notes[0].startswith("the last commands before the card was torn after command ")
    assert notes[1:] == ["verification of the torn card: genuine", "the issuer's key on the torn card: open"]
    before = tear_personalisation(tear_kit(opens_early=True), cuts=range(26, 31), variants=("before",))
    assert before.outcome is Outcome.FAIL and "(LOCK), the card verifies" in before.reason


def test_tearing_passes_the_genuine_blank_card(tear_kit: Callable[..., TearKit]) -> None:
    """The genuine chip refuses PACE until LOCK: every torn card is blank and resumable, or complete."""
    finding = tear_personalisation(tear_kit(), variants=("after",))
    assert finding.outcome is Outcome.PASS, finding.reason
    assert finding.figures["complete_and_locked"] == 1
    assert finding.figures["resumed"] == finding.figures["tears"] - 1
    before = tear_personalisation(tear_kit(), cuts=range(26, 31), variants=("before",))
    assert before.outcome is Outcome.PASS, before.reason


def test_tear_perso_on_a_blank_card_without_the_issuers_kit_is_not_applicable() -> None:
    report = run_audit(_blank(32), AuditOptions(can="123456", destructive=True), select_tests(["TEAR-PERSO"]))
    result = report.result("TEAR-PERSO")
    assert result.outcome is Outcome.NOT_APPLICABLE
    assert "blank cards of the issuer and its master key" in result.reason
