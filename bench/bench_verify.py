"""Seconds per clerk's verification, APDUs and bytes per verification, and modelled ISO 14443 air time.

Usage: .venv/bin/python bench/bench_verify.py [--runs 7] [--seed 1] [--no-pcscd]

One synthetic citizen (default photo size) is personalised once on a virtual e-KTP whose trust point is
a freshly made CVCA; every verification then runs on a fresh copy of that card (loading it is not
timed). Two scenarios:

  (a) basic:    PACE-CAN, read EF.CardAccess / EF.ATR/INFO / EF.SOD / every data group, Passive,
                Chip and Active Authentication;
  (b) terminal: (a) plus Terminal Authentication (key in memory), DG3 and a 1:1 match of a fresh
                capture of the holder's finger against DG3's templates.

Each is timed in process and through a real pcscd with the vpcd reader (pcscd started for the run when
none answers; one VpcdBridge serves the card, a new PC/SC session per verification). The APDU trace of
one verification is modelled with ektp_card.airtime (docs/airtime.md) against the raw-bits floor;
"with host" adds the in-process software time. APDU counts are also given with short APDUs only.

A second card, identical but with a face image of about 20 KB in DG2, gives the APDU count of one
verification and the READ BINARY commands for DG2 alone, with extended length (as EF.ATR/INFO offers)
and with short APDUs only (the largest short Le under AES secure messaging: 223 bytes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from ektp_card.airtime import BIT_RATES, ChipTimes, Link, raw_bits_floor, trace_time
from ektp_card.apdu.transport import Transport
from ektp_card.errors import EktpError
from ektp_card.lds.biometrics import MinutiaeRecord
from ektp_card.lds.ektp import EKTP_APPLICATION
from ektp_card.lds.synthetic import impression, synthetic_citizen
from ektp_card.personalize import Biometrics, DocumentSigner, personalize, plan_from_record
from ektp_card.pki.cvc import Role, TerminalType, create_cvca, issue
from ektp_card.pki.issuer import IssuerPki
from ektp_card.pki.signer import KeySpec, PrivateKeySigner
from ektp_card.pki.trust import TrustStore
from ektp_card.session.card import CardSession, Credentials
from ektp_card.verify.card import Terminal, VerificationReport, verify_card
from ektp_card.verify.passive import Status
from ektp_card.virtual.card import VirtualCard
from ektp_card.virtual.perso import blank_card

Trace = list[tuple[bytes, bytes]]


class Recorder:
    """Keeps every command and response (for the air-time model)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.trace: Trace = []

    def transceive(self, command: bytes) -> bytes:
        response = self.inner.transceive(command)
        self.trace.append((command, response))
        return response


def make_issuer(folder: Path) -> tuple[TrustStore, DocumentSigner]:
    """A CSCA with a current CRL and a document signer in ``folder`` (throwaway passphrase)."""
    passphrase = secrets.token_urlsafe(16).encode()
    pki = IssuerPki.create(folder, passphrase, spec=KeySpec.parse("brainpoolP256r1"), country="ID",
                           common_name="Bench CSCA")
    pki.issue_document_signer(passphrase, passphrase, common_name="Bench DS")
    trust = TrustStore((pki.csca,), (pki.publish_crl(passphrase),))
    return trust, DocumentSigner(*pki.document_signer(None, passphrase))


def make_terminal(today: dt.date) -> tuple[bytes, Terminal]:
    """A CVCA (its certificate for the card's trust point), a DV and a terminal allowed to read DG3."""
    cvca_priv, dv_priv, terminal_priv = (ec.generate_private_key(ec.BrainpoolP256R1()) for _ in range(3))
    cvca_key, dv_key, terminal_key = (PrivateKeySigner(k) for k in (cvca_priv, dv_priv, terminal_priv))
    rights = ["read-dg3", "read-dg4"]
    cvca = create_cvca(cvca_key, holder="IDCVCA00001", terminal_type=TerminalType.IS, rights=rights,
                       effective=today - dt.timedelta(days=30), expiration=today + dt.timedelta(days=1000))
    dv = issue(cvca_key, cvca, dv_priv.public_key(), holder="IDDVPOL00001",
               role=Role.DV_DOMESTIC, rights=rights, effective=today - dt.timedelta(days=10),
               expiration=today + dt.timedelta(days=90))
    term = issue(dv_key, dv, terminal_priv.public_key(), holder="IDGATE00001",
                 role=Role.TERMINAL, rights=rights, effective=today - dt.timedelta(days=1),
                 expiration=today + dt.timedelta(days=30))
    return cvca.encode(), Terminal((dv, term), terminal_key)


