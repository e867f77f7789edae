"""ektp virtual: create, show and serve virtual card images."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from ektp_card._cli.passwords import new_password, prompt_if_asked
from ektp_card._cli.util import (
    Capacity,
    Ctx,
    ExitCode,
    FilePath,
    Finite,
    Word,
    about,
    check_output,
    fail,
    parse_hex,
)

log = logging.getLogger("ektp_card.cli")

IMAGE = click.argument("image", type=FilePath(path_type=Path, dir_okay=False))
CAPACITY = click.option(
    "--capacity", type=Capacity(), metavar="SIZE",
    help="The chip's memory (EEPROM) for files and keys, like 8K (the e-KTP chip) or 64K; "
         "a write past it fails with 6A84. Default: 1M.",
)


@click.group()
def virtual() -> None:
    """Virtual cards: a card OS in a file, served in-process or to a real pcscd."""


@virtual.command()
@IMAGE
@click.option("--extended/--no-extended", default=True, show_default=True,
              help="Support extended-length APDUs (advertised in EF.ATR/INFO).")
@click.option("--uid", metavar="HEX", help="A fixed 4- or 7-byte UID (default: random per session).")
@click.option("--can", metavar="CAN|-|random",
              help="Protect the application with PACE and this card access number; '-' asks for it, "
                   "'random' draws six digits and prints them once.")
@click.option("--pin", metavar="PIN|-|random",
              help="Also a PACE PIN (3 tries, then suspended, then blocked) and a file only it opens.")
@click.option("--mrz", metavar="MRZ|-",
              help="Enable BAC (and PACE-MRZ with --can/--pin) for this MRZ: the whole MRZ, or "
                   "DOCUMENT,BIRTH,EXPIRY (dates YYMMDD).")
@CAPACITY
@click.option("--force", is_flag=True, help="Overwrite an existing image.")
@click.pass_obj
def create(
    obj: Ctx, image: Path, extended: bool, uid: str | None, can: str | None, pin: str | None,
    mrz: str | None, capacity: int | None, force: bool,
) -> None:
    """Create IMAGE holding a new card with the demo application.

    Without --can, --pin or --mrz its files are free to read; with them, reading needs PACE or BAC.
    """
    from ektp_card.virtual import demo_card

    if image.exists() and not force:
        fail(f"{image} exists; use --force to overwrite it", ExitCode.FILE)
    check_output(image)
    uid_bytes = parse_hex(uid, "UID") if uid is not None else None
    if uid_bytes is not None and len(uid_bytes) not in (4, 7):
        fail("UID must be 4 or 7 bytes", ExitCode.USAGE)
    can_value, can_drawn = new_password(can, "CAN")
    pin_value, pin_drawn = new_password(pin, "PIN")
    mrz_text = prompt_if_asked(mrz, "MRZ")
    access: list[str] = []
    if can_value is None and pin_value is None and mrz_text is None:
        card = demo_card(extended_length=extended, uid=uid_bytes)
    else:
        from ektp_card.access import parse_mrz
        from ektp_card.errors import MrzError
        from ektp_card.virtual.profiles import protected_demo_card

        with about("--mrz", MrzError):
            mrz_info = None if mrz_text is None else parse_mrz(mrz_text)
        card = protected_demo_card(
            can=can_value, pin=pin_value, mrz=mrz_info, extended_length=extended, uid=uid_bytes
        )
        pace = [kind for kind, value in (("CAN", can_value), ("PIN", pin_value)) if value is not None]
        if pace and mrz_info is not None:
            pace.append("MRZ")
        access = [f"PACE-{kind}" for kind in pace] + (["BAC"] if mrz_info is not None else [])
    if capacity is not None:
        if card.fs.used > capacity:
            fail(f"the demo application takes {card.fs.used} bytes; --capacity {capacity} is too small",
                 ExitCode.USAGE)
        card.fs.capacity = capacity
    card.save(image)
    # A drawn password is shown once, like the CAN printed on a card; a chosen one never is.
    drawn = (("can", can_value, can_drawn), ("pin", pin_value, pin_drawn))
    shown = {kind: value for kind, value, was_drawn in drawn if was_drawn and value is not None}
    if obj.json:
        obj.emit({"image": str(image), "extended_length": extended, "access": access, **shown})
        return
    protection = f" protected by {', '.join(access)}" if access else ""
    obj.out.print(f"Created virtual card {image}{protection}", markup=False)
    for kind, value in shown.items():
        obj.out.print(f"{kind.upper()}: {value}", markup=False)


@virtual.command()
@IMAGE
@click.option("--serial", metavar="HEX", help="The card's 8-byte serial (default: random).")
@click.option("--master-key-file", type=FilePath(path_type=Path, dir_okay=False), metavar="FILE",
              help="The issuer's AES master key (16 or 32 bytes, hex or binary). "
                   "Default: hex in the environment variable EKTP_PERSO_MASTER_KEY.")
@click.option("--extended/--no-extended", default=True, show_default=True,
              help="Support extended-length APDUs (advertised in EF.ATR/INFO).")
@click.option("--uid", metavar="HEX", help="A fixed 4- or 7-byte UID (default: random per session).")
@CAPACITY
@click.option("--force", is_flag=True, help="Overwrite an existing image.")
@click.pass_obj
def blank(
    obj: Ctx, image: Path, serial: str | None, master_key_file: Path | None, extended: bool, uid: str | None,
    capacity: int | None, force: bool,
) -> None:
    """Create IMAGE holding a blank e-KTP chip, ready for `ektp personalize`.

    The chip holds only its serial and its personalisation key, diversified from the issuer's
    master key (never the master key itself).
    """
    from ektp_card._cli.personalize import master_key
    from ektp_card.crypto.perso import SERIAL_LENGTH
    from ektp_card.virtual.perso import blank_card

    if image.exists() and not force:
        fail(f"{image} exists; use --force to overwrite it", ExitCode.FILE)
    check_output(image)
    serial_bytes = parse_hex(serial, "serial") if serial is not None else None
    if serial_bytes is not None and len(serial_bytes) != SERIAL_LENGTH:
        fail(f"a card serial is {SERIAL_LENGTH} bytes ({2 * SERIAL_LENGTH} hex digits)", ExitCode.USAGE)
    uid_bytes = parse_hex(uid, "UID") if uid is not None else None
    if uid_bytes is not None and len(uid_bytes) not in (4, 7):
        fail("UID must be 4 or 7 bytes", ExitCode.USAGE)
    key = master_key(master_key_file)
    sized = {} if capacity is None else {"capacity": capacity}
    card = blank_card(key, serial_bytes, extended_length=extended, uid=uid_bytes, **sized)
    card.save(image)
    from ektp_card.virtual.perso import card_serial

    number = (card_serial(card) or b"").hex().upper()
    if obj.json:
        obj.emit({"image": str(image), "serial": number, "extended_length": extended,
                  "capacity": card.fs.capacity, "free": card.fs.free})
        return
    obj.out.print(f"Created blank card {image}, serial {number}, {card.fs.free} of {card.fs.capacity} "
                  "bytes of memory free", markup=False)


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
    o.print(f"  keys             {', '.join(summary.key_names) or 'none'} ({summary.keys_used} bytes)")
    o.print(f"  memory           {summary.used} of {summary.capacity} bytes used, {summary.free} free "
            f"(files {summary.files_used}, keys {summary.keys_used})")
    table = Table("file", "FID", "SFI", "size", "memory", "name / AID", "state", "read", "update")
    for f in summary.files:
        table.add_row(
            "  " * f.depth + f.kind,
            f"{f.fid:04X}",
            "" if f.sfi is None else f"{f.sfi:02X}",
            "" if f.size is None else str(f.size),
            str(f.storage),
            f.name.hex().upper() if f.name else "",
            f.life_cycle,
            f.read,
            f.update,
        )
    o.print(table)


@virtual.command()
@IMAGE
@click.option("--host", default="127.0.0.1", show_default=True, type=Word(253),
              help="Where pcscd's vpcd driver listens.")
@click.option("--port", type=click.IntRange(1, 65535), default=35963, show_default=True,
              help="35963 for reader 'Virtual PCD 00 00', 35964 for '00 01'.")
@click.option("--connect-timeout", type=Finite(0, 3600), default=10.0, show_default=True,
              help="Seconds to wait for vpcd to accept the card.")
@click.option("--pcscd", "start_pcscd", is_flag=True,
              help="Start a private pcscd for as long as the card is served, unless one already runs.")
@click.pass_obj
def serve(obj: Ctx, image: Path, host: str, port: int, connect_timeout: float, start_pcscd: bool) -> None:
    """Put IMAGE into a real pcscd as reader "Virtual PCD 00 00" until Ctrl-C.

    Changes the card makes are saved to IMAGE as they happen. Software in any language then reads the
    card through its own PC/SC stack (docs/testing.md).
    """
    from ektp_card.virtual import VirtualCard
    from ektp_card.virtual.vpcd import VpcdBridge

    card = VirtualCard.load(image)
    started = None
    if start_pcscd:
        from ektp_card.virtual.pcscd import ensure_pcscd

        started = ensure_pcscd(timeout=15.0)
        if started is not None and not obj.json:
            click.echo("Started a private pcscd; it stops with the card.", err=True)
    before = card.dumps()

    def connected() -> None:
        # Said once vpcd took the card: a failure to connect stays the one line it should be.
        if not obj.json:
            click.echo(f"Serving {image} to vpcd at {host}:{port}; Ctrl-C to stop.", err=True)

    bridge = VpcdBridge(card, host, port, on_change=lambda: card.save(image), connect_timeout=connect_timeout,
                        on_connect=connected)
    try:
        bridge.run()
    except KeyboardInterrupt:
        bridge.stop()
    finally:
        if card.dumps() != before:
            card.save(image)
        if started is not None:
            started.stop()
    if obj.json:
        obj.emit({"image": str(image), "commands": bridge.commands})
    else:
        click.echo(f"Stopped after {bridge.commands} commands; {image} saved.", err=True)
