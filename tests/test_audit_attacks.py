"""Attack cards (ektp_card.audit.attacks) and the programmable-card behaviours they rely on."""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.serialization import load_der_private_key

from ektp_card.apdu.command import CommandApdu
from ektp_card.audit.attacks import (
    ATTACK_KINDS,
    LEAKY_ERROR_WORDS,
    Harvest,
    harvest,
    harvest_card,
    make_attack_card,
    make_clone,
    make_downgrade_clone,
    make_leaky_errors_card,
    make_relay_card,
    make_replaying_card,
    make_static_uid_card,
    make_weak_rng_card,
)
from ektp_card.crypto.aa import active_authenticate
from ektp_card.crypto.sm import SecureMessagingSession
from ektp_card.ec import BRAINPOOLP256R1
from ektp_card.errors import CardImageError, PacePasswordError
from ektp_card.lds.dg14 import Dg14
from ektp_card.lds.dg15 import Dg15
from ektp_card.lds.ektp import EKTP_AID, EKTP_APPLICATION, Com
from ektp_card.session.card import CardSession, Credentials
from ektp_card.verify.card import Verdict, VerificationReport, verify_card
from ektp_card.verify.passive import Status
from ektp_card.virtual import VirtualCard
from ektp_card.virtual.aa import AA_PRIVATE_KEY
from ektp_card.virtual.config import CardBehaviour, FailureKind, RngKind

if TYPE_CHECKING:
    from fixtures.cards import Fresh, IssuerOf

SELECT_APP = CommandApdu(0x00, 0xA4, 0x04, 0x0C, EKTP_AID)
GET_CHALLENGE = bytes.fromhex("0084000008")
Genuine = Callable[[], "tuple[VirtualCard, str]"]


@pytest.fixture(scope="module")
def genuine(fresh: Fresh) -> Genuine:
    """``genuine()``: a new copy of the genuine e-KTP (serial 1) and its CAN."""
    return lambda: fresh(1)


def statuses(report: VerificationReport) -> dict[str, Status]:
    return {c.name: c.status for c in report.checks}


def image_bytes(card: VirtualCard, tmp_path: Path, name: str = "card.img") -> bytes:
    path = tmp_path / name
    card.save(path)
    return path.read_bytes()


def app_file(card: VirtualCard, fid: int) -> bytes | None:
    ef = card.fs.application(EKTP_AID).child_ef(fid)
    return None if ef is None else bytes(ef.data)


def constant(value: bytes) -> Callable[[int], bytes]:
    """A "random" source that always gives ``value`` (a chosen challenge)."""
    return lambda _: value


def pace(card: VirtualCard, can: str) -> CardSession:
    """A fresh power-on session with PACE-CAN done."""
    card.power_on()
    session = CardSession(card)
    session.discover()
    session.authenticate(Credentials(can=can), (EKTP_APPLICATION,))
    return session


# --- harvest ----------------------------------------------------------------------------------------


def test_harvest_takes_what_the_can_gives_and_leaves_the_card_alone(tmp_path: Path, genuine: Genuine) -> None:
    card, can = genuine()
    before = image_bytes(card, tmp_path)
    h = harvest_card(card, can)
    assert image_bytes(card, tmp_path) == before
    assert list(h.files) == ["EF.CardAccess", "EF.ATR/INFO", "EF.DIR", "EF.COM", "DG1", "DG2", "DG7",
                             "DG14", "DG15", "EF.SOD"]
    assert h.refused == (3,)  # fingerprints need Terminal Authentication
    for number, data in h.data_groups.items():
        assert data == app_file(card, 0x0100 + number)
    assert h.sod == app_file(card, 0x011D)
    assert h.card_access == bytes(card.fs.mf.child_ef(0x011C).data)  # type: ignore[union-attr]
    assert h.historical_bytes == card.ats_historical
    assert h.atr is not None and h.atr[4:-1] == h.historical_bytes
    assert h.uid is not None and len(h.uid) == 4 and h.uid[0] == 0x08
    assert h.aa is not None and len(h.aa.challenge) == 8 and len(h.aa.signature) == 64
    assert can not in repr(h)


