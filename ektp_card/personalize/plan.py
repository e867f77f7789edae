"""The card build plan: every file that goes on one card, checked before the card is touched.

A plan comes from a validated :class:`~ektp_card.lds.record.CitizenRecord`
(:func:`plan_from_record`) or from data groups built elsewhere (:func:`plan_from_data_groups`, which
decodes and checks them the same way). It fixes the files of the e-KTP profile
(:data:`ektp_card.lds.ektp.FILES`: identifiers, short EF identifiers, read conditions), their content
where the desk knows it (EF.CardAccess, EF.DIR, EF.COM, EF.CVCA, DG1, DG2, DG3, DG7), the algorithms of
the keys the card will generate (DG14, DG15) and of EF.SOD, the CAN, and the CVCA certificate that
becomes the chip's Terminal Authentication trust point (without one no terminal ever reads DG3).

The CAN is six random digits from the operating system's generator, drawn again in the rare case that
they appear in the NIK or the date of birth: both are public, and nothing about the card's access key
may be guessed from them.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from asn1crypto import core  # type: ignore[import-untyped]

from ektp_card.apdu.tlv import Tlv, parse_one
from ektp_card.crypto.aa import PLAIN_ECDSA_OIDS, SIGNATURE_HASHES
from ektp_card.crypto.ca import CA_ALGORITHMS
from ektp_card.crypto.pace import PACE_ALGORITHMS, MappingType
from ektp_card.ec import STANDARDIZED_CURVES, Curve
from ektp_card.errors import (
    IssuerMaterialError,
    LdsFormatError,
    PersonalisationError,
    PkiError,
    PlanError,
    RecordError,
    TlvError,
)
from ektp_card.lds.card_access import CardAccess, OtherSecurityInfo, PaceInfo
from ektp_card.lds.compact import (
    DEFAULT_TRIES,
    ID_ON_CARD_COMPARISON,
    REFERENCE_FID,
    BiometricReference,
    encode_reference_file,
    on_card_comparison_info,
)
from ektp_card.lds.conditions import AccessCondition
from ektp_card.lds.dg14 import (
    ActiveAuthenticationInfo,
    ChipAuthenticationInfo,
    ChipAuthenticationPublicKeyInfo,
    Dg14,
    Dg14Info,
)
from ektp_card.lds.dg15 import Dg15
from ektp_card.lds.ektp import (
    CAN_LENGTH,
    DATA_GROUP_TAGS,
    FILES,
    OID_CA_ECDH_AES_128,
    OID_ECDSA_PLAIN_SHA256,
    OID_PACE_ECDH_GM_AES_128,
    OID_TA,
    PACE_PARAMETER_ID,
    PERSO,
    FileSpec,
    com_for,
    decode_dg1,
    decode_dg2,
    decode_dg3,
    decode_dg7,
    encode_ef_dir,
    record_data_groups,
)
from ektp_card.lds.public_key import EcPublicKey, cryptography_curve
from ektp_card.lds.record import CitizenRecord, PersonalData
from ektp_card.pki.cvc import CvCertificate, Role
from ektp_card.pki.signer import HASH_NAMES, HashName
from ektp_card.verify.matcher import DEFAULT_MIN_PAIRED, DEFAULT_THRESHOLD

#: The data groups the desk writes from the record; DG14 and DG15 come from keys made on the card.
RECORD_DATA_GROUPS = (1, 2, 3, 7)
CARD_DATA_GROUPS = (14, 15)
#: Every data group EF.SOD covers.
SIGNED_DATA_GROUPS = (*RECORD_DATA_GROUPS, *CARD_DATA_GROUPS)
#: Version of the TerminalAuthenticationInfo in DG14 (BSI TR-03110-3 section A.1.1.3).
TA_VERSION = 1
#: EF.BIOREF's largest content: two fingers of the most compact minutiae, with their templates.
BIOREF_MAX = 512


class Biometrics(Enum):
    """Where the holder's fingerprints go (docs/on-card-comparison.md).

    ``ON_CARD``, the e-KTP default: only into EF.BIOREF, compared inside the chip, never returned by
    any command; the card has no DG3. ``DG3``: only into DG3, read by terminals with the read-dg3 right
    and compared outside the chip (how eMRTDs do it). ``BOTH``: both, for readers of either kind.
    """

    DG3 = "dg3"
    ON_CARD = "on-card"
    BOTH = "both"

    @property
    def dg3(self) -> bool:
        return self is not Biometrics.ON_CARD

    @property
    def on_card(self) -> bool:
        return self is not Biometrics.DG3


@dataclass(frozen=True)
class ComparisonSettings:
    """What EF.BIOREF fixes at personalisation: the matcher's threshold (a score 0..100), the fewest
    paired minutiae, and the tries before the reference is blocked."""

    threshold: int = round(DEFAULT_THRESHOLD)
    min_paired: int = DEFAULT_MIN_PAIRED
    tries: int = DEFAULT_TRIES

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 100 or not 0 <= self.min_paired <= 64 or not 1 <= self.tries <= 15:
            raise PlanError("on-card comparison needs a threshold of 0..100, 0..64 paired minutiae and "
                            "1..15 tries")


class _TerminalAuthenticationInfo(core.Sequence):  # type: ignore[misc]
    _fields = [("protocol", core.ObjectIdentifier), ("version", core.Integer)]


@dataclass(frozen=True)
class Algorithms:
    """What the card and EF.SOD use; the defaults are the e-KTP profile's (docs/card-profile.md).

    Curves are given by standardized domain parameter ID (ICAO Doc 9303-11 section 9.5.1: 12
    secp256r1, 13 brainpoolP256r1, ...).
    """

    pace_protocol: str = OID_PACE_ECDH_GM_AES_128
    pace_parameter_id: int = PACE_PARAMETER_ID
    ca_protocol: str = OID_CA_ECDH_AES_128
    ca_parameter_id: int = PACE_PARAMETER_ID
    aa_signature: str = OID_ECDSA_PLAIN_SHA256
    aa_parameter_id: int = PACE_PARAMETER_ID
    sod_hash: HashName = "sha256"

    def __post_init__(self) -> None:
        problems = []
        try:
            if not PaceInfo(self.pace_protocol, 2, self.pace_parameter_id).supported:
                problems.append(f"PACE {self.pace_protocol} with parameters {self.pace_parameter_id}")
        except KeyError:
            problems.append(f"PACE protocol {self.pace_protocol}")
        else:
            # PACE-CAM proves the Chip Authentication key inside PACE: the key must be on the PACE curve.
            if self.cam and self.ca_parameter_id != self.pace_parameter_id:
                problems.append("PACE-CAM with a Chip Authentication key on another curve than PACE's")
        ca = CA_ALGORITHMS.get(self.ca_protocol)
        if ca is None or not ca.supported or self.ca_parameter_id not in STANDARDIZED_CURVES:
            problems.append(f"Chip Authentication {self.ca_protocol} with parameters {self.ca_parameter_id}")
        curve = STANDARDIZED_CURVES.get(self.aa_parameter_id)
        if (
            self.aa_signature not in PLAIN_ECDSA_OIDS.values()
            or curve is None
            or cryptography_curve(curve) is None
        ):
            problems.append(
                f"Active Authentication {self.aa_signature} with parameters {self.aa_parameter_id}"
            )
        if self.sod_hash not in HASH_NAMES:
            problems.append(f"EF.SOD hash {self.sod_hash}")
        if problems:
            raise PlanError(f"unsupported algorithms: {'; '.join(problems)}")

    @property
    def ca_curve(self) -> Curve:
        return STANDARDIZED_CURVES[self.ca_parameter_id]

    @property
    def aa_curve(self) -> Curve:
        return STANDARDIZED_CURVES[self.aa_parameter_id]

    @property
    def aa_hash(self) -> str:
        return SIGNATURE_HASHES[self.aa_signature]

    def card_access(self) -> bytes:
        """EF.CardAccess: the one PACEInfo."""
        return CardAccess((PaceInfo(self.pace_protocol, 2, self.pace_parameter_id),)).encode()

    @property
    def cam(self) -> bool:
        """Whether PACE runs with Chip Authentication Mapping (the card then has EF.CardSecurity)."""
        return PACE_ALGORITHMS[self.pace_protocol].mapping is MappingType.CAM

    def dg14(self, ca_point: bytes, *, on_card_comparison: bool = False) -> bytes:
        """DG14 for the chip's Chip Authentication public key: ChipAuthenticationInfo (version 1),
        ChipAuthenticationPublicKeyInfo (explicit domain parameters, BSI TR-03110-3 A.2.1.2),
        TerminalAuthenticationInfo (version 1) and ActiveAuthenticationInfo; with
        ``on_card_comparison`` the OnCardComparisonInfo that tells readers the chip compares
        fingerprints itself (signed with DG14 by EF.SOD, so it cannot be stripped unnoticed)."""
        return Dg14.of(self._chip_infos(ca_point, on_card_comparison)).encode()

    def card_security_infos(self, ca_point: bytes, *, on_card_comparison: bool = False) -> Dg14:
        """The SecurityInfos of EF.CardSecurity (ICAO Doc 9303-10 section 3.11): EF.CardAccess's PACEInfo
        and DG14's infos, among them the Chip Authentication key PACE-CAM proves."""
        pace = PaceInfo(self.pace_protocol, 2, self.pace_parameter_id)
        return Dg14.of((pace, *self._chip_infos(ca_point, on_card_comparison)))

    def _chip_infos(self, ca_point: bytes, on_card_comparison: bool) -> list[Dg14Info]:
        key = _point(self.ca_curve, ca_point, "Chip Authentication")
        ta = _TerminalAuthenticationInfo({"protocol": OID_TA, "version": TA_VERSION}).dump()
        infos: list[Dg14Info] = [
            ChipAuthenticationInfo(self.ca_protocol, 1),
            ChipAuthenticationPublicKeyInfo.of(key),
            OtherSecurityInfo(OID_TA, bytes(ta)),
            ActiveAuthenticationInfo(self.aa_signature),
        ]
        if on_card_comparison:
            infos.append(OtherSecurityInfo(ID_ON_CARD_COMPARISON, on_card_comparison_info()))
        return infos

    def dg15(self, aa_point: bytes) -> bytes:
        """DG15: the Active Authentication public key as a SubjectPublicKeyInfo."""
        return Dg15.of(_point(self.aa_curve, aa_point, "Active Authentication")).encode()


