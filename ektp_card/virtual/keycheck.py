"""The key objects of a card image, checked when the image is loaded.

A card image is a file an operator may copy, edit or find damaged. Each protocol reads its key objects
only when a command needs them; a damaged one would then surface in the middle of a session as a 6F00
from a card that otherwise looks fine. Checking every key object the card OS knows at load turns that
into one clear "image is corrupt" before the card is ever powered. Key names the card OS does not know
are left alone: they belong to a newer version of the image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from ektp_card.crypto.pace import PasswordType
from ektp_card.crypto.perso import key_cipher
from ektp_card.errors import CardImageError, LdsFormatError, PkiError
from ektp_card.lds.dg14 import ChipAuthenticationInfo, ChipAuthenticationPublicKeyInfo
from ektp_card.pki.cvc import CvCertificate, decode_date
from ektp_card.pki.signer import hash_algorithm
from ektp_card.virtual.aa import AA_HASH, AA_PRIVATE_KEY
from ektp_card.virtual.bac import KSEED_KEY
from ektp_card.virtual.ca import CA_INFO, CA_PRIVATE_KEY, CA_PUBLIC_KEY
from ektp_card.virtual.pace import PASSWORD_KEYS, PIN_RETRIES, PIN_RETRIES_KEY
from ektp_card.virtual.perso import CARD_SERIAL, MAX_TRIES, PERSO_KEY, PERSO_TRIES
from ektp_card.virtual.ta import CURRENT_DATE_KEY, PREVIOUS_TRUST_POINT_KEY, TRUST_POINT_KEY

#: The longest password key a card keeps (a PACE password is an MRZ hash, a CAN, a PIN or a PUK).
MAX_PASSWORD_KEY = 64
#: Longest card serial number (ISO/IEC 7816-6 allows 8; the virtual cards use 8).
MAX_SERIAL = 16


def _aa_private(value: bytes) -> None:
    key = load_der_private_key(value, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("not an EC or RSA private key")


def _aa_hash(value: bytes) -> None:
    hash_algorithm(value.decode("ascii"))


def _length(*allowed: int) -> Callable[[bytes], None]:
    def check(value: bytes) -> None:
        if len(value) not in allowed:
            raise ValueError(f"{len(value)} bytes, not {' or '.join(map(str, allowed))}")

    return check


def _between(least: int, most: int) -> Callable[[bytes], None]:
    def check(value: bytes) -> None:
        if not least <= len(value) <= most:
            raise ValueError(f"{len(value)} bytes, not {least} to {most}")

    return check


def _counter(most: int) -> Callable[[bytes], None]:
    def check(value: bytes) -> None:
        if len(value) != 1 or value[0] > most:
            raise ValueError(f"not one byte from 0 to {most}")

    return check


def _ca_private(value: bytes) -> None:
    # 20 to 66 bytes: the group orders of brainpoolP160r1 to secp521r1.
    if not 20 <= len(value) <= 66 or not any(value):
        raise ValueError("not a private scalar")


def _ca_public(value: bytes) -> object:
    return ChipAuthenticationPublicKeyInfo.decode(value).public_key


def _perso_key(value: bytes) -> None:
    key_cipher(value)


def _cvca(value: bytes) -> None:
    CvCertificate.decode(value)


CHECKS: Mapping[str, Callable[[bytes], object]] = {
    AA_PRIVATE_KEY: _aa_private,
    AA_HASH: _aa_hash,
    KSEED_KEY: _length(16),
    CA_PRIVATE_KEY: _ca_private,
    CA_PUBLIC_KEY: _ca_public,
    CA_INFO: ChipAuthenticationInfo.decode,
    **{name: _between(1, MAX_PASSWORD_KEY) for name in PASSWORD_KEYS.values()},
    PASSWORD_KEYS[PasswordType.MRZ]: _length(20),  # SHA-1 of the MRZ information
    PIN_RETRIES_KEY: _counter(PIN_RETRIES),
    CARD_SERIAL: _between(1, MAX_SERIAL),
    PERSO_KEY: _perso_key,
    PERSO_TRIES: _counter(MAX_TRIES),
    TRUST_POINT_KEY: _cvca,
    PREVIOUS_TRUST_POINT_KEY: _cvca,
    CURRENT_DATE_KEY: decode_date,
}


def check_keys(keys: Mapping[str, bytes]) -> None:
    """Raise :class:`CardImageError` naming the first key object the card OS could not use."""
    for name, value in sorted(keys.items()):
        check = CHECKS.get(name)
        if check is None:
            continue
        try:
            check(value)
        except (ValueError, TypeError, UnsupportedAlgorithm, LdsFormatError, PkiError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CardImageError(f"key object {name!r} is unusable: {reason}") from None
    private, public = keys.get(CA_PRIVATE_KEY), keys.get(CA_PUBLIC_KEY)
    if private is not None and public is not None:
        key = _ca_public(public)  # checked above: decodes
        order = getattr(getattr(key, "curve", None), "n", None)
        if order is not None and (len(private) != (order.bit_length() + 7) // 8
                                  or not 0 < int.from_bytes(private, "big") < order):
            raise CardImageError(f"key object {CA_PRIVATE_KEY!r} is unusable: not a scalar of its curve")
