"""Signatures per second (key files, and SoftHSM2 when installed) and Passive Authentications per second.

Usage: .venv/bin/python bench/bench_pki.py [--runs 5] [--seconds 1.0]

Passive Authentication runs on a card's worth of data groups (DG1 1 KB, DG2 20 KB, DG3 2 KB, DG7 5 KB,
DG14, DG15) with a CSCA, a document signer and an empty CRL in the trust store. Prints the median of
the runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
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


if __name__ == "__main__":
    main()
