"""The desk operator's pages: a batch checked before it is issued, issued with live progress, the print
queue, the handover with the holder's finger, the life-cycle actions and the daily report.

Batch issuance runs :func:`ektp_card.desk.batch.issue_batch` in a background thread, so it survives a
browser reload; after a power cut the station starts again, the batch page shows how far the registry
says it got, and issuing the same file again goes on from there (the batch is named by its file's hash).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ektp_card import errors
from ektp_card.desk.batch import BatchProgress, BatchSummary, CardStation, Issuance, issue_batch
from ektp_card.desk.registry import CardRow, CardState, Registry, open_registry
from ektp_card.desk.reports import AGE_BUCKETS, DEFAULT_TARGET, DeskReport, desk_report
from ektp_card.lds.record import read_batch

log = logging.getLogger("ektp_card.station.desk")

SERIAL = re.compile(r"[0-9A-Fa-f]{4,64}")
BATCH = re.compile(r"[0-9a-f]{6,64}")
BATCH_SUFFIXES = (".jsonl", ".csv")


@dataclass(frozen=True)
class DeskConfig:
    """The desk: its registry, its name, its daily target, and (to issue cards) the issuer's keys and
    where blank cards come from. ``work_dir`` keeps uploaded batch files."""

    registry: str
    work_dir: Path
    desk: str = "desk"
    target: int = DEFAULT_TARGET
    issuance: Issuance | None = field(default=None, repr=False)
    cards: CardStation | None = None

    @contextmanager
    def open(self) -> Iterator[Registry]:
        with open_registry(self.registry) as registry:
            yield registry

    @property
    def batches(self) -> Path:
        return self.work_dir / "batches"

    def batch_file(self, bid: str) -> Path | None:
        """The uploaded batch ``bid``, if there is one (``bid`` is checked: never a path)."""
        if not BATCH.fullmatch(bid):
            return None
        for suffix in BATCH_SUFFIXES:
            path = self.batches / f"{bid}{suffix}"
            if path.is_file():
                return path
        return None


@dataclass(frozen=True)
class BatchPreview:
    """What a batch holds before anything is issued."""

    total: int
    valid: int
    #: (line, rule names) of rows that fail the record rules.
    rejected: tuple[tuple[int, str], ...]
    #: (line, NIK) of rows whose NIK already has a live card: they will be skipped.
    already: tuple[tuple[int, str], ...]
    #: Cards of this batch the registry already knows (issued before, e.g. until a power cut).
    issued_before: int
    names: Mapping[int, str] = field(repr=False, default_factory=dict)


def preview(config: DeskConfig, path: Path, bid: str) -> BatchPreview:
    """Validate every row of ``path`` (reading no file a row names) and look its NIK up."""
    rejected: list[tuple[int, str]] = []
    already: list[tuple[int, str]] = []
    names: dict[int, str] = {}
    total = 0
    with config.open() as registry:
        mine = {row.nik for row in registry.cards(batch=bid)}
        for row in read_batch(path, inline_only=True):
            total += 1
            if row.record is None:
                rules = ", ".join(row.error.rules) if row.error is not None else "record.invalid"
                rejected.append((row.line, rules))
                continue
            personal = row.record.personal
            names[row.line] = personal.name
            live = registry.live_card(personal.nik)
            if live is not None and personal.nik not in mine:
                already.append((row.line, personal.nik))
        issued_before = len(mine)
    valid = total - len(rejected)
    return BatchPreview(total, valid, tuple(rejected), tuple(already), issued_before, names)


class BatchJob:
    """One batch being issued in the background; its progress for the page and the summary at the end."""

    def __init__(
        self, config: DeskConfig, path: Path, bid: str, actor: str, names: Mapping[int, str]
    ) -> None:
        self.config, self.path, self.bid, self.actor = config, path, bid, actor
        self.names = dict(names)
        self.cancel = threading.Event()
        self.progress: BatchProgress | None = None
        self.notice = ""
        self.summary: BatchSummary | None = None
        self.problem: str | None = None
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, name=f"batch-{bid}", daemon=True)

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        config = self.config
        assert config.issuance is not None and config.cards is not None  # noqa: S101 - checked by the caller
        try:
            with config.open() as registry:
                self.summary = issue_batch(
                    self.path, registry, config.cards, config.issuance, desk=config.desk, actor=self.actor,
                    progress=self._progress, notice=self._notice, cancel=self.cancel, inline_only=True,
                )
        except errors.EktpError as exc:
            self.problem = str(exc)
            log.warning("batch %s stopped: %s", self.bid, exc)
        except Exception:  # noqa: BLE001 - the page says it stopped; the log has the detail
            self.problem = "internal error (see the station's log with -vv)"
            log.error("batch %s failed", self.bid, exc_info=log.isEnabledFor(logging.DEBUG))

    def _progress(self, progress: BatchProgress) -> None:
        self.progress = progress

    def _notice(self, text: str) -> None:
        self.notice = text

    def to_json(self) -> dict[str, object]:
        p, s = self.progress, self.summary
        state = "running" if self.running else ("stopped" if self.problem else (
            "cancelled" if s is not None and s.cancelled else "finished"))
        current = None if p is None or p.line is None else self.names.get(p.line)
        return {
            "state": state,
            "done": 0 if p is None else p.done,
            "total": 0 if p is None else p.total,
            "issued": 0 if p is None else p.issued,
            "skipped": 0 if p is None else p.skipped,
            "rejected": 0 if p is None else p.rejected,
            "spoiled": 0 if p is None else p.spoiled,
            "cards_per_hour": 0 if p is None else round(p.cards_per_hour),
            "eta_seconds": None if p is None or p.eta is None else round(p.eta),
            "current": current,
            "notice": self.notice,
            "problem": self.problem,
        }


class Jobs:
    """The station's batch jobs by batch ID: one at a time per batch, and one batch at a time per
    desk (its card source is one reader)."""

    def __init__(self) -> None:
        self._jobs: dict[str, BatchJob] = {}
        self._lock = threading.Lock()

    def get(self, bid: str) -> BatchJob | None:
        return self._jobs.get(bid)

    def start(self, job: BatchJob) -> bool:
        with self._lock:
            if any(j.running for j in self._jobs.values()):
                return False
            self._jobs[job.bid] = job
            job.start()
            return True

    def running(self) -> BatchJob | None:
        return next((j for j in self._jobs.values() if j.running), None)

    def stop_all(self, timeout: float = 30.0) -> None:
        """Ask every running batch to stop after the card in hand, and wait for it."""
        for job in list(self._jobs.values()):
            job.cancel.set()
        for job in list(self._jobs.values()):
            job.thread.join(timeout)


# --- the report as charts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    over: bool = False


@dataclass(frozen=True)
class BarChart:
    """A bar chart's geometry in SVG user units; the template draws it."""

    width: int
    height: int
    bars: tuple[Bar, ...]
    #: The target line's y, when the chart has one.
    target_y: float | None
    top: int
    baseline: float


