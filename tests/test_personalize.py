"""Personalisation: blank card -> authenticated perso session -> files, keys on the chip, EF.SOD, CAN,
lock -> read back like a clerk. Card side and desk side, in-process, with SoftHSM2 and through pcscd;
every APDU of the sequence cut in turn."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers.algorithms import AES
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import Tlv
from ektp_card.crypto.kdf import Cipher
from ektp_card.crypto.perso import (
    InitializeUpdateAnswer,
    derive,
    diversify,
    session_keys,
)
from ektp_card.errors import (
    CardLockedError,
    CardRemovedError,
    PersonalisationError,
    PersonalisationRefusedError,
    PkiError,
    RecordError,
)
from ektp_card.lds.ektp import AFTER_PACE_TA, ALWAYS, EKTP_AID, PERSO, record_data_groups
from ektp_card.lds.record import CitizenRecord
from ektp_card.lds.sod import unwrap
from ektp_card.lds.synthetic import synthetic_citizen
from ektp_card.personalize import (
    Algorithms,
    Biometrics,
    CardPlan,
    DocumentSigner,
    PersoResult,
    PersoSession,
    personalize,
    plan_from_data_groups,
    plan_from_record,
    read_back,
)
from ektp_card.personalize.protocol import fcp_template, protected_chunk
from ektp_card.pki.certs import create_csca, issue_document_signer
from ektp_card.pki.crl import build_crl
from ektp_card.pki.issuer import IssuerPki
from ektp_card.pki.signer import KeySpec, PrivateKeySigner
from ektp_card.pki.trust import TrustStore
from ektp_card.session.card import CardSession, Credentials
from ektp_card.virtual import ElementaryFile, LifeCycle, VirtualCard
from ektp_card.virtual.fcp import Fcp
from ektp_card.virtual.perso import (
    BASE_KEYS,
    MAX_TRIES,
    PERSO_KEY,
    PERSO_TRIES,
    PersoState,
    blank_card,
    personalisation_state,
)

if TYPE_CHECKING:
    from fixtures.cards import CutTransport
    from fixtures.tools import OpenSsl, SoftHsmToken

MASTER = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
MASTER_256 = bytes(range(0x60, 0x80))
SERIAL = bytes.fromhex("0011223344556677")
NOW = dt.datetime.now(dt.UTC)


# --- fixtures ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issuer:
    csca_signer: PrivateKeySigner
    csca: x509.Certificate
    ds: DocumentSigner
    trust: TrustStore


@cache
def issuer() -> Issuer:
    """A CSCA and a document signer valid now, and a current CRL."""
    csca_signer = PrivateKeySigner(KeySpec.parse("brainpoolP256r1").generate())
    csca = create_csca(
        csca_signer, country="ID", common_name="CSCA Perso Test", not_before=NOW - dt.timedelta(days=2)
    )
    ds_signer = PrivateKeySigner(KeySpec.parse("brainpoolP256r1").generate())
    ds = issue_document_signer(
        csca_signer,
        csca,
        ds_signer.public_key,
        common_name="DS Perso Test",
        not_before=NOW - dt.timedelta(days=1),
    )
    crl = build_crl(csca_signer, csca, [], crl_number=1, this_update=NOW - dt.timedelta(hours=1))
    return Issuer(csca_signer, csca, DocumentSigner(ds_signer, ds), TrustStore((csca,), (crl,)))


@cache
def record(seed: int = 3, small: bool = True) -> CitizenRecord:
    """A synthetic record; ``small`` keeps the photo tiny so that short-APDU runs stay short."""
    rng = random.Random(seed)  # synthetic test data
    return synthetic_citizen(rng, photo_size=(24, 32) if small else (120, 160)).record


@cache
def plan(seed: int = 3, small: bool = True, biometrics: Biometrics = Biometrics.DG3) -> CardPlan:
    # DG3 by default: these tests check the card that profile makes file by file.
    return plan_from_record(record(seed, small), biometrics=biometrics)


class Recorder:
    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        self.commands: list[bytes] = []

    def transceive(self, command: bytes) -> bytes:
        self.commands.append(command)
        return self.card.transceive(command)


def run(card: Any, the_plan: CardPlan | None = None, *, verify: bool = True, **kwargs: Any) -> PersoResult:
    chosen = the_plan or plan()
    trust = issuer().trust if verify else None
    return personalize(
        card, chosen, kwargs.pop("master", MASTER), kwargs.pop("signer", issuer().ds), trust=trust, **kwargs
    )


def send(card: VirtualCard, apdu: str) -> tuple[bytes, int]:
    raw = card.transceive(bytes.fromhex(apdu.replace(" ", "")))
    return raw[:-2], int.from_bytes(raw[-2:], "big")


def sw_of(card: VirtualCard, apdu: str) -> int:
    return send(card, apdu)[1]


def snapshot(card: VirtualCard) -> tuple[object, ...]:
    files = tuple((f.path, f.lcs, str(f.access.read), bytes(getattr(f, "data", b""))) for f in card.fs.walk())
    return files, dict(card.keys)


# --- the key scheme ----------------------------------------------------------------------------------------


def test_kdf_is_sp800_108_counter_mode_with_the_scp03_layout() -> None:
    """Cross-checked with cryptography's own NIST SP 800-108 implementation (counter after the
    15-byte label, separator and L; the context after it)."""
    key, context = MASTER_256, bytes(range(32))
    for constant, length in ((0x04, 16), (0x06, 32), (0x50, 24), (0x00, 16)):
        fixed = bytes(11) + bytes((constant,)) + b"\x00" + (8 * length).to_bytes(2, "big") + context
        reference = KBKDFCMAC(
            AES,
            Mode.CounterMode,
            length,
            1,
            None,
            CounterLocation.MiddleFixed,
            None,
            None,
            fixed,
            break_location=15,
        )
        assert derive(key, constant, context, length) == reference.derive(key)
    # One block by hand: CMAC(K, 00*11 || 04 || 00 || 0080 || 01 || context).
    mac = cmac.CMAC(AES(MASTER))
    mac.update(bytes(11) + b"\x04\x00\x00\x80\x01" + context)
    assert derive(MASTER, 0x04, context, 16) == mac.finalize()


def test_diversified_keys_differ_per_card_and_keep_the_master_length() -> None:
    k1, k2 = diversify(MASTER, SERIAL), diversify(MASTER, bytes(8))
    assert len(k1) == 16 and k1 != k2 and k1 != MASTER
    assert k1 == derive(MASTER, 0x50, SERIAL, 16)
    assert len(diversify(MASTER_256, SERIAL)) == 32
    with pytest.raises(ValueError, match="8 bytes"):
        diversify(MASTER, b"\x01")


# --- the card side, byte by byte ---------------------------------------------------------------------------


def test_blank_card_holds_only_the_diversified_key() -> None:
    card = blank_card(MASTER, SERIAL)
    assert card.life_cycle is LifeCycle.CREATION
    assert card.keys == {
        "card.serial": SERIAL,
        PERSO_KEY: diversify(MASTER, SERIAL),
        PERSO_TRIES: bytes((MAX_TRIES,)),
    }
    assert MASTER not in card.keys.values()
    assert personalisation_state(card) is PersoState.BLANK
    assert [f.fid for f in card.fs.mf.children] == [0x2F01]


def test_initialize_update_and_external_authenticate_exact_bytes() -> None:
    card = blank_card(MASTER, SERIAL)
    host = bytes(range(16))
    data, sw = send(card, "8050000010" + host.hex() + "00")
    assert sw == SW.OK and len(data) == 42
    answer = InitializeUpdateAnswer.decode(data)
    assert data[:10] == SERIAL + b"\x10\x00"  # serial, AES-128, blank
    keys = session_keys(diversify(MASTER, SERIAL), host, answer.card_challenge)
    assert answer.card_cryptogram == keys.card_cryptogram
    assert card.keys[PERSO_TRIES] == bytes((MAX_TRIES - 1,))  # counted down before the answer
    assert sw_of(card, "8082000010" + keys.host_cryptogram.hex()) == SW.OK
    assert card.keys[PERSO_TRIES] == bytes((MAX_TRIES,))
    assert card.life_cycle is LifeCycle.INITIALISATION
    assert card.security.granted == {"PERSO"} and card.security.channel is not None
    # From now on only protected commands: a plain one ends the session (ICAO 9303-11 9.8).
    assert sw_of(card, "00A4000C") == SW.SM_DATA_OBJECTS_INCORRECT
    assert card.security.granted == set()


def test_wrong_host_cryptogram_counts_down_and_blocks() -> None:
    card = blank_card(MASTER, SERIAL)
    assert sw_of(card, "8082000010" + "00" * 16) == SW.CONDITIONS_NOT_SATISFIED  # no INITIALIZE UPDATE
    for left in range(MAX_TRIES - 1, -1, -1):
        assert send(card, "8050000010" + "11" * 16 + "00")[1] == SW.OK
        assert sw_of(card, "8082000010" + "22" * 16) == 0x63C0 | left
        assert card.security.granted == set()
    assert sw_of(card, "8050000010" + "11" * 16 + "00") == SW.AUTH_METHOD_BLOCKED
    with pytest.raises(PersonalisationError, match="blocked"):
        run(card, verify=False)


def test_perso_commands_need_the_perso_session() -> None:
    card = blank_card(MASTER, SERIAL)
    fcp = fcp_template(0x0101, size=4, sfi=1, read=ALWAYS, update=PERSO, admin=PERSO)
    refused = {
        "00E00000" + f"{len(fcp):02X}" + fcp.hex(): SW.SECURITY_STATUS_NOT_SATISFIED,  # MF admin: PERSO
        "0046000106" + "8001" + "00" + "84010D": SW.SECURITY_STATUS_NOT_SATISFIED,
        "80DA000206313233343536": SW.SECURITY_STATUS_NOT_SATISFIED,
        "80E40000": SW.SECURITY_STATUS_NOT_SATISFIED,
        "80F08005": SW.SECURITY_STATUS_NOT_SATISFIED,
        "00440000": SW.SECURITY_STATUS_NOT_SATISFIED,  # ACTIVATE FILE on the MF
    }
    for apdu, sw in refused.items():
        assert sw_of(card, apdu) == sw, apdu
    assert personalisation_state(card) is PersoState.BLANK and card.life_cycle is LifeCycle.CREATION


def test_fcp_template_is_what_the_card_reads() -> None:
    raw = fcp_template(0x0103, size=678, sfi=3, read=AFTER_PACE_TA, update=PERSO, admin=PERSO)
    # 80 size, 82 transparent EF, 83 FID, 88 SFI 3 (bits 8-4), 86 { 80 "PACE+TA", 81/82 "PERSO" }
    assert raw.hex().upper() == (
        "6227" "800202A6" "820101" "83020103" "880118"
        "8617" "8007504143452B5441" "8105504552534F" "8205504552534F"
    )  # fmt: skip
    fcp = Fcp.decode(raw)
    assert fcp.security is not None
    assert (fcp.fid, fcp.size, fcp.sfi, str(fcp.security.read), str(fcp.security.admin)) == (
        0x0103, 678, 3, "PACE+TA", "PERSO"
    )  # fmt: skip
    df = Fcp.decode(fcp_template(0xDF01, aid=EKTP_AID, read=ALWAYS, update=PERSO, admin=PERSO))
    assert df.df and df.df_name == EKTP_AID


def test_protected_chunk_fills_the_card_buffer() -> None:
    # 300-byte data field: DO87 = 87 82 01 11 01 + 272 cryptogram bytes, DO8E 10: 287 bytes.
    assert protected_chunk(Cipher.AES128, 300) == 271
    assert protected_chunk(Cipher.AES128, 65535) == 65519  # 87 82 FFF1 01 ... + DO8E: 65535
    assert protected_chunk(Cipher.AES256, 255) == 239


# --- the whole personalisation ----------------------------------------------------------------------------


def _expected_apdus(card: VirtualCard, chunk: int | None) -> int:
    """SELECT MF, READ BINARY EF.ATR/INFO, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, GET DATA (free
    memory), CREATE FILE of the DF, two key pairs, PUT DATA, LOCK, and per file CREATE FILE and its
    UPDATE BINARY commands."""
    app = card.fs.application(EKTP_AID)
    files = [f for f in (*card.fs.mf.children, *app.children) if isinstance(f, ElementaryFile)]
    sizes = [f.size for f in files if f.fid != 0x2F01]
    writes = sum(1 + (1 if chunk is None else math.ceil(size / chunk)) for size in sizes)
    return 4 + 1 + 1 + 2 + 2 + writes


@pytest.mark.parametrize("extended", [True, False], ids=["extended", "short"])
def test_personalise_verify_and_inspect_the_card(extended: bool, tmp_path: Path, openssl: OpenSsl) -> None:
    card = blank_card(MASTER, SERIAL, extended_length=extended)
    recorder = Recorder(card)
    the_plan = plan(3, small=False)  # a 120 x 160 photo: DG2 takes several short commands
    result = run(recorder, the_plan)
    app = card.fs.application(EKTP_AID)
    sod = bytes(app.child_ef(0x011D).data)  # type: ignore[union-attr]
    assert result.apdus == _expected_apdus(card, None if extended else 223)
    # The read back comes after: plain SELECT MF with FCP, then PACE.
    assert recorder.commands[result.apdus][:5] == bytes.fromhex("00A4000402")
    assert result.card_serial == "0011223344556677"
    assert result.can == the_plan.can and len(result.can) == 6 and result.can not in repr(result)
    assert not result.restarted
    assert result.verification is not None and result.verification.ok, result.verification.summary()
    assert [n for n, _ in result.data_group_hashes] == [1, 2, 3, 7, 14, 15]
    assert [name for name, _ in result.timings] == [
        "validate",
        "authenticate",
        "capacity",
        "write",
        "keys",
        "sign",
        "lock",
        "verify",
    ]
    # The card itself: locked, the perso key gone, every profile file with its conditions.
    assert personalisation_state(card) is PersoState.LOCKED
    assert PERSO_KEY not in card.keys and "pace.can" in card.keys and "ca.private" in card.keys
    assert card.keys["pace.can"] == the_plan.can.encode()
    assert {f.lcs for f in card.fs.walk()} == {LifeCycle.OPERATIONAL_ACTIVATED}
    conditions = {f.fid: (f.sfi, str(f.access.read), str(f.access.update)) for f in app.children}
    assert conditions[0x0103] == (3, "PACE+TA", "PERSO")
    assert conditions[0x0101] == (1, "PACE", "PERSO")
    assert set(conditions) == {0x011E, 0x0101, 0x0102, 0x0103, 0x0107, 0x010E, 0x010F, 0x011D}
    for number, content in the_plan.data_groups.items():
        assert bytes(app.child_ef(0x0100 + number).data) == content  # type: ignore[union-attr]
    # OpenSSL accepts the card's EF.SOD against the CSCA.
    der, csca = tmp_path / "sod.der", tmp_path / "csca.pem"
    der.write_bytes(unwrap(sod))
    csca.write_bytes(issuer().csca.public_bytes(Encoding.PEM))
    r = openssl("cms", "-verify", "-inform", "DER", "-in", der, "-CAfile", csca, "-out", tmp_path / "lso")
    assert r.returncode == 0 and "Verification successful" in r.stderr, r.stderr


def test_extended_length_with_a_small_card_buffer_writes_in_full_buffers() -> None:
    card = blank_card(MASTER, SERIAL, max_command_data=300)
    recorder = Recorder(card)
    result = run(recorder)
    updates = [c for c in recorder.commands if c[1] == 0xD6]
    # Protected UPDATE BINARY commands fill the 300-byte data field as far as AES blocks allow:
    # header 4, Lc 3, DO87 277 + DO8E 10, Le 2.
    assert max(len(c) for c in updates) == 4 + 3 + 287 + 2
    assert result.apdus == _expected_apdus(card, 271)


def test_aes256_master_key_and_secp256r1_keys() -> None:
    algorithms = Algorithms(ca_parameter_id=12, aa_parameter_id=12)
    the_plan = plan_from_record(record(), algorithms=algorithms, biometrics=Biometrics.DG3)
    card = blank_card(MASTER_256, SERIAL)
    result = run(card, the_plan, master=MASTER_256)
    assert result.verification is not None and result.verification.ok
    with pytest.raises(PersonalisationError, match="AES-256"):
        run(blank_card(MASTER_256, SERIAL), master=MASTER)


def test_large_files_are_written_past_offset_32767_with_the_odd_ins() -> None:
    card = blank_card(MASTER, SERIAL, extended_length=False)
    session = PersoSession(Recorder(card))
    session.open()
    session.authenticate(MASTER)
    data = bytes(i * 7 % 251 for i in range(40000))
    session.create_ef(0x0105, len(data), 5, read=ALWAYS, update=PERSO, admin=PERSO)
    commands = session.write(data)
    # 147 x 223 bytes reach offset 32781 > 32767; then D7 pieces of 215 bytes.
    assert commands == 147 + math.ceil((40000 - 147 * 223) / 215)
    assert bytes(card.fs.mf.child_ef(0x0105).data) == data  # type: ignore[union-attr]


# --- the lock ----------------------------------------------------------------------------------------------


def _assert_refuses_everything(card: VirtualCard) -> None:
    card.power_on()  # a fresh session, at the MF
    fcp = fcp_template(0x0105, size=4, sfi=5, read="ALWAYS", update="ALWAYS", admin="ALWAYS")
    select_app = "00A4040C0A" + EKTP_AID.hex()
    refused = {
        "00E00000" + f"{len(fcp):02X}" + fcp.hex(): SW.SECURITY_STATUS_NOT_SATISFIED,
        "0046000106" + "8001" + "00" + "84010D": SW.CONDITIONS_NOT_SATISFIED,
        "0046000206" + "8001" + "00" + "84010D": SW.CONDITIONS_NOT_SATISFIED,
        "80DA000206313233343536": SW.CONDITIONS_NOT_SATISFIED,
        "80E40000": SW.CONDITIONS_NOT_SATISFIED,
        "80F08005": SW.CONDITIONS_NOT_SATISFIED,
        "8050000010" + "00" * 16 + "00": SW.CONDITIONS_NOT_SATISFIED,
        "8082000010" + "00" * 16: SW.CONDITIONS_NOT_SATISFIED,
        "00440000": SW.SECURITY_STATUS_NOT_SATISFIED,
        "00040000": SW.SECURITY_STATUS_NOT_SATISFIED,
        "00FE0000": SW.SECURITY_STATUS_NOT_SATISFIED,
        "00D69C0001FF": SW.SECURITY_STATUS_NOT_SATISFIED,  # EF.CardAccess by SFI
    }
    before = snapshot(card)
    for apdu, sw in refused.items():
        assert sw_of(card, apdu) == sw, apdu
    assert sw_of(card, select_app) == SW.OK
    for sfi in (1, 2, 3, 7, 14, 15, 29, 30):
        assert sw_of(card, f"00D6{0x80 | sfi:02X}000100") == SW.SECURITY_STATUS_NOT_SATISFIED
    assert snapshot(card) == before


def test_a_locked_card_refuses_every_write_and_key_command_forever(tmp_path: Path) -> None:
    card = blank_card(MASTER, SERIAL)
    run(card, verify=False)
    _assert_refuses_everything(card)
    # ... also inside a PACE-CAN session ...
    access = CardSession(card)
    access.discover()
    access.authenticate(Credentials(can=plan().can))
    protocol = access.protocol
    protocol.send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, EKTP_AID))
    assert (
        protocol.transmit(CommandApdu(0x00, 0xD6, 0x81, 0x00, b"\x00")).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    )
    generate = Tlv(0x80, b"\x00").encode() + Tlv(0x84, b"\x0d").encode()
    assert (
        protocol.transmit(CommandApdu(0x00, 0x46, 0x00, 0x01, generate, le=256)).sw
        == SW.CONDITIONS_NOT_SATISFIED
    )
    # ... and to a desk holding the master key ...
    card.power_on()
    with pytest.raises(CardLockedError, match="already personalised and locked"):
        run(card, verify=False)
    # ... across power cycles and a saved and reloaded image.
    card.save(tmp_path / "card.json")
    again = VirtualCard.load(tmp_path / "card.json")
    assert PERSO_KEY not in again.keys and personalisation_state(again) is PersoState.LOCKED
    _assert_refuses_everything(again)
    again.power_on()
    assert read_back(again, plan().can, issuer().trust).ok


def test_wrong_master_key_leaves_the_card_untouched() -> None:
    card = blank_card(MASTER, SERIAL)
    recorder = Recorder(card)
    before = snapshot(card)
    with pytest.raises(PersonalisationError, match="did not prove its personalisation key"):
        run(recorder, master=bytes(16))
    # SELECT MF, EF.ATR/INFO, INITIALIZE UPDATE: EXTERNAL AUTHENTICATE is never sent.
    assert [c[1] for c in recorder.commands] == [0xA4, 0xB0, 0x50]
    files, keys = snapshot(card)
    assert files == before[0] and keys == {**before[1], PERSO_TRIES: bytes((MAX_TRIES - 1,))}  # type: ignore[dict-item]
    card.power_on()
    assert run(card).verification is not None  # the right key still works, and gives the try back


def test_not_a_blank_card() -> None:
    with pytest.raises(PersonalisationError, match="no personalisation key"):
        run(VirtualCard.create(), verify=False)


class SpoiledCryptogram:
    """The desk's EXTERNAL AUTHENTICATE with its cryptogram altered on the way to the card."""

    def __init__(self, card: VirtualCard) -> None:
        self.card = card

    def transceive(self, command: bytes) -> bytes:
        if command[:2] == bytes((0x80, 0x82)):
            command = command[:-1] + bytes((command[-1] ^ 0x01,))
        return self.card.transceive(command)


