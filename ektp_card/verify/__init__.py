"""Card -> verdict: Passive Authentication now; access, Chip/Active/Terminal Authentication later."""

from ektp_card.verify.passive import Check, PassiveAuthResult, Policy, Status, passive_authentication
from ektp_card.verify.trust import TrustStore, load_master_list

__all__ = [
    "Check",
    "PassiveAuthResult",
    "Policy",
    "Status",
    "TrustStore",
    "load_master_list",
    "passive_authentication",
]
