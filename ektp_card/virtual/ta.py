"""The chip's side of Terminal Authentication version 2 for the virtual card.

BSI TR-03110-2 section 3.4 and TR-03110-3 appendix B.11 (ICAO Doc 9303-11 section 7.1 for eMRTDs);
the terminal side and the commands are in :mod:`ektp_card.crypto.ta`. Inside the secure messaging
of PACE the terminal proves that it holds the private key of a terminal certificate whose chain
ends at the card's trust point, and so obtains the rights of its certificate holder authorization
template (CHAT)::

    for each certificate (link CVCA, DV, terminal):
        MSE:Set DST        0C 22 81 B6  83 <CAR: the key to verify with>
        PSO:VERIFY CERT.   0C 2A 00 BE  7F4E <body> 5F37 <signature>   (command chaining if long)
    MSE:Set AT         0C 22 81 A4  83 <terminal CHR> [80 <OID>] [67 <aux data>] 91 <Comp(PK_PCD)>
                                    [7F4C <CHAT>]
    GET CHALLENGE      0C 84 00 00  -> r_PICC (8 bytes)
    EXTERNAL AUTH.     0C 82 00 00  <signature over ID_PICC || r_PICC || Comp(PK_PCD) [|| DO 67]>

ID_PICC is Comp(PK~_PICC) of the PACE run (the x-coordinate of the chip's ephemeral key), and
Comp(PK_PCD) the x-coordinate of the ephemeral key the terminal then uses in Chip Authentication:
:mod:`ektp_card.virtual.ca` refuses any other key once TA succeeded (TR-03110-2 section 3.4,
CA version 2 binding).

The card's key objects (``card.keys``, saved in its image, never readable by a command):

* ``ta.cvca``: the trust point, the CVCA certificate (self-signed or link) the chip verifies
  chains from; its key carries the domain parameters of the whole PKI;
* ``ta.cvca.previous``: the trust point a link certificate replaced, still accepted as the start
  of a chain (TR-03110-3 section 2.5.2 allows the chip two);
* ``ta.date``: the chip's current date, YYMMDD as six BCD digits like a CV certificate's dates.
  The chip has no clock: its date is the latest effective date of a CVCA, domestic DV or domestic
  terminal certificate it verified (TR-03110-3 section 2.5.3), and certificates that expired before
  it are refused. A certificate not yet effective is not refused for that: the chip's date is only
  a lower bound of the real one.

Rights: the effective authorization is the AND of the CHATs of the chain, restricted further by a
CHAT in MSE:Set AT. The e-KTP profile's DG3 condition is ``PACE+TA`` (``ektp_card.lds.ektp``), so
success grants ``TA`` only when the effective authorization holds ``read-dg3``: a terminal whose
certificate lacks it is authenticated (the run answers 9000) but reads no fingerprints. Either
way the run's outcome and rights stay in the session (:func:`terminal_rights`). Likewise the
project's ``verify-biometric`` right (its authorization extension, held by every certificate of the
chain: :data:`ektp_card.pki.cvc.ID_EKTP_AUTHORIZATION`) grants ``BIO``, which on-card comparison
(VERIFY, :mod:`ektp_card.virtual.bio`) needs.

INS 82 is shared with BAC's MUTUAL AUTHENTICATE: :data:`EXTERNAL_AUTHENTICATE` routes it to TA
while a TA run awaits its signature, to BAC on a card holding a BAC key otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import Tlv, parse_dict
from ektp_card.ec import Curve
from ektp_card.errors import LdsFormatError, PkiError, TlvError
from ektp_card.lds.capacity import ef_storage
from ektp_card.lds.conditions import BIO, PACE, TA, AccessCondition, SecurityAttributes
from ektp_card.oid import encode_oid
from ektp_card.pki.cvc import (
    EKTP_RIGHTS,
    T_CERTIFICATE,
    T_CHAT,
    VERIFY_BIOMETRIC,
    Chat,
    CvCertificate,
    CvPublicKey,
    Role,
    decode_date,
    encode_date,
)
from ektp_card.pki.signer import hash_algorithm
from ektp_card.virtual.bac import KSEED_KEY, mutual_authenticate
from ektp_card.virtual.commands import Chaining, Command, ok, refuse
from ektp_card.virtual.fs import DedicatedFile

if TYPE_CHECKING:
    from ektp_card.virtual.card import VirtualCard
    from ektp_card.virtual.pace import MseVariant

TRUST_POINT_KEY = "ta.cvca"
PREVIOUS_TRUST_POINT_KEY = "ta.cvca.previous"
CURRENT_DATE_KEY = "ta.date"
#: EF.CVCA in the application DF (BSI TR-03110-3 section A.1.2.5; docs/card-profile.md).
EF_CVCA_FID, EF_CVCA_SFI, EF_CVCA_SIZE = 0x011C, 0x1C, 36
#: Length of r_PICC (TR-03110-3 B.11.6: GET CHALLENGE for TA returns 8 bytes).
CHALLENGE_LENGTH = 8
#: The CHAT right that opens DG3 (fingerprints), and so grants ``TA`` in the e-KTP profile.
READ_DG3 = "read-dg3"

_T_CAR_CHR = 0x83
_T_ALGORITHM = 0x80
_T_AUX = 0x67
_T_EPHEMERAL = 0x91


# --- the trust point ---------------------------------------------------------------------------------


def _decode_trust_point(data: bytes) -> CvCertificate:
    cert = CvCertificate.decode(data)
    if cert.role is not Role.CVCA or cert.public_key.domain is None:
        raise PkiError(f"{cert.chr} is not a CVCA certificate with domain parameters")
    return cert


def trust_points(card: VirtualCard) -> tuple[CvCertificate, ...]:
    """The CVCA certificates the card verifies chains from: the current one first."""
    found = []
    for name in (TRUST_POINT_KEY, PREVIOUS_TRUST_POINT_KEY):
        data = card.keys.get(name)
        if data is not None:
            try:
                found.append(_decode_trust_point(data))
            except (LdsFormatError, PkiError):
                continue
    return tuple(found)


def current_date(card: VirtualCard) -> dt.date | None:
    """The chip's notion of today (``None`` on a card without Terminal Authentication)."""
    data = card.keys.get(CURRENT_DATE_KEY)
    if data is None:
        return None
    try:
        return decode_date(data)
    except LdsFormatError:
        return None


