"""The card side of ISO/IEC 14443 Type A with ISO-DEP, in front of a virtual card.

:class:`TypeAPicc` is the protocol machine: one frame from the reader in, one frame (or silence) out.
It answers the Type A select sequence of ISO/IEC 14443-3 (ATQA, anticollision and SELECT per cascade
level, SAK), RATS with an ATS, and then runs the half-duplex block transmission protocol of
ISO/IEC 14443-4 (I-, R- and S-blocks, block numbering, chaining both ways, DESELECT), passing each
reassembled command APDU to the card's ``transceive``.

:class:`IsoDepCardServer` carries those frames over UDP on loopback in the datagram format of
nfcpy's ``udp`` driver: each datagram is ``b"<bit rate> <hex frame>"`` (for example ``b"106A 26"``),
and ``b"RFOFF"`` when the reader switches its field off. Frames carry no CRC_A, as in that driver.
While the card works on a command the server sends S(WTX) requests so the reader keeps waiting.
"""

from __future__ import annotations

import binascii
import concurrent.futures
import enum
import logging
import math
import select
import socket
import threading
import time
from functools import reduce
from operator import xor
from types import TracebackType
from typing import Protocol

log = logging.getLogger("ektp_card.virtual.isodep")

# ISO/IEC 14443-3, Type A commands (short frames and standard frames).
REQA = b"\x26"
WUPA = b"\x52"
HLTA = b"\x50\x00"
SEL_CODES = (0x93, 0x95, 0x97)  # SEL of cascade levels 1, 2, 3
CASCADE_TAG = 0x88
NVB_SELECT = 0x70  # NVB of a SELECT: 7 valid bytes (SEL, NVB, 4 UID bytes, BCC)

# ISO/IEC 14443-3, SAK coding: b3 "cascade bit" (UID not complete), b6 "UID complete and PICC
# compliant with ISO/IEC 14443-4".
SAK_CASCADE = 0x04
SAK_ISO14443_4 = 0x20

# ISO/IEC 14443-4 section 5.1 (RATS): start byte; FSDI -> FSD table of section 5.1 ("Request for
# answer to select"). FSDI 9..F were RFU in the 2001/2008 editions and a PICC treats them as 8.
RATS_START = 0xE0
FSD_TABLE = (16, 24, 32, 40, 48, 64, 96, 128, 256)

# ISO/IEC 14443-4 section 5.2 (ATS): T0 announces TA(1), TB(1), TC(1) and carries FSCI.
FSCI = 8  # FSC = 256 bytes (CRC included); nfcpy's udp driver carries frames up to 290 bytes
T0_TA_TB_TC = 0x70
TA1_106_ONLY = 0x00  # only 106 kbit/s in both directions: the udp driver never changes bit rate
TC1_CID_SUPPORTED = 0x02  # b2: CID supported; b1 (NAD supported) clear

# ISO/IEC 14443-4 section 7.1.1.1 (protocol control byte) codings.
PCB_I = 0x02  # 000C CN1B: chaining C, CID following, NAD following N, block number B
PCB_R_ACK = 0xA2  # 101A C01B: A = 1 for NAK
PCB_R_NAK = 0xB2
PCB_S_DESELECT = 0xC2  # 11xx C010: xx = 00 DESELECT, 11 WTX
PCB_S_WTX = 0xF2
PCB_CHAINING = 0x10
PCB_CID = 0x08
PCB_NAD = 0x04
PCB_BLOCK_NUMBER = 0x01
CRC_LENGTH = 2  # CRC_A counts toward FSD/FSC even though the udp driver leaves it out

# ISO/IEC 14443-4 section 5.3 (PPS): PPSS = 1101 + CID; PPS0 b5 says PPS1 follows.
PPSS = 0xD0

# FWI 10: FWT about 0.3 s (ISO/IEC 14443-4 section 7.2). Long enough that a busy test machine does not
# make the reader time out before the first S(WTX), short enough that a vanished card is noticed in
# about a second (nfcpy retries a few times before giving up).
DEFAULT_FWI = 10

