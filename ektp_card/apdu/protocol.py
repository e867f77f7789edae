"""The APDU protocol object: the processor stack over a transport, and the one status-word check."""

from __future__ import annotations

from ektp_card.apdu import sw as _sw
from ektp_card.apdu.command import SHORT_MAX_LC, CommandApdu, ResponseApdu
from ektp_card.apdu.processors import (
    CommandChaining,
    Formatter,
    LeCorrection,
    Processor,
    ResponseChaining,
    SecureMessaging,
    SecureMessagingWrapper,
)
from ektp_card.apdu.transport import Transport


class ApduProtocol:
    """Sends commands through the processor stack and raises :class:`ApduError` on failure words.

    ``extended`` enables extended-length APDUs (only when the card says it supports them, e.g. in
    EF.ATR/INFO); without it long data is sent with command chaining.
    """

    def __init__(self, transport: Transport, *, extended: bool = False, chaining: bool = True) -> None:
        self.transport = transport
        self._extended = extended
        self._chaining = chaining
        self._sm: SecureMessagingWrapper | None = None
        self._le_named: int | None = None
        self._stack: Processor = self._build()

    def _build(self) -> Processor:
        stack: Processor = Formatter(self.transport, extended=self._extended)
        stack = ResponseChaining(stack)
        chunk = SHORT_MAX_LC
        if self._sm is not None:
            stack = SecureMessaging(stack, self._sm)
            # Protection adds padding and data objects: chain the plain data in parts whose
            # protected form still fits a short APDU (231 bytes for 3DES, 223 for AES).
            chunk = self._sm.max_short_data
        # Above secure messaging, a 6Cxx retry is protected afresh (new SSC), never replayed.
        stack = LeCorrection(stack, self._corrected)
        enabled = self._chaining and not self._extended
        return CommandChaining(stack, max_chunk=chunk, enabled=enabled)

    def _corrected(self, apdu: CommandApdu, le: int) -> None:
        self._le_named = le

    def take_le_correction(self) -> int | None:
        """The Le a card named with 6Cxx since the last call (the command was resent with it), if any."""
        named, self._le_named = self._le_named, None
        return named

    @property
    def extended(self) -> bool:
        return self._extended

    @extended.setter
    def extended(self, value: bool) -> None:
        self._extended = value
        self._stack = self._build()

    @property
    def secure_messaging(self) -> SecureMessagingWrapper | None:
        return self._sm

    @secure_messaging.setter
    def secure_messaging(self, sm: SecureMessagingWrapper | None) -> None:
        """Install (or remove, with None) secure messaging for every following command."""
        self._sm = sm
        self._stack = self._build()

    def transmit(self, apdu: CommandApdu) -> ResponseApdu:
        """Send through the stack and return the response whatever its status word."""
        return self._stack.send(apdu)

    def send(self, apdu: CommandApdu, *, allow: frozenset[int] = _sw.SUCCESS) -> ResponseApdu:
        """Send and raise the mapped :class:`ApduError` unless the status word is in ``allow``."""
        resp = self._stack.send(apdu)
        _sw.check(resp.sw, resp.data, allow)
        return resp
