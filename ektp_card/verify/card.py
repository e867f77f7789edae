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

Reads use :class:`~ektp_card.access.AccessSession`, which sizes each READ BINARY to the largest that fits
secure messaging (extended length when EF.ATR/INFO offers it), so a data group costs as few commands as
the card allows.

The decision resists downgrade: which protections the card must prove comes from EF.SOD alone, the only
signed list. When EF.SOD covers DG14, Chip Authentication must pass; when it covers DG15, Active
Authentication must pass; a card that "does not support" them, or whose EF.COM leaves them out, fails.
EF.COM is not read at all: nothing unsigned takes part in the verdict.

The verdict, most serious first: :attr:`Verdict.FORGED` (Passive Authentication or the printed data
failed: unknown or revoked signer, hash mismatch, NIK contradicting DG1), :attr:`Verdict.CLONED` (Chip
or Active Authentication failed: the data is the issuer's, the chip is not the one it was written to),
:attr:`Verdict.REVOKED` (given a card revocation list, ektp_card.pki.revocation: the card's EF.SOD is
on it, e.g. reported lost, although its signatures are valid),
:attr:`Verdict.HOLDER_MISMATCH` (the captured fingerprint matches neither DG3 template), else
:attr:`Verdict.GENUINE`. A failed Terminal Authentication or an unusable DG3 is shown but decides
nothing: a card refuses a terminal whose certificate expired or comes from another CVCA, which says
nothing about the document; the fingerprint is then "not supported" (not compared).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from ektp_card.access import AccessResult, AccessSession, Credentials
from ektp_card.apdu.iso7816 import CardInfo
from ektp_card.apdu.sw import SW
from ektp_card.apdu.transport import Transport
from ektp_card.crypto.aa import AaResult
from ektp_card.crypto.ca import CaResult
from ektp_card.crypto.ta import EphemeralKey, TaResult, terminal_authenticate
from ektp_card.ec import default_key_source
from ektp_card.errors import (
    ApduError,
    CardFileNotFoundError,
    ChipAuthenticationError,
    LdsFormatError,
    SecurityStatusNotSatisfiedError,
    TerminalAuthenticationError,
)
from ektp_card.lds.biometrics import FaceImage, ImageDataType, MinutiaeRecord
from ektp_card.lds.card_access import CardAccess
from ektp_card.lds.ektp import decode_dg1, decode_dg2, decode_dg3
from ektp_card.lds.nik import nik_violations
from ektp_card.lds.record import PersonalData
from ektp_card.lds.sod import Sod, parse_sod
from ektp_card.pki.cvc import CvCertificate, CvPublicKey, Role
from ektp_card.pki.signer import Signer
from ektp_card.pki.trust import TrustStore
from ektp_card.verify.chip import (
    ACTIVE_AUTHENTICATION,
    CHIP_AUTHENTICATION,
    EKTP_APPLICATION,
    decode_dg14,
    run_active_authentication,
    run_chip_authentication,
)
from ektp_card.verify.matcher import MatchResult, match
from ektp_card.verify.passive import Check, PassiveAuthResult, Policy, Status, passive_authentication

if TYPE_CHECKING:
    from ektp_card.pki.revocation import RevocationList

#: Data groups read when EF.SOD cannot be parsed (for the report only: the verdict is already forged).
_PROFILE_DATA_GROUPS = (1, 2, 7, 14, 15)


class Verdict(Enum):
    GENUINE = "genuine"
    FORGED = "forged"
    CLONED = "cloned"
    HOLDER_MISMATCH = "holder mismatch"
    REVOKED = "revoked"


TERMINAL_AUTHENTICATION = "terminal-authentication"
DG3 = "dg3"
FINGERPRINT = "fingerprint"
#: The CHAT right that opens DG3 in the e-KTP profile (docs/card-profile.md).
READ_DG3 = "read-dg3"
#: The check against a card revocation list (present only when a list is given).
REVOCATION = "revocation"


@dataclass(frozen=True)
class Terminal:
    """An inspection terminal for Terminal Authentication: its CV certificates from the card's trust
    point down (DV, then terminal; a self-signed CVCA at the head is skipped) and the
    :class:`~ektp_card.pki.signer.Signer` holding the terminal certificate's key (a key file, a
    PKCS#11 token, :class:`~ektp_card.pki.sam.VirtualSam`). :class:`TerminalAuthenticationError`
    when the chain does not end with a terminal certificate for that key."""

    chain: tuple[CvCertificate, ...]
    signer: Signer

    def __post_init__(self) -> None:
        if not self.chain or self.chain[-1].role is not Role.TERMINAL:
            raise TerminalAuthenticationError("the terminal chain must end with a terminal certificate")
        leaf, key = self.chain[-1].public_key, self.signer.public_key
        if not isinstance(key, ec.EllipticCurvePublicKey) or (
            CvPublicKey.from_key(key, algorithm=leaf.algorithm).point != leaf.point
        ):
            raise TerminalAuthenticationError(f"the terminal key is not the key of {self.chain[-1].chr}")


#: Every check, in order, and the verdict its failure leads to.
CHECK_NAMES: tuple[tuple[str, Verdict], ...] = (
    ("pace", Verdict.FORGED),
    ("card-access", Verdict.FORGED),
    ("card-info", Verdict.FORGED),
    ("read", Verdict.FORGED),
    ("passive-authentication", Verdict.FORGED),
    (REVOCATION, Verdict.REVOKED),
    ("printed-data", Verdict.FORGED),
    (CHIP_AUTHENTICATION, Verdict.CLONED),
    (ACTIVE_AUTHENTICATION, Verdict.CLONED),
    (TERMINAL_AUTHENTICATION, Verdict.HOLDER_MISMATCH),
    (DG3, Verdict.HOLDER_MISMATCH),
    (FINGERPRINT, Verdict.HOLDER_MISMATCH),
)
_CLASS_OF = dict(CHECK_NAMES)
#: Checks whose failure is shown but does not change the verdict: what the card offers before PACE,
#: and whether this terminal could read the fingerprints (only the comparison itself decides).
_INFORMATIONAL = frozenset({"card-access", "card-info", "read", TERMINAL_AUTHENTICATION, DG3})
_ORDER = (Verdict.FORGED, Verdict.CLONED, Verdict.REVOKED, Verdict.HOLDER_MISMATCH)


@dataclass(frozen=True)
class NikCheck:
    """The NIK of DG1 against DG1's sex and date of birth (the NIK encodes both, lds/nik.py)."""

    nik: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class VerificationReport:
    """What the clerk sees: the verdict and its reasons, every check, the printed fields, the face."""

    verdict: Verdict
    checks: tuple[Check, ...]
    access: AccessResult | None = None
    card_access: CardAccess | None = None
    card_info: CardInfo | None = None
    personal: PersonalData | None = None
    nik: NikCheck | None = None
    face: FaceImage | None = field(default=None, repr=False)
    data_groups: Mapping[int, bytes] = field(default_factory=dict, repr=False, compare=False)
    #: Data groups EF.SOD lists that the card refused with this access (DG3 without TA).
    refused: tuple[int, ...] = ()
    passive: PassiveAuthResult | None = None
    chip: CaResult | None = None
    active: AaResult | None = None
    terminal: TaResult | None = None
    #: The best comparison of the captured fingerprint with DG3's templates.
    fingerprint: MatchResult | None = None

    @property
    def genuine(self) -> bool:
        return self.verdict is Verdict.GENUINE

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status is Status.FAIL and c.name not in _INFORMATIONAL)

    @property
    def reasons(self) -> tuple[str, ...]:
        """One line per failed check that decided the verdict."""
        return tuple(f"{c.name}: {c.reason}" for c in self.failures)

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        personal = self.personal
        return {
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "checks": [{"name": c.name, "status": c.status.value, "reason": c.reason} for c in self.checks],
            "access": None if self.access is None else {
                "protocol": self.access.protocol,
                "passwords": list(self.access.passwords),
                "cipher": None if self.access.cipher is None else self.access.cipher.name,
            },
            "extended_length": bool(self.card_info and self.card_info.extended_length),
            "printed": None if personal is None else _personal_json(personal),
            "nik": None if self.nik is None else {"ok": self.nik.ok, "problems": list(self.nik.problems)},
            "face": None if self.face is None else {
                "format": _face_format(self.face), "width": self.face.width, "height": self.face.height,
                "bytes": len(self.face.image),
            },
            "data_groups": sorted(self.data_groups),
            "refused_data_groups": list(self.refused),
            "passive_authentication": None if self.passive is None else self.passive.to_json(),
            "fingerprint": None if self.fingerprint is None else {
                "matched": self.fingerprint.matched, "score": round(self.fingerprint.score, 2),
                "threshold": self.fingerprint.threshold, "paired": self.fingerprint.paired,
            },
        }