# ISO/IEC 7816-4: "no precise diagnosis", what a card OS answers after an internal fault.
SW_NO_PRECISE_DIAGNOSIS = b"\x6f\x00"


class PiccCard(Protocol):
    """What the ISO-DEP card side needs from a card (VirtualCard has all of it)."""

    def transceive(self, command: bytes) -> bytes: ...

    def power_on(self) -> bytes: ...

    def power_off(self) -> None: ...

    @property
    def uid(self) -> bytes: ...

    @property
    def ats_historical(self) -> bytes: ...


class State(enum.Enum):
    """PICC states of ISO/IEC 14443-3 ("PICC states") plus the ISO/IEC 14443-4 protocol state."""

    POWER_OFF = "power-off"
    IDLE = "idle"
    READY = "ready"
    ACTIVE = "active"
    HALT = "halt"
    PROTOCOL = "protocol"


def fwt_seconds(fwi: int) -> float:
    """Frame waiting time for FWI: (256 * 16 / fc) * 2**FWI (ISO/IEC 14443-4 section 7.2)."""
    return 256 * 16 / 13.56e6 * (1 << fwi)


def bcc(data: bytes) -> int:
    """Block check character of a UID CLn: XOR of its four bytes (ISO/IEC 14443-3)."""
    return reduce(xor, data, 0)


def cascade_levels(uid: bytes) -> list[bytes]:
    """Split a 4-, 7- or 10-byte UID into its UID CLn parts, with cascade tags (ISO/IEC 14443-3)."""
    if len(uid) == 4:
        return [uid]
    if len(uid) == 7:
        return [bytes([CASCADE_TAG]) + uid[:3], uid[3:]]
    if len(uid) == 10:
        return [bytes([CASCADE_TAG]) + uid[:3], bytes([CASCADE_TAG]) + uid[3:6], uid[6:]]
    raise ValueError(f"a Type A UID has 4, 7 or 10 bytes, not {len(uid)}")