def _set_date(card: VirtualCard, date: dt.date) -> None:
    card.keys[CURRENT_DATE_KEY] = encode_date(date)


def install_trust_point(
    card: VirtualCard,
    cvca: bytes | CvCertificate,
    *,
    date: dt.date | None = None,
    application: DedicatedFile | None = None,
) -> None:
    """Make ``cvca`` the card's trust point for Terminal Authentication (replacing any other).

    The chip's current date becomes ``date`` (default: the CVCA's effective date), never earlier
    than the one it has. EF.CVCA is rewritten wherever it exists, and created in ``application`` if
    given (read after PACE, never written by a command). :class:`PkiError` if ``cvca`` is not a
    CVCA certificate with domain parameters or its self-signature fails.
    """
    try:
        cert = _decode_trust_point(cvca if isinstance(cvca, bytes) else cvca.encode())
    except LdsFormatError as exc:
        raise PkiError(f"not a CV certificate: {exc}") from None
    if cert.self_signed and not cert.verify_signature(cert.public_key):
        raise PkiError(f"the self-signature of {cert.chr} does not verify")
    known = current_date(card)
    wanted = date or cert.body.effective_date
    keys = {
        TRUST_POINT_KEY: cert.encode(),
        CURRENT_DATE_KEY: encode_date(wanted if known is None else max(known, wanted)),
    }
    new_file = application is not None and application.child_ef(EF_CVCA_FID) is None
    # The key objects and EF.CVCA are one write: room for all of them, or nothing changes (6A84).
    growth = card.keys.growth(keys, remove=(PREVIOUS_TRUST_POINT_KEY,))
    card.fs.require_room(growth + (ef_storage(EF_CVCA_SIZE) if new_file else 0), "the trust point")
    card.keys.store(keys, remove=(PREVIOUS_TRUST_POINT_KEY,))
    if application is not None and new_file:
        readable = SecurityAttributes(AccessCondition.require(PACE), AccessCondition.NEVER,
                                      AccessCondition.NEVER)
        card.fs.create_ef(application, EF_CVCA_FID, size=EF_CVCA_SIZE, sfi=EF_CVCA_SFI, access=readable)
    _write_ef_cvca(card)


def ef_cvca_content(references: tuple[str, ...]) -> bytes:
    """EF.CVCA: one DO 42 per trust point, the current first (TR-03110-3 A.1.2.5)."""
    return b"".join(Tlv(0x42, ref.encode("latin-1")).encode() for ref in references)


