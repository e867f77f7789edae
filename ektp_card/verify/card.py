"""The clerk's verification: is the card genuine, and is it the original chip rather than a copy?

The steps (ICAO Doc 9303-11 section 4.2 orders the access, section 5.1 Passive and 6.1 / 6.2 Active and
Chip Authentication)::

    SELECT MF -> EF.CardAccess, EF.ATR/INFO (plain) -> PACE with the CAN -> SELECT the e-KTP application
      -> EF.SOD -> every data group EF.SOD lists (refused ones, DG3 without Terminal Authentication,
         are noted) -> Passive Authentication against the trust store
      -> Chip Authentication with DG14's key -> Active Authentication with DG15's key, fresh challenge

With a :class:`Terminal` (its CV certificate chain and key), Terminal Authentication version 2 runs
right after EF.SOD, before the data groups are read (BSI TR-03110-2 section 3.4: PACE -> TA -> CA),
with an ephemeral key on DG14's curve that Chip Authentication then reuses; DG3 is read with the rest
and, given the holder's freshly captured template, each of its templates is compared with it
(:func:`ektp_card.verify.matcher.match`, default :class:`~ektp_card.verify.matcher.MatcherConfig`;
the best score wins).

A card whose DG14 carries an OnCardComparisonInfo compares the capture itself
(:mod:`ektp_card.lds.compact`): when the terminal holds the verify-biometric right, the capture goes
to the chip in VERIFY after Chip Authentication, and the chip's match or no match decides (the report
says ``fingerprint_path`` ``on-card`` and the tries the chip has left); DG3, if the card has one too,
is then not compared. Otherwise DG3 is read and compared here (``dg3``).

Reads use :class:`~ektp_card.session.document.EktpSession`, which sizes each READ BINARY to the largest
that fits secure messaging (extended length when EF.ATR/INFO offers it), so a data group costs as few
commands as the card allows.

The decision resists downgrade: which protections the card must prove comes from EF.SOD alone, the only
signed list. When EF.SOD covers DG14, Chip Authentication must pass; when it covers DG15, Active
Authentication must pass; a card that "does not support" them, or whose EF.COM leaves them out, fails.
EF.COM is not read at all: nothing unsigned takes part in the verdict.

The verdict, most serious first: :attr:`Verdict.FORGED` (Passive Authentication or the printed data
failed: unknown or revoked signer, hash mismatch, NIK contradicting DG1), :attr:`Verdict.CLONED` (Chip
or Active Authentication failed: the data is the issuer's, the chip is not the one it was written to),
:attr:`Verdict.REVOKED` (given a card revocation list, ektp_card.pki.revocation: the card's EF.SOD is
on it, e.g. reported lost, although its signatures are valid),
:attr:`Verdict.HOLDER_MISMATCH` (the captured fingerprint matches neither DG3 template, or the chip
answers no match), else
:attr:`Verdict.GENUINE`. A failed Terminal Authentication or an unusable DG3 is shown but decides
nothing: a card refuses a terminal whose certificate expired or comes from another CVCA, which says
nothing about the document; the fingerprint is then "not supported" (not compared).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from ektp_card.apdu.transport import Transport
from ektp_card.crypto.ca import CaResult
from ektp_card.crypto.pace import MappingType
from ektp_card.errors import ApduError, ChipAuthenticationError, LdsFormatError, TerminalAuthenticationError
from ektp_card.lds.biometrics import FaceImage, MinutiaeRecord
from ektp_card.lds.ektp import decode_dg1, decode_dg3
from ektp_card.lds.record import PersonalData
from ektp_card.pki.certs import EKTP_DOCUMENT_TYPE
from ektp_card.pki.trust import TrustStore
from ektp_card.session.document import EktpSession, OnCardComparison
from ektp_card.verify import pipeline
from ektp_card.verify.chip import chip_check, decode_dg14
from ektp_card.verify.passive import Check, Policy, Status
from ektp_card.verify.pipeline import Checks
from ektp_card.verify.report import (
    CHECK_VERDICTS,
    READ_DG3,
    CheckName,
    NikCheck,
    Terminal,
    Verdict,
    VerificationReport,
    nik_check,
    verdict_of,
)

if TYPE_CHECKING:
    # Terminal Authentication, the fingerprint matcher and revocation lists are imported by the runs
    # that use them (a terminal, a captured fingerprint, a list given by the caller).
    from ektp_card.crypto.ta import EphemeralKey, TaResult
    from ektp_card.pki.revocation import RevocationList
    from ektp_card.verify.matcher import MatchResult

#: Data groups read when EF.SOD cannot be parsed (for the report only: the verdict is already forged).
_PROFILE_DATA_GROUPS = (1, 2, 7, 14, 15)

TERMINAL_AUTHENTICATION = CheckName.TERMINAL_AUTHENTICATION
DG3 = CheckName.DG3
FINGERPRINT = CheckName.FINGERPRINT
REVOCATION = CheckName.REVOCATION


def verify_card(
    transport: Transport,
    can: str,
    trust: TrustStore,
    *,
    policy: Policy | None = None,
    extended: bool | None = None,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    terminal: Terminal | None = None,
    fingerprint: MinutiaeRecord | bytes | None = None,
    revocations: RevocationList | None = None,
    pace_mapping: MappingType | None = None,
) -> VerificationReport:
    """Verify the e-KTP in ``transport`` (see the module docstring).

    PACE failures raise (:class:`~ektp_card.errors.PacePasswordError` for a wrong CAN,
    :class:`~ektp_card.errors.PaceError` when the card offers no usable PACE), as do transport errors
    (a card removed mid-way) and a card without the e-KTP application
    (:class:`~ektp_card.errors.CardFileNotFoundError`): none of them says anything about the document.
    Everything the card answers after that becomes a check. ``random_bytes`` draws the Active
    Authentication challenge. ``terminal`` runs Terminal Authentication and reads DG3; ``fingerprint``
    (the holder's capture, ISO/IEC 19794-2; decoded first, :class:`~ektp_card.errors.BiometricFormatError`
    if malformed) is then compared with DG3's templates. ``revocations``, a list the caller has
    checked (:func:`ektp_card.pki.revocation.load_revocation_list`), adds the check
    ``revocation`` right after Passive Authentication: the card's EF.SOD must not be on it.
    ``pace_mapping`` keeps PACE to one mapping (``None``: the strongest the card offers).
    """
    probe = MinutiaeRecord.decode(fingerprint) if isinstance(fingerprint, bytes | bytearray) else fingerprint
    checks = Checks()
    session = EktpSession(transport, extended=extended)
    access, reading = pipeline.begin(
        session, checks, lambda: session.authenticate(can, pace_mapping=pace_mapping),
        no_card_access=(Status.FAIL, "EF.CardAccess is missing or malformed"), fallback=_PROFILE_DATA_GROUPS,
    )
    numbers = reading.numbers
    ta_check, ta, ephemeral, early = _terminal_authentication(session, terminal)
    reading.groups.update({n: data for n, data in early.items() if n in numbers})
    # After a passed TA, DG3 waits for Chip Authentication (EAC2): asking before would only be refused.
    after_ca = ta is not None and ta.passed and ephemeral is not None and 3 in numbers
    pipeline.read_data_groups(session, reading, tuple(n for n in numbers if not (after_ca and n == 3)))
    early_ca: tuple[Check, CaResult] | None = None
    if after_ca and ephemeral is not None:
        early_ca = _complete_terminal_authentication(session, reading.groups, ephemeral)
        if early_ca is not None and early_ca[1].passed:
            pipeline.read_data_groups(session, reading, (3,))
        else:
            reading.refused = sorted([*reading.refused, 3])
    pipeline.read_check(reading, checks, "with this access")

    passive = pipeline.passive_check(reading, trust, policy, checks, EKTP_DOCUMENT_TYPE)
    if revocations is not None:
        pipeline.revocation_check(revocations, reading, checks)
    personal, nik, face = _printed_data(reading.groups, checks)
    chip, active = pipeline.chip_checks(
        session, reading, checks, random_bytes, ephemeral=ephemeral, early_ca=early_ca,
        card_security=lambda: pipeline.card_security_check(session, trust, policy, EKTP_DOCUMENT_TYPE),
    )
    checks.add(TERMINAL_AUTHENTICATION, ta_check.status, ta_check.reason)
    templates = _dg3_check(reading.groups, numbers, reading.refused, terminal, ta, checks)
    best: MatchResult | None = None
    path: str | None = None
    on_card = None
    if probe is not None and _offers_on_card(reading.groups) and _may_compare_on_card(terminal, ta, chip):
        # The chip compares: its answer decides, and DG3 (if the card has one) is not compared here.
        on_card = _on_card_check(session, probe, checks)
        path = "on-card" if on_card is not None else None
    else:
        best = _fingerprint_check(probe, templates, checks, _offers_on_card(reading.groups))
        path = "dg3" if best is not None else None
    signatures, _ = pipeline.signatures_of(reading.groups)
    done = checks.done()
    return VerificationReport(
        verdict=verdict_of(done), checks=done, access=access, card_access=session.card_access,
        card_info=session.card_info, personal=personal, nik=nik, face=face, signatures=signatures,
        data_groups=reading.groups,
        refused=tuple(reading.refused), passive=passive, chip=chip, active=active, terminal=ta,
        fingerprint=best, fingerprint_path=path, on_card=on_card,
    )


def _offers_on_card(groups: Mapping[int, bytes]) -> bool:
    """Whether DG14 (signed: Passive Authentication covers it) says the chip compares fingerprints."""
    from ektp_card.lds.compact import offers_on_card_comparison

    dg14, _ = decode_dg14(groups[14]) if 14 in groups else (None, None)
    return dg14 is not None and offers_on_card_comparison(dg14)


def _may_compare_on_card(terminal: Terminal | None, ta: TaResult | None, chip: CaResult | None) -> bool:
    """Whether the chip will accept VERIFY from this terminal: Terminal Authentication with the
    verify-biometric right, then Chip Authentication (EAC2 grants rights only after it)."""
    from ektp_card.pki.cvc import EKTP_RIGHTS, VERIFY_BIOMETRIC

    if terminal is None or ta is None or not ta.passed or chip is None or not chip.passed:
        return False
    bit = EKTP_RIGHTS[VERIFY_BIOMETRIC]
    return all(cert.ektp_rights >> bit & 1 for cert in terminal.chain)


def _on_card_check(session: EktpSession, probe: MinutiaeRecord, checks: Checks) -> OnCardComparison | None:
    """VERIFY with the capture: the chip's match or no match, and the tries it has left."""
    try:
        answer = session.compare_fingerprint(probe)
        if answer.matched:
            # A match sets the counter back; ask for it (VERIFY without data spends no try).
            answer = replace(answer, tries_left=session.fingerprint_tries().tries_left)
    except (ApduError, LdsFormatError) as exc:
        checks.add(FINGERPRINT, Status.FAIL, f"on-card comparison refused: {exc}")
        return None
    tries = "no tries left" if not answer.tries_left else f"{answer.tries_left} tries left"
    if answer.matched:
        checks.add(FINGERPRINT, Status.PASS, f"matches: compared on the card ({tries})")
    elif answer.blocked:
        checks.add(FINGERPRINT, Status.FAIL, "on-card comparison blocked: the card has no tries left")
    else:
        checks.add(FINGERPRINT, Status.FAIL, f"no match: compared on the card ({tries})")
    return answer


