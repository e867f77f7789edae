"""Options shared by commands that talk to a card."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ektp_card._cli.util import FilePath, Finite

#: Seconds to wait for a card: a finite wait (an hour at most), never a negative one.
TIMEOUT = Finite(0, 3600)

if TYPE_CHECKING:
    from ektp_card.crypto.pace import MappingType
    from ektp_card.device import CardSource

F = TypeVar("F", bound=Callable[..., Any])


def card_source_options(func: F) -> F:
    """--reader / --nfc / --virtual / --timeout; the command turns them into a CardSource."""

    decorators = [
        click.option("--reader", "-r", metavar="NAME|INDEX", help="PC/SC reader (name substring or index)."),
        click.option("--nfc", metavar="PATH", help="nfcpy device path, e.g. usb or udp:127.0.0.1:54321."),
        click.option(
            "--virtual", "virtual", metavar="IMAGE", type=FilePath(path_type=Path, dir_okay=False),
            help="Virtual card image file (saved back after the session).",
        ),
        click.option("--timeout", type=TIMEOUT, default=5.0, show_default=True,
                      help="Seconds to wait for a card."),
    ]
    for d in reversed(decorators):
        func = d(func)
    return func


def make_source(reader: str | None, nfc: str | None, virtual: Path | None, timeout: float) -> CardSource:
    given = [name for name, v in (("--reader", reader), ("--nfc", nfc), ("--virtual", virtual)) if v]
    if len(given) > 1:
        raise click.UsageError(f"use only one of {', '.join(given)}")
    from ektp_card.device import CardSource  # the transports' package, only once a command runs

    return CardSource(reader=reader, nfc=nfc, virtual=virtual, timeout=timeout)


#: --pace-mapping: ``auto`` runs the strongest mapping the card offers (CAM, then IM, then GM).
PACE_MAPPINGS = ("auto", "gm", "im", "cam")


def pace_mapping_option(func: F) -> F:
    """--pace-mapping auto|gm|im|cam (parameter ``pace_mapping``); :func:`pace_mapping` reads it."""
    return click.option(
        "--pace-mapping", type=click.Choice(PACE_MAPPINGS, case_sensitive=False), default="auto",
        show_default=True,
        help="PACE mapping to run: the strongest the card offers (auto: CAM, then IM, then GM) or only "
             "Generic, Integrated or Chip Authentication Mapping.",
    )(func)


def pace_mapping(value: str) -> MappingType | None:
    """The mapping --pace-mapping names; ``None`` for auto."""
    from ektp_card.crypto.pace import MappingType

    key = value.strip().upper()
    return None if key == "AUTO" else MappingType(key)
