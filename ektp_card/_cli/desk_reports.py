"""`ektp desk report`: throughput per desk and day against the target, pending handovers, uncollected
cards by age, replacements by reason (docs/desk-reports.md); tables, JSON, CSV and a PNG chart."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ektp_card._cli.desk_revocation import REGISTRY
from ektp_card._cli.util import Ctx, ExitCode, FilePath, check_output, fail

if TYPE_CHECKING:
    from ektp_card.desk.reports import DeskReport

#: Pending handovers shown in the table (all of them go to JSON and CSV).
SHOWN_PENDING = 20


def _parse_day(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        fail(f"--since wants a date YYYY-MM-DD, got {value!r}", ExitCode.USAGE)


@click.command("report")
@REGISTRY
@click.option("--target", type=click.IntRange(1, 100_000), default=150, show_default=True, metavar="N",
              help="Cards per desk per day to aim for.")
@click.option("--since", metavar="YYYY-MM-DD",
              help="Only days from this date on (throughput and replacements); pending cards are always all.")
@click.option("--csv", "csv_dir", type=FilePath(path_type=Path, file_okay=False), metavar="DIR",
              help="Also write daily.csv, pending_handovers.csv, uncollected.csv, replacements.csv here.")
@click.option("--chart", type=FilePath(path_type=Path, dir_okay=False), metavar="FILE.png",
              help="Also draw the daily throughput per desk against the target as a PNG.")
@click.option("--utc", is_flag=True, help="Count days in UTC instead of this computer's time zone.")
@click.pass_obj
def report(obj: Ctx, registry_target: str, target: int, since: str | None, csv_dir: Path | None,
           chart: Path | None, utc: bool) -> None:
    """Report where the backlog is: cards per desk per day, pending handovers, uncollected cards by
    age, replacements by reason. Exit 15 when the registry cannot be read."""
    from ektp_card.desk.registry import open_registry
    from ektp_card.desk.reports import csv_files, desk_report, throughput_chart
    from ektp_card.files import write_files

    since_day = _parse_day(since)
    if csv_dir is not None:
        check_output(csv_dir, folder=True)
    if chart is not None:
        check_output(chart)
    tz = dt.UTC if utc else (dt.datetime.now().astimezone().tzinfo or dt.UTC)
    with open_registry(registry_target, create=False) as registry:
        result = desk_report(registry, target=target, since=since_day, tz=tz)
    files = csv_files(result, csv_dir) if csv_dir is not None else {}
    if chart is not None:
        files[chart] = throughput_chart(result.daily, result.target).png()
    # The tables and the chart are written together, or nothing is (a folder made for them too).
    write_files(files, mode=0o600, folder_mode=0o700)
    written = list(files)
    if obj.json:
        data = result.to_json()
        data["files"] = [str(p) for p in written]
        obj.emit(data)
        return
    _render(obj, result)
    for path in written:
        obj.out.print(f"wrote {path}", markup=False)


def _render(obj: Ctx, r: DeskReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ektp_card.desk.reports import bucket_labels

    o = obj.out
    daily = Table(title=f"Cards personalised per desk per day (target {r.target})")
    for column in ("desk", "day", "cards", "of target"):
        daily.add_column(column, justify="right" if column in ("cards", "of target") else "left")
    for d in r.daily:
        share = f"{d.share:.0%}"
        daily.add_row(escape(d.desk), d.day.isoformat(), str(d.cards),
                      share if d.cards >= d.target else f"[yellow]{share}[/yellow]")
    o.print(daily)

    pending = Table(title=f"Pending handovers ({len(r.pending)}, oldest first)")
    for column in ("serial", "desk", "personalised", "age (days)"):
        pending.add_column(column, justify="right" if column.startswith("age") else "left")
    for p in r.pending[:SHOWN_PENDING]:
        pending.add_row(escape(p.serial), escape(p.desk), f"{p.personalised_at:%Y-%m-%d %H:%M}",
                        str(p.age_days))
    o.print(pending)
    if len(r.pending) > SHOWN_PENDING:
        o.print(f"... and {len(r.pending) - SHOWN_PENDING} more (--csv or --json lists them all)")

    uncollected = Table(title="Uncollected cards by age")
    uncollected.add_column("desk")
    for label in (*bucket_labels(), "total", "issued", "uncollected"):
        uncollected.add_column(label, justify="right")
    for u in r.uncollected:
        uncollected.add_row(escape(u.desk), *map(str, u.buckets), str(u.total), str(u.issued),
                            f"{u.share:.0%}")
    o.print(uncollected)

    replacements = Table(title="Replacements by reason" + (f" since {r.since}" if r.since else ""))
    for column in ("reason", "reported", "replaced", "awaiting"):
        replacements.add_column(column, justify="left" if column == "reason" else "right")
    for x in r.replacements:
        replacements.add_row(x.reason, str(x.reported), str(x.replaced), str(x.awaiting))
    o.print(replacements)
