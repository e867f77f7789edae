"""The chip's side of Chip Authentication (ECDH, versions 1 and 2) for the virtual card.

ICAO Doc 9303-11 section 6.2 and BSI TR-03110-3 appendix B.2 (see :mod:`ektp_card.crypto.ca` for
the protocol). A card supports it when :func:`install_chip_authentication` (or
:func:`install_chip_keys`) has put a key pair on it. The key objects, saved in the card image and
never readable through any command:

* ``ca.private``: the private key, the scalar big-endian on the byte length of the group order;
* ``ca.public``: the DER ChipAuthenticationPublicKeyInfo (the curve, the public key, the key ID);
* ``ca.info``: the DER ChipAuthenticationInfo (protocol OID, so the cipher, and version).

The commands answer only inside the secure messaging of PACE or BAC (6982 otherwise):

* MSE:Set AT (41 A4) with DO 80 the card's protocol OID and optionally DO 84 its key ID, then
  GENERAL AUTHENTICATE 7C { 80 PK_IFD }, answered 7C { } in version 1 and 7C { 81 r, 82 T } in
  version 2;
* MSE:Set KAT (41 A6) with DO 91 PK_IFD (and DO 84), for version 1 with 3DES only (TR-03110-3 B.2).

On success the answer still travels under the old keys; then the card restarts secure messaging
with the new ones (SSC 0) and grants ``CA`` besides the rights of the session. A refused step ends
the run and leaves the running secure messaging as it was. After a successful Terminal
Authentication in the session the terminal's key must be the one whose compressed form TA's
MSE:Set AT carried (DO 91; BSI TR-03110-2 section 3.4): any other answers 6A80.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import Tlv, parse_dict, unpack
from ektp_card.crypto.ca import (
    CA_ECDH_AES128,
    CA_VERSIONS,
    NONCE_LENGTH,
    CaAlgorithm,
    ca_session_keys,
    ca_token,
    key_id_bytes,
    shared_secret,
)
from ektp_card.crypto.kdf import Cipher
from ektp_card.ec import BRAINPOOLP256R1, Curve, InvalidPointError, KeySource, default_key_source
from ektp_card.errors import ChipAuthenticationError, LdsFormatError, TlvError
from ektp_card.lds.conditions import BAC, CA, PACE, AccessCondition
from ektp_card.lds.dg14 import ChipAuthenticationInfo, ChipAuthenticationPublicKeyInfo, Dg14, Dg14Info
from ektp_card.lds.public_key import EcPublicKey, ParametersForm
from ektp_card.virtual.aa import install_active_authentication
from ektp_card.virtual.commands import ok, refuse
from ektp_card.virtual.ta import grant_after_ca, terminal_ephemeral_key

if TYPE_CHECKING:
    from ektp_card.virtual.card import VirtualCard
    from ektp_card.virtual.pace import MseVariant

CA_PRIVATE_KEY = "ca.private"
CA_PUBLIC_KEY = "ca.public"
CA_INFO = "ca.info"

#: Chip Authentication runs inside the secure messaging of PACE or BAC.
SESSION_CONDITION = AccessCondition.require(PACE) | AccessCondition.require(BAC)
_CHAIN_BIT = 0x10
_TAG_DYNAMIC = 0x7C


@dataclass(frozen=True, repr=False)
class ChipKey:
    """The card's Chip Authentication key pair as its key objects describe it."""

    info: ChipAuthenticationInfo
    public: ChipAuthenticationPublicKeyInfo
    curve: Curve
    private: int = field(repr=False)

    def __repr__(self) -> str:
        return f"ChipKey({self.info.algorithm.name}, version {self.info.version}, {self.curve.name})"

    @property
    def algorithm(self) -> CaAlgorithm:
        return self.info.algorithm

    @property
    def key_id(self) -> int | None:
        return self.public.key_id


def chip_key(card: VirtualCard) -> ChipKey | None:
    """The card's Chip Authentication key, ``None`` if it has none (or its key objects are unusable)."""
    private, public, info = (card.keys.get(name) for name in (CA_PRIVATE_KEY, CA_PUBLIC_KEY, CA_INFO))
    if private is None or public is None or info is None:
        return None
    try:
        public_info = ChipAuthenticationPublicKeyInfo.decode(public)
        key = public_info.public_key
        ca_info = ChipAuthenticationInfo.decode(info)
    except LdsFormatError:
        return None
    if not isinstance(key, EcPublicKey) or not ca_info.algorithm.supported:
        return None
    return ChipKey(ca_info, public_info, key.curve, int.from_bytes(private, "big"))


