"""Card -> verdict: Passive Authentication and trust stores; Chip and Active Authentication checks
(chip.py); the clerk's verification (card.py); the fingerprint matcher (matcher.py).

The names below are imported from their modules when first asked for: a verification that imports
:mod:`ektp_card.verify.card` does not load the fingerprint matcher or the master list code with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: The module each name of :data:`__all__` comes from.
_SOURCES = {
    "TrustStore": "ektp_card.pki.trust",
    "load_master_list": "ektp_card.pki.trust",
    "DEFAULT_THRESHOLD": "ektp_card.verify.matcher",
    "Alignment": "ektp_card.verify.matcher",
    "MatchDetails": "ektp_card.verify.matcher",
    "MatcherConfig": "ektp_card.verify.matcher",
    "MatchResult": "ektp_card.verify.matcher",
    "match": "ektp_card.verify.matcher",
    "Check": "ektp_card.verify.passive",
    "PassiveAuthResult": "ektp_card.verify.passive",
    "Policy": "ektp_card.verify.passive",
    "Status": "ektp_card.verify.passive",
    "passive_authentication": "ektp_card.verify.passive",
}

if not TYPE_CHECKING:  # mypy sees the imports above, so a misspelt name still fails to type-check

    def __getattr__(name: str) -> Any:
        source = _SOURCES.get(name)
        if source is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
