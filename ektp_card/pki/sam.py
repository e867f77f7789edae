"""The virtual SAM: a software stand-in for the secure access module of an inspection terminal.

A terminal's private key for Terminal Authentication normally sits in a SAM (a smart card inside
the reader) or an HSM, and the host only asks it to sign. :class:`VirtualSam` plays that part in
memory, for development, tests and demos: it generates or takes the ECDSA key, never hands it
out (no accessor, not in ``repr``), keeps the terminal's CV certificate chain next to it, and signs
digests like any other :class:`~ektp_card.pki.signer.Signer`. It gives no protection a real SAM
gives: the key lives in this process's memory.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ektp_card.errors import PkiError
from ektp_card.pki.cvc import CvCertificate, CvPublicKey, Role
from ektp_card.pki.signer import CURVES, HashName, PublicKey, Signer, hash_algorithm


class VirtualSam(Signer):
    """An ECDSA terminal key held in memory, with the terminal's certificate chain."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, chain: Sequence[CvCertificate] = ()) -> None:
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError("the virtual SAM holds an ECDSA key")
        self._key = key
        self._chain: tuple[CvCertificate, ...] = ()
        #: Signatures made so far: a SAM's usage counter.
        self.signatures = 0
        if chain:
            self.install_chain(chain)

    @classmethod
    def generate(cls, curve: str = "brainpoolP256r1") -> VirtualSam:
        """A SAM with a fresh key on ``curve`` (a name of :data:`ektp_card.pki.signer.CURVES`)."""
        named = CURVES.get(curve)
        if named is None:
            raise PkiError(f"unknown curve {curve!r}; use one of {', '.join(CURVES)}")
        return cls(ec.generate_private_key(named))

    def __repr__(self) -> str:  # never the key
        holder = self._chain[-1].chr if self._chain else "no certificate"
        return f"VirtualSam({self._key.curve.name}, {holder})"

    @property
    def public_key(self) -> PublicKey:
        return self._key.public_key()

    @property
    def chain(self) -> tuple[CvCertificate, ...]:
        """The terminal's certificates, from the first one under the CVCA to its own."""
        return self._chain

    def install_chain(self, chain: Sequence[CvCertificate]) -> None:
        """Keep ``chain``; its last certificate must be a terminal certificate for this key."""
        certs = tuple(chain)
        if not certs or certs[-1].role is not Role.TERMINAL:
            raise PkiError("the chain must end with a terminal certificate")
        leaf = certs[-1].public_key
        if CvPublicKey.from_key(self._key.public_key(), algorithm=leaf.algorithm).point != leaf.point:
            raise PkiError(f"{certs[-1].chr} is not a certificate for this SAM's key")
        self._chain = certs

    def sign_digest(self, digest_value: bytes, hash_name: HashName) -> bytes:
        h = hash_algorithm(hash_name)
        if len(digest_value) != h.digest_size:
            raise PkiError(f"a {hash_name} digest is {h.digest_size} bytes, got {len(digest_value)}")
        self.signatures += 1
        return self._key.sign(digest_value, ec.ECDSA(Prehashed(h)))


__all__ = ["VirtualSam"]
