"""Secure messaging (ICAO Doc 9303-11 section 9.8, ISO/IEC 7816-4 section 10): both ends.

A protected command carries, in this order (ICAO Doc 9303-11 section 9.8, "message structure of
secure messaging APDUs")::

    DO87 (01 || cryptogram) or, for an odd INS, DO85 (cryptogram)   if the command has data
    DO97 (Le, one byte, or two when Ne > 256)                         if the command expects data
    DO8E (8-byte MAC over SSC || padded header || DO87/85 || DO97)

and a protected response ``[DO87/85] DO99 (SW1 SW2) DO8E (MAC over SSC || DO87/85 || DO99)``. The
send sequence counter (SSC) is incremented before each command and before each response.

Cipher suites (ICAO Doc 9303-11 section 9.8, "cryptographic algorithms"):

* 3DES: two-key 3DES in CBC mode with a zero IV; MAC algorithm 3 of ISO/IEC 9797-1 (the "retail
  MAC") with DES; 8-byte SSC, set by BAC from the challenges.
* AES-128/192/256: AES in CBC mode with IV = E(K_Enc, SSC); AES-CMAC (NIST SP 800-38B) truncated to
  8 bytes; 16-byte SSC, starting at 0 after PACE.

Both pad with ISO/IEC 9797-1 padding method 2 before encrypting and before computing a MAC.

:class:`SecureMessagingSession` is the terminal side, the ``SecureMessagingWrapper`` of the APDU
processor stack; :class:`CardSecureMessaging` is the card side, the ``SecureChannel`` hook of the
virtual card. Keys are held privately, never shown by ``repr()`` and never put in messages; a
session that detected an error drops them and refuses any further use.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher as BlockCipher
from cryptography.hazmat.primitives.ciphers import CipherAlgorithm, modes
from cryptography.hazmat.primitives.ciphers.algorithms import AES

from ektp_card.apdu.command import EXTENDED_MAX_LE, SHORT_MAX_LC, SHORT_MAX_LE, CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW, error_for
from ektp_card.apdu.tlv import Tlv, parse_one
from ektp_card.crypto.kdf import Cipher
from ektp_card.errors import SecureMessagingError, TlvError

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # cryptography before 43 kept it with the other algorithms
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

log = logging.getLogger("ektp_card.sm")

#: CLA bits b4-b3 = 11: secure messaging, command header authenticated (ISO/IEC 7816-4 section 5.4.1).
SM_CLA_BITS = 0x0C
#: Padding-content indicator, then cryptogram (plain value not BER-TLV) - even INS.
TAG_CRYPTOGRAM = 0x87
#: Cryptogram alone, for an odd INS whose plain data field is BER-TLV (ICAO Doc 9303-11 section 9.8).
TAG_CRYPTOGRAM_ODD = 0x85
TAG_LE = 0x97
TAG_STATUS = 0x99
TAG_MAC = 0x8E
#: Padding-content indicator 01: padded as in ISO/IEC 7816-4 (80 00 ...).
PADDING_INDICATOR = 0x01
MAC_LENGTH = 8
#: Padded plain bytes a short protected APDU has room for. A command data field (255 bytes) keeps
#: 242 for DO87 beside DO97 (3 bytes) and DO8E (10); a response (256) the same beside DO99 (4) and
#: DO8E. DO87 spends 4 of them on tag, two-byte length and padding indicator: 238 are left.
_SHORT_PADDED_ROOM = SHORT_MAX_LC - 10 - 3 - 4


def pad(data: bytes, block_size: int) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 80, then 00 up to a multiple of the block size (always added)."""
    return data + b"\x80" + bytes(-(len(data) + 1) % block_size)


def unpad(data: bytes, block_size: int) -> bytes | None:
    """Undo :func:`pad`; ``None`` if ``data`` is not padded that way."""
    body = data.rstrip(b"\x00")
    if not body or body[-1] != 0x80 or len(data) - len(body) >= block_size:
        return None
    return body[:-1]


def _des(key8: bytes) -> CipherAlgorithm:
    # Single DES as 3DES with K1 = K2 = K3: E(K1) D(K1) E(K1) is E(K1).
    return TripleDES(key8 * 3)


