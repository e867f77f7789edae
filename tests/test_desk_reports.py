"""Desk reports over a registry with a known history: throughput, handovers, ages, replacements, CSV, PNG."""

from __future__ import annotations

import datetime as dt
import json
import struct
import zlib
from pathlib import Path

import pytest

from ektp_card._cli import main
from ektp_card._cli.util import ExitCode
from ektp_card.desk.registry import Registry
from ektp_card.desk.reports import (
    DESK_COLOURS,
    GRID,
    TARGET_COLOUR,
    WHITE,
    DailyThroughput,
    PendingHandover,
    Replacements,
    UncollectedAges,
    csv_tables,
    desk_report,
    throughput_chart,
    write_chart,
    write_csv,
)

DAY1 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
NOW = DAY1 + dt.timedelta(days=40)


class Clock:
    """The registry's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = DAY1

    def __call__(self) -> dt.datetime:
        return self.now

    def at(self, day: int, hour: int = 0) -> None:
        self.now = DAY1 + dt.timedelta(days=day, hours=hour)


def nik(n: int) -> str:
    return f"3171010101{n:06d}"


def sod(n: int) -> str:
    return f"{n:064x}"


def issue(registry: Registry, serial: str, n: int, desk: str) -> None:
    registry.reserve(serial, nik(n), desk=desk, actor="clerk")
    registry.confirm(serial, sod_sha256=sod(n), desk=desk, actor="clerk")


def history(path: Path) -> Registry:
    """Two desks over two weeks:

    day 0: jakarta issues A1..A3, bandung registers B1; day 1: jakarta issues A4, A5, one card spoiled,
    one reserved and never written; A1 handed over day 1, A2 day 2; A2 lost day 10 and replaced at
    bandung day 11 (B2); A3 damaged day 12 (surrendered, not replaced); B1 handed over day 3 and
    revoked day 39.
    """
    clock = Clock()
    registry = Registry(path, clock=clock)
    for serial, n in (("A1", 1), ("A2", 2), ("A3", 3)):
        issue(registry, serial, n, "jakarta")
    registry.register("B1", nik(10), desk="bandung", actor="clerk")
    clock.at(1, 2)
    issue(registry, "A4", 4, "jakarta")
    issue(registry, "A5", 5, "jakarta")
    registry.reserve("S1", nik(6), desk="jakarta", actor="clerk")
    registry.spoil("S1", "read back failed", desk="jakarta", actor="clerk")
    registry.reserve("P1", nik(7), desk="jakarta", actor="clerk")
    clock.at(1, 5)
    registry.hand_over("A1", desk="jakarta", actor="clerk")
    clock.at(2)
    registry.hand_over("A2", desk="jakarta", actor="clerk")
    clock.at(3)
    registry.hand_over("B1", desk="bandung", actor="clerk")
    clock.at(10)
    registry.report_lost("A2", "LP/99", desk="jakarta", actor="clerk")
    clock.at(11)
    registry.replace("A2", "B2", desk="bandung", actor="clerk")
    clock.at(12)
    registry.report_damaged("A3", surrendered=True, desk="jakarta", actor="clerk")
    clock.at(39)
    registry.revoke("B1", "fraud", desk="bandung", actor="clerk")
    return registry


D = [DAY1.date() + dt.timedelta(days=n) for n in range(40)]


def test_report_over_a_known_history(tmp_path: Path) -> None:
    with history(tmp_path / "r.sqlite") as registry:
        report = desk_report(registry, target=3, now=NOW)
    assert report.daily == (
        DailyThroughput("bandung", D[0], 1, 3), DailyThroughput("bandung", D[11], 1, 3),
        DailyThroughput("jakarta", D[0], 3, 3), DailyThroughput("jakarta", D[1], 2, 3),
    )
    assert report.daily[2].share == 1.0
    # Personalised, not handed over: A4, A5 (day 1 11:00, 38 whole days old) and B2 (day 11, 29).
    assert report.pending == (
        PendingHandover("A4", "jakarta", DAY1 + dt.timedelta(days=1, hours=2), 38),
        PendingHandover("A5", "jakarta", DAY1 + dt.timedelta(days=1, hours=2), 38),
        PendingHandover("B2", "bandung", DAY1 + dt.timedelta(days=11), 29),
    )
    assert report.uncollected == (
        UncollectedAges("bandung", (0, 1, 0, 0), 2), UncollectedAges("jakarta", (0, 0, 2, 0), 5),
    )
    assert report.uncollected[1].share == 0.4
    assert report.replacements == (
        Replacements("lost", 1, 1), Replacements("damaged", 1, 0), Replacements("revoked", 1, 0),
    )
    assert report.replacements[1].awaiting == 1

    later = desk_report(history(tmp_path / "r2.sqlite"), since=D[11], now=NOW + dt.timedelta(days=60))
    assert later.daily == (DailyThroughput("bandung", D[11], 1, 150),)
    assert [p.age_days for p in later.pending] == [98, 98, 89]
    assert later.uncollected[0].buckets == (0, 0, 1, 0) and later.uncollected[1].buckets == (0, 0, 0, 2)
    # Reported since day 11: the damaged (day 12) and revoked (day 39) cards, not the lost one (day 10).
    assert [(r.reason, r.reported) for r in later.replacements] == [
        ("lost", 0), ("damaged", 1), ("revoked", 1)]


def test_days_follow_the_time_zone(tmp_path: Path) -> None:
    with history(tmp_path / "r.sqlite") as registry:
        west = desk_report(registry, now=NOW, tz=dt.timezone(dt.timedelta(hours=-10)))
        wit = desk_report(registry, now=NOW, tz=dt.timezone(dt.timedelta(hours=9)))
    # 09:00 UTC on day 0 is 23:00 the day before at UTC-10 and 18:00 the same day in WIT (UTC+9).
    assert [(d.desk, d.day, d.cards) for d in west.daily][:1] == [("bandung", D[0] - dt.timedelta(days=1), 1)]
    assert [(d.desk, d.day, d.cards) for d in wit.daily][:1] == [("bandung", D[0], 1)]


def test_csv_files(tmp_path: Path) -> None:
    with history(tmp_path / "r.sqlite") as registry:
        report = desk_report(registry, target=3, now=NOW)
    paths = write_csv(report, tmp_path / "csv")
    assert [p.name for p in paths] == ["daily.csv", "pending_handovers.csv", "uncollected.csv",
                                       "replacements.csv"]
    assert (tmp_path / "csv" / "daily.csv").read_text() == (
        "desk,day,cards,target,share\n"
        "bandung,2026-03-02,1,3,0.3333\n"
        "bandung,2026-03-13,1,3,0.3333\n"
        "jakarta,2026-03-02,3,3,1.0000\n"
        "jakarta,2026-03-03,2,3,0.6667\n"
    )
    assert (tmp_path / "csv" / "uncollected.csv").read_text() == (
        "desk,<7d,7-30d,30-90d,>90d,total,issued,share\n"
        "bandung,0,1,0,0,1,2,0.5000\n"
        "jakarta,0,0,2,0,2,5,0.4000\n"
    )
    assert (tmp_path / "csv" / "replacements.csv").read_text() == (
        "reason,reported,replaced,awaiting\nlost,1,1,0\ndamaged,1,0,1\nrevoked,1,0,1\n"
    )
    assert (tmp_path / "csv" / "pending_handovers.csv").read_text().splitlines()[1] == (
        "A4,jakarta,2026-03-03T11:00:00+00:00,38")
    assert csv_tables(report)["daily.csv"][0] == ["desk", "day", "cards", "target", "share"]


def test_csv_cells_cannot_run_as_formulas(tmp_path: Path) -> None:
    clock = Clock()
    with Registry(tmp_path / "r.sqlite", clock=clock) as registry:
        registry.register("=1+2", nik(1), desk="@desk", actor="clerk")
        write_csv(desk_report(registry, now=NOW), tmp_path / "csv")
    assert (tmp_path / "csv" / "daily.csv").read_text().splitlines()[1].startswith("'@desk,")
    assert (tmp_path / "csv" / "pending_handovers.csv").read_text().splitlines()[1].startswith("'=1+2,'@desk")


# --- the PNG chart ----------------------------------------------------------------------------------


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """An independent minimal decoder: chunks with CRC, IHDR, IDAT inflated, rows unfiltered (type 0)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        at += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(chunks[1][1])
    stride = 1 + 3 * width
    assert len(raw) == stride * height
    rows = [raw[y * stride:(y + 1) * stride] for y in range(height)]
    assert all(row[0] == 0 for row in rows)
    return width, height, [row[1:] for row in rows]


