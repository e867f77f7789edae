"""Wall time of starting the ektp command line, against a bare interpreter and a bare cryptography import.

Usage: .venv/bin/python bench/bench_startup.py [--runs 15] [--root DIR] [--baseline DIR] [--python PATH]
                                               [--pcscd]

Runs, side by side and alternating (one run of each case per round, after one round of warm-up that is
not counted), each case ``--runs`` times as a fresh process and prints the median wall time and its
ratio to a bare ``python -c pass`` and to ``python -c "import cryptography.x509"``:

  python -c pass                        the interpreter alone
  import cryptography.x509              what any command that touches a certificate pays at least
  import <floor: ...>                   the other projects' modules the verify path imports (FLOOR)
  import <verify path>                  what ``ektp verify`` imports before its first APDU (VERIFY_PATH)
  ektp --version / --help / verify --help
  ektp verify --virtual IMG ...         a real clerk's verification (PACE-CAN, PA, CA, AA) of a card
  ektp read --virtual IMG --can CAN     PACE-CAN and the application's usual files

With ``--pcscd`` also ``ektp read --reader R`` and ``ektp verify --reader R`` through a real pcscd and
the vpcd reader, the card served by ``ektp virtual serve``'s bridge in a process of its own (pcscd is
started for the run when none answers; the machine-wide vpcd lock of tests/conftest.py is held).

The card is issued once at the start (as ``ektp demo`` does: throwaway issuer PKI, synthetic record,
personalised and locked virtual card) with the code under test; each run gets a fresh copy of its image
(not timed). The checkout's modules are compiled first and PYTHONDONTWRITEBYTECODE is dropped, so
every process starts from bytecode as an installed package does.

``--root`` is the checkout whose ``ektp_card`` is measured (default: this one): it goes first on
PYTHONPATH for the card's issuance and every measured process, so the same interpreter measures another
checkout, e.g. ``--root /work/main`` for the figures before a change. ``--baseline DIR`` runs every
case that runs the package (the ektp cases and the verify path's imports) with that checkout too, in the
same rounds (a shared machine's load then weighs on both alike), as a row "(baseline)" under each. Every
case runs in a scratch folder, so that ``python -c`` does not import the package from the current one.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 1
#: The lock tests/conftest.py takes while a test session drives the vpcd readers (they are machine-wide).
VPCD_LOCK = Path(tempfile.gettempdir()) / "ektp-card-vpcd.lock"
SERVE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from ektp_card.virtual.card import VirtualCard\n"
    "from ektp_card.virtual.vpcd import VpcdBridge\n"
    "VpcdBridge(VirtualCard.load(Path(sys.argv[1]))).run()\n"
)
#: The modules ``ektp verify`` has imported when it opens the card: the command, the clerk's verification,
#: the card sources and the trust store.
VERIFY_PATH = "import ektp_card._cli.verify, ektp_card.verify.card, ektp_card.device, ektp_card.pki.trust"
#: What the verify path imports of other projects' code (the command line, X.509, the ASN.1 leaves EF.SOD
#: and the data groups are decoded with, logging): the floor under any ``ektp verify`` of this design.
FLOOR = "import click, cryptography.x509, asn1crypto.algos, asn1crypto.keys, logging"


def issue_card(root: Path, python: str, folder: Path, env: dict[str, str]) -> tuple[Path, Path, str]:
    """A personalised virtual e-KTP issued by the code in ``root``: its image, the trust folder (the
    issuer PKI folder: CSCA certificate and CRL) and its CAN."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from ektp_card.demo import run_demo\n"
        "report = run_demo(Path(sys.argv[1]), Path(sys.argv[1]) / 'card.img', seed=int(sys.argv[2]))\n"
        "print(json.dumps({'ok': report.ok, 'can': report.can}))\n"
    )
    done = subprocess.run([python, "-c", script, str(folder), str(SEED)], env=env, cwd=folder.parent,
                          check=True, capture_output=True, text=True)
    issued = json.loads(done.stdout)
    if not issued["ok"]:
        raise SystemExit(f"the card issued in {folder} did not verify")
    return folder / "card.img", folder / "pki", str(issued["can"])


def ektp_command(python: str) -> list[str]:
    """The installed ``ektp`` script beside the interpreter (what a user runs), else ``-m ektp_card``."""
    script = Path(python).parent / "ektp"
    return [python, str(script)] if script.is_file() else [python, "-m", "ektp_card"]


