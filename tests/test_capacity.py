"""The card's memory budget: files, DFs and key objects charged against a capacity, 6A84 past it with
nothing half-applied, the desk's check before the first write, and the e-KTP profile on an 8 KB chip."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ektp_card._cli.images import compact_jpeg
from ektp_card.apdu.sw import SW
from ektp_card.crypto.perso import INS_GET_DATA, KEY_ACTIVE_AUTHENTICATION, KEY_CHIP_AUTHENTICATION
from ektp_card.errors import (
    CardCapacityError,
    CardImageError,
    CardRemovedError,
    NotEnoughMemoryError,
    PersonalisationRefusedError,
)
from ektp_card.lds.capacity import (
    ALLOCATION_UNIT,
    DF_HEADER,
    EF_HEADER,
    EKTP_CAPACITY,
    KEY_HEADER,
    MAX_CAPACITY,
    MIN_CAPACITY,
    format_capacity,
    key_storage,
    parse_capacity,
)
from ektp_card.lds.conditions import AccessCondition
from ektp_card.lds.ektp import EKTP_AID
from ektp_card.lds.record import CitizenRecord, write_record
from ektp_card.lds.synthetic import synthetic_citizen
from ektp_card.personalize import Algorithms, CardPlan, PersoSession, personalize, plan_from_record
from ektp_card.personalize.budget import plan_budget, sod_size
from ektp_card.personalize.plan import Biometrics
from ektp_card.pki.issuer import IssuerPki
from ektp_card.pki.signer import KeySpec
from ektp_card.virtual import VirtualCard
from ektp_card.virtual.fs import LifeCycle
from ektp_card.virtual.perso import PERSO_KEY, PERSO_TRIES, PersoState, blank_card, personalisation_state
from ektp_card.virtual.summary import summarize

if TYPE_CHECKING:
    from fixtures.cards import CutTransport, IssuerOf, RunCli
    from fixtures.terminal_pki import Pki

MASTER = bytes.fromhex("505152535455565758595A5B5C5D5E5F")
SERIAL = bytes.fromhex("8877665544332211")
#: The image budgets docs/cli.md gives for the 8 KB chip.
FACE_BUDGET, SIGNATURE_BUDGET = 1600, 800


def _full_record(seed: int = 7) -> CitizenRecord:
    """A record with the synthetic generator's full-size photo (120 x 160) and signature."""
    return synthetic_citizen(random.Random(seed)).record  # noqa: S311 - synthetic test data


def _compact(record: CitizenRecord) -> CitizenRecord:
    face = compact_jpeg(record.face, FACE_BUDGET, what="face")
    signature = compact_jpeg(record.signature, SIGNATURE_BUDGET, what="signature", greyscale=True)
    return dataclasses.replace(record, face=face.data, signature=signature.data)


def _files(card: VirtualCard) -> list[tuple[tuple[int, ...], bytes]]:
    return [(f.path, bytes(getattr(f, "data", b""))) for f in card.fs.walk()]


# --- the capacity string ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("8K", 8192), ("8192", 8192), ("8 KiB", 8192), ("64kb", 65536), ("1M", 1 << 20), ("256", 256),
     (" 8M ", 8 << 20)],
)
def test_capacity_strings(text: str, size: int) -> None:
    assert parse_capacity(text) == size


@pytest.mark.parametrize("text", ["", "K", "8G", "-8K", "0", "255", "9M", "8.5K", "0x2000", "8 K B", "１２K"])
def test_capacity_strings_refused(text: str) -> None:
    with pytest.raises(ValueError, match="capacity"):
        parse_capacity(text)


@given(st.integers(MIN_CAPACITY, MAX_CAPACITY))
def test_capacity_round_trips_through_its_text(size: int) -> None:
    assert parse_capacity(format_capacity(size)) == size


@given(st.text(max_size=40))
def test_capacity_parser_takes_any_text_without_crashing(text: str) -> None:
    try:
        size = parse_capacity(text)
    except ValueError:
        return
    assert MIN_CAPACITY <= size <= MAX_CAPACITY


# --- the card's accounting --------------------------------------------------------------------------------


