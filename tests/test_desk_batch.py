"""Batch issuance (ektp_card.desk.batch): issue, skip, reject; resume after a crash anywhere; two desks.

The crash tests run tests/batch_runner.py as a script: it issues a batch with a hook that counts every
event of the run (each APDU, each registry change before and after, each file written) and kills its own
process with SIGKILL at event N. The next run must resume to the same end state as a run that was never
interrupted.
"""

from __future__ import annotations

import hashlib
import json
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ektp_card.desk.batch import (
    BatchProgress,
    BatchSummary,
    BlankCard,
    Issuance,
    PrintedCard,
    Status,
    VirtualCardDir,
    batch_id,
    count_records,
    issue_batch,
)
from ektp_card.desk.registry import CardState, Registry, open_registry
from ektp_card.errors import CardRemovedError, PersonalisationError, RecordError
from ektp_card.lds.ektp import EKTP_AID
from ektp_card.lds.record import CitizenRecord
from ektp_card.pki.trust import TrustStore
from ektp_card.verify.passive import Policy
from ektp_card.virtual import VirtualCard

if TYPE_CHECKING:
    from fixtures.cards import Fresh
    from fixtures.desk import (
        CheckEndState,
        Invalid,
        LoadIssuance,
        MakeIssuerPki,
        Records,
        WriteBatch,
    )
    from fixtures.postgres import RegistryTarget

MASTER = bytes.fromhex("303132333435363738393A3B3C3D3E3F")
DESK, ACTOR = "desk-test-01", "officer-1"


# --- fixtures and helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory, make_issuer_pki: MakeIssuerPki) -> Path:
    return make_issuer_pki(tmp_path_factory.mktemp("desk-batch") / "pki")


@pytest.fixture
def issuance(pki_dir: Path, load_issuance: LoadIssuance) -> Issuance:
    return load_issuance(pki_dir, MASTER)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = open_registry(str(tmp_path / "registry.sqlite"))
    yield reg
    reg.close()


def sod_of(card: VirtualCard) -> bytes:
    app = card.fs.application(EKTP_AID)
    return bytes(app.child_ef(0x011D).data)  # type: ignore[union-attr]


# --- the library, in process ------------------------------------------------------------------------------


def test_batch_issues_skips_and_rejects(
    tmp_path: Path,
    registry: Registry,
    issuance: Issuance,
    records: Records,
    write_batch: WriteBatch,
    invalid: Invalid,
) -> None:
    first, second, third, fourth = records(0, 1, 2, 3)
    # The fourth NIK already has a card from another desk.
    registry.reserve("00000000000000AA", fourth.nik, desk="desk-other", actor=ACTOR)
    registry.confirm("00000000000000AA", sod_sha256="ab" * 32, desk="desk-other", actor=ACTOR)
    path = write_batch(tmp_path / "batch.jsonl", [first, invalid(second), third, first, fourth])
    station = VirtualCardDir(tmp_path / "cards", MASTER)
    seen: list[BatchProgress] = []
    summary = issue_batch(path, registry, station, issuance, desk=DESK, actor=ACTOR, progress=seen.append)

    assert summary.batch == batch_id(path) == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert summary.total == 5 and summary.complete and not summary.cancelled
    got = [(o.line, o.status, o.nik) for o in summary.outcomes]
    assert got == [(1, Status.ISSUED, first.nik), (2, Status.REJECTED, None), (3, Status.ISSUED, third.nik),
                   (4, Status.SKIPPED, first.nik), (5, Status.SKIPPED, fourth.nik)]
    assert summary.outcomes[1].reason == "nik.digits"
    assert summary.outcomes[3].reason.startswith("already issued: card ")
    assert summary.outcomes[4].reason == (
        "already issued: card 00000000000000AA (personalised at desk desk-other)")
    assert summary.spoiled == () and summary.recovered == ()
    for outcome in summary.issued:
        assert outcome.serial is not None
        row = registry.get(outcome.serial)
        assert row is not None and row.state is CardState.PERSONALISED and row.batch == summary.batch
        image = tmp_path / "cards" / f"{outcome.serial}.card"
        job = tmp_path / "cards" / f"{outcome.serial}.print.json"
        assert stat.S_IMODE(job.stat().st_mode) == 0o600 and stat.S_IMODE(image.stat().st_mode) == 0o600
        assert hashlib.sha256(sod_of(VirtualCard.load(image))).hexdigest() == row.sod_sha256
        printed = PrintedCard.decode(job.read_bytes())
        assert printed.nik == outcome.nik and len(printed.can) == 6 and printed.line == outcome.line
        assert ("NIK", outcome.nik) in printed.lines
    last = seen[-1]
    assert (last.done, last.total, last.issued, last.skipped, last.rejected) == (5, 5, 2, 2, 1)
    assert last.eta == 0 and last.rate > 0 and last.cards_per_hour > 0
    assert seen[0].done == 0 and seen[0].eta is None
    assert [e.action for e in registry.audit_entries()][-4:] == ["reserve", "confirm", "reserve", "confirm"]