class TypeAPicc:
    """ISO/IEC 14443 Type A PICC with ISO-DEP, driven one reader frame at a time.

    ``handle(frame)`` returns the answer frame or None for silence. The card is powered on when a
    REQA/WUPA wakes it and powered off on DESELECT or when the field goes away (:meth:`field_off`).
    ``fwi`` sets the frame waiting time announced in the ATS.
    """

    def __init__(self, card: PiccCard, *, fwi: int = DEFAULT_FWI, sfgi: int = 0) -> None:
        if not 0 <= fwi <= 14 or not 0 <= sfgi <= 14:
            raise ValueError("FWI and SFGI range from 0 to 14")
        self._card = card
        self.fwi = fwi
        self._sfgi = sfgi
        self._state = State.POWER_OFF
        self._powered = False
        self._from_halt = False
        self._levels: list[bytes] = []
        self._level = 0
        self._reset_protocol()
        #: True while the card works on a command APDU (the only time S(WTX) may be sent).
        self.busy = False

    def _reset_protocol(self) -> None:
        self._cid = 0
        self._fsd = FSD_TABLE[0]
        self._bn = 1  # ISO/IEC 14443-4 section 7.5.3, rule C: the PICC block number starts at 1
        self._rx = bytearray()  # command chaining: INF fields received so far
        self._tx = b""  # response chaining: bytes not yet sent
        self._last: bytes | None = None  # last block sent, for retransmission
        self._with_cid = False  # whether the reader's current exchange carries a CID
        self._pps_allowed = False

    @property
    def state(self) -> State:
        return self._state

    @property
    def fsd(self) -> int:
        """The reader's frame size (from RATS), CRC included."""
        return self._fsd

    @property
    def cid(self) -> int:
        return self._cid

    def field_off(self) -> None:
        """The reader's field went away: power the card off and forget every protocol state."""
        self._power_off()
        self._state = State.POWER_OFF
        self._reset_protocol()

    def handle(self, frame: bytes) -> bytes | None:
        """Process one frame from the reader; return the answer frame, or None to stay silent."""
        if not frame:
            return None
        if self._state is State.PROTOCOL:
            return self._block(frame)
        return self._type_a(frame)

    # ISO/IEC 14443-3 Type A: initialization and anticollision ------------------------------------

    def _power_on(self) -> None:
        if not self._powered:
            self._card.power_on()
            self._powered = True
            # The UID is read after power-on: a random UID changes with every power-on session.
            self._levels = cascade_levels(bytes(self._card.uid))

    def _power_off(self) -> None:
        if self._powered:
            self._powered = False
            self._card.power_off()

    def _atqa(self) -> bytes:
        # ATQA (ISO/IEC 14443-3 "ATQA"): b8b7 UID size (00 single, 01 double, 10 triple), b1 set for
        # bit frame anticollision; sent least significant byte first.
        return bytes([((len(self._levels) - 1) << 6) | 0x01, 0x00])

    def _leave(self) -> None:
        # An unexpected frame in READY or ACTIVE sends the PICC back where it came from.
        self._state = State.HALT if self._from_halt else State.IDLE

    def _type_a(self, frame: bytes) -> bytes | None:
        if frame in (REQA, WUPA):
            wakes = self._state in (State.POWER_OFF, State.IDLE) or (
                self._state is State.HALT and frame == WUPA
            )
            if not wakes:
                if self._state in (State.READY, State.ACTIVE):
                    self._leave()
                return None
            self._from_halt = self._state is State.HALT
            self._power_on()
            self._state = State.READY
            self._level = 0
            return self._atqa()
        if self._state is State.READY:
            return self._anticollision(frame)
        if self._state is State.ACTIVE:
            if frame == HLTA:
                self._state = State.HALT
                return None
            if len(frame) == 2 and frame[0] == RATS_START:
                return self._rats(frame[1])
            self._leave()
        return None

    def _anticollision(self, frame: bytes) -> bytes | None:
        if frame == HLTA:
            self._state = State.HALT
            return None
        if len(frame) < 2 or frame[0] != SEL_CODES[self._level]:
            self._leave()
            return None
        part = self._levels[self._level]
        full = part + bytes([bcc(part)])
        nvb = frame[1]
        if nvb == NVB_SELECT and len(frame) == 7:
            # SELECT: only the PICC whose UID CLn and BCC match answers with SAK.
            if frame[2:] != full:
                return None
            if self._level + 1 < len(self._levels):
                self._level += 1
                return bytes([SAK_CASCADE])
            self._state = State.ACTIVE
            return bytes([SAK_ISO14443_4])
        # ANTICOLLISION: NVB's high nibble counts the valid bytes sent (SEL and NVB included), the low
        # nibble valid bits of a partial byte, which a byte-oriented UDP frame cannot carry.
        known = (nvb >> 4) - 2
        if nvb & 0x0F or not 0 <= known < 5 or len(frame) != 2 + known:
            return None
        if not full.startswith(frame[2:]):
            return None
        return full[known:]

    def _rats(self, param: int) -> bytes | None:
        # RATS parameter byte (ISO/IEC 14443-4 section 5.1): FSDI in b8-b5, CID in b4-b1 (15 is RFU).
        cid = param & 0x0F
        if cid == 15:
            self._leave()
            return None
        self._reset_protocol()
        self._cid = cid
        self._fsd = FSD_TABLE[min(param >> 4, 8)]
        self._state = State.PROTOCOL
        self._pps_allowed = True
        return self.ats()

    def ats(self) -> bytes:
        """The answer to select (ISO/IEC 14443-4 section 5.2): TL T0 TA(1) TB(1) TC(1) historical."""
        interface = bytes([T0_TA_TB_TC | FSCI, TA1_106_ONLY, (self.fwi << 4) | self._sfgi, TC1_CID_SUPPORTED])
        # The ATS may not exceed FSD (CRC included): historical bytes are cut to fit a small FSD.
        room = self._fsd - CRC_LENGTH - 1 - len(interface)
        historical = bytes(self._card.ats_historical)[:room]
        return bytes([1 + len(interface) + len(historical)]) + interface + historical

    # ISO/IEC 14443-4: half-duplex block transmission protocol -----------------------------------

    def _block(self, frame: bytes) -> bytes | None:
        pcb = frame[0]
        if self._pps_allowed and (pcb & 0xF0) == PPSS:
            return self._pps(frame)
        self._pps_allowed = False
        if (pcb & 0xE2) == PCB_I:
            kind = "I"
        elif (pcb & 0xE6) == PCB_R_ACK:
            kind = "R"
        elif (pcb & 0xC7) == PCB_S_DESELECT:
            kind = "S"
        else:
            return None  # not a valid block: ignored
        offset = 1
        # CID handling (ISO/IEC 14443-4 section 7.1.1.2): a block for another CID is ignored; a PICC
        # with CID 0 also answers blocks without CID, a PICC with another CID ignores them.
        if pcb & PCB_CID:
            if len(frame) < 2 or (frame[1] & 0x0F) != self._cid:
                return None
            offset = 2
            self._with_cid = True
        elif self._cid != 0:
            return None
        else:
            self._with_cid = False
        if kind == "I":
            if pcb & PCB_NAD:
                # NAD (section 7.1.1.3) is not announced in TC(1); a NAD sent anyway is skipped.
                offset += 1
            return self._i_block(pcb, frame[offset:])
        if kind == "R":
            return self._r_block(pcb)
        return self._s_block(pcb, frame[offset:])

    def _pps(self, frame: bytes) -> bytes | None:
        # PPS (ISO/IEC 14443-4 section 5.3): PPSS PPS0 [PPS1]; only 106 kbit/s (DSI = DRI = 0) is
        # offered in TA(1), so any other PPS1 gets no answer.
        if (frame[0] & 0x0F) != self._cid or len(frame) < 2:
            return None
        if frame[1] & 0x10:
            if len(frame) != 3 or frame[2] & 0x0F:
                return None
        elif len(frame) != 2:
            return None
        self._pps_allowed = False
        return frame[:1]

    def _prologue(self, pcb: int) -> bytes:
        if self._with_cid:
            return bytes([pcb | PCB_CID, self._cid])
        return bytes([pcb])

    def _send(self, block: bytes) -> bytes:
        self._last = block
        return block

    def _i_block(self, pcb: int, inf: bytes) -> bytes | None:
        # Section 7.5.3, rule D: an I-block toggles the PICC block number before the PICC answers.
        self._bn ^= 1
        self._tx = b""  # a new command ends any response chaining
        self._rx += inf
        if pcb & PCB_CHAINING:
            # Chaining (section 7.5.2): each chained I-block is acknowledged with R(ACK).
            return self._send(self._prologue(PCB_R_ACK | self._bn))
        command = bytes(self._rx)
        self._rx.clear()
        self._tx = self._transceive(command)
        return self._next_i_block()

    def _transceive(self, command: bytes) -> bytes:
        self.busy = True
        try:
            return bytes(self._card.transceive(command))
        except Exception:
            log.exception("the card failed on a command")
            return SW_NO_PRECISE_DIAGNOSIS
        finally:
            self.busy = False

    def _next_i_block(self) -> bytes:
        # The response goes out in pieces that fit FSD (CRC and prologue counted).
        room = self._fsd - CRC_LENGTH - len(self._prologue(0))
        chunk, self._tx = self._tx[:room], self._tx[room:]
        pcb = PCB_I | self._bn | (PCB_CHAINING if self._tx else 0)
        return self._send(self._prologue(pcb) + chunk)

    def _r_block(self, pcb: int) -> bytes | None:
        # Block handling rules for the PICC (ISO/IEC 14443-4 section 7.5.4).
        if (pcb & PCB_BLOCK_NUMBER) == self._bn:
            # R(ACK) or R(NAK) with the current block number: the reader missed the last block.
            return self._last
        if pcb & 0x10:
            # R(NAK) with another block number (also the reader's presence check): answer R(ACK).
            return self._send(self._prologue(PCB_R_ACK | self._bn))
        if self._tx:
            # R(ACK) with another block number while chaining: toggle (rule E) and continue.
            self._bn ^= 1
            return self._next_i_block()
        return None

    def _s_block(self, pcb: int, inf: bytes) -> bytes | None:
        if (pcb & 0x30) == 0x00:
            # S(DESELECT) (section 8): answer with S(DESELECT) and go to HALT; the card's session ends.
            answer = self._prologue(PCB_S_DESELECT)
            self._power_off()
            self._reset_protocol()
            self._state = State.HALT
            self._from_halt = True
            return answer
        # An S(WTX) response outside a waiting time extension, or S(PARAMETERS): ignored.
        return None

    # S(WTX) for the server -----------------------------------------------------------------------

    def wtx_request(self, wtxm: int) -> bytes:
        """S(WTX) request asking for ``wtxm`` times FWT more (ISO/IEC 14443-4 section 7.3)."""
        if not 1 <= wtxm <= 59:
            raise ValueError("WTXM ranges from 1 to 59")
        return self._prologue(PCB_S_WTX) + bytes([wtxm])

    def is_wtx_response(self, frame: bytes) -> bool:
        """Whether ``frame`` is the reader's S(WTX) response for this PICC."""
        if not frame or (frame[0] & ~PCB_CID & 0xFF) != PCB_S_WTX:
            return False
        if frame[0] & PCB_CID:
            return len(frame) == 3 and (frame[1] & 0x0F) == self._cid
        return len(frame) == 2 and self._cid == 0


