"""Personalise-and-verify throughput, APDUs and bytes per card, and modelled ISO 14443 air time.

Usage: .venv/bin/python bench/bench_personalize.py [--runs 5] [--cards 20] [--pcscd-cards 5] [--no-pcscd]

Each card: a new plan from a synthetic record (every record rule checked, a fresh CAN), then
personalisation of a blank virtual card (key files for the document signer, a CRL) and the clerk's
read back (PACE-CAN, Passive, Chip and Active Authentication). In process, and through a real pcscd
with the vpcd reader (pcscd started for the run when none answers; each blank card served by its own
VpcdBridge; the time to swap cards in the reader is reported apart). The air time of one card's APDU
trace is modelled with ektp_card.airtime (docs/airtime.md) against the raw-bits floor.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ektp_card.airtime import BIT_RATES, ChipTimes, Link, raw_bits_floor, trace_time
from ektp_card.errors import EktpError
from ektp_card.lds.synthetic import synthetic_record
from ektp_card.personalize import DocumentSigner, personalize, plan_from_record
from ektp_card.pki.issuer import IssuerPki
from ektp_card.pki.signer import KeySpec
from ektp_card.pki.trust import TrustStore
from ektp_card.virtual.card import VirtualCard
from ektp_card.virtual.perso import blank_card


class Recorder:
    """Keeps every command and response (for the air-time model)."""

    def __init__(self, inner: VirtualCard) -> None:
        self.inner = inner
        self.trace: list[tuple[bytes, bytes]] = []

    def transceive(self, command: bytes) -> bytes:
        response = self.inner.transceive(command)
        self.trace.append((command, response))
        return response


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cards", type=int, default=20, help="cards per in-process run")
    parser.add_argument("--pcscd-cards", type=int, default=5, help="cards per run through pcscd")
    parser.add_argument("--no-pcscd", action="store_true", help="skip the pcscd/vpcd measurement")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-perso-") as tmp:
        passphrase = secrets.token_urlsafe(16).encode()
        pki = IssuerPki.create(Path(tmp) / "pki", passphrase, spec=KeySpec.parse("brainpoolP256r1"),
                               country="ID", common_name="Bench CSCA")
        pki.issue_document_signer(passphrase, passphrase, common_name="Bench DS")
        trust = TrustStore((pki.csca,), (pki.publish_crl(passphrase),))
        ds = DocumentSigner(*pki.document_signer(None, passphrase))
    master = secrets.token_bytes(16)
    record = synthetic_record(args.seed)

    def one_card(transport: object) -> None:
        result = personalize(transport, plan_from_record(record), master, ds, trust=trust)  # type: ignore[arg-type]
        if result.verification is None or not result.verification.ok:
            raise SystemExit("a card did not verify")

    # One traced card: APDUs and bytes, personalisation and read back.
    card = blank_card(master)
    card.power_on()
    recorder = Recorder(card)
    traced = personalize(recorder, plan_from_record(record), master, ds, trust=trust)
    trace = recorder.trace
    perso_trace, readback_trace = trace[: traced.apdus], trace[traced.apdus :]

    rates: dict[str, list[float]] = {"in-process": []}
    for _ in range(args.runs):
        blanks = [blank_card(master) for _ in range(args.cards)]  # the factory's work, not timed
        for b in blanks:
            b.power_on()
        started = time.perf_counter()
        for b in blanks:
            one_card(b)
        rates["in-process"].append(args.cards / (time.perf_counter() - started))

    swap: list[float] = []
    if not args.no_pcscd:
        from ektp_card.apdu.pcsc import PcscTransport, list_readers
        from ektp_card.virtual.pcscd import ensure_pcscd
        from ektp_card.virtual.vpcd import VPCD_READER, VpcdBridge

        daemon = ensure_pcscd()
        pcscd_rates: list[float] = []
        try:
            for _ in range(args.runs):
                busy = 0.0
                for _ in range(args.pcscd_cards):
                    swap_start = time.perf_counter()
                    bridge = VpcdBridge(blank_card(master))
                    bridge.start()
                    try:
                        with PcscTransport.open(VPCD_READER, timeout=5) as transport:
                            swap.append(time.perf_counter() - swap_start)
                            started = time.perf_counter()
                            one_card(transport)
                            busy += time.perf_counter() - started
                    finally:
                        bridge.stop()
                    deadline = time.monotonic() + 3
                    while any(r.name == VPCD_READER and r.card_present for r in list_readers()):
                        if time.monotonic() > deadline:
                            raise SystemExit("pcscd still shows a card")
                        time.sleep(0.02)
                pcscd_rates.append(args.pcscd_cards / busy)
            rates["pcscd/vpcd"] = pcscd_rates
        except EktpError as e:
            # pcscd is shared with whatever else runs on the machine: report, keep the other figures.
            print(f"pcscd/vpcd measurement stopped: {e}", file=sys.stderr)
        finally:
            if daemon is not None:
                daemon.stop()

    command = "python bench/bench_personalize.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"$ {command.strip()}")
    print(f"personalise + verify, synthetic record (seed {args.seed}), medians of {args.runs} runs")
    print(f"{'path':12} {'cards/s':>8} {'cards/h':>9} {'ms/card':>8}   runs (cards/s)")
    for name, values in rates.items():
        m = statistics.median(values)
        print(f"{name:12} {m:8.1f} {m * 3600:9.0f} {1000 / m:8.1f}   " + " ".join(f"{v:.1f}" for v in values))
    if swap:
        swap_ms = statistics.median(swap) * 1000
        print(f"card swap through pcscd (bridge start to connected): median {swap_ms:.0f} ms, not counted")

    def size(t: list[tuple[bytes, bytes]]) -> tuple[int, int, int]:
        return len(t), sum(len(c) for c, _ in t), sum(len(r) for _, r in t)

    print("\nper card              APDUs  bytes to card  bytes from card")
    for name, part in (("personalisation", perso_trace), ("read back", readback_trace), ("total", trace)):
        n, sent, received = size(part)
        print(f"{name:20} {n:6} {sent:14} {received:16}")

    chip = ChipTimes()
    total_bytes = sum(len(c) + len(r) for c, r in trace)
    print(f"\nmodelled ISO 14443 Type A air time, one field session (FSC = FSD = 256, FWI 4, reader delay"
          f" 0.5 ms, card block time 0.3 ms;\nchip: EC keygen {chip.ec_keygen * 1e3:.0f} ms, ECDH"
          f" {chip.ecdh * 1e3:.0f} ms, ECDSA {chip.ecdsa_sign * 1e3:.0f} ms, AES {chip.aes_apdu * 1e3:.0f} ms"
          f" per protected APDU; docs/airtime.md)")
    print(f"{'kbit/s':>6} {'floor ms':>9} {'frames ms':>10} {'waits ms':>9} {'chip ms':>8} {'total ms':>9}"
          f" {'x floor':>8} {'blocks':>7} {'WTX':>4}")
    for rate in BIT_RATES:
        t = trace_time(Link(bit_rate=rate), trace, chip)
        floor = raw_bits_floor(total_bytes, rate)
        print(f"{rate:6} {floor * 1e3:9.1f} {t.frames * 1e3:10.1f} {t.waiting * 1e3:9.1f} {t.chip * 1e3:8.1f}"
              f" {t.total * 1e3:9.1f} {t.total / floor:8.1f} {t.blocks:7} {t.wtx:4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
