"""The station's pages and actions through the ASGI test client: sessions, CSRF, limits, verdicts."""

from __future__ import annotations

import io
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the station extra is not installed")

from PIL import Image  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from ektp_card._station.app import MAX_FINGERPRINT, StationConfig, build_app  # noqa: E402
from ektp_card._station.i18n import CATALOGUE, LANGUAGES  # noqa: E402
from ektp_card._station.security import COOKIE, Sessions  # noqa: E402
from ektp_card._station.slots import VirtualSlot  # noqa: E402
from ektp_card.apdu.transport import Transport  # noqa: E402
from ektp_card.pki.revocation import load_revocation_list  # noqa: E402
from ektp_card.pki.trust import TrustFolder  # noqa: E402
from ektp_card.sandbox import Sandbox, build_sandbox  # noqa: E402
from ektp_card.virtual.card import VirtualCard  # noqa: E402

BASE = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    return build_sandbox(tmp_path_factory.mktemp("station") / "office", seed=21)


class Station:
    """A station over the sandbox and a browser-like client with a session opened."""

    def __init__(
        self, office: Sandbox, slot: VirtualSlot | None = None, trust: TrustFolder | None = None
    ) -> None:
        self.office = office
        self.slot = slot or VirtualSlot(office.cards_dir)
        revocations = load_revocation_list(office.revocations.read_bytes(), office.trust)
        self.sessions = Sessions()
        self.config = StationConfig(self.slot, trust or office.trust, office.terminal, revocations,
                                    operator="siti", demo=True)
        self.app = build_app(self.config, self.sessions)
        self.client = TestClient(self.app, base_url=BASE, raise_server_exceptions=False)
        opened = self.client.get(f"/open?token={self.sessions.token}", follow_redirects=False)
        assert opened.status_code == 303
        self.cookie = opened.headers["set-cookie"]
        page = self.client.get("/clerk")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None
        self.csrf = found.group(1)

    def insert(self, image: Path) -> None:
        answer = self.client.post("/reader", data={"csrf": self.csrf, "card": image.name, "action": "insert"},
                                  follow_redirects=False)
        assert answer.status_code == 303

    def verify(self, can: str, finger: bytes | None = None) -> tuple[int, str]:
        files = None if finger is None else {"fingerprint": ("capture.fmr", finger)}
        answer = self.client.post("/clerk/verify", data={"csrf": self.csrf, "can": can}, files=files)
        return answer.status_code, answer.text


def verdict(html: str) -> str | None:
    found = re.search(r'id="verdict" data-verdict="([a-z_]+)"', html)
    return None if found is None else found.group(1)


def error(html: str) -> str:
    found = re.search(r'id="error">([^<]+)<', html)
    assert found is not None, html
    return found.group(1)


@pytest.fixture
def station(office: Sandbox) -> Station:
    return Station(office)


def test_nothing_without_the_token(office: Sandbox) -> None:
    sessions = Sessions()
    app = build_app(StationConfig(VirtualSlot(office.cards_dir), office.trust), sessions)
    client = TestClient(app, base_url=BASE)
    for path in ("/", "/clerk", "/api/status", "/static/station.css", "/clerk/result/x", "/nowhere"):
        assert client.get(path).status_code == 403, path
    assert client.post("/clerk/verify", data={"can": "123456"}).status_code == 403
    assert client.get("/open?token=wrong").status_code == 403
    assert client.get("/open").status_code == 403
    client.cookies.set(COOKIE, "forged-session-id")
    assert client.get("/clerk").status_code == 403
    opened = client.get(f"/open?token={sessions.token}", follow_redirects=False)
    cookie = opened.headers["set-cookie"]
    assert opened.status_code == 303 and opened.headers["location"] == "/clerk"
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and sessions.token not in cookie


def test_security_headers_and_no_inline_script(station: Station) -> None:
    page = station.client.get("/clerk")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text and " on" + "click=" not in page.text
    assert station.client.get("/static/station.js").status_code == 200


@pytest.mark.parametrize("language", LANGUAGES)
def test_pages_render_in_both_languages(station: Station, language: str) -> None:
    answer = station.client.post("/language", data={"csrf": station.csrf, "lang": language, "back": "/clerk"})
    assert answer.status_code == 200 and f'<html lang="{language}">' in answer.text
    assert station.client.get("/clerk").text.count(CATALOGUE["clerk.verify"][language]) >= 1
    station.insert(station.office.genuine.image)
    code, html = station.verify(station.office.genuine.can)
    assert code == 200 and CATALOGUE["verdict.genuine"][language] in html


