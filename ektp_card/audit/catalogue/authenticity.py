"""Audit tests: authenticity and integrity.

Is the data what the issuer signed (PA-TAMPER, PA-TRUST, PRINT-CHIP)? Is the chip the one the data
was written to, rather than a copy (CLONE-COPY, CLONE-DOWNGRADE, AA-REPLAY)? Are the fingerprints
kept from a reader without Terminal Authentication (BIO-CONF)? Does the locked card refuse every
write and key command (LOCKED-WRITE), answer garbage with an error and stay usable (FUZZ-APDU), and
survive being torn from the field during personalisation (TEAR-PERSO)?

Every test opens its own sessions, so its evidence holds the exchanges that decided it. One full
verification (:func:`~ektp_card.verify.card.verify_card`) runs once per audit and is shared: it
reads every data group, which on a real card (the face image) is the slowest step.

Without ``options.destructive`` only read-type, unknown or refused commands go to the card: writes
carry the very bytes a file already holds, ERASE BINARY starts at the end of the file and DELETE FILE
names a reserved file identifier, so a card that wrongly accepts them is still not changed. Commands
that could alter or block a card (key generation, personalisation commands, PUT DATA, life-cycle
changes) are sent only with consent; each test's docstring says which part is which.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import secrets
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import TracebackType

from cryptography.hazmat.primitives.asymmetric import ec

from ektp_card.apdu.command import SHORT_MAX_LE, CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW, describe
from ektp_card.apdu.tlv import Tlv
from ektp_card.apdu.transport import Transport
from ektp_card.audit.engine import (
    AuditContext,
    CardTarget,
    Exchange,
    Finding,
    Recorder,
    RecordingTransport,
    Threat,
    audit_test,
)
from ektp_card.crypto.aa import (
    AaResult,
    ChipPublicKey,
    active_authenticate,
    order_length,
    signature_hash,
    verify_signature,
)
from ektp_card.crypto.ca import ID_CA, CaResult
from ektp_card.crypto.perso import (
    CAN_REFERENCE,
    CLA_PROPRIETARY,
    INS_ERASE,
    INS_GENERATE_KEY_PAIR,
    INS_INITIALIZE_UPDATE,
    INS_LOCK,
    INS_PUT_DATA,
    KEY_ACTIVE_AUTHENTICATION,
    KEY_CHIP_AUTHENTICATION,
    LOCK_P1P2,
)
from ektp_card.crypto.sm import SecureMessagingSession
from ektp_card.crypto.ta import EphemeralKey, terminal_authenticate
from ektp_card.errors import (
    ApduError,
    AuditError,
    CardFileNotFoundError,
    CardLockedError,
    CardRemovedError,
    EktpError,
    LdsFormatError,
    PersonalisationError,
    PkiError,
    SecureMessagingError,
    TransportError,
)
from ektp_card.lds.card_access import EF_CARD_ACCESS_FID, EF_CARD_ACCESS_SFI
from ektp_card.lds.conditions import AccessCondition
from ektp_card.lds.dg14 import Dg14
from ektp_card.lds.dg15 import Dg15
from ektp_card.lds.ektp import DATA_GROUP_TAGS, EKTP_APPLICATION, EKTP_DF_FID, Com, decode_dg1
from ektp_card.lds.nik import CITY_CODES, LIFETIME, NIK_LENGTH, PROVINCES, REGENCY_CODES, Nik, nik_violations
from ektp_card.lds.record import PersonalData
from ektp_card.lds.sod import Sod, parse_sod
from ektp_card.personalize import CardPlan, DocumentSigner, PersoSession, personalize
from ektp_card.personalize.protocol import fcp_template, oid_bytes
from ektp_card.pki.signer import digest
from ektp_card.pki.trust import TrustStore
from ektp_card.session.card import CardSession, Credentials
from ektp_card.verify.card import VerificationReport, verify_card
from ektp_card.verify.chip import (
    decode_dg14,
    run_active_authentication,
    run_chip_authentication,
)
from ektp_card.verify.passive import Status, passive_authentication

#: ``ctx.shared`` key of the audit run's one full verification.
VERIFICATION = "authenticity.verification"
#: Words that hand data out (ISO/IEC 7816-4 section 5.6: normal processing and its warnings).
_GIVES_DATA = (SW.OK, SW.END_OF_FILE)
#: Bytes of a file sent back to it by the same-bytes UPDATE BINARY of LOCKED-WRITE.
_SAME_BYTES = 16
#: id-CA-ECDH-AES-CBC-CMAC-128 and ecdsa-plain-SHA256: the key pairs a desk asks the chip for.
_CA_OID = f"{ID_CA}.2.2"
_AA_OID = "0.4.0.127.0.7.1.1.4.1.3"
#: brainpoolP256r1, standardized domain parameters 13 (BSI TR-03110-3 table 4).
_PARAMETER_ID = 13


class _Decided(Exception):
    """Ends a test early with its finding (an unreadable EF.SOD, say)."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.reason)
        self.finding = finding


def _catalogued(
    test_id: str, title: str, threat: Threat, *, destructive: bool = False, needs: tuple[str, ...] = ()
) -> Callable[[Callable[[AuditContext], Finding]], Callable[[AuditContext], Finding]]:
    """:func:`~ektp_card.audit.engine.audit_test`, with :class:`_Decided` turned into the finding."""

    def register(fn: Callable[[AuditContext], Finding]) -> Callable[[AuditContext], Finding]:
        @functools.wraps(fn)
        def run(ctx: AuditContext) -> Finding:
            try:
                return fn(ctx)
            except _Decided as decided:
                return decided.finding

        audit_test(test_id, title, threat, destructive=destructive, needs=needs)(run)
        return run

    return register


# --- helpers ------------------------------------------------------------------------------------


def _sw(response: bytes) -> int | None:
    return int.from_bytes(response[-2:], "big") if len(response) >= 2 else None


def _word(sw: int | None) -> str:
    return "no answer" if sw is None else f"{sw:04X}"


def _is_error(sw: int | None) -> bool:
    """An error word (ISO/IEC 7816-4 section 5.6: SW1 64 to 6F); not 9000, 61xx, or the 62xx and
    63xx warnings, which say the command was carried out."""
    return sw is not None and 0x64 <= sw >> 8 <= 0x6F


def _open(transport: Transport, can: str) -> CardSession:
    """PACE with the CAN, then the e-KTP application selected inside the secure messaging."""
    session = CardSession(transport)
    session.discover()
    session.authenticate(Credentials(can=can), (EKTP_APPLICATION,))
    if session.select_application((EKTP_APPLICATION,)) is None:
        raise CardFileNotFoundError(SW.FILE_NOT_FOUND, message="the card has no e-KTP application")
    return session


def _sm_open(session: CardSession) -> bool:
    sm = session.protocol.secure_messaging
    return sm is not None and not (isinstance(sm, SecureMessagingSession) and sm.closed)


class _Sessions:
    """PACE sessions of one test, one at a time: a new power-up whenever secure messaging broke down
    (a card may end it on a refusal)."""

    def __init__(self, ctx: AuditContext) -> None:
        self._ctx = ctx
        self._stack = ExitStack()
        self._session: CardSession | None = None
        self.transport: Transport | None = None
        self.opened = 0

    def __enter__(self) -> _Sessions:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def get(self) -> CardSession:
        if self._session is None or not _sm_open(self._session):
            self._stack.close()
            self._stack = ExitStack()
            self.transport = self._stack.enter_context(self._ctx.session())
            self._session = _open(self.transport, self._ctx.options.can)
            self.opened += 1
        return self._session


