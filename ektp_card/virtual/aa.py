"""The chip's side of Active Authentication for the virtual card.

ICAO Doc 9303-11 section 6.1 (see :mod:`ektp_card.crypto.aa` for the signature formats). A card
supports it when :func:`install_active_authentication` has put a key pair on it; the key objects,
saved in the card image and never readable through any command:

* ``aa.private``: the private key as unencrypted PKCS#8 DER (ECDSA or RSA);
* ``aa.hash``: the hash name (ASCII, e.g. ``sha256``): for ECDSA the one DG14's
  ActiveAuthenticationInfo names, for RSA the one the ISO/IEC 9796-2 trailer names.

INTERNAL AUTHENTICATE (00 88 00 00, 8 bytes of challenge, Le) answers the signature, only inside
the secure messaging of PACE or BAC (6982 otherwise); a card without the key answers 6D00, as a
card without the command.

The ECDSA nonce comes from the card's random source (:attr:`VirtualCard.random`): OpenSSL signs on a
card using the system's generator; a card told to use a weak generator signs with a nonce drawn from
it, which gives its private key away to anyone who predicts or sees a nonce repeat. A programmable
card given a stored signature (``CardBehaviour.aa_signature``) answers that signature to every
challenge: a replay of one recorded from another card.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW
from ektp_card.crypto.aa import CHALLENGE_LENGTH, PLAIN_ECDSA_OIDS, iso9796_2_sign, plain_ecdsa_signature
from ektp_card.ec import BRAINPOOLP256R1, STANDARDIZED_CURVES, Curve, KeySource
from ektp_card.lds.conditions import BAC, PACE, AccessCondition
from ektp_card.lds.dg14 import ActiveAuthenticationInfo
from ektp_card.lds.dg15 import Dg15
from ektp_card.lds.public_key import ParametersForm, cryptography_curve, public_key_from
from ektp_card.virtual.commands import Command, ok, refuse

if TYPE_CHECKING:
    from ektp_card.virtual.card import VirtualCard

AA_PRIVATE_KEY = "aa.private"
AA_HASH = "aa.hash"
#: Active Authentication runs inside the secure messaging of PACE or BAC.
SESSION_CONDITION = AccessCondition.require(PACE) | AccessCondition.require(BAC)

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def install_active_authentication(
    card: VirtualCard,
    *,
    curve: Curve | None = BRAINPOOLP256R1,
    rsa_bits: int | None = None,
    hash_name: str = "sha256",
    form: ParametersForm = ParametersForm.EXPLICIT,
) -> tuple[Dg15, ActiveAuthenticationInfo | None]:
    """Generate the card's Active Authentication key pair (the private key goes only into
    ``card.keys``): RSA of ``rsa_bits`` when given, else ECDSA on ``curve``. Returns DG15 and,
    for ECDSA, the ActiveAuthenticationInfo DG14 must carry."""
    if hash_name not in _HASHES:
        raise ValueError(f"unsupported hash {hash_name}")
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    info: ActiveAuthenticationInfo | None = None
    if rsa_bits is not None:
        if rsa_bits % 8 or rsa_bits < 1024:
            raise ValueError(
                "an RSA Active Authentication key needs a whole number of bytes, at least 1024 bits"
            )
        key = rsa.generate_private_key(65537, rsa_bits)
    else:
        named = None if curve is None else cryptography_curve(curve)
        if named is None:
            raise ValueError("ECDSA Active Authentication needs a curve OpenSSL signs on")
        key = ec.generate_private_key(named)
        info = ActiveAuthenticationInfo(PLAIN_ECDSA_OIDS[hash_name])
    # One write: the key and its hash are stored together or not at all (6A84).
    card.keys.update(
        {
            AA_PRIVATE_KEY: key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()),
            AA_HASH: hash_name.encode("ascii"),
        }
    )
    return Dg15.of(public_key_from(key.public_key()), form), info


def sign_challenge(
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    hash_name: str,
    challenge: bytes,
    *,
    nonce_source: KeySource | None = None,
) -> bytes:
    """The chip's answer: plain ECDSA r || s over the challenge, or the ISO/IEC 9796-2 signature
    (deterministic). ``nonce_source`` draws the ECDSA nonce k; ``None`` lets OpenSSL draw it."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        return iso9796_2_sign(private_key, challenge, hash_name)
    if nonce_source is None:
        der = private_key.sign(challenge, ec.ECDSA(_HASHES[hash_name]()))
        return plain_ecdsa_signature(der, private_key.curve)
    return _ecdsa_with_nonce(private_key, hash_name, challenge, nonce_source)


def _ecdsa_with_nonce(
    private_key: ec.EllipticCurvePrivateKey, hash_name: str, message: bytes, nonce_source: KeySource
) -> bytes:
    """ECDSA (SEC 1 v2 section 4.1.3) with the nonce from ``nonce_source``, as plain r || s."""
    curve = next((c for c in STANDARDIZED_CURVES.values() if c.name == private_key.curve.name), None)
    if curve is None:
        refuse(SW.REFERENCE_DATA_NOT_USABLE)
    n, d = curve.n, private_key.private_numbers().private_value
    digest = hashes.Hash(_HASHES[hash_name]())
    digest.update(message)
    raw = digest.finalize()
    # The leftmost bits of the hash, as many as the order has (SEC 1 v2 section 4.1.3 step 5).
    e = int.from_bytes(raw, "big") >> max(0, 8 * len(raw) - n.bit_length())
    while True:
        k = nonce_source(curve)
        point = curve.multiply(k, curve.generator)
        r = 0 if point is None else point.x % n
        s = pow(k, -1, n) * (e + r * d) % n
        if r and s:
            size = (n.bit_length() + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def internal_authenticate(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
    """INTERNAL AUTHENTICATE (88): sign the terminal's 8-byte challenge."""
    encoded = card.keys.get(AA_PRIVATE_KEY)
    replayed = card.behaviour.aa_signature
    if encoded is None and replayed is None:
        refuse(SW.INS_NOT_SUPPORTED)
    if not card.security.satisfies(SESSION_CONDITION) or card.security.channel is None:
        refuse(SW.SECURITY_STATUS_NOT_SATISFIED)
    if apdu.p1 or apdu.p2:
        refuse(SW.INCORRECT_P1P2)
    if len(apdu.data) != CHALLENGE_LENGTH or apdu.le is None:
        refuse(SW.WRONG_LENGTH)
    if replayed is not None:
        return ok(replayed)
    if encoded is None:
        refuse(SW.INS_NOT_SUPPORTED)
    key = load_der_private_key(encoded, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        refuse(SW.REFERENCE_DATA_NOT_USABLE)
    hash_name = card.keys.get(AA_HASH, b"sha256").decode("ascii")
    nonce_source = None if card.random.system else card.random.scalar
    return ok(sign_challenge(key, hash_name, apdu.data, nonce_source=nonce_source))


INTERNAL_AUTHENTICATE = Command("INTERNAL AUTHENTICATE", internal_authenticate)

__all__ = [
    "AA_HASH",
    "AA_PRIVATE_KEY",
    "INTERNAL_AUTHENTICATE",
    "SESSION_CONDITION",
    "install_active_authentication",
    "internal_authenticate",
    "sign_challenge",
]
