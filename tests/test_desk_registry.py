"""Card registry and audit chain on SQLite and PostgreSQL: constraints in the database, life cycle,
reservations, migrations, races, tampering. Every test taking ``target`` runs on both databases."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ektp_card.desk import audit
from ektp_card.desk.backend import Backend, SqliteBackend
from ektp_card.desk.registry import (
    MIGRATIONS,
    TRANSITIONS,
    CardState,
    DuplicateActiveCardError,
    Registry,
    RegistryError,
    open_registry,
)
from ektp_card.errors import EktpError

if TYPE_CHECKING:
    from fixtures.postgres import RegistryTarget
    from pg_server import RawDb

NIK = "3174012501900001"
OTHER_NIK = "3174012501900002"
DESK = "desk-jkt-01"
ACTOR = "officer-7"
SOD = hashlib.sha256(b"EF.SOD of S1").hexdigest()
SOD2 = hashlib.sha256(b"EF.SOD of S2").hexdigest()

# Constraint names differ by database; the trigger messages are the same on both.
LIVE_NIK = r"cards\.nik|cards_one_live_per_nik"
SERIAL = r"cards\.serial|cards_pkey"
CHECK = r"CHECK constraint|check constraint"


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path, registry_target: RegistryTarget) -> str:
    return registry_target(request, tmp_path)


@pytest.fixture
def reg(target: str) -> Iterator[Registry]:
    registry = open_registry(target, clock=_Clock())
    yield registry
    registry.close()


@pytest.fixture
def raw(target: str, reg: Registry, raw_db: type[RawDb]) -> Iterator[RawDb]:
    conn = raw_db(target)
    yield conn
    conn.close()


def _insert_raw(raw: RawDb, serial: str, nik: str, state: str = "personalised") -> None:
    raw.execute(
        "INSERT INTO cards (serial, nik, state, desk, created_at, updated_at, surrendered)"
        " VALUES (?, ?, ?, 'x', 't', 't', 0)",
        (serial, nik, state),
    )


# -- schema, pragmas, migrations --------------------------------------------------------------------


def test_sqlite_pragmas_and_schema_version(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.sqlite") as reg:
        conn = reg.connection
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert reg.schema_version == 3 == len(MIGRATIONS)
        assert reg.backend.dialect == "sqlite"


def test_migrations_idempotent_on_reopen(target: str, raw_db: type[RawDb]) -> None:
    with open_registry(target) as first:
        first.register("S1", NIK, desk=DESK, actor=ACTOR)
        registry_id = first.registry_id
    assert len(registry_id) == 36
    for _ in range(3):
        with open_registry(target) as again:
            assert again.schema_version == 3
            assert again.get("S1") is not None
            assert again.registry_id == registry_id
    raw = raw_db(target)
    assert raw.execute("SELECT version FROM schema_version ORDER BY version") == [(1,), (2,), (3,)]
    raw.close()


def test_newer_schema_refused(target: str, raw_db: type[RawDb]) -> None:
    open_registry(target).close()
    raw = raw_db(target)
    raw.execute("INSERT INTO schema_version (version) VALUES (99)")
    raw.close()
    with pytest.raises(RegistryError, match="newer"):
        open_registry(target)


def _backend(target: str) -> Backend:
    if target.startswith("postgresql://"):
        from ektp_card.desk.postgres import PostgresBackend

        return PostgresBackend.connect(target)
    return SqliteBackend.open(target)


def test_upgrade_from_schema_1_keeps_cards_and_chain(target: str) -> None:
    db = _backend(target)
    with db.write():
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in db.migration(1, MIGRATIONS[0]):
            db.execute(statement)
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        db.execute(
            "INSERT INTO cards (serial, nik, state, desk, created_at, updated_at, reason, police_report,"
            " surrendered) VALUES ('OLD1', ?, 'personalised', 'd', 't1', 't1', NULL, NULL, 0)", (NIK,)
        )
        audit.append(db, at="t1", actor="a", desk="d", action="register",
                     details={"serial": "OLD1", "nik": NIK})
    with db.write(), pytest.raises(EktpError, match="starts personalised"):  # the schema-1 rule
        db.execute(
            "INSERT INTO cards (serial, nik, state, desk, created_at, updated_at, surrendered)"
            " VALUES ('X', ?, 'active', 'd', 't', 't', 0)", (OTHER_NIK,)
        )
    db.close()
    with open_registry(target, clock=_Clock()) as reg:
        assert reg.schema_version == 3
        old = reg.get("OLD1")
        assert old is not None and old.state is CardState.PERSONALISED and old.batch is None
        assert reg.verify_chain() is None and len(reg.audit_entries()) == 1
        with pytest.raises(DuplicateActiveCardError):
            reg.reserve("NEW1", NIK, desk=DESK, actor=ACTOR)
        reg.reserve("NEW2", OTHER_NIK, desk=DESK, actor=ACTOR, batch="B-7")
        assert reg.confirm("NEW2", sod_sha256=SOD, desk=DESK, actor=ACTOR).sod_sha256 == SOD
        assert reg.verify_chain() is None


# -- constraints hold with the code bypassed --------------------------------------------------------


def test_raw_sql_second_live_card_for_nik_fails(reg: Registry, raw: RawDb) -> None:
    reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    with pytest.raises(raw.errors, match=LIVE_NIK):
        _insert_raw(raw, "S2", NIK)
    with pytest.raises(raw.errors, match=LIVE_NIK):
        _insert_raw(raw, "S2", NIK, state="pending")
    # after moving S1 to active it is still live
    raw.execute("UPDATE cards SET state = 'handed_over' WHERE serial = 'S1'")
    raw.execute("UPDATE cards SET state = 'active' WHERE serial = 'S1'")
    with pytest.raises(raw.errors, match=LIVE_NIK):
        _insert_raw(raw, "S2", NIK)
    _insert_raw(raw, "S3", OTHER_NIK)  # another NIK is fine


def test_raw_sql_pending_card_blocks_nik(reg: Registry, raw: RawDb) -> None:
    reg.reserve("S1", NIK, desk=DESK, actor=ACTOR)
    with pytest.raises(raw.errors, match=LIVE_NIK):
        _insert_raw(raw, "S2", NIK)
    raw.execute("UPDATE cards SET state = 'spoiled', reason = 'jam' WHERE serial = 'S1'")
    _insert_raw(raw, "S2", NIK)  # a spoiled card is not live


def test_raw_sql_duplicate_serial_fails(reg: Registry, raw: RawDb) -> None:
    reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    with pytest.raises(raw.errors, match=SERIAL):
        _insert_raw(raw, "S1", OTHER_NIK)


def test_raw_sql_lost_without_report_and_damaged_without_surrender_fail(reg: Registry, raw: RawDb) -> None:
    reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    raw.execute("UPDATE cards SET state = 'handed_over' WHERE serial = 'S1'")
    with pytest.raises(raw.errors, match=CHECK):
        raw.execute("UPDATE cards SET state = 'lost' WHERE serial = 'S1'")
    with pytest.raises(raw.errors, match=CHECK):
        raw.execute("UPDATE cards SET state = 'lost', police_report = '  ' WHERE serial = 'S1'")
    with pytest.raises(raw.errors, match=CHECK):
        raw.execute("UPDATE cards SET state = 'damaged' WHERE serial = 'S1'")
    raw.execute("UPDATE cards SET state = 'lost', police_report = 'LP/123/2026' WHERE serial = 'S1'")


def test_raw_sql_illegal_transition_and_bad_rows_fail(reg: Registry, raw: RawDb) -> None:
    reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    with pytest.raises(raw.errors, match="transition not allowed"):
        raw.execute("UPDATE cards SET state = 'active' WHERE serial = 'S1'")  # skips handed_over
    raw.execute("UPDATE cards SET state = 'revoked' WHERE serial = 'S1'")
    with pytest.raises(raw.errors, match="transition not allowed"):
        raw.execute("UPDATE cards SET state = 'personalised' WHERE serial = 'S1'")  # out of terminal
    with pytest.raises(raw.errors, match="never change"):
        raw.execute("UPDATE cards SET nik = ? WHERE serial = 'S1'", (OTHER_NIK,))
    with pytest.raises(raw.errors, match="starts pending or personalised"):
        _insert_raw(raw, "S9", OTHER_NIK, state="active")
    with pytest.raises(raw.errors, match=CHECK):
        _insert_raw(raw, "S9", "31740125019000X1")
    with pytest.raises(raw.errors, match=CHECK):
        _insert_raw(raw, "S9", "317401250190")


def test_raw_sql_sod_rules(reg: Registry, raw: RawDb) -> None:
    reg.reserve("S1", NIK, desk=DESK, actor=ACTOR)
    reg.reserve("S2", OTHER_NIK, desk=DESK, actor=ACTOR)
    with pytest.raises(raw.errors, match="only with its EF.SOD hash"):
        raw.execute("UPDATE cards SET state = 'personalised' WHERE serial = 'S1'")
    with pytest.raises(raw.errors, match=CHECK):  # a pending card has no EF.SOD yet
        raw.execute("UPDATE cards SET sod_sha256 = ? WHERE serial = 'S1'", (SOD,))
    with pytest.raises(raw.errors, match=CHECK):  # upper-case hex is not the canonical form
        raw.execute("UPDATE cards SET state = 'personalised', sod_sha256 = ? WHERE serial = 'S1'",
                    (SOD.upper(),))
    raw.execute("UPDATE cards SET state = 'personalised', sod_sha256 = ? WHERE serial = 'S1'", (SOD,))
    with pytest.raises(raw.errors, match=r"sod_sha256|cards_unique_sod"):
        raw.execute("UPDATE cards SET state = 'personalised', sod_sha256 = ? WHERE serial = 'S2'", (SOD,))
    with pytest.raises(raw.errors, match="never change once set"):
        raw.execute("UPDATE cards SET sod_sha256 = ? WHERE serial = 'S1'", (SOD2,))
    with pytest.raises(raw.errors, match="never change once set"):
        raw.execute("UPDATE cards SET batch = 'other' WHERE serial = 'S1'")
    with pytest.raises(raw.errors, match=CHECK):  # spoiled needs a reason
        raw.execute("UPDATE cards SET state = 'spoiled' WHERE serial = 'S2'")


_PATHS: dict[CardState, tuple[str, list[str]]] = {
    CardState.PENDING: ("pending", []),
    CardState.SPOILED: ("pending", ["spoiled"]),
    CardState.PERSONALISED: ("personalised", []),
    CardState.HANDED_OVER: ("personalised", ["handed_over"]),
    CardState.ACTIVE: ("personalised", ["handed_over", "active"]),
    CardState.LOST: ("personalised", ["handed_over", "lost"]),
    CardState.DAMAGED: ("personalised", ["damaged"]),
    CardState.REVOKED: ("personalised", ["revoked"]),
}


def test_database_trigger_matches_transition_table(reg: Registry, raw: RawDb) -> None:
    update = ("UPDATE cards SET state = ?, police_report = 'P', surrendered = 1, reason = 'R',"
              " sod_sha256 = coalesce(sod_sha256, ?) WHERE serial = ?")
    mismatches: list[str] = []
    for i, (old, new) in enumerate((o, n) for o in CardState for n in CardState):
        serial, nik = f"S{i}", f"{3174012501000000 + i}"
        first, steps = _PATHS[old]
        _insert_raw(raw, serial, nik, state=first)
        for step in steps:
            raw.execute(update, (step, hashlib.sha256(serial.encode()).hexdigest(), serial))
        sod = None if new is CardState.PENDING else hashlib.sha256(serial.encode()).hexdigest()
        try:
            raw.execute(update, (str(new), sod, serial))
            refused = False
        except raw.errors as exc:
            assert "transition not allowed" in str(exc)
            refused = True
        if refused != (new not in TRANSITIONS[old] and new is not old):
            mismatches.append(f"{old}>{new}")
    assert mismatches == []


# -- the API ----------------------------------------------------------------------------------------


def test_life_cycle_and_audit_in_same_transaction(reg: Registry) -> None:
    row = reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    assert (row.serial, row.nik, row.state, row.desk) == ("S1", NIK, CardState.PERSONALISED, DESK)
    assert row.live and row.reason is None and row.police_report is None and not row.surrendered
    assert row.batch is None and row.sod_sha256 is None
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
    assert [e.seq for e in reg.audit_entries(after=1)] == [2, 3]
    assert reg.verify_chain() is None


def test_reserve_confirm_spoil(reg: Registry) -> None:
    pending = reg.reserve("S1", NIK, desk=DESK, actor=ACTOR, batch="B-2026-01")
    assert (pending.state, pending.batch, pending.sod_sha256, pending.live) == (
        CardState.PENDING, "B-2026-01", None, True)
    assert reg.live_card(NIK) == pending
    with pytest.raises(DuplicateActiveCardError):
        reg.reserve("S2", NIK, desk="desk-other", actor=ACTOR)
    with pytest.raises(DuplicateActiveCardError):
        reg.register("S2", NIK, desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="confirmed with its EF.SOD hash"):
        reg.transition("S1", CardState.PERSONALISED, desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="spoiled card needs a reason"):
        reg.spoil("S1", "  ", desk=DESK, actor=ACTOR)
    why = "read back failed: DG2 hash"
    spoiled = reg.spoil("S1", why, desk=DESK, actor=ACTOR)
    assert (spoiled.state, spoiled.reason, spoiled.live) == (CardState.SPOILED, why, False)
    assert reg.live_card(NIK) is None
    with pytest.raises(RegistryError, match="cannot go from spoiled to personalised"):
        reg.confirm("S1", sod_sha256=SOD, desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="is spoiled"):
        reg.replace("S1", "S9", desk=DESK, actor=ACTOR)  # a spoiled card is not replaced, just reserved again
    reg.reserve("S2", NIK, desk=DESK, actor=ACTOR, batch="B-2026-01")
    for bad in ("", SOD.upper(), SOD[:-1], SOD + "0"):
        with pytest.raises(RegistryError, match="64 lower-case hex"):
            reg.confirm("S2", sod_sha256=bad, desk=DESK, actor=ACTOR)
    done = reg.confirm("S2", sod_sha256=SOD, desk=DESK, actor=ACTOR)
    assert (done.state, done.sod_sha256, done.batch) == (CardState.PERSONALISED, SOD, "B-2026-01")
    with pytest.raises(RegistryError, match="cannot go from personalised to personalised"):
        reg.confirm("S2", sod_sha256=SOD2, desk=DESK, actor=ACTOR)
    reg.reserve("S3", OTHER_NIK, desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="EF.SOD hash is already registered"):
        reg.confirm("S3", sod_sha256=SOD, desk=DESK, actor=ACTOR)
    assert reg.get("S3") is not None and reg.get("S3").state is CardState.PENDING  # type: ignore[union-attr]
    actions = [(e.action, e.details) for e in reg.audit_entries()]
    assert actions == [
        ("reserve", {"serial": "S1", "nik": NIK, "batch": "B-2026-01"}),
        ("state:spoiled", {"serial": "S1", "from": "pending", "to": "spoiled", "reason": why}),
        ("reserve", {"serial": "S2", "nik": NIK, "batch": "B-2026-01"}),
        ("confirm", {"serial": "S2", "from": "pending", "to": "personalised", "sod_sha256": SOD}),
        ("reserve", {"serial": "S3", "nik": OTHER_NIK}),
    ]
    assert reg.verify_chain() is None


def test_cards_filters(reg: Registry) -> None:
    reg.reserve("A1", NIK, desk="d1", actor=ACTOR, batch="B1")
    reg.reserve("A2", OTHER_NIK, desk="d2", actor=ACTOR, batch="B1")
    reg.register("A3", "3174012501900003", desk="d1", actor=ACTOR)
    reg.spoil("A1", "jam", desk="d1", actor=ACTOR)
    reg.reserve("A4", NIK, desk="d2", actor=ACTOR, batch="B2")

    def serials(**kwargs: object) -> list[str]:
        return [c.serial for c in reg.cards(**kwargs)]  # type: ignore[arg-type]

    assert serials() == ["A1", "A2", "A3", "A4"]
    assert serials(states=[CardState.PENDING]) == ["A2", "A4"]
    assert serials(states={CardState.SPOILED, CardState.PERSONALISED}) == ["A1", "A3"]
    assert serials(states=[]) == []
    assert serials(desk="d1") == ["A1", "A3"]
    assert serials(nik=NIK) == ["A1", "A4"]
    assert serials(batch="B1") == ["A1", "A2"]
    assert serials(batch="B1", desk="d2", states=[CardState.PENDING]) == ["A2"]
    assert [c.serial for c in reg.cards_for(NIK)] == ["A1", "A4"]


def test_refused_mutation_writes_no_audit(reg: Registry) -> None:
    reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    with pytest.raises(DuplicateActiveCardError) as info:
        reg.register("S2", NIK, desk=DESK, actor=ACTOR)
    assert NIK not in str(info.value)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("S1", OTHER_NIK, desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="already registered"):
        reg.reserve("S1", OTHER_NIK, desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="cannot go from personalised to active"):
        reg.activate("S1", desk=DESK, actor=ACTOR)
    with pytest.raises(RegistryError, match="not in the registry"):
        reg.hand_over("S404", desk=DESK, actor=ACTOR)
    assert len(reg.audit_entries()) == 1
    assert reg.get("S2") is None


def test_invalid_nik_rejected_by_database(reg: Registry) -> None:
    with pytest.raises(RegistryError, match="refused") as info:
        reg.register("S1", "12345", desk=DESK, actor=ACTOR)
    assert "12345" not in str(info.value)  # no row contents in messages
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


def test_open_registry_targets(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with open_registry(f"sqlite://{path}") as reg:
        reg.register("S1", NIK, desk=DESK, actor=ACTOR)
    with open_registry(str(path)) as reg, Registry(path) as same:
        assert reg.get("S1") == same.get("S1") is not None
    with pytest.raises(RegistryError, match="absolute path"):
        open_registry("sqlite://relative.sqlite")
    with pytest.raises(RegistryError, match="unknown registry URL scheme"):
        open_registry("mysql://host/db")
    with pytest.raises(RegistryError, match="cannot open registry"):
        open_registry(str(tmp_path / "missing-dir" / "r.sqlite"))


def test_unreachable_postgres_is_a_registry_error() -> None:
    with pytest.raises(RegistryError, match="cannot reach the PostgreSQL registry") as info:
        open_registry("postgresql://ektp:s3cret-pw@127.0.0.1:1/ektp", busy_timeout=2)
    assert "s3cret-pw" not in str(info.value)


# -- races ------------------------------------------------------------------------------------------


def test_eight_threads_race_on_one_nik(target: str) -> None:
    open_registry(target).close()
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def desk(i: int) -> None:
        with open_registry(target, busy_timeout=10.0) as registry:
            barrier.wait()
            try:
                registry.reserve(f"T{i}", NIK, desk=f"desk-{i}", actor=ACTOR)
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
    with open_registry(target) as registry:
        assert len(registry.cards_for(NIK)) == 1
        assert len(registry.audit_entries()) == 1
        assert registry.verify_chain() is None


_RACER = """
import sys, time
from pathlib import Path
from ektp_card.desk.registry import DuplicateActiveCardError, open_registry
db, serial, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
with open_registry(db, busy_timeout=10.0) as registry:
    while not go.exists():
        time.sleep(0.001)
    try:
        registry.register(serial, "NIK_VALUE", desk=serial, actor="racer")
        print("won")
    except DuplicateActiveCardError:
        print("dup")
