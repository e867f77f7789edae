"""Append-only, hash-chained audit log kept in the registry's database (SQLite or PostgreSQL).

Each entry's hash is SHA-256 over the canonical JSON encoding of the entry (seq, at, actor, desk,
action, details) together with the previous entry's hash, so editing, removing or reordering any entry
breaks the chain from that entry on. Rewriting the whole chain is only caught against an anchor (the head
seq and hash) that the caller keeps somewhere else.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from ektp_card.desk.backend import Backend, SqliteBackend

#: The prev_hash of the first entry.
GENESIS_HASH = "0" * 64

#: Values allowed in ``details``: no floats, so the encoding is canonical across platforms.
DetailValue = str | int | bool | None

#: The table and its append-only triggers are created by the registry's migration 1 (see
#: :mod:`ektp_card.desk.backend` and :mod:`ektp_card.desk.postgres`). The triggers stop accidental edits
#: through SQL; a deliberate attacker can drop them, which is what the hash chain is for.

#: A registry database: a backend, or a plain sqlite3 connection to a registry file.
Database = Backend | sqlite3.Connection

_SELECT = "SELECT seq, at, actor, desk, action, details, prev_hash, hash FROM audit"


def _db(conn: Database) -> Backend:
    return SqliteBackend(conn, owned=False) if isinstance(conn, sqlite3.Connection) else conn


@dataclass(frozen=True)
class AuditEntry:
    """One audit log row."""

    seq: int
    at: str
    actor: str
    desk: str
    action: str
    details: Mapping[str, DetailValue]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditAnchor:
    """The head of the chain as seen at some moment; kept by the caller outside the database."""

    seq: int
    hash: str


@dataclass(frozen=True)
class ChainProblem:
    """The first entry at which the chain does not verify, and why."""

    seq: int
    reason: str


def canonical_encoding(
    seq: int, at: str, actor: str, desk: str, action: str, details: Mapping[str, DetailValue], prev_hash: str
) -> bytes:
    """The exact bytes hashed for one entry: sorted-key compact UTF-8 JSON including prev_hash."""
    body = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "desk": desk,
        "action": action,
        "details": dict(details),
        "prev_hash": prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(
    seq: int, at: str, actor: str, desk: str, action: str, details: Mapping[str, DetailValue], prev_hash: str
) -> str:
    """Hex SHA-256 of :func:`canonical_encoding`."""
    return hashlib.sha256(canonical_encoding(seq, at, actor, desk, action, details, prev_hash)).hexdigest()


def _encode_details(details: Mapping[str, DetailValue]) -> str:
    for key, value in details.items():
        if not isinstance(key, str) or not (value is None or isinstance(value, str | int | bool)):
            raise TypeError(f"audit detail {key!r} must map a string to str, int, bool or None")
    return json.dumps(dict(details), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def append(
    conn: Database, *, at: str, actor: str, desk: str, action: str, details: Mapping[str, DetailValue],
) -> AuditEntry:
    """Append one entry; the caller must hold a write transaction so the entry commits with its change.

    The backend's audit lock is taken before the head is read, so concurrent writers on a shared
    database append one after the other and never fork the chain.
    """
    db = _db(conn)
    if not db.in_transaction:
        raise RuntimeError("audit.append needs an open write transaction")
    details_json = _encode_details(details)
    db.lock_audit()
    row = db.one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
    seq, prev_hash = (1, GENESIS_HASH) if row is None else (int(row[0]) + 1, str(row[1]))
    digest = entry_hash(seq, at, actor, desk, action, details, prev_hash)
    db.execute(
        "INSERT INTO audit (seq, at, actor, desk, action, details, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, at, actor, desk, action, details_json, prev_hash, digest),
    )
    return AuditEntry(seq, at, actor, desk, action, dict(details), prev_hash, digest)


def _row_to_entry(row: tuple[object, ...]) -> AuditEntry:
    seq, at, actor, desk, action, details_json, prev_hash, digest = row
    details = cast(dict[str, DetailValue], json.loads(str(details_json)))
    return AuditEntry(
        int(cast(int, seq)), str(at), str(actor), str(desk), str(action), details, str(prev_hash), str(digest)
    )


def entries(conn: Database, *, after: int = 0) -> list[AuditEntry]:
    """All entries in seq order (only those with seq greater than ``after`` when given)."""
    rows = _db(conn).all(_SELECT + " WHERE seq > ? ORDER BY seq", (after,))  # noqa: S608
    return [_row_to_entry(r) for r in rows]


def head(conn: Database) -> AuditAnchor:
    """The current head (seq 0 and the genesis hash for an empty log), for the caller to keep."""
    row = _db(conn).one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
    return AuditAnchor(0, GENESIS_HASH) if row is None else AuditAnchor(int(row[0]), str(row[1]))


def verify_chain(conn: Database, anchor: AuditAnchor | None = None) -> ChainProblem | None:
    """Recompute the chain; return the first bad seq and why, or None when it verifies.

    With ``anchor``, also require that the entry at ``anchor.seq`` still carries ``anchor.hash``: this
    catches a log truncated at its tail or rewritten from scratch.
    """
    expected_seq = 1
    prev_hash = GENESIS_HASH
    anchor_seen = anchor is None or anchor.seq == 0
    for raw in _db(conn).all(_SELECT + " ORDER BY seq"):  # noqa: S608
        try:
            entry = _row_to_entry(raw)
        except (ValueError, TypeError):
            return ChainProblem(expected_seq, "entry is not decodable")
        if entry.seq != expected_seq:
            return ChainProblem(expected_seq, f"entry {expected_seq} is missing (next is {entry.seq})")
        if entry.prev_hash != prev_hash:
            return ChainProblem(entry.seq, "prev_hash does not match the previous entry's hash")
        recomputed = entry_hash(
            entry.seq, entry.at, entry.actor, entry.desk, entry.action, entry.details, entry.prev_hash
        )
        if recomputed != entry.hash:
            return ChainProblem(entry.seq, "hash does not match the entry's content")
        if anchor is not None and entry.seq == anchor.seq:
            if entry.hash != anchor.hash:
                return ChainProblem(entry.seq, "hash differs from the anchored head")
            anchor_seen = True
        prev_hash = entry.hash
        expected_seq += 1
    if anchor is not None and not anchor_seen:
        return ChainProblem(expected_seq, f"log ends before the anchored entry {anchor.seq}")
    return None
