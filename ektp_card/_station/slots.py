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
from typing import TYPE_CHECKING, Protocol

from ektp_card.apdu.transport import Transport
from ektp_card.errors import CardRemovedError, EktpError, NoCardError

if TYPE_CHECKING:
    from ektp_card.virtual.card import VirtualCard

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

    def hold(self) -> AbstractContextManager[None]:
        """The slot for one operation (:class:`SlotBusy` when another holds it)."""
        ...

    def open(self) -> AbstractContextManager[Transport]:
        """A power-up of the card on the reader, for an operation that holds the slot."""
        ...

    def use(self) -> AbstractContextManager[Transport]:
        """:meth:`hold` and :meth:`open` together: one operation on one power-up."""
        ...

    def uid(self, transport: Transport) -> bytes | None:
        """The card's anticollision UID as the reader sees it, if it tells."""
        ...


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

    def __init__(self, slot: VirtualSlot, name: str, inner: VirtualCard) -> None:
        self._slot, self._name, self._inner = slot, name, inner

    @property
    def uid(self) -> bytes:
        return self._inner.uid

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

    def hold(self) -> AbstractContextManager[None]:
        return self._lock.held()

    @contextmanager
    def open(self) -> Iterator[Transport]:
        from ektp_card.virtual.card import VirtualCard

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

    @contextmanager
    def use(self) -> Iterator[Transport]:
        with self.hold(), self.open() as transport:
            yield transport

    def uid(self, transport: Transport) -> bytes | None:
        return transport.uid if isinstance(transport, _InsertedCard) else None


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

    def hold(self) -> AbstractContextManager[None]:
        return self._lock.held()

    @contextmanager
    def open(self) -> Iterator[Transport]:
        from ektp_card.device import CardSource, open_card

        with open_card(CardSource(reader=self.reader, timeout=self.timeout)) as transport:
            yield transport

    @contextmanager
    def use(self) -> Iterator[Transport]:
        with self.hold(), self.open() as transport:
            yield transport

    def uid(self, transport: Transport) -> bytes | None:
        # PC/SC part 3 section 3.2.2.1.3: GET DATA pseudo-APDU a contactless reader answers with the UID.
        answer = transport.transceive(bytes.fromhex("FFCA000000"))
        return answer[:-2] if len(answer) > 2 and answer[-2:] == b"\x90\x00" else None


__all__ = ["CardSlot", "ReaderSlot", "SlotBusy", "SlotStatus", "VirtualSlot"]
