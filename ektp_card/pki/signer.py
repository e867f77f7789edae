"""One signing interface for the issuer's keys: encrypted PKCS#8 key files (and later PKCS#11 tokens).

A :class:`Signer` knows its public key and produces signatures in the form X.509 and CMS carry: DER
``ECDSA-Sig-Value`` for ECDSA (RFC 5480 section 2.2 / RFC 5753 section 7.2) and the plain octet
string for RSASSA-PSS (RFC 4055 section 3). The data is hashed on the host and the signer only signs
the digest, which is what a PKCS#11 token without CKM_ECDSA_SHA256 (SoftHSM 2.6) needs too.

Passphrases come from an environment variable or a callback (the CLI wires a prompt); never from a
command-line argument, and never into a log line or an exception message.
"""

from __future__ import annotations

import abc
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from asn1crypto import algos  # type: ignore[import-untyped]
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ektp_card.errors import ASN1_ERRORS, PkiError, one_line
from ektp_card.files import KEY_LIMIT, read_file, write_atomic

HashName = Literal["sha256", "sha384", "sha512"]
HASH_NAMES: tuple[HashName, ...] = get_args(HashName)

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

#: Curves ICAO 9303-11 section 9.5.1 / BSI TR-03111 allow for ECDSA, by the names we accept.
CURVES: dict[str, ec.EllipticCurve] = {
    "brainpoolP256r1": ec.BrainpoolP256R1(),
    "brainpoolP384r1": ec.BrainpoolP384R1(),
    "brainpoolP512r1": ec.BrainpoolP512R1(),
    "secp256r1": ec.SECP256R1(),
    "secp384r1": ec.SECP384R1(),
    "secp521r1": ec.SECP521R1(),
}
_CURVE_ALIASES = {"P-256": "secp256r1", "P-384": "secp384r1", "P-521": "secp521r1"}
RSA_SIZES = (2048, 3072, 4096)

ShaHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512
_HASHES: dict[str, type[ShaHash]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# hashlib's own constructors: Passive Authentication hashes every data group, EF.SOD's content and
# (for their sizes) nothing, and hashlib.new's lookup by name costs as much as hashing a small group.
_HASHLIB = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}

Passphrase = bytes | Callable[[], bytes]


def hash_algorithm(name: str) -> ShaHash:
    """The cryptography hash object for one of :data:`HASH_NAMES`."""
    try:
        return _HASHES[name]()
    except KeyError:
        raise PkiError(f"unsupported hash algorithm {name!r}; use one of {', '.join(HASH_NAMES)}") from None


def digest(name: str, data: bytes) -> bytes:
    """The ``name`` hash (one of :data:`HASH_NAMES`) of ``data``; :class:`PkiError` for any other name."""
    try:
        constructor = _HASHLIB[name]
    except KeyError:
        raise PkiError(f"unsupported hash algorithm {name!r}; use one of {', '.join(HASH_NAMES)}") from None
    return constructor(data).digest()


@dataclass(frozen=True)
class KeySpec:
    """A key to generate: an ECDSA curve name, or RSA (signing with RSASSA-PSS) and its size."""

    kind: Literal["ec", "rsa"]
    curve: str = ""
    bits: int = 0

    @classmethod
    def parse(cls, text: str) -> KeySpec:
        """``brainpoolP256r1``, ``secp384r1``, ``P-256``, ``rsa-pss-3072``..."""
        name = _CURVE_ALIASES.get(text, text)
        if name in CURVES:
            return cls("ec", curve=name)
        if name.lower().startswith("rsa-pss-"):
            try:
                bits = int(name[8:])
            except ValueError:
                bits = 0
            if bits in RSA_SIZES:
                return cls("rsa", bits=bits)
        choices = ", ".join([*CURVES, *(f"rsa-pss-{b}" for b in RSA_SIZES)])
        raise PkiError(f"unknown key type {text!r}; use one of {choices}")

    def __str__(self) -> str:
        return self.curve if self.kind == "ec" else f"rsa-pss-{self.bits}"

    def generate(self) -> PrivateKey:
        if self.kind == "ec":
            return ec.generate_private_key(CURVES[self.curve])
        return rsa.generate_private_key(public_exponent=65537, key_size=self.bits)


def default_hash(public_key: PublicKey) -> HashName:
    """A hash as strong as the key (BSI TR-03116-2 pairs curve and hash sizes this way)."""
    size = public_key.curve.key_size if isinstance(public_key, ec.EllipticCurvePublicKey) else 256
    if size > 384:
        return "sha512"
    if size > 256:
        return "sha384"
    return "sha256"


