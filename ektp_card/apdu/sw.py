"""Status words (ISO/IEC 7816-4 section 5.6) and the one place that turns them into exceptions."""

from __future__ import annotations

from enum import IntEnum

from ektp_card import errors


class SW(IntEnum):
    """Named status words. Families with a variable low byte (61xx, 63Cx, 6Cxx) are matched by mask."""

    OK = 0x9000
    END_OF_FILE = 0x6282
    FILE_DEACTIVATED = 0x6283
    VERIFICATION_FAILED = 0x6300
    EXECUTION_ERROR = 0x6400
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SM_NOT_SUPPORTED = 0x6882
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883
    CHAINING_NOT_SUPPORTED = 0x6884
    INCOMPATIBLE_FILE_STRUCTURE = 0x6981
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    SM_DATA_OBJECTS_MISSING = 0x6987
    SM_DATA_OBJECTS_INCORRECT = 0x6988
    INCORRECT_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    LC_INCONSISTENT_WITH_TLV = 0x6A85
    INCORRECT_P1P2 = 0x6A86
    LC_INCONSISTENT_WITH_P1P2 = 0x6A87
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    FILE_EXISTS = 0x6A89
    WRONG_P1P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00

    @staticmethod
    def bytes_remaining(n: int) -> int:
        """61xx: ``n`` more bytes are available with GET RESPONSE (0 means 256 or more)."""
        return 0x6100 | (n & 0xFF)

    @staticmethod
    def wrong_le(exact: int) -> int:
        """6Cxx: resend with Le = ``exact`` (256 encodes as 00)."""
        return 0x6C00 | (exact & 0xFF)

    @staticmethod
    def counter(retries: int) -> int:
        """63Cx: verification failed, ``retries`` tries left (0-15)."""
        return 0x63C0 | (retries & 0x0F)


_MEANINGS: dict[int, str] = {
    SW.OK: "success",
    SW.END_OF_FILE: "end of file reached before reading Le bytes",
    SW.FILE_DEACTIVATED: "selected file deactivated",
    SW.VERIFICATION_FAILED: "verification failed",
    SW.EXECUTION_ERROR: "execution error, state of non-volatile memory unchanged",
    SW.MEMORY_FAILURE: "memory failure",
    SW.WRONG_LENGTH: "wrong length",
    SW.LOGICAL_CHANNEL_NOT_SUPPORTED: "logical channel not supported",
    SW.SM_NOT_SUPPORTED: "secure messaging not supported",
    SW.LAST_COMMAND_OF_CHAIN_EXPECTED: "last command of the chain expected",
    SW.CHAINING_NOT_SUPPORTED: "command chaining not supported",
    SW.INCOMPATIBLE_FILE_STRUCTURE: "command incompatible with file structure",
    SW.SECURITY_STATUS_NOT_SATISFIED: "security status not satisfied",
    SW.AUTH_METHOD_BLOCKED: "authentication method blocked",
    SW.REFERENCE_DATA_NOT_USABLE: "reference data not usable",
    SW.CONDITIONS_NOT_SATISFIED: "conditions of use not satisfied",
    SW.COMMAND_NOT_ALLOWED: "command not allowed (no current EF)",
    SW.SM_DATA_OBJECTS_MISSING: "expected secure messaging data objects missing",
    SW.SM_DATA_OBJECTS_INCORRECT: "incorrect secure messaging data objects",
    SW.INCORRECT_DATA: "incorrect parameters in the command data field",
    SW.FUNCTION_NOT_SUPPORTED: "function not supported",
    SW.FILE_NOT_FOUND: "file or application not found",
    SW.RECORD_NOT_FOUND: "record not found",
    SW.NOT_ENOUGH_MEMORY: "not enough memory space in the file",
    SW.LC_INCONSISTENT_WITH_TLV: "Nc inconsistent with TLV structure",
    SW.INCORRECT_P1P2: "incorrect parameters P1-P2",
    SW.LC_INCONSISTENT_WITH_P1P2: "Nc inconsistent with parameters P1-P2",
    SW.REFERENCED_DATA_NOT_FOUND: "referenced data or reference data not found",
    SW.FILE_EXISTS: "file already exists",
    SW.WRONG_P1P2: "wrong parameters P1-P2 (offset outside the file)",
    SW.INS_NOT_SUPPORTED: "instruction code not supported or invalid",
    SW.CLA_NOT_SUPPORTED: "class not supported",
    SW.NO_PRECISE_DIAGNOSIS: "no precise diagnosis",
}

