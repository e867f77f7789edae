"""The registry on PostgreSQL (psycopg 3): a registry shared by many desks at once.

Same schema versions and rules as SQLite (:mod:`ektp_card.desk.backend`), written in PostgreSQL's
dialect: CHECK constraints, partial unique indexes and PL/pgSQL triggers. Every write transaction first
takes one transaction-scoped advisory lock, the counterpart of SQLite's ``BEGIN IMMEDIATE``: writers from
every desk run one after the other, so the live-card and lease checks and the audit chain's head never
interleave, while readers are never blocked. The connection runs in autocommit mode and the backend
issues ``BEGIN``/``COMMIT`` itself, so reads outside a write see the latest committed state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ektp_card.desk.backend import (
    LIVE_INDEX,
    MSG_AUDIT,
    MSG_IDENTITY,
    MSG_INITIAL,
    MSG_LEASED,
    MSG_SOD_FIXED,
    MSG_SOD_REQUIRED,
    MSG_TRANSITION,
    SOD_INDEX,
    Backend,
    ConstraintViolation,
    DatabaseError,
    Row,
    SchemaRules,
    Violation,
    sql_list,
)
from ektp_card.errors import MissingExtraError

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.pq import TransactionStatus
except ImportError:
    raise MissingExtraError("a PostgreSQL registry", "psycopg", "desk") from None

#: The advisory lock every write transaction holds ("EKTP" in ASCII); one registry per database.
WRITE_LOCK_KEY = 0x454B5450


def _classify(exc: psycopg.IntegrityError) -> ConstraintViolation:
    # diag.message_primary, not str(exc): the DETAIL line would quote the row, NIK included.
    text = exc.diag.message_primary or type(exc).__name__
    constraint = exc.diag.constraint_name or ""
    if constraint == LIVE_INDEX:
        kind = Violation.LIVE_NIK
    elif constraint == "cards_pkey":
        kind = Violation.SERIAL
    elif constraint == SOD_INDEX:
        kind = Violation.SOD
    elif constraint == "sync_log_pkey":
        kind = Violation.SYNCED
    elif MSG_LEASED in text:
        kind = Violation.LEASED
    else:
        kind = Violation.OTHER
    return ConstraintViolation(kind, text)


def _error_text(exc: psycopg.Error) -> str:
    if exc.diag.message_primary:
        return exc.diag.message_primary
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class PostgresBackend(Backend):
    """A registry in a PostgreSQL database, reached by a ``postgresql://`` URL."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        self._conn = conn

    @classmethod
    def connect(cls, url: str, *, timeout: float = 30.0) -> PostgresBackend:
        """Connect (autocommit) to the database at ``url``; the password, if any, never appears in errors.

        ``timeout`` bounds the connection attempt and each wait for the write lock, like SQLite's busy
        timeout."""
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout)))
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot reach the PostgreSQL registry: {_error_text(exc)}") from exc
        try:
            conn.execute(f"SET lock_timeout = {max(1, int(timeout * 1000))}")
        except psycopg.Error as exc:
            conn.close()
            raise DatabaseError(f"cannot use the PostgreSQL registry: {_error_text(exc)}") from exc
        return cls(conn)

    def _run(self, sql: str, params: Sequence[object]) -> psycopg.Cursor[tuple[Any, ...]]:
        try:
            if params:
                return self._conn.execute(sql.replace("?", "%s"), tuple(params))
            # Without parameters psycopg sends the text as it is, so DDL may hold '%' and '?'.
            return self._conn.execute(sql)
        except psycopg.IntegrityError as exc:
            raise _classify(exc) from exc
        except pg_errors.RaiseException as exc:
            raise ConstraintViolation(Violation.OTHER, _error_text(exc)) from exc
        except psycopg.Error as exc:
            raise DatabaseError(f"registry database error: {_error_text(exc)}") from exc

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return self._run(sql, params).rowcount

    def all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return [tuple(r) for r in self._run(sql, params).fetchall()]

    @contextmanager
    def write(self) -> Iterator[None]:
        try:
            self._conn.execute("BEGIN")
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
        except psycopg.Error as exc:
            self._rollback()
            raise DatabaseError(f"registry is unavailable: {_error_text(exc)}") from exc
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        else:
            try:
                self._conn.execute("COMMIT")
            except psycopg.Error as exc:
                self._rollback()
                raise DatabaseError(f"registry commit failed: {_error_text(exc)}") from exc

    def _rollback(self) -> None:
        if self._conn.closed:
            return
        try:
            if self._conn.info.transaction_status != TransactionStatus.IDLE:
                self._conn.execute("ROLLBACK")
        except psycopg.Error:
            # The connection is gone; the server rolls the transaction back itself.
            return

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def lock_audit(self) -> None:
        # Re-entrant within one transaction: a no-op after write() took it, the guard when not.
        self.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")

    def migration(self, version: int, rules: SchemaRules) -> list[str]:
        return _MIGRATIONS[version - 1](rules)

    @property
    def raw(self) -> psycopg.Connection[tuple[Any, ...]]:
        return self._conn

    def close(self) -> None:
        self._conn.close()


