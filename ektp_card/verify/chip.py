"""Is this the chip the issuer personalised? Chip and Active Authentication as verification checks.

Shared by the clerk's verification (:mod:`ektp_card.verify.card`) and the desk's read back
(:mod:`ektp_card.personalize.readback`): each turns DG14 / DG15 as read into a :class:`Check` with its
reason, next to the protocol's own result. Chip Authentication (BSI TR-03110-1 section 3.4, ICAO
Doc 9303-11 section 6.2) proves the chip holds the private key of DG14's public key; Active
Authentication (ICAO Doc 9303-11 section 6.1) that it holds DG15's, by signing a fresh challenge.
Both keys are only as trustworthy as DG14 / DG15, so a caller relies on them only after Passive
Authentication has matched their hashes. PACE with Chip Authentication Mapping (ICAO Doc 9303-11
section 4.4.3.5) proves DG14's key inside PACE itself; :func:`cam_check` judges it the same way.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.crypto.aa import AaResult, ChipPublicKey, active_authenticate
from ektp_card.crypto.ca import CaResult, chip_authenticate
from ektp_card.crypto.pace import ChipAuthenticationMapping
from ektp_card.ec import Curve, KeySource, default_key_source
from ektp_card.errors import ChipAuthenticationError, LdsFormatError
from ektp_card.lds.dg14 import Dg14
from ektp_card.lds.dg15 import Dg15
from ektp_card.lds.public_key import EcPublicKey
from ektp_card.verify.passive import Check, Status
from ektp_card.verify.report import CheckName

CHIP_AUTHENTICATION = CheckName.CHIP_AUTHENTICATION
ACTIVE_AUTHENTICATION = CheckName.ACTIVE_AUTHENTICATION


def decode_dg14(dg14: bytes) -> tuple[Dg14 | None, str | None]:
    """DG14 decoded, or the reason it cannot be."""
    try:
        return Dg14.decode(dg14), None
    except LdsFormatError as exc:
        return None, f"DG14 is not usable: {exc}"


def chip_check(result: CaResult) -> Check:
    """A Chip Authentication result as a check."""
    return Check(CHIP_AUTHENTICATION, Status.PASS if result.passed else Status.FAIL, result.reason)


#: How a Chip Authentication check's reason begins when PACE-CAM, not Chip Authentication, proved the chip.
CAM_PREFIX = "PACE-CAM"


def cam_keys(infos: Dg14, curve: Curve) -> list[bytes]:
    """The Chip Authentication public keys (encoded points) among ``infos`` (DG14's or EF.CardSecurity's) on
    ``curve``."""
    keys = []
    for info in infos.chip_authentication_public_keys:
        try:
            key = info.public_key
        except LdsFormatError:
            continue
        if isinstance(key, EcPublicKey) and key.curve == curve:
            keys.append(key.point)
    return keys


def cam_check(cam: ChipAuthenticationMapping, infos: Dg14, source: str = "DG14") -> Check:
    """PACE-CAM's chip authentication data checked against the Chip Authentication keys on the PACE curve
    that ``source`` holds (DG14, which EF.SOD covers, or EF.CardSecurity, whose signature the caller has
    checked): a pass proves the chip holds a signed key."""
    keys = cam_keys(infos, cam.curve)
    if not keys:
        return Check(
            CHIP_AUTHENTICATION, Status.FAIL,
            f"{CAM_PREFIX}: {source} has no Chip Authentication key on {cam.curve.name}, the PACE curve",
        )
    if any(cam.verify(key) for key in keys):
        return Check(CHIP_AUTHENTICATION, Status.PASS,
                     f"{CAM_PREFIX}: the chip proved {source}'s key in PACE")
    return Check(
        CHIP_AUTHENTICATION, Status.FAIL,
        f"{CAM_PREFIX}: the chip authentication data does not match {source}'s key",
    )


def run_chip_authentication(
    protocol: ApduProtocol, dg14: Dg14, *, key_source: KeySource = default_key_source
) -> tuple[Check, CaResult]:
    """Chip Authentication with DG14's key inside the running secure messaging (which it replaces
    when it succeeds). ``key_source`` draws the ephemeral key: after Terminal Authentication, the
    :meth:`~ektp_card.crypto.ta.EphemeralKey.key_source` of the key TA announced. Transport errors
    propagate; every card answer becomes the check."""
    try:
        parameters = dg14.ca_parameters()
    except ChipAuthenticationError as exc:
        result = CaResult.not_supported(str(exc))
    else:
        result = chip_authenticate(protocol, parameters, key_source=key_source)
    return chip_check(result), result


def active_check(
    dg15: bytes, dg14: Dg14 | None, authenticate: Callable[[ChipPublicKey, str | None], AaResult]
) -> tuple[Check, AaResult | None]:
    """Active Authentication with DG15's key as a check: ``authenticate(key, signature_algorithm)``
    runs it (DG14's ActiveAuthenticationInfo names the ECDSA signature algorithm). ``None`` result
    when DG15 is not usable."""
    try:
        key = Dg15.decode(dg15).public_key.to_cryptography()
    except (LdsFormatError, ValueError) as exc:
        return Check(ACTIVE_AUTHENTICATION, Status.FAIL, f"DG15 is not usable: {exc}"), None
    info = dg14.active_authentication_info if dg14 is not None else None
    result = authenticate(key, info.signature_algorithm if info else None)
    return Check(ACTIVE_AUTHENTICATION, Status.PASS if result.passed else Status.FAIL, result.reason), result


def run_active_authentication(
    protocol: ApduProtocol,
    dg15: bytes,
    dg14: Dg14 | None,
    *,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> tuple[Check, AaResult | None]:
    """Active Authentication with DG15's key and a fresh challenge from ``random_bytes`` over
    ``protocol``, as :func:`active_check`."""
    return active_check(
        dg15,
        dg14,
        lambda key, algorithm: active_authenticate(
            protocol, key, signature_algorithm=algorithm, random_bytes=random_bytes
        ),
    )


__all__ = [
    "ACTIVE_AUTHENTICATION",
    "CAM_PREFIX",
    "CHIP_AUTHENTICATION",
    "active_check",
    "cam_check",
    "cam_keys",
    "chip_check",
    "decode_dg14",
    "run_active_authentication",
    "run_chip_authentication",
]