def test_refusals_name_the_command_and_status_word() -> None:
    def refusal(transport: Any, *, session: bool = False) -> PersonalisationRefusedError:
        perso = PersoSession(transport)
        with pytest.raises(PersonalisationRefusedError) as info:
            perso.open()
            perso.authenticate(MASTER)
            if session:
                for _ in range(2):
                    perso.create_ef(0x0105, 4, 5, read="ALWAYS", update="PERSO", admin="PERSO")
        assert "\n" not in str(info.value)
        return info.value

    not_blank = refusal(VirtualCard.create())
    assert (not_blank.command, not_blank.sw) == ("INITIALIZE UPDATE", SW.REFERENCED_DATA_NOT_FOUND)
    assert "no personalisation key" in str(not_blank)

    card = blank_card(MASTER, SERIAL)
    card.keys[PERSO_TRIES] = b"\x00"
    blocked = refusal(card)
    assert (blocked.command, blocked.sw) == ("INITIALIZE UPDATE", SW.AUTH_METHOD_BLOCKED)
    assert "blocked" in str(blocked)

    card = blank_card(MASTER, SERIAL)
    wrong = refusal(SpoiledCryptogram(card))
    left = MAX_TRIES - 1
    assert (wrong.command, wrong.sw) == ("EXTERNAL AUTHENTICATE", SW.counter(left))
    assert str(wrong) == (
        f"the card refused EXTERNAL AUTHENTICATE: card returned {SW.counter(left):04X}: "
        f"verification failed, {left} tries left"
    )
    assert MASTER.hex() not in str(wrong).lower()

    card = blank_card(MASTER, SERIAL)
    exists = refusal(card, session=True)
    assert (exists.command, exists.sw) == ("CREATE FILE 0105", SW.FILE_EXISTS)

    card = blank_card(MASTER, SERIAL)
    run(card, verify=False)
    card.power_on()
    locked = refusal(card)
    assert isinstance(locked, CardLockedError)
    assert (locked.command, locked.sw) == ("INITIALIZE UPDATE", SW.CONDITIONS_NOT_SATISFIED)


