"""The project's one exception hierarchy.

Every error the library raises derives from :class:`EktpError`, so a caller (and the CLI's single
error handler) can catch one class. Messages never contain keys, CANs, PINs or session keys.
"""

from __future__ import annotations

from typing import NamedTuple


class EktpError(Exception):
    """Root of every error raised by ektp-card."""


class TlvError(EktpError, ValueError):
    """Malformed BER-TLV data; ``offset`` is where decoding stopped."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at offset {offset}")
        self.offset = offset


class ApduFormatError(EktpError, ValueError):
    """An APDU that ISO/IEC 7816-3/-4 does not allow (bad length fields, out-of-range values)."""


class TransportError(EktpError):
    """The link to the card failed: no reader, no card, card removed, service not running."""


class PcscUnavailableError(TransportError):
    """The PC/SC service (pcscd) is not running or not reachable."""


class ReaderNotFoundError(TransportError):
    """No reader matches the requested name or index."""


class NoCardError(TransportError):
    """No card was presented within the timeout."""


class CardRemovedError(TransportError):
    """The card left the field (or was reset) while a command was in progress."""


class SecureMessagingError(EktpError):
    """A secure-messaging check failed; the session is closed and nothing unverified is returned."""


class CardImageError(EktpError):
    """A virtual card image file is missing, corrupt or of an unknown version."""


class MrzError(EktpError, ValueError):
    """Machine readable zone data that is malformed or whose check digits do not match.

    The message names the field, never its value: the MRZ is the BAC password.
    """


class ApduError(EktpError):
    """The card answered with a status word other than success.

    Raised in one place (:func:`ektp_card.apdu.sw.check`); subclasses name the common cases.
    """

    def __init__(self, sw: int, data: bytes = b"", message: str | None = None) -> None:
        # The meaning of the word comes from apdu/sw.py, which builds the message when it maps a word;
        # this module depends on nothing, so a bare instance names the word alone.
        self.sw = sw
        self.data = data
        super().__init__(message or f"card returned {sw:04X}")


class WrongLengthError(ApduError):
    """6700 or 6Cxx: the length field was wrong; ``exact_le`` is the card's hint for 6Cxx."""

    @property
    def exact_le(self) -> int | None:
        if self.sw >> 8 == 0x6C:
            return (self.sw & 0xFF) or 256
        return None


class VerificationFailedError(ApduError):
    """63Cx (or 6300): a password or key check failed; ``retries`` left when the card says so."""

    @property
    def retries(self) -> int | None:
        if self.sw & 0xFFF0 == 0x63C0:
            return self.sw & 0x0F
        return None


class SecurityStatusNotSatisfiedError(ApduError):
    """6982: the access condition for this command is not met."""


class AuthenticationBlockedError(ApduError):
    """6983: the authentication method (e.g. the PIN) is blocked."""


class ConditionsNotSatisfiedError(ApduError):
    """6985: conditions of use not satisfied (wrong life-cycle state, wrong order of commands)."""


class CommandNotAllowedError(ApduError):
    """6986: command not allowed (e.g. no current EF)."""


class SecureMessagingObjectsError(ApduError):
    """6987 or 6988: secure-messaging data objects missing or incorrect."""


class CardFileNotFoundError(ApduError):
    """6A82: file or application not found."""


class FileExistsOnCardError(ApduError):
    """6A89: a file with this identifier already exists."""


class NotEnoughMemoryError(ApduError):
    """6A84: not enough memory space in the file."""


class IncorrectParametersError(ApduError):
    """6A86, 6B00, 6A80, 6A87: wrong P1-P2, offset outside the file, or bad data field."""


class FunctionNotSupportedError(ApduError):
    """6A81: function not supported."""


class ReferencedDataNotFoundError(ApduError):
    """6A88: referenced data (key, password) not found."""


class InsNotSupportedError(ApduError):
    """6D00: instruction code not supported."""


class ClaNotSupportedError(ApduError):
    """6E00: class byte not supported."""


class ChainingError(ApduError):
    """6883 or 6884: command chaining broken or not supported."""


class PaceError(EktpError):
    """PACE could not be completed: unsupported parameters, or a card answer that breaks the
    protocol (malformed data, an invalid point, a wrong authentication token from the chip)."""


