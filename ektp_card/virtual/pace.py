"""The chip's side of PACE (ECDH Generic, Integrated and Chip Authentication Mapping) for the
virtual card. Chip Authentication Mapping uses the card's Chip Authentication key (``ca.private``,
:mod:`ektp_card.virtual.ca`), which must lie on the PACE curve.

ICAO Doc 9303-11 section 4.4 (the APDUs in 4.4.4 and 4.4.5); PIN and PUK as BSI TR-03110 defines
them for eID cards. A card supports PACE when :func:`install_pace` has put EF.CardAccess (FID 011C, SFI 1C,
under the MF, free read) and at least one password on it. Passwords are key objects of the card
(``card.keys``), saved in its image: ``pace.mrz`` (K = SHA-1 of the MRZ information), ``pace.can``,
``pace.pin`` and ``pace.puk`` (their ISO/IEC 8859-1 bytes), and ``pace.pin.retries``, the PIN's
retry counter (one byte).

The PIN follows BSI TR-03110-2 (PIN management): three tries; after two failures (counter 1) the PIN is
suspended and MSE:Set AT for it answers 63C1 unless the session already ran PACE with the CAN
(which "resumes" it for one more try, PACE-PIN then running inside the CAN's secure messaging);
a failure at counter 1 blocks it (6983 from then on). A successful PACE-PIN resets the counter.

Success grants ``PACE`` and ``PACE_<password>`` (e.g. ``PACE_CAN``) in place of every earlier
right and opens secure messaging with the new keys (SSC 0). The answer to the last GENERAL
AUTHENTICATE still travels under the session it arrived in. A failed step ends the run, any secure
messaging and every right of the session.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import Tlv, parse_dict, unpack
from ektp_card.crypto.kdf import COUNTER_PI as _COUNTER_PI
from ektp_card.crypto.kdf import Cipher, kdf, session_keys
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.crypto.pace import (
    ECDH_GM_AES128,
    MappingType,
    PaceParameters,
    Password,
    PasswordType,
    authentication_token,
    chip_authentication_data,
    encrypt_chip_authentication_data,
    encrypt_nonce,
    integrated_generator,
    map_generator,
    nonce_length,
    peer_point,
    private_key,
    shared_secret,
)
from ektp_card.ec import KeySource, Point, default_key_source
from ektp_card.errors import LdsFormatError, PaceError, TlvError
from ektp_card.lds.capacity import ef_storage
from ektp_card.lds.card_access import EF_CARD_ACCESS_FID, EF_CARD_ACCESS_SFI, CardAccess, PaceInfo
from ektp_card.lds.conditions import PACE, AccessCondition, SecurityAttributes
from ektp_card.virtual.commands import Chaining, Command, ok, refuse
from ektp_card.virtual.config import FailureKind

if TYPE_CHECKING:
    from ektp_card.virtual.card import VirtualCard

#: Card key names of the passwords, by MSE:Set AT password reference.
PASSWORD_KEYS = {
    PasswordType.MRZ: "pace.mrz",
    PasswordType.CAN: "pace.can",
    PasswordType.PIN: "pace.pin",
    PasswordType.PUK: "pace.puk",
}
PIN_RETRIES_KEY = "pace.pin.retries"
#: Tries of a fresh PIN (BSI TR-03110-2, PIN management).
PIN_RETRIES = 3
#: What :func:`install_pace` offers unless told otherwise: brainpoolP256r1 with AES-128, the
#: combination of ICAO Doc 9303-11 Appendix G.1.
DEFAULT_PACE_INFOS = (PaceInfo(ECDH_GM_AES128.oid, 2, 13),)

_ALWAYS, _NEVER = AccessCondition.ALWAYS, AccessCondition.NEVER
_CHAIN_BIT = 0x10
_TAG_DYNAMIC = 0x7C


def granted_condition(password: PasswordType) -> str:
    """The condition name PACE with ``password`` grants besides ``PACE``, e.g. ``PACE_CAN``."""
    return f"{PACE}_{password.name}"


# --- configuration -------------------------------------------------------------------------------


def install_pace(
    card: VirtualCard,
    *,
    can: str | None = None,
    pin: str | None = None,
    puk: str | None = None,
    mrz: MrzInfo | None = None,
    infos: Sequence[PaceInfo] = DEFAULT_PACE_INFOS,
) -> None:
    """Let ``card`` answer PACE: write EF.CardAccess with ``infos`` (other SecurityInfos already in
    the file stay) and store the given passwords; a new PIN starts with three tries."""
    for info in infos:
        if not info.supported:
            raise ValueError(f"the virtual card cannot run PACE {info.protocol} / {info.parameter_id}")
    passwords = {
        PasswordType.CAN: None if can is None else Password.can(can),
        PasswordType.PIN: None if pin is None else Password.pin(pin),
        PasswordType.PUK: None if puk is None else Password.puk(puk),
        PasswordType.MRZ: None if mrz is None else Password.from_mrz_information(mrz.mrz_information),
    }
    if not any(passwords.values()):
        raise ValueError("PACE needs at least one password")
    for kind, password in passwords.items():
        if password is not None:
            card.keys[PASSWORD_KEYS[kind]] = password.key
    if pin is not None:
        _set_pin_retries(card, PIN_RETRIES)
    _write_card_access(card, infos)


def _write_card_access(card: VirtualCard, infos: Sequence[PaceInfo]) -> None:
    mf = card.fs.mf
    ef = mf.child_ef(EF_CARD_ACCESS_FID)
    present = () if ef is None else CardAccess.decode(bytes(ef.data)).infos
    kept = [i for i in present if not isinstance(i, PaceInfo)]
    # DER orders the elements of a SET OF by their encodings (ITU-T X.690 section 11.6).
    content = CardAccess(tuple(sorted([*infos, *kept], key=lambda i: i.encode()))).encode()
    if ef is None:
        card.fs.create_ef(
            mf,
            EF_CARD_ACCESS_FID,
            data=content,
            sfi=EF_CARD_ACCESS_SFI,
            access=SecurityAttributes(_ALWAYS, _NEVER, _NEVER),
        )
    else:
        # The file grows: the card's memory must hold the new size (6A84 otherwise, nothing changed).
        card.fs.require_room(ef_storage(len(content)) - ef.storage, "EF.CardAccess")
        ef.data = bytearray(content)


def pin_retries(card: VirtualCard) -> int | None:
    """The PIN's retry counter, ``None`` if the card has no PIN."""
    value = card.keys.get(PIN_RETRIES_KEY)
    return None if value is None else value[0]


