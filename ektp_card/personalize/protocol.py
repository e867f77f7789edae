"""The desk's side of the personalisation commands (docs/personalisation.md).

:class:`PersoSession` sends one command per method over an
:class:`~ektp_card.apdu.protocol.ApduProtocol`: the plain opening (SELECT MF, EF.ATR/INFO), the
mutual authentication with the card's personalisation key (:mod:`ektp_card.crypto.perso`), and then,
under AES secure messaging, CREATE FILE, UPDATE BINARY, GENERATE ASYMMETRIC KEY PAIR, PUT DATA (CAN and
CVCA certificate), ERASE and LOCK. A refusal becomes a :class:`PersonalisationRefusedError` naming the
command and its status word (:class:`CardLockedError` for a locked card); transport errors (a card that
left the field) pass through unchanged.

Writes go in the largest pieces the card takes: with extended length (when EF.ATR/INFO says so) as
much as fits the card's largest command APDU once protected, else what a short protected APDU holds
(223 bytes with AES).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from asn1crypto import core  # type: ignore[import-untyped]

from ektp_card.apdu.command import EXTENDED_MAX_LC, SHORT_MAX_LE, CommandApdu, ResponseApdu
from ektp_card.apdu.iso7816 import CardInfo, Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.tlv import Tlv, encode_length, parse_dict, unpack
from ektp_card.apdu.transport import Transport
from ektp_card.crypto.kdf import Cipher
from ektp_card.crypto.perso import (
    CAN_REFERENCE,
    CARD_RESOURCES,
    CHALLENGE_LENGTH,
    CLA_PROPRIETARY,
    INS_ERASE,
    INS_EXTERNAL_AUTHENTICATE,
    INS_GENERATE_KEY_PAIR,
    INS_GET_DATA,
    INS_INITIALIZE_UPDATE,
    INS_LOCK,
    INS_PUT_DATA,
    KEY_ACTIVE_AUTHENTICATION,
    KEY_CHIP_AUTHENTICATION,
    LOCK_P1P2,
    TAG_FREE_MEMORY,
    InitializeUpdateAnswer,
    diversify,
    key_cipher,
    session_keys,
)
from ektp_card.crypto.sm import SecureMessagingSession
from ektp_card.errors import (
    ApduError,
    AuthenticationBlockedError,
    CardLockedError,
    ClaNotSupportedError,
    ConditionsNotSatisfiedError,
    FunctionNotSupportedError,
    IncorrectParametersError,
    InsNotSupportedError,
    PersoAuthenticationError,
    PersoKeyRefusedError,
    PersonalisationError,
    PersonalisationRefusedError,
    ReferencedDataNotFoundError,
    TlvError,
)
from ektp_card.lds.conditions import AccessCondition, SecurityAttributes
from ektp_card.pki.cvc import T_CERTIFICATE

#: Bytes an extended command APDU adds to its data field (header 4, Lc 3, Le 2), as EF.ATR/INFO's
#: DO 7F66 counts whole APDUs (ISO/IEC 7816-4 section 12.7.1).
_COMMAND_OVERHEAD = 9
#: DO 8E (tag, length, 8-byte MAC) in every protected command.
_MAC_OBJECT = 10
#: UPDATE BINARY with an even INS addresses offsets up to 32767 in P1-P2; beyond, the odd INS D7
#: carries the offset in DO 54 and the data in DO 53 (ISO/IEC 7816-4 section 11.2.4).
_MAX_EVEN_OFFSET = 0x7FFF
#: DO 54 (offset up to 65535) and the header of DO 53 (up to 83 xx xx xx) inside the plain data of D7.
_ODD_OVERHEAD = 4 + 4

_FCP, _TAG_PUBLIC_KEY = 0x62, 0x7F49
_DESCRIPTOR_EF, _DESCRIPTOR_DF = 0x01, 0x38


def oid_bytes(dotted: str) -> bytes:
    """The content octets of an OBJECT IDENTIFIER, as DO 06 and DO 80 carry them."""
    return bytes(core.ObjectIdentifier(dotted).contents or b"")


def fcp_template(
    fid: int,
    *,
    read: AccessCondition,
    update: AccessCondition,
    admin: AccessCondition,
    size: int | None = None,
    sfi: int | None = None,
    aid: bytes | None = None,
) -> bytes:
    """The FCP template (62) of CREATE FILE for a transparent EF (``size``) or a DF (``aid``), with
    the card's access conditions in DO 86 (80 read, 81 update, 82 admin; docs/virtual-card.md).
    ISO/IEC 7816-4 section 7.4.3: 80 size, 82 descriptor, 83 file identifier, 84 DF name, 88 short EF
    identifier (empty: none)."""
    objects = []
    if aid is None:
        if size is None:
            raise ValueError("an EF needs a size")
        objects.append(Tlv(0x80, size.to_bytes(max(2, (size.bit_length() + 7) // 8), "big")))
        objects.append(Tlv(0x82, bytes((_DESCRIPTOR_EF,))))
        objects.append(Tlv(0x83, fid.to_bytes(2, "big")))
        objects.append(Tlv(0x88, b"" if sfi is None else bytes((sfi << 3,))))
    else:
        objects.append(Tlv(0x82, bytes((_DESCRIPTOR_DF,))))
        objects.append(Tlv(0x83, fid.to_bytes(2, "big")))
        objects.append(Tlv(0x84, aid))
    objects.append(Tlv(0x86, SecurityAttributes(read, update, admin).encode()))
    return Tlv.of(_FCP, *objects).encode()


def protected_chunk(cipher: Cipher, max_command_data: int) -> int:
    """The most plain bytes an UPDATE BINARY carries when its protected data field may have
    ``max_command_data`` bytes: DO 87 (tag, length, padding indicator, cryptogram) and DO 8E."""
    block = cipher.block_size
    cryptogram = (max_command_data - _MAC_OBJECT - 3) // block * block

    def protected(n: int) -> int:
        return 2 + len(encode_length(n + 1)) + n + _MAC_OBJECT

    while cryptogram > 0 and protected(cryptogram) > max_command_data:
        cryptogram -= block
    if cryptogram <= 0:
        raise ValueError("the card's command buffer is too small for secure messaging")
    # Padding always adds at least one byte.
    return cryptogram - 1


@dataclass(frozen=True)
class CardIdentity:
    """What INITIALIZE UPDATE told: the serial, and whether a personalisation was started before."""

    serial: bytes
    incomplete: bool
    cipher: Cipher


class PersoSession:
    """The personalisation commands over ``transport``: :meth:`open`, :meth:`authenticate`, then the
    commands that need the perso session; :meth:`lock` ends it."""

    def __init__(self, transport: Transport) -> None:
        self.protocol = ApduProtocol(transport)
        self.iso = Iso7816Session(self.protocol)
        self.card_info: CardInfo | None = None
        self._sm: SecureMessagingSession | None = None

    # --- before authentication -------------------------------------------------------------------

    def open(self) -> CardInfo | None:
        """SELECT MF and read EF.ATR/INFO (plain): with extended length when the card offers it."""
        # Refusals here mean no session can be opened with this card: an authentication failure.
        self._send("SELECT MF", CommandApdu(0x00, 0xA4, 0x00, 0x0C), PersoKeyRefusedError)
        try:
            self.card_info = self.iso.read_card_info()
        except ApduError:
            # A card without EF.ATR/INFO gets short APDUs, which every card takes.
            self.card_info = None
        except TlvError as exc:
            raise PersoAuthenticationError(f"EF.ATR/INFO is malformed: {exc}") from None
        return self.card_info

    def authenticate(self, master_key: bytes) -> CardIdentity:
        """INITIALIZE UPDATE and EXTERNAL AUTHENTICATE with the card's key diversified from
        ``master_key``; then every command runs under AES secure messaging.

        :class:`CardLockedError` for a card already personalised; :class:`PersoKeyRefusedError` (with
        the status word) for a card without a personalisation key, a blocked key, or a refused
        EXTERNAL AUTHENTICATE; :class:`PersoAuthenticationError` for a card key that does not match the
        master key (EXTERNAL AUTHENTICATE is then not sent)."""
        key_cipher(master_key)
        host_challenge = secrets.token_bytes(CHALLENGE_LENGTH)
        command = CommandApdu(CLA_PROPRIETARY, INS_INITIALIZE_UPDATE, 0, 0, host_challenge, le=SHORT_MAX_LE)
        try:
            response = self.protocol.send(command)
        except ApduError as exc:
            raise _initialize_update_refused(exc) from None
        try:
            answer = InitializeUpdateAnswer.decode(response.data)
        except ValueError as exc:
            raise PersoAuthenticationError(
                f"the card's INITIALIZE UPDATE answer is malformed: {exc}"
            ) from None
        if answer.cipher.key_length != len(master_key):
            raise PersoAuthenticationError(
                f"the card's personalisation key is {answer.cipher.value[0]}, the master key is not"
            )
        keys = session_keys(diversify(master_key, answer.serial), host_challenge, answer.card_challenge)
        if not keys.card_proves(answer.card_cryptogram):
            raise PersoAuthenticationError(
                "the card did not prove its personalisation key: wrong master key, or not this issuer's card"
            )
        command = CommandApdu(CLA_PROPRIETARY, INS_EXTERNAL_AUTHENTICATE, 0, 0, keys.host_cryptogram)
        self._send("EXTERNAL AUTHENTICATE", command, PersoKeyRefusedError)
        self._sm = SecureMessagingSession(keys.cipher, keys.k_enc, keys.k_mac, 0)
        self.protocol.secure_messaging = self._sm
        return CardIdentity(answer.serial, answer.incomplete, answer.cipher)

    # --- in the perso session ---------------------------------------------------------------------

    @property
    def chunk_size(self) -> int:
        """Plain bytes per UPDATE BINARY under the running secure messaging."""
        sm = self._sm
        if sm is None:
            raise PersonalisationError("no personalisation session")
        info = self.card_info
        if self.protocol.extended and info is not None and info.max_command_apdu:
            limit = min(EXTENDED_MAX_LC, info.max_command_apdu - _COMMAND_OVERHEAD)
            return max(sm.max_short_data, protected_chunk(sm.cipher, limit))
        return sm.max_short_data

    def erase(self) -> None:
        """ERASE: the card back to its factory content (for a personalisation started before)."""
        self._send("ERASE", CommandApdu(CLA_PROPRIETARY, INS_ERASE, 0, 0))

    def select_mf(self) -> None:
        self._send("SELECT MF", CommandApdu(0x00, 0xA4, 0x00, 0x0C))

    def create_df(
        self, fid: int, aid: bytes, *, read: AccessCondition, update: AccessCondition, admin: AccessCondition
    ) -> None:
        """CREATE FILE for a DF under the current DF; it becomes the current DF."""
        fcp = fcp_template(fid, aid=aid, read=read, update=update, admin=admin)
        self._send(f"CREATE FILE {fid:04X}", CommandApdu(0x00, 0xE0, 0x00, 0x00, fcp))

    def create_ef(
        self,
        fid: int,
        size: int,
        sfi: int | None,
        *,
        read: AccessCondition,
        update: AccessCondition,
        admin: AccessCondition,
    ) -> None:
        """CREATE FILE for a transparent EF under the current DF; it becomes the current EF."""
        fcp = fcp_template(fid, size=size, sfi=sfi, read=read, update=update, admin=admin)
        self._send(f"CREATE FILE {fid:04X}", CommandApdu(0x00, 0xE0, 0x00, 0x00, fcp))

    def write(self, data: bytes, what: str = "UPDATE BINARY") -> int:
        """Write ``data`` at offset 0 of the current EF in as few commands as the card allows;
        the number of commands."""
        chunk = self.chunk_size
        commands = 0
        offset = 0
        while offset < len(data):
            if offset <= _MAX_EVEN_OFFSET:
                part = data[offset : offset + chunk]
                command = CommandApdu(0x00, 0xD6, offset >> 8, offset & 0xFF, part)
            else:
                part = data[offset : offset + chunk - _ODD_OVERHEAD]
                body = Tlv(0x54, offset.to_bytes(3 if offset > 0xFFFF else 2, "big")).encode()
                command = CommandApdu(0x00, 0xD7, 0x00, 0x00, body + Tlv(0x53, part).encode())
            self._send(what, command)
            offset += len(part)
            commands += 1
        return commands

    def generate_key(self, reference: int, oid: str, parameter_id: int) -> bytes:
        """GENERATE ASYMMETRIC KEY PAIR: the card makes the key pair; its public point comes back."""
        data = Tlv(0x80, oid_bytes(oid)).encode() + Tlv(0x84, bytes((parameter_id,))).encode()
        name = {KEY_CHIP_AUTHENTICATION: "Chip", KEY_ACTIVE_AUTHENTICATION: "Active"}.get(reference, "a")
        what = f"GENERATE ASYMMETRIC KEY PAIR ({name} Authentication)"
        command = CommandApdu(0x00, INS_GENERATE_KEY_PAIR, 0x00, reference, data, le=SHORT_MAX_LE)
        response = self._send(what, command)
        try:
            objects = parse_dict(unpack(_TAG_PUBLIC_KEY, response.data))
        except TlvError as exc:
            raise PersonalisationError(f"{what}: malformed public key: {exc}") from None
        if objects.get(0x06) != oid_bytes(oid) or 0x86 not in objects:
            raise PersonalisationError(f"{what}: the card answered another key than asked for")
        return objects[0x86]

    def free_memory(self) -> int | None:
        """GET DATA (80 CA FF 21): the card's free memory in bytes; ``None`` for a card that does not
        tell (no such command or data object)."""
        command = CommandApdu(CLA_PROPRIETARY, INS_GET_DATA, CARD_RESOURCES >> 8, CARD_RESOURCES & 0xFF,
                              le=SHORT_MAX_LE)
        try:
            response = self.protocol.send(command)
        except (InsNotSupportedError, ClaNotSupportedError, ReferencedDataNotFoundError,
                FunctionNotSupportedError, IncorrectParametersError):
            return None
        except ApduError as exc:
            raise PersonalisationRefusedError(
                f"the card refused GET DATA (free memory): {exc}", command="GET DATA", sw=exc.sw
            ) from None
        try:
            free = parse_dict(unpack(CARD_RESOURCES, response.data)).get(TAG_FREE_MEMORY)
        except TlvError as exc:
            raise PersonalisationError(f"GET DATA (free memory): malformed answer: {exc}") from None
        if free is None or not 1 <= len(free) <= 4:
            raise PersonalisationError("GET DATA (free memory): the answer holds no free memory size")
        return int.from_bytes(free, "big")

    def set_can(self, can: str) -> None:
        """PUT DATA with the CAN (protected: the data never travels in the clear)."""
        data = can.encode("ascii")
        command = CommandApdu(CLA_PROPRIETARY, INS_PUT_DATA, 0x00, CAN_REFERENCE, data, sensitive=True)
        self._send("PUT DATA (CAN)", command)

    def set_trust_point(self, cvca: bytes) -> None:
        """PUT DATA (80 DA 7F 21) with an encoded CVCA certificate: the chip's Terminal Authentication
        trust point (command chaining or extended length when long)."""
        command = CommandApdu(CLA_PROPRIETARY, INS_PUT_DATA, T_CERTIFICATE >> 8, T_CERTIFICATE & 0xFF, cvca)
        self._send("PUT DATA (CVCA certificate)", command)

    def lock(self) -> None:
        """LOCK: the card becomes operational for good, deletes its personalisation key and ends the
        session."""
        self._send("LOCK", CommandApdu(CLA_PROPRIETARY, INS_LOCK, *LOCK_P1P2))
        self.close()

    def close(self) -> None:
        """Forget the session keys (the card forgets them at its next reset or at LOCK)."""
        if self._sm is not None:
            self._sm.close()
        self._sm = None
        self.protocol.secure_messaging = None

    def _send(
        self,
        what: str,
        command: CommandApdu,
        refused: type[PersonalisationRefusedError] = PersonalisationRefusedError,
    ) -> ResponseApdu:
        try:
            return self.protocol.send(command)
        except ApduError as exc:
            raise refused(f"the card refused {what}: {exc}", command=what, sw=exc.sw) from None


def _initialize_update_refused(exc: ApduError) -> PersonalisationRefusedError:
    """What a refused INITIALIZE UPDATE says about the card: locked (6985 comes first on the card: no
    key opens a locked card), not a blank chip of this kind, a blocked key, or another refusal."""
    what = "INITIALIZE UPDATE"
    if isinstance(exc, ConditionsNotSatisfiedError):
        return CardLockedError("the card is already personalised and locked", sw=exc.sw)
    if isinstance(exc, (ReferencedDataNotFoundError, InsNotSupportedError, ClaNotSupportedError)):
        message = "the card has no personalisation key: it is not a blank e-KTP chip"
    elif isinstance(exc, AuthenticationBlockedError):
        message = "the card's personalisation key is blocked by too many failed tries"
    else:
        message = f"the card refused {what}: {exc}"
    return PersoKeyRefusedError(message, command=what, sw=exc.sw)


__all__ = [
    "CardIdentity",
    "PersoSession",
    "fcp_template",
    "oid_bytes",
    "protected_chunk",
]