class PacePasswordError(VerificationFailedError):
    """The card refused the PACE password: wrong (6300, 63Cx), suspended (63C1 outside a CAN
    session) or blocked (63C0, 6983). ``password`` names its type (MRZ, CAN, PIN, PUK), never its
    value; ``retries`` is what the card said is left (0 when blocked)."""

    def __init__(self, sw: int, password: str, data: bytes = b"", message: str | None = None) -> None:
        self.password = password
        retries = 0 if sw == 0x6983 else (sw & 0x0F if sw & 0xFFF0 == 0x63C0 else None)
        if retries == 0:
            text = f"the {password} is blocked"
        elif retries == 1 and password == "PIN":  # noqa: S105 - the password type, not a password
            text = f"wrong {password}: 1 try left, the {password} is suspended until PACE with the CAN"
        elif retries is not None:
            text = f"wrong {password}: {retries} tries left"
        else:
            text = f"wrong {password}"
        super().__init__(sw, data, message or f"PACE failed: {text}")

    @property
    def retries(self) -> int | None:
        if self.sw == 0x6983:
            return 0
        return super().retries

    @property
    def blocked(self) -> bool:
        return self.retries == 0


class LdsFormatError(EktpError, ValueError):
    """A data structure read from a card (EF.CardAccess, a data group, EF.SOD) is malformed."""


class PkiError(EktpError):
    """A key, certificate, CRL or trust-store problem: unreadable or wrongly protected key file, a
    missing passphrase, a certificate outside its profile. Never names a passphrase or key value."""


class CvcNameError(PkiError, ValueError):
    """A CV certificate holder reference (country code, mnemonic, sequence number) or access right name
    that no CV certificate can carry: a value the caller chose, checked before any key is used."""


