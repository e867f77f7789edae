"""`ektp desk ...`: the distribution desk (batch issuance, registry, handover, revocations, reports)."""

from __future__ import annotations

import click


@click.group()
def desk() -> None:
    """Distribution desk: issue batches, track each card's life cycle, report."""


def _register_revocations_and_reports() -> None:
    from ektp_card._cli.desk_reports import report
    from ektp_card._cli.desk_revocation import revocation_signer, revocations

    for command in (revocations, revocation_signer, report):
        desk.add_command(command)


_register_revocations_and_reports()


def _register_sync() -> None:
    from ektp_card._cli import desk_sync

    desk.add_command(desk_sync.lease)
    desk.add_command(desk_sync.sync)


_register_sync()
