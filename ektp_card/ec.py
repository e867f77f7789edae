"""Elliptic-curve arithmetic over prime fields, with OpenSSL where it has the curve.

PACE Generic Mapping (ICAO Doc 9303-11 section 4.4.3.3.1) needs the full shared point H of an ECDH
exchange, the mapped generator G~ = s*G + H, and key pairs on that non-standard generator. OpenSSL
(through ``cryptography``) offers key generation on the standard generator and ECDH, which yields
the x-coordinate of a product alone. :class:`PrivateKey` builds every product PACE needs from those
two operations (see :meth:`PrivateKey.multiply`); for curves the installed OpenSSL lacks
(brainpoolP192r1, brainpoolP224r1, brainpoolP320r1) it falls back to the pure-Python group law of
:class:`Curve`, which is also the reference the fast path is tested against. Both give the same
points, byte for byte.

Side channels: this is a terminal and card-simulator library, not a smart card. OpenSSL's ECDH and
key generation are written to be constant-time. The Python parts are not, as Python integers are
not: the scalar multiplication (:meth:`Curve.multiply_python`) at least runs the same sequence of
group operations for every scalar of a curve (a fixed window over a recoding without zero digits,
so not even the scalar's bit length shows), but its table lookups are indexed by secret digits, and
the point additions and decompression around the OpenSSL calls work on secret-derived values with
variable-time integer arithmetic. Long-term keys and signatures belong in ``cryptography``; a
chip's secrets belong in a chip.

Curve parameters: RFC 5639 section 3 (Brainpool r1 curves) and FIPS 186-4 appendix D.1.2 /
SEC 2 v2 section 2 (NIST prime curves). The standardized domain parameter IDs are those of
ICAO Doc 9303-11 section 9.5.1 (table 12, "standardized domain parameters").
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec as _openssl_ec

from ektp_card.errors import EktpError


class InvalidPointError(EktpError, ValueError):
    """Bytes that do not encode a point of the curve (wrong form, coordinates out of range, or
    not satisfying the curve equation)."""


@dataclass(frozen=True)
class Point:
    """An affine point other than the point at infinity (which this API spells ``None``)."""

    x: int
    y: int


# Jacobian (X, Y, Z) stands for the affine point (X/Z^2, Y/Z^3); Z = 0 is the point at infinity.
_Jacobian = tuple[int, int, int]
_INFINITY: _Jacobian = (1, 1, 0)
#: Bits per digit of the windowed scalar multiplication: 2^(w-1) odd multiples in the table.
_WINDOW = 4


def _regular_digits(k: int, count: int) -> list[int]:
    """Odd k as ``count`` odd digits d_i in [-(2^w - 1), 2^w - 1], k = sum d_i 2^(w i), least
    significant first. No digit is zero, so every window adds a point: the sequence of group
    operations does not depend on k. The top digit is 1 when 2^(w (count-1)) > k."""
    digits = []
    mask = (1 << (_WINDOW + 1)) - 1
    for _ in range(count - 1):
        digit = (k & mask) - (1 << _WINDOW)  # odd, as k is; (k - digit) / 2^w is odd again
        digits.append(digit)
        k = (k - digit) >> _WINDOW
    digits.append(k)
    return digits


def _sqrt_mod(a: int, p: int) -> int | None:
    """A square root of a modulo the odd prime p, ``None`` if a is not a square."""
    a %= p
    if a == 0:
        return 0
    if p % 4 == 3:
        root = pow(a, (p + 1) // 4, p)
        return root if root * root % p == a else None
    if pow(a, (p - 1) // 2, p) != 1:  # Euler's criterion
        return None
    # Tonelli-Shanks (p - 1 = q 2^s, q odd); among the PACE curves only P-224 needs it.
    q, s = p - 1, 0
    while q % 2 == 0:
        q, s = q // 2, s + 1
    z = 2
    while pow(z, (p - 1) // 2, p) != p - 1:
        z += 1
    m, c, t, root = s, pow(z, q, p), pow(a, q, p), pow(a, (q + 1) // 2, p)
    while t != 1:
        i, t2 = 0, t
        while t2 != 1:
            t2, i = t2 * t2 % p, i + 1
        b = pow(c, 1 << (m - i - 1), p)
        m, c, t, root = i, b * b % p, t * b * b % p, root * b % p
    return root


@dataclass(frozen=True)
class Curve:
    """Short Weierstrass curve y^2 = x^3 + ax + b over GF(p) with base point G of prime order n."""

    name: str
    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int
    h: int = 1

    @property
    def size(self) -> int:
        """Bytes of one field element (and of one coordinate in the point encoding)."""
        return (self.p.bit_length() + 7) // 8

    @property
    def generator(self) -> Point:
        return Point(self.gx, self.gy)

    def contains(self, point: Point) -> bool:
        """Whether ``point`` has coordinates in GF(p) and satisfies the curve equation."""
        x, y, p = point.x, point.y, self.p
        if not (0 <= x < p and 0 <= y < p):
            return False
        return (y * y - (x * x * x + self.a * x + self.b)) % p == 0

    def lift_x(self, x: int) -> Point:
        """The point with x-coordinate ``x`` and an even y (the SEC 1 section 2.3.4 decompression
        of 02 || x); its negative is the other one. :class:`InvalidPointError` if there is none."""
        p = self.p
        y = _sqrt_mod(x * x * x + self.a * x + self.b, p) if 0 <= x < p else None
        if y is None:
            raise InvalidPointError(f"no point of {self.name} has this x-coordinate")
        return Point(x, p - y if y & 1 else y)

    # --- encoding (ICAO Doc 9303-11 section 9.4.1: uncompressed, SEC 1 section 2.3.3) ------------

    def encode_point(self, point: Point) -> bytes:
        """04 || X || Y, each coordinate on :attr:`size` bytes."""
        return b"\x04" + point.x.to_bytes(self.size, "big") + point.y.to_bytes(self.size, "big")

    def decode_point(self, data: bytes) -> Point:
        """Parse and validate an uncompressed point; :class:`InvalidPointError` if it is not one.

        Compressed and hybrid forms are refused: PACE and Chip Authentication exchange
        uncompressed points. All curves here have cofactor 1, so every point that satisfies the
        equation (and is not at infinity, which has no uncompressed form) lies in the group of
        order n.
        """
        size = self.size
        if len(data) != 1 + 2 * size or data[0] != 0x04:
            raise InvalidPointError(f"not an uncompressed point of {self.name}")
        point = Point(int.from_bytes(data[1 : 1 + size], "big"), int.from_bytes(data[1 + size :], "big"))
        if not self.contains(point):
            raise InvalidPointError(f"the point is not on {self.name}")
        return point

    # --- the group law ---------------------------------------------------------------------------

    @cached_property
    def _a_is_minus_3(self) -> bool:
        return self.a == self.p - 3

    def _double(self, q: _Jacobian) -> _Jacobian:
        x, y, z = q
        p = self.p
        if z == 0 or y == 0:
            return _INFINITY
        yy = y * y % p
        s = 4 * x * yy % p
        zz = z * z % p
        if self._a_is_minus_3:
            m = 3 * (x - zz) * (x + zz) % p  # 3x^2 - 3z^4, the NIST curves' shortcut
        else:
            m = (3 * x * x + self.a * zz * zz) % p
        x3 = (m * m - 2 * s) % p
        y3 = (m * (s - x3) - 8 * yy * yy) % p
        z3 = 2 * y * z % p
        return x3, y3, z3

    def _add(self, q1: _Jacobian, q2: _Jacobian) -> _Jacobian:
        x1, y1, z1 = q1
        x2, y2, z2 = q2
        if z1 == 0:
            return q2
        if z2 == 0:
            return q1
        p = self.p
        z1z1 = z1 * z1 % p
        z2z2 = z2 * z2 % p
        u1 = x1 * z2z2 % p
        u2 = x2 * z1z1 % p
        s1 = y1 * z2 * z2z2 % p
        s2 = y2 * z1 * z1z1 % p
        if u1 == u2:
            # Same x: either the same point (double it) or opposite points (sum at infinity).
            return self._double(q1) if s1 == s2 else _INFINITY
        hh = (u2 - u1) % p
        r = (s2 - s1) % p
        h2 = hh * hh % p
        h3 = hh * h2 % p
        u1h2 = u1 * h2 % p
        x3 = (r * r - h3 - 2 * u1h2) % p
        y3 = (r * (u1h2 - x3) - s1 * h3) % p
        z3 = hh * z1 * z2 % p
        return x3, y3, z3

    def _add_affine(self, q1: _Jacobian, x2: int, y2: int) -> _Jacobian:
        """q1 + (x2, y2): the mixed addition, cheaper than :meth:`_add` with Z2 = 1."""
        x1, y1, z1 = q1
        if z1 == 0:
            return x2, y2, 1
        p = self.p
        z1z1 = z1 * z1 % p
        hh = (x2 * z1z1 - x1) % p
        r = (y2 * z1 * z1z1 - y1) % p
        if hh == 0:
            return self._double(q1) if r == 0 else _INFINITY
        h2 = hh * hh % p
        h3 = hh * h2 % p
        v = x1 * h2 % p
        x3 = (r * r - h3 - 2 * v) % p
        y3 = (r * (v - x3) - y1 * h3) % p
        return x3, y3, z1 * hh % p

    def _affine(self, q: _Jacobian) -> Point | None:
        x, y, z = q
        if z == 0:
            return None
        p = self.p
        zi = pow(z, -1, p)
        zi2 = zi * zi % p
        return Point(x * zi2 % p, y * zi2 * zi % p)

    @staticmethod
    def _jacobian(point: Point | None) -> _Jacobian:
        return _INFINITY if point is None else (point.x, point.y, 1)

    def add(self, a: Point | None, b: Point | None) -> Point | None:
        """a + b; ``None`` is the point at infinity."""
        return self._affine(self._add(self._jacobian(a), self._jacobian(b)))

    def negate(self, point: Point | None) -> Point | None:
        return None if point is None else Point(point.x, (-point.y) % self.p)

    def _scalar(self, k: int, point: Point | None) -> int:
        """k reduced modulo n, after the checks every multiplication makes; 0 for a product at
        infinity. Reducing is sound because every point of these curves has an order dividing n."""
        if k < 0:
            raise ValueError("negative scalar")
        if point is None:
            return 0
        if not self.contains(point):
            raise InvalidPointError(f"the point is not on {self.name}")
        return k % self.n

    def multiply(self, k: int, point: Point | None) -> Point | None:
        """k * point (k >= 0; ``None`` is the point at infinity), with OpenSSL when it has the
        curve (see :meth:`PrivateKey.multiply`), else :meth:`multiply_python`: the same point."""
        k = self._scalar(k, point)
        if k == 0 or point is None:
            return None
        return PrivateKey(self, k).multiply(point)

    def multiply_python(self, k: int, point: Point | None) -> Point | None:
        """k * point in pure Python: Jacobian coordinates, a fixed window of :data:`_WINDOW` bits
        over odd digits. :class:`InvalidPointError` for a point off the curve."""
        k = self._scalar(k, point)
        if k == 0 or point is None:
            return None
        # The recoding wants an odd scalar: n is an odd prime, so one of k and n - k is odd, and
        # (n - k) * P = -(k * P).
        odd = k if k & 1 else self.n - k
        table = self._generator_table if point == self.generator else self._odd_multiples(point)
        count = -(-self.n.bit_length() // _WINDOW) + 1
        digits = _regular_digits(odd, count)
        acc = self._jacobian(table[digits[-1] >> 1])  # the top digit is 1: see _regular_digits
        p = self.p
        for digit in reversed(digits[:-1]):
            for _ in range(_WINDOW):
                acc = self._double(acc)
            entry = table[abs(digit) >> 1]
            # Negate the table point by sign arithmetic rather than a branch.
            acc = self._add_affine(acc, entry.x, entry.y * ((digit > 0) - (digit < 0)) % p)
        result = self._affine(acc)
        return result if k & 1 else self.negate(result)

    def _odd_multiples(self, point: Point) -> list[Point]:
        """P, 3P, 5P, ..., (2^w - 1)P in affine form, with one inversion for all (Montgomery's
        trick). None of them is at infinity: P has order n, far above 2^w."""
        double = self._double(self._jacobian(point))
        row = [self._jacobian(point)]
        for _ in range((1 << (_WINDOW - 1)) - 1):
            row.append(self._add(row[-1], double))
        p = self.p
        prefix = [1]
        for _x, _y, z in row:
            prefix.append(prefix[-1] * z % p)
        inverse = pow(prefix[-1], -1, p)
        out: list[Point] = [point] * len(row)
        for i in range(len(row) - 1, -1, -1):
            x, y, z = row[i]
            zi = inverse * prefix[i] % p
            inverse = inverse * z % p
            zi2 = zi * zi % p
            out[i] = Point(x * zi2 % p, y * zi2 * zi % p)
        return out

    @cached_property
    def _generator_table(self) -> list[Point]:
        return self._odd_multiples(self.generator)

    def resolve_sign(self, candidate: Point, offset: Point, x_of_sum: int) -> Point:
        """Of ``candidate`` and its negative, the point R with x(R + offset) = ``x_of_sum``.

        This recovers a full product R = k*P from its x-coordinate: with offset = k*G and
        x_of_sum = x(k*(P + G)) = x(R + k*G), only one sign fits. If both did, R + kG = +-(-R + kG),
        so R = -R (no point of odd order n has y = 0) or 2kG = O (impossible for k in [1, n-1]).
        :class:`InvalidPointError` if neither fits (inputs that do not describe such a product).
        """
        for r in (candidate, Point(candidate.x, (-candidate.y) % self.p)):
            total = self.add(r, offset)
            if total is not None and total.x == x_of_sum:
                return r
        raise InvalidPointError(f"neither sign of the point fits the check value on {self.name}")

    @cached_property
    def openssl(self) -> OpenSslCurve | None:
        """OpenSSL's arithmetic on this curve, ``None`` if the installed ``cryptography`` lacks it
        or the curve is not one of the named curves here."""
        curve_class = _OPENSSL_CLASSES.get(self.name)
        if curve_class is None or _STANDARD_BY_NAME.get(self.name) != self:
            return None  # a name alone proves nothing: the parameters must be the standard ones
        try:
            backend = OpenSslCurve(self, curve_class())
        except (UnsupportedAlgorithm, ValueError):
            return None
        return backend

    @property
    def accelerated(self) -> bool:
        """Whether products on this curve go through OpenSSL."""
        return self.openssl is not None

    def random_scalar(self) -> int:
        """A private key drawn uniformly from [1, n-1] with the ``secrets`` generator."""
        return 1 + secrets.randbelow(self.n - 1)


class OpenSslCurve:
    """The operations OpenSSL offers on one named curve, through ``cryptography``."""

    def __init__(self, curve: Curve, named: _openssl_ec.EllipticCurve) -> None:
        self.curve = curve
        self.named = named
        # UnsupportedAlgorithm if this OpenSSL lacks the curve, ValueError if our generator is not
        # on OpenSSL's curve of that name. A cheap probe (no scalar multiplication): a command-line
        # run does one PACE per process. That OpenSSL's generator is ours is a test's job.
        self.public_key(curve.generator)

    def __repr__(self) -> str:
        return f"OpenSslCurve({self.curve.name})"

    def private_key(self, k: int) -> _openssl_ec.EllipticCurvePrivateKey:
        """The key pair of scalar k in [1, n-1]: OpenSSL computes k*G."""
        return _openssl_ec.derive_private_key(k, self.named)

    def public_key(self, point: Point) -> _openssl_ec.EllipticCurvePublicKey:
        """``point`` as OpenSSL's public key (which checks that it lies on the curve)."""
        return _openssl_ec.EllipticCurvePublicNumbers(point.x, point.y, self.named).public_key()

    def lift_x(self, x: int) -> Point:
        """:meth:`Curve.lift_x` by OpenSSL's point decompression (02 || x: the even y)."""
        try:
            key = _openssl_ec.EllipticCurvePublicKey.from_encoded_point(
                self.named, b"\x02" + x.to_bytes(self.curve.size, "big")
            )
        except ValueError:
            raise InvalidPointError(f"no point of {self.curve.name} has this x-coordinate") from None
        numbers = key.public_numbers()
        return Point(numbers.x, numbers.y)


