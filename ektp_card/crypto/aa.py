"""Active Authentication: the terminal side, and the signature formats both sides share.

ICAO Doc 9303-11 section 6.1: the terminal sends a random challenge RND.IFD (8 bytes) in
INTERNAL AUTHENTICATE (00 88 00 00 08 <RND.IFD> 00) and checks the chip's signature with the public
key of DG15, which EF.SOD signs. A copy of the data groups on another chip lacks the private key,
and a recorded answer does not fit a fresh challenge. Two signature forms:

* ECDSA over RND.IFD, as the plain concatenation r || s, each on the byte length of the group
  order (BSI TR-03111 section 5.2.1); the hash is the one DG14's ActiveAuthenticationInfo names
  (``ecdsa-plain-SHA*`` of TR-03111, ICAO Doc 9303-11 section 9.2.8).
* RSA with ISO/IEC 9796-2 digital signature scheme 1, partial message recovery: the chip picks M1,
  signs F = 6A || M1 || H(M1 || RND.IFD) || T, and the terminal recovers F = s^e mod n, M1 from
  it, and checks the hash. The trailer T is BC for SHA-1, or <hash ID> CC with the ISO/IEC 10118-3
  hash identifier (34 SHA-256, 36 SHA-384, 35 SHA-512, 38 SHA-224, 33 SHA-1). ``cryptography`` has
  no message-recovery scheme, so the RSA public operation is done here on integers; ECDSA is
  verified with ``cryptography``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from ektp_card.apdu.command import SHORT_MAX_LE, CommandApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW, describe
from ektp_card.crypto.sm import SecureMessagingSession
from ektp_card.errors import ActiveAuthenticationError, ApduError, SecureMessagingError

#: ActiveAuthenticationInfo's protocol (ICAO Doc 9303-11 section 9.2.8).
ID_AA = "2.23.136.1.1.5"
#: ecdsa-plain-signatures (BSI TR-03111 section 5.2.1).
ECDSA_PLAIN_SIGNATURES = "0.4.0.127.0.7.1.1.4.1"
_X962_ECDSA = "1.2.840.10045.4"

#: Hash of each ECDSA signature algorithm OID an ActiveAuthenticationInfo may name: the plain
#: signatures of TR-03111, and the X9.62 ``ecdsa-with-*`` OIDs some issuers write there.
SIGNATURE_HASHES: Mapping[str, str] = MappingProxyType(
    {
        f"{ECDSA_PLAIN_SIGNATURES}.1": "sha1",
        f"{ECDSA_PLAIN_SIGNATURES}.2": "sha224",
        f"{ECDSA_PLAIN_SIGNATURES}.3": "sha256",
        f"{ECDSA_PLAIN_SIGNATURES}.4": "sha384",
        f"{ECDSA_PLAIN_SIGNATURES}.5": "sha512",
        f"{_X962_ECDSA}.1": "sha1",
        f"{_X962_ECDSA}.3.1": "sha224",
        f"{_X962_ECDSA}.3.2": "sha256",
        f"{_X962_ECDSA}.3.3": "sha384",
        f"{_X962_ECDSA}.3.4": "sha512",
    }
)
#: The ecdsa-plain-SHA* OID for each hash: what a chip's ActiveAuthenticationInfo names.
PLAIN_ECDSA_OIDS: Mapping[str, str] = MappingProxyType(
    {name: oid for oid, name in SIGNATURE_HASHES.items() if oid.startswith(ECDSA_PLAIN_SIGNATURES)}
)
#: ISO/IEC 10118-3 hash identifiers in a two-byte ISO/IEC 9796-2 trailer (<id> CC).
HASH_IDENTIFIERS: Mapping[int, str] = MappingProxyType(
    {0x33: "sha1", 0x34: "sha256", 0x35: "sha512", 0x36: "sha384", 0x38: "sha224"}
)
_HASH_IDENTIFIER_OF = {name: ident for ident, name in HASH_IDENTIFIERS.items()}
#: RND.IFD: 8 bytes (ICAO Doc 9303-11 section 6.1).
CHALLENGE_LENGTH = 8
#: ISO/IEC 9796-2 scheme 1 header for partial recovery (the first byte of F) and the trailers.
_HEADER_PARTIAL = 0x6A
_TRAILER_IMPLICIT = 0xBC
_TRAILER_EXPLICIT = 0xCC

_HASHES: Mapping[str, type[hashes.HashAlgorithm]] = MappingProxyType(
    {
        "sha1": hashes.SHA1,
        "sha224": hashes.SHA224,
        "sha256": hashes.SHA256,
        "sha384": hashes.SHA384,
        "sha512": hashes.SHA512,
    }
)

ChipPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def _label(hash_name: str) -> str:
    """``sha256`` -> ``SHA-256``."""
    return hash_name.upper().replace("SHA", "SHA-")


def _digest(name: str, data: bytes) -> bytes:
    if name not in _HASHES:
        raise ValueError(f"unknown hash {name}")
    return hashlib.new(name, data, usedforsecurity=True).digest()


# --- ECDSA, plain format (BSI TR-03111) ------------------------------------------------------------


def order_length(curve: ec.EllipticCurve) -> int:
    """Bytes of r and of s in a plain signature: the byte length of the group order (for the
    standardized curves the order has as many bits as the field, ``key_size``)."""
    return (curve.key_size + 7) // 8


def plain_ecdsa_signature(der_signature: bytes, curve: ec.EllipticCurve) -> bytes:
    """r || s from a DER Ecdsa-Sig-Value, each on :func:`order_length` bytes."""
    r, s = decode_dss_signature(der_signature)
    length = order_length(curve)
    return r.to_bytes(length, "big") + s.to_bytes(length, "big")


def _ecdsa_reason(
    public_key: ec.EllipticCurvePublicKey, hash_name: str, message: bytes, signature: bytes
) -> str | None:
    length = order_length(public_key.curve)
    if len(signature) == 2 * length:
        der = encode_dss_signature(
            int.from_bytes(signature[:length], "big"), int.from_bytes(signature[length:], "big")
        )
    else:
        # Not the plain format ICAO asks for; some chips answer a DER Ecdsa-Sig-Value instead.
        try:
            decode_dss_signature(signature)
        except ValueError:
            return f"the ECDSA signature has {len(signature)} bytes, not the {2 * length} of r || s"
        der = signature
    try:
        public_key.verify(der, message, ec.ECDSA(_HASHES[hash_name]()))
    except InvalidSignature:
        return "the ECDSA signature does not verify with DG15's public key"
    return None


# --- RSA, ISO/IEC 9796-2 scheme 1 ------------------------------------------------------------------


def _trailer(hash_name: str) -> bytes:
    if hash_name == "sha1":
        return bytes((_TRAILER_IMPLICIT,))
    return bytes((_HASH_IDENTIFIER_OF[hash_name], _TRAILER_EXPLICIT))


def iso9796_2_sign(
    private_key: rsa.RSAPrivateKey,
    challenge: bytes,
    hash_name: str = "sha1",
    *,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> bytes:
    """The chip's signature: F = 6A || M1 || H(M1 || challenge) || T with a random M1 filling the
    modulus, then F^d mod n (modulus lengths that are whole bytes only)."""
    numbers = private_key.private_numbers()
    n = numbers.public_numbers.n
    if n.bit_length() % 8:
        raise ValueError("ISO/IEC 9796-2 signing here needs a modulus of whole bytes")
    size = n.bit_length() // 8
    trailer = _trailer(hash_name)
    m1 = random_bytes(size - len(_digest(hash_name, b"")) - len(trailer) - 1)
    representative = bytes((_HEADER_PARTIAL,)) + m1 + _digest(hash_name, m1 + challenge) + trailer
    return pow(int.from_bytes(representative, "big"), numbers.d, n).to_bytes(size, "big")


def _iso9796_2_reason(
    public_key: rsa.RSAPublicKey, challenge: bytes, signature: bytes
) -> tuple[str | None, str]:
    """Recover F and check it; (reason or None, hash name)."""
    numbers = public_key.public_numbers()
    n, e = numbers.n, numbers.e
    value = int.from_bytes(signature, "big")
    if not signature or value >= n:
        return "the RSA signature is not a number below the modulus", ""
    recovered = pow(value, e, n)
    if recovered % 16 != 12:
        # ISO/IEC 9796-2 lets the signer send n - s instead of s; then n - J is the representative.
        recovered = n - recovered
    size = (n.bit_length() + 7) // 8
    f = recovered.to_bytes(size, "big")
    if f[0] != _HEADER_PARTIAL:
        return "the RSA signature does not recover an ISO/IEC 9796-2 representative (wrong key?)", ""
    if f[-1] == _TRAILER_IMPLICIT:
        hash_name, trailer_length = "sha1", 1
    elif f[-1] == _TRAILER_EXPLICIT and f[-2] in HASH_IDENTIFIERS:
        hash_name, trailer_length = HASH_IDENTIFIERS[f[-2]], 2
    else:
        return "the recovered ISO/IEC 9796-2 trailer names no supported hash", ""
    digest_length = len(_digest(hash_name, b""))
    if size < 1 + digest_length + trailer_length + 1:
        return "the RSA modulus is too short for the signature's hash", hash_name
    m1 = f[1 : size - trailer_length - digest_length]
    digest = f[size - trailer_length - digest_length : size - trailer_length]
    if not hmac.compare_digest(digest, _digest(hash_name, m1 + challenge)):
        return "the recovered hash does not match the challenge: the chip signed something else", hash_name
    return None, hash_name


# --- verification ------------------------------------------------------------------------------------


def signature_hash(signature_algorithm: str) -> str:
    """The hash an ActiveAuthenticationInfo's signatureAlgorithm names; :class:`ActiveAuthenticationError`
    if it is not a supported ECDSA algorithm."""
    name = SIGNATURE_HASHES.get(signature_algorithm)
    if name is None:
        raise ActiveAuthenticationError(f"signature algorithm {signature_algorithm} is not supported")
    return name


def verify_signature(
    public_key: ChipPublicKey, challenge: bytes, signature: bytes, *, hash_name: str | None = None
) -> tuple[str | None, str]:
    """Check an Active Authentication signature: (None, algorithm) if valid, else (the reason,
    algorithm). ECDSA needs ``hash_name``; RSA takes its hash from the trailer."""
    if isinstance(public_key, rsa.RSAPublicKey):
        reason, found = _iso9796_2_reason(public_key, challenge, signature)
        return reason, f"RSA ISO/IEC 9796-2 scheme 1{' with ' + _label(found) if found else ''}"
    if hash_name is None:
        raise ActiveAuthenticationError(
            "ECDSA Active Authentication needs the hash of DG14's ActiveAuthenticationInfo"
        )
    return _ecdsa_reason(public_key, hash_name, challenge, signature), f"ECDSA with {_label(hash_name)}"


@dataclass(frozen=True)
class AaResult:
    """The outcome of one Active Authentication: ``passed`` when the chip's signature over the
    fresh ``challenge`` verifies with DG15's key; ``supported`` is false when it could not run.
    When the chip refused INTERNAL AUTHENTICATE, ``step`` names it and ``sw`` is its status word
    (9000 otherwise)."""

    passed: bool
    reason: str
    challenge: bytes = b""
    signature: bytes = b""
    algorithm: str = ""
    supported: bool = True
    step: str = ""
    sw: int = SW.OK

    def require(self) -> None:
        """Raise :class:`ActiveAuthenticationError` with the reason unless the chip passed."""
        if not self.passed:
            raise ActiveAuthenticationError(
                f"Active Authentication failed: {self.reason}",
                step=self.step,
                sw=self.sw if self.step else None,
            )


def internal_authenticate(challenge: bytes) -> CommandApdu:
    """INTERNAL AUTHENTICATE (00 88 00 00) with the challenge, any length of answer."""
    return CommandApdu(0x00, 0x88, 0x00, 0x00, challenge, le=SHORT_MAX_LE)


def active_authenticate(
    protocol: ApduProtocol,
    public_key: ChipPublicKey,
    *,
    signature_algorithm: str | None = None,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> AaResult:
    """Run Active Authentication as the terminal: a fresh 8-byte challenge from ``random_bytes``,
    INTERNAL AUTHENTICATE, and the check of the answer with DG15's ``public_key``.

    ``signature_algorithm`` is the OID of DG14's ActiveAuthenticationInfo, needed for ECDSA keys
    (ICAO Doc 9303-11 section 6.1); without it an ECDSA check is not supported. A refusal, a
    secure-messaging failure or a wrong signature fail the result; transport errors propagate.
    """
    hash_name: str | None = None
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if signature_algorithm is None:
            return AaResult(
                False,
                "DG14 has no ActiveAuthenticationInfo naming the ECDSA signature algorithm",
                supported=False,
            )
        try:
            hash_name = signature_hash(signature_algorithm)
        except ActiveAuthenticationError as exc:
            return AaResult(False, str(exc), supported=False)
    challenge = random_bytes(CHALLENGE_LENGTH)
    if len(challenge) != CHALLENGE_LENGTH:
        raise ValueError("the challenge source must return 8 bytes")
    step = "INTERNAL AUTHENTICATE"
    try:
        response = protocol.send(internal_authenticate(challenge))
    except SecureMessagingError as exc:
        previous = protocol.secure_messaging
        protocol.secure_messaging = None
        if isinstance(previous, SecureMessagingSession):
            previous.close()
        return AaResult(False, f"secure messaging broke down during Active Authentication: {exc}", challenge)
    except ApduError as exc:
        refusal = f"the chip refused {step} ({exc.sw:04X}: {describe(exc.sw)})"
        return AaResult(False, refusal, challenge, step=step, sw=exc.sw)
    signature = response.data
    reason, algorithm = verify_signature(public_key, challenge, signature, hash_name=hash_name)
    if reason is not None:
        return AaResult(False, reason, challenge, signature, algorithm)
    return AaResult(
        True,
        f"the chip signed the fresh challenge with DG15's private key ({algorithm})",
        challenge,
        signature,
        algorithm,
    )


__all__ = [
    "CHALLENGE_LENGTH",
    "ECDSA_PLAIN_SIGNATURES",
    "HASH_IDENTIFIERS",
    "ID_AA",
    "PLAIN_ECDSA_OIDS",
    "SIGNATURE_HASHES",
    "AaResult",
    "ChipPublicKey",
    "active_authenticate",
    "internal_authenticate",
    "iso9796_2_sign",
    "order_length",
    "plain_ecdsa_signature",
    "signature_hash",
    "verify_signature",
]
