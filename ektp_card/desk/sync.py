"""Offline desks: lease NIKs from the central registry, issue against a local SQLite registry, sync back.

Before going offline a desk calls :func:`lease`: the central registry lends it the batch's NIKs for a
while (no other desk can reserve them meanwhile) and the desk's local registry keeps copies, which turns
it into an *offline desk registry* that issues only leased NIKs (:mod:`ektp_card.desk.lease`).

:func:`sync` pushes the local registry's audit log, entry by entry in seq order, to the central registry.
Each entry is one central transaction that makes the card change under the central rules, appends a
``sync:<action>`` audit entry naming the local registry, seq and hash, and records the entry in the
central ``sync_log``. The central registry is therefore the one record of how far a desk has synced:
running sync twice, or again after a crash or power cut at any point, takes each entry exactly once.
A card whose NIK got a live card elsewhere meanwhile (say after the lease expired) is refused and
recorded as refused, and the report lists it. A lease is used up when its NIK's card becomes
personalised, so syncing a confirmed card releases its lease on the central registry too.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from ektp_card.desk.audit import AuditEntry
from ektp_card.desk.lease import LeaseResult
from ektp_card.desk.registry import Registry, SyncOutcome
from ektp_card.errors import InputFileError, RegistryError
from ektp_card.files import LINE_LIMIT, open_regular, parse_json

#: Outcomes of one entry; pending only in a dry run.
OUTCOMES = tuple(SyncOutcome)


@dataclass(frozen=True)
class SyncItem:
    """One local audit entry and what the central registry did with it."""

    local_seq: int
    at: str
    actor: str
    action: str
    serial: str | None
    outcome: SyncOutcome
    reason: str | None = None


@dataclass(frozen=True)
class SyncReport:
    """The result of one :func:`sync` (or, with ``dry_run``, what it would push)."""

    origin: str
    desk: str | None
    items: tuple[SyncItem, ...]
    leases_released: int
    dry_run: bool

    def count(self, outcome: SyncOutcome) -> int:
        """How many entries had ``outcome``."""
        return sum(1 for item in self.items if item.outcome == outcome)

    @property
    def refused(self) -> tuple[SyncItem, ...]:
        """Entries the central registry refused (their cards are not on the central registry)."""
        return tuple(item for item in self.items if item.outcome is SyncOutcome.REFUSED)


def lease(
    local: Registry, central: Registry, niks: Iterable[str], *, desk: str, actor: str, ttl: timedelta
) -> LeaseResult:
    """Lease the NIKs from ``central`` for ``desk`` and keep copies of the granted leases in ``local``.

    Running it again is harmless (the desk's own leases are extended), so a crash between the two
    registries is repaired by running it again.
    """
    _distinct(local, central)
    result = central.lease(niks, desk=desk, actor=actor, ttl=ttl)
    local.adopt_leases(result.granted, desk=desk, actor=actor)
    return result


def pending(local: Registry, central: Registry) -> list[AuditEntry]:
    """The local audit entries the central registry has not taken yet, after checking that the local log
    verifies, still holds the entry the last sync ended with, and vouches for the local cards as they are
    (a card row edited without its entry is not pushed, nor anything after it)."""
    _distinct(local, central)
    problem = local.verify_chain()
    if problem is not None:
        raise RegistryError(
            f"the local audit log does not verify at entry {problem.seq} ({problem.reason}); not syncing"
        )
    upto, upto_hash = central.synced_upto(local.registry_id)
    entries = local.audit_entries(after=max(0, upto - 1))
    if upto:
        if not entries or entries[0].seq != upto or entries[0].hash != upto_hash:
            raise RegistryError(
                f"the local audit log differs from what the central registry took at entry {upto};"
                " not syncing"
            )
        entries = entries[1:]
    problem = local.verify()
    if problem is not None:
        raise RegistryError(
            f"the local registry does not match its audit log at entry {problem.seq} ({problem.reason}); "
            "not syncing"
        )
    return entries


def sync(local: Registry, central: Registry, *, dry_run: bool = False) -> SyncReport:
    """Push every local audit entry the central registry has not taken; see the module docstring."""
    entries = pending(local, central)
    origin = local.registry_id
    items: list[SyncItem] = []
    released = 0
    for entry in entries:
        serial = entry.details.get("serial")
        serial = None if serial is None else str(serial)
        if dry_run:
            item = SyncItem(entry.seq, entry.at, entry.actor, entry.action, serial, SyncOutcome.PENDING)
            items.append(item)
            continue
        outcome = central.apply_remote(origin, entry)
        released += outcome.lease_released
        items.append(SyncItem(entry.seq, entry.at, entry.actor, entry.action, serial, outcome.outcome,
                              outcome.reason))
    return SyncReport(origin, local.offline_desk, tuple(items), released, dry_run)


def _distinct(local: Registry, central: Registry) -> None:
    if local.registry_id == central.registry_id:
        raise RegistryError("the local and the central registry are the same database")


_NIK_RE = re.compile(r"[0-9]{16}")


def read_nik_file(path: str | Path) -> list[str]:
    """The NIKs named by a file: a batch file (``.csv`` with a ``nik`` column, ``.jsonl`` with a ``nik``
    key) or plain text with one NIK per line (blank lines and ``#`` comments skipped). Order is kept,
    repeats dropped; a malformed entry is a RegistryError naming its line, not its content; a file that
    cannot be read an InputFileError."""
    path = Path(path)
    suffix = path.suffix.lower()
    found: list[tuple[int, str]] = []
    try:
        # Read as the lines come, each no longer than a record: a batch with its images inline may be
        # large, and a FIFO or device is refused before it is read.
        with os.fdopen(open_regular(path), encoding="utf-8", newline="") as fh:
            lines = _limited_lines(fh, path)
            if suffix == ".csv":
                reader = csv.DictReader(lines)
                if reader.fieldnames is None or "nik" not in reader.fieldnames:
                    raise RegistryError(f"{path}: the CSV file has no 'nik' column")
                found = [(reader.line_num, str(row.get("nik") or "").strip()) for row in reader]
            elif suffix == ".jsonl":
                for number, line in enumerate(lines, start=1):
                    if not line.strip():
                        continue
                    try:
                        value = parse_json(line)
                    except json.JSONDecodeError:
                        raise RegistryError(f"{path} line {number}: not a JSON object") from None
                    nik = value.get("nik", "") if isinstance(value, dict) else ""
                    found.append((number, nik.strip() if isinstance(nik, str) else ""))
            else:
                for number, line in enumerate(lines, start=1):
                    line = line.split("#", 1)[0].strip()
                    if line:
                        found.append((number, line))
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputFileError(f"cannot read {path}: {reason}") from None
    except csv.Error as exc:
        raise RegistryError(f"{path}: malformed CSV ({exc})") from None
    for number, nik in found:
        if not _NIK_RE.fullmatch(nik):
            raise RegistryError(f"{path} line {number}: not a 16-digit NIK")
    return list(dict.fromkeys(nik for _, nik in found))


def _limited_lines(fh: TextIO, path: Path) -> Iterator[str]:
    while True:
        line = fh.readline(LINE_LIMIT + 1)
        if not line:
            return
        if len(line) > LINE_LIMIT:
            raise InputFileError(f"cannot read {path}: a line longer than any record can be")
        yield line
