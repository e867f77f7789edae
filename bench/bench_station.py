"""What the station costs on top of the library, measured side by side in one run.

1. Server time per page: each page fetched over HTTP from the station served by uvicorn on loopback
   (median of N).
2. A clerk's verification (PACE, PA, CA, AA, TA, DG3, fingerprint) through the station (the form post
   and the result page) against the same verification through the library, on the same virtual card,
   alternating; the difference is what the station adds (goal: under 50 ms).
3. Batch issuance in cards per hour: the sandbox's batch through the station's desk (upload, check,
   issue, poll until done) against ``issue_batch`` on the same batch, each on a fresh office.

    python bench/bench_station.py [--runs 15] [--records 20]
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import uvicorn

from ektp_card._station.app import StationConfig, build_app
from ektp_card._station.desk import DeskConfig
from ektp_card._station.security import Sessions
from ektp_card._station.slots import VirtualSlot
from ektp_card.desk.batch import Issuance, VirtualCardDir, issue_batch
from ektp_card.desk.registry import open_registry
from ektp_card.device import CardSource, open_card
from ektp_card.pki.revocation import load_revocation_list
from ektp_card.sandbox import SANDBOX_DESK, Sandbox, build_sandbox
from ektp_card.verify.card import Verdict, verify_card


class Served:
    def __init__(self, config: StationConfig) -> None:
        self.sessions = Sessions()
        self.app = build_app(config, self.sessions)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        self.client = httpx.Client(base_url=self.url)
        self.client.get(f"/open?token={self.sessions.token}", follow_redirects=True)
        found = re.search(r'name="csrf" value="([^"]+)"', self.client.get("/clerk").text)
        assert found is not None
        self.csrf = found.group(1)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)


def _config(o: Sandbox, *, desk: bool = True) -> StationConfig:
    issuance = Issuance(o.master_key, o.document_signer, o.trust, cvca_certificate=o.cvca_certificate)
    desk_config = DeskConfig(str(o.registry), o.root / "station", SANDBOX_DESK, 150, issuance,
                             VirtualCardDir(o.cards_dir, o.master_key)) if desk else None
    revocations = load_revocation_list(o.revocations.read_bytes(), o.trust)
    return StationConfig(VirtualSlot(o.cards_dir), o.trust, o.terminal, revocations, desk=desk_config)


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def pages(o: Sandbox, runs: int) -> dict[str, float]:
    served = Served(_config(o))
    try:
        served.client.post("/reader", data={"csrf": served.csrf, "card": o.genuine.image.name,
                                            "action": "insert"})
        result = served.client.post("/clerk/verify", data={"csrf": served.csrf, "can": o.genuine.can},
                                    follow_redirects=False).headers["location"]
        paths = ["/clerk", result, "/desk", "/desk/print", "/desk/handover", "/desk/report", "/review",
                 "/static/station.css", "/api/status"]
        times: dict[str, list[float]] = {p: [] for p in paths}
        for _ in range(runs):
            for path in paths:
                t0 = time.perf_counter()
                answer = served.client.get(path)
                times[path].append(time.perf_counter() - t0)
                assert answer.status_code == 200, (path, answer.status_code)
        return {("/clerk/result/<id>" if p == result else p): median_ms(v) for p, v in times.items()}
    finally:
        served.stop()


def verification(o: Sandbox, runs: int) -> tuple[float, float, list[float]]:
    served = Served(_config(o, desk=False))
    config = served.app.state.station.config
    capture = o.genuine.holder_capture.read_bytes()
    try:
        served.client.post("/reader", data={"csrf": served.csrf, "card": o.genuine.image.name,
                                            "action": "insert"})
        station_t: list[float] = []
        library_t: list[float] = []
        for _ in range(runs):
            t0 = time.perf_counter()
            page = served.client.post("/clerk/verify", data={"csrf": served.csrf, "can": o.genuine.can},
                                      files={"fingerprint": ("f.fmr", capture)}, follow_redirects=True)
            station_t.append(time.perf_counter() - t0)
            assert 'data-verdict="genuine"' in page.text
            t0 = time.perf_counter()
            with open_card(CardSource(virtual=o.genuine.image)) as transport:
                report = verify_card(transport, o.genuine.can, o.trust, terminal=o.terminal,
                                     revocations=config.revocations, fingerprint=capture)
            library_t.append(time.perf_counter() - t0)
            assert report.verdict is Verdict.GENUINE
        diffs = [(s - lib) * 1000 for s, lib in zip(station_t, library_t, strict=True)]
        return median_ms(station_t), median_ms(library_t), diffs
    finally:
        served.stop()


def batch_through_station(o: Sandbox) -> tuple[float, int]:
    served = Served(_config(o))
    try:
        where = served.client.post("/desk/batch", data={"csrf": served.csrf},
                                   files={"batch": ("batch.jsonl", o.batch.read_bytes())}).headers["location"]
        t0 = time.perf_counter()
        served.client.post(f"{where}/issue", data={"csrf": served.csrf})
        while True:
            progress: Any = served.client.get(f"{where}/progress").json()
            if progress and progress["state"] != "running":
                break
            time.sleep(0.02)
        return time.perf_counter() - t0, int(progress["issued"])
    finally:
        served.stop()


def batch_through_library(o: Sandbox) -> tuple[float, int]:
    issuance = Issuance(o.master_key, o.document_signer, o.trust, cvca_certificate=o.cvca_certificate)
    t0 = time.perf_counter()
    with open_registry(o.registry) as registry:
        summary = issue_batch(o.batch, registry, VirtualCardDir(o.cards_dir, o.master_key), issuance,
                              desk=SANDBOX_DESK, actor="bench", inline_only=True)
    return time.perf_counter() - t0, len(summary.issued)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--records", type=int, default=20, help="records in the batch (two invalid)")
    parser.add_argument("--batches", type=int, default=3, help="batch runs per path, alternating")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-station-") as tmp:
        root = Path(tmp)
        office = build_sandbox(root / "pages", seed=1, batch_records=args.records)
        print(f"Server time per page over HTTP on loopback (median of {args.runs}):")
        for path, ms in pages(office, args.runs).items():
            print(f"  {path:<24} {ms:7.2f} ms")
        station_ms, library_ms, diffs = verification(office, args.runs)
        print(f"\nVerification with TA, DG3 and the fingerprint (median of {args.runs}, alternating):")
        print(f"  through the station   {station_ms:7.1f} ms (form post, verification, result page)")
        print(f"  through the library   {library_ms:7.1f} ms")
        print(f"  station adds          {statistics.median(diffs):7.1f} ms median "
              f"(min {min(diffs):.1f}, max {max(diffs):.1f})")
        rates: dict[str, list[float]] = {"station": [], "library": []}
        for n in range(args.batches):
            for path, run in (("station", batch_through_station), ("library", batch_through_library)):
                fresh = build_sandbox(root / f"{path}-{n}", seed=2, batch_records=args.records)
                seconds, issued = run(fresh)
                rates[path].append(issued * 3600 / seconds)
        print(f"\nBatch issuance, {args.records} records ({args.records - 2} issued), {args.batches} runs "
              "each, alternating (median cards/hour):")
        medians = {path: statistics.median(values) for path, values in rates.items()}
        for path, value in medians.items():
            print(f"  {path:<9} {value:10,.0f}")
        print(f"  station / library: {medians['station'] / medians['library']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
