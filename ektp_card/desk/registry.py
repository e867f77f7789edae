"""The card registry: every card serial, its NIK and its life-cycle state, in SQLite or PostgreSQL.

The database enforces the rules itself, so a bug or a raw SQL session cannot break them: card serials
are unique, a partial unique index allows at most one *live* card (pending, personalised, handed over or
active) per NIK, EF.SOD hashes are unique, CHECK constraints require a police report for a lost card, the
surrender flag for a damaged one and a reason for a spoiled one, and triggers refuse state changes outside
:data:`TRANSITIONS`, edits of a card's identity and cards for a NIK leased to another desk. Every mutation
writes its audit entry in the same transaction, which holds the registry's write lock from its first
statement (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-scoped advisory lock), so checks and the
hash chain never interleave. SQLite runs in WAL mode with ``synchronous=FULL`` so a committed change
survives a power cut. docs/desk-registry.md describes the schema.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from ektp_card.desk import audit
from ektp_card.desk.backend import (
    Backend,
    ConstraintViolation,
    DatabaseError,
    Row,
    SchemaRules,
    SqliteBackend,
    Violation,
    sql_list,
)
from ektp_card.desk.lease import REASON_INVALID, REASON_LEASED, REASON_LIVE, Lease, LeaseRefusal, LeaseResult
from ektp_card.errors import DuplicateActiveCardError, RegistryError

__all__ = [
    "LIVE_STATES", "MIGRATIONS", "REPLACEABLE_STATES", "TERMINAL_STATES", "TRANSITIONS", "CardRow",
    "CardState", "DuplicateActiveCardError", "Registry", "RegistryError", "RemoteOutcome", "SyncOutcome",
    "open_registry",
]


class CardState(StrEnum):
    """Life-cycle states of a card."""

    PENDING = "pending"
    PERSONALISED = "personalised"
    HANDED_OVER = "handed_over"
    ACTIVE = "active"
    LOST = "lost"
    DAMAGED = "damaged"
    REVOKED = "revoked"
    SPOILED = "spoiled"


#: States in which a card counts against its NIK's one-card limit. A pending card (serial reserved just
#: before the card is written) counts, so two desks can never write cards for one NIK at once.
LIVE_STATES: frozenset[CardState] = frozenset(
    {CardState.PENDING, CardState.PERSONALISED, CardState.HANDED_OVER, CardState.ACTIVE}
)
#: States a card never leaves.
TERMINAL_STATES: frozenset[CardState] = frozenset(
    {CardState.LOST, CardState.DAMAGED, CardState.REVOKED, CardState.SPOILED}
)
#: Terminal states of a card that reached its holder's hands and so is *replaced* (a spoiled card never
#: did: its NIK simply gets a new reservation).
REPLACEABLE_STATES: frozenset[CardState] = frozenset({CardState.LOST, CardState.DAMAGED, CardState.REVOKED})

#: The one table of allowed state changes; the migrations build the database triggers from it, so
#: changing it needs a new migration.
TRANSITIONS: Mapping[CardState, frozenset[CardState]] = {
    CardState.PENDING: frozenset({CardState.PERSONALISED, CardState.SPOILED}),
    CardState.PERSONALISED: frozenset({CardState.HANDED_OVER, CardState.DAMAGED, CardState.REVOKED}),
    CardState.HANDED_OVER: frozenset(
        {CardState.ACTIVE, CardState.LOST, CardState.DAMAGED, CardState.REVOKED}
    ),
    CardState.ACTIVE: frozenset({CardState.LOST, CardState.DAMAGED, CardState.REVOKED}),
    CardState.LOST: frozenset(),
    CardState.DAMAGED: frozenset(),
    CardState.REVOKED: frozenset(),
    CardState.SPOILED: frozenset(),
}

# Schema 1 as it shipped: frozen here so an old file is upgraded from exactly what it holds.
_RULES_V1 = SchemaRules(
    states=("active", "damaged", "handed_over", "lost", "personalised", "revoked"),
    live=("active", "handed_over", "personalised"),
    initial=("personalised",),
    allowed=(
        "personalised>handed_over", "personalised>damaged", "personalised>revoked", "handed_over>active",
        "handed_over>lost", "handed_over>damaged", "handed_over>revoked", "active>lost", "active>damaged",
        "active>revoked",
    ),
)
_RULES_NOW = SchemaRules(
    states=tuple(sorted(str(s) for s in CardState)),
    live=tuple(sorted(str(s) for s in LIVE_STATES)),
    initial=(str(CardState.PENDING), str(CardState.PERSONALISED)),
    allowed=tuple(sorted(f"{old}>{new}" for old, news in TRANSITIONS.items() for new in news)),
)

#: Schema versions and the rules each enforces: 1 cards and audit; 2 pending/spoiled, batch and the
#: EF.SOD hash; 3 settings, leases and the sync log.
MIGRATIONS: tuple[SchemaRules, ...] = (_RULES_V1, _RULES_NOW, _RULES_NOW)

_SOD_RE = re.compile(r"[0-9a-f]{64}")
_NIK_RE = re.compile(r"[0-9]{16}")
_SETTING_ID = "registry_id"
_SETTING_OFFLINE = "offline_desk"


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
    batch: str | None = None
    sod_sha256: str | None = None

    @property
    def live(self) -> bool:
        """True while the card counts as the NIK's one card."""
        return self.state in LIVE_STATES


