"""The same signing flows with keys in a PKCS#11 token: SoftHSM2 with a private configuration."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from pki_fixtures import DATA_GROUPS, T0, openssl, pem, pki, write

from ektp_card.errors import PkiError
from ektp_card.lds.sod import build_sod, unwrap
from ektp_card.pki.certs import create_csca, issue_document_signer
from ektp_card.pki.crl import build_crl
from ektp_card.pki.pkcs11 import SOFTHSM2_MODULE, Pkcs11Signer
from ektp_card.pki.signer import KeySpec
from ektp_card.verify import Policy, TrustStore, passive_authentication

SLOT_NAME = "ektp-test"  # the token label
PIN = b"4711"
HINT = "install it with `apt-get install softhsm2` and `pip install 'ektp-card[hsm]'`"


def _unavailable(message: str) -> NoReturn:
    """Fail under CI, where SoftHSM2 must be there; skip on a developer's machine without it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must run the PKCS#11 tests: {HINT}", pytrace=False)
    pytest.skip(f"{message}; {HINT}")


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh SoftHSM2 token labelled SLOT_NAME, in a private SOFTHSM2_CONF; yields the module path."""
    util = shutil.which("softhsm2-util")
    if util is None or not Path(SOFTHSM2_MODULE).exists():
        _unavailable("SoftHSM2 is not installed")
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        _unavailable("python-pkcs11 is not installed")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        subprocess.run(
            [
                util,
                "--init-token",
                "--free",
                "--label",
                SLOT_NAME,
                "--pin",
                PIN.decode(),
                "--so-pin",
                "12345678",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        yield SOFTHSM2_MODULE
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


@pytest.mark.parametrize("spec", ["secp256r1", "brainpoolP256r1", "rsa-pss-2048"])
def test_document_signer_in_token(token: str, spec: str, tmp_path: Path) -> None:
    p = pki(spec if spec != "secp256r1" else "brainpoolP256r1")
    with Pkcs11Signer.generate(token, SLOT_NAME, f"ds-{spec}", KeySpec.parse(spec), PIN) as hsm:
        ds = issue_document_signer(p.csca_signer, p.csca, hsm.public_key, common_name="DS HSM", not_before=T0)
        signed = T0 + dt.timedelta(days=2)
        sod = build_sod(DATA_GROUPS, hsm, ds, hash_name="sha384", signing_time=signed)
    # reopen by label: the key persists in the token
    with Pkcs11Signer(token, SLOT_NAME, f"ds-{spec}", PIN) as again:
        assert again.public_key.public_numbers() == hsm.public_key.public_numbers()
    der = write(tmp_path / "sod.der", unwrap(sod))
    csca = write(tmp_path / "csca.pem", pem(p.csca))
    r = openssl(
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        der,
        "-CAfile",
        csca,
        "-out",
        tmp_path / "o",
        "-attime",
        str(int(signed.timestamp())),
    )
    assert r.returncode == 0 and "Verification successful" in r.stderr, r.stderr
    now = T0 + dt.timedelta(days=10)
    crl = build_crl(p.csca_signer, p.csca, [], crl_number=1, this_update=now)
    result = passive_authentication(sod, DATA_GROUPS, TrustStore((p.csca,), (crl,)), Policy(at=now))
    assert result.ok, result.failures


def test_csca_and_crl_in_token(token: str, tmp_path: Path) -> None:
    with Pkcs11Signer.generate(token, SLOT_NAME, "csca", KeySpec.parse("secp384r1"), PIN) as hsm:
        cert = create_csca(hsm, country="ID", common_name="CSCA in HSM", not_before=T0)
        crl = build_crl(hsm, cert, [], crl_number=3, this_update=T0)
    csca = write(tmp_path / "csca.pem", pem(cert))
    r = openssl("verify", "-x509_strict", "-CAfile", csca, csca)
    assert r.returncode == 0, r.stdout + r.stderr
    crl_file = write(tmp_path / "csca.crl", pem(crl))
    r = openssl("crl", "-in", crl_file, "-CAfile", csca, "-noout")
    assert r.returncode == 0 and "verify OK" in r.stdout + r.stderr


def test_token_errors_are_clean(token: str) -> None:
    Pkcs11Signer.generate(token, SLOT_NAME, "pin-test", KeySpec.parse("secp256r1"), PIN).close()
    with pytest.raises(PkiError, match="cannot log in") as e:
        Pkcs11Signer(token, SLOT_NAME, "pin-test", b"0000")
    assert "0000" not in str(e.value)
    with pytest.raises(PkiError, match="no PKCS#11 token 'nope'"):
        Pkcs11Signer(token, "nope", "pin-test", PIN)
    with pytest.raises(PkiError, match="no key pair labelled 'missing'"):
        Pkcs11Signer(token, SLOT_NAME, "missing", PIN)
