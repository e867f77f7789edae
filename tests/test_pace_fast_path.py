"""Whole PACE runs on every standardized curve with injected keys and nonce: the terminal
(:func:`perform_pace`) against the chip's computations (:class:`ChipPace`), each byte compared with
the same run computed with the pure-Python reference arithmetic (``Curve.multiply_python``).

On the curves OpenSSL has, both sides take the fast path; on the others, the Python one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.tlv import Tlv, parse_dict, unpack
from ektp_card.crypto.kdf import session_keys
from ektp_card.crypto.pace import (
    ECDH_GM_AES256,
    PaceParameters,
    Password,
    PasswordType,
    authentication_token,
    nonce_length,
    perform_pace,
)
from ektp_card.ec import STANDARDIZED_CURVES, Curve, Point
from ektp_card.virtual.pace import ChipPace

CAN = "123456"


class ChipTransport:
    """A transport that answers PACE's commands with a :class:`ChipPace`, nothing else."""

    def __init__(self, chip: ChipPace) -> None:
        self.chip = chip

    def transceive(self, command: bytes) -> bytes:
        apdu = CommandApdu.decode(command)
        if apdu.ins == 0x22:
            return b"\x90\x00"
        objects = parse_dict(unpack(0x7C, apdu.data))
        if not objects:
            reply = Tlv(0x80, self.chip.encrypted_nonce())
        elif 0x81 in objects:
            reply = Tlv(0x82, self.chip.mapping(objects[0x81]))
        elif 0x83 in objects:
            reply = Tlv(0x84, self.chip.key_agreement(objects[0x83]))
        else:
            token = self.chip.tokens(objects[0x85])
            assert token is not None
            reply = Tlv(0x86, token)
        return Tlv.of(0x7C, reply).encode() + b"\x90\x00"


def python_product(curve: Curve, k: int, point: Point) -> Point:
    product = curve.multiply_python(k, point)
    assert product is not None
    return product


def scalars(curve: Curve) -> st.SearchStrategy[int]:
    return st.integers(min_value=1, max_value=curve.n - 1)


@pytest.mark.parametrize("parameter_id", sorted(STANDARDIZED_CURVES))
@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_pace_run_matches_python_reference(parameter_id: int, data: st.DataObject) -> None:
    parameters = PaceParameters(ECDH_GM_AES256, parameter_id)
    curve, cipher = parameters.curve, parameters.cipher
    # A 32-byte nonce exceeds n on the 192- and 224-bit curves: s*G reduces s modulo n.
    nonce = data.draw(st.binary(min_size=nonce_length(cipher), max_size=nonce_length(cipher)), label="s")
    t_map, t_eph, c_map, c_eph = (data.draw(scalars(curve), label=name) for name in ("tm", "te", "cm", "ce"))
    assume(t_map != c_map and t_eph != c_eph)  # equal public keys: both sides refuse a reflection
    # The run in pure Python first: random draws can map the generator to infinity, which PACE refuses.
    g = curve.generator
    shared = python_product(curve, t_map, python_product(curve, c_map, g))
    assert shared == python_product(curve, c_map, python_product(curve, t_map, g))
    s_g = curve.multiply_python(int.from_bytes(nonce, "big"), g)
    mapped = curve.add(s_g, shared)
    assume(mapped is not None)
    assert mapped is not None
    terminal_eph = python_product(curve, t_eph, mapped)
    chip_eph = python_product(curve, c_eph, mapped)
    secret = python_product(curve, t_eph, chip_eph).x.to_bytes(curve.size, "big")
    k_enc, k_mac = session_keys(secret, cipher)

    terminal_keys: Iterator[int] = iter((t_map, t_eph))
    chip_keys: Iterator[int] = iter((c_map, c_eph))
    password = Password.can(CAN)
    chip = ChipPace(
        parameters,
        PasswordType.CAN,
        password.key,
        random_bytes=lambda n: nonce,
        key_source=lambda c: next(chip_keys),
    )
    result = perform_pace(
        ApduProtocol(ChipTransport(chip)),
        password,
        parameters,
        key_source=lambda c: next(terminal_keys),
        install_secure_messaging=False,
    )

    assert result.terminal_public_key == curve.encode_point(terminal_eph)
    assert result.chip_public_key == curve.encode_point(chip_eph)
    assert (result.k_enc, result.k_mac) == (k_enc, k_mac) == chip.session_keys()
    expected_token = authentication_token(ECDH_GM_AES256, k_mac, curve.encode_point(terminal_eph))
    assert chip.tokens(authentication_token(ECDH_GM_AES256, k_mac, result.chip_public_key)) == expected_token