def _terminal_authentication(
    session: EktpSession, terminal: Terminal | None
) -> tuple[Check, TaResult | None, EphemeralKey | None, dict[int, bytes]]:
    """TA before any data group (TR-03110-2 3.4), with an ephemeral key on DG14's curve for CA.
    Returns the check, the result, the key and DG14 if it was read for its curve."""
    if terminal is None:
        return Check(TERMINAL_AUTHENTICATION, Status.NOT_SUPPORTED,
                     "not run: no terminal certificate chain and key given"), None, None, {}
    pace = session.pace
    if pace is None:
        return Check(TERMINAL_AUTHENTICATION, Status.NOT_SUPPORTED, "not run: it needs PACE"), None, None, {}
    try:
        dg14_bytes = session.read_data_group(14)
    except ApduError as exc:
        reason = f"not run: DG14 (the curve of the ephemeral key) could not be read: {exc}"
        return Check(TERMINAL_AUTHENTICATION, Status.NOT_SUPPORTED, reason), None, None, {}
    from ektp_card.crypto.ta import EphemeralKey

    dg14, unusable = decode_dg14(dg14_bytes)
    try:
        if dg14 is None:
            raise ChipAuthenticationError(unusable or "DG14 is not usable")
        ephemeral = EphemeralKey.generate(dg14.ca_parameters().curve)
    except ChipAuthenticationError as exc:
        reason = f"not run: no curve for the ephemeral key: {exc}"
        return Check(TERMINAL_AUTHENTICATION, Status.NOT_SUPPORTED, reason), None, None, {14: dg14_bytes}
    try:
        result = session.terminal_authenticate(terminal.chain, terminal.signer, ephemeral)
    except TerminalAuthenticationError as exc:
        return Check(TERMINAL_AUTHENTICATION, Status.FAIL, str(exc)), None, None, {14: dg14_bytes}
    status = Status.PASS if result.passed else Status.FAIL
    return Check(TERMINAL_AUTHENTICATION, status, result.reason), result, ephemeral, {14: dg14_bytes}