class PrivateKey:
    """A private scalar k in [1, n-1] of a curve, with the products PACE needs: its public key
    k*G, k*P for any point P of the curve, and the ECDH secret x(k*P).

    With OpenSSL (:attr:`Curve.accelerated`), k*G comes from key generation and x(k*P) from ECDH.
    The full k*P (PACE's shared mapping point H and its public keys on the mapped generator G~)
    takes two ECDH: x = x(k*P) gives the two candidates (x, +-y) by decompression, and
    x(k*(P + G)) = x(k*P + k*G), with k*G known, tells which one is k*P (:meth:`Curve.resolve_sign`).

    Either sign would make a valid key pair on G~ (-(k*G~) is the public key of n - k, and both
    give the same ECDH x-coordinate with any peer), so the second ECDH could be saved for an
    ephemeral key. It is not: a private key yields exactly its own public key k*G~, so an injected
    key gives the bytes of ICAO Doc 9303-11 Appendix G.1 and the scalar kept always matches the
    point sent. The value of k stays out of ``repr``.
    """

    __slots__ = ("curve", "_k", "_openssl", "_public")

    def __init__(self, curve: Curve, k: int) -> None:
        if not 1 <= k < curve.n:
            raise ValueError("a private key must lie in [1, n-1]")
        self.curve = curve
        self._k = k
        self._public: Point | None = None
        self._openssl: tuple[OpenSslCurve, _openssl_ec.EllipticCurvePrivateKey] | None = None
        backend = curve.openssl
        if backend is not None:
            key = backend.private_key(k)
            numbers = key.public_key().public_numbers()
            self._openssl = backend, key
            self._public = Point(numbers.x, numbers.y)

    def __repr__(self) -> str:
        return f"PrivateKey({self.curve.name})"

    @property
    def scalar(self) -> int:
        """k."""
        return self._k

    @property
    def public(self) -> Point:
        """The public key k*G."""
        if self._public is None:
            self._public = self._python(self.curve.generator)
        return self._public

    def _python(self, point: Point) -> Point:
        product = self.curve.multiply_python(self._k, point)
        if product is None:  # only for a point outside the group of order n, which the curve lacks
            raise InvalidPointError("the product is the point at infinity")
        return product

    def _check(self, point: Point) -> None:
        if not self.curve.contains(point):
            raise InvalidPointError(f"the point is not on {self.curve.name}")

    def exchange(self, point: Point) -> bytes:
        """x(k * point) on the field size: the ECDH shared secret (ICAO Doc 9303-11 section 9.7.1).
        :class:`InvalidPointError` if ``point`` is not on the curve."""
        self._check(point)
        if self._openssl is None:
            return self._python(point).x.to_bytes(self.curve.size, "big")
        backend, key = self._openssl
        return key.exchange(_openssl_ec.ECDH(), backend.public_key(point))

    def multiply(self, point: Point) -> Point:
        """k * point, never at infinity for a point of the curve (all have order n).
        :class:`InvalidPointError` if ``point`` is not on the curve."""
        self._check(point)
        if self._openssl is None:
            return self._python(point)
        curve, public = self.curve, self.public
        generator = curve.generator
        if point == generator:
            return public
        shifted = curve.add(point, generator)
        if shifted is None:  # point = -G: k*point = -(k*G)
            return Point(public.x, curve.p - public.y)
        backend, key = self._openssl
        x = key.exchange(_openssl_ec.ECDH(), backend.public_key(point))
        check = key.exchange(_openssl_ec.ECDH(), backend.public_key(shifted))
        candidate = backend.lift_x(int.from_bytes(x, "big"))
        return curve.resolve_sign(candidate, public, int.from_bytes(check, "big"))


