"""The data on a card: card profiles, access conditions, EF.CardAccess, the data groups and EF.SOD."""

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
