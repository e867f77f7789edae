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