#: A source of private keys: given the curve, return a scalar in [1, n-1].
KeySource = Callable[[Curve], int]


def default_key_source(curve: Curve) -> int:
    return curve.random_scalar()


def _h(text: str) -> int:
    return int(text.replace(" ", ""), 16)


# NIST curves: FIPS 186-4 appendix D.1.2 (also SEC 2 v2 sections 2.2.2-2.9.2); a = p - 3.
_P192 = _h("FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFE FFFFFFFF FFFFFFFF")
SECP192R1 = Curve(
    "secp192r1",
    p=_P192,
    a=_P192 - 3,
    b=_h("64210519 E59C80E7 0FA7E9AB 72243049 FEB8DEEC C146B9B1"),
    gx=_h("188DA80E B03090F6 7CBF20EB 43A18800 F4FF0AFD 82FF1012"),
    gy=_h("07192B95 FFC8DA78 631011ED 6B24CDD5 73F977A1 1E794811"),
    n=_h("FFFFFFFF FFFFFFFF FFFFFFFF 99DEF836 146BC9B1 B4D22831"),
)
_P224 = _h("FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF 00000000 00000000 00000001")
SECP224R1 = Curve(
    "secp224r1",
    p=_P224,
    a=_P224 - 3,
    b=_h("B4050A85 0C04B3AB F5413256 5044B0B7 D7BFD8BA 270B3943 2355FFB4"),
    gx=_h("B70E0CBD 6BB4BF7F 321390B9 4A03C1D3 56C21122 343280D6 115C1D21"),
    gy=_h("BD376388 B5F723FB 4C22DFE6 CD4375A0 5A074764 44D58199 85007E34"),
    n=_h("FFFFFFFF FFFFFFFF FFFFFFFF FFFF16A2 E0B8F03E 13DD2945 5C5C2A3D"),
)
_P256 = _h("FFFFFFFF 00000001 00000000 00000000 00000000 FFFFFFFF FFFFFFFF FFFFFFFF")
SECP256R1 = Curve(
    "secp256r1",
    p=_P256,
    a=_P256 - 3,
    b=_h("5AC635D8 AA3A93E7 B3EBBD55 769886BC 651D06B0 CC53B0F6 3BCE3C3E 27D2604B"),
    gx=_h("6B17D1F2 E12C4247 F8BCE6E5 63A440F2 77037D81 2DEB33A0 F4A13945 D898C296"),
    gy=_h("4FE342E2 FE1A7F9B 8EE7EB4A 7C0F9E16 2BCE3357 6B315ECE CBB64068 37BF51F5"),
    n=_h("FFFFFFFF 00000000 FFFFFFFF FFFFFFFF BCE6FAAD A7179E84 F3B9CAC2 FC632551"),
)
_P384 = _h(
    "FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF"
    " FFFFFFFF FFFFFFFE FFFFFFFF 00000000 00000000 FFFFFFFF"
)
SECP384R1 = Curve(
    "secp384r1",
    p=_P384,
    a=_P384 - 3,
    b=_h(
        "B3312FA7 E23EE7E4 988E056B E3F82D19 181D9C6E FE814112"
        " 0314088F 5013875A C656398D 8A2ED19D 2A85C8ED D3EC2AEF"
    ),
    gx=_h(
        "AA87CA22 BE8B0537 8EB1C71E F320AD74 6E1D3B62 8BA79B98"
        " 59F741E0 82542A38 5502F25D BF55296C 3A545E38 72760AB7"
    ),
    gy=_h(
        "3617DE4A 96262C6F 5D9E98BF 9292DC29 F8F41DBD 289A147C"
        " E9DA3113 B5F0B8C0 0A60B1CE 1D7E819D 7A431D7C 90EA0E5F"
    ),
    n=_h(
        "FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF"
        " C7634D81 F4372DDF 581A0DB2 48B0A77A ECEC196A CCC52973"
    ),
)
_P521 = (1 << 521) - 1
SECP521R1 = Curve(
    "secp521r1",
    p=_P521,
    a=_P521 - 3,
    b=_h(
        "0051 953EB961 8E1C9A1F 929A21A0 B68540EE A2DA725B"
        " 99B315F3 B8B48991 8EF109E1 56193951 EC7E937B 1652C0BD"
        " 3BB1BF07 3573DF88 3D2C34F1 EF451FD4 6B503F00"
    ),
    gx=_h(
        "00C6 858E06B7 0404E9CD 9E3ECB66 2395B442 9C648139"
        " 053FB521 F828AF60 6B4D3DBA A14B5E77 EFE75928 FE1DC127"
        " A2FFA8DE 3348B3C1 856A429B F97E7E31 C2E5BD66"
    ),
    gy=_h(
        "0118 39296A78 9A3BC004 5C8A5FB4 2C7D1BD9 98F54449"
        " 579B4468 17AFBD17 273E662C 97EE7299 5EF42640 C550B901"
        " 3FAD0761 353C7086 A272C240 88BE9476 9FD16650"
    ),
    n=_h(
        "01FF FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF"
        " FFFFFFFF FFFFFFFF FFFFFFFA 51868783 BF2F966B 7FCC0148"
        " F709A5D0 3BB5C9B8 899C47AE BB6FB71E 91386409"
    ),
)

