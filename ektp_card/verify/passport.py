"""The clerk's verification of an ICAO passport (or any eMRTD): genuine, and the original chip?

The steps (ICAO Doc 9303-11 section 4.2 for access, 5.1 Passive, 6.1 / 6.2 Active and Chip
Authentication)::

    SELECT MF -> EF.CardAccess, EF.ATR/INFO (plain) -> PACE with the MRZ when EF.CardAccess offers it,
      else BAC in the eMRTD application (A0000002471001)
      -> EF.SOD -> every data group EF.SOD lists (DG3 and DG4 are refused without Extended Access
         Control: noted, not a failure) -> Passive Authentication against the trust store
      -> DG1's MRZ decoded and compared with the MRZ used for access; DG2's face
      -> Chip Authentication with DG14's key -> Active Authentication with DG15's key

It reuses the e-KTP machinery (:mod:`ektp_card.verify.card`): the same checks, the same verdicts and
the same downgrade policy: EF.SOD alone decides which of Chip and Active Authentication must pass.
EF.COM is not read: nothing unsigned takes part in the verdict.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ektp_card.access import EMRTD, AccessSession, Credentials
from ektp_card.apdu.sw import SW
from ektp_card.apdu.transport import Transport
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.errors import ApduError, CardFileNotFoundError, LdsFormatError, SecurityStatusNotSatisfiedError
from ektp_card.lds.biometrics import FaceImage
from ektp_card.lds.ektp import decode_dg2
from ektp_card.lds.emrtd import MrzFields, decode_emrtd_dg1
from ektp_card.lds.sod import Sod, parse_sod
from ektp_card.pki.trust import TrustStore
from ektp_card.verify.card import (
    VerificationReport,
    _Checks,
    _chip_checks,
    _discover,
    _face_format,
    verdict_of,
)
from ektp_card.verify.passive import Policy, Status, passive_authentication

#: Data groups read when EF.SOD cannot be parsed (for the report only: the verdict is already forged).
_DEFAULT_DATA_GROUPS = (1, 2, 14, 15)


@dataclass(frozen=True)
class PassportReport(VerificationReport):
    """A :class:`~ektp_card.verify.card.VerificationReport` whose printed data is DG1's MRZ."""

    document: MrzFields | None = None

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["document"] = None if self.document is None else self.document.to_json()
        return data