_ERRORS: dict[int, type[errors.ApduError]] = {
    SW.WRONG_LENGTH: errors.WrongLengthError,
    SW.VERIFICATION_FAILED: errors.VerificationFailedError,
    SW.SECURITY_STATUS_NOT_SATISFIED: errors.SecurityStatusNotSatisfiedError,
    SW.AUTH_METHOD_BLOCKED: errors.AuthenticationBlockedError,
    SW.CONDITIONS_NOT_SATISFIED: errors.ConditionsNotSatisfiedError,
    SW.COMMAND_NOT_ALLOWED: errors.CommandNotAllowedError,
    SW.SM_DATA_OBJECTS_MISSING: errors.SecureMessagingObjectsError,
    SW.SM_DATA_OBJECTS_INCORRECT: errors.SecureMessagingObjectsError,
    SW.FILE_NOT_FOUND: errors.CardFileNotFoundError,
    SW.FILE_EXISTS: errors.FileExistsOnCardError,
    SW.NOT_ENOUGH_MEMORY: errors.NotEnoughMemoryError,
    SW.INCORRECT_P1P2: errors.IncorrectParametersError,
    SW.WRONG_P1P2: errors.IncorrectParametersError,
    SW.INCORRECT_DATA: errors.IncorrectParametersError,
    SW.LC_INCONSISTENT_WITH_P1P2: errors.IncorrectParametersError,
    SW.FUNCTION_NOT_SUPPORTED: errors.FunctionNotSupportedError,
    SW.REFERENCED_DATA_NOT_FOUND: errors.ReferencedDataNotFoundError,
    SW.INS_NOT_SUPPORTED: errors.InsNotSupportedError,
    SW.CLA_NOT_SUPPORTED: errors.ClaNotSupportedError,
    SW.LAST_COMMAND_OF_CHAIN_EXPECTED: errors.ChainingError,
    SW.CHAINING_NOT_SUPPORTED: errors.ChainingError,
}

#: Status words after which the response data is still meaningful (ISO 7816-4 "normal processing").
SUCCESS: frozenset[int] = frozenset({SW.OK})


def describe(sw: int) -> str:
    """Human meaning of a status word, including the families 61xx, 63Cx and 6Cxx."""
    if sw in _MEANINGS:
        return _MEANINGS[sw]
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == 0x61:
        return f"{sw2 or 256} more bytes available (GET RESPONSE)"
    if sw1 == 0x6C:
        return f"wrong Le: exact length is {sw2 or 256}"
    if sw & 0xFFF0 == 0x63C0:
        return f"verification failed, {sw & 0x0F} tries left"
    if sw1 == 0x62:
        return "warning: state of non-volatile memory unchanged"
    if sw1 == 0x63:
        return "warning: state of non-volatile memory changed"
    if sw1 == 0x64:
        return "execution error, state of non-volatile memory unchanged"
    if sw1 == 0x65:
        return "execution error, state of non-volatile memory changed"
    if sw1 == 0x66:
        return "security-related issue"
    if sw1 == 0x68:
        return "functions in CLA not supported"
    if sw1 == 0x69:
        return "command not allowed"
    if sw1 == 0x6A:
        return "wrong parameters P1-P2"
    return "unknown status word"


def error_for(sw: int, data: bytes = b"") -> errors.ApduError:
    """The exception that stands for ``sw``; unknown words get the base :class:`ApduError`."""
    cls = _ERRORS.get(sw)
    if cls is None:
        if sw & 0xFFF0 == 0x63C0:
            cls = errors.VerificationFailedError
        elif sw >> 8 == 0x6C:
            cls = errors.WrongLengthError
        else:
            cls = errors.ApduError
    return cls(sw, data, f"card returned {sw:04X}: {describe(sw)}")


def check(sw: int, data: bytes = b"", allow: frozenset[int] = SUCCESS) -> None:
    """Raise the mapped :class:`ApduError` unless ``sw`` is in ``allow``."""
    if sw not in allow:
        raise error_for(sw, data)
