"""The personalisation key and its mutual authentication, computed the same way by card and desk.

This project's scheme, modelled on GlobalPlatform SCP03 (GPC Card Specification v2.3 Amendment D) in
its "S16" mode (16-byte challenges and cryptograms); docs/personalisation.md describes the commands.

* Every card holds its own key, diversified from the issuer's master key by the card serial::

      K_perso = KDF(K_master, 50, serial, length of K_master)

  The card stores only K_perso; a card that gives its key away exposes no other card.
* INITIALIZE UPDATE carries the desk's challenge; the card answers its serial, a fresh challenge and
  the card cryptogram. Both ends derive the session keys from the two challenges::

      context = host challenge || card challenge
      S_ENC = KDF(K_perso, 04, context)      S_MAC = KDF(K_perso, 06, context)
      card cryptogram = KDF(S_MAC, 00, context, 128 bits)
      host cryptogram = KDF(S_MAC, 01, context, 128 bits)

  EXTERNAL AUTHENTICATE carries the host cryptogram; after it both ends run ICAO Doc 9303-11 secure
  messaging (:mod:`ektp_card.crypto.sm`) with S_ENC and S_MAC, AES of the key's length, SSC 0.

``KDF`` is the data derivation scheme of SCP03 (Amendment D, "Data Derivation Scheme"): NIST SP 800-108 in
counter mode with AES-CMAC, the fixed input being an 11-byte zero label and a one-byte derivation
constant, a zero separator, the output length L in bits (two bytes), the counter i (one byte) and the
context. The constants 00, 01, 04 and 06 are SCP03's; 50 (key diversification) is this project's.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers.algorithms import AES

from ektp_card.crypto.kdf import Cipher

#: Derivation constants (SCP03, GPC Amendment D; 50 is ours).
CARD_CRYPTOGRAM = 0x00
HOST_CRYPTOGRAM = 0x01
SESSION_ENC = 0x04
SESSION_MAC = 0x06
DIVERSIFICATION = 0x50

CHALLENGE_LENGTH = 16
CRYPTOGRAM_LENGTH = 16
#: The card serial the perso key is diversified with (and that the desk reports).
SERIAL_LENGTH = 8
#: Key lengths of the personalisation keys: AES-128 and AES-256.
KEY_CIPHERS = {16: Cipher.AES128, 32: Cipher.AES256}

#: What INITIALIZE UPDATE says about the card's content (one byte of its answer).
STATE_BLANK = 0x00
STATE_INCOMPLETE = 0x01

# The commands' codes, shared by the card (ektp_card.virtual.perso) and the desk
# (ektp_card.personalize.protocol). CLA 80: proprietary class, 8C under secure messaging.
CLA_PROPRIETARY = 0x80
INS_INITIALIZE_UPDATE = 0x50
INS_EXTERNAL_AUTHENTICATE = 0x82
INS_GENERATE_KEY_PAIR = 0x46
INS_PUT_DATA = 0xDA
INS_ERASE = 0xE4
INS_LOCK = 0xF0
INS_GET_DATA = 0xCA
#: GET DATA P1-P2 for the card's free memory: GlobalPlatform's Extended Card Resources Information
#: (tag FF21, GlobalPlatform Card Specification 2.3 section 11.3.3.1, from ETSI TS 102 226), whose DO 82
#: is the free non-volatile memory in bytes.
CARD_RESOURCES = 0xFF21
TAG_FREE_MEMORY = 0x82
#: GENERATE ASYMMETRIC KEY PAIR key references (P2).
KEY_CHIP_AUTHENTICATION = 0x01
KEY_ACTIVE_AUTHENTICATION = 0x02
#: PUT DATA P2 for the CAN: its PACE password reference (ICAO Doc 9303-11 section 4.4.4.1).
CAN_REFERENCE = 0x02
#: LOCK's P1-P2: the card (80, as GlobalPlatform SET STATUS names the issuer security domain) and the
#: life-cycle status it moves to (05, operational activated, ISO/IEC 7816-4 section 7.4.10).
LOCK_P1P2 = (0x80, 0x05)


def key_cipher(key: bytes) -> Cipher:
    """The secure-messaging cipher of a personalisation key: AES of its length (16 or 32 bytes)."""
    cipher = KEY_CIPHERS.get(len(key))
    if cipher is None:
        raise ValueError("a personalisation key is an AES-128 or AES-256 key (16 or 32 bytes)")
    return cipher


def derive(key: bytes, constant: int, context: bytes, length: int) -> bytes:
    """``length`` bytes of KDF(key, constant, context): SCP03's NIST SP 800-108 counter-mode KDF
    with AES-CMAC (GPC Amendment D, "Data Derivation Scheme")."""
    key_cipher(key)
    if not 0 < length <= 255 * 16 or not 0 <= constant <= 0xFF:
        raise ValueError("derivation constant or output length out of range")
    fixed = bytes(11) + bytes((constant,)) + b"\x00" + (8 * length).to_bytes(2, "big")
    out = b""
    for counter in range(1, -(-length // 16) + 1):
        mac = cmac.CMAC(AES(key))
        mac.update(fixed + bytes((counter,)) + context)
        out += mac.finalize()
    return out[:length]


def diversify(master_key: bytes, serial: bytes) -> bytes:
    """K_perso of the card with ``serial``: as long as the master key (AES-128 or AES-256)."""
    if len(serial) != SERIAL_LENGTH:
        raise ValueError(f"a card serial has {SERIAL_LENGTH} bytes")
    return derive(master_key, DIVERSIFICATION, serial, len(master_key))


@dataclass(frozen=True, repr=False)
class SessionKeys:
    """The keys of one personalisation session, and the two cryptograms that prove them."""

    cipher: Cipher
    k_enc: bytes
    k_mac: bytes
    context: bytes

    def __repr__(self) -> str:
        return f"SessionKeys({self.cipher.value[0]})"

    @property
    def card_cryptogram(self) -> bytes:
        return derive(self.k_mac, CARD_CRYPTOGRAM, self.context, CRYPTOGRAM_LENGTH)

    @property
    def host_cryptogram(self) -> bytes:
        return derive(self.k_mac, HOST_CRYPTOGRAM, self.context, CRYPTOGRAM_LENGTH)

    def card_proves(self, cryptogram: bytes) -> bool:
        return hmac.compare_digest(self.card_cryptogram, cryptogram)

    def host_proves(self, cryptogram: bytes) -> bool:
        return hmac.compare_digest(self.host_cryptogram, cryptogram)


def session_keys(k_perso: bytes, host_challenge: bytes, card_challenge: bytes) -> SessionKeys:
    """S_ENC and S_MAC for one pair of challenges."""
    if len(host_challenge) != CHALLENGE_LENGTH or len(card_challenge) != CHALLENGE_LENGTH:
        raise ValueError(f"challenges have {CHALLENGE_LENGTH} bytes")
    cipher = key_cipher(k_perso)
    context = host_challenge + card_challenge
    length = cipher.key_length
    k_enc = derive(k_perso, SESSION_ENC, context, length)
    return SessionKeys(cipher, k_enc, derive(k_perso, SESSION_MAC, context, length), context)


@dataclass(frozen=True)
class InitializeUpdateAnswer:
    """The card's answer to INITIALIZE UPDATE (42 bytes)::

    serial (8) | key length (1: 10 or 20) | state (1: 00 blank, 01 incomplete)
      | card challenge (16) | card cryptogram (16)
    """

    serial: bytes
    cipher: Cipher
    incomplete: bool
    card_challenge: bytes
    card_cryptogram: bytes = field(repr=False)

    LENGTH = SERIAL_LENGTH + 2 + CHALLENGE_LENGTH + CRYPTOGRAM_LENGTH

    def encode(self) -> bytes:
        state = STATE_INCOMPLETE if self.incomplete else STATE_BLANK
        return (
            self.serial + bytes((self.cipher.key_length, state)) + self.card_challenge + self.card_cryptogram
        )

    @classmethod
    def decode(cls, data: bytes) -> InitializeUpdateAnswer:
        """Parse the answer; :class:`ValueError` naming what is wrong."""
        if len(data) != cls.LENGTH:
            raise ValueError(f"the INITIALIZE UPDATE answer has {len(data)} bytes, not {cls.LENGTH}")
        serial, rest = data[:SERIAL_LENGTH], data[SERIAL_LENGTH:]
        cipher = KEY_CIPHERS.get(rest[0])
        if cipher is None:
            raise ValueError(f"unknown personalisation key length {rest[0]}")
        if rest[1] not in (STATE_BLANK, STATE_INCOMPLETE):
            raise ValueError(f"unknown personalisation state {rest[1]:02X}")
        challenge = rest[2 : 2 + CHALLENGE_LENGTH]
        return cls(serial, cipher, rest[1] == STATE_INCOMPLETE, challenge, rest[2 + CHALLENGE_LENGTH :])


__all__ = [
    "CHALLENGE_LENGTH",
    "CRYPTOGRAM_LENGTH",
    "SERIAL_LENGTH",
    "InitializeUpdateAnswer",
    "SessionKeys",
    "derive",
    "diversify",
    "key_cipher",
    "session_keys",
]
