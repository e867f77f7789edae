"""A bank's onboarding check of an e-KTP: the example application tests/ tests with ektp-card's fixtures."""

from __future__ import annotations

from dataclasses import dataclass

from ektp_card.apdu.transport import Transport
from ektp_card.errors import CardRemovedError, EktpError, PacePasswordError
from ektp_card.pki.revocation import RevocationList
from ektp_card.pki.trust import TrustStore
from ektp_card.verify.card import Terminal, verify_card


@dataclass(frozen=True)
class Decision:
    """Open the account or not, and why (what the teller reads out)."""

    accepted: bool
    reason: str
    nik: str | None = None
    name: str | None = None


def onboard(
    transport: Transport,
    can: str,
    trust: TrustStore,
    *,
    terminal: Terminal | None = None,
    fingerprint: bytes | None = None,
    revocations: RevocationList | None = None,
) -> Decision:
    """Check the applicant's card; with a terminal and a fingerprint, that the applicant is its holder."""
    try:
        report = verify_card(transport, can, trust, terminal=terminal, fingerprint=fingerprint,
                             revocations=revocations)
    except PacePasswordError:
        return Decision(False, "ask the applicant to read out the CAN again")
    except CardRemovedError:
        return Decision(False, "keep the card on the reader until the check is done")
    except EktpError as exc:
        return Decision(False, f"the card could not be checked: {exc}")
    personal = report.personal
    if not report.genuine:
        return Decision(False, f"refused: {report.verdict.value}")
    if fingerprint is not None and report.holder_matched is None:
        return Decision(False, "the fingerprint could not be compared")
    return Decision(True, "genuine", personal.nik if personal else None, personal.name if personal else None)