def _read(session: CardSession, name: str) -> tuple[bytes | None, str]:
    """A file of the e-KTP application, or ``None`` and the card's refusal."""
    ref = EKTP_APPLICATION.file(name)
    if ref is None:
        return None, f"{name} is not a file of the e-KTP profile"
    try:
        return session.read(ref), ""
    except ApduError as exc:
        return None, f"{exc.sw:04X} {describe(exc.sw)}"


def _sod(session: CardSession, recorder: Recorder, note: str) -> tuple[bytes, Sod]:
    recorder.note(note)
    data, why = _read(session, "EF.SOD")
    if data is None:
        raise _Decided(Finding.failed(f"EF.SOD cannot be read ({why}): nothing says what the issuer signed"))
    try:
        return data, parse_sod(data)
    except LdsFormatError as exc:
        raise _Decided(Finding.failed(f"EF.SOD is malformed: {exc}")) from None


def _signed_group(session: CardSession, sod: Sod, number: int) -> tuple[bytes | None, str]:
    """Data group ``number`` as read, if it matches its hash in EF.SOD; else ``None`` and why."""
    data, why = _read(session, f"DG{number}")
    if data is None:
        return None, f"EF.SOD lists DG{number} but the card does not give it ({why})"
    lso = sod.security_object
    try:
        matches = digest(lso.hash_algorithm, data) == lso.by_number.get(number)
    except PkiError as exc:
        return None, f"DG{number} cannot be hashed: {exc}"
    if not matches:
        return None, f"DG{number} does not match its hash in EF.SOD"
    return data, ""


def _listed(sod: Sod) -> tuple[int, ...]:
    return tuple(sorted(n for n, _ in sod.security_object.hashes))


def _groups(numbers: Iterable[int]) -> str:
    return ", ".join(f"DG{n}" for n in sorted(numbers)) or "none"


def verification(ctx: AuditContext) -> VerificationReport:
    """The audit run's one full verification, with the options' trust store and terminal (an empty
    trust store without one: the chain then fails, which only PA-TRUST judges)."""

    def run() -> VerificationReport:
        with ctx.session() as transport:
            ctx.recorder.note("full verification (verify_card), run once for the authenticity tests")
            return verify_card(
                transport, ctx.options.can, ctx.options.trust or TrustStore(()), terminal=ctx.options.terminal
            )

    report: VerificationReport = ctx.shared(VERIFICATION, run)
    return report


def _send(transport: Transport, recorder: Recorder, note: str, command: bytes) -> int | None:
    """One raw command; its status word (``None``: the transport gave no answer)."""
    recorder.note(note)
    return _sw(transport.transceive(command))


def _transmit(
    session: CardSession, recorder: Recorder, note: str, apdu: CommandApdu
) -> ResponseApdu | None:
    """``apdu`` inside the session's secure messaging; ``None`` when the card answered without it
    (a refusal that ends the session)."""
    recorder.note(note)
    try:
        return session.protocol.transmit(apdu)
    except SecureMessagingError:
        return None


# --- PA-TAMPER ----------------------------------------------------------------------------------

_INTEGRITY_CHECKS = ("sod-structure", "hash-algorithm", "data-group-hashes", "cms-signature")


@_catalogued("PA-TAMPER", "Data groups match EF.SOD and its signature", Threat.FORGERY)
def pa_tamper(ctx: AuditContext) -> Finding:
    """Every data group the card gives (read by the shared verification, with Terminal
    Authentication when a terminal is given) is hashed and compared with EF.SOD, read again here,
    and the SOD's signature is checked with the document signer certificate it carries (no trust
    store needed); one bit flipped in a copy of each data group shows the comparison detects a
    change. Pass: every hash and the signature verify, and every flip is detected."""
    report = verification(ctx)
    with ctx.session() as transport:
        session = _open(transport, ctx.options.can)
        _, sod = _sod(session, ctx.recorder, "READ BINARY EF.SOD: the hashes and the signature")
    groups = dict(report.data_groups)
    passive = passive_authentication(sod, groups, TrustStore(()))
    problems = [f"{c.name}: {c.reason}" for c in passive.checks
                if c.name in _INTEGRITY_CHECKS and c.status is Status.FAIL]
    lso = sod.security_object
    hashes = lso.by_number
    missing = sorted(set(hashes) - set(groups) - set(report.refused))
    if missing:
        problems.append(f"EF.SOD lists {_groups(missing)} but the card does not give it")
    figures: dict[str, float | int | str] = {
        "hash_algorithm": lso.hash_algorithm,
        "data_groups_compared": _groups(n for n in groups if n in hashes),
        "not_compared": _groups(report.refused) + (
            " (refused without Terminal Authentication)" if report.refused else ""),
    }
    if passive.document_signer is not None:
        figures["document_signer"] = passive.document_signer.subject.rfc4514_string()
    detected = flips = 0
    for number, data in sorted(groups.items()):
        if not data or number not in hashes:
            continue
        flips += 1
        at = len(data) // 2
        flipped = bytearray(data)
        flipped[at] ^= 0x01
        changed = digest(lso.hash_algorithm, bytes(flipped))
        if changed == hashes[number]:
            problems.append(f"flipping bit 0 of byte {at} of DG{number} goes unnoticed")
            continue
        detected += 1
        figures.setdefault(
            "bit_flip_example",
            f"DG{number} byte {at} bit 0 flipped: hash {changed[:4].hex()}... is not EF.SOD's "
            f"{hashes[number][:4].hex()}...",
        )
    figures["bit_flips_detected"] = f"{detected}/{flips}"
    if not flips:
        problems.append("no data group could be compared with EF.SOD")
    if problems:
        return Finding.failed("; ".join(problems), **figures)
    return Finding.passed(
        f"{figures['data_groups_compared']} match EF.SOD, whose signature verifies with the document signer "
        "certificate it carries; a one-bit change to any of them is detected", **figures,
    )


# --- PA-TRUST -----------------------------------------------------------------------------------

#: The Passive Authentication checks about the signer, and how a failure of each is named.
_TRUST_CHECKS = {
    "certificate-chain": "unknown signer",
    "key-usage": "signer certificate not for document signing",
    "validity": "signer not valid",
    "revocation": "revoked signer",
    "issuer-country": "country mismatch",
}


@_catalogued("PA-TRUST", "Document signer trusted, valid, not revoked", Threat.FORGERY, needs=("trust",))
def pa_trust(ctx: AuditContext) -> Finding:
    """Reads EF.SOD and checks its document signer against the reviewer's trust store: issued by a
    trusted CSCA, within its validity (at signing time and now), not revoked on a current CRL of that
    CSCA, for document signing, one country throughout. Pass: all hold; the reason names the
    problem otherwise (unknown, expired or revoked signer). Not applicable without a trust store."""
    trust = ctx.options.trust
    if trust is None:
        return Finding.not_applicable("no trust store given: which CSCAs to trust is the reviewer's choice")
    with ctx.session() as transport:
        session = _open(transport, ctx.options.can)
        _, sod = _sod(session, ctx.recorder, "READ BINARY EF.SOD: it carries the document signer")
    passive = passive_authentication(sod, {}, trust)
    figures: dict[str, float | int | str] = {"cscas_trusted": len(trust.cscas), "crls": len(trust.crls)}
    signer = passive.document_signer
    if signer is not None:
        figures["document_signer"] = signer.subject.rfc4514_string()
        figures["signer_serial"] = f"{signer.serial_number:X}"
        figures["signer_valid_until"] = signer.not_valid_after_utc.isoformat()
    if passive.csca is not None:
        figures["csca"] = passive.csca.subject.rfc4514_string()
    if passive.signing_time is not None:
        figures["signing_time"] = passive.signing_time.isoformat()
    if signer is None:
        return Finding.failed("unknown signer: EF.SOD carries no document signer certificate", **figures)
    problems: list[str] = []
    for check in passive.checks:
        label = _TRUST_CHECKS.get(check.name)
        if label is None or check.status is not Status.FAIL:
            continue
        if check.name == "validity" and signer.not_valid_after_utc < dt.datetime.now(dt.UTC):
            label = "expired signer"
        elif check.name == "revocation" and "revoked" not in check.reason:
            label = "revocation not checkable"
        problems.append(f"{label}: {check.reason}")
    if problems:
        return Finding.failed("; ".join(problems), **figures)
    return Finding.passed(
        f"the document signer was issued by trusted CSCA {figures.get('csca', '?')}, is valid, not revoked",
        **figures,
    )


