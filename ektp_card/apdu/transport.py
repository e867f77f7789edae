"""The transport contract: one method that moves bytes to a card and back."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Transport(Protocol):
    """Anything that can exchange one command APDU for one response APDU (with SW1 SW2)."""

    def transceive(self, command: bytes) -> bytes:
        """Send the command bytes and return the response bytes, status word included."""
        ...
