"""NFC transport over nfcpy: an ISO-DEP (Type 4A/4B) card through a contactless reader.

nfcpy is imported here and nowhere else in the library. ``NfcTransport.open(path)`` opens a reader
by nfcpy device path (``usb``, ``usb:054c:06c3``, ``tty:USB0:pn532``, ``udp:127.0.0.1:PORT`` ...),
waits for an ISO-DEP card, activates it (RATS/ATTRIB) and then exchanges APDUs through nfcpy's
ISO-DEP initiator, which chains frames in both directions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from ektp_card.errors import (
    CardRemovedError,
    MissingExtraError,
    NoCardError,
    ReaderNotFoundError,
    TransportError,
)

log = logging.getLogger("ektp_card.apdu.nfc")

#: Polling targets: ISO/IEC 14443 Type A and Type B at 106 kbit/s.
DEFAULT_TARGETS = ("106A", "106B")


class NfcTransport:
    """A :class:`~ektp_card.apdu.transport.Transport` over an nfcpy reader and an activated ISO-DEP card.

    Create it with :meth:`open`; close it (or use it as a context manager) to release the reader.
    """

    def __init__(self, clf: Any, tag: Any, path: str) -> None:
        self._clf: Any = clf
        self._tag: Any = tag
        self.path = path

    @classmethod
    def open(
        cls, path: str = "usb", *, timeout: float = 5.0, targets: Sequence[str] = DEFAULT_TARGETS
    ) -> NfcTransport:
        """Open the reader at ``path`` and wait up to ``timeout`` seconds for an ISO-DEP card.

        Raises :class:`ReaderNotFoundError` when no reader is at ``path`` and :class:`NoCardError`
        when no ISO-DEP card answers in time.
        """
        try:
            import nfc  # the optional dependency is loaded only when NFC is used
        except ImportError:
            raise MissingExtraError("an NFC reader", "nfcpy", "nfc") from None

        clf = nfc.ContactlessFrontend()
        try:
            found = clf.open(path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ReaderNotFoundError(f"cannot open NFC reader {path!r}: {reason}") from None
        except (ValueError, TypeError):
            # nfcpy parses the path itself and fails with whatever its parser raised.
            raise ReaderNotFoundError(f"invalid NFC reader path {path!r}") from None
        if not found:
            raise ReaderNotFoundError(f"no NFC reader found at {path!r}")
        try:
            tag = _wait_for_iso_dep(clf, path, timeout, targets)
        except BaseException:
            clf.close()
            raise
        log.debug("activated %s on %s", tag, path)
        return cls(clf, tag, path)

    @property
    def identifier(self) -> bytes:
        """The card's UID (Type A) or PUPI (Type B) from this activation."""
        self._check_open()
        return bytes(self._tag.identifier)

    def transceive(self, command: bytes) -> bytes:
        """Send one command APDU over ISO-DEP and return the response APDU (SW1 SW2 included)."""
        import nfc.clf
        import nfc.tag

        self._check_open()
        try:
            response = self._tag.transceive(bytearray(command))
        except (nfc.tag.TagCommandError, nfc.clf.CommunicationError):
            # nfcpy has already retried with R(NAK): the card no longer answers.
            raise CardRemovedError("the card stopped answering (removed from the reader?)") from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise TransportError(f"NFC reader {self.path!r} failed: {reason}") from None
        return bytes(response)

    def close(self) -> None:
        """Switch the field off and release the reader."""
        if self._clf is not None:
            self._clf.close()
            self._clf = self._tag = None

    def __enter__(self) -> NfcTransport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._tag is None:
            raise TransportError(f"the NFC transport on {self.path!r} is closed")


def _wait_for_iso_dep(clf: Any, path: str, timeout: float, targets: Sequence[str]) -> Any:
    """Poll each target type in turn until an ISO-DEP card activates or the timeout passes."""
    import nfc.clf
    import nfc.tag
    import nfc.tag.tt4

    deadline = time.monotonic() + timeout
    supported = list(targets)
    while True:
        started = time.monotonic()
        for brty in list(supported):
            try:
                target = clf.sense(nfc.clf.RemoteTarget(brty))
            except nfc.clf.UnsupportedTargetError:
                supported.remove(brty)
                continue
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise ReaderNotFoundError(f"NFC reader {path!r} failed: {reason}") from None
            if target is not None:
                try:
                    # activate() sends RATS (Type A) or ATTRIB (Type B); it answers None when that fails.
                    tag = nfc.tag.activate(clf, target)
                except IndexError:
                    tag = None  # an ATS too short for nfcpy's parser: not a card we can use
                if isinstance(tag, nfc.tag.tt4.Type4Tag):
                    return tag
                log.debug("ignoring %s: not an ISO-DEP card", tag or target)
            if time.monotonic() >= deadline:
                raise NoCardError(f"no ISO-DEP card found on NFC reader {path!r} within {timeout:g} s")
        if not supported:
            wanted = ", ".join(targets)
            raise ReaderNotFoundError(f"NFC reader {path!r} cannot poll for {wanted}")
        # Readers with a quick sense call would otherwise spin; keep a short polling interval.
        time.sleep(max(0.0, min(0.1 - (time.monotonic() - started), deadline - time.monotonic())))
