"""Personalise one card from one plan: the distribution desk's core job.

:func:`personalize` checks everything it can before it sends the first command (the plan's content,
the master key, the document signer: certificate present and valid, key usage period running, key
matching the certificate and able to sign), then::

    SELECT MF, EF.ATR/INFO -> INITIALIZE UPDATE / EXTERNAL AUTHENTICATE (AES secure messaging)
      -> [ERASE, when the card says an earlier personalisation was interrupted]
      -> GET DATA (free memory): the plan's memory budget checked before the first write
      -> CREATE FILE + UPDATE BINARY: EF.CardAccess, EF.DIR (MF); the application DF; EF.COM,
         [EF.CVCA], DG1, DG2, DG3, DG7
      -> GENERATE ASYMMETRIC KEY PAIR for Chip and Active Authentication -> DG14, DG15
      -> EF.SOD over DG1, DG2, DG3, DG7, DG14, DG15, signed by the document signer
      -> PUT DATA (CAN) -> [PUT DATA (CVCA certificate)] -> LOCK
      -> read back like a clerk (:func:`~ektp_card.personalize.readback.read_back`)

Interruption (docs/personalisation.md): the card stays in its initialisation state until LOCK, the
last command, which the card carries out in one step. Whatever command the card leaves the field at,
it is either locked with everything on it, or not locked; a card not locked tells the next
INITIALIZE UPDATE that it holds data, and :func:`personalize` erases it and starts again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cryptography import x509

from ektp_card.apdu.transport import Transport
from ektp_card.crypto.perso import KEY_ACTIVE_AUTHENTICATION, KEY_CHIP_AUTHENTICATION, key_cipher
from ektp_card.errors import (
    CardCapacityError,
    IssuerMaterialError,
    LdsFormatError,
    PersonalisationError,
    ReadBackError,
)
from ektp_card.lds.card_security import build_card_security
from ektp_card.lds.conditions import AccessCondition
from ektp_card.lds.ektp import ALWAYS, EKTP_AID, EKTP_DF_FID, LDS_VERSION, PERSO, UNICODE_VERSION
from ektp_card.lds.sod import build_sod, hash_data_groups
from ektp_card.personalize.budget import CardBudget, card_security_size, plan_budget, sod_size
from ektp_card.personalize.plan import CardPlan, PlannedFile, check_trust_point
from ektp_card.personalize.protocol import PersoSession
from ektp_card.personalize.readback import ReadBack, read_back
from ektp_card.pki.certs import EKTP_DOCUMENT_TYPE, document_types, parse_private_key_usage_period
from ektp_card.pki.signer import HashName, Signer, same_key, verify_signature
from ektp_card.pki.trust import TrustStore
from ektp_card.verify.passive import Policy

log = logging.getLogger("ektp_card.personalize")

#: What the probe signature covers: nothing a verifier would ever accept as a document.
_PROBE = b"ektp-card: document signer probe before personalisation"

Progress = Callable[[str], None]
#: Hears the card serial (hex) once the card has authenticated, before anything is written to it.
Authenticated = Callable[[str], None]


@dataclass(frozen=True)
class DocumentSigner:
    """The key that signs EF.SOD (a key file or a PKCS#11 token) and its certificate.
    ``hash_name`` is the signature's hash; ``None``: as strong as the key."""

    signer: Signer
    certificate: x509.Certificate
    hash_name: HashName | None = None


#: A document signer, or a function making one (opening a key file or logging in to a token), called
#: before any command goes to the card: a wrong passphrase or PIN leaves the card untouched.
SignerSource = DocumentSigner | Callable[[], DocumentSigner]


@dataclass(frozen=True)
class PersoResult:
    """One personalised card. ``can`` is what the desk prints on it (never in ``repr``); ``apdus``
    and the byte counts cover personalisation, not the read back; ``timings`` are seconds per
    step. ``sod`` is EF.SOD as written (its SHA-256, :attr:`sod_sha256`, identifies the card to a
    registry: the chip serial cannot be read once the card is locked)."""

    card_serial: str
    can: str = field(repr=False)
    nik: str | None
    synthetic: bool
    hash_algorithm: str
    data_group_hashes: tuple[tuple[int, bytes], ...]
    restarted: bool
    apdus: int
    bytes_sent: int
    bytes_received: int
    timings: tuple[tuple[str, float], ...]
    verification: ReadBack | None = None
    sod: bytes = field(default=b"", repr=False)

    @property
    def seconds(self) -> float:
        return sum(t for _, t in self.timings)

    @property
    def sod_sha256(self) -> str:
        """SHA-256 of EF.SOD, lower-case hex."""
        return hashlib.sha256(self.sod).hexdigest()


class CountingTransport:
    """A transport that counts the commands and bytes going through it."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.commands = 0
        self.sent = 0
        self.received = 0

    def transceive(self, command: bytes) -> bytes:
        self.commands += 1
        self.sent += len(command)
        response = self.inner.transceive(command)
        self.received += len(response)
        return response


def check_document_signer(
    document_signer: DocumentSigner, *, at: dt.datetime, trust: TrustStore | None = None
) -> None:
    """Whether EF.SOD can be signed now: certificate valid at ``at``, private key usage period
    running, digitalSignature key usage, issued by a CSCA of ``trust`` (when given), and the key
    matches the certificate and signs (a probe signature, checked). :class:`IssuerMaterialError`."""
    cert, signer = document_signer.certificate, document_signer.signer
    serial = f"document signer {cert.serial_number:X}"
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        raise IssuerMaterialError(f"{serial} is valid from {start:%Y-%m-%d} to {end:%Y-%m-%d}")
    period = parse_private_key_usage_period(cert)
    if period is not None:
        first, last = period
        if (first is not None and at < first) or (last is not None and at > last):
            raise IssuerMaterialError(f"{serial}: its private key usage period is over or not begun; rotate")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        signs = usage.digital_signature
    except x509.ExtensionNotFound:
        signs = False
    if not signs:
        raise IssuerMaterialError(f"{serial} is not for digital signatures")
    if trust is not None and not trust.issuers_of(cert):
        raise IssuerMaterialError(f"{serial} was not issued by a CSCA of the trust store")
    try:
        types = document_types(cert)
    except ValueError as e:
        raise IssuerMaterialError(f"{serial}: {e}") from None
    if types is not None and EKTP_DOCUMENT_TYPE not in types:
        # Every verifier would call the cards forged (ICAO 9303-12 7.1.1.3): refused before the first.
        raise IssuerMaterialError(f"{serial} may not sign e-KTPs (document type {EKTP_DOCUMENT_TYPE}): "
                                  f"it signs {', '.join(types) or 'none'}")
    if not same_key(signer.public_key, cert.public_key()):
        raise IssuerMaterialError(f"the signing key does not belong to {serial}")
    hash_name = document_signer.hash_name or signer.default_hash
    probe = signer.sign(_PROBE, hash_name)
    reason = verify_signature(signer.public_key, signer.algorithm(hash_name), probe, _PROBE)
    if reason is not None:
        raise IssuerMaterialError(f"the {serial} key does not sign: {reason}")


class _Clock:
    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.timings: list[tuple[str, float]] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self.progress is not None:
            self.progress(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.timings.append((name, elapsed))
            log.debug("personalisation step %s: %.1f ms", name, elapsed * 1000)


def _access(f: PlannedFile) -> dict[str, AccessCondition]:
    return {"read": f.read, "update": f.update, "admin": f.admin}


def _write_file(session: PersoSession, f: PlannedFile, content: bytes) -> None:
    session.create_ef(f.fid, len(content), f.sfi, **_access(f))
    session.write(content, f"UPDATE BINARY {f.name}")


def personalize(
    transport: Transport,
    plan: CardPlan,
    master_key: bytes,
    document_signer: SignerSource,
    *,
    trust: TrustStore | None = None,
    policy: Policy | None = None,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
    authenticated: Authenticated | None = None,
) -> PersoResult:
    """Personalise the blank (or interrupted) card in ``transport`` with ``plan`` and lock it.

    ``master_key`` is the issuer's AES master key the card's personalisation key is diversified
    from. With ``trust`` the card is read back and checked like a clerk would (PACE with the CAN,
    Passive, Chip and Active Authentication) and anything short of every check passing raises
    :class:`PersonalisationError`; ``policy`` is the Passive Authentication policy of that check.
    ``progress`` hears each step's name as it starts. ``now`` is the signing time (default: now).
    ``authenticated`` hears the card serial (hex) after mutual authentication and before the first
    write (a desk reserves the serial in its registry there); whatever it raises stops
    personalisation with nothing written to the card.

    Raises :class:`PersonalisationError`: :class:`~ektp_card.errors.IssuerMaterialError` for the master
    key, document signer or trust point, :class:`~ektp_card.errors.PersoAuthenticationError` when the
    card and the master key do not open a session, :class:`~ektp_card.errors.CardLockedError` for a card
    already locked, :class:`~ektp_card.errors.ReadBackError` when the read back fails, the class itself
    when the card refuses a write; :class:`~ektp_card.errors.PkiError` from the signer source, and
    transport errors when the card leaves the field.
    """
    clock = _Clock(progress)
    at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    with clock.step("validate"):
        try:
            key_cipher(master_key)
        except ValueError as exc:
            raise IssuerMaterialError(str(exc)) from None
        signer = document_signer() if callable(document_signer) else document_signer
        check_document_signer(signer, at=at, trust=trust)
        hash_name: HashName = plan.algorithms.sod_hash
        if plan.trust_point is not None:
            # A plan made by hand is checked too: the card must not refuse it after the writes.
            check_trust_point(plan.trust_point)
        sod_bytes = sod_size(plan, signer.signer, signer.certificate, hash_name=signer.hash_name)
        security_bytes = card_security_size(plan, signer.signer, signer.certificate,
                                            hash_name=signer.hash_name)
        budget = plan_budget(plan, sod_bytes, card_security_bytes=security_bytes)

    counter = CountingTransport(transport)
    session = PersoSession(counter)
    algorithms = plan.algorithms
    with clock.step("authenticate"):
        session.open()
        identity = session.authenticate(master_key)
    log.info("card %s: personalisation session open", identity.serial.hex().upper())
    try:
        if authenticated is not None:
            authenticated(identity.serial.hex().upper())
        if identity.incomplete:
            log.info("the card holds data of an interrupted personalisation: erasing it first")
            with clock.step("erase"):
                session.erase()
        with clock.step("capacity"):
            check_capacity(budget, session.free_memory())
        with clock.step("write"):
            for f in plan.mf_files:
                if f.content is not None:  # EF.CardSecurity comes once its key is made
                    _write_file(session, f, f.content)
            session.create_df(EKTP_DF_FID, EKTP_AID, read=ALWAYS, update=PERSO, admin=PERSO)
            for f in plan.application_files:
                if f.content is not None:
                    _write_file(session, f, f.content)
        with clock.step("keys"):
            ca_point = session.generate_key(
                KEY_CHIP_AUTHENTICATION, algorithms.ca_protocol, algorithms.ca_parameter_id
            )
            aa_point = session.generate_key(
                KEY_ACTIVE_AUTHENTICATION, algorithms.aa_signature, algorithms.aa_parameter_id
            )
            chip_groups = {14: algorithms.dg14(ca_point, on_card_comparison=plan.on_card_comparison),
                           15: algorithms.dg15(aa_point)}
            for number, content in chip_groups.items():
                _write_file(session, plan.file(f"DG{number}"), content)
        groups = {**plan.data_groups, **chip_groups}
        with clock.step("sign"):
            try:
                sod = build_sod(
                    groups,
                    signer.signer,
                    signer.certificate,
                    hash_name=hash_name,
                    signature_hash=signer.hash_name or signer.signer.default_hash,
                    signing_time=at,
                    lds_version=(LDS_VERSION, UNICODE_VERSION),
                )
            except LdsFormatError as exc:
                raise PersonalisationError(f"EF.SOD cannot be built: {exc}") from None
            sod_file = plan.file("EF.SOD")
            if len(sod) > sod_file.max_size:
                raise PersonalisationError(
                    f"EF.SOD has {len(sod)} bytes; the card profile allows {sod_file.max_size}"
                )
            _write_file(session, sod_file, sod)
            if algorithms.cam:
                infos = algorithms.card_security_infos(ca_point, on_card_comparison=plan.on_card_comparison)
                security = build_card_security(
                    infos, signer.signer, signer.certificate,
                    hash_name=signer.hash_name or signer.signer.default_hash, signing_time=at,
                )
                session.select_mf()
                _write_file(session, plan.file("EF.CardSecurity"), security)
        with clock.step("lock"):
            session.set_can(plan.can)
            if plan.trust_point is not None:
                session.set_trust_point(plan.trust_point)
            session.lock()
    finally:
        session.close()

    verification = None
    if trust is not None:
        with clock.step("verify"):
            verification = read_back(transport, plan.can, trust, policy=policy, expected=groups)
        if not verification.ok:
            raise ReadBackError(
                f"the card is personalised and locked but does not verify: {verification.summary()}",
                hashlib.sha256(sod).hexdigest(),
            )
    return PersoResult(
        card_serial=identity.serial.hex().upper(),
        can=plan.can,
        nik=plan.nik,
        synthetic=plan.synthetic,
        hash_algorithm=hash_name,
        data_group_hashes=hash_data_groups(groups, hash_name),
        restarted=identity.incomplete,
        apdus=counter.commands,
        bytes_sent=counter.sent,
        bytes_received=counter.received,
        timings=tuple(clock.timings),
        verification=verification,
        sod=sod,
    )


def check_capacity(budget: CardBudget, free: int | None) -> None:
    """:class:`CardCapacityError` when ``budget`` needs more than the ``free`` bytes a card declared
    (``None``: the card does not tell, and its own 6A84 is the check)."""
    if free is None:
        log.info("the card does not tell its free memory; the plan needs %d bytes", budget.total)
        return
    if budget.total > free:
        largest = sorted(budget.lines, key=lambda line: line.storage, reverse=True)[:3]
        biggest = ", ".join(f"{line.name} {line.storage}" for line in largest)
        raise CardCapacityError(
            f"the record does not fit the card: it needs {budget.total} bytes of memory, the card has "
            f"{free} free; {budget.total - free} bytes too many (largest: {biggest})",
            needed=budget.total,
            free=free,
        )
    log.info("the plan needs %d of the card's %d free bytes", budget.total, free)


__all__ = [
    "CountingTransport",
    "Authenticated",
    "DocumentSigner",
    "PersoResult",
    "SignerSource",
    "check_capacity",
    "check_document_signer",
    "personalize",
]