# --- checked before the first command -------------------------------------------------------------------


class Counting:
    def __init__(self, card: VirtualCard) -> None:
        self.card, self.count = card, 0

    def transceive(self, command: bytes) -> bytes:
        self.count += 1
        return self.card.transceive(command)


def _untouched(make: Callable[[Counting], object], error: type[Exception], match: str) -> None:
    card = blank_card(MASTER, SERIAL)
    counting = Counting(card)
    before = snapshot(card)
    with pytest.raises(error, match=match) as exc:
        make(counting)
    assert counting.count == 0 and snapshot(card) == before
    assert "\n" not in str(exc.value)


def test_document_signer_problems_stop_before_the_first_command() -> None:
    iss = issuer()
    other = PrivateKeySigner(KeySpec.parse("brainpoolP256r1").generate())
    old_csca = create_csca(
        iss.csca_signer, country="ID", common_name="Old CSCA", not_before=NOW - dt.timedelta(days=300)
    )
    old = issue_document_signer(
        iss.csca_signer,
        old_csca,
        other.public_key,
        common_name="DS Old",
        not_before=NOW - dt.timedelta(days=200),
        key_usage_days=90,
    )
    stranger_csca = create_csca(
        other, country="ID", common_name="Another CSCA", not_before=NOW - dt.timedelta(days=1)
    )
    stranger = issue_document_signer(
        other,
        stranger_csca,
        other.public_key,
        common_name="DS Stranger",
        not_before=NOW - dt.timedelta(hours=1),
    )
    cases = [
        (DocumentSigner(other, iss.ds.certificate), "does not belong"),
        (DocumentSigner(other, old), "usage period is over"),
        (DocumentSigner(other, stranger), "not issued by a CSCA of the trust store"),
        (DocumentSigner(iss.csca_signer, iss.csca), "not for digital signatures"),
    ]
    for signer, match in cases:
        _untouched(lambda t, s=signer: run(t, signer=s), PersonalisationError, match)  # type: ignore[misc]
    _untouched(lambda t: run(t, master=b"short"), PersonalisationError, "AES-128 or AES-256")