# --- CLONE-COPY, CLONE-DOWNGRADE ------------------------------------------------------------------


@dataclass
class _Proofs:
    """What one session showed about the chip keys EF.SOD commits to."""

    listed: tuple[int, ...]
    #: Why a committed mechanism (14: Chip, 15: Active Authentication) could not even run.
    absent: dict[int, str] = field(default_factory=dict)
    ca: CaResult | None = None
    aa: AaResult | None = None
    com: str = ""

    @property
    def committed(self) -> tuple[int, ...]:
        return tuple(n for n in (14, 15) if n in self.listed)


_MECHANISM = {14: "Chip Authentication (DG14)", 15: "Active Authentication (DG15)"}


def _chip_proofs(ctx: AuditContext) -> _Proofs:
    """EF.SOD, DG14 and DG15 checked against it, Chip Authentication, then Active Authentication with
    a fresh challenge (in a new PACE session if a failed Chip Authentication ended the old one)."""
    with _Sessions(ctx) as sessions:
        session = sessions.get()
        _, sod = _sod(session, ctx.recorder, "READ BINARY EF.SOD: which chip keys the issuer signed")
        proofs = _Proofs(_listed(sod))
        com, _ = _read(session, "EF.COM")
        proofs.com = _com_text(com)
        dg14: Dg14 | None = None
        dg15: bytes | None = None
        if 14 in proofs.listed:
            raw14, why = _signed_group(session, sod, 14)
            dg14, unusable = decode_dg14(raw14) if raw14 is not None else (None, why)
            if dg14 is None:
                proofs.absent[14] = unusable or why
        if 15 in proofs.listed:
            dg15, why = _signed_group(session, sod, 15)
            if dg15 is None:
                proofs.absent[15] = why
        if dg14 is not None:
            ctx.recorder.note("Chip Authentication with DG14's key")
            check, proofs.ca = run_chip_authentication(session.protocol, dg14)
            if not proofs.ca.supported:
                proofs.absent[14] = check.reason
        if dg15 is not None:
            session = sessions.get()
            ctx.recorder.note("INTERNAL AUTHENTICATE with a fresh challenge (Active Authentication)")
            check, proofs.aa = run_active_authentication(
                session.protocol, dg15, dg14, random_bytes=secrets.token_bytes
            )
            if proofs.aa is None or not proofs.aa.supported:
                proofs.absent[15] = check.reason
    return proofs


def _com_text(com: bytes | None) -> str:
    if com is None:
        return "not readable"
    try:
        tags = Com.decode(com).tags
    except LdsFormatError:
        return "malformed"
    numbers = [n for n, tag in DATA_GROUP_TAGS.items() if tag in tags]
    return f"lists {_groups(numbers)} (unsigned: not relied on)"


def _proof_figures(proofs: _Proofs) -> dict[str, float | int | str]:
    figures: dict[str, float | int | str] = {
        "sod_commits_to": _groups(proofs.committed), "ef_com": proofs.com,
    }
    if proofs.ca is not None:
        figures["chip_authentication"] = "pass" if proofs.ca.passed else proofs.ca.reason
    if proofs.aa is not None:
        figures["active_authentication"] = "pass" if proofs.aa.passed else proofs.aa.reason
        figures["aa_challenge"] = proofs.aa.challenge.hex().upper()
    return figures


@_catalogued("CLONE-COPY", "The chip proves it holds its signed keys", Threat.COUNTERFEIT)
def clone_copy(ctx: AuditContext) -> Finding:
    """Reads EF.SOD, DG14 and DG15 (each checked against its hash), then runs Chip Authentication
    with DG14's key and Active Authentication with DG15's key over a fresh random challenge. A copy of
    the data on another chip lacks the private keys, which never leave the genuine chip. Pass: every
    chip key EF.SOD commits to is proven; a card whose EF.SOD commits to none fails (a copy of its data
    cannot be told from it)."""
    proofs = _chip_proofs(ctx)
    figures = _proof_figures(proofs)
    if not proofs.committed:
        return Finding.failed(
            "EF.SOD commits to no chip key (neither DG14 nor DG15): nothing tells this chip from a copy "
            "of its data", **figures)
    problems = [f"{_MECHANISM[n]}: {why}" for n, why in sorted(proofs.absent.items())]
    for number, result in ((14, proofs.ca), (15, proofs.aa)):
        if result is not None and result.supported and not result.passed:
            problems.append(f"{_MECHANISM[number]} failed: {result.reason}")
    if problems:
        return Finding.failed("the chip did not prove it holds its keys: " + "; ".join(problems), **figures)
    proven = " and ".join(_MECHANISM[n] for n in proofs.committed)
    return Finding.passed(f"the chip proved it holds the private keys EF.SOD commits to: {proven}", **figures)


@_catalogued("CLONE-DOWNGRADE", "Every chip protection EF.SOD commits to is offered", Threat.COUNTERFEIT)
def clone_downgrade(ctx: AuditContext) -> Finding:
    """Which anti-cloning protections the card must offer comes from EF.SOD alone, the only signed
    list (EF.COM and EF.CardAccess are unsigned and not relied on): DG14 listed means Chip
    Authentication must run and succeed, DG15 listed means Active Authentication must. Pass: each
    committed protection is offered and succeeds; a copy that leaves DG14/DG15 out or "does not
    support" the protocols fails. Not applicable when EF.SOD commits to neither."""
    proofs = _chip_proofs(ctx)
    figures = _proof_figures(proofs)
    if not proofs.committed:
        return Finding.not_applicable("EF.SOD commits to neither DG14 nor DG15", **figures)
    problems = [f"EF.SOD commits to {_MECHANISM[n]} but the card does not offer it: {why}"
                for n, why in sorted(proofs.absent.items())]
    for number, result in ((14, proofs.ca), (15, proofs.aa)):
        if result is not None and result.supported and not result.passed:
            problems.append(f"EF.SOD commits to {_MECHANISM[number]} but it fails: {result.reason}")
    if problems:
        return Finding.failed("; ".join(problems), **figures)
    offered = " and ".join(_MECHANISM[n] for n in proofs.committed)
    return Finding.passed(f"the card offers and passes every protection EF.SOD commits to: {offered}",
                          **figures)


# --- AA-REPLAY ------------------------------------------------------------------------------------


def _fixed(challenge: bytes) -> Callable[[int], bytes]:
    """A challenge source handing out ``challenge`` (drawn fresh by the caller)."""

    def source(length: int) -> bytes:
        return challenge[:length]

    return source


def _ecdsa_r(key: object, signature: bytes) -> bytes | None:
    """r of a plain ECDSA signature (r || s), to spot a reused nonce; ``None`` for RSA or other forms."""
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    length = order_length(key.curve)
    return signature[:length] if len(signature) == 2 * length else None


@dataclass(frozen=True)
class _AaKey:
    key: ChipPublicKey
    algorithm: str | None


