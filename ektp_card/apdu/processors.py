"""The protocol as a stack of small processors.

Each processor takes a :class:`CommandApdu`, does one job, and hands it to the next one down; the
bottom one formats bytes for the transport. None of them raises on a status word: that happens once,
in :class:`ektp_card.apdu.protocol.ApduProtocol`. Stack, top to bottom::

    CommandChaining -> LeCorrection (6Cxx) -> [SecureMessaging] -> ResponseChaining (61xx)
        -> Formatter (short / extended) -> Transport
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from ektp_card.apdu.command import SHORT_MAX_LC, SHORT_MAX_LE, CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW
from ektp_card.apdu.transport import Transport
from ektp_card.errors import ApduFormatError
from ektp_card.log import TRAFFIC, redacted_command, redacted_response

log = logging.getLogger("ektp_card.apdu")

#: Upper bound on GET RESPONSE rounds: 64 KiB at 256 bytes each, plus slack. A card that keeps
#: answering 61xx beyond this is broken, not slow.
MAX_GET_RESPONSE = 300


class Processor(Protocol):
    """One layer of the stack."""

    def send(self, apdu: CommandApdu) -> ResponseApdu:
        """Process ``apdu`` and return the raw response (no status-word checks)."""
        ...


class Formatter:
    """Encodes short or extended APDUs and logs the exchange at TRAFFIC level."""

    def __init__(self, transport: Transport, extended: bool = False) -> None:
        self.transport = transport
        self.extended = extended

    def send(self, apdu: CommandApdu) -> ResponseApdu:
        if apdu.needs_extended and not self.extended:
            if len(apdu.data) > SHORT_MAX_LC:
                raise ApduFormatError(
                    f"{len(apdu.data)} bytes of data need extended length, which is not enabled"
                )
            # Asking for more than 256 bytes without extended length: ask for 256 and let the
            # caller read on.
            apdu = apdu.with_(le=SHORT_MAX_LE)
        raw = apdu.encode(extended=self.extended and (apdu.extended or apdu.needs_extended))
        if log.isEnabledFor(TRAFFIC):
            log.log(TRAFFIC, ">> %s", redacted_command(raw, apdu.sensitive))
        resp = self.transport.transceive(raw)
        if log.isEnabledFor(TRAFFIC):
            log.log(TRAFFIC, "<< %s", redacted_response(resp, apdu.sensitive))
        return ResponseApdu.decode(resp)


class ResponseChaining:
    """Collects 61xx continuations with GET RESPONSE (ISO 7816-4 section 5.3.4)."""

    def __init__(self, inner: Processor, cla: int = 0x00) -> None:
        self.inner = inner
        self.cla = cla
        self._told = False

    def send(self, apdu: CommandApdu) -> ResponseApdu:
        resp = self.inner.send(apdu)
        data = bytearray(resp.data)
        rounds = 0
        while resp.sw1 == 0x61:
            rounds += 1
            if rounds > MAX_GET_RESPONSE:
                raise ApduFormatError("card kept answering 61xx beyond 64 KiB")
            le = resp.sw2 or SHORT_MAX_LE
            # GET RESPONSE collects bytes already produced: plain, on the same logical channel.
            resp = self.inner.send(CommandApdu(apdu.cla & 0x03, 0xC0, 0, 0, le=le))
            data += resp.data
        if rounds:
            # Said once per link setting (a card that chains does it for every long answer).
            level = logging.DEBUG if self._told else logging.INFO
            self._told = True
            log.log(level, "the card answered INS %02X in %d parts (61xx): %d bytes collected with GET "
                    "RESPONSE", apdu.ins, rounds + 1, len(data))
        return ResponseApdu(bytes(data), resp.sw)


class LeCorrection:
    """Resends once with the exact Le a card names in 6Cxx; ``corrected`` hears of each resend (a
    reader of files must know that a short answer was the card's choice, not the end of the file)."""

    def __init__(self, inner: Processor, corrected: Callable[[CommandApdu, int], None] | None = None) -> None:
        self.inner = inner
        self.corrected = corrected

    def send(self, apdu: CommandApdu) -> ResponseApdu:
        resp = self.inner.send(apdu)
        if resp.sw1 == 0x6C:
            le = resp.sw2 or SHORT_MAX_LE
            if self.corrected is not None:
                self.corrected(apdu, le)
            return self.inner.send(apdu.with_(le=le))
        return resp


class CommandChaining:
    """Splits long data into a chain of commands with the CLA chaining bit (ISO 7816-4 section 5.3.3).

    Only used when a command does not fit one APDU as the stack is configured (short form, or an
    explicit ``max_chunk``). Intermediate parts must be answered 9000.
    """

    def __init__(self, inner: Processor, max_chunk: int = SHORT_MAX_LC, enabled: bool = True) -> None:
        self.inner = inner
        self.max_chunk = max_chunk
        self.enabled = enabled

    def send(self, apdu: CommandApdu) -> ResponseApdu:
        if not self.enabled or len(apdu.data) <= self.max_chunk:
            return self.inner.send(apdu)
        data = apdu.data
        starts = range(0, len(data), self.max_chunk)
        for start in starts[:-1]:
            part = apdu.with_(
                cla=apdu.cla | 0x10, data=data[start : start + self.max_chunk], le=None, extended=False
            )
            resp = self.inner.send(part)
            if resp.sw != SW.OK:
                return resp
        return self.inner.send(apdu.with_(data=data[starts[-1] :], extended=False))


class SecureMessagingWrapper(Protocol):
    """What a secure-messaging implementation provides to the stack."""

    @property
    def max_short_data(self) -> int:
        """Most plain command data whose protected form still fits a short APDU."""
        ...

    def wrap(self, apdu: CommandApdu) -> CommandApdu:
        """Protect a plain command."""
        ...

    def unwrap(self, response: ResponseApdu) -> ResponseApdu:
        """Verify and decrypt a protected response; raise SecureMessagingError on any failure."""
        ...


class SecureMessaging:
    """The secure-messaging slot: wraps each command and unwraps each response."""

    def __init__(self, inner: Processor, sm: SecureMessagingWrapper) -> None:
        self.inner = inner
        self.sm = sm

    def send(self, apdu: CommandApdu) -> ResponseApdu:
        return self.sm.unwrap(self.inner.send(self.sm.wrap(apdu)))