def _point(curve: Curve, point: bytes, what: str) -> EcPublicKey:
    try:
        return EcPublicKey(curve, point)
    except ValueError:
        raise PersonalisationError(f"the card returned an invalid {what} public key") from None


@dataclass(frozen=True)
class PlannedFile:
    """One file of the plan. ``content`` ``None``: made during personalisation (DG14, DG15, EF.SOD,
    EF.CardSecurity).
    Every file is written under ``PERSO`` and never after the lock."""

    name: str
    fid: int
    sfi: int | None
    in_mf: bool
    read: AccessCondition
    max_size: int
    content: bytes | None = field(default=None, repr=False)
    data_group: int | None = None

    @classmethod
    def of(cls, spec: FileSpec, content: bytes | None = None) -> PlannedFile:
        if content is not None and len(content) > spec.max_size:
            raise PlanError(
                f"{spec.name} has {len(content)} bytes; the card profile allows {spec.max_size}"
            )
        return cls(
            spec.name, spec.fid, spec.sfi, spec.in_mf, spec.read, spec.max_size, content, spec.data_group
        )

    @property
    def update(self) -> AccessCondition:
        return PERSO

    @property
    def admin(self) -> AccessCondition:
        return PERSO


@dataclass(frozen=True, repr=False)
class CardPlan:
    """Everything one card gets, in the order it is written. ``can`` is the PACE password the desk
    prints on the card; ``repr`` never shows it."""

    files: tuple[PlannedFile, ...]
    can: str
    algorithms: Algorithms = Algorithms()
    nik: str | None = None
    synthetic: bool = False
    #: The encoded CVCA certificate PUT DATA makes the chip's trust point (``None``: no Terminal
    #: Authentication, DG3 unreadable to everyone).
    trust_point: bytes | None = field(default=None, repr=False)
    biometrics: Biometrics = Biometrics.ON_CARD

    @property
    def on_card_comparison(self) -> bool:
        """Whether the card gets EF.BIOREF (and DG14 says so)."""
        return any(f.fid == REFERENCE_FID and not f.in_mf for f in self.files)

    def __repr__(self) -> str:
        names = ", ".join(f.name for f in self.files)
        return f"CardPlan(nik={self.nik!r}, files=[{names}])"

    def file(self, name: str) -> PlannedFile:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def mf_files(self) -> tuple[PlannedFile, ...]:
        return tuple(f for f in self.files if f.in_mf)

    @property
    def application_files(self) -> tuple[PlannedFile, ...]:
        return tuple(f for f in self.files if not f.in_mf)

    @property
    def data_groups(self) -> Mapping[int, bytes]:
        """The data groups the desk writes as they are (DG1, DG2, DG3, DG7)."""
        groups = {f.data_group: f.content for f in self.files if f.data_group is not None and f.content}
        return MappingProxyType(groups)