class SyncOutcome(StrEnum):
    """What became of one audit entry a desk pushed to the central registry."""

    #: The change was made.
    APPLIED = "applied"
    #: An entry without a card change, kept as a sync entry.
    RECORDED = "recorded"
    #: The central rules refused it.
    REFUSED = "refused"
    #: An earlier sync took it.
    ALREADY = "already"
    #: Not pushed: a dry run.
    PENDING = "pending"


@dataclass(frozen=True)
class RemoteOutcome:
    """What the central registry did with one audit entry pushed by a desk (see :mod:`.sync`).

    ``outcome`` is ``applied`` (the change was made), ``recorded`` (an entry without a card change, kept
    as a sync entry), ``refused`` (the central rules refused it; ``reason`` says why) or ``already`` (an
    earlier sync took it); ``lease_released`` is true when the change used up the desk's lease.
    """

    outcome: SyncOutcome
    serial: str | None
    reason: str | None
    lease_released: bool = False


_COLUMNS = (
    "serial, nik, state, desk, created_at, updated_at, reason, police_report, surrendered, batch, sod_sha256"
)
_SELECT = f"SELECT {_COLUMNS} FROM cards"  # noqa: S608


def _row(raw: Sequence[object]) -> CardRow:
    serial, nik, state, desk, created, updated, reason, report, surrendered, batch, sod = raw
    return CardRow(
        str(serial), str(nik), CardState(str(state)), str(desk), str(created), str(updated),
        None if reason is None else str(reason), None if report is None else str(report), bool(surrendered),
        None if batch is None else str(batch), None if sod is None else str(sod),
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def _version_number(row: Row | None) -> int:
    """The schema version in ``row`` (0 for none); :class:`RegistryError` when it is not a number."""
    if row is None or row[0] is None:
        return 0
    value = row[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise RegistryError(f"the registry's schema version {str(value)[:20]!r} is not a number")
    return value


def open_registry(
    target: str | Path, *, busy_timeout: float = 30.0, clock: Callable[[], datetime] = _utc_now,
    create: bool = True,
) -> Registry:
    """Open a registry: a file path or ``sqlite:///abs/path`` for SQLite, a ``postgresql://`` URL for
    PostgreSQL (needs the ``desk`` extra, psycopg 3). Without ``create`` a registry must be there
    already: nothing is created (a missing SQLite file, the tables in an empty database)."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        from ektp_card.desk.postgres import PostgresBackend

        return Registry(PostgresBackend.connect(text, timeout=busy_timeout), clock=clock, create=create)
    if text.startswith("sqlite://"):
        text = text[len("sqlite://"):]
        if not text.startswith("/"):
            raise RegistryError("a sqlite:// registry URL needs an absolute path: sqlite:///abs/path")
    elif "://" in text:
        raise RegistryError(f"unknown registry URL scheme in {text.split('://', 1)[0]!r}")
    return Registry(text, busy_timeout=busy_timeout, clock=clock, create=create)


class Registry:
    """A card registry on one database connection; one instance per thread."""

    def __init__(
        self, target: str | Path | Backend, *, busy_timeout: float = 30.0,
        clock: Callable[[], datetime] = _utc_now, create: bool = True,
    ) -> None:
        self._clock = clock
        self._db = (
            target if isinstance(target, Backend)
            else SqliteBackend.open(target, busy_timeout=busy_timeout, create=create)
        )
        try:
            if not create and self._version() is None:
                raise RegistryError("the database holds no ektp registry (no schema_version table)")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    # -- plumbing -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def backend(self) -> Backend:
        """The database backend: ``one``/``all`` run read-only queries with ``?`` placeholders on either
        database; ``dialect`` says which."""
        return self._db

    @property
    def connection(self) -> Any:
        """The driver's connection (sqlite3 or psycopg), for read-only reporting queries."""
        return self._db.raw

    def _migrate(self) -> None:
        db = self._db
        try:
            if self.schema_version == len(MIGRATIONS):
                return  # up to date: no need to wait for the write lock
        except DatabaseError:
            pass  # a new database: no schema_version table yet
        with db.write():
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = _version_number(db.one("SELECT max(version) FROM schema_version"))
            if current > len(MIGRATIONS):
                raise RegistryError(f"registry schema version {current} is newer than this software")
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for statement in db.migration(version, MIGRATIONS[version - 1]):
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            if db.one("SELECT value FROM settings WHERE key = ?", (_SETTING_ID,)) is None:
                db.execute("INSERT INTO settings (key, value) VALUES (?, ?)",
                           (_SETTING_ID, str(uuid.uuid4())))

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        return _version_number(self._db.one("SELECT max(version) FROM schema_version"))

    def _version(self) -> int | None:
        """The schema version, or None when the database has no schema_version table."""
        try:
            return self.schema_version
        except DatabaseError:
            return None

    @property
    def registry_id(self) -> str:
        """A random identifier made when the database was created; names this registry in sync logs."""
        return self._setting(_SETTING_ID) or ""

    @property
    def offline_desk(self) -> str | None:
        """The desk this registry issues for offline, or None for a central (or plain) registry."""
        return self._setting(_SETTING_OFFLINE)

    def _setting(self, key: str) -> str | None:
        row = self._db.one("SELECT value FROM settings WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def _now(self) -> str:
        return _stamp(self._clock())

    # -- queries ------------------------------------------------------------------------------------

    def get(self, serial: str) -> CardRow | None:
        """The card with this serial, or None."""
        raw = self._db.one(f"{_SELECT} WHERE serial = ?", (serial,))
        return None if raw is None else _row(raw)

    def live_card(self, nik: str) -> CardRow | None:
        """The NIK's live card (pending, personalised, handed over or active), or None."""
        raw = self._db.one(f"{_SELECT} WHERE nik = ? AND state IN ({sql_list(_RULES_NOW.live)})", (nik,))
        return None if raw is None else _row(raw)

    def cards_for(self, nik: str) -> list[CardRow]:
        """Every card ever registered for the NIK, oldest first."""
        return self.cards(nik=nik)

    def cards(
        self, *, states: Iterable[CardState] | None = None, desk: str | None = None, nik: str | None = None,
        batch: str | None = None,
    ) -> list[CardRow]:
        """Cards matching every given filter, oldest first."""
        where: list[str] = []
        params: list[object] = []
        if states is not None:
            wanted = [str(CardState(s)) for s in states]
            if not wanted:
                return []
            where.append(f"state IN ({', '.join('?' for _ in wanted)})")
            params.extend(wanted)
        for column, value in (("desk", desk), ("nik", nik), ("batch", batch)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.all(f"{_SELECT}{clause} ORDER BY created_at, serial", params)
        return [_row(r) for r in rows]

    def audit_entries(self, *, after: int = 0) -> list[audit.AuditEntry]:
        """The audit log in order (only entries after seq ``after`` when given)."""
        return audit.entries(self._db, after=after)

    def audit_head(self) -> audit.AuditAnchor:
        """The audit log's head, for the caller to keep as an anchor."""
        return audit.head(self._db)

    def verify_chain(self, anchor: audit.AuditAnchor | None = None) -> audit.ChainProblem | None:
        """Check the audit chain; see :func:`ektp_card.desk.audit.verify_chain`."""
        return audit.verify_chain(self._db, anchor)

    def verify(self, anchor: audit.AuditAnchor | None = None) -> audit.ChainProblem | None:
        """Check the audit chain (:meth:`verify_chain`) and that it vouches for the cards as they are:
        every card row must be what replaying the log's changes gives, so a row edited, added or
        removed without its audit entry is caught, not only an edited entry."""
        problem = self.verify_chain(anchor)
        if problem is not None:
            return problem
        return _card_problem(self.audit_entries(), {row.serial: row for row in self.cards()})

    # -- mutations ----------------------------------------------------------------------------------

    def reserve(self, serial: str, nik: str, *, desk: str, actor: str, batch: str | None = None) -> CardRow:
        """Reserve ``serial`` for the NIK just before its card is written (state pending).

        Raises DuplicateActiveCardError when the NIK has a live card or is leased to another desk.
        """
        now = self._now()
        with self._db.write():
            self._insert(serial, nik, CardState.PENDING, desk=desk, at=now, batch=batch)
            details: dict[str, audit.DetailValue] = {"serial": serial, "nik": nik}
            if batch is not None:
                details["batch"] = batch
            self._audit(now, actor, desk, "reserve", details)
            return self._get_in(serial)

    def confirm(self, serial: str, *, sod_sha256: str, desk: str, actor: str) -> CardRow:
        """The reserved card was written and read back: pending -> personalised, with the SHA-256 (lower-case
        hex) of its EF.SOD, which is how verifiers identify the card once it is locked."""
        if not _SOD_RE.fullmatch(sod_sha256):
            raise RegistryError(f"card {serial}: the EF.SOD hash must be 64 lower-case hex digits")
        now = self._now()
        with self._db.write():
            old = self._change(serial, CardState.PERSONALISED, at=now, sod_sha256=sod_sha256, confirming=True)
            self._release_used(old.nik, old.desk)
            self._audit(now, actor, desk, "confirm", {
                "serial": serial, "from": str(old.state), "to": str(CardState.PERSONALISED),
                "sod_sha256": sod_sha256,
            })
            return self._get_in(serial)

    def spoil(
        self, serial: str, reason: str, *, desk: str, actor: str, sod_sha256: str | None = None
    ) -> CardRow:
        """Personalisation of the reserved card was abandoned or failed its read back: pending -> spoiled.

        ``sod_sha256`` is given when the card was written and locked before it was spoiled: a revocation
        list can then name it, should it ever leave the desk.
        """
        if sod_sha256 is not None and not _SOD_RE.fullmatch(sod_sha256):
            raise RegistryError(f"card {serial}: the EF.SOD hash must be 64 lower-case hex digits")
        now = self._now()
        with self._db.write():
            old = self._change(serial, CardState.SPOILED, at=now, reason=reason, sod_sha256=sod_sha256)
            details = _transition_details(serial, old.state, CardState.SPOILED, reason, None)
            if sod_sha256 is not None:
                details["sod_sha256"] = sod_sha256
            self._audit(now, actor, desk, f"state:{CardState.SPOILED}", details)
            return self._get_in(serial)

    def record_event(
        self, serial: str, action: str, details: Mapping[str, audit.DetailValue], *, desk: str, actor: str
    ) -> audit.AuditEntry:
        """An audit entry about a card that changes nothing about it (a refused handover, say).

        ``action`` is recorded as ``event:<action>``; the card must be in the registry.
        """
        if not action or not action.replace("-", "").isalnum():
            raise RegistryError("an event action is letters, digits and hyphens")
        now = self._now()
        with self._db.write():
            self._get_in(serial)
            return self._audit(now, actor, desk, f"event:{action}", {**details, "serial": serial})

    def register(self, serial: str, nik: str, *, desk: str, actor: str) -> CardRow:
        """Record a freshly personalised card; refused if the NIK already has a live card."""
        now = self._now()
        with self._db.write():
            self._insert(serial, nik, CardState.PERSONALISED, desk=desk, at=now)
            self._release_used(nik, desk)
            self._audit(now, actor, desk, "register", {"serial": serial, "nik": nik})
            return self._get_in(serial)

    def replace(self, old_serial: str, new_serial: str, *, desk: str, actor: str) -> CardRow:
        """Register ``new_serial`` for the NIK of ``old_serial``, which must be lost, damaged or revoked."""
        now = self._now()
        with self._db.write():
            old = self._replace(old_serial, new_serial, desk=desk, at=now)
            self._audit(now, actor, desk, "replace", {
                "serial": new_serial, "nik": old.nik, "replaces": old_serial, "old_state": str(old.state),
            })
            return self._get_in(new_serial)

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
        """Move a card to ``new_state``; the one place that checks :data:`TRANSITIONS`.

        A pending card becomes personalised only through :meth:`confirm` (it needs the EF.SOD hash).
        """
        new_state = CardState(new_state)
        now = self._now()
        with self._db.write():
            old = self._change(
                serial, new_state, at=now, reason=reason, police_report=police_report, surrendered=surrendered
            )
            self._audit(now, actor, desk, f"state:{new_state}",
                        _transition_details(serial, old.state, new_state, reason, police_report))
            return self._get_in(serial)

    # -- leases -------------------------------------------------------------------------------------

    def lease(self, niks: Iterable[str], *, desk: str, actor: str, ttl: timedelta) -> LeaseResult:
        """Lend the NIKs to ``desk`` for ``ttl`` so it can issue them offline.

        A NIK with a live card, or with a current lease held by another desk, is refused; a lease the desk
        already holds is extended. All in one transaction, under the same lock as :meth:`reserve`.
        """
        if ttl <= timedelta(0):
            raise RegistryError("a lease needs a positive duration")
        if not desk:
            raise RegistryError("a lease needs a desk")
        now_dt = self._clock()
        now, expires = _stamp(now_dt), _stamp(now_dt + ttl)
        granted: list[Lease] = []
        refused: list[LeaseRefusal] = []
        with self._db.write():
            if self.offline_desk is not None:
                raise RegistryError("an offline desk registry gets its leases from the central registry")
            for nik in dict.fromkeys(niks):
                reason = self._lease_refusal(nik, desk, now)
                if reason is not None:
                    refused.append(LeaseRefusal(nik, reason))
                    continue
                lease = Lease(nik, desk, actor, now, expires)
                self._store_lease(lease)
                granted.append(lease)
            if granted:
                self._audit(now, actor, desk, "lease", {
                    "niks": ",".join(g.nik for g in granted), "count": len(granted), "expires_at": expires,
                })
        return LeaseResult(tuple(granted), tuple(refused))

    def adopt_leases(self, leases: Sequence[Lease], *, desk: str, actor: str) -> None:
        """Keep copies of ``desk``'s leases from the central registry; from then on this registry is an
        offline desk registry for ``desk`` and issues only NIKs it holds a current lease on."""
        if any(lease.desk != desk for lease in leases):
            raise RegistryError("every adopted lease must belong to the adopting desk")
        now = self._now()
        with self._db.write():
            current = self.offline_desk
            if current is not None and current != desk:
                raise RegistryError(f"this registry issues offline for desk {current!r}, not {desk!r}")
            if current is None:
                self._db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (_SETTING_OFFLINE, desk))
            for lease in leases:
                self._store_lease(lease)
            self._audit(now, actor, desk, "lease:adopt", {
                "niks": ",".join(lease.nik for lease in leases), "count": len(leases),
                "expires_at": max((lease.expires_at for lease in leases), default=None),
            })

    def leases(self, desk: str | None = None, *, include_expired: bool = False) -> list[Lease]:
        """Leases (of one desk when given), current ones only unless ``include_expired``."""
        where, params = ["1 = 1"], []
        if desk is not None:
            where.append("desk = ?")
            params.append(desk)
        if not include_expired:
            where.append("expires_at > ?")
            params.append(self._now())
        rows = self._db.all(
            f"SELECT nik, desk, actor, leased_at, expires_at FROM leases WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY nik", params,
        )
        return [Lease(*(str(v) for v in r)) for r in rows]

    def release(self, niks: Iterable[str], *, desk: str, actor: str) -> int:
        """Give back ``desk``'s leases on the NIKs; returns how many were released."""
        now = self._now()
        released: list[str] = []
        with self._db.write():
            for nik in dict.fromkeys(niks):
                if self._db.execute("DELETE FROM leases WHERE nik = ? AND desk = ?", (nik, desk)):
                    released.append(nik)
            if released:
                self._audit(now, actor, desk, "release", {"niks": ",".join(released), "count": len(released)})
        return len(released)

    # -- sync (central side) ------------------------------------------------------------------------

    def synced_upto(self, origin: str) -> tuple[int, str | None]:
        """The last audit seq of registry ``origin`` this registry took in a sync, and its hash."""
        row = self._db.one(
            "SELECT local_seq, local_hash FROM sync_log WHERE origin = ? ORDER BY local_seq DESC LIMIT 1",
            (origin,),
        )
        return (0, None) if row is None else (int(row[0]), str(row[1]))

    def apply_remote(self, origin: str, entry: audit.AuditEntry) -> RemoteOutcome:
        """Take one audit entry of registry ``origin`` (a desk's local registry): make its card change
        here under this registry's rules and record it as a ``sync:`` audit entry referencing the entry's
        seq and hash, all in one transaction. Idempotent: an entry already taken is not applied again."""
        serial = entry.details.get("serial")
        serial = None if serial is None else str(serial)
        try:
            with self._db.write():
                if self._synced(origin, entry.seq):
                    return RemoteOutcome(SyncOutcome.ALREADY, serial, None)
                outcome, released = self._apply(entry)
                self._record_remote(origin, entry, outcome, serial, None)
                return RemoteOutcome(outcome, serial, None, released)
        except ConstraintViolation as exc:
            if exc.kind is Violation.SYNCED:
                return RemoteOutcome(SyncOutcome.ALREADY, serial, None)
            reason = _violation_message(exc, serial or "?")
        except DatabaseError:
            raise  # not a refusal: the next sync tries the entry again
        except RegistryError as exc:
            reason = str(exc)
        # The change was rolled back; record the refusal on its own so a later sync skips the entry.
        with self._db.write():
            if self._synced(origin, entry.seq):
                return RemoteOutcome(SyncOutcome.ALREADY, serial, None)
            self._record_remote(origin, entry, SyncOutcome.REFUSED, serial, reason)
        return RemoteOutcome(SyncOutcome.REFUSED, serial, reason)

    def _synced(self, origin: str, seq: int) -> bool:
        row = self._db.one("SELECT 1 FROM sync_log WHERE origin = ? AND local_seq = ?", (origin, seq))
        return row is not None

    def _apply(self, entry: audit.AuditEntry) -> tuple[SyncOutcome, bool]:
        d = entry.details
        at, desk = entry.at, entry.desk

        def text(key: str) -> str | None:
            value = d.get(key)
            return None if value is None else str(value)

        serial = text("serial") or ""
        if entry.action in ("reserve", "register"):
            nik = text("nik") or ""
            state = CardState.PENDING if entry.action == "reserve" else CardState.PERSONALISED
            self._insert(serial, nik, state, desk=desk, at=at, batch=text("batch"))
            return SyncOutcome.APPLIED, state is CardState.PERSONALISED and self._release_used(nik, desk)
        if entry.action == "replace":
            old = self._replace(text("replaces") or "", serial, desk=desk, at=at)
            return SyncOutcome.APPLIED, self._release_used(old.nik, desk)
        if entry.action == "confirm":
            old = self._change(serial, CardState.PERSONALISED, at=at, sod_sha256=text("sod_sha256"),
                               confirming=True)
            return SyncOutcome.APPLIED, self._release_used(old.nik, old.desk)
        if entry.action.startswith("state:"):
            name = entry.action.removeprefix("state:")
            if name not in _RULES_NOW.states:
                raise RegistryError(f"card {serial}: unknown card state {name!r}")
            self._change(
                serial, CardState(name), at=at, reason=text("reason"),
                police_report=text("police_report"), surrendered=bool(d.get("surrendered", False)),
                sod_sha256=text("sod_sha256"),
            )
            return SyncOutcome.APPLIED, False
        return SyncOutcome.RECORDED, False

    def _record_remote(
        self,
        origin: str,
        entry: audit.AuditEntry,
        outcome: SyncOutcome,
        serial: str | None,
        reason: str | None,
    ) -> None:
        details: dict[str, audit.DetailValue] = dict(entry.details)
        details.update({
            "origin": origin, "local_seq": entry.seq, "local_hash": entry.hash, "local_at": entry.at,
            "outcome": outcome.value,
        })
        if reason is not None:
            details["refusal"] = reason
        written = self._audit(self._now(), entry.actor, entry.desk, f"sync:{entry.action}", details)
        self._db.execute(
            "INSERT INTO sync_log (origin, local_seq, local_hash, central_seq, outcome, serial, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (origin, entry.seq, entry.hash, written.seq, outcome.value, serial, reason),
        )

    # -- helpers (inside a write transaction) -------------------------------------------------------

    def _audit(
        self, at: str, actor: str, desk: str, action: str, details: Mapping[str, audit.DetailValue]
    ) -> audit.AuditEntry:
        return audit.append(self._db, at=at, actor=actor, desk=desk, action=action, details=details)

    def _get_in(self, serial: str) -> CardRow:
        raw = self._db.one(f"{_SELECT} WHERE serial = ?", (serial,))
        if raw is None:
            raise RegistryError(f"card {serial} is not in the registry")
        return _row(raw)

    def _check_lease(self, serial: str, nik: str, desk: str, at: str) -> None:
        row = self._db.one("SELECT desk, expires_at FROM leases WHERE nik = ?", (nik,))
        if row is not None and str(row[0]) != desk and str(row[1]) > at:
            raise DuplicateActiveCardError(f"card {serial}: this NIK is leased to another desk")
        offline = self.offline_desk
        if offline is not None and (row is None or str(row[0]) != desk or str(row[1]) <= at):
            raise RegistryError(
                f"card {serial}: this offline desk registry holds no current lease for the NIK;"
                " lease it from the central registry first"
            )

    def _insert(
        self, serial: str, nik: str, state: CardState, *, desk: str, at: str, batch: str | None = None
    ) -> None:
        self._check_lease(serial, nik, desk, at)
        try:
            self._db.execute(
                f"INSERT INTO cards ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, 0, ?, NULL)",  # noqa: S608
                (serial, nik, str(state), desk, at, at, batch),
            )
        except ConstraintViolation as exc:
            raise _violation_error(exc, serial) from exc

    def _replace(self, old_serial: str, new_serial: str, *, desk: str, at: str) -> CardRow:
        old = self._get_in(old_serial)
        if old.state not in REPLACEABLE_STATES:
            raise RegistryError(
                f"card {old_serial} is {old.state}; report it lost or damaged, or revoke it, first"
            )
        self._insert(new_serial, old.nik, CardState.PERSONALISED, desk=desk, at=at)
        self._release_used(old.nik, desk)
        return old

    def _change(
        self, serial: str, new_state: CardState, *, at: str, reason: str | None = None,
        police_report: str | None = None, surrendered: bool = False, sod_sha256: str | None = None,
        confirming: bool = False,
    ) -> CardRow:
        if new_state is CardState.LOST and not (police_report and police_report.strip()):
            raise RegistryError(f"card {serial}: a lost card needs a police report reference")
        if new_state is CardState.DAMAGED and not surrendered:
            raise RegistryError(f"card {serial}: a damaged card must be surrendered")
        if new_state is CardState.SPOILED and not (reason and reason.strip()):
            raise RegistryError(f"card {serial}: a spoiled card needs a reason")
        old = self._get_in(serial)
        if new_state not in TRANSITIONS[old.state]:
            raise RegistryError(f"card {serial}: cannot go from {old.state} to {new_state}")
        if old.state is CardState.PENDING and new_state is CardState.PERSONALISED and not confirming:
            raise RegistryError(f"card {serial}: a reserved card is confirmed with its EF.SOD hash")
        try:
            self._db.execute(
                "UPDATE cards SET state = ?, updated_at = ?, reason = coalesce(?, reason),"
                " police_report = coalesce(?, police_report), surrendered = ?,"
                " sod_sha256 = coalesce(?, sod_sha256) WHERE serial = ?",
                (str(new_state), at, reason, police_report, int(surrendered or old.surrendered), sod_sha256,
                 serial),
            )
        except ConstraintViolation as exc:
            raise _violation_error(exc, serial) from exc
        return old

    def _store_lease(self, lease: Lease) -> None:
        self._db.execute(
            "INSERT INTO leases (nik, desk, actor, leased_at, expires_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (nik) DO UPDATE SET desk = excluded.desk, actor = excluded.actor,"
            " leased_at = excluded.leased_at, expires_at = excluded.expires_at",
            (lease.nik, lease.desk, lease.actor, lease.leased_at, lease.expires_at),
        )

    def _lease_refusal(self, nik: str, desk: str, now: str) -> str | None:
        if not _NIK_RE.fullmatch(nik):
            return REASON_INVALID
        if self.live_card(nik) is not None:
            return REASON_LIVE
        row = self._db.one("SELECT desk, expires_at FROM leases WHERE nik = ?", (nik,))
        if row is not None and str(row[0]) != desk and str(row[1]) > now:
            return REASON_LEASED
        return None

    def _release_used(self, nik: str, desk: str) -> bool:
        # The NIK got its card: the desk's lease on it has done its job.
        return self._db.execute("DELETE FROM leases WHERE nik = ? AND desk = ?", (nik, desk)) > 0


def _replay(entries: Sequence[audit.AuditEntry]) -> tuple[dict[str, CardRow], dict[str, int]]:
    """The cards the audit log's changes make, as :class:`Registry` writes them, and the last entry
    that changed each. A central registry's ``sync:`` entries replay the desk's change they took."""
    cards: dict[str, CardRow] = {}
    last: dict[str, int] = {}

    def text(details: Mapping[str, audit.DetailValue], key: str) -> str | None:
        value = details.get(key)
        return None if value is None else str(value)

    def kept(new: str | None, old: str | None) -> str | None:
        return old if new is None else new  # the registry's coalesce(new, old)

    for entry in entries:
        action, details, at = entry.action, entry.details, entry.at
        if action.startswith("sync:"):
            if details.get("outcome") != SyncOutcome.APPLIED.value:
                continue
            action, at = action.removeprefix("sync:"), str(details.get("local_at"))
        serial = text(details, "serial") or ""
        if action in ("reserve", "register", "replace"):
            state = CardState.PENDING if action == "reserve" else CardState.PERSONALISED
            batch = text(details, "batch") if action == "reserve" else None
            cards[serial] = CardRow(serial, text(details, "nik") or "", state, entry.desk, at, at, None, None,
                                    False, batch, None)
        elif action == "confirm" or action.startswith("state:"):
            old = cards.get(serial)
            if old is None:
                continue  # the chain check names a log that changes an unknown card
            new = CardState.PERSONALISED if action == "confirm" else CardState(action.removeprefix("state:"))
            cards[serial] = dataclasses.replace(
                old, state=new, updated_at=at, reason=kept(text(details, "reason"), old.reason),
                police_report=kept(text(details, "police_report"), old.police_report),
                surrendered=old.surrendered or bool(details.get("surrendered", False)),
                sod_sha256=kept(text(details, "sod_sha256"), old.sod_sha256))
        else:
            continue
        last[serial] = entry.seq
    return cards, last


def _card_problem(
    entries: Sequence[audit.AuditEntry], rows: Mapping[str, CardRow]
) -> audit.ChainProblem | None:
    """The first card whose row is not what the audit log records, or None."""
    try:
        recorded, last = _replay(entries)
    except ValueError:  # a state name this software does not know
        return audit.ChainProblem(len(entries), "the log records a card state this software does not know")
    head = entries[-1].seq if entries else 0
    for serial in sorted(set(recorded) | set(rows)):
        row, expected = rows.get(serial), recorded.get(serial)
        if expected is None:
            return audit.ChainProblem(head, f"card {serial} has no audit entry: added without the log")
        seq = last[serial]
        if row is None:
            return audit.ChainProblem(seq, f"card {serial} is in the log but not in the registry: removed")
        for name in ("nik", "state", "desk", "created_at", "updated_at", "reason", "police_report",
                     "surrendered", "batch", "sod_sha256"):
            if getattr(row, name) != getattr(expected, name):
                return audit.ChainProblem(
                    seq, f"card {serial}: its {name.replace('_', ' ')} is not what the log records (edited "
                         "without an audit entry)")
    return None


def _transition_details(
    serial: str, old: CardState, new: CardState, reason: str | None, police_report: str | None
) -> dict[str, audit.DetailValue]:
    details: dict[str, audit.DetailValue] = {"serial": serial, "from": str(old), "to": str(new)}
    if reason is not None:
        details["reason"] = reason
    if police_report is not None:
        details["police_report"] = police_report
    if new is CardState.DAMAGED:
        details["surrendered"] = True
    return details


def _violation_message(exc: ConstraintViolation, serial: str) -> str:
    # The NIK is personal data: name the card serial, never the NIK, in messages.
    if exc.kind is Violation.LIVE_NIK:
        return f"card {serial}: this NIK already has a live card"
    if exc.kind is Violation.LEASED:
        return f"card {serial}: this NIK is leased to another desk"
    if exc.kind is Violation.SERIAL:
        return f"card serial {serial} is already registered"
    if exc.kind is Violation.SOD:
        return f"card {serial}: this EF.SOD hash is already registered for another card"
    return f"card {serial}: registry refused the record: {exc.text}"


def _violation_error(exc: ConstraintViolation, serial: str) -> RegistryError:
    message = _violation_message(exc, serial)
    if exc.kind in (Violation.LIVE_NIK, Violation.LEASED):
        return DuplicateActiveCardError(message)
    return RegistryError(message)