def _aa_in_new_power_up(ctx: AuditContext, number: int, challenge: bytes) -> tuple[AaResult, _AaKey]:
    """PACE, EF.SOD, DG15 (and DG14 for the algorithm), then Active Authentication over
    ``challenge``: the same commands at every call, so a card whose random generator restarts at
    power-on draws the same ECDSA nonce each time."""
    with ctx.session() as transport:
        session = _open(transport, ctx.options.can)
        _, sod = _sod(session, ctx.recorder, "READ BINARY EF.SOD: is there an Active Authentication key")
        listed = _listed(sod)
        if 15 not in listed:
            raise _Decided(Finding.not_applicable("EF.SOD commits to no Active Authentication key (DG15)"))
        dg15, why = _signed_group(session, sod, 15)
        if dg15 is None:
            raise _Decided(Finding.failed(why))
        raw14, _ = _signed_group(session, sod, 14) if 14 in listed else (None, "")
        dg14, _ = decode_dg14(raw14) if raw14 is not None else (None, None)
        try:
            key = Dg15.decode(dg15).public_key.to_cryptography()
        except (LdsFormatError, ValueError) as exc:
            raise _Decided(Finding.failed(f"DG15 is not usable: {exc}")) from None
        info = dg14.active_authentication_info if dg14 is not None else None
        algorithm = info.signature_algorithm if info is not None else None
        ctx.recorder.note(f"INTERNAL AUTHENTICATE {number} with a fresh challenge, power-up {number}")
        result = active_authenticate(session.protocol, key, signature_algorithm=algorithm,
                                     random_bytes=_fixed(challenge))
    return result, _AaKey(key, algorithm)


@_catalogued("AA-REPLAY", "Active Authentication answers are fresh", Threat.COUNTERFEIT)
def aa_replay(ctx: AuditContext) -> Finding:
    """Runs Active Authentication in two power-ups with two different fresh random challenges.
    Pass: each signature verifies for its own challenge and not for the other, and the card never
    answers the same signature twice (the shared verification's is compared too) nor reuses an ECDSA
    nonce (which would give its private key away); a card replaying a recorded signature fails. Not
    applicable when EF.SOD lists no DG15."""
    first = secrets.token_bytes(8)
    second = secrets.token_bytes(8)
    while second == first:
        second = secrets.token_bytes(8)
    one, aa_key = _aa_in_new_power_up(ctx, 1, first)
    two, _ = _aa_in_new_power_up(ctx, 2, second)
    results = (one, two)
    key, algorithm = aa_key.key, aa_key.algorithm
    problems: list[str] = []
    figures: dict[str, float | int | str] = {}
    for number, result in enumerate(results, 1):
        figures[f"challenge_{number}"] = result.challenge.hex().upper()
        shown = result.signature[:8].hex().upper() + "..." if result.signature else "none"
        figures[f"signature_{number}"] = shown
        if not result.supported:
            return Finding.failed(f"Active Authentication cannot run: {result.reason}", **figures)
        if not result.passed:
            problems.append(f"signature {number} does not verify for its own challenge: {result.reason}")
    hash_name = None
    if algorithm is not None and isinstance(key, ec.EllipticCurvePublicKey):
        hash_name = signature_hash(algorithm)
    for a, b, label in ((one, two, "1 verifies for challenge 2"), (two, one, "2 verifies for challenge 1")):
        if a.signature and verify_signature(key, b.challenge, a.signature, hash_name=hash_name)[0] is None:
            problems.append(f"signature {label}")
    shared = ctx.cache.get(VERIFICATION)
    earlier = shared.active.signature if isinstance(shared, VerificationReport) and shared.active else b""
    seen = [s for s in (one.signature, two.signature, earlier) if s]
    figures["signatures_compared"] = len(seen)
    if len(set(seen)) < len(seen):
        problems.append("the card answered the same signature twice: a recorded answer, not a fresh one")
    r_values = [r for r in (_ecdsa_r(key, s) for s in set(seen)) if r is not None]
    if len(set(r_values)) < len(r_values):
        problems.append("two ECDSA signatures share their nonce (r): the private key follows from them")
    if problems:
        return Finding.failed("; ".join(problems), **figures)
    return Finding.passed(
        "each signature verifies for its own fresh challenge only, and no signature or ECDSA nonce repeats",
        **figures,
    )


# --- BIO-CONF -------------------------------------------------------------------------------------

_DG3_FID = b"\x01\x03"
_DG3_SFI = 0x03


def _dg3_attempts() -> tuple[tuple[str, CommandApdu, bool], ...]:
    """(what, command, whether a success would hand out DG3's content)."""
    by_sfi, le = 0x80 | _DG3_SFI, SHORT_MAX_LE
    offset_0, offset_16 = Tlv(0x54, b"\x00").encode(), Tlv(0x54, b"\x10").encode()
    path = EKTP_DF_FID.to_bytes(2, "big") + _DG3_FID
    return (
        ("READ BINARY DG3 by SFI", CommandApdu(0x00, 0xB0, by_sfi, 0x00, le=le), True),
        ("READ BINARY DG3 by SFI at offset 64", CommandApdu(0x00, 0xB0, by_sfi, 0x40, le=le), True),
        ("SELECT DG3 by FID", CommandApdu(0x00, 0xA4, 0x02, 0x0C, _DG3_FID), False),
        ("READ BINARY after SELECT DG3", CommandApdu(0x00, 0xB0, 0x00, 0x00, le=le), True),
        ("READ BINARY after SELECT DG3 at offset 256", CommandApdu(0x00, 0xB0, 0x01, 0x00, le=le), True),
        ("READ BINARY odd INS B1, DG3 by SFI", CommandApdu(0x00, 0xB1, 0, _DG3_SFI, offset_0, le=le), True),
        ("READ BINARY odd INS B1, DG3 by FID at offset 16",
         CommandApdu(0x00, 0xB1, _DG3_FID[0], _DG3_FID[1], offset_16, le=le), True),
        ("SELECT DG3 by path from the MF", CommandApdu(0x00, 0xA4, 0x08, 0x0C, path), False),
        ("READ BINARY after SELECT by path", CommandApdu(0x00, 0xB0, 0x00, 0x00, le=le), True),
    )


@_catalogued("BIO-CONF", "Fingerprints unreadable without Terminal Authentication", Threat.SKIMMING)
def bio_conf(ctx: AuditContext) -> Finding:
    """Tries to read DG3 (the fingerprints) without Terminal Authentication: in the clear, then after
    PACE with the CAN by short EF identifier, by file identifier and by path after SELECT, with the
    odd-INS READ BINARY (B1), and at several offsets. Pass: every attempt is refused without data.
    With a terminal (its CV certificates and key), DG3 is then tried after Terminal Authentication
    but before Chip Authentication, where it must still be refused (EAC2, BSI TR-03110-2: the
    terminal's rights take effect once Chip Authentication has succeeded), and read after both,
    showing the refusals come from the access rule (figures); without one that part is n/a. Not
    applicable when EF.SOD lists no DG3."""
    leaks: list[str] = []
    figures: dict[str, float | int | str] = {}
    with ctx.session() as transport:
        aid = EKTP_APPLICATION.aid
        select = bytes((0x00, 0xA4, 0x04, 0x0C, len(aid))) + aid
        _send(transport, ctx.recorder, "SELECT the e-KTP application in the clear", select)
        ctx.recorder.note("READ BINARY DG3 by SFI without PACE")
        answer = transport.transceive(bytes((0x00, 0xB0, 0x80 | _DG3_SFI, 0x00, 0x00)))
        sw = _sw(answer)
        figures["no PACE: READ BINARY DG3 by SFI"] = _word(sw)
        if not _is_error(sw) or len(answer) > 2:
            leaks.append(f"without PACE the card answered {_word(sw)} with {max(len(answer) - 2, 0)} bytes")
    with _Sessions(ctx) as sessions:
        session = sessions.get()
        _, sod = _sod(session, ctx.recorder, "READ BINARY EF.SOD: does the card hold fingerprints")
        if 3 not in _listed(sod):
            return Finding.not_applicable("EF.SOD lists no DG3: the card holds no fingerprints")
        for what, apdu, reads in _dg3_attempts():
            response = _transmit(sessions.get(), ctx.recorder, f"{what} after PACE, without TA", apdu)
            if response is None:
                figures[what] = "refused without secure messaging"
                continue
            figures[what] = _word(response.sw)
            if reads and (response.data or not _is_error(response.sw)):
                leaks.append(f"{what}: {response.sw:04X} with {len(response.data)} bytes")
    figures["after Terminal Authentication"] = _dg3_after_ta(ctx, sod, leaks)
    if leaks:
        reason = "DG3 is readable without Terminal Authentication: " + "; ".join(leaks)
        return Finding.failed(reason, **figures)
    return Finding.passed(
        "every attempt to read DG3 without Terminal Authentication was refused without data", **figures
    )


