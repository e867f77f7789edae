"""Database backends of the registry: the one place (with :mod:`ektp_card.desk.postgres`) where SQLite and
PostgreSQL differ.

The registry writes its queries once, with ``?`` placeholders, and speaks to a :class:`Backend`: run a
statement, fetch rows, hold a write transaction, and turn a constraint violation into a
:class:`ConstraintViolation` that names which rule was broken. Each backend also owns the DDL of every
schema migration in its own dialect, built from the rules (:class:`SchemaRules`) the registry hands it, so
both databases enforce the same states, transitions and uniqueness.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

from ektp_card.errors import RegistryError

#: One fetched row.
Row = tuple[Any, ...]

#: Messages raised by the triggers; the same text on both databases, so errors classify alike.
MSG_INITIAL = "a new card starts pending or personalised"
MSG_TRANSITION = "card state transition not allowed"
MSG_IDENTITY = "card serial and NIK never change"
MSG_SOD_FIXED = "the EF.SOD hash and batch of a card never change once set"
MSG_SOD_REQUIRED = "a reserved card becomes personalised only with its EF.SOD hash"
MSG_LEASED = "NIK is leased to another desk"
MSG_AUDIT = "audit log is append-only"

LIVE_INDEX = "cards_one_live_per_nik"
SOD_INDEX = "cards_unique_sod"


@dataclass(frozen=True)
class SchemaRules:
    """The card rules a schema version enforces: every state, the live ones, the states a new row may
    start in, and the allowed changes as ``"old>new"`` strings."""

    states: tuple[str, ...]
    live: tuple[str, ...]
    initial: tuple[str, ...]
    allowed: tuple[str, ...]


def sql_list(values: Sequence[str]) -> str:
    """A SQL literal list; the values are our own enum names, never user input."""
    return ", ".join(f"'{v}'" for v in sorted(values))


class Violation(Enum):
    """Which database rule a refused statement broke."""

    LIVE_NIK = "live_nik"
    SERIAL = "serial"
    SOD = "sod"
    LEASED = "leased"
    SYNCED = "synced"
    OTHER = "other"


class ConstraintViolation(RegistryError):
    """The database refused a statement; the registry turns it into a message naming the card."""

    def __init__(self, kind: Violation, text: str) -> None:
        super().__init__(f"registry refused the record: {text}")
        self.kind = kind
        self.text = text


class DatabaseError(RegistryError):
    """The database could not be used (unreachable, connection lost, busy past the timeout, I/O): a
    condition of the moment, unlike a refusal by the registry's rules."""


class Backend(ABC):
    """One connection to a registry database."""

    #: "sqlite" or "postgresql".
    dialect: str

    @abstractmethod
    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement with ``?`` placeholders; returns the number of rows changed."""

    @abstractmethod
    def all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """Run a query and return every row."""

    def one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        """Run a query and return its first row, or None."""
        rows = self.all(sql, params)
        return rows[0] if rows else None

    @abstractmethod
    def write(self) -> AbstractContextManager[None]:
        """A write transaction that holds the registry's write lock until it commits or rolls back."""

    @property
    @abstractmethod
    def in_transaction(self) -> bool:
        """True inside :meth:`write`."""

    @abstractmethod
    def lock_audit(self) -> None:
        """Serialise audit appends until the end of the current transaction."""

    @abstractmethod
    def migration(self, version: int, rules: SchemaRules) -> list[str]:
        """The DDL statements that bring the schema from ``version - 1`` to ``version``."""

    @property
    @abstractmethod
    def raw(self) -> Any:
        """The driver's connection, for read-only reporting queries in the backend's own dialect."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""


# -- SQLite -----------------------------------------------------------------------------------------


def _sqlite_classify(exc: sqlite3.IntegrityError) -> ConstraintViolation:
    text = str(exc)
    if "cards.nik" in text or LIVE_INDEX in text:
        kind = Violation.LIVE_NIK
    elif "cards.serial" in text:
        kind = Violation.SERIAL
    elif "cards.sod_sha256" in text or SOD_INDEX in text:
        kind = Violation.SOD
    elif MSG_LEASED in text:
        kind = Violation.LEASED
    elif "sync_log." in text:
        kind = Violation.SYNCED
    else:
        kind = Violation.OTHER
    return ConstraintViolation(kind, text)


#: SQLite's primary result codes for a write the disk refused (sqlite3.h: SQLITE_IOERR, SQLITE_FULL).
_SQLITE_DISK_CODES = (10, 13)


def _sqlite_error(exc: sqlite3.Error, what: str = "registry database error") -> DatabaseError:
    """One message for a failed statement; a full or failing disk says so, and that nothing was kept
    (SQLite rolls the transaction back itself)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _SQLITE_DISK_CODES:
        return DatabaseError(f"the registry's disk refused the write ({exc}): nothing was recorded")
    return DatabaseError(f"{what}: {exc}")


