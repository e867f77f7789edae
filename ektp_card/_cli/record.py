"""ektp record: citizen records for personalisation (ektp_card/lds/record.py's format)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import click

from ektp_card._cli.util import Ctx, ExitCode, FilePath, check_output, fail


@click.group()
def record() -> None:
    """Citizen records: the JSON the desk personalises a card from."""


@record.command()
@click.argument("out", metavar="OUT", type=FilePath(path_type=Path, dir_okay=False))
@click.option("--seed", type=click.IntRange(0),
              help="Seed for the same records again (default: random, printed).")
@click.option("--count", type=click.IntRange(1, 100000), default=1, show_default=True,
              help="How many records (more than one needs --jsonl).")
@click.option("--jsonl", is_flag=True, help="Write JSON Lines: one record per line, images inline.")
@click.option("--files", "as_files", is_flag=True,
              help="Write the photo, signature and templates as files next to OUT (one JSON record only).")
@click.option("--force", is_flag=True, help="Overwrite OUT (and its image files).")
@click.pass_obj
def synthetic(obj: Ctx, out: Path, seed: int | None, count: int, jsonl: bool, as_files: bool,
              force: bool) -> None:
    """Write synthetic citizen records to OUT, marked "synthetic": true (test data, no real person).

    Images and templates are inline as base64 unless --files puts them in files next to OUT.
    """
    from ektp_card.lds.record import write_record
    from ektp_card.lds.synthetic import synthetic_records

    if count > 1 and not jsonl:
        raise click.UsageError("--count above 1 writes JSON Lines: add --jsonl")
    if jsonl and as_files:
        raise click.UsageError("--files is for one JSON record; JSON Lines keep images inline")
    if out.exists() and not force:
        fail(f"{out} exists; use --force to overwrite it", ExitCode.FILE)
    check_output(out)
    chosen = secrets.randbelow(2**31) if seed is None else seed
    records = synthetic_records(chosen, count)
    if jsonl:
        from ektp_card.files import write_atomic

        lines = (json.dumps(r.to_mapping(), ensure_ascii=False) for r in records)
        write_atomic(out, "".join(line + "\n" for line in lines).encode("utf-8"))
    else:
        write_record(records[0], out, inline=not as_files)
    if obj.json:
        obj.emit({"out": str(out), "seed": chosen, "count": count, "synthetic": True,
                  "niks": [r.nik for r in records]})
        return
    what = "record" if count == 1 else "records"
    obj.out.print(f"Wrote {count} synthetic {what} to {out} (seed {chosen}); test data, no real person",
                  markup=False)
