"""The PC/SC transport: a card in a reader managed by pcscd, through pyscard.

This is the only module that imports pyscard (``smartcard``). It uses the thin ``smartcard.scard``
layer, whose calls return the PC/SC result code instead of raising, so every failure maps to exactly
one of our errors; pyscard's list-of-int byte strings stay inside this module.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ektp_card.errors import (
    CardRemovedError,
    MissingExtraError,
    NoCardError,
    PcscUnavailableError,
    ReaderNotFoundError,
    TransportError,
)

try:
    from smartcard import scard
except ImportError:
    raise MissingExtraError("a PC/SC reader", "pyscard", "pcsc") from None

log = logging.getLogger("ektp_card.pcsc")


def _codes(*hresults: int) -> frozenset[int]:
    return frozenset(hresult & 0xFFFFFFFF for hresult in hresults)


_SERVICE_DOWN = _codes(scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED)
_CARD_GONE = _codes(
    scard.SCARD_W_REMOVED_CARD,
    scard.SCARD_W_RESET_CARD,
    scard.SCARD_E_NO_SMARTCARD,
    scard.SCARD_W_UNPOWERED_CARD,
)
#: Failures a reader driver reports when the card stopped answering; pcscd flags the removal itself
#: only at its next presence poll.
_LINK_FAILED = _codes(
    scard.SCARD_E_NOT_TRANSACTED,
    scard.SCARD_E_COMM_DATA_LOST,
    scard.SCARD_F_COMM_ERROR,
    scard.SCARD_W_UNRESPONSIVE_CARD,
)
_READER_GONE = _codes(scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE)
_TIMEOUT = scard.SCARD_E_TIMEOUT & 0xFFFFFFFF
_NO_READERS = scard.SCARD_E_NO_READERS_AVAILABLE & 0xFFFFFFFF
_SHARING = scard.SCARD_E_SHARING_VIOLATION & 0xFFFFFFFF

#: pcsc-lite checks card presence every 400 ms (PCSCLITE_STATUS_POLL_RATE); wait a little longer
#: than that for it to confirm a removal.
REMOVAL_CONFIRM_SECONDS = 1.0
_STATUS_POLL_SECONDS = 0.05
#: Longest single blocking wait, so that Ctrl-C is honoured while waiting for a card.
_WAIT_SLICE_MS = 250

_PCI = {scard.SCARD_PROTOCOL_T0: scard.SCARD_PCI_T0, scard.SCARD_PROTOCOL_T1: scard.SCARD_PCI_T1}
_PROTOCOL_NAMES = {scard.SCARD_PROTOCOL_T0: "T=0", scard.SCARD_PROTOCOL_T1: "T=1"}

UNAVAILABLE_MESSAGE = (
    "the PC/SC service is not available: pcscd is not running "
    "(start it with `systemctl start pcscd` or `pcscd --foreground`)"
)


@dataclass(frozen=True)
class ReaderInfo:
    """A reader as pcscd reports it; ``atr`` is set only while a card is present."""

    name: str
    card_present: bool
    atr: bytes | None = None


def _code(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


def _describe(hresult: int) -> str:
    text = str(scard.SCardGetErrorMessage(hresult)).rstrip(".")
    return f"{text} (0x{_code(hresult):08X})"


def _error(hresult: int, doing: str, reader: str | None = None) -> TransportError:
    """The one mapping from a PC/SC result code to our error classes."""
    code = _code(hresult)
    where = f" in reader {reader!r}" if reader else ""
    if code in _SERVICE_DOWN:
        return PcscUnavailableError(UNAVAILABLE_MESSAGE)
    if code in _CARD_GONE:
        return CardRemovedError(f"the card{where} was removed or reset while {doing}")
    if code in _READER_GONE:
        detail = f"reader {reader!r} is no longer available" if reader else _describe(hresult)
        return ReaderNotFoundError(detail)
    if code == _SHARING:
        return TransportError(f"reader {reader!r} is in use by another application")
    return TransportError(f"PC/SC error while {doing}{where}: {_describe(hresult)}")


def _format_readers(names: list[str]) -> str:
    if not names:
        return "no readers are connected"
    return "readers: " + ", ".join(f"[{i}] {name}" for i, name in enumerate(names))


class _Context:
    """A PC/SC context (one connection to pcscd)."""

    def __init__(self) -> None:
        hresult, handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != 0:
            raise _error(hresult, "connecting to pcscd")
        self.handle: Any = handle

    def release(self) -> None:
        hresult = scard.SCardReleaseContext(self.handle)
        if hresult != 0:
            log.debug("releasing the PC/SC context: %s", _describe(hresult))

    def reader_names(self) -> list[str]:
        hresult, names = scard.SCardListReaders(self.handle, [])
        if _code(hresult) == _NO_READERS:
            return []
        if hresult != 0:
            raise _error(hresult, "listing readers")
        return [str(name) for name in names]

    def states(self, known: dict[str, int], timeout_ms: int) -> dict[str, tuple[int, bytes]] | None:
        """Wait up to ``timeout_ms`` for a change from ``known``; None when nothing changed.

        Returns each reader's event state and ATR.
        """
        hresult, result = scard.SCardGetStatusChange(self.handle, timeout_ms, list(known.items()))
        if _code(hresult) == _TIMEOUT:
            return None
        if hresult != 0:
            raise _error(hresult, "reading reader states", next(iter(known)) if len(known) == 1 else None)
        return {str(name): (int(event), bytes(atr)) for name, event, atr in result}


def _present(event: int) -> bool:
    return bool(event & scard.SCARD_STATE_PRESENT) and not event & scard.SCARD_STATE_MUTE


def _reader_lost(event: int) -> bool:
    return bool(event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE))


def list_readers() -> list[ReaderInfo]:
    """Every reader pcscd knows, with card presence and ATR; [] when there is none."""
    ctx = _Context()
    try:
        for _ in range(3):
            names = ctx.reader_names()
            if not names:
                return []
            try:
                states = ctx.states({name: scard.SCARD_STATE_UNAWARE for name in names}, 0)
            except ReaderNotFoundError:
                continue  # a reader was unplugged between the two calls: ask again
            if states is None:
                # pcsc-lite answers an UNAWARE query at once; a timeout here means no answer.
                return [ReaderInfo(name, False) for name in names]
            infos = []
            for name in names:
                event, atr = states.get(name, (0, b""))
                present = bool(event & scard.SCARD_STATE_PRESENT)
                infos.append(ReaderInfo(name, present, atr if present and atr else None))
            return infos
        raise TransportError("the list of readers kept changing; try again")
    finally:
        ctx.release()


def _choose_reader(names: list[str], reader: str | int) -> str:
    """A reader by index (an int, or a string of digits) or by case-insensitive name substring.

    An exact name wins over substrings; among several substring matches the first listed wins.
    """
    if isinstance(reader, int) or reader.strip().isdigit():
        index = int(reader)
        if 0 <= index < len(names):
            return names[index]
        raise ReaderNotFoundError(f"no reader with index {index}; {_format_readers(names)}")
    if reader in names:
        return reader
    wanted = reader.casefold()
    for name in names:
        if wanted in name.casefold():
            return name
    raise ReaderNotFoundError(f"no reader matches {reader!r}; {_format_readers(names)}")


def _wait_for_card(ctx: _Context, reader: str | int | None, timeout: float) -> str:
    names = ctx.reader_names()
    if reader is not None:
        candidates = [_choose_reader(names, reader)]
    elif names:
        candidates = names
    else:
        raise ReaderNotFoundError("no PC/SC readers are connected")
    deadline = time.monotonic() + timeout
    known = {name: int(scard.SCARD_STATE_UNAWARE) for name in candidates}
    mute = False
    wait_ms = 0
    while True:
        states = ctx.states(known, wait_ms)
        for name, (event, _atr) in (states or {}).items():
            if _reader_lost(event):
                raise ReaderNotFoundError(f"reader {name!r} is no longer available")
            if _present(event):
                return name
            mute = mute or bool(event & scard.SCARD_STATE_MUTE)
            known[name] = event & ~scard.SCARD_STATE_CHANGED
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            where = f"reader {candidates[0]!r}" if reader is not None else "any reader"
            detail = " (a card is there but does not answer)" if mute else ""
            raise NoCardError(f"no card in {where} within {timeout:g} s{detail}")
        wait_ms = max(1, min(_WAIT_SLICE_MS, int(remaining * 1000)))


#: CLA INS P1 P2: the shortest command APDU (ISO/IEC 7816-3 section 12.1.1, case 1).
MIN_COMMAND_LENGTH = 4


class PcscTransport:
    """A connected card in a PC/SC reader; one session, held exclusively until :meth:`close`.

    Open it with :meth:`open`; use it as a context manager so the card is always released.
    """

    def __init__(
        self, ctx: _Context, handle: Any, reader: str, protocol: int, atr: bytes, exclusive: bool, reset: bool
    ) -> None:
        self._ctx = ctx
        self._handle: Any = handle
        self._protocol = protocol
        self._pci = _PCI.get(protocol, scard.SCARD_PCI_RAW)
        self._exclusive = exclusive
        self._reset = reset
        self.reader = reader
        self.atr = atr

    @classmethod
    def open(
        cls,
        reader: str | int | None = None,
        *,
        timeout: float = 5.0,
        exclusive: bool = True,
        reset_on_close: bool = True,
    ) -> PcscTransport:
        """Wait up to ``timeout`` seconds for a card and connect to it.

        ``reader`` is an index (int or digit string), a name substring, or None for the first reader
        with a card. With ``exclusive`` no other application may connect during the session;
        otherwise the card is shared but a PC/SC transaction keeps other applications' commands
        out of ours. ``reset_on_close`` resets the card when the session ends, so no access rights
        gained in it outlive it.
        """
        ctx = _Context()
        try:
            name = _wait_for_card(ctx, reader, timeout)
            share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
            protocols = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
            hresult, handle, protocol = scard.SCardConnect(ctx.handle, name, share, protocols)
            if hresult != 0:
                if _code(hresult) in _CARD_GONE:
                    raise NoCardError(f"the card left reader {name!r} before it could be connected")
                raise _error(hresult, "connecting to the card", name)
            try:
                if not exclusive:
                    hresult = scard.SCardBeginTransaction(handle)
                    if hresult != 0:
                        raise _error(hresult, "starting a transaction", name)
                hresult, _name, _state, _protocol, atr = scard.SCardStatus(handle)
                if hresult != 0:
                    raise _error(hresult, "reading the card status", name)
            except BaseException:
                scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
                raise
        except BaseException:
            ctx.release()
            raise
        transport = cls(ctx, handle, name, int(protocol), bytes(atr), exclusive, reset_on_close)
        log.debug("connected to %r (%s), ATR %s", name, transport.protocol, transport.atr.hex().upper())
        return transport

    @property
    def protocol(self) -> str:
        """The transmission protocol in use, e.g. "T=1"."""
        return _PROTOCOL_NAMES.get(self._protocol, f"protocol {self._protocol}")

    @property
    def closed(self) -> bool:
        return self._handle is None

    def transceive(self, command: bytes) -> bytes:
        """Send one command APDU and return the response, SW1 SW2 included."""
        if self._handle is None:
            raise TransportError(f"the session with reader {self.reader!r} is closed")
        if len(command) < MIN_COMMAND_LENGTH:
            # pcscd with vpcd never returns from a 1-byte transmit (measured), and no reader stack
            # has a use for one: refuse here rather than hang the caller.
            raise TransportError(
                f"not sent to reader {self.reader!r}: a command APDU has at least {MIN_COMMAND_LENGTH} bytes"
            )
        hresult, response = scard.SCardTransmit(self._handle, self._pci, list(command))
        if hresult != 0:
            raise self._transmit_error(hresult)
        if len(response) < 2:
            # Every response ends with SW1 SW2 (ISO/IEC 7816-4 section 5.1). vpcd answers "success"
            # with no bytes when the card side drops the connection mid-command (measured).
            if self._card_left():
                raise CardRemovedError(f"the card in reader {self.reader!r} was removed during a command")
            raise TransportError(f"reader {self.reader!r} answered {len(response)} bytes, no status word")
        return bytes(response)

    def _transmit_error(self, hresult: int) -> TransportError:
        if _code(hresult) in _LINK_FAILED and self._card_left():
            return CardRemovedError(f"the card in reader {self.reader!r} was removed during a command")
        return _error(hresult, "exchanging a command with the card", self.reader)

    def _card_left(self) -> bool:
        """True when pcscd confirms, within a short bounded wait, that our card is gone.

        pcscd flags every handle to a card once it sees the card leave, even if another card has
        been put in since; SCardStatus then answers "removed".
        """
        deadline = time.monotonic() + REMOVAL_CONFIRM_SECONDS
        while True:
            hresult = scard.SCardStatus(self._handle)[0]
            if _code(hresult) in _CARD_GONE:
                return True
            if hresult != 0 or time.monotonic() >= deadline:
                return False
            time.sleep(_STATUS_POLL_SECONDS)

    def close(self) -> None:
        """End the session: release the transaction, disconnect (resetting the card) and the context."""
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            if not self._exclusive:
                hresult = scard.SCardEndTransaction(handle, scard.SCARD_LEAVE_CARD)
                if hresult != 0:
                    log.debug("ending the transaction: %s", _describe(hresult))
            disposition = scard.SCARD_RESET_CARD if self._reset else scard.SCARD_LEAVE_CARD
            hresult = scard.SCardDisconnect(handle, disposition)
            if hresult != 0:
                # Typically the card is already gone; nothing is left to release on it.
                log.debug("disconnecting from %r: %s", self.reader, _describe(hresult))
        finally:
            self._ctx.release()

    def __enter__(self) -> PcscTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else self.protocol
        return f"PcscTransport({self.reader!r}, {state})"