def test_rerun_issues_nothing_twice(
    tmp_path: Path, registry: Registry, issuance: Issuance, records: Records, write_batch: WriteBatch
) -> None:
    path = write_batch(tmp_path / "batch.jsonl", records(0, 1, 2))
    station = VirtualCardDir(tmp_path / "cards", MASTER)
    first = issue_batch(path, registry, station, issuance, desk=DESK, actor=ACTOR)
    assert [o.status for o in first.outcomes] == [Status.ISSUED] * 3
    before = registry.audit_head()
    again = issue_batch(path, registry, station, issuance, desk=DESK, actor=ACTOR)
    assert [o.status for o in again.outcomes] == [Status.SKIPPED] * 3
    assert [o.serial for o in again.outcomes] == [o.serial for o in first.outcomes]
    assert registry.audit_head() == before
    assert len(list((tmp_path / "cards").glob("*.card"))) == 3


class _PulledOnce(VirtualCardDir):
    """The first card leaves the field at its ``cut``-th command, as a card pulled out mid-write."""

    def __init__(self, directory: Path, cut: int) -> None:
        super().__init__(directory, MASTER)
        self.cut = cut
        self.pulled: list[str] = []

    @contextmanager
    def blank_card(self, cancel: threading.Event | None, notice: Any) -> Iterator[BlankCard]:
        with super().blank_card(cancel, notice) as blank:
            if self.pulled:
                yield blank
                return
            card = blank.transport
            count = 0
            station = self

            class Pulled:
                def transceive(self, command: bytes) -> bytes:
                    nonlocal count
                    count += 1
                    if count >= station.cut:
                        station.pulled.append(blank.serial or "?")
                        raise CardRemovedError("the card was removed during a command")
                    return card.transceive(command)

            yield BlankCard(Pulled(), blank.serial)


def test_card_pulled_mid_write_is_spoiled_and_the_rerun_issues_it(
    tmp_path: Path,
    registry: Registry,
    issuance: Issuance,
    records: Records,
    write_batch: WriteBatch,
    check_end_state: CheckEndState,
) -> None:
    path = write_batch(tmp_path / "batch.jsonl", records(0, 1))
    station = _PulledOnce(tmp_path / "cards", cut=20)
    summary = issue_batch(path, registry, station, issuance, desk=DESK, actor=ACTOR)
    assert [o.status for o in summary.outcomes] == [Status.REJECTED, Status.ISSUED]
    pulled = station.pulled[0]
    assert summary.outcomes[0].reason.startswith(f"card {pulled} spoiled: ")
    assert "removed" in summary.outcomes[0].reason
    row = registry.get(pulled)
    assert row is not None and row.state is CardState.SPOILED
    assert registry.live_card(records(0)[0].nik) is None
    # Run the same file again: the citizen whose card was pulled gets one, nobody gets two.
    again = issue_batch(path, registry, station, issuance, desk=DESK, actor=ACTOR)
    assert [o.status for o in again.outcomes] == [Status.ISSUED, Status.SKIPPED]
    check_end_state(str(tmp_path / "registry.sqlite"), {r.nik for r in records(0, 1)}, [tmp_path / "cards"])


