"""The card registry: one SQLite file holding every card serial, its NIK and its life-cycle state.

The database enforces the rules itself, so a bug or a raw SQL session cannot break them: card serials
are unique, a partial unique index allows at most one *live* card (personalised, handed over or active)
per NIK, CHECK constraints require a police report for a lost card and the surrender flag for a damaged
one, and a trigger refuses state changes outside :data:`TRANSITIONS`. Every mutation writes its audit
entry in the same ``BEGIN IMMEDIATE`` transaction, and the file runs in WAL mode with
``synchronous=FULL`` so a committed change survives a power cut.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType

from ektp_card.desk import audit
from ektp_card.errors import DuplicateActiveCardError, RegistryError


class CardState(StrEnum):
    """Life-cycle states of a card."""

    PERSONALISED = "personalised"
    HANDED_OVER = "handed_over"
    ACTIVE = "active"
    LOST = "lost"
    DAMAGED = "damaged"
    REVOKED = "revoked"


#: States in which a card counts against its NIK's one-card limit.
LIVE_STATES: frozenset[CardState] = frozenset(
    {CardState.PERSONALISED, CardState.HANDED_OVER, CardState.ACTIVE}
)
#: States a card never leaves; its NIK may then receive a replacement.
TERMINAL_STATES: frozenset[CardState] = frozenset({CardState.LOST, CardState.DAMAGED, CardState.REVOKED})

#: The one table of allowed state changes; migration 1 builds the database trigger from it, so changing it
#: needs a new migration.
TRANSITIONS: Mapping[CardState, frozenset[CardState]] = {
    CardState.PERSONALISED: frozenset({CardState.HANDED_OVER, CardState.DAMAGED, CardState.REVOKED}),
    CardState.HANDED_OVER: frozenset(
        {CardState.ACTIVE, CardState.LOST, CardState.DAMAGED, CardState.REVOKED}
    ),
    CardState.ACTIVE: frozenset({CardState.LOST, CardState.DAMAGED, CardState.REVOKED}),
    CardState.LOST: frozenset(),
    CardState.DAMAGED: frozenset(),
    CardState.REVOKED: frozenset(),
}

_LIVE_INDEX = "cards_one_live_per_nik"


def _sql_list(states: frozenset[CardState] | list[str]) -> str:
    return ", ".join(f"'{s}'" for s in sorted(str(x) for x in states))


def _migration_1() -> str:
    allowed = [f"{old}>{new}" for old, news in TRANSITIONS.items() for new in news]
    return f"""
CREATE TABLE cards (
    serial        TEXT PRIMARY KEY NOT NULL CHECK (length(serial) BETWEEN 1 AND 64),
    nik           TEXT NOT NULL CHECK (length(nik) = 16 AND nik NOT GLOB '*[^0-9]*'),
    state         TEXT NOT NULL CHECK (state IN ({_sql_list(frozenset(CardState))})),
    desk          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    reason        TEXT,
    police_report TEXT,
    surrendered   INTEGER NOT NULL DEFAULT 0 CHECK (surrendered IN (0, 1)),
    CHECK (state <> 'lost' OR length(trim(coalesce(police_report, ''))) > 0),
    CHECK (state <> 'damaged' OR surrendered = 1)
);
CREATE UNIQUE INDEX {_LIVE_INDEX} ON cards (nik) WHERE state IN ({_sql_list(LIVE_STATES)});
CREATE INDEX cards_by_nik ON cards (nik);
CREATE TRIGGER cards_new_is_personalised BEFORE INSERT ON cards WHEN NEW.state <> 'personalised'
BEGIN SELECT RAISE(ABORT, 'a new card starts personalised'); END;
CREATE TRIGGER cards_transition BEFORE UPDATE OF state ON cards
WHEN OLD.state <> NEW.state AND (OLD.state || '>' || NEW.state) NOT IN ({_sql_list(allowed)})
BEGIN SELECT RAISE(ABORT, 'card state transition not allowed'); END;
CREATE TRIGGER cards_identity_fixed BEFORE UPDATE OF serial, nik ON cards
WHEN OLD.serial <> NEW.serial OR OLD.nik <> NEW.nik
BEGIN SELECT RAISE(ABORT, 'card serial and NIK never change'); END;
{audit.AUDIT_SCHEMA}
"""


#: Migrations in order; entry i brings the schema to version i + 1.
MIGRATIONS: tuple[Callable[[], str], ...] = (_migration_1,)


@dataclass(frozen=True)
class CardRow:
    """One card as stored in the registry."""

    serial: str
    nik: str
    state: CardState
    desk: str
    created_at: str
    updated_at: str
    reason: str | None
    police_report: str | None
    surrendered: bool

    @property
    def live(self) -> bool:
        """True while the card counts as the NIK's one card."""
        return self.state in LIVE_STATES


