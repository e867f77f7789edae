"""The registry's side of the signed card revocation list (:mod:`ektp_card.pki.revocation`): which
cards of the registry a list names."""

from __future__ import annotations

import datetime as dt

from ektp_card.desk.registry import CardRow, CardState, Registry
from ektp_card.errors import PkiError
from ektp_card.pki.revocation import LISTED_STATES, RevokedCard, RevokedState


def _card_date(row: CardRow) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(row.updated_at)
    except ValueError:
        raise PkiError(f"card {row.serial}: unreadable registry time {row.updated_at!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def registry_entries(registry: Registry) -> tuple[list[RevokedCard], list[CardRow]]:
    """The cards to list (lost, damaged, revoked, spoiled with an EF.SOD hash) and those left out
    because the registry has no EF.SOD hash for them (no verifier could recognise them)."""
    states = [CardState(s.value) for s in LISTED_STATES]
    listed: list[RevokedCard] = []
    skipped: list[CardRow] = []
    for row in registry.cards(states=states):
        sod_hash = row.sod_sha256
        if not sod_hash:
            # A spoiled card that never got an EF.SOD is not a card a verifier can meet.
            if str(row.state) != RevokedState.SPOILED:
                skipped.append(row)
            continue
        state = RevokedState(str(row.state))
        reason = row.police_report if state is RevokedState.LOST else row.reason
        listed.append(RevokedCard(sod_hash.lower(), row.serial, state, _card_date(row), reason))
    return listed, skipped


__all__ = ["registry_entries"]
