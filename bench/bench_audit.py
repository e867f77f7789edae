"""Seconds per full security audit (`ektp audit`, non-destructive) of a genuine virtual e-KTP, in process
and through pcscd, with the time and APDUs of each test; or, with --matrix, the detection matrix.

Usage: .venv/bin/python bench/bench_audit.py [--runs 3] [--seed 1] [--challenges 256] [--no-pcscd]
                                             [--exclude ID,...]
       .venv/bin/python bench/bench_audit.py --matrix [--challenges 64]

One synthetic citizen is personalised once on a virtual e-KTP whose trust point is a freshly made
CVCA, with DG3 and the on-card comparison reference (``--biometrics both``); the audit gets the
issuer's trust store (CSCA and CRL), a terminal allowed to read DG3 and to have the chip compare
fingerprints, and a fresh capture of the holder's finger, so every test that can run does. Each run
audits a fresh copy of the card (loading it is not timed) with the whole catalogue, destructive tests
skipped as `ektp audit` does by default. In process the card is a VirtualCard; through pcscd one
VpcdBridge serves it to the vpcd reader and every audit session is a new PC/SC connection (pcscd
started for the run when none answers).

--matrix runs the catalogue, destructive tests included, against the genuine card and every attack
card of ektp_card.audit.attacks built from it (each an in-memory copy), and prints the detection
matrix as Markdown (the table in docs/audit.md), then whether it holds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_on_card import make_terminal
from bench_verify import make_issuer

from ektp_card.audit.engine import AuditOptions, AuditReport, CardTarget, Outcome, run_audit, select_tests
from ektp_card.audit.matrix import detection_matrix
from ektp_card.audit.targets import PcscTarget, VirtualTarget
from ektp_card.errors import EktpError
from ektp_card.lds.synthetic import impression, synthetic_citizen
from ektp_card.personalize import Biometrics, personalize, plan_from_record
from ektp_card.virtual.card import VirtualCard
from ektp_card.virtual.perso import blank_card

#: The lock tests/conftest.py takes while a test session drives the vpcd readers.
VPCD_LOCK = Path(tempfile.gettempdir()) / "ektp-card-vpcd.lock"
#: The relay card's delay and the verifier's bound in the matrix (as in tests/test_audit_matrix.py).
MATRIX_RELAY_DELAY_MS = 15
MATRIX_RELAY_BOUND_MS = 12.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="audits per path")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--challenges", type=int, default=None,
                        help="challenges RNG-QUALITY draws (default: the audit's own, 256)")
    parser.add_argument("--no-pcscd", action="store_true", help="skip the pcscd/vpcd measurement")
    parser.add_argument("--exclude", default="", metavar="ID,...", help="leave these tests out")
    parser.add_argument("--matrix", action="store_true", help="print the detection matrix as Markdown")
    args = parser.parse_args(argv)

    today = dt.datetime.now(dt.UTC).date()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        trust, ds = make_issuer(Path(tmp) / "pki")
        cvca, terminal = make_terminal(today)
        citizen = synthetic_citizen(random.Random(args.seed))  # noqa: S311 - synthetic data, reproducible
        master = secrets.token_bytes(16)
        issued = blank_card(master)
        plan = plan_from_record(citizen.record, cvca_certificate=cvca, biometrics=Biometrics.BOTH)
        can = personalize(issued, plan, master, ds).can
        image = Path(tmp) / "genuine.img"
        issued.save(image)
        capture = impression(citizen.fingers[0], random.Random(args.seed + 1)).record  # noqa: S311

        options = AuditOptions(can=can, trust=trust, terminal=terminal, fingerprint=capture.encode())
        if args.challenges is not None:
            options.challenges = args.challenges
        excluded = {part.strip().upper() for part in args.exclude.split(",") if part.strip()}
        tests = tuple(t for t in select_tests() if t.id not in excluded)
        unknown = excluded - {t.id for t in select_tests()}
        if unknown:
            raise SystemExit(f"--exclude: unknown test {', '.join(sorted(unknown))}")
        command = "python bench/bench_audit.py " + " ".join(argv if argv is not None else sys.argv[1:])
        print(f"$ {command.strip()}")

        if args.matrix:
            options.destructive = True
            options.relay_bound_ms = MATRIX_RELAY_BOUND_MS
            started = time.perf_counter()
            matrix = detection_matrix(image, can, options, tests=tests, delay_ms=MATRIX_RELAY_DELAY_MS)
            seconds = time.perf_counter() - started
            print(f"detection matrix: {len(tests)} tests x {len(matrix.cards)} cards, destructive tests "
                  f"included, RNG-QUALITY {options.challenges} challenges, relay {MATRIX_RELAY_DELAY_MS} ms "
                  f"per answer against a {MATRIX_RELAY_BOUND_MS:g} ms bound; {seconds:.1f} s\n")
            print(matrix.to_markdown())
            problems = matrix.problems()
            print("the matrix holds" if not problems else "the matrix does NOT hold:")
            for problem in problems:
                print(f"  - {problem}")
            return 0 if not problems else 1

        data = image.read_bytes()
        reports: dict[str, list[AuditReport]] = {}

        def fresh() -> VirtualCard:
            path = Path(tmp) / "copy.img"
            path.write_bytes(data)
            return VirtualCard.load(path)

        def audit(path_name: str, target: CardTarget) -> None:
            report = run_audit(target, options, tests)
            bad = [(r.id, str(r.outcome), r.reason) for r in report.results
                   if r.outcome not in (Outcome.PASS, Outcome.NOT_APPLICABLE, Outcome.SKIPPED)]
            if bad:
                raise SystemExit(f"{path_name}: the genuine card did not pass: {bad}")
            reports.setdefault(path_name, []).append(report)

        for _ in range(args.runs):
            audit("in-process", VirtualTarget(fresh()))

        if not args.no_pcscd:
            from ektp_card.virtual.pcscd import ensure_pcscd
            from ektp_card.virtual.vpcd import VPCD_READER, VpcdBridge

            # The vpcd readers are machine-wide: wait for any test session using them (tests/conftest.py).
            lock = os.open(VPCD_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(lock, fcntl.LOCK_EX)
            daemon = ensure_pcscd()
            try:
                bridge = VpcdBridge(fresh())
                bridge.start()
                try:
                    for _ in range(args.runs):
                        audit("pcscd/vpcd", PcscTarget(VPCD_READER, timeout=5))
                finally:
                    bridge.stop()
            except EktpError as e:
                # pcscd is shared with whatever else runs on the machine: report, keep the other figures.
                print(f"pcscd/vpcd measurement stopped: {e}", file=sys.stderr)
            finally:
                if daemon is not None:
                    daemon.stop()
                os.close(lock)

    destructive = sum(1 for t in tests if t.destructive)
    left_out = f", left out: {', '.join(sorted(excluded))}" if excluded else ""
    print(f"one full audit of a personalised virtual e-KTP (synthetic citizen, seed {args.seed}): "
          f"{len(tests)} tests ({destructive} destructive, skipped{left_out}), RNG-QUALITY "
          f"{options.challenges} challenges; medians of {args.runs} runs")
    print(f"{'path':12} {'s/audit':>8} {'APDUs':>6}   runs (s)")
    for path_name, runs in reports.items():
        seconds = [r.seconds for r in runs]
        apdus = sum(r.apdus for r in runs[0].results)
        print(f"{path_name:12} {statistics.median(seconds):8.2f} {apdus:6}   "
              + " ".join(f"{s:.2f}" for s in seconds))
    print("\nper test: median ms and APDUs of the first run")
    paths = list(reports)
    print(f"{'test':18} {'outcome':8} " + " ".join(f"{p + ' ms':>14} {'APDUs':>6}" for p in paths))
    for test in tests:
        cells = []
        for p in paths:
            results = [r.result(test.id) for r in reports[p]]
            cells.append(f"{statistics.median(x.seconds for x in results) * 1e3:14.1f} {results[0].apdus:6}")
        outcome = str(reports[paths[0]][0].result(test.id).outcome)
        print(f"{test.id:18} {outcome:8} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