def test_csv_batch(tmp_path: Path, registry: Registry, issuance: Issuance, records: Records) -> None:
    import csv

    from ektp_card.lds.record import FIELDS

    path = tmp_path / "batch.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for record in records(4, 5):
            row = record.to_mapping()
            row["synthetic"] = "true"
            writer.writerow(row)
    assert count_records(path) == 2
    summary = issue_batch(path, registry, VirtualCardDir(tmp_path / "cards", MASTER), issuance, desk=DESK,
                          actor=ACTOR)
    assert [(o.line, o.status) for o in summary.outcomes] == [(2, Status.ISSUED), (3, Status.ISSUED)]


def test_unreadable_batch_and_bad_master_key(
    tmp_path: Path, registry: Registry, issuance: Issuance, records: Records, write_batch: WriteBatch
) -> None:
    station = VirtualCardDir(tmp_path / "cards", MASTER)
    with pytest.raises(RecordError, match=r"batch files are \.jsonl or \.csv"):
        issue_batch(tmp_path / "batch.txt", registry, station, issuance, desk=DESK, actor=ACTOR)
    with pytest.raises(RecordError, match="cannot read"):
        issue_batch(tmp_path / "missing.jsonl", registry, station, issuance, desk=DESK, actor=ACTOR)
    path = write_batch(tmp_path / "batch.jsonl", records(0))
    short = Issuance(b"\x01" * 5, issuance.signer, issuance.trust)
    with pytest.raises(PersonalisationError, match="16 or 32"):
        issue_batch(path, registry, station, short, desk=DESK, actor=ACTOR)
    assert registry.cards() == []


def test_failed_read_back_spoils_the_card(
    tmp_path: Path, registry: Registry, issuance: Issuance, records: Records, write_batch: WriteBatch
) -> None:
    # A trust store without the CRL: the read back's Passive Authentication (CRL required) fails after
    # the card was written and locked, so the card is spoiled and the record rejected.
    no_crl = Issuance(MASTER, issuance.signer, TrustStore(issuance.trust.cscas), Policy(require_crl=True))
    path = write_batch(tmp_path / "batch.jsonl", records(0))
    station = VirtualCardDir(tmp_path / "cards", MASTER)
    summary = issue_batch(path, registry, station, no_crl, desk=DESK, actor=ACTOR)
    (outcome,) = summary.outcomes
    assert outcome.status is Status.REJECTED and outcome.serial is not None
    assert outcome.reason.startswith(f"card {outcome.serial} spoiled: ")
    assert "does not verify" in outcome.reason
    assert [s.serial for s in summary.spoiled] == [outcome.serial]
    row = registry.get(outcome.serial)
    assert row is not None and row.state is CardState.SPOILED and row.reason is not None
    # It was locked before the read back failed: its EF.SOD hash is kept, so a revocation list names it.
    assert row.sod_sha256 is not None and len(row.sod_sha256) == 64
    from ektp_card.desk.revocation import registry_entries

    entries, _ = registry_entries(registry)
    assert [e.sod_sha256 for e in entries] == [row.sod_sha256]
    assert list((tmp_path / "cards").glob("*.card")) == []
    # The same file with the right trust store issues the record: the spoiled card does not count.
    again = issue_batch(path, registry, station, issuance, desk=DESK, actor=ACTOR)
    assert [o.status for o in again.outcomes] == [Status.ISSUED]
    reissued = registry.get(again.outcomes[0].serial or "")
    assert reissued is not None and reissued.sod_sha256 != row.sod_sha256


class _CrashAt(Exception):
    pass


def _crashing_keep(station: VirtualCardDir, when: str) -> None:
    """Make ``station.keep`` die before it stores anything ("before") or after it stored everything
    ("after"), as a power cut there would."""
    original = station.keep

    def keep(card: Any, printed: PrintedCard) -> None:
        if when == "after":
            original(card, printed)
        raise _CrashAt(when)

    station.keep = keep  # type: ignore[method-assign]


