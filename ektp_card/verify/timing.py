"""Air-time report for a verification: the APDUs exchanged, the bytes each way, and the time they take on
an ISO/IEC 14443 Type A link at each bit rate (:mod:`ektp_card.airtime`) against the raw-bits floor.

:class:`CountingTransport` wraps any transport and records every command and response; the report is
computed from that trace after the verification, so the verification itself is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ektp_card.apdu.transport import Transport

if TYPE_CHECKING:
    from ektp_card.airtime import ChipTimes, Link


class CountingTransport:
    """A transport that passes every command on and keeps the (command, response) pairs."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.trace: list[tuple[bytes, bytes]] = []

    def transceive(self, command: bytes) -> bytes:
        response = self.inner.transceive(command)
        self.trace.append((command, response))
        return response

    @property
    def apdus(self) -> int:
        return len(self.trace)

    @property
    def bytes_to_card(self) -> int:
        return sum(len(c) for c, _ in self.trace)

    @property
    def bytes_from_card(self) -> int:
        return sum(len(r) for _, r in self.trace)


@dataclass(frozen=True)
class RateTime:
    """Modelled seconds at one bit rate: the whole link (frames, waits, chip) and the raw-bits floor."""

    bit_rate: int
    air: float
    floor: float
    frames: float
    waiting: float
    chip: float
    blocks: int


@dataclass(frozen=True)
class TimingReport:
    """APDUs and bytes of one verification, and its modelled air time at 106 ... 848 kbit/s (one field
    session: activation and deselect included)."""

    apdus: int
    bytes_to_card: int
    bytes_from_card: int
    rates: tuple[RateTime, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "apdus": self.apdus,
            "bytes_to_card": self.bytes_to_card,
            "bytes_from_card": self.bytes_from_card,
            "rates": {
                str(r.bit_rate): {
                    "air_ms": round(r.air * 1e3, 3), "floor_ms": round(r.floor * 1e3, 3),
                    "frames_ms": round(r.frames * 1e3, 3), "waiting_ms": round(r.waiting * 1e3, 3),
                    "chip_ms": round(r.chip * 1e3, 3), "blocks": r.blocks,
                }
                for r in self.rates
            },
        }


def timing_report(trace: list[tuple[bytes, bytes]], chip: ChipTimes | None = None,
                  link: Link | None = None) -> TimingReport:
    """The air-time report of ``trace`` at every bit rate of ISO/IEC 14443-2; ``link`` gives the other
    link parameters (its bit rate is replaced), ``chip`` the on-chip computation times."""
    from ektp_card.airtime import BIT_RATES, ChipTimes, Link, raw_bits_floor, trace_time

    base = link or Link()
    times = chip or ChipTimes()
    sent = sum(len(c) for c, _ in trace)
    received = sum(len(r) for _, r in trace)
    rates = []
    for rate in BIT_RATES:
        t = trace_time(replace(base, bit_rate=rate), trace, times)
        rates.append(RateTime(rate, t.total, raw_bits_floor(sent + received, rate), t.frames, t.waiting,
                              t.chip, t.blocks))
    return TimingReport(len(trace), sent, received, tuple(rates))


__all__ = ["CountingTransport", "RateTime", "TimingReport", "timing_report"]