def test_harvest_over_a_transport_with_a_wrong_can(genuine: Genuine) -> None:
    card, can = genuine()
    wrong = "000000" if can != "000000" else "111111"
    with pytest.raises(PacePasswordError):
        harvest(card, wrong)


def test_harvest_without_active_authentication(genuine: Genuine) -> None:
    card, can = genuine()
    h = harvest_card(card, can, record_aa=False)
    assert h.aa is None
    with pytest.raises(ValueError, match="no Active Authentication"):
        make_replaying_card(h)


# --- copies of the readable data ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def harvested(genuine: Genuine) -> Harvest:
    card, can = genuine()
    return harvest_card(card, can)


def test_clone_copies_every_readable_byte_but_not_the_chip(
    harvested: Harvest, genuine: Genuine, issuer: IssuerOf
) -> None:
    card, can = genuine()
    clone = make_clone(harvested)
    assert clone.atr == card.atr
    assert bytes(clone.fs.mf.child_ef(0x2F01).data) == bytes(card.fs.mf.child_ef(0x2F01).data)  # type: ignore[union-attr]
    for number in (1, 2, 7, 14, 15):
        assert app_file(clone, 0x0100 + number) == app_file(card, 0x0100 + number)
    assert app_file(clone, 0x0103) == b"\x63\x00"  # DG3 was never given: an empty object
    assert app_file(clone, 0x011D) == app_file(card, 0x011D)
    # Its own keys, freshly made: none of the genuine chip's private keys.
    for name in ("ca.private", "aa.private"):
        assert clone.keys[name] != card.keys[name]
    assert "perso.key" not in clone.keys and "card.serial" not in clone.keys
    report = verify_card(clone, can, issuer().trust)
    assert report.verdict is Verdict.CLONED, report.reasons
    got = statuses(report)
    assert got["passive-authentication"] is Status.PASS
    assert got["chip-authentication"] is Status.FAIL
    assert "does not hold the matching private key" in report.check("chip-authentication").reason
    assert report.refused == (3,)


def test_clone_refuses_writes_like_the_locked_genuine_card(harvested: Harvest, genuine: Genuine) -> None:
    card, can = genuine()
    for target in (card, make_clone(harvested)):
        session = pace(target, can)
        session.iso.select_aid(EKTP_AID)
        answer = session.protocol.transmit(CommandApdu(0x00, 0xD6, 0x81, 0x00, b"X"))
        assert answer.sw == 0x6982  # UPDATE BINARY of DG1: PERSO, which neither card grants any more


def test_clone_without_active_authentication_fails_it(harvested: Harvest) -> None:
    # Active Authentication alone (no Chip Authentication first): the clone's own key signs.
    clone = make_clone(harvested)
    session = pace(clone, harvested.can)
    dg14 = Dg14.decode(harvested.data_groups[14])
    key = Dg15.decode(harvested.data_groups[15]).public_key.to_cryptography()
    info = dg14.active_authentication_info
    assert info is not None
    result = active_authenticate(session.protocol, key, signature_algorithm=info.signature_algorithm)
    assert not result.passed and len(result.signature) == 64