def _set_pin_retries(card: VirtualCard, value: int) -> None:
    card.keys[PIN_RETRIES_KEY] = bytes((value,))


# --- one run, step by step ------------------------------------------------------------------------


class ChipPace:
    """The chip's computations of one PACE run, free of any card state.

    ``random_bytes`` draws the nonce and ``key_source`` the chip's two private keys (mapping, then
    ephemeral), both from ``secrets`` unless given.
    """

    def __init__(
        self,
        parameters: PaceParameters,
        password: PasswordType,
        password_key: bytes,
        *,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        key_source: KeySource = default_key_source,
        static_private: int | None = None,
    ) -> None:
        if (parameters.algorithm.mapping is MappingType.CAM) != (static_private is not None):
            raise ValueError("Chip Authentication Mapping, and only it, needs the chip's static private key")
        self.parameters = parameters
        self.password = password
        self._static_private = static_private
        self._map_private = 0
        self._k_pi = kdf(password_key, _COUNTER_PI, parameters.cipher)
        self._random_bytes = random_bytes
        self._key_source = key_source
        #: The step the next GENERAL AUTHENTICATE must be: 1 nonce, 2 mapping, 3 agreement, 4 tokens.
        self.step = 1
        self._nonce = b""
        self._map_public = b""
        self._mapped: Point | None = None
        self._eph_public = b""
        self._terminal_eph = b""
        self._k_mac = b""
        self._k_enc = b""

    def __repr__(self) -> str:
        return f"ChipPace({self.parameters.algorithm.name}, {self.password.name}, step {self.step})"

    @property
    def cipher(self) -> Cipher:
        return self.parameters.cipher

    def session_keys(self) -> tuple[bytes, bytes]:
        """(K_Enc, K_MAC), once the key agreement step is done."""
        return self._k_enc, self._k_mac

    @property
    def chip_public_key(self) -> bytes:
        return self._eph_public

    def encrypted_nonce(self) -> bytes:
        """Step 1: z = E(K_pi, s) for a fresh nonce s."""
        self._nonce = self._random_bytes(nonce_length(self.cipher))
        return encrypt_nonce(self.cipher, self._k_pi, self._nonce)

    def mapping(self, terminal_key: bytes) -> bytes:
        """Step 2: the chip's mapping public key; G~ = s*G + SK_map * PK_map_PCD. With Integrated
        Mapping ``terminal_key`` is the terminal's nonce t, G~ = f_G(R_p(s, t)) and the answer empty."""
        curve = self.parameters.curve
        if self.parameters.algorithm.mapping is MappingType.IM:
            self._mapped = integrated_generator(self.parameters, self._nonce, terminal_key)
            return b""
        key = private_key(curve, self._key_source)
        self._map_private = key.scalar
        self._map_public = curve.encode_point(key.public)
        terminal = peer_point(curve, terminal_key, self._map_public, "terminal's mapping key")
        self._mapped = map_generator(curve, self._nonce, key.multiply(terminal))
        return self._map_public

    def key_agreement(self, terminal_key: bytes) -> bytes:
        """Step 3: the chip's ephemeral public key on G~; derives K_Enc and K_MAC."""
        curve, mapped = self.parameters.curve, self._mapped
        if mapped is None:
            raise PaceError("key agreement before the mapping")
        key = private_key(curve, self._key_source)
        self._eph_public = curve.encode_point(key.multiply(mapped))
        terminal = peer_point(curve, terminal_key, self._eph_public, "terminal's ephemeral key")
        self._terminal_eph = terminal_key
        self._k_enc, self._k_mac = session_keys(shared_secret(curve, key, terminal), self.cipher)
        return self._eph_public

    def tokens(self, terminal_token: bytes) -> bytes | None:
        """Step 4: the chip's token if the terminal's verifies, else ``None`` (wrong password)."""
        algorithm = self.parameters.algorithm
        expected = authentication_token(algorithm, self._k_mac, self._eph_public)
        if not hmac.compare_digest(expected, terminal_token):
            return None
        return authentication_token(algorithm, self._k_mac, self._terminal_eph)

    def chip_authentication(self) -> bytes | None:
        """With Chip Authentication Mapping, after the tokens: A_IC = E(K_Enc, CA_IC) for DO 8A."""
        if self._static_private is None:
            return None
        data = chip_authentication_data(self.parameters.curve, self._static_private, self._map_private)
        return encrypt_chip_authentication_data(self._k_enc, data)


