"""The plugin as an integrator's own pytest run uses it: --ektp-keep after a failure, and cards swapped
between tests behind the real PC/SC reader."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SUITE = '''
from ektp_card.apdu.pcsc import PcscTransport


def test_fails_and_keeps_its_card(ektp_issued_card):
    assert ektp_issued_card.serial == "not this one"


def _select(reader, aid_hex):
    with PcscTransport.open(reader) as transport:
        return transport.transceive(bytes.fromhex("00A4040C" + f"{len(aid_hex) // 2:02X}" + aid_hex))[-2:]


def test_an_ektp_in_the_reader(ektp_pcsc_reader, ektp_issued_card):
    reader = ektp_pcsc_reader(ektp_issued_card.card)
    assert _select(reader, "A0000002471001") == b"\\x6a\\x82"  # no eMRTD application on an e-KTP


def test_then_a_passport_in_the_same_reader(ektp_pcsc_reader, ektp_passport):
    reader = ektp_pcsc_reader(ektp_passport().card)
    assert _select(reader, "A0000002471001") == b"\\x90\\x00"
'''


def test_keep_and_swap(tmp_path: Path, pcscd: str) -> None:
    (tmp_path / "test_integrator.py").write_text(textwrap.dedent(SUITE))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--ektp-keep",
         "--basetemp", str(tmp_path / "inner-tmp"), "test_integrator.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    last = out.stdout.strip().splitlines()[-1]
    assert "1 failed, 2 passed" in last, out.stdout[-3000:] + out.stderr[-2000:]
    kept = list((tmp_path / "ektp-keep").iterdir())
    assert [k.name for k in kept] == ["test_integrator.py_test_fails_and_keeps_its_card"]
    cards = list((kept[0] / "cards").glob("*.card"))
    assert len(cards) == 1 and (kept[0] / "office" / "pki" / "csca.pem").is_file()