def test_downgrade_clone_claims_no_chip_or_active_authentication(
    harvested: Harvest, genuine: Genuine, issuer: IssuerOf
) -> None:
    card, can = genuine()
    copy = make_downgrade_clone(harvested)
    assert app_file(copy, 0x010E) is None and app_file(copy, 0x010F) is None
    com = app_file(copy, 0x011E)
    assert com is not None and Com.decode(com).tags == (0x61, 0x75, 0x63, 0x67)
    assert Com.decode(app_file(card, 0x011E) or b"").tags == (0x61, 0x75, 0x63, 0x67, 0x6E, 0x6F)
    assert app_file(copy, 0x011D) == app_file(card, 0x011D)  # EF.SOD still lists DG14 and DG15
    assert not any(name.startswith(("ca.", "aa.")) for name in copy.keys)
    report = verify_card(copy, can, issuer().trust)
    # EF.SOD decides what the card must prove: it lists DG14 and DG15, which the card does not give.
    # The data it does give is what the issuer signed, so the chip checks, not Passive
    # Authentication, catch the copy: cloned.
    assert report.verdict is Verdict.CLONED, report.reasons
    got = statuses(report)
    assert got["chip-authentication"] is Status.FAIL and got["active-authentication"] is Status.FAIL
    assert got["passive-authentication"] is Status.PASS
    assert report.check("chip-authentication").reason == "EF.SOD covers DG14 but the card did not give it"


def test_static_uid_card_keeps_one_uid(harvested: Harvest, genuine: Genuine, issuer: IssuerOf) -> None:
    card, can = genuine()
    genuine_uids = {card.power_on() and card.uid for _ in range(4)}
    assert len(genuine_uids) == 4  # 3 random bytes each time: a repeat is a 1 in 2^24 chance
    static = make_static_uid_card(harvested)
    uids = {static.power_on() and static.uid for _ in range(4)}
    assert uids == {harvested.uid}
    assert make_static_uid_card(harvested, uid=bytes.fromhex("04112233445566")).uid == bytes.fromhex(
        "04112233445566"
    )
    report = verify_card(static, can, issuer().trust)
    assert report.verdict is Verdict.CLONED, report.reasons


def test_replaying_card_answers_the_recorded_signature(
    harvested: Harvest, genuine: Genuine, issuer: IssuerOf
) -> None:
    _, can = genuine()
    replay = make_replaying_card(harvested)
    assert harvested.aa is not None
    recorded = harvested.aa
    key = Dg15.decode(harvested.data_groups[15]).public_key.to_cryptography()
    info = Dg14.decode(harvested.data_groups[14]).active_authentication_info
    assert info is not None
    # A fresh challenge: the recorded signature does not fit it.
    session = pace(replay, can)
    fresh_run = active_authenticate(session.protocol, key, signature_algorithm=info.signature_algorithm,
                                    random_bytes=constant(bytes(8)))
    assert not fresh_run.passed and fresh_run.signature == recorded.signature
    # The challenge the genuine card signed: the replay passes. Only fresh challenges stop it.
    session = pace(replay, can)
    replayed = active_authenticate(session.protocol, key, signature_algorithm=info.signature_algorithm,
                                   random_bytes=constant(recorded.challenge))
    assert replayed.passed
    assert AA_PRIVATE_KEY not in replay.keys
    replay.power_on()
    report = verify_card(replay, can, issuer().trust)
    assert report.verdict is Verdict.CLONED, report.reasons
    assert statuses(report)["active-authentication"] is Status.FAIL


# --- cards from the genuine image ---------------------------------------------------------------------

PLAIN_COMMANDS = [
    "00A4000C023F00",  # SELECT MF
    "00B09C0000",  # EF.CardAccess
    "00B0810000",  # EF.ATR/INFO
    "00B09E0000",  # EF.DIR
    "00A4040C0AD360000000454B545001",  # SELECT the e-KTP application
    "00B0810000",  # DG1: refused without PACE
    "00A4040410D360000000454B5450010102030405060708",  # no such application
]


def test_relay_card_answers_the_same_bytes_later(tmp_path: Path, genuine: Genuine, issuer: IssuerOf) -> None:
    card, can = genuine()
    before = image_bytes(card, tmp_path)
    relay = make_relay_card(card, 20)
    assert relay.behaviour == CardBehaviour(response_delay_ms=20)
    assert image_bytes(card, tmp_path) == before
    card.power_on()
    relay.power_on()
    relayed, direct = [], []
    for hex_command in PLAIN_COMMANDS:
        command = bytes.fromhex(hex_command)
        start = time.perf_counter()
        answer = relay.transceive(command)
        relayed.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert answer == card.transceive(command)
        direct.append(time.perf_counter() - start)
        assert relayed[-1] >= 0.020  # the delay is a floor: a busy machine only adds to it
    # Timed side by side, the genuine card answers the same commands well inside the relay's delay.
    assert statistics.median(direct) < statistics.median(relayed) / 2, (direct, relayed)
    # Everything the genuine chip proves, the relay passes on: only its timing gives it away.
    relay.power_on()
    assert verify_card(relay, can, issuer().trust).verdict is Verdict.GENUINE


