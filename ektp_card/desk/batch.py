"""Batch issuance: a file of citizen records becomes personalised cards, each committed to the registry.

Per record (docs/desk.md)::

    validate -> registry: the NIK's live card? (skip) -> blank card in the field
      -> personalise; right after the card authenticates, and before anything is written to it,
         reserve(serial, NIK, batch) in the registry (state pending: it counts as the NIK's live card)
      -> read back like a clerk (inside personalize) -> keep what the card printer needs (and, for a
         virtual card, the card image) -> confirm(serial, SHA-256 of EF.SOD) (state personalised)
    a card that fails after its reservation: spoil(serial, reason); the record counts as rejected.

The order is what makes a crash (kill -9, power cut) at any instant safe:

* The reservation commits before the first write, so every card that may hold data has a registry row,
  and the one-live-card-per-NIK index (which counts pending rows) keeps a second desk, or a second run,
  from starting another card for the NIK meanwhile.
* The files (print job, then card image; each written to a temporary file, fsynced and renamed) are
  complete before confirm, so a confirmed card always exists as described; a crash before confirm
  leaves a pending row and at most a finished image.
* A run of the same file (same batch ID, the content's hash) first resolves this desk's pending rows
  of the batch: an image that exists, verifies like a clerk's check and holds the row's NIK is
  confirmed (with its EF.SOD hash read from the card); anything else is spoiled and its files set
  aside, and the record is issued again below. Every registry change is one transaction with its
  audit entry, so a row is pending, personalised or spoiled, never in between.

One process per desk ID at a time: a second process of the same desk on the same batch would take
the first one's pending rows for interrupted ones.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ektp_card.apdu.transport import Transport
from ektp_card.crypto.perso import key_cipher
from ektp_card.errors import (
    ApduError,
    CardImageError,
    CardLockedError,
    DuplicateActiveCardError,
    IssuerMaterialError,
    LdsFormatError,
    NoCardError,
    PaceError,
    PersonalisationError,
    PkiError,
    PrintJobError,
    ReadBackError,
    RecordError,
    SecureMessagingError,
    TransportError,
)
from ektp_card.files import SMALL_JSON_LIMIT, open_regular, read_file, write_atomic
from ektp_card.lds.record import CitizenRecord, count_records, read_batch
from ektp_card.personalize import (
    Biometrics,
    DocumentSigner,
    check_document_signer,
    personalize,
    plan_from_record,
)

if TYPE_CHECKING:
    from ektp_card.desk.registry import Registry
    from ektp_card.pki.trust import TrustStore
    from ektp_card.verify.passive import Policy
    from ektp_card.virtual.card import VirtualCard

log = logging.getLogger("ektp_card.desk.batch")

#: Hex digits of the batch file's SHA-256 that make its batch ID.
BATCH_ID_LENGTH = 16
#: Suffixes of the files a virtual card directory holds per card.
CARD_SUFFIX = ".card"
PRINT_SUFFIX = ".print.json"
#: Where the files of spoiled cards are moved (a physical desk would destroy the card).
SPOILED_FOLDER = "spoiled"
#: Seconds per wait for a card in a reader before the cancel flag is looked at again.
_WAIT_SLICE = 0.5

Notice = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# --- the batch file ------------------------------------------------------------------------------------


def batch_id(path: str | Path) -> str:
    """The batch's ID: the first :data:`BATCH_ID_LENGTH` hex digits of the file's SHA-256, so running
    the same file again resumes the same batch (and an edited file is a new batch)."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()[:BATCH_ID_LENGTH]


# --- outcomes -------------------------------------------------------------------------------------------


class Status(StrEnum):
    ISSUED = "issued"
    SKIPPED = "skipped"
    REJECTED = "rejected"


@dataclass(frozen=True)
class RecordOutcome:
    """What became of one record: ``line`` in the file, the NIK (``None`` when it could not be read),
    the card serial when a card was started, and the reason for a skip or rejection (rule names for an
    invalid record)."""

    line: int
    status: Status
    nik: str | None = None
    serial: str | None = None
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {"line": self.line, "status": self.status.value, "nik": self.nik, "serial": self.serial,
                "reason": self.reason}


