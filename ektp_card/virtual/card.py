"""The virtual card: a small ISO/IEC 7816-4 card OS behind one ``transceive`` method.

Processing of one command APDU, in order::

    decode (6700) -> class byte (6E00, 6881) -> length limits (6700) -> card terminated (6985)
      -> secure messaging unwrap [hook] -> command chaining -> dispatch by INS (6D00)
      -> handler -> 61xx split for GET RESPONSE -> secure messaging wrap [hook]

Everything the card keeps across power cycles (files, configuration, keys) is in the card object
and its image file; everything that a cold reset clears is in :class:`Session`.

Every random number the card draws (UIDs, challenges, PACE nonces and keys, Chip Authentication
nonces, Active Authentication ECDSA nonces) comes from one source, :attr:`VirtualCard.random`, which the
card's :class:`~ektp_card.virtual.config.CardBehaviour` chooses: the system's generator on a genuine
card, a seeded LCG on a programmable card told to use one. The behaviour also sets a response delay
and the status words of some failures (:class:`~ektp_card.virtual.config.FailureKind`).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Self

from ektp_card.apdu.command import EXTENDED_MAX_LC, EXTENDED_MAX_LE, CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import parse_list
from ektp_card.crypto.kdf import Cipher
from ektp_card.crypto.sm import CardSecureMessaging, SmCrypto
from ektp_card.ec import Curve
from ektp_card.errors import ApduError, ApduFormatError, CardRemovedError, TlvError
from ektp_card.lds.conditions import AccessCondition, SecurityAttributes
from ektp_card.virtual import image
from ektp_card.virtual.aa import INTERNAL_AUTHENTICATE
from ektp_card.virtual.atr import (
    EF_ATR_INFO_FID,
    EF_ATR_INFO_SFI,
    contactless_atr,
    ef_atr_info,
    historical_bytes,
)
from ektp_card.virtual.bio import VERIFY
from ektp_card.virtual.ca import CA_MSE_VARIANTS
from ektp_card.virtual.commands import INTERINDUSTRY, Chaining, Command
from ektp_card.virtual.config import CardBehaviour, CardConfig, FailureKind, RngKind
from ektp_card.virtual.fs import (
    DEFAULT_CAPACITY,
    MF_FID,
    CardFile,
    DedicatedFile,
    ElementaryFile,
    FileSystem,
    KeyStore,
    LifeCycle,
)
from ektp_card.virtual.pace import GENERAL_AUTHENTICATE, PACE_MSE_VARIANTS, mse_command
from ektp_card.virtual.perso import GENERATE_ASYMMETRIC_KEY_PAIR, PERSO_COMMANDS
from ektp_card.virtual.security import SecureChannel, SecurityState
from ektp_card.virtual.ta import EXTERNAL_AUTHENTICATE, PERFORM_SECURITY_OPERATION, TA_MSE_VARIANTS

log = logging.getLogger("ektp_card.virtual")

_SM_BITS = 0x0C
_CHAIN_BIT = 0x10
_PROPRIETARY_BIT = 0x80
#: The longest data field command chaining may assemble.
MAX_CHAINED_DATA = EXTENDED_MAX_LC


def _status(sw: int) -> ResponseApdu:
    return ResponseApdu(b"", sw)


def _is_error(sw: int) -> bool:
    """An error status word (ISO/IEC 7816-4 section 5.6: 64xx-6Fxx), not success or a warning."""
    return 0x6400 <= sw <= 0x6FFF and sw >> 8 != 0x6C


#: ISO/IEC 14443-3: a single-size UID starting with 08 is a random ID drawn anew on every activation
#: (what eMRTDs use against tracking).
RANDOM_UID_PREFIX = b"\x08"


# Numerical Recipes' 32-bit LCG constants (Press et al., "Numerical Recipes", section 7.1): a full
# period, and no cryptographic strength at all, which is the point.
_LCG_A, _LCG_C, _LCG_MASK = 1664525, 1013904223, 0xFFFFFFFF


class CardRandom:
    """The card's one source of random numbers, as its behaviour chooses it.

    :attr:`RngKind.SYSTEM` draws from ``secrets``. :attr:`RngKind.LCG` steps a 32-bit linear
    congruential generator, one step per byte (its top byte), and :meth:`restart` puts it back to
    its seed: a chip that seeds at power-on from a constant.
    """

    def __init__(self, kind: RngKind = RngKind.SYSTEM, seed: int = 0) -> None:
        self.kind = kind
        self._seed = seed & _LCG_MASK
        self._state = self._seed

    def __repr__(self) -> str:
        return f"CardRandom({self.kind.value})"

    @property
    def system(self) -> bool:
        """Whether the numbers come from the system's cryptographic generator."""
        return self.kind is RngKind.SYSTEM

    def restart(self) -> None:
        """Power-on: a generator without entropy starts over from its seed."""
        self._state = self._seed

    def bytes(self, count: int) -> bytes:
        """``count`` random bytes."""
        if self.system:
            return secrets.token_bytes(count)
        out = bytearray()
        for _ in range(count):
            self._state = (_LCG_A * self._state + _LCG_C) & _LCG_MASK
            out.append(self._state >> 24)
        return bytes(out)

    def scalar(self, curve: Curve) -> int:
        """A private key (or nonce) in [1, n-1] for ``curve``: a
        :data:`~ektp_card.ec.KeySource`."""
        if self.system:
            return curve.random_scalar()
        # 64 extra bits make the reduction's bias negligible; the weakness is the generator.
        wide = int.from_bytes(self.bytes((curve.n.bit_length() + 7) // 8 + 8), "big")
        return 1 + wide % (curve.n - 1)


class PaddingFirstSecureMessaging(CardSecureMessaging):
    """Secure messaging as a poorly made chip does it: the cryptogram is decrypted and its padding
    checked *before* the MAC, so a command protected with the wrong session key (whose cryptogram
    decrypts to garbage) is told apart from one with a wrong MAC: a padding oracle (S. Vaudenay,
    "Security flaws induced by CBC padding", EUROCRYPT 2002). The genuine card checks the MAC first
    (:class:`CardSecureMessaging`)."""

    def __init__(self, cipher: Cipher, k_enc: bytes, k_mac: bytes, ssc: int) -> None:
        super().__init__(cipher, k_enc, k_mac, ssc)
        self._peek = SmCrypto(cipher, k_enc, k_mac)

    def padding_fails(self, apdu: CommandApdu) -> bool:
        """Whether the command's cryptogram (DO 87 or 85) fails to decrypt to padded data under the
        counter it should carry; ``False`` when there is none to check (the MAC check decides)."""
        if self.closed:
            return False
        try:
            objects = {tlv.tag: tlv.value for tlv in parse_list(apdu.data)}
        except TlvError:
            return False
        cryptogram = objects.get(0x85)
        if cryptogram is None:
            value = objects.get(0x87, b"")
            cryptogram = value[1:] if value[:1] == b"\x01" else None
        if not cryptogram:
            return False
        ssc = (self.ssc + 1).to_bytes(self.cipher.block_size, "big")
        return self._peek.decrypt(ssc, cryptogram) is None


def class_status(cla: int) -> int | None:
    """``None`` if the class byte is acceptable, else the status word that refuses it.

    Accepted: the first interindustry classes 00-1F on the basic channel (b5 chaining, b4-b3 secure
    messaging) and their proprietary mirror 80-9C. A logical channel other than the basic one gets
    6881 "logical channel not supported", which says more than 6E00; the RFU classes 20-3F, other
    proprietary values and FF (reserved for PPS) get 6E00.
    """
    if cla == 0xFF:
        return SW.CLA_NOT_SUPPORTED
    if cla & _PROPRIETARY_BIT:
        return None if cla & 0x63 == 0 else SW.CLA_NOT_SUPPORTED
    if cla & 0xE0 == 0x00:
        return SW.LOGICAL_CHANNEL_NOT_SUPPORTED if cla & 0x03 else None
    if cla & 0xC0 == 0x40:
        return SW.LOGICAL_CHANNEL_NOT_SUPPORTED
    return SW.CLA_NOT_SUPPORTED


@dataclass
class _Chain:
    """An open command chain: the header it must keep and the data collected so far."""

    header: tuple[int, int, int, bool]
    data: bytes = b""


@dataclass
class Session:
    """Volatile state of one power-on session; a cold reset replaces it."""

    uid: bytes
    current_df: DedicatedFile
    current_ef: ElementaryFile | None = None
    security: SecurityState = field(default_factory=SecurityState)
    chain: _Chain | None = None
    #: Response bytes announced with 61xx and not yet fetched, and the status word they end with (a
    #: warning such as 6282 stays with the data it qualifies).
    remainder: bytes = b""
    remainder_sw: int = SW.OK
    #: What GET RESPONSE may return while the current command runs (the previous remainder).
    offered: bytes = b""
    offered_sw: int = SW.OK
    #: The authentication protocol MSE:Set AT started and GENERAL AUTHENTICATE continues (e.g.
    #: a :class:`~ektp_card.virtual.pace.ChipPace` run); each protocol module checks its own type.
    protocol_state: object | None = None


class VirtualCard:
    """A contactless ID card OS speaking ISO/IEC 7816-4 APDUs.

    Extend it by adding :class:`Command` entries to ``COMMANDS`` / ``PROPRIETARY_COMMANDS`` in a
    subclass (or to ``card.commands`` on one instance), keyed by INS.
    """

    #: INS 82 is EXTERNAL AUTHENTICATE of Terminal Authentication while a TA run awaits it, else
    #: BAC's MUTUAL AUTHENTICATE on cards holding a BAC key (ektp_card.virtual.ta, .bac).
    COMMANDS: ClassVar[Mapping[int, Command]] = MappingProxyType(
        {
            **INTERINDUSTRY,
            0x82: EXTERNAL_AUTHENTICATE,
            # PACE answers only on cards holding PACE passwords (see ektp_card.virtual.pace), Chip
            # Authentication (MSE 41 A4 / 41 A6, then GENERAL AUTHENTICATE) and Active
            # Authentication (INTERNAL AUTHENTICATE) only on cards holding their keys
            # (ektp_card.virtual.ca, ektp_card.virtual.aa).
            # Terminal Authentication (MSE 81 B6 / 81 A4, PSO:VERIFY CERTIFICATE) only on cards
            # holding a trust point (ektp_card.virtual.ta).
            0x22: mse_command({**PACE_MSE_VARIANTS, **CA_MSE_VARIANTS, **TA_MSE_VARIANTS}),
            0x2A: PERFORM_SECURITY_OPERATION,
            0x86: GENERAL_AUTHENTICATE,
            0x88: INTERNAL_AUTHENTICATE,
            # Personalisation (ektp_card.virtual.perso): only in a perso session, before the lock.
            0x46: GENERATE_ASYMMETRIC_KEY_PAIR,
            # On-card comparison of a fingerprint (ektp_card.virtual.bio): only on cards holding a
            # reference, for a terminal with the verify-biometric right.
            0x21: VERIFY,
        }
    )
    #: CLA 80: INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, PUT DATA, ERASE, LOCK of personalisation.
    PROPRIETARY_COMMANDS: ClassVar[Mapping[int, Command]] = MappingProxyType(dict(PERSO_COMMANDS))

    def __init__(
        self, fs: FileSystem, config: CardConfig | None = None, *, keys: Mapping[str, bytes] | None = None
    ) -> None:
        # One command at a time, also when a bridge thread serves the card while its owner saves it.
        self._lock = threading.RLock()
        self.fs = fs
        self._config = config or CardConfig()
        #: Key objects kept on the card, by name, in an encoding the protocols that use them define.
        #: They are saved in the card image; they never leave the card through an APDU. They take
        #: memory like files do: one that does not fit raises NotEnoughMemoryError (6A84).
        self.keys: KeyStore = fs.keys
        if keys is not None and keys is not fs.keys:
            self.keys.update(keys)
        self.commands: dict[int, Command] = dict(self.COMMANDS)
        self.proprietary_commands: dict[int, Command] = dict(self.PROPRIETARY_COMMANDS)
        self._session: Session | None = None
        self._uid = b""
        behaviour = self._config.behaviour
        #: The card's one random source (see the module docstring).
        self.random = CardRandom(behaviour.rng, behaviour.rng_seed)
        self.power_on()

    @classmethod
    def create(
        cls,
        *,
        extended_length: bool = True,
        uid: bytes | None = None,
        life_cycle: LifeCycle = LifeCycle.INITIALISATION,
        admin: AccessCondition = AccessCondition.ALWAYS,
        capacity: int = DEFAULT_CAPACITY,
        max_command_data: int | None = None,
        max_response_data: int | None = None,
        historical_bytes: bytes | None = None,
        behaviour: CardBehaviour | None = None,
    ) -> Self:
        """A blank card: the MF (in ``life_cycle``, managed under ``admin``) and EF.ATR/INFO.

        ``uid`` ``None`` draws a random UID per power-on session; the buffer sizes default to the
        extended-length maxima and only apply with ``extended_length``. ``behaviour`` makes it a
        programmable card that departs from the genuine behaviour (default: genuine).
        """
        config = CardConfig(
            extended_length=extended_length,
            uid=uid,
            historical_bytes=historical_bytes,
            max_command_data=EXTENDED_MAX_LC if max_command_data is None else max_command_data,
            max_response_data=EXTENDED_MAX_LE if max_response_data is None else max_response_data,
            behaviour=behaviour or CardBehaviour(),
        )
        # Files created without their own security attributes inherit these: readable, and
        # writable by whoever may manage the card.
        mf_access = SecurityAttributes(read=AccessCondition.ALWAYS, update=admin, admin=admin)
        fs = FileSystem(DedicatedFile(MF_FID, access=mf_access, lcs=life_cycle), capacity=capacity)
        fs.create_ef(
            fs.mf,
            EF_ATR_INFO_FID,
            data=ef_atr_info(config),
            sfi=EF_ATR_INFO_SFI,
            access=SecurityAttributes(AccessCondition.ALWAYS, AccessCondition.NEVER, AccessCondition.NEVER),
        )
        return cls(fs, config)

    # --- persistent properties -----------------------------------------------------------------

    @property
    def config(self) -> CardConfig:
        return self._config

    @property
    def behaviour(self) -> CardBehaviour:
        """The programmable-card settings (the genuine behaviour unless the image says otherwise)."""
        return self._config.behaviour

    def failure_word(self, kind: FailureKind, genuine: int) -> int:
        """The status word this card answers for a failure of ``kind`` (``genuine`` on a genuine card)."""
        return self._config.behaviour.error_word(kind, genuine)

    def secure_channel(self, cipher: Cipher, k_enc: bytes, k_mac: bytes, ssc: int = 0) -> SecureChannel:
        """The card's secure messaging with these keys: MAC checked first, unless the card is told to
        answer padding failures with their own word (:class:`PaddingFirstSecureMessaging`)."""
        if FailureKind.SM_PADDING in self._config.behaviour.error_words:
            return PaddingFirstSecureMessaging(cipher, k_enc, k_mac, ssc)
        return CardSecureMessaging(cipher, k_enc, k_mac, ssc)

    @property
    def life_cycle(self) -> LifeCycle:
        """The card's life-cycle status: that of its MF."""
        return self.fs.mf.lcs

    @property
    def ats_historical(self) -> bytes:
        """Historical bytes for the ISO/IEC 14443-4 ATS (and so for the PC/SC ATR)."""
        return historical_bytes(self._config, self.life_cycle)

    @property
    def atr(self) -> bytes:
        """The ATR a PC/SC reader reports for this contactless card."""
        return contactless_atr(self.ats_historical)

    @property
    def uid(self) -> bytes:
        """The ISO/IEC 14443-3 UID of the current (or last) power-on session."""
        return self._uid

    # --- power and session ---------------------------------------------------------------------

    def power_on(self) -> bytes:
        """Cold reset: a new session (UID, selection at the MF, empty security state); the ATR."""
        with self._lock:
            self.random.restart()
            self._uid = self._config.uid or RANDOM_UID_PREFIX + self.random.bytes(3)
            self._session = Session(uid=self._uid, current_df=self.fs.mf)
            return self.atr

    def power_off(self) -> None:
        with self._lock:
            self._session = None

    @property
    def powered(self) -> bool:
        return self._session is not None

    @property
    def session(self) -> Session:
        if self._session is None:
            raise CardRemovedError("the virtual card is not powered")
        return self._session

    @property
    def security(self) -> SecurityState:
        return self.session.security

    @property
    def current_df(self) -> DedicatedFile:
        return self.session.current_df

    @property
    def current_ef(self) -> ElementaryFile | None:
        return self.session.current_ef

    def select(self, f: CardFile) -> None:
        """Make ``f`` the current DF (and clear the current EF) or the current EF of its DF."""
        session = self.session
        if isinstance(f, DedicatedFile):
            session.current_df, session.current_ef = f, None
        elif isinstance(f, ElementaryFile) and f.parent is not None:
            session.current_df, session.current_ef = f.parent, f

    def response_limit(self, apdu: CommandApdu) -> int:
        """How many data bytes the response to ``apdu`` may carry: Ne, within the card's buffer."""
        return min(apdu.le or 0, self._config.response_data_limit)

    # --- persistence ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the card's non-volatile state to an image file, atomically."""
        image.write_atomic(path, self.dumps())

    def dumps(self) -> bytes:
        """The card's non-volatile state as image bytes (what :meth:`save` writes, :meth:`loads` reads)."""
        with self._lock:
            return image.encode(image.CardImage(self._config, self.fs, dict(self.keys)))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """A card from an image file, freshly powered on; :class:`CardImageError` if unusable."""
        loaded = image.load(path)
        return cls(loaded.fs, loaded.config, keys=loaded.keys)

    @classmethod
    def loads(cls, raw: bytes, source: str = "card image") -> Self:
        """A card from image bytes (a copy of a card, say); :class:`CardImageError` if unusable."""
        loaded = image.decode(raw, source)
        return cls(loaded.fs, loaded.config, keys=loaded.keys)

    # --- the APDU interface --------------------------------------------------------------------

    def transceive(self, command: bytes) -> bytes:
        """Process one command APDU and return the response with its status word.

        Malformed input gets a status word, never an exception; only a card that is not powered
        raises (:class:`CardRemovedError`), as a real reader would find no card.
        """
        with self._lock:
            if self._session is None:
                raise CardRemovedError("the virtual card is not powered")
            try:
                response = self._process(bytes(command)).encode()
            except Exception as exc:
                # Last line of defence: a card answers, it never takes the reader down with it.
                # The command bytes stay out of the log: they may carry secrets.
                # One line; the traceback only with -vv (debug), like every other failure.
                log.warning("internal error in the virtual card (%s), answering 6F00", type(exc).__name__,
                            exc_info=log.isEnabledFor(logging.DEBUG))
                response = _status(SW.NO_PRECISE_DIAGNOSIS).encode()
        delay = self._config.behaviour.response_delay_ms
        if delay:
            # A relay: the answer crosses a slower link. Outside the lock, so that the card's owner
            # can still save or power it meanwhile.
            time.sleep(delay / 1000)
        return response

    def _process(self, raw: bytes) -> ResponseApdu:
        session = self.session
        # GET RESPONSE must come right after the response it continues; any other command drops it.
        session.offered, session.remainder = session.remainder, b""
        session.offered_sw, session.remainder_sw = session.remainder_sw, SW.OK
        try:
            apdu = CommandApdu.decode(raw)
        except ApduFormatError:
            return _status(SW.WRONG_LENGTH)
        refusal = class_status(apdu.cla)
        if refusal is not None:
            return _status(refusal)
        config = self._config
        if apdu.extended and (not config.extended_length or config.quirks.extended_length_refused):
            # A chip whose transport layer takes no extended length, whatever EF.ATR/INFO says: the
            # command never reaches secure messaging, so the counter does not move.
            return _status(SW.WRONG_LENGTH)
        if len(apdu.data) > self._config.command_data_limit:
            return _status(SW.WRONG_LENGTH)
        if self.life_cycle is LifeCycle.TERMINATED:
            return _status(SW.CONDITIONS_NOT_SATISFIED)

        security = session.security
        channel = security.channel
        if channel is not None and apdu.ins == 0xC0 and not apdu.cla & _SM_BITS and session.offered:
            # Collecting a 61xx continuation is a transmission matter (ISO/IEC 7816-4 section
            # 5.3.4): the bytes offered were produced, and protected, by the previous command, so
            # a plain GET RESPONSE neither needs protection nor ends the channel.
            return self._execute(apdu)
        if apdu.cla & _SM_BITS:
            if channel is None:
                # 6882 "secure messaging not supported": with no channel established there is
                # nothing to check the protection against. 6987 ("SM data objects missing") would
                # suggest that a differently formed SM command could succeed.
                return _status(SW.SM_NOT_SUPPORTED)
            if isinstance(channel, PaddingFirstSecureMessaging) and channel.padding_fails(apdu):
                security.end_channel()
                return _status(self.failure_word(FailureKind.SM_PADDING, SW.SM_DATA_OBJECTS_INCORRECT))
            try:
                inner = channel.unwrap(apdu)
            except ApduError as exc:
                security.end_channel()
                sw = exc.sw
                if sw == SW.SM_DATA_OBJECTS_INCORRECT:
                    sw = self.failure_word(FailureKind.SM_MAC, sw)
                return _status(sw)
            # The plain response is protected whole; only the protected bytes are fitted into the
            # outer Ne, with 61xx for the rest, so the terminal verifies one complete response.
            # A protected command without Le (terminals always send one, since DO 8E comes back)
            # gets the protected response whole rather than nothing but 61xx.
            plain = self._execute(inner, fit=False)
            protected = channel.wrap(plain)
            if self._config.quirks.errors_outside_ok and _is_error(plain.sw):
                # The quirk: the error is in DO 99, under the MAC; outside, the chip says 9000.
                protected = ResponseApdu(protected.data, SW.OK)
            return protected if apdu.le is None else self._deliver(protected, apdu)
        if channel is not None:
            # A plain command aborts secure messaging (ICAO Doc 9303-11 section 9.8, "session
            # termination"). It is refused too, unprotected: nothing runs outside the protection
            # the terminal set up, and the terminal learns at once that its session is gone.
            security.end_channel()
            return _status(self.failure_word(FailureKind.SM_PLAIN, SW.SM_DATA_OBJECTS_INCORRECT))
        return self._execute(apdu)

    def _execute(self, apdu: CommandApdu, *, fit: bool = True) -> ResponseApdu:
        session = self.session
        proprietary = bool(apdu.cla & _PROPRIETARY_BIT)
        header = (apdu.ins, apdu.p1, apdu.p2, proprietary)
        chain = session.chain
        # GET RESPONSE collecting a 61xx answer inside a chain (PACE's chained GENERAL AUTHENTICATE
        # steps on a chip that answers in parts) is transmission, not a command of its own.
        collecting = apdu.ins == 0xC0 and not proprietary and bool(session.offered)
        if chain is not None and chain.header != header and not collecting:
            session.chain = None
            return _status(SW.LAST_COMMAND_OF_CHAIN_EXPECTED)
        command = (self.proprietary_commands if proprietary else self.commands).get(apdu.ins)
        if command is None:
            return _status(SW.INS_NOT_SUPPORTED)
        chained = bool(apdu.cla & _CHAIN_BIT)
        if chained and command.chaining is Chaining.NONE:
            return _status(SW.CHAINING_NOT_SUPPORTED)
        if command.chaining is Chaining.BUFFER and (chained or chain is not None):
            collected = (chain.data if chain is not None else b"") + apdu.data
            if len(collected) > MAX_CHAINED_DATA:
                session.chain = None
                return _status(SW.WRONG_LENGTH)
            if chained:
                session.chain = _Chain(header, collected)
                return _status(SW.OK)
            session.chain = None
            apdu = apdu.with_(cla=apdu.cla & ~_CHAIN_BIT, data=collected)
        elif command.chaining is Chaining.EACH:
            session.chain = _Chain(header) if chained else None

        try:
            response = command.handler(self, apdu)
        except ApduError as exc:
            return _status(exc.sw)
        return self._deliver(response, apdu) if fit else response

    def _deliver(self, response: ResponseApdu, apdu: CommandApdu) -> ResponseApdu:
        """Fit the response into Ne: a longer response of a command that completed (9000, or a
        warning 62xx/63xx) is split, the rest waiting for GET RESPONSE behind 61xx (ISO/IEC 7816-4
        section 5.3.4); the last part ends with the command's status word. A protected answer is
        longer than the data it carries, so a warning such as end of file (6282) must not cut it."""
        limit = self.response_limit(apdu)
        chunk = self._config.quirks.response_chunk
        if chunk:
            limit = min(limit, chunk)
        if len(response.data) <= limit:
            return response
        if response.sw != SW.OK and response.sw >> 8 not in (0x62, 0x63):
            return ResponseApdu(response.data[:limit], response.sw)
        rest = response.data[limit:]
        self.session.remainder, self.session.remainder_sw = rest, response.sw
        return ResponseApdu(response.data[:limit], SW.bytes_remaining(min(len(rest), 256)))
