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


def _register_issue_and_cards() -> None:
    from ektp_card._cli import desk_cards
    from ektp_card._cli.desk_issue import issue

    desk.add_command(issue)
    desk.add_command(desk_cards.show)
    desk.add_command(desk_cards.handover)
    desk.add_command(desk_cards.activate)
    desk.add_command(desk_cards.lost)
    desk.add_command(desk_cards.damaged)
    desk.add_command(desk_cards.revoke)
    desk.add_command(desk_cards.replace)
    desk.add_command(desk_cards.audit_verify)


_register_issue_and_cards()


def _register_sync() -> None:
    from ektp_card._cli import desk_sync

    desk.add_command(desk_sync.lease)
    desk.add_command(desk_sync.sync)


_register_sync()
