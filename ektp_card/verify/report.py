"""What a verification tells the clerk: the verdict, every check by name, the printed data and the face.

The verdict, most serious first: :attr:`Verdict.FORGED` (Passive Authentication or the printed data
failed: unknown or revoked signer, hash mismatch, printed data contradicting itself), :attr:`Verdict.CLONED`
(Chip or Active Authentication failed: the data is the issuer's, the chip is not the one it was written
to), :attr:`Verdict.REVOKED` (the card's EF.SOD is on a card revocation list although its signatures are
valid, e.g. reported lost), :attr:`Verdict.HOLDER_MISMATCH` (the captured fingerprint matches no DG3
template), else :attr:`Verdict.GENUINE`. Some checks are shown but decide nothing (:data:`INFORMATIONAL`):
what the card offers before access control, the read itself (what it could not give fails the check
that needed it), and whether this terminal could read the fingerprints (only the comparison decides).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from ektp_card.apdu.iso7816 import CardInfo
from ektp_card.crypto.aa import AaResult
from ektp_card.crypto.ca import CaResult
from ektp_card.errors import TerminalAuthenticationError
from ektp_card.lds.biometrics import FaceImage, ImageDataType
from ektp_card.lds.card_access import CardAccess
from ektp_card.lds.images import DisplayedSignature
from ektp_card.lds.nik import nik_violations
from ektp_card.lds.record import PersonalData
from ektp_card.pki.signer import Signer
from ektp_card.session.card import AccessResult
from ektp_card.session.document import OnCardComparison
from ektp_card.verify.passive import Check, PassiveAuthResult, Status

if TYPE_CHECKING:
    # Terminal Authentication, the matcher and the passport's MRZ are loaded by the runs that use them.
    from ektp_card.crypto.ta import TaResult
    from ektp_card.lds.emrtd import AdditionalDetails, MrzFields
    from ektp_card.pki.cvc import CvCertificate
    from ektp_card.verify.matcher import MatchResult


class Verdict(Enum):
    GENUINE = "genuine"
    FORGED = "forged"
    CLONED = "cloned"
    HOLDER_MISMATCH = "holder mismatch"
    REVOKED = "revoked"


class CheckName(StrEnum):
    """The checks of a verification, in the order they appear in a report."""

    PACE = "pace"
    BAC = "bac"
    CARD_ACCESS = "card-access"
    CARD_INFO = "card-info"
    READ = "read"
    PASSIVE_AUTHENTICATION = "passive-authentication"
    #: Against a card revocation list (present only when a list is given).
    REVOCATION = "revocation"
    PRINTED_DATA = "printed-data"
    CHIP_AUTHENTICATION = "chip-authentication"
    ACTIVE_AUTHENTICATION = "active-authentication"
    TERMINAL_AUTHENTICATION = "terminal-authentication"
    DG3 = "dg3"
    FINGERPRINT = "fingerprint"


#: Every check and the verdict its failure leads to.
CHECK_VERDICTS: Mapping[CheckName, Verdict] = {
    CheckName.PACE: Verdict.FORGED,
    CheckName.BAC: Verdict.FORGED,
    CheckName.CARD_ACCESS: Verdict.FORGED,
    CheckName.CARD_INFO: Verdict.FORGED,
    CheckName.READ: Verdict.FORGED,
    CheckName.PASSIVE_AUTHENTICATION: Verdict.FORGED,
    CheckName.REVOCATION: Verdict.REVOKED,
    CheckName.PRINTED_DATA: Verdict.FORGED,
    CheckName.CHIP_AUTHENTICATION: Verdict.CLONED,
    CheckName.ACTIVE_AUTHENTICATION: Verdict.CLONED,
    CheckName.TERMINAL_AUTHENTICATION: Verdict.HOLDER_MISMATCH,
    CheckName.DG3: Verdict.HOLDER_MISMATCH,
    CheckName.FINGERPRINT: Verdict.HOLDER_MISMATCH,
}
#: Checks whose failure is shown but does not change the verdict: what the card offers before PACE,
#: and whether this terminal could read the fingerprints (only the comparison itself decides).
INFORMATIONAL: frozenset[CheckName] = frozenset({
    CheckName.CARD_ACCESS, CheckName.CARD_INFO, CheckName.READ, CheckName.TERMINAL_AUTHENTICATION,
    CheckName.DG3,
})
_ORDER = (Verdict.FORGED, Verdict.CLONED, Verdict.REVOKED, Verdict.HOLDER_MISMATCH)

#: The CHAT right that opens DG3 in the e-KTP profile (docs/card-profile.md).
READ_DG3 = "read-dg3"


def check_name(name: str) -> CheckName:
    """``name`` as a :class:`CheckName`; :class:`ValueError` for a name no verification has."""
    try:
        return CheckName(name)
    except ValueError:
        raise ValueError(f"{name!r} is not a verification check") from None


def verdict_of(checks: tuple[Check, ...]) -> Verdict:
    """The most serious verdict any failed check leads to (see the module docstring);
    :class:`ValueError` for a check name no verification has."""
    failed = set()
    for c in checks:
        name = check_name(c.name)
        if c.status is Status.FAIL and name not in INFORMATIONAL:
            failed.add(CHECK_VERDICTS[name])
    return next((v for v in _ORDER if v in failed), Verdict.GENUINE)


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
        from ektp_card.pki.cvc import CvPublicKey, Role

        if not self.chain or self.chain[-1].role is not Role.TERMINAL:
            raise TerminalAuthenticationError("the terminal chain must end with a terminal certificate")
        leaf, key = self.chain[-1].public_key, self.signer.public_key
        if not isinstance(key, ec.EllipticCurvePublicKey) or (
            CvPublicKey.from_key(key, algorithm=leaf.algorithm).point != leaf.point
        ):
            raise TerminalAuthenticationError(f"the terminal key is not the key of {self.chain[-1].chr}")


@dataclass(frozen=True)
class NikCheck:
    """The NIK of DG1 against DG1's sex and date of birth (the NIK encodes both, lds/nik.py)."""

    nik: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def nik_check(personal: PersonalData) -> NikCheck:
    """Cross-check DG1's NIK with its sex and date of birth."""
    violations = nik_violations(personal.nik, sex=personal.sex, date_of_birth=personal.date_of_birth)
    return NikCheck(personal.nik, tuple(v.message for v in violations))


