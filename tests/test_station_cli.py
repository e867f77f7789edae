"""`ektp station`: option checks, and a demo station that starts, serves and stops."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the station extra is not installed")
import httpx2  # noqa: E402

from ektp_card._cli import main  # noqa: E402
from ektp_card._cli.util import ExitCode  # noqa: E402


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return int(exit_info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(("args", "says"), [
    (["station"], "--reader NAME or --virtual-dir DIR"),
    (["station", "--reader", "X", "--virtual-dir", "."], "--reader NAME or --virtual-dir DIR"),
    (["station", "--demo", "--reader", "X"], "--demo makes its own"),
    (["station", "--demo-dir", "x"], "--demo-dir goes with --demo"),
    (["station", "--demo", "--host", "192.0.2.7"], "--tls-cert and --tls-key"),
    (["station", "--virtual-dir", ".", "--revocations", "x.p7"], "--revocations needs --trust"),
])
def test_usage_errors(capsys: pytest.CaptureFixture[str], args: list[str], says: str) -> None:
    code, err = _run(args, capsys)
    assert code == ExitCode.USAGE and says in err and err.count("\n") == 1


def test_demo_station_serves_and_stops(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ektp_card", "station", "--demo", "--demo-dir", str(tmp_path / "office"),
         "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/open\?token=(\S+)", line)
        assert found is not None, line
        base, token = found.groups()
        with httpx2.Client(base_url=base) as client:
            assert client.get("/clerk").status_code == 403
            opened = client.get(f"/open?token={token}", follow_redirects=True)
            assert opened.status_code == 200 and "Stasiun e-KTP" in opened.text
            assert client.get("/api/status").json()["present"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert "Traceback" not in err
    assert (tmp_path / "office" / "cards").is_dir()
