"""ektp apdu: send raw APDUs and show what the card answered."""

from __future__ import annotations

from pathlib import Path

import click

from ektp_card._cli.options import card_source_options, make_source
from ektp_card._cli.util import Ctx, ExitCode, fail, parse_hex
from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.device import open_card


@click.command()
@card_source_options
@click.option("--extended/--short", default=False, help="Allow extended-length APDUs.")
@click.argument("apdus", nargs=-1, required=True, metavar="HEX...")
@click.pass_obj
def apdu(
    obj: Ctx, reader: str | None, nfc: str | None, virtual: Path | None, timeout: float,
    extended: bool, apdus: tuple[str, ...],
) -> None:
    """Send each command APDU (hex) and print the response and its status word.

    Exits 0 when every status word is 9000 or a 62xx/63xx warning, 6 otherwise.
    """
    commands = []
    for text in apdus:
        raw = parse_hex(text, "APDU")
        try:
            commands.append(CommandApdu.decode(raw))
        except ValueError as e:
            fail(f"APDU {text!r}: {e}", ExitCode.USAGE)
    results = []
    with open_card(make_source(reader, nfc, virtual, timeout)) as transport:
        protocol = ApduProtocol(transport, extended=extended)
        for cmd in commands:
            resp = protocol.transmit(cmd)
            results.append((cmd, resp))
    failed = [(i, r) for i, (_, r) in enumerate(results, start=1)
              if r.sw1 not in (0x90, 0x62, 0x63) or (r.sw1 == 0x90 and r.sw2)]
    if obj.json:
        obj.emit([
            {"command": c.encode().hex().upper(), "data": r.data.hex().upper(), "sw": f"{r.sw:04X}",
             "meaning": r.meaning}
            for c, r in results
        ])
    else:
        for c, r in results:
            obj.out.print(f">> {c.encode().hex().upper()}")
            if r.data:
                obj.out.print(f"<< {r.data.hex().upper()}")
            obj.out.print(f"   {r.sw:04X} {r.meaning}")
    if failed:
        index, response = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        fail(f"APDU {index} answered {response.sw:04X}: {response.meaning}{more}", ExitCode.CARD_STATUS)