@dataclass(frozen=True)
class SpoiledCard:
    """A card abandoned by this run: personalisation failed, or an interrupted earlier run left it
    unconfirmed. A physical one must be destroyed."""

    serial: str
    reason: str


@dataclass(frozen=True)
class BatchSummary:
    """A batch run: every record's outcome, cards spoiled, interrupted cards confirmed at the start
    (``recovered``), and whether the run was cancelled before the end."""

    batch: str
    desk: str
    total: int
    outcomes: tuple[RecordOutcome, ...]
    spoiled: tuple[SpoiledCard, ...]
    recovered: tuple[str, ...]
    seconds: float
    cancelled: bool = False

    def _with(self, status: Status) -> tuple[RecordOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status is status)

    @property
    def issued(self) -> tuple[RecordOutcome, ...]:
        return self._with(Status.ISSUED)

    @property
    def skipped(self) -> tuple[RecordOutcome, ...]:
        return self._with(Status.SKIPPED)

    @property
    def rejected(self) -> tuple[RecordOutcome, ...]:
        return self._with(Status.REJECTED)

    @property
    def complete(self) -> bool:
        """Every record of the file was dealt with."""
        return not self.cancelled and len(self.outcomes) == self.total

    @property
    def cards_per_hour(self) -> float:
        return len(self.issued) * 3600 / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "batch": self.batch,
            "desk": self.desk,
            "total": self.total,
            "issued": len(self.issued),
            "skipped": len(self.skipped),
            "rejected": len(self.rejected),
            "spoiled": [{"serial": s.serial, "reason": s.reason} for s in self.spoiled],
            "recovered": list(self.recovered),
            "cancelled": self.cancelled,
            "complete": self.complete,
            "seconds": round(self.seconds, 3),
            "cards_per_hour": round(self.cards_per_hour, 1),
            "records": [o.to_json() for o in self.outcomes],
        }


@dataclass(frozen=True)
class BatchProgress:
    """Counts so far, for a progress display; ``line`` is the record being worked on."""

    done: int
    total: int
    issued: int
    skipped: int
    rejected: int
    spoiled: int
    elapsed: float
    line: int | None = None

    @property
    def rate(self) -> float:
        """Records dealt with per second."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def cards_per_hour(self) -> float:
        return self.issued * 3600 / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far; ``None`` before the first record."""
        rate = self.rate
        return None if rate <= 0 else max(0, self.total - self.done) / rate


# --- what goes on the card's face -----------------------------------------------------------------------


@dataclass(frozen=True)
class PrintedCard:
    """What the card printer puts on the card: the CAN and the printed fields, label and value."""

    serial: str
    can: str = field(repr=False)
    nik: str
    synthetic: bool
    lines: tuple[tuple[str, str], ...]
    batch: str
    line: int

    @classmethod
    def of(cls, serial: str, can: str, record: CitizenRecord, batch: str, line: int) -> PrintedCard:
        personal = record.personal
        return cls(serial, can, personal.nik, personal.synthetic, tuple(personal.card_lines()), batch, line)

    def encode(self) -> bytes:
        data = {"serial": self.serial, "can": self.can, "nik": self.nik, "synthetic": self.synthetic,
                "lines": [list(pair) for pair in self.lines], "batch": self.batch, "line": self.line}
        return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def load(cls, path: Path) -> PrintedCard:
        """The print job in the file ``path``: :class:`OSError` when it cannot be read (or is no regular
        file of a print job's size), :class:`ValueError` when it is not a print job."""
        return cls.decode(read_file(path, SMALL_JSON_LIMIT))

    @classmethod
    def decode(cls, data: bytes) -> PrintedCard:
        """Parse a print file of this module; :class:`PrintJobError` (a :class:`ValueError`) for
        anything else, without quoting the CAN."""
        try:
            raw = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError):
            # ValueError: not UTF-8, not JSON, or an integer longer than Python converts;
            # RecursionError: arrays or objects nested deeper than the parser's stack.
            raise PrintJobError("a print job is a UTF-8 JSON document") from None
        if not isinstance(raw, dict):
            raise PrintJobError("a print job is a JSON object")
        texts = {}
        for name in ("serial", "can", "nik", "batch"):
            value = raw.get(name)
            if not isinstance(value, str):
                raise PrintJobError(f"the print job's {name} is missing or not text")
            texts[name] = value
        if not (texts["can"].isascii() and texts["can"].isdigit()):
            raise PrintJobError("the print job's CAN is not digits")
        synthetic, line, lines = raw.get("synthetic"), raw.get("line"), raw.get("lines")
        if not isinstance(synthetic, bool):
            raise PrintJobError("the print job's synthetic flag is not true or false")
        if not isinstance(line, int) or isinstance(line, bool):
            raise PrintJobError("the print job's line number is not an integer")
        if not isinstance(lines, list) or not all(_text_pair(pair) for pair in lines):
            raise PrintJobError("the print job's lines are not pairs of label and text")
        return cls(texts["serial"], texts["can"], texts["nik"], synthetic,
                   tuple((label, text) for label, text in lines), texts["batch"], line)