def verify_passport(
    transport: Transport,
    mrz: MrzInfo,
    trust: TrustStore,
    *,
    policy: Policy | None = None,
    extended: bool | None = None,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> PassportReport:
    """Verify the eMRTD in ``transport`` (see the module docstring).

    Access failures raise as in :func:`~ektp_card.verify.card.verify_card`
    (:class:`~ektp_card.errors.PacePasswordError` or :class:`~ektp_card.errors.VerificationFailedError`
    for a wrong MRZ, :class:`~ektp_card.errors.CardFileNotFoundError` without the eMRTD application);
    everything the card answers after that becomes a check.
    """
    checks = _Checks()
    session = _discover(transport, extended, checks, (Status.NOT_SUPPORTED, "no EF.CardAccess: BAC only"))
    access = session.authenticate(Credentials(mrz=mrz), (EMRTD,))
    cipher = access.cipher.value[0] if access.cipher else "no cipher"
    checks.add("pace" if access.protocol == "PACE" else "bac", Status.PASS,
               f"{access.protocol}-{'/'.join(access.passwords)} with {cipher}")
    if session.application is None and session.select_application((EMRTD,)) is None:
        raise CardFileNotFoundError(SW.FILE_NOT_FOUND, message="the card has no eMRTD application")

    sod_bytes, sod, sod_problem = _read_sod(session)
    numbers = tuple(sorted(n for n, _ in sod.security_object.hashes)) if sod else _DEFAULT_DATA_GROUPS
    groups, refused, unreadable = _read_data_groups(session, numbers)
    read_reason = f"EF.SOD and DG{', DG'.join(map(str, sorted(groups)))}"
    if refused:
        read_reason += f"; DG{', DG'.join(map(str, refused))} refused without Extended Access Control"
    checks.add("read", Status.FAIL if unreadable else Status.PASS, "; ".join(unreadable) or read_reason)

    passive = None
    if sod_bytes is None:
        checks.add("passive-authentication", Status.FAIL, sod_problem or "EF.SOD could not be read")
    else:
        passive = passive_authentication(sod if sod is not None else sod_bytes, groups, trust, policy)
        problems = [f"{c.name}: {c.reason}" for c in passive.failures]
        if sod is not None:
            problems += [f"DG{n} is listed in EF.SOD but the card does not give it"
                         for n in sorted(set(numbers) - set(groups) - set(refused))]
        signer = passive.document_signer.subject.rfc4514_string() if passive.document_signer else "?"
        ok = f"EF.SOD signed by {signer}, a trusted document signer; data group hashes match"
        status = Status.FAIL if problems else Status.PASS
        checks.add("passive-authentication", status, "; ".join(problems) or ok)

    document, face = _printed_data(groups, mrz, checks)
    covered = set(numbers) if sod is not None else set()
    chip, active = _chip_checks(session, groups, covered, checks, random_bytes, None)
    done = checks.done()
    return PassportReport(
        verdict_of(done), done, access, session.card_access, session.card_info, None, None, face, groups,
        tuple(refused), passive, chip, active, None, None, document,
    )


def _read_sod(session: AccessSession) -> tuple[bytes | None, Sod | None, str | None]:
    ref = EMRTD.file("SOD")
    assert ref is not None  # noqa: S101 - ICAO Doc 9303-10 names EF.SOD
    try:
        data = session.read(ref)
    except ApduError as exc:
        return None, None, f"EF.SOD could not be read: {exc}"
    try:
        return data, parse_sod(data), None
    except LdsFormatError as exc:
        return data, None, str(exc)


def _read_data_groups(
    session: AccessSession, numbers: tuple[int, ...]
) -> tuple[dict[int, bytes], list[int], list[str]]:
    groups: dict[int, bytes] = {}
    refused: list[int] = []
    unreadable: list[str] = []
    for number in numbers:
        ref = EMRTD.file(f"DG{number}")
        assert ref is not None  # noqa: S101 - EMRTD names DG1-DG16, as EF.SOD may list
        try:
            groups[number] = session.read(ref)
        except SecurityStatusNotSatisfiedError:
            refused.append(number)
        except ApduError as exc:
            unreadable.append(str(exc))
    return groups, refused, unreadable


def _printed_data(
    groups: Mapping[int, bytes], mrz: MrzInfo, checks: _Checks
) -> tuple[MrzFields | None, FaceImage | None]:
    document: MrzFields | None = None
    problems: list[str] = []
    if 1 not in groups:
        problems.append("DG1 was not read")
    else:
        try:
            document = decode_emrtd_dg1(groups[1])
        except LdsFormatError as exc:
            problems.append(str(exc))
    if document is not None and document.key.mrz_information != mrz.mrz_information:
        # The chip accepted this MRZ's key: DG1 naming another document contradicts it.
        problems.append("DG1's document number or dates differ from the MRZ used for access")
    face: FaceImage | None = None
    if 2 in groups:
        try:
            faces = decode_dg2(groups[2])
            face = faces[0] if faces else None
        except (LdsFormatError, ValueError) as exc:
            problems.append(f"DG2: {exc}")
    if problems:
        checks.add("printed-data", Status.FAIL, "; ".join(problems))
    else:
        face_text = "" if face is None else f"; face {face.width}x{face.height} {_face_format(face)}"
        checks.add("printed-data", Status.PASS, "DG1's MRZ decoded, check digits verified" + face_text)
    return document, face


__all__ = ["PassportReport", "verify_passport"]
