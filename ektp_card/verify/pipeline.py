"""The steps every document's verification shares, in the order they run.

ICAO Doc 9303-11 section 4.2 orders the access, section 5.1 Passive and 6.1 / 6.2 Active and Chip
Authentication::

    open the session (SELECT MF, EF.CardAccess, EF.ATR/INFO in the clear) -> access control
      -> EF.SOD -> every data group EF.SOD lists (refused ones are noted)
      -> Passive Authentication against the trust store -> [revocation list] -> printed data
      -> Chip Authentication with DG14's key -> Active Authentication with DG15's key, fresh challenge

:func:`ektp_card.verify.card.verify_card` (the e-KTP: PACE with the CAN, Terminal Authentication, DG3
and the fingerprint) and :func:`ektp_card.verify.passport.verify_passport` (an ICAO eMRTD: PACE or BAC
with the MRZ, DG1's MRZ) run these steps and add their own.

The decision resists downgrade: which protections the card must prove comes from EF.SOD alone, the
only signed list. When EF.SOD covers DG14, Chip Authentication must pass; when it covers DG15, Active
Authentication must pass; a card that "does not support" them fails. A DG14 or DG15 that EF.SOD lists
but the card does not give fails the chip check (a copy that will not prove its chip), while the data it
does give may still be exactly what the issuer signed. EF.COM is not read: nothing unsigned takes part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from ektp_card.crypto.aa import AaResult
from ektp_card.crypto.ca import CaResult
from ektp_card.ec import default_key_source
from ektp_card.errors import ApduError, LdsFormatError, SecurityStatusNotSatisfiedError
from ektp_card.lds.biometrics import FaceImage
from ektp_card.lds.card_security import OID_SECURITY_OBJECT, parse_card_security
from ektp_card.lds.dg14 import Dg14
from ektp_card.lds.ektp import decode_dg2
from ektp_card.lds.images import DisplayedSignature, displayed_signatures
from ektp_card.lds.sod import Sod, parse_sod
from ektp_card.log import printable
from ektp_card.pki.trust import TrustStore
from ektp_card.session.card import AccessProtocol, AccessResult
from ektp_card.session.document import DocumentSession
from ektp_card.verify.chip import CAM_PREFIX, active_check, cam_check, cam_keys, chip_check, decode_dg14
from ektp_card.verify.passive import (
    Check,
    PassiveAuthResult,
    Policy,
    Status,
    passive_authentication,
    signed_object_authentication,
)
from ektp_card.verify.report import CheckName, face_format

if TYPE_CHECKING:
    from ektp_card.crypto.ta import EphemeralKey
    from ektp_card.pki.revocation import RevocationList

T = TypeVar("T")

PA, CA, AA = CheckName.PASSIVE_AUTHENTICATION, CheckName.CHIP_AUTHENTICATION, CheckName.ACTIVE_AUTHENTICATION
#: The data groups that let the chip prove itself (DG14: Chip Authentication, DG15: Active Authentication).
CHIP_GROUPS = frozenset({14, 15})


class Checks:
    """The checks of one verification, in the order they ran."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def add(self, name: CheckName, status: Status, reason: str) -> None:
        self.items.append(Check(name, status, reason))

    def done(self) -> tuple[Check, ...]:
        return tuple(self.items)


@dataclass
class Reading:
    """What the card gave: EF.SOD, the data groups it lists, those it refused and why some failed."""

    sod_bytes: bytes | None = None
    sod: Sod | None = None
    sod_problem: str | None = None
    #: The data groups to read: EF.SOD's list, or the profile's when EF.SOD cannot be parsed.
    numbers: tuple[int, ...] = ()
    groups: dict[int, bytes] = field(default_factory=dict)
    refused: list[int] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def covered(self) -> set[int]:
        """The data groups EF.SOD vouches for (none when it could not be parsed)."""
        return set(self.numbers) if self.sod is not None else set()


