"""Card -> verdict: Passive Authentication and trust stores; Chip and Active Authentication checks
(chip.py); the clerk's verification (card.py); the fingerprint matcher (matcher.py)."""

from ektp_card.pki.trust import TrustStore, load_master_list
from ektp_card.verify.matcher import (
    DEFAULT_THRESHOLD,
    Alignment,
    MatchDetails,
    MatcherConfig,
    MatchResult,
    match,
)
from ektp_card.verify.passive import Check, PassiveAuthResult, Policy, Status, passive_authentication

__all__ = [
    "DEFAULT_THRESHOLD",
    "Alignment",
    "Check",
    "MatchDetails",
    "MatchResult",
    "MatcherConfig",
    "PassiveAuthResult",
    "Policy",
    "Status",
    "TrustStore",
    "load_master_list",
    "match",
    "passive_authentication",
]
