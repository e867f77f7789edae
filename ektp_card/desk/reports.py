"""Desk reports: where the backlog is. Pure functions over the registry's cards and audit log.

- Daily throughput: cards personalised per desk per day, against a target (the field studies count
  150 recordings targeted per desk per day and 28 achieved).
- Pending handovers: personalised cards not yet handed over, oldest first, with their age.
- Uncollected cards by age bucket per desk, and their share of the cards the desk issued (the field
  studies found about 17% never collected).
- Replacements by reason: cards reported lost, damaged or revoked, and how many got a new card.

Reports name cards by serial and never carry a NIK: CSV files travel. The chart is a PNG written
here (zlib and a built-in 5x7 bitmap font), so reporting needs no plotting library.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import struct
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ektp_card.files import write_files

if TYPE_CHECKING:
    from ektp_card.desk.audit import AuditEntry
    from ektp_card.desk.registry import CardRow, Registry

DEFAULT_TARGET = 150
#: Age buckets of uncollected cards in days: [low, high) with ``None`` for no upper bound.
AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("<7d", 0, 7), ("7-30d", 7, 30), ("30-90d", 30, 90), (">90d", 90, None),
)
REPLACEMENT_REASONS = ("lost", "damaged", "revoked")
#: States of a card that was written and counts as issued by its desk.
_ISSUED_STATES = frozenset({"personalised", "handed_over", "active", "lost", "damaged", "revoked"})


@dataclass(frozen=True)
class DailyThroughput:
    """Cards one desk personalised on one day (in the report's time zone)."""

    desk: str
    day: dt.date
    cards: int
    target: int

    @property
    def share(self) -> float:
        """Cards as a fraction of the target."""
        return self.cards / self.target if self.target else 0.0


@dataclass(frozen=True)
class PendingHandover:
    """A personalised card waiting for its holder."""

    serial: str
    desk: str
    personalised_at: dt.datetime
    age_days: int


@dataclass(frozen=True)
class UncollectedAges:
    """One desk's uncollected cards per :data:`AGE_BUCKETS` bucket, out of the cards it issued."""

    desk: str
    buckets: tuple[int, ...]
    issued: int

    @property
    def total(self) -> int:
        return sum(self.buckets)

    @property
    def share(self) -> float:
        return self.total / self.issued if self.issued else 0.0


@dataclass(frozen=True)
class Replacements:
    """Cards that entered one terminal state (lost, damaged, revoked) and how many were replaced."""

    reason: str
    reported: int
    replaced: int

    @property
    def awaiting(self) -> int:
        return self.reported - self.replaced


@dataclass(frozen=True)
class DeskReport:
    """Everything ``ektp desk report`` shows."""

    generated_at: dt.datetime
    since: dt.date | None
    target: int
    daily: tuple[DailyThroughput, ...]
    pending: tuple[PendingHandover, ...]
    uncollected: tuple[UncollectedAges, ...]
    replacements: tuple[Replacements, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at.isoformat(),
            "since": None if self.since is None else self.since.isoformat(),
            "target": self.target,
            "daily": [{"desk": d.desk, "day": d.day.isoformat(), "cards": d.cards, "target": d.target,
                       "share": round(d.share, 4)} for d in self.daily],
            "pending_handovers": [{"serial": p.serial, "desk": p.desk,
                                   "personalised_at": p.personalised_at.isoformat(), "age_days": p.age_days}
                                  for p in self.pending],
            "uncollected": [{"desk": u.desk, **dict(zip(bucket_labels(), u.buckets, strict=True)),
                             "total": u.total, "issued": u.issued, "share": round(u.share, 4)}
                            for u in self.uncollected],
            "replacements": [{"reason": r.reason, "reported": r.reported, "replaced": r.replaced,
                              "awaiting": r.awaiting} for r in self.replacements],
        }


def bucket_labels() -> tuple[str, ...]:
    return tuple(label for label, _, _ in AGE_BUCKETS)


def _when(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _personalised(
    cards: Sequence[CardRow], audit: Iterable[AuditEntry]
) -> dict[str, tuple[dt.datetime, str]]:
    """When and at which desk each written card became personalised: the audit entry that created it
    personalised (``register``, ``replace``) or moved it there (a confirmed reservation), else the
    card's creation time and desk."""
    found: dict[str, tuple[dt.datetime, str]] = {}
    for entry in audit:
        serial = entry.details.get("serial")
        if not isinstance(serial, str) or serial in found:
            continue
        if entry.action in ("register", "replace") or entry.details.get("to") == "personalised":
            found[serial] = (_when(entry.at), entry.desk)
    return {c.serial: found.get(c.serial, (_when(c.created_at), c.desk))
            for c in cards if str(c.state) in _ISSUED_STATES}


def _bucket(age_days: int) -> int:
    for index, (_, low, high) in enumerate(AGE_BUCKETS):
        if age_days >= low and (high is None or age_days < high):
            return index
    return 0  # a clock behind the registry: count it as new


def build_report(
    cards: Sequence[CardRow],
    audit: Iterable[AuditEntry],
    *,
    target: int = DEFAULT_TARGET,
    since: dt.date | None = None,
    now: dt.datetime | None = None,
    tz: dt.tzinfo = dt.UTC,
) -> DeskReport:
    """The report over ``cards`` and the ``audit`` log. ``since`` limits the daily throughput and the
    replacements (by the day the card was reported); pending and uncollected cards are as of ``now``.
    Days are counted in ``tz``."""
    if target < 1:
        raise ValueError("the daily target must be at least 1")
    at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    personalised = _personalised(cards, audit)

    per_day: Counter[tuple[str, dt.date]] = Counter()
    for when, desk in personalised.values():
        day = when.astimezone(tz).date()
        if since is None or day >= since:
            per_day[(desk, day)] += 1
    daily = tuple(DailyThroughput(desk, day, n, target) for (desk, day), n in sorted(per_day.items()))

    pending: list[PendingHandover] = []
    issued: Counter[str] = Counter()
    buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(AGE_BUCKETS))
    for card in cards:
        if card.serial not in personalised:
            continue
        issued[card.desk] += 1
        if str(card.state) != "personalised":
            continue
        when = personalised[card.serial][0]
        age = max(0, (at - when).days)
        pending.append(PendingHandover(card.serial, card.desk, when, age))
        buckets[card.desk][_bucket(age)] += 1
    pending.sort(key=lambda p: (p.personalised_at, p.serial))
    uncollected = tuple(UncollectedAges(desk, tuple(buckets[desk]), issued[desk]) for desk in sorted(issued))

    by_nik: dict[str, list[CardRow]] = defaultdict(list)
    for card in cards:
        by_nik[card.nik].append(card)
    reported: Counter[str] = Counter()
    replaced: Counter[str] = Counter()
    for card in cards:
        reason = str(card.state)
        if reason not in REPLACEMENT_REASONS:
            continue
        if since is not None and _when(card.updated_at).astimezone(tz).date() < since:
            continue
        reported[reason] += 1
        created = _when(card.created_at)
        if any(other.serial != card.serial and other.serial in personalised
               and _when(other.created_at) > created for other in by_nik[card.nik]):
            replaced[reason] += 1
    replacements = tuple(Replacements(r, reported[r], replaced[r]) for r in REPLACEMENT_REASONS)
    return DeskReport(at, since, target, daily, tuple(pending), uncollected, replacements)


def desk_report(
    registry: Registry, *, target: int = DEFAULT_TARGET, since: dt.date | None = None,
    now: dt.datetime | None = None, tz: dt.tzinfo = dt.UTC,
) -> DeskReport:
    """:func:`build_report` over everything in ``registry``."""
    return build_report(registry.cards(), registry.audit_entries(), target=target, since=since, now=now,
                        tz=tz)


# --- CSV --------------------------------------------------------------------------------------------


def csv_tables(report: DeskReport) -> dict[str, list[list[str]]]:
    """Each table as rows of text, header first, by file name."""
    labels = bucket_labels()
    return {
        "daily.csv": [["desk", "day", "cards", "target", "share"]] + [
            [d.desk, d.day.isoformat(), str(d.cards), str(d.target), f"{d.share:.4f}"] for d in report.daily
        ],
        "pending_handovers.csv": [["serial", "desk", "personalised_at", "age_days"]] + [
            [p.serial, p.desk, p.personalised_at.isoformat(), str(p.age_days)] for p in report.pending
        ],
        "uncollected.csv": [["desk", *labels, "total", "issued", "share"]] + [
            [u.desk, *map(str, u.buckets), str(u.total), str(u.issued), f"{u.share:.4f}"]
            for u in report.uncollected
        ],
        "replacements.csv": [["reason", "reported", "replaced", "awaiting"]] + [
            [r.reason, str(r.reported), str(r.replaced), str(r.awaiting)] for r in report.replacements
        ],
    }


def _csv_cell(value: str) -> str:
    # A cell starting with = + - @ runs as a formula in spreadsheets (CSV injection): quote it as text.
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def csv_files(report: DeskReport, folder: Path) -> dict[Path, bytes]:
    """Every table as UTF-8 CSV, by its path in ``folder``."""
    files = {}
    for name, rows in csv_tables(report).items():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in rows:
            writer.writerow([_csv_cell(cell) for cell in row])
        files[folder / name] = buffer.getvalue().encode()
    return files


def write_csv(report: DeskReport, folder: Path) -> list[Path]:
    """Write every table to ``folder`` (created if needed, owner only) as UTF-8 CSV, all of them or
    none; the paths written."""
    files = csv_files(report, folder)
    write_files(files, mode=0o600, folder_mode=0o700)
    return list(files)


# --- PNG chart --------------------------------------------------------------------------------------

Rgb = tuple[int, int, int]
WHITE: Rgb = (255, 255, 255)
BLACK: Rgb = (0, 0, 0)
GRID: Rgb = (221, 221, 221)
TARGET_COLOUR: Rgb = (200, 0, 0)
#: Bar colours by desk, in order: the Okabe-Ito colour-blind safe palette (Okabe and Ito 2008)
#: without its vermillion, which the target line's red would be confused with.
DESK_COLOURS: tuple[Rgb, ...] = (
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (204, 121, 167),
)

#: A 5x7 bitmap font: each glyph is seven rows of five bits, most significant bit leftmost.
_FONT: Mapping[str, tuple[int, ...]] = {
    " ": (0, 0, 0, 0, 0, 0, 0),
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14), "2": (14, 17, 1, 2, 4, 8, 31),
    "3": (31, 2, 4, 2, 1, 17, 14), "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8), "8": (14, 17, 17, 14, 17, 17, 14),
    "9": (14, 17, 17, 15, 1, 2, 12),
    "A": (14, 17, 17, 31, 17, 17, 17), "B": (30, 17, 17, 30, 17, 17, 30), "C": (14, 17, 16, 16, 16, 17, 14),
    "D": (28, 18, 17, 17, 17, 18, 28), "E": (31, 16, 16, 30, 16, 16, 31), "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15), "H": (17, 17, 17, 31, 17, 17, 17), "I": (14, 4, 4, 4, 4, 4, 14),
    "J": (7, 2, 2, 2, 2, 18, 12), "K": (17, 18, 20, 24, 20, 18, 17), "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17), "N": (17, 17, 25, 21, 19, 17, 17), "O": (14, 17, 17, 17, 17, 17, 14),
    "P": (30, 17, 17, 30, 16, 16, 16), "Q": (14, 17, 17, 17, 21, 18, 13), "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30), "T": (31, 4, 4, 4, 4, 4, 4), "U": (17, 17, 17, 17, 17, 17, 14),
    "V": (17, 17, 17, 17, 17, 10, 4), "W": (17, 17, 17, 21, 21, 21, 10), "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 17, 10, 4, 4, 4), "Z": (31, 1, 2, 4, 8, 16, 31),
    "-": (0, 0, 0, 31, 0, 0, 0), "_": (0, 0, 0, 0, 0, 0, 31), ".": (0, 0, 0, 0, 0, 12, 12),
    ":": (0, 12, 12, 0, 12, 12, 0), "/": (0, 1, 2, 4, 8, 16, 0), "(": (2, 4, 8, 8, 8, 4, 2),
    ")": (8, 4, 2, 2, 2, 4, 8), "%": (24, 25, 2, 4, 8, 19, 3), "#": (10, 10, 31, 10, 31, 10, 10),
    "+": (0, 4, 4, 31, 4, 4, 0), "=": (0, 0, 31, 0, 31, 0, 0), "<": (2, 4, 8, 16, 8, 4, 2),
    ">": (8, 4, 2, 1, 2, 4, 8), "?": (14, 17, 1, 2, 4, 0, 4),
}
GLYPH_W, GLYPH_H, GLYPH_ADVANCE = 5, 7, 6


