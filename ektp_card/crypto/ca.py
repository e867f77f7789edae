"""Chip Authentication with ECDH: the terminal side, and what both sides share.

ICAO Doc 9303-11 section 6.2 (Chip Authentication after BAC or PACE) and BSI TR-03110 parts 2 and 3
(version 2; the APDUs in TR-03110-3 appendix B.2 and B.11). The chip proves that it holds the
private key of the static public key PK_IC in DG14 (signed through EF.SOD): the terminal sends an
ephemeral public key PK_IFD on the same domain parameters, both sides compute
K = x(SK_IC * PK_IFD) = x(SK_IFD * PK_IC) and restart secure messaging with keys derived from K
(send sequence counter 0). A cloned chip without SK_IC cannot compute K, so its first protected
answer under the new keys fails to verify. The commands, inside the running secure messaging::

    3DES, version 1:  MSE:Set KAT  0C 22 41 A6  91 <PK_IFD> [84 <key ID>]
    otherwise:        MSE:Set AT   0C 22 41 A4  80 <CA OID> [84 <key ID>]
                      GA           0C 86 00 00  7C { 80 <PK_IFD> }
                                   -> 7C { }                          version 1
                                   -> 7C { 81 r_IC (8), 82 T_IC (8) } version 2

TR-03110-3 B.2 restricts MSE:Set KAT to the 3DES protocols and allows the GENERAL AUTHENTICATE
form for them too. In version 2 the keys are KDF(K || r_IC, c) (TR-03110-3 A.2.3) and the chip
returns the token T_IC = MAC(K_MAC, 7F49 { 06 <CA OID>, 86 PK_IFD }) (A.2.4), which proves K at
once; in version 1 the proof is the first protected response under the new keys, so
:func:`chip_authenticate` sends one protected command (GET CHALLENGE by default) to see it.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from asn1crypto import core  # type: ignore[import-untyped]

from ektp_card.apdu.command import SHORT_MAX_LE, CommandApdu, ResponseApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW, describe
from ektp_card.apdu.tlv import Tlv, parse_dict, unpack
from ektp_card.crypto.kdf import COUNTER_ENC, COUNTER_MAC, Cipher, kdf
from ektp_card.crypto.pace import BSI_DE, KeyAgreement, authentication_mac
from ektp_card.crypto.sm import SecureMessagingSession
from ektp_card.ec import Curve, InvalidPointError, KeySource, Point, default_key_source
from ektp_card.errors import ApduError, ChipAuthenticationError, SecureMessagingError, TlvError

log = logging.getLogger("ektp_card.crypto.ca")

# --- object identifiers (ICAO Doc 9303-11 section 9.2.7; BSI TR-03110-3 A.1.1.2) -----------------

ID_PK = f"{BSI_DE}.2.2.1"
ID_PK_DH = f"{ID_PK}.1"
ID_PK_ECDH = f"{ID_PK}.2"
ID_CA = f"{BSI_DE}.2.2.3"
#: Versions of Chip Authentication: 1 (ICAO Doc 9303-11, TR-03110-1) and 2 (TR-03110-2).
CA_VERSIONS = (1, 2)
#: Length of the chip's nonce r_IC in version 2 (TR-03110-3 B.2.2).
NONCE_LENGTH = 8


@dataclass(frozen=True)
class CaAlgorithm:
    """One Chip Authentication protocol OID: the key agreement and the cipher of the new secure
    messaging."""

    oid: str
    name: str
    key_agreement: KeyAgreement
    cipher: Cipher

    @property
    def supported(self) -> bool:
        """Whether this library runs it: ECDH."""
        return self.key_agreement is KeyAgreement.ECDH

    @property
    def oid_bytes(self) -> bytes:
        """The content octets of the OID, as DO 80 of MSE:Set AT and DO 06 of a token carry them."""
        return bytes(core.ObjectIdentifier(self.oid).contents or b"")


def _algorithms() -> dict[str, CaAlgorithm]:
    table = {}
    ciphers = (
        (1, Cipher.TDES, "3DES-CBC-CBC"),
        (2, Cipher.AES128, "AES-CBC-CMAC-128"),
        (3, Cipher.AES192, "AES-CBC-CMAC-192"),
        (4, Cipher.AES256, "AES-CBC-CMAC-256"),
    )
    for arc, agreement in ((1, KeyAgreement.DH), (2, KeyAgreement.ECDH)):
        for sub, cipher, cipher_name in ciphers:
            oid = f"{ID_CA}.{arc}.{sub}"
            table[oid] = CaAlgorithm(oid, f"id-CA-{agreement.value}-{cipher_name}", agreement, cipher)
    return table


#: Every Chip Authentication protocol OID of ICAO Doc 9303-11 section 9.2.7, by dotted OID.
CA_ALGORITHMS: Mapping[str, CaAlgorithm] = MappingProxyType(_algorithms())
CA_ECDH_3DES = CA_ALGORITHMS[f"{ID_CA}.2.1"]
CA_ECDH_AES128 = CA_ALGORITHMS[f"{ID_CA}.2.2"]
CA_ECDH_AES192 = CA_ALGORITHMS[f"{ID_CA}.2.3"]
CA_ECDH_AES256 = CA_ALGORITHMS[f"{ID_CA}.2.4"]


class CaVariant(Enum):
    """The command sequence that carries the terminal's ephemeral key (TR-03110-3 B.2)."""

    SET_KAT = "MSE:Set KAT"
    GENERAL_AUTHENTICATE = "MSE:Set AT and GENERAL AUTHENTICATE"


