"""Basic Access Control (ICAO Doc 9303-11 section 4.3; worked example in Appendix D).

The terminal reads a challenge (GET CHALLENGE), proves knowledge of the MRZ-derived keys with
EXTERNAL / MUTUAL AUTHENTICATE (INS 82) carrying E_IFD || M_IFD, checks that the chip's answer
E_IC || M_IC echoes its own nonce, and both derive 3DES session keys from K.IFD xor K.IC with the
send sequence counter RND.IC[4:8] || RND.IFD[4:8].

The pure steps (:func:`seal`, :func:`unseal`, :func:`derive_session`, :func:`chip_authenticate`) are
shared with the virtual card's side of the protocol.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.crypto.kdf import Cipher, session_keys
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.crypto.sm import CardSecureMessaging, SecureMessagingSession, pad, retail_mac, tdes_cbc
from ektp_card.errors import SecureMessagingError, VerificationFailedError

#: A source of random bytes: ``random(n)`` returns ``n`` bytes.
RandomSource = Callable[[int], bytes]

KSEED_LENGTH = 16
NONCE_LENGTH = 8  # RND.IC, RND.IFD
KEY_MATERIAL_LENGTH = 16  # K.IC, K.IFD
#: E (32 bytes: two nonces and the key material, 3DES-CBC) || M (8 bytes, retail MAC).
CRYPTOGRAM_LENGTH = 2 * NONCE_LENGTH + KEY_MATERIAL_LENGTH + 8
INS_GET_CHALLENGE = 0x84
INS_MUTUAL_AUTHENTICATE = 0x82


def key_seed(mrz: MrzInfo) -> bytes:
    """K_seed: the first 16 bytes of SHA-1(MRZ information) (ICAO Doc 9303-11 section 4.3, "key
    derivation"; SHA-1 is mandated there)."""
    digest = hashlib.sha1(mrz.mrz_information.encode("ascii"), usedforsecurity=True)  # noqa: S324
    return digest.digest()[:KSEED_LENGTH]


def basic_access_keys(kseed: bytes) -> tuple[bytes, bytes]:
    """(K_Enc, K_MAC), the document basic access keys, from K_seed (ICAO Doc 9303-11 section 9.7.1)."""
    return session_keys(kseed, Cipher.TDES)


def seal(k_enc: bytes, k_mac: bytes, plain: bytes) -> bytes:
    """E || M: 3DES-CBC (zero IV, no padding: ``plain`` is 32 bytes) and the retail MAC of E with
    ISO/IEC 9797-1 padding method 2."""
    encrypted = tdes_cbc(k_enc, plain)
    return encrypted + retail_mac(k_mac, pad(encrypted, 8))


def unseal(k_enc: bytes, k_mac: bytes, cryptogram: bytes) -> bytes | None:
    """Verify M, then decrypt E; ``None`` if the length or the MAC is wrong."""
    if len(cryptogram) != CRYPTOGRAM_LENGTH:
        return None
    encrypted, mac = cryptogram[:-8], cryptogram[-8:]
    if not hmac.compare_digest(retail_mac(k_mac, pad(encrypted, 8)), mac):
        return None
    return tdes_cbc(k_enc, encrypted, decrypt=True)


def derive_session(k_ifd: bytes, k_ic: bytes, rnd_ic: bytes, rnd_ifd: bytes) -> tuple[bytes, bytes, int]:
    """(KS_Enc, KS_MAC, SSC): session keys from K_seed = K.IFD xor K.IC, and the send sequence
    counter from the four least significant bytes of each nonce (ICAO Doc 9303-11 section 4.3)."""
    seed = bytes(a ^ b for a, b in zip(k_ifd, k_ic, strict=True))
    ks_enc, ks_mac = session_keys(seed, Cipher.TDES)
    return ks_enc, ks_mac, int.from_bytes(rnd_ic[-4:] + rnd_ifd[-4:], "big")


def chip_authenticate(
    kseed: bytes, rnd_ic: bytes, request: bytes, k_ic: bytes
) -> tuple[bytes, CardSecureMessaging] | None:
    """The chip's side: check the terminal's E_IFD || M_IFD against the challenge ``rnd_ic`` and
    answer E_IC || M_IC with the key material ``k_ic``; ``None`` when the terminal's cryptogram is
    wrong (wrong MRZ, stale challenge). Also returns the card's secure-messaging session."""
    k_enc, k_mac = basic_access_keys(kseed)
    plain = unseal(k_enc, k_mac, request)
    if plain is None or not hmac.compare_digest(plain[NONCE_LENGTH : 2 * NONCE_LENGTH], rnd_ic):
        return None
    rnd_ifd, k_ifd = plain[:NONCE_LENGTH], plain[2 * NONCE_LENGTH :]
    answer = seal(k_enc, k_mac, rnd_ic + rnd_ifd + k_ic)
    ks_enc, ks_mac, ssc = derive_session(k_ifd, k_ic, rnd_ic, rnd_ifd)
    return answer, CardSecureMessaging(Cipher.TDES, ks_enc, ks_mac, ssc)


def _random(random: RandomSource, n: int) -> bytes:
    value = random(n)
    if len(value) != n:
        raise ValueError(f"the random source returned {len(value)} bytes instead of {n}")
    return value


def bac(
    protocol: ApduProtocol, mrz: MrzInfo | str, *, random: RandomSource = secrets.token_bytes
) -> SecureMessagingSession:
    """Run BAC over ``protocol`` and install the resulting secure messaging on it.

    ``mrz`` is an :class:`MrzInfo` or a whole machine readable zone (TD1, TD2 or TD3).
    ``random(8)`` draws RND.IFD, then ``random(16)`` K.IFD. Raises
    :class:`~ektp_card.errors.VerificationFailedError` when the card refuses the MRZ-derived keys
    and :class:`~ektp_card.errors.SecureMessagingError` when the chip's answer does not verify.
    """
    info = mrz if isinstance(mrz, MrzInfo) else MrzInfo.from_mrz(mrz)
    k_enc, k_mac = basic_access_keys(key_seed(info))
    # BAC itself runs unprotected; a session still installed would wrap its commands.
    protocol.secure_messaging = None
    rnd_ic = protocol.send(CommandApdu(0x00, INS_GET_CHALLENGE, 0x00, 0x00, le=NONCE_LENGTH)).data
    if len(rnd_ic) != NONCE_LENGTH:
        raise SecureMessagingError(f"BAC: the chip's challenge has {len(rnd_ic)} bytes, not {NONCE_LENGTH}")
    rnd_ifd = _random(random, NONCE_LENGTH)
    k_ifd = _random(random, KEY_MATERIAL_LENGTH)
    request = seal(k_enc, k_mac, rnd_ifd + rnd_ic + k_ifd)
    # The exchange allows an offline search for the (low-entropy) MRZ: keep it out of the logs.
    command = CommandApdu(
        0x00, INS_MUTUAL_AUTHENTICATE, 0x00, 0x00, request, le=CRYPTOGRAM_LENGTH, sensitive=True
    )
    try:
        answer = protocol.send(command).data
    except VerificationFailedError as exc:
        raise VerificationFailedError(
            exc.sw, exc.data,
            "BAC refused by the card: check the document number, date of birth and date of expiry",
        ) from None
    plain = unseal(k_enc, k_mac, answer)
    if plain is None:
        raise SecureMessagingError("BAC: the chip's authentication cryptogram does not verify")
    if not (
        hmac.compare_digest(plain[:NONCE_LENGTH], rnd_ic)
        and hmac.compare_digest(plain[NONCE_LENGTH : 2 * NONCE_LENGTH], rnd_ifd)
    ):
        raise SecureMessagingError("BAC: the chip's answer does not belong to this exchange")
    ks_enc, ks_mac, ssc = derive_session(k_ifd, plain[2 * NONCE_LENGTH :], rnd_ic, rnd_ifd)
    session = SecureMessagingSession(Cipher.TDES, ks_enc, ks_mac, ssc)
    protocol.secure_messaging = session
    return session
