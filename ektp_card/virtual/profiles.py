"""Ready-made cards with access control: the demo application behind PACE and / or BAC.

:func:`protected_demo_card` takes :func:`~ektp_card.virtual.demo.demo_card` and puts its
application's files behind authentication, as an e-KTP (PACE with the CAN printed on the card, and
optionally a PIN) or an ICAO passport (BAC with the MRZ) protects them:

* EF.PUBLIC (0101), EF.LARGE (0103): read after PACE (with any password) or BAC;
* EF.SCRATCH (0104): read and update after PACE or BAC;
* EF.SECRET (0102): never readable, as on the unprotected demo card;
* EF.PRIVATE (0105, SFI 5), only on a card with a PIN: read after PACE with the PIN.

The MF keeps EF.ATR/INFO readable by anyone, and (with PACE) EF.CardAccess, which a terminal
needs before it can authenticate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ektp_card.crypto.pace import PasswordType
from ektp_card.virtual.demo import (
    DEMO_AID,
    EF_LARGE_FID,
    EF_PUBLIC_FID,
    EF_SCRATCH_FID,
    demo_card,
)
from ektp_card.virtual.fs import AccessCondition, SecurityAttributes

if TYPE_CHECKING:
    from ektp_card.crypto.mrz import MrzInfo
    from ektp_card.lds.card_access import PaceInfo
    from ektp_card.virtual.card import VirtualCard

#: Readable only after PACE with the PIN (present when the card has a PIN).
EF_PRIVATE_FID, EF_PRIVATE_SFI = 0x0105, 5
PRIVATE_CONTENT = b"ektp-card demo application: readable after PACE with the PIN only\n"

_NEVER = AccessCondition.NEVER


def protected_demo_card(
    *,
    can: str | None = None,
    pin: str | None = None,
    mrz: MrzInfo | None = None,
    pace_infos: Sequence[PaceInfo] | None = None,
    extended_length: bool = True,
    uid: bytes | None = None,
) -> VirtualCard:
    """The demo card with its application behind access control (see the module docstring).

    A CAN or a PIN installs PACE with ``pace_infos`` (default: ``DEFAULT_PACE_INFOS`` of
    :mod:`ektp_card.virtual.pace`; the MRZ, when given too, becomes a PACE password as well, as on an
    eMRTD offering PACE); an MRZ enables BAC. At least one of them is needed: :class:`ValueError`
    otherwise.
    """
    # The card OS's protocols only here: ektp_card.access imports this module for EF_PRIVATE_SFI.
    from ektp_card.virtual.bac import enable_bac
    from ektp_card.virtual.pace import DEFAULT_PACE_INFOS, granted_condition, install_pace
    from ektp_card.virtual.security import BAC, PACE

    if can is None and pin is None and mrz is None:
        raise ValueError("a protected card needs a CAN, a PIN or an MRZ")
    if pace_infos is None:
        pace_infos = DEFAULT_PACE_INFOS
    card = demo_card(extended_length=extended_length, uid=uid)
    grants: list[AccessCondition] = []
    if can is not None or pin is not None:
        install_pace(card, can=can, pin=pin, mrz=mrz, infos=pace_infos)
        grants.append(AccessCondition.require(PACE))
    if mrz is not None:
        enable_bac(card, mrz)
        grants.append(AccessCondition.require(BAC))
    authenticated = grants[0]
    for grant in grants[1:]:
        authenticated = authenticated | grant
    app = card.fs.application(DEMO_AID)
    for fid in (EF_PUBLIC_FID, EF_LARGE_FID):
        ef = app.child_ef(fid)
        if ef is not None:
            ef.access = SecurityAttributes(authenticated, _NEVER, _NEVER)
    scratch = app.child_ef(EF_SCRATCH_FID)
    if scratch is not None:
        scratch.access = SecurityAttributes(authenticated, authenticated, _NEVER)
    if pin is not None:
        pin_only = AccessCondition.require(granted_condition(PasswordType.PIN))
        card.fs.create_ef(
            app,
            EF_PRIVATE_FID,
            data=PRIVATE_CONTENT,
            sfi=EF_PRIVATE_SFI,
            access=SecurityAttributes(pin_only, _NEVER, _NEVER),
        )
    return card