def opened_checks(session: DocumentSession, checks: Checks, no_card_access: tuple[Status, str]) -> None:
    """Record what the card offered in the clear as checks; ``no_card_access`` is what a missing
    EF.CardAccess means for this kind of document."""
    if session.card_access is not None:
        checks.add(CheckName.CARD_ACCESS, Status.PASS, f"{len(session.card_access.pace_infos)} PACEInfo")
    else:
        checks.add(CheckName.CARD_ACCESS, *no_card_access)
    info = session.card_info
    if info is None:
        checks.add(CheckName.CARD_INFO, Status.NOT_SUPPORTED, "no EF.ATR/INFO: short APDUs only")
    else:
        size = "extended length" if info.extended_length and session.extended_length else "short APDUs"
        checks.add(CheckName.CARD_INFO, Status.PASS, f"EF.ATR/INFO read: {size}")


def access_check(access: AccessResult, checks: Checks) -> None:
    cipher = access.cipher.value[0] if access.cipher else "no cipher"
    name = CheckName.PACE if access.protocol is AccessProtocol.PACE else CheckName.BAC
    checks.add(name, Status.PASS, f"{access.protocol.value}-{'/'.join(access.passwords)} with {cipher}")


def read_sod(session: DocumentSession, reading: Reading, fallback: tuple[int, ...]) -> None:
    """EF.SOD and the data groups it lists (``fallback`` when it cannot be parsed: for the report only,
    the verdict is then already forged)."""
    try:
        data = session.read_sod()
    except ApduError as exc:
        reading.sod_problem = f"EF.SOD could not be read: {exc}"
    else:
        reading.sod_bytes = data
        try:
            reading.sod = parse_sod(data)
        except LdsFormatError as exc:
            reading.sod_problem = str(exc)
    sod = reading.sod
    reading.numbers = tuple(sorted(n for n, _ in sod.security_object.hashes)) if sod else fallback


def begin(
    session: DocumentSession,
    checks: Checks,
    authenticate: Callable[[], AccessResult],
    *,
    no_card_access: tuple[Status, str],
    fallback: tuple[int, ...],
) -> tuple[AccessResult, Reading]:
    """The first steps: what the card offered in the clear, access control (``authenticate``; its
    failures raise, since they say nothing about the document) and EF.SOD with the list it signs."""
    opened_checks(session, checks, no_card_access)
    access = authenticate()
    access_check(access, checks)
    reading = Reading()
    read_sod(session, reading, fallback)
    return access, reading


def read_data_groups(session: DocumentSession, reading: Reading, numbers: tuple[int, ...]) -> None:
    """Read ``numbers`` (skipping those already read); a refusal is noted, any other failure too."""
    for number in numbers:
        if number in reading.groups:
            continue
        try:
            reading.groups[number] = session.read_data_group(number)
        except SecurityStatusNotSatisfiedError:
            reading.refused.append(number)
        except ApduError as exc:
            reading.unreadable.append(str(exc))
    reading.refused.sort()


def read_check(reading: Reading, checks: Checks, refused_because: str) -> None:
    reason = f"EF.SOD and DG{', DG'.join(map(str, sorted(reading.groups)))}"
    if reading.refused:
        reason += f"; DG{', DG'.join(map(str, reading.refused))} refused {refused_because}"
    if reading.unreadable:
        checks.add(CheckName.READ, Status.FAIL, "; ".join(reading.unreadable))
    else:
        checks.add(CheckName.READ, Status.PASS, reason)


def passive_check(
    reading: Reading, trust: TrustStore, policy: Policy | None, checks: Checks,
    document_type: str | None = None,
) -> PassiveAuthResult | None:
    """Passive Authentication over what was read. Refused data groups are expected (DG3 needs Terminal
    Authentication); a listed one the card does not give is not, except DG14 and DG15, which the chip
    checks fail instead (see the module docstring). ``document_type``: the document's MRZ code, which
    the document signer must be allowed to sign."""
    if reading.sod_bytes is None:
        checks.add(PA, Status.FAIL, reading.sod_problem or "EF.SOD could not be read")
        return None
    sod = reading.sod
    signed = sod if sod is not None else reading.sod_bytes
    passive = passive_authentication(signed, reading.groups, trust, policy, document_type=document_type)
    problems = [f"{c.name}: {c.reason}" for c in passive.failures]
    if sod is not None:
        missing = set(reading.numbers) - set(reading.groups) - set(reading.refused) - CHIP_GROUPS
        problems += [f"DG{n} is listed in EF.SOD but the card does not give it" for n in sorted(missing)]
    signer = printable(passive.document_signer.subject.rfc4514_string()) if passive.document_signer else "?"
    ok = f"EF.SOD signed by {signer}, a trusted document signer; data group hashes match"
    checks.add(PA, Status.FAIL if problems else Status.PASS, "; ".join(problems) or ok)
    return passive


