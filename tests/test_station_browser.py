"""The station in a real browser: Debian's Chromium driven by Playwright, against the station served by
uvicorn on loopback. Screenshots of the pages go to the test's folder (and to $EKTP_STATION_SCREENSHOTS,
when set, to refresh docs/station/)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ektp_card.pki.revocation import load_revocation_list
from ektp_card.sandbox import Sandbox, build_sandbox

CHROMIUM = Path("/usr/bin/chromium")
#: Chromium's own network traffic is refused on this machine's closed network: keep it quiet.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need(what: str, ok: bool) -> None:
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is missing; CI must run the browser tests (scripts/install.sh installs it)",
                    pytrace=False)
    pytest.skip(f"{what} is missing (scripts/install.sh installs it)")


try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # pragma: no cover - the test extra has it
    sync_playwright = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    _need("Playwright for Python", sync_playwright is not None)
    _need(f"Debian's Chromium ({CHROMIUM})", CHROMIUM.exists())
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Served:
    """The station on a free loopback port, in a thread, until the test ends."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        from ektp_card._station.app import build_app
        from ektp_card._station.security import Sessions

        self.sessions = Sessions()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(build_app(config, self.sessions), log_level="warning",
                                                    access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the station did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    return build_sandbox(tmp_path_factory.mktemp("browser") / "office", seed=31)


@pytest.fixture
def served(office: Sandbox) -> Iterator[Served]:
    from ektp_card._station.app import StationConfig
    from ektp_card._station.slots import VirtualSlot

    revocations = load_revocation_list(office.revocations.read_bytes(), office.trust)
    served = Served(StationConfig(VirtualSlot(office.cards_dir), office.trust, office.terminal, revocations,
                                  operator="siti", demo=True))
    yield served
    served.stop()


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    keep = os.environ.get("EKTP_STATION_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for picture in folder.iterdir():
            shutil.copy(picture, Path(keep) / picture.name)


def _open(browser: Browser, served: Served) -> Page:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{served.url}/open?token={served.sessions.token}")
    assert page.url == f"{served.url}/clerk"  # the token left the address bar
    return page


def _insert(page: Page, name: str) -> None:
    page.select_option("#card", name)
    page.click("#insert")
    page.wait_for_selector("#reader-status.present")


def _verify(page: Page, can: str, finger: Path | None = None) -> str:
    page.fill("#can", can)
    if finger is not None:
        page.set_input_files("#fingerprint", str(finger))
    page.click("#verify")
    page.wait_for_load_state()
    verdict = page.query_selector("#verdict")
    return "" if verdict is None else str(verdict.get_attribute("data-verdict"))


def test_clerk_verifies_a_genuine_card(
    browser: Browser, served: Served, office: Sandbox, shots: Path
) -> None:
    page = _open(browser, served)
    page.screenshot(path=str(shots / "clerk-start.png"), full_page=True)
    _insert(page, office.genuine.image.name)
    assert _verify(page, office.genuine.can, office.genuine.holder_capture) == "genuine"
    face = page.wait_for_selector("#face")
    assert face is not None
    page.wait_for_function("document.getElementById('face').complete")
    assert int(face.evaluate("img => img.naturalWidth")) > 0
    assert office.genuine.nik in page.inner_text("#printed")
    assert page.get_attribute('[data-check="fingerprint"]', "data-status") == "pass"
    assert office.genuine.can not in page.content()
    page.screenshot(path=str(shots / "clerk-genuine.png"), full_page=True)
    assert page.inner_text("#verdict .verdict-word").strip() == "ASLI"
    page.click("#lang-switch")
    page.wait_for_load_state()
    assert page.inner_text("#verdict .verdict-word").strip() == "GENUINE"


@pytest.mark.parametrize(("card", "finger", "expected"), [
    ("clone", None, "cloned"), ("lost", None, "revoked"), ("genuine", "other", "holder_mismatch"),
])
def test_clerk_sees_what_is_wrong(
    browser: Browser, served: Served, office: Sandbox, shots: Path, card: str, finger: str | None,
    expected: str,
) -> None:
    page = _open(browser, served)
    image = {"clone": office.clone, "lost": office.lost.image, "genuine": office.genuine.image}[card]
    _insert(page, image.name)
    can = office.lost.can if card == "lost" else office.genuine.can
    capture = office.genuine.other_capture if finger == "other" else None
    assert _verify(page, can, capture) == expected
    page.screenshot(path=str(shots / f"clerk-{expected}.png"), full_page=True)


def test_wrong_can_keeps_the_page_usable(browser: Browser, served: Served, office: Sandbox) -> None:
    page = _open(browser, served)
    _insert(page, office.cards[1].image.name)
    wrong = "000000" if office.cards[1].can != "000000" else "111111"
    assert _verify(page, wrong) == ""
    assert "CAN" in page.inner_text("#error")
    assert page.input_value("#can") == ""
    assert _verify(page, office.cards[1].can) == "genuine"


def test_reader_status_updates_by_itself(browser: Browser, served: Served, office: Sandbox) -> None:
    page = _open(browser, served)
    _insert(page, office.genuine.image.name)
    other = browser.new_page()
    other.goto(f"{served.url}/open?token={served.sessions.token}")
    other.click("#remove")
    # The first page polls the reader: its status line changes without a reload.
    page.wait_for_selector("#reader-status.empty", timeout=5000)
