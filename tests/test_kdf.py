"""KDF known answers from ICAO Doc 9303-11 Appendix D (BAC) and G.1 (PACE), copied in vectors/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ektp_card.crypto.kdf import COUNTER_PI, Cipher, adjust_des_parity, kdf, session_keys

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "icao9303-part11.json").read_text())
BAC = VECTORS["bac"]
PACE = VECTORS["pace_ecdh_gm_brainpoolp256r1_aes128"]


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def test_bac_basic_access_keys() -> None:
    k_enc, k_mac = session_keys(h(BAC["kseed"]), Cipher.TDES)
    assert (k_enc, k_mac) == (h(BAC["k_enc"]), h(BAC["k_mac"]))


def test_bac_session_keys() -> None:
    k_seed = bytes(a ^ b for a, b in zip(h(BAC["k_ifd"]), h(BAC["k_ic"]), strict=True))
    assert session_keys(k_seed, Cipher.TDES) == (h(BAC["ks_enc"]), h(BAC["ks_mac"]))


def test_pace_password_key() -> None:
    assert kdf(h(PACE["k"]), COUNTER_PI, Cipher.AES128) == h(PACE["k_pi"])


def test_members_are_distinct() -> None:
    assert len({Cipher.TDES, Cipher.AES128, Cipher.AES192, Cipher.AES256}) == 4
    assert [c.key_length for c in Cipher] == [16, 16, 24, 32]


@pytest.mark.parametrize("cipher", [Cipher.AES192, Cipher.AES256])
def test_sha256_lengths(cipher: Cipher) -> None:
    assert len(kdf(b"\x01" * 32, 1, cipher)) == cipher.key_length


def test_parity() -> None:
    assert adjust_des_parity(bytes(range(256))) == bytes(
        (b & 0xFE) | (1 - bin(b >> 1).count("1") % 2) for b in range(256)
    )
    assert all(bin(b).count("1") % 2 == 1 for b in adjust_des_parity(bytes(range(256))))
