"""The ektp command line as a user runs it: exit codes, one-line errors, JSON, persistence of images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ektp_card.virtual.demo import DEMO_AID, PUBLIC_CONTENT

AID = DEMO_AID.hex().upper()
SELECT_APP = f"00A4040C{len(DEMO_AID):02X}{AID}"


def ektp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ektp_card", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}, check=False,
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "card.img"
    proc = ektp("virtual", "create", str(path))
    assert proc.returncode == 0, proc.stderr
    return path


def test_demo_json() -> None:
    proc = ektp("--json", "demo")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert len(report["card_serial"]) == 16 and report["can"].isdigit()
    assert report["data_groups"] == ["DG1", "DG2", "DG3", "DG7", "DG14", "DG15"]
    assert {s["name"] for s in report["steps"]} >= {"personalise and lock", "read back: chip-authentication"}


def test_apdu_reads_and_writes_persist(image: Path) -> None:
    proc = ektp("--json", "apdu", "--virtual", str(image), SELECT_APP, "00B0810000")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [r["sw"] for r in out] == ["9000", "9000"]
    assert bytes.fromhex(out[1]["data"]) == PUBLIC_CONTENT
    # Write the scratch file (SFI 4) in one process, read it in the next.
    proc = ektp("apdu", "--virtual", str(image), SELECT_APP, "00D68400" + "03414243")
    assert proc.returncode == 0, proc.stderr
    proc = ektp("--json", "apdu", "--virtual", str(image), SELECT_APP, "00B0840003")
    assert json.loads(proc.stdout)[1]["data"] == "414243"


def test_apdu_card_error_exit_code(image: Path) -> None:
    proc = ektp("apdu", "--virtual", str(image), "00A4040C07A0000000000000")
    assert proc.returncode == 6
    assert "6A82 file or application not found" in proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [(("00A4ZZ",), "not valid hex"), (("00A404",), "APDU '00A404'")],
)
def test_apdu_usage_errors(image: Path, args: tuple[str, ...], needle: str) -> None:
    assert_clean_error(ektp("apdu", "--virtual", str(image), *args), 2, needle)


def test_missing_and_corrupt_images(tmp_path: Path) -> None:
    missing = tmp_path / "nope.img"
    assert_clean_error(ektp("apdu", "--virtual", str(missing), "00840000 08"), 7, "nope.img")
    corrupt = tmp_path / "bad.img"
    corrupt.write_bytes(b"\x00garbage")
    assert_clean_error(ektp("virtual", "show", str(corrupt)), 7, "bad.img")
    assert corrupt.read_bytes() == b"\x00garbage"  # never rewritten


def test_create_refuses_overwrite(image: Path) -> None:
    before = image.read_bytes()
    assert_clean_error(ektp("virtual", "create", str(image)), 7, "--force")
    assert image.read_bytes() == before
    assert ektp("virtual", "create", "--force", "--no-extended", str(image)).returncode == 0
    assert json.loads(ektp("--json", "virtual", "show", str(image)).stdout)["extended_length"] is False


def test_show(image: Path) -> None:
    proc = ektp("--json", "virtual", "show", str(image))
    data = json.loads(proc.stdout)
    paths = {f["path"] for f in data["files"]}
    assert {"3F00", "3F00/2F01", "3F00/DF01", "3F00/DF01/0101"} <= paths
    assert data["uid"] == "random per session"
    text = ektp("virtual", "show", str(image), env={"COLUMNS": "200"}).stdout
    assert AID in text and "2F01" in text


def test_traffic_log_on_stderr(image: Path) -> None:
    proc = ektp("-vvv", "apdu", "--virtual", str(image), SELECT_APP, "0020008106313233343536")
    assert f">> {SELECT_APP}" in proc.stderr
    assert "313233343536" not in proc.stderr and "redacted" in proc.stderr


def test_serve_without_vpcd(image: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens there.
    proc = ektp("virtual", "serve", str(image), "--port", "9", "--connect-timeout", "0.3")
    assert_clean_error(proc, 3, "is pcscd running")


def test_two_sources_is_usage_error(image: Path) -> None:
    proc = ektp("apdu", "--virtual", str(image), "--reader", "x", "00840000")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_version_and_help() -> None:
    assert ektp("--version").stdout.startswith("ektp, version")
    assert "virtual" in ektp("--help").stdout


def test_apdu_over_nfc() -> None:
    from ektp_card.virtual import demo_card
    from ektp_card.virtual.isodep import IsoDepCardServer

    with IsoDepCardServer(demo_card()) as server:
        proc = ektp("--json", "apdu", "--nfc", f"udp:127.0.0.1:{server.port}", SELECT_APP, "00B0810000")
    assert proc.returncode == 0, proc.stderr
    assert bytes.fromhex(json.loads(proc.stdout)[1]["data"]) == PUBLIC_CONTENT


def test_nfc_no_card_is_exit_5() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = ektp("apdu", "--nfc", f"udp:127.0.0.1:{port}", "--timeout", "1", "00840000 08")
    assert_clean_error(proc, 5, "")
