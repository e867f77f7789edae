"""Public keys as the data groups carry them: a SubjectPublicKeyInfo with an EC or an RSA key.

DG14 holds the chip's Chip Authentication key (in a ChipAuthenticationPublicKeyInfo) and DG15 its
Active Authentication key, both as an X.509 SubjectPublicKeyInfo (ICAO Doc 9303-11 sections 6.1 and
9.2.6)::

    SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }

Elliptic-curve keys use ``id-ecPublicKey`` with the domain parameters in one of three forms:

* explicit ``ECParameters`` (SEC 1 version 2 section C.2: prime field, a, b, base point, order,
  cofactor), which BSI TR-03110-3 section A.2.1.2 requires for Chip Authentication keys ("named
  curves and implicit domain parameters MUST NOT be used");
* a named curve OID (RFC 5480 section 2.1.1, RFC 5639 section 4.1), as X.509 tools write them;
* ``standardizedDomainParameters`` with the ID of ICAO Doc 9303-11 section 9.5.1 (BSI TR-03110-3
  section A.2.1.1).

All three are read; only the standardized curves of :data:`~ektp_card.ec.STANDARDIZED_CURVES`
are accepted, explicit parameters included (they must equal one of them): the terminal then never
computes on domain parameters it does not know to be sound. RSA keys use ``rsaEncryption`` with an
``RSAPublicKey`` (RFC 8017 appendix A.1.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from asn1crypto import core, keys  # type: ignore[import-untyped]
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ektp_card.ec import STANDARDIZED_CURVES, Curve, InvalidPointError
from ektp_card.errors import ASN1_ERRORS, LdsFormatError, one_line

ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
ID_PRIME_FIELD = "1.2.840.10045.1.1"
ID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
#: BSI TR-03110-3 section A.2.1.1: an AlgorithmIdentifier whose parameter is the domain parameter ID.
ID_STANDARDIZED_DOMAIN_PARAMETERS = "0.4.0.127.0.7.1.2"

#: Curve OIDs by the names of :mod:`ektp_card.ec` (SEC 2 version 2 appendix A, RFC 5639
#: section 4.1).
CURVE_OIDS = MappingProxyType(
    {
        "secp192r1": "1.2.840.10045.3.1.1",
        "secp224r1": "1.3.132.0.33",
        "secp256r1": "1.2.840.10045.3.1.7",
        "secp384r1": "1.3.132.0.34",
        "secp521r1": "1.3.132.0.35",
        "brainpoolP192r1": "1.3.36.3.3.2.8.1.1.3",
        "brainpoolP224r1": "1.3.36.3.3.2.8.1.1.5",
        "brainpoolP256r1": "1.3.36.3.3.2.8.1.1.7",
        "brainpoolP320r1": "1.3.36.3.3.2.8.1.1.9",
        "brainpoolP384r1": "1.3.36.3.3.2.8.1.1.11",
        "brainpoolP512r1": "1.3.36.3.3.2.8.1.1.13",
    }
)
_CURVES_BY_NAME = {curve.name: curve for curve in STANDARDIZED_CURVES.values()}
_CURVES_BY_OID = {oid: _CURVES_BY_NAME[name] for name, oid in CURVE_OIDS.items()}
_PARAMETER_IDS = {curve.name: pid for pid, curve in STANDARDIZED_CURVES.items()}
#: The curves ``cryptography`` (OpenSSL) signs and verifies on.
_CRYPTOGRAPHY_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp192r1": ec.SECP192R1,
    "secp224r1": ec.SECP224R1,
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
    "brainpoolP256r1": ec.BrainpoolP256R1,
    "brainpoolP384r1": ec.BrainpoolP384R1,
    "brainpoolP512r1": ec.BrainpoolP512R1,
}


class ParametersForm(Enum):
    """How an EC SubjectPublicKeyInfo names its domain parameters."""

    EXPLICIT = "explicit"
    NAMED = "named"
    STANDARDIZED = "standardized"


def _parameters(curve: Curve) -> tuple[int, int, int, int, int, int, int]:
    return curve.p, curve.a % curve.p, curve.b % curve.p, curve.gx, curve.gy, curve.n, curve.h


_CURVES_BY_PARAMETERS = {_parameters(curve): curve for curve in STANDARDIZED_CURVES.values()}


def curve_by_name(name: str) -> Curve:
    """The standardized curve called ``name`` (e.g. ``brainpoolP256r1``); :class:`ValueError` if none."""
    curve = _CURVES_BY_NAME.get(name)
    if curve is None:
        raise ValueError(f"{name} is not one of the standardized curves")
    return curve


def cryptography_curve(curve: Curve) -> ec.EllipticCurve | None:
    """The ``cryptography`` curve object for ``curve``; ``None`` where OpenSSL has none (the
    192-, 224- and 320-bit Brainpool curves)."""
    kind = _CRYPTOGRAPHY_CURVES.get(curve.name)
    return None if kind is None else kind()


@dataclass(frozen=True)
class EcPublicKey:
    """A point of a standardized curve, uncompressed (04 || X || Y); checked to lie on the curve."""

    curve: Curve
    point: bytes

    def __post_init__(self) -> None:
        self.curve.decode_point(self.point)  # InvalidPointError (a ValueError) if not a point

    @property
    def parameter_id(self) -> int:
        """The standardized domain parameter ID of the curve (ICAO Doc 9303-11 section 9.5.1)."""
        return _PARAMETER_IDS[self.curve.name]

    def to_cryptography(self) -> ec.EllipticCurvePublicKey:
        """The key for ``cryptography``; :class:`ValueError` on a curve OpenSSL does not offer."""
        named = cryptography_curve(self.curve)
        if named is None:
            raise ValueError(f"{self.curve.name} is not available for signatures")
        return ec.EllipticCurvePublicKey.from_encoded_point(named, self.point)


@dataclass(frozen=True)
class RsaPublicKey:
    """An RSA public key: modulus and public exponent."""

    modulus: int
    exponent: int

    def __post_init__(self) -> None:
        if self.modulus < 3 or self.modulus % 2 == 0 or not 1 < self.exponent < self.modulus:
            raise ValueError("not an RSA public key")

    @property
    def bits(self) -> int:
        return self.modulus.bit_length()

    def to_cryptography(self) -> rsa.RSAPublicKey:
        return rsa.RSAPublicNumbers(self.exponent, self.modulus).public_key()


PublicKey = EcPublicKey | RsaPublicKey


def public_key_from(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> PublicKey:
    """Our form of a ``cryptography`` public key; :class:`ValueError` for a curve that is not
    standardized."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return RsaPublicKey(numbers.n, numbers.e)
    curve = curve_by_name(key.curve.name)
    point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return EcPublicKey(curve, point)