# Brainpool r1 curves: RFC 5639 sections 3.1-3.7.
BRAINPOOLP192R1 = Curve(
    "brainpoolP192r1",
    p=_h("C302F41D932A36CDA7A3463093D18DB78FCE476DE1A86297"),
    a=_h("6A91174076B1E0E19C39C031FE8685C1CAE040E5C69A28EF"),
    b=_h("469A28EF7C28CCA3DC721D044F4496BCCA7EF4146FBF25C9"),
    gx=_h("C0A0647EAAB6A48753B033C56CB0F0900A2F5C4853375FD6"),
    gy=_h("14B690866ABD5BB88B5F4828C1490002E6773FA2FA299B8F"),
    n=_h("C302F41D932A36CDA7A3462F9E9E916B5BE8F1029AC4ACC1"),
)
BRAINPOOLP224R1 = Curve(
    "brainpoolP224r1",
    p=_h("D7C134AA264366862A18302575D1D787B09F075797DA89F57EC8C0FF"),
    a=_h("68A5E62CA9CE6C1C299803A6C1530B514E182AD8B0042A59CAD29F43"),
    b=_h("2580F63CCFE44138870713B1A92369E33E2135D266DBB372386C400B"),
    gx=_h("0D9029AD2C7E5CF4340823B2A87DC68C9E4CE3174C1E6EFDEE12C07D"),
    gy=_h("58AA56F772C0726F24C6B89E4ECDAC24354B9E99CAA3F6D3761402CD"),
    n=_h("D7C134AA264366862A18302575D0FB98D116BC4B6DDEBCA3A5A7939F"),
)
BRAINPOOLP256R1 = Curve(
    "brainpoolP256r1",
    p=_h("A9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377"),
    a=_h("7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9"),
    b=_h("26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6"),
    gx=_h("8BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262"),
    gy=_h("547EF835C3DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F046997"),
    n=_h("A9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7"),
)
BRAINPOOLP320R1 = Curve(
    "brainpoolP320r1",
    p=_h("D35E472036BC4FB7E13C785ED201E065F98FCFA6F6F40DEF4F92B9EC7893EC28FCD412B1F1B32E27"),
    a=_h("3EE30B568FBAB0F883CCEBD46D3F3BB8A2A73513F5EB79DA66190EB085FFA9F492F375A97D860EB4"),
    b=_h("520883949DFDBC42D3AD198640688A6FE13F41349554B49ACC31DCCD884539816F5EB4AC8FB1F1A6"),
    gx=_h("43BD7E9AFB53D8B85289BCC48EE5BFE6F20137D10A087EB6E7871E2A10A599C710AF8D0D39E20611"),
    gy=_h("14FDD05545EC1CC8AB4093247F77275E0743FFED117182EAA9C77877AAAC6AC7D35245D1692E8EE1"),
    n=_h("D35E472036BC4FB7E13C785ED201E065F98FCFA5B68F12A32D482EC7EE8658E98691555B44C59311"),
)
BRAINPOOLP384R1 = Curve(
    "brainpoolP384r1",
    p=_h(
        "8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B412B1DA197FB71123ACD3A729901D1A71874700133107EC53"
    ),
    a=_h(
        "7BC382C63D8C150C3C72080ACE05AFA0C2BEA28E4FB22787139165EFBA91F90F8AA5814A503AD4EB04A8C7DD22CE2826"
    ),
    b=_h(
        "04A8C7DD22CE28268B39B55416F0447C2FB77DE107DCD2A62E880EA53EEB62D57CB4390295DBC9943AB78696FA504C11"
    ),
    gx=_h(
        "1D1C64F068CF45FFA2A63A81B7C13F6B8847A3E77EF14FE3DB7FCAFE0CBD10E8E826E03436D646AAEF87B2E247D4AF1E"
    ),
    gy=_h(
        "8ABE1D7520F9C2A45CB1EB8E95CFD55262B70B29FEEC5864E19C054FF99129280E4646217791811142820341263C5315"
    ),
    n=_h(
        "8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B31F166E6CAC0425A7CF3AB6AF6B7FC3103B883202E9046565"
    ),
)
BRAINPOOLP512R1 = Curve(
    "brainpoolP512r1",
    p=_h(
        "AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA703308717D4D9B009BC66842AECDA12AE6A380E6"
        "2881FF2F2D82C68528AA6056583A48F3"
    ),
    a=_h(
        "7830A3318B603B89E2327145AC234CC594CBDD8D3DF91610A83441CAEA9863BC2DED5D5AA8253AA10A2EF1C98B9AC8B5"
        "7F1117A72BF2C7B9E7C1AC4D77FC94CA"
    ),
    b=_h(
        "3DF91610A83441CAEA9863BC2DED5D5AA8253AA10A2EF1C98B9AC8B57F1117A72BF2C7B9E7C1AC4D77FC94CADC083E67"
        "984050B75EBAE5DD2809BD638016F723"
    ),
    gx=_h(
        "81AEE4BDD82ED9645A21322E9C4C6A9385ED9F70B5D916C1B43B62EEF4D0098EFF3B1F78E2D0D48D50D1687B93B97D5F"
        "7C6D5047406A5E688B352209BCB9F822"
    ),
    gy=_h(
        "7DDE385D566332ECC0EABFA9CF7822FDF209F70024A57B1AA000C55B881F8111B2DCDE494A5F485E5BCA4BD88A2763AE"
        "D1CA2B2FA8F0540678CD1E0F3AD80892"
    ),
    n=_h(
        "AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330870553E5C414CA92619418661197FAC1047"
        "1DB1D381085DDADDB58796829CA90069"
    ),
)

