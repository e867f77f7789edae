"""Leases and offline sync: a desk leases NIKs from the central registry (SQLite or PostgreSQL), issues
against its own SQLite registry while another desk tries the same NIKs, then syncs; sync again, after an
exception or a kill -9 in the middle, changes nothing more. Plus the `ektp desk lease|sync` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ektp_card._cli import main
from ektp_card._cli.util import ExitCode
from ektp_card.desk import sync
from ektp_card.desk.backend import DatabaseError
from ektp_card.desk.lease import REASON_INVALID, REASON_LEASED, REASON_LIVE
from ektp_card.desk.registry import (
    CardState,
    DuplicateActiveCardError,
    Registry,
    RegistryError,
    open_registry,
)

if TYPE_CHECKING:
    from fixtures.postgres import RegistryTarget
    from pg_server import RawDb

NIKS = [f"{3174012501960000 + i}" for i in range(10)]
A, B = "desk-A", "desk-B"
HOURS = timedelta(hours=1)
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)


def sod(serial: str) -> str:
    return serial.encode().hex().ljust(64, "0")


class Clock:
    """A clock a test moves: one second per reading, plus jumps."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    def jump(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture(params=["sqlite", "postgresql"])
def central_target(request: pytest.FixtureRequest, tmp_path: Path, registry_target: RegistryTarget) -> str:
    (tmp_path / "central").mkdir()
    return registry_target(request, tmp_path / "central")


@pytest.fixture
def central_clock() -> Clock:
    return Clock()


@pytest.fixture
def central(central_target: str, central_clock: Clock) -> Iterator[Registry]:
    registry = open_registry(central_target, clock=central_clock)
    yield registry
    registry.close()


@pytest.fixture
def local_path(tmp_path: Path) -> Path:
    return tmp_path / "desk-a.sqlite"


@pytest.fixture
def local(local_path: Path) -> Iterator[Registry]:
    registry = Registry(local_path, clock=Clock())
    yield registry
    registry.close()


# -- leases on the central registry ----------------------------------------------------------------


def test_lease_rules(
    central: Registry, central_clock: Clock, central_target: str, raw_db: type[RawDb]
) -> None:
    central.register("LIVE-1", NIKS[9], desk=B, actor="b")
    result = central.lease([NIKS[0], NIKS[1], NIKS[9], "12345", NIKS[0]], desk=A, actor="a", ttl=8 * HOURS)
    assert [g.nik for g in result.granted] == [NIKS[0], NIKS[1]]
    assert {(r.nik, r.reason) for r in result.refused} == {(NIKS[9], REASON_LIVE), ("12345", REASON_INVALID)}
    first = result.granted[0]
    assert (first.desk, first.actor) == (A, "a") and first.expires_at > first.leased_at
    # another desk can neither lease nor reserve a leased NIK, not even with raw SQL
    other = central.lease([NIKS[0], NIKS[2]], desk=B, actor="b", ttl=HOURS)
    assert [g.nik for g in other.granted] == [NIKS[2]]
    assert [(r.nik, r.reason) for r in other.refused] == [(NIKS[0], REASON_LEASED)]
    with pytest.raises(DuplicateActiveCardError, match="leased to another desk") as info:
        central.reserve("B-0", NIKS[0], desk=B, actor="b")
    assert NIKS[0] not in str(info.value)
    raw = raw_db(central_target)
    with pytest.raises(raw.errors, match="leased to another desk"):
        raw.execute("INSERT INTO cards (serial, nik, state, desk, created_at, updated_at, surrendered)"
                    " VALUES ('RAW', ?, 'pending', ?, ?, ?, 0)",
                    (NIKS[0], B, first.leased_at, first.leased_at))
    raw.close()
    # the holder itself may reserve; its lease extends on a second call
    central.reserve("A-1", NIKS[1], desk=A, actor="a")
    again = central.lease([NIKS[0]], desk=A, actor="a", ttl=10 * HOURS)
    assert again.granted[0].expires_at > first.expires_at
    assert [lease.nik for lease in central.leases(A)] == [NIKS[0], NIKS[1]]
    # B's lease on NIKS[2] expires after an hour: then A may take it
    central_clock.jump(2 * HOURS)
    assert central.leases(B) == [] and len(central.leases(B, include_expired=True)) == 1
    assert [g.nik for g in central.lease([NIKS[2]], desk=A, actor="a", ttl=HOURS).granted] == [NIKS[2]]
    assert central.release([NIKS[0], NIKS[5]], desk=B, actor="b") == 0  # not B's
    assert central.release([NIKS[0], NIKS[5]], desk=A, actor="a") == 1
    central.reserve("B-0", NIKS[0], desk=B, actor="b")
    with pytest.raises(RegistryError, match="positive"):
        central.lease([NIKS[3]], desk=A, actor="a", ttl=timedelta(0))
    actions = [e.action for e in central.audit_entries()]
    assert actions == ["register", "lease", "lease", "reserve", "lease", "lease", "release", "reserve"]
    assert central.audit_entries()[1].details == {
        "niks": f"{NIKS[0]},{NIKS[1]}", "count": 2, "expires_at": first.expires_at,
    }
    assert central.verify_chain() is None