# --- encoding ------------------------------------------------------------------------------------


class _AlgorithmIdentifier(core.Sequence):  # type: ignore[misc]
    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True})]


class _SubjectPublicKeyInfo(core.Sequence):  # type: ignore[misc]
    _fields = [("algorithm", _AlgorithmIdentifier), ("public_key", core.OctetBitString)]


def _field_element(value: int, curve: Curve) -> bytes:
    """SEC 1 version 2 section 2.3.5: a field element on the field size, big-endian."""
    return value.to_bytes(curve.size, "big")


def _ec_parameters(curve: Curve, form: ParametersForm) -> core.Asn1Value:
    if form is ParametersForm.NAMED:
        return core.ObjectIdentifier(CURVE_OIDS[curve.name])
    if form is ParametersForm.STANDARDIZED:
        return core.Integer(_PARAMETER_IDS[curve.name])
    base = curve.encode_point(curve.generator)
    return keys.SpecifiedECDomain(
        {
            "version": 1,
            "field_id": {"field_type": "prime_field", "parameters": core.Integer(curve.p)},
            "curve": {
                "a": _field_element(curve.a % curve.p, curve),
                "b": _field_element(curve.b % curve.p, curve),
            },
            "base": base,
            "order": curve.n,
            "cofactor": curve.h,
        }
    )


def encode_public_key_info(key: PublicKey, form: ParametersForm = ParametersForm.EXPLICIT) -> bytes:
    """The DER SubjectPublicKeyInfo of ``key``; ``form`` applies to EC keys only."""
    if isinstance(key, RsaPublicKey):
        rsa_key = keys.RSAPublicKey({"modulus": key.modulus, "public_exponent": key.exponent})
        algorithm = _AlgorithmIdentifier({"algorithm": ID_RSA_ENCRYPTION, "parameters": core.Null()})
        return bytes(_SubjectPublicKeyInfo({"algorithm": algorithm, "public_key": rsa_key.dump()}).dump())
    if form is ParametersForm.STANDARDIZED:
        # The standardized-parameters OID stands in place of id-ecPublicKey (BSI TR-03110-3 A.2.1.1).
        algorithm_oid = ID_STANDARDIZED_DOMAIN_PARAMETERS
    else:
        algorithm_oid = ID_EC_PUBLIC_KEY
    parameters = _ec_parameters(key.curve, form)
    algorithm = _AlgorithmIdentifier({"algorithm": algorithm_oid, "parameters": parameters})
    return bytes(_SubjectPublicKeyInfo({"algorithm": algorithm, "public_key": key.point}).dump())


