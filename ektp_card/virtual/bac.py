"""The chip's side of Basic Access Control (ICAO Doc 9303-11 section 4.3) for the virtual card.

A card supports BAC when it holds the key seed ``card.keys["bac.kseed"]`` (derived from the MRZ
printed on the document, see :func:`enable_bac`), as ICAO passports do; the e-KTP profile keeps no
such key, and there MUTUAL AUTHENTICATE answers 6D00 as on a card without the command.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW
from ektp_card.crypto.bac import (
    CRYPTOGRAM_LENGTH,
    KEY_MATERIAL_LENGTH,
    NONCE_LENGTH,
    chip_authenticate,
    key_seed,
)
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.lds.conditions import BAC
from ektp_card.virtual.commands import ok, refuse

if TYPE_CHECKING:
    from ektp_card.virtual.card import VirtualCard

#: Name of the card key holding K_seed (16 bytes).
KSEED_KEY = "bac.kseed"


def enable_bac(card: VirtualCard, mrz: MrzInfo) -> None:
    """Store the BAC key seed for ``mrz`` on the card: from now on it answers BAC."""
    card.keys[KSEED_KEY] = key_seed(mrz)


def mutual_authenticate(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """EXTERNAL / MUTUAL AUTHENTICATE (82) of BAC: E_IFD || M_IFD in, E_IC || M_IC out.

    The challenge of the preceding GET CHALLENGE is used once, whatever the outcome. A wrong
    cryptogram answers 6300 and changes nothing else; success grants ``BAC`` and opens secure
    messaging with fresh session keys, kept only in the power-on session.
    """
    kseed = card.keys.get(KSEED_KEY)
    if kseed is None:
        refuse(SW.INS_NOT_SUPPORTED)
    security = card.security
    challenge = security.take_challenge()
    if apdu.p1 or apdu.p2:
        refuse(SW.INCORRECT_P1P2)
    if len(apdu.data) != CRYPTOGRAM_LENGTH or apdu.le is None:
        refuse(SW.WRONG_LENGTH)
    if challenge is None or len(challenge) != NONCE_LENGTH or security.channel is not None:
        # No fresh 8-byte challenge, or BAC attempted inside an already protected session.
        refuse(SW.CONDITIONS_NOT_SATISFIED)
    result = chip_authenticate(kseed, challenge, apdu.data, secrets.token_bytes(KEY_MATERIAL_LENGTH))
    if result is None:
        refuse(SW.VERIFICATION_FAILED)
    answer, channel = result
    security.grant(BAC)
    security.open_channel(channel)
    return ok(answer)