class SqliteBackend(Backend):
    """A registry in one SQLite file: WAL journal, ``synchronous=FULL``, ``BEGIN IMMEDIATE`` writes."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, *, owned: bool = True) -> None:
        self._conn = conn
        self._owned = owned

    @classmethod
    def open(cls, path: str | Path, *, busy_timeout: float = 30.0, create: bool = True) -> SqliteBackend:
        """Open the file (with ``create``, a new one when there is none: mode 0600, it holds NIKs and
        police reports) and set the pragmas that make commits survive a power cut.

        Only a registry is opened: a FIFO, a device, an empty file or another program's SQLite database
        is refused before anything is written to it (not even the journal mode)."""
        target = Path(path)
        fresh = False
        try:
            mode_bits = os.stat(target).st_mode
        except FileNotFoundError:
            if not create:
                raise RegistryError(f"no registry at {target}") from None
            try:
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except OSError as exc:
                raise RegistryError(f"cannot open registry {target}: {exc.strerror or exc}") from None
            fresh = True
        except OSError as exc:
            raise RegistryError(f"cannot open registry {target}: {exc.strerror or exc}") from None
        else:
            if not stat.S_ISREG(mode_bits):
                raise RegistryError(f"{target} is not a registry file")
        try:
            return cls._connect(target, busy_timeout, fresh)
        except BaseException:
            if fresh:
                for suffix in ("", "-wal", "-shm", "-journal"):
                    with contextlib.suppress(OSError):
                        os.unlink(f"{target}{suffix}")
            raise

    @classmethod
    def _connect(cls, target: Path, busy_timeout: float, fresh: bool) -> SqliteBackend:
        # mode=rw: SQLite must not create the file itself (it would, with the umask's mode).
        uri = f"file:{pathname2url(os.path.abspath(target))}?mode=rw"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open registry {target}: {exc}") from exc
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not fresh and "schema_version" not in tables:
                what = "an empty file" if not tables else "a SQLite database of another program"
                raise RegistryError(f"{target} is {what}, not an ektp registry; it was left as it is")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise RegistryError(f"registry {target} cannot use WAL journaling")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        except sqlite3.Error as exc:
            conn.close()
            raise RegistryError(f"cannot open registry {target}: {exc}") from exc
        except RegistryError:
            conn.close()
            raise
        return cls(conn)

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        try:
            return self._conn.execute(sql, tuple(params)).rowcount
        except sqlite3.IntegrityError as exc:
            raise _sqlite_classify(exc) from exc
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from exc

    def all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        try:
            return [tuple(r) for r in self._conn.execute(sql, tuple(params)).fetchall()]
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from exc

    @contextmanager
    def write(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front, so two desks checking the same NIK serialise here
        # instead of both reading "no live card" and one failing later at COMMIT.
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise DatabaseError(f"registry is busy: {exc}") from exc
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        else:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise _sqlite_error(exc, "registry commit failed") from exc

    def _rollback(self) -> None:
        # A full disk (SQLITE_FULL, SQLITE_IOERR) has already rolled the transaction back; a second
        # ROLLBACK would raise over the error that says why.
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def lock_audit(self) -> None:
        # BEGIN IMMEDIATE already holds the file's only write lock.
        return None

    def migration(self, version: int, rules: SchemaRules) -> list[str]:
        return _split_sql(_SQLITE_MIGRATIONS[version - 1](rules))

    @property
    def raw(self) -> sqlite3.Connection:
        return self._conn

    def close(self) -> None:
        if self._owned:
            self._conn.close()


def _sqlite_cards_table(name: str, rules: SchemaRules, *, v2: bool) -> str:
    extra = ""
    if v2:
        extra = """
    batch         TEXT CHECK (batch IS NULL OR length(batch) BETWEEN 1 AND 200),
    sod_sha256    TEXT CHECK (sod_sha256 IS NULL OR (length(sod_sha256) = 64
                              AND sod_sha256 NOT GLOB '*[^0-9a-f]*')),
    CHECK (state <> 'spoiled' OR length(trim(coalesce(reason, ''))) > 0),
    CHECK (state <> 'pending' OR sod_sha256 IS NULL),"""
    return f"""
CREATE TABLE {name} (
    serial        TEXT PRIMARY KEY NOT NULL CHECK (length(serial) BETWEEN 1 AND 64),
    nik           TEXT NOT NULL CHECK (length(nik) = 16 AND nik NOT GLOB '*[^0-9]*'),
    state         TEXT NOT NULL CHECK (state IN ({sql_list(rules.states)})),
    desk          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    reason        TEXT,
    police_report TEXT,
    surrendered   INTEGER NOT NULL DEFAULT 0 CHECK (surrendered IN (0, 1)),{extra}
    CHECK (state <> 'lost' OR length(trim(coalesce(police_report, ''))) > 0),
    CHECK (state <> 'damaged' OR surrendered = 1)
);"""


def _sqlite_cards_rules(rules: SchemaRules, *, v2: bool) -> str:
    message = MSG_INITIAL if v2 else "a new card starts personalised"
    initial_trigger = "cards_new_state" if v2 else "cards_new_is_personalised"
    ddl = f"""
