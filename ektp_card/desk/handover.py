"""Handover: the card goes to its holder only after the desk has checked the card and the holder's finger.

::

    registry: card SERIAL is personalised, its EF.SOD hash is on record
      -> verify_card with the desk's terminal (PACE with the CAN, Passive, Chip and Active
         Authentication, Terminal Authentication, DG3) and the holder's fresh capture: compared by the
         chip itself (VERIFY) when the card offers on-card comparison and the terminal holds the
         verify-biometric right, else 1:1 against DG3's templates
      -> EF.SOD read again and hashed: it must be the registry's for SERIAL (a genuine card of
         someone else is not this card)
      -> registry.hand_over(SERIAL)

Nothing changes in the registry unless every check passed: a wrong finger leaves the card personalised
(the refusal is logged on ``ektp_card.desk.handover`` at warning level).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from ektp_card.apdu.transport import Transport
from ektp_card.desk.batch import read_sod
from ektp_card.errors import RegistryError
from ektp_card.lds.biometrics import MinutiaeRecord
from ektp_card.pki.trust import TrustStore
from ektp_card.verify.card import FINGERPRINT, Terminal, Verdict, VerificationReport, verify_card
from ektp_card.verify.passive import Policy, Status

if TYPE_CHECKING:
    from ektp_card.desk.registry import CardRow, Registry

log = logging.getLogger("ektp_card.desk.handover")


class Refusal(StrEnum):
    """Why a card was not handed over, most serious first."""

    FORGED = "forged"
    CLONED = "cloned"
    NOT_THIS_CARD = "not this card"
    HOLDER_MISMATCH = "holder mismatch"
    NOT_COMPARED = "fingerprint not compared"


@dataclass(frozen=True)
class HandoverResult:
    """The checks of one handover: the clerk's report, whether the card is the registry's SERIAL, and
    the refusal (``None``: handed over; ``row`` is then the card's new registry row)."""

    serial: str
    report: VerificationReport
    sod_sha256: str
    registered_sod_sha256: str
    refusal: Refusal | None
    reasons: tuple[str, ...]
    row: CardRow | None = None

    @property
    def handed_over(self) -> bool:
        return self.refusal is None

    def to_json(self) -> dict[str, object]:
        return {
            "serial": self.serial,
            "handed_over": self.handed_over,
            "refusal": None if self.refusal is None else self.refusal.value,
            "reasons": list(self.reasons),
            "sod_matches": self.sod_sha256 == self.registered_sod_sha256,
            "verification": self.report.to_json(),
            "state": None if self.row is None else str(self.row.state),
        }


def handover_candidate(registry: Registry, serial: str) -> CardRow:
    """The registry row of a card that may be handed over: personalised, EF.SOD hash on record;
    :class:`RegistryError` otherwise (checked before the card is touched)."""
    from ektp_card.desk.registry import CardState

    row = registry.get(serial)
    if row is None:
        raise RegistryError(f"card {serial} is not in the registry")
    if row.state is not CardState.PERSONALISED:
        raise RegistryError(f"card {serial} is {row.state}: only a personalised card is handed over")
    if not row.sod_sha256:
        raise RegistryError(f"card {serial} has no EF.SOD hash in the registry: it cannot be recognised")
    return row


def check_card(
    transport: Transport,
    row: CardRow,
    can: str,
    trust: TrustStore,
    terminal: Terminal,
    fingerprint: MinutiaeRecord | bytes,
    *,
    policy: Policy | None = None,
) -> HandoverResult:
    """Every handover check of the card in ``transport`` against ``row``; changes nothing."""
    report = verify_card(transport, can, trust, policy=policy, terminal=terminal, fingerprint=fingerprint)
    sod_sha256 = hashlib.sha256(read_sod(transport, can)).hexdigest()
    registered = row.sod_sha256 or ""
    reasons: list[str] = list(report.reasons)
    refusal: Refusal | None = None
    if report.verdict is Verdict.FORGED:
        refusal = Refusal.FORGED
    elif report.verdict is Verdict.CLONED:
        refusal = Refusal.CLONED
    elif sod_sha256 != registered:
        refusal = Refusal.NOT_THIS_CARD
        reasons.append(f"the card's EF.SOD is not the one registered for card {row.serial}")
    elif report.verdict is Verdict.HOLDER_MISMATCH:
        refusal = Refusal.HOLDER_MISMATCH
    else:
        finger = report.check(FINGERPRINT)
        if finger.status is not Status.PASS:
            refusal = Refusal.NOT_COMPARED
            reasons.append(f"fingerprint: {finger.reason}")
            for name in ("terminal-authentication", "dg3"):
                check = report.check(name)
                if check.status is not Status.PASS:
                    reasons.append(f"{name}: {check.reason}")
    return HandoverResult(row.serial, report, sod_sha256, registered, refusal, tuple(reasons))


def hand_over(
    transport: Transport,
    registry: Registry,
    serial: str,
    can: str,
    trust: TrustStore,
    terminal: Terminal,
    fingerprint: MinutiaeRecord | bytes,
    *,
    desk: str,
    actor: str,
    policy: Policy | None = None,
) -> HandoverResult:
    """Check the card and the holder's finger (:func:`check_card`) and, only when everything passed,
    record the handover in the registry. :class:`RegistryError` when the registry row does not allow a
    handover (before the card is touched) or the registry refuses the change."""
    row = handover_candidate(registry, serial)
    result = check_card(transport, row, can, trust, terminal, fingerprint, policy=policy)
    if result.refusal is not None:
        log.warning("handover of card %s refused at desk %s by %s: %s (%s)", serial, desk, actor,
                    result.refusal.value, "; ".join(result.reasons))
        # The refusal goes into the audit trail too: repeated attempts on one card are what a
        # reviewer looks for after a theft.
        registry.record_event(serial, "handover-refused", {"refusal": result.refusal.value},
                              desk=desk, actor=actor)
        return result
    new_row = registry.hand_over(serial, desk=desk, actor=actor)
    return HandoverResult(result.serial, result.report, result.sod_sha256, result.registered_sod_sha256,
                          None, result.reasons, new_row)


__all__ = [
    "HandoverResult",
    "Refusal",
    "check_card",
    "hand_over",
    "handover_candidate",
]