def _dg3_check(
    groups: Mapping[int, bytes],
    numbers: tuple[int, ...],
    refused: list[int],
    terminal: Terminal | None,
    ta: TaResult | None,
    checks: Checks,
) -> tuple[MinutiaeRecord, ...] | None:
    """DG3's minutiae records, or ``None`` with the reason recorded."""
    reason: str | None = None
    if 3 not in numbers:
        reason = "EF.SOD covers no DG3"
    elif terminal is None or ta is None or not ta.passed:
        reason = "not read: DG3 needs Terminal Authentication" + (" (refused)" if 3 in refused else "")
    elif 3 in refused:
        lacks = not terminal.chain[-1].chat.grants(READ_DG3)
        reason = "the card refused DG3 to this terminal" + (
            f": {terminal.chain[-1].chr} lacks the {READ_DG3} right" if lacks else "")
    if reason is not None:
        checks.add(DG3, Status.NOT_SUPPORTED, reason)
        return None
    if 3 not in groups:
        checks.add(DG3, Status.FAIL, "DG3 could not be read")
        return None
    try:
        templates = decode_dg3(groups[3])
    except LdsFormatError as exc:
        checks.add(DG3, Status.FAIL, str(exc))
        return None
    if not templates:
        checks.add(DG3, Status.FAIL, "DG3 holds no minutiae template")
        return None
    checks.add(DG3, Status.PASS, f"{len(templates)} minutiae templates")
    return templates


