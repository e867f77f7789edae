"""Card registry and audit chain on SQLite: constraints in the database, life cycle, races, tampering."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ektp_card.desk import audit
from ektp_card.desk.registry import (
    TRANSITIONS,
    CardState,
    DuplicateActiveCardError,
    Registry,
    RegistryError,
)
from ektp_card.errors import EktpError

NIK = "3174012501900001"
OTHER_NIK = "3174012501900002"
DESK = "desk-jkt-01"
ACTOR = "officer-7"


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "registry.sqlite"


@pytest.fixture
def reg(db: Path) -> Iterator[Registry]:
    registry = Registry(db, clock=_Clock())
    yield registry
    registry.close()


def _raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(db), isolation_level=None)


def _insert_raw(conn: sqlite3.Connection, serial: str, nik: str, state: str = "personalised") -> None:
    conn.execute(
        "INSERT INTO cards (serial, nik, state, desk, created_at, updated_at, surrendered)"
        " VALUES (?, ?, ?, 'x', 't', 't', 0)",
        (serial, nik, state),
    )


# -- schema and pragmas ------------------------------------------------------------------------------


def test_pragmas_and_schema_version(reg: Registry, db: Path) -> None:
    conn = reg.connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert reg.schema_version == 1


def test_migrations_idempotent_on_reopen(db: Path) -> None:
    with Registry(db) as first:
        first.register("S1", NIK, desk=DESK, actor=ACTOR)
    for _ in range(3):
        with Registry(db) as again:
            assert again.schema_version == 1
            assert again.get("S1") is not None
    with _raw(db) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]


def test_newer_schema_refused(db: Path) -> None:
    Registry(db).close()
    conn = _raw(db)
    conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    conn.close()
    with pytest.raises(RegistryError, match="newer"):
        Registry(db)


# -- constraints hold with the code bypassed --------------------------------------------------------


def test_raw_sql_second_live_card_for_nik_fails(reg: Registry, db: Path) -> None:
    reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    conn = _raw(db)
    with pytest.raises(sqlite3.IntegrityError, match="cards.nik"):
        _insert_raw(conn, "S2", NIK)
    # after moving S1 to active it is still live
    conn.execute("UPDATE cards SET state = 'handed_over' WHERE serial = 'S1'")
    conn.execute("UPDATE cards SET state = 'active' WHERE serial = 'S1'")
    with pytest.raises(sqlite3.IntegrityError):
        _insert_raw(conn, "S2", NIK)
    _insert_raw(conn, "S3", OTHER_NIK)  # another NIK is fine
    conn.close()


def test_raw_sql_duplicate_serial_fails(reg: Registry, db: Path) -> None:
    reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    conn = _raw(db)
    with pytest.raises(sqlite3.IntegrityError, match="cards.serial"):
        _insert_raw(conn, "S1", OTHER_NIK)
    conn.close()


def test_raw_sql_lost_without_report_and_damaged_without_surrender_fail(reg: Registry, db: Path) -> None:
    reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    conn = _raw(db)
    conn.execute("UPDATE cards SET state = 'handed_over' WHERE serial = 'S1'")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE cards SET state = 'lost' WHERE serial = 'S1'")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE cards SET state = 'lost', police_report = '  ' WHERE serial = 'S1'")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE cards SET state = 'damaged' WHERE serial = 'S1'")
    conn.execute("UPDATE cards SET state = 'lost', police_report = 'LP/123/2026' WHERE serial = 'S1'")
    conn.close()


def test_raw_sql_illegal_transition_and_bad_rows_fail(reg: Registry, db: Path) -> None:
    reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    conn = _raw(db)
    with pytest.raises(sqlite3.IntegrityError, match="transition not allowed"):
        conn.execute("UPDATE cards SET state = 'active' WHERE serial = 'S1'")  # skips handed_over
    conn.execute("UPDATE cards SET state = 'revoked' WHERE serial = 'S1'")
    with pytest.raises(sqlite3.IntegrityError, match="transition not allowed"):
        conn.execute("UPDATE cards SET state = 'personalised' WHERE serial = 'S1'")  # out of terminal
    with pytest.raises(sqlite3.IntegrityError, match="never change"):
        conn.execute("UPDATE cards SET nik = ? WHERE serial = 'S1'", (OTHER_NIK,))
    with pytest.raises(sqlite3.IntegrityError, match="starts personalised"):
        _insert_raw(conn, "S9", OTHER_NIK, state="active")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        _insert_raw(conn, "S9", "31740125019000X1")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        _insert_raw(conn, "S9", "317401250190")
    conn.close()


@pytest.mark.parametrize("old", list(CardState))
@pytest.mark.parametrize("new", list(CardState))
def test_database_trigger_matches_transition_table(tmp_path: Path, old: CardState, new: CardState) -> None:
    db = tmp_path / "r.sqlite"
    Registry(db).close()
    conn = _raw(db)
    _insert_raw(conn, "S1", NIK)
    # walk to `old` along allowed edges
    path = {
        CardState.PERSONALISED: [],
        CardState.HANDED_OVER: ["handed_over"],
        CardState.ACTIVE: ["handed_over", "active"],
        CardState.LOST: ["handed_over", "lost"],
        CardState.DAMAGED: ["damaged"],
        CardState.REVOKED: ["revoked"],
    }[old]
    for step in path:
        conn.execute("UPDATE cards SET state = ?, police_report = 'P', surrendered = 1 WHERE serial = 'S1'",
                     (step,))
    update = "UPDATE cards SET state = ?, police_report = 'P', surrendered = 1 WHERE serial = 'S1'"
    if new in TRANSITIONS[old] or new is old:
        conn.execute(update, (str(new),))
    else:
        with pytest.raises(sqlite3.IntegrityError, match="transition not allowed"):
            conn.execute(update, (str(new),))
    conn.close()


# -- the API ----------------------------------------------------------------------------------------


def test_life_cycle_and_audit_in_same_transaction(reg: Registry) -> None:
    row = reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    assert (row.serial, row.nik, row.state, row.desk) == ("S1", NIK, CardState.PERSONALISED, DESK)
    assert row.live and row.reason is None and row.police_report is None and not row.surrendered
    assert row.created_at == "2026-01-02T03:04:06.000000+00:00"
    assert reg.hand_over("S1", desk=DESK, actor=ACTOR).state is CardState.HANDED_OVER
    active = reg.activate("S1", desk=DESK, actor=ACTOR)
    assert active.state is CardState.ACTIVE and active.created_at == row.created_at
    assert active.updated_at == "2026-01-02T03:04:08.000000+00:00"
    entries = reg.audit_entries()
    assert [e.action for e in entries] == ["register", "state:handed_over", "state:active"]
    assert entries[0].details == {"serial": "S1", "nik": NIK}
    assert entries[2].details == {"serial": "S1", "from": "handed_over", "to": "active"}
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == audit.GENESIS_HASH and entries[1].prev_hash == entries[0].hash
    assert reg.verify_chain() is None


def test_refused_mutation_writes_no_audit(reg: Registry) -> None:
    reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    with pytest.raises(DuplicateActiveCardError) as info:
        reg.register("S2", NIK, desk=DESK, actor=ACTOR)
    assert NIK not in str(info.value)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("S1", OTHER_NIK, desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="cannot go from personalised to active"):
        reg.activate("S1", desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="not in the registry"):
        reg.hand_over("S404", desk=DESK, actor=ACTOR)
    assert len(reg.audit_entries()) == 1
    assert reg.get("S2") is None


def test_invalid_nik_rejected_by_database(reg: Registry) -> None:
    with pytest.raises(RegistryError, match="refused"):
        reg.register("S1", "12345", desk=DESK, actor=ACTOR)
    assert reg.audit_entries() == []


def test_lost_needs_report_damaged_needs_surrender(reg: Registry) -> None:
    reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    reg.hand_over("S1", desk=DESK, actor=ACTOR)
    reg.activate("S1", desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="police report"):
        reg.report_lost("S1", "", desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="police report"):
        reg.report_lost("S1", "   ", desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="surrendered"):
        reg.report_damaged("S1", surrendered=False, desk=DESK, actor=ACTOR)
    lost = reg.report_lost("S1", "LP/B/123/I/2026", desk=DESK, actor=ACTOR)
    assert lost.state is CardState.LOST and lost.police_report == "LP/B/123/I/2026" and not lost.live
    with pytest.raises(RegistryError, match="cannot go from lost to revoked"):
        reg.revoke("S1", "fraud", desk=DESK, actor=ACTOR)
    assert reg.audit_entries()[-1].details["police_report"] == "LP/B/123/I/2026"


def test_replacement_flow(reg: Registry) -> None:
    reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    reg.hand_over("S1", desk=DESK, actor=ACTOR)
    reg.activate("S1", desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="is active"):
        reg.replace("S1", "S2", desk=DESK, actor=ACTOR)
    with pytest.raises(DuplicateActiveCardError):
        reg.register("S2", NIK, desk=DESK, actor=ACTOR)
    damaged = reg.report_damaged("S1", surrendered=True, desk=DESK, actor=ACTOR)
    assert damaged.surrendered and damaged.state is CardState.DAMAGED
    new = reg.replace("S1", "S2", desk=DESK, actor=ACTOR)
    assert (new.serial, new.nik, new.state) == ("S2", NIK, CardState.PERSONALISED)
    assert reg.live_card(NIK) == new
    assert [c.serial for c in reg.cards_for(NIK)] == ["S1", "S2"]
    last = reg.audit_entries()[-1]
    assert last.action == "replace"
    assert last.details == {"serial": "S2", "nik": NIK, "replaces": "S1", "old_state": "damaged"}
    # the replacement can itself be revoked and replaced by plain registration
    reg.revoke("S2", "printing defect", desk=DESK, actor=ACTOR)
    assert reg.get("S2") is not None and reg.get("S2").reason == "printing defect"  # type: ignore[union-attr]
    reg.register("S3", NIK, desk=DESK, actor=ACTOR)
    assert reg.live_card(NIK) is not None and reg.live_card(NIK).serial == "S3"  # type: ignore[union-attr]
    with pytest.raises(DuplicateActiveCardError):
        reg.replace("S2", "S4", desk=DESK, actor=ACTOR)
    assert reg.verify_chain() is None


def test_errors_are_ektp_errors() -> None:
    assert issubclass(DuplicateActiveCardError, RegistryError)
    assert issubclass(RegistryError, EktpError)


# -- races ------------------------------------------------------------------------------------------


def test_eight_threads_race_on_one_nik(db: Path) -> None:
    Registry(db).close()
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def desk(i: int) -> None:
        with Registry(db, busy_timeout=10.0) as registry:
            barrier.wait()
            try:
                registry.register(f"T{i}", NIK, desk=f"desk-{i}", actor=ACTOR)
                result = "won"
            except DuplicateActiveCardError:
                result = "dup"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=desk, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(outcomes) == ["dup"] * 7 + ["won"]
    with Registry(db) as registry:
        assert len(registry.cards_for(NIK)) == 1
        assert len(registry.audit_entries()) == 1
        assert registry.verify_chain() is None


_RACER = """
import sys, time
from pathlib import Path
from ektp_card.desk.registry import DuplicateActiveCardError, Registry
db, serial, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
with Registry(db, busy_timeout=10.0) as registry:
    while not go.exists():
        time.sleep(0.001)
    try:
        registry.register(serial, "NIK_VALUE", desk=serial, actor="racer")
        print("won")
    except DuplicateActiveCardError:
        print("dup")