def pss_padding(hash_name: str) -> padding.PSS:
    """RSASSA-PSS with MGF1 over the same hash and a salt as long as the hash (RFC 4055 section 3.1)."""
    h = hash_algorithm(hash_name)
    return padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)


def signature_algorithm(public_key: PublicKey, hash_name: str) -> algos.SignedDigestAlgorithm:
    """The AlgorithmIdentifier for signatures by this key (RFC 5758 section 3.2, RFC 4055 section 3.1)."""
    hash_algorithm(hash_name)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        # ecdsa-with-SHA2 identifiers take no parameters (RFC 5758 section 3.2).
        return algos.SignedDigestAlgorithm({"algorithm": f"{hash_name}_ecdsa"})
    return algos.SignedDigestAlgorithm(
        {
            "algorithm": "rsassa_pss",
            "parameters": algos.RSASSAPSSParams(
                {
                    "hash_algorithm": {"algorithm": hash_name},
                    "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": hash_name}},
                    "salt_length": hash_algorithm(hash_name).digest_size,
                    "trailer_field": "trailer_field_bc",
                }
            ),
        }
    )


@lru_cache(maxsize=64)
def load_signature_algorithm(der: bytes) -> algos.SignedDigestAlgorithm:
    """A signature's DER AlgorithmIdentifier, decoded whole; :class:`ValueError` when it is malformed.

    Remembered by its bytes: the EF.SODs, certificates and CRLs of one issuer all name the same one, and
    decoding it costs Passive Authentication as much as hashing a passport's data groups. Decoded whole
    before it is handed out, so no reader of the shared object changes it by parsing a part late."""
    try:
        algorithm = algos.SignedDigestAlgorithm.load(der, strict=True)
        algorithm.native  # noqa: B018 - every part parsed now
    except ASN1_ERRORS as e:
        raise ValueError(f"malformed signature algorithm: {one_line(e)}") from None
    return algorithm


def verify_signature(
    public_key: PublicKey, algorithm: algos.SignedDigestAlgorithm, signature: bytes, data: bytes
) -> str | None:
    """Check ``signature`` over ``data``; ``None`` when it verifies, else the reason it does not.

    Accepts the algorithms :func:`signature_algorithm` produces; anything else is a reason to fail.
    """
    try:
        name = algorithm["algorithm"].native
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            if not name.endswith("_ecdsa") or name[:-6] not in _HASHES:
                return f"signature algorithm {name} does not fit an EC key"
            public_key.verify(signature, data, ec.ECDSA(hash_algorithm(name[:-6])))
            return None
        if name != "rsassa_pss":
            return f"signature algorithm {name} is not RSASSA-PSS"
        params = algorithm["parameters"]
        hash_name = params["hash_algorithm"]["algorithm"].native
        mgf = params["mask_gen_algorithm"]
        if mgf["algorithm"].native != "mgf1" or mgf["parameters"]["algorithm"].native != hash_name:
            return "RSASSA-PSS parameters use a different mask generation hash"
        h = hash_algorithm(hash_name)
        pss = padding.PSS(mgf=padding.MGF1(h), salt_length=int(params["salt_length"].native))
        public_key.verify(signature, data, pss, h)
        return None
    except InvalidSignature:
        return "the signature does not verify"
    except (PkiError, UnsupportedAlgorithm, ValueError, TypeError, KeyError) as e:
        return f"cannot check the signature: {one_line(e)}"


class Signer(abc.ABC):
    """A private key that signs digests; the key itself may live where Python cannot read it."""

    @property
    @abc.abstractmethod
    def public_key(self) -> PublicKey:
        """The matching public key."""

    @abc.abstractmethod
    def sign_digest(self, digest_value: bytes, hash_name: HashName) -> bytes:
        """Sign an already computed digest; DER ECDSA-Sig-Value or the RSASSA-PSS octets."""

    @property
    def key_type(self) -> Literal["ec", "rsa"]:
        return "ec" if isinstance(self.public_key, ec.EllipticCurvePublicKey) else "rsa"

    @property
    def default_hash(self) -> HashName:
        return default_hash(self.public_key)

    def algorithm(self, hash_name: HashName) -> algos.SignedDigestAlgorithm:
        """The signature AlgorithmIdentifier to put next to this signer's signatures."""
        return signature_algorithm(self.public_key, hash_name)

    def sign(self, data: bytes, hash_name: HashName) -> bytes:
        """Hash ``data`` on the host, then sign the digest."""
        return self.sign_digest(digest(hash_name, data), hash_name)


