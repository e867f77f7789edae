"""The data on a card: EF.CardAccess and (later) the data groups, EF.SOD and the card profiles."""

from ektp_card.lds.card_access import (
    EF_CARD_ACCESS_FID,
    EF_CARD_ACCESS_SFI,
    CardAccess,
    OtherSecurityInfo,
    PaceInfo,
    SecurityInfo,
    read_card_access,
)

__all__ = [
    "EF_CARD_ACCESS_FID",
    "EF_CARD_ACCESS_SFI",
    "CardAccess",
    "OtherSecurityInfo",
    "PaceInfo",
    "SecurityInfo",
    "read_card_access",
]