_COLUMNS = "serial, nik, state, desk, created_at, updated_at, reason, police_report, surrendered"


def _row(raw: tuple[object, ...]) -> CardRow:
    serial, nik, state, desk, created, updated, reason, report, surrendered = raw
    return CardRow(
        str(serial), str(nik), CardState(str(state)), str(desk), str(created), str(updated),
        None if reason is None else str(reason), None if report is None else str(report), bool(surrendered),
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Registry:
    """A card registry in one SQLite file; one instance per thread (sqlite3 connections are not shared)."""

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 30.0, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self._clock = clock
        try:
            self._conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open registry {path}: {exc}") from exc
        try:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise RegistryError(f"registry {path} cannot use WAL journaling")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            self._migrate()
        except sqlite3.Error as exc:
            self._conn.close()
            raise RegistryError(f"cannot open registry {path}: {exc}") from exc
        except RegistryError:
            self._conn.close()
            raise

    # -- plumbing -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection, for read-only reporting queries."""
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so two desks checking the same NIK serialise here
        # instead of both reading "no live card" and one failing later at COMMIT.
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise RegistryError(f"registry is busy: {exc}") from exc
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise RegistryError(f"registry commit failed: {exc}") from exc

    def _migrate(self) -> None:
        with self._write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            current = 0 if row is None or row[0] is None else int(row[0])
            if current > len(MIGRATIONS):
                raise RegistryError(f"registry schema version {current} is newer than this software")
            for version in range(current + 1, len(MIGRATIONS) + 1):
                # executescript would COMMIT our transaction; run the statements one by one instead.
                for statement in _split_sql(MIGRATIONS[version - 1]()):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        row = self._conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="microseconds")

    # -- queries ------------------------------------------------------------------------------------

    def get(self, serial: str) -> CardRow | None:
        """The card with this serial, or None."""
        raw = self._conn.execute(f"SELECT {_COLUMNS} FROM cards WHERE serial = ?", (serial,)).fetchone()  # noqa: S608
        return None if raw is None else _row(tuple(raw))

    def live_card(self, nik: str) -> CardRow | None:
        """The NIK's live card (personalised, handed over or active), or None."""
        raw = self._conn.execute(
            f"SELECT {_COLUMNS} FROM cards WHERE nik = ? AND state IN ({_sql_list(LIVE_STATES)})",  # noqa: S608
            (nik,),
        ).fetchone()
        return None if raw is None else _row(tuple(raw))

    def cards_for(self, nik: str) -> list[CardRow]:
        """Every card ever registered for the NIK, oldest first."""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM cards WHERE nik = ? ORDER BY created_at, serial", (nik,)  # noqa: S608
        ).fetchall()
        return [_row(tuple(r)) for r in rows]

    def audit_entries(self) -> list[audit.AuditEntry]:
        """The audit log in order."""
        return audit.entries(self._conn)

    def audit_head(self) -> audit.AuditAnchor:
        """The audit log's head, for the caller to keep as an anchor."""
        return audit.head(self._conn)

    def verify_chain(self, anchor: audit.AuditAnchor | None = None) -> audit.ChainProblem | None:
        """Check the audit chain; see :func:`ektp_card.desk.audit.verify_chain`."""
        return audit.verify_chain(self._conn, anchor)

    # -- mutations ----------------------------------------------------------------------------------

    def register(self, serial: str, nik: str, *, desk: str, actor: str) -> CardRow:
        """Record a freshly personalised card; refused if the NIK already has a live card."""
        with self._write() as conn:
            row = self._insert(conn, serial, nik, desk=desk, actor=actor, action="register", extra={})
        return row

    def replace(
        self, old_serial: str, new_serial: str, *, desk: str, actor: str
    ) -> CardRow:
        """Register ``new_serial`` for the NIK of ``old_serial``, which must be lost, damaged or revoked."""
        with self._write() as conn:
            old = self._get_in(conn, old_serial)
            if old.state not in TERMINAL_STATES:
                raise RegistryError(
                    f"card {old_serial} is {old.state}; report it lost or damaged, or revoke it, first"
                )
            row = self._insert(
                conn, new_serial, old.nik, desk=desk, actor=actor, action="replace",
                extra={"replaces": old_serial, "old_state": str(old.state)},
            )
        return row

    def hand_over(self, serial: str, *, desk: str, actor: str) -> CardRow:
        """The holder collected the card (after the desk's identity check)."""
        return self.transition(serial, CardState.HANDED_OVER, desk=desk, actor=actor)

    def activate(self, serial: str, *, desk: str, actor: str) -> CardRow:
        """The card is in use."""
        return self.transition(serial, CardState.ACTIVE, desk=desk, actor=actor)

    def report_lost(self, serial: str, police_report: str, *, desk: str, actor: str) -> CardRow:
        """The holder reported the card lost; a police report reference is required."""
        return self.transition(serial, CardState.LOST, desk=desk, actor=actor, police_report=police_report)

    def report_damaged(self, serial: str, *, surrendered: bool, desk: str, actor: str) -> CardRow:
        """The card is damaged; the damaged card must have been surrendered at the desk."""
        return self.transition(serial, CardState.DAMAGED, desk=desk, actor=actor, surrendered=surrendered)

    def revoke(self, serial: str, reason: str, *, desk: str, actor: str) -> CardRow:
        """Withdraw the card for a stated reason."""
        return self.transition(serial, CardState.REVOKED, desk=desk, actor=actor, reason=reason)

    def transition(
        self, serial: str, new_state: CardState, *, desk: str, actor: str, reason: str | None = None,
        police_report: str | None = None, surrendered: bool = False,
    ) -> CardRow:
        """Move a card to ``new_state``; the one place that checks :data:`TRANSITIONS`."""
        new_state = CardState(new_state)
        if new_state is CardState.LOST and not (police_report and police_report.strip()):
            raise RegistryError(f"card {serial}: a lost card needs a police report reference")
        if new_state is CardState.DAMAGED and not surrendered:
            raise RegistryError(f"card {serial}: a damaged card must be surrendered")
        with self._write() as conn:
            old = self._get_in(conn, serial)
            if new_state not in TRANSITIONS[old.state]:
                raise RegistryError(f"card {serial}: cannot go from {old.state} to {new_state}")
            now = self._now()
            try:
                conn.execute(
                    "UPDATE cards SET state = ?, updated_at = ?, reason = coalesce(?, reason),"
                    " police_report = coalesce(?, police_report), surrendered = ? WHERE serial = ?",
                    (str(new_state), now, reason, police_report, int(surrendered or old.surrendered), serial),
                )
            except sqlite3.IntegrityError as exc:
                raise RegistryError(f"card {serial}: registry refused the change: {exc}") from exc
            details: dict[str, audit.DetailValue] = {
                "serial": serial, "from": str(old.state), "to": str(new_state),
            }
            if reason is not None:
                details["reason"] = reason
            if police_report is not None:
                details["police_report"] = police_report
            if new_state is CardState.DAMAGED:
                details["surrendered"] = True
            audit.append(conn, at=now, actor=actor, desk=desk, action=f"state:{new_state}", details=details)
            return self._get_in(conn, serial)

    # -- helpers ------------------------------------------------------------------------------------

    def _get_in(self, conn: sqlite3.Connection, serial: str) -> CardRow:
        raw = conn.execute(f"SELECT {_COLUMNS} FROM cards WHERE serial = ?", (serial,)).fetchone()  # noqa: S608
        if raw is None:
            raise RegistryError(f"card {serial} is not in the registry")
        return _row(tuple(raw))

    def _insert(
        self, conn: sqlite3.Connection, serial: str, nik: str, *, desk: str, actor: str, action: str,
        extra: dict[str, audit.DetailValue],
    ) -> CardRow:
        now = self._now()
        try:
            conn.execute(
                f"INSERT INTO cards ({_COLUMNS}) VALUES (?, ?, 'personalised', ?, ?, ?, NULL, NULL, 0)",  # noqa: S608
                (serial, nik, desk, now, now),
            )
        except sqlite3.IntegrityError as exc:
            raise _integrity_error(exc, serial) from exc
        details: dict[str, audit.DetailValue] = {"serial": serial, "nik": nik, **extra}
        audit.append(conn, at=now, actor=actor, desk=desk, action=action, details=details)
        return self._get_in(conn, serial)


def _integrity_error(exc: sqlite3.IntegrityError, serial: str) -> RegistryError:
    # The NIK is personal data: name the card serial, never the NIK, in messages.
    text = str(exc)
    if "cards.nik" in text or _LIVE_INDEX in text:
        return DuplicateActiveCardError(f"card {serial}: this NIK already has a live card")
    if "cards.serial" in text:
        return RegistryError(f"card serial {serial} is already registered")
    return RegistryError(f"card {serial}: registry refused the record: {text}")


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