def lcg_stream(seed: int, count: int) -> bytes:
    """The weak card's generator, written out independently: Numerical Recipes' LCG, top byte."""
    out, state = bytearray(), seed
    for _ in range(count):
        state = (1664525 * state + 1013904223) % 2**32
        out.append(state >> 24)
    return bytes(out)


def test_weak_rng_card_repeats_and_is_predictable(genuine: Genuine, issuer: IssuerOf) -> None:
    card, can = genuine()
    weak = make_weak_rng_card(card, seed=1)
    stream = lcg_stream(1, 19)
    assert stream[0] == 0x3C  # (1664525 * 1 + 1013904223) >> 24
    first = [weak.power_on() and weak.uid, weak.transceive(GET_CHALLENGE), weak.transceive(GET_CHALLENGE)]
    again = [weak.power_on() and weak.uid, weak.transceive(GET_CHALLENGE), weak.transceive(GET_CHALLENGE)]
    assert first == again  # every power cycle starts the sequence over
    assert first[0] == b"\x08" + stream[:3]
    assert first[1] == stream[3:11] + b"\x90\x00" and first[2] == stream[11:19] + b"\x90\x00"
    genuine_challenges = set()
    for _ in range(3):
        card.power_on()
        genuine_challenges.add(card.transceive(GET_CHALLENGE))
    assert len(genuine_challenges) == 3
    # Still a working card: the verifier does not test the generator.
    weak.power_on()
    assert verify_card(weak, can, issuer().trust).verdict is Verdict.GENUINE


def test_weak_rng_gives_the_active_authentication_key_away(genuine: Genuine) -> None:
    card, can = genuine()
    weak = make_weak_rng_card(card)
    key = Dg15.decode(app_file(card, 0x010F) or b"").public_key.to_cryptography()
    info = Dg14.decode(app_file(card, 0x010E) or b"").active_authentication_info
    assert info is not None
    signatures = []
    for challenge in (b"\x01" * 8, b"\x02" * 8):
        session = pace(weak, can)  # the same steps after each power-on: the same ECDSA nonce
        result = active_authenticate(session.protocol, key, signature_algorithm=info.signature_algorithm,
                                     random_bytes=constant(challenge))
        assert result.passed
        signatures.append((challenge, result.signature))
    n = BRAINPOOLP256R1.n
    (m1, sig1), (m2, sig2) = signatures
    r1, s1, r2, s2 = (int.from_bytes(x, "big") for x in (sig1[:32], sig1[32:], sig2[:32], sig2[32:]))
    assert r1 == r2  # a repeated nonce
    e1, e2 = (int.from_bytes(hashlib.sha256(m).digest(), "big") for m in (m1, m2))
    k = (e1 - e2) * pow(s1 - s2, -1, n) % n
    d = (s1 * k - e1) * pow(r1, -1, n) % n
    private = load_der_private_key(card.keys[AA_PRIVATE_KEY], None)
    assert d == private.private_numbers().private_value  # type: ignore[union-attr]


