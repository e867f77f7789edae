"""Signatures per second (key files, and SoftHSM2 when installed) and Passive Authentications per second.

Usage: .venv/bin/python bench/bench_pki.py [--runs 5] [--seconds 1.0] [--baseline DIR]

Passive Authentication runs on a card's worth of data groups (DG1 1 KB, DG2 20 KB, DG3 2 KB, DG7 5 KB,
DG14, DG15) with a CSCA, a document signer and an empty CRL in the trust store. Prints the median of
the runs.

Then Passive Authentication per document on a passport's EF.SOD (DG1, DG2 15 KB, DG11, DG14;
brainpoolP256r1 CSCA and document signer, chain and CRL checked), in milliseconds:
  cold  EF.SOD parsed from its bytes and a fresh trust store loaded from the CSCA's and CRL's DER for
        every document, so nothing is remembered from the one before;
  warm  one trust store for all documents, as a station or desk keeps it: the document signer's
        certificate and the CRL were checked for the first document and are not checked again.
``--baseline DIR`` runs the same document, in the same rounds, with the ``ektp_card`` of another
checkout (in a process of its own, alternating), to print the ratio of the two.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ektp_card.lds.sod import build_sod
from ektp_card.pki.certs import create_csca, issue_document_signer
from ektp_card.pki.crl import build_crl
from ektp_card.pki.signer import KeyFileSigner, KeySpec, Signer
from ektp_card.verify import Policy, TrustStore, passive_authentication

SPECS = ("secp256r1", "brainpoolP256r1", "secp384r1", "rsa-pss-2048")
DATA_GROUPS = {
    1: bytes(1024),
    2: os.urandom(20 * 1024),
    3: os.urandom(2 * 1024),
    7: os.urandom(5 * 1024),
    14: os.urandom(300),
    15: os.urandom(100),
}


def rate(operation: Callable[[], object], seconds: float, runs: int) -> float:
    """Median operations per second over ``runs`` runs of about ``seconds`` each."""
    operation()  # warm up
    rates = []
    for _ in range(runs):
        count = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            operation()
            count += 1
        rates.append(count / elapsed)
    return statistics.median(rates)


def softhsm_signers(root: Path) -> dict[str, Signer]:
    """Key pairs in a fresh SoftHSM2 token, or nothing when SoftHSM2 or python-pkcs11 is missing."""
    util = shutil.which("softhsm2-util")
    try:
        import pkcs11  # noqa: F401

        from ektp_card.pki.pkcs11 import SOFTHSM2_MODULE, Pkcs11Signer
    except ImportError:
        return {}
    if util is None or not Path(SOFTHSM2_MODULE).exists():
        return {}
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [util, "--init-token", "--free", "--label", "bench", "--pin", "1234", "--so-pin", "12345678"],
        check=True,
        capture_output=True,
    )
    return {
        spec: Pkcs11Signer.generate(SOFTHSM2_MODULE, "bench", spec, KeySpec.parse(spec), b"1234")
        for spec in SPECS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--baseline", type=Path, help="another checkout to measure beside this one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"signatures/s over SHA-256 digests, median of {args.runs} runs")
        files = {
            spec: KeyFileSigner.generate(root / f"{spec}.key", KeySpec.parse(spec), b"bench")
            for spec in SPECS
        }
        hsm = softhsm_signers(root)
        for spec in SPECS:
            per_s = rate(lambda s=files[spec]: s.sign(b"x", "sha256"), args.seconds, args.runs)
            line = f"  {spec:<16} key file {per_s:9.0f}"
            if spec in hsm:
                per_s = rate(lambda s=hsm[spec]: s.sign(b"x", "sha256"), args.seconds, args.runs)
                line += f"   SoftHSM2 {per_s:9.0f}"
            print(line)
        if not hsm:
            print("  (SoftHSM2 or python-pkcs11 not installed: token figures skipped)")

        print(
            f"Passive Authentications/s on DG1, DG2, DG3, DG7, DG14, DG15 "
            f"({sum(map(len, DATA_GROUPS.values()))} bytes), median of {args.runs} runs"
        )
        now = dt.datetime.now(dt.UTC)
        for spec in SPECS:
            csca_key = files[spec]
            csca = create_csca(
                csca_key, country="ID", common_name="CSCA bench", not_before=now - dt.timedelta(days=2)
            )
            ds_key = KeyFileSigner.generate(root / f"ds-{spec}.key", KeySpec.parse(spec), b"bench")
            ds = issue_document_signer(
                csca_key,
                csca,
                ds_key.public_key,
                common_name="DS bench",
                not_before=now - dt.timedelta(days=1),
            )
            sod = build_sod(DATA_GROUPS, ds_key, ds)
            trust = TrustStore((csca,), (build_crl(csca_key, csca, [], crl_number=1),))
            result = passive_authentication(sod, DATA_GROUPS, trust, Policy())
            assert result.ok, result.failures
            pa = rate(
                lambda s=sod, t=trust: passive_authentication(s, DATA_GROUPS, t), args.seconds, args.runs
            )
            print(f"  {spec:<16} {pa:9.0f}")
        for signer in hsm.values():
            signer.close()  # type: ignore[attr-defined]

        document_bench(root, args.runs, args.baseline)


#: Runs with the ``ektp_card`` on ``sys.path`` (this checkout's or a baseline's); prints JSON medians.
DOCUMENT_SCRIPT = """
import datetime as dt, json, os, statistics, sys, tempfile, time
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from ektp_card.lds.sod import build_sod
from ektp_card.pki.certs import create_csca, issue_document_signer
from ektp_card.pki.crl import build_crl
from ektp_card.pki.signer import KeyFileSigner, KeySpec
from ektp_card.verify import TrustStore, passive_authentication