# --- the CAN ------------------------------------------------------------------------------------------


def _public_digits(personal: PersonalData | None) -> tuple[str, ...]:
    if personal is None:
        return ()
    born = personal.date_of_birth
    return (
        personal.nik,
        born.strftime("%d%m%Y"),
        born.strftime("%Y%m%d"),
        born.strftime("%d%m%y"),
        born.strftime("%y%m%d"),
    )


#: The shortest CAN the audit accepts: six digits, as this profile prints them.
MIN_CAN_LENGTH = 6
#: Date of birth formats a CAN could be made from (day, month, year in each common order).
BIRTH_FORMATS = ("%d%m%y", "%y%m%d", "%m%d%y", "%d%m%Y", "%Y%m%d", "%m%d%Y")


def can_weaknesses(can: str, personal: PersonalData) -> list[str]:
    """Why ``can`` is guessable from public data, in words that never repeat it or its source."""
    out = []
    if len(can) < MIN_CAN_LENGTH:
        out.append(f"the CAN has {len(can)} characters, fewer than {MIN_CAN_LENGTH}")
    nik = personal.nik
    if can in nik:
        out.append("the CAN is part of the NIK")
    elif can in nik[::-1]:
        out.append("the CAN is part of the NIK reversed")
    born = [personal.date_of_birth.strftime(f) for f in BIRTH_FORMATS]
    if any(can in text or text in can for text in born):
        out.append("the CAN is made from the date of birth")
    if len(set(can)) == 1:
        out.append("the CAN repeats one character")
    elif can.isdigit() and len(can) > 2:
        steps = {(int(b) - int(a)) % 10 for a, b in zip(can, can[1:], strict=False)}
        if steps in ({1}, {9}):
            out.append("the CAN is a run of consecutive digits")
    return out


