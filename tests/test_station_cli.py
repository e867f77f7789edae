"""`ektp station`: option checks, and a demo station that starts, serves and stops."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
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


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "ektp_card", "station", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"(http://127\.0\.0\.1:\d+)/open\?token=(\S+)", line)
    if found is None:
        proc.kill()
        raise AssertionError(f"the station did not start: {line!r} {proc.communicate()[1]!r}")
    return proc, found.group(1), found.group(2)


def _client(base: str, token: str) -> tuple[httpx2.Client, str]:
    client = httpx2.Client(base_url=base, timeout=30)
    page = client.get(f"/open?token={token}", follow_redirects=True)
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return client, found.group(1)


def test_a_station_killed_mid_batch_loses_nothing(tmp_path: Path) -> None:
    from ektp_card.desk.registry import CardState, open_registry
    from ektp_card.sandbox import SANDBOX_DESK, build_sandbox

    office = build_sandbox(tmp_path / "office", seed=9, batch_records=60)
    key = tmp_path / "issuer.key"
    key.write_text(office.master_key.hex())
    cvca = tmp_path / "cvca.cvcert"
    cvca.write_bytes(office.cvca_certificate)
    env = dict(os.environ, PYTHONUNBUFFERED="1", EKTP_DS_PASSPHRASE=office.passphrase.decode())
    args = ["--virtual-dir", str(office.cards_dir), "--trust", str(office.trust_dir), "--registry",
            str(office.registry), "--desk", SANDBOX_DESK, "--pki", str(office.pki_dir), "--master-key-file",
            str(key), "--cvca", str(cvca), "--work-dir", str(tmp_path / "work")]
    proc, base, token = _start(args, env)
    try:
        client, csrf = _client(base, token)
        where = client.post("/desk/batch", data={"csrf": csrf},
                            files={"batch": ("batch.jsonl", office.batch.read_bytes())}).headers["location"]
        client.post(f"{where}/issue", data={"csrf": csrf})
        while (client.get(f"{where}/progress").json() or {"done": 0})["done"] < 4:
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)  # a power cut: no chance to finish the card in hand
        proc.communicate(timeout=20)
    bid = where.rsplit("/", 1)[-1]
    with open_registry(office.registry) as registry:
        before = registry.cards(batch=bid)
    assert 0 < len(before) < 58

    proc, base, token = _start(args, env)
    try:
        client, csrf = _client(base, token)
        assert client.post("/desk/batch", data={"csrf": csrf}, files={
            "batch": ("again.jsonl", office.batch.read_bytes())}).headers["location"] == where
        client.post(f"{where}/issue", data={"csrf": csrf})
        deadline = time.monotonic() + 120
        while client.get(f"{where}/progress").json()["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    with open_registry(office.registry) as registry:
        cards = registry.cards(batch=bid)
        assert registry.verify_chain() is None
    states = [row.state for row in cards]
    # Every valid row issued once: the card in hand at the cut is finished or spoiled, never doubled.
    issued = [row for row in cards if row.state is CardState.PERSONALISED]
    assert len(issued) == 58 and len({row.nik for row in issued}) == 58
    assert set(states) <= {CardState.PERSONALISED, CardState.SPOILED}
    for row in issued:
        assert (office.cards_dir / f"{row.serial}.card").is_file()


def test_the_listening_socket_says_it_is_tcp() -> None:
    # asyncio turns Nagle off only for sockets whose protocol is TCP; without it every answer on a
    # kept-alive connection waits for the browser's delayed ACK (about 40 ms a request).
    from ektp_card._cli.station import _bind

    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