def _text_pair(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)


def write_private_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` readable by the owner only (mode 0600): a temporary file in the
    same folder, fsynced, renamed, and the folder fsynced so the rename survives a power cut."""
    write_atomic(path, data, mode=0o600)


@contextmanager
def _private_folder(folder: Path) -> Iterator[None]:
    """Make ``folder`` (owner only: print jobs hold CANs) when the first card is kept in it, not before,
    and remove it again when that first keep fails: a batch that stored nothing leaves no folder."""
    made = not folder.exists()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        if made:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when nothing is in it
        raise


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- card sources ---------------------------------------------------------------------------------------


class Cancelled(Exception):  # noqa: N818 - a signal, not an error
    """The batch was asked to stop while waiting for a card (a control signal, not a failure)."""


@dataclass
class BlankCard:
    """The card in the field for one record: its transport, and its serial when known before the
    card is opened (a virtual card; a card in a reader says it when it authenticates)."""

    transport: Transport
    serial: str | None = None


@dataclass(frozen=True)
class StoredCard:
    """An earlier card, at hand to be checked: its transport and the CAN printed on it."""

    transport: Transport
    can: str = field(repr=False)


class CardStation(Protocol):
    """Where the blank cards come from and what is kept of each issued card."""

    description: str

    def blank_card(self, cancel: threading.Event | None, notice: Notice) -> AbstractContextManager[BlankCard]:
        """A blank card in the field (waits for one; :class:`Cancelled` when ``cancel`` is set)."""
        ...

    def keep(self, card: BlankCard, printed: PrintedCard) -> None:
        """Store what must survive the card's issue (print job; card image) before it is confirmed."""
        ...

    def finished(self, serial: str | None, cancel: threading.Event | None, notice: Notice) -> None:
        """The card is dealt with (waits for it to leave the reader)."""
        ...

    def refused(self, reason: str, cancel: threading.Event | None, notice: Notice) -> bool:
        """The card in the field refused personalisation before it was reserved (locked, another
        issuer's). True: try the same record with the next card."""
        ...

    def discard(self, serial: str) -> None:
        """Set aside what was kept of a spoiled card."""
        ...

    def stored(self, serial: str) -> AbstractContextManager[StoredCard | None]:
        """The earlier card ``serial`` if it is at hand (a virtual card's image), else ``None``."""
        ...


class VirtualCardDir:
    """Virtual cards: a new blank chip per record (the issuer's master key diversified by a random
    serial), kept as ``DIR/<serial>.card`` with its print job ``DIR/<serial>.print.json`` (mode 0600:
    it holds the CAN) once personalised and read back."""

    def __init__(self, directory: str | Path, master_key: bytes) -> None:
        self.directory = Path(directory)
        self.master_key = master_key
        self.description = f"virtual cards in {self.directory}"

    def card_path(self, serial: str) -> Path:
        return self.directory / f"{serial}{CARD_SUFFIX}"

    def print_path(self, serial: str) -> Path:
        return self.directory / f"{serial}{PRINT_SUFFIX}"

    @contextmanager
    def blank_card(self, cancel: threading.Event | None, notice: Notice) -> Iterator[BlankCard]:
        from ektp_card.virtual.perso import blank_card

        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        serial = secrets.token_bytes(8)
        card = blank_card(self.master_key, serial)
        card.power_on()
        yield BlankCard(card, serial.hex().upper())

    def keep(self, card: BlankCard, printed: PrintedCard) -> None:
        # The print job first and the image last: the image is what resume looks for, and it is
        # useless without the CAN beside it.
        virtual = _virtual(card.transport)
        with _private_folder(self.directory):
            write_private_atomic(self.print_path(printed.serial), printed.encode())
            virtual.power_off()
            virtual.save(self.card_path(printed.serial))

    def finished(self, serial: str | None, cancel: threading.Event | None, notice: Notice) -> None:
        return None

    def refused(self, reason: str, cancel: threading.Event | None, notice: Notice) -> bool:
        # A fresh blank chip of our own master key never refuses: something is wrong with the setup.
        raise PersonalisationError(f"a new virtual blank card refused personalisation: {reason}")

    def discard(self, serial: str) -> None:
        spoiled = self.directory / SPOILED_FOLDER
        for path in (self.card_path(serial), self.print_path(serial)):
            if path.exists():
                spoiled.mkdir(exist_ok=True)
                os.replace(path, spoiled / path.name)
        _fsync_folder(self.directory)

    @contextmanager
    def stored(self, serial: str) -> Iterator[StoredCard | None]:
        from ektp_card.virtual.card import VirtualCard
        from ektp_card.virtual.perso import card_serial

        try:
            printed = PrintedCard.load(self.print_path(serial))
            card = VirtualCard.load(self.card_path(serial))
        except (OSError, PrintJobError, CardImageError) as exc:
            log.info("card %s: no usable image and print job (%s)", serial, type(exc).__name__)
            yield None
            return
        chip = card_serial(card)
        if printed.serial != serial or chip is None or chip.hex().upper() != serial:
            log.warning("card %s: the image or print job is of another card", serial)
            yield None
            return
        card.power_on()
        try:
            yield StoredCard(card, printed.can)
        finally:
            card.power_off()


def _virtual(transport: Transport) -> VirtualCard:
    from ektp_card.virtual.card import VirtualCard

    if not isinstance(transport, VirtualCard):
        raise TypeError("a virtual card directory works on virtual cards")
    return transport


class ReaderStation:
    """A PC/SC reader, one card at a time: wait for a blank card, personalise it, wait until it is
    taken out. The print jobs go to ``print_dir`` (mode 0600: they hold the CAN). Cards of an earlier,
    interrupted run are not at hand, so resume spoils them (destroy them if they were written)."""

    def __init__(self, reader: str | None, print_dir: str | Path, *, timeout: float | None = None) -> None:
        self.reader = reader
        self.print_dir = Path(print_dir)
        self.timeout = timeout
        self.description = f"reader {reader}" if reader else "the first PC/SC reader"

    @contextmanager
    def blank_card(self, cancel: threading.Event | None, notice: Notice) -> Iterator[BlankCard]:
        from ektp_card.apdu.pcsc import PcscTransport

        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        told = False
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            try:
                transport = PcscTransport.open(self.reader, timeout=_WAIT_SLICE)
                break
            except NoCardError:
                if deadline is not None and time.monotonic() > deadline:
                    raise
                if not told:
                    notice(f"insert a blank card in {self.description}")
                    told = True
        with transport:
            yield BlankCard(transport)

    def keep(self, card: BlankCard, printed: PrintedCard) -> None:
        with _private_folder(self.print_dir):
            write_private_atomic(self.print_dir / f"{printed.serial}{PRINT_SUFFIX}", printed.encode())

    def finished(self, serial: str | None, cancel: threading.Event | None, notice: Notice) -> None:
        self._wait_removed(f"take card {serial} out of" if serial else "take the card out of", cancel, notice)

    def refused(self, reason: str, cancel: threading.Event | None, notice: Notice) -> bool:
        notice(f"this card cannot be personalised ({reason}); put it aside")
        self._wait_removed("take it out of", cancel, notice)
        return True

    def _wait_removed(self, what: str, cancel: threading.Event | None, notice: Notice) -> None:
        from ektp_card.apdu.pcsc import PcscTransport

        # pcsc.py offers no removal event: a card we can still connect to (shared, left as it is)
        # has not been taken out.
        told = False
        while True:
            try:
                probe = PcscTransport.open(self.reader, timeout=0.05, exclusive=False, reset_on_close=False)
            except NoCardError:
                return
            probe.close()
            if cancel is not None and cancel.is_set():
                return
            if not told:
                notice(f"{what} {self.description}")
                told = True
            time.sleep(_WAIT_SLICE)

    def discard(self, serial: str) -> None:
        path = self.print_dir / f"{serial}{PRINT_SUFFIX}"
        if path.exists():
            spoiled = self.print_dir / SPOILED_FOLDER
            spoiled.mkdir(exist_ok=True)
            os.replace(path, spoiled / path.name)

    @contextmanager
    def stored(self, serial: str) -> Iterator[StoredCard | None]:
        yield None


# --- the issuer side --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issuance:
    """What personalisation needs: the master key, the document signer (opened once for the batch),
    the trust store the read back checks against, and the chip's Terminal Authentication trust point
    (a CVCA certificate; without it no terminal reads DG3, so handover cannot match a finger)."""

    master_key: bytes = field(repr=False)
    signer: DocumentSigner
    trust: TrustStore
    policy: Policy | None = None
    cvca_certificate: bytes | None = None
    today: dt.date | None = None
    #: Where the fingerprints go (the e-KTP default: compared on the card only).
    biometrics: Biometrics = Biometrics.ON_CARD


# --- checking a card against the registry -----------------------------------------------------------------


def end_card_session(transport: Transport) -> None:
    """End whatever secure messaging session the card holds: a plain command ends it
    (docs/card-profile.md), whatever it answers, so the next session starts afresh."""
    transport.transceive(bytes.fromhex("00A4000C"))


def read_sod(transport: Transport, can: str) -> bytes:
    """EF.SOD as the card holds it, read under PACE with ``can`` (a session of its own)."""
    from ektp_card.session.document import EktpSession

    end_card_session(transport)
    session = EktpSession(transport)
    session.authenticate(can)
    return session.read_sod()


def check_stored_card(stored: StoredCard, nik: str, issuance: Issuance) -> tuple[str | None, str]:
    """Verify an earlier card like a clerk and check it holds ``nik``: ``(SHA-256 of its EF.SOD, "")``
    when it does, else ``(None, why not)``."""
    from ektp_card.verify.card import verify_card

    try:
        end_card_session(stored.transport)
        report = verify_card(stored.transport, stored.can, issuance.trust, policy=issuance.policy)
        if not report.genuine:
            return None, f"it does not verify: {'; '.join(report.reasons)}"
        if report.personal is None or report.personal.nik != nik:
            return None, "it holds another NIK"
        sod = read_sod(stored.transport, stored.can)
    except (ApduError, PaceError, SecureMessagingError, LdsFormatError, TransportError,
            PersonalisationError) as exc:
        return None, f"it cannot be read: {exc}"
    return hashlib.sha256(sod).hexdigest(), ""


# --- the batch --------------------------------------------------------------------------------------------


class _Run:
    def __init__(
        self, registry: Registry, station: CardStation, issuance: Issuance, *, batch: str, desk: str,
        actor: str, total: int, progress: Callable[[BatchProgress], None] | None, notice: Notice,
        cancel: threading.Event | None,
    ) -> None:
        self.registry = registry
        self.station = station
        self.issuance = issuance
        self.batch = batch
        self.desk = desk
        self.actor = actor
        self.total = total
        self.progress = progress
        self.notice = notice
        self.cancel = cancel
        self.outcomes: list[RecordOutcome] = []
        self.spoiled: list[SpoiledCard] = []
        self.recovered: list[str] = []
        self.counts = {s: 0 for s in Status}
        self.started = time.perf_counter()

    def report(self, line: int | None) -> None:
        if self.progress is None:
            return
        self.progress(BatchProgress(
            len(self.outcomes), self.total, self.counts[Status.ISSUED], self.counts[Status.SKIPPED],
            self.counts[Status.REJECTED], len(self.spoiled), time.perf_counter() - self.started, line,
        ))

    def outcome(self, outcome: RecordOutcome) -> None:
        self.outcomes.append(outcome)
        self.counts[outcome.status] += 1
        if outcome.status is not Status.ISSUED:
            log.info("line %d %s: %s", outcome.line, outcome.status.value, outcome.reason)

    def spoil(self, serial: str, reason: str, sod_sha256: str | None = None) -> None:
        # Registry first: once the row is spoiled nothing will confirm it; moving the files after
        # is tidying up (a crash in between leaves files of a spoiled card, never a live card).
        self.registry.spoil(serial, reason, desk=self.desk, actor=self.actor, sod_sha256=sod_sha256)
        self.station.discard(serial)
        self.spoiled.append(SpoiledCard(serial, reason))
        # The summary lists spoiled cards (and an error that stops the batch names its card).
        log.info("card %s spoiled: %s", serial, reason)

    # -- resume ------------------------------------------------------------------------------------------

    def resolve_pending(self) -> None:
        from ektp_card.desk.registry import CardState

        for row in self.registry.cards(states=[CardState.PENDING], desk=self.desk, batch=self.batch):
            with self.station.stored(row.serial) as stored:
                if stored is None:
                    sod, why = None, "interrupted before it was confirmed; no card image to check"
                else:
                    sod, why = check_stored_card(stored, row.nik, self.issuance)
            if sod is not None:
                self.registry.confirm(row.serial, sod_sha256=sod, desk=self.desk, actor=self.actor)
                self.recovered.append(row.serial)
                log.info("card %s of an interrupted run verified and confirmed", row.serial)
            else:
                self.spoil(row.serial, f"interrupted run: {why}")

    # -- one record -----------------------------------------------------------------------------------------

    def record(self, line: int, record: CitizenRecord) -> RecordOutcome:
        from ektp_card.desk.registry import CardState

        nik = record.nik
        live = self.registry.live_card(nik)
        if live is not None:
            doing = "being issued" if live.state is CardState.PENDING else "already issued"
            where = "" if live.desk == self.desk else f" at desk {live.desk}"
            return RecordOutcome(line, Status.SKIPPED, nik, live.serial,
                                 f"{doing}: card {live.serial} ({live.state}{where})")
        try:
            plan = plan_from_record(record, cvca_certificate=self.issuance.cvca_certificate,
                                    today=self.issuance.today, biometrics=self.issuance.biometrics)
        except RecordError as exc:
            return RecordOutcome(line, Status.REJECTED, nik, None, ", ".join(exc.rules))
        except PersonalisationError as exc:
            return RecordOutcome(line, Status.REJECTED, nik, None, f"personalisation plan: {exc}")

        while True:
            reserved: list[str] = []
            refusal: Exception | None = None
            with self.station.blank_card(self.cancel, self.notice) as blank:

                def reserve(serial: str, blank: BlankCard = blank, reserved: list[str] = reserved) -> None:
                    if blank.serial is not None and blank.serial != serial:
                        raise PersonalisationError(f"the card says serial {serial}, not {blank.serial}")
                    known = self.registry.get(serial)
                    if known is not None:
                        # A chip of a spoiled or earlier card put back in the reader: not a blank one.
                        raise PersonalisationError(
                            f"card {serial} is already in the registry ({known.state})")
                    blank.serial = serial
                    self.registry.reserve(serial, nik, desk=self.desk, actor=self.actor, batch=self.batch)
                    reserved.append(serial)

                try:
                    issuance = self.issuance
                    result = personalize(blank.transport, plan, issuance.master_key, issuance.signer,
                                         trust=issuance.trust, policy=issuance.policy, authenticated=reserve)
                except DuplicateActiveCardError as exc:
                    # Another desk or run got the NIK between our check and the reservation; the card
                    # was not written to and stays in the field for the next record.
                    return RecordOutcome(line, Status.SKIPPED, nik, None, f"already issued: {exc}")
                except (PersonalisationError, TransportError, ApduError, PkiError, SecureMessagingError,
                        LdsFormatError) as exc:
                    if reserved:
                        serial = reserved[0]
                        # A card locked before its read back failed keeps its EF.SOD hash: a
                        # revocation list can then name it.
                        written = exc.sod_sha256 if isinstance(exc, ReadBackError) else None
                        self.spoil(serial, f"personalisation failed: {exc}", written)
                        outcome = RecordOutcome(line, Status.REJECTED, nik, serial,
                                                f"card {serial} spoiled: {exc}")
                        break
                    if isinstance(exc, PkiError):
                        raise
                    refusal = exc
                else:
                    serial = result.card_serial
                    try:
                        self.station.keep(blank, PrintedCard.of(serial, result.can, record, self.batch, line))
                    except (OSError, CardImageError) as exc:
                        # Nowhere to keep cards: spoil this one and stop rather than spoil every card.
                        why = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
                        self.spoil(serial, f"the card could not be stored: {why}", result.sod_sha256)
                        raise CardImageError(f"card {serial} could not be stored ({why}); it is spoiled "
                                             "and the batch stopped") from exc
                    # Only now, with the card and its print job stored, does the card count as issued.
                    self.registry.confirm(serial, sod_sha256=result.sod_sha256, desk=self.desk,
                                          actor=self.actor)
                    outcome = RecordOutcome(line, Status.ISSUED, nik, serial)
                    break
            # The card refused before it was reserved (locked, another issuer's): nothing of this
            # record is on it. With the session closed, the station may set it aside and go on.
            assert refusal is not None  # noqa: S101 - every other way out of the block left the loop
            locked = isinstance(refusal, CardLockedError)
            reason = str(refusal) if locked else f"{type(refusal).__name__}: {refusal}"
            if not self.station.refused(reason, self.cancel, self.notice):
                raise refusal
        # Issued or spoiled, the card leaves the reader before the next record.
        self.station.finished(serial, self.cancel, self.notice)
        return outcome


def issue_batch(
    path: str | Path,
    registry: Registry,
    station: CardStation,
    issuance: Issuance,
    *,
    desk: str,
    actor: str,
    progress: Callable[[BatchProgress], None] | None = None,
    notice: Notice | None = None,
    cancel: threading.Event | None = None,
    inline_only: bool = False,
) -> BatchSummary:
    """Issue every record of the JSON Lines or CSV file ``path`` (see the module docstring).

    ``inline_only`` reads no file a record names (a batch from elsewhere: see
    :func:`~ektp_card.lds.record.read_batch`). ``progress`` hears the counts after each record;
    ``notice`` hears what the operator must do (insert or take out a card); ``cancel``, once set,
    stops the batch after the record in hand (the summary then says ``cancelled``; run the same file
    again to go on).

    Raises :class:`~ektp_card.errors.RecordFileError` for a file that cannot be read at all,
    :class:`~ektp_card.errors.RegistryError` when the registry fails (not for a NIK that already has
    a card: that record is skipped), :class:`~ektp_card.errors.IssuerMaterialError` or
    :class:`~ektp_card.errors.PkiError` when nothing could be issued (document signer, master key).
    """
    total = count_records(path)
    try:
        key_cipher(issuance.master_key)
    except ValueError as exc:
        raise IssuerMaterialError(str(exc)) from None
    check_document_signer(issuance.signer, at=dt.datetime.now(dt.UTC), trust=issuance.trust)
    batch = batch_id(path)
    run = _Run(registry, station, issuance, batch=batch, desk=desk, actor=actor, total=total,
               progress=progress, notice=notice or _quiet, cancel=cancel)
    log.info("batch %s from %s at desk %s with %s", batch, path, desk, station.description)
    run.resolve_pending()
    run.report(None)
    cancelled = False
    for row in read_batch(path, today=issuance.today, inline_only=inline_only):
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        run.report(row.line)
        if row.record is None:
            rules = row.error.rules if row.error is not None else ("record.invalid",)
            run.outcome(RecordOutcome(row.line, Status.REJECTED, None, None, ", ".join(rules)))
        else:
            try:
                run.outcome(run.record(row.line, row.record))
            except Cancelled:
                cancelled = True
                break
        run.report(None)
    return BatchSummary(batch, desk, run.total, tuple(run.outcomes), tuple(run.spoiled), tuple(run.recovered),
                        time.perf_counter() - run.started, cancelled)


__all__ = [
    "BATCH_ID_LENGTH",
    "BatchProgress",
    "BatchSummary",
    "BlankCard",
    "Cancelled",
    "CardStation",
    "Issuance",
    "PrintedCard",
    "ReaderStation",
    "RecordOutcome",
    "SpoiledCard",
    "Status",
    "StoredCard",
    "VirtualCardDir",
    "batch_id",
    "check_stored_card",
    "count_records",
    "end_card_session",
    "issue_batch",
    "read_sod",
    "write_private_atomic",
]
