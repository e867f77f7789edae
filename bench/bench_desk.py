"""Desk batch throughput (cards per hour) with virtual cards: SQLite vs PostgreSQL, one desk vs four desk
processes at once; and the memory of one desk over a long batch.

Usage: .venv/bin/python bench/bench_desk.py [--records 40] [--runs 3] [--desks 4] [--no-postgres]
       [--memory-only]

The issue's figure, memory over a 10,000-record batch, is `--records 10000` (about 8 minutes per
scenario run on a 2-core machine; `--records 10000 --memory-only` measures the memory alone).

Each desk is its own process running ektp_card.desk.batch.issue_batch on its own JSON Lines file (four
desks: the records split in four) into its own virtual card folder, against one registry: a SQLite file
(WAL, synchronous=FULL) or a PostgreSQL server started for the run (tests/pg_server.py: loopback, its own
data directory, fsync off). Every card is validated, reserved, personalised, read back like a clerk,
stored (image and print job, fsynced) and confirmed. Cards per hour = cards issued / wall time, from
the first desk's first record to the last desk's end (process start-up excluded). Memory: the one-desk
SQLite run samples its resident set size (VmRSS) after 10%, 25%, 50%, 75% and 100% of the records, and
reports the peak (VmHWM: ru_maxrss would count the parent's memory at fork, which Linux keeps across
exec) and the growth from the 10% sample to the end. Medians of --runs runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ektp_card.lds.record import CitizenRecord
from ektp_card.lds.synthetic import synthetic_citizen, synthetic_personal_data

HERE = Path(__file__).resolve()
#: Distinct faces, signatures and fingerprints shared by the generated records (only NIKs must differ).
BIOMETRIC_SETS = 16
ENV_PASS = "BENCH_DESK_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
ENV_MASTER = "BENCH_DESK_MASTER_KEY"
#: When the resident set size is sampled, in percent of the batch.
SHARES = (10, 25, 50, 75, 100)


def write_records(folder: Path, count: int, seed: int) -> list[dict[str, object]]:
    """``count`` records with distinct NIKs; images and templates in files shared between records."""
    rng = random.Random(seed)  # noqa: S311 - synthetic benchmark data
    shared: list[tuple[CitizenRecord, dict[str, str]]] = []
    for k in range(BIOMETRIC_SETS):
        record = synthetic_citizen(rng).record
        names = {"face": f"bio{k}-face.jpg", "signature": f"bio{k}-signature.jpg",
                 "fingerprint_1": f"bio{k}-fp1.fmr", "fingerprint_2": f"bio{k}-fp2.fmr"}
        (folder / names["face"]).write_bytes(record.face)
        (folder / names["signature"]).write_bytes(record.signature)
        (folder / names["fingerprint_1"]).write_bytes(record.fingerprints[0])
        (folder / names["fingerprint_2"]).write_bytes(record.fingerprints[1])
        shared.append((record, names))
    seen: set[str] = set()
    out: list[dict[str, object]] = []
    while len(out) < count:
        personal = synthetic_personal_data(rng)
        if personal.nik in seen:
            continue
        seen.add(personal.nik)
        bio, names = shared[len(out) % BIOMETRIC_SETS]
        record = CitizenRecord(personal, bio.face, bio.signature, bio.fingerprints)
        out.append(record.to_mapping(files=names))
    return out


def write_batch(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def rss_kib(field: str = "VmRSS") -> int:
    """This process's resident set (``VmRSS``) or its high-water mark (``VmHWM``), KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def worker(batch: Path, target: str, cards: Path, pki_dir: Path, desk: str) -> dict[str, Any]:
    """One desk: issue ``batch``; figures as JSON."""
    from cryptography import x509

    from ektp_card.desk.batch import BatchProgress, Issuance, VirtualCardDir, issue_batch
    from ektp_card.desk.registry import open_registry
    from ektp_card.personalize import DocumentSigner
    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.trust import TrustStore

    passphrase = os.environ[ENV_PASS].encode()
    pki = IssuerPki(pki_dir)
    crl = x509.load_pem_x509_crl((pki_dir / "csca.crl").read_bytes())
    signer = DocumentSigner(*pki.document_signer(None, passphrase))
    issuance = Issuance(bytes.fromhex(os.environ[ENV_MASTER]), signer, TrustStore((pki.csca,), (crl,)))
    samples: dict[str, int] = {}

    def progress(p: BatchProgress) -> None:
        for share in SHARES:
            key = f"{share}%"
            if key not in samples and p.total and p.done * 100 >= share * p.total:
                samples[key] = rss_kib()

    station = VirtualCardDir(cards, issuance.master_key)
    # Wall-clock stamps, so the desks' common span excludes each process's start-up.
    started = time.time()
    with open_registry(target) as registry:
        summary = issue_batch(batch, registry, station, issuance, desk=desk, actor="bench", progress=progress)
    ended = time.time()
    return {"issued": len(summary.issued), "skipped": len(summary.skipped), "rejected": len(summary.rejected),
            "started": started, "ended": ended, "rss_kib": samples,
            "peak_rss_kib": rss_kib("VmHWM")}


