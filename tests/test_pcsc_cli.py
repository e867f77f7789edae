"""The CLI and the pytest plugin's --ektp-reader through a real pcscd, with the card served by vpcd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ektp_card.virtual import DEMO_AID, VirtualCard, demo_card
from ektp_card.virtual.demo import PUBLIC_CONTENT

pytestmark = pytest.mark.pcscd

SELECT_APP = f"00A4040C{len(DEMO_AID):02X}{DEMO_AID.hex().upper()}"
ROOT = Path(__file__).parent.parent


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, **(env or {})}, check=False,
    )


def test_readers_and_apdu(vpcd_bridge: Callable[..., Any], pcscd: str) -> None:
    card = demo_card()
    vpcd_bridge(card)
    proc = run("-m", "ektp_card", "--json", "readers")
    assert proc.returncode == 0, proc.stderr
    readers = {r["name"]: r for r in json.loads(proc.stdout)}
    assert readers[pcscd]["card_present"] is True
    assert readers[pcscd]["atr"] == card.atr.hex().upper()
    proc = run("-m", "ektp_card", "--json", "apdu", "--reader", "Virtual PCD 00 00", SELECT_APP, "00B0810000")
    assert proc.returncode == 0, proc.stderr
    assert bytes.fromhex(json.loads(proc.stdout)[1]["data"]) == PUBLIC_CONTENT


def test_reader_errors_exit_codes(pcscd: str) -> None:
    proc = run("-m", "ektp_card", "apdu", "--reader", "No Such Reader", "00840000 08")
    assert proc.returncode == 4 and "Virtual PCD 00 00" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("-m", "ektp_card", "apdu", "--reader", "Virtual PCD 00 01", "--timeout", "0.3", "0084000008")
    assert proc.returncode == 5 and "Traceback" not in proc.stderr


def test_pcscd_not_running_exit_code() -> None:
    proc = run("-m", "ektp_card", "readers", env={"PCSCLITE_CSOCK_NAME": "/nonexistent/pcscd.comm"})
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("Error:") and "Traceback" not in proc.stderr


@pytest.mark.parametrize("flags", [[], ["--pcscd"]])
def test_virtual_serve_then_read(pcscd: str, tmp_path: Path, flags: list[str]) -> None:
    """`ektp virtual serve` in one process, `ektp apdu --reader` in another; the write lands in the image.
    With --pcscd and a pcscd already running, the card goes to that one (no second pcscd)."""
    import time

    image = tmp_path / "card.img"
    demo_card().save(image)
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "ektp_card", "virtual", "serve", str(image), *flags], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        proc = None
        for _ in range(50):
            proc = run("-m", "ektp_card", "--json", "apdu", "--reader", pcscd, "--timeout", "1",
                       SELECT_APP, "00D68400" + "03414243")
            if proc.returncode != 5:
                break
            time.sleep(0.1)
        assert proc is not None and proc.returncode == 0, proc.stderr if proc else ""
    finally:
        server.terminate()
        server.wait(10)
    card = VirtualCard.load(image)
    card.power_on()
    from ektp_card.apdu import ApduProtocol
    from ektp_card.apdu.iso7816 import Iso7816Session

    s = Iso7816Session(ApduProtocol(card))
    s.select_aid(DEMO_AID)
    assert s.read_file(sfi=4)[:3] == b"ABC"


def test_device_tests_against_the_pcscd_reader(vpcd_bridge: Callable[..., Any], pcscd: str) -> None:
    """The plugin's opt-in path: the same device tests, run against a card in a real PC/SC reader."""
    vpcd_bridge(demo_card())
    proc = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/device", "--ektp-reader", pcscd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 passed" in proc.stdout