def probe(card: VirtualCard, can: str, kind: str) -> int:
    """The status word ``card`` answers to one failure of ``kind``, in a fresh PACE session."""
    wrong = "000000" if can != "000000" else "111111"
    if kind == "wrong password":
        try:
            pace(card, wrong)
        except PacePasswordError as exc:
            return exc.sw
        raise AssertionError("PACE with a wrong CAN succeeded")
    session = pace(card, can)
    sm = session.protocol.secure_messaging
    assert isinstance(sm, SecureMessagingSession)
    if kind == "wrong MAC":
        protected = sm.wrap(SELECT_APP)
        command = protected.with_(data=protected.data[:-1] + bytes((protected.data[-1] ^ 1,)))
    elif kind == "wrong key":
        other = SecureMessagingSession(sm.cipher, bytes(range(16)), bytes(range(16, 32)), sm.ssc)
        command = other.wrap(SELECT_APP)
    else:  # plain command while secure messaging runs
        command = SELECT_APP
    answer = card.transceive(command.encode())
    assert len(answer) == 2  # refused, unprotected
    return int.from_bytes(answer, "big")


FAILURES = ("wrong MAC", "wrong key", "plain during SM", "wrong password")


def test_genuine_error_words_are_uniform_and_the_leaky_cards_are_not(
    genuine: Genuine, issuer: IssuerOf
) -> None:
    card, can = genuine()
    leaky = make_leaky_errors_card(card)
    assert leaky.behaviour.error_words == dict(LEAKY_ERROR_WORDS)
    got = {kind: probe(card, can, kind) for kind in FAILURES}
    assert got == {"wrong MAC": 0x6988, "wrong key": 0x6988, "plain during SM": 0x6988,
                   "wrong password": 0x6300}
    leaked = {kind: probe(leaky, can, kind) for kind in FAILURES if kind != "wrong key"}
    # A command under the wrong key decrypts to garbage: bad padding, except 1 time in ~256.
    leaked["wrong key"] = next(
        (sw for sw in (probe(leaky, can, "wrong key") for _ in range(4)) if sw != 0x6988), 0x6988
    )
    assert leaked == {"wrong MAC": 0x6988, "wrong key": 0x6A80, "plain during SM": 0x6982,
                      "wrong password": 0x6300}
    other = make_leaky_errors_card(card, {FailureKind.SM_MAC: 0x6982, FailureKind.PACE_MISMATCH: 0x63C0})
    assert probe(other, can, "wrong MAC") == 0x6982 and probe(other, can, "wrong password") == 0x63C0
    leaky.power_on()
    assert verify_card(leaky, can, issuer().trust).verdict is Verdict.GENUINE


# --- the catalogue ------------------------------------------------------------------------------------


def test_attack_kinds_and_make_attack_card(tmp_path: Path, genuine: Genuine) -> None:
    assert list(ATTACK_KINDS) == ["clone", "downgrade-clone", "static-uid", "replay", "relay", "weak-rng",
                                  "leaky-errors", "leaky-reference"]
    assert [k.caught_by for k in ATTACK_KINDS.values()] == [
        "CLONE-COPY", "CLONE-DOWNGRADE", "UID-TRACE", "AA-REPLAY", "RELAY-LATENCY", "RNG-QUALITY",
        "TRACE-ERRORS", "BIO-MOC"]
    assert [k.name for k in ATTACK_KINDS.values() if not k.from_harvest] == [
        "relay", "weak-rng", "leaky-errors", "leaky-reference"]
    card, can = genuine()
    path = tmp_path / "genuine.img"
    card.save(path)
    before = path.read_bytes()
    relay = make_attack_card("relay", path, can, delay_ms=7)
    assert relay.behaviour.response_delay_ms == 7
    weak = make_attack_card("weak-rng", path, can, seed=5)
    assert weak.behaviour == CardBehaviour(rng=RngKind.LCG, rng_seed=5)
    assert make_attack_card("replay", path, can).behaviour.aa_signature is not None
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="unknown attack card 'skim'; known: clone, downgrade-clone"):
        make_attack_card("skim", card, can)


