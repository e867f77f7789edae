"""`ektp desk ...`: the distribution desk (batch issuance, registry, handover, revocations, reports)."""

from __future__ import annotations

import click


@click.group()
def desk() -> None:
    """Distribution desk: issue batches, track each card's life cycle, report."""
