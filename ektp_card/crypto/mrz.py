"""The MRZ fields that key Basic Access Control and PACE with the MRZ password.

ICAO Doc 9303-11 section 4.3 (and 9.7.3 for PACE) keys both protocols with the "MRZ information":
document number, date of birth and date of expiry, each followed by its check digit. The check
digits are computed here (ICAO Doc 9303-3 section 4.9), and when a whole machine readable zone is
given, the printed ones are verified against them. The field positions are those of ICAO Doc 9303-4
(TD3, passports), 9303-5 (TD1, ID cards) and 9303-6 (TD2).

The MRZ is the BAC password: :class:`MrzInfo` never shows it in ``repr()`` and errors never quote it.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from ektp_card.errors import MrzError

#: Character values for check digits: 0-9, A-Z = 10-35, filler '<' = 0 (ICAO Doc 9303-3 section 4.9).
_VALUES = {c: i for i, c in enumerate(string.digits + string.ascii_uppercase)} | {"<": 0}
_WEIGHTS = (7, 3, 1)
_FIELD = re.compile(r"[0-9A-Z<]+")
#: YYMMDD. ICAO Doc 9303-3 lets an unknown part of a date of birth be filled with '<'.
_DATE = re.compile(r"[0-9<]{6}")
#: The document number field is nine characters; longer numbers overflow into the optional data.
DOCUMENT_NUMBER_FIELD = 9
#: (lines, characters per line) of each document format.
_TD1, _TD2, _TD3 = (3, 30), (2, 36), (2, 44)


#: Days in each month, February as in a leap year (the century of a YYMMDD date is not known).
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _calendar(yymmdd: str) -> bool:
    """Whether the month and day of ``yymmdd`` can be a date (a part filled with '<' is unknown)."""
    month, day = yymmdd[2:4], yymmdd[4:6]
    if month.isdigit() and not 1 <= int(month) <= 12:
        return False
    if day.isdigit():
        limit = _MONTH_DAYS[int(month) - 1] if month.isdigit() else 31
        return 1 <= int(day) <= limit
    return True


def check_digit(field: str) -> str:
    """The check digit of ``field``: weights 7, 3, 1 repeated, sum modulo 10 (ICAO Doc 9303-3 section 4.9)."""
    if not _FIELD.fullmatch(field):
        raise MrzError("MRZ fields hold only digits, capital letters and '<'")
    return str(sum(_VALUES[c] * _WEIGHTS[i % 3] for i, c in enumerate(field)) % 10)


def _verify(field: str, digit: str, name: str) -> None:
    if check_digit(field) != digit:
        raise MrzError(f"the {name} check digit does not match")


@dataclass(frozen=True, repr=False)
class MrzInfo:
    """Document number, date of birth and date of expiry (YYMMDD), as in the MRZ.

    The document number is kept without trailing fillers; the check digits are always computed.
    """

    document_number: str
    date_of_birth: str
    date_of_expiry: str

    def __post_init__(self) -> None:
        number = self.document_number.strip().upper().rstrip("<")
        if not number or not _FIELD.fullmatch(number):
            raise MrzError("the document number must be capital letters, digits and '<'")
        birth, expiry = self.date_of_birth.strip(), self.date_of_expiry.strip()
        if not _DATE.fullmatch(birth) or not _calendar(birth):
            raise MrzError("the date of birth must be six digits, YYMMDD, a date of the calendar")
        if not expiry.isascii() or not expiry.isdigit() or len(expiry) != 6 or not _calendar(expiry):
            raise MrzError("the date of expiry must be six digits, YYMMDD, a date of the calendar")
        object.__setattr__(self, "document_number", number)
        object.__setattr__(self, "date_of_birth", birth)
        object.__setattr__(self, "date_of_expiry", expiry)

    def __repr__(self) -> str:
        return "MrzInfo(<redacted>)"

    @property
    def mrz_information(self) -> str:
        """Document number (at least nine characters, '<'-filled) || check digit || date of birth ||
        check digit || date of expiry || check digit (ICAO Doc 9303-11 section 4.3)."""
        number = self.document_number.ljust(DOCUMENT_NUMBER_FIELD, "<")
        return "".join(
            field + check_digit(field) for field in (number, self.date_of_birth, self.date_of_expiry)
        )

    @classmethod
    def from_mrz(cls, text: str) -> MrzInfo:
        """Parse a whole machine readable zone (TD1, TD2 or TD3), lines separated by line breaks or
        run together, and verify its check digits, the composite one included."""
        lines = [line.strip().upper() for line in text.strip().splitlines() if line.strip()]
        if len(lines) == 1:
            joined = lines[0]
            for count, width in (_TD1, _TD2, _TD3):
                if len(joined) == count * width:
                    lines = [joined[i : i + width] for i in range(0, len(joined), width)]
                    break
        shape = (len(lines), len(lines[0]) if lines else 0)
        if shape not in (_TD1, _TD2, _TD3) or any(len(line) != shape[1] for line in lines):
            raise MrzError("not a machine readable zone: expected 3 lines of 30, or 2 of 36 or 44 characters")
        if not all(_FIELD.fullmatch(line) for line in lines):
            raise MrzError("an MRZ holds only digits, capital letters and '<'")
        if shape == _TD1:
            return cls._from_td1(lines[0], lines[1])
        return cls._from_td2_td3(lines[1], td3=shape == _TD3)

    @classmethod
    def _from_td1(cls, upper: str, middle: str) -> MrzInfo:
        # ICAO Doc 9303-5: document number in upper line positions 6-14, its check digit at 15 (or
        # '<' and the overflow in the optional data 16-30); dates in the middle line.
        number = _document_number(upper[5:14], upper[14], upper[15:30])
        info = cls._checked(number, middle[0:6], middle[6], middle[8:14], middle[14])
        _verify(upper[5:30] + middle[0:7] + middle[8:15] + middle[18:29], middle[29], "composite")
        return info

    @classmethod
    def _from_td2_td3(cls, lower: str, *, td3: bool) -> MrzInfo:
        # ICAO Doc 9303-4 / 9303-6: the lower line starts with document number (1-9), check digit
        # (10), nationality, date of birth (14-19) and its check digit, sex, date of expiry (22-27)
        # and its check digit. Only TD2 lets a long document number overflow into optional data.
        optional = "" if td3 else lower[28:35]
        number = _document_number(lower[0:9], lower[9], optional)
        info = cls._checked(number, lower[13:19], lower[19], lower[21:27], lower[27])
        end = 43 if td3 else 35
        _verify(lower[0:10] + lower[13:20] + lower[21:end], lower[end], "composite")
        return info

    @classmethod
    def _checked(
        cls, number: tuple[str, str], birth: str, birth_cd: str, expiry: str, expiry_cd: str
    ) -> MrzInfo:
        _verify(number[0], number[1], "document number")
        _verify(birth, birth_cd, "date of birth")
        _verify(expiry, expiry_cd, "date of expiry")
        return cls(number[0], birth, expiry)


def _document_number(principal: str, digit: str, optional: str) -> tuple[str, str]:
    """The full document number and its check digit, following an overflow into the optional data
    (check digit position '<', then the remaining characters and the check digit, then '<')."""
    if digit != "<" or not optional:
        return principal, digit
    rest = optional.split("<", 1)[0]
    if len(rest) < 2:
        raise MrzError("the document number overflow in the optional data is malformed")
    return principal + rest[:-1], rest[-1]