def _dg3_after_ta(ctx: AuditContext, sod: Sod, leaks: list[str]) -> str:
    """PACE -> DG14 -> Terminal Authentication -> (DG3 must be refused) -> Chip Authentication with
    TA's ephemeral key -> DG3 (BSI TR-03110-2 section 3.4); what came of it, for the figures. A DG3
    given before Chip Authentication goes into ``leaks``."""
    terminal = ctx.options.terminal
    if terminal is None:
        return "n/a: no terminal given"
    with ctx.session() as transport:
        session = _open(transport, ctx.options.can)
        pace = session.pace
        raw14, why = _signed_group(session, sod, 14)
        dg14, unusable = decode_dg14(raw14) if raw14 is not None else (None, why)
        if pace is None or dg14 is None:
            return f"not shown: no Chip Authentication key for the ephemeral key ({unusable or why})"
        try:
            ephemeral = EphemeralKey.generate(dg14.ca_parameters().curve)
            ctx.recorder.note("Terminal Authentication")
            ta = terminal_authenticate(session.protocol, terminal.chain, terminal.signer,
                                       id_picc=pace.id_picc, ephemeral=ephemeral.compressed)
        except EktpError as exc:
            return f"not shown: {exc}"
        if not ta.passed:
            return f"not shown: Terminal Authentication failed: {ta.reason}"
        ctx.recorder.note("READ BINARY DG3 after Terminal Authentication, before Chip Authentication")
        early, _ = _read(session, "DG3")
        if early is not None:
            leaks.append("DG3 is given after Terminal Authentication but before Chip Authentication")
        _, ca = run_chip_authentication(session.protocol, dg14, key_source=ephemeral.key_source)
        if not ca.passed:
            return f"not shown: Chip Authentication after TA failed: {ca.reason}"
        ctx.recorder.note("READ BINARY DG3 after Terminal and Chip Authentication")
        data, why = _signed_group(session, sod, 3)
        if data is None:
            return f"still refused after TA as {ta.terminal}: {why}"
        return f"readable after TA as {ta.terminal}: {len(data)} bytes, matching EF.SOD"


# --- PRINT-CHIP -----------------------------------------------------------------------------------

_PRINTED_FIELDS = tuple(name for name in PersonalData.__dataclass_fields__ if name != "synthetic")
_DATE_FORMATS = ("%d-%m-%Y", "%Y-%m-%d", "%Y%m%d", "%d/%m/%Y")


def _norm(text: str) -> str:
    return " ".join(text.upper().split())


def _printed_date(name: str, text: str) -> dt.date:
    for pattern in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text.strip(), pattern).date()  # noqa: DTZ007 - a date, no time
        except ValueError:
            continue
    raise AuditError(f"printed {name} {text!r} is not a date (DD-MM-YYYY as printed, or YYYY-MM-DD)")


def _printed_matches(personal: PersonalData, name: str, text: str) -> bool:
    value: object = getattr(personal, name)
    if name == "valid_until":
        if _norm(text) == LIFETIME:
            return value is None
        return value == _printed_date(name, text)
    if isinstance(value, dt.date):
        return value == _printed_date(name, text)
    return _norm(str(value)) == _norm(text)


def _printed_field(key: str) -> str:
    name = key.strip().lower().replace(" ", "_").replace("-", "_").replace("/", "_")
    if name not in _PRINTED_FIELDS:
        raise AuditError(f"unknown printed field {key!r}; the fields are: {', '.join(_PRINTED_FIELDS)}")
    return name


def _region_problems(personal: PersonalData) -> list[str]:
    """The NIK's region codes against DG1's province and kabupaten/kota (lds/nik.py)."""
    if len(personal.nik) != NIK_LENGTH or not personal.nik.isdigit():
        return []  # nik_violations reports it
    nik = Nik.parse(personal.nik)
    problems = []
    province = PROVINCES.get(nik.province)
    if province is not None and _norm(personal.province) != province:
        problems.append(f"DG1's province is not {province}, the province of the NIK's code {nik.province}")
    regency, place = int(nik.regency), _norm(personal.kabupaten_kota)
    if regency in CITY_CODES and place.startswith("KABUPATEN "):
        problems.append(f"the NIK's code {nik.regency} is a city (kota) but DG1 names a kabupaten")
    if regency in REGENCY_CODES and place.startswith("KOTA "):
        problems.append(f"the NIK's code {nik.regency} is a regency (kabupaten) but DG1 names a kota")
    return problems


@_catalogued("PRINT-CHIP", "Printed fields, chip and NIK agree", Threat.FORGERY)
def print_chip(ctx: AuditContext) -> Finding:
    """Reads DG1 and checks its NIK against its own fields: the province and regency/city codes
    against the province and kabupaten/kota, the date of birth (40 added to the day for women) and
    the sex; with the fields the reviewer typed from the card surface (``printed``), each is compared
    with DG1. Pass: everything agrees; any contradiction fails."""
    printed = {_printed_field(k): v for k, v in (ctx.options.printed or {}).items()}
    with ctx.session() as transport:
        session = _open(transport, ctx.options.can)
        ctx.recorder.note("READ BINARY DG1: the printed fields on the chip")
        raw, why = _read(session, "DG1")
    if raw is None:
        return Finding.failed(f"DG1 cannot be read ({why})")
    try:
        personal = decode_dg1(raw)
    except LdsFormatError as exc:
        return Finding.failed(f"DG1 cannot be decoded: {exc}")
    problems = [f"NIK: {v.message}" for v in nik_violations(
        personal.nik, sex=personal.sex, date_of_birth=personal.date_of_birth)]
    problems += _region_problems(personal)
    mismatched = [name for name, text in printed.items() if not _printed_matches(personal, name, text)]
    if mismatched:
        problems.append(f"printed {', '.join(mismatched)} differ from DG1")
    figures: dict[str, float | int | str] = {
        "nik_checks": "region codes, date of birth (+40 for women), sex",
        "printed_fields_compared": len(printed) if printed else "n/a: no printed fields given",
    }
    if problems:
        return Finding.failed("; ".join(problems), **figures)
    compared = f"; the {len(printed)} printed fields given match DG1" if printed else ""
    return Finding.passed(
        "DG1's NIK agrees with its region, date of birth and sex" + compared, **figures
    )


# --- LOCKED-WRITE ---------------------------------------------------------------------------------


def _update_same(sfi: int, data: bytes) -> bytes:
    return bytes((0x00, 0xD6, 0x80 | sfi, 0x00, len(data))) + data


def _update_odd_same(sfi: int, data: bytes) -> bytes:
    body = Tlv(0x54, b"\x00").encode() + Tlv(0x53, data).encode()
    return bytes((0x00, 0xD7, 0x00, sfi, len(body))) + body