@pytest.mark.parametrize("kind", list(ATTACK_KINDS))
def test_attack_cards_round_trip_through_images(tmp_path: Path, kind: str, genuine: Genuine) -> None:
    card, can = genuine()
    attack = make_attack_card(kind, card, can, delay_ms=3)
    path = tmp_path / f"{kind}.img"
    attack.save(path)
    loaded = VirtualCard.load(path)
    assert loaded.config == attack.config
    assert loaded.keys == attack.keys
    assert image_bytes(loaded, tmp_path, "again.img") == path.read_bytes()
    doc = json.loads(path.read_text())
    assert doc["version"] == 2 and set(doc["config"]["behaviour"]) == {
        "rng", "rng_seed", "response_delay_ms", "error_words", "aa_signature"}
    if kind == "static-uid":
        assert loaded.uid == attack.uid == attack.config.uid
    if kind == "weak-rng":
        attack.power_on()
        loaded.power_on()
        assert loaded.uid == attack.uid
        assert loaded.transceive(GET_CHALLENGE) == attack.transceive(GET_CHALLENGE)


def test_behaviour_section_in_the_image(tmp_path: Path, genuine: Genuine) -> None:
    card, _ = genuine()
    leaky = make_leaky_errors_card(card)
    path = tmp_path / "leaky.img"
    leaky.save(path)
    behaviour = json.loads(path.read_text())["config"]["behaviour"]
    assert behaviour == {"rng": "system", "rng_seed": 0, "response_delay_ms": 0,
                         "error_words": {"sm-padding": "6A80", "sm-plain": "6982"}, "aa_signature": None}


def test_version_1_images_still_load_as_genuine_cards(
    tmp_path: Path, genuine: Genuine, issuer: IssuerOf
) -> None:
    card, can = genuine()
    path = tmp_path / "card.img"
    card.save(path)
    doc = json.loads(path.read_text())
    del doc["config"]["behaviour"]
    doc["version"] = 1
    path.write_text(json.dumps(doc))
    old = VirtualCard.load(path)
    assert old.behaviour == CardBehaviour() and old.behaviour.genuine
    assert old.keys == card.keys
    assert verify_card(old, can, issuer().trust).verdict is Verdict.GENUINE
    old.save(path)
    assert json.loads(path.read_text())["version"] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.pop("rng"), "missing field 'rng'"),
        (lambda b: b.update(rng="dice"), "unknown random generator kind"),
        (lambda b: b.update(error_words={"sm-typo": "6A80"}), "unknown failure kind 'sm-typo'"),
        (lambda b: b.update(error_words={"sm-plain": "69"}), "for 'sm-plain' is not four hex digits"),
        (lambda b: b.update(error_words={"sm-plain": "9000"}), "9000 is not an error status word"),
        (lambda b: b.update(response_delay_ms=-1), "a response delay is 0..60000 ms"),
        (lambda b: b.update(aa_signature="***"), "the stored AA signature is not base64"),
    ],
)
def test_broken_behaviour_sections(tmp_path: Path, change: object, message: str) -> None:
    path = tmp_path / "card.img"
    VirtualCard.create().save(path)
    doc = json.loads(path.read_text())
    change(doc["config"]["behaviour"])  # type: ignore[operator]
    path.write_text(json.dumps(doc))
    with pytest.raises(CardImageError, match="is corrupt: ") as info:
        VirtualCard.load(path)
    assert message in str(info.value)


def test_behaviour_checks_its_values() -> None:
    with pytest.raises(ValueError, match="RNG seed"):
        CardBehaviour(rng_seed=-1)
    with pytest.raises(ValueError, match="6100 is not an error status word"):
        CardBehaviour(error_words={FailureKind.SM_MAC: 0x6100})
    with pytest.raises(ValueError, match="cannot be empty"):
        CardBehaviour(aa_signature=b"")
    a = CardBehaviour(error_words={FailureKind.SM_PLAIN: 0x6982, FailureKind.SM_MAC: 0x6988})
    b = CardBehaviour(error_words={FailureKind.SM_MAC: 0x6988, FailureKind.SM_PLAIN: 0x6982})
    assert a == b and hash(a) == hash(b) and not a.genuine
