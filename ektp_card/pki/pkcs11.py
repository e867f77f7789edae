"""Signing with a key in a PKCS#11 token (an HSM, or SoftHSM2 in tests), through python-pkcs11.

The only module that imports ``pkcs11``. Tokens are chosen by label, keys by label (CKA_LABEL). The
digest is computed on the host and the token signs it with plain CKM_ECDSA or CKM_RSA_PKCS_PSS: SoftHSM
2.6 has no CKM_ECDSA_SHA256, and host hashing keeps one code path for every token. PKCS#11 returns
ECDSA signatures as r || s (PKCS#11 v2.40 section 2.3.1); X.509 and CMS want the DER ECDSA-Sig-Value.
"""

from __future__ import annotations

import importlib
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ektp_card.errors import MissingExtraError, PkiError
from ektp_card.pki.signer import (
    CURVES,
    HashName,
    KeySpec,
    Passphrase,
    PublicKey,
    Signer,
    hash_algorithm,
)

# Imported by name so that type checking does not need the optional "hsm" extra installed.
_p11: Any
_p11_ec: Any
try:
    _p11 = importlib.import_module("pkcs11")
    _p11_ec = importlib.import_module("pkcs11.util.ec")
except ImportError:
    _p11 = _p11_ec = None

SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so"

_CURVE_OIDS = {
    "brainpoolP256r1": "1.3.36.3.3.2.8.1.1.7",
    "brainpoolP384r1": "1.3.36.3.3.2.8.1.1.11",
    "brainpoolP512r1": "1.3.36.3.3.2.8.1.1.13",
    "secp256r1": "1.2.840.10045.3.1.7",
    "secp384r1": "1.3.132.0.34",
    "secp521r1": "1.3.132.0.35",
}


def _require() -> Any:
    if _p11 is None:
        raise MissingExtraError("a PKCS#11 token", "python-pkcs11", "hsm")
    return _p11


def _secret(source: Passphrase) -> str:
    value = source() if callable(source) else source
    return value.decode()


def _open(lib: Any, token: Any, pin: Passphrase, *, rw: bool) -> Any:
    """A logged-in session. Login is per application in PKCS#11 (v2.40 section 5.6): while another
    session of this process is logged in, a new one is too, and a second C_Login is an error."""
    try:
        return token.open(user_pin=_secret(pin), rw=rw)
    except lib.exceptions.UserAlreadyLoggedIn:
        return token.open(rw=rw)


class Pkcs11Signer(Signer):
    """A key pair in a PKCS#11 token; the private key never leaves it. Close it (or use ``with``)."""

    def __init__(self, module: str, token_label: str, key_label: str, pin: Passphrase) -> None:
        lib = _require()
        try:
            token = lib.lib(module).get_token(token_label=token_label)
        except (lib.exceptions.PKCS11Error, RuntimeError, OSError) as e:
            raise PkiError(f"no PKCS#11 token {token_label!r} in {module}: {type(e).__name__}") from None
        try:
            self._session = _open(lib, token, pin, rw=False)
        except lib.exceptions.PKCS11Error as e:
            raise PkiError(f"cannot log in to token {token_label!r}: {type(e).__name__}") from None
        try:
            self._private = self._session.get_key(object_class=lib.ObjectClass.PRIVATE_KEY, label=key_label)
            public = self._session.get_key(object_class=lib.ObjectClass.PUBLIC_KEY, label=key_label)
            self._public = _public_key(public)
        except lib.exceptions.PKCS11Error as e:
            self._session.close()
            raise PkiError(f"no key pair labelled {key_label!r} on token {token_label!r}: "
                           f"{type(e).__name__}") from None
        self.token_label = token_label
        self.key_label = key_label

    def __repr__(self) -> str:
        return f"Pkcs11Signer(token={self.token_label!r}, key={self.key_label!r})"

    @classmethod
    def generate(
        cls, module: str, token_label: str, key_label: str, spec: KeySpec, pin: Passphrase
    ) -> Pkcs11Signer:
        """Generate a key pair on the token (private key sensitive and not extractable)."""
        lib = _require()
        token = lib.lib(module).get_token(token_label=token_label)
        with _open(lib, token, pin, rw=True) as session:
            template = {lib.Attribute.SENSITIVE: True, lib.Attribute.EXTRACTABLE: False}
            if spec.kind == "ec":
                params = session.create_domain_parameters(
                    lib.KeyType.EC,
                    {lib.Attribute.EC_PARAMS: _p11_ec.encode_named_curve_parameters(_CURVE_OIDS[spec.curve])},
                    local=True,
                )
                params.generate_keypair(store=True, label=key_label, private_template=template)
            else:
                session.generate_keypair(lib.KeyType.RSA, spec.bits, store=True, label=key_label,
                                         private_template=template)
        return cls(module, token_label, key_label, pin)

    @property
    def public_key(self) -> PublicKey:
        return self._public

    def sign_digest(self, digest_value: bytes, hash_name: HashName) -> bytes:
        h = hash_algorithm(hash_name)
        if len(digest_value) != h.digest_size:
            raise PkiError(f"a {hash_name} digest is {h.digest_size} bytes, got {len(digest_value)}")
        if isinstance(self._public, ec.EllipticCurvePublicKey):
            raw = bytes(self._private.sign(digest_value, mechanism=_p11.Mechanism.ECDSA))
            half = len(raw) // 2
            return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
        mech, mgf = _p11.Mechanism[hash_name.upper()], _p11.MGF[hash_name.upper()]
        # RSASSA-PSS over a precomputed hash: CKM_RSA_PKCS_PSS with the hash, MGF1 and salt length
        # matching the AlgorithmIdentifier we write (RFC 4055 section 3.1).
        return bytes(self._private.sign(digest_value, mechanism=_p11.Mechanism.RSA_PKCS_PSS,
                                        mechanism_param=(mech, mgf, h.digest_size)))

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Pkcs11Signer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _public_key(public: Any) -> PublicKey:
    if public.key_type == _p11.KeyType.EC:
        key = serialization.load_der_public_key(_p11_ec.encode_ec_public_key(public))
        if isinstance(key, ec.EllipticCurvePublicKey) and any(
            type(key.curve) is type(c) for c in CURVES.values()
        ):
            return key
        raise PkiError("the token's EC key is on a curve this toolkit does not use")
    if public.key_type == _p11.KeyType.RSA:
        n = int.from_bytes(public[_p11.Attribute.MODULUS], "big")
        e = int.from_bytes(public[_p11.Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    raise PkiError("the token's key is neither EC nor RSA")
