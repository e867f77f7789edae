"""The station's desk and reviewer pages through the ASGI client: batches checked then issued, progress,
resuming after the station stopped, handover, life-cycle actions, the report, the audit."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the station extra is not installed")

from starlette.testclient import TestClient  # noqa: E402

from ektp_card._station.app import StationConfig, build_app  # noqa: E402
from ektp_card._station.desk import DeskConfig, bar_chart  # noqa: E402
from ektp_card._station.security import Sessions  # noqa: E402
from ektp_card._station.slots import VirtualSlot  # noqa: E402
from ektp_card.desk.batch import Issuance, VirtualCardDir  # noqa: E402
from ektp_card.desk.registry import CardState, open_registry  # noqa: E402
from ektp_card.sandbox import SANDBOX_DESK, Sandbox, build_sandbox  # noqa: E402

BASE = "http://127.0.0.1:8765"


@pytest.fixture
def office(tmp_path: Path) -> Sandbox:
    # Each test changes the registry: a fresh office each time (about a second).
    return build_sandbox(tmp_path / "office", seed=41)


class Desk:
    def __init__(self, office: Sandbox, *, issuing: bool = True) -> None:
        self.office = office
        self.slot = VirtualSlot(office.cards_dir)
        issuance = (
            Issuance(
                office.master_key,
                office.document_signer,
                office.trust,
                cvca_certificate=office.cvca_certificate,
            )
            if issuing
            else None
        )
        cards = VirtualCardDir(office.cards_dir, office.master_key) if issuing else None
        self.desk = DeskConfig(
            str(office.registry), office.root / "station", SANDBOX_DESK, 150, issuance, cards
        )
        self.sessions = Sessions()
        self.app = build_app(
            StationConfig(
                self.slot, office.trust, office.terminal, operator="siti", demo=True, desk=self.desk
            ),
            self.sessions,
        )
        self.client = TestClient(self.app, base_url=BASE, raise_server_exceptions=False)
        self.client.get(f"/open?token={self.sessions.token}")
        found = re.search(r'name="csrf" value="([^"]+)"', self.client.get("/desk").text)
        assert found is not None
        self.csrf = found.group(1)

    def post(self, path: str, data: dict[str, str] | None = None, **kw: object) -> object:
        return self.client.post(path, data={"csrf": self.csrf, **(data or {})}, **kw)  # type: ignore[arg-type]

    def upload(self, content: bytes, name: str = "batch.jsonl") -> str:
        answer = self.client.post(
            "/desk/batch", data={"csrf": self.csrf}, files={"batch": (name, content)}, follow_redirects=False
        )
        assert answer.status_code == 303, answer.text
        return str(answer.headers["location"])

    def wait(self, location: str, seconds: float = 60) -> dict[str, object]:
        deadline = time.monotonic() + seconds
        while True:
            progress = self.client.get(f"{location}/progress").json()
            if progress is None or progress["state"] != "running" or time.monotonic() > deadline:
                return dict(progress or {})
            time.sleep(0.05)


def _registry_states(office: Sandbox, batch: str | None = None) -> dict[str, int]:
    with open_registry(office.registry) as registry:
        rows = registry.cards(batch=batch) if batch else registry.cards()
    out: dict[str, int] = {}
    for row in rows:
        out[str(row.state)] = out.get(str(row.state), 0) + 1
    return out


def test_batch_is_checked_then_issued(office: Sandbox) -> None:
    desk = Desk(office)
    where = desk.upload(office.batch.read_bytes())
    page = desk.client.get(where).text
    assert "20 baris: 18 dapat diterbitkan, 2 ditolak, 0 sudah punya kartu." in page
    assert re.findall(r'<li data-line="(\d+)">[^<]*<code>([^<]+)</code>', page) == [
        ("2", "nik.digits"),
        ("5", "nik.date_of_birth, date_of_birth.future, date_of_issue.order"),
    ]
    assert desk.post(f"{where}/issue", follow_redirects=False).status_code == 303  # type: ignore[attr-defined]
    done = desk.wait(where)
    assert done["state"] == "finished" and done["issued"] == 18 and done["rejected"] == 2
    bid = where.rsplit("/", 1)[-1]
    assert _registry_states(office, bid) == {"personalised": 18}
    # Uploading the same file again is the same batch: nothing is issued twice.
    assert desk.upload(office.batch.read_bytes()) == where
    assert "18 sudah tercatat" in desk.client.get(where).text


def test_rows_that_name_files_are_refused(office: Sandbox) -> None:
    desk = Desk(office)
    rows = [json.loads(line) for line in office.batch.read_text().splitlines()][:3]
    rows[0]["face"] = "../../../../etc/passwd"
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    page = desk.client.get(desk.upload(content)).text
    assert "face.inline" in page


def test_upload_refusals(office: Sandbox) -> None:
    desk = Desk(office)
    answer = desk.client.post("/desk/batch", data={"csrf": desk.csrf}, files={"batch": ("x.txt", b"a")})
    assert answer.status_code == 400 and "csv" in answer.text
    answer = desk.client.post("/desk/batch", data={"csrf": desk.csrf})
    assert answer.status_code == 400
    answer = desk.client.post("/desk/batch", data={"csrf": "wrong"}, files={"batch": ("b.jsonl", b"{}")})
    assert answer.status_code == 403
    assert desk.client.get("/desk/batch/../../registry").status_code == 404
    assert desk.client.get("/desk/batch/abcdef0123456789").status_code == 404
    assert not (office.root / "station" / "batches").exists() or not any(
        (office.root / "station" / "batches").iterdir()
    )


def test_a_station_that_cannot_issue_says_so(office: Sandbox) -> None:
    desk = Desk(office, issuing=False)
    where = desk.upload(office.batch.read_bytes())
    answer = desk.post(f"{where}/issue")
    assert answer.status_code == 409  # type: ignore[attr-defined]
    assert _registry_states(office).get("pending", 0) == 0


def test_resume_after_the_station_stopped(office: Sandbox) -> None:
    desk = Desk(office)
    where = desk.upload(office.batch.read_bytes())
    desk.post(f"{where}/issue", follow_redirects=False)
    # Stop after the first card or so, as a power cut or a Ctrl-C at the station would.
    desk.post(f"{where}/cancel", follow_redirects=False)
    first = desk.wait(where)
    assert first["state"] in ("cancelled", "finished")
    bid = where.rsplit("/", 1)[-1]
    issued_before = _registry_states(office, bid).get("personalised", 0)
    # A new station process: no job in memory, the registry says how far it got.
    again = Desk(office)
    page = again.client.get(where).text
    assert 'id="issue"' in page
    if issued_before:
        assert f"{issued_before} sudah tercatat" in page
    again.post(f"{where}/issue", follow_redirects=False)
    assert again.wait(where)["state"] == "finished"
    assert _registry_states(office, bid) == {"personalised": 18}


def test_handover_with_the_right_and_a_wrong_finger(office: Sandbox) -> None:
    desk = Desk(office)
    card = office.cards[1]  # personalised, waiting for its holder
    desk.slot.insert(card.image.name)
    wrong = desk.client.post(
        "/desk/handover",
        data={"csrf": desk.csrf, "serial": card.serial, "can": card.can},
        files={"fingerprint": ("f.fmr", card.other_capture.read_bytes())},
    )
    assert wrong.status_code == 200 and "DITOLAK" in wrong.text
    with open_registry(office.registry) as registry:
        row = registry.get(card.serial)
        refusals = [e for e in registry.audit_entries() if e.action == "event:handover-refused"]
    assert row is not None and row.state is CardState.PERSONALISED and refusals
    assert "siti@station:" in refusals[-1].actor
    right = desk.client.post(
        "/desk/handover",
        data={"csrf": desk.csrf, "serial": card.serial, "can": card.can},
        files={"fingerprint": ("f.fmr", card.holder_capture.read_bytes())},
    )
    assert right.status_code == 200 and 'id="message"' in right.text and "diserahkan" in right.text
    with open_registry(office.registry) as registry:
        row = registry.get(card.serial)
    assert row is not None and row.state is CardState.HANDED_OVER


def test_handover_refusals_change_nothing(office: Sandbox) -> None:
    desk = Desk(office)
    card = office.cards[1]
    desk.slot.insert(card.image.name)
    for data, files, code in (
        ({"serial": card.serial, "can": "12"}, {"fingerprint": ("f", b"x")}, 400),
        ({"serial": card.serial, "can": card.can}, None, 400),
        ({"serial": "../x", "can": card.can}, {"fingerprint": ("f", b"x")}, 400),
    ):
        answer = desk.client.post("/desk/handover", data={"csrf": desk.csrf, **data}, files=files)
        assert answer.status_code == code, data
    assert _registry_states(office) == {"personalised": 1, "handed_over": 1, "lost": 1}


def test_life_cycle_actions_need_confirmation(office: Sandbox) -> None:
    desk = Desk(office)
    serial = office.genuine.serial
    first = desk.post(f"/desk/card/{serial}", {"action": "lost", "police_report": "LP/7/XII/2026"})
    assert 'id="confirm"' in first.text  # type: ignore[attr-defined]
    assert _registry_states(office)["handed_over"] == 1
    missing = desk.post(f"/desk/card/{serial}", {"action": "lost", "police_report": "", "confirm": "yes"})
    assert missing.status_code == 400  # type: ignore[attr-defined]
    done = desk.post(
        f"/desk/card/{serial}", {"action": "lost", "police_report": "LP/7/XII/2026", "confirm": "yes"}
    )
    assert 'data-state="lost"' in done.text  # type: ignore[attr-defined]
    refused = desk.post(f"/desk/card/{serial}", {"action": "activate", "confirm": "yes"})
    assert refused.status_code == 409  # type: ignore[attr-defined]
    with open_registry(office.registry) as registry:
        row = registry.get(serial)
        assert registry.verify_chain() is None
    assert row is not None and row.state is CardState.LOST and row.police_report == "LP/7/XII/2026"


def test_lookup_print_queue_and_report(office: Sandbox) -> None:
    desk = Desk(office)
    assert desk.client.get(f"/desk?q={office.genuine.nik}", follow_redirects=False).status_code == 303
    assert "Tidak ada kartu" in desk.client.get("/desk?q=0000000000000000").text
    queue = desk.client.get("/desk/print").text
    assert office.cards[1].serial in queue and office.cards[1].can not in queue
    report = desk.client.get("/desk/report").text
    assert report.count("<rect") == 14 + 4 and 'class="target"' in report
    assert re.search(r'data-label="[0-9-]+" data-value="3"', report)


def test_bar_chart_geometry() -> None:
    chart = bar_chart([("a", 0), ("b", 75), ("c", 150), ("d", 300)], target=150, width=440, height=230)
    heights = [b.height for b in chart.bars]
    assert (
        heights[0] == 0
        and heights[2] == pytest.approx(2 * heights[1])
        and heights[3] == pytest.approx(2 * heights[2])
    )
    assert [b.over for b in chart.bars] == [False, False, True, True]
    assert chart.target_y == pytest.approx(chart.bars[2].y)


def test_review_of_a_clone(office: Sandbox) -> None:
    desk = Desk(office)
    desk.slot.insert(office.clone.name)
    answer = desk.post("/review", {"can": office.genuine.can}, follow_redirects=False)
    where = answer.headers["location"]  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while desk.client.get(f"{where}/progress").json()["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    page = desk.client.get(where).text
    assert 'data-test="CLONE-COPY" data-outcome="fail"' in page
    assert 'data-test="TEAR-PERSO" data-outcome="skipped"' in page
    report = desk.client.get(f"{where}/report.json").json()
    assert {r["id"]: r["outcome"] for r in report["results"]}["CLONE-COPY"] == "fail"
    assert desk.client.get(f"{where}/report.xml").text.startswith("<?xml")


def test_review_refusals(office: Sandbox) -> None:
    desk = Desk(office)
    desk.slot.insert(office.genuine.image.name)
    assert desk.post("/review", {"can": "12"}).status_code == 400  # type: ignore[attr-defined]
    confirm = desk.post("/review", {"can": office.genuine.can, "destructive": "yes"})
    assert 'id="confirm"' in confirm.text  # type: ignore[attr-defined]
    wrong = "000000" if office.genuine.can != "000000" else "111111"
    answer = desk.post("/review", {"can": wrong}, follow_redirects=True)
    assert "menolak CAN" in answer.text  # type: ignore[attr-defined]