@dataclass(frozen=True, kw_only=True)
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
    #: DG7's displayed signatures (ICAO Doc 9303-10), when the card gave DG7.
    signatures: tuple[DisplayedSignature, ...] = field(default=(), repr=False)
    data_groups: Mapping[int, bytes] = field(default_factory=dict, repr=False, compare=False)
    #: Data groups EF.SOD lists that the card refused with this access (DG3 without TA).
    refused: tuple[int, ...] = ()
    passive: PassiveAuthResult | None = None
    chip: CaResult | None = None
    active: AaResult | None = None
    terminal: TaResult | None = None
    #: The best comparison of the captured fingerprint with DG3's templates.
    fingerprint: MatchResult | None = None
    #: Which comparison decided the fingerprint check: ``on-card`` (the chip compared it, VERIFY),
    #: ``dg3`` (this terminal compared DG3's templates), ``None`` (not compared).
    fingerprint_path: str | None = None
    #: The chip's answer to an on-card comparison (match or not, and the tries it has left).
    on_card: OnCardComparison | None = None

    @property
    def genuine(self) -> bool:
        return self.verdict is Verdict.GENUINE

    @property
    def holder_matched(self) -> bool | None:
        """Whether the captured fingerprint is the holder's, whichever comparison decided (the chip's
        or DG3's here); ``None`` when none was made."""
        if self.on_card is not None:
            return self.on_card.matched
        return None if self.fingerprint is None else self.fingerprint.matched

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status is Status.FAIL and c.name not in INFORMATIONAL)

    @property
    def reasons(self) -> tuple[str, ...]:
        """One line per failed check that decided the verdict."""
        return tuple(f"{c.name}: {c.reason}" for c in self.failures)

    @property
    def proved_by(self) -> tuple[str, ...]:
        """The mechanisms that proved the chip holds a key the issuer signed: ``CAM`` (PACE with Chip
        Authentication Mapping), ``CA`` (Chip Authentication), ``AA`` (Active Authentication)."""
        proved = []
        for c in self.checks:
            if c.status is not Status.PASS:
                continue
            if c.name == CheckName.CHIP_AUTHENTICATION:
                # verify.chip.CAM_PREFIX (that module imports this one)
                proved.append("CAM" if c.reason.startswith("PACE-CAM") else "CA")
            elif c.name == CheckName.ACTIVE_AUTHENTICATION:
                proved.append("AA")
        return tuple(proved)

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
                "protocol": self.access.protocol.value,
                "passwords": list(self.access.passwords),
                "cipher": None if self.access.cipher is None else self.access.cipher.name,
            },
            "extended_length": bool(self.card_info and self.card_info.extended_length),
            "printed": None if personal is None else _personal_json(personal),
            "nik": None if self.nik is None else {"ok": self.nik.ok, "problems": list(self.nik.problems)},
            "face": None if self.face is None else {
                "format": face_format(self.face), "width": self.face.width, "height": self.face.height,
                "bytes": len(self.face.image),
            },
            "signatures": [s.to_json() for s in self.signatures],
            "data_groups": sorted(self.data_groups),
            "refused_data_groups": list(self.refused),
            "chip_proved_by": list(self.proved_by),
            "passive_authentication": None if self.passive is None else self.passive.to_json(),
            "fingerprint": None if self.fingerprint is None else {
                "matched": self.fingerprint.matched, "score": round(self.fingerprint.score, 2),
                "threshold": self.fingerprint.threshold, "paired": self.fingerprint.paired,
            },
            "fingerprint_path": self.fingerprint_path,
            "on_card_comparison": None if self.on_card is None else {
                "matched": self.on_card.matched, "tries_left": self.on_card.tries_left,
                "blocked": self.on_card.blocked,
            },
        }


@dataclass(frozen=True, kw_only=True)
class PassportReport(VerificationReport):
    """A :class:`VerificationReport` whose printed data is DG1's MRZ, with DG11 and DG12 when the
    passport has them."""

    document: MrzFields | None = None
    #: DG11 (additional personal details) and DG12 (additional document details), decoded.
    additional: tuple[AdditionalDetails, ...] = ()
    #: Data groups read that this library shows no more of than their presence (DG5, DG6, DG13, ...),
    #: and those present but malformed (a note each; they decide nothing).
    other_groups: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["document"] = None if self.document is None else self.document.to_json()
        data["additional"] = [a.to_json() for a in self.additional]
        data["other_data_groups"] = list(self.other_groups)
        data["notes"] = list(self.notes)
        return data


def _personal_json(personal: PersonalData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in PersonalData.__dataclass_fields__:
        value = getattr(personal, name)
        out[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def face_format(face: FaceImage) -> str:
    """``jpeg2000`` or ``jpeg``: how the face image is encoded."""
    return "jpeg2000" if face.image_data_type is ImageDataType.JPEG2000 else "jpeg"


__all__ = [
    "CHECK_VERDICTS",
    "INFORMATIONAL",
    "READ_DG3",
    "CheckName",
    "NikCheck",
    "PassportReport",
    "Terminal",
    "VerificationReport",
    "Verdict",
    "check_name",
    "face_format",
    "nik_check",
    "verdict_of",
]
