"""The data on a card: card profiles, access conditions, EF.CardAccess, the data groups and EF.SOD.

The names below are imported from :mod:`ektp_card.lds.card_access` when first asked for, so that
importing one data group's module does not load EF.CardAccess and PACE with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ektp_card.lds.card_access import (
        EF_CARD_ACCESS_FID,
        EF_CARD_ACCESS_SFI,
        CardAccess,
        OtherSecurityInfo,
        PaceInfo,
        SecurityInfo,
    )

__all__ = [
    "EF_CARD_ACCESS_FID",
    "EF_CARD_ACCESS_SFI",
    "CardAccess",
    "OtherSecurityInfo",
    "PaceInfo",
    "SecurityInfo",
]

if not TYPE_CHECKING:  # mypy sees the imports above, so a misspelt name still fails to type-check

    def __getattr__(name: str) -> Any:
        if name not in __all__:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module("ektp_card.lds.card_access"), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