#: Standardized elliptic-curve domain parameters by parameterId (ICAO Doc 9303-11 section 9.5.1,
#: table 12). IDs 0-2 are the RFC 5114 MODP groups, 3-7 and 19-31 RFU.
STANDARDIZED_CURVES: Mapping[int, Curve] = MappingProxyType(
    {
        8: SECP192R1,
        9: BRAINPOOLP192R1,
        10: SECP224R1,
        11: BRAINPOOLP224R1,
        12: SECP256R1,
        13: BRAINPOOLP256R1,
        14: BRAINPOOLP320R1,
        15: SECP384R1,
        16: BRAINPOOLP384R1,
        17: BRAINPOOLP512R1,
        18: SECP521R1,
    }
)


_STANDARD_BY_NAME: Mapping[str, Curve] = MappingProxyType({c.name: c for c in STANDARDIZED_CURVES.values()})
#: The curves ``cryptography`` names; whether its OpenSSL has each is found out on first use.
_OPENSSL_CLASSES: Mapping[str, type[_openssl_ec.EllipticCurve]] = MappingProxyType(
    {
        "secp192r1": _openssl_ec.SECP192R1,
        "secp224r1": _openssl_ec.SECP224R1,
        "secp256r1": _openssl_ec.SECP256R1,
        "secp384r1": _openssl_ec.SECP384R1,
        "secp521r1": _openssl_ec.SECP521R1,
        "brainpoolP256r1": _openssl_ec.BrainpoolP256R1,
        "brainpoolP384r1": _openssl_ec.BrainpoolP384R1,
        "brainpoolP512r1": _openssl_ec.BrainpoolP512R1,
    }
)
