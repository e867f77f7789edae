"""The chip's side of personalisation: a blank card becomes a locked e-KTP.

docs/personalisation.md describes the protocol; :mod:`ektp_card.crypto.perso` computes its keys.
A blank card (:func:`blank_card`) holds, as key objects saved in its image and never readable:

* ``card.serial``: the 8-byte card serial (given out by INITIALIZE UPDATE; not a secret);
* ``perso.key``: K_perso, the AES key diversified from the issuer's master key by the serial;
* ``perso.tries``: authentications left (one byte, :data:`MAX_TRIES` when fresh).

Its MF is in the creation state and managed under the ``PERSO`` condition, which only
EXTERNAL AUTHENTICATE with K_perso grants. The commands (CLA 80 is proprietary; under secure
messaging it becomes 8C, and 00 becomes 0C):

====================  ==========  ===============================================================
INITIALIZE UPDATE     80 50 00 00 host challenge (16) -> serial, key length, state, card challenge,
                                  card cryptogram; counts one try down before it answers
EXTERNAL AUTHENTICATE 80 82 00 00 host cryptogram (16); grants PERSO, opens AES secure messaging,
                                  gives the tries back; a wrong one answers 63Cx (tries left)
GENERATE ASYMMETRIC   00 46 00 rr DO 80 protocol OID, DO 84 domain parameter ID; rr 01 Chip
KEY PAIR                          Authentication, 02 Active Authentication; answers 7F49 {06 OID,
                                  86 public point}; the private key stays in ``card.keys``
PUT DATA (CAN)        80 DA 00 02 the CAN (ASCII digits), PACE password reference 02
GET DATA              80 CA FF 21 the free memory: FF21 {82 free bytes} (GlobalPlatform Extended Card
                                  Resources Information)
PUT DATA (CVCA)       80 DA 7F 21 a CVCA certificate (7F21, BSI TR-03110-3 C.1): the trust point of
                                  Terminal Authentication; EF.CVCA of the e-KTP application names
                                  it. 6A80 for a certificate that is malformed, not a CVCA's, or
                                  whose self-signature fails. Long: command chaining
ERASE                 80 E4 00 00 deletes every file but EF.ATR/INFO and every key but the three
                                  above: the card is blank again, still in initialisation
LOCK                  80 F0 80 05 every file and the card to operational (05); deletes K_perso;
                                  ends the session. From then on nothing is ever written again.
====================  ==========  ===============================================================

CREATE FILE and UPDATE BINARY are the card's own (:mod:`ektp_card.virtual.commands`): the files the
desk creates carry ``PERSO`` as their update and admin conditions. Every command but INITIALIZE
UPDATE and EXTERNAL AUTHENTICATE needs ``PERSO`` in this session's secure messaging (6982), and all of
them need a card not yet locked (6985), so a locked card refuses them even to a terminal that holds
the key.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from asn1crypto import core  # type: ignore[import-untyped]

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import Tlv, parse_dict
from ektp_card.crypto.aa import PLAIN_ECDSA_OIDS
from ektp_card.crypto.ca import CA_ALGORITHMS, CaAlgorithm
from ektp_card.crypto.pace import Password, PasswordType
from ektp_card.crypto.perso import (
    CAN_REFERENCE,
    CARD_RESOURCES,
    CHALLENGE_LENGTH,
    CRYPTOGRAM_LENGTH,
    INS_ERASE,
    INS_EXTERNAL_AUTHENTICATE,
    INS_GET_DATA,
    INS_INITIALIZE_UPDATE,
    INS_LOCK,
    INS_PUT_DATA,
    KEY_ACTIVE_AUTHENTICATION,
    KEY_CHIP_AUTHENTICATION,
    LOCK_P1P2,
    SERIAL_LENGTH,
    TAG_FREE_MEMORY,
    InitializeUpdateAnswer,
    SessionKeys,
    diversify,
    key_cipher,
    session_keys,
)
from ektp_card.crypto.sm import CardSecureMessaging
from ektp_card.ec import STANDARDIZED_CURVES, Curve
from ektp_card.errors import LdsFormatError, PkiError, TlvError
from ektp_card.lds.conditions import PERSO, AccessCondition
from ektp_card.lds.public_key import EcPublicKey, cryptography_curve
from ektp_card.pki.cvc import T_CERTIFICATE
from ektp_card.virtual.aa import install_active_authentication
from ektp_card.virtual.atr import EF_ATR_INFO_FID
from ektp_card.virtual.ca import install_chip_authentication
from ektp_card.virtual.commands import Chaining, Command, ok, refuse
from ektp_card.virtual.fs import LifeCycle
from ektp_card.virtual.pace import PASSWORD_KEYS
from ektp_card.virtual.ta import install_trust_point

if TYPE_CHECKING:
    from ektp_card.virtual.card import VirtualCard

CARD_SERIAL = "card.serial"
PERSO_KEY = "perso.key"
PERSO_TRIES = "perso.tries"
#: Key objects a blank card has; ERASE keeps exactly these.
BASE_KEYS = frozenset({CARD_SERIAL, PERSO_KEY, PERSO_TRIES})
#: Consecutive failed authentications before the personalisation key is blocked for good.
MAX_TRIES = 10

#: A CAN is 1 to 16 ASCII digits here; the e-KTP profile uses 6.
MAX_CAN_LENGTH = 16

_TAG_PUBLIC_KEY = 0x7F49
_CA_BY_OID: dict[bytes, CaAlgorithm] = {a.oid_bytes: a for a in CA_ALGORITHMS.values() if a.supported}


def _oid_bytes(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).contents or b"")


_AA_HASH_BY_OID: dict[bytes, str] = {_oid_bytes(oid): name for name, oid in PLAIN_ECDSA_OIDS.items()}


class PersoState(Enum):
    """Where a card stands: blank, personalisation started but not finished, or locked."""

    BLANK = "blank"
    INCOMPLETE = "incomplete"
    LOCKED = "locked"


# --- making blank cards -------------------------------------------------------------------------------


def install_personalisation_key(card: VirtualCard, k_perso: bytes, serial: bytes) -> None:
    """Put a card serial and its (already diversified) personalisation key on ``card``."""
    key_cipher(k_perso)
    if len(serial) != SERIAL_LENGTH:
        raise ValueError(f"a card serial has {SERIAL_LENGTH} bytes")
    card.keys[CARD_SERIAL] = bytes(serial)
    card.keys[PERSO_KEY] = bytes(k_perso)
    card.keys[PERSO_TRIES] = bytes((MAX_TRIES,))


def blank_card(master_key: bytes, serial: bytes | None = None, **create: Any) -> VirtualCard:
    """A blank e-KTP chip as the factory delivers it: MF in the creation state, managed under
    ``PERSO``, EF.ATR/INFO, a serial (random unless given) and K_perso = diversify(master, serial).

    ``create`` goes to :meth:`VirtualCard.create` (``extended_length``, ``uid``, buffer sizes...).
    Only the diversified key is stored on the card.
    """
    from ektp_card.virtual.card import VirtualCard  # the card module imports this one

    serial = secrets.token_bytes(SERIAL_LENGTH) if serial is None else serial
    card = VirtualCard.create(life_cycle=LifeCycle.CREATION, admin=AccessCondition.require(PERSO), **create)
    install_personalisation_key(card, diversify(master_key, serial), serial)
    return card


def card_serial(card: VirtualCard) -> bytes | None:
    return card.keys.get(CARD_SERIAL)


def personalisation_state(card: VirtualCard) -> PersoState:
    """What the card itself knows: locked once operational; else blank or incomplete by content."""
    if not card.life_cycle.before_operational:
        return PersoState.LOCKED
    return PersoState.INCOMPLETE if _written(card) else PersoState.BLANK


def _written(card: VirtualCard) -> bool:
    """Whether anything beyond the factory content is on the card: a file other than EF.ATR/INFO
    under the MF, or a key object other than the base ones."""
    extra_files = any(f.fid != EF_ATR_INFO_FID for f in card.fs.mf.children)
    return extra_files or bool(set(card.keys) - BASE_KEYS)


# --- checks shared by the commands --------------------------------------------------------------------


def _require_not_locked(card: VirtualCard) -> None:
    # 6985: no authentication can make a locked card accept personalisation again.
    if not card.life_cycle.before_operational:
        refuse(SW.CONDITIONS_NOT_SATISFIED)


def _require_perso(card: VirtualCard) -> None:
    _require_not_locked(card)
    security = card.security
    if security.channel is None or PERSO not in security.granted:
        refuse(SW.SECURITY_STATUS_NOT_SATISFIED)


def _tries(card: VirtualCard) -> int:
    value = card.keys.get(PERSO_TRIES, b"\x00")
    return value[0] if value else 0


def _set_tries(card: VirtualCard, tries: int) -> None:
    card.keys[PERSO_TRIES] = bytes((tries,))


# --- authentication -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AuthRun:
    """An INITIALIZE UPDATE waiting for its EXTERNAL AUTHENTICATE."""

    keys: SessionKeys

    def __repr__(self) -> str:
        return "PersoAuthentication()"


def initialize_update(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """INITIALIZE UPDATE (80 50): the card's challenge and cryptogram for the desk's challenge."""
    _require_not_locked(card)
    if apdu.p1 or apdu.p2:
        refuse(SW.INCORRECT_P1P2)
    if len(apdu.data) != CHALLENGE_LENGTH or apdu.le is None:
        refuse(SW.WRONG_LENGTH)
    if card.security.channel is not None:
        # A session is already open; a new authentication starts after a reset.
        refuse(SW.CONDITIONS_NOT_SATISFIED)
    k_perso, serial = card.keys.get(PERSO_KEY), card.keys.get(CARD_SERIAL)
    if k_perso is None or serial is None:
        refuse(SW.REFERENCED_DATA_NOT_FOUND)
    tries = _tries(card)
    if tries == 0:
        refuse(SW.AUTH_METHOD_BLOCKED)
    # Counted down before the card answers, and given back only by a successful EXTERNAL
    # AUTHENTICATE: cutting the power after a wrong guess does not save the try.
    _set_tries(card, tries - 1)
    card_challenge = secrets.token_bytes(CHALLENGE_LENGTH)
    keys = session_keys(k_perso, apdu.data, card_challenge)
    card.session.protocol_state = _AuthRun(keys)
    answer = InitializeUpdateAnswer(serial, keys.cipher, _written(card), card_challenge, keys.card_cryptogram)
    return ok(answer.encode())


def external_authenticate(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """EXTERNAL AUTHENTICATE (80 82): the desk's cryptogram; success opens the perso session."""
    session = card.session
    run = session.protocol_state
    if not isinstance(run, _AuthRun):
        refuse(SW.CONDITIONS_NOT_SATISFIED)
    # One answer per INITIALIZE UPDATE, right or wrong.
    session.protocol_state = None
    _require_not_locked(card)
    if apdu.p1 or apdu.p2:
        refuse(SW.INCORRECT_P1P2)
    if len(apdu.data) != CRYPTOGRAM_LENGTH:
        refuse(SW.WRONG_LENGTH)
    if not run.keys.host_proves(apdu.data):
        return ResponseApdu(b"", SW.counter(min(_tries(card), 15)))
    _set_tries(card, MAX_TRIES)
    mf = card.fs.mf
    if mf.lcs is LifeCycle.CREATION:
        mf.lcs = LifeCycle.INITIALISATION
    security = card.security
    security.granted.clear()
    security.grant(PERSO)
    keys = run.keys
    security.open_channel(CardSecureMessaging(keys.cipher, keys.k_enc, keys.k_mac, 0))
    return ok()


