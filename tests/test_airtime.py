"""The ISO/IEC 14443 Type A air-time model against its sourced constants and a published anchor."""

from __future__ import annotations

import math

import pytest

from ektp_card.airtime import (
    ChipTimes,
    Link,
    activation,
    apdu,
    chip_operations,
    deselect,
    etu,
    fwt,
    pcd_frame,
    picc_frame,
    raw_bits_floor,
    trace_time,
)

#: NXP DESFire, 64-byte frames, activation + select + read 1 KB + deselect (docs/airtime.md).
ANCHOR = {106: 130.0, 212: 80.0, 424: 52.0, 848: 43.0}
#: The model leaves out retransmissions and reader firmware time: within 15 % of the anchor.
TOLERANCE = 0.15


def test_bit_times_and_frames() -> None:
    assert etu(106) == pytest.approx(9.44e-6, abs=0.01e-6)
    assert etu(848) == pytest.approx(1.18e-6, abs=0.01e-6)
    assert pcd_frame(1, 106) == pytest.approx(12 * etu(106))
    assert picc_frame(1, 106) == pytest.approx(11 * etu(106))
    assert picc_frame(1, 212) == pytest.approx(11 * etu(212) + 38e-6)
    assert fwt(0) == pytest.approx(302e-6, abs=1e-6)
    assert fwt(4) == pytest.approx(4.83e-3, abs=0.01e-3)
    assert fwt(14) == pytest.approx(4.95, abs=0.01)
    assert raw_bits_floor(1000, 106) == pytest.approx(8000 / 106000)


def test_chaining_counts_blocks_and_acks() -> None:
    link = Link(fsc=256, fsd=256)
    assert apdu(link, 19, 244).blocks == 1  # SM READ BINARY, Le 223: one frame each way
    # A 64 KB extended response: 260 I-blocks at FSD 256, 17 at FSD 4096 (docs/airtime.md).
    assert apdu(link, 10, 65536 + 2).blocks == math.ceil((65536 + 2) / 253)
    assert apdu(Link(fsc=256, fsd=4096), 10, 65536 + 2).blocks == 17
    assert apdu(Link(fsc=64, fsd=64), 200, 2).blocks == math.ceil(200 / 61)


def test_wtx_when_the_chip_needs_longer_than_fwt() -> None:
    link = Link(fwi=4)
    quick = apdu(link, 20, 100, chip_time=1e-3)
    slow = apdu(link, 20, 100, chip_time=27e-3)
    assert quick.wtx == 0
    assert slow.wtx == math.ceil(27e-3 / fwt(4)) - 1
    assert slow.total > quick.total + 26e-3


@pytest.mark.parametrize("rate", [106, 212, 424, 848])
def test_desfire_anchor(rate: int) -> None:
    link = Link(bit_rate=rate, fsc=64, fsd=64)
    select = apdu(link, 9, 2)  # DESFire SelectApplication, ISO wrapped: 90 5A 00 00 03 AID 00 -> 91 00
    read = apdu(link, 13, 1024 + 2)  # ReadData of 1 KB
    total = (activation(link) + select + read + deselect(link)).total * 1000
    assert abs(total - ANCHOR[rate]) <= TOLERANCE * ANCHOR[rate], (rate, total)


def test_trace_time_sums_sessions_and_chip_operations() -> None:
    keygen = bytes.fromhex("0C46000100")
    trace = [(keygen, b"\x90\x00")]
    link = Link()
    with_chip = trace_time(link, trace, ChipTimes(ec_keygen=0.05, aes_apdu=0.001))
    without = trace_time(link, trace, ChipTimes(ec_keygen=0.0, aes_apdu=0.0))
    assert with_chip.chip == pytest.approx(0.051)
    assert with_chip.total > without.total
    assert chip_operations(keygen) == ("aes_apdu", "ec_keygen")
    assert chip_operations(bytes.fromhex("00B0000000")) == ()
    assert chip_operations(bytes.fromhex("0C88000000")) == ("aes_apdu", "ecdsa_sign")