def _write_ef_cvca(card: VirtualCard) -> None:
    content = ef_cvca_content(tuple(c.chr for c in trust_points(card)))
    for df in card.fs.dfs():
        ef = df.child_ef(EF_CVCA_FID) if df is not card.fs.mf else None
        if ef is not None and len(content) <= ef.size:
            # The file keeps its size; 00 bytes pad the rest, as TR-03110-3 A.1.2.5 does.
            ef.data[:] = content + bytes(ef.size - len(content))


# --- the state of one run ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    """A public key the chip knows in this session: a trust point or an imported certificate's."""

    reference: str
    public_key: CvPublicKey
    domain: Curve
    role: Role
    chat: Chat  # the effective authorization of the chain up to this certificate
    #: The project's rights (its authorization extension) held by every certificate up to this one.
    ektp_rights: int = 0


@dataclass(frozen=True)
class _Pending:
    """What MSE:Set AT announced for EXTERNAL AUTHENTICATE."""

    terminal: _Key
    ephemeral: bytes
    aux: bytes
    chat: Chat


@dataclass
class ChipTa:
    """Terminal Authentication in one PACE session: imported keys, then the authenticated terminal."""

    imported: dict[str, _Key] = field(default_factory=dict)
    selected: _Key | None = None
    terminal: _Key | None = None
    pending: _Pending | None = None
    #: After success: Comp(PK_PCD) for Chip Authentication and the effective authorization.
    ephemeral: bytes = b""
    chat: Chat | None = None
    ektp_rights: int = 0

    @property
    def authenticated(self) -> bool:
        return self.chat is not None


def terminal_rights(card: VirtualCard) -> Chat | None:
    """The effective authorization of the terminal authenticated in this session, if any."""
    state = card.security.terminal
    return None if state is None else state.chat


def terminal_ephemeral_key(card: VirtualCard) -> bytes | None:
    """Comp(PK_PCD) of the successful TA of this session: the key Chip Authentication must use."""
    state = card.security.terminal
    return state.ephemeral if state is not None and state.authenticated else None


def _session_state(card: VirtualCard) -> ChipTa:
    """The run of this PACE session; 6982 outside PACE's secure messaging, 6985 after success
    (TR-03110-2: Terminal Authentication runs once per session)."""
    security = card.security
    if security.channel is None or PACE not in security.granted or not security.id_picc:
        refuse(SW.SECURITY_STATUS_NOT_SATISFIED)
    if not trust_points(card):
        # A card without Terminal Authentication answers as before it knew these commands.
        refuse(SW.INCORRECT_P1P2)
    state = security.terminal
    if state is None:
        state = security.terminal = ChipTa()
    if state.authenticated:
        refuse(SW.CONDITIONS_NOT_SATISFIED)
    return state


def _known_keys(card: VirtualCard, state: ChipTa) -> dict[str, _Key]:
    keys: dict[str, _Key] = {}
    for cert in trust_points(card):
        domain = cert.public_key.domain
        if domain is not None:
            keys[cert.chr] = _Key(cert.chr, cert.public_key, domain, Role.CVCA, cert.chat, cert.ektp_rights)
    keys.update(state.imported)
    return keys


# --- the commands ------------------------------------------------------------------------------------


def _objects(data: bytes, required: frozenset[int], allowed: frozenset[int]) -> dict[int, bytes]:
    try:
        objects = parse_dict(data)
    except TlvError:
        refuse(SW.INCORRECT_DATA)
    if not required <= objects.keys() <= allowed:
        refuse(SW.INCORRECT_DATA)
    return objects