def _generate(reference: int, oid: str) -> CommandApdu:
    data = Tlv(0x80, oid_bytes(oid)).encode() + Tlv(0x84, bytes((_PARAMETER_ID,))).encode()
    return CommandApdu(0x00, INS_GENERATE_KEY_PAIR, 0x00, reference, data, le=SHORT_MAX_LE)


def _new_ef() -> bytes:
    return fcp_template(0x0105, size=4, sfi=None, read=AccessCondition.ALWAYS, update=AccessCondition.ALWAYS,
                        admin=AccessCondition.ALWAYS)


@_catalogued("LOCKED-WRITE", "Write and key commands refused after issuance", Threat.ABUSE_OF_FUNCTIONS)
def locked_write(ctx: AuditContext) -> Finding:
    """Sends write and key commands to the issued card, in the clear and inside PACE. Without
    consent only harmless ones: UPDATE BINARY (even and odd INS) of EF.CardAccess, DG1, DG15 and
    EF.SOD with the very bytes they hold, ERASE BINARY starting at the end of EF.CardAccess, CREATE
    FILE without a template, DELETE FILE of the reserved identifier FFFF, so a card that wrongly
    accepts is still unchanged. With ``destructive``: CREATE FILE, GENERATE ASYMMETRIC KEY PAIR, PUT
    DATA (the card's own CAN), the personalisation commands INITIALIZE UPDATE, ERASE and LOCK, and
    DEACTIVATE FILE and TERMINATE CARD USAGE last. Pass: every command is refused (words in figures)."""
    words: dict[str, int | None] = {}
    with ctx.session() as transport:
        session = CardSession(transport)
        session.discover()
        if session.card_access is not None:
            _plain_same_bytes(session, ctx.recorder, words)
        words["CREATE FILE without a template"] = _send(
            transport, ctx.recorder, "CREATE FILE without a template", bytes.fromhex("00E00000"))
        words["DELETE FILE FFFF (reserved, cannot exist)"] = _send(
            transport, ctx.recorder, "DELETE FILE naming the reserved FID FFFF",
            bytes.fromhex("00E4000002FFFF"))
    with _Sessions(ctx) as sessions:
        session = sessions.get()
        for name, sfi in (("DG1", 0x01), ("DG15", 0x0F), ("EF.SOD", 0x1D)):
            head = _transmit(session, ctx.recorder, f"READ BINARY the first bytes of {name}",
                             CommandApdu(0x00, 0xB0, 0x80 | sfi, 0x00, le=_SAME_BYTES))
            if head is None or head.sw not in _GIVES_DATA or not head.data:
                session = sessions.get()
                continue
            what = f"UPDATE BINARY {name} with its own bytes, after PACE"
            answer = _transmit(session, ctx.recorder, what,
                               CommandApdu(0x00, 0xD6, 0x80 | sfi, 0x00, head.data))
            words[what] = None if answer is None else answer.sw
            session = sessions.get()
        if ctx.options.destructive:
            for what, apdu in (
                ("GENERATE ASYMMETRIC KEY PAIR (Active Authentication), after PACE",
                 _generate(KEY_ACTIVE_AUTHENTICATION, _AA_OID)),
                ("PUT DATA the card's own CAN, after PACE",
                 CommandApdu(CLA_PROPRIETARY, INS_PUT_DATA, 0x00, CAN_REFERENCE,
                             ctx.options.can.encode("ascii"), sensitive=True)),
                ("CREATE FILE in the application, after PACE",
                 CommandApdu(0x00, 0xE0, 0x00, 0x00, _new_ef())),
            ):
                answer = _transmit(sessions.get(), ctx.recorder, what, apdu)
                words[what] = None if answer is None else answer.sw
    if ctx.options.destructive:
        with ctx.session() as transport:
            for what, apdu in (
                ("CREATE FILE under the MF", CommandApdu(0x00, 0xE0, 0x00, 0x00, _new_ef())),
                ("GENERATE ASYMMETRIC KEY PAIR (Chip Authentication)",
                 _generate(KEY_CHIP_AUTHENTICATION, _CA_OID)),
                ("INITIALIZE UPDATE (personalisation)",
                 CommandApdu(CLA_PROPRIETARY, INS_INITIALIZE_UPDATE, 0, 0, secrets.token_bytes(16),
                             le=SHORT_MAX_LE)),
                ("ERASE (personalisation)", CommandApdu(CLA_PROPRIETARY, INS_ERASE, 0, 0)),
                ("LOCK (personalisation)", CommandApdu(CLA_PROPRIETARY, INS_LOCK, *LOCK_P1P2)),
                ("DEACTIVATE FILE", CommandApdu(0x00, 0x04, 0x00, 0x00)),
                ("TERMINATE CARD USAGE", CommandApdu(0x00, 0xFE, 0x00, 0x00)),
            ):
                words[what] = _send(transport, ctx.recorder, what, apdu.encode())
    figures: dict[str, float | int | str] = {what: _word(sw) for what, sw in words.items()}
    if not words:
        return Finding.not_applicable("no write command could be addressed to a file of this card")
    accepted = [what for what, sw in words.items() if sw is not None and not _is_error(sw)]
    if accepted:
        return Finding.failed(f"the card accepted: {'; '.join(accepted)}", **figures)
    part = "" if ctx.options.destructive else " (the harmless ones; the rest needs --destructive)"
    return Finding.passed(f"all {len(words)} write and key commands were refused{part}", **figures)


def _plain_same_bytes(session: CardSession, recorder: Recorder, words: dict[str, int | None]) -> None:
    """The same-bytes writes and the empty erase to EF.CardAccess, in the clear."""
    protocol = session.protocol
    recorder.note("READ BINARY the first bytes of EF.CardAccess")
    head = protocol.transmit(CommandApdu(0x00, 0xB0, 0x80 | EF_CARD_ACCESS_SFI, 0x00, le=_SAME_BYTES))
    if head.sw not in _GIVES_DATA or not head.data:
        return
    recorder.note("SELECT EF.CardAccess for its size")
    try:
        size = session.iso.select_ef(EF_CARD_ACCESS_FID)
    except ApduError:
        size = None
    if size is not None and size <= 0x7FFF:
        # Erase from the end to the end: nothing is in that range, whatever the card makes of it.
        end = size.to_bytes(2, "big")
        what = "ERASE BINARY from the end of EF.CardAccess"
        recorder.note(what)
        words[what] = protocol.transmit(CommandApdu(0x00, 0x0E, end[0], end[1], end)).sw
    for what, raw in (
        ("UPDATE BINARY EF.CardAccess with its own bytes", _update_same(EF_CARD_ACCESS_SFI, head.data)),
        ("UPDATE BINARY odd INS EF.CardAccess with its own bytes",
         _update_odd_same(EF_CARD_ACCESS_SFI, head.data)),
    ):
        recorder.note(what)
        words[what] = protocol.transmit(CommandApdu.decode(raw)).sw


# --- FUZZ-APDU ------------------------------------------------------------------------------------

