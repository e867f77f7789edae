"""The test suite's shared set-up: hypothesis profiles, the "skip here, fail under CI" rule, and the
pcscd fixtures (``pcscd``, ``vpcd_bridge``). Everything else test modules share is a fixture in the
plugins under ``tests/fixtures/``, registered below: test modules never import each other."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from hypothesis import HealthCheck, settings

from ektp_card.errors import EktpError

pytest_plugins = [
    "fixtures.tools",
    "fixtures.postgres",
    "fixtures.document_pki",
    "fixtures.terminal_pki",
    "fixtures.cards",
    "fixtures.desk",
]

#: Under CI every test must run: a missing tool is a failure there, and hypothesis repeats itself.
UNDER_CI = os.environ.get("CI", "").lower() == "true"

# The machines are shared and noisy: no per-example deadline anywhere, and under CI the same
# examples every run, so a red CI is a regression and not the luck of the draw. Developers keep
# hypothesis's random exploration.
settings.register_profile("ektp", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ektp-ci", parent=settings.get_profile("ektp"), derandomize=True)
settings.load_profile("ektp-ci" if UNDER_CI else "ektp")

CI_MUST_RUN = "CI=true, where every test must run"


def unavailable(message: str, hint: str) -> NoReturn:
    """A tool or package a test needs is missing: skip on a developer's machine, fail under CI."""
    if UNDER_CI:
        pytest.fail(f"{message}; {CI_MUST_RUN}: {hint}", pytrace=False)
    pytest.skip(f"{message}; {hint}")


@pytest.fixture(scope="session", name="unavailable")
def unavailable_fixture() -> Callable[[str, str], NoReturn]:
    """:func:`unavailable` for the fixtures and tests that check for a tool themselves."""
    return unavailable


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, pytest.CollectReport, Any]:
    """A whole module skipped (``pytest.importorskip`` of an optional package at its top) follows the
    same rule as :func:`unavailable`: under CI it is a failure."""
    report = yield
    if UNDER_CI and report.skipped and isinstance(collector, pytest.Module):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{reason.removeprefix('Skipped: ')}; {CI_MUST_RUN}"
    return report


#: One test session at a time may drive the vpcd readers on this machine (they are machine-wide).
PCSCD_LOCK = Path(tempfile.gettempdir()) / "ektp-card-vpcd.lock"
PCSCD_LOCK_WAIT = 300.0

INSTALL_HINT = "install it with `apt-get install pcscd vsmartcard-vpcd` (or run scripts/install.sh)"


def _lock_vpcd(path: Path, wait: float) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                pytest.fail(f"another test session held {path} for more than {wait:g} s", pytrace=False)
            time.sleep(0.2)


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A pcscd offering the vpcd reader; yields the reader name ("Virtual PCD 00 00").

    Uses a pcscd that already answers, else starts ``pcscd --foreground`` for the session and stops
    it at the end. Skips (fails under CI=true) when pcscd, the vpcd driver or pyscard is missing.
    """
    try:
        import smartcard  # noqa: F401
    except ImportError:
        unavailable("pyscard is not installed", INSTALL_HINT)
    from ektp_card.virtual.pcscd import PcscdProcess, pcscd_binary, reader_names
    from ektp_card.virtual.vpcd import VPCD_READER

    fd = _lock_vpcd(PCSCD_LOCK, PCSCD_LOCK_WAIT)
    started: PcscdProcess | None = None
    try:
        names = reader_names()
        if names is None:
            if pcscd_binary() is None:
                unavailable("pcscd is not installed", INSTALL_HINT)
            log_path = tmp_path_factory.mktemp("pcscd") / "pcscd.log"
            try:
                started = PcscdProcess.start(timeout=15.0, log_path=log_path)
            except EktpError as exc:
                unavailable(f"could not start pcscd: {exc}", INSTALL_HINT)
        elif VPCD_READER not in names:
            unavailable(
                f"the running pcscd has no reader {VPCD_READER!r} (vsmartcard-vpcd missing?)", INSTALL_HINT
            )
        yield VPCD_READER
    finally:
        if started is not None:
            started.stop()
        os.close(fd)  # releases the lock


def _wait_until_present(reader: str, timeout: float = 5.0) -> None:
    """pcscd polls the card before it publishes it as present: wait for the reader state to say so,
    so a test never races pcscd's own bookkeeping."""
    from ektp_card.apdu.pcsc import list_readers

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r.name == reader and r.card_present for r in list_readers()):
            return
        time.sleep(0.02)
    pytest.fail(f"pcscd did not report a card in {reader!r} within {timeout:g} s", pytrace=False)


@pytest.fixture
def vpcd_bridge(pcscd: str) -> Iterator[Callable[..., Any]]:
    """A factory ``serve(card, port=35963, **kwargs) -> VpcdBridge`` that puts a card in a vpcd reader.

    ``serve`` returns once pcscd has seen the card; every bridge still running is stopped at teardown.
    """
    from ektp_card.virtual.vpcd import VPCD_PORT, VpcdBridge

    bridges: list[VpcdBridge] = []

    def serve(card: Any, port: int = VPCD_PORT, **kwargs: Any) -> VpcdBridge:
        bridge = VpcdBridge(card, port=port, **kwargs)
        bridge.start()
        bridges.append(bridge)
        _wait_until_present(f"Virtual PCD 00 {port - VPCD_PORT:02d}")
        return bridge

    yield serve
    for bridge in bridges:
        bridge.stop()
