"""The elliptic-curve arithmetic of ektp_card.ec: the pure-Python reference checked against
OpenSSL through ``cryptography``, and the OpenSSL-backed fast path checked against the reference."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric import ec as cec
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ektp_card.ec import (
    BRAINPOOLP256R1,
    SECP224R1,
    SECP256R1,
    STANDARDIZED_CURVES,
    Curve,
    InvalidPointError,
    Point,
    PrivateKey,
    _regular_digits,
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
CURVES = list(STANDARDIZED_CURVES.values())


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
    for multiply in (curve.multiply, curve.multiply_python):
        assert multiply(curve.n, g) is None
        assert multiply(curve.n - 1, g) == curve.negate(g)
        assert multiply(curve.n + 1, g) == g
        assert multiply(1, g) == g
    assert curve.size == (curve.p.bit_length() + 7) // 8


@pytest.mark.parametrize("curve", CROSS, ids=lambda c: c.name)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_scalar_multiplication_matches_openssl(curve: Curve, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=1, max_value=curve.n - 1))
    ours = curve.multiply_python(k, curve.generator)
    theirs = cec.derive_private_key(k, OPENSSL[curve.name]).public_key().public_numbers()
    assert ours == Point(theirs.x, theirs.y)


@pytest.mark.parametrize("curve", CROSS, ids=lambda c: c.name)
def test_ecdh_x_coordinate_matches_openssl(curve: Curve) -> None:
    a = cec.generate_private_key(OPENSSL[curve.name])
    b = cec.generate_private_key(OPENSSL[curve.name])
    b_numbers = b.public_key().public_numbers()
    shared = curve.multiply_python(a.private_numbers().private_value, Point(b_numbers.x, b_numbers.y))
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
    for multiply in (c.multiply, c.multiply_python):
        assert multiply(0, g) is None and multiply(5, None) is None
        with pytest.raises(ValueError):
            multiply(-1, g)


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


# --- the OpenSSL fast path against the pure-Python reference ---------------------------------------


def _openssl_has(name: str) -> bool:
    try:
        cec.derive_private_key(1, OPENSSL[name])
    except Exception:  # noqa: BLE001 - UnsupportedAlgorithm, whatever the version raises
        return False
    return True


@pytest.mark.parametrize("curve", CURVES, ids=lambda c: c.name)
def test_accelerated_exactly_where_openssl_has_the_curve(curve: Curve) -> None:
    expected = curve.name in OPENSSL and _openssl_has(curve.name)
    assert curve.accelerated is expected
    if expected:
        # The runtime probe only checks that G lies on OpenSSL's curve; here: it is OpenSSL's G.
        numbers = cec.derive_private_key(1, OPENSSL[curve.name]).public_key().public_numbers()
        assert Point(numbers.x, numbers.y) == curve.generator


def test_installed_cryptography_accelerates_eight_curves() -> None:
    # cryptography 42-49 with its bundled OpenSSL: every named PACE curve but three Brainpool ones.
    slow = {c.name for c in CURVES if not c.accelerated}
    assert slow == {"brainpoolP192r1", "brainpoolP224r1", "brainpoolP320r1"}


def test_other_parameters_under_a_standard_name_are_not_accelerated() -> None:
    fake = dataclasses.replace(SECP256R1, b=SECP256R1.b + 1)
    assert not fake.accelerated
    assert SECP256R1.accelerated


def _point(curve: Curve, data: st.DataObject) -> Point:
    j = data.draw(st.integers(min_value=1, max_value=curve.n - 1), label="j")
    point = curve.multiply_python(j, curve.generator)
    assert point is not None
    return point


@pytest.mark.parametrize("curve", CURVES, ids=lambda c: c.name)
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_fast_products_match_python(curve: Curve, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=1, max_value=curve.n - 1), label="k")
    point = _point(curve, data)
    expected = curve.multiply_python(k, point)
    assert expected is not None
    key = PrivateKey(curve, k)
    assert key.public == curve.multiply_python(k, curve.generator) == curve.multiply(k, curve.generator)
    assert key.multiply(point) == expected == curve.multiply(k, point)
    assert key.exchange(point) == expected.x.to_bytes(curve.size, "big")
    # The scalar is reduced modulo n on both paths.
    assert curve.multiply(k + curve.n, point) == curve.multiply_python(k + 2 * curve.n, point) == expected


@pytest.mark.parametrize("curve", CURVES, ids=lambda c: c.name)
@pytest.mark.parametrize("k", [1, 2, 3, 15, 16, 17, -3, -2, -1], ids=lambda k: f"k={k}")
def test_fast_products_on_special_points(curve: Curve, k: int) -> None:
    """Small and large scalars (k < 0 stands for n + k) on G, -G and 2G: the branches of the fast
    path that need no ECDH, and the exceptional cases of the window's additions."""
    k %= curve.n
    g = curve.generator
    minus_g, two_g = curve.negate(g), curve.multiply_python(2, g)
    assert minus_g is not None and two_g is not None
    key = PrivateKey(curve, k)
    for point in (g, minus_g, two_g):
        expected = curve.multiply_python(k, point)
        assert expected is not None
        assert key.multiply(point) == expected
        assert key.exchange(point) == expected.x.to_bytes(curve.size, "big")
    # The reference itself, against the group law: k*G = (k-1)*G + G.
    previous = curve.multiply_python(k - 1, g)
    assert curve.multiply_python(k, g) == curve.add(previous, g)