def new_can(avoid: Iterable[str] = (), personal: PersonalData | None = None) -> str:
    """Six random digits (the operating system's generator) that do not appear in any of ``avoid`` and,
    given the holder's ``personal`` data, have none of the :func:`can_weaknesses` an audit looks for."""
    public = tuple(avoid)
    while True:
        can = "".join(secrets.choice("0123456789") for _ in range(CAN_LENGTH))
        if any(can in text for text in public):
            continue
        if personal is not None and can_weaknesses(can, personal):
            continue
        return can


def _check_can(can: str, public: Sequence[str]) -> None:
    if len(can) != CAN_LENGTH or not can.isascii() or not can.isdigit():
        raise PlanError(f"a CAN is {CAN_LENGTH} digits")
    if any(can in text for text in public):
        # The message does not repeat the CAN, nor say which public value holds it.
        raise PlanError("the CAN appears in the NIK or the date of birth; use a random one")


# --- the trust point ------------------------------------------------------------------------------------


def check_trust_point(cvca: bytes | CvCertificate) -> CvCertificate:
    """``cvca`` decoded and checked as the chip checks a trust point: a CVCA certificate with domain
    parameters whose self-signature (when self-signed) verifies. :class:`IssuerMaterialError`."""
    try:
        cert = CvCertificate.decode(cvca if isinstance(cvca, bytes) else cvca.encode())
        if cert.role is not Role.CVCA:
            raise IssuerMaterialError(f"{cert.chr} is a {cert.role.label} certificate, not a CVCA's")
        if cert.public_key.domain is None:
            raise IssuerMaterialError(f"the CVCA certificate {cert.chr} has no domain parameters")
        if cert.self_signed and not cert.verify_signature(cert.public_key):
            raise IssuerMaterialError(f"the self-signature of CVCA certificate {cert.chr} does not verify")
    except (LdsFormatError, PkiError, ValueError) as exc:
        raise IssuerMaterialError(f"not a usable CVCA certificate: {exc}") from None
    return cert


