"""PACE handshake time per curve and secure-messaging throughput, in process and through pcscd/vpcd.

Usage: .venv/bin/python bench/bench_pace.py [--runs 9] [--no-pcscd] [--mappings gm,im,cam]

Handshake: MSE:Set AT and the four GENERAL AUTHENTICATE steps of PACE-CAN, after a power cycle each
time, with each ECDH mapping: Generic (GM), Integrated (IM: no mapping key pair on either side, the
pseudo-random function and the point encoding instead) and Chip Authentication Mapping (CAM: GM, plus
the chip's encrypted chip authentication data; the terminal's share includes checking it against the
chip's static key, PK_map = CA_IC * PK_IC, which a verification does once DG14 is read).
The time spent inside the card's ``transceive`` is the card's share;
what is left of the handshake is the terminal's (in process) or the terminal's plus the PC/SC link
(through pcscd, where the time inside ``PcscTransport.transceive`` less the card's is the link).

Throughput: READ BINARY of a 20 KiB and a 64 KiB file under AES-128 secure messaging after
PACE-CAN, in short APDUs (223 plain bytes each) and in extended ones (up to 65503). KB = 1024 bytes.

Starts pcscd for the run when none answers (and stops it after). Prints medians of ``--runs``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.transport import Transport
from ektp_card.crypto.pace import (
    ECDH_GM_AES128,
    ECDH_GM_AES192,
    ECDH_GM_AES256,
    PACE_ALGORITHMS,
    MappingType,
    PaceAlgorithm,
    PaceParameters,
    Password,
    perform_pace,
)
from ektp_card.lds.card_access import PaceInfo
from ektp_card.lds.conditions import PACE, AccessCondition, SecurityAttributes
from ektp_card.lds.profile import DEMO, FileRef
from ektp_card.session.card import CardSession, Credentials
from ektp_card.virtual import VirtualCard
from ektp_card.virtual.ca import chip_key, install_chip_authentication
from ektp_card.virtual.profiles import protected_demo_card

CAN = "271828"

#: The standardized curves of ICAO Doc 9303-11 section 9.5.1 this benchmark covers, by parameterId,
#: each with the AES key length of matching strength.
CURVES: tuple[tuple[int, PaceAlgorithm], ...] = (
    (12, ECDH_GM_AES128),  # NIST P-256
    (13, ECDH_GM_AES128),  # brainpoolP256r1
    (15, ECDH_GM_AES192),  # NIST P-384
    (16, ECDH_GM_AES192),  # brainpoolP384r1
    (17, ECDH_GM_AES256),  # brainpoolP512r1
    (18, ECDH_GM_AES256),  # NIST P-521
)
#: (name, SFI, FID, size) of the files read for throughput.
BIG_FILES = (("20 KiB", 0x10, 0x0110, 20 * 1024), ("64 KiB", 0x11, 0x0111, 64 * 1024))


@dataclass
class TimedCard:
    """The card with a stopwatch around ``transceive``: the card's share of every exchange."""

    card: VirtualCard
    seconds: float = 0.0

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def power_on(self) -> bytes:
        return self.card.power_on()

    def power_off(self) -> None:
        self.card.power_off()

    def transceive(self, command: bytes) -> bytes:
        started = time.perf_counter()
        try:
            return self.card.transceive(command)
        finally:
            self.seconds += time.perf_counter() - started


@dataclass
class TimedTransport:
    """The terminal's transport with a stopwatch: time spent waiting for answers."""

    inner: Transport
    seconds: float = 0.0

    def transceive(self, command: bytes) -> bytes:
        started = time.perf_counter()
        try:
            return self.inner.transceive(command)
        finally:
            self.seconds += time.perf_counter() - started


@dataclass
class Split:
    """Milliseconds of each run: total, card, and the link between (0 in process)."""

    total: list[float] = field(default_factory=list)
    card: list[float] = field(default_factory=list)
    link: list[float] = field(default_factory=list)

    def add(self, total: float, card: float, transport: float) -> None:
        self.total.append(total * 1000)
        self.card.append(card * 1000)
        self.link.append(max(0.0, transport - card) * 1000)

    def medians(self) -> tuple[float, float, float, float]:
        total, card, link = (statistics.median(x) for x in (self.total, self.card, self.link))
        return total, total - card - link, card, link


def with_mapping(algorithm: PaceAlgorithm, mapping: MappingType) -> PaceAlgorithm:
    """The protocol of ``mapping`` with ``algorithm``'s key agreement and cipher."""
    for candidate in PACE_ALGORITHMS.values():
        if (candidate.key_agreement, candidate.mapping, candidate.cipher) == (
            algorithm.key_agreement, mapping, algorithm.cipher
        ):
            return candidate
    raise ValueError(f"no {mapping.value} protocol with {algorithm.cipher.name}")


def pace_card(parameter_id: int, algorithm: PaceAlgorithm) -> VirtualCard:
    card = protected_demo_card(can=CAN, pace_infos=(PaceInfo(algorithm.oid, 2, parameter_id),))
    if algorithm.mapping is MappingType.CAM:
        install_chip_authentication(card, curve=PaceParameters(algorithm, parameter_id).curve)
    app = card.fs.application(DEMO.aid)
    pace_only = AccessCondition.require(PACE)
    for _, sfi, fid, size in BIG_FILES:
        data = bytes(i % 251 for i in range(size))
        card.fs.create_ef(app, fid, data=data, sfi=sfi, access=SecurityAttributes(pace_only))
    return card


