"""Personalise-and-verify throughput, APDUs and bytes per card, and modelled ISO 14443 air time.

Usage: .venv/bin/python bench/bench_personalize.py [--runs 5] [--cards 20] [--pcscd-cards 5] [--no-pcscd]
       .venv/bin/python bench/bench_personalize.py --budget [--capacity 8K] [--runs 5] [--cards 20]

Each card: a new plan from a synthetic record (every record rule checked, a fresh CAN), then
personalisation of a blank virtual card (key files for the document signer, a CRL) and the clerk's
read back (PACE-CAN, Passive, Chip and Active Authentication). In process, and through a real pcscd
with the vpcd reader (pcscd started for the run when none answers; each blank card served by its own
VpcdBridge; the time to swap cards in the reader is reported apart). The air time of one card's APDU
trace is modelled with ektp_card.airtime (docs/airtime.md) against the raw-bits floor.

``--budget``: the e-KTP profile on a chip of ``--capacity`` bytes (default 8K, the real e-KTP chip):
face and signature re-encoded to the budgets docs/cli.md gives for it, the CVCA as trust point, and
the bytes each file and key object takes of the card's memory (the desk's budget beside what the card
counted); then personalisation time per card in process, side by side: the full-size record on a card
without a budget (1M), the compact record on that card, and the compact record on the small chip.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from ektp_card.virtual.perso import PERSO_KEY, PERSO_TRIES, blank_card

#: The image budgets for the 8 KB chip (docs/cli.md, "Card memory").
FACE_BUDGET, SIGNATURE_BUDGET = 1600, 800


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
    parser.add_argument("--budget", action="store_true", help="the memory budget per file (see above)")
    parser.add_argument("--capacity", default="8K", help="the small chip's memory for --budget")
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
    if args.budget:
        return budget_report(args, argv, master, ds, trust)

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


def budget_report(
    args: argparse.Namespace, argv: list[str] | None, master: bytes, ds: DocumentSigner, trust: TrustStore
) -> int:
    """The ``--budget`` mode: bytes per file on a small chip, and the time it costs."""
    import dataclasses

    from ektp_card._cli.images import compact_jpeg
    from ektp_card.lds.capacity import parse_capacity
    from ektp_card.personalize.budget import plan_budget, sod_size
    from ektp_card.pki.cvc import TerminalType, create_cvca
    from ektp_card.pki.signer import PrivateKeySigner

    capacity = parse_capacity(args.capacity)
    record = synthetic_record(args.seed)
    face = compact_jpeg(record.face, FACE_BUDGET, what="face")
    signature = compact_jpeg(record.signature, SIGNATURE_BUDGET, what="signature", greyscale=True)
    small = dataclasses.replace(record, face=face.data, signature=signature.data)
    today = dt.date.today()
    cvca = create_cvca(PrivateKeySigner(KeySpec.parse("brainpoolP256r1").generate()), holder="IDCVCA00001",
                       terminal_type=TerminalType.IS, rights=["read-dg3", "read-dg4"], effective=today,
                       expiration=today + dt.timedelta(days=1095))

    plan = plan_from_record(small, cvca_certificate=cvca)
    budget = plan_budget(plan, sod_size(plan, ds.signer, ds.certificate))
    card = blank_card(master, capacity=capacity)
    blank_used = card.fs.used
    factory = {name: card.keys.storage(name) for name in card.keys}
    personalize(card, plan, master, ds, trust=trust)

    command = "python bench/bench_personalize.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"$ {command.strip()}")
    print(f"the e-KTP profile on a {capacity}-byte chip, synthetic record (seed {args.seed})")
    print(f"face: {len(record.face)} -> {len(face.data)} bytes, {face.width}x{face.height} JPEG quality "
          f"{face.quality} (budget {FACE_BUDGET}), PSNR {_psnr(record.face, face.data):.1f} dB against the "
          f"original;\nsignature: {len(record.signature)} -> {len(signature.data)} bytes, "
          f"{signature.width}x{signature.height} greyscale quality {signature.quality} (budget "
          f"{SIGNATURE_BUDGET}), PSNR {_psnr(record.signature, signature.data):.1f} dB")
    print(f"\n{'file / key object':36} {'kind':>4} {'bytes':>6} {'memory':>7}")
    for line in budget.lines:
        print(f"{line.name:36} {line.kind:>4} {line.size:6} {line.storage:7}")
    print(f"{'desk budget (EF.SOD at its longest)':36} {'':4} {'':6} {budget.total:7}")
    print(f"{'factory content (MF, EF.ATR/INFO, serial)':36} {'':4} {'':6} "
          f"{blank_used - factory[PERSO_KEY] - factory[PERSO_TRIES]:7}")
    print(f"{'personalisation key (deleted at LOCK)':36} {'':4} {'':6} "
          f"{factory[PERSO_KEY] + factory[PERSO_TRIES]:7}")
    print(f"card after LOCK: {card.fs.used} of {capacity} bytes used (files {card.fs.files_used}, keys "
          f"{card.keys.used}), {card.fs.free} free; peak before LOCK "
          f"{card.fs.used + factory[PERSO_KEY] + factory[PERSO_TRIES]}")

    # The same record with PACE-CAM: the card also keeps EF.CardSecurity (signed SecurityInfos in the MF).
    from ektp_card.crypto.pace import ECDH_CAM_AES128
    from ektp_card.personalize import Algorithms
    from ektp_card.personalize.budget import card_security_size

    cam_plan = plan_from_record(small, cvca_certificate=cvca,
                                algorithms=Algorithms(pace_protocol=ECDH_CAM_AES128.oid))
    cam_budget = plan_budget(cam_plan, sod_size(cam_plan, ds.signer, ds.certificate),
                             card_security_bytes=card_security_size(cam_plan, ds.signer, ds.certificate))
    cam_card = blank_card(master, capacity=capacity)
    personalize(cam_card, cam_plan, master, ds, trust=trust)
    security = cam_budget.line("EF.CardSecurity")
    print(f"with PACE-CAM: EF.CardSecurity {security.size} bytes ({security.storage} of memory), desk budget "
          f"{cam_budget.total}; card after LOCK: {cam_card.fs.used} of {capacity} bytes used, "
          f"{cam_card.fs.free} free")

    full_plan = plan_from_record(record, cvca_certificate=cvca)
    cases = (("full record, 1M card", full_plan, None), ("compact record, 1M card", plan, None),
             (f"compact record, {args.capacity} card", plan, capacity))
    print(f"\npersonalise + verify in process, medians of {args.runs} runs of {args.cards} cards")
    print(f"{'case':28} {'ms/card':>8}   runs (ms/card)")
    for name, case_plan, size in cases:
        runs = []
        for _ in range(args.runs):
            blanks = [blank_card(master) if size is None else blank_card(master, capacity=size)
                      for _ in range(args.cards)]
            started = time.perf_counter()
            for b in blanks:
                result = personalize(b, case_plan, master, ds, trust=trust)
                if result.verification is None or not result.verification.ok:
                    raise SystemExit("a card did not verify")
            runs.append((time.perf_counter() - started) * 1000 / args.cards)
        print(f"{name:28} {statistics.median(runs):8.1f}   " + " ".join(f"{r:.1f}" for r in runs))
    return 0


def _psnr(original: bytes, encoded: bytes) -> float:
    """Peak signal-to-noise ratio of ``encoded`` against ``original`` (scaled back to its size)."""
    import io
    import math

    from PIL import Image, ImageChops, ImageStat

    first = Image.open(io.BytesIO(original))
    mode = first.mode if first.mode in ("L", "RGB") else "RGB"
    base = first.convert(mode)
    other = Image.open(io.BytesIO(encoded)).convert(mode)
    if other.size != base.size:
        other = other.resize(base.size, Image.Resampling.LANCZOS)
    rms = ImageStat.Stat(ImageChops.difference(base, other)).rms
    mse = sum(v * v for v in rms) / len(rms)
    return 99.0 if mse == 0 else 10 * math.log10(255 * 255 / mse)


if __name__ == "__main__":
    sys.exit(main())