#: Malformed commands sent in the clear: (what, hex). Only read-type, invalid or unknown instructions.
_PLAIN_FUZZ: tuple[tuple[str, str], ...] = (
    ("class FF (reserved for PPS)", "FF84000008"),
    ("RFU class 20", "20A4000C"),
    ("class A0 (not ISO/IEC 7816-4)", "A0A4000C"),
    ("logical channel 1", "01A4000C"),
    ("logical channel 5 (further class 41)", "41A4000C"),
    ("INS 60 (invalid, ISO/IEC 7816-3)", "00600000"),
    ("INS 9A (invalid, ISO/IEC 7816-3)", "009A0000"),
    ("unknown INS 5A", "005A0000"),
    ("odd INS A5 (no odd SELECT)", "00A5000C"),
    ("odd READ BINARY, offset object overruns", "00B1001C02540500"),
    ("Lc longer than the data", "00A4040C0AD360"),
    ("Lc shorter than the data", "00A4000C013F000000"),
    ("extended length field cut short", "00B09C000000"),
    ("extended Lc of zero", "00A4040C000000D3"),
    ("READ BINARY of 4 bytes, no Le, no current EF", "00B00000"),
    ("truncated header, 3 bytes", "00A400"),
    ("truncated header, 1 byte", "00"),
    ("empty APDU", ""),
)
#: Sent only with consent: malformed write-type commands a lenient parser might carry out.
_DESTRUCTIVE_FUZZ: tuple[tuple[str, str], ...] = (
    ("UPDATE BINARY with Lc longer than its data", "00D69C000A00"),
    ("CREATE FILE with a truncated template", "00E000000362"),
)


class _FuzzLog:
    def __init__(self) -> None:
        self.words: dict[str, str] = {}
        self.problems: list[str] = []

    def judge(self, what: str, sw: int | None) -> None:
        self.words[what] = _word(sw)
        if sw is None:
            self.problems.append(f"{what}: no answer")
        elif not _is_error(sw):
            self.problems.append(f"{what}: {sw:04X}, not an error")


def _fuzz_plain(ctx: AuditContext, log: _FuzzLog) -> bool:
    """The clear-text cases, one power-up (a new one after a lost answer); whether the card offers
    extended length."""
    cases = list(_PLAIN_FUZZ) + (list(_DESTRUCTIVE_FUZZ) if ctx.options.destructive else [])
    extended = True
    while cases:
        with ctx.session() as transport:
            discovery = CardSession(transport)
            discovery.discover()
            info = discovery.card_info
            extended = info is not None and info.extended_length
            if not extended and not any(w == "extended Le, card without extended length" for w, _ in cases):
                cases.insert(0, ("extended Le, card without extended length", "00B09C00000100"))
            while cases:
                what, text = cases.pop(0)
                raw = bytes.fromhex(text)
                try:
                    log.judge(what, _send(transport, ctx.recorder, what, raw))
                except TransportError as exc:
                    if len(raw) < 4 and not isinstance(exc, CardRemovedError):
                        log.words[what] = "not sent: the reader refuses it"
                    else:
                        log.judge(what, None)
                    break
    return extended


def _fuzz_protected(ctx: AuditContext, log: _FuzzLog, extended: bool) -> None:
    """The cases inside secure messaging after PACE: well protected garbage first (the session goes
    on), then each case that breaks the session in a session of its own."""
    with ctx.session() as transport:
        session = _open(transport, ctx.options.can)
        sm = session.protocol.secure_messaging
        if not isinstance(sm, SecureMessagingSession):
            log.problems.append("PACE set up no secure messaging this audit can protect commands with")
            return
        for what, apdu in (
            ("protected INS 60 (invalid)", CommandApdu(0x00, 0x60, 0x00, 0x00, le=SHORT_MAX_LE)),
            ("protected odd INS A5", CommandApdu(0x00, 0xA5, 0x00, 0x0C, le=SHORT_MAX_LE)),
        ):
            raw = transport.transceive(_noted(ctx.recorder, what, sm.wrap(apdu).encode()))
            log.judge(what, _sw(raw))
            try:
                sm.unwrap(ResponseApdu.decode(raw))
            except (SecureMessagingError, EktpError):
                log.words[what] += " (answer not protected)"
                break
        for what, text in (
            ("protected command on logical channel 1", "0DB0810000"),
            ("protected command, Lc longer than the data", "0CB081000A970100"),
        ):
            log.judge(what, _send(transport, ctx.recorder, what, bytes.fromhex(text)))
        if not extended:
            what = "protected extended APDU, card without extended length"
            log.judge(what, _send(transport, ctx.recorder, what, bytes.fromhex("0CB0810000000397010000")))
    for what, mangle in (
        ("protected command, DO97 length overruns", _overrun_do97),
        ("protected command, MAC cut short", _cut_mac),
        ("plain INS 60 inside secure messaging", None),
    ):
        with ctx.session() as transport:
            session = _open(transport, ctx.options.can)
            sm = session.protocol.secure_messaging
            if mangle is None or not isinstance(sm, SecureMessagingSession):
                raw = bytes.fromhex("00600000")
            else:
                raw = mangle(sm.wrap(CommandApdu(0x00, 0xB0, 0x81, 0x00, le=SHORT_MAX_LE)).encode())
            log.judge(what, _send(transport, ctx.recorder, what, raw))


def _noted(recorder: Recorder, what: str, raw: bytes) -> bytes:
    recorder.note(what)
    return raw


def _overrun_do97(raw: bytes) -> bytes:
    """A protected READ BINARY (header, Lc, 97 01 Le, 8E 08 MAC, Le) whose DO97 claims 7F bytes."""
    body = bytearray(raw[5:-1])
    if body[:1] == b"\x97":
        body[1] = 0x7F
    return raw[:5] + bytes(body) + raw[-1:]


def _cut_mac(raw: bytes) -> bytes:
    """The same with the last four bytes of the MAC cut off (Lc adjusted)."""
    body = raw[5:-1][:-4]
    return raw[:4] + bytes((len(body),)) + body + raw[-1:]


@_catalogued("FUZZ-APDU", "Malformed commands answered with errors", Threat.MALFUNCTION)
def fuzz_apdu(ctx: AuditContext) -> Finding:
    """Sends malformed commands in the clear and inside PACE secure messaging: class FF, RFU and
    non-ISO classes, logical channels, invalid (6X, 9X), unknown and odd instructions, Lc longer or
    shorter than the data, cut and zero extended length fields (and extended length to a card without
    it), a 4-byte READ BINARY, truncated headers and an empty APDU; protected ones with a garbage
    instruction, a logical channel, an overrunning object, a shortened MAC, and a plain command
    inside the session. Pass: each gets an error word (never 9000, never silence), and PACE and a
    read still work afterwards. Only read-type, invalid or unknown instructions, except two malformed
    write commands sent with ``destructive``."""
    log = _FuzzLog()
    extended = _fuzz_plain(ctx, log)
    _fuzz_protected(ctx, log, extended)
    usable = "no"
    with ctx.session() as transport:
        try:
            session = _open(transport, ctx.options.can)
            ctx.recorder.note("READ BINARY DG1: is the card still usable")
            data, why = _read(session, "DG1")
            usable = f"yes: PACE and DG1 ({len(data)} bytes)" if data else f"no: DG1 refused ({why})"
        except EktpError as exc:
            usable = f"no: {exc}"
    figures: dict[str, float | int | str] = dict(log.words)
    figures["usable afterwards"] = usable
    figures["cases"] = len(log.words)
    problems = list(log.problems)
    if not usable.startswith("yes"):
        problems.append(f"the card is not usable afterwards ({usable})")
    if problems:
        return Finding.failed("; ".join(problems), **figures)
    return Finding.passed(
        f"all {len(log.words)} malformed commands got an error word and the card still works", **figures
    )


# --- TEAR-PERSO -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TearKit:
    """What tearing during personalisation needs: ``blank`` makes a new blank card of the issuer
    each call (a :class:`~ektp_card.audit.targets.VirtualTarget` of
    :func:`~ektp_card.virtual.perso.blank_card`, say), and the issuer's plan, master key, document
    signer and the trust store its cards verify with."""

    blank: Callable[[], CardTarget]
    plan: CardPlan
    master_key: bytes = field(repr=False)
    document_signer: DocumentSigner
    trust: TrustStore