def handshake(timed: TimedCard, transport: TimedTransport, parameters: PaceParameters, runs: int) -> Split:
    split = Split()
    password = Password.can(CAN)
    key = chip_key(timed.card)
    static = None
    if key is not None:
        static = key.curve.encode_point(key.curve.multiply(key.private, key.curve.generator))
    for i in range(runs + 1):
        timed.power_on()  # a fresh session: no secure messaging left from the run before
        protocol = ApduProtocol(transport)
        timed.seconds = transport.seconds = 0.0
        started = time.perf_counter()
        result = perform_pace(protocol, password, parameters)
        if result.chip_authentication is not None:
            if static is None or not result.chip_authentication.verify(static):
                raise SystemExit("the chip authentication data does not verify")
        total = time.perf_counter() - started
        if i:  # the first run warms up caches
            split.add(total, timed.seconds, transport.seconds)
    return split


def throughput(timed: TimedCard, transport: Transport, extended: bool, runs: int) -> dict[str, float]:
    """KB/s per file, median of ``runs`` reads, each in a PACE session of its own."""
    rates: dict[str, list[float]] = {name: [] for name, *_ in BIG_FILES}
    expected = {name: bytes(i % 251 for i in range(size)) for name, _, _, size in BIG_FILES}
    for _ in range(runs):
        timed.power_on()
        session = CardSession(transport, extended=None if extended else False)
        session.discover()
        session.authenticate(Credentials(can=CAN))
        session.select_application([DEMO])
        for name, sfi, _, size in BIG_FILES:
            started = time.perf_counter()
            data = session.read(FileRef(name, sfi))
            seconds = time.perf_counter() - started
            if data != expected[name]:
                raise SystemExit(f"read back the wrong content of {name}")
            rates[name].append(size / 1024 / seconds)
    return {name: statistics.median(values) for name, values in rates.items()}


def through_pcscd(timed: TimedCard) -> Iterator[Transport]:
    from ektp_card.apdu.pcsc import PcscTransport
    from ektp_card.virtual.vpcd import VPCD_READER, VpcdBridge

    bridge = VpcdBridge(timed)
    bridge.start()
    try:
        with PcscTransport.open(VPCD_READER, timeout=5, reset_on_close=False) as transport:
            yield transport
    finally:
        bridge.stop()
        wait_until_empty(VPCD_READER)


def wait_until_empty(reader: str, timeout: float = 3.0) -> None:
    """Wait for pcscd to notice that the card left ``reader`` (it polls every 400 ms)."""
    from ektp_card.apdu.pcsc import list_readers

    deadline = time.monotonic() + timeout
    while any(r.name == reader and r.card_present for r in list_readers()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"pcscd still shows a card in {reader}")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--no-pcscd", action="store_true", help="in process only")
    parser.add_argument("--mappings", default="gm,im,cam", help="comma-separated: gm, im, cam")
    args = parser.parse_args(argv)
    mappings = [MappingType(m.strip().upper()) for m in args.mappings.split(",") if m.strip()]
    paths: list[tuple[str, Callable[[TimedCard], Iterator[Transport]]]] = [("in process", in_process)]
    daemon = None
    if not args.no_pcscd:
        from ektp_card.virtual.pcscd import ensure_pcscd

        daemon = ensure_pcscd()
        paths.append(("pcscd/vpcd", through_pcscd))
    rows: list[tuple[str, str, str, str, tuple[float, float, float, float]]] = []
    rates: list[tuple[str, str, dict[str, float]]] = []
    try:
        for parameter_id, base in CURVES:
            for mapping in mappings:
                algorithm = with_mapping(base, mapping)
                parameters = PaceParameters(algorithm, parameter_id)
                card = pace_card(parameter_id, algorithm)
                for path_name, path in paths:
                    timed = TimedCard(card)
                    with contextmanager(path)(timed) as transport:
                        split = handshake(timed, TimedTransport(transport), parameters, args.runs)
                    row = (parameters.curve.name, algorithm.cipher.value[0], mapping.value, path_name)
                    rows.append((*row, split.medians()))
        card = pace_card(13, ECDH_GM_AES128)
        for path_name, path in paths:
            timed = TimedCard(card)
            with contextmanager(path)(timed) as transport:
                for extended in (False, True):
                    kind = "extended" if extended else "short (223 B)"
                    rates.append((path_name, kind, throughput(timed, transport, extended, args.runs)))
    finally:
        if daemon is not None:
            daemon.stop()

    print(f"PACE-CAN handshake (MSE:Set AT + 4 GENERAL AUTHENTICATE), median of {args.runs} runs, ms")
    print(f"{'curve':16} {'SM':8} {'map':4} {'path':11} {'total':>8} {'terminal':>9} {'card':>8} "
          f"{'link':>8}")
    for curve, cipher, mapping_name, path_name, (total, terminal, card_ms, link) in rows:
        print(f"{curve:16} {cipher:8} {mapping_name:4} {path_name:11} {total:8.1f} {terminal:9.1f} "
              f"{card_ms:8.1f} {link:8.1f}")
    print()
    print(f"Secure messaging (AES-128, brainpoolP256r1) READ BINARY throughput, median of {args.runs}, KB/s")
    names = [name for name, *_ in BIG_FILES]
    print(f"{'path':11} {'APDUs':14} " + " ".join(f"{name:>10}" for name in names))
    for path_name, kind, per_file in rates:
        print(f"{path_name:11} {kind:14} " + " ".join(f"{per_file[name]:10.0f}" for name in names))
    return 0


def in_process(timed: TimedCard) -> Iterator[Transport]:
    yield timed


if __name__ == "__main__":
    sys.exit(main())