""".replace("NIK_VALUE", NIK)


def test_two_processes_race_on_one_nik(db: Path, tmp_path: Path) -> None:
    Registry(db).close()
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACER, str(db), f"P{i}", str(go)], stdout=subprocess.PIPE,
                         text=True)
        for i in range(2)
    ]
    time.sleep(0.3)  # let both open the registry before the start signal
    go.touch()
    outputs = sorted(p.communicate(timeout=30)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == ["dup", "won"]
    with Registry(db) as registry:
        live = registry.live_card(NIK)
        assert live is not None and len(registry.cards_for(NIK)) == 1


# -- audit tampering --------------------------------------------------------------------------------


def _five_entries(db: Path) -> audit.AuditAnchor:
    with Registry(db, clock=_Clock()) as registry:
        registry.register("S1", NIK, desk=DESK, actor=ACTOR)          # 1
        registry.hand_over("S1", desk=DESK, actor=ACTOR)              # 2
        registry.activate("S1", desk=DESK, actor=ACTOR)               # 3
        registry.register("S2", OTHER_NIK, desk=DESK, actor=ACTOR)    # 4
        registry.revoke("S2", "misprint", desk=DESK, actor=ACTOR)     # 5
        assert registry.verify_chain() is None
        return registry.audit_head()


def _tamper(db: Path, *statements: str) -> audit.ChainProblem | None:
    conn = _raw(db)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    for statement in statements:
        conn.execute(statement)
    conn.close()
    with Registry(db) as registry:
        return registry.verify_chain()


def test_audit_triggers_block_plain_sql(db: Path) -> None:
    _five_entries(db)
    conn = _raw(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'x' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit WHERE seq = 5")
    conn.close()


def test_audit_edit_detected(db: Path) -> None:
    _five_entries(db)
    problem = _tamper(db, "UPDATE audit SET actor = 'someone-else' WHERE seq = 3")
    assert problem == audit.ChainProblem(3, "hash does not match the entry's content")


def test_audit_edit_with_rehash_detected_at_next(db: Path) -> None:
    _five_entries(db)
    conn = _raw(db)
    row = conn.execute("SELECT seq, at, actor, desk, action, prev_hash FROM audit WHERE seq = 2").fetchone()
    forged = audit.entry_hash(row[0], row[1], "intruder", row[3], row[4], {"serial": "S1"}, row[5])
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute(
        "UPDATE audit SET actor = 'intruder', details = ?, hash = ? WHERE seq = 2",
        ('{"serial":"S1"}', forged),
    )
    conn.close()
    with Registry(db) as registry:
        problem = registry.verify_chain()
    assert problem == audit.ChainProblem(3, "prev_hash does not match the previous entry's hash")


def test_audit_delete_detected(db: Path) -> None:
    _five_entries(db)
    problem = _tamper(db, "DELETE FROM audit WHERE seq = 3")
    assert problem is not None and problem.seq == 3 and "missing" in problem.reason


def test_audit_swap_detected(db: Path) -> None:
    _five_entries(db)
    problem = _tamper(
        db,
        "UPDATE audit SET seq = -2 WHERE seq = 2",
        "UPDATE audit SET seq = 2 WHERE seq = 4",
        "UPDATE audit SET seq = 4 WHERE seq = -2",
    )
    assert problem is not None and problem.seq == 2


def test_audit_tail_truncation_needs_anchor(db: Path) -> None:
    anchor = _five_entries(db)
    assert anchor.seq == 5
    assert _tamper(db, "DELETE FROM audit WHERE seq = 5") is None  # invisible without an anchor
    with Registry(db) as registry:
        assert registry.verify_chain(anchor) == audit.ChainProblem(5, "log ends before the anchored entry 5")


def test_audit_full_rewrite_caught_by_anchor(db: Path) -> None:
    anchor = _five_entries(db)
    conn = _raw(db)
    rows = conn.execute("SELECT seq, at, actor, desk, action, details FROM audit ORDER BY seq").fetchall()
    conn.execute("DROP TRIGGER audit_no_update")
    prev = audit.GENESIS_HASH
    for seq, at, actor, desk, action, details in rows:
        actor = "intruder" if seq == 1 else actor
        digest = audit.entry_hash(seq, at, actor, desk, action, json.loads(details), prev)
        conn.execute(
            "UPDATE audit SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?", (actor, prev, digest, seq)
        )
        prev = digest
    conn.close()
    with Registry(db) as registry:
        assert registry.verify_chain() is None
        assert registry.verify_chain(anchor) == audit.ChainProblem(5, "hash differs from the anchored head")


def test_audit_append_needs_transaction(db: Path) -> None:
    with Registry(db) as registry, pytest.raises(RuntimeError, match="transaction"):
        audit.append(registry.connection, at="t", actor="a", desk="d", action="x", details={})