def test_key_file_signer_and_wrong_passphrase(tmp_path: Path) -> None:
    pki = IssuerPki.create(
        tmp_path / "pki",
        b"csca-pass",
        spec=KeySpec.parse("brainpoolP256r1"),
        country="ID",
        common_name="CSCA Key Files",
    )
    pki.issue_document_signer(b"csca-pass", b"ds-pass", common_name="DS Key Files")
    crl = pki.publish_crl(b"csca-pass")
    trust = TrustStore((pki.csca,), (crl,))

    def source(passphrase: bytes) -> Callable[[], DocumentSigner]:
        return lambda: DocumentSigner(*pki.document_signer(None, passphrase))

    _untouched(
        lambda t: personalize(t, plan(), MASTER, source(b"wrong"), trust=trust), PkiError, "wrong passphrase"
    )
    card = blank_card(MASTER, SERIAL)
    result = personalize(card, plan(), MASTER, source(b"ds-pass"), trust=trust)
    assert result.verification is not None and result.verification.ok


def test_bad_records_and_data_groups_stop_before_anything() -> None:
    good = record()
    bad_nik = replace(good, personal=replace(good.personal, nik="0000000000000000"))
    with pytest.raises(RecordError) as exc:
        plan_from_record(bad_nik)
    assert "nik.province" in exc.value.rules
    groups = record_data_groups(good)
    with pytest.raises(PersonalisationError, match="DG2 is not usable"):
        plan_from_data_groups({**groups, 2: groups[2][:-10]})
    with pytest.raises(PersonalisationError, match="given: DG1, DG2, DG3"):
        plan_from_data_groups({n: groups[n] for n in (1, 2, 3)})
    with pytest.raises(PersonalisationError, match="appears in the NIK"):
        plan_from_data_groups(groups, can=good.nik[3:9])
    with pytest.raises(PersonalisationError, match="6 digits"):
        plan_from_data_groups(groups, can="12345")
    same = plan_from_data_groups(groups, can="000000" if "000000" not in good.nik else "999999",
                                 biometrics=Biometrics.DG3)
    assert same.data_groups == plan().data_groups and same.nik == good.nik
    assert same.can not in repr(same)