def test_every_string_in_both_languages() -> None:
    for key, texts in CATALOGUE.items():
        assert set(texts) == set(LANGUAGES), key
        assert all(text.strip() for text in texts.values()), key


def test_genuine_card_with_the_holders_finger(station: Station) -> None:
    office = station.office
    station.insert(office.genuine.image)
    code, html = station.verify(office.genuine.can, office.genuine.holder_capture.read_bytes())
    assert code == 200 and verdict(html) == "genuine"
    assert office.genuine.can not in html
    assert office.genuine.nik in html and 'id="fingerprint-result"' in html
    assert re.search(r'data-check="fingerprint" data-status="pass"', html)
    face = re.search(r'src="(/clerk/face/[^"]+)"', html)
    assert face is not None
    image = station.client.get(face.group(1))
    assert image.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(image.content)) as picture:
        assert picture.width > 0 and picture.height > 0


@pytest.mark.parametrize(
    ("card", "finger", "expected"),
    [("clone", None, "cloned"), ("lost", None, "revoked"), ("genuine", "other", "holder_mismatch")],
)
def test_verdicts(station: Station, card: str, finger: str | None, expected: str) -> None:
    office = station.office
    image = {"clone": office.clone, "lost": office.lost.image, "genuine": office.genuine.image}[card]
    can = office.lost.can if card == "lost" else office.genuine.can
    station.insert(image)
    capture = None if finger is None else office.genuine.other_capture.read_bytes()
    code, html = station.verify(can, capture)
    assert code == 200 and verdict(html) == expected


def test_wrong_can_leaves_the_page_usable(station: Station) -> None:
    station.insert(station.office.cards[1].image)
    code, html = station.verify("000000" if station.office.cards[1].can != "000000" else "111111")
    assert code == 400 and "CAN" in error(html) and 'id="verify-form"' in html
    assert 'value=""' in html  # the CAN field starts empty again
    code, html = station.verify(station.office.cards[1].can)
    assert verdict(html) == "genuine"


@pytest.mark.parametrize("can", ["", "12345", "1234567", "12345a", "١٢٣٤٥٦"])
def test_can_must_be_six_digits(station: Station, can: str) -> None:
    code, html = station.verify(can)
    assert code == 400 and error(html) == CATALOGUE["clerk.can.invalid"]["id"]


