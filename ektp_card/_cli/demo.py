"""ektp demo: the main job on embedded defaults: issue a virtual e-KTP from a synthetic record, verify it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from ektp_card._cli.util import Ctx, ExitCode, FilePath, check_output


@click.command()
@click.option("--image", type=FilePath(path_type=Path, dir_okay=False),
              help="Keep the personalised card image here (default: a temporary directory).")
@click.option("--seed", type=click.IntRange(0), help="Seed of the synthetic record (default: random).")
@click.pass_obj
def demo(obj: Ctx, image: Path | None, seed: int | None) -> None:
    """Issue a virtual e-KTP card from a synthetic record and verify it like a clerk.

    Creates a throwaway issuer PKI, a synthetic citizen record and a blank card, personalises and
    locks it, then reads it back: PACE with the CAN, Passive, Chip and Active Authentication.
    """
    from ektp_card.demo import run_demo

    if image is not None:
        check_output(image)

    with tempfile.TemporaryDirectory(prefix="ektp-demo-") as tmp:
        report = run_demo(Path(tmp), seed=seed)
        if image is not None:
            from ektp_card.files import write_atomic

            # The card is made in the scratch folder; --image gets it whole at the end, or not at all.
            write_atomic(image, report.image.read_bytes(), mode=0o600)
    if obj.json:
        obj.emit({
            "ok": report.ok, "card_serial": report.card_serial, "can": report.can, "nik": report.nik,
            "data_groups": [f"DG{n}" for n in report.data_groups], "apdus": report.apdus,
            "seconds": round(report.seconds, 4),
            "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in report.steps],
        })
    else:
        from rich.table import Table

        o = obj.out
        o.print(f"Issued virtual e-KTP {report.card_serial} from a synthetic record (NIK {report.nik})",
                markup=False)
        o.print(f"CAN {report.can} (printed on the card); data groups "
                f"{', '.join(f'DG{n}' for n in report.data_groups)} signed in EF.SOD", markup=False)
        table = Table("step", "result", "detail")
        for s in report.steps:
            table.add_row(s.name, "[green]ok[/green]" if s.ok else "[red]FAILED[/red]", s.detail)
        o.print(table)
        o.print(f"{report.checks_passed}/{len(report.steps)} checks passed; {report.apdus} APDUs in "
                f"{report.seconds * 1000:.0f} ms" + (f"; card image kept at {image}" if image else ""),
                markup=False)
    if not report.ok:
        raise click.exceptions.Exit(int(ExitCode.VERIFY_FAILED))
