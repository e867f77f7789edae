"""What a verification imports (counted in a fresh interpreter, not timed): the clerk's e-KTP verification
loads the code of what it runs, and none of the code of the options it was not given (a terminal, a
fingerprint, master lists, revocation lists, a PKCS#11 token, --timing), of passports, or of issuing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fixtures.cards import Fresh

#: The card in a process of its own, one command APDU (hex) a line on stdin, its response on stdout: the
#: card OS's own modules (it runs Terminal Authentication, BAC, personalisation) stay out of the verifier.
SERVE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from ektp_card.virtual.card import VirtualCard\n"
    "card = VirtualCard.load(Path(sys.argv[1]))\n"
    "card.power_on()\n"
    "for line in sys.stdin:\n"
    "    print(card.transceive(bytes.fromhex(line)).hex(), flush=True)\n"
)

#: A clerk's verification (PACE-CAN, Passive, Chip and Active Authentication) of the card SERVE serves,
#: with the command's own module loaded as `ektp verify` loads it; prints the verdict and sys.modules.
VERIFY = (
    "import json, subprocess, sys\n"
    "from pathlib import Path\n"
    "import ektp_card._cli.verify\n"
    "from ektp_card.pki.trust import TrustStore\n"
    "from ektp_card.verify.card import verify_card\n"
    "from ektp_card.verify.timing import CountingTransport\n"
    "serve, image, can, trust = sys.argv[1:]\n"
    "card = subprocess.Popen([sys.executable, '-c', serve, image], stdin=subprocess.PIPE,\n"
    "                        stdout=subprocess.PIPE, text=True)\n"
    "class CardProcess:\n"
    "    def transceive(self, command):\n"
    "        card.stdin.write(command.hex() + '\\n')\n"
    "        card.stdin.flush()\n"
    "        return bytes.fromhex(card.stdout.readline())\n"
    "report = verify_card(CountingTransport(CardProcess()), can, TrustStore.from_folder(Path(trust)))\n"
    "card.stdin.close()\n"
    "card.wait()\n"
    "print(json.dumps({'verdict': report.verdict.value, 'modules': sorted(sys.modules)}))\n"
)

#: Run ``ektp ARGS`` in this interpreter, then list the imported modules on stderr's last line.
PROBE = (
    "import json, sys\n"
    "from ektp_card._cli import cli\n"
    "cli.main(args=sys.argv[1:], prog_name='ektp', standalone_mode=False)\n"
    "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
)

#: Loaded only by the runs that use them: a terminal (TA, CV certificates), a captured fingerprint,
#: --master-list, --revocations, --terminal-pkcs11 (and the key file's passphrase prompt), --timing;
#: a passport (--mrz: BAC, the MRZ, DG1's MRZ); issuing (the JPEG encoder and checks, synthetic data,
#: the issuer PKI, CMS signing, personalisation, the desk) and the card OS; asn1crypto's X.509 and CRL
#: classes (a certificate's signature algorithm is read with ektp_card.der) and the batch files' csv.
NOT_FOR_AN_EKTP = (
    "ektp_card.crypto.ta", "ektp_card.pki.cvc", "ektp_card.verify.matcher", "ektp_card.pki.masterlist",
    "ektp_card.pki.revocation", "ektp_card.pki.pkcs11", "ektp_card._cli.pkcs11", "ektp_card._cli.pki",
    "ektp_card.airtime", "ektp_card.verify.passport", "ektp_card.crypto.bac", "ektp_card.crypto.mrz",
    "ektp_card.lds.emrtd", "ektp_card.lds.jpeg", "ektp_card.lds.synthetic", "ektp_card.pki.issuer",
    "ektp_card.pki.crl", "ektp_card.personalize", "ektp_card.desk", "ektp_card.audit",
    "ektp_card.sandbox", "ektp_card.virtual", "pkcs11", "smartcard", "nfc", "asn1crypto.x509",
    "asn1crypto.crl", "csv",
)
#: What the card OS of a --virtual card loads itself (it answers TA, BAC and personalisation too).
CARD_OS = ("ektp_card.virtual", "ektp_card.crypto.ta", "ektp_card.pki.cvc", "ektp_card.crypto.bac",
           "ektp_card.crypto.mrz", "ektp_card.crypto.perso")


def _loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_a_verification_imports_only_what_it_runs(fresh: Fresh, trust_dir: Path, tmp_path: Path) -> None:
    card, can = fresh()
    image = tmp_path / "card.img"
    card.save(image)
    done = subprocess.run([sys.executable, "-c", VERIFY, SERVE, str(image), can, str(trust_dir)],
                          capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    assert result["verdict"] == "genuine"
    modules = result["modules"]
    # What it ran: PACE, EF.SOD and Passive Authentication, DG14 and Chip, DG15 and Active Authentication.
    assert {"ektp_card.crypto.pace", "ektp_card.lds.sod", "ektp_card.verify.passive", "ektp_card.lds.dg14",
            "ektp_card.crypto.ca", "ektp_card.lds.dg15", "ektp_card.crypto.aa"} <= set(modules)
    assert _loaded(modules, NOT_FOR_AN_EKTP) == []


def test_ektp_verify_imports_no_option_it_was_not_given(
    fresh: Fresh, trust_dir: Path, tmp_path: Path
) -> None:
    card, can = fresh()
    image = tmp_path / "card.img"
    card.save(image)
    args = ["verify", "--virtual", str(image), "--can", can, "--trust", str(trust_dir)]
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120,
                          check=True)
    assert "GENUINE" in done.stdout
    modules = json.loads(done.stderr.splitlines()[-1])
    assert "ektp_card.virtual.card" in modules
    rest = tuple(m for m in NOT_FOR_AN_EKTP if m not in CARD_OS)
    assert _loaded(modules, rest) == []


def test_reading_a_card_loads_no_certificate_code(fresh: Fresh, tmp_path: Path) -> None:
    # `ektp read` checks no signature: the X.509 machinery (cryptography's and asn1crypto's, some 20 ms
    # of start) stays out, also when the card OS runs in the same process.
    card, can = fresh()
    image = tmp_path / "card.img"
    card.save(image)
    done = subprocess.run([sys.executable, "-c", PROBE, "read", "--virtual", str(image), "--can", can],
                          capture_output=True, text=True, timeout=120, check=True)
    modules = json.loads(done.stderr.splitlines()[-1])
    assert "ektp_card.virtual.card" in modules and "ektp_card.crypto.pace" in modules
    assert _loaded(modules, ("cryptography.x509", "asn1crypto.x509", "ektp_card.pki.certs")) == []