def test_csrf_and_origin(station: Station) -> None:
    data = {"csrf": "not-the-token", "can": "123456"}
    assert station.client.post("/clerk/verify", data=data).status_code == 403
    assert station.client.post("/clerk/verify", data={"can": "123456"}).status_code == 403
    good = {"csrf": station.csrf, "card": station.office.genuine.image.name, "action": "insert"}
    foreign = station.client.post("/reader", data=good, headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert station.client.post("/reader", data=good, headers={"origin": BASE},
                               follow_redirects=False).status_code == 303


def test_upload_limits(station: Station) -> None:
    station.insert(station.office.genuine.image)
    code, html = station.verify(station.office.genuine.can, b"\x00" * (MAX_FINGERPRINT + 1))
    assert code == 413 and error(html) == CATALOGUE["clerk.fingerprint.too_large"]["id"]
    code, html = station.verify(station.office.genuine.can, b"not a template")
    assert code == 400 and error(html).startswith("File sidik jari tidak dapat dibaca: ")
    huge = station.client.post("/clerk/verify", content=b"x", headers={"content-length": str(10**9)})
    assert huge.status_code == 413


def test_no_card_and_unknown_card(station: Station) -> None:
    station.client.post("/reader", data={"csrf": station.csrf, "action": "remove"})
    code, html = station.verify("123456")
    assert code == 409 and error(html) == CATALOGUE["error.no_card"]["id"]
    answer = station.client.post("/reader", data={"csrf": station.csrf, "card": "../registry.sqlite",
                                                  "action": "insert"})
    assert answer.status_code == 400 and station.slot.inserted is None


def test_reader_busy(station: Station) -> None:
    station.insert(station.office.genuine.image)
    with station.slot.use():
        code, html = station.verify(station.office.genuine.can)
        assert station.client.get("/api/status").json()["busy"] is True
    assert code == 409 and error(html) == CATALOGUE["reader.busy"]["id"]


class _PulledSlot(VirtualSlot):
    """A virtual reader whose card a hand takes away after ``after`` commands."""

    def __init__(self, folder: Path, after: int) -> None:
        super().__init__(folder)
        self.after = after

    @contextmanager
    def use(self) -> Iterator[Transport]:
        slot = self

        class Hand:
            def __init__(self, inner: Transport) -> None:
                self.inner, self.count = inner, 0

            def transceive(self, command: bytes) -> bytes:
                self.count += 1
                if self.count == slot.after:
                    slot.remove()
                return self.inner.transceive(command)

        with super().use() as transport:
            yield Hand(transport)


def test_card_removed_mid_verify(office: Sandbox) -> None:
    station = Station(office, _PulledSlot(office.cards_dir, after=12))
    station.insert(office.genuine.image)
    before = office.genuine.image.read_bytes()
    code, html = station.verify(office.genuine.can)
    assert code == 409 and error(html) == CATALOGUE["error.removed"]["id"]
    assert office.genuine.image.read_bytes() == before


def test_passport_form_rejects_a_bad_mrz(station: Station) -> None:
    answer = station.client.post("/clerk/passport", data={"csrf": station.csrf, "mrz": "P<IDN<<<"})
    assert answer.status_code == 400 and "MRZ" in error(answer.text)


def test_results_are_per_session_and_expire(station: Station, office: Sandbox) -> None:
    station.insert(office.genuine.image)
    answer = station.client.post("/clerk/verify", data={"csrf": station.csrf, "can": office.genuine.can},
                                 follow_redirects=False)
    location = answer.headers["location"]
    assert station.client.get(location).status_code == 200
    other = Station(office)
    assert other.client.get(location).status_code == 404
    assert station.client.get("/clerk/result/unknown").status_code == 404


def test_a_server_error_shows_no_traceback(station: Station, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("internal detail /secret/path")

    monkeypatch.setattr(station.slot, "status", broken)
    answer = station.client.get("/api/status")
    assert answer.status_code == 500
    assert "Traceback" not in answer.text and "/secret/path" not in answer.text


def test_status_follows_the_reader(station: Station) -> None:
    station.client.post("/reader", data={"csrf": station.csrf, "action": "remove"})
    assert station.client.get("/api/status").json() == {"present": False, "label": "", "busy": False,
                                                        "problem": None}
    station.insert(station.office.clone)
    assert station.client.get("/api/status").json()["label"] == station.office.clone.name


def test_concurrent_clicks_one_card_operation_at_a_time(station: Station) -> None:
    station.insert(station.office.genuine.image)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def click() -> None:
        barrier.wait()
        code, _ = station.verify(station.office.genuine.can)
        results.append(code)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Either both ran one after the other, or one was told the reader was busy: never interleaved.
    assert sorted(results) in ([200, 200], [200, 409])


def test_jpeg2000_faces_are_shown_as_png() -> None:
    from ektp_card._station.faces import FaceImageError, face_png

    source = Image.new("RGB", (48, 64))
    source.putdata([((x * 5) % 256, (y * 4) % 256, (x * y) % 256) for y in range(64) for x in range(48)])
    jp2 = io.BytesIO()
    source.save(jp2, format="JPEG2000", irreversible=False)  # lossless: every pixel must come back
    assert jp2.getvalue()[4:8] == b"jP  "
    with Image.open(io.BytesIO(face_png(jp2.getvalue()))) as shown:
        assert shown.format == "PNG" and shown.size == (48, 64)
        assert shown.convert("RGB").tobytes() == source.tobytes()
    with pytest.raises(FaceImageError):
        face_png(b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 40)


@pytest.mark.parametrize("pace", [False, True])
def test_a_passport_with_the_mrz(tmp_path: Path, fresh_passport: Any, issuer: Any, pace: bool) -> None:
    folder = tmp_path / "cards"
    folder.mkdir()
    fresh_passport(pace=pace).save(folder / "passport.card")
    slot = VirtualSlot(folder)
    sessions = Sessions()
    app = build_app(StationConfig(slot, issuer().trust), sessions)
    client = TestClient(app, base_url=BASE)
    client.get(f"/open?token={sessions.token}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/clerk").text)
    assert csrf is not None
    slot.insert("passport.card")
    # The key fields of the ICAO Doc 9303-3 specimen, as a clerk would type them.
    page = client.post("/clerk/passport", data={"csrf": csrf.group(1), "mrz": "L898902C3,740812,120415"})
    assert verdict(page.text) == "genuine"
    assert "ERIKSSON" in page.text and ('data-check="bac"' in page.text) != pace
    face = re.search(r'src="(/clerk/face/[^"]+)"', page.text)
    assert face is not None and client.get(face.group(1)).headers["content-type"] == "image/png"
    wrong = client.post("/clerk/passport", data={"csrf": csrf.group(1), "mrz": "L898902C3,740812,130415"})
    assert wrong.status_code == 400 and "MRZ" in error(wrong.text)


def _passport_page(tmp_path: Path, ektp_office: Any, passport: VirtualCard) -> tuple[TestClient, str]:
    """The clerk's result page for ``passport`` read by its MRZ, and the client that has the session."""
    from ektp_card.sandbox import SPECIMEN_MRZ

    folder = tmp_path / "cards"
    folder.mkdir()
    passport.save(folder / "passport.card")
    slot = VirtualSlot(folder)
    slot.insert("passport.card")
    sessions = Sessions()
    client = TestClient(build_app(StationConfig(slot, ektp_office.trust), sessions), base_url=BASE)
    client.get(f"/open?token={sessions.token}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/clerk").text)
    assert csrf is not None
    return client, client.post("/clerk/passport", data={"csrf": csrf.group(1), "mrz": SPECIMEN_MRZ}).text