def _fingerprint_check(
    probe: MinutiaeRecord | None, templates: tuple[MinutiaeRecord, ...] | None, checks: Checks,
    on_card: bool = False,
) -> MatchResult | None:
    if templates is None:
        reason = "not compared: DG3 was not read"
        if on_card and probe is not None:
            reason += ("; the card compares fingerprints itself, for a terminal with the "
                       "verify-biometric right after Terminal and Chip Authentication")
        checks.add(FINGERPRINT, Status.NOT_SUPPORTED, reason)
        return None
    if probe is None:
        checks.add(FINGERPRINT, Status.NOT_SUPPORTED, "not compared: no fingerprint captured")
        return None
    from ektp_card.verify.matcher import match

    results = [match(probe, template) for template in templates]
    index = max(range(len(results)), key=lambda i: results[i].score)
    best = results[index]
    figures = f"score {best.score:.1f}, threshold {best.threshold:g}, {best.paired} minutiae paired"
    if best.matched:
        checks.add(FINGERPRINT, Status.PASS, f"matches DG3 template {index + 1} ({figures})")
    else:
        reason = f"matches no DG3 template (best: template {index + 1}, {figures})"
        checks.add(FINGERPRINT, Status.FAIL, reason)
    return best


def _complete_terminal_authentication(
    session: EktpSession, groups: Mapping[int, bytes], ephemeral: EphemeralKey
) -> tuple[Check, CaResult] | None:
    """Chip Authentication with the key Terminal Authentication announced.

    EAC2 (BSI TR-03110-2: PACE, TA, CA) gives the terminal its rights only once Chip Authentication
    has succeeded, so the fingerprints are read after it, under its keys. Returns the CA check (kept
    for the chip checks, which do not run it again); ``None`` without a usable DG14.
    """
    dg14, _ = decode_dg14(groups[14]) if 14 in groups else (None, None)
    if dg14 is None:
        return None
    result = session.chip_authenticate(dg14, key_source=ephemeral.key_source)
    return chip_check(result), result


def _printed_data(
    groups: Mapping[int, bytes], checks: Checks
) -> tuple[PersonalData | None, NikCheck | None, FaceImage | None]:
    def contradictions(personal: PersonalData) -> list[str]:
        return [f"NIK: {problem}" for problem in nik_check(personal).problems]

    agrees = "DG1 decoded, NIK agrees with sex and date of birth"
    result = pipeline.printed_data_check(groups, decode_dg1, contradictions, agrees, checks)
    personal, face = result
    return personal, None if personal is None else nik_check(personal), face


__all__ = [
    "CHECK_VERDICTS",
    "NikCheck",
    "Terminal",
    "VerificationReport",
    "Verdict",
    "nik_check",
    "verdict_of",
    "verify_card",
]