@dataclass(frozen=True)
class CaParameters:
    """What DG14 offers for one Chip Authentication: the protocol and version of a
    ChipAuthenticationInfo and the static public key (an uncompressed point) of the matching
    ChipAuthenticationPublicKeyInfo, with the key ID when the chip has several keys."""

    algorithm: CaAlgorithm
    version: int
    curve: Curve
    chip_public_key: bytes
    key_id: int | None = None

    def __post_init__(self) -> None:
        if not self.algorithm.supported:
            raise ChipAuthenticationError(f"{self.algorithm.name} is not supported (only ECDH)")
        if self.version not in CA_VERSIONS:
            raise ChipAuthenticationError(f"Chip Authentication version {self.version} is not supported")
        if self.key_id is not None and self.key_id < 0:
            raise ChipAuthenticationError("a negative Chip Authentication key ID")
        try:
            self.curve.decode_point(self.chip_public_key)
        except InvalidPointError as exc:
            raise ChipAuthenticationError(f"the chip's public key is invalid: {exc}") from None

    def __repr__(self) -> str:
        key_id = "" if self.key_id is None else f", key ID {self.key_id}"
        return f"CaParameters({self.algorithm.name}, version {self.version}, {self.curve.name}{key_id})"

    @property
    def cipher(self) -> Cipher:
        return self.algorithm.cipher

    @property
    def default_variant(self) -> CaVariant:
        """MSE:Set KAT for version 1 with 3DES, as ICAO Doc 9303-11 and TR-03110-3 B.2 use it; the
        GENERAL AUTHENTICATE form otherwise."""
        if self.version == 1 and self.cipher is Cipher.TDES:
            return CaVariant.SET_KAT
        return CaVariant.GENERAL_AUTHENTICATE