def pixel(rows: list[bytes], x: int, y: int) -> tuple[int, int, int]:
    r, g, b = rows[y][3 * x:3 * x + 3]
    return r, g, b


def test_chart_png_decodes_with_bars_and_target() -> None:
    daily = [DailyThroughput("jakarta", D[0], 120, 150), DailyThroughput("bandung", D[0], 30, 150),
             DailyThroughput("jakarta", D[2], 160, 150)]
    chart = throughput_chart(daily, 150, plot_height=200)
    width, height, rows = decode_png(chart.png())
    assert (width, height) == (chart.canvas.width, chart.canvas.height)
    assert chart.desks == ("bandung", "jakarta") and chart.days == (D[0], D[1], D[2])
    assert chart.y_max == 200  # above 160 and the target, in steps of 50 (at most six grid lines)
    bars = {(b.desk, b.day): b for b in chart.bars}
    assert len(bars) == 6  # every desk on every day, zero-height on days without cards
    base = bars[("jakarta", D[0])].y1
    for (desk, day), cards in {("jakarta", D[0]): 120, ("bandung", D[0]): 30, ("jakarta", D[2]): 160}.items():
        bar = bars[(desk, day)]
        assert bar.y1 - bar.y0 == cards  # 200 pixels for 200 cards
        colour = DESK_COLOURS[chart.desks.index(desk)]
        assert pixel(rows, (bar.x0 + bar.x1) // 2, bar.y1 - 2) == colour
        assert pixel(rows, (bar.x0 + bar.x1) // 2, bar.y0) == colour
        assert pixel(rows, (bar.x0 + bar.x1) // 2, bar.y0 - 2) in (WHITE, GRID)  # just above the bar
    assert bars[("bandung", D[2])].y0 == base  # no cards: no bar
    assert pixel(rows, bars[("bandung", D[1])].x0 + 1, base - 5) in (WHITE, GRID)
    # The target line: dashes of five pixels every eight, two pixels thick, at 150 of 200.
    assert chart.target_y == base - 150
    row = [pixel(rows, x, chart.target_y) for x in range(width)]
    assert row.count(TARGET_COLOUR) >= (width - 100) * 5 // 8
    assert pixel(rows, 8, 6) == TARGET_COLOUR  # its legend swatch


def test_empty_chart_is_a_valid_png() -> None:
    chart = throughput_chart([], 150)
    width, height, rows = decode_png(chart.png())
    assert width == 320 and chart.bars == () and chart.y_max == 175


def test_write_chart(tmp_path: Path) -> None:
    with history(tmp_path / "r.sqlite") as registry:
        report = desk_report(registry, target=3, now=NOW)
    chart = write_chart(report, tmp_path / "c.png")
    width, _, rows = decode_png((tmp_path / "c.png").read_bytes())
    assert width == chart.canvas.width and len(chart.days) == 12  # day 0 to day 11
    three = next(b for b in chart.bars if b.desk == "jakarta" and b.day == D[0])
    assert three.y0 == chart.target_y  # three cards, target three
    assert pixel(rows, three.x0, three.y1 - 1) == DESK_COLOURS[1]


# --- the command line -------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_cli_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    history(tmp_path / "r.sqlite").close()
    registry = str(tmp_path / "r.sqlite")
    code, out, err = run_cli(capsys, "--json", "desk", "report", "--registry", registry, "--target", "3",
                             "--utc", "--csv", str(tmp_path / "csv"), "--chart", str(tmp_path / "t.png"))
    assert code == 0, err
    data = json.loads(out)
    assert data["target"] == 3
    assert [(d["desk"], d["day"], d["cards"]) for d in data["daily"]] == [
        ("bandung", "2026-03-02", 1), ("bandung", "2026-03-13", 1), ("jakarta", "2026-03-02", 3),
        ("jakarta", "2026-03-03", 2),
    ]
    assert [p["serial"] for p in data["pending_handovers"]] == ["A4", "A5", "B2"]
    assert data["replacements"][0] == {"reason": "lost", "reported": 1, "replaced": 1, "awaiting": 0}
    assert data["uncollected"][1]["desk"] == "jakarta" and data["uncollected"][1]["issued"] == 5
    assert len(data["files"]) == 5 and decode_png((tmp_path / "t.png").read_bytes())[0] > 0
    assert nik(1) not in out  # reports never carry a NIK

    code, out, err = run_cli(capsys, "desk", "report", "--registry", registry, "--since", "2026-03-13",
                             "--utc")
    assert code == 0, err
    assert "Cards personalised per desk per day (target 150)" in out and "Pending handovers (3" in out
    assert "2026-03-13" in out and "2026-03-02" not in out and "Replacements by reason since" in out

    code, _, err = run_cli(capsys, "desk", "report", "--registry", registry, "--since", "13/03/2026")
    assert code == ExitCode.USAGE and "YYYY-MM-DD" in err
    code, _, err = run_cli(capsys, "desk", "report", "--registry", "ftp://host/registry")
    assert code == ExitCode.REGISTRY and err.startswith("Error: ")
