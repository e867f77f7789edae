"""A model of the time APDUs take on the air between an ISO/IEC 14443 Type A reader and a card.

Sourced constants (docs/airtime.md lists the sources) are kept apart from our own assumptions, which
are fields of :class:`Link` and :class:`ChipTimes` with stated defaults:

* bit time: 1 etu = 128 / (D * fc), fc = 13.56 MHz, D = 1, 2, 4, 8 for 106 ... 848 kbit/s
  (ISO/IEC 14443-2);
* Type A frames: 9 bits per byte (odd parity); a PCD frame lasts 9n + 3 etu, a PICC frame 9n + 2 etu;
  above 106 kbit/s the PICC's BPSK frames carry a preamble of about 38 us;
* frame delay PCD -> PICC (n*128 + 84) / fc with n = 9 (ISO/IEC 14443-3 section 6.2.1.1); PICC -> PCD
  at least 1172 / fc;
* ISO-DEP blocks: PCB (1) [+ CID (1)] [+ NAD (1)] + INF + CRC (2); at most FSC (card) or FSD (reader)
  bytes; longer data is chained, and every I-block with the chaining bit set is acknowledged with an
  R(ACK) (ISO/IEC 14443-4 section 7.5.2);
* frame waiting time FWT = (256 * 16 / fc) * 2^FWI; a card that needs longer sends S(WTX), which costs
  one exchange of two short frames (ISO/IEC 14443-4 section 7.3);
* activation (ISO/IEC 14443-3 section 6.4 and 14443-4 section 5): REQA, ATQA, anticollision and SELECT
  per cascade level, RATS, ATS, and PPS when the bit rate goes above 106 kbit/s; all at 106 kbit/s.

The model gives a floor for a well-behaved link: no retransmissions, no field resets, no host time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

#: Carrier frequency (ISO/IEC 14443-2).
FC = 13.56e6
#: Bit rates (kbit/s) and their divisor D.
BIT_RATES = {106: 1, 212: 2, 424: 4, 848: 8}
#: Frame sizes by FSCI / FSDI 0..12 (ISO/IEC 14443-4 Table 14; 9..12 from Amendment 2).
FRAME_SIZES = (16, 24, 32, 40, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096)
#: PCB + CRC_A around every ISO-DEP block.
BLOCK_OVERHEAD = 3
#: FDT PCD -> PICC for n = 9, last bit 1 (ISO/IEC 14443-3 section 6.2.1.1): 91.2 us.
FDT_PICC_RESPONSE = (9 * 128 + 84) / FC
#: Minimum PICC -> PCD frame delay (ISO/IEC 14443-3 section 6.2.1.2): 86.4 us.
FDT_PCD_MIN = 1172 / FC
#: Preamble of a PICC BPSK frame above 106 kbit/s (secondary source: about 38 us).
BPSK_PREAMBLE = 38e-6


def etu(bit_rate: int) -> float:
    """One elementary time unit in seconds at ``bit_rate`` kbit/s."""
    return 128 / (BIT_RATES[bit_rate] * FC)


def fwt(fwi: int) -> float:
    """Frame waiting time for FWI 0..14 in seconds."""
    if not 0 <= fwi <= 14:
        raise ValueError("FWI is 0 to 14")
    return (256 * 16 / FC) * float(2**fwi)


def pcd_frame(n: int, bit_rate: int) -> float:
    """Air time of a reader frame of ``n`` bytes (CRC included)."""
    return (9 * n + 3) * etu(bit_rate)


def picc_frame(n: int, bit_rate: int) -> float:
    """Air time of a card frame of ``n`` bytes (CRC included)."""
    preamble = BPSK_PREAMBLE if bit_rate > 106 else 0.0
    return (9 * n + 2) * etu(bit_rate) + preamble


@dataclass(frozen=True)
class Link:
    """One reader-card link. Bit rate and frame sizes are the negotiated ones; the rest are our own
    assumptions (docs/airtime.md), each with its default:

    * ``reader_delay``: from the end of a card frame to the reader's next frame. ISO/IEC 14443-3
      allows 86 us; NFC Forum readers wait at least about 0.5 ms: 0.5 ms.
    * ``card_block_time``: from the end of a reader frame to the card's answer for a block that
      needs no computation (receive, check, copy): 0.3 ms, never less than the 91 us minimum.
    * ``apdu_host_time``: time the reader and host spend per APDU outside the air (driver, PC/SC,
      USB): 0, a pure air-time figure.
    """

    bit_rate: int = 106
    fsc: int = 256
    fsd: int = 256
    cid: bool = False
    nad: bool = False
    fwi: int = 4
    uid_length: int = 7
    historical_bytes: int = 8
    reader_delay: float = 0.5e-3
    card_block_time: float = 0.3e-3
    apdu_host_time: float = 0.0

    def __post_init__(self) -> None:
        if self.bit_rate not in BIT_RATES:
            raise ValueError(f"bit rate {self.bit_rate} kbit/s is not one of {sorted(BIT_RATES)}")
        if self.fsc not in FRAME_SIZES or self.fsd not in FRAME_SIZES:
            raise ValueError(f"FSC and FSD are one of {FRAME_SIZES}")
        if self.uid_length not in (4, 7, 10):
            raise ValueError("a Type A UID has 4, 7 or 10 bytes")

    @property
    def prologue(self) -> int:
        return BLOCK_OVERHEAD + self.cid + self.nad

    @property
    def max_inf_command(self) -> int:
        """INF bytes per reader I-block (the card's FSC bounds it)."""
        return self.fsc - self.prologue

    @property
    def max_inf_response(self) -> int:
        """INF bytes per card I-block (the reader's FSD bounds it)."""
        return self.fsd - self.prologue

    @property
    def fwt(self) -> float:
        return fwt(self.fwi)


@dataclass(frozen=True)
class AirTime:
    """Seconds spent: frames on the air, waiting (frame delays, turnarounds, WTX), chip computation,
    host time; and the blocks and WTX requests it took."""

    frames: float = 0.0
    waiting: float = 0.0
    chip: float = 0.0
    host: float = 0.0
    blocks: int = 0
    wtx: int = 0

    @property
    def total(self) -> float:
        return self.frames + self.waiting + self.chip + self.host

    def __add__(self, other: AirTime) -> AirTime:
        return AirTime(self.frames + other.frames, self.waiting + other.waiting, self.chip + other.chip,
                       self.host + other.host, self.blocks + other.blocks, self.wtx + other.wtx)


class _Tally:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.frames = self.waiting = self.chip = 0.0
        self.blocks = self.wtx = 0

    def exchange(self, sent: int, received: int, *, rate: int | None = None, card_time: float = 0.0,
                 block: bool = True) -> None:
        r = rate or self.link.bit_rate
        self.frames += pcd_frame(sent, r) + picc_frame(received, r)
        self.waiting += max(FDT_PICC_RESPONSE, self.link.card_block_time if block else FDT_PICC_RESPONSE)
        self.waiting += max(FDT_PCD_MIN, self.link.reader_delay)
        self.chip += card_time
        self.blocks += 1

    def result(self, host: float = 0.0) -> AirTime:
        return AirTime(self.frames, self.waiting, self.chip, host, self.blocks, self.wtx)


def activation(link: Link) -> AirTime:
    """REQA to ATS (and PPS above 106 kbit/s), at 106 kbit/s. Short frames: REQA is 7 bits + S + E."""
    t = _Tally(link)
    # REQA: a short frame of 9 etu; ATQA: 2 bytes.
    t.frames += 9 * etu(106) + picc_frame(2, 106)
    t.waiting += FDT_PICC_RESPONSE + max(FDT_PCD_MIN, link.reader_delay)
    t.blocks += 1
    levels = {4: 1, 7: 2, 10: 3}[link.uid_length]
    for _ in range(levels):
        t.exchange(2, 5, rate=106, block=False)  # ANTICOLLISION (SEL, NVB) -> UID CLn + BCC
        t.exchange(9, 3, rate=106, block=False)  # SELECT (SEL, NVB, UID CLn, BCC, CRC) -> SAK + CRC
    # RATS (E0, param, CRC) -> ATS (TL, T0, TA, TB, TC, historical bytes, CRC).
    t.exchange(4, 5 + link.historical_bytes + 2, rate=106)
    if link.bit_rate != 106:
        t.exchange(5, 3, rate=106)  # PPS request (PPSS, PPS0, PPS1, CRC) -> PPS response
    return t.result()


def deselect(link: Link) -> AirTime:
    """S(DESELECT) and its answer."""
    t = _Tally(link)
    t.exchange(link.prologue, link.prologue)
    return t.result()


def apdu(link: Link, command: int, response: int, chip_time: float = 0.0) -> AirTime:
    """One command APDU of ``command`` bytes answered by ``response`` bytes (data + SW1 SW2) over
    ISO-DEP, with ``chip_time`` seconds of computation on the card before it answers."""
    t = _Tally(link)
    command_blocks = max(1, math.ceil(command / link.max_inf_command))
    response_blocks = max(1, math.ceil(response / link.max_inf_response))
    left = command
    for _ in range(command_blocks - 1):  # chained I-blocks, each acknowledged by R(ACK)
        t.exchange(link.prologue + link.max_inf_command, link.prologue)
        left -= link.max_inf_command
    # The last command block: the card computes, asking for more time with S(WTX) when it needs
    # longer than FWT (each request and its answer: two short frames and their delays).
    wtx = max(0, math.ceil(chip_time / link.fwt) - 1) if chip_time > 0 else 0
    first = min(response, link.max_inf_response)
    t.exchange(link.prologue + left, link.prologue + first, card_time=chip_time)
    for _ in range(wtx):
        t.exchange(link.prologue + 1, link.prologue + 1)
    t.wtx += wtx
    for _ in range(response_blocks - 1):  # the reader acknowledges each chained card block
        t.exchange(link.prologue, link.prologue + link.max_inf_response)
    return t.result(link.apdu_host_time)


@dataclass(frozen=True)
class ChipTimes:
    """On-chip computation per operation, in seconds: our assumption, separate from the air. The
    defaults are the fast end of measured Java Card chips (JCAlgTest; docs/airtime.md): EC-256 key
    generation 27 ms, ECDH 20 ms, ECDSA signature 24 ms, and 1 ms of AES per protected APDU
    (secure-messaging unwrap, MAC and wrap)."""

    ec_keygen: float = 27e-3
    ecdh: float = 20e-3
    ecdsa_sign: float = 24e-3
    aes_apdu: float = 1e-3
    extra: dict[str, float] = field(default_factory=dict)

    def of(self, operations: Iterable[str]) -> float:
        total = 0.0
        for op in operations:
            total += self.extra.get(op, getattr(self, op, 0.0))
        return total


def chip_operations(command: bytes) -> tuple[str, ...]:
    """What the card computes for ``command`` (an e-KTP or ICAO command APDU, plain or protected),
    by instruction: GENERATE ASYMMETRIC KEY PAIR -> key generation; GENERAL AUTHENTICATE (PACE,
    Chip Authentication v2) -> a key agreement; MSE:SET AT / KAT for Chip Authentication -> a key
    agreement; INTERNAL AUTHENTICATE -> a signature; every protected APDU (CLA bits 0C) -> AES."""
    if len(command) < 4:
        return ()
    cla, ins, p1 = command[0], command[1], command[2]
    ops: list[str] = []
    if cla & 0x0C == 0x0C:
        ops.append("aes_apdu")
    if ins == 0x46:
        ops.append("ec_keygen")
    elif ins == 0x86:
        ops.append("ecdh")
    elif ins == 0x22 and p1 == 0x41 and len(command) > 40:
        ops.append("ecdh")  # MSE:SET KAT carries the terminal's ephemeral public key
    elif ins == 0x88:
        ops.append("ecdsa_sign")
    return tuple(ops)


def trace_time(
    link: Link,
    trace: Sequence[tuple[bytes, bytes]],
    chip: ChipTimes | None = None,
    *,
    sessions: int = 1,
    operations: Callable[[bytes], Iterable[str]] = chip_operations,
) -> AirTime:
    """Air time of a recorded APDU ``trace`` (command, response) in ``sessions`` card sessions (each
    activated and deselected once), with ``chip`` computation per command."""
    times = chip or ChipTimes()
    total = AirTime()
    for _ in range(sessions):
        total = total + activation(link) + deselect(link)
    for command, response in trace:
        total = total + apdu(link, len(command), len(response), times.of(operations(command)))
    return total


def raw_bits_floor(byte_count: int, bit_rate: int) -> float:
    """``byte_count`` x 8 bits at ``bit_rate`` kbit/s: the floor no framing can beat."""
    return byte_count * 8 / (bit_rate * 1000)


__all__ = [
    "BIT_RATES",
    "FRAME_SIZES",
    "AirTime",
    "ChipTimes",
    "Link",
    "activation",
    "apdu",
    "chip_operations",
    "deselect",
    "etu",
    "fwt",
    "pcd_frame",
    "picc_frame",
    "raw_bits_floor",
    "trace_time",
]