# --- the commands ------------------------------------------------------------------------------------


def _card_access(card: VirtualCard) -> CardAccess | None:
    ef = card.fs.mf.child_ef(EF_CARD_ACCESS_FID)
    if ef is None:
        return None
    try:
        return CardAccess.decode(bytes(ef.data))
    except LdsFormatError:
        return None


def _choose(card: VirtualCard, oid: bytes, parameter_id: bytes | None) -> PaceParameters:
    """The PACEInfo of EF.CardAccess that MSE:Set AT names: 6A80 for a protocol the card does
    not offer, 6A88 for domain parameters it does not have."""
    access = _card_access(card)
    if access is None:
        refuse(SW.REFERENCED_DATA_NOT_FOUND)
    offered = [i for i in access.pace_infos if i.algorithm.oid_bytes == oid and i.supported]
    if not offered:
        refuse(SW.INCORRECT_DATA)
    if parameter_id is None and card.config.quirks.pace_parameter_id:
        refuse(SW.INCORRECT_DATA)  # a chip that wants DO 84 even when there is no choice to make
    if parameter_id is not None:
        if len(parameter_id) != 1:
            refuse(SW.INCORRECT_DATA)
        offered = [i for i in offered if i.parameter_id == parameter_id[0]]
        if not offered:
            refuse(SW.REFERENCED_DATA_NOT_FOUND)
    return offered[0].parameters