def revocation_check(revocations: RevocationList, reading: Reading, checks: Checks) -> None:
    """The card is named by the SHA-256 of its EF.SOD, what the registry stored when it was issued."""
    if reading.sod_bytes is None:
        checks.add(CheckName.REVOCATION, Status.SKIP, "EF.SOD could not be read")
        return
    entry = revocations.lookup(reading.sod_bytes)
    if entry is None:
        checks.add(CheckName.REVOCATION, Status.PASS, f"not on {revocations.describe()}")
    else:
        checks.add(CheckName.REVOCATION, Status.FAIL, f"{entry.describe()}, on {revocations.describe()}")


def face_of(groups: Mapping[int, bytes], problems: list[str]) -> FaceImage | None:
    """The first face of DG2, if the card gave one; a malformed DG2 adds to ``problems``."""
    if 2 not in groups:
        return None
    try:
        faces = decode_dg2(groups[2])
    except (LdsFormatError, ValueError) as exc:
        problems.append(f"DG2: {exc}")
        return None
    return faces[0] if faces else None


def signatures_of(groups: Mapping[int, bytes]) -> tuple[tuple[DisplayedSignature, ...], str | None]:
    """DG7's displayed signatures, if the card gave DG7, and what was wrong with a malformed one (a note:
    Passive Authentication already says whether DG7 is what the issuer signed)."""
    if 7 not in groups:
        return (), None
    try:
        return displayed_signatures(groups[7]), None
    except LdsFormatError as exc:
        return (), f"DG7: {exc}"


def printed_data_check(
    groups: Mapping[int, bytes],
    decode: Callable[[bytes], T],
    contradictions: Callable[[T], list[str]],
    passed: str,
    checks: Checks,
) -> tuple[T | None, FaceImage | None]:
    """DG1 decoded with ``decode`` and checked against itself (``contradictions``), and DG2's face, as the
    printed-data check; ``passed`` says what a pass means for this document."""
    decoded: T | None = None
    problems: list[str] = []
    if 1 not in groups:
        problems.append("DG1 was not read")
    else:
        try:
            decoded = decode(groups[1])
        except LdsFormatError as exc:
            problems.append(str(exc))
    if decoded is not None:
        problems += contradictions(decoded)
    face = face_of(groups, problems)
    if problems:
        checks.add(CheckName.PRINTED_DATA, Status.FAIL, "; ".join(problems))
    else:
        face_text = "" if face is None else f"; face {face.width}x{face.height} {face_format(face)}"
        checks.add(CheckName.PRINTED_DATA, Status.PASS, passed + face_text)
    return decoded, face


def card_security_check(
    session: DocumentSession, trust: TrustStore, policy: Policy | None, document_type: str | None = None
) -> tuple[Dg14 | None, str]:
    """EF.CardSecurity's SecurityInfos when the card gives it and a trusted document signer signed it
    (the checks of Passive Authentication on its signature), else ``None`` and why not."""
    try:
        data = session.read_card_security()
    except ApduError as exc:
        return None, f"EF.CardSecurity could not be read: {exc}"
    try:
        parsed = parse_card_security(data)
    except LdsFormatError as exc:
        return None, str(exc)
    result = signed_object_authentication(
        parsed.signed, ("EF.CardSecurity", OID_SECURITY_OBJECT, "id-SecurityObject"), trust, policy,
        document_type=document_type,
    )
    if not result.ok:
        problems = "; ".join(f"{c.name}: {c.reason}" for c in result.failures)
        return None, f"EF.CardSecurity is not signed by a trusted document signer ({problems})"
    return parsed.infos, "EF.CardSecurity"


