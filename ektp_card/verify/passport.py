"""The clerk's verification of an ICAO passport (or any eMRTD): genuine, and the original chip?

The steps (ICAO Doc 9303-11 section 4.2 for access, 5.1 Passive, 6.1 / 6.2 Active and Chip
Authentication)::

    SELECT MF -> EF.CardAccess, EF.ATR/INFO (plain) -> PACE with the MRZ when EF.CardAccess offers it,
      else BAC in the eMRTD application (A0000002471001)
      -> EF.SOD -> every data group EF.SOD lists (DG3 and DG4 are refused without Extended Access
         Control: noted, not a failure) -> Passive Authentication against the trust store
      -> DG1's MRZ decoded and compared with the MRZ used for access; DG2's face
      -> Chip Authentication with DG14's key -> Active Authentication with DG15's key

It runs the steps every verification shares (:mod:`ektp_card.verify.pipeline`): the same checks, the
same verdicts and the same downgrade policy: EF.SOD alone decides which of Chip and Active
Authentication must pass. EF.COM is not read: nothing unsigned takes part in the verdict.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

from ektp_card.apdu.transport import Transport
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.crypto.pace import MappingType
from ektp_card.errors import LdsFormatError
from ektp_card.lds.biometrics import FaceImage
from ektp_card.lds.emrtd import AdditionalDetails, MrzFields, decode_dg11, decode_dg12, decode_emrtd_dg1
from ektp_card.pki.trust import TrustStore
from ektp_card.session.document import PassportSession
from ektp_card.verify import pipeline
from ektp_card.verify.passive import Policy, Status
from ektp_card.verify.pipeline import Checks
from ektp_card.verify.report import PassportReport, verdict_of

#: Data groups read when EF.SOD cannot be parsed (for the report only: the verdict is already forged).
_DEFAULT_DATA_GROUPS = (1, 2, 14, 15)


def _document_code(groups: Mapping[int, bytes]) -> str | None:
    """DG1's MRZ document code (``P<``, ``ID``), for the document signer's Document Type List; None when
    DG1 is missing or malformed (the printed-data check says why)."""
    if 1 not in groups:
        return None
    try:
        return decode_emrtd_dg1(groups[1]).document_type
    except LdsFormatError:
        return None


def verify_passport(
    transport: Transport,
    mrz: MrzInfo,
    trust: TrustStore,
    *,
    policy: Policy | None = None,
    extended: bool | None = None,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    pace_mapping: MappingType | None = None,
) -> PassportReport:
    """Verify the eMRTD in ``transport`` (see the module docstring). ``pace_mapping`` keeps PACE to one
    mapping (``None``: the strongest the card offers, else BAC).

    Access failures raise as in :func:`~ektp_card.verify.card.verify_card`
    (:class:`~ektp_card.errors.PacePasswordError` or :class:`~ektp_card.errors.VerificationFailedError`
    for a wrong MRZ, :class:`~ektp_card.errors.CardFileNotFoundError` without the eMRTD application);
    everything the card answers after that becomes a check.
    """
    checks = Checks()
    session = PassportSession(transport, extended=extended)
    access, reading = pipeline.begin(
        session, checks, lambda: session.authenticate(mrz, pace_mapping=pace_mapping),
        no_card_access=(Status.NOT_SUPPORTED, "no EF.CardAccess: BAC only"), fallback=_DEFAULT_DATA_GROUPS,
    )
    pipeline.read_data_groups(session, reading, reading.numbers)
    pipeline.read_check(reading, checks, "without Extended Access Control")
    passive = pipeline.passive_check(reading, trust, policy, checks, _document_code(reading.groups))
    document, face = _printed_data(reading.groups, mrz, checks)
    document_code = _document_code(reading.groups)
    chip, active = pipeline.chip_checks(
        session, reading, checks, random_bytes,
        card_security=lambda: pipeline.card_security_check(session, trust, policy, document_code),
    )
    additional, notes = _additional_details(reading.groups)
    signatures, problem = pipeline.signatures_of(reading.groups)
    if problem is not None:
        notes = (*notes, problem)
    done = checks.done()
    return PassportReport(
        verdict=verdict_of(done), checks=done, access=access, card_access=session.card_access,
        card_info=session.card_info, face=face, signatures=signatures, data_groups=reading.groups,
        refused=tuple(reading.refused),
        passive=passive, chip=chip, active=active, document=document, additional=additional,
        other_groups=tuple(n for n in sorted(reading.groups) if n not in _SHOWN), notes=notes,
    )


#: Data groups the report shows (the rest are listed by number): MRZ, face, signature, DG11, DG12, and
#: the chip's keys.
_SHOWN = frozenset({1, 2, 7, 11, 12, 14, 15})


def _additional_details(groups: Mapping[int, bytes]) -> tuple[tuple[AdditionalDetails, ...], tuple[str, ...]]:
    """DG11 and DG12 decoded where the passport has them. A malformed one is a note, not a verdict:
    Passive Authentication already says whether it is what the issuer signed."""
    found: list[AdditionalDetails] = []
    notes: list[str] = []
    for number, decode in ((11, decode_dg11), (12, decode_dg12)):
        if number in groups:
            try:
                found.append(decode(groups[number]))
            except LdsFormatError as exc:
                notes.append(str(exc))
    return tuple(found), tuple(notes)


def _printed_data(
    groups: Mapping[int, bytes], mrz: MrzInfo, checks: Checks
) -> tuple[MrzFields | None, FaceImage | None]:
    def contradictions(document: MrzFields) -> list[str]:
        # The chip accepted this MRZ's key: DG1 naming another document contradicts it.
        if document.key.mrz_information != mrz.mrz_information:
            return ["DG1's document number or dates differ from the MRZ used for access"]
        return []

    return pipeline.printed_data_check(
        groups, decode_emrtd_dg1, contradictions, "DG1's MRZ decoded, check digits verified", checks
    )


__all__ = ["PassportReport", "verify_passport"]