@dataclass(frozen=True)
class CaResult:
    """The outcome of one Chip Authentication: ``passed`` only when the chip proved it holds the
    private key (the version 2 token verified, or a protected answer under the new keys did).
    ``supported`` is false when the protocol could not be run at all. When the chip refused a
    command, ``step`` names it and ``sw`` is its status word (9000 otherwise). The new session keys
    stay out of ``repr``."""

    passed: bool
    reason: str
    parameters: CaParameters | None = None
    variant: CaVariant | None = None
    terminal_public_key: bytes = b""
    supported: bool = True
    k_enc: bytes = field(default=b"", repr=False)
    k_mac: bytes = field(default=b"", repr=False)
    step: str = ""
    sw: int = SW.OK

    @classmethod
    def not_supported(cls, reason: str) -> CaResult:
        """The result when Chip Authentication cannot run at all (e.g. the
        :class:`ChipAuthenticationError` of ``Dg14.ca_parameters``)."""
        return cls(False, reason, supported=False)

    def require(self) -> None:
        """Raise :class:`ChipAuthenticationError` with the reason unless the chip passed."""
        if not self.passed:
            raise ChipAuthenticationError(
                f"Chip Authentication failed: {self.reason}",
                step=self.step,
                sw=self.sw if self.step else None,
            )


# --- primitives both sides share --------------------------------------------------------------


def shared_secret(curve: Curve, private: int, public: Point) -> bytes:
    """K: the x-coordinate of private * public on the field size (ICAO Doc 9303-11 section 9.7.1)."""
    product = curve.multiply(private, public)
    if product is None:
        raise ChipAuthenticationError("the key agreement produced the point at infinity")
    return product.x.to_bytes(curve.size, "big")


def ca_session_keys(shared: bytes, cipher: Cipher, nonce: bytes = b"") -> tuple[bytes, bytes]:
    """(K_Enc, K_MAC) = KDF(K || r, 1), KDF(K || r, 2); the nonce r only in version 2
    (TR-03110-3 A.2.3: keydata = H(K || r || c))."""
    return kdf(shared + nonce, COUNTER_ENC, cipher), kdf(shared + nonce, COUNTER_MAC, cipher)


def ca_token(algorithm: CaAlgorithm, k_mac: bytes, terminal_public_key: bytes) -> bytes:
    """The chip's version 2 token T_IC = MAC(K_MAC, 7F49 { 06 <CA OID>, 86 PK_IFD })
    (TR-03110-3 A.2.4: the OID of the protocol MSE:Set AT selected, and the key received)."""
    data = Tlv.of(0x7F49, Tlv(0x06, algorithm.oid_bytes), Tlv(0x86, terminal_public_key)).encode()
    return authentication_mac(algorithm.cipher, k_mac, data)