CREATE UNIQUE INDEX {LIVE_INDEX} ON cards (nik) WHERE state IN ({sql_list(rules.live)});
CREATE INDEX cards_by_nik ON cards (nik);
CREATE TRIGGER {initial_trigger} BEFORE INSERT ON cards WHEN NEW.state NOT IN ({sql_list(rules.initial)})
BEGIN SELECT RAISE(ABORT, '{message}'); END;
CREATE TRIGGER cards_transition BEFORE UPDATE OF state ON cards
WHEN OLD.state <> NEW.state AND (OLD.state || '>' || NEW.state) NOT IN ({sql_list(rules.allowed)})
BEGIN SELECT RAISE(ABORT, '{MSG_TRANSITION}'); END;
CREATE TRIGGER cards_identity_fixed BEFORE UPDATE OF serial, nik ON cards
WHEN OLD.serial <> NEW.serial OR OLD.nik <> NEW.nik
BEGIN SELECT RAISE(ABORT, '{MSG_IDENTITY}'); END;
"""
    if v2:
        ddl += f"""
CREATE UNIQUE INDEX {SOD_INDEX} ON cards (sod_sha256) WHERE sod_sha256 IS NOT NULL;
CREATE INDEX cards_by_batch ON cards (batch) WHERE batch IS NOT NULL;
CREATE INDEX cards_by_desk ON cards (desk, created_at);
CREATE TRIGGER cards_sod_fixed BEFORE UPDATE OF sod_sha256, batch ON cards
WHEN (OLD.sod_sha256 IS NOT NULL AND NEW.sod_sha256 IS NOT OLD.sod_sha256)
  OR NEW.batch IS NOT OLD.batch
BEGIN SELECT RAISE(ABORT, '{MSG_SOD_FIXED}'); END;
CREATE TRIGGER cards_sod_required BEFORE UPDATE OF state ON cards
WHEN OLD.state = 'pending' AND NEW.state = 'personalised' AND NEW.sod_sha256 IS NULL
BEGIN SELECT RAISE(ABORT, '{MSG_SOD_REQUIRED}'); END;
"""
    return ddl


def _sqlite_migration_1(rules: SchemaRules) -> str:
    return _sqlite_cards_table("cards", rules, v2=False) + _sqlite_cards_rules(rules, v2=False) + f"""
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    desk      TEXT NOT NULL,
    action    TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, '{MSG_AUDIT}'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, '{MSG_AUDIT}'); END;
"""


_V1_COLUMNS = "serial, nik, state, desk, created_at, updated_at, reason, police_report, surrendered"


def _sqlite_migration_2(rules: SchemaRules) -> str:
    # SQLite cannot change a CHECK constraint in place: rebuild the table (its indexes and triggers go
    # with the old one and are created again for the new rules).
    copy = f"INSERT INTO cards_v2 ({_V1_COLUMNS}) SELECT {_V1_COLUMNS} FROM cards;"  # noqa: S608
    swap = "DROP TABLE cards;\nALTER TABLE cards_v2 RENAME TO cards;"
    return "\n".join(
        [_sqlite_cards_table("cards_v2", rules, v2=True), copy, swap, _sqlite_cards_rules(rules, v2=True)]
    )


def _sqlite_migration_3(rules: SchemaRules) -> str:
    return f"""
CREATE TABLE settings (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
CREATE TABLE leases (
    nik        TEXT PRIMARY KEY NOT NULL CHECK (length(nik) = 16 AND nik NOT GLOB '*[^0-9]*'),
    desk       TEXT NOT NULL CHECK (length(desk) > 0),
    actor      TEXT NOT NULL,
    leased_at  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    CHECK (expires_at > leased_at)
);
CREATE INDEX leases_by_desk ON leases (desk);
CREATE TRIGGER cards_not_leased_elsewhere BEFORE INSERT ON cards
WHEN EXISTS (SELECT 1 FROM leases WHERE leases.nik = NEW.nik AND leases.desk <> NEW.desk
             AND leases.expires_at > NEW.created_at)
BEGIN SELECT RAISE(ABORT, '{MSG_LEASED}'); END;
CREATE TABLE sync_log (
    origin      TEXT NOT NULL,
    local_seq   INTEGER NOT NULL CHECK (local_seq > 0),
    local_hash  TEXT NOT NULL,
    central_seq INTEGER NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'recorded', 'refused')),
    serial      TEXT,
    reason      TEXT,
    PRIMARY KEY (origin, local_seq)
);
"""  # noqa: S608


_SQLITE_MIGRATIONS = (_sqlite_migration_1, _sqlite_migration_2, _sqlite_migration_3)


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements; trigger bodies end with ``END;``."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