# --- interruption ------------------------------------------------------------------------------------------


def _sequence_length(card_plan: CardPlan, **create: Any) -> int:
    card = blank_card(MASTER, SERIAL, **create)
    counting = Counting(card)
    run(counting, card_plan, verify=False)
    return counting.count


@pytest.mark.parametrize("biometrics", [Biometrics.DG3, Biometrics.ON_CARD], ids=["dg3", "on-card"])
@pytest.mark.parametrize("extended", [True, False], ids=["extended", "short"])
def test_interruption_at_every_apdu(extended: bool, biometrics: Biometrics,
                                    cut_transport: type[CutTransport]) -> None:
    """Cut before and after every command; the card is either locked and verifies, or not locked,
    says it is incomplete (once anything was written), and a fresh run personalises it. On-card: the
    same number of files, EF.BIOREF in place of DG3."""
    the_plan = plan(biometrics=biometrics)
    # The sequence length varies by a command now and then (keys generated on the card change the
    # size of EF.SOD's signature), so each run is cut at its own commands until one runs through.
    assert 25 <= _sequence_length(the_plan, extended_length=extended) <= 70
    outcomes: dict[PersoState, int] = {}
    cuts = 0
    for cut in itertools.count():
        for after in (False, True):
            card = blank_card(MASTER, SERIAL, extended_length=extended)
            cutting = cut_transport(card, cut, after=after)
            try:
                run(cutting, the_plan, verify=False)
            except CardRemovedError:
                pass
            else:
                assert cut >= 25  # the sequence ended before the cut (run lengths vary by one)
                break
            cuts += 1
            card.power_on()
            state = personalisation_state(card)
            outcomes[state] = outcomes.get(state, 0) + 1
            if state is PersoState.LOCKED:
                # Only LOCK itself (proprietary CLA, INS F0), carried out before the answer was lost.
                assert after and cutting.cut_command[0] & 0x80 and cutting.cut_command[1] == 0xF0
                assert read_back(card, the_plan.can, issuer().trust).ok
                card.power_on()
                with pytest.raises(CardLockedError):
                    run(card, the_plan, verify=False)
                continue
            assert card.life_cycle.before_operational
            # Full verification for the after-variants, the cheaper structural check otherwise.
            result = run(card, the_plan, verify=after)
            assert result.restarted == (state is PersoState.INCOMPLETE)
            assert personalisation_state(card) is PersoState.LOCKED
            assert (
                set(card.keys) - BASE_KEYS
                == {"card.serial", "pace.can", "ca.private", "ca.public", "ca.info", "aa.private", "aa.hash"}
                - BASE_KEYS
            )
            app = card.fs.application(EKTP_AID)
            assert len(app.children) == 8 and len(card.fs.mf.children) == 4
            assert (app.child_ef(0x0120) is not None) is biometrics.on_card
        else:
            continue
        break
    # Blank: cut anywhere up to EXTERNAL AUTHENTICATE and GET DATA (both ways) and before the first
    # CREATE FILE.
    # Locked: only cuts right after LOCK (checked above). Runs differ in length by a command now and
    # then, so that cut may land zero, one or two times in a sweep; test_interruption_at_lock hits it
    # every time.
    assert outcomes[PersoState.BLANK] == 11
    assert outcomes.get(PersoState.LOCKED, 0) <= 2
    assert sum(outcomes.values()) == cuts and outcomes[PersoState.INCOMPLETE] >= cuts - 13