@pytest.mark.parametrize("when", ["before", "after"])
def test_resume_resolves_pending_cards(
    tmp_path: Path,
    registry: Registry,
    issuance: Issuance,
    when: str,
    records: Records,
    write_batch: WriteBatch,
    check_end_state: CheckEndState,
) -> None:
    path = write_batch(tmp_path / "batch.jsonl", records(0, 1))
    crashing = VirtualCardDir(tmp_path / "cards", MASTER)
    _crashing_keep(crashing, when)
    with pytest.raises(_CrashAt):
        issue_batch(path, registry, crashing, issuance, desk=DESK, actor=ACTOR)
    (pending,) = registry.cards(states=[CardState.PENDING])
    # Another desk resuming its own work leaves this desk's pending card alone.
    other = issue_batch(write_batch(tmp_path / "other.jsonl", records(2)), registry,
                        VirtualCardDir(tmp_path / "other", MASTER), issuance, desk="desk-2", actor=ACTOR)
    assert other.recovered == () and other.spoiled == ()
    assert registry.get(pending.serial) == pending

    summary = issue_batch(path, registry, VirtualCardDir(tmp_path / "cards", MASTER), issuance, desk=DESK,
                          actor=ACTOR)
    row = registry.get(pending.serial)
    assert row is not None
    if when == "after":
        assert summary.recovered == (pending.serial,) and summary.spoiled == ()
        assert row.state is CardState.PERSONALISED
        assert [o.status for o in summary.outcomes] == [Status.SKIPPED, Status.ISSUED]
    else:
        assert summary.recovered == ()
        assert [s.serial for s in summary.spoiled] == [pending.serial]
        assert "no card image" in summary.spoiled[0].reason
        assert row.state is CardState.SPOILED
        assert [o.status for o in summary.outcomes] == [Status.ISSUED, Status.ISSUED]
    check_end_state(str(tmp_path / "registry.sqlite"), {r.nik for r in records(0, 1, 2)},
                    [tmp_path / "cards", tmp_path / "other"])


def test_resume_spoils_an_image_of_another_nik(
    tmp_path: Path, registry: Registry, issuance: Issuance, records: Records, write_batch: WriteBatch
) -> None:
    path = write_batch(tmp_path / "batch.jsonl", records(0))
    crashing = VirtualCardDir(tmp_path / "cards", MASTER)
    _crashing_keep(crashing, "after")
    with pytest.raises(_CrashAt):
        issue_batch(path, registry, crashing, issuance, desk=DESK, actor=ACTOR)
    (pending,) = registry.cards(states=[CardState.PENDING])
    # Swap in the image of a card for someone else under the pending serial's name.
    stray = tmp_path / "stray"
    other = issue_batch(write_batch(tmp_path / "o.jsonl", records(3)), registry,
                        VirtualCardDir(stray, MASTER), issuance, desk="desk-2", actor=ACTOR)
    stray_serial = other.outcomes[0].serial
    card = VirtualCard.load(stray / f"{stray_serial}.card")
    card.keys["card.serial"] = bytes.fromhex(pending.serial)
    card.save(tmp_path / "cards" / f"{pending.serial}.card")
    job = PrintedCard.decode((stray / f"{stray_serial}.print.json").read_bytes())
    job_path = tmp_path / "cards" / f"{pending.serial}.print.json"
    forged_job = PrintedCard(pending.serial, job.can, job.nik, True, job.lines, job.batch, 1)
    job_path.write_bytes(forged_job.encode())

    summary = issue_batch(path, registry, VirtualCardDir(tmp_path / "cards", MASTER), issuance, desk=DESK,
                          actor=ACTOR)
    assert [s.serial for s in summary.spoiled] == [pending.serial]
    assert "another NIK" in summary.spoiled[0].reason
    assert (tmp_path / "cards" / "spoiled" / f"{pending.serial}.card").exists()
    assert [o.status for o in summary.outcomes] == [Status.ISSUED]


