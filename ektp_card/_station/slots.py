"""The card the station works on: a PC/SC reader, or a folder of virtual cards with one "inserted".

One card operation at a time per slot: :meth:`CardSlot.use` takes the slot's lock without waiting and
raises :class:`SlotBusy` when another operation holds it, so a second clerk's click is told the reader
is busy instead of interleaving APDUs with the first.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ektp_card.apdu.transport import Transport
from ektp_card.errors import CardRemovedError, EktpError, NoCardError

#: File names the virtual reader offers: card images of `ektp virtual`, the desk and the sandbox.
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.(card|img)")


class SlotBusy(Exception):  # noqa: N818 - a state the page shows, not a failure of the library
    """Another operation holds the slot."""


@dataclass(frozen=True)
class SlotStatus:
    """What the reader shows: ``present`` a card, its ``label``; ``problem`` when the reader itself is
    unavailable (pcscd down, reader unplugged); ``busy`` while an operation runs."""

    present: bool
    label: str = ""
    busy: bool = False
    problem: str | None = None
    #: For a virtual reader: the cards one can insert.
    choices: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"present": self.present, "label": self.label, "busy": self.busy, "problem": self.problem}


class CardSlot(Protocol):
    """Where the station finds the card."""

    description: str
    virtual: bool

    def status(self) -> SlotStatus: ...

    def use(self) -> AbstractContextManager[Transport]: ...


class _Lock:
    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        if not self._lock.acquire(blocking=False):
            raise SlotBusy
        try:
            yield
        finally:
            self._lock.release()

    @property
    def busy(self) -> bool:
        return self._lock.locked()


class _InsertedCard:
    """A virtual card's transport that fails like silicon when the card is taken out mid-way."""

    def __init__(self, slot: VirtualSlot, name: str, inner: Transport) -> None:
        self._slot, self._name, self._inner = slot, name, inner

    def transceive(self, command: bytes) -> bytes:
        if self._slot.inserted != self._name:
            raise CardRemovedError("the card was removed from the virtual reader during a command")
        return self._inner.transceive(command)


class VirtualSlot:
    """A virtual reader over a folder of card images: one of them is on the reader at a time.

    Inserting and removing are what a clerk's hand does with a real card; removing one while an
    operation runs makes its next command fail with :class:`~ektp_card.errors.CardRemovedError`.
    """

    virtual = True

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.description = f"virtual reader ({folder})"
        self.inserted: str | None = None
        self._lock = _Lock()

    def choices(self) -> tuple[str, ...]:
        try:
            names = sorted(p.name for p in self.folder.iterdir() if p.is_file() and _IMAGE.fullmatch(p.name))
        except OSError:
            return ()
        return tuple(names)

    def insert(self, name: str) -> None:
        """Put the card image ``name`` (one of :meth:`choices`) on the reader; :class:`ValueError` for
        anything else (a path outside the folder is never opened)."""
        if name not in self.choices():
            raise ValueError("no such card in the virtual reader's folder")
        self.inserted = name

    def remove(self) -> None:
        self.inserted = None

    def status(self) -> SlotStatus:
        name = self.inserted
        if name is not None and not (self.folder / name).is_file():
            self.inserted = name = None
        return SlotStatus(name is not None, name or "", self._lock.busy, None, self.choices())

    @contextmanager
    def use(self) -> Iterator[Transport]:
        from ektp_card.virtual.card import VirtualCard

        with self._lock.held():
            name = self.inserted
            if name is None:
                raise NoCardError("there is no card on the virtual reader")
            path = self.folder / name
            card = VirtualCard.load(path)
            card.power_on()
            try:
                yield _InsertedCard(self, name, card)
            finally:
                # Like EEPROM: what the card committed stays, even when a later command failed.
                card.power_off()
                if self.inserted == name:
                    card.save(path)


class ReaderSlot:
    """A PC/SC reader through pcscd (the ``pcsc`` extra)."""

    virtual = False

    def __init__(self, reader: str, timeout: float = 2.0) -> None:
        self.reader = reader
        self.timeout = timeout
        self.description = f"reader {reader}"
        self._lock = _Lock()

    def status(self) -> SlotStatus:
        from ektp_card.apdu.pcsc import list_readers

        try:
            readers = [r for r in list_readers() if self.reader in r.name]
        except EktpError as exc:
            return SlotStatus(False, problem=str(exc), busy=self._lock.busy)
        if not readers:
            return SlotStatus(False, problem=f"no reader named {self.reader!r}", busy=self._lock.busy)
        info = readers[0]
        return SlotStatus(info.card_present, info.name if info.card_present else "", self._lock.busy)

    @contextmanager
    def use(self) -> Iterator[Transport]:
        from ektp_card.device import CardSource, open_card

        with self._lock.held(), open_card(CardSource(reader=self.reader, timeout=self.timeout)) as transport:
            yield transport


__all__ = ["CardSlot", "ReaderSlot", "SlotBusy", "SlotStatus", "VirtualSlot"]