# --- personalisation commands --------------------------------------------------------------------------


def _key_request(apdu: CommandApdu) -> tuple[bytes, Curve]:
    try:
        objects = parse_dict(apdu.data)
    except TlvError:
        refuse(SW.INCORRECT_DATA)
    if objects.keys() != {0x80, 0x84} or len(objects[0x84]) != 1:
        refuse(SW.INCORRECT_DATA)
    curve = STANDARDIZED_CURVES.get(objects[0x84][0])
    if curve is None:
        refuse(SW.INCORRECT_DATA)
    return objects[0x80], curve


def generate_asymmetric_key_pair(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """GENERATE ASYMMETRIC KEY PAIR (46, ISO/IEC 7816-8): a Chip or Active Authentication key pair
    made on the card; only the public key comes out, as 7F49 {06 OID, 86 point} (BSI TR-03110-3
    section D.3)."""
    _require_perso(card)
    if apdu.p1 != 0x00 or apdu.p2 not in (KEY_CHIP_AUTHENTICATION, KEY_ACTIVE_AUTHENTICATION):
        refuse(SW.INCORRECT_P1P2)
    oid, curve = _key_request(apdu)
    if apdu.p2 == KEY_CHIP_AUTHENTICATION:
        algorithm = _CA_BY_OID.get(oid)
        if algorithm is None:
            refuse(SW.INCORRECT_DATA)
        _, info = install_chip_authentication(card, curve=curve, algorithm=algorithm)
        key = info.public_key
    else:
        hash_name = _AA_HASH_BY_OID.get(oid)
        if hash_name is None or cryptography_curve(curve) is None:
            refuse(SW.INCORRECT_DATA)
        dg15, _ = install_active_authentication(card, curve=curve, hash_name=hash_name)
        key = dg15.public_key
    if not isinstance(key, EcPublicKey):
        refuse(SW.NO_PRECISE_DIAGNOSIS)
    return ok(Tlv.of(_TAG_PUBLIC_KEY, Tlv(0x06, oid), Tlv(0x86, key.point)).encode())


def put_data(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """PUT DATA (80 DA): P1P2 00 02 stores the CAN, the PACE password printed on the card; P1P2 7F21
    (the CV certificate tag) makes a CVCA certificate the Terminal Authentication trust point."""
    _require_perso(card)
    p1p2 = apdu.p1 << 8 | apdu.p2
    if p1p2 == T_CERTIFICATE:
        return _put_trust_point(card, apdu.data)
    if p1p2 != CAN_REFERENCE:
        refuse(SW.INCORRECT_P1P2)
    can = apdu.data
    if not 1 <= len(can) <= MAX_CAN_LENGTH or not can.isdigit():
        refuse(SW.INCORRECT_DATA)
    card.keys[PASSWORD_KEYS[PasswordType.CAN]] = Password.can(can.decode("ascii")).key
    return ok()


def _put_trust_point(card: VirtualCard, data: bytes) -> ResponseApdu:
    # Here, not at the top: the e-KTP's data group codecs are no part of a card OS that only serves them.
    from ektp_card.lds.ektp import EKTP_AID

    # EF.CVCA belongs to the e-KTP application: created there if the desk did not write it, so it
    # always names the trust point the chip really has.
    application = next((df for df in card.fs.dfs() if df.name == EKTP_AID), None)
    try:
        install_trust_point(card, data, application=application)
    except (PkiError, LdsFormatError, ValueError):
        refuse(SW.INCORRECT_DATA)
    return ok()


def get_data(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """GET DATA (80 CA FF 21): the free memory, as GlobalPlatform's Extended Card Resources
    Information FF21 {82 free non-volatile bytes}, so the desk can check before its first write that
    a record fits. Only in the perso session: what a locked card has left says something about
    what it holds."""
    _require_perso(card)
    if (apdu.p1 << 8 | apdu.p2) != CARD_RESOURCES:
        refuse(SW.REFERENCED_DATA_NOT_FOUND)
    if apdu.data:
        refuse(SW.WRONG_LENGTH)
    free = card.fs.free
    return ok(Tlv.of(CARD_RESOURCES, Tlv(TAG_FREE_MEMORY, free.to_bytes(4, "big"))).encode())


def erase(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """ERASE (80 E4): back to the factory content (EF.ATR/INFO and the base keys), still in
    initialisation, so a personalisation interrupted half way starts again from scratch."""
    _require_perso(card)
    if apdu.p1 or apdu.p2:
        refuse(SW.INCORRECT_P1P2)
    if apdu.data:
        refuse(SW.WRONG_LENGTH)
    mf = card.fs.mf
    kept = [f for f in mf.children if f.fid == EF_ATR_INFO_FID]
    for f in mf.children:
        if f not in kept:
            f.parent = None
    mf.children[:] = kept
    for name in set(card.keys) - BASE_KEYS:
        del card.keys[name]
    card.select(mf)
    return ok()


def lock(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """LOCK (80 F0 80 05): the last personalisation command, done in one step. Every file and the
    card become operational, K_perso is deleted and the session's rights end; the answer still
    travels under the session's secure messaging."""
    _require_perso(card)
    if (apdu.p1, apdu.p2) != LOCK_P1P2:
        refuse(SW.INCORRECT_P1P2)
    if apdu.data:
        refuse(SW.WRONG_LENGTH)
    for f in card.fs.walk():
        if f.lcs.before_operational:
            f.lcs = LifeCycle.OPERATIONAL_ACTIVATED
    for name in (PERSO_KEY, PERSO_TRIES):
        card.keys.pop(name, None)
    card.security.end_channel()
    return ok()


GENERATE_ASYMMETRIC_KEY_PAIR = Command("GENERATE ASYMMETRIC KEY PAIR", generate_asymmetric_key_pair)
#: The proprietary-class (CLA 80) personalisation commands, by INS.
PERSO_COMMANDS = MappingProxyType(
    {
        INS_INITIALIZE_UPDATE: Command("INITIALIZE UPDATE", initialize_update),
        INS_EXTERNAL_AUTHENTICATE: Command("EXTERNAL AUTHENTICATE", external_authenticate),
        INS_PUT_DATA: Command("PUT DATA", put_data, Chaining.BUFFER),
        INS_GET_DATA: Command("GET DATA", get_data),
        INS_ERASE: Command("ERASE", erase),
        INS_LOCK: Command("LOCK", lock),
    }
)

__all__ = [
    "BASE_KEYS",
    "CARD_SERIAL",
    "GENERATE_ASYMMETRIC_KEY_PAIR",
    "MAX_TRIES",
    "PERSO_COMMANDS",
    "PERSO_KEY",
    "PERSO_TRIES",
    "PersoState",
    "blank_card",
    "card_serial",
    "install_personalisation_key",
    "personalisation_state",
]