def test_files_dfs_and_keys_are_charged_by_the_model() -> None:
    card = VirtualCard.create(capacity=4096)
    fs = card.fs
    before_files, before_keys = fs.files_used, card.keys.used
    app = fs.create_df(fs.mf, 0xDF01)
    assert fs.files_used - before_files == DF_HEADER
    fs.create_ef(app, 0x0101, size=1)
    assert fs.files_used - before_files == DF_HEADER + EF_HEADER + ALLOCATION_UNIT
    fs.create_ef(app, 0x0102, size=ALLOCATION_UNIT + 1)
    assert fs.files_used - before_files == DF_HEADER + 2 * EF_HEADER + 3 * ALLOCATION_UNIT
    card.keys["k"] = bytes(17)
    assert card.keys.used - before_keys == KEY_HEADER + 2 * ALLOCATION_UNIT == key_storage(17)
    assert fs.used == fs.files_used + card.keys.used and fs.free == 4096 - fs.used
    summary = summarize(card)
    assert summary.used == fs.used and summary.free == fs.free and summary.keys_used == card.keys.used
    assert {f.path: f.storage for f in summary.files}["3F00/DF01/0102"] == EF_HEADER + 2 * ALLOCATION_UNIT


def test_keys_past_the_capacity_are_refused_whole() -> None:
    card = VirtualCard.create(capacity=MIN_CAPACITY)
    free = card.fs.free
    card.keys["a"] = bytes(free - KEY_HEADER)  # exactly full
    assert card.fs.free == 0
    with pytest.raises(NotEnoughMemoryError):
        card.keys["b"] = b"\x01"
    card.keys["a"] = bytes(free - KEY_HEADER - 40)  # a smaller value gives memory back
    with pytest.raises(NotEnoughMemoryError):
        card.keys.update({"b": bytes(16), "c": bytes(16)})  # 64 bytes together do not fit in 48
    assert set(card.keys) == {"a"}
    card.keys.update({"b": bytes(16)})
    assert set(card.keys) == {"a", "b"}


def _session(card: VirtualCard) -> PersoSession:
    session = PersoSession(card)
    session.open()
    session.authenticate(MASTER)
    return session


def test_writes_past_the_budget_answer_6a84_and_change_nothing(terminal_chain: Pki) -> None:
    """CREATE FILE, GENERATE ASYMMETRIC KEY PAIR and PUT DATA through the personalisation session's
    secure messaging: each one past the budget is answered 6A84 and leaves the card as it was."""
    card = blank_card(MASTER, SERIAL, capacity=1024)
    session = _session(card)
    free = session.free_memory()
    assert free == card.fs.free == 1024 - card.fs.used
    rights: dict[str, AccessCondition] = {"read": AccessCondition.ALWAYS, "update": AccessCondition.ALWAYS,
                                           "admin": AccessCondition.ALWAYS}
    before = (_files(card), dict(card.keys))
    with pytest.raises(PersonalisationRefusedError) as refused:
        session.create_ef(0x0101, free - EF_HEADER + 1, None, **rights)
    assert refused.value.sw == SW.NOT_ENOUGH_MEMORY
    assert (_files(card), dict(card.keys)) == before
    # The session survives a refusal (it is protected like any answer): fill the memory exactly...
    session.create_ef(0x0101, free - EF_HEADER - 64, None, **rights)
    assert card.fs.free == 64
    # ...so that neither key pair (Chip Authentication: three key objects, 448 bytes on
    # brainpoolP256r1; Active Authentication: two, 192 bytes) fits, nor the trust point.
    algorithms = Algorithms()
    before = (_files(card), dict(card.keys))
    for reference, oid in ((KEY_CHIP_AUTHENTICATION, algorithms.ca_protocol),
                           (KEY_ACTIVE_AUTHENTICATION, algorithms.aa_signature)):
        with pytest.raises(PersonalisationRefusedError) as refused:
            session.generate_key(reference, oid, algorithms.ca_parameter_id)
        assert refused.value.sw == SW.NOT_ENOUGH_MEMORY
    with pytest.raises(PersonalisationRefusedError) as refused:
        session.set_trust_point(terminal_chain.cvca.encode())
    assert refused.value.sw == SW.NOT_ENOUGH_MEMORY
    assert (_files(card), dict(card.keys)) == before
    session.set_can("123456")  # one key object of 32 bytes: fits
    assert card.fs.free == 32 and "pace.can" in card.keys


def test_update_binary_never_allocates() -> None:
    """The size is reserved at CREATE FILE: UPDATE BINARY past the file's end is 6A84 too, and never
    grows the file."""
    card = VirtualCard.create(capacity=1024)
    ef = card.fs.create_ef(card.fs.mf, 0x0101, size=4)
    used = card.fs.used
    raw = card.transceive(bytes.fromhex("00A4020C020101"))
    assert raw[-2:] == b"\x90\x00"
    raw = card.transceive(bytes.fromhex("00D600020399AABB"))
    assert int.from_bytes(raw[-2:], "big") == SW.NOT_ENOUGH_MEMORY
    assert bytes(ef.data) == bytes(4) and card.fs.used == used


