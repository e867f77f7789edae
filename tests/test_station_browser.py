"""The station in a real browser: Debian's Chromium driven by Playwright, against the station served by
uvicorn on loopback. Screenshots of the pages go to the test's folder (and to $EKTP_STATION_SCREENSHOTS,
when set, to refresh docs/station/)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from ektp_card.pki.revocation import load_revocation_list
from ektp_card.sandbox import Sandbox, build_sandbox

CHROMIUM = Path("/usr/bin/chromium")
#: Chromium's own network traffic is refused on this machine's closed network: keep it quiet.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # pragma: no cover - the test extra has it
    sync_playwright = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def browser(unavailable: Callable[[str, str], NoReturn]) -> Iterator[Browser]:
    hint = "scripts/install.sh installs it"
    if sync_playwright is None:
        unavailable("Playwright for Python is missing", hint)
    if not CHROMIUM.exists():
        unavailable(f"Debian's Chromium ({CHROMIUM}) is missing", hint)
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
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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


def _wait_until(page: Page, script: str, seconds: float = 30) -> None:
    """Poll ``script`` in the page (the station's CSP forbids the string eval wait_for_function uses)."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(script):
        if time.monotonic() > deadline:
            raise AssertionError(f"never true: {script}")
        time.sleep(0.05)


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
    _wait_until(page, "document.getElementById('face').complete")
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


# --- the desk and the reviewer ------------------------------------------------------------------------


class _SlowBlanks:
    """The sandbox's blank cards, each taking a moment to arrive, as a card feeder does: long enough for
    the operator to reload the page in the middle of the batch."""

    def __init__(self, inner: Any, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds
        self.description = inner.description

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def blank_card(self, cancel: Any, notice: Any) -> Any:
        time.sleep(self.seconds)
        return self.inner.blank_card(cancel, notice)


@pytest.fixture
def desk_office(tmp_path: Path) -> Sandbox:
    return build_sandbox(tmp_path / "desk-office", seed=37)


@pytest.fixture
def desk_served(desk_office: Sandbox) -> Iterator[Served]:
    from ektp_card._station.app import StationConfig
    from ektp_card._station.desk import DeskConfig
    from ektp_card._station.slots import VirtualSlot
    from ektp_card.desk.batch import Issuance, VirtualCardDir
    from ektp_card.sandbox import SANDBOX_DESK

    o = desk_office
    issuance = Issuance(o.master_key, o.document_signer, o.trust, cvca_certificate=o.cvca_certificate)
    cards = _SlowBlanks(VirtualCardDir(o.cards_dir, o.master_key), 0.15)
    desk = DeskConfig(str(o.registry), o.root / "station", SANDBOX_DESK, 150, issuance, cards)
    served = Served(StationConfig(VirtualSlot(o.cards_dir), o.trust, o.terminal, operator="siti", demo=True,
                                  desk=desk))
    yield served
    served.stop()


def test_desk_operator_issues_a_batch_and_hands_cards_over(
    browser: Browser, desk_served: Served, desk_office: Sandbox, shots: Path
) -> None:
    o = desk_office
    page = _open(browser, desk_served)
    page.click("#nav-desk")
    page.set_input_files("#batch", str(o.batch))
    page.click("#upload")
    page.wait_for_selector("#batch-summary")
    assert "20 baris: 18 dapat diterbitkan, 2 ditolak" in page.inner_text("#batch-summary")
    assert page.locator("#rejected li").count() == 2
    page.screenshot(path=str(shots / "desk-batch-checked.png"), full_page=True)
    page.click("#issue")
    _wait_until(page, "document.getElementById('progress-bar') !== null && "
                      "document.getElementById('progress-bar').value >= 3")
    seen = int(page.evaluate("document.getElementById('progress-bar').value"))
    page.screenshot(path=str(shots / "desk-batch-progress.png"), full_page=True)
    page.reload()  # the batch goes on in the station, whatever the browser does
    page.wait_for_selector("#progress")
    assert int(page.evaluate("document.getElementById('progress-bar').value")) >= seen
    page.wait_for_selector('#progress[data-state="finished"]', timeout=60_000)
    assert "18 diterbitkan" in page.inner_text("#progress-result")

    # A card of the sandbox waits for its holder: a wrong finger is refused, the right one accepted.
    card = o.cards[1]
    page.click("#desk-handover")
    _insert(page, card.image.name)
    for capture, expected in ((card.other_capture, "DITOLAK"), (card.holder_capture, "diserahkan")):
        page.select_option("#serial", card.serial)
        page.fill("#can", card.can)
        page.set_input_files("#fingerprint", str(capture))
        page.click("#hand-over")
        page.wait_for_selector("#message")
        assert expected in page.inner_text("#message")
    page.screenshot(path=str(shots / "desk-handover.png"), full_page=True)

    # Report the handed-over card lost, with a confirmation.
    page.goto(f"{desk_served.url}/desk/card/{card.serial}")
    page.fill("#police_report", "LP/B/77/XII/2026")
    page.click("#do-lost")
    page.wait_for_selector("#confirm")
    page.click("#confirm-yes")
    page.wait_for_selector('#card-state[data-state="lost"]')

    page.click("#desk-report")
    chart = page.wait_for_selector("#chart-daily")
    assert chart is not None and page.locator("#chart-daily rect").count() == 14
    today_bar = page.locator("#chart-daily rect").last
    assert int(str(today_bar.get_attribute("data-value"))) >= 18
    page.screenshot(path=str(shots / "desk-report.png"), full_page=True)


def test_reviewer_runs_the_audit_on_a_clone(
    browser: Browser, served: Served, office: Sandbox, shots: Path
) -> None:
    page = _open(browser, served)
    _insert(page, office.clone.name)
    page.click("#nav-review")
    page.fill("#can", office.genuine.can)
    page.click("#run-review")
    page.wait_for_selector('#audit[data-state="finished"]', timeout=60_000)
    assert page.get_attribute('[data-test="CLONE-COPY"]', "data-outcome") == "fail"
    page.screenshot(path=str(shots / "review-clone.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#download-junit")
    assert download.value.suggested_filename.endswith(".xml")


def test_clerk_through_a_real_pcscd(
    browser: Browser, office: Sandbox, vpcd_bridge: Any, pcscd: str, shots: Path
) -> None:
    from ektp_card._station.app import StationConfig
    from ektp_card._station.slots import ReaderSlot
    from ektp_card.virtual.card import VirtualCard

    card = VirtualCard.load(office.genuine.image)
    vpcd_bridge(card)
    served = Served(StationConfig(ReaderSlot(pcscd), office.trust, office.terminal, operator="siti"))
    try:
        page = _open(browser, served)
        page.wait_for_selector("#reader-status.present")
        assert "Virtual PCD" in page.inner_text("#reader-status")
        assert _verify(page, office.genuine.can, office.genuine.holder_capture) == "genuine"
        assert int(str(page.eval_on_selector("#face", "img => img.naturalWidth"))) > 0
    finally:
        served.stop()
