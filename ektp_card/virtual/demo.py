"""A ready-made card for demos and tests: the demo application of :mod:`ektp_card.lds.profile` with a
few small transparent EFs."""

from __future__ import annotations

from ektp_card.lds.conditions import AccessCondition, SecurityAttributes
from ektp_card.lds.profile import (
    DEMO_AID,
    DEMO_DF_FID,
    EF_LARGE_FID,
    EF_LARGE_SFI,
    EF_PUBLIC_FID,
    EF_PUBLIC_SFI,
    EF_SCRATCH_FID,
    EF_SCRATCH_SFI,
    EF_SECRET_FID,
    EF_SECRET_SFI,
)
from ektp_card.virtual.card import VirtualCard
from ektp_card.virtual.fs import LifeCycle

PUBLIC_CONTENT = b"ektp-card demo application: public data\n"
SECRET_CONTENT = bytes(range(0xA0, 0xB0))
#: A period of 251 (a prime) makes any offset error visible in the data read back.
LARGE_CONTENT = bytes(i % 251 for i in range(1500))
SCRATCH_SIZE = 64

_ALWAYS, _NEVER = AccessCondition.ALWAYS, AccessCondition.NEVER


def demo_card(*, extended_length: bool = True, uid: bytes | None = None) -> VirtualCard:
    """An operational card: MF with EF.ATR/INFO, and the demo application DF01 (AID DEMO_AID)
    holding EF.PUBLIC (0101), EF.SECRET (0102), EF.LARGE (0103) and EF.SCRATCH (0104)."""
    card = VirtualCard.create(
        extended_length=extended_length, uid=uid, life_cycle=LifeCycle.OPERATIONAL_ACTIVATED, admin=_NEVER
    )
    fs = card.fs
    app = fs.create_df(fs.mf, DEMO_DF_FID, name=DEMO_AID, access=SecurityAttributes(_ALWAYS, _NEVER, _NEVER))
    fs.create_ef(app, EF_PUBLIC_FID, data=PUBLIC_CONTENT, sfi=EF_PUBLIC_SFI)
    fs.create_ef(
        app, EF_SECRET_FID, data=SECRET_CONTENT, sfi=EF_SECRET_SFI, access=SecurityAttributes(_NEVER, _NEVER)
    )
    fs.create_ef(app, EF_LARGE_FID, data=LARGE_CONTENT, sfi=EF_LARGE_SFI)
    fs.create_ef(
        app,
        EF_SCRATCH_FID,
        size=SCRATCH_SIZE,
        sfi=EF_SCRATCH_SFI,
        access=SecurityAttributes(_ALWAYS, _ALWAYS, _NEVER),
    )
    return card