class BiometricFormatError(LdsFormatError):
    """A biometric record (ISO/IEC 19794-2 minutiae, ISO/IEC 19794-5 face, a CBEFF template, a JPEG)
    that is malformed; ``offset`` is the byte where decoding stopped (``None`` when a value built in
    code is out of range rather than read from bytes)."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} at offset {offset}")
        self.offset = offset


class Violation(NamedTuple):
    """One broken rule of a citizen record: the field, the rule's name (e.g. ``nik.province``) and a
    message naming what is wrong, never the whole value."""

    field: str
    rule: str
    message: str


class RecordError(EktpError, ValueError):
    """A citizen record that cannot be used; ``violations`` lists every broken rule at once."""

    def __init__(self, violations: list[Violation] | tuple[Violation, ...]) -> None:
        self.violations = tuple(violations)
        count = len(self.violations)
        listed = "; ".join(f"{v.field}: {v.message} [{v.rule}]" for v in self.violations)
        super().__init__(f"invalid record ({count} problem{'s' if count != 1 else ''}): {listed}")

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(v.rule for v in self.violations)


class RecordFileError(RecordError):
    """The record or batch file itself cannot be used: missing, unreadable, not UTF-8, not a ``.jsonl``
    or ``.csv`` batch, or CSV that breaks off (rule ``record.file`` or ``record.csv``)."""


class AuthenticationProtocolError(EktpError):
    """Chip, Terminal or Active Authentication cannot run or did not succeed. When a command of the
    protocol failed, ``step`` names it (e.g. ``MSE:Set AT for Chip Authentication``) and ``sw`` is
    the chip's status word for it; otherwise ``step`` is empty and ``sw`` is ``None``."""

    def __init__(self, message: str, *, step: str = "", sw: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.sw = sw


class ChipAuthenticationError(AuthenticationProtocolError):
    """Chip Authentication cannot run (DG14 offers none this library supports, no secure messaging
    to run it in) or, through ``CaResult.require``, the chip failed it."""


class TerminalAuthenticationError(AuthenticationProtocolError):
    """Terminal Authentication cannot run (no certificate chain to the card's trust point, no secure
    messaging, a key that is not ECDSA) or, through ``TaResult.require``, the chip refused it."""


class ActiveAuthenticationError(AuthenticationProtocolError):
    """Active Authentication cannot run (no usable DG15 key or signature algorithm) or, through
    ``AaResult.require``, the chip's signature failed."""


class PersonalisationError(EktpError):
    """Personalisation cannot start or did not finish: input that fails the checks made before the card
    is touched (data groups, document signer), a card that is not a blank card of this issuer or did not
    prove its personalisation key, or a personalised card that does not verify when read back."""


class PersonalisationRefusedError(PersonalisationError):
    """The card refused a personalisation command: ``command`` names it, ``sw`` is the card's status
    word (e.g. 6A88 to INITIALIZE UPDATE: no personalisation key; 6983: the key is blocked; 6A84 to
    CREATE FILE: no room). The session keys and the data sent are never part of the message."""

    def __init__(self, message: str, *, command: str, sw: int) -> None:
        super().__init__(message)
        self.command = command
        self.sw = sw


class CardLockedError(PersonalisationRefusedError):
    """The card is already personalised and locked (6985 to INITIALIZE UPDATE): it never accepts a
    personalisation command again."""

    def __init__(self, message: str, *, command: str = "INITIALIZE UPDATE", sw: int = 0x6985) -> None:
        super().__init__(message, command=command, sw=sw)


class PlanError(PersonalisationError):
    """The record or data groups do not make a card of this profile (a data group that does not decode
    or fit its file, a malformed or guessable CAN, unsupported algorithms, EF.CVCA references that
    disagree): found before any card is touched."""


class CardCapacityError(PersonalisationError):
    """The record does not fit the card's memory: found after the card told its free memory and before
    the first write, so the card stays blank. ``needed`` and ``free`` are bytes; the message says by
    how many the record is too large."""

    def __init__(self, message: str, *, needed: int, free: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.free = free

    @property
    def excess(self) -> int:
        return self.needed - self.free


class IssuerMaterialError(PersonalisationError):
    """The issuer's material cannot personalise a card: a malformed master key, a document signer that
    cannot sign now (validity, private key usage period, key usage, not from a trusted CSCA, a key that
    does not match its certificate or does not sign) or a CVCA certificate that is no trust point."""


class PersoAuthenticationError(PersonalisationError):
    """No personalisation session with the card: not a blank e-KTP chip, a blocked personalisation key,
    or one that does not match the master key (the card counts the failed try)."""


class PersoKeyRefusedError(PersoAuthenticationError, PersonalisationRefusedError):
    """The card refused the personalisation key's mutual authentication: no such key on it (6A88, 6D00,
    6E00 to INITIALIZE UPDATE: not a blank e-KTP chip), the key blocked (6983), or EXTERNAL
    AUTHENTICATE refused (63Cx). ``command`` and ``sw`` say which and how."""


class RegistryError(EktpError):
    """A desk registry operation was refused or the registry database could not be used."""


class PrintJobError(EktpError, ValueError):
    """A print job file (the CAN and printed fields of an issued card) that is not one this library
    wrote. The message never quotes the CAN."""


class DuplicateActiveCardError(RegistryError):
    """The NIK already has a live card (personalised, handed over or active)."""


class MissingExtraError(EktpError, ImportError):
    """An optional dependency is not installed; ``extra`` names the ektp-card extra that brings it
    (``pcsc``, ``nfc``, ``hsm``, ``desk``) and ``package`` the package itself."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        super().__init__(f"{feature} needs {package}: pip install 'ektp-card[{extra}]'")
        self.package = package
        self.extra = extra


class InputFileError(EktpError):
    """A file the caller named does not hold what it should (e.g. a fingerprint capture that is no
    ISO/IEC 19794-2 record) or cannot be read; the message names the file."""


class AuditError(EktpError):
    """A security audit could not run (unknown test ID, a destructive test refused without consent)."""


class ReadBackError(PersonalisationError):
    """The card was personalised and locked but does not verify when read back. ``sod_sha256`` (the
    SHA-256 of the EF.SOD written, lower-case hex; not a secret) lets a registry name the spoiled card."""

    def __init__(self, message: str, sod_sha256: str) -> None:
        super().__init__(message)
        self.sod_sha256 = sod_sha256


#: What asn1crypto raises on malformed input: mostly ValueError, but TypeError, KeyError, IndexError and
#: AttributeError escape its lazy parsing of odd universal types, OverflowError a huge length and
#: RecursionError a deep nesting. Parsers catch these around their asn1crypto calls only, and raise
#: their own error instead.
ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError)


def one_line(exc: BaseException) -> str:
    """The message of a foreign exception (asn1crypto, cryptography, json) fit to go into ours: one
    line. asn1crypto appends a "while parsing <class>" line per nesting level, which names our
    internal classes and would break a log line or the CLI's one-line error in two."""
    lines = [line.strip() for line in str(exc).splitlines()]
    kept = [line for line in lines if line and not line.startswith("while parsing ")]
    return " ".join(kept) or type(exc).__name__
