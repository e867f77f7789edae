"""APDU round trips per second: in process, and through a real pcscd with the vpcd virtual reader.

Usage: .venv/bin/python bench/bench_apdu.py [--runs 5] [--count 2000] [--apdu HEX]

Starts pcscd for the run when none answers (and stops it after). Prints the median of the runs for
each path and its ratio to the in-process card.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from ektp_card.apdu import ApduProtocol, CommandApdu
from ektp_card.apdu.pcsc import PcscTransport, list_readers
from ektp_card.virtual import demo_card
from ektp_card.virtual.pcscd import ensure_pcscd
from ektp_card.virtual.vpcd import VPCD_READER, VpcdBridge

#: READ BINARY of EF.ATR/INFO by its short EF identifier 01 (ISO/IEC 7816-4 section 8.2.1.1): free
#: to read right after power-on, no SELECT needed, so every round trip is the same command.
DEFAULT_APDU = "00B0810000"

#: Round trips per second through pcscd that this 2-core machine is expected to reach.
TARGET = 2000

SERVE_IN_CHILD = (
    "from ektp_card.virtual import demo_card\n"
    "from ektp_card.virtual.vpcd import VpcdBridge\n"
    "VpcdBridge(demo_card()).run()\n"
)


def rate(round_trip: Callable[[], object], count: int, runs: int) -> list[float]:
    """Round trips per second of each run."""
    round_trip()  # warm up (first-call costs, caches)
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(count):
            round_trip()
        rates.append(count / (time.perf_counter() - started))
    return rates


def wait_until_empty(reader: str, timeout: float = 3.0) -> None:
    """Wait for pcscd to notice that the card left ``reader`` (it polls every 400 ms)."""
    deadline = time.monotonic() + timeout
    while any(r.name == reader and r.card_present for r in list_readers()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"pcscd still shows a card in {reader}")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--count", type=int, default=2000, help="round trips per run")
    parser.add_argument("--apdu", default=DEFAULT_APDU, help="command APDU in hex (must answer 9000)")
    args = parser.parse_args(argv)
    raw = bytes.fromhex(args.apdu)
    apdu = CommandApdu.decode(raw)
    results: list[tuple[str, list[float]]] = []

    def measure(name: str, round_trip: Callable[[], object]) -> None:
        results.append((name, rate(round_trip, args.count, args.runs)))

    card = demo_card()
    card.power_on()
    first = card.transceive(raw)
    if first[-2:] != b"\x90\x00":
        print(f"the demo card answers {first[-2:].hex().upper()} to {args.apdu}; pick another --apdu")
        return 2
    measure("VirtualCard.transceive", lambda: card.transceive(raw))
    in_process = ApduProtocol(card)
    measure("ApduProtocol over VirtualCard", lambda: in_process.send(apdu))

    daemon = ensure_pcscd()
    bridge = VpcdBridge(card)
    try:
        bridge.start()
        with PcscTransport.open(VPCD_READER, timeout=5) as transport:
            if transport.transceive(raw) != first:
                print("the response through pcscd differs from the in-process one")
                return 1
            measure("PcscTransport via pcscd/vpcd", lambda: transport.transceive(raw))
            over_pcsc = ApduProtocol(transport)
            measure("ApduProtocol via pcscd/vpcd", lambda: over_pcsc.send(apdu))
        bridge.stop()
        wait_until_empty(VPCD_READER)
        # As with `ektp virtual serve`: the card side in its own process, so the two share no GIL.
        server = subprocess.Popen([sys.executable, "-c", SERVE_IN_CHILD])
        try:
            with PcscTransport.open(VPCD_READER, timeout=10) as transport:
                measure("PcscTransport, card in a 2nd process", lambda: transport.transceive(raw))
        finally:
            server.terminate()
            server.wait(10)
    finally:
        bridge.stop()
        if daemon is not None:
            daemon.stop()

    base = statistics.median(results[0][1])
    print(f"{args.runs} runs x {args.count} round trips of {args.apdu} ({len(first)} response bytes)")
    print(f"{'path':38} {'median rt/s':>12} {'us/rt':>8} {'slower':>7}   runs (rt/s)")
    for name, rates in results:
        median = statistics.median(rates)
        runs = " ".join(f"{r:.0f}" for r in rates)
        print(f"{name:38} {median:12.0f} {1e6 / median:8.1f} {base / median:6.1f}x   {runs}")
    through_pcscd = statistics.median(results[2][1])
    verdict = "ok" if through_pcscd >= TARGET else "BELOW TARGET"
    print(f"through pcscd: {through_pcscd:.0f} round trips/s, target {TARGET}: {verdict}")
    return 0 if through_pcscd >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
