"""A fuzzing campaign over every parser of the library, with atheris (libFuzzer for Python).

Usage: .venv/bin/python bench/fuzz.py --seconds N [--runs INPUTS] [--only NAME[,NAME...]] [--jobs 1]
                                     [--work DIR]
       .venv/bin/python bench/fuzz.py --list
       .venv/bin/python bench/fuzz.py --write-seeds
       .venv/bin/python bench/fuzz.py --minimize CRASH_FILE --only NAME

Each harness of tests/fuzz/harnesses.py runs in its own subprocess for N seconds (the ektp_card
modules instrumented for coverage), starting from its seeds in tests/fuzz/corpus/NAME/ and the
inputs an earlier run kept in WORK/NAME/corpus/. A crash (an exception that breaks the contract of
tests/fuzz/contract.py) is written to WORK/NAME/crashes/ and the harness starts again for the rest
of its time, so one crash does not hide the next. At the end it prints, per harness, the inputs
executed, the rate, and each distinct crash (exception and where it was raised).

``--write-seeds`` rebuilds the seeds (real outputs of the library, tests/fuzz/world.py) of every
harness, or of those in --only.
``--minimize`` shrinks a crash input, in process, to CRASH_FILE.min (the same exception raised at
the same place), within --seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ_DIR = ROOT / "tests" / "fuzz"
SEEDS = FUZZ_DIR / "corpus"
DEFAULT_WORK = Path(tempfile.gettempdir()) / "ektp-fuzz"
#: Seconds between the worker's start and libFuzzer's first input (imports, the fixed world).
SETUP_ALLOWANCE = 20
#: libFuzzer: seconds one input may take, and the memory the process may use.
INPUT_TIMEOUT = 25
RSS_LIMIT_MB = 2048


@dataclass
class Crash:
    signature: str
    artifact: str
    trace: str


@dataclass
class Outcome:
    name: str
    seconds: float = 0.0
    executed: int = 0
    runs: int = 0
    crashes: dict[str, Crash] = field(default_factory=dict)
    failure: str = ""

    @property
    def rate(self) -> float:
        return self.executed / self.seconds if self.seconds else 0.0


def _worker(name: str, seconds: int, runs: int, work: Path) -> None:
    """Run in the subprocess: instrument, build the world, hand over to libFuzzer (never returns)."""
    sys.path.insert(0, str(FUZZ_DIR))
    import atheris

    with atheris.instrument_imports():
        import harnesses
    harness = harnesses.HARNESSES[name]
    harness.setup()
    corpus, crashes = work / name / "corpus", work / name / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    args = [
        sys.argv[0],
        f"-max_len={harness.max_len}",
        f"-timeout={INPUT_TIMEOUT}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        "-print_final_stats=1",
        f"-artifact_prefix={crashes}/",
        f"-max_total_time={seconds}",
        *([f"-runs={runs}"] if runs > 0 else []),
        str(corpus),
        str(SEEDS / name),
    ]
    atheris.Setup(args, harness.target)
    atheris.Fuzz()


_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def _signature(log: str) -> tuple[str, str]:
    """(exception and the innermost library frame, the traceback) of a crash log."""
    start = log.find("=== Uncaught Python exception: ===")
    if start < 0:
        kind = "timeout" if "ALARM: working on the last Unit" in log else (
            "out of memory" if "out-of-memory" in log else "libFuzzer error")
        return kind, log[-2000:]
    block = log[start:].split("\n==", 1)[0]
    lines = [line for line in block.splitlines()[1:] if line.strip()]
    exception = lines[0] if lines else "?"
    frames = _FRAME.findall(block)
    inner = [f for f in frames if "/ektp_card/" in f[0]] or frames
    where = ""
    if inner:
        path, line, function = inner[-1]
        shown = Path(path).relative_to(ROOT) if path.startswith(str(ROOT)) else path
        where = f" at {shown}:{line} ({function})"
    kind = exception.split(":", 1)[0]
    if kind in ("ContractViolation", "AssertionError"):
        return exception[:160], block
    return kind + where, block


def run_harness(name: str, seconds: int, runs: int, work: Path, python: str) -> Outcome:
    outcome = Outcome(name)
    logs = work / name / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + seconds
    while True:
        remaining = int(deadline - time.monotonic())
        left = runs - outcome.executed if runs else 0
        if remaining < 2 or runs and left <= 0:
            break
        started = time.monotonic()
        log_path = logs / f"run-{outcome.runs}.log"
        with log_path.open("w") as log_file:
            subprocess.run(
                [python, str(Path(__file__).resolve()), "--worker", name, "--seconds", str(remaining),
                 "--runs", str(left), "--work", str(work)],
                stdout=log_file, stderr=subprocess.STDOUT, check=False, env=_env(),
                timeout=remaining + SETUP_ALLOWANCE + INPUT_TIMEOUT + 60,
            )
        outcome.seconds += time.monotonic() - started
        outcome.runs += 1
        log = log_path.read_text(errors="replace")
        executed = _EXECUTED.findall(log)
        outcome.executed += int(executed[-1]) if executed else 0
        artifact = _ARTIFACT.search(log)
        crashed = artifact is not None or "=== Uncaught Python exception" in log or "ERROR: libFuzzer" in log
        if not crashed:
            if not executed:
                outcome.failure = f"the worker failed, see {log_path}"
            break
        signature, trace = _signature(log)
        where = artifact.group(1) if artifact else f"(not written; see {log_path})"
        outcome.crashes.setdefault(signature, Crash(signature, where, trace))
    return outcome


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def write_seeds(only: list[str] | None) -> None:
    sys.path.insert(0, str(FUZZ_DIR))
    import world

    for name, seeds in world.seed_inputs().items():
        if only and name not in only:
            continue
        folder = SEEDS / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for seed_name, data in seeds.items():
            (folder / f"seed-{seed_name}").write_bytes(data)
        print(f"{name:16} {len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes")


def crash_key(target: Callable[[bytes], None], data: bytes) -> str | None:
    """What ``target`` fails with on ``data`` (exception and innermost library frame), or ``None``."""
    try:
        target(data)
    except Exception as exc:  # noqa: BLE001 - any exception is the crash being shrunk
        frames = traceback.extract_tb(exc.__traceback__)
        inner = [f for f in frames if "/ektp_card/" in f.filename] or frames
        kind = type(exc).__name__
        if kind == "ContractViolation":
            return f"{kind}: {str(exc)[:48]}"
        return f"{kind} at {inner[-1].filename}:{inner[-1].lineno}" if inner else kind
    return None


def minimize(name: str, crash: Path, seconds: int) -> None:
    """Shrink a crash input in process, keeping the same failure: delete ever smaller chunks, then
    replace bytes with zero, while time is left."""
    sys.path.insert(0, str(FUZZ_DIR))
    from harnesses import HARNESSES

    harness = HARNESSES[name]
    harness.setup()
    data = crash.read_bytes()
    key = crash_key(harness.target, data)
    if key is None:
        raise SystemExit(f"{crash} does not fail in {name}")
    deadline = time.monotonic() + seconds
    chunk = max(1, len(data) // 2)
    while chunk and time.monotonic() < deadline:
        at, shrunk = 0, False
        while at < len(data) and time.monotonic() < deadline:
            candidate = data[:at] + data[at + chunk :]
            if crash_key(harness.target, candidate) == key:
                data, shrunk = candidate, True
            else:
                at += chunk
        if not shrunk:
            chunk //= 2
    for at in range(len(data)):
        if time.monotonic() > deadline:
            break
        if data[at]:
            candidate = data[:at] + b"\x00" + data[at + 1 :]
            if crash_key(harness.target, candidate) == key:
                data = candidate
    target = crash.with_name(crash.name + ".min")
    target.write_bytes(data)
    print(f"{key}\n{crash} ({crash.stat().st_size} bytes) -> {target} ({len(data)} bytes)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60, help="time per harness")
    parser.add_argument("--runs", type=int, default=0, help="inputs after which a harness stops (0: none)")
    parser.add_argument("--only", help="comma-separated harness names (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="harnesses run at the same time")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="corpus, crashes and logs")
    parser.add_argument("--list", action="store_true", help="list the harnesses")
    parser.add_argument("--write-seeds", action="store_true", help="rebuild tests/fuzz/corpus/*/seed-*")
    parser.add_argument("--minimize", type=Path, metavar="CRASH", help="shrink a crash input of --only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    python = sys.executable
    if args.worker:
        _worker(args.worker, args.seconds, args.runs, args.work)
        return 0
    if args.write_seeds:
        write_seeds(args.only.split(",") if args.only else None)
        return 0
    sys.path.insert(0, str(FUZZ_DIR))
    from harnesses import HARNESSES

    if args.list:
        for name, harness in HARNESSES.items():
            about = (harness.target.__doc__ or harness.target.__name__).splitlines()[0]
            print(f"{name:16} max_len {harness.max_len:6}  {about}")
        return 0
    names = args.only.split(",") if args.only else list(HARNESSES)
    unknown = [n for n in names if n not in HARNESSES]
    if unknown:
        parser.error(f"unknown harness {', '.join(unknown)}; see --list")
    if args.minimize:
        if len(names) != 1:
            parser.error("--minimize needs exactly one harness in --only")
        minimize(names[0], args.minimize, args.seconds)
        return 0

    outcomes: dict[str, Outcome] = {}
    queue = list(names)
    lock = threading.Lock()

    def runner() -> None:
        while True:
            with lock:
                if not queue:
                    return
                name = queue.pop(0)
            outcome = run_harness(name, args.seconds, args.runs, args.work, python)
            with lock:
                outcomes[name] = outcome
                _print(outcome)

    threads = [threading.Thread(target=runner) for _ in range(max(1, args.jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = {
        name: {"seconds": round(o.seconds), "executed": o.executed, "per_second": round(o.rate),
               "crashes": {c.signature: c.artifact for c in o.crashes.values()}}
        for name, o in ((n, outcomes[n]) for n in names if n in outcomes)
    }
    stamp = hashlib.sha256(",".join(names).encode()).hexdigest()[:8]
    out = args.work / f"summary-{stamp}.json"
    args.work.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{'harness':16} {'inputs':>12} {'per s':>8} crashes")
    for name, entry in summary.items():
        print(f"{name:16} {entry['executed']:>12,} {entry['per_second']:>8,} {len(entry['crashes'])}")
    print(f"summary: {out}")
    return 1 if any(o.crashes for o in outcomes.values()) else 0


def _print(outcome: Outcome) -> None:
    print(f"{outcome.name:16} {outcome.executed:>12,} inputs in {outcome.seconds:6.0f} s "
          f"({outcome.rate:,.0f}/s, {outcome.runs} run{'s' if outcome.runs != 1 else ''}), "
          f"{len(outcome.crashes)} crash{'es' if len(outcome.crashes) != 1 else ''}", flush=True)
    if outcome.failure:
        print(f"    {outcome.failure}", flush=True)
    for crash in outcome.crashes.values():
        print(f"    {crash.signature}\n        input: {crash.artifact}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