class CutAtLock:
    """The card leaves the field at LOCK: before the card sees it, or after it was carried out."""

    def __init__(self, card: VirtualCard, *, after: bool) -> None:
        self.card = card
        self.after = after

    def transceive(self, command: bytes) -> bytes:
        lock = command[0] & 0x80 and command[1] == 0xF0
        if lock and not self.after:
            self.card.power_off()
        response = self.card.transceive(command)
        if lock:
            self.card.power_off()
            raise CardRemovedError("the card left the field")
        return response


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_interruption_at_lock(after: bool) -> None:
    the_plan = plan()
    card = blank_card(MASTER, SERIAL)
    with pytest.raises(CardRemovedError):
        run(CutAtLock(card, after=after), the_plan, verify=False)
    card.power_on()
    if after:
        assert personalisation_state(card) is PersoState.LOCKED
        assert read_back(card, the_plan.can, issuer().trust).ok
        card.power_on()
        with pytest.raises(CardLockedError):
            run(card, the_plan, verify=False)
    else:
        assert personalisation_state(card) is PersoState.INCOMPLETE
        assert run(card, the_plan, verify=True).restarted
        assert personalisation_state(card) is PersoState.LOCKED


# --- keys in a token, and a real pcscd ----------------------------------------------------------------------


def test_document_signer_in_softhsm(token: SoftHsmToken) -> None:
    from ektp_card.pki.pkcs11 import Pkcs11Signer

    iss = issuer()
    spec = KeySpec.parse("brainpoolP256r1")
    with Pkcs11Signer.generate(token.module, token.label, "perso-ds", spec, token.pin) as hsm:
        cert = issue_document_signer(
            iss.csca_signer,
            iss.csca,
            hsm.public_key,
            common_name="DS in HSM",
            not_before=NOW - dt.timedelta(hours=1),
        )
        card = blank_card(MASTER, SERIAL)
        result = run(card, signer=DocumentSigner(hsm, cert))
        assert result.verification is not None and result.verification.ok

    def wrong_pin() -> DocumentSigner:
        return DocumentSigner(Pkcs11Signer(token.module, token.label, "perso-ds", b"0000"), cert)

    _untouched(lambda t: run(t, signer=wrong_pin), PkiError, "cannot log in")


@pytest.mark.pcscd
def test_personalise_through_pcscd(vpcd_bridge: Callable[..., Any], pcscd: str) -> None:
    # The pcscd fixture has already skipped (or, under CI, failed) when pyscard is missing.
    from ektp_card.apdu.pcsc import PcscTransport

    card = blank_card(MASTER, SERIAL)
    vpcd_bridge(card)
    with PcscTransport.open(pcscd, timeout=5) as transport:
        result = run(transport)
    assert result.verification is not None and result.verification.ok, result.verification.summary()
    assert personalisation_state(card) is PersoState.LOCKED
