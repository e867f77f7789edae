"""The registry on PostgreSQL: desk processes racing on overlapping NIKs, first-open migrations at once,
a lost connection. (The whole registry suite also runs on PostgreSQL: tests/test_desk_registry.py.)"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg  # the test extra installs it: a missing driver fails, it is not skipped
import pytest

from ektp_card.desk.registry import CardState, DuplicateActiveCardError, RegistryError, open_registry

if TYPE_CHECKING:
    from pg_server import RawDb

NIKS = [f"{3174012501950000 + i}" for i in range(12)]
DESKS = 4


@pytest.fixture
def pg_target(postgres_schema: str) -> str:
    return postgres_schema


def _desk(url: str, desk: int, start: threading.Barrier) -> dict[str, list[str]]:
    # Runs in a spawned process: opens the never-opened schema itself, so the migrations race too.
    outcome: dict[str, list[str]] = {"won": [], "dup": [], "error": []}
    with open_registry(url, busy_timeout=20.0) as registry:
        start.wait(30)  # every desk has its connection before the first reserve
        order = NIKS[desk:] + NIKS[:desk]  # every desk walks the same NIKs from a different place
        for nik in order:
            serial = f"D{desk}-{nik[-4:]}"
            try:
                registry.reserve(serial, nik, desk=f"desk-{desk}", actor=f"officer-{desk}", batch=f"B{desk}")
                registry.confirm(serial, sod_sha256=f"{desk:02x}{nik}".ljust(64, "0"), desk=f"desk-{desk}",
                                 actor=f"officer-{desk}")
                outcome["won"].append(nik)
            except DuplicateActiveCardError as exc:
                assert nik not in str(exc)
                outcome["dup"].append(nik)
            except RegistryError as exc:  # anything else is a failure the parent reports
                outcome["error"].append(f"{type(exc).__name__}: {exc}")
    return outcome


def test_desk_processes_race_on_overlapping_niks(pg_target: str, raw_db: type[RawDb]) -> None:
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    try:
        start = manager.Barrier(DESKS)
        with ctx.Pool(DESKS) as pool:
            pending = [pool.apply_async(_desk, (pg_target, i, start)) for i in range(DESKS)]
            results = [p.get(timeout=60) for p in pending]
    finally:
        manager.shutdown()
    assert [r["error"] for r in results] == [[]] * DESKS
    won = Counter(nik for r in results for nik in r["won"])
    dup = Counter(nik for r in results for nik in r["dup"])
    assert won == Counter(NIKS)  # every NIK issued exactly once ...
    assert dup == Counter({nik: DESKS - 1 for nik in NIKS})  # ... and cleanly refused everywhere else
    with open_registry(pg_target) as registry:
        assert registry.schema_version == 3
        for nik in NIKS:
            cards = registry.cards_for(nik)
            assert len(cards) == 1 and cards[0].state is CardState.PERSONALISED
        entries = registry.audit_entries()
        assert len(entries) == 2 * len(NIKS)
        assert [e.seq for e in entries] == list(range(1, 2 * len(NIKS) + 1))
        # per card, its reserve entry precedes its confirm entry in the one chain
        first_seen: dict[str, str] = {}
        for e in entries:
            first_seen.setdefault(str(e.details["serial"]), e.action)
        assert set(first_seen.values()) == {"reserve"}
        assert registry.verify_chain() is None
    raw = raw_db(pg_target)
    assert raw.execute("SELECT count(*) FROM schema_version") == [(3,)]
    raw.close()


@pytest.fixture
def pg_registry(pg_target: str) -> Iterator[str]:
    open_registry(pg_target).close()
    yield pg_target


def test_lost_connection_is_a_registry_error_and_rolls_back(pg_registry: str) -> None:
    with open_registry(pg_registry) as registry:
        registry.reserve("S1", NIKS[0], desk="d", actor="a")
        pid = registry.connection.info.backend_pid
        killer = psycopg.connect(pg_registry, autocommit=True)
        killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        killer.close()
        with pytest.raises(RegistryError, match="registry"):
            registry.reserve("S2", NIKS[1], desk="d", actor="a")
    with open_registry(pg_registry) as again:
        assert [c.serial for c in again.cards()] == ["S1"]
        assert len(again.audit_entries()) == 1 and again.verify_chain() is None


def test_trigger_errors_carry_no_row_data(pg_registry: str) -> None:
    with open_registry(pg_registry) as registry:
        registry.register("S1", NIKS[0], desk="d", actor="a")
        with pytest.raises(DuplicateActiveCardError) as info:
            registry.reserve("S2", NIKS[0], desk="d", actor="a")
        with pytest.raises(RegistryError, match="refused the record") as bad:
            registry.register("S3", "31740125019X0001", desk="d", actor="a")
    for message in (str(info.value), str(bad.value)):
        assert NIKS[0] not in message and "31740125019X0001" not in message and "DETAIL" not in message


def test_write_lock_wait_is_bounded(pg_registry: str) -> None:
    from ektp_card.desk.postgres import WRITE_LOCK_KEY

    holder = psycopg.connect(pg_registry)  # not autocommit: the lock lives until rollback
    try:
        with open_registry(pg_registry, busy_timeout=1.0) as registry:
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
            with pytest.raises(RegistryError, match="lock timeout"):
                registry.reserve("S1", NIKS[0], desk="d", actor="a")
            holder.rollback()
            assert registry.reserve("S1", NIKS[0], desk="d", actor="a").state is CardState.PENDING
    finally:
        holder.close()
