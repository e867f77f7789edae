"""Seconds per fingerprint try: on-card comparison (VERIFY) beside the DG3 path (read DG3, compare here).

Usage: .venv/bin/python bench/bench_on_card.py [--runs 15] [--seed 1] [--no-pcscd]

One synthetic citizen is personalised twice on virtual e-KTPs whose trust point is a fresh CVCA: once
``--biometrics on-card`` (EF.BIOREF, no DG3), once ``dg3``. A terminal with read-dg3 and
verify-biometric opens a session on each (PACE with the CAN, DG14, Terminal and Chip Authentication:
not timed) and then makes tries, each timed:

  on-card, match:  VERIFY with a fresh capture of the holder's finger (one protected APDU);
  on-card, miss:   VERIFY with another person's finger (each miss is followed by a match, untimed
                   when it is not the sample, so the card never blocks);
  DG3:             READ BINARY of DG3 (protected, as many as it takes) and the 1:1 comparisons of the
                   capture with both templates on this host.

In process and through a real pcscd with the vpcd reader (pcscd started when none answers; the machine's
pcscd lock of the test suite is taken). The chip's own comparison time is also given without the card's
constant-time padding (``ektp_card.virtual.bio.compare`` called directly). The APDUs of one try are
modelled with ektp_card.airtime (docs/airtime.md) at each bit rate, with the chip's AES per protected
APDU and, for VERIFY, the card's fixed comparison time (COMPARISON_TIME) as its computation.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench_verify import Recorder, Trace, make_issuer
from cryptography.hazmat.primitives.asymmetric import ec

from ektp_card.airtime import BIT_RATES, ChipTimes, Link, raw_bits_floor, trace_time
from ektp_card.apdu.transport import Transport
from ektp_card.errors import EktpError
from ektp_card.lds.biometrics import MinutiaeRecord
from ektp_card.lds.compact import compact_from_record, encode_capture
from ektp_card.lds.dg14 import Dg14
from ektp_card.lds.ektp import EKTP_AID, decode_dg3
from ektp_card.lds.synthetic import ENROLLED_FINGERS, impression, make_finger, synthetic_citizen
from ektp_card.personalize import Biometrics, personalize, plan_from_record
from ektp_card.pki.cvc import VERIFY_BIOMETRIC, Role, TerminalType, create_cvca, issue
from ektp_card.pki.signer import PrivateKeySigner
from ektp_card.session.document import EktpSession
from ektp_card.verify.matcher import match
from ektp_card.verify.report import Terminal
from ektp_card.virtual import bio
from ektp_card.virtual.card import VirtualCard
from ektp_card.virtual.perso import blank_card

#: The pcscd lock of the test suite (tests/conftest.py): one user of the vpcd reader at a time.
PCSCD_LOCK = Path(tempfile.gettempdir()) / "ektp-card-vpcd.lock"


def make_terminal(today: dt.date) -> tuple[bytes, Terminal]:
    """A CVCA, a DV and a terminal holding read-dg3 and verify-biometric."""
    keys = [ec.generate_private_key(ec.BrainpoolP256R1()) for _ in range(3)]
    cvca_key, dv_key, terminal_key = (PrivateKeySigner(k) for k in keys)
    rights = ["read-dg3", VERIFY_BIOMETRIC]
    cvca = create_cvca(cvca_key, holder="IDCVCA00001", terminal_type=TerminalType.IS, rights=rights,
                       effective=today - dt.timedelta(days=30), expiration=today + dt.timedelta(days=1000))
    dv = issue(cvca_key, cvca, keys[1].public_key(), holder="IDDVPOL00001", role=Role.DV_DOMESTIC,
               rights=rights, effective=today - dt.timedelta(days=10),
               expiration=today + dt.timedelta(days=90))
    term = issue(dv_key, dv, keys[2].public_key(), holder="IDGATE00001", role=Role.TERMINAL, rights=rights,
                 effective=today - dt.timedelta(days=1), expiration=today + dt.timedelta(days=30))
    return cvca.encode(), Terminal((dv, term), terminal_key)


def open_session(transport: Transport, can: str, terminal: Terminal) -> EktpSession:
    """PACE, DG14, Terminal and Chip Authentication: the session in which the tries are made."""
    from ektp_card.crypto.ta import EphemeralKey

    session = EktpSession(transport)
    session.authenticate(can)
    dg14 = Dg14.decode(session.read_data_group(14))
    ephemeral = EphemeralKey.generate(dg14.ca_parameters().curve)
    ta = session.terminal_authenticate(terminal.chain, terminal.signer, ephemeral)
    ca = session.chip_authenticate(dg14, key_source=ephemeral.key_source)
    if not (ta.passed and ca.passed):
        raise SystemExit(f"session: TA {ta.reason}, CA {ca.reason}")
    return session


def dg3_try(session: EktpSession, probe: MinutiaeRecord) -> bool:
    templates = decode_dg3(session.read_data_group(3))
    return any(match(probe, t).matched for t in templates)


@contextlib.contextmanager
def pcscd_lock() -> Iterator[None]:
    fd = os.open(PCSCD_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="tries per kind and path")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-pcscd", action="store_true", help="skip the pcscd/vpcd measurement")
    args = parser.parse_args(argv)

    today = dt.datetime.now(dt.UTC).date()
    rng = random.Random(args.seed)  # noqa: S311 - synthetic data, reproducible
    citizen = synthetic_citizen(rng)
    holder = impression(citizen.fingers[0], rng).record
    other = impression(make_finger(rng, ENROLLED_FINGERS[0]), rng).record
    cvca, terminal = make_terminal(today)
    images: dict[str, tuple[bytes, str]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-on-card-") as tmp:
        trust, ds = make_issuer(Path(tmp) / "pki")
        del trust
        master = secrets.token_bytes(16)
        for name, choice in (("on-card", Biometrics.ON_CARD), ("dg3", Biometrics.DG3)):
            card = blank_card(master)
            plan = plan_from_record(citizen.record, cvca_certificate=cvca, biometrics=choice)
            can = personalize(card, plan, master, ds).can
            images[name] = (card.dumps(), can)

    def fresh(name: str) -> VirtualCard:
        card = VirtualCard.loads(images[name][0])
        card.power_on()
        return card

    tries: dict[str, Callable[[EktpSession], bool]] = {
        "on-card match": lambda s: s.compare_fingerprint(holder).matched,
        "on-card miss": lambda s: s.compare_fingerprint(other).matched,
        "DG3 (read + compare)": lambda s: dg3_try(s, holder),
    }
    expected = {"on-card match": True, "on-card miss": False, "DG3 (read + compare)": True}

    def card_of(kind: str) -> str:
        return "dg3" if kind.startswith("DG3") else "on-card"

    def measure(transport_for: Callable[[str], Transport], samples: dict[tuple[str, str], list[float]],
                path: str, kinds: list[str]) -> dict[str, Trace]:
        traces: dict[str, Trace] = {}
        for kind in kinds:
            attempt, card_name = tries[kind], card_of(kind)
            recorder = Recorder(transport_for(card_name))
            session = open_session(recorder, images[card_name][1], terminal)
            values = samples.setdefault((path, kind), [])
            for _ in range(args.runs):
                before = len(recorder.trace)
                started = time.perf_counter()
                outcome = attempt(session)
                values.append(time.perf_counter() - started)
                traces[kind] = recorder.trace[before:]
                if outcome is not expected[kind]:
                    raise SystemExit(f"{kind}: the try answered {outcome}")
                if kind == "on-card miss":
                    session.compare_fingerprint(holder)  # the try back, untimed
        return traces

    samples: dict[tuple[str, str], list[float]] = {}
    traces = measure(fresh, samples, "in-process", list(tries))

    if not args.no_pcscd:
        from ektp_card.apdu.pcsc import PcscTransport
        from ektp_card.virtual.pcscd import ensure_pcscd
        from ektp_card.virtual.vpcd import VPCD_READER, VpcdBridge

        with pcscd_lock():
            daemon = ensure_pcscd()
            try:
                for card_name in ("on-card", "dg3"):
                    bridge = VpcdBridge(fresh(card_name))
                    bridge.start()
                    try:
                        for kind in (k for k in tries if card_of(k) == card_name):
                            # A new PC/SC session per kind: pcscd resets the card on disconnect.
                            with PcscTransport.open(VPCD_READER, timeout=5) as transport:
                                measure(lambda _, t=transport: t, samples, "pcscd/vpcd", [kind])
                    finally:
                        bridge.stop()
            except EktpError as e:
                print(f"pcscd/vpcd measurement stopped: {e}", file=sys.stderr)
            finally:
                if daemon is not None:
                    daemon.stop()

    # The chip's comparison alone, without the constant-time padding.
    card = fresh("on-card")
    card.select(card.fs.application(EKTP_AID))
    refs = bio.references(card)
    if refs is None:
        raise SystemExit("the on-card card has no reference")
    compute: dict[str, list[float]] = {"match": [], "miss": []}
    for _ in range(args.runs):
        for kind, probe in (("match", holder), ("miss", other)):
            data = encode_capture(compact_from_record(probe))
            started = time.perf_counter()
            bio.compare(data, refs)
            compute[kind].append(time.perf_counter() - started)

    command = "python bench/bench_on_card.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"$ {command.strip()}")
    print(f"one fingerprint try in an open session (PACE, TA, CA done), synthetic citizen seed {args.seed},"
          f" medians of {args.runs} tries")
    print(f"{'path':12} {'try':22} {'ms/try':>8}   min..max (ms)")
    for (path, kind), values in samples.items():
        ms = [v * 1e3 for v in values]
        print(f"{path:12} {kind:22} {statistics.median(ms):8.1f}   {min(ms):.1f}..{max(ms):.1f}")
    for kind, values in compute.items():
        ms = [v * 1e3 for v in values]
        print(f"{'chip compute':12} {'compare, ' + kind:22} {statistics.median(ms):8.1f}   "
              f"{min(ms):.1f}..{max(ms):.1f}   (two references, no padding; the card answers after "
              f"{bio.COMPARISON_TIME * 1e3:.0f} ms)")

    chip = ChipTimes(extra={"compare": bio.COMPARISON_TIME})
    print(f"\nmodelled ISO 14443 Type A air time of one try (FSC = FSD = 256, FWI 4; chip: AES"
          f" {chip.aes_apdu * 1e3:.0f} ms per protected APDU, VERIFY {bio.COMPARISON_TIME * 1e3:.0f} ms of"
          " comparison; docs/airtime.md)")
    print(f"{'try':22} {'kbit/s':>6} {'APDUs':>6} {'bytes':>6} {'floor ms':>9} {'frames ms':>10}"
          f" {'waits ms':>9} {'chip ms':>8} {'air ms':>7} {'WTX':>4}")

    def operations(command: bytes) -> tuple[str, ...]:
        from ektp_card.airtime import chip_operations

        ops = chip_operations(command)
        return (*ops, "compare") if len(command) > 1 and command[1] == 0x21 else ops

    for kind in ("on-card match", "DG3 (read + compare)"):
        trace = traces[kind]
        total_bytes = sum(len(c) + len(r) for c, r in trace)
        for rate in BIT_RATES:
            t = trace_time(Link(bit_rate=rate), trace, chip, sessions=0, operations=operations)
            floor = raw_bits_floor(total_bytes, rate)
            print(f"{kind:22} {rate:6} {len(trace):6} {total_bytes:6} {floor * 1e3:9.2f}"
                  f" {t.frames * 1e3:10.2f} {t.waiting * 1e3:9.2f} {t.chip * 1e3:8.1f}"
                  f" {t.total * 1e3:7.1f} {t.wtx:4}")
    host = statistics.median(samples[("in-process", "DG3 (read + compare)")])
    print(f"(the DG3 try adds the host's comparison of two templates: in-process median {host * 1e3:.1f} ms"
          " for the whole try)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