root, count = Path(tempfile.mkdtemp(dir=sys.argv[1])), int(sys.argv[2])
spec = KeySpec.parse("brainpoolP256r1")
now = dt.datetime.now(dt.UTC)
csca_key = KeyFileSigner.generate(root / "doc-csca.key", spec, b"bench")
csca = create_csca(csca_key, country="ID", common_name="CSCA bench", not_before=now - dt.timedelta(days=2))
ds_key = KeyFileSigner.generate(root / "doc-ds.key", spec, b"bench")
ds = issue_document_signer(csca_key, csca, ds_key.public_key, common_name="DS bench",
                           not_before=now - dt.timedelta(days=1))
groups = {1: bytes(93), 2: os.urandom(15 * 1024), 11: os.urandom(120), 14: os.urandom(300)}
sod = build_sod(groups, ds_key, ds)
csca_der = csca.public_bytes(Encoding.DER)
crl_der = build_crl(csca_key, csca, [], crl_number=1).public_bytes(Encoding.DER)
warm_store = TrustStore((csca,), (x509.load_der_x509_crl(crl_der),))


def cold():
    store = TrustStore((x509.load_der_x509_certificate(csca_der),), (x509.load_der_x509_crl(crl_der),))
    return passive_authentication(sod, groups, store)


def warm():
    return passive_authentication(sod, groups, warm_store)


assert cold().ok and warm().ok
out = {}
for name, run in (("cold", cold), ("warm", warm)):
    times = []
    for _ in range(count):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    out[name] = statistics.median(times) * 1000
print(json.dumps(out))
"""


def document_bench(root: Path, runs: int, baseline: Path | None) -> None:
    """Cold and warm Passive Authentication of one passport document, this checkout beside ``baseline``."""
    checkouts = {"this": Path(__file__).resolve().parent.parent}
    if baseline is not None:
        checkouts["baseline"] = baseline.resolve()
    figures: dict[str, dict[str, list[float]]] = {name: {"cold": [], "warm": []} for name in checkouts}
    for _ in range(runs):
        for name, checkout in checkouts.items():
            env = {**os.environ, "PYTHONPATH": str(checkout)}
            done = subprocess.run([sys.executable, "-c", DOCUMENT_SCRIPT, str(root), "300"], env=env,
                                  check=True, capture_output=True, text=True, cwd=root)
            for kind, value in json.loads(done.stdout).items():
                figures[name][kind].append(value)
    print(f"Passive Authentication of a passport document (DG1, DG2 15 KB, DG11, DG14; brainpoolP256r1, "
          f"chain and CRL), ms per document, median of {runs} processes x 300 documents")
    for name in checkouts:
        cold, warm = (statistics.median(figures[name][k]) for k in ("cold", "warm"))
        print(f"  {name:<9} cold {cold:6.3f}   warm {warm:6.3f}")
    if baseline is not None:
        ratios = [statistics.median(figures["this"][k]) / statistics.median(figures["baseline"][k])
                  for k in ("cold", "warm")]
        print(f"  ratio this/baseline: cold {ratios[0]:.2f}, warm {ratios[1]:.2f}")


if __name__ == "__main__":
    main()