def test_a_passport_with_a_jpeg2000_face(tmp_path: Path, ektp_office: Any) -> None:
    from ektp_card.lds.biometrics import FaceImage, ImageDataType
    from ektp_card.sandbox import make_passport

    source = Image.new("RGB", (60, 80), (200, 150, 120))
    jp2 = io.BytesIO()
    source.save(jp2, format="JPEG2000", irreversible=False)
    face = FaceImage(jp2.getvalue(), 60, 80, image_data_type=ImageDataType.JPEG2000)
    client, page = _passport_page(tmp_path, ektp_office, make_passport(ektp_office, face=face))
    assert verdict(page) == "genuine" and "jpeg2000" in page and "ZENITH" in page
    shown = re.search(r'src="(/clerk/face/[^"]+)"', page)
    assert shown is not None
    with Image.open(io.BytesIO(client.get(shown.group(1)).content)) as png:
        assert png.format == "PNG" and png.convert("RGB").tobytes() == source.tobytes()


def test_a_changed_trust_folder_counts_from_the_next_card(office: Sandbox, tmp_path: Path) -> None:
    folder = tmp_path / "trust"
    shutil.copytree(office.trust_dir, folder)
    station = Station(office, trust=TrustFolder(folder))
    station.insert(office.genuine.image)
    assert verdict(station.verify(office.genuine.can)[1]) == "genuine"
    # The country signing CA is withdrawn from the folder while the station runs.
    for path in folder.iterdir():
        if path.suffix.lower() in (".pem", ".crt", ".cer", ".der"):
            path.unlink()
    code, html = station.verify(office.genuine.can)
    assert code == 200 and verdict(html) != "genuine", html
    assert "no trust anchor for country ID" in html


def test_the_clerk_sees_what_proved_the_chip(station: Station) -> None:
    station.insert(station.office.genuine.image)
    html = station.verify(station.office.genuine.can)[1]
    found = re.search(r'id="proved-by">([^<]+)<', html)
    assert verdict(html) == "genuine" and found is not None
    expected = "Chip terbukti asli lewat: Chip Authentication, Active Authentication (tanda tangan chip)"
    assert found.group(1) == expected
    station.insert(station.office.clone)
    html = station.verify(station.office.genuine.can)[1]
    assert verdict(html) == "cloned" and 'id="proved-by"' not in html


def test_a_passport_with_a_signature_shows_it(tmp_path: Path, ektp_office: Any) -> None:
    import random

    from ektp_card.lds.synthetic import signature_image
    from ektp_card.sandbox import make_passport

    signature = signature_image(random.Random(2))  # noqa: S311 - synthetic
    client, page = _passport_page(tmp_path, ektp_office, make_passport(ektp_office, signature=signature))
    assert verdict(page) == "genuine"
    assert "Signature (DG7)" in page or "Tanda tangan (DG7)" in page
    shown = re.search(r'src="(/clerk/signature/[^"]+)"', page)
    assert shown is not None
    with Image.open(io.BytesIO(client.get(shown.group(1)).content)) as png, \
            Image.open(io.BytesIO(signature)) as source:
        assert png.format == "PNG" and png.size == source.size
        assert png.convert("L").tobytes() == source.convert("L").tobytes()
    assert client.get("/clerk/signature/nothing").status_code == 404
