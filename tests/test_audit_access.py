"""The access and privacy tests of the audit catalogue: genuine cards pass, weak cards fail.

Also the reader side of the vpcd bridge: a contactless reader answers the PC/SC GET DATA
pseudo-APDU (FF CA) itself with the UID, which is how PcscTarget learns it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.audit import attacks
from ektp_card.audit.catalogue import access
from ektp_card.audit.engine import CATALOGUE, AuditOptions, AuditReport, Outcome, run_audit, select_tests
from ektp_card.audit.targets import PcscTarget, VirtualTarget
from ektp_card.crypto.pace import PasswordType
from ektp_card.lds.conditions import AccessCondition
from ektp_card.lds.ektp import EKTP_AID, FILES
from ektp_card.virtual import VirtualCard
from ektp_card.virtual.commands import Command, refuse
from ektp_card.virtual.config import CardBehaviour, RngKind
from ektp_card.virtual.pace import PASSWORD_KEYS
from ektp_card.virtual.vpcd import atr_historical_bytes, reader_get_data

if TYPE_CHECKING:
    from fixtures.cards import Fresh, RecordOf

Variant = Callable[..., "tuple[VirtualCard, str]"]
IDS = (
    "UID-ACCEPT", "UID-TRACE", "SKIM-ENUM", "SKIM-BYPASS", "AUTH-WRONGKEY", "AUTH-REPLAY",
    "RNG-QUALITY", "TRACE-ERRORS", "KEY-ENTROPY", "RELAY-LATENCY",
)
Serve = Callable[..., Any]


def audit(card: VirtualCard | Path | PcscTarget, can: str, *ids: str, **options: Any) -> AuditReport:
    target = card if isinstance(card, PcscTarget) else VirtualTarget(card)
    return run_audit(target, AuditOptions(can=can, **options), select_tests(ids or IDS))


@pytest.fixture(scope="module")
def variant(fresh: Fresh) -> Variant:
    """``variant(**changes)``: the genuine card's files and keys on a chip configured otherwise (UID,
    behaviour)."""

    def make(**changes: Any) -> tuple[VirtualCard, str]:
        card, can = fresh()
        return VirtualCard(card.fs, dataclasses.replace(card.config, **changes), keys=card.keys), can

    return make


def outcome(report: AuditReport, test_id: str) -> Outcome:
    return report.result(test_id).outcome


# --- the catalogue ---------------------------------------------------------------------------------


def test_catalogue_has_the_access_tests_in_order() -> None:
    select_tests()
    registered = [i for i in CATALOGUE if i in IDS]
    assert registered == list(IDS)
    for test_id in IDS:
        entry = CATALOGUE[test_id]
        assert not entry.destructive and entry.needs == ()
        assert "Passes when" in entry.description, test_id


def test_genuine_card_passes_every_access_test(fresh: Fresh) -> None:
    card, can = fresh()
    report = audit(card, can)
    assert [r.id for r in report.results] == list(IDS)
    for result in report.results:
        assert result.outcome is Outcome.PASS, (result.id, result.reason)
        assert result.apdus > 0 or result.id in ("UID-TRACE", "KEY-ENTROPY")
    fig = {r.id: dict(r.figures) for r in report.results}
    assert fig["SKIM-ENUM"]["readable"] == "EF.CardAccess, EF.ATR/INFO, EF.DIR"
    # Every file of the profile, EF.CardSecurity (on PACE-CAM cards only: 6A82 here) among them.
    assert fig["SKIM-ENUM"]["files_probed"] == len(FILES) == 13 and fig["SKIM-ENUM"]["words"] == "6982 6A82"
    assert fig["SKIM-BYPASS"] == {"plain_word": "6988", "after_plain_word": "6882",
                                  "bad_mac_word": "6988", "after_bad_mac_word": "6882"}
    assert fig["AUTH-WRONGKEY"]["failure_words"] == "6300 6300 6300"
    assert fig["AUTH-WRONGKEY"]["retry_counter"] == "none"
    assert fig["AUTH-WRONGKEY"]["right_can_after_power_cycle"] == "accepted"
    assert fig["AUTH-REPLAY"]["refused_at"] == "GENERAL AUTHENTICATE step 4"
    assert fig["AUTH-REPLAY"]["word"] == "6300" and fig["AUTH-REPLAY"]["nonce_repeated"] == "no"
    assert fig["RNG-QUALITY"]["challenges"] == 256 and fig["RNG-QUALITY"]["power_ups"] == 8
    assert fig["RNG-QUALITY"]["repeats"] == 0 and "bytes_z" in fig["RNG-QUALITY"]
    trace = fig["TRACE-ERRORS"]
    assert (trace["sm_bad_mac"], trace["sm_bad_cryptogram"], trace["sm_plain_command"]) == ("6988",) * 3
    assert (trace["wrong_can"], trace["bad_token"], trace["samples"]) == ("6300", "6300", 15)
    assert (trace["unknown_file"], trace["password_reference"]) == ("6A82", "6A88")
    assert (trace["protected_file"], trace["sm_without_session"]) == ("6982", "6882")
    assert fig["KEY-ENTROPY"] == {"can_length": 6, "entropy_bits": 19.93, "candidates": 1_000_000}
    assert fig["UID-TRACE"]["distinct"] == 8 and fig["UID-ACCEPT"]["uid_bytes"] == 4
    relay = fig["RELAY-LATENCY"]
    assert {"pace_ga4_ms", "ca_ga_ms", "aa_internal_authenticate_ms", "read_binary_ms"} <= relay.keys()
    assert float(relay["slowest_ms"]) < 250


def test_evidence_holds_no_can_and_no_key(fresh: Fresh) -> None:
    card, can = fresh()
    report = audit(card, can)
    text = json.dumps(report.to_json()) + report.to_junit_xml().decode()
    secrets = [can.encode().hex(), *(card.keys[k].hex() for k in ("ca.private", "aa.private"))]
    for secret in secrets:
        assert secret.lower() not in text.lower()
    for result in report.results:
        words = [result.reason, *map(str, result.figures.values()), *(e.note for e in result.evidence)]
        assert not any(can in w for w in words), result.id
    # The evidence is the exchange itself: e.g. the replayed mutual authentication and its refusal.
    replay = report.result("AUTH-REPLAY").evidence
    assert replay[-1].note == "replayed GENERAL AUTHENTICATE step 4" and replay[-1].response == "6300"


def test_non_destructive_audit_leaves_the_image_byte_identical(tmp_path: Path, fresh: Fresh) -> None:
    card, can = fresh()
    image = tmp_path / "card.img"
    card.save(image)
    before = image.read_bytes()
    report = audit(image, can, challenges=32)
    assert all(r.outcome is Outcome.PASS for r in report.results), [(r.id, r.reason) for r in report.results]
    assert image.read_bytes() == before


def test_wrong_can_given_to_the_audit_is_no_verdict(fresh: Fresh) -> None:
    card, can = fresh()
    report = audit(card, "000000" if can != "000000" else "111111", "SKIM-BYPASS", "AUTH-REPLAY")
    assert {r.outcome for r in report.results} == {Outcome.ERROR}
    assert "CAN" in report.results[0].reason


# --- weak cards fail the test named for them -----------------------------------------------------------


def test_fixed_manufacturer_uid_fails_uid_accept_and_trace(variant: Variant) -> None:
    card, can = variant(uid=bytes.fromhex("04A1B2C3D4E5F6"))
    report = audit(card, can, "UID-ACCEPT", "UID-TRACE")
    accept = report.result("UID-ACCEPT")
    assert accept.outcome is Outcome.FAIL
    assert "04A1B2C3D4E5F6 is a 7-byte UID not starting 08" in accept.reason
    assert outcome(report, "UID-TRACE") is Outcome.FAIL


def test_static_uid_fails_uid_trace(variant: Variant) -> None:
    card, can = variant(uid=bytes.fromhex("0811AA22"))
    result = audit(card, can, "UID-TRACE").result("UID-TRACE")
    assert result.outcome is Outcome.FAIL
    assert result.reason.startswith("the UID 0811AA22 is the same at every power-up")
    assert result.figures["distinct"] == 1


def test_uid_found_in_the_data() -> None:
    uid = bytes.fromhex("08123456")
    assert access._uid_in(uid, b"\x61\x05" + uid + b"\x00")
    assert access._uid_in(uid, b"NIK 08123456")
    assert access._uid_in(uid, str(int.from_bytes(uid, "big")).encode())
    assert not access._uid_in(uid, b"3273051708900001")


def test_readable_data_group_fails_skim_enum(fresh: Fresh) -> None:
    card, can = fresh()
    dg1 = card.fs.application(EKTP_AID).child_ef(0x0101)
    assert dg1 is not None
    dg1.access = dataclasses.replace(dg1.access, read=AccessCondition.ALWAYS)
    result = audit(card, can, "SKIM-ENUM").result("SKIM-ENUM")
    assert result.outcome is Outcome.FAIL
    assert result.reason == "readable without the CAN: DG1"
    assert result.figures["readable"] == "EF.CardAccess, EF.ATR/INFO, EF.DIR, DG1"


class PlainInsideSession(VirtualCard):
    """A badly made card: plain commands run with the session's rights and leave it open."""

    def _process(self, raw: bytes) -> ResponseApdu:
        security = self.session.security
        channel = security.channel
        if channel is None or raw[0] & 0x0C:
            return super()._process(raw)
        security.channel = None
        try:
            return self._execute(CommandApdu.decode(raw))
        finally:
            security.channel = channel