#: Photo size and grain that make the synthetic JPEG about 20 KB (issue 6's benchmark).
LARGE_PHOTO = (240, 320)
LARGE_GRAIN = 16


def dg2_read_apdus(card: VirtualCard, can: str, extended: bool | None) -> tuple[int, int]:
    """READ BINARY commands for DG2 alone after PACE-CAN (``extended=False``: short APDUs only),
    and DG2's length."""
    recorder = Recorder(card)
    session = CardSession(recorder, extended=extended)
    session.discover()
    session.authenticate(Credentials(can=can), (EKTP_APPLICATION,))
    session.select_application((EKTP_APPLICATION,))
    ref = EKTP_APPLICATION.file("DG2")
    if ref is None:
        raise SystemExit("the e-KTP profile names no DG2")
    before = len(recorder.trace)
    data = session.read(ref)
    return len(recorder.trace) - before, len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="verifications per scenario and path")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-pcscd", action="store_true", help="skip the pcscd/vpcd measurement")
    args = parser.parse_args(argv)

    today = dt.datetime.now(dt.UTC).date()
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        trust, ds = make_issuer(Path(tmp) / "pki")

        cvca, terminal = make_terminal(today)
        citizen = synthetic_citizen(random.Random(args.seed))  # noqa: S311 - synthetic data, reproducible
        capture = impression(citizen.fingers[0], random.Random(args.seed + 1)).record  # noqa: S311
        master = secrets.token_bytes(16)
        issued = blank_card(master)
        # DG3: scenario (b) reads the templates (bench_on_card.py times on-card comparison beside it).
        plan = plan_from_record(citizen.record, cvca_certificate=cvca, biometrics=Biometrics.DG3)
        result = personalize(issued, plan, master, ds)
        can = result.can
        image = Path(tmp) / "card.img"
        issued.save(image)
        image_bytes = image.read_bytes()

        # The same citizen with a face image of about 20 KB.
        large = synthetic_citizen(random.Random(args.seed), photo_size=LARGE_PHOTO,  # noqa: S311
                                  photo_grain=LARGE_GRAIN)
        large_card = blank_card(master)
        large_can = personalize(large_card, plan_from_record(large.record), master, ds).can
        large_card.save(image)
        large_bytes = image.read_bytes()

    def fresh(data: bytes | None = None) -> VirtualCard:
        with tempfile.TemporaryDirectory(prefix="bench-verify-") as folder:
            path = Path(folder) / "card.img"
            path.write_bytes(image_bytes if data is None else data)
            card = VirtualCard.load(path)
        card.power_on()
        return card

    scenarios: dict[str, tuple[Terminal | None, MinutiaeRecord | None]] = {
        "(a) basic": (None, None),
        "(b) +TA+DG3+finger": (terminal, capture),
    }

    def verify(transport: Transport, name: str, extended: bool | None = None) -> VerificationReport:
        with_terminal, fingerprint = scenarios[name]
        report = verify_card(transport, can, trust, extended=extended, terminal=with_terminal,
                             fingerprint=fingerprint)
        expected = Status.PASS if with_terminal else Status.NOT_SUPPORTED
        if not report.genuine or report.check("fingerprint").status is not expected:
            raise SystemExit(f"{name}: unexpected report: {report.verdict.value} {report.reasons}")
        return report

    # One traced verification per scenario, and its APDU count with short APDUs only.
    traces: dict[str, Trace] = {}
    short_apdus: dict[str, int] = {}
    face_bytes = 0
    for name in scenarios:
        recorder = Recorder(fresh())
        report = verify(recorder, name)
        face_bytes = len(report.data_groups.get(2, b""))
        traces[name] = recorder.trace
        short = Recorder(fresh())
        verify(short, name, extended=False)
        short_apdus[name] = len(short.trace)

    # The 20 KB face: whole verification and DG2 alone, extended length vs short APDUs only.
    large_counts: dict[str, tuple[int, int, int]] = {}
    large_dg2 = 0
    for label, ext in (("extended length", None), ("short APDUs only", False)):
        recorder = Recorder(fresh(large_bytes))
        report = verify_card(recorder, large_can, trust, extended=ext)
        if not report.genuine:
            raise SystemExit(f"20 KB face card: unexpected report: {report.verdict.value} {report.reasons}")
        reads, large_dg2 = dg2_read_apdus(fresh(large_bytes), large_can, ext)
        large_counts[label] = (len(recorder.trace), reads, sum(len(c) + len(r) for c, r in recorder.trace))

    times: dict[tuple[str, str], list[float]] = {}
    for name in scenarios:
        samples = times.setdefault(("in-process", name), [])
        for _ in range(args.runs):
            card = fresh()
            started = time.perf_counter()
            verify(card, name)
            samples.append(time.perf_counter() - started)

    if not args.no_pcscd:
        from ektp_card.apdu.pcsc import PcscTransport
        from ektp_card.virtual.pcscd import ensure_pcscd
        from ektp_card.virtual.vpcd import VPCD_READER, VpcdBridge

        daemon = ensure_pcscd()
        try:
            bridge = VpcdBridge(fresh())
            bridge.start()
            try:
                for name in scenarios:
                    samples = times.setdefault(("pcscd/vpcd", name), [])
                    for _ in range(args.runs):
                        # Each session is a new card session: pcscd resets the card on disconnect.
                        with PcscTransport.open(VPCD_READER, timeout=5) as transport:
                            started = time.perf_counter()
                            verify(transport, name)
                            samples.append(time.perf_counter() - started)
            finally:
                bridge.stop()
        except EktpError as e:
            # pcscd is shared with whatever else runs on the machine: report, keep the other figures.
            print(f"pcscd/vpcd measurement stopped: {e}", file=sys.stderr)
        finally:
            if daemon is not None:
                daemon.stop()

    command = "python bench/bench_verify.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"$ {command.strip()}")
    print(f"one verification of a personalised virtual e-KTP (synthetic citizen, seed {args.seed}, DG2"
          f" {face_bytes} bytes), medians of {args.runs} runs")
    print(f"{'path':12} {'scenario':20} {'ms/verify':>10}   runs (ms)")
    for (path, name), values in times.items():
        m = statistics.median(values) * 1e3
        print(f"{path:12} {name:20} {m:10.1f}   " + " ".join(f"{v * 1e3:.0f}" for v in values))

    print(f"\n{'scenario':20} {'APDUs':>6} {'bytes to card':>14} {'bytes from card':>16}"
          f" {'APDUs short-only':>17}")
    for name, trace in traces.items():
        sent, received = sum(len(c) for c, _ in trace), sum(len(r) for _, r in trace)
        print(f"{name:20} {len(trace):6} {sent:14} {received:16} {short_apdus[name]:17}")

    print(f"\ncard with a {large_dg2}-byte DG2 (face {LARGE_PHOTO[0]}x{LARGE_PHOTO[1]}, grain {LARGE_GRAIN}),"
          " scenario (a)")
    print(f"{'reads':18} {'APDUs/verify':>13} {'READ BINARY for DG2':>20} {'bytes both ways':>16}")
    for label, (apdus, reads, total) in large_counts.items():
        print(f"{label:18} {apdus:13} {reads:20} {total:16}")

    chip = ChipTimes()
    print(f"\nmodelled ISO 14443 Type A air time, one field session (FSC = FSD = 256, FWI 4, reader delay"
          f" 0.5 ms, card block time 0.3 ms;\nchip: EC keygen {chip.ec_keygen * 1e3:.0f} ms, ECDH"
          f" {chip.ecdh * 1e3:.0f} ms, ECDSA {chip.ecdsa_sign * 1e3:.0f} ms, AES {chip.aes_apdu * 1e3:.0f} ms"
          f" per protected APDU; docs/airtime.md); 'with host' adds the in-process median")
    print(f"{'scenario':20} {'kbit/s':>6} {'floor ms':>9} {'frames ms':>10} {'waits ms':>9} {'chip ms':>8}"
          f" {'air ms':>7} {'x floor':>8} {'blocks':>7} {'WTX':>4} {'with host':>10}")
    median: Callable[[list[float]], float] = statistics.median
    for name, trace in traces.items():
        host = median(times[("in-process", name)])
        total_bytes = sum(len(c) + len(r) for c, r in trace)
        for rate in BIT_RATES:
            t = trace_time(Link(bit_rate=rate), trace, chip)
            floor = raw_bits_floor(total_bytes, rate)
            print(f"{name:20} {rate:6} {floor * 1e3:9.1f} {t.frames * 1e3:10.1f} {t.waiting * 1e3:9.1f}"
                  f" {t.chip * 1e3:8.1f} {t.total * 1e3:7.1f} {t.total / floor:8.1f} {t.blocks:7} {t.wtx:4}"
                  f" {(t.total + host) * 1e3:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
