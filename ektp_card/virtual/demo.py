"""A ready-made card for demos and tests: one application with a few small transparent EFs.

The application's AID is a placeholder profile, not a registered identifier: RID D3 60 00 00 00 has
the form of a national registration under ISO/IEC 7816-5 ("D", the ISO 3166-1 numeric code 360 for
Indonesia, then six digits), and the PIX is "EKTP" in ASCII.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ektp_card.virtual.fs import AccessCondition, LifeCycle, SecurityAttributes

if TYPE_CHECKING:
    from ektp_card.virtual.card import VirtualCard

DEMO_AID = bytes.fromhex("D360000000454B5450")
DEMO_DF_FID = 0xDF01

#: Readable by anyone, never writable.
EF_PUBLIC_FID, EF_PUBLIC_SFI = 0x0101, 1
#: Never readable nor writable from outside.
EF_SECRET_FID, EF_SECRET_SFI = 0x0102, 2
#: 1500 bytes, readable by anyone: takes several READ BINARY rounds.
EF_LARGE_FID, EF_LARGE_SFI = 0x0103, 3
#: 64 bytes anyone may read and update.
EF_SCRATCH_FID, EF_SCRATCH_SFI = 0x0104, 4

PUBLIC_CONTENT = b"ektp-card demo application: public data\n"
SECRET_CONTENT = bytes(range(0xA0, 0xB0))
#: A period of 251 (a prime) makes any offset error visible in the data read back.
LARGE_CONTENT = bytes(i % 251 for i in range(1500))
SCRATCH_SIZE = 64

_ALWAYS, _NEVER = AccessCondition.ALWAYS, AccessCondition.NEVER


def demo_card(*, extended_length: bool = True, uid: bytes | None = None) -> VirtualCard:
    """An operational card: MF with EF.ATR/INFO, and the demo application DF01 (AID DEMO_AID)
    holding EF.PUBLIC (0101), EF.SECRET (0102), EF.LARGE (0103) and EF.SCRATCH (0104)."""
    # The card OS only here: ektp_card.access imports this module for the identifiers above.
    from ektp_card.virtual.card import VirtualCard

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