# --- building plans -------------------------------------------------------------------------------------


def _decoded(number: int, data: bytes) -> PersonalData | None:
    """Check one data group's outer tag and content; DG1's printed fields for the record rules."""
    try:
        tlv, end = parse_one(bytes(data))
        if tlv.tag != DATA_GROUP_TAGS[number] or end != len(data):
            raise LdsFormatError(f"not one data object with tag {DATA_GROUP_TAGS[number]:X}")
        if number == 1:
            return decode_dg1(data)
        if number == 2 and not decode_dg2(data):
            raise LdsFormatError("no facial image")
        if number == 3 and len(decode_dg3(data)) != 2:
            raise LdsFormatError("not two minutiae records")
        if number == 7:
            decode_dg7(data)
    except (LdsFormatError, TlvError) as exc:
        raise PlanError(f"DG{number} is not usable: {exc}") from None
    return None


def plan_from_data_groups(
    data_groups: Mapping[int, bytes],
    *,
    can: str | None = None,
    algorithms: Algorithms | None = None,
    cvca: Sequence[str] = (),
    today: dt.date | None = None,
    cvca_certificate: bytes | CvCertificate | None = None,
    biometrics: Biometrics = Biometrics.ON_CARD,
    comparison: ComparisonSettings | None = None,
) -> CardPlan:
    """A plan for data groups 1, 2, 3 and 7 built elsewhere; each is decoded and checked as the card
    profile says (DG1's printed fields against the record rules), and fits its file.

    ``cvca`` names the CVCA references (up to two, e.g. ``IDCVCA00001``) EF.CVCA lists for Terminal
    Authentication; without them the card has no EF.CVCA. ``cvca_certificate`` is the CVCA
    certificate the chip gets as its trust point (:func:`check_trust_point`); EF.CVCA then names its
    holder reference, and references given in ``cvca`` too must be exactly that one.
    :class:`PlanError` (:class:`IssuerMaterialError` for the CVCA certificate) or :class:`RecordError`
    (with every violation of DG1) on anything wrong.

    ``biometrics`` says where DG3's fingerprints go (:class:`Biometrics`; on-card comparison by
    default), ``comparison`` what EF.BIOREF fixes (default :class:`ComparisonSettings`).
    """
    if set(data_groups) != set(RECORD_DATA_GROUPS):
        given = ", ".join(f"DG{n}" for n in sorted(data_groups)) or "none"
        raise PlanError(f"the desk writes DG1, DG2, DG3 and DG7; given: {given}")
    personal = _decoded(1, data_groups[1])
    for number in RECORD_DATA_GROUPS[1:]:
        _decoded(number, data_groups[number])
    violations = personal.violations(today=today) if personal is not None else []
    if violations:
        raise RecordError(violations)
    if len(cvca) > 2 or not all(ref.isascii() and ref.isprintable() and 8 <= len(ref) <= 16 for ref in cvca):
        raise PlanError("EF.CVCA lists one or two CVCA references of 8 to 16 characters")
    trust_point = None
    if cvca_certificate is not None:
        cert = check_trust_point(cvca_certificate)
        # The chip rewrites EF.CVCA from its trust point, so other references would not survive.
        if cvca and tuple(cvca) != (cert.chr,):
            raise PlanError(
                f"EF.CVCA references {', '.join(cvca)} disagree with the CVCA certificate {cert.chr}"
            )
        cvca = (cert.chr,)
        trust_point = cert.encode()
    public = _public_digits(personal)
    if can is None:
        can = new_can(public, personal)
    else:
        _check_can(can, public)
    chosen = algorithms or Algorithms()
    by_name = {spec.name: spec for spec in FILES}
    signed = [n for n in SIGNED_DATA_GROUPS if n != 3 or biometrics.dg3]
    contents: dict[str, bytes | None] = {
        "EF.CardAccess": chosen.card_access(),
        "EF.DIR": encode_ef_dir(),
        "EF.COM": com_for(dict.fromkeys(signed, b"")).encode(),
    }
    if chosen.cam:
        contents["EF.CardSecurity"] = None  # signed once the card has made its Chip Authentication key
    if cvca:
        contents["EF.CVCA"] = b"".join(Tlv(0x42, ref.encode("ascii")).encode() for ref in cvca)
    for number in RECORD_DATA_GROUPS:
        if number in signed:
            contents[f"DG{number}"] = bytes(data_groups[number])
    for name in ("DG14", "DG15", "EF.SOD"):
        contents[name] = None
    files = tuple(PlannedFile.of(by_name[name], content) for name, content in contents.items())
    if biometrics.on_card:
        files += (_reference_file(data_groups[3], comparison or ComparisonSettings()),)
    nik = personal.nik if personal is not None else None
    synthetic = personal.synthetic if personal is not None else False
    return CardPlan(files, can, chosen, nik, synthetic, trust_point, biometrics)