def _set_at(card: VirtualCard, data: bytes) -> ResponseApdu:
    try:
        objects = parse_dict(data)
    except TlvError:
        refuse(SW.INCORRECT_DATA)
    # DO 80 protocol, DO 83 password reference, DO 84 domain parameter ID (ICAO Doc 9303-11
    # 4.4.4.1). Other objects are ignored, as its note 2 advises: a CHAT (7F4C) only matters to
    # Terminal Authentication, which this card does not run yet.
    if not {0x80, 0x83} <= objects.keys():
        refuse(SW.INCORRECT_DATA)
    reference = objects[0x83]
    if len(reference) != 1:
        refuse(SW.INCORRECT_DATA)
    try:
        password = PasswordType(reference[0])
    except ValueError:
        refuse(SW.INCORRECT_DATA)
    parameters = _choose(card, objects[0x80], objects.get(0x84))
    key = card.keys.get(PASSWORD_KEYS[password])
    if key is None:
        refuse(SW.REFERENCED_DATA_NOT_FOUND)
    session = card.session
    sw: int = SW.OK
    if password is PasswordType.PIN:
        retries = pin_retries(card) or 0
        if retries == 0:
            refuse(SW.AUTH_METHOD_BLOCKED)
        if retries == 1 and granted_condition(PasswordType.CAN) not in card.security.granted:
            # Suspended: only a session that proved the CAN may try the PIN (BSI TR-03110-2).
            return ResponseApdu(b"", SW.counter(1))
        if retries < PIN_RETRIES:
            # 63Cx as a warning: PACE goes on, the terminal learns the counter.
            sw = SW.counter(retries)
    static_private = None
    if parameters.algorithm.mapping is MappingType.CAM:
        from ektp_card.virtual.ca import chip_key  # Chip Authentication builds on this module

        static = chip_key(card)
        if static is None or static.curve != parameters.curve:
            refuse(SW.REFERENCED_DATA_NOT_FOUND)  # no Chip Authentication key on the PACE curve
        static_private = static.private
    # The nonce and both ephemeral keys come from the card's one random source.
    session.protocol_state = ChipPace(
        parameters,
        password,
        key,
        random_bytes=card.random.bytes,
        key_source=card.random.scalar,
        static_private=static_private,
    )
    return ResponseApdu(b"", sw)