def _raise(message: str) -> str:
    # check_violation (SQLSTATE 23514): drivers report it as an integrity error, like SQLite's RAISE(ABORT).
    return f"RAISE EXCEPTION '{message}' USING ERRCODE = 'check_violation';"


def _card_functions(rules: SchemaRules, *, v2: bool) -> list[str]:
    initial_message = MSG_INITIAL if v2 else "a new card starts personalised"
    sod_rules = f"""
    IF OLD.sod_sha256 IS NOT NULL AND NEW.sod_sha256 IS DISTINCT FROM OLD.sod_sha256
       OR NEW.batch IS DISTINCT FROM OLD.batch THEN
        {_raise(MSG_SOD_FIXED)}
    END IF;
    IF OLD.state = 'pending' AND NEW.state = 'personalised' AND NEW.sod_sha256 IS NULL THEN
        {_raise(MSG_SOD_REQUIRED)}
    END IF;""" if v2 else ""
    return [
        f"""CREATE OR REPLACE FUNCTION cards_check_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state NOT IN ({sql_list(rules.initial)}) THEN
        {_raise(initial_message)}
    END IF;
    RETURN NEW;
END $$""",
        f"""CREATE OR REPLACE FUNCTION cards_check_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.serial <> NEW.serial OR OLD.nik <> NEW.nik THEN
        {_raise(MSG_IDENTITY)}
    END IF;
    IF OLD.state <> NEW.state AND (OLD.state || '>' || NEW.state) NOT IN ({sql_list(rules.allowed)}) THEN
        {_raise(MSG_TRANSITION)}
    END IF;{sod_rules}
    RETURN NEW;
END $$""",
    ]


def _migration_1(rules: SchemaRules) -> list[str]:
    return [
        f"""CREATE TABLE cards (
    serial        TEXT PRIMARY KEY CHECK (length(serial) BETWEEN 1 AND 64),
    nik           TEXT NOT NULL CHECK (nik ~ '^[0-9]{{16}}$'),
    state         TEXT NOT NULL CONSTRAINT cards_state_check CHECK (state IN ({sql_list(rules.states)})),
    desk          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    reason        TEXT,
    police_report TEXT,
    surrendered   INTEGER NOT NULL DEFAULT 0 CHECK (surrendered IN (0, 1)),
    CONSTRAINT cards_lost_needs_report
        CHECK (state <> 'lost' OR length(trim(coalesce(police_report, ''))) > 0),
    CONSTRAINT cards_damaged_surrendered CHECK (state <> 'damaged' OR surrendered = 1)
)""",
        f"CREATE UNIQUE INDEX {LIVE_INDEX} ON cards (nik) WHERE state IN ({sql_list(rules.live)})",
        "CREATE INDEX cards_by_nik ON cards (nik)",
        *_card_functions(rules, v2=False),
        "CREATE TRIGGER cards_new_state BEFORE INSERT ON cards FOR EACH ROW"
        " EXECUTE FUNCTION cards_check_insert()",
        "CREATE TRIGGER cards_update BEFORE UPDATE ON cards FOR EACH ROW"
        " EXECUTE FUNCTION cards_check_update()",
        """CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY CHECK (seq > 0),
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    desk      TEXT NOT NULL,
    action    TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE
)""",
        f"""CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_raise(MSG_AUDIT)}
END $$""",
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW"
        " EXECUTE FUNCTION audit_append_only()",
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit FOR EACH ROW"
        " EXECUTE FUNCTION audit_append_only()",
        "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit EXECUTE FUNCTION audit_append_only()",
    ]