def _reference_file(dg3: bytes, settings: ComparisonSettings) -> PlannedFile:
    """EF.BIOREF from DG3's fingers: read by no one, written under PERSO like every file."""
    try:
        refs = [BiometricReference.from_record(i + 1, record, threshold=settings.threshold,
                                               min_paired=settings.min_paired, tries=settings.tries)
                for i, record in enumerate(decode_dg3(dg3))]
        content = encode_reference_file(refs)
    except LdsFormatError as exc:
        raise PlanError(f"the fingerprints do not make an on-card reference: {exc}") from None
    if len(content) > BIOREF_MAX:
        raise PlanError(f"EF.BIOREF has {len(content)} bytes; the card profile allows {BIOREF_MAX}")
    return PlannedFile("EF.BIOREF", REFERENCE_FID, None, False, AccessCondition.NEVER, BIOREF_MAX, content)


def plan_from_record(
    record: CitizenRecord,
    *,
    can: str | None = None,
    algorithms: Algorithms | None = None,
    cvca: Sequence[str] = (),
    today: dt.date | None = None,
    cvca_certificate: bytes | CvCertificate | None = None,
    biometrics: Biometrics = Biometrics.ON_CARD,
    comparison: ComparisonSettings | None = None,
) -> CardPlan:
    """The plan for ``record``: every record rule checked first (:class:`RecordError` listing every
    violation), then its data groups encoded and checked like :func:`plan_from_data_groups`."""
    record.check(today=today)
    return plan_from_data_groups(
        record_data_groups(record),
        can=can,
        algorithms=algorithms,
        cvca=cvca,
        today=today,
        cvca_certificate=cvca_certificate,
        biometrics=biometrics,
        comparison=comparison,
    )


__all__ = [
    "CARD_DATA_GROUPS",
    "RECORD_DATA_GROUPS",
    "SIGNED_DATA_GROUPS",
    "Algorithms",
    "Biometrics",
    "CardPlan",
    "ComparisonSettings",
    "PlannedFile",
    "check_trust_point",
    "new_can",
    "plan_from_data_groups",
    "plan_from_record",
]
