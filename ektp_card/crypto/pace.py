"""PACE over ECDH with Generic, Integrated and Chip Authentication Mapping: the terminal side, and
the primitives both sides share.

ICAO Doc 9303-11 section 4.4 (protocol 4.4.1, cryptography 4.4.3, APDUs 4.4.4, data objects 4.4.5)
and section 9.7 (key derivation); BSI TR-03110 parts 2 and 3 for the PIN and PUK of eID cards. The
steps, with the terminal's commands::

    MSE:Set AT      00 22 C1 A4  80 <protocol OID> 83 <password reference> [84 <parameterId>]
    GA 1  nonce     10 86 00 00  7C 00                     -> 7C { 80 z = E(K_pi, s) }
    GA 2  mapping   10 86 00 00  7C { 81 PK_map_PCD }      -> 7C { 82 PK_map_PICC }
    GA 3  agreement 10 86 00 00  7C { 83 PK_eph_PCD }      -> 7C { 84 PK_eph_PICC }
    GA 4  tokens    00 86 00 00  7C { 85 T_PCD }           -> 7C { 86 T_PICC [87 CAR] [88 CAR] }

Generic Mapping: H = SK_map * PK_map(other side), G~ = s*G + H; the ephemeral keys live on G~;
Integrated Mapping (section 4.4.3.3.2): the terminal sends a nonce t in DO 81, the chip answers an
empty 7C, and G~ = f_G(R_p(s, t)), the point encoding of a pseudo-random field element. Chip
Authentication Mapping (sections 4.4.3.3.3 and 4.4.3.5) maps as Generic Mapping; the chip adds to its
token DO 8A, A_IC = E(K_Enc, CA_IC) with CA_IC = SK_IC^-1 * SK_map_IC mod n for its static Chip
Authentication key SK_IC, and the terminal checks PK_map_IC = CA_IC * PK_IC once it holds PK_IC,
signed, from DG14 or EF.CardSecurity;
K_Enc, K_MAC = KDF(x(SK_eph * PK_eph(other side))); each token is a MAC over the other side's
ephemeral public key in a public key data object 7F49 { 06 OID, 86 point }.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from types import MappingProxyType

from asn1crypto import core  # type: ignore[import-untyped]
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher as _BlockCipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes

from ektp_card.apdu.command import SHORT_MAX_LE, CommandApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SUCCESS, SW
from ektp_card.apdu.tlv import Tlv, parse_dict, unpack
from ektp_card.crypto.kdf import COUNTER_PI, Cipher, kdf, session_keys
from ektp_card.crypto.sm import SecureMessagingSession, pad, retail_mac, unpad
from ektp_card.ec import (
    STANDARDIZED_CURVES,
    Curve,
    InvalidPointError,
    KeySource,
    Point,
    PrivateKey,
    default_key_source,
)
from ektp_card.errors import (
    ApduError,
    AuthenticationBlockedError,
    EktpError,
    PaceError,
    PacePasswordError,
    TlvError,
    VerificationFailedError,
)

log = logging.getLogger("ektp_card.crypto.pace")

# --- object identifiers (ICAO Doc 9303-11 section 9.2.3; also BSI TR-03110-3) -----------------------

BSI_DE = "0.4.0.127.0.7"
ID_PACE = f"{BSI_DE}.2.2.4"


class KeyAgreement(Enum):
    DH = "DH"
    ECDH = "ECDH"


class MappingType(Enum):
    """Mapping of the nonce onto the domain parameters (ICAO Doc 9303-11 section 4.4.3.3)."""

    GM = "GM"  # Generic Mapping
    IM = "IM"  # Integrated Mapping
    CAM = "CAM"  # Chip Authentication Mapping


@dataclass(frozen=True)
class PaceAlgorithm:
    """One PACE protocol OID: key agreement, mapping, and the cipher of its secure messaging."""

    oid: str
    name: str
    key_agreement: KeyAgreement
    mapping: MappingType
    cipher: Cipher

    @property
    def supported(self) -> bool:
        """Whether this library runs it: ECDH with Generic, Integrated or Chip Authentication Mapping."""
        return self.key_agreement is KeyAgreement.ECDH and self.mapping in _SUPPORTED_MAPPINGS

    @property
    def oid_bytes(self) -> bytes:
        """The content octets of the OID, as DO 80 of MSE:Set AT and DO 06 of a token carry them."""
        return bytes(core.ObjectIdentifier(self.oid).contents or b"")


_SUPPORTED_MAPPINGS = frozenset({MappingType.GM, MappingType.IM, MappingType.CAM})

_FAMILIES = (
    (1, KeyAgreement.DH, MappingType.GM),
    (2, KeyAgreement.ECDH, MappingType.GM),
    (3, KeyAgreement.DH, MappingType.IM),
    (4, KeyAgreement.ECDH, MappingType.IM),
    (6, KeyAgreement.ECDH, MappingType.CAM),
)
_CIPHERS = (
    (1, Cipher.TDES, "3DES-CBC-CBC"),
    (2, Cipher.AES128, "AES-CBC-CMAC-128"),
    (3, Cipher.AES192, "AES-CBC-CMAC-192"),
    (4, Cipher.AES256, "AES-CBC-CMAC-256"),
)


def _algorithms() -> dict[str, PaceAlgorithm]:
    table = {}
    for arc, agreement, mapping in _FAMILIES:
        for sub, cipher, cipher_name in _CIPHERS:
            if mapping is MappingType.CAM and cipher is Cipher.TDES:
                continue  # ICAO Doc 9303-11 section 9.2.3 defines CAM with AES only
            oid = f"{ID_PACE}.{arc}.{sub}"
            name = f"id-PACE-{agreement.value}-{mapping.value}-{cipher_name}"
            table[oid] = PaceAlgorithm(oid, name, agreement, mapping, cipher)
    return table


#: Every PACE protocol OID of ICAO Doc 9303-11 section 9.2.3, by dotted OID.
PACE_ALGORITHMS: Mapping[str, PaceAlgorithm] = MappingProxyType(_algorithms())
ECDH_GM_3DES = PACE_ALGORITHMS[f"{ID_PACE}.2.1"]
ECDH_GM_AES128 = PACE_ALGORITHMS[f"{ID_PACE}.2.2"]
ECDH_GM_AES192 = PACE_ALGORITHMS[f"{ID_PACE}.2.3"]
ECDH_GM_AES256 = PACE_ALGORITHMS[f"{ID_PACE}.2.4"]
ECDH_IM_3DES = PACE_ALGORITHMS[f"{ID_PACE}.4.1"]
ECDH_IM_AES128 = PACE_ALGORITHMS[f"{ID_PACE}.4.2"]
ECDH_IM_AES192 = PACE_ALGORITHMS[f"{ID_PACE}.4.3"]
ECDH_IM_AES256 = PACE_ALGORITHMS[f"{ID_PACE}.4.4"]
ECDH_CAM_AES128 = PACE_ALGORITHMS[f"{ID_PACE}.6.2"]
ECDH_CAM_AES192 = PACE_ALGORITHMS[f"{ID_PACE}.6.3"]
ECDH_CAM_AES256 = PACE_ALGORITHMS[f"{ID_PACE}.6.4"]


@dataclass(frozen=True)
class PaceParameters:
    """What a PACEInfo selects: the protocol and the standardized domain parameters."""

    algorithm: PaceAlgorithm
    parameter_id: int

    def __post_init__(self) -> None:
        if not self.algorithm.supported:
            raise PaceError(
                f"{self.algorithm.name} is not supported (only ECDH with Generic, Integrated or Chip "
                "Authentication Mapping)"
            )
        if self.parameter_id not in STANDARDIZED_CURVES:
            raise PaceError(f"PACE domain parameters {self.parameter_id} are not a supported curve")
        if self.algorithm.mapping is MappingType.CAM and self.cipher is Cipher.TDES:
            raise PaceError("Chip Authentication Mapping runs with AES only")
        if self.algorithm.mapping is MappingType.IM and not point_encoding_applies(self.curve):
            raise PaceError(f"Integrated Mapping has no point encoding for {self.curve.name}")

    @property
    def curve(self) -> Curve:
        return STANDARDIZED_CURVES[self.parameter_id]

    @property
    def cipher(self) -> Cipher:
        return self.algorithm.cipher

    @classmethod
    def of(cls, oid: str, parameter_id: int) -> PaceParameters:
        algorithm = PACE_ALGORITHMS.get(oid)
        if algorithm is None:
            raise PaceError(f"{oid} is not a PACE protocol")
        return cls(algorithm, parameter_id)


# --- passwords (ICAO Doc 9303-11 section 9.7.3 and 4.4.4.1; PIN and PUK from BSI TR-03110-3) ----


class PasswordType(IntEnum):
    """Password reference of MSE:Set AT, DO 83."""

    MRZ = 1
    CAN = 2
    PIN = 3
    PUK = 4


@dataclass(frozen=True, repr=False)
class Password:
    """A PACE password and its type. ``key`` is the K of KDF_pi(K): SHA-1 of the MRZ information
    for the MRZ, the ISO/IEC 8859-1 bytes of the CAN, PIN or PUK. Its value never appears in
    ``repr`` or in errors."""

    type: PasswordType
    key: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"Password({self.type.name})"

    @classmethod
    def _secret(cls, kind: PasswordType, value: str) -> Password:
        if not value:
            raise ValueError(f"the {kind.name} is empty")
        try:
            return cls(kind, value.encode("iso-8859-1"))
        except UnicodeEncodeError:
            raise ValueError(f"the {kind.name} must be ISO/IEC 8859-1 text") from None

    @classmethod
    def can(cls, can: str) -> Password:
        return cls._secret(PasswordType.CAN, can)

    @classmethod
    def pin(cls, pin: str) -> Password:
        return cls._secret(PasswordType.PIN, pin)

    @classmethod
    def puk(cls, puk: str) -> Password:
        return cls._secret(PasswordType.PUK, puk)

    @classmethod
    def from_mrz_information(cls, information: str) -> Password:
        """K = SHA-1(MRZ information) (ICAO Doc 9303-11 section 9.7.3)."""
        digest = hashlib.sha1(information.encode("ascii"), usedforsecurity=True).digest()  # noqa: S324
        return cls(PasswordType.MRZ, digest)

    @classmethod
    def mrz(cls, document_number: str, date_of_birth: str, date_of_expiry: str) -> Password:
        """The MRZ password from its three fields (check digits computed; :class:`MrzError` if
        malformed)."""
        from ektp_card.crypto.mrz import MrzInfo  # a passport's password: the e-KTP's are the CAN and PIN

        info = MrzInfo(document_number, date_of_birth, date_of_expiry)
        return cls.from_mrz_information(info.mrz_information)


def password_key(password: Password, cipher: Cipher) -> bytes:
    """K_pi = KDF(f(password), 3) (ICAO Doc 9303-11 section 9.7.3)."""
    return kdf(password.key, COUNTER_PI, cipher)


# --- symmetric primitives ---------------------------------------------------------------------


def _cbc(cipher: Cipher, key: bytes) -> _BlockCipher[modes.CBC]:
    iv = bytes(cipher.block_size)
    # Two-key 3DES as K1 K2 K1: the three-key form OpenSSL keeps supporting.
    algorithm = TripleDES(key + key[:8]) if cipher is Cipher.TDES else algorithms.AES(key)
    return _BlockCipher(algorithm, modes.CBC(iv))


def nonce_length(cipher: Cipher) -> int:
    """Length of the chip's nonce s: the smallest multiple of the block size that is at least the
    key length (ICAO Doc 9303-11 section 4.4.3.3 asks for a multiple of the block size; taking the
    key length keeps the nonce's entropy at the key's strength)."""
    blocks = -(-cipher.key_length // cipher.block_size)
    return blocks * cipher.block_size


def encrypt_nonce(cipher: Cipher, k_pi: bytes, nonce: bytes) -> bytes:
    """z = E(K_pi, s): CBC with a zero IV, no padding (ICAO Doc 9303-11 section 4.4.3.3)."""
    if not nonce or len(nonce) % cipher.block_size:
        raise PaceError("the nonce is not a whole number of cipher blocks")
    enc = _cbc(cipher, k_pi).encryptor()
    return enc.update(nonce) + enc.finalize()


def decrypt_nonce(cipher: Cipher, k_pi: bytes, encrypted: bytes) -> bytes:
    """s = D(K_pi, z)."""
    if not encrypted or len(encrypted) % cipher.block_size:
        raise PaceError("the encrypted nonce is not a whole number of cipher blocks")
    dec = _cbc(cipher, k_pi).decryptor()
    return dec.update(encrypted) + dec.finalize()


def authentication_mac(cipher: Cipher, k_mac: bytes, data: bytes) -> bytes:
    """MAC of an authentication token: AES-CMAC truncated to 8 bytes, or the 3DES retail MAC with
    ISO/IEC 9797-1 padding method 2 (ICAO Doc 9303-11 section 4.4.3.4)."""
    if cipher is Cipher.TDES:
        return retail_mac(k_mac, pad(data, 8))
    c = cmac.CMAC(algorithms.AES(k_mac))
    c.update(data)
    return c.finalize()[:8]


def token_input(algorithm: PaceAlgorithm, public_key: bytes) -> bytes:
    """The public key data object 7F49 { 06 OID, 86 point } without domain parameters
    (ICAO Doc 9303-11 sections 4.4.3.4, 9.4.4 and 9.4.5)."""
    return Tlv.of(0x7F49, Tlv(0x06, algorithm.oid_bytes), Tlv(0x86, public_key)).encode()


def authentication_token(algorithm: PaceAlgorithm, k_mac: bytes, public_key: bytes) -> bytes:
    """T = MAC(K_MAC, 7F49 { OID, the other side's ephemeral public key })."""
    return authentication_mac(algorithm.cipher, k_mac, token_input(algorithm, public_key))


# --- Generic Mapping on an elliptic curve --------------------------------------------------------


def map_generator(curve: Curve, nonce: bytes, shared_point: Point | None) -> Point:
    """G~ = s*G + H (ICAO Doc 9303-11 section 4.4.3.3.1). The point at infinity for H or G~ means
    a broken or hostile exchange: refused."""
    if shared_point is None:
        raise PaceError("the mapping produced the point at infinity")
    mapped = curve.add(curve.multiply(int.from_bytes(nonce, "big"), curve.generator), shared_point)
    if mapped is None:
        raise PaceError("the mapped generator is the point at infinity")
    return mapped


# --- Integrated Mapping on an elliptic curve --------------------------------------------------------

#: The constants c0, c1 of the pseudo-random function R, by the length l of the nonce s in bytes:
#: 16 for 3DES and AES-128, 32 for AES-192 and AES-256 (ICAO Doc 9303-11 section 4.4.3.3.2).
_PRF_CONSTANTS: Mapping[int, tuple[bytes, bytes]] = MappingProxyType(
    {
        16: (
            bytes.fromhex("A668892A7C41E3CA739F40B057D85904"),
            bytes.fromhex("A4E136AC725F738B01C1F60217C188AD"),
        ),
        32: (
            bytes.fromhex("D463D65234124EF7897054986DCA0A174E28DF758CBAA03F240616414D5A1676"),
            bytes.fromhex("54BD7255F0AAF831BEC3423FCF39D69B6CBF066677D0FAAE5AADD99DF8E53517"),
        ),
    }
)


def _encrypt_blocks(cipher: Cipher, key: bytes, data: bytes) -> bytes:
    enc = _cbc(cipher, key).encryptor()
    return enc.update(data) + enc.finalize()


def pseudo_random(cipher: Cipher, nonce: bytes, terminal_nonce: bytes, p: int) -> bytes:
    """R(s, t) before its reduction mod p (ICAO Doc 9303-11 section 4.4.3.3.2): key_1 = E(t, s),
    then x_i = E(key_i, c1) and key_{i+1} = E(key_i, c0) (truncated to the key length) for
    n = ceil((log2 p + 64) / l) rounds; the output is x_1 || ... || x_n. E is the block cipher in CBC
    mode with a zero IV, as for the nonce."""
    constants = _PRF_CONSTANTS.get(len(nonce))
    if constants is None or len(nonce) != nonce_length(cipher):
        raise PaceError("the nonce s has the wrong length for Integrated Mapping")
    if len(terminal_nonce) != cipher.key_length:
        raise PaceError("the terminal's nonce t has the wrong length for Integrated Mapping")
    c0, c1 = constants
    rounds = -(-(p.bit_length() + 64) // (8 * len(nonce)))
    key = _encrypt_blocks(cipher, terminal_nonce, nonce)[: cipher.key_length]
    out = bytearray()
    for _ in range(rounds):
        out += _encrypt_blocks(cipher, key, c1)
        key = _encrypt_blocks(cipher, key, c0)[: cipher.key_length]
    return bytes(out)


def point_encoding_applies(curve: Curve) -> bool:
    """Whether :func:`encode_point` is defined on ``curve``: p = 3 mod 4 and a, b not zero."""
    return curve.p % 4 == 3 and curve.a % curve.p != 0 and curve.b % curve.p != 0


def encode_point(curve: Curve, r: int) -> Point:
    """f_G(r): the point encoding of the field element ``r`` for ECDH Integrated Mapping (ICAO Doc
    9303-11 section 4.4.3.3.2, the simplified SWU encoding of Brier et al. for p = 3 mod 4), times
    the cofactor."""
    p, a, b = curve.p, curve.a % curve.p, curve.b % curve.p
    if not point_encoding_applies(curve):
        raise PaceError(f"Integrated Mapping has no point encoding for {curve.name}")
    t = r % p
    alpha = -t * t % p
    denominator = (alpha + alpha * alpha) % p
    if denominator == 0:
        raise PaceError("the pseudo-random number has no point encoding")
    x2 = -b * pow(a, -1, p) * (1 + pow(denominator, -1, p)) % p
    x3 = alpha * x2 % p
    h2 = (x2 * x2 * x2 + a * x2 + b) % p
    u = t * t * t * h2 % p
    root = pow(h2, p - 1 - (p + 1) // 4, p)
    point = Point(x2, root * h2 % p) if root * root * h2 % p == 1 else Point(x3, root * u % p)
    mapped = curve.multiply(curve.h, point) if curve.h != 1 else point
    if mapped is None or not curve.contains(mapped):
        raise PaceError("the point encoding left the curve")
    return mapped


def integrated_generator(parameters: PaceParameters, nonce: bytes, terminal_nonce: bytes) -> Point:
    """G~ = f_G(R_p(s, t)) (ICAO Doc 9303-11 section 4.4.3.3.2)."""
    curve = parameters.curve
    r = int.from_bytes(pseudo_random(parameters.cipher, nonce, terminal_nonce, curve.p), "big")
    return encode_point(curve, r % curve.p)


def private_key(curve: Curve, key_source: KeySource) -> PrivateKey:
    """A private key drawn from ``key_source``, with its public key on the standard generator
    (ValueError for a scalar outside [1, n-1])."""
    return PrivateKey(curve, key_source(curve))


def peer_point(curve: Curve, data: bytes, own: bytes, what: str) -> Point:
    """Validate the other side's public key: an uncompressed point on the curve, and not equal to
    our own (ICAO Doc 9303-11 section 4.4.1 asks both sides to check PK_IC != PK_IFD, which stops
    a reflection of our own key; 4.4.3.2 allows uncompressed points only)."""
    try:
        point = curve.decode_point(data)
    except InvalidPointError as exc:
        raise PaceError(f"the {what} is invalid: {exc}") from None
    if hmac.compare_digest(data, own):
        raise PaceError(f"the {what} equals our own public key")
    return point


def shared_secret(curve: Curve, private: int | PrivateKey, public: Point) -> bytes:
    """The x-coordinate of private * public, on the field size (ICAO Doc 9303-11 section 9.7.1).
    ``public`` is a point of ``curve``, as :func:`peer_point` returns."""
    key = private if isinstance(private, PrivateKey) else PrivateKey(curve, private)
    if key.curve != curve:
        raise ValueError(f"a private key of {key.curve.name} used on {curve.name}")
    try:
        return key.exchange(public)
    except InvalidPointError as exc:  # not from peer_point: a caller's mistake, not the peer's
        raise PaceError(f"the key agreement failed: {exc}") from None


# --- Chip Authentication Mapping ---------------------------------------------------------------------


def _cam_iv(k_enc: bytes) -> bytes:
    """IV = E(K_Enc, -1): the block of all one bits (the send sequence counter -1) encrypted with
    K_Enc, as secure messaging with AES computes its IV (ICAO Doc 9303-11 sections 4.4.3.5.1, 9.8.6.1)."""
    # One block: CBC with a zero IV is the single block encryption ECB would be.
    enc = _BlockCipher(algorithms.AES(k_enc), modes.CBC(bytes(16))).encryptor()
    return enc.update(b"\xff" * 16) + enc.finalize()


def chip_authentication_data(curve: Curve, static_private: int, map_private: int) -> bytes:
    """CA_IC = SK_IC^-1 * SK_map_IC mod n, on the byte length of n (ICAO Doc 9303-11 4.4.3.5.1)."""
    value = pow(static_private, -1, curve.n) * map_private % curve.n
    return value.to_bytes((curve.n.bit_length() + 7) // 8, "big")


def encrypt_chip_authentication_data(k_enc: bytes, data: bytes) -> bytes:
    """A_IC = E(K_Enc, CA_IC): AES-CBC with the IV of :func:`_cam_iv`, ISO/IEC 9797-1 padding method 2."""
    enc = _BlockCipher(algorithms.AES(k_enc), modes.CBC(_cam_iv(k_enc))).encryptor()
    return enc.update(pad(data, 16)) + enc.finalize()


def decrypt_chip_authentication_data(k_enc: bytes, encrypted: bytes) -> bytes:
    """CA_IC from A_IC; :class:`PaceError` when it is not whole blocks or its padding is wrong."""
    if not encrypted or len(encrypted) % 16:
        raise PaceError("the encrypted chip authentication data is not a whole number of blocks")
    dec = _BlockCipher(algorithms.AES(k_enc), modes.CBC(_cam_iv(k_enc))).decryptor()
    data = unpad(dec.update(encrypted) + dec.finalize(), 16)
    if not data:
        raise PaceError("the chip authentication data has no valid padding")
    return data


@dataclass(frozen=True)
class ChipAuthenticationMapping:
    """What PACE-CAM leaves the terminal to check once it holds the chip's static key: the chip's
    mapping public key PK_map_IC and the decrypted chip authentication data CA_IC."""

    curve: Curve
    chip_map_public: bytes
    data: bytes

    def verify(self, static_public: bytes) -> bool:
        """Whether PK_map_IC = CA_IC * PK_IC for the chip's static public key ``static_public`` (an
        uncompressed point of the PACE curve; ICAO Doc 9303-11 section 4.4.3.5.2). ``False`` for a
        key on another curve or malformed: the chip proved nothing about it."""
        try:
            key = self.curve.decode_point(static_public)
            expected = self.curve.decode_point(self.chip_map_public)
        except InvalidPointError:
            return False
        scalar = int.from_bytes(self.data, "big")
        if not 0 < scalar < self.curve.n:
            return False
        return self.curve.multiply(scalar, key) == expected


# --- the result -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaceResult:
    """A completed PACE. The session keys stay out of ``repr``; ``chip_public_key`` is the chip's
    ephemeral public key PK~_PICC, whose compressed form :attr:`id_picc` binds a later Chip
    Authentication to this session (BSI TR-03110-2, Chip Authentication version 2)."""

    parameters: PaceParameters
    password_type: PasswordType
    k_enc: bytes = field(repr=False)
    k_mac: bytes = field(repr=False)
    chip_public_key: bytes
    terminal_public_key: bytes
    #: Certification authority references the chip named in DO 87 / 88 (only with a CHAT).
    authority_references: tuple[bytes, ...] = ()
    #: With Chip Authentication Mapping: what proves the chip once its static key is known.
    chip_authentication: ChipAuthenticationMapping | None = None

    @property
    def cipher(self) -> Cipher:
        return self.parameters.cipher

    @property
    def id_picc(self) -> bytes:
        """Comp(PK~_PICC): the x-coordinate for ECDH (BSI TR-03110-3, compressed representation)."""
        size = self.parameters.curve.size
        return self.chip_public_key[1 : 1 + size]


# --- the terminal side ------------------------------------------------------------------------------

_TAG_DYNAMIC = 0x7C
#: 63Cx with x >= 2 at MSE:Set AT: a warning that earlier attempts failed; the protocol goes on.
_SET_AT_GOES_ON: frozenset[int] = SUCCESS | frozenset(SW.counter(n) for n in range(2, 16))
#: The GENERAL AUTHENTICATE steps by the data object the chip answers with.
_STEPS = {
    0x80: "GENERAL AUTHENTICATE (nonce)",
    0x82: "GENERAL AUTHENTICATE (mapping)",
    0x84: "GENERAL AUTHENTICATE (key agreement)",
    0x86: "GENERAL AUTHENTICATE (tokens)",
}
_TAG_CAM = 0x8A


def _refused(step: str, exc: ApduError) -> ApduError:
    """``exc`` (same class, status word and data) with the PACE step the card refused in its message."""
    return type(exc)(exc.sw, exc.data, f"PACE: the card refused {step}: {exc}")


def mse_set_at(
    parameters: PaceParameters, password: PasswordType, *, send_parameter_id: bool = False
) -> CommandApdu:
    """MSE:Set AT for PACE (ICAO Doc 9303-11 section 4.4.4.1): DO 80 protocol, DO 83 password reference,
    DO 84 the domain parameter ID when the chip offers several for this protocol."""
    objects = [Tlv(0x80, parameters.algorithm.oid_bytes), Tlv(0x83, bytes((password,)))]
    if send_parameter_id:
        objects.append(Tlv(0x84, bytes((parameters.parameter_id,))))
    return CommandApdu(0x00, 0x22, 0xC1, 0xA4, b"".join(t.encode() for t in objects))


def general_authenticate(data: Tlv | None, *, last: bool) -> CommandApdu:
    """GENERAL AUTHENTICATE with dynamic authentication data 7C; all but the last step are
    chained (CLA 10), as ICAO Doc 9303-11 section 4.4.4.3 asks."""
    body = Tlv.of(_TAG_DYNAMIC, *(() if data is None else (data,))).encode()
    return CommandApdu(0x00 if last else 0x10, 0x86, 0x00, 0x00, body, le=SHORT_MAX_LE)


class _Terminal:
    """One PACE run over a protocol; each method is one step."""

    def __init__(self, protocol: ApduProtocol, password: Password, parameters: PaceParameters) -> None:
        self.protocol = protocol
        self.password = password
        self.parameters = parameters
        #: The data objects of the last response, for the optional ones (87, 88).
        self.extra: dict[int, bytes] = {}

    def _password_error(self, exc: ApduError) -> PacePasswordError:
        return PacePasswordError(exc.sw, self.password.type.name, exc.data)

    def set_at(self, send_parameter_id: bool) -> None:
        command = mse_set_at(self.parameters, self.password.type, send_parameter_id=send_parameter_id)
        allow = _SET_AT_GOES_ON
        if self.protocol.secure_messaging is not None:
            # 63C1, suspended, inside a session the card can count as the CAN that resumes it
            # (BSI TR-03110-2, PIN management): go on; the card decides.
            allow = allow | {SW.counter(1)}
        try:
            self.protocol.send(command, allow=allow)
        except (VerificationFailedError, AuthenticationBlockedError) as exc:
            if exc.sw == SW.counter(1):
                raise PacePasswordError(
                    exc.sw,
                    self.password.type.name,
                    message=f"the {self.password.type.name} is suspended: run PACE with the CAN first",
                ) from None
            raise self._password_error(exc) from None
        except ApduError as exc:
            raise _refused("MSE:Set AT", exc) from None

    def exchange(self, data: Tlv | None, reply_tag: int, *, last: bool = False) -> dict[int, bytes]:
        """One GENERAL AUTHENTICATE step: the data objects of the chip's 7C."""
        try:
            resp = self.protocol.send(general_authenticate(data, last=last))
        except (VerificationFailedError, AuthenticationBlockedError) as exc:
            raise self._password_error(exc) from None
        except ApduError as exc:
            raise _refused(_STEPS.get(reply_tag, "GENERAL AUTHENTICATE"), exc) from None
        try:
            objects = parse_dict(unpack(_TAG_DYNAMIC, resp.data))
        except TlvError as exc:
            raise PaceError(f"malformed GENERAL AUTHENTICATE response: {exc}") from None
        self.extra = objects
        return objects

    def step(self, data: Tlv | None, reply_tag: int, *, last: bool = False) -> bytes:
        value = self.exchange(data, reply_tag, last=last).get(reply_tag)
        if value is None:
            raise PaceError(f"GENERAL AUTHENTICATE response without DO {reply_tag:02X}")
        return value


def perform_pace(
    protocol: ApduProtocol,
    password: Password,
    parameters: PaceParameters,
    *,
    send_parameter_id: bool = False,
    key_source: KeySource = default_key_source,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    install_secure_messaging: bool = True,
) -> PaceResult:
    """Run PACE over ECDH (Generic or Integrated Mapping, as ``parameters`` say) as the terminal,
    then (by default) switch ``protocol`` to secure messaging with the new keys (SSC 0, ICAO Doc
    9303-11 section 9.8).

    Inside an existing secure-messaging session (PACE-PIN after PACE-CAN) the PACE commands travel
    protected by it. ``key_source`` draws the terminal's two private keys (mapping, then
    ephemeral); the default is the ``secrets`` generator. ``random_bytes`` draws the nonce t of
    Integrated Mapping.

    A wrong, suspended or blocked password raises :class:`PacePasswordError`; a card answer that
    breaks the protocol raises :class:`PaceError`; other refusals raise the :class:`ApduError` of
    their status word (e.g. :class:`SecurityStatusNotSatisfiedError` for 6982) with the refused
    step in the message. A failure after MSE:Set AT also ends the session's secure messaging, as
    the card ends it on its side.
    """
    log.debug(
        "PACE %s with the %s on %s", parameters.algorithm.name, password.type.name, parameters.curve.name
    )
    run = _Terminal(protocol, password, parameters)
    run.set_at(send_parameter_id)
    try:
        result = _authenticate(run, key_source, random_bytes)
    except EktpError:
        previous = protocol.secure_messaging
        if previous is not None:
            protocol.secure_messaging = None
            if isinstance(previous, SecureMessagingSession):
                previous.close()
        raise
    log.debug("PACE completed, session keys derived")
    if install_secure_messaging:
        previous = protocol.secure_messaging
        protocol.secure_messaging = SecureMessagingSession(result.cipher, result.k_enc, result.k_mac, 0)
        if isinstance(previous, SecureMessagingSession):
            previous.close()  # the session PACE ran inside (PACE-PIN after PACE-CAN) is over
    return result


def _authenticate(run: _Terminal, key_source: KeySource, random_bytes: Callable[[int], bytes]) -> PaceResult:
    """The four GENERAL AUTHENTICATE steps."""
    parameters, password = run.parameters, run.password
    curve, cipher, algorithm = parameters.curve, parameters.cipher, parameters.algorithm

    # Step 1: the encrypted nonce, decrypted with K_pi.
    encrypted = run.step(None, 0x80)
    nonce = decrypt_nonce(cipher, password_key(password, cipher), encrypted)

    # Step 2: the mapping.
    if algorithm.mapping is MappingType.IM:
        # The terminal's nonce t; the chip answers with an empty 7C (section 4.4.4.3).
        terminal_nonce = random_bytes(cipher.key_length)
        if run.exchange(Tlv(0x81, terminal_nonce), 0x82).get(0x82, b""):
            raise PaceError("the chip answered Integrated Mapping with mapping data")
        mapped = integrated_generator(parameters, nonce, terminal_nonce)
        chip_map_data = b""
    else:
        map_key = private_key(curve, key_source)
        map_public = curve.encode_point(map_key.public)
        chip_map_data = run.step(Tlv(0x81, map_public), 0x82)
        chip_map = peer_point(curve, chip_map_data, map_public, "chip's mapping key")
        mapped = map_generator(curve, nonce, map_key.multiply(chip_map))

    # Step 3: ephemeral key agreement on the mapped generator: SK * G~ is the public key, and the
    # agreement is plain ECDH with SK, as the chip's key is a point of the same curve.
    eph_key = private_key(curve, key_source)
    eph_public = curve.encode_point(eph_key.multiply(mapped))
    chip_eph_bytes = run.step(Tlv(0x83, eph_public), 0x84)
    chip_eph = peer_point(curve, chip_eph_bytes, eph_public, "chip's ephemeral key")
    k_enc, k_mac = session_keys(shared_secret(curve, eph_key, chip_eph), cipher)

    # Step 4: mutual authentication tokens.
    token = authentication_token(algorithm, k_mac, chip_eph_bytes)
    chip_token = run.step(Tlv(0x85, token), 0x86, last=True)
    expected = authentication_token(algorithm, k_mac, eph_public)
    if not hmac.compare_digest(chip_token, expected):
        raise PaceError("the chip's authentication token is wrong: the card does not share the keys")
    references = tuple(run.extra[tag] for tag in (0x87, 0x88) if tag in run.extra)
    # DO 8A must be present with Chip Authentication Mapping and absent otherwise (section 4.4.4.3).
    encrypted_cam = run.extra.get(_TAG_CAM)
    cam = None
    if algorithm.mapping is MappingType.CAM:
        if encrypted_cam is None:
            raise PaceError(
                "the chip sent no chip authentication data (DO 8A) with Chip Authentication Mapping"
            )
        data = decrypt_chip_authentication_data(k_enc, encrypted_cam)
        cam = ChipAuthenticationMapping(curve, chip_map_data, data)
    elif encrypted_cam is not None:
        raise PaceError("the chip sent chip authentication data (DO 8A) without Chip Authentication Mapping")
    return PaceResult(parameters, password.type, k_enc, k_mac, chip_eph_bytes, eph_public, references, cam)