def test_offline_desk_registry_issues_only_leased_niks(local: Registry, central: Registry) -> None:
    assert local.offline_desk is None
    sync.lease(local, central, NIKS[:2], desk=A, actor="a", ttl=HOURS)
    assert local.offline_desk == A
    assert [lease.nik for lease in local.leases()] == NIKS[:2]
    with pytest.raises(RegistryError, match="holds no current lease"):
        local.reserve("A-9", NIKS[9], desk=A, actor="a")
    with pytest.raises(DuplicateActiveCardError, match="leased to another desk"):
        local.reserve("B-0", NIKS[0], desk=B, actor="b")
    with pytest.raises(RegistryError, match="gets its leases from the central registry"):
        local.lease([NIKS[5]], desk=A, actor="a", ttl=HOURS)
    with pytest.raises(RegistryError, match="issues offline for desk"):
        local.adopt_leases([], desk=B, actor="b")
    with pytest.raises(RegistryError, match="same database"):
        sync.lease(local, local, NIKS[:1], desk=A, actor="a", ttl=HOURS)
    # the lease is used up once the card is personalised: a second card needs a new lease
    local.reserve("A-0", NIKS[0], desk=A, actor="a")
    local.spoil("A-0", "card jammed", desk=A, actor="a")
    local.reserve("A-0b", NIKS[0], desk=A, actor="a")  # still leased after a spoiled card
    local.confirm("A-0b", sod_sha256=sod("A-0b"), desk=A, actor="a")
    assert [lease.nik for lease in local.leases()] == [NIKS[1]]
    local._clock.jump(2 * HOURS)  # type: ignore[attr-defined]
    with pytest.raises(RegistryError, match="holds no current lease"):
        local.reserve("A-1", NIKS[1], desk=A, actor="a")  # the lease expired


# -- issue offline, another desk tries, sync ---------------------------------------------------------


def _issue_offline(local: Registry, central: Registry, central_clock: Clock) -> None:
    result = sync.lease(local, central, NIKS[:6], desk=A, actor="clerk-a", ttl=8 * HOURS)
    assert len(result.granted) == 6 and result.refused == ()
    # desk B, online, tries the same NIKs while A works offline
    for nik in NIKS[:6]:
        with pytest.raises(DuplicateActiveCardError):
            central.reserve(f"B-{nik[-2:]}", nik, desk=B, actor="clerk-b")
    assert [r.reason for r in central.lease(NIKS[:2], desk=B, actor="clerk-b", ttl=HOURS).refused] == [
        REASON_LEASED, REASON_LEASED]
    for i in range(4):
        local.reserve(f"A-{i}", NIKS[i], desk=A, actor="clerk-a", batch="B1")
        local.confirm(f"A-{i}", sod_sha256=sod(f"A-{i}"), desk=A, actor="clerk-a")
    local.reserve("A-4", NIKS[4], desk=A, actor="clerk-a", batch="B1")
    local.spoil("A-4", "read back failed", desk=A, actor="clerk-a")
    local.reserve("A-4b", NIKS[4], desk=A, actor="clerk-a", batch="B1")
    local.confirm("A-4b", sod_sha256=sod("A-4b"), desk=A, actor="clerk-a")
    local.hand_over("A-0", desk=A, actor="clerk-a")
    local.reserve("A-5", NIKS[5], desk=A, actor="clerk-a", batch="B1")
    local.confirm("A-5", sod_sha256=sod("A-5"), desk=A, actor="clerk-a")
    # A stays offline past its lease: the central registry lets B issue NIKS[5] after the expiry
    central_clock.jump(9 * HOURS)
    central.reserve("B-5", NIKS[5], desk=B, actor="clerk-b")