def test_cancel_stops_between_records(
    tmp_path: Path, registry: Registry, issuance: Issuance, records: Records, write_batch: WriteBatch
) -> None:
    path = write_batch(tmp_path / "batch.jsonl", records(0, 1, 2))
    cancel = threading.Event()

    def progress(p: BatchProgress) -> None:
        if p.issued == 1:
            cancel.set()

    station = VirtualCardDir(tmp_path / "cards", MASTER)
    summary = issue_batch(path, registry, station, issuance, desk=DESK, actor=ACTOR, progress=progress,
                          cancel=cancel)
    assert summary.cancelled and not summary.complete
    assert [o.status for o in summary.outcomes] == [Status.ISSUED]
    rest = issue_batch(path, registry, station, issuance, desk=DESK, actor=ACTOR)
    assert [o.status for o in rest.outcomes] == [Status.SKIPPED, Status.ISSUED, Status.ISSUED]


# --- crashes: the runner ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_runner(batch_runner_script: Path) -> Callable[..., subprocess.Popen[str]]:
    """``run_runner(batch, target, cards, pki, desk=DESK, kill_at=None)``: tests/batch_runner.py in its
    own process."""

    def start(batch: Path, target: str, cards: Path, pki: Path, desk: str = DESK,
              kill_at: int | None = None) -> subprocess.Popen[str]:
        args = [sys.executable, str(batch_runner_script), str(batch), target, str(cards), str(pki), desk,
                str(kill_at or 0)]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)

    return start


def finish(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any] | None, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, (json.loads(out) if proc.returncode == 0 else None), err


def summary_lines(data: dict[str, Any]) -> dict[int, str]:
    return {r["line"]: r["status"] for r in data["summary"]["records"]}