class _Runtime:
    """The sockets and worker of a running server (created by start, closed by stop)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        # The card works in its own thread so the server can send S(WTX) meanwhile.
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="isodep-card")

    def wake(self) -> None:
        try:
            self.wake_w.send(b"\0")
        except OSError:
            pass  # full (the loop has wake-ups pending anyway) or already closed

    def wait(self, timeout: float | None) -> bool:
        """Wait for a datagram or a wake-up; True when a datagram is ready."""
        readable, _, _ = select.select([self.sock, self.wake_r], [], [], timeout)
        if self.wake_r in readable:
            try:
                self.wake_r.recv(4096)
            except BlockingIOError:
                pass
        return self.sock in readable

    def recv(self) -> tuple[bytes, tuple[str, int]]:
        data, addr = self.sock.recvfrom(4096)
        return data, (addr[0], addr[1])

    def send(self, frame: bytes, addr: tuple[str, int]) -> None:
        self.sock.sendto(IsoDepCardServer.BIT_RATE + b" " + binascii.hexlify(frame), addr)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for sock in (self.sock, self.wake_r, self.wake_w):
            sock.close()


class IsoDepCardServer:
    """Serves a card as an ISO-DEP Type A PICC over UDP, for nfcpy's ``udp:HOST:PORT`` reader path.

    Binds ``host`` (loopback by default) and ``port`` (0 picks a free one, see :attr:`port`). Use
    ``with IsoDepCardServer(card) as server:`` or :meth:`start` / :meth:`stop`.
    """

    BIT_RATE = b"106A"
    RFOFF = b"RFOFF"

    def __init__(
        self, card: PiccCard, host: str = "127.0.0.1", port: int = 0, *, fwi: int = DEFAULT_FWI
    ) -> None:
        self.picc = TypeAPicc(card, fwi=fwi)
        self._host = host
        self._requested_port = port
        self._runtime: _Runtime | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._peer: tuple[str, int] | None = None
        self._fwt = fwt_seconds(fwi)
        # Ask for about one second per extension; the first S(WTX) goes out well inside FWT.
        self._wtxm = max(1, min(59, math.ceil(1.0 / self._fwt)))
        self._wtx_first = self._fwt / 4

    @property
    def port(self) -> int:
        """The UDP port the server listens on (while running)."""
        if self._runtime is None:
            raise RuntimeError("the card server is not running")
        port: int = self._runtime.sock.getsockname()[1]
        return port

    @property
    def path(self) -> str:
        """The nfcpy device path that reaches this server."""
        return f"udp:{self._host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> IsoDepCardServer:
        """Bind the port and serve in a background thread."""
        if self._thread is not None:
            raise RuntimeError("the card server is already running")
        runtime = _Runtime(self._bind())
        self._runtime = runtime
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, args=(runtime,), name="isodep-server", daemon=True)
        self._thread.start()
        log.debug("ISO-DEP card side listening on %s", self.path)
        return self

    def _bind(self) -> socket.socket:
        for _ in range(20):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((self._host, self._requested_port))
            except OSError:
                sock.close()
                raise
            if self._requested_port or not _has_service_name(sock.getsockname()[1]):
                return sock
            # nfcpy's udp driver turns the port into a service name and then fails to parse it:
            # a port chosen here must not be in the services database.
            sock.close()
        raise OSError("no free UDP port without a service name")

    def stop(self) -> None:
        """Stop serving (after the command in progress, if any), power the card off, free the port."""
        thread, runtime = self._thread, self._runtime
        if thread is None or runtime is None:
            return
        self._stopping.set()
        runtime.wake()
        thread.join()
        runtime.close()
        self._thread = self._runtime = None
        self.picc.field_off()
        self._peer = None

    def __enter__(self) -> IsoDepCardServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self, runtime: _Runtime) -> None:
        while not self._stopping.is_set():
            if runtime.wait(None) and not self._stopping.is_set():
                try:
                    self._datagram(runtime, *runtime.recv())
                except Exception:
                    log.exception("ISO-DEP card side failed on a frame")

    def _parse(self, data: bytes) -> bytes | None:
        parts = data.split()
        if len(parts) != 2 or parts[0] != self.BIT_RATE:
            return None  # other bit rates and technologies (Type B, F) are not this PICC's
        try:
            return binascii.unhexlify(parts[1])
        except (binascii.Error, ValueError):
            return None

    def _datagram(self, runtime: _Runtime, data: bytes, addr: tuple[str, int]) -> None:
        if data.startswith(self.RFOFF):
            if addr == self._peer:
                self.picc.field_off()
                self._peer = None
            return
        frame = self._parse(data)
        if frame is None:
            return
        if addr != self._peer:
            # nfcpy opens a fresh socket for every polling round: a new peer means a new field.
            self.picc.field_off()
            self._peer = addr
        answer = self._process(runtime, frame, addr)
        if answer is not None:
            runtime.send(answer, addr)

    def _process(self, runtime: _Runtime, frame: bytes, addr: tuple[str, int]) -> bytes | None:
        """Run the PICC on one frame, sending S(WTX) requests while the card is busy."""
        future = runtime.pool.submit(self.picc.handle, frame)
        future.add_done_callback(lambda _: runtime.wake())
        field_lost = False
        deadline = time.monotonic() + self._wtx_first
        while not future.done():
            if runtime.wait(max(0.0, deadline - time.monotonic())):
                data, source = runtime.recv()
                if source != addr:
                    continue  # another reader while this one waits: no collision handling over UDP
                if data.startswith(self.RFOFF):
                    field_lost = True
                    continue
                reply = self._parse(data)
                if reply is not None and self.picc.is_wtx_response(reply):
                    deadline = time.monotonic() + self._wtxm * self._fwt / 2
                elif reply is not None and self.picc.busy and not field_lost:
                    # The reader gave up waiting (R(NAK)); the PICC may answer with S(WTX) instead.
                    runtime.send(self.picc.wtx_request(self._wtxm), addr)
                    deadline = time.monotonic() + self._fwt
            elif time.monotonic() >= deadline:
                if self.picc.busy and not field_lost and not self._stopping.is_set():
                    runtime.send(self.picc.wtx_request(self._wtxm), addr)
                    # The reader's S(WTX) response moves the deadline; without one, ask again in FWT.
                    deadline = time.monotonic() + self._fwt
                else:
                    deadline = time.monotonic() + self._wtx_first
        answer = future.result()
        if field_lost:
            self.picc.field_off()
            self._peer = None
            return None
        return answer


def _has_service_name(port: int) -> bool:
    try:
        socket.getservbyport(port, "udp")
    except OSError:
        return False
    return True
