"""Open a card by what the user names: a PC/SC reader, an NFC device, or a virtual card image.

The adapters (pyscard, nfcpy) are imported only when asked for, so the library works without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ektp_card.apdu.transport import Transport
from ektp_card.errors import EktpError


@dataclass(frozen=True)
class CardSource:
    """Where the card is: exactly one of ``reader`` (name substring or index), ``nfc`` or ``virtual``."""

    reader: str | None = None
    nfc: str | None = None
    virtual: Path | None = None
    timeout: float = 5.0

    def __post_init__(self) -> None:
        given = [x for x in (self.reader, self.nfc, self.virtual) if x is not None]
        if len(given) > 1:
            raise EktpError("name one card source: a reader, an NFC device or a virtual card image")

    def describe(self) -> str:
        if self.virtual is not None:
            return f"virtual card {self.virtual}"
        if self.nfc is not None:
            return f"NFC device {self.nfc}"
        return f"reader {self.reader}" if self.reader is not None else "the first reader with a card"


@contextmanager
def open_card(source: CardSource) -> Iterator[Transport]:
    """Yield a connected transport; a virtual card image is saved back when the session ends."""
    if source.virtual is not None:
        from ektp_card.virtual.card import VirtualCard

        card = VirtualCard.load(source.virtual)
        before = card.dumps()
        card.power_on()
        try:
            yield card
        finally:
            # Like EEPROM on a real chip: whatever the card committed stays, even if a later
            # command of the session failed. The save itself is atomic; a session that changed
            # nothing (a clerk's read) leaves the file as it was.
            card.power_off()
            if card.dumps() != before:
                card.save(source.virtual)
    elif source.nfc is not None:
        from ektp_card.apdu.nfc import NfcTransport

        with NfcTransport.open(source.nfc, timeout=source.timeout) as nfc_transport:
            yield nfc_transport
    else:
        from ektp_card.apdu.pcsc import PcscTransport

        with PcscTransport.open(source.reader, timeout=source.timeout) as pcsc_transport:
            yield pcsc_transport