def test_plain_command_executed_inside_the_session_fails_skim_bypass(fresh: Fresh) -> None:
    card, can = fresh()
    lax = PlainInsideSession(card.fs, card.config, keys=card.keys)
    result = audit(lax, can, "SKIM-BYPASS").result("SKIM-BYPASS")
    assert result.outcome is Outcome.FAIL
    assert "a plain READ BINARY inside the session was answered 9000 with DG1" in result.reason
    assert "the session went on after a plain command" in result.reason
    assert "wrong MAC" not in result.reason


def locking(card: VirtualCard, after: int = 3) -> VirtualCard:
    """A card that counts failed PACE runs in its memory and blocks PACE for good after ``after``."""
    failures = "test.pace.failures"
    mse, ga = card.commands[0x22], card.commands[0x86]

    def set_at(c: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
        if c.keys.get(failures, b"\x00")[0] >= after:
            refuse(0x6983)
        return mse.handler(c, apdu)

    def authenticate(c: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
        response = ga.handler(c, apdu)
        if response.sw == 0x6300:
            c.keys[failures] = bytes((c.keys.get(failures, b"\x00")[0] + 1,))
        return response

    card.commands[0x22] = Command(mse.name, set_at, mse.chaining)
    card.commands[0x86] = Command(ga.name, authenticate, ga.chaining)
    return card


def test_lock_out_by_wrong_cans_fails_auth_wrongkey(fresh: Fresh) -> None:
    card, can = fresh()
    result = audit(locking(card), can, "AUTH-WRONGKEY").result("AUTH-WRONGKEY")
    assert result.outcome is Outcome.FAIL
    assert result.reason == (
        "after 3 wrong CANs the right CAN is refused (6983): a stranger can lock the holder out"
    )
    assert result.figures["right_can_same_session"] == "refused 6983"


def test_weak_rng_fails_rng_quality_and_replay(variant: Variant) -> None:
    card, can = variant(behaviour=CardBehaviour(rng=RngKind.LCG, rng_seed=0x4B545031))
    report = audit(card, can, "RNG-QUALITY", "AUTH-REPLAY", "UID-TRACE", challenges=32)
    rng = report.result("RNG-QUALITY")
    assert rng.outcome is Outcome.FAIL and rng.figures["power_ups"] == 2
    assert rng.reason.startswith("16 repeated challenges (16 repeated across power-ups, 0 within one)")
    # Restarted from the same seed, the chip draws the recorded nonce and keys again.
    assert report.result("AUTH-REPLAY").reason.startswith("the replayed handshake was accepted")
    assert outcome(report, "UID-TRACE") is Outcome.FAIL


def test_rng_statistics_catch_a_biased_generator() -> None:
    rng = random.Random(7)  # a seeded test generator, not a key source
    fair = [rng.randbytes(8) for _ in range(256)]
    stats = access.rng_statistics(fair)
    assert all(abs(stats[k]) < access.RNG_Z_LIMIT for k in ("monobit_z", "runs_z", "nibbles_z", "bytes_z"))
    biased = [bytes(b | 0x81 for b in c) for c in fair]  # two bits of every byte stuck at 1
    stats = access.rng_statistics(biased)
    assert stats["monobit_z"] > 20 and stats["bytes_z"] > 20
    assert stats["ones_fraction"] == pytest.approx(0.625, abs=0.01)
    alternating = [b"\x55" * 8] * 4
    assert access.rng_statistics(alternating)["runs_z"] > 10


def test_leaky_error_words_fail_trace_errors(variant: Variant) -> None:
    card, can = variant(behaviour=CardBehaviour(error_words=attacks.LEAKY_ERROR_WORDS))
    report = audit(card, can, "TRACE-ERRORS", "SKIM-BYPASS")
    result = report.result("TRACE-ERRORS")
    assert result.outcome is Outcome.FAIL
    assert result.reason.startswith(
        "an altered cryptogram answers 6A80 where an altered MAC answers 6988: the answer depends on the "
        "decrypted padding (a padding oracle); secure messaging failures not answered 6987/6988: "
        "cryptogram 6A80, plain 6982"
    )
    assert (result.figures["sm_bad_cryptogram"], result.figures["sm_plain_command"]) == ("6A80", "6982")
    # Refused and ended all the same: no bypass, only a leak.
    assert outcome(report, "SKIM-BYPASS") is Outcome.PASS


def test_relay_delay_fails_relay_latency(variant: Variant) -> None:
    card, can = variant(behaviour=CardBehaviour(response_delay_ms=30))
    result = audit(card, can, "RELAY-LATENCY", relay_bound_ms=20).result("RELAY-LATENCY")
    assert result.outcome is Outcome.FAIL
    assert float(result.figures["slowest_ms"]) >= 30 and result.figures["bound_ms"] == 20
    assert "beyond the bound of 20 ms" in result.reason


def test_weak_can_fails_key_entropy(fresh: Fresh, record: RecordOf) -> None:
    personal = record().personal
    nik, born = personal.nik, personal.date_of_birth
    card, _ = fresh()
    weak = nik[6:12]  # DDMMYY of the birth date (+40 for women), as the NIK carries it
    card.keys[PASSWORD_KEYS[PasswordType.CAN]] = weak.encode()
    result = audit(card, weak, "KEY-ENTROPY").result("KEY-ENTROPY")
    assert result.outcome is Outcome.FAIL and result.reason.startswith("the CAN is part of the NIK")
    assert weak not in result.reason
    cases = {
        nik[::-1][:6]: "the CAN is part of the NIK reversed",
        born.strftime("%y%m%d"): "the CAN is made from the date of birth",
        born.strftime("%d%m%Y"): "the CAN is made from the date of birth",
        "777777": "the CAN repeats one character",
        "345678": "the CAN is a run of consecutive digits",
        "109876": "the CAN is a run of consecutive digits",
        "58213": "the CAN has 5 characters, fewer than 6",
    }
    for can, reason in cases.items():
        assert reason in access.can_weaknesses(can, personal), can
    assert access.can_weaknesses("583920", dataclasses.replace(personal, nik="3273051708900001",
                                                               date_of_birth=dt.date(1990, 8, 17))) == []


# --- attack cards of ektp_card.audit.attacks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "test_id"),
    [("static-uid", "UID-TRACE"), ("relay", "RELAY-LATENCY"), ("weak-rng", "RNG-QUALITY"),
     ("leaky-errors", "TRACE-ERRORS")],
)
def test_attack_card_fails_its_test(kind: str, test_id: str, fresh: Fresh) -> None:
    card, can = fresh()
    attack = attacks.make_attack_card(kind, card, can, delay_ms=30)
    report = audit(attack, can, test_id, challenges=32, relay_bound_ms=20)
    assert outcome(report, test_id) is Outcome.FAIL, report.result(test_id).reason


# --- the reader's GET DATA in the vpcd bridge ------------------------------------------------------------


def test_reader_get_data_words() -> None:
    uid, atr = bytes.fromhex("08A1B2C3"), bytes.fromhex("3B8680018031D873F421E0810563")
    assert atr_historical_bytes(atr) == bytes.fromhex("8031D873F421E0810563")[:6]
    assert reader_get_data(bytes.fromhex("FFCA000000"), uid, atr) == uid + b"\x90\x00"
    assert reader_get_data(bytes.fromhex("FFCA000004"), uid, atr) == uid + b"\x90\x00"
    assert reader_get_data(bytes.fromhex("FFCA000002"), uid, atr) == b"\x6c\x04"
    assert reader_get_data(bytes.fromhex("FFCA000008"), uid, atr) == uid + b"\x62\x82"
    assert reader_get_data(bytes.fromhex("FFCA010000"), uid, atr) == atr[4:10] + b"\x90\x00"
    assert reader_get_data(bytes.fromhex("FFCA020000"), uid, atr) == b"\x6a\x81"
    assert reader_get_data(bytes.fromhex("FFCA000100"), uid, atr) == b"\x6b\x00"
    assert reader_get_data(bytes.fromhex("FFCA0000"), uid, atr) == b"\x67\x00"
    assert reader_get_data(bytes.fromhex("FFCA00000100"), uid, atr) == b"\x67\x00"
    assert reader_get_data(bytes.fromhex("FFCA000000"), None, atr) == b"\x6a\x81"
    # An ATR with interface bytes before the historical ones: TA1, TC1, TD1 announcing TC2.
    assert atr_historical_bytes(bytes.fromhex("3BD2119140" "01" "AABB" "00")[:-1]) == b"\xaa\xbb"


# --- through pcscd ----------------------------------------------------------------------------------------


@pytest.mark.pcscd
def test_get_data_uid_through_pcscd(vpcd_bridge: Serve, pcscd: str, fresh: Fresh) -> None:
    from ektp_card.apdu.pcsc import PcscTransport

    card, _ = fresh()
    vpcd_bridge(card)
    with PcscTransport.open(pcscd, timeout=5) as transport:
        assert transport.transceive(bytes.fromhex("FFCA000000")) == card.uid + b"\x90\x00"
        assert transport.transceive(bytes.fromhex("FFCA010000")) == card.ats_historical + b"\x90\x00"
        assert transport.transceive(bytes.fromhex("FFCA030000")) == b"\x6a\x81"
        assert transport.transceive(bytes.fromhex("FFCA000200")) == b"\x6b\x00"
        first = card.uid
    with PcscTransport.open(pcscd, timeout=5) as transport:
        assert transport.transceive(bytes.fromhex("FFCA000000"))[:-2] != first  # reset: new UID


@pytest.mark.pcscd
def test_genuine_card_through_pcscd(vpcd_bridge: Serve, pcscd: str, fresh: Fresh) -> None:
    card, can = fresh()
    vpcd_bridge(card)
    report = audit(PcscTarget(pcscd), can, "UID-TRACE", "SKIM-ENUM", "AUTH-REPLAY")
    for result in report.results:
        assert result.outcome is Outcome.PASS, (result.id, result.reason)
    assert report.result("UID-TRACE").figures["distinct"] == 8
    assert report.result("SKIM-ENUM").figures["readable"] == "EF.CardAccess, EF.ATR/INFO, EF.DIR"
    assert report.result("AUTH-REPLAY").figures["word"] == "6300"


@pytest.mark.pcscd
def test_static_uid_card_through_pcscd(vpcd_bridge: Serve, pcscd: str, variant: Variant) -> None:
    card, can = variant(uid=bytes.fromhex("0811AA22"))
    vpcd_bridge(card)
    result = audit(PcscTarget(pcscd), can, "UID-TRACE").result("UID-TRACE")
    assert result.outcome is Outcome.FAIL and result.figures["uids"] == " ".join(["0811AA22"] * 8)


def test_uid_tests_not_applicable_without_uid(fresh: Fresh) -> None:
    card, can = fresh()

    class NoUid(VirtualTarget):
        def uid(self, transport: Any) -> bytes | None:
            return None

    report = run_audit(NoUid(card), AuditOptions(can=can), select_tests(["UID-ACCEPT", "UID-TRACE"]))
    assert {r.outcome for r in report.results} == {Outcome.NOT_APPLICABLE}