""".replace("NIK_VALUE", NIK)


def test_two_processes_race_on_one_nik(target: str, tmp_path: Path) -> None:
    open_registry(target).close()
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACER, target, f"P{i}", str(go)], stdout=subprocess.PIPE,
                         text=True)
        for i in range(2)
    ]
    time.sleep(0.3)  # let both open the registry before the start signal
    go.touch()
    outputs = sorted(p.communicate(timeout=30)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == ["dup", "won"]
    with open_registry(target) as registry:
        live = registry.live_card(NIK)
        assert live is not None and len(registry.cards_for(NIK)) == 1


# -- audit tampering --------------------------------------------------------------------------------


def _five_entries(target: str) -> audit.AuditAnchor:
    with open_registry(target, clock=_Clock()) as registry:
        registry.register("S1", NIK, desk=DESK, actor=ACTOR)          # 1
        registry.hand_over("S1", desk=DESK, actor=ACTOR)              # 2
        registry.activate("S1", desk=DESK, actor=ACTOR)               # 3
        registry.register("S2", OTHER_NIK, desk=DESK, actor=ACTOR)    # 4
        registry.revoke("S2", "misprint", desk=DESK, actor=ACTOR)     # 5
        assert registry.verify_chain() is None
        return registry.audit_head()


def _tamper(raw_db: type[RawDb], target: str, *statements: str) -> audit.ChainProblem | None:
    raw = raw_db(target)
    raw.drop_audit_triggers()
    for statement in statements:
        raw.execute(statement)
    raw.close()
    with open_registry(target) as registry:
        return registry.verify_chain()


def test_audit_triggers_block_plain_sql(target: str, raw_db: type[RawDb]) -> None:
    _five_entries(target)
    raw = raw_db(target)
    with pytest.raises(raw.errors, match="append-only"):
        raw.execute("UPDATE audit SET actor = 'x' WHERE seq = 2")
    with pytest.raises(raw.errors, match="append-only"):
        raw.execute("DELETE FROM audit WHERE seq = 5")
    if raw.dialect == "postgresql":
        with pytest.raises(raw.errors, match="append-only"):
            raw.execute("TRUNCATE audit")
    raw.close()


def test_audit_edit_detected(target: str, raw_db: type[RawDb]) -> None:
    _five_entries(target)
    problem = _tamper(raw_db, target, "UPDATE audit SET actor = 'someone-else' WHERE seq = 3")
    assert problem == audit.ChainProblem(3, "hash does not match the entry's content")


def test_audit_edit_with_rehash_detected_at_next(target: str, raw_db: type[RawDb]) -> None:
    _five_entries(target)
    raw = raw_db(target)
    row = raw.execute("SELECT seq, at, actor, desk, action, prev_hash FROM audit WHERE seq = 2")[0]
    forged = audit.entry_hash(row[0], row[1], "intruder", row[3], row[4], {"serial": "S1"}, row[5])
    raw.drop_audit_triggers()
    raw.execute(
        "UPDATE audit SET actor = 'intruder', details = ?, hash = ? WHERE seq = 2",
        ('{"serial":"S1"}', forged),
    )
    raw.close()
    with open_registry(target) as registry:
        problem = registry.verify_chain()
    assert problem == audit.ChainProblem(3, "prev_hash does not match the previous entry's hash")


def test_audit_delete_detected(target: str, raw_db: type[RawDb]) -> None:
    _five_entries(target)
    problem = _tamper(raw_db, target, "DELETE FROM audit WHERE seq = 3")
    assert problem is not None and problem.seq == 3 and "missing" in problem.reason


def test_audit_swap_detected(target: str, raw_db: type[RawDb]) -> None:
    _five_entries(target)
    problem = _tamper(
        raw_db,
        target,
        "UPDATE audit SET seq = 99 WHERE seq = 2",
        "UPDATE audit SET seq = 2 WHERE seq = 4",
        "UPDATE audit SET seq = 4 WHERE seq = 99",
    )
    assert problem is not None and problem.seq == 2


def test_audit_tail_truncation_needs_anchor(target: str, raw_db: type[RawDb]) -> None:
    anchor = _five_entries(target)
    assert anchor.seq == 5
    assert _tamper(raw_db, target, "DELETE FROM audit WHERE seq = 5") is None  # invisible without an anchor
    with open_registry(target) as registry:
        assert registry.verify_chain(anchor) == audit.ChainProblem(5, "log ends before the anchored entry 5")


def test_audit_full_rewrite_caught_by_anchor(target: str, raw_db: type[RawDb]) -> None:
    anchor = _five_entries(target)
    raw = raw_db(target)
    rows = raw.execute("SELECT seq, at, actor, desk, action, details FROM audit ORDER BY seq")
    raw.drop_audit_triggers()
    prev = audit.GENESIS_HASH
    for seq, at, actor, desk, action, details in rows:
        actor = "intruder" if seq == 1 else actor
        digest = audit.entry_hash(seq, at, actor, desk, action, json.loads(details), prev)
        raw.execute(
            "UPDATE audit SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?", (actor, prev, digest, seq)
        )
        prev = digest
    raw.close()
    with open_registry(target) as registry:
        assert registry.verify_chain() is None
        assert registry.verify_chain(anchor) == audit.ChainProblem(5, "hash differs from the anchored head")


def test_audit_append_needs_transaction(target: str) -> None:
    with open_registry(target) as registry, pytest.raises(RuntimeError, match="transaction"):
        audit.append(registry.backend, at="t", actor="a", desk="d", action="x", details={})
    if not target.startswith("postgresql://"):
        with Registry(target) as registry:
            assert isinstance(registry.connection, sqlite3.Connection)
            with pytest.raises(RuntimeError, match="transaction"):
                audit.append(registry.connection, at="t", actor="a", desk="d", action="x", details={})


def test_spoil_keeps_the_sod_hash_and_events_change_nothing(reg: Registry) -> None:
    reg.reserve("S-1", NIK, desk="d1", actor="a", batch="b")
    with pytest.raises(RegistryError, match="64 lower-case hex"):
        reg.spoil("S-1", "read back failed", desk="d1", actor="a", sod_sha256="ABC")
    row = reg.spoil("S-1", "read back failed", desk="d1", actor="a", sod_sha256="ab" * 32)
    assert row.state is CardState.SPOILED and row.sod_sha256 == "ab" * 32
    assert reg.audit_entries()[-1].details["sod_sha256"] == "ab" * 32
    entry = reg.record_event("S-1", "handover-refused", {"refusal": "x"}, desk="d1", actor="a")
    assert entry.action == "event:handover-refused" and reg.get("S-1") == row
    with pytest.raises(RegistryError, match="not in the registry"):
        reg.record_event("S-404", "handover-refused", {}, desk="d1", actor="a")
    with pytest.raises(RegistryError, match="letters, digits"):
        reg.record_event("S-1", "drop table", {}, desk="d1", actor="a")
    assert reg.verify_chain() is None
