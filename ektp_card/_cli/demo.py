"""ektp demo: the main job on embedded defaults (for now: a virtual-card session)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from ektp_card._cli.util import Ctx, ExitCode


@click.command()
@click.option("--image", type=click.Path(path_type=Path, dir_okay=False),
              help="Keep the card image here (default: a temporary directory).")
@click.pass_obj
def demo(obj: Ctx, image: Path | None) -> None:
    """Create a virtual card, then select, read, write and challenge it as a reader would."""
    from ektp_card.demo import run_demo

    with tempfile.TemporaryDirectory(prefix="ektp-demo-") as tmp:
        report = run_demo(image or Path(tmp) / "demo-card.img")
    if obj.json:
        obj.emit({
            "ok": report.ok, "atr": report.atr.hex().upper(), "apdus": report.apdus,
            "seconds": round(report.seconds, 4),
            "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in report.steps],
        })
    else:
        from rich.table import Table

        obj.out.print(f"Virtual card, ATR {report.atr.hex().upper()}")
        table = Table("step", "result", "detail")
        for s in report.steps:
            table.add_row(s.name, "[green]ok[/green]" if s.ok else "[red]FAILED[/red]", s.detail)
        obj.out.print(table)
        obj.out.print(f"{report.apdus} APDUs in {report.seconds * 1000:.1f} ms"
                      + (f"; image kept at {image}" if image else ""))
    if not report.ok:
        raise click.exceptions.Exit(int(ExitCode.CARD_STATUS))