class PrivateKeySigner(Signer):
    """A signer over a private key held in memory (loaded from a key file, or freshly generated)."""

    def __init__(self, key: PrivateKey) -> None:
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise PkiError("only ECDSA and RSA keys can sign")
        self._key = key

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}({self.key_type})"

    @property
    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def sign_digest(self, digest_value: bytes, hash_name: HashName) -> bytes:
        h = hash_algorithm(hash_name)
        if len(digest_value) != h.digest_size:
            raise PkiError(f"a {hash_name} digest is {h.digest_size} bytes, got {len(digest_value)}")
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(digest_value, ec.ECDSA(Prehashed(h)))
        return self._key.sign(digest_value, pss_padding(hash_name), Prehashed(h))


class KeyFileSigner(PrivateKeySigner):
    """A signer over an encrypted PKCS#8 key file (RFC 5958 EncryptedPrivateKeyInfo, PBES2)."""

    def __init__(self, key: PrivateKey, path: Path) -> None:
        super().__init__(key)
        self.path = path

    def __repr__(self) -> str:
        return f"KeyFileSigner({str(self.path)!r})"

    @classmethod
    def generate(
        cls, path: Path, spec: KeySpec, passphrase: Passphrase, *, overwrite: bool = False
    ) -> KeyFileSigner:
        """Make a new key and write it encrypted to ``path`` (mode 0600, atomically)."""
        if path.exists() and not overwrite:
            raise PkiError(f"{path} exists; refusing to overwrite a private key")
        signer, pem = cls.prepare(path, spec, passphrase)
        write_file(path, pem, private=True)
        return signer

    @classmethod
    def prepare(cls, path: Path, spec: KeySpec, passphrase: Passphrase) -> tuple[KeyFileSigner, bytes]:
        """A new key for ``path`` and its encrypted PEM, not yet written: for callers that write it
        together with the files that go with it (:func:`ektp_card.files.write_files`)."""
        key = spec.generate()
        secret = _passphrase(passphrase)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(secret),
        )
        return cls(key, path), pem

    @classmethod
    def load(cls, path: Path, passphrase: Passphrase) -> KeyFileSigner:
        """Read and decrypt a key file; a wrong passphrase is a :class:`PkiError` without details."""
        try:
            data = read_file(path, KEY_LIMIT)
        except OSError as e:
            raise PkiError(f"cannot read key file {path}: {e.strerror or e}") from None
        secret = _passphrase(passphrase)
        try:
            key = serialization.load_pem_private_key(data, password=secret)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            # cryptography's message may echo parts of the input: keep ours fixed.
            raise PkiError(
                f"cannot decrypt key file {path}: wrong passphrase or not an encrypted key"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise PkiError(f"key file {path} holds a key type that cannot sign here")
        return cls(key, path)


def as_public_key(key: object) -> PublicKey:
    """``key`` if it is an ECDSA or RSA public key, else :class:`PkiError`."""
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return key
    raise PkiError(f"{type(key).__name__} keys are not used for ICAO 9303 signatures")


def same_key(a: object, b: object) -> bool:
    """Whether two public keys are the same key (compared as DER SubjectPublicKeyInfo)."""
    if not isinstance(a, ec.EllipticCurvePublicKey | rsa.RSAPublicKey) or not isinstance(b, type(a)):
        return False
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return a.public_bytes(der, spki) == b.public_bytes(der, spki)


def passphrase_from_env(variable: str) -> Callable[[], bytes]:
    """A passphrase source reading the environment variable ``variable`` when the key is opened (its
    bytes as they are: a passphrase need not be UTF-8)."""

    def read() -> bytes:
        value = env_bytes(variable)
        if not value:
            raise PkiError(f"environment variable {variable} with the key passphrase is not set")
        return value

    return read


def env_bytes(variable: str) -> bytes | None:
    """The environment variable ``variable`` as the bytes it holds, or None."""
    if os.supports_bytes_environ:
        return os.environb.get(os.fsencode(variable))
    value = os.environ.get(variable)
    return None if value is None else value.encode("utf-8", "surrogateescape")


#: OpenSSL encrypts and decrypts PEM keys with passphrases up to this many bytes.
MAX_PASSPHRASE_BYTES = 1023


def _passphrase(source: Passphrase) -> bytes:
    value = source() if callable(source) else source
    if not value:
        raise PkiError("an empty passphrase cannot protect a private key")
    if len(value) > MAX_PASSPHRASE_BYTES:
        raise PkiError(f"a key passphrase has at most {MAX_PASSPHRASE_BYTES} bytes")
    return value


def write_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, then a rename.

    Private files are created 0600 from the start, so the key is never readable by others even
    for a moment.
    """

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode=0o600 if private else 0o644)