@contextlib.contextmanager
def served(image: Path, python: str, env: dict[str, str]) -> Iterator[str]:
    """The card in ``image`` in the vpcd reader of a running pcscd; yields the reader's name."""
    sys.path.insert(0, str(ROOT))
    from ektp_card.apdu.pcsc import list_readers
    from ektp_card.virtual.pcscd import ensure_pcscd
    from ektp_card.virtual.vpcd import VPCD_READER

    lock = os.open(VPCD_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(lock, fcntl.LOCK_EX)
    daemon = ensure_pcscd()
    server = subprocess.Popen([python, "-c", SERVE, str(image)], env=env, cwd=image.parent)
    try:
        deadline = time.monotonic() + 10
        while not any(r.name == VPCD_READER and r.card_present for r in list_readers()):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the vpcd reader shows no card")
            time.sleep(0.05)
        yield VPCD_READER
    finally:
        server.terminate()
        server.wait(10)
        if daemon is not None:
            daemon.stop()
        os.close(lock)


def run_once(argv: list[str], env: dict[str, str], expect: int, cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}, not {expect}: {done.stderr.decode()}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="runs of each case (default 15)")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="checkout whose ektp_card is measured (default: this one)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter with the dependencies installed (default: this one)")
    parser.add_argument("--baseline", type=Path,
                        help="another checkout whose ektp cases run in the same rounds, e.g. the code before")
    parser.add_argument("--pcscd", action="store_true",
                        help="also read and verify through pcscd and the vpcd reader")
    args = parser.parse_args(argv)

    python = args.python
    ektp = ektp_command(python)

    def env_for(root: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(root.resolve()), *filter(None, [env.get("PYTHONPATH")])])
        env.pop("EKTP_CAN", None)
        # Measure what an installed package starts like: from bytecode, not compiled from source each time.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([python, "-m", "compileall", "-q", str(root.resolve() / "ektp_card")], env=env,
                       check=True)
        return env

    env = env_for(args.root)
    baseline = None if args.baseline is None else env_for(args.baseline)

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        image, trust, can = issue_card(args.root, python, folder / "issuer", env)
        work = folder / "run.img"
        cases: list[tuple[str, list[str]]] = [
            ("python -c pass", [python, "-c", "pass"]),
            ("python -c 'import cryptography.x509'", [python, "-c", "import cryptography.x509"]),
            ("python -c 'import <floor: click, X.509, ASN.1, logging>'", [python, "-c", FLOOR]),
            ("python -c 'import <verify path>'", [python, "-c", VERIFY_PATH]),
            ("ektp --version", [*ektp, "--version"]),
            ("ektp --help", [*ektp, "--help"]),
            ("ektp verify --help", [*ektp, "verify", "--help"]),
            ("ektp verify --virtual IMG --can CAN --trust DIR",
             [*ektp, "verify", "--virtual", str(work), "--can", can, "--trust", str(trust)]),
            ("ektp read --virtual IMG --can CAN",
             [*ektp, "read", "--virtual", str(work), "--can", can]),
        ]
        if args.pcscd:
            reader = stack.enter_context(served(image, python, env))
            cases += [
                ("ektp verify --reader R --can CAN --trust DIR (pcscd)",
                 [*ektp, "verify", "--reader", reader, "--can", can, "--trust", str(trust)]),
                ("ektp read --reader R --can CAN (pcscd)", [*ektp, "read", "--reader", reader, "--can", can]),
            ]
        runs: list[tuple[str, list[str], dict[str, str]]] = []
        for name, command in cases:
            runs.append((name, command, env))
            if baseline is not None and (command[:len(ektp)] == ektp or VERIFY_PATH in command):
                runs.append((f"  (baseline) {name}", command, baseline))
        samples: dict[str, list[float]] = {name: [] for name, _, _ in runs}
        for round_number in range(args.runs + 1):  # round 0 warms the caches and is not counted
            for name, command, run_env in runs:
                shutil.copyfile(image, work)
                elapsed = run_once(command, run_env, 0, folder)
                if round_number:
                    samples[name].append(elapsed)

    medians = {name: statistics.median(values) for name, values in samples.items()}
    bare = medians["python -c pass"]
    crypto = medians["python -c 'import cryptography.x509'"]
    print(f"code: {args.root.resolve()}  python: {python}  runs: {args.runs} each, alternating")
    if args.baseline is not None:
        print(f"baseline: {args.baseline.resolve()}")
    width = max(len(name) for name in medians)
    print(f"{'case':<{width}}  {'median ms':>9}  {'min ms':>7}  {'x bare':>6}  {'x crypto':>8}")
    for name, median in medians.items():
        print(f"{name:<{width}}  {median * 1e3:9.1f}  {min(samples[name]) * 1e3:7.1f}  "
              f"{median / bare:6.2f}  {median / crypto:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
