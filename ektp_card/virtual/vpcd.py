"""Put a virtual card into a real pcscd, through vsmartcard's ``vpcd`` reader driver.

The vpcd driver (Debian ``vsmartcard-vpcd``, configured in ``/etc/reader.conf.d/vpcd``) makes pcscd
show readers "Virtual PCD 00 00" and "Virtual PCD 00 01" and listen on TCP ports 35963 and 35964.
The card side connects to that port; from then on the reader has a card. Each message either way is
a 2-byte big-endian length and a payload. From the reader, a 1-byte payload is a control code
(0 power off, 1 power on, 2 reset, 4 "send the ATR"); a longer one is a command APDU. The card side
answers the ATR request with the ATR and a command APDU with the response APDU; the other control
codes get no answer. pcscd asks for the ATR about every 400 ms to check that the card is still there.
Closing the connection takes the card out of the reader.

The bridge also plays the reader's own part: like a real contactless reader it answers the PC/SC
GET DATA pseudo-APDU (CLA FF, INS CA) itself with the card's UID or ATS historical bytes (PC/SC part 3
section 3.2.2.1.3); the card never sees it.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ektp_card.errors import PcscUnavailableError, TransportError
from ektp_card.log import TRAFFIC, redacted_command, redacted_response

log = logging.getLogger("ektp_card.vpcd")

#: Port of reader "Virtual PCD 00 00"; reader "00 01" is one higher.
VPCD_PORT = 35963
VPCD_READER = "Virtual PCD 00 00"

CTRL_OFF = 0
CTRL_ON = 1
CTRL_RESET = 2
CTRL_ATR = 4

#: Linux only; elsewhere delayed ACKs cannot be turned off per read.
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)

#: ISO/IEC 7816-4 status word 6F00, "no precise diagnosis": the answer when the card itself fails.
_SW_NO_DIAGNOSIS = b"\x6f\x00"

#: Instructions that may change what a card keeps across power cycles: file contents and life
#: cycle, keys, and the retry counters and trust points that authentication commands update
#: (ISO/IEC 7816-4 section 5.4 instruction table; BSI TR-03110-3 for PSO:VERIFY CERTIFICATE).
STATE_CHANGING_INS = frozenset(
    {
        0x04,  # DEACTIVATE FILE
        0x0E, 0x0F,  # ERASE BINARY
        0x20, 0x21,  # VERIFY (a failure uses up a retry)
        0x24, 0x25,  # CHANGE REFERENCE DATA
        0x2A,  # PERFORM SECURITY OPERATION (VERIFY CERTIFICATE updates the trust point)
        0x2C, 0x2D,  # RESET RETRY COUNTER
        0x44,  # ACTIVATE FILE
        0x50,  # INITIALIZE UPDATE (personalisation: uses up an authentication try)
        0x46, 0x47,  # GENERATE ASYMMETRIC KEY PAIR
        0x82,  # EXTERNAL / MUTUAL AUTHENTICATE
        0x86, 0x87,  # GENERAL AUTHENTICATE
        0xD0, 0xD1,  # WRITE BINARY
        0xD2,  # WRITE RECORD
        0xD6, 0xD7,  # UPDATE BINARY
        0xDA, 0xDB,  # PUT DATA
        0xDC, 0xDD,  # UPDATE RECORD
        0xE0,  # CREATE FILE
        0xE2,  # APPEND RECORD
        0xE4,  # DELETE FILE
        0xE6, 0xE8,  # TERMINATE DF / EF
        0xF0,  # LOCK (personalisation: the card becomes operational for good)
        0xFE,  # TERMINATE CARD USAGE
    }
)  # fmt: skip


def may_change_state(command: bytes) -> bool:
    """True when ``command`` may have changed the card's persistent state (by its instruction byte)."""
    return len(command) >= 4 and command[1] in STATE_CHANGING_INS


class VpcdCard(Protocol):
    """What the bridge needs from a card (``VirtualCard`` provides it)."""

    @property
    def atr(self) -> bytes: ...

    def power_on(self) -> bytes: ...

    def power_off(self) -> None: ...

    def transceive(self, command: bytes) -> bytes: ...


@runtime_checkable
class ContactlessCard(Protocol):
    """A card that tells its ISO/IEC 14443-3 UID, as anticollision gives it to the reader."""

    @property
    def uid(self) -> bytes: ...


#: PC/SC part 3 section 3.2.2.1.3: GET DATA, answered by the reader (CLA FF is reserved for it).
GET_DATA_CLA, GET_DATA_INS = 0xFF, 0xCA
_GET_DATA_UID, _GET_DATA_HISTORICAL = 0x00, 0x01


def _sw(sw: int) -> bytes:
    return sw.to_bytes(2, "big")


