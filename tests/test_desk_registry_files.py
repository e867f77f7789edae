"""The registry file under careless and hostile hands: only a registry is opened (a foreign database is
left as it was, byte for byte), nothing is created where only a registry may be read, a new registry is
the owner's alone, and the audit log vouches for the cards as they are."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from ektp_card.desk.registry import CardState, open_registry
from ektp_card.errors import RegistryError

NIK, OTHER = "3174012501900001", "3174012501900002"


def _foreign(path: Path) -> bytes:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount TEXT)")
        db.execute("INSERT INTO invoices (amount) VALUES ('12.50')")
    db.close()
    return path.read_bytes()


@pytest.mark.parametrize("create", [True, False])
def test_a_foreign_database_is_refused_untouched(tmp_path: Path, create: bool) -> None:
    path = tmp_path / "accounts.sqlite"
    before = _foreign(path)
    with pytest.raises(RegistryError, match="SQLite database of another program"):
        open_registry(path, create=create)
    assert path.read_bytes() == before  # not even the journal mode was changed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.sqlite"]


def test_an_empty_file_is_not_taken_for_a_registry(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    path.touch()
    with pytest.raises(RegistryError, match="an empty file, not an ektp registry"):
        open_registry(path)
    assert path.read_bytes() == b""


def test_without_create_a_missing_registry_is_not_made(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no registry at"):
        open_registry(tmp_path / "typo.sqlite", create=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make", ["fifo", "folder", "device"])
def test_what_is_no_file_is_refused_without_waiting(tmp_path: Path, make: str) -> None:
    path = tmp_path / "registry.sqlite"
    if make == "fifo":
        os.mkfifo(path)
    elif make == "folder":
        path.mkdir()
    else:
        path = Path("/dev/zero")
    with pytest.raises(RegistryError, match="not a registry file"):
        open_registry(path)


def test_a_new_registry_is_the_owners_alone(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    with open_registry(path) as registry:
        registry.register("AAAA000000000001", NIK, desk="d", actor="a")
        for name in ("registry.sqlite", "registry.sqlite-wal", "registry.sqlite-shm"):
            if (tmp_path / name).exists():  # NIKs and police reports: no one else reads them
                assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_schema_version_that_is_no_number_is_a_registry_error(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    open_registry(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER IF EXISTS schema_version_append_only")
        db.execute("UPDATE schema_version SET version = 'two'")
    db.close()
    with pytest.raises(RegistryError, match="schema version 'two' is not a number"):
        open_registry(path)


@pytest.fixture
def issued(tmp_path: Path) -> Path:
    path = tmp_path / "registry.sqlite"
    with open_registry(path) as registry:
        registry.reserve("AAAA000000000001", NIK, desk="d", actor="a", batch="b1")
        registry.confirm("AAAA000000000001", sod_sha256="ab" * 32, desk="d", actor="a")
        registry.hand_over("AAAA000000000001", desk="d", actor="a")
        registry.register("AAAA000000000002", OTHER, desk="d", actor="a")
        registry.hand_over("AAAA000000000002", desk="d", actor="a")
        registry.report_lost("AAAA000000000002", "LP/1/2026", desk="d", actor="a")
        registry.replace("AAAA000000000002", "AAAA000000000003", desk="d", actor="a")
        registry.hand_over("AAAA000000000003", desk="d", actor="a")
        registry.report_damaged("AAAA000000000003", surrendered=True, desk="d", actor="a")
        assert registry.verify() is None
    return path


@pytest.mark.parametrize(("statement", "found"), [
    ("UPDATE cards SET state = 'active' WHERE serial = 'AAAA000000000002'", "its state"),
    ("UPDATE cards SET reason = 'nothing to see' WHERE serial = 'AAAA000000000001'", "its reason"),
    ("UPDATE cards SET state = 'revoked', reason = 'x' WHERE serial = 'AAAA000000000002'", "its state"),
    ("UPDATE cards SET nik = '3174012501900009' WHERE serial = 'AAAA000000000003'", "its nik"),
    ("UPDATE cards SET sod_sha256 = '" + "cd" * 32 + "' WHERE serial = 'AAAA000000000001'", "its sod sha256"),
    ("INSERT INTO cards (serial, nik, state, desk, created_at, updated_at, surrendered) VALUES "
     "('AAAA000000000009', '3174012501900003', 'personalised', 'd', 'x', 'x', 0)", "has no audit entry"),
    ("DELETE FROM cards WHERE serial = 'AAAA000000000003'", "not in the registry: removed"),
])
def test_a_card_row_edited_without_its_entry_is_caught(issued: Path, statement: str, found: str) -> None:
    with sqlite3.connect(issued) as db:
        for trigger, in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            db.execute(f"DROP TRIGGER {trigger}")  # an intruder with the file drops the rules first
        db.execute(statement)
    db.close()
    with open_registry(issued) as registry:
        assert registry.verify_chain() is None  # the log itself is intact
        problem = registry.verify()
    assert problem is not None and found in problem.reason


def test_every_state_the_log_records_is_replayed(issued: Path) -> None:
    with open_registry(issued) as registry:
        states = {row.serial: row.state for row in registry.cards()}
        assert registry.verify() is None
    assert states == {"AAAA000000000001": CardState.HANDED_OVER, "AAAA000000000002": CardState.LOST,
                      "AAAA000000000003": CardState.DAMAGED}
