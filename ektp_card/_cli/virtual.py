"""ektp virtual: create, show and serve virtual card images."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from ektp_card._cli.util import Ctx, ExitCode, fail, parse_hex

log = logging.getLogger("ektp_card.cli")

IMAGE = click.argument("image", type=click.Path(path_type=Path, dir_okay=False))


@click.group()
def virtual() -> None:
    """Virtual cards: a card OS in a file, served in-process or to a real pcscd."""


@virtual.command()
@IMAGE
@click.option("--extended/--no-extended", default=True, show_default=True,
              help="Support extended-length APDUs (advertised in EF.ATR/INFO).")
@click.option("--uid", metavar="HEX", help="A fixed 4- or 7-byte UID (default: random per session).")
@click.option("--force", is_flag=True, help="Overwrite an existing image.")
@click.pass_obj
def create(obj: Ctx, image: Path, extended: bool, uid: str | None, force: bool) -> None:
    """Create IMAGE holding a new card with the demo application."""
    from ektp_card.virtual import demo_card

    if image.exists() and not force:
        fail(f"{image} exists; use --force to overwrite it", ExitCode.FILE)
    uid_bytes = parse_hex(uid, "UID") if uid is not None else None
    if uid_bytes is not None and len(uid_bytes) not in (4, 7):
        fail("UID must be 4 or 7 bytes", ExitCode.USAGE)
    card = demo_card(extended_length=extended, uid=uid_bytes)
    card.save(image)
    if obj.json:
        obj.emit({"image": str(image), "extended_length": extended})
    else:
        obj.out.print(f"Created virtual card {image}")


@virtual.command()
@IMAGE
@click.pass_obj
def show(obj: Ctx, image: Path) -> None:
    """Show IMAGE's settings and file tree (never key material)."""
    from ektp_card.virtual import VirtualCard
    from ektp_card.virtual.summary import summarize

    summary = summarize(VirtualCard.load(image))
    if obj.json:
        obj.emit(summary.to_json())
        return
    from rich.table import Table

    o = obj.out
    o.print(f"[bold]{image}[/bold]")
    o.print(f"  life cycle       {summary.life_cycle}")
    o.print(f"  extended length  {'yes' if summary.extended_length else 'no'}"
            f" (max command {summary.max_command_data}, max response {summary.max_response_data})")
    o.print(f"  UID              {summary.uid}")
    o.print(f"  historical bytes {summary.historical_bytes.hex().upper()}")
    o.print(f"  keys             {', '.join(summary.key_names) or 'none'}")
    o.print(f"  memory           {summary.used} of {summary.capacity} bytes")
    table = Table("file", "FID", "SFI", "size", "name / AID", "state", "read", "update")
    for f in summary.files:
        table.add_row(
            "  " * f.depth + f.kind,
            f"{f.fid:04X}",
            "" if f.sfi is None else f"{f.sfi:02X}",
            "" if f.size is None else str(f.size),
            f.name.hex().upper() if f.name else "",
            f.life_cycle,
            f.read,
            f.update,
        )
    o.print(table)


@virtual.command()
@IMAGE
@click.option("--host", default="127.0.0.1", show_default=True, help="Where pcscd's vpcd driver listens.")
@click.option("--port", type=int, default=35963, show_default=True,
              help="35963 for reader 'Virtual PCD 00 00', 35964 for '00 01'.")
@click.option("--connect-timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait for vpcd to accept the card.")
@click.pass_obj
def serve(obj: Ctx, image: Path, host: str, port: int, connect_timeout: float) -> None:
    """Put IMAGE into a real pcscd as reader "Virtual PCD 00 00" until Ctrl-C.

    Changes the card makes are saved to IMAGE as they happen.
    """
    from ektp_card.virtual import VirtualCard
    from ektp_card.virtual.vpcd import VpcdBridge

    card = VirtualCard.load(image)
    bridge = VpcdBridge(card, host, port, on_change=lambda: card.save(image), connect_timeout=connect_timeout)
    if not obj.json:
        click.echo(f"Serving {image} to vpcd at {host}:{port}; Ctrl-C to stop.", err=True)
    try:
        bridge.run()
    except KeyboardInterrupt:
        bridge.stop()
    finally:
        card.save(image)
    if obj.json:
        obj.emit({"image": str(image), "commands": bridge.commands})
    else:
        click.echo(f"Stopped after {bridge.commands} commands; {image} saved.", err=True)
