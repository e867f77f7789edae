"""On-card comparison: VERIFY (INS 21) with a fingerprint capture, compared inside the chip.

ISO/IEC 7816-11 and ISO/IEC 24787; the formats are in :mod:`ektp_card.lds.compact`. The reference is
EF.BIOREF (:data:`~ektp_card.lds.compact.REFERENCE_FID`) in the current DF, written at
personalisation with read condition NEVER: the chip reads it itself, no command returns it. The
command::

    VERIFY   0C 21 00 81   7F2E { 81 compact minutiae }    -> 9000 match, 63Cx no match (x tries
                                                              left), 6983 blocked
    VERIFY   0C 21 00 81   (no data)                       -> 63Cx: the tries left, nothing spent

Rules, in the order the chip checks them:

* secure messaging, PACE and ``BIO`` (Terminal Authentication with the project's verify-biometric
  right, then Chip Authentication): 6982 otherwise; a plain command inside secure messaging ends it;
* a reference in the current DF: 6A88 otherwise;
* the retry counter (``bio.tries`` among the key objects, the reference's initial value while
  absent): 6983 at zero. It is counted down *before* the comparison, so cutting the power after a
  miss does not save the try, and set back to its initial value by a match;
* the capture must decode: 6A80 (and no try spent) otherwise.

The capture is compared with every finger of the reference, by the project's matcher
(:func:`ektp_card.verify.matcher.match`) at the threshold and fewest paired minutiae the reference
fixed at personalisation. The answer carries no data: no score, not which finger. And every
comparison answers after the same time (:data:`COMPARISON_TIME`, longer than the slowest comparison
of the largest templates), so that the time does not tell how close a miss came either.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW
from ektp_card.errors import LdsFormatError
from ektp_card.lds.compact import (
    REFERENCE_FID,
    VERIFY_P2,
    BiometricReference,
    decode_capture,
    decode_reference_file,
    encode_reference_file,
    record_from_compact,
)
from ektp_card.lds.conditions import BIO, PACE, PERSO, AccessCondition, SecurityAttributes
from ektp_card.virtual.commands import Command, ok, refuse, require_usable
from ektp_card.virtual.fs import DedicatedFile, ElementaryFile

if TYPE_CHECKING:
    from ektp_card.virtual.card import VirtualCard

#: The retry counter's key object (one byte: tries left).
TRIES_KEY = "bio.tries"
#: Seconds every comparison takes, whatever its outcome. Two 64-minutia references against a
#: 64-minutia capture take about 20 ms on the project's machine; the margin absorbs a busy host.
COMPARISON_TIME = 0.15
#: Who may ask for a comparison (secure messaging is checked apart: the condition names say nothing
#: of it).
VERIFY_CONDITION = AccessCondition.require(PACE, BIO)


#: EF.BIOREF's security attributes: never read, written only in a personalisation session.
REFERENCE_ACCESS = SecurityAttributes(AccessCondition.NEVER, AccessCondition.require(PERSO),
                                      AccessCondition.require(PERSO))


def install_reference(card: VirtualCard, refs: Sequence[BiometricReference],
                      application: DedicatedFile) -> ElementaryFile:
    """Put EF.BIOREF with ``refs`` in ``application``, as personalisation leaves it (for card
    builders that make a card in one go rather than through its commands)."""
    return card.fs.create_ef(application, REFERENCE_FID, data=encode_reference_file(refs),
                             access=REFERENCE_ACCESS)


def offers_comparison(card: VirtualCard) -> bool:
    """Whether the card holds a reference file anywhere (it then knows VERIFY)."""
    return any(f.fid == REFERENCE_FID and not f.is_df for f in card.fs.walk())


def references(card: VirtualCard) -> tuple[BiometricReference, ...] | None:
    """The references of EF.BIOREF in the current DF (``None``: none there, or unusable)."""
    ef = card.current_df.child_ef(REFERENCE_FID)
    if ef is None:
        return None
    require_usable(ef)
    try:
        return decode_reference_file(bytes(ef.data))
    except LdsFormatError:
        return None


def tries_left(card: VirtualCard, refs: tuple[BiometricReference, ...]) -> int:
    """The retry counter: the stored value, or the reference's initial one before the first miss."""
    stored = card.keys.get(TRIES_KEY)
    if stored is not None and len(stored) == 1:
        return min(stored[0], refs[0].tries)
    return refs[0].tries


def _set_tries(card: VirtualCard, tries: int) -> None:
    card.keys[TRIES_KEY] = bytes((tries,))


def compare(capture: bytes, refs: tuple[BiometricReference, ...]) -> bool:
    """Whether the VERIFY data ``capture`` matches any finger of ``refs``; every finger is compared
    (:class:`~ektp_card.errors.BiometricFormatError` when the capture is malformed)."""
    # Here, not at the top: a card that is only read (ektp read, ektp verify --virtual) never loads
    # the matcher.
    from ektp_card.verify.matcher import MatcherConfig, match

    probe = record_from_compact(decode_capture(capture))
    matched = False
    for ref in refs:
        config = MatcherConfig(threshold=float(ref.threshold), min_paired=ref.min_paired)
        matched |= match(probe, record_from_compact(ref.minutiae, ref.position), config).matched
    return matched


def verify(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """VERIFY (21) with biometric data (see the module docstring). A card without any reference
    answers 6D00, as before it knew the command."""
    if not offers_comparison(card):
        refuse(SW.INS_NOT_SUPPORTED)
    if apdu.p1 != 0x00 or apdu.p2 != VERIFY_P2:
        refuse(SW.INCORRECT_P1P2)
    security = card.security
    if security.channel is None or not security.satisfies(VERIFY_CONDITION):
        refuse(SW.SECURITY_STATUS_NOT_SATISFIED)
    refs = references(card)
    if refs is None:
        refuse(SW.REFERENCED_DATA_NOT_FOUND)
    tries = tries_left(card, refs)
    if tries == 0:
        refuse(SW.AUTH_METHOD_BLOCKED)
    if not apdu.data:
        return ResponseApdu(b"", SW.counter(tries))
    try:
        decode_capture(apdu.data)
    except LdsFormatError:
        refuse(SW.INCORRECT_DATA)
    _set_tries(card, tries - 1)
    deadline = time.monotonic() + COMPARISON_TIME
    matched = compare(apdu.data, refs)
    rest = deadline - time.monotonic()
    if rest > 0:
        time.sleep(rest)
    if matched:
        _set_tries(card, refs[0].tries)
        return ok()
    return ResponseApdu(b"", SW.counter(tries - 1))


#: INS 21.
VERIFY = Command("VERIFY", verify)

__all__ = [
    "COMPARISON_TIME",
    "REFERENCE_ACCESS",
    "TRIES_KEY",
    "VERIFY",
    "compare",
    "install_reference",
    "offers_comparison",
    "references",
    "tries_left",
    "verify",
]
