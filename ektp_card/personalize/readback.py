"""Read a personalised card back as a clerk would, before the desk hands it out.

Plain SELECT MF with its FCP (the card's life-cycle status must say operational: locked), PACE with
the CAN, every data group a CAN holder may read (DG3 must be refused: it needs Terminal
Authentication), the content against what was written, Passive Authentication against the issuer's
trust store (:func:`ektp_card.verify.passive_authentication`), Chip Authentication with DG14's key
and Active Authentication with DG15's. Every check is reported with its reason; the card passes only
when none failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ektp_card.apdu.command import SHORT_MAX_LE, CommandApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SUCCESS, SW
from ektp_card.apdu.tlv import Tlv, parse_dict
from ektp_card.apdu.transport import Transport
from ektp_card.crypto.aa import AaResult
from ektp_card.crypto.ca import CaResult
from ektp_card.errors import (
    ApduError,
    CardFileNotFoundError,
    LdsFormatError,
    PaceError,
    SecureMessagingError,
    SecurityStatusNotSatisfiedError,
    TlvError,
)
from ektp_card.lds.ektp import DATA_GROUP_TAGS, EKTP_APPLICATION, Com
from ektp_card.lds.sod import parse_sod
from ektp_card.pki.certs import EKTP_DOCUMENT_TYPE
from ektp_card.pki.trust import TrustStore
from ektp_card.session.card import CardSession, Credentials
from ektp_card.verify.chip import (
    CHIP_AUTHENTICATION,
    decode_dg14,
    run_active_authentication,
    run_chip_authentication,
)
from ektp_card.verify.passive import Check, PassiveAuthResult, Policy, Status, passive_authentication

#: ISO/IEC 7816-4 section 7.4.10: operational, activated (05, or 07 with bit 2 set).
_OPERATIONAL = (0x05, 0x07)
#: Data groups a clerk reads with the CAN alone.
CLERK_DATA_GROUPS = (1, 2, 7, 14, 15)
CHECK_NAMES = (
    "life-cycle",
    "pace",
    "read",
    "dg3-protected",
    "content",
    "ef-com",
    "passive-authentication",
    "chip-authentication",
    "active-authentication",
)


@dataclass(frozen=True)
class ReadBack:
    """Every check in :data:`CHECK_NAMES` order, with what was read."""

    checks: tuple[Check, ...]
    data_groups: Mapping[int, bytes] = field(default_factory=dict, repr=False)
    passive: PassiveAuthResult | None = None
    chip: CaResult | None = None
    active: AaResult | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.status is Status.PASS for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status is not Status.PASS)

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def summary(self) -> str:
        """One line naming every check that did not pass, with its reason."""
        return "; ".join(f"{c.name}: {c.reason}" for c in self.failures) or "every check passed"


def life_cycle_status(transport: Transport) -> int | None:
    """The card's life-cycle status byte: DO 8A of the MF's FCP (plain SELECT); ``None`` if the
    card does not say."""
    protocol = ApduProtocol(transport)
    command = CommandApdu(0x00, 0xA4, 0x00, 0x04, b"\x3f\x00", le=SHORT_MAX_LE)
    try:
        # 6283 (deactivated) still comes with the FCP, which then tells the state.
        response = protocol.send(command, allow=SUCCESS | {SW.FILE_DEACTIVATED})
    except ApduError:
        return None
    if not response.data:
        return None
    try:
        fcp = parse_dict(Tlv.decode(response.data).value)
    except TlvError:
        return None
    value = fcp.get(0x8A)
    return value[0] if value is not None and len(value) == 1 else None


class _Report:
    def __init__(self) -> None:
        self.checks: list[Check] = []

    def result(self, name: str, reason: str | None, passed: str) -> bool:
        check = Check(name, Status.PASS, passed) if reason is None else Check(name, Status.FAIL, reason)
        self.checks.append(check)
        return reason is None

    def skip_rest(self, reason: str) -> None:
        done = {c.name for c in self.checks}
        self.checks.extend(Check(n, Status.SKIP, reason) for n in CHECK_NAMES if n not in done)


def read_back(
    transport: Transport,
    can: str,
    trust: TrustStore,
    *,
    policy: Policy | None = None,
    expected: Mapping[int, bytes] | None = None,
) -> ReadBack:
    """Run every check on the card in ``transport`` (see the module docstring). ``expected`` are the
    data groups as written (compared where a clerk can read them). Transport errors propagate; every
    card answer, right or wrong, becomes a check."""
    report = _Report()
    lcs = life_cycle_status(transport)
    status = "unknown" if lcs is None else f"{lcs:02X}"
    unlocked = f"the card is not locked (life-cycle status {status})"
    report.result("life-cycle", None if lcs in _OPERATIONAL else unlocked, "operational: locked")
    session = CardSession(transport)
    try:
        session.discover()
        access = session.authenticate(Credentials(can=can), (EKTP_APPLICATION,))
    except (ApduError, PaceError, SecureMessagingError, LdsFormatError) as exc:
        report.result("pace", f"PACE with the CAN failed: {exc}", "")
        report.skip_rest("no PACE session")
        return ReadBack(tuple(report.checks))
    cipher = access.cipher.value[0] if access.cipher else "no cipher"
    report.result("pace", None, f"PACE-{'/'.join(access.passwords)} with {cipher}")

    groups: dict[int, bytes] = {}
    files: dict[str, bytes] = {}
    try:
        if session.select_application((EKTP_APPLICATION,)) is None:
            raise LdsFormatError("the card has no e-KTP application")
        for name in ("EF.COM", "EF.SOD", *(f"DG{n}" for n in CLERK_DATA_GROUPS)):
            ref = EKTP_APPLICATION.file(name)
            if ref is not None:
                files[name] = session.read(ref)
    except (ApduError, SecureMessagingError, LdsFormatError) as exc:
        report.result("read", str(exc), "")
        report.skip_rest("the files could not be read")
        return ReadBack(tuple(report.checks))
    groups = {n: files[f"DG{n}"] for n in CLERK_DATA_GROUPS}
    report.result("read", None, f"EF.COM, EF.SOD and DG{', DG'.join(map(str, CLERK_DATA_GROUPS))}")

    dg3 = EKTP_APPLICATION.file("DG3")
    try:
        if dg3 is not None:
            session.read(dg3)
        report.result("dg3-protected", "DG3 (fingerprints) was readable with the CAN alone", "")
    except SecurityStatusNotSatisfiedError:
        report.result("dg3-protected", None, "DG3 refused without Terminal Authentication (6982)")
    except CardFileNotFoundError:
        # On-card comparison only: the fingerprints stay in the chip, no DG3 at all.
        report.result("dg3-protected", None, "no DG3: the chip compares fingerprints itself (6A82)")
    except (ApduError, SecureMessagingError) as exc:
        report.result("dg3-protected", f"DG3 answered other than 6982: {exc}", "")

    differs = sorted(n for n in groups if expected is not None and n in expected and expected[n] != groups[n])
    report.result(
        "content",
        f"DG{', DG'.join(map(str, differs))} differ from what was written" if differs else None,
        "as written" if expected is not None else "not compared (nothing given)",
    )
    com = _com_reason(files["EF.COM"], files["EF.SOD"])
    report.result("ef-com", com, "EF.COM lists every signed data group")

    passive = passive_authentication(files["EF.SOD"], groups, trust, policy, document_type=EKTP_DOCUMENT_TYPE)
    failed = "; ".join(f"{c.name}: {c.reason}" for c in passive.failures)
    signed = "EF.SOD signed by a trusted document signer, hashes match"
    report.result("passive-authentication", failed or None, signed)

    chip, active = _chip_and_active(session.protocol, groups, report)
    return ReadBack(tuple(report.checks), groups, passive, chip, active)


def _com_reason(com: bytes, sod: bytes) -> str | None:
    try:
        tags = Com.decode(com).tags
        numbers = sorted(n for n, _ in parse_sod(sod).security_object.hashes)
    except LdsFormatError as exc:
        return str(exc)
    expected = tuple(DATA_GROUP_TAGS.get(n, 0) for n in numbers)
    return None if tags == expected else "EF.COM and EF.SOD list different data groups"


def _chip_and_active(
    protocol: ApduProtocol, groups: Mapping[int, bytes], report: _Report
) -> tuple[CaResult | None, AaResult | None]:
    dg14, unusable = decode_dg14(groups[14])
    if dg14 is None:
        report.checks.append(Check(CHIP_AUTHENTICATION, Status.FAIL, unusable or ""))
        report.skip_rest("DG14 is not usable")
        return None, None
    check, chip = run_chip_authentication(protocol, dg14)
    report.checks.append(check)
    if not chip.passed:
        report.skip_rest("Chip Authentication failed")
        return chip, None
    check, active = run_active_authentication(protocol, groups[15], dg14)
    report.checks.append(check)
    return chip, active


__all__ = ["CHECK_NAMES", "ReadBack", "life_cycle_status", "read_back"]