def _check_synced(local: Registry, central: Registry) -> None:
    states = {c.serial: (c.state, c.desk) for c in central.cards()}
    assert states == {
        "A-0": (CardState.HANDED_OVER, A), "A-1": (CardState.PERSONALISED, A),
        "A-2": (CardState.PERSONALISED, A), "A-3": (CardState.PERSONALISED, A),
        "A-4": (CardState.SPOILED, A), "A-4b": (CardState.PERSONALISED, A), "B-5": (CardState.PENDING, B),
    }
    for card in central.cards(desk=A):
        here = local.get(card.serial)
        assert here is not None and (card.created_at, card.sod_sha256, card.batch) == (
            here.created_at, here.sod_sha256, here.batch)
    for nik in NIKS[:6]:
        assert len([c for c in central.cards_for(nik) if c.live]) == 1
    # the issued NIKs' leases are used up; only the one A could not sync is left (expired)
    assert [lease.nik for lease in central.leases(A, include_expired=True)] == [NIKS[5]]
    # every local entry is on the central registry exactly once, as a sync entry with its seq and hash
    synced = [e for e in central.audit_entries() if e.action.startswith("sync:")]
    local_entries = local.audit_entries()
    assert [(e.details["local_seq"], e.details["local_hash"]) for e in synced] == [
        (e.seq, e.hash) for e in local_entries]
    assert [e.action for e in synced] == [f"sync:{e.action}" for e in local_entries]
    assert {e.details["origin"] for e in synced} == {local.registry_id}
    assert central.verify_chain() is None and local.verify_chain() is None


def test_offline_issue_then_sync_while_other_desk_tries(
    local: Registry, central: Registry, central_clock: Clock
) -> None:
    _issue_offline(local, central, central_clock)
    head = central.audit_head()
    dry = sync.sync(local, central, dry_run=True)
    assert dry.dry_run and dry.count("pending") == len(local.audit_entries()) == 16
    assert central.audit_head() == head  # a dry run changes nothing
    report = sync.sync(local, central)
    assert (report.desk, report.origin, report.dry_run) == (A, local.registry_id, False)
    assert [(i.action, i.serial) for i in report.refused] == [("reserve", "A-5"), ("confirm", "A-5")]
    assert report.refused[0].reason == "card A-5: this NIK already has a live card"
    assert report.refused[1].reason == "card A-5 is not in the registry"
    assert (report.count("applied"), report.count("recorded"), report.leases_released) == (13, 1, 5)
    assert [i.outcome for i in report.items][0] == "recorded"  # the lease adoption
    refusal = [e for e in central.audit_entries() if e.details.get("outcome") == "refused"]
    assert [e.details["serial"] for e in refusal] == ["A-5", "A-5"]
    _check_synced(local, central)
    # a second sync changes nothing more
    head = central.audit_head()
    again = sync.sync(local, central)
    assert again.items == () and central.audit_head() == head
    # a later change on the desk goes up on the next sync
    local.activate("A-0", desk=A, actor="clerk-a")
    later = sync.sync(local, central)
    assert [(i.action, i.outcome) for i in later.items] == [("state:active", "applied")]
    card = central.get("A-0")
    assert card is not None and card.state is CardState.ACTIVE