def atr_historical_bytes(atr: bytes) -> bytes:
    """The historical bytes of an ATR (ISO/IEC 7816-3 section 8.2): T0's low nibble counts them,
    after the interface bytes its and each TDi's high nibble announce. For a contactless card they
    are the ATS historical bytes the reader put there (PC/SC part 3 section 3.1.3.2.3)."""
    if len(atr) < 2:
        return b""
    count = atr[1] & 0x0F
    indicator = atr[1] >> 4
    at = 2
    while True:
        at += bin(indicator & 0x07).count("1")
        if not indicator & 0x08 or at >= len(atr):
            break
        indicator = atr[at] >> 4  # TDi: the next interface bytes
        at += 1
    return atr[at : at + count]


def reader_get_data(command: bytes, uid: bytes | None, atr: bytes) -> bytes:
    """The reader's answer to GET DATA ``FF CA P1 P2 Le`` (PC/SC part 3 section 3.2.2.1.3): P1 00
    the UID, P1 01 the ATS historical bytes; 6A81 for another P1 (or no UID to give), 6B00 for
    P2 other than 00, 6700 without Le or with a data field; Le 00 returns everything, a shorter Le
    6Cxx with the length available, a longer one the data and 6282 (end of data before Le bytes)."""
    if len(command) != 5:
        return _sw(0x6700)
    p1, p2, le = command[2], command[3], command[4] or 256
    if p1 == _GET_DATA_UID and uid:
        data = uid
    elif p1 == _GET_DATA_HISTORICAL:
        data = atr_historical_bytes(atr)
    else:
        return _sw(0x6A81)
    if p2 != 0x00:
        return _sw(0x6B00)
    if command[4] == 0 or le == len(data):
        return data + _sw(0x9000)
    if le < len(data):
        return _sw(0x6C00 | len(data))
    return data + _sw(0x6282)


class _Closed(Exception):
    """The reader side closed the connection."""