def run_desks(
    batches: list[Path], target: str, work: Path, pki_dir: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Start one process per batch at once; the wall time from the first desk's first record to the last
    desk's end (process start-up excluded)."""
    procs = [
        subprocess.Popen([sys.executable, str(HERE), "--worker", str(b), target, str(work / f"cards-{i}"),
                          str(pki_dir), f"bench-desk-{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
        for i, b in enumerate(batches)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a desk failed ({proc.returncode}): {err.strip()[-2000:]}")
        results.append(json.loads(out))
    wall = max(r["ended"] for r in results) - min(r["started"] for r in results)
    issued = sum(r["issued"] for r in results)
    return {"issued": issued, "wall": wall, "cards_per_hour": issued * 3600 / wall, "desks": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--records", type=int, default=40, help="records per scenario run (default 40)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--desks", type=int, default=4, help="desk processes of the many-desk scenario")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the memory figure: one desk, SQLite, --records records, one run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--worker", nargs=5, metavar=("BATCH", "REGISTRY", "CARDS", "PKI", "DESK"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        batch, target, cards, pki_dir, desk = args.worker
        print(json.dumps(worker(Path(batch), target, Path(cards), Path(pki_dir), desk)))
        return 0

    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.signer import KeySpec

    sys.path.insert(0, str(HERE.parent.parent / "tests"))
    passphrase = secrets.token_urlsafe(16)
    env = {**os.environ, ENV_PASS: passphrase, ENV_MASTER: secrets.token_bytes(16).hex()}
    with tempfile.TemporaryDirectory(prefix="bench-desk-") as tmp:
        root = Path(tmp)
        pki = IssuerPki.create(root / "pki", passphrase.encode(), spec=KeySpec.parse("brainpoolP256r1"),
                               country="ID", common_name="Bench Desk CSCA")
        pki.issue_document_signer(passphrase.encode(), passphrase.encode(), common_name="Bench Desk DS")
        pki.publish_crl(passphrase.encode())
        made = time.perf_counter()
        rows = write_records(root, args.records, args.seed)
        one = [write_batch(root / "all.jsonl", rows)]
        parts = [write_batch(root / f"part-{i}.jsonl", rows[i:: args.desks]) for i in range(args.desks)]
        print(f"{args.records} records written in {time.perf_counter() - made:.1f} s", file=sys.stderr)

        server = None
        backends = ["sqlite"]
        if args.memory_only:
            args.runs = 1
            parts = []
        elif not args.no_postgres:
            try:
                from pg_server import PostgresServer, PostgresUnavailable, fresh_schema_url

                server = PostgresServer.start()
                backends.append("postgresql")
            except (ImportError, PostgresUnavailable, subprocess.CalledProcessError) as e:
                print(f"PostgreSQL skipped: {e}", file=sys.stderr)
        results: dict[tuple[str, int], list[dict[str, Any]]] = {}
        try:
            for run in range(args.runs):
                for backend in backends:
                    for batches in (one, parts) if parts else (one,):
                        work = root / f"run-{run}-{backend}-{len(batches)}"
                        work.mkdir()
                        if backend == "sqlite":
                            target = str(work / "registry.sqlite")
                        else:
                            assert server is not None  # noqa: S101 - started above
                            target = fresh_schema_url(server.url)
                        result = run_desks(batches, target, work, root / "pki", env)
                        if result["issued"] != args.records:
                            raise SystemExit(f"{backend}: {result['issued']} of {args.records} cards issued")
                        results.setdefault((backend, len(batches)), []).append(result)
                        rate = result["cards_per_hour"]
                        print(f"run {run + 1} {backend} x{len(batches)}: {rate:.0f} cards/h", file=sys.stderr)
        finally:
            if server is not None:
                server.stop()

    command = "python bench/bench_desk.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"$ {command.strip()}")
    print(f"{args.records} records per run (synthetic, {BIOMETRIC_SETS} shared biometric sets), "
          f"medians of {args.runs} runs, {os.cpu_count()} CPUs")
    print(f"{'registry':11} {'desks':>5} {'cards/h':>9} {'ms/card':>8} {'wall s':>7}   runs (cards/h)")
    for (backend, desks), runs in results.items():
        rate = statistics.median(r["cards_per_hour"] for r in runs)
        wall = statistics.median(r["wall"] for r in runs)
        print(f"{backend:11} {desks:5d} {rate:9.0f} {3600_000 / rate:8.1f} {wall:7.1f}   "
              + " ".join(f"{r['cards_per_hour']:.0f}" for r in runs))
    memory = [r["desks"][0] for r in results[("sqlite", 1)]]
    keys = [f"{share}%" for share in SHARES]
    samples = {k: statistics.median(m["rss_kib"].get(k, 0) for m in memory) for k in keys}
    peak = statistics.median(m["peak_rss_kib"] for m in memory)
    growth = samples["100%"] - samples["10%"]
    shown = ", ".join(f"{k} {v / 1024:.1f}" for k, v in samples.items())
    print(f"memory, one desk, SQLite, {args.records} records: RSS (MiB) at {shown}; growth from 10% "
          f"{growth / 1024:+.1f} MiB ({growth * 1024 / max(1, args.records * 9 // 10):.0f} bytes/record), "
          f"peak {peak / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
