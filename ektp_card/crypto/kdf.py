"""Key derivation for secure messaging and PACE (ICAO Doc 9303-11 section 9.7.1)."""

from __future__ import annotations

import hashlib
from enum import Enum

#: Counter values c of KDF(K, c) (ICAO 9303-11 section 9.7.1).
COUNTER_ENC = 1
COUNTER_MAC = 2
COUNTER_PI = 3


class Cipher(Enum):
    """Block ciphers of secure messaging: (name, key length in bytes). Names keep equal key lengths
    from making members aliases of each other."""

    TDES = ("3DES", 16)  # two-key 3DES (K1, K2, K1)
    AES128 = ("AES-128", 16)
    AES192 = ("AES-192", 24)
    AES256 = ("AES-256", 32)

    @property
    def key_length(self) -> int:
        return self.value[1]

    @property
    def block_size(self) -> int:
        return 8 if self is Cipher.TDES else 16


def adjust_des_parity(key: bytes) -> bytes:
    """Set the low bit of each byte so every byte has odd parity (FIPS 46-3)."""
    return bytes((b & 0xFE) | ((bin(b >> 1).count("1") + 1) & 1) for b in key)


def kdf(shared: bytes, counter: int, cipher: Cipher) -> bytes:
    """KDF(K, c): SHA-1 for 3DES and AES-128, SHA-256 for AES-192/256, truncated to the key length."""
    data = shared + counter.to_bytes(4, "big")
    if cipher in (Cipher.TDES, Cipher.AES128):
        digest = hashlib.sha1(data, usedforsecurity=True).digest()  # noqa: S324 - mandated by ICAO 9303-11
    else:
        digest = hashlib.sha256(data).digest()
    key = digest[: cipher.key_length]
    return adjust_des_parity(key) if cipher is Cipher.TDES else key


def session_keys(shared: bytes, cipher: Cipher) -> tuple[bytes, bytes]:
    """(K_Enc, K_MAC) from a shared secret."""
    return kdf(shared, COUNTER_ENC, cipher), kdf(shared, COUNTER_MAC, cipher)