@dataclass(frozen=True)
class Bar:
    """One bar as drawn: pixel box [x0, x1) x [y0, y1) (y grows downwards) and its colour."""

    desk: str
    day: dt.date
    cards: int
    x0: int
    y0: int
    x1: int
    y1: int
    colour: Rgb


class Canvas:
    """An RGB image in memory with the few drawing operations the chart needs."""

    def __init__(self, width: int, height: int, background: Rgb = WHITE) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def get(self, x: int, y: int) -> Rgb:
        i = 3 * (y * self.width + x)
        return self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]

    def fill(self, x0: int, y0: int, x1: int, y1: int, colour: Rgb) -> None:
        """Fill [x0, x1) x [y0, y1), clipped to the canvas."""
        x0, x1 = max(0, x0), min(self.width, x1)
        row = bytes(colour) * max(0, x1 - x0)
        for y in range(max(0, y0), min(self.height, y1)):
            i = 3 * (y * self.width + x0)
            self.pixels[i:i + len(row)] = row

    def text(self, x: int, y: int, text: str, colour: Rgb = BLACK) -> None:
        """Draw ``text`` (upper-cased; unknown characters as ``?``) with its top left at (x, y)."""
        for n, char in enumerate(text.upper()):
            glyph = _FONT.get(char, _FONT["?"])
            for row, bits in enumerate(glyph):
                for col in range(GLYPH_W):
                    if bits & (1 << (GLYPH_W - 1 - col)):
                        self.fill(x + n * GLYPH_ADVANCE + col, y + row, x + n * GLYPH_ADVANCE + col + 1,
                                  y + row + 1, colour)

    def png(self) -> bytes:
        """The image as a PNG: 8-bit RGB, no interlace, filter type 0 on every row (PNG spec, ISO/IEC
        15948 sections 11.2.2 IHDR, 11.2.4 IDAT, 11.2.5 IEND; chunk CRC-32 over type and data)."""

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        stride = 3 * self.width
        raw = b"".join(b"\x00" + self.pixels[y * stride:(y + 1) * stride] for y in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
                + chunk(b"IEND", b""))