def key_id_bytes(key_id: int) -> bytes:
    """A key ID as DO 84 carries it: unsigned big-endian, at least one byte."""
    return key_id.to_bytes(max(1, (key_id.bit_length() + 7) // 8), "big")


# --- the commands --------------------------------------------------------------------------------

_TAG_DYNAMIC = 0x7C


def mse_set_kat(public_key: bytes, key_id: int | None = None) -> CommandApdu:
    """MSE:Set KAT (00 22 41 A6): DO 91 the ephemeral public key, DO 84 the key ID if needed."""
    data = Tlv(0x91, public_key).encode()
    if key_id is not None:
        data += Tlv(0x84, key_id_bytes(key_id)).encode()
    return CommandApdu(0x00, 0x22, 0x41, 0xA6, data)


def mse_set_at(algorithm: CaAlgorithm, key_id: int | None = None) -> CommandApdu:
    """MSE:Set AT for internal authentication (00 22 41 A4): DO 80 the protocol OID, DO 84 the
    key ID if the chip has several keys (TR-03110-3 B.11.1)."""
    data = Tlv(0x80, algorithm.oid_bytes).encode()
    if key_id is not None:
        data += Tlv(0x84, key_id_bytes(key_id)).encode()
    return CommandApdu(0x00, 0x22, 0x41, 0xA4, data)


def general_authenticate(public_key: bytes) -> CommandApdu:
    """GENERAL AUTHENTICATE (00 86 00 00) with 7C { 80 ephemeral public key }, not chained."""
    body = Tlv.of(_TAG_DYNAMIC, Tlv(0x80, public_key)).encode()
    return CommandApdu(0x00, 0x86, 0x00, 0x00, body, le=SHORT_MAX_LE)


#: The default confirmation under the new keys: GET CHALLENGE for 8 bytes. It changes nothing on
#: the chip but its next challenge, and any protected answer (even a refusal) shows the keys work.
CONFIRM_COMMAND = CommandApdu(0x00, 0x84, 0x00, 0x00, le=8)


# --- the terminal side --------------------------------------------------------------------------


class _Failed(Exception):
    """Internal: the protocol ended without proof; ``reason`` goes into the result.
    ``switched``: the chip accepted the key and so left the previous secure messaging. ``step`` and
    ``sw``: the command the chip refused, if it refused one."""

    def __init__(self, reason: str, *, switched: bool = True, step: str = "", sw: int = SW.OK) -> None:
        super().__init__(reason)
        self.reason = reason
        self.switched = switched
        self.step = step
        self.sw = sw


def _refused(step: str, exc: ApduError) -> _Failed:
    # A refusal comes before the chip takes the key: the previous secure messaging goes on.
    reason = f"the chip refused {step} ({exc.sw:04X}: {describe(exc.sw)})"
    return _Failed(reason, switched=False, step=step, sw=exc.sw)


def chip_authenticate(
    protocol: ApduProtocol,
    parameters: CaParameters,
    *,
    variant: CaVariant | None = None,
    key_source: KeySource = default_key_source,
    confirm_with: CommandApdu | None = CONFIRM_COMMAND,
) -> CaResult:
    """Run Chip Authentication as the terminal inside the running secure messaging, then switch
    ``protocol`` to secure messaging with the new keys (SSC 0).

    ``key_source`` draws the ephemeral private key (a caller that ran Terminal Authentication
    version 2 first passes the one whose compressed public key it sent there). In version 1,
    ``confirm_with`` is sent under the new keys to see the chip answer with them; ``None`` skips it,
    and a chip without the private key then shows as :class:`SecureMessagingError` on the next
    command.

    Returns a :class:`CaResult`: failed when the chip refuses a step, answers with a wrong token or
    cannot continue secure messaging. A refusal before the key switch leaves the previous secure
    messaging running; any later failure ends it (``protocol.secure_messaging`` is ``None``).
    Transport errors (a removed card) propagate.
    """
    chosen = variant or parameters.default_variant
    if chosen is CaVariant.SET_KAT and (parameters.version != 1 or parameters.cipher is not Cipher.TDES):
        raise ChipAuthenticationError("MSE:Set KAT is for Chip Authentication version 1 with 3DES only")
    if protocol.secure_messaging is None:
        raise ChipAuthenticationError("Chip Authentication runs inside the secure messaging of BAC or PACE")
    curve = parameters.curve
    private = key_source(curve)
    if not 1 <= private < curve.n:
        raise ValueError("a private key must lie in [1, n-1]")
    own = curve.multiply(private, curve.generator)
    if own is None:
        raise ChipAuthenticationError("the ephemeral public key is the point at infinity")
    public = curve.encode_point(own)
    shared = shared_secret(curve, private, curve.decode_point(parameters.chip_public_key))
    log.debug(
        "Chip Authentication %s version %d (%s)", parameters.algorithm.name, parameters.version, chosen.value
    )

    def result(
        passed: bool, reason: str, keys: tuple[bytes, bytes] = (b"", b""), step: str = "", sw: int = SW.OK
    ) -> CaResult:
        return CaResult(passed, reason, parameters, chosen, public, True, *keys, step=step, sw=sw)

    try:
        keys = _exchange(protocol, parameters, chosen, public, shared)
    except _Failed as failure:
        if failure.switched:
            _drop_secure_messaging(protocol)
        return result(False, failure.reason, step=failure.step, sw=failure.sw)
    except SecureMessagingError as exc:
        _drop_secure_messaging(protocol)
        return result(False, f"secure messaging broke down during Chip Authentication: {exc}")
    _switch(protocol, parameters.cipher, keys)
    if parameters.version == 2:
        return result(True, "the chip's authentication token proves its private key", keys)
    if confirm_with is None:
        return result(True, "keys switched; the chip's next protected answer confirms them", keys)
    try:
        protocol.send(confirm_with)
    except ApduError:
        pass  # a refusal protected under the new keys proves them as well as an answer does
    except SecureMessagingError:
        _drop_secure_messaging(protocol)
        return result(
            False,
            "the chip cannot continue secure messaging with the keys agreed on DG14's public key:"
            " it does not hold the matching private key (a cloned or substituted chip)",
        )
    return result(True, "the chip answered under the keys agreed on DG14's public key", keys)


def _exchange(
    protocol: ApduProtocol, parameters: CaParameters, variant: CaVariant, public: bytes, shared: bytes
) -> tuple[bytes, bytes]:
    """The chip's part: the command(s), then the session keys (and in version 2 the token check)."""
    cipher = parameters.cipher
    if variant is CaVariant.SET_KAT:
        _send(protocol, "MSE:Set KAT", mse_set_kat(public, parameters.key_id))
        return ca_session_keys(shared, cipher)
    _send(protocol, "MSE:Set AT for Chip Authentication", mse_set_at(parameters.algorithm, parameters.key_id))
    response = _send(protocol, "GENERAL AUTHENTICATE for Chip Authentication", general_authenticate(public))
    try:
        objects = parse_dict(unpack(_TAG_DYNAMIC, response.data)) if response.data else {}
    except TlvError as exc:
        raise _Failed(f"malformed GENERAL AUTHENTICATE response: {exc}") from None
    if parameters.version == 1:
        if objects:
            raise _Failed("the chip answered Chip Authentication version 1 with version 2 data")
        return ca_session_keys(shared, cipher)
    nonce, token = objects.get(0x81), objects.get(0x82)
    if nonce is None or token is None or len(nonce) != NONCE_LENGTH:
        raise _Failed("the chip's version 2 answer lacks its nonce (DO 81) or token (DO 82)")
    keys = ca_session_keys(shared, cipher, nonce)
    if not hmac.compare_digest(token, ca_token(parameters.algorithm, keys[1], public)):
        raise _Failed(
            "the chip's authentication token is wrong: it does not hold the private key of DG14's"
            " public key (a cloned or substituted chip)"
        )
    return keys


def _send(protocol: ApduProtocol, step: str, command: CommandApdu) -> ResponseApdu:
    try:
        return protocol.send(command)
    except ApduError as exc:
        raise _refused(step, exc) from None


def _drop_secure_messaging(protocol: ApduProtocol) -> None:
    previous = protocol.secure_messaging
    protocol.secure_messaging = None
    if isinstance(previous, SecureMessagingSession):
        previous.close()


def _switch(protocol: ApduProtocol, cipher: Cipher, keys: tuple[bytes, bytes]) -> None:
    """Restart secure messaging with the new keys and SSC 0; the old session is over."""
    previous = protocol.secure_messaging
    protocol.secure_messaging = SecureMessagingSession(cipher, keys[0], keys[1], 0)
    if isinstance(previous, SecureMessagingSession):
        previous.close()


__all__ = [
    "CA_ALGORITHMS",
    "CA_ECDH_3DES",
    "CA_ECDH_AES128",
    "CA_ECDH_AES192",
    "CA_ECDH_AES256",
    "CA_VERSIONS",
    "CONFIRM_COMMAND",
    "ID_CA",
    "ID_PK_DH",
    "ID_PK_ECDH",
    "NONCE_LENGTH",
    "CaAlgorithm",
    "CaParameters",
    "CaResult",
    "CaVariant",
    "ca_session_keys",
    "ca_token",
    "chip_authenticate",
    "general_authenticate",
    "key_id_bytes",
    "mse_set_at",
    "mse_set_kat",
    "shared_secret",
]
