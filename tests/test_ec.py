"""The elliptic-curve arithmetic of ektp_card.crypto.ec, checked against OpenSSL through ``cryptography``."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec as cec
from hypothesis import given, settings
from hypothesis import strategies as st

from ektp_card.crypto.ec import (
    BRAINPOOLP256R1,
    SECP256R1,
    STANDARDIZED_CURVES,
    Curve,
    InvalidPointError,
    Point,
)

#: The curves OpenSSL knows by name, for cross-checks.
OPENSSL: dict[str, cec.EllipticCurve] = {
    "secp192r1": cec.SECP192R1(),
    "secp224r1": cec.SECP224R1(),
    "secp256r1": cec.SECP256R1(),
    "secp384r1": cec.SECP384R1(),
    "secp521r1": cec.SECP521R1(),
    "brainpoolP256r1": cec.BrainpoolP256R1(),
    "brainpoolP384r1": cec.BrainpoolP384R1(),
    "brainpoolP512r1": cec.BrainpoolP512R1(),
}
CROSS = [c for c in STANDARDIZED_CURVES.values() if c.name in OPENSSL]


def test_parameter_ids() -> None:
    # ICAO Doc 9303-11 section 9.5.1.
    names = {pid: c.name for pid, c in STANDARDIZED_CURVES.items()}
    assert names == {
        8: "secp192r1", 9: "brainpoolP192r1", 10: "secp224r1", 11: "brainpoolP224r1",
        12: "secp256r1", 13: "brainpoolP256r1", 14: "brainpoolP320r1", 15: "secp384r1",
        16: "brainpoolP384r1", 17: "brainpoolP512r1", 18: "secp521r1",
    }  # fmt: skip


@pytest.mark.parametrize("curve", STANDARDIZED_CURVES.values(), ids=lambda c: c.name)
def test_generator_has_order_n(curve: Curve) -> None:
    g = curve.generator
    assert curve.contains(g)
    assert curve.multiply(curve.n, g) is None
    assert curve.multiply(curve.n - 1, g) == curve.negate(g)
    assert curve.multiply(curve.n + 1, g) == g
    assert curve.size == (curve.p.bit_length() + 7) // 8


@pytest.mark.parametrize("curve", CROSS, ids=lambda c: c.name)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_scalar_multiplication_matches_openssl(curve: Curve, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=1, max_value=curve.n - 1))
    ours = curve.multiply(k, curve.generator)
    theirs = cec.derive_private_key(k, OPENSSL[curve.name]).public_key().public_numbers()
    assert ours == Point(theirs.x, theirs.y)


@pytest.mark.parametrize("curve", CROSS, ids=lambda c: c.name)
def test_ecdh_x_coordinate_matches_openssl(curve: Curve) -> None:
    a = cec.generate_private_key(OPENSSL[curve.name])
    b = cec.generate_private_key(OPENSSL[curve.name])
    b_numbers = b.public_key().public_numbers()
    shared = curve.multiply(a.private_numbers().private_value, Point(b_numbers.x, b_numbers.y))
    assert shared is not None
    assert shared.x.to_bytes(curve.size, "big") == a.exchange(cec.ECDH(), b.public_key())


def test_group_law_identities() -> None:
    c = BRAINPOOLP256R1
    g = c.generator
    g2 = c.multiply(2, g)
    assert c.add(g, g) == g2
    assert c.add(g, None) == g and c.add(None, g) == g and c.add(None, None) is None
    assert c.add(g, c.negate(g)) is None
    assert c.add(g2, g) == c.multiply(3, g)
    assert c.add(c.multiply(5, g), c.multiply(7, g)) == c.multiply(12, g)
    assert c.multiply(0, g) is None and c.multiply(5, None) is None
    with pytest.raises(ValueError):
        c.multiply(-1, g)


def test_point_encoding_round_trip() -> None:
    c = SECP256R1
    encoded = c.encode_point(c.generator)
    assert encoded == bytes.fromhex(
        "046B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296"
        "4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5"
    )
    assert c.decode_point(encoded) == c.generator


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda e: b"\x00", id="infinity"),
        pytest.param(lambda e: b"\x02" + e[1:33], id="compressed"),
        pytest.param(lambda e: b"\x06" + e[1:], id="hybrid-prefix"),
        pytest.param(lambda e: e[:-1], id="short"),
        pytest.param(lambda e: e + b"\x00", id="long"),
        pytest.param(lambda e: e[:-1] + bytes((e[-1] ^ 1,)), id="off-curve"),
        pytest.param(lambda e: b"\x04" + b"\xff" * 64, id="coordinates-above-p"),
    ],
)
def test_invalid_points_refused(mutate: object) -> None:
    c = SECP256R1
    bad = mutate(c.encode_point(c.generator))  # type: ignore[operator]
    with pytest.raises(InvalidPointError):
        c.decode_point(bad)


def test_x_plus_p_is_not_accepted_for_x() -> None:
    # A coordinate must be reduced modulo p: x + p satisfies the equation modulo p as well.
    c = BRAINPOOLP256R1
    g = next(q for k in range(1, 50) if (q := c.multiply(k, c.generator)) and q.x + c.p < 1 << 256)
    assert c.decode_point(c.encode_point(g)) == g
    forged = b"\x04" + (g.x + c.p).to_bytes(32, "big") + g.y.to_bytes(32, "big")
    with pytest.raises(InvalidPointError):
        c.decode_point(forged)


@pytest.mark.parametrize("curve", CROSS, ids=lambda c: c.name)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_validation_agrees_with_openssl(curve: Curve, data: st.DataObject) -> None:
    """Random coordinates: both libraries must agree whether they form a point of the curve."""
    k = data.draw(st.integers(min_value=1, max_value=curve.n - 1))
    point = curve.multiply(k, curve.generator)
    assert point is not None
    dy = data.draw(st.sampled_from([0, 1]))
    candidate = Point(point.x, (point.y + dy) % curve.p)
    ours = curve.contains(candidate)
    try:
        cec.EllipticCurvePublicNumbers(candidate.x, candidate.y, OPENSSL[curve.name]).public_key()
        theirs = True
    except ValueError:
        theirs = False
    assert ours == theirs == (dy == 0)