@pytest.mark.parametrize("curve", CURVES, ids=lambda c: c.name)
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_lift_x(curve: Curve, data: st.DataObject) -> None:
    point = _point(curve, data)
    lifted = curve.lift_x(point.x)
    assert lifted.y % 2 == 0 and curve.contains(lifted)
    assert lifted in (point, curve.negate(point))
    if curve.openssl is not None:
        assert curve.openssl.lift_x(point.x) == lifted


@pytest.mark.parametrize("curve", CURVES, ids=lambda c: c.name)
def test_lift_x_refuses_x_without_point(curve: Curve) -> None:
    # About half of all x have no point; find the first from 0 up with the curve equation.
    x = next(x for x in range(1000) if pow(x**3 + curve.a * x + curve.b, (curve.p - 1) // 2, curve.p) > 1)
    with pytest.raises(InvalidPointError):
        curve.lift_x(x)
    with pytest.raises(InvalidPointError):
        curve.lift_x(curve.p)
    if curve.openssl is not None:
        with pytest.raises(InvalidPointError):
            curve.openssl.lift_x(x)


def test_lift_x_tonelli_shanks() -> None:
    # P-224 is the one curve with p = 1 mod 4 (p - 1 = q 2^96): the square root needs Tonelli-Shanks.
    c = SECP224R1
    assert c.p % 4 == 1
    for k in (1, 2, 3, 12345, c.n - 1):
        point = c.multiply_python(k, c.generator)
        assert point is not None
        assert c.lift_x(point.x) in (point, c.negate(point))


@pytest.mark.parametrize("curve", CURVES, ids=lambda c: c.name)
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_resolve_sign(curve: Curve, data: st.DataObject) -> None:
    """The disambiguation the fast path relies on, computed entirely in Python: x(k*(P + G))
    picks k*P out of (x, +-y)."""
    k = data.draw(st.integers(min_value=1, max_value=curve.n - 1), label="k")
    point = _point(curve, data)
    product, k_g = curve.multiply_python(k, point), curve.multiply_python(k, curve.generator)
    shifted = curve.add(point, curve.generator)
    assume(shifted is not None)  # P = -G: the fast path answers -(k*G) without this check
    assert product is not None and k_g is not None and shifted is not None
    check = curve.multiply_python(k, shifted)
    assert check is not None
    lifted = curve.lift_x(product.x)
    negated = curve.negate(lifted)
    assert negated is not None
    assert curve.resolve_sign(lifted, k_g, check.x) == product
    assert curve.resolve_sign(negated, k_g, check.x) == product
    sums = {q.x for q in (curve.add(lifted, k_g), curve.add(negated, k_g)) if q is not None}
    with pytest.raises(InvalidPointError):
        curve.resolve_sign(lifted, k_g, min(set(range(3)) - sums))


@pytest.mark.parametrize("curve", [SECP256R1, STANDARDIZED_CURVES[14]], ids=lambda c: c.name)
def test_points_off_the_curve_refused(curve: Curve) -> None:
    g = curve.generator
    off = Point(g.x, (g.y + 1) % curve.p)
    key = PrivateKey(curve, 7)
    for product in (
        lambda: curve.multiply(7, off),
        lambda: curve.multiply_python(7, off),
        lambda: key.multiply(off),
        lambda: key.exchange(off),
    ):
        with pytest.raises(InvalidPointError):
            product()


def test_private_key_range_and_repr() -> None:
    c = BRAINPOOLP256R1
    for k in (0, c.n, -1):
        with pytest.raises(ValueError, match=r"\[1, n-1\]"):
            PrivateKey(c, k)
    k = 0x7E2D2A41C70C8EF5F8D1F3D4B9A4A0F2E5A66E1C5E0F4D07A2B3C4D5E6F70811
    key = PrivateKey(c, k)
    assert key.scalar == k
    assert repr(key) == "PrivateKey(brainpoolP256r1)"
    assert f"{k:x}" not in repr(key).lower() and str(k) not in repr(key)


@given(k=st.integers(min_value=0, max_value=(1 << 521) - 1).map(lambda k: k | 1))
@settings(max_examples=50)
def test_regular_recoding(k: int) -> None:
    count = -(-521 // 4) + 1
    digits = _regular_digits(k, count)
    assert len(digits) == count
    assert all(d % 2 == 1 and -15 <= d <= 15 for d in digits)
    assert digits[-1] == 1
    assert sum(d << (4 * i) for i, d in enumerate(digits)) == k