def install_chip_authentication(
    card: VirtualCard,
    *,
    curve: Curve = BRAINPOOLP256R1,
    algorithm: CaAlgorithm = CA_ECDH_AES128,
    version: int = 1,
    key_id: int | None = None,
    form: ParametersForm = ParametersForm.EXPLICIT,
    key_source: KeySource = default_key_source,
) -> tuple[ChipAuthenticationInfo, ChipAuthenticationPublicKeyInfo]:
    """Generate the card's Chip Authentication key pair on ``curve`` (the private key goes only
    into ``card.keys``) for ``algorithm`` and ``version``; the two SecurityInfos DG14 needs."""
    if not algorithm.supported or version not in CA_VERSIONS:
        raise ValueError(f"the virtual card cannot run {algorithm.name} version {version}")
    private = key_source(curve)
    point = curve.multiply(private, curve.generator)
    if point is None or not 1 <= private < curve.n:
        raise ValueError("a private key must lie in [1, n-1]")
    public = ChipAuthenticationPublicKeyInfo.of(EcPublicKey(curve, curve.encode_point(point)), key_id, form)
    info = ChipAuthenticationInfo(algorithm.oid, version, key_id)
    # One write: the key pair and its parameters are stored together or not at all (6A84).
    card.keys.update(
        {
            CA_PRIVATE_KEY: private.to_bytes((curve.n.bit_length() + 7) // 8, "big"),
            CA_PUBLIC_KEY: public.encode(),
            CA_INFO: info.encode(),
        }
    )
    return info, public


def install_chip_keys(
    card: VirtualCard,
    *,
    curve: Curve = BRAINPOOLP256R1,
    ca_algorithm: CaAlgorithm = CA_ECDH_AES128,
    ca_version: int = 1,
    key_id: int | None = None,
    aa_curve: Curve | None = None,
    aa_rsa_bits: int | None = None,
    aa_hash: str = "sha256",
    form: ParametersForm = ParametersForm.EXPLICIT,
    other_infos: tuple[Dg14Info, ...] = (),
) -> tuple[bytes, bytes]:
    """Generate the Chip and Active Authentication key pairs on the card (the private keys only
    in ``card.keys``) and return the contents of EF.DG14 and EF.DG15 (with their 6E / 6F tags).

    Active Authentication uses ECDSA on ``aa_curve`` (default: ``curve``), or RSA with
    ISO/IEC 9796-2 when ``aa_rsa_bits`` is given. ``other_infos`` (e.g. PACEInfos or a
    TerminalAuthenticationInfo) join the SecurityInfos.
    """
    ca_info, ca_public = install_chip_authentication(
        card, curve=curve, algorithm=ca_algorithm, version=ca_version, key_id=key_id, form=form
    )
    if aa_rsa_bits is not None:
        dg15, aa_info = install_active_authentication(
            card, rsa_bits=aa_rsa_bits, hash_name=aa_hash, form=form
        )
    else:
        dg15, aa_info = install_active_authentication(
            card, curve=aa_curve or curve, hash_name=aa_hash, form=form
        )
    infos: list[Dg14Info] = [ca_info, ca_public, *other_infos]
    if aa_info is not None:
        infos.append(aa_info)
    return Dg14.of(infos).encode(), dg15.encode()


# --- one run ---------------------------------------------------------------------------------------


class ChipCa:
    """The chip's computations of one Chip Authentication, free of card state; ``random_bytes``
    draws the version 2 nonce."""

    def __init__(self, key: ChipKey, *, random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self.key = key
        self._random_bytes = random_bytes

    def __repr__(self) -> str:
        return f"ChipCa({self.key!r})"

    def agree(self, terminal_key: bytes) -> tuple[bytes, tuple[bytes, bytes]]:
        """The GENERAL AUTHENTICATE answer data and (K_Enc, K_MAC) for the terminal's key;
        :class:`ChipAuthenticationError` if it is not a point of the curve."""
        key = self.key
        try:
            point = key.curve.decode_point(terminal_key)
        except InvalidPointError as exc:
            raise ChipAuthenticationError(f"the terminal's key is invalid: {exc}") from None
        shared = shared_secret(key.curve, key.private, point)
        if key.info.version == 1:
            return Tlv(_TAG_DYNAMIC).encode(), ca_session_keys(shared, key.algorithm.cipher)
        nonce = self._random_bytes(NONCE_LENGTH)
        keys = ca_session_keys(shared, key.algorithm.cipher, nonce)
        token = ca_token(key.algorithm, keys[1], terminal_key)
        return Tlv.of(_TAG_DYNAMIC, Tlv(0x81, nonce), Tlv(0x82, token)).encode(), keys

    def general_authenticate(self, card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
        """GENERAL AUTHENTICATE (86) of the run MSE:Set AT started: one unchained command."""
        session = card.session
        session.protocol_state = None
        if apdu.cla & _CHAIN_BIT:
            session.chain = None
            refuse(SW.CONDITIONS_NOT_SATISFIED)
        _require_session(card)
        if apdu.p1 or apdu.p2:
            refuse(SW.INCORRECT_P1P2)
        try:
            objects = parse_dict(unpack(_TAG_DYNAMIC, apdu.data))
        except TlvError:
            refuse(SW.INCORRECT_DATA)
        if objects.keys() != {0x80}:
            refuse(SW.INCORRECT_DATA)
        _check_terminal_binding(card, self.key.curve, objects[0x80])
        try:
            answer, keys = self.agree(objects[0x80])
        except ChipAuthenticationError:
            refuse(SW.INCORRECT_DATA)
        _complete(card, self.key.algorithm.cipher, keys)
        return ok(answer)


# --- the commands ------------------------------------------------------------------------------------


def _require_session(card: VirtualCard) -> None:
    security = card.security
    if security.channel is None or not security.satisfies(SESSION_CONDITION):
        refuse(SW.SECURITY_STATUS_NOT_SATISFIED)


def _key_for(card: VirtualCard) -> ChipKey:
    key = chip_key(card)
    if key is None:
        # A card without Chip Authentication answers as before it knew these MSE variants.
        refuse(SW.INCORRECT_P1P2)
    _require_session(card)
    return key


def _objects(data: bytes, required: int, allowed: frozenset[int]) -> dict[int, bytes]:
    try:
        objects = parse_dict(data)
    except TlvError:
        refuse(SW.INCORRECT_DATA)
    if required not in objects or not objects.keys() <= allowed:
        refuse(SW.INCORRECT_DATA)
    return objects


def _check_key_id(key: ChipKey, value: bytes | None) -> None:
    """DO 84 must name the card's key (6A88 otherwise); it may be left out with one key."""
    if value is None:
        return
    if key.key_id is None or value != key_id_bytes(key.key_id):
        refuse(SW.REFERENCED_DATA_NOT_FOUND)


def _check_terminal_binding(card: VirtualCard, curve: Curve, terminal_key: bytes) -> None:
    """After Terminal Authentication, only the ephemeral key it announced may be used (6A80)."""
    expected = terminal_ephemeral_key(card)
    if expected is None:
        return
    try:
        point = curve.decode_point(terminal_key)
    except InvalidPointError:
        refuse(SW.INCORRECT_DATA)
    if point.x.to_bytes(curve.size, "big") != expected:
        refuse(SW.INCORRECT_DATA)


def _complete(card: VirtualCard, cipher: Cipher, keys: tuple[bytes, bytes]) -> None:
    """Restart secure messaging with the new keys (SSC 0) and grant ``CA`` (and Terminal
    Authentication's rights, which wait for it)."""
    security = card.security
    security.open_channel(card.secure_channel(cipher, keys[0], keys[1], 0))
    security.grant(CA)
    grant_after_ca(card)


def set_at(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """MSE:Set AT for internal authentication (41 A4): DO 80 protocol OID, DO 84 key ID."""
    key = _key_for(card)
    objects = _objects(apdu.data, 0x80, frozenset({0x80, 0x84}))
    if objects[0x80] != key.algorithm.oid_bytes:
        refuse(SW.INCORRECT_DATA)
    _check_key_id(key, objects.get(0x84))
    card.session.protocol_state = ChipCa(key, random_bytes=card.random.bytes)
    return ok()


def set_kat(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """MSE:Set KAT (41 A6): DO 91 the terminal's ephemeral key, DO 84 key ID; version 1 with
    3DES only (6A81 otherwise, TR-03110-3 B.2)."""
    key = _key_for(card)
    if key.info.version != 1 or key.algorithm.cipher is not Cipher.TDES:
        refuse(SW.FUNCTION_NOT_SUPPORTED)
    objects = _objects(apdu.data, 0x91, frozenset({0x91, 0x84}))
    _check_key_id(key, objects.get(0x84))
    _check_terminal_binding(card, key.curve, objects[0x91])
    try:
        _, keys = ChipCa(key, random_bytes=card.random.bytes).agree(objects[0x91])
    except ChipAuthenticationError:
        refuse(SW.INCORRECT_DATA)
    _complete(card, key.algorithm.cipher, keys)
    return ok()


#: Chip Authentication's MSE variants, by (P1, P2), for the card's MSE dispatch.
CA_MSE_VARIANTS: Mapping[tuple[int, int], MseVariant] = MappingProxyType(
    {(0x41, 0xA4): set_at, (0x41, 0xA6): set_kat}
)


__all__ = [
    "CA_INFO",
    "CA_MSE_VARIANTS",
    "CA_PRIVATE_KEY",
    "CA_PUBLIC_KEY",
    "SESSION_CONDITION",
    "ChipCa",
    "ChipKey",
    "chip_key",
    "install_chip_authentication",
    "install_chip_keys",
    "set_at",
    "set_kat",
]