def _personal_json(personal: PersonalData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in PersonalData.__dataclass_fields__:
        value = getattr(personal, name)
        out[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def _face_format(face: FaceImage) -> str:
    return "jpeg2000" if face.image_data_type is ImageDataType.JPEG2000 else "jpeg"


def nik_check(personal: PersonalData) -> NikCheck:
    """Cross-check DG1's NIK with its sex and date of birth."""
    violations = nik_violations(personal.nik, sex=personal.sex, date_of_birth=personal.date_of_birth)
    return NikCheck(personal.nik, tuple(v.message for v in violations))


def verdict_of(checks: tuple[Check, ...]) -> Verdict:
    """The most serious verdict any failed check leads to (see the module docstring)."""
    failed = {_CLASS_OF.get(c.name, Verdict.FORGED) for c in checks
              if c.status is Status.FAIL and c.name not in _INFORMATIONAL}
    return next((v for v in _ORDER if v in failed), Verdict.GENUINE)


class _Checks:
    def __init__(self) -> None:
        self.items: list[Check] = []

    def add(self, name: str, status: Status, reason: str) -> None:
        self.items.append(Check(name, status, reason))

    def done(self) -> tuple[Check, ...]:
        return tuple(self.items)


def _discover(
    transport: Transport, extended: bool | None, checks: _Checks, no_card_access: tuple[Status, str]
) -> AccessSession:
    """Open an access session, read EF.CardAccess and EF.ATR/INFO in the clear, and record both as
    checks; ``no_card_access`` is what a missing EF.CardAccess means for this kind of document."""
    session = AccessSession(transport, extended=extended)
    session.discover()
    if session.card_access is not None:
        checks.add("card-access", Status.PASS, f"{len(session.card_access.pace_infos)} PACEInfo")
    else:
        checks.add("card-access", *no_card_access)
    info = session.card_info
    if info is None:
        checks.add("card-info", Status.NOT_SUPPORTED, "no EF.ATR/INFO: short APDUs only")
    else:
        size = "extended length" if info.extended_length and session.protocol.extended else "short APDUs"
        checks.add("card-info", Status.PASS, f"EF.ATR/INFO read: {size}")
    return session


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
    """
    probe = MinutiaeRecord.decode(fingerprint) if isinstance(fingerprint, bytes | bytearray) else fingerprint
    checks = _Checks()
    session = _discover(
        transport, extended, checks, (Status.FAIL, "EF.CardAccess is missing or malformed")
    )
    access = session.authenticate(Credentials(can=can), (EKTP_APPLICATION,))
    cipher = access.cipher.value[0] if access.cipher else "no cipher"
    checks.add("pace", Status.PASS, f"PACE-{'/'.join(access.passwords)} with {cipher}")
    if session.select_application((EKTP_APPLICATION,)) is None:
        raise CardFileNotFoundError(SW.FILE_NOT_FOUND, message="the card has no e-KTP application")

    sod_bytes, sod, sod_problem = _read_sod(session)
    numbers = tuple(sorted(n for n, _ in sod.security_object.hashes)) if sod else _PROFILE_DATA_GROUPS
    ta_check, ta, ephemeral, early = _terminal_authentication(session, terminal)
    # After a passed TA, DG3 waits for Chip Authentication (EAC2): asking before would only be refused.
    after_ca = ta is not None and ta.passed and ephemeral is not None and 3 in numbers
    groups, refused, unreadable = _read_data_groups(
        session, tuple(n for n in numbers if not (after_ca and n == 3)), early
    )
    early_ca: tuple[Check, CaResult] | None = None
    if after_ca and ephemeral is not None:
        early_ca = _complete_terminal_authentication(session, groups, ephemeral)
        if early_ca is not None and early_ca[1].passed:
            dg3, dg3_refused, dg3_unreadable = _read_data_groups(session, (3,), {})
            groups.update(dg3)
            refused = sorted(refused + dg3_refused)
            unreadable += dg3_unreadable
        else:
            refused = sorted([*refused, 3])
    read_reason = f"EF.SOD and DG{', DG'.join(map(str, sorted(groups)))}"
    if refused:
        read_reason += f"; DG{', DG'.join(map(str, refused))} refused with this access"
    if unreadable:
        checks.add("read", Status.FAIL, "; ".join(unreadable))
    else:
        checks.add("read", Status.PASS, read_reason)

    passive: PassiveAuthResult | None = None
    if sod_bytes is None:
        checks.add("passive-authentication", Status.FAIL, sod_problem or "EF.SOD could not be read")
    else:
        passive = passive_authentication(sod if sod is not None else sod_bytes, groups, trust, policy)
        problems = [f"{c.name}: {c.reason}" for c in passive.failures]
        if sod is not None:
            # Refused is expected (DG3 needs Terminal Authentication); missing is not. A missing DG14 or
            # DG15 is a chip that will not prove itself (a downgraded copy): the chip checks fail it,
            # while the data the card gives may still be exactly what the issuer signed.
            problems += [f"DG{n} is listed in EF.SOD but the card does not give it"
                         for n in sorted(set(numbers) - set(groups) - set(refused) - _CHIP_GROUPS)]
        signer = passive.document_signer.subject.rfc4514_string() if passive.document_signer else "?"
        ok = f"EF.SOD signed by {signer}, a trusted document signer; data group hashes match"
        status = Status.FAIL if problems else Status.PASS
        checks.add("passive-authentication", status, "; ".join(problems) or ok)
    if revocations is not None:
        _revocation_check(revocations, sod_bytes, checks)

    personal, nik, face = _printed_data(groups, checks)
    covered = set(numbers) if sod is not None else set()
    chip, active = _chip_checks(session, groups, covered, checks, random_bytes, ephemeral, early_ca)
    checks.add(ta_check.name, ta_check.status, ta_check.reason)
    templates = _dg3_check(groups, numbers, refused, terminal, ta, checks)
    best = _fingerprint_check(probe, templates, checks)
    done = checks.done()
    return VerificationReport(
        verdict_of(done), done, access, session.card_access, session.card_info, personal, nik, face, groups,
        tuple(refused), passive, chip, active, ta, best,
    )


def _revocation_check(revocations: RevocationList, sod_bytes: bytes | None, checks: _Checks) -> None:
    """The card is named by the SHA-256 of its EF.SOD, what the registry stored when it was issued."""
    if sod_bytes is None:
        checks.add(REVOCATION, Status.SKIP, "EF.SOD could not be read")
        return
    entry = revocations.lookup(sod_bytes)
    if entry is None:
        checks.add(REVOCATION, Status.PASS, f"not on {revocations.describe()}")
    else:
        checks.add(REVOCATION, Status.FAIL, f"{entry.describe()}, on {revocations.describe()}")


def _terminal_authentication(
    session: AccessSession, terminal: Terminal | None
) -> tuple[Check, TaResult | None, EphemeralKey | None, dict[int, bytes]]:
    """TA before any data group (TR-03110-2 3.4), with an ephemeral key on DG14's curve for CA.
    Returns the check, the result, the key and DG14 if it was read for its curve."""
    if terminal is None:
        return Check(TERMINAL_AUTHENTICATION, Status.NOT_SUPPORTED,
                     "not run: no terminal certificate chain and key given"), None, None, {}
    pace = session.pace
    if pace is None:
        return Check(TERMINAL_AUTHENTICATION, Status.NOT_SUPPORTED, "not run: it needs PACE"), None, None, {}
    ref = EKTP_APPLICATION.file("DG14")
    assert ref is not None  # noqa: S101 - the profile names DG14
    try:
        dg14_bytes = session.read(ref)
    except ApduError as exc:
        reason = f"not run: DG14 (the curve of the ephemeral key) could not be read: {exc}"
        return Check(TERMINAL_AUTHENTICATION, Status.NOT_SUPPORTED, reason), None, None, {}
    dg14, unusable = decode_dg14(dg14_bytes)
    try:
        if dg14 is None:
            raise ChipAuthenticationError(unusable or "DG14 is not usable")
        ephemeral = EphemeralKey.generate(dg14.ca_parameters().curve)
    except ChipAuthenticationError as exc:
        reason = f"not run: no curve for the ephemeral key: {exc}"
        return Check(TERMINAL_AUTHENTICATION, Status.NOT_SUPPORTED, reason), None, None, {14: dg14_bytes}
    try:
        result = terminal_authenticate(session.protocol, terminal.chain, terminal.signer,
                                       id_picc=pace.id_picc, ephemeral=ephemeral.compressed)
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
    checks: _Checks,
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
    probe: MinutiaeRecord | None, templates: tuple[MinutiaeRecord, ...] | None, checks: _Checks
) -> MatchResult | None:
    if templates is None:
        checks.add(FINGERPRINT, Status.NOT_SUPPORTED, "not compared: DG3 was not read")
        return None
    if probe is None:
        checks.add(FINGERPRINT, Status.NOT_SUPPORTED, "not compared: no fingerprint captured")
        return None
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


def _read_sod(session: AccessSession) -> tuple[bytes | None, Sod | None, str | None]:
    ref = EKTP_APPLICATION.file("SOD")
    assert ref is not None  # noqa: S101 - the profile names EF.SOD
    try:
        data = session.read(ref)
    except ApduError as exc:
        return None, None, f"EF.SOD could not be read: {exc}"
    try:
        return data, parse_sod(data), None
    except LdsFormatError as exc:
        return data, None, str(exc)


def _complete_terminal_authentication(
    session: AccessSession, groups: Mapping[int, bytes], ephemeral: EphemeralKey
) -> tuple[Check, CaResult] | None:
    """Chip Authentication with the key Terminal Authentication announced.

    EAC2 (BSI TR-03110-2: PACE, TA, CA) gives the terminal its rights only once Chip Authentication
    has succeeded, so the fingerprints are read after it, under its keys. Returns the CA check (kept
    for the chip checks, which do not run it again); ``None`` without a usable DG14.
    """
    dg14, _ = decode_dg14(groups[14]) if 14 in groups else (None, None)
    if dg14 is None:
        return None
    return run_chip_authentication(session.protocol, dg14, key_source=ephemeral.key_source)


def _read_data_groups(
    session: AccessSession, numbers: tuple[int, ...], already: Mapping[int, bytes]
) -> tuple[dict[int, bytes], list[int], list[str]]:
    groups: dict[int, bytes] = {n: data for n, data in already.items() if n in numbers}
    refused: list[int] = []
    unreadable: list[str] = []
    for number in numbers:
        if number in groups:
            continue
        ref = EKTP_APPLICATION.file(f"DG{number}")
        if ref is None:
            unreadable.append(f"DG{number} is not a file of the e-KTP profile")
            continue
        try:
            groups[number] = session.read(ref)
        except SecurityStatusNotSatisfiedError:
            refused.append(number)
        except ApduError as exc:
            unreadable.append(str(exc))
    return groups, refused, unreadable


def _printed_data(
    groups: Mapping[int, bytes], checks: _Checks
) -> tuple[PersonalData | None, NikCheck | None, FaceImage | None]:
    personal: PersonalData | None = None
    nik: NikCheck | None = None
    problems: list[str] = []
    if 1 not in groups:
        problems.append("DG1 was not read")
    else:
        try:
            personal = decode_dg1(groups[1])
        except LdsFormatError as exc:
            problems.append(str(exc))
    if personal is not None:
        nik = nik_check(personal)
        problems.extend(f"NIK: {p}" for p in nik.problems)
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
        agrees = "DG1 decoded, NIK agrees with sex and date of birth"
        checks.add("printed-data", Status.PASS, agrees + face_text)
    return personal, nik, face


#: The data groups that let the chip prove itself (DG14: Chip Authentication, DG15: Active Authentication).
_CHIP_GROUPS = frozenset({14, 15})


def _chip_checks(
    session: AccessSession,
    groups: Mapping[int, bytes],
    covered: set[int],
    checks: _Checks,
    random_bytes: Callable[[int], bytes],
    ephemeral: EphemeralKey | None,
    early_ca: tuple[Check, CaResult] | None = None,
) -> tuple[CaResult | None, AaResult | None]:
    # Only EF.SOD decides whether the card must prove its chip: a DG14 / DG15 it does not list is
    # unsigned and ignored, one it lists must be present and its protocol must pass.
    protocol = session.protocol
    chip: CaResult | None = None
    dg14 = None
    if 14 not in covered:
        checks.add(CHIP_AUTHENTICATION, Status.NOT_SUPPORTED, "EF.SOD covers no DG14")
    elif 14 not in groups:
        checks.add(CHIP_AUTHENTICATION, Status.FAIL, "EF.SOD covers DG14 but the card did not give it")
    else:
        dg14, unusable = decode_dg14(groups[14])
        if dg14 is None:
            checks.add(CHIP_AUTHENTICATION, Status.FAIL, unusable or "DG14 is not usable")
        elif early_ca is not None:
            check, chip = early_ca  # already run to complete Terminal Authentication
            checks.add(check.name, check.status, check.reason)
        else:
            # After TA the chip accepts only the key TA announced (TR-03110-2 3.4).
            key_source = ephemeral.key_source if ephemeral is not None else default_key_source
            check, chip = run_chip_authentication(protocol, dg14, key_source=key_source)
            checks.add(check.name, check.status, check.reason)
    active: AaResult | None = None
    if 15 not in covered:
        checks.add(ACTIVE_AUTHENTICATION, Status.NOT_SUPPORTED, "EF.SOD covers no DG15")
    elif 15 not in groups:
        checks.add(ACTIVE_AUTHENTICATION, Status.FAIL, "EF.SOD covers DG15 but the card did not give it")
    elif protocol.secure_messaging is None:
        checks.add(ACTIVE_AUTHENTICATION, Status.FAIL,
                   "not run: secure messaging ended when Chip Authentication failed")
    else:
        check, active = run_active_authentication(protocol, groups[15], dg14, random_bytes=random_bytes)
        checks.add(check.name, check.status, check.reason)
    return chip, active


__all__ = [
    "CHECK_NAMES",
    "NikCheck",
    "Terminal",
    "VerificationReport",
    "Verdict",
    "nik_check",
    "verdict_of",
    "verify_card",
]
