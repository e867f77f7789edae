"""Terminal Authentication version 2: the terminal side (BSI TR-03110-2 section 3.4, TR-03110-3
appendix B.11; ICAO Doc 9303-11 section 7.1 for eMRTDs).

Inside PACE's secure messaging the terminal sends its certificate chain, one certificate at a time
from the card's trust point, then proves that it holds the terminal certificate's private key by
signing the chip's challenge::

    MSE:Set DST        00 22 81 B6  83 <CAR>                 for each certificate:
    PSO:VERIFY CERT.   00 2A 00 BE  7F4E <body> 5F37 <sig>   link CVCA(s), DV, terminal
    MSE:Set AT         00 22 81 A4  83 <terminal CHR> [67 <aux>] 91 <Comp(PK_PCD)> [7F4C <CHAT>]
    GET CHALLENGE      00 84 00 00  -> r_PICC (8 bytes)
    EXTERNAL AUTH.     00 82 00 00  ECDSA plain r || s over ID_PICC || r_PICC || Comp(PK_PCD) [|| 67]

ID_PICC is Comp(PK~_PICC) of PACE (:attr:`ektp_card.crypto.pace.PaceResult.id_picc`), and PK_PCD
the ephemeral key the terminal will use in Chip Authentication, so the eMRTD order is PACE -> TA ->
CA with one key pair (:class:`EphemeralKey`; pass its :meth:`~EphemeralKey.key_source` to
:func:`ektp_card.crypto.ca.chip_authenticate`). Comp() of an elliptic-curve point is its
x-coordinate (TR-03110-3 section A.2.2.3). The terminal's private key stays in a
:class:`~ektp_card.pki.signer.Signer`: a key file, a PKCS#11 token or the virtual SAM
(:mod:`ektp_card.pki.sam`); its DER signature is converted to the plain format (TR-03111 5.2.1).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW, describe
from ektp_card.apdu.tlv import Tlv
from ektp_card.ec import Curve, KeySource, default_key_source
from ektp_card.errors import ApduError, PkiError, TerminalAuthenticationError
from ektp_card.pki.cvc import T_SIGNATURE, Chat, CvCertificate, CvPublicKey, Role, curve_of
from ektp_card.pki.signer import Signer

log = logging.getLogger("ektp_card.crypto.ta")

#: Length of the chip's challenge r_PICC (TR-03110-3 B.11.6).
CHALLENGE_LENGTH = 8


# --- the ephemeral key shared with Chip Authentication ----------------------------------------------


@dataclass(frozen=True, repr=False)
class EphemeralKey:
    """The terminal's ephemeral key pair for Chip Authentication, drawn before TA announces it."""

    curve: Curve
    private: int
    public: bytes  # the uncompressed point 04 || x || y

    def __repr__(self) -> str:
        return f"EphemeralKey({self.curve.name})"

    @classmethod
    def generate(cls, curve: Curve, key_source: KeySource = default_key_source) -> EphemeralKey:
        private = key_source(curve)
        point = curve.multiply(private, curve.generator)
        if point is None or not 1 <= private < curve.n:
            raise ValueError("a private key must lie in [1, n-1]")
        return cls(curve, private, curve.encode_point(point))

    @property
    def compressed(self) -> bytes:
        """Comp(PK_PCD): the x-coordinate on the field size."""
        return compress(self.curve, self.public)

    def key_source(self, curve: Curve) -> int:
        """A :data:`KeySource` that hands Chip Authentication this private key (same curve only)."""
        if curve != self.curve:
            raise TerminalAuthenticationError(
                f"the ephemeral key is on {self.curve.name}, Chip Authentication uses {curve.name}"
            )
        return self.private


def compress(curve: Curve, public_key: bytes) -> bytes:
    """Comp() of an elliptic-curve public key: its x-coordinate (TR-03110-3 A.2.2.3)."""
    return curve.decode_point(public_key).x.to_bytes(curve.size, "big")


# --- the commands ----------------------------------------------------------------------------------


def mse_set_dst(reference: str) -> CommandApdu:
    """MSE:Set DST (00 22 81 B6): DO 83 the CAR of the certificate to verify next."""
    return CommandApdu(0x00, 0x22, 0x81, 0xB6, Tlv(0x83, reference.encode("latin-1")).encode())


def pso_verify_certificate(certificate: CvCertificate) -> CommandApdu:
    """PSO:VERIFY CERTIFICATE (00 2A 00 BE): the body 7F4E and the signature 5F37, without 7F21."""
    data = certificate.body.encode() + Tlv(T_SIGNATURE, certificate.signature).encode()
    return CommandApdu(0x00, 0x2A, 0x00, 0xBE, data)


def mse_set_at(terminal: str, ephemeral: bytes, *, chat: Chat | None = None, aux: bytes = b"") -> CommandApdu:
    """MSE:Set AT for TA (00 22 81 A4): DO 83 the terminal's CHR, DO 67 the auxiliary data if any
    (``aux``: the encoded DO 67), DO 91 Comp(PK_PCD), DO 7F4C a CHAT restricting the rights."""
    data = Tlv(0x83, terminal.encode("latin-1")).encode() + aux + Tlv(0x91, ephemeral).encode()
    if chat is not None:
        data += chat.encode()
    return CommandApdu(0x00, 0x22, 0x81, 0xA4, data)


def get_challenge() -> CommandApdu:
    return CommandApdu(0x00, 0x84, 0x00, 0x00, le=CHALLENGE_LENGTH)


def external_authenticate(signature: bytes) -> CommandApdu:
    """EXTERNAL AUTHENTICATE (00 82 00 00) with the terminal's plain signature."""
    return CommandApdu(0x00, 0x82, 0x00, 0x00, signature)