class _Tear:
    """The card leaves the field at command ``at`` (0-based): before the card sees it, or after the
    card carried it out and before its answer reaches the desk."""

    def __init__(self, inner: Transport, at: int, *, after: bool) -> None:
        self.inner = inner
        self.at = at
        self.after = after
        self.count = 0
        self.command = b""

    def transceive(self, command: bytes) -> bytes:
        index = self.count
        self.count += 1
        if index != self.at:
            return self.inner.transceive(command)
        self.command = command
        if self.after:
            self.inner.transceive(command)
        raise CardRemovedError("the card was torn from the field")


#: Names of the commands of a personalisation, by (proprietary class, INS).
_PERSO_NAMES = {
    (False, 0xA4): "SELECT", (False, 0xB0): "READ BINARY", (True, INS_INITIALIZE_UPDATE): "INITIALIZE UPDATE",
    (True, 0x82): "EXTERNAL AUTHENTICATE", (True, INS_ERASE): "ERASE", (False, 0xE0): "CREATE FILE",
    (False, 0xD6): "UPDATE BINARY", (False, 0xD7): "UPDATE BINARY", (False, INS_GENERATE_KEY_PAIR):
    "GENERATE ASYMMETRIC KEY PAIR", (True, INS_PUT_DATA): "PUT DATA", (True, INS_LOCK): "LOCK",
}


def _command_name(command: bytes) -> str:
    if len(command) < 2:
        return "?"
    return _PERSO_NAMES.get((bool(command[0] & 0x80), command[1]), f"INS {command[1]:02X}")


def _verifies(target: CardTarget, kit: TearKit, recorder: Recorder) -> bool:
    with target.session() as transport:
        try:
            return verify_card(RecordingTransport(transport, recorder), kit.plan.can, kit.trust).genuine
        except EktpError:
            return False


def _perso_state(target: CardTarget, kit: TearKit, recorder: Recorder) -> str:
    """"open" (the issuer's key still authenticates), "locked", or "refuses" (neither)."""
    with target.session() as transport:
        session = PersoSession(RecordingTransport(transport, recorder))
        try:
            session.open()
            session.authenticate(kit.master_key)
        except CardLockedError:
            return "locked"
        except (PersonalisationError, ApduError):
            return "refuses"
        finally:
            session.close()
    return "open"


def _labelled(exchanges: Sequence[Exchange], note: str) -> list[Exchange]:
    """``exchanges`` with ``note`` on the first."""
    out = list(exchanges)
    if out:
        out[0] = dataclasses.replace(out[0], note=note)
    return out


@dataclass
class _TornCard:
    """One torn card: how it was torn, what came of it, and the exchanges that show it."""

    where: str
    outcome: str = ""
    failure: str = ""
    evidence: list[Exchange] = field(default_factory=list)


def _judge(target: CardTarget, kit: TearKit, torn: _TornCard, tearing: Recorder) -> None:
    checking, probing = Recorder(), Recorder()
    verifies = _verifies(target, kit, checking)
    state = _perso_state(target, kit, probing)
    if verifies and state == "open":
        torn.outcome = "verifies unlocked"
        torn.failure = f"torn {torn.where}, the card verifies while still open to personalisation"
    elif verifies:
        torn.outcome = "complete and locked"
    elif state == "open":
        try:
            with target.session() as transport:
                personalize(transport, kit.plan, kit.master_key, kit.document_signer, trust=kit.trust)
            torn.outcome = "resumed"
        except EktpError as exc:
            torn.outcome = "stuck"
            torn.failure = f"torn {torn.where}, the card is neither verified nor personalised again: {exc}"
    else:
        torn.outcome = f"refuses ({state})"
    verdict = "genuine" if verifies else "not genuine"
    torn.evidence = (
        _labelled(tearing.exchanges[-3:], f"the last commands before the card was torn {torn.where}")
        + _labelled(checking.exchanges[-2:], f"verification of the torn card: {verdict}")
        + _labelled(probing.exchanges, f"the issuer's key on the torn card: {state}")
    )


def tear_personalisation(
    kit: TearKit,
    *,
    cuts: Iterable[int] | None = None,
    variants: Sequence[str] = ("before", "after"),
    recorder: Recorder | None = None,
) -> Finding:
    """TEAR-PERSO on blank cards of ``kit``: personalise one blank card per cut, tearing it from the
    field at command ``cut`` (``before`` the card sees it and ``after`` it carried it out), then
    judge the torn card. Complete and locked, and verifying: fine. Not verifying and still open to the
    issuer: personalised again from there, which must succeed (resumable). Locked or refusing and not
    verifying: it refuses, fine. Verifying while still open to personalisation, or open and not
    resumable: fail. ``cuts`` limits the sweep (default every command, until a run is not torn);
    ``recorder`` receives the exchanges that show the failing cuts (or the last cut)."""
    outcomes: dict[str, int] = {}
    failed: list[_TornCard] = []
    last: _TornCard | None = None
    chosen = iter(cuts) if cuts is not None else None
    cut = -1
    while True:
        cut = next(chosen, -1) if chosen is not None else cut + 1
        if cut < 0:
            break
        ran_through = False
        for variant in variants:
            tearing = Recorder()
            target = kit.blank()
            with target.session() as transport:
                tear = _Tear(RecordingTransport(transport, tearing), cut, after=variant == "after")
                try:
                    personalize(tear, kit.plan, kit.master_key, kit.document_signer)
                    ran_through = True
                    continue
                except CardRemovedError:
                    pass
            last = _TornCard(f"{variant} command {cut} ({_command_name(tear.command)})")
            _judge(target, kit, last, tearing)
            outcomes[last.outcome] = outcomes.get(last.outcome, 0) + 1
            if last.failure:
                failed.append(last)
        if ran_through and chosen is None:
            break
    if recorder is not None:
        for torn in failed[:2] or ([last] if last is not None else []):
            recorder.exchanges.extend(torn.evidence)
            recorder.count += len(torn.evidence)
    figures: dict[str, float | int | str] = {k.replace(" ", "_"): v for k, v in sorted(outcomes.items())}
    figures["tears"] = sum(outcomes.values())
    if failed:
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        return Finding.failed("; ".join(t.failure for t in failed[:3]) + more, **figures)
    return Finding.passed(
        f"each of {figures['tears']} torn cards was blank and resumable, complete and locked, or refused",
        **figures,
    )


def _personalised(transport: Transport, can: str) -> bool:
    session = CardSession(transport)
    try:
        session.discover()
        if session.card_access is None:
            return False
        session.authenticate(Credentials(can=can), (EKTP_APPLICATION,))
    except EktpError:
        return False
    return True


@_catalogued("TEAR-PERSO", "Tearing during personalisation", Threat.MALFUNCTION, destructive=True)
def tear_perso(ctx: AuditContext) -> Finding:
    """Tears blank cards of the issuer from the field at every command of a personalisation (before
    the card sees it and after it carried it out) and judges each torn card. Pass: each is resumable
    from where it stopped, or complete and locked, or refuses; none verifies while still half
    personalised. Needs blank cards and the issuer's master key; not applicable to a card already
    personalised."""
    with ctx.session() as transport:
        if _personalised(transport, ctx.options.can):
            return Finding.not_applicable(
                "the card is already personalised: tearing needs blank cards of the issuer")
    kit = ctx.options.tear
    if not isinstance(kit, TearKit):
        return Finding.not_applicable(
            "tearing needs blank cards of the issuer and its master key, which the audit options do not carry"
        )
    return tear_personalisation(kit, recorder=ctx.recorder)


__all__ = ["VERIFICATION", "TearKit", "tear_personalisation", "verification"]