def bar_chart(values: list[tuple[str, int]], *, target: int | None = None, width: int = 640,
              height: int = 220) -> BarChart:
    """Bars for ``values`` (label, count) scaled to the largest value or the target."""
    left, bottom, top_pad = 40.0, 30.0, 10.0
    top = max([v for _, v in values] + [target or 0, 1])
    plot_h = height - bottom - top_pad
    slot = (width - left) / max(1, len(values))
    bars = []
    for i, (label, value) in enumerate(values):
        h = plot_h * value / top
        bars.append(Bar(left + i * slot + slot * 0.15, top_pad + plot_h - h, slot * 0.7, h, label, value,
                        target is not None and value >= target))
    target_y = None if target is None else top_pad + plot_h - plot_h * target / top
    return BarChart(width, height, tuple(bars), target_y, top, top_pad + plot_h)


def report_charts(report: DeskReport, desk: str, days: int = 14) -> dict[str, BarChart]:
    """Cards per day (the last ``days`` days) against the target, and uncollected cards by age."""
    today = report.generated_at.date()
    per_day = {d.day: d.cards for d in report.daily if d.desk == desk}
    daily = [((today - dt.timedelta(days=n)).strftime("%d-%m"), per_day.get(today - dt.timedelta(days=n), 0))
             for n in range(days - 1, -1, -1)]
    ages = [0] * len(AGE_BUCKETS)
    for u in report.uncollected:
        if u.desk == desk:
            ages = list(u.buckets)
    return {
        "daily": bar_chart(daily, target=report.target),
        "uncollected": bar_chart([(label, n) for (label, _, _), n in zip(AGE_BUCKETS, ages, strict=True)],
                                 width=360),
    }


def card_counts(registry: Registry, desk: str) -> dict[str, int]:
    counts = {str(s): 0 for s in CardState}
    for row in registry.cards(desk=desk):
        counts[str(row.state)] += 1
    return counts


def pending_cards(registry: Registry, desk: str) -> list[CardRow]:
    return registry.cards(states=[CardState.PERSONALISED], desk=desk)


def build_report(config: DeskConfig) -> DeskReport:
    with config.open() as registry:
        return desk_report(registry, target=config.target)


__all__ = [
    "BATCH",
    "BATCH_SUFFIXES",
    "SERIAL",
    "BarChart",
    "BatchJob",
    "BatchPreview",
    "DeskConfig",
    "Jobs",
    "bar_chart",
    "build_report",
    "card_counts",
    "pending_cards",
    "preview",
    "report_charts",
]