def set_at_pace(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """MSE:Set AT for mutual authentication (P1-P2 C1 A4): starts a PACE run.

    A card still open to personalisation refuses (6985): torn between writing the CAN and LOCK, it
    must not pass for an issued card while the issuer's key can still rewrite it.
    """
    from ektp_card.virtual.perso import PERSO_KEY  # the personalisation side imports this module

    if PERSO_KEY in card.keys and card.life_cycle.before_operational:
        refuse(SW.CONDITIONS_NOT_SATISFIED)
    return _set_at(card, apdu.data)


#: One MSE variant: the handler of the P1-P2 (operation and control reference template, ISO/IEC
#: 7816-4 section 7.5.11) that a protocol owns, e.g. C1 A4 Set AT for PACE, 41 A4 Set AT and 41 A6
#: Set KAT for Chip Authentication (BSI TR-03110-3 B.11.1). It runs after the dispatcher aborted
#: the authentication run in progress.
MseVariant = Callable[["VirtualCard", CommandApdu], ResponseApdu]
#: PACE's MSE variants, by (P1, P2).
PACE_MSE_VARIANTS: Mapping[tuple[int, int], MseVariant] = MappingProxyType({(0xC1, 0xA4): set_at_pace})


def mse_command(variants: Mapping[tuple[int, int], MseVariant]) -> Command:
    """MANAGE SECURITY ENVIRONMENT (22) dispatched by P1-P2 to the protocol owning that variant;
    any other P1-P2 answers 6A86. Every MSE aborts the authentication run in progress."""
    table = MappingProxyType(dict(variants))

    def manage_security_environment(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
        card.session.protocol_state = None
        variant = table.get((apdu.p1, apdu.p2))
        if variant is None:
            refuse(SW.INCORRECT_P1P2)
        return variant(card, apdu)

    return Command("MANAGE SECURITY ENVIRONMENT", manage_security_environment)


@runtime_checkable
class GeneralAuthenticateRun(Protocol):
    """A run other than PACE that an MSE variant started and GENERAL AUTHENTICATE continues (e.g.
    Chip Authentication): it answers the command itself."""

    def general_authenticate(self, card: VirtualCard, apdu: CommandApdu) -> ResponseApdu: ...


def _abort(card: VirtualCard, sw: int) -> ResponseApdu:
    """End the run, the command chain it used, and the session's rights and secure messaging."""
    session = card.session
    session.protocol_state = None
    session.chain = None
    card.security.end_channel()
    return ResponseApdu(b"", sw)


def _password_failed(card: VirtualCard, run: ChipPace) -> ResponseApdu:
    if run.password is not PasswordType.PIN:
        return _abort(card, card.failure_word(FailureKind.PACE_MISMATCH, SW.VERIFICATION_FAILED))
    # MSE:Set AT let the run start only with at least one try left.
    retries = max(0, (pin_retries(card) or 0) - 1)
    _set_pin_retries(card, retries)
    return _abort(card, SW.counter(retries))


def general_authenticate(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """GENERAL AUTHENTICATE (86) continuing the PACE run MSE:Set AT started; steps 1-3 chained.
    Another protocol's run (a :class:`GeneralAuthenticateRun`) answers the command itself."""
    run = card.session.protocol_state
    if isinstance(run, GeneralAuthenticateRun):
        return run.general_authenticate(card, apdu)
    if not isinstance(run, ChipPace):
        card.session.chain = None
        refuse(SW.CONDITIONS_NOT_SATISFIED)
    if apdu.p1 or apdu.p2:
        return _abort(card, SW.INCORRECT_P1P2)
    chained = bool(apdu.cla & _CHAIN_BIT)
    if chained != (run.step < 4):
        return _abort(card, SW.CONDITIONS_NOT_SATISFIED)
    try:
        objects = parse_dict(unpack(_TAG_DYNAMIC, apdu.data))
    except TlvError:
        return _abort(card, SW.INCORRECT_DATA)
    expected = {1: set(), 2: {0x81}, 3: {0x83}, 4: {0x85}}[run.step]
    if objects.keys() != expected:
        return _abort(card, SW.INCORRECT_DATA)
    reply: Tlv | None
    try:
        if run.step == 1:
            reply = Tlv(0x80, run.encrypted_nonce())
        elif run.step == 2:
            mapping = run.mapping(objects[0x81])
            # Integrated Mapping answers with an empty 7C (ICAO Doc 9303-11 section 4.4.4.3).
            reply = Tlv(0x82, mapping) if mapping else None
        elif run.step == 3:
            reply = Tlv(0x84, run.key_agreement(objects[0x83]))
        else:
            token = run.tokens(objects[0x85])
            if token is None:
                return _password_failed(card, run)
            cam = run.chip_authentication()
            _complete(card, run)
            answer = (Tlv(0x86, token),) if cam is None else (Tlv(0x86, token), Tlv(0x8A, cam))
            return ok(Tlv.of(_TAG_DYNAMIC, *answer).encode())
    except PaceError:
        return _abort(card, SW.INCORRECT_DATA)
    run.step += 1
    return ok(Tlv.of(_TAG_DYNAMIC, *(() if reply is None else (reply,))).encode())


def _complete(card: VirtualCard, run: ChipPace) -> None:
    """Grant the rights and open secure messaging with the new keys (ICAO Doc 9303-11 4.4.2)."""
    card.session.protocol_state = None
    if run.password is PasswordType.PIN:
        _set_pin_retries(card, PIN_RETRIES)
    security = card.security
    k_enc, k_mac = run.session_keys()
    security.granted.clear()
    security.grant(PACE, granted_condition(run.password))
    # A new PACE session: Terminal Authentication starts over, bound to this chip key (ID_PICC).
    size = run.parameters.curve.size
    security.id_picc = run.chip_public_key[1 : 1 + size]
    security.terminal = None
    security.open_channel(card.secure_channel(run.cipher, k_enc, k_mac, 0))


GENERAL_AUTHENTICATE = Command("GENERAL AUTHENTICATE", general_authenticate, Chaining.EACH)