def text_width(text: str) -> int:
    return len(text) * GLYPH_ADVANCE - 1 if text else 0


@dataclass(frozen=True)
class ThroughputChart:
    """The drawn chart: its canvas, every bar, the target line's row and the value axis' top."""

    canvas: Canvas
    bars: tuple[Bar, ...]
    target_y: int
    y_max: int
    desks: tuple[str, ...]
    days: tuple[dt.date, ...]

    def png(self) -> bytes:
        return self.canvas.png()


def _nice_step(top: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if top / step <= 6:
            return step
    return int(10 ** len(str(top)))


def throughput_chart(
    daily: Sequence[DailyThroughput], target: int, *, plot_height: int = 200
) -> ThroughputChart:
    """A bar chart of cards per day, one bar per desk side by side, with the target as a dashed red
    line; a legend of desk colours on top, day labels (MM-DD) below, card counts on the left."""
    desks = tuple(sorted({d.desk for d in daily}))
    if daily:
        first, last = min(d.day for d in daily), max(d.day for d in daily)
        days = tuple(first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    else:
        days = ()
    counts = {(d.desk, d.day): d.cards for d in daily}
    bar_w = max(2, min(10, 480 // max(1, len(days) * max(1, len(desks)))))
    group_w = bar_w * max(1, len(desks)) + max(2, bar_w)
    step = _nice_step(max([target, *counts.values()]))
    y_max = step * (max([target, *counts.values()]) // step + 1)
    left = 8 + text_width(str(y_max)) + 4
    legend_h = 8 + 12 * ((len(desks) + 2) // 3)
    top, bottom = legend_h + 6, 22
    width = max(320, left + len(days) * group_w + 16)
    height = top + plot_height + bottom
    canvas = Canvas(width, height)
    base = top + plot_height  # the row just below the plot area

    def y_of(value: int) -> int:
        return base - round(value * plot_height / y_max)

    for value in range(0, y_max + 1, step):
        y = y_of(value)
        canvas.fill(left, y, width - 8, y + 1, GRID)
        label = str(value)
        canvas.text(left - 4 - text_width(label), y - 3, label)
    bars: list[Bar] = []
    for g, day in enumerate(days):
        x = left + g * group_w + max(2, bar_w) // 2
        for k, desk in enumerate(desks):
            cards = counts.get((desk, day), 0)
            colour = DESK_COLOURS[k % len(DESK_COLOURS)]
            box = Bar(desk, day, cards, x + k * bar_w, y_of(cards), x + (k + 1) * bar_w, base, colour)
            canvas.fill(box.x0, box.y0, box.x1, box.y1, colour)
            bars.append(box)
    canvas.fill(left, top, left + 1, base + 1, BLACK)
    canvas.fill(left, base, width - 8, base + 1, BLACK)
    label_every = max(1, -(-(text_width("00-00") + 6) // group_w))
    for g in range(0, len(days), label_every):
        canvas.text(left + g * group_w + 1, base + 6, days[g].strftime("%m-%d"))
    target_y = y_of(target)
    for x in range(left + 1, width - 8, 8):
        canvas.fill(x, target_y - 1, min(x + 5, width - 8), target_y + 1, TARGET_COLOUR)
    # Legend: the target first, then each desk, three to a row.
    entries = [(f"target {target}/day", TARGET_COLOUR)] + [
        (desk, DESK_COLOURS[k % len(DESK_COLOURS)]) for k, desk in enumerate(desks)
    ]
    col_w = (width - 16) // 3
    for n, (label, colour) in enumerate(entries):
        x, y = 8 + (n % 3) * col_w, 6 + 12 * (n // 3)
        canvas.fill(x, y, x + 8, y + 7, colour)
        canvas.text(x + 12, y, label[: max(1, (col_w - 16) // GLYPH_ADVANCE)])
    return ThroughputChart(canvas, tuple(bars), target_y, y_max, desks, days)


def write_chart(report: DeskReport, path: Path) -> ThroughputChart:
    """Draw the daily throughput of ``report`` and write it to ``path`` as PNG."""
    chart = throughput_chart(report.daily, report.target)
    write_files({path: chart.png()}, mode=0o600)
    return chart


__all__ = [
    "AGE_BUCKETS",
    "DEFAULT_TARGET",
    "DESK_COLOURS",
    "Bar",
    "Canvas",
    "DailyThroughput",
    "DeskReport",
    "PendingHandover",
    "Replacements",
    "ThroughputChart",
    "UncollectedAges",
    "build_report",
    "bucket_labels",
    "csv_files",
    "csv_tables",
    "desk_report",
    "throughput_chart",
    "write_chart",
    "write_csv",
]
