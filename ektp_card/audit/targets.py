"""Cards an audit can run against: a virtual card image, or a card in a PC/SC reader."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ektp_card.apdu.transport import Transport
from ektp_card.virtual.card import VirtualCard

#: PC/SC part 3 section 3.2.2.1.3: GET DATA pseudo-APDU answered by a contactless reader with the UID.
GET_UID = bytes.fromhex("FFCA000000")


class VirtualTarget:
    """A virtual card, in memory or as an image file.

    An image is saved back after every session, as a chip keeps whatever it committed to EEPROM:
    an audit that altered the card shows in the file.
    """

    def __init__(self, card: VirtualCard | Path) -> None:
        self.path = card if isinstance(card, Path) else None
        self.card = VirtualCard.load(card) if isinstance(card, Path) else card

    def describe(self) -> str:
        return f"virtual card {self.path}" if self.path is not None else "virtual card (in memory)"

    @contextmanager
    def session(self) -> Iterator[Transport]:
        self.card.power_on()
        try:
            yield self.card
        finally:
            self.card.power_off()
            if self.path is not None:
                self.card.save(self.path)

    def uid(self, transport: Transport) -> bytes | None:
        return self.card.uid


class PcscTarget:
    """A card in a PC/SC reader; each session connects afresh and resets the card when it ends."""

    def __init__(self, reader: str | None, timeout: float = 5.0) -> None:
        self.reader = reader
        self.timeout = timeout

    def describe(self) -> str:
        return f"card in reader {self.reader}" if self.reader else "card in the first reader with a card"

    @contextmanager
    def session(self) -> Iterator[Transport]:
        from ektp_card.apdu.pcsc import PcscTransport

        with PcscTransport.open(self.reader, timeout=self.timeout) as transport:
            yield transport

    def uid(self, transport: Transport) -> bytes | None:
        answer = transport.transceive(GET_UID)
        if len(answer) >= 2 and answer[-2:] == b"\x90\x00" and len(answer) > 2:
            return answer[:-2]
        return None
