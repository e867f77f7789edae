"""NIK leases: a central registry lends NIKs to one desk for a while so the desk can issue them offline.

While a lease is current, the central registry refuses a card for that NIK from any other desk (checked
by the registry and, as a backstop, by a trigger on the cards table). A desk's own SQLite registry keeps
copies of its leases and, once it holds any, runs as an *offline desk registry*: it then issues a card
only for a NIK it holds a current lease on. A lease is used up when the NIK's card becomes personalised,
on the desk and, when the card is synced, on the central registry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lease:
    """One NIK lent to one desk until ``expires_at`` (ISO 8601 UTC, same format as the registry's times)."""

    nik: str
    desk: str
    actor: str
    leased_at: str
    expires_at: str

    def current(self, at: str) -> bool:
        """True while the lease holds at ``at`` (an ISO 8601 UTC time in the registry's format)."""
        return self.expires_at > at


@dataclass(frozen=True)
class LeaseRefusal:
    """A NIK the central registry would not lease, and why (the NIK itself is never in a message)."""

    nik: str
    reason: str


@dataclass(frozen=True)
class LeaseResult:
    """What a :meth:`~ektp_card.desk.registry.Registry.lease` call granted and refused."""

    granted: tuple[Lease, ...]
    refused: tuple[LeaseRefusal, ...]


#: Refusal reasons, also used by the CLI.
REASON_LIVE = "the NIK has a live card"
REASON_LEASED = "the NIK is leased to another desk"
REASON_INVALID = "not a 16-digit NIK"