def test_image_round_trips_with_its_capacity(tmp_path: Path) -> None:
    card = blank_card(MASTER, SERIAL, capacity=EKTP_CAPACITY)
    path = tmp_path / "card.img"
    card.save(path)
    loaded = VirtualCard.load(path)
    assert loaded.fs.capacity == EKTP_CAPACITY
    assert loaded.fs.used == card.fs.used and dict(loaded.keys) == dict(card.keys)
    # Key objects that do not fit make the image unusable, like files that do not fit.
    doc = json.loads(path.read_text())
    doc["keys"]["extra"] = "AA" * (EKTP_CAPACITY // 3 * 2)
    path.write_text(json.dumps(doc))
    with pytest.raises(CardImageError, match=r"full: \d+ more bytes needed for key objects .*extra"):
        VirtualCard.load(path)


# --- the desk's check and the 8 KB profile ---------------------------------------------------------------


@pytest.fixture(scope="module")
def compact_plan(terminal_chain: Pki) -> CardPlan:
    """The 8 KB profile: compacted face and signature, two fingers, the CVCA as trust point."""
    return plan_from_record(_compact(_full_record()), cvca_certificate=terminal_chain.cvca)


def test_the_ektp_profile_fits_8k_and_the_budget_is_exact(issuer: IssuerOf, compact_plan: CardPlan) -> None:
    card = blank_card(MASTER, SERIAL, capacity=EKTP_CAPACITY)
    blank_used = card.fs.used
    perso_keys = card.keys.storage(PERSO_KEY) + card.keys.storage(PERSO_TRIES)
    ds = issuer().ds
    budget = plan_budget(compact_plan, sod_size(compact_plan, ds.signer, ds.certificate))
    result = personalize(card, compact_plan, MASTER, ds, trust=issuer().trust)
    assert result.verification is not None and result.verification.ok, result.verification.summary()
    assert "capacity" in dict(result.timings)
    assert personalisation_state(card) is PersoState.LOCKED
    # What the desk counted is what the card took (LOCK gave the personalisation key's memory back);
    # EF.SOD's signature may be shorter than the longest one counted, never longer.
    taken = card.fs.used - blank_used + perso_keys
    assert 0 <= budget.total - taken <= ALLOCATION_UNIT
    assert card.fs.used <= EKTP_CAPACITY
    app = card.fs.application(EKTP_AID)
    # Photo, signature and the two fingers: the on-card reference (EF.BIOREF) of the e-KTP profile.
    assert compact_plan.biometrics is Biometrics.ON_CARD
    assert {f.fid for f in app.children} >= {0x0102, 0x0107, 0x0120}
    # DG2 is the face within its budget and the ISO/IEC 19794-5 record around it.
    assert budget.line("DG2").size <= FACE_BUDGET + 100


def test_interrupted_on_the_8k_chip_then_personalised(
    issuer: IssuerOf, compact_plan: CardPlan, cut_transport: type[CutTransport]
) -> None:
    """Cut after every command of a run on the 8 KB chip: the next run erases what the torn one left
    (ERASE gives its memory back) and the record fits again."""
    locked = 0
    for cut in itertools.count():
        card = blank_card(MASTER, SERIAL, capacity=EKTP_CAPACITY)
        blank_used = card.fs.used
        perso_keys = card.keys.storage(PERSO_KEY) + card.keys.storage(PERSO_TRIES)  # gone after LOCK
        try:
            personalize(cut_transport(card, cut, after=True), compact_plan, MASTER, issuer().ds)
        except CardRemovedError:
            pass
        else:
            break
        card.power_on()
        if personalisation_state(card) is PersoState.LOCKED:
            locked += 1
            continue
        personalize(card, compact_plan, MASTER, issuer().ds)
        assert personalisation_state(card) is PersoState.LOCKED
        assert card.fs.used <= EKTP_CAPACITY
        # Nothing of the torn run is left: the card holds what an uninterrupted run gives.
        assert card.fs.used - blank_used + perso_keys <= plan_budget(
            compact_plan, sod_size(compact_plan, issuer().ds.signer, issuer().ds.certificate)
        ).total
    assert cut >= 25 and locked <= 1


def test_a_record_too_large_is_refused_with_nothing_written(issuer: IssuerOf) -> None:
    the_plan = plan_from_record(_full_record())
    card = blank_card(MASTER, SERIAL, capacity=EKTP_CAPACITY)
    files, keys, used = _files(card), dict(card.keys), card.fs.used
    commands: list[bytes] = []

    class Recorder:
        def transceive(self, command: bytes) -> bytes:
            commands.append(command)
            return card.transceive(command)

    with pytest.raises(CardCapacityError) as refused:
        personalize(Recorder(), the_plan, MASTER, issuer().ds)
    error = refused.value
    assert error.free == EKTP_CAPACITY - used and error.excess == error.needed - error.free > 0
    assert f"{error.excess} bytes too many" in str(error) and "DG2" in str(error)
    # Nothing was written: no CREATE FILE, UPDATE BINARY, key generation or PUT DATA went out...
    assert [c[1] for c in commands[-2:]] == [0x82, INS_GET_DATA]  # EXTERNAL AUTHENTICATE, GET DATA
    # ...and the card holds what it held: blank, same files and keys, the try counter given back.
    card.power_on()
    assert personalisation_state(card) is PersoState.BLANK
    assert (_files(card), dict(card.keys), card.fs.used) == (files, keys, used)
    assert card.life_cycle.before_operational


def test_a_card_that_does_not_tell_its_memory_answers_6a84_itself(issuer: IssuerOf) -> None:
    the_plan = plan_from_record(_full_record())
    card = blank_card(MASTER, SERIAL, capacity=EKTP_CAPACITY)
    del card.proprietary_commands[INS_GET_DATA]
    with pytest.raises(PersonalisationRefusedError) as refused:
        personalize(card, the_plan, MASTER, issuer().ds)
    assert refused.value.sw == SW.NOT_ENOUGH_MEMORY
    card.power_on()
    assert personalisation_state(card) is PersoState.INCOMPLETE  # erased by the next run
    assert card.life_cycle is LifeCycle.INITIALISATION


# --- the command line -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("desk8k")
    pki = IssuerPki.create(root / "pki", b"csca-pass", spec=KeySpec.parse("secp256r1"), country="ID",
                           common_name="CSCA Capacity Test")
    pki.issue_document_signer(b"csca-pass", b"ds-pass", common_name="DS Capacity Test")
    pki.publish_crl(b"csca-pass")
    (root / "master.hex").write_text(MASTER.hex() + "\n")
    write_record(_full_record(), root / "record.json")
    return root


def _cli(run_cli: RunCli, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
         *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("EKTP_DS_PASSPHRASE", "ds-pass")
    return run_cli(capsys, *args)


def test_cli_8k_blank_card_refuses_a_large_record_then_takes_it_compacted(
    desk: Path, tmp_path: Path, run_cli: RunCli, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = tmp_path / "blank.card"
    key = str(desk / "master.hex")
    code, out, err = _cli(run_cli, capsys, monkeypatch, "virtual", "blank", str(image), "--capacity", "8K",
                          "--master-key-file", key)
    assert code == 0, err
    assert "of 8192 bytes of memory free" in out
    blank = VirtualCard.load(image)
    perso: list[str] = ["personalize", str(desk / "record.json"), "--pki", str(desk / "pki"), "--virtual",
                        str(image), "--master-key-file", key]
    code, out, err = _cli(run_cli, capsys, monkeypatch, *perso)
    assert code == 16, err
    assert "bytes too many" in err and "nothing was written to the card" in err
    # The card stays blank (authentication moved it from creation to initialisation, nothing more).
    after = VirtualCard.load(image)
    assert personalisation_state(after) is PersoState.BLANK
    assert (_files(after), dict(after.keys)) == (_files(blank), dict(blank.keys))
    code, out, err = _cli(run_cli, capsys, monkeypatch, "--json", *perso, "--face-budget", str(FACE_BUDGET),
                          "--signature-budget", str(SIGNATURE_BUDGET))
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    assert report["ok"] and len(report["images"]) == 2 and "re-encoded at quality" in report["images"][0]
    code, out, err = _cli(run_cli, capsys, monkeypatch, "--json", "virtual", "show", str(image))
    assert code == 0, err
    shown = json.loads(out)
    assert shown["capacity"] == 8192 and shown["used"] + shown["free"] == 8192
    storage = {f["path"]: f["storage"] for f in shown["files"]}
    assert storage["3F00/DF01/0102"] > EF_HEADER and sum(storage.values()) == shown["files_used"]
    code, out, err = _cli(run_cli, capsys, monkeypatch, "virtual", "show", str(image))
    assert code == 0 and "free (files" in out and "memory" in out


def test_cli_capacity_too_small_for_the_demo(
    tmp_path: Path, run_cli: RunCli, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "demo.card"
    code, _, err = _cli(run_cli, capsys, monkeypatch, "virtual", "create", str(image), "--capacity", "1K")
    assert code == 2 and "--capacity 1024 is too small" in err and not image.exists()
    code, _, err = _cli(run_cli, capsys, monkeypatch, "virtual", "create", str(image), "--capacity", "4K")
    assert code == 0, err
    assert VirtualCard.load(image).fs.capacity == 4096