def set_dst(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """MSE:Set DST (81 B6): DO 83 names the key (a trust point's or an imported certificate's CHR)
    PSO:VERIFY CERTIFICATE verifies with; 6A88 for a key the chip does not know."""
    state = _session_state(card)
    objects = _objects(apdu.data, frozenset({_T_CAR_CHR}), frozenset({_T_CAR_CHR}))
    key = _known_keys(card, state).get(objects[_T_CAR_CHR].decode("latin-1"))
    state.pending = None
    if key is None:
        state.selected = None
        refuse(SW.REFERENCED_DATA_NOT_FOUND)
    state.selected = key
    return ok()


def _may_issue(issuer: Role, subject: Role) -> bool:
    # TR-03110-3 section 2: CVCA -> CVCA (link) or DV, DV -> terminal.
    if issuer is Role.CVCA:
        return subject is not Role.TERMINAL
    return issuer.is_dv and subject is Role.TERMINAL


def verify_certificate(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """PSO:VERIFY CERTIFICATE (2A 00 BE): 7F4E body and 5F37 signature, verified with the key
    MSE:Set DST selected. 6A80 for a malformed certificate or one not issued under that key's
    reference, 6300 for a wrong signature, role order, terminal type or an expired certificate."""
    if (apdu.p1, apdu.p2) != (0x00, 0xBE):
        refuse(SW.INCORRECT_P1P2)
    state = _session_state(card)
    issuer, state.selected = state.selected, None
    if issuer is None:
        refuse(SW.CONDITIONS_NOT_SATISFIED)
    try:
        cert = CvCertificate.decode(Tlv(T_CERTIFICATE, apdu.data).encode())
    except (LdsFormatError, TlvError):
        refuse(SW.INCORRECT_DATA)
    if cert.car != issuer.reference:
        refuse(SW.INCORRECT_DATA)
    domain = cert.public_key.domain
    acceptable = (
        _may_issue(issuer.role, cert.role)
        and cert.chat.terminal_type is issuer.chat.terminal_type
        and (domain is not None if cert.role is Role.CVCA else domain in (None, issuer.domain))
        and cert.verify_signature(issuer.public_key, issuer.domain)
    )
    today = current_date(card)
    if not acceptable or today is None or cert.body.expiration_date < today:
        refuse(SW.VERIFICATION_FAILED)
    new_domain = domain or issuer.domain
    try:
        cert.public_key.to_key(new_domain)
    except PkiError:
        refuse(SW.VERIFICATION_FAILED)
    # TR-03110-3 section 2.5.3: only certificates issued at home move the chip's date on.
    domestic = cert.role in (Role.CVCA, Role.DV_DOMESTIC) or (
        cert.role is Role.TERMINAL and issuer.role is Role.DV_DOMESTIC
    )
    if domestic and cert.body.effective_date > today:
        _set_date(card, cert.body.effective_date)
    key = _Key(cert.chr, cert.public_key, new_domain, cert.role, cert.chat.restrict(issuer.chat),
               cert.ektp_rights & issuer.ektp_rights)
    if cert.role is Role.CVCA:
        # A link certificate replaces the trust point for good; the old one stays the second.
        card.keys.update(
            {PREVIOUS_TRUST_POINT_KEY: card.keys[TRUST_POINT_KEY], TRUST_POINT_KEY: cert.encode()}
        )
        _write_ef_cvca(card)
    state.imported[cert.chr] = key
    state.terminal = key if cert.role is Role.TERMINAL else state.terminal
    return ok()


def set_at(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """MSE:Set AT for external authentication (81 A4): DO 83 the terminal's CHR (6A88 unless its
    certificate was verified), DO 91 Comp(PK_PCD), optionally DO 80 the terminal key's algorithm,
    DO 67 auxiliary data and DO 7F4C a CHAT restricting the certificate's rights."""
    state = _session_state(card)
    state.pending = None
    objects = _objects(
        apdu.data,
        frozenset({_T_CAR_CHR, _T_EPHEMERAL}),
        frozenset({_T_CAR_CHR, _T_EPHEMERAL, _T_ALGORITHM, _T_AUX, T_CHAT}),
    )
    terminal = state.terminal
    if terminal is None or objects[_T_CAR_CHR].decode("latin-1") != terminal.reference:
        refuse(SW.REFERENCED_DATA_NOT_FOUND)
    algorithm = objects.get(_T_ALGORITHM)
    if algorithm is not None and algorithm != encode_oid(terminal.public_key.algorithm):
        refuse(SW.INCORRECT_DATA)
    ephemeral = objects[_T_EPHEMERAL]
    if not ephemeral:
        refuse(SW.INCORRECT_DATA)
    chat = terminal.chat
    if T_CHAT in objects:
        try:
            asked = Chat.decode(Tlv(T_CHAT, objects[T_CHAT]).encode())
        except LdsFormatError:
            refuse(SW.INCORRECT_DATA)
        if asked.terminal_type is not chat.terminal_type:
            refuse(SW.INCORRECT_DATA)
        chat = replace(chat, rights=chat.rights & asked.rights)
    aux = Tlv(_T_AUX, objects[_T_AUX]).encode() if _T_AUX in objects else b""
    state.pending = _Pending(terminal, ephemeral, aux, chat)
    return ok()


def _signature_valid(key: _Key, signature: bytes, data: bytes) -> bool:
    size = (key.domain.n.bit_length() + 7) // 8
    if len(signature) != 2 * size:
        return False
    r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    if not (0 < r < key.domain.n and 0 < s < key.domain.n):
        return False
    try:
        key.public_key.to_key(key.domain).verify(
            encode_dss_signature(r, s), data, ec.ECDSA(hash_algorithm(key.public_key.hash_name))
        )
    except InvalidSignature:
        return False
    return True


def external_authenticate(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """EXTERNAL AUTHENTICATE (82 00 00) of TA: the terminal's plain ECDSA signature over
    ID_PICC || r_PICC || Comp(PK_PCD) [|| DO 67]. The challenge is used once. A wrong signature
    answers 6300 and ends the run (its imported keys too). Success fixes the terminal's key and
    effective authorization; the rights themselves (``TA`` when it holds ``read-dg3``) take effect
    only once Chip Authentication with that key has succeeded (:func:`grant_after_ca`)."""
    security = card.security
    challenge = security.take_challenge()
    state = security.terminal
    pending = None if state is None else state.pending
    if state is None or pending is None:
        refuse(SW.CONDITIONS_NOT_SATISFIED)
    state.pending = None
    if apdu.p1 or apdu.p2:
        refuse(SW.INCORRECT_P1P2)
    if challenge is None or len(challenge) != CHALLENGE_LENGTH:
        refuse(SW.CONDITIONS_NOT_SATISFIED)
    signed = security.id_picc + challenge + pending.ephemeral + pending.aux
    if not _signature_valid(pending.terminal, apdu.data, signed):
        security.terminal = None
        refuse(SW.VERIFICATION_FAILED)
    state.ephemeral, state.chat = pending.ephemeral, pending.chat
    state.ektp_rights = pending.terminal.ektp_rights
    return ok()


def grant_after_ca(card: VirtualCard) -> None:
    """Give the terminal its rights once Chip Authentication has completed Terminal Authentication.

    BSI TR-03110-2 (EAC2: PACE, TA, CA) lets the terminal's effective authorization take effect
    only after Chip Authentication: until then a terminal has proven its key but the chip has not,
    and the fingerprints must not flow under PACE's keys alone.
    """
    state = card.security.terminal
    if state is not None and state.ephemeral and state.chat is not None:
        if state.chat.grants(READ_DG3):
            card.security.grant(TA)
        if state.ektp_rights >> EKTP_RIGHTS[VERIFY_BIOMETRIC] & 1:
            card.security.grant(BIO)


def authenticate_82(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """INS 82, EXTERNAL or MUTUAL AUTHENTICATE: Terminal Authentication while a TA run awaits its
    signature, BAC's MUTUAL AUTHENTICATE on a card holding a BAC key, 6985 on a card with a trust
    point and no TA run, and 6D00 on a card with neither protocol."""
    state = card.security.terminal
    if state is not None and state.pending is not None:
        return external_authenticate(card, apdu)
    if KSEED_KEY in card.keys:
        return mutual_authenticate(card, apdu)
    if trust_points(card):
        card.security.take_challenge()
        refuse(SW.CONDITIONS_NOT_SATISFIED)
    refuse(SW.INS_NOT_SUPPORTED)


#: Terminal Authentication's MSE variants, by (P1, P2), for the card's MSE dispatch.
TA_MSE_VARIANTS: Mapping[tuple[int, int], MseVariant] = MappingProxyType(
    {(0x81, 0xB6): set_dst, (0x81, 0xA4): set_at}
)
#: INS 82 for both BAC and Terminal Authentication (see :func:`authenticate_82`).
EXTERNAL_AUTHENTICATE = Command("EXTERNAL / MUTUAL AUTHENTICATE", authenticate_82)
#: PSO (2A); only VERIFY CERTIFICATE (P1-P2 00 BE). A link certificate with its domain parameters
#: is longer than a short APDU, hence command chaining.
PERFORM_SECURITY_OPERATION = Command("PERFORM SECURITY OPERATION", verify_certificate, Chaining.BUFFER)


__all__ = [
    "CURRENT_DATE_KEY",
    "EXTERNAL_AUTHENTICATE",
    "PERFORM_SECURITY_OPERATION",
    "PREVIOUS_TRUST_POINT_KEY",
    "TA_MSE_VARIANTS",
    "TRUST_POINT_KEY",
    "ChipTa",
    "authenticate_82",
    "current_date",
    "ef_cvca_content",
    "external_authenticate",
    "install_trust_point",
    "set_at",
    "set_dst",
    "terminal_ephemeral_key",
    "terminal_rights",
    "trust_points",
    "verify_certificate",
]