def signed_data(id_picc: bytes, challenge: bytes, ephemeral: bytes, aux: bytes = b"") -> bytes:
    """What the terminal signs: ID_PICC || r_PICC || Comp(PK_PCD) || A_PCD (TR-03110-2 3.4)."""
    return id_picc + challenge + ephemeral + aux


def sign_plain(signer: Signer, data: bytes, key: CvPublicKey) -> bytes:
    """Sign ``data`` with the hash ``key``'s algorithm names, as plain r || s (TR-03111 5.2.1)."""
    public = signer.public_key
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise TerminalAuthenticationError("Terminal Authentication signs with an ECDSA key, not RSA")
    try:
        size = (curve_of(public).n.bit_length() + 7) // 8
    except PkiError as exc:
        raise TerminalAuthenticationError(str(exc)) from None
    r, s = decode_dss_signature(signer.sign(data, key.hash_name))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def certificates_to_send(chain: Sequence[CvCertificate], trusted: Iterable[str] = ()) -> list[CvCertificate]:
    """The certificates the card needs, in order: self-signed CVCA certificates are left out, and
    with ``trusted`` (the CARs of EF.CVCA) so is every certificate before the first one issued
    under a trust point of the card (link certificates it already followed)."""
    certs = [c for c in chain if not c.self_signed]
    references = list(trusted)
    if references:
        for i, cert in enumerate(certs):
            if cert.car in references:
                return certs[i:]
        raise TerminalAuthenticationError(
            f"no certificate of the chain is issued by a CVCA the card trusts ({', '.join(references)})"
        )
    return certs


# --- the protocol -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaResult:
    """The outcome of one Terminal Authentication. ``sw`` is the chip's status word for the step
    that failed (9000 on success); ``step`` names it."""

    passed: bool
    reason: str
    terminal: str = ""
    chat: Chat | None = None
    step: str = ""
    sw: int = SW.OK

    def require(self) -> None:
        """Raise :class:`TerminalAuthenticationError` with the reason unless the chip accepted."""
        if not self.passed:
            raise TerminalAuthenticationError(
                f"Terminal Authentication failed: {self.reason}",
                step=self.step,
                sw=self.sw if self.step else None,
            )


def terminal_authenticate(
    protocol: ApduProtocol,
    chain: Sequence[CvCertificate],
    signer: Signer,
    *,
    id_picc: bytes,
    ephemeral: bytes,
    trusted: Iterable[str] = (),
    chat: Chat | None = None,
    aux: bytes = b"",
) -> TaResult:
    """Run Terminal Authentication as the terminal in the running secure messaging.

    ``chain`` goes from the card's trust point to the terminal certificate (a self-signed CVCA at
    its head is skipped; ``trusted`` as in :func:`certificates_to_send`). ``signer`` holds the
    terminal certificate's private key; ``id_picc`` is PACE's ``id_picc`` and ``ephemeral``
    Comp(PK_PCD) (:attr:`EphemeralKey.compressed`). :class:`TerminalAuthenticationError` before any
    command if the inputs cannot work (no terminal certificate last, a signer for another key, no
    secure messaging); a refusal by the chip is a failed :class:`TaResult`. Transport errors
    propagate.
    """
    if protocol.secure_messaging is None:
        raise TerminalAuthenticationError("Terminal Authentication runs inside the secure messaging of PACE")
    certs = certificates_to_send(chain, trusted)
    if not certs or certs[-1].role is not Role.TERMINAL:
        raise TerminalAuthenticationError("the chain must end with a terminal certificate")
    terminal = certs[-1]
    public, leaf = signer.public_key, terminal.public_key
    if not isinstance(public, ec.EllipticCurvePublicKey) or (
        CvPublicKey.from_key(public, algorithm=leaf.algorithm).point != leaf.point
    ):
        raise TerminalAuthenticationError(f"the signer does not hold the key of {terminal.chr}")
    log.debug("Terminal Authentication as %s (%d certificates)", terminal.chr, len(certs))

    step = ""
    try:
        for cert in certs:
            step = f"MSE:Set DST {cert.car}"
            protocol.send(mse_set_dst(cert.car))
            step = f"PSO:VERIFY CERTIFICATE of {cert.chr}"
            protocol.send(pso_verify_certificate(cert))
        step = "MSE:Set AT for Terminal Authentication"
        protocol.send(mse_set_at(terminal.chr, ephemeral, chat=chat, aux=aux))
        step = "GET CHALLENGE"
        challenge = protocol.send(get_challenge()).data
        if len(challenge) != CHALLENGE_LENGTH:
            reason = f"the chip answered {step} with {len(challenge)} bytes, not {CHALLENGE_LENGTH}"
            return TaResult(False, reason, terminal.chr, chat, step, SW.OK)
        signature = sign_plain(signer, signed_data(id_picc, challenge, ephemeral, aux), terminal.public_key)
        step = "EXTERNAL AUTHENTICATE"
        protocol.send(external_authenticate(signature))
    except ApduError as exc:
        reason = f"the chip refused {step} ({exc.sw:04X}: {describe(exc.sw)})"
        return TaResult(False, reason, terminal.chr, chat, step, exc.sw)
    return TaResult(True, f"the chip accepted {terminal.chr}", terminal.chr, chat, "", SW.OK)


__all__ = [
    "CHALLENGE_LENGTH",
    "EphemeralKey",
    "TaResult",
    "certificates_to_send",
    "compress",
    "external_authenticate",
    "get_challenge",
    "mse_set_at",
    "mse_set_dst",
    "pso_verify_certificate",
    "sign_plain",
    "signed_data",
    "terminal_authenticate",
]
