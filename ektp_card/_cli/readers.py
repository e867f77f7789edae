"""ektp readers: the PC/SC readers pcscd knows, with card presence and ATR."""

from __future__ import annotations

import click

from ektp_card._cli.util import Ctx


@click.command()
@click.pass_obj
def readers(obj: Ctx) -> None:
    """List PC/SC readers (index, name, card present, ATR)."""
    from ektp_card.apdu.pcsc import list_readers

    found = list_readers()
    if obj.json:
        obj.emit([
            {"index": i, "name": r.name, "card_present": r.card_present,
             "atr": r.atr.hex().upper() if r.atr else None}
            for i, r in enumerate(found)
        ])
        return
    if not found:
        obj.out.print("No readers. Is a reader plugged in, or is `ektp virtual serve` running?")
        return
    from rich.table import Table

    table = Table("#", "reader", "card", "ATR")
    for i, r in enumerate(found):
        table.add_row(str(i), r.name, "yes" if r.card_present else "no", r.atr.hex().upper() if r.atr else "")
    obj.out.print(table)