def chip_checks(
    session: DocumentSession,
    reading: Reading,
    checks: Checks,
    random_bytes: Callable[[int], bytes],
    *,
    ephemeral: EphemeralKey | None = None,
    early_ca: tuple[Check, CaResult] | None = None,
    card_security: Callable[[], tuple[Dg14 | None, str]] | None = None,
) -> tuple[CaResult | None, AaResult | None]:
    """Chip then Active Authentication, as EF.SOD demands: a DG14 / DG15 it does not list is unsigned and
    ignored, one it lists must be there and its protocol must pass. After PACE-CAM its chip
    authentication data stands for Chip Authentication, checked against DG14's key, or, when EF.SOD
    covers no DG14 with a key on the PACE curve, against EF.CardSecurity's (``card_security``: its
    SecurityInfos once its signature is checked, or why not; see :func:`card_security_check`); a CAM run
    with neither fails (the chip proved a key nobody signed). ``early_ca`` is a Chip Authentication
    already run (to complete Terminal Authentication); ``ephemeral`` the key TA announced."""
    groups, covered = reading.groups, reading.covered
    chip: CaResult | None = None
    dg14 = None
    pace = session.pace
    cam = pace.chip_authentication if pace is not None else None
    if cam is not None:
        # PACE-CAM proves the chip only with a key the issuer signed: DG14 under EF.SOD, else
        # EF.CardSecurity under its own signature.
        # A DG14 that EF.SOD lists must be given and usable, whichever file holds the key.
        signed: tuple[Dg14, str] | None = None
        why_not: list[str] = []
        failed: str | None = None
        if 14 not in covered:
            why_not.append("EF.SOD covers no DG14")
        elif 14 not in groups:
            failed = "EF.SOD covers DG14 but the card did not give it"
        else:
            dg14, unusable = decode_dg14(groups[14])
            if dg14 is None:
                failed = unusable or "DG14 is not usable"
            elif cam_keys(dg14, cam.curve):
                signed = (dg14, "DG14")
            else:
                why_not.append(f"DG14 has no Chip Authentication key on {cam.curve.name}")
        if failed is None and signed is None and card_security is not None:
            infos, said = card_security()
            if infos is not None:
                signed = (infos, "EF.CardSecurity")
            else:
                why_not.append(said)
        if failed is not None:
            checks.add(CA, Status.FAIL, failed)
        elif signed is None:
            checks.add(CA, Status.FAIL,
                       f"{CAM_PREFIX} ran, but no signed key proves it: {'; '.join(why_not)}")
        else:
            cam_result = cam_check(cam, *signed)
            if cam_result.status is Status.FAIL or early_ca is None:
                checks.items.append(cam_result)
            else:
                check, chip = early_ca
                checks.items.append(check)
    elif 14 not in covered:
        checks.add(CheckName.CHIP_AUTHENTICATION, Status.NOT_SUPPORTED, "EF.SOD covers no DG14")
    elif 14 not in groups:
        checks.add(CA, Status.FAIL, "EF.SOD covers DG14 but the card did not give it")
    else:
        dg14, unusable = decode_dg14(groups[14])
        if dg14 is None:
            checks.add(CheckName.CHIP_AUTHENTICATION, Status.FAIL, unusable or "DG14 is not usable")
        elif early_ca is not None:
            check, chip = early_ca
            checks.items.append(check)
        else:
            # After TA the chip accepts only the key TA announced (TR-03110-2 3.4).
            key_source = ephemeral.key_source if ephemeral is not None else default_key_source
            chip = session.chip_authenticate(dg14, key_source=key_source)
            checks.items.append(chip_check(chip))
    active: AaResult | None = None
    if 15 not in covered:
        checks.add(CheckName.ACTIVE_AUTHENTICATION, Status.NOT_SUPPORTED, "EF.SOD covers no DG15")
    elif 15 not in groups:
        checks.add(AA, Status.FAIL, "EF.SOD covers DG15 but the card did not give it")
    elif session.protocol.secure_messaging is None:
        checks.add(CheckName.ACTIVE_AUTHENTICATION, Status.FAIL,
                   "not run: secure messaging ended when Chip Authentication failed")
    else:
        check, active = active_check(
            groups[15],
            dg14,
            lambda key, algorithm: session.active_authenticate(
                key, signature_algorithm=algorithm, random_bytes=random_bytes
            ),
        )
        checks.items.append(check)
    return chip, active


__all__ = [
    "CHIP_GROUPS",
    "Checks",
    "Reading",
    "access_check",
    "begin",
    "card_security_check",
    "chip_checks",
    "face_of",
    "signatures_of",
    "opened_checks",
    "passive_check",
    "printed_data_check",
    "read_check",
    "read_data_groups",
    "read_sod",
    "revocation_check",
]