def _curve_of_explicit(encoded: bytes) -> Curve:
    domain = keys.SpecifiedECDomain.load(encoded, strict=True)
    field = domain["field_id"]
    if field["field_type"].dotted != ID_PRIME_FIELD:
        raise LdsFormatError("only elliptic curves over prime fields are supported")
    p = int(core.Integer.load(bytes(field["parameters"].dump()), strict=True).native)
    a = int.from_bytes(domain["curve"]["a"].native, "big")
    b = int.from_bytes(domain["curve"]["b"].native, "big")
    base = bytes(domain["base"].native)
    order = int(domain["order"].native)
    cofactor = domain["cofactor"].native
    size = (p.bit_length() + 7) // 8
    if len(base) != 1 + 2 * size or base[0] != 0x04:
        raise LdsFormatError("the explicit base point is not uncompressed")
    gx, gy = int.from_bytes(base[1 : 1 + size], "big"), int.from_bytes(base[1 + size :], "big")
    found = _CURVES_BY_PARAMETERS.get(
        (p, a % p, b % p, gx, gy, order, 1 if cofactor is None else int(cofactor))
    )
    if found is None:
        raise LdsFormatError("the explicit domain parameters are none of the standardized curves")
    return found


def _curve_of(algorithm: str, parameters: core.Asn1Value | None) -> Curve:
    if parameters is None:
        raise LdsFormatError("an EC public key without domain parameters")
    if algorithm == ID_STANDARDIZED_DOMAIN_PARAMETERS:
        pid = int(core.Integer.load(bytes(parameters.dump()), strict=True).native)
        curve = STANDARDIZED_CURVES.get(pid)
        if curve is None:
            raise LdsFormatError(f"domain parameters {pid} are not a standardized curve")
        return curve
    encoded = bytes(parameters.dump())
    if encoded[:1] == b"\x06":  # a named curve OID
        oid = str(core.ObjectIdentifier.load(encoded, strict=True).dotted)
        named = _CURVES_BY_OID.get(oid)
        if named is None:
            raise LdsFormatError(f"the curve {oid} is not a standardized curve")
        return named
    if encoded[:1] == b"\x30":
        return _curve_of_explicit(encoded)
    raise LdsFormatError("implicit EC domain parameters are not supported")


def decode_public_key_info(data: bytes) -> PublicKey:
    """Parse a DER SubjectPublicKeyInfo; :class:`LdsFormatError` if malformed or unsupported."""
    try:
        info = _SubjectPublicKeyInfo.load(data, strict=True)
        algorithm = str(info["algorithm"]["algorithm"].dotted)
        parameters = info["algorithm"]["parameters"]
        parameters = None if isinstance(parameters, core.Void) else parameters
        key_bytes = bytes(info["public_key"].native)
        if algorithm == ID_RSA_ENCRYPTION:
            rsa_key = keys.RSAPublicKey.load(key_bytes, strict=True)
            return RsaPublicKey(int(rsa_key["modulus"].native), int(rsa_key["public_exponent"].native))
        if algorithm in (ID_EC_PUBLIC_KEY, ID_STANDARDIZED_DOMAIN_PARAMETERS):
            return EcPublicKey(_curve_of(algorithm, parameters), key_bytes)
    except InvalidPointError as exc:
        raise LdsFormatError(f"malformed EC public key: {one_line(exc)}") from None
    except LdsFormatError:
        raise
    except ASN1_ERRORS as exc:
        raise LdsFormatError(f"malformed SubjectPublicKeyInfo: {one_line(exc)}") from None
    raise LdsFormatError(f"public key algorithm {algorithm} is not supported")


def parameters_form(data: bytes) -> ParametersForm | None:
    """How an EC SubjectPublicKeyInfo gives its domain parameters (``None`` for other keys)."""
    try:
        info = _SubjectPublicKeyInfo.load(data, strict=True)
        algorithm = str(info["algorithm"]["algorithm"].dotted)
        parameters = info["algorithm"]["parameters"]
        # Dumping parses the parameters, which asn1crypto reads lazily: it can fail on them too.
        first = b"" if isinstance(parameters, core.Void) else bytes(parameters.dump())[:1]
    except ASN1_ERRORS as exc:
        raise LdsFormatError(f"malformed SubjectPublicKeyInfo: {one_line(exc)}") from None
    if algorithm == ID_STANDARDIZED_DOMAIN_PARAMETERS:
        return ParametersForm.STANDARDIZED
    if algorithm != ID_EC_PUBLIC_KEY or not first:
        return None
    return ParametersForm.NAMED if first == b"\x06" else ParametersForm.EXPLICIT


__all__ = [
    "CURVE_OIDS",
    "EcPublicKey",
    "ParametersForm",
    "PublicKey",
    "RsaPublicKey",
    "cryptography_curve",
    "curve_by_name",
    "decode_public_key_info",
    "encode_public_key_info",
    "parameters_form",
    "public_key_from",
]