class VpcdBridge:
    """Serves ``card`` to pcscd's vpcd reader at ``host:port`` until stopped or disconnected.

    ``on_connect`` is called once the connection to vpcd stands (the card is then in the reader).
    ``on_change`` is called after every command that may have changed the card's persistent state
    (see :func:`may_change_state`), before its response is sent, e.g. to save the card image. An
    exception from it stops the bridge (the command stays unanswered) and is raised by :meth:`run`,
    or by :meth:`stop` when running in a thread.
    """

    def __init__(
        self,
        card: VpcdCard,
        host: str = "127.0.0.1",
        port: int = VPCD_PORT,
        *,
        on_change: Callable[[], None] | None = None,
        connect_timeout: float = 10.0,
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        self.card = card
        self.host = host
        self.port = port
        self.on_change = on_change
        self.on_connect = on_connect
        self.connect_timeout = connect_timeout
        #: Set once pcscd has talked to the card (its first presence poll): the card is in the reader.
        self.attached = threading.Event()
        self.commands = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._buffer = bytearray()
        self._connected_at: float | None = None

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Connect and serve until :meth:`stop` or until pcscd closes the connection.

        Raises :class:`PcscUnavailableError` when nothing listens on the port within
        ``connect_timeout`` seconds (pcscd not running, or without the vpcd driver).
        """
        sock = self._connect()
        if sock is None:
            return  # stopped while connecting
        try:
            self._serve(sock)
        except _Closed:
            if not self._stop.is_set():
                log.info("pcscd closed the connection to the virtual card")
        except OSError as exc:
            if not self._stop.is_set():
                raise TransportError(f"connection to vpcd at {self.host}:{self.port} failed: {exc}") from exc
        finally:
            with self._lock:
                self._sock = None
            sock.close()
            self.card.power_off()

    def _connect(self) -> socket.socket | None:
        deadline = time.monotonic() + self.connect_timeout
        delay = 0.05
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
            except OSError as exc:
                if time.monotonic() + delay > deadline:
                    raise PcscUnavailableError(
                        f"no vpcd reader listens on {self.host}:{self.port} ({exc.strerror or exc}): "
                        "is pcscd running with the vsmartcard-vpcd driver?"
                    ) from exc
                # pcscd may still be starting: try again, a little less often each time.
                self._stop.wait(delay)
                delay = min(delay * 2, 0.5)
                continue
            sock.settimeout(None)
            # Our answers go out in one write each; no Nagle wait on them.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._stop.is_set():
                    sock.close()
                    return None
                self._sock = sock
                self._connected_at = time.monotonic()
            log.debug("connected to vpcd at %s:%d", self.host, self.port)
            if self.on_connect is not None:
                self.on_connect()
            return sock
        return None

    def _serve(self, sock: socket.socket) -> None:
        while True:
            payload = self._receive(sock)
            self.attached.set()
            if len(payload) == 1:
                self._control(sock, payload[0])
            elif payload:
                response = self._command(payload)
                if self.on_change is not None and may_change_state(payload):
                    # Saved before the answer, as a chip commits its EEPROM before 9000: what the
                    # terminal saw succeed is on disk. A failed save leaves the command unanswered.
                    self.on_change()
                sock.sendall(struct.pack(">H", len(response)) + response)

    def _control(self, sock: socket.socket, code: int) -> None:
        if code == CTRL_ATR:
            atr = self.card.atr
            sock.sendall(struct.pack(">H", len(atr)) + atr)
        elif code == CTRL_ON:
            log.debug("power on")
            self.card.power_on()
        elif code == CTRL_RESET:
            # A warm reset clears the same volatile state as a cold one on this card.
            log.debug("reset")
            self.card.power_on()
        elif code == CTRL_OFF:
            log.debug("power off")
            self.card.power_off()
        else:
            log.warning("ignoring unknown vpcd control code %d", code)

    def _command(self, command: bytes) -> bytes:
        self.commands += 1
        if len(command) >= 2 and command[0] == GET_DATA_CLA and command[1] == GET_DATA_INS:
            return self._reader_get_data(command)
        if log.isEnabledFor(TRAFFIC):
            log.log(TRAFFIC, "card << %s", redacted_command(command))
        try:
            response = self.card.transceive(command)
        except Exception:
            # The card must answer something, as a real chip would; keep serving.
            log.exception("the virtual card failed on a command")
            response = _SW_NO_DIAGNOSIS
        if log.isEnabledFor(TRAFFIC):
            log.log(TRAFFIC, "card >> %s", redacted_response(response))
        return response

    def _reader_get_data(self, command: bytes) -> bytes:
        # A contactless reader answers this itself, from what anticollision and the ATS told it;
        # the card's own answer to CLA FF would be 6E00.
        card = self.card
        uid = card.uid if isinstance(card, ContactlessCard) else None
        response = reader_get_data(command, uid, card.atr)
        if log.isEnabledFor(TRAFFIC):
            log.log(TRAFFIC, "reader << %s >> %s", command.hex().upper(), response.hex().upper())
        return response

    def _receive(self, sock: socket.socket) -> bytes:
        """One framed message; the buffer keeps whatever arrived after it."""
        buf = self._buffer
        while True:
            if len(buf) >= 2:
                size = (buf[0] << 8) | buf[1]
                if len(buf) >= 2 + size:
                    message = bytes(buf[2 : 2 + size])
                    del buf[: 2 + size]
                    return message
            if _QUICKACK is not None:
                # vpcd writes the 2-byte length and the payload separately with Nagle on, so the
                # payload waits until the length is acknowledged; a delayed ACK made every exchange
                # take 44 ms (measured). Linux leaves quick-ACK mode by itself: set it before each read.
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            chunk = sock.recv(65536)
            if not chunk:
                raise _Closed
            buf += chunk

    # -- in a thread ------------------------------------------------------------------------------

    def start(self, wait: float | None = 5.0) -> None:
        """Run in a background thread; with ``wait``, return once pcscd has seen the card.

        Raises the thread's error if it failed, or :class:`TransportError` when pcscd does not
        poll within ``wait`` seconds (typically: another card side already holds this reader).
        """
        if self._thread is not None:
            raise TransportError("the vpcd bridge is already running")
        self._stop.clear()
        self._buffer.clear()
        self._connected_at = None
        self.attached.clear()
        self._thread = threading.Thread(target=self._run_in_thread, name=f"vpcd-{self.port}", daemon=True)
        self._thread.start()
        if wait is None:
            return
        # The connect phase has its own bound (connect_timeout); ``wait`` starts once connected.
        while not self.attached.wait(0.02):
            connected_at = self._connected_at
            if not self._thread.is_alive() or (
                connected_at is not None and time.monotonic() - connected_at > wait
            ):
                break
        if not self.attached.is_set():
            error = self.error
            self.stop()
            if error is not None:
                raise error
            raise TransportError(
                f"pcscd did not poll the virtual card on {self.host}:{self.port} within {wait:g} s; "
                "is another virtual card already in this reader?"
            )

    def _run_in_thread(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # handed to the caller of stop()
            self.error = exc

    def stop(self, timeout: float = 5.0) -> None:
        """Take the card out of the reader and wait for the loop to end; raise the loop's error."""
        self._stop.set()
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already disconnected
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TransportError("the vpcd bridge did not stop in time")
        error, self.error = self.error, None
        if error is not None:
            raise error

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> VpcdBridge:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
