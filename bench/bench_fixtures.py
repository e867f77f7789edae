"""What the plugin's fixtures cost an integrator's test suite.

1. First use: the session's office (PKI, terminal, registry, issued cards, clone, revocation list), and
   the first passport and attack card of a kind.
2. Every later use: a fresh copy of an issued card (image bytes to a file, loaded, powered).
3. A suite of 100 tests over the fixtures (issued cards with the holder's finger, attack cards,
   passports, a card leaving the field), run by pytest in a subprocess: wall time and per test.

    python bench/bench_fixtures.py [--runs 15] [--tests 100]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from ektp_card.audit.attacks import make_attack_card
from ektp_card.sandbox import build_sandbox, make_passport
from ektp_card.virtual.card import VirtualCard

SUITE = '''
import pytest
from ektp_card.access import parse_mrz
from ektp_card.errors import CardRemovedError
from ektp_card.verify.card import verify_card
from ektp_card.verify.passport import verify_passport


@pytest.mark.parametrize("n", range({issued}))
def test_issued(ektp_issued_card, n):
    c = ektp_issued_card
    assert verify_card(c.card, c.can, c.trust, terminal=c.terminal, fingerprint=c.holder_finger).genuine


@pytest.mark.parametrize("kind", ["clone", "forged", "revoked", "downgrade-clone"] * {attack_rounds})
def test_attack(ektp_attack_card, kind):
    attack = ektp_attack_card(kind)
    assert not verify_card(attack.card, attack.can, attack.trust).genuine or kind == "revoked"


@pytest.mark.parametrize("n", range({passports}))
def test_passport(ektp_passport, n):
    p = ektp_passport(pace=n % 2 == 1)
    assert verify_passport(p.card, parse_mrz(p.mrz), p.trust).genuine


@pytest.mark.parametrize("n", range({removed}))
def test_removed(ektp_issued_card, ektp_removed_after, n):
    with pytest.raises(CardRemovedError):
        c = ektp_issued_card
        verify_card(ektp_removed_after(c.card, 3 + n), c.can, c.trust)
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--tests", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-fixtures-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        office = build_sandbox(root / "office", seed=2026)
        office_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        passport = make_passport(office, pace=True).dumps()
        passport_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        clone = make_attack_card("clone", office.genuine.image, office.genuine.can).dumps()
        clone_s = time.perf_counter() - t0
        image = office.genuine.image.read_bytes()
        copies = []
        for i in range(args.runs):
            t0 = time.perf_counter()
            path = root / f"copy-{i}.card"
            path.write_bytes(image)
            VirtualCard.load(path).power_on()
            copies.append(time.perf_counter() - t0)
        print("Set-up, first use (once per test session):")
        for what, seconds in (("office (PKI, terminal, registry, cards, clone, revocation list)", office_s),
                              ("first passport (PACE-MRZ, RSA-2048 AA key made on the chip)", passport_s),
                              ("first attack card of a kind (clone: harvest, new chip keys)", clone_s)):
            print(f"  {what:<66} {seconds * 1000:8.0f} ms")
        print(f"Every later use: a copy of an issued card (file, load, power-up), median of {args.runs}: "
              f"{statistics.median(copies) * 1000:.2f} ms ({len(image)} bytes; passport {len(passport)}, "
              f"clone {len(clone)})")
        per = args.tests // 10
        # 50% issued cards, 20% attack cards, 20% passports, 10% cards leaving the field (of --tests).
        suite = SUITE.format(issued=5 * per, attack_rounds=max(1, per // 2), passports=2 * per, removed=per)
        (root / "suite").mkdir()
        (root / "suite" / "test_suite.py").write_text(textwrap.dedent(suite))
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "suite"],
                             cwd=root, capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - t0
        last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-400:]
        print(f"\nA suite over the fixtures: {last}")
        count = sum(int(w) for w in last.split() if w.isdigit()) if "passed" in last else 0
        print(f"  wall time {wall:.1f} s including interpreter and plugin start"
              + (f", {wall / count * 1000:.0f} ms a test" if count else ""))
        return 0 if out.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
