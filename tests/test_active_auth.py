"""Active Authentication (ICAO Doc 9303-11 section 6.1): terminal and virtual card, ECDSA and RSA.

ICAO Doc 9303-11 publishes no Active Authentication worked example; the ISO/IEC 9796-2 message
representative is checked byte for byte against one assembled here from its definition, and the
signatures against ``cryptography``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.iso7816 import Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW
from ektp_card.crypto.aa import (
    PLAIN_ECDSA_OIDS,
    AaResult,
    active_authenticate,
    internal_authenticate,
    iso9796_2_sign,
    verify_signature,
)
from ektp_card.crypto.bac import bac
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.crypto.pace import Password, perform_pace
from ektp_card.ec import BRAINPOOLP256R1, BRAINPOOLP384R1, SECP256R1, SECP384R1, SECP521R1, Curve
from ektp_card.errors import ActiveAuthenticationError
from ektp_card.lds.dg14 import ActiveAuthenticationInfo
from ektp_card.lds.dg15 import Dg15
from ektp_card.lds.public_key import RsaPublicKey
from ektp_card.session.card import read_card_access
from ektp_card.virtual import VirtualCard, demo_card
from ektp_card.virtual.aa import AA_PRIVATE_KEY, install_active_authentication, sign_challenge
from ektp_card.virtual.bac import enable_bac
from ektp_card.virtual.commands import Command, ok
from ektp_card.virtual.pace import install_pace

CAN = "123456"
MRZ = MrzInfo("L898902C3", "690806", "940623")
CHALLENGE = bytes.fromhex("0102030405060708")


def aa_card(
    curve: Curve | None = BRAINPOOLP256R1,
    *,
    rsa_bits: int | None = None,
    hash_name: str = "sha256",
    pace: bool = True,
) -> tuple[VirtualCard, Dg15, ActiveAuthenticationInfo | None]:
    card = demo_card()
    if pace:
        install_pace(card, can=CAN)
    else:
        enable_bac(card, MRZ)
    dg15, info = install_active_authentication(card, curve=curve, rsa_bits=rsa_bits, hash_name=hash_name)
    return card, dg15, info


def open_session(card: VirtualCard, *, pace: bool = True) -> ApduProtocol:
    """A new power-on session with PACE (or BAC)."""
    card.power_on()
    protocol = ApduProtocol(card)
    if pace:
        parameters, explicit = read_card_access(Iso7816Session(protocol)).choose_pace()
        perform_pace(protocol, Password.can(CAN), parameters, send_parameter_id=explicit)
    else:
        bac(protocol, MRZ)
    return protocol


def run_aa(
    card: VirtualCard,
    dg15: Dg15,
    info: ActiveAuthenticationInfo | None,
    *,
    random_bytes: Callable[[int], bytes] | None = None,
    protocol: ApduProtocol | None = None,
) -> AaResult:
    protocol = protocol or open_session(card)
    algorithm = None if info is None else info.signature_algorithm
    if random_bytes is None:
        return active_authenticate(protocol, dg15.public_key.to_cryptography(), signature_algorithm=algorithm)
    return active_authenticate(
        protocol, dg15.public_key.to_cryptography(), signature_algorithm=algorithm, random_bytes=random_bytes
    )


def fixed(value: bytes) -> Callable[[int], bytes]:
    return lambda n: value[:n]


def replace_internal_authenticate(
    card: VirtualCard, answer: Callable[[VirtualCard, CommandApdu], bytes]
) -> None:
    card.commands[0x88] = Command("INTERNAL AUTHENTICATE", lambda c, apdu: ok(answer(c, apdu)))


def card_key(card: VirtualCard) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    key = load_der_private_key(card.keys[AA_PRIVATE_KEY], None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return key


# --- genuine chips ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("curve", "hash_name", "length"),
    [
        (BRAINPOOLP256R1, "sha256", 64),
        (SECP256R1, "sha256", 64),
        (SECP384R1, "sha384", 96),
        (BRAINPOOLP384R1, "sha384", 96),
        (SECP521R1, "sha512", 132),
        (SECP256R1, "sha1", 64),
    ],
    ids=lambda v: v.name if isinstance(v, Curve) else str(v),
)
def test_ecdsa(curve: Curve, hash_name: str, length: int) -> None:
    card, dg15, info = aa_card(curve, hash_name=hash_name)
    assert info is not None and info.signature_algorithm == PLAIN_ECDSA_OIDS[hash_name]
    result = run_aa(card, dg15, info)
    assert result.passed and result.supported, result.reason
    assert len(result.signature) == length  # r || s, each on the byte length of the order
    assert result.algorithm == f"ECDSA with {hash_name.upper().replace('SHA', 'SHA-')}"
    # The plain signature is r || s over the challenge itself (checked with cryptography directly).
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    half = length // 2
    der = encode_dss_signature(
        int.from_bytes(result.signature[:half], "big"), int.from_bytes(result.signature[half:], "big")
    )
    public = dg15.public_key.to_cryptography()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(der, result.challenge, ec.ECDSA(getattr(hashes, hash_name.upper())()))


@pytest.mark.parametrize(("bits", "hash_name"), [(1024, "sha1"), (1536, "sha256"), (2048, "sha256")])
def test_rsa(bits: int, hash_name: str) -> None:
    # 2048 bits: 256 bytes of signature do not fit one protected short response: 61xx, GET RESPONSE.
    card, dg15, info = aa_card(None, rsa_bits=bits, hash_name=hash_name)
    assert info is None and isinstance(dg15.public_key, RsaPublicKey) and dg15.public_key.bits == bits
    result = run_aa(card, dg15, info)
    assert result.passed, result.reason
    assert len(result.signature) == bits // 8
    assert result.algorithm == f"RSA ISO/IEC 9796-2 scheme 1 with {hash_name.upper().replace('SHA', 'SHA-')}"


def test_after_bac() -> None:
    card, dg15, info = aa_card(pace=False)
    assert run_aa(card, dg15, info, protocol=open_session(card, pace=False)).passed


def test_fresh_challenge_each_time() -> None:
    card, dg15, info = aa_card()
    seen: list[bytes] = []
    original = card.commands[0x88]

    def record(c: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
        seen.append(apdu.encode())
        return original.handler(c, apdu)

    card.commands[0x88] = Command(original.name, record)
    protocol = open_session(card)
    first = run_aa(card, dg15, info, protocol=protocol)
    second = run_aa(card, dg15, info, protocol=protocol)
    assert first.passed and second.passed and first.challenge != second.challenge
    # An injected source: the exact plain command the chip ran.
    third = run_aa(card, dg15, info, protocol=protocol, random_bytes=fixed(CHALLENGE))
    assert third.passed and third.challenge == CHALLENGE
    assert seen[-1] == bytes.fromhex("008800000801020304050607" + "0800")
    assert internal_authenticate(CHALLENGE).encode() == seen[-1]


# --- what a clone or a tampered chip answers ----------------------------------------------------------


def test_wrong_key() -> None:
    card, _, info = aa_card()
    _, other_dg15, _ = aa_card()
    result = run_aa(card, other_dg15, info)
    assert not result.passed and result.supported
    assert result.reason == "the ECDSA signature does not verify with DG15's public key"
    with pytest.raises(ActiveAuthenticationError, match="^Active Authentication failed: the ECDSA"):
        result.require()


def test_wrong_rsa_key() -> None:
    card, _, info = aa_card(None, rsa_bits=1024)
    _, other_dg15, _ = aa_card(None, rsa_bits=1024)
    result = run_aa(card, other_dg15, info)
    # Under the other key the signature is either too large for its modulus or recovers garbage:
    # which one depends on the two random moduli.
    assert not result.passed
    assert "representative" in result.reason or "below the modulus" in result.reason


@pytest.mark.parametrize("rsa_bits", [None, 1024], ids=["ecdsa", "rsa"])
def test_replayed_signature(rsa_bits: int | None) -> None:
    card, dg15, info = aa_card(rsa_bits=rsa_bits)
    recorded = run_aa(card, dg15, info)
    assert recorded.passed
    # A clone replays what the genuine chip answered once.
    replace_internal_authenticate(card, lambda c, apdu: recorded.signature)
    replayed = run_aa(card, dg15, info)
    assert replayed.challenge != recorded.challenge and not replayed.passed


@pytest.mark.parametrize("rsa_bits", [None, 1024], ids=["ecdsa", "rsa"])
def test_chip_signing_something_else(rsa_bits: int | None) -> None:
    card, dg15, info = aa_card(rsa_bits=rsa_bits)
    key = card_key(card)
    replace_internal_authenticate(card, lambda c, apdu: sign_challenge(key, "sha256", apdu.data[::-1]))
    result = run_aa(card, dg15, info)
    assert not result.passed
    if rsa_bits:
        assert (
            result.reason == "the recovered hash does not match the challenge: the chip signed something else"
        )


def test_signature_of_the_wrong_length() -> None:
    card, dg15, info = aa_card()
    replace_internal_authenticate(card, lambda c, apdu: bytes(63))
    result = run_aa(card, dg15, info)
    assert not result.passed and result.reason == "the ECDSA signature has 63 bytes, not the 64 of r || s"


def test_der_signature_accepted() -> None:
    # Not what ICAO asks for, but what some chips answer: a DER Ecdsa-Sig-Value.
    card, dg15, info = aa_card()
    key = card_key(card)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    replace_internal_authenticate(card, lambda c, apdu: key.sign(apdu.data, ec.ECDSA(hashes.SHA256())))
    assert run_aa(card, dg15, info).passed


# --- the card's refusals, unsupported setups -----------------------------------------------------------


def test_needs_pace_or_bac() -> None:
    card, dg15, info = aa_card()
    result = run_aa(card, dg15, info, protocol=ApduProtocol(card))
    assert not result.passed and result.reason.startswith("the chip refused INTERNAL AUTHENTICATE (6982")


def test_a_refusal_names_the_step_and_status_word() -> None:
    card, dg15, info = aa_card()
    result = run_aa(card, dg15, info, protocol=ApduProtocol(card))
    assert (result.step, result.sw) == ("INTERNAL AUTHENTICATE", SW.SECURITY_STATUS_NOT_SATISFIED)
    with pytest.raises(ActiveAuthenticationError) as error:
        result.require()
    assert (error.value.step, error.value.sw) == ("INTERNAL AUTHENTICATE", SW.SECURITY_STATUS_NOT_SATISFIED)
    # A wrong signature is no refusal: no step, no status word.
    replace_internal_authenticate(card, lambda c, apdu: bytes(64))
    wrong = run_aa(card, dg15, info)
    assert not wrong.passed and (wrong.step, wrong.sw) == ("", SW.OK)
    with pytest.raises(ActiveAuthenticationError) as error:
        wrong.require()
    assert (error.value.step, error.value.sw) == ("", None)


def test_card_without_active_authentication() -> None:
    card = demo_card()
    install_pace(card, can=CAN)
    assert open_session(card).transmit(internal_authenticate(CHALLENGE)).sw == SW.INS_NOT_SUPPORTED


@pytest.mark.parametrize(
    ("command", "sw"),
    [
        (CommandApdu(0x00, 0x88, 0x00, 0x00, bytes(7), le=256), SW.WRONG_LENGTH),
        (CommandApdu(0x00, 0x88, 0x00, 0x00, bytes(8)), SW.WRONG_LENGTH),
        (CommandApdu(0x00, 0x88, 0x00, 0x01, bytes(8), le=256), SW.INCORRECT_P1P2),
    ],
    ids=["short-challenge", "no-le", "p2"],
)
def test_malformed_commands(command: CommandApdu, sw: int) -> None:
    card, _, _ = aa_card()
    assert open_session(card).transmit(command).sw == sw


def test_ecdsa_needs_the_signature_algorithm() -> None:
    card, dg15, _ = aa_card()
    result = run_aa(card, dg15, None)
    assert not result.passed and not result.supported and "ActiveAuthenticationInfo" in result.reason
    odd = ActiveAuthenticationInfo("1.2.3.4")
    result = run_aa(card, dg15, odd)
    assert not result.passed and not result.supported and "1.2.3.4" in result.reason


# --- ISO/IEC 9796-2 scheme 1, byte for byte --------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> Iterator[rsa.RSAPrivateKey]:
    # 1024 bits, as many passports' Active Authentication keys: fast enough for every example.
    yield rsa.generate_private_key(65537, 1024)  # noqa: S505


@pytest.mark.parametrize(
    ("hash_name", "trailer"),
    [("sha1", "BC"), ("sha256", "34CC"), ("sha384", "36CC"), ("sha512", "35CC"), ("sha224", "38CC")],
)
def test_iso9796_2_representative(rsa_key: rsa.RSAPrivateKey, hash_name: str, trailer: str) -> None:
    digest_length = hashlib.new(hash_name).digest_size
    m1 = bytes(range(128 - digest_length - len(trailer) // 2 - 1))
    signature = iso9796_2_sign(rsa_key, CHALLENGE, hash_name, random_bytes=fixed(m1))
    numbers = rsa_key.public_key().public_numbers()
    recovered = pow(int.from_bytes(signature, "big"), numbers.e, numbers.n).to_bytes(128, "big")
    expected = b"\x6a" + m1 + hashlib.new(hash_name, m1 + CHALLENGE).digest() + bytes.fromhex(trailer)
    assert recovered == expected
    assert verify_signature(rsa_key.public_key(), CHALLENGE, signature) == (
        None,
        f"RSA ISO/IEC 9796-2 scheme 1 with {hash_name.upper().replace('SHA', 'SHA-')}",
    )
    # ISO/IEC 9796-2 lets the signer send n - s: the same verification.
    other = (numbers.n - int.from_bytes(signature, "big")).to_bytes(128, "big")
    assert verify_signature(rsa_key.public_key(), CHALLENGE, other)[0] is None
    # One bit off in the challenge, or a bit flipped in the signature, and it fails.
    assert verify_signature(rsa_key.public_key(), b"\x00" + CHALLENGE[1:], signature)[0] is not None
    flipped = bytes((signature[0] ^ 1,)) + signature[1:]
    assert verify_signature(rsa_key.public_key(), CHALLENGE, flipped)[0] is not None


def test_iso9796_2_rejects_big_signature(rsa_key: rsa.RSAPrivateKey) -> None:
    reason, _ = verify_signature(rsa_key.public_key(), CHALLENGE, b"\xff" * 129)
    assert reason == "the RSA signature is not a number below the modulus"


def test_ecdsa_verification_needs_a_hash() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ActiveAuthenticationError):
        verify_signature(key.public_key(), CHALLENGE, bytes(64))