def tdes_cbc(key: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    """Two-key 3DES (K1, K2, K1) in CBC mode with a zero IV, no padding (ICAO Doc 9303-11 section 9.8)."""
    algorithm = TripleDES(key + key[:8])
    cipher = BlockCipher(algorithm, modes.CBC(bytes(8)))
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with DES, over ``data`` already padded to 8-byte blocks.

    CBC-MAC with K1, then output transformation 3: H = E(K1, D(K2, H)).
    """
    k1, k2 = key[:8], key[8:16]
    chain = BlockCipher(_des(k1), modes.CBC(bytes(8))).encryptor()
    last = (chain.update(data) + chain.finalize())[-8:]
    step = BlockCipher(_des(k2), modes.ECB()).decryptor()  # noqa: S305 - one block, by definition
    last = step.update(last) + step.finalize()
    step = BlockCipher(_des(k1), modes.ECB()).encryptor()  # noqa: S305 - one block, by definition
    return step.update(last) + step.finalize()


class SmCrypto:
    """The keyed operations of one secure-messaging session: encryption and MAC as ``cipher`` defines.

    Encryption and MAC pad (ISO/IEC 9797-1 padding method 2); the SSC is given as bytes.
    """

    __slots__ = ("_cipher", "_k_enc", "_k_mac")

    def __init__(self, cipher: Cipher, k_enc: bytes, k_mac: bytes) -> None:
        for key in (k_enc, k_mac):
            if len(key) != cipher.key_length:
                raise ValueError(f"{cipher.value[0]} session keys have {cipher.key_length} bytes")
        self._cipher = cipher
        self._k_enc = bytes(k_enc)
        self._k_mac = bytes(k_mac)

    def __repr__(self) -> str:
        return f"SmCrypto({self._cipher.value[0]})"

    @property
    def cipher(self) -> Cipher:
        return self._cipher

    def _iv(self, ssc: bytes) -> bytes:
        if self._cipher is Cipher.TDES:
            return bytes(8)
        # AES: IV = E(K_Enc, SSC), one block (ICAO Doc 9303-11 section 9.8).
        ecb = BlockCipher(AES(self._k_enc), modes.ECB()).encryptor()  # noqa: S305 - one block
        return ecb.update(ssc) + ecb.finalize()

    def _cbc(self, ssc: bytes) -> BlockCipher[modes.CBC]:
        if self._cipher is Cipher.TDES:
            algorithm: CipherAlgorithm = TripleDES(self._k_enc + self._k_enc[:8])
        else:
            algorithm = AES(self._k_enc)
        return BlockCipher(algorithm, modes.CBC(self._iv(ssc)))

    def encrypt(self, ssc: bytes, plain: bytes) -> bytes:
        """Pad and encrypt ``plain``."""
        ctx = self._cbc(ssc).encryptor()
        return ctx.update(pad(plain, self._cipher.block_size)) + ctx.finalize()

    def decrypt(self, ssc: bytes, cryptogram: bytes) -> bytes | None:
        """Decrypt and unpad; ``None`` if the cryptogram or its padding is malformed."""
        block = self._cipher.block_size
        if not cryptogram or len(cryptogram) % block:
            return None
        ctx = self._cbc(ssc).decryptor()
        return unpad(ctx.update(cryptogram) + ctx.finalize(), block)

    def mac(self, message: bytes) -> bytes:
        """The 8-byte MAC of ``message`` (padded here)."""
        padded = pad(message, self._cipher.block_size)
        if self._cipher is Cipher.TDES:
            return retail_mac(self._k_mac, padded)
        # ICAO pads before AES-CMAC too, so CMAC always sees whole blocks.
        c = cmac.CMAC(AES(self._k_mac))
        c.update(padded)
        return c.finalize()[:MAC_LENGTH]

    def verify(self, message: bytes, mac: bytes) -> bool:
        return hmac.compare_digest(self.mac(message), mac)


def max_short_data(cipher: Cipher) -> int:
    """The most plain data bytes (Nc or Ne) a protected APDU carries in short form: 231 for 3DES,
    223 for AES. Larger transfers need extended length, or chaining / several READ BINARY rounds."""
    block = cipher.block_size
    return _SHORT_PADDED_ROOM // block * block - 1


class _Violation(Exception):
    """Internal: the protection is wrong; ``sw`` is the word a card answers (6987 or 6988)."""

    def __init__(self, message: str, sw: int = SW.SM_DATA_OBJECTS_INCORRECT) -> None:
        super().__init__(message)
        self.sw = sw


@dataclass(frozen=True)
class _Object:
    tag: int
    value: bytes
    start: int


def _objects(data: bytes) -> list[_Object]:
    out: list[_Object] = []
    offset = 0
    try:
        while offset < len(data):
            tlv, end = parse_one(data, offset)
            out.append(_Object(tlv.tag, tlv.value, offset))
            offset = end
    except TlvError:
        raise _Violation("malformed secure messaging data objects") from None
    return out


def _split(data: bytes, allowed: tuple[frozenset[int], ...], missing: str) -> tuple[dict[int, bytes], int]:
    """Check the data objects against the expected order (one optional-or-required object per
    position, DO8E last) and return them by tag, with the offset where DO8E starts."""
    objects = _objects(data)
    if all(obj.tag != TAG_MAC for obj in objects):
        raise _Violation(missing, SW.SM_DATA_OBJECTS_MISSING)
    if objects[-1].tag != TAG_MAC:
        raise _Violation("data objects after the MAC")
    found: dict[int, bytes] = {}
    position = 0
    for obj in objects[:-1]:
        while position < len(allowed) and obj.tag not in allowed[position]:
            position += 1
        if position == len(allowed):
            raise _Violation("unexpected or repeated secure messaging data object")
        found[obj.tag] = obj.value
        position += 1
    mac = objects[-1]
    if len(mac.value) != MAC_LENGTH:
        raise _Violation("secure messaging MAC of the wrong length")
    found[TAG_MAC] = mac.value
    return found, mac.start


def _cryptogram(found: dict[int, bytes]) -> bytes | None:
    if TAG_CRYPTOGRAM_ODD in found:
        return found[TAG_CRYPTOGRAM_ODD]
    if TAG_CRYPTOGRAM in found:
        value = found[TAG_CRYPTOGRAM]
        if not value or value[0] != PADDING_INDICATOR:
            raise _Violation("unknown padding-content indicator")
        return value[1:]
    return None


def _decrypt(crypto: SmCrypto, ssc: bytes, found: dict[int, bytes]) -> bytes:
    cryptogram = _cryptogram(found)
    if cryptogram is None:
        return b""
    plain = crypto.decrypt(ssc, cryptogram)
    if plain is None:
        raise _Violation("secure messaging cryptogram does not decrypt to padded data")
    return plain


def _encrypted_do(crypto: SmCrypto, ssc: bytes, data: bytes, odd_ins: bool) -> bytes:
    if not data:
        return b""
    cryptogram = crypto.encrypt(ssc, data)
    if odd_ins:
        return Tlv(TAG_CRYPTOGRAM_ODD, cryptogram).encode()
    return Tlv(TAG_CRYPTOGRAM, bytes((PADDING_INDICATOR,)) + cryptogram).encode()


class _Session:
    """What both ends share: the cipher, the keys, the send sequence counter and the closed state."""

    def __init__(self, cipher: Cipher, k_enc: bytes, k_mac: bytes, ssc: int) -> None:
        self._ssc_length = cipher.block_size
        if not 0 <= ssc < 1 << (8 * self._ssc_length):
            raise ValueError(f"the {cipher.value[0]} send sequence counter has {self._ssc_length} bytes")
        self._crypto: SmCrypto | None = SmCrypto(cipher, k_enc, k_mac)
        self._cipher = cipher
        self._ssc = ssc

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"{type(self).__name__}({self._cipher.value[0]}, {state})"

    @property
    def cipher(self) -> Cipher:
        return self._cipher

    @property
    def ssc(self) -> int:
        """The send sequence counter as last used."""
        return self._ssc

    @property
    def closed(self) -> bool:
        return self._crypto is None

    @property
    def max_short_data(self) -> int:
        """Largest plain Nc or Ne that still fits a short protected APDU (see :func:`max_short_data`)."""
        return max_short_data(self._cipher)

    def close(self) -> None:
        """End the session: the keys are dropped and every further use is refused."""
        self._crypto = None

    def _next(self) -> tuple[SmCrypto, bytes]:
        """The keys and the incremented SSC, as bytes; :class:`_Violation` if the session is over."""
        crypto = self._crypto
        if crypto is None:
            raise _Violation("the secure messaging session is closed")
        if self._ssc + 1 >= 1 << (8 * self._ssc_length):
            # A wrapped-around counter would let old messages verify again.
            raise _Violation("the send sequence counter is exhausted")
        self._ssc += 1
        return crypto, self._ssc.to_bytes(self._ssc_length, "big")


class SecureMessagingSession(_Session):
    """Terminal-side secure messaging, the ``SecureMessagingWrapper`` of
    :class:`~ektp_card.apdu.protocol.ApduProtocol` (``protocol.secure_messaging = session``).

    ``ssc`` is the initial send sequence counter: from the challenges after BAC, 0 after PACE. Any
    failure raises :class:`SecureMessagingError` and closes the session.
    """

    def __init__(self, cipher: Cipher, k_enc: bytes, k_mac: bytes, ssc: int) -> None:
        super().__init__(cipher, k_enc, k_mac, ssc)
        self._awaiting = False
        self._told_outside = False

    def _fail(self, message: str) -> SecureMessagingError:
        self.close()
        return SecureMessagingError(f"secure messaging: {message}")

    def _check_open(self) -> None:
        if self.closed:
            raise SecureMessagingError("secure messaging: the session is closed")

    def wrap(self, apdu: CommandApdu) -> CommandApdu:
        """Protect a plain command (ICAO Doc 9303-11 section 9.8)."""
        self._check_open()
        if apdu.cla & SM_CLA_BITS:
            raise SecureMessagingError("secure messaging: the command is already protected")
        if self._awaiting:
            # The previous response never came back: the two ends' counters may differ now.
            raise self._fail("the previous command was not answered; the session is out of step")
        try:
            crypto, ssc = self._next()
        except _Violation as exc:
            raise self._fail(str(exc)) from None
        cla = apdu.cla | SM_CLA_BITS
        header = pad(bytes((cla, apdu.ins, apdu.p1, apdu.p2)), self._cipher.block_size)
        body = _encrypted_do(crypto, ssc, apdu.data, bool(apdu.ins & 1))
        long_le = False
        if apdu.le is not None:
            long_le = apdu.le > SHORT_MAX_LE or apdu.extended
            # Ne 256 is "00" and 65536 is "0000", as in the plain Le field.
            le = (apdu.le & 0xFFFF).to_bytes(2, "big") if long_le else bytes((apdu.le & 0xFF,))
            body += Tlv(TAG_LE, le).encode()
        body += Tlv(TAG_MAC, crypto.mac(ssc + header + body)).encode()
        extended = apdu.extended or long_le or len(body) > SHORT_MAX_LC
        self._awaiting = True
        # The protected command always expects data (at least DO99 and DO8E): Le 00, or 0000.
        return CommandApdu(
            cla, apdu.ins, apdu.p1, apdu.p2, body,
            le=EXTENDED_MAX_LE if extended else SHORT_MAX_LE, extended=extended,
        )

    def unwrap(self, response: ResponseApdu) -> ResponseApdu:
        """Verify the MAC, then decrypt; the response with the status word the card protected."""
        self._check_open()
        if not self._awaiting:
            raise self._fail("a response arrived for no protected command")
        self._awaiting = False
        try:
            crypto, ssc = self._next()
            if not response.data:
                if response.sw in (SW.SM_DATA_OBJECTS_MISSING, SW.SM_DATA_OBJECTS_INCORRECT):
                    raise _Violation(f"the card rejected the secure messaging ({response.sw:04X})")
                raise _Violation(f"the card answered {response.sw:04X} without secure messaging")
            found, mac_at = _split(
                response.data,
                (frozenset({TAG_CRYPTOGRAM, TAG_CRYPTOGRAM_ODD}), frozenset({TAG_STATUS})),
                "the response has no MAC (DO8E)",
            )
            status = found.get(TAG_STATUS)
            if status is None:
                raise _Violation("the response has no status word (DO99)")
            if len(status) != 2:
                raise _Violation("malformed protected status word (DO99)")
            if not crypto.verify(ssc + response.data[:mac_at], found[TAG_MAC]):
                raise _Violation("the response MAC does not verify")
            data = _decrypt(crypto, ssc, found)
        except _Violation as exc:
            raise self._fail(str(exc)) from None
        protected = int.from_bytes(status, "big")
        if protected != response.sw and response.sw >> 8 != 0x61 and not self._told_outside:
            # Some chips say 9000 outside whatever DO 99 says: only the word under the MAC counts.
            self._told_outside = True
            log.info("the card's unprotected status word %04X differs from the protected one %04X; the "
                     "protected one counts", response.sw, protected)
        return ResponseApdu(data, protected)


class CardSecureMessaging(_Session):
    """Card-side secure messaging, the ``SecureChannel`` hook of the virtual card
    (``card.security.open_channel(channel)``).

    ``unwrap`` raises :class:`ApduError` with 6987 (data objects missing) or 6988 (incorrect: bad
    MAC, bad padding, malformed objects, replayed counter); the card then answers that word
    unprotected and ends the channel. This object closes itself as well.
    """

    def __init__(self, cipher: Cipher, k_enc: bytes, k_mac: bytes, ssc: int) -> None:
        super().__init__(cipher, k_enc, k_mac, ssc)
        self._odd_ins = False

    def unwrap(self, apdu: CommandApdu) -> CommandApdu:
        """Verify the MAC first, then decrypt; the plain command."""
        try:
            return self._unwrap(apdu)
        except _Violation as exc:
            self.close()
            # A MAC failure and a padding failure answer the same word through the same path, so
            # an attacker learns nothing from which check failed (no padding oracle). Padding is
            # only looked at once the MAC verified anyway.
            raise error_for(exc.sw) from None

    def _unwrap(self, apdu: CommandApdu) -> CommandApdu:
        crypto, ssc = self._next()
        if apdu.cla & SM_CLA_BITS != SM_CLA_BITS:
            # ICAO Doc 9303-11 uses only "header authenticated" (CLA b4-b3 = 11).
            raise _Violation("unsupported secure messaging indication")
        found, mac_at = _split(
            apdu.data,
            (frozenset({TAG_CRYPTOGRAM, TAG_CRYPTOGRAM_ODD}), frozenset({TAG_LE})),
            "the command has no MAC (DO8E)",
        )
        header = pad(bytes((apdu.cla, apdu.ins, apdu.p1, apdu.p2)), self._cipher.block_size)
        if not crypto.verify(ssc + header + apdu.data[:mac_at], found[TAG_MAC]):
            raise _Violation("the command MAC does not verify")
        data = _decrypt(crypto, ssc, found)
        le: int | None = None
        long_le = False
        if TAG_LE in found:
            value = found[TAG_LE]
            if len(value) not in (1, 2):
                raise _Violation("malformed protected Le (DO97)")
            long_le = len(value) == 2
            le = int.from_bytes(value, "big") or (EXTENDED_MAX_LE if long_le else SHORT_MAX_LE)
        self._odd_ins = bool(apdu.ins & 1)
        return CommandApdu(
            apdu.cla & ~SM_CLA_BITS & 0xFF, apdu.ins, apdu.p1, apdu.p2, data,
            le=le, extended=long_le or len(data) > SHORT_MAX_LC,
        )

    def wrap(self, response: ResponseApdu) -> ResponseApdu:
        """Protect a response: [DO87/85] DO99 DO8E, with the plain status word outside as well."""
        try:
            crypto, ssc = self._next()
        except _Violation:
            self.close()
            return ResponseApdu(b"", SW.SM_DATA_OBJECTS_INCORRECT)
        body = _encrypted_do(crypto, ssc, response.data, self._odd_ins)
        body += Tlv(TAG_STATUS, response.sw.to_bytes(2, "big")).encode()
        body += Tlv(TAG_MAC, crypto.mac(ssc + body)).encode()
        return ResponseApdu(body, response.sw)


__all__ = [
    "CardSecureMessaging",
    "SecureMessagingSession",
    "SmCrypto",
    "max_short_data",
    "pad",
    "retail_mac",
    "tdes_cbc",
    "unpad",
]