def _migration_2(rules: SchemaRules) -> list[str]:
    return [
        "ALTER TABLE cards ADD COLUMN batch TEXT CONSTRAINT cards_batch_check"
        " CHECK (batch IS NULL OR length(batch) BETWEEN 1 AND 200)",
        "ALTER TABLE cards ADD COLUMN sod_sha256 TEXT CONSTRAINT cards_sod_check"
        " CHECK (sod_sha256 ~ '^[0-9a-f]{64}$')",
        "ALTER TABLE cards DROP CONSTRAINT cards_state_check",
        f"ALTER TABLE cards ADD CONSTRAINT cards_state_check CHECK (state IN ({sql_list(rules.states)}))",
        "ALTER TABLE cards ADD CONSTRAINT cards_spoiled_needs_reason"
        " CHECK (state <> 'spoiled' OR length(trim(coalesce(reason, ''))) > 0)",
        "ALTER TABLE cards ADD CONSTRAINT cards_pending_has_no_sod"
        " CHECK (state <> 'pending' OR sod_sha256 IS NULL)",
        f"DROP INDEX {LIVE_INDEX}",
        f"CREATE UNIQUE INDEX {LIVE_INDEX} ON cards (nik) WHERE state IN ({sql_list(rules.live)})",
        f"CREATE UNIQUE INDEX {SOD_INDEX} ON cards (sod_sha256) WHERE sod_sha256 IS NOT NULL",
        "CREATE INDEX cards_by_batch ON cards (batch) WHERE batch IS NOT NULL",
        "CREATE INDEX cards_by_desk ON cards (desk, created_at)",
        *_card_functions(rules, v2=True),
    ]


def _migration_3(rules: SchemaRules) -> list[str]:
    return [
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE leases (
    nik        TEXT PRIMARY KEY CHECK (nik ~ '^[0-9]{16}$'),
    desk       TEXT NOT NULL CHECK (length(desk) > 0),
    actor      TEXT NOT NULL,
    leased_at  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    CHECK (expires_at > leased_at)
)""",
        "CREATE INDEX leases_by_desk ON leases (desk)",
        f"""CREATE FUNCTION cards_check_lease() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM leases WHERE leases.nik = NEW.nik AND leases.desk <> NEW.desk
               AND leases.expires_at > NEW.created_at) THEN
        {_raise(MSG_LEASED)}
    END IF;
    RETURN NEW;
END $$""",  # noqa: S608
        "CREATE TRIGGER cards_not_leased_elsewhere BEFORE INSERT ON cards FOR EACH ROW"
        " EXECUTE FUNCTION cards_check_lease()",
        """CREATE TABLE sync_log (
    origin      TEXT NOT NULL,
    local_seq   BIGINT NOT NULL CHECK (local_seq > 0),
    local_hash  TEXT NOT NULL,
    central_seq BIGINT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'recorded', 'refused')),
    serial      TEXT,
    reason      TEXT,
    CONSTRAINT sync_log_pkey PRIMARY KEY (origin, local_seq)
)""",
    ]


_MIGRATIONS = (_migration_1, _migration_2, _migration_3)