def test_sync_interrupted_by_an_exception_then_again(
    local: Registry, central: Registry, central_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _issue_offline(local, central, central_clock)
    original = central._record_remote
    calls = 0

    def power_cut(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        original(*args, **kwargs)  # type: ignore[arg-type]
        if calls == 7:
            raise RuntimeError("power cut")  # inside the central transaction, after its writes

    monkeypatch.setattr(central, "_record_remote", power_cut)
    with pytest.raises(RuntimeError, match="power cut"):
        sync.sync(local, central)
    monkeypatch.undo()
    assert central.synced_upto(local.registry_id)[0] == 6  # entry 7 rolled back with its change
    report = sync.sync(local, central)
    assert report.items[0].local_seq == 7 and len(report.items) == 10
    _check_synced(local, central)
    assert sync.sync(local, central).items == ()


def test_database_error_is_retried_not_refused(
    local: Registry, central: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync.lease(local, central, NIKS[:1], desk=A, actor="a", ttl=HOURS)
    local.reserve("A-0", NIKS[0], desk=A, actor="a")

    def connection_lost(entry: object) -> None:
        raise DatabaseError("registry database error: server closed the connection")

    monkeypatch.setattr(central, "_apply", connection_lost)
    with pytest.raises(DatabaseError):
        sync.sync(local, central)
    monkeypatch.undo()
    assert central.synced_upto(local.registry_id)[0] == 0
    report = sync.sync(local, central)
    assert [i.outcome for i in report.items] == ["recorded", "applied"]


_KILLER = """
import os, signal, sys
from ektp_card.desk import sync
from ektp_card.desk.backend import DatabaseError
from ektp_card.desk.registry import open_registry
local, central, at = open_registry(sys.argv[1]), open_registry(sys.argv[2]), int(sys.argv[3])
original, calls = central._record_remote, [0]
def dying(*args, **kwargs):
    original(*args, **kwargs)
    calls[0] += 1
    if calls[0] == at:
        os.kill(os.getpid(), signal.SIGKILL)  # before COMMIT: the transaction dies with the process
central._record_remote = dying
sync.sync(local, central)
"""


def test_sync_killed_mid_transaction_then_again(
    local: Registry, central: Registry, central_clock: Clock, local_path: Path, central_target: str
) -> None:
    _issue_offline(local, central, central_clock)
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(local_path), central_target, "10"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -9, proc.stderr
    with open_registry(central_target) as fresh:
        assert fresh.synced_upto(local.registry_id)[0] == 9
        report = sync.sync(local, fresh)
        assert [i.local_seq for i in report.items] == list(range(10, 17))
        _check_synced(local, fresh)
        assert sync.sync(local, fresh).items == ()


def test_tampered_local_log_is_not_synced(
    local: Registry, central: Registry, local_path: Path, raw_db: type[RawDb]
) -> None:
    sync.lease(local, central, NIKS[:1], desk=A, actor="a", ttl=HOURS)
    local.reserve("A-0", NIKS[0], desk=A, actor="a")
    assert len(sync.sync(local, central).items) == 2
    local.confirm("A-0", sod_sha256=sod("A-0"), desk=A, actor="a")
    raw = raw_db(str(local_path))
    raw.drop_audit_triggers()
    raw.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    raw.close()
    with pytest.raises(RegistryError, match="does not verify at entry 3"):
        sync.sync(local, central)
    # a log rewritten from scratch (chain recomputed) no longer holds what central took at entry 2
    raw = raw_db(str(local_path))
    raw.execute("DELETE FROM audit")
    raw.close()
    with pytest.raises(RegistryError, match="differs from what the central registry took at entry 2"):
        sync.sync(local, central)


def test_read_nik_file(tmp_path: Path) -> None:
    plain = tmp_path / "niks.txt"
    plain.write_text(f"# batch 7\n{NIKS[0]}\n\n{NIKS[1]}  # second\n{NIKS[0]}\n")
    assert sync.read_nik_file(plain) == NIKS[:2]
    table = tmp_path / "batch.csv"
    table.write_text(f"nik,name\n{NIKS[2]},SITI\n{NIKS[3]},BUDI\n")
    assert sync.read_nik_file(table) == NIKS[2:4]
    lines = tmp_path / "batch.jsonl"
    lines.write_text(json.dumps({"nik": NIKS[4], "name": "X"}) + "\n\n" + json.dumps({"nik": NIKS[5]}) + "\n")
    assert sync.read_nik_file(lines) == NIKS[4:6]
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{NIKS[0]}\n3174-0125\n")
    with pytest.raises(RegistryError, match="line 2: not a 16-digit NIK") as info:
        sync.read_nik_file(bad)
    assert "3174-0125" not in str(info.value)
    (tmp_path / "nocol.csv").write_text("id\n1\n")
    with pytest.raises(RegistryError, match="no 'nik' column"):
        sync.read_nik_file(tmp_path / "nocol.csv")


# -- the commands ----------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_cli_lease_and_sync(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EKTP_REGISTRY", "EKTP_CENTRAL_REGISTRY", "EKTP_DESK", "EKTP_ACTOR"):
        monkeypatch.delenv(name, raising=False)
    central_path, local_path = str(tmp_path / "central.sqlite"), str(tmp_path / "local.sqlite")
    with open_registry(central_path) as central:
        central.register("B-9", NIKS[9], desk=B, actor="b")
    niks = tmp_path / "niks.txt"
    niks.write_text("\n".join(NIKS[:3]) + "\n")
    both = ["--central", central_path, "--local", local_path]
    who = ["--desk", A, "--actor", "clerk-a"]
    code, out, err = run_cli(capsys, "desk", "lease", str(niks), *both, "--ttl", "8", *who)
    assert (code, err) == (0, "") and out.startswith(f"Leased 3 NIK(s) to desk {A} until ")
    niks.write_text(f"{NIKS[0]}\n{NIKS[9]}\n")
    code, out, _ = run_cli(capsys, "--json", "desk", "lease", str(niks), *both, "--ttl", "8", *who)
    data = json.loads(out)
    assert code == ExitCode.PARTIAL
    assert (data["granted"], data["refused"]) == ([NIKS[0]], [{"nik": NIKS[9], "reason": REASON_LIVE}])
    with open_registry(local_path) as local:
        local.reserve("A-0", NIKS[0], desk=A, actor="clerk-a")
        local.confirm("A-0", sod_sha256=sod("A-0"), desk=A, actor="clerk-a")
    code, out, _ = run_cli(capsys, "--json", "desk", "sync", *both, "--dry-run")
    data = json.loads(out)
    assert code == 0 and data["dry_run"] and data["counts"] == {"pending": 4} and data["desk"] == A
    assert [(e["local_seq"], e["action"], e["serial"]) for e in data["entries"]] == [
        (1, "lease:adopt", None), (2, "lease:adopt", None), (3, "reserve", "A-0"), (4, "confirm", "A-0")]
    code, out, _ = run_cli(capsys, "desk", "sync", *both, "--dry-run")
    assert code == 0 and "Pending changes (dry run)" in out and "4 change(s) pending." in out
    code, out, _ = run_cli(capsys, "desk", "sync", *both)
    assert code == 0 and "applied 2, recorded 2, refused 0, already synced 0; leases used up 1." in out
    code, out, _ = run_cli(capsys, "desk", "sync", *both)
    assert code == 0 and out.startswith("Nothing to sync")
    with open_registry(central_path) as central:
        card = central.get("A-0")
        assert card is not None and card.state is CardState.PERSONALISED
        # a card the central registry refuses makes the sync exit 9 and say why
        central.revoke("A-0", "reported stolen at the central office", desk=B, actor="b")
    with open_registry(local_path) as local:
        local.hand_over("A-0", desk=A, actor="clerk-a")
    code, out, _ = run_cli(capsys, "--json", "desk", "sync", *both)
    data = json.loads(out)
    assert code == ExitCode.PARTIAL and data["counts"] == {"refused": 1}
    assert data["entries"][0]["reason"] == "card A-0: cannot go from revoked to handed_over"
    # errors: one line and a documented exit code
    code, _, err = run_cli(capsys, "desk", "sync", "--central", central_path, "--local", "postgresql://x/y")
    assert code == ExitCode.USAGE and "not a PostgreSQL URL" in err
    code, _, err = run_cli(capsys, "desk", "sync", "--central", "postgresql://ektp@127.0.0.1:1/x",
                           "--local", local_path)
    assert code == ExitCode.REGISTRY and "cannot reach the PostgreSQL registry" in err
    assert "Traceback" not in err