def test_kill_anywhere_then_resume(
    tmp_path: Path,
    pki_dir: Path,
    records: Records,
    write_batch: WriteBatch,
    invalid: Invalid,
    check_end_state: CheckEndState,
    batch_runner: Callable[..., dict[str, Any]],
    run_runner: Callable[..., subprocess.Popen[str]],
) -> None:
    items: list[CitizenRecord | dict[str, Any]] = [*records(0, 1), invalid(records(2)[0]), *records(3)]
    niks = {r.nik for r in records(0, 1, 3)}
    batch = write_batch(tmp_path / "batch.jsonl", items)
    clean = batch_runner(batch, str(tmp_path / "dry.sqlite"), tmp_path / "dry", pki_dir, DESK, None)
    events = clean["events"]
    # A spread of kill points, and every registry change and file write of the second card exactly.
    named = [i + 1 for i, e in enumerate(events) if not e.startswith("apdu")]
    second = named[len(named) // 3: len(named) // 3 + 8]
    apdus = [i + 1 for i, e in enumerate(events) if e == "apdu"]
    points = sorted({1, apdus[len(apdus) // 2], len(events), *second})
    procs = []
    for k in points:
        case = tmp_path / f"kill-{k}"
        case.mkdir()
        procs.append((k, case, run_runner(batch, str(case / "registry.sqlite"), case / "cards", pki_dir,
                                                kill_at=k)))
    for k, _case, proc in procs:
        code, _, err = finish(proc)
        assert code == -signal.SIGKILL, (k, events[k - 1], err)
    for k, case, _ in procs:
        target = str(case / "registry.sqlite")
        result = batch_runner(batch, target, case / "cards", pki_dir, DESK, None)
        assert summary_lines(result) == {1: _done(result, 1), 2: _done(result, 2), 3: "rejected",
                                         4: _done(result, 4)}, (k, events[k - 1])
        check_end_state(target, niks, [case / "cards"])
        # Each NIK has one card, and no more than one spoiled attempt (the interrupted one).
        with open_registry(target) as reg:
            assert len(reg.cards(states=[CardState.SPOILED])) <= 1, (k, events[k - 1])


def _done(result: dict[str, Any], line: int) -> str:
    status = summary_lines(result)[line]
    assert status in ("issued", "skipped"), (line, status)
    return status


# --- two desks at once ------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path, registry_target: RegistryTarget) -> str:
    return registry_target(request, tmp_path)


def test_three_desks_with_overlapping_batches(
    tmp_path: Path,
    pki_dir: Path,
    target: str,
    records: Records,
    write_batch: WriteBatch,
    check_end_state: CheckEndState,
    run_runner: Callable[..., subprocess.Popen[str]],
) -> None:
    # Desk A takes records 0..5, desk B the same people from the other end, desk C in a third order:
    # every NIK is raced for by all three.
    orders = {"desk-a": (0, 1, 2, 3, 4, 5), "desk-b": (5, 4, 3, 2, 1, 0), "desk-c": (2, 5, 0, 3, 1, 4)}
    open_registry(target).close()  # migrate once, before the race
    procs = {
        desk: run_runner(write_batch(tmp_path / f"{desk}.jsonl", records(*order)), target, tmp_path / desk,
                         pki_dir, desk=desk)
        for desk, order in orders.items()
    }
    results = {desk: finish(proc) for desk, proc in procs.items()}
    issued = 0
    for desk, (code, out, err) in results.items():
        assert code == 0 and out is not None, (desk, err)
        lines = summary_lines(out)
        assert sorted(lines) == [1, 2, 3, 4, 5, 6], desk
        assert set(lines.values()) <= {"issued", "skipped"}, (desk, lines)
        issued += out["summary"]["issued"]
    assert issued == 6, {desk: summary_lines(out) for desk, (_, out, _) in results.items() if out}
    check_end_state(target, {r.nik for r in records(0, 1, 2, 3, 4, 5)}, [tmp_path / d for d in orders])


def test_summary_json_round_trip() -> None:
    summary = BatchSummary("b" * 16, DESK, 1, (), (), (), 0.0)
    assert summary.to_json()["complete"] is False and summary.cards_per_hour == 0.0


# --- a PC/SC reader: one card at a time through pcscd and vpcd --------------------------------------------


@pytest.mark.pcscd
def test_reader_station_through_pcscd(
    pcscd: str,
    tmp_path: Path,
    registry: Registry,
    issuance: Issuance,
    records: Records,
    write_batch: WriteBatch,
    fresh: Fresh,
) -> None:
    import queue

    from ektp_card.desk.batch import ReaderStation
    from ektp_card.virtual.perso import PersoState, blank_card, personalisation_state
    from ektp_card.virtual.vpcd import VpcdBridge

    first, second, third = records(0, 1, 2)
    registry.reserve("00000000000000BB", first.nik, desk="desk-other", actor=ACTOR)
    path = write_batch(tmp_path / "batch.jsonl", [first, second, third])
    locked, _ = fresh()  # another issuer's card, personalised and locked: refused, put aside
    cards = [locked, blank_card(MASTER), blank_card(MASTER)]
    notices: queue.Queue[str] = queue.Queue()
    failures: list[BaseException] = []

    def operator() -> None:
        # Put each card in the reader and take it out when the desk asks for it.
        try:
            for card in cards:
                bridge = VpcdBridge(card)
                bridge.start()
                while "out of" not in notices.get(timeout=30):
                    pass
                bridge.stop()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    hand = threading.Thread(target=operator, daemon=True)
    hand.start()
    station = ReaderStation(pcscd, tmp_path / "jobs", timeout=60)
    summary = issue_batch(path, registry, station, issuance, desk=DESK, actor=ACTOR, notice=notices.put)
    hand.join(timeout=30)
    assert not failures and not hand.is_alive()
    assert [o.status for o in summary.outcomes] == [Status.SKIPPED, Status.ISSUED, Status.ISSUED]
    assert summary.outcomes[0].reason.startswith("being issued: card 00000000000000BB (pending")
    for outcome, card in zip(summary.outcomes[1:], cards[1:], strict=True):
        assert personalisation_state(card) is PersoState.LOCKED
        assert outcome.serial is not None
        row = registry.get(outcome.serial)
        assert row is not None and row.state is CardState.PERSONALISED
        assert row.sod_sha256 == hashlib.sha256(sod_of(card)).hexdigest()
        job = tmp_path / "jobs" / f"{outcome.serial}.print.json"
        assert stat.S_IMODE(job.stat().st_mode) == 0o600
        assert PrintedCard.decode(job.read_bytes()).nik == outcome.nik
    assert registry.cards(states=[CardState.SPOILED]) == []
