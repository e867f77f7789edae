"""The rules a citizen record must follow: the NIK and every printed field.

Each broken rule becomes a :class:`~ektp_card.errors.Violation` with a stable rule name (e.g.
``nik.province``); validation always runs every rule and returns all violations at once.

The NIK (Nomor Induk Kependudukan, 16 digits)::

    PP KK DD  ddmmyy  SSSS
    |  |  |   |       serial number within the district and birth date, never 0000
    |  |  |   date of birth; women have 40 added to the day
    |  |  district (kecamatan) code, not 00
    |  regency (kabupaten) 01-69 or city (kota) 71-99
    province code

Province codes are those of the Ministry of Home Affairs (Kemendagri) region code list that Dukcapil
uses for the NIK: Permendagri No. 72 Tahun 2019 (Kode dan Data Wilayah Administrasi Pemerintahan),
plus the four Papua provinces formed in 2022 (93 Papua Selatan, 94 Papua Tengah, 95 Papua
Pegunungan, 96 Papua Barat Daya). Statistics Indonesia (BPS) numbers the Papua provinces differently
(BPS 94 is Papua, Kemendagri 91); NIKs carry the Kemendagri codes. Kabupaten codes start at 01 and
kota codes at 71 in the same list.

Who gets an e-KTP and for how long (Undang-Undang No. 24 Tahun 2013, articles 63 and 64): citizens
(WNI) and foreigners with a permanent stay permit (WNA) from age 17 or once married; a citizen's card is
valid for life ("SEUMUR HIDUP"), a foreigner's until the end of the stay permit.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ektp_card.errors import RecordError, Violation

NIK_LENGTH = 16
#: Kemendagri province codes (see the module docstring for the source).
PROVINCES: dict[str, str] = {
    "11": "ACEH",
    "12": "SUMATERA UTARA",
    "13": "SUMATERA BARAT",
    "14": "RIAU",
    "15": "JAMBI",
    "16": "SUMATERA SELATAN",
    "17": "BENGKULU",
    "18": "LAMPUNG",
    "19": "KEPULAUAN BANGKA BELITUNG",
    "21": "KEPULAUAN RIAU",
    "31": "DKI JAKARTA",
    "32": "JAWA BARAT",
    "33": "JAWA TENGAH",
    "34": "DI YOGYAKARTA",
    "35": "JAWA TIMUR",
    "36": "BANTEN",
    "51": "BALI",
    "52": "NUSA TENGGARA BARAT",
    "53": "NUSA TENGGARA TIMUR",
    "61": "KALIMANTAN BARAT",
    "62": "KALIMANTAN TENGAH",
    "63": "KALIMANTAN SELATAN",
    "64": "KALIMANTAN TIMUR",
    "65": "KALIMANTAN UTARA",
    "71": "SULAWESI UTARA",
    "72": "SULAWESI TENGAH",
    "73": "SULAWESI SELATAN",
    "74": "SULAWESI TENGGARA",
    "75": "GORONTALO",
    "76": "SULAWESI BARAT",
    "81": "MALUKU",
    "82": "MALUKU UTARA",
    "91": "PAPUA",
    "92": "PAPUA BARAT",
    "93": "PAPUA SELATAN",
    "94": "PAPUA TENGAH",
    "95": "PAPUA PEGUNUNGAN",
    "96": "PAPUA BARAT DAYA",
}
REGENCY_CODES = range(1, 70)
CITY_CODES = range(71, 100)
FEMALE_DAY_OFFSET = 40

MALE, FEMALE = "LAKI-LAKI", "PEREMPUAN"
SEXES = (MALE, FEMALE)
BLOOD_TYPES = ("A", "B", "AB", "O", "A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-", "-")
#: The six recognised religions and, since Constitutional Court decision 97/PUU-XIV/2016, the belief
#: in God printed instead of a religion.
RELIGIONS = ("ISLAM", "KRISTEN", "KATOLIK", "HINDU", "BUDDHA", "KONGHUCU", "KEPERCAYAAN TERHADAP TUHAN YME")
MARITAL_STATUSES = ("BELUM KAWIN", "KAWIN", "CERAI HIDUP", "CERAI MATI")
UNMARRIED = "BELUM KAWIN"
CITIZEN, FOREIGNER = "WNI", "WNA"
CITIZENSHIPS = (CITIZEN, FOREIGNER)
#: What a citizen's card prints as its validity.
LIFETIME = "SEUMUR HIDUP"
MINIMUM_AGE = 17
EARLIEST_BIRTH = dt.date(1900, 1, 1)

#: Longest value of each printed text field in this card profile (docs/card-profile.md).
MAX_LENGTHS: dict[str, int] = {
    "name": 60,
    "place_of_birth": 40,
    "address": 100,
    "kelurahan_desa": 40,
    "kecamatan": 40,
    "kabupaten_kota": 40,
    "province": 40,
    "occupation": 40,
    "place_of_issue": 40,
}
#: Printed text: capital letters, digits, space and the punctuation names and addresses use.
TEXT_CHARSET = re.compile(r"[A-Z0-9 .,'()/\-]+")
RT_RW_FORMAT = re.compile(r"[0-9]{3}/[0-9]{3}")


@dataclass(frozen=True)
class Nik:
    """The parts of a NIK of 16 digits (no other check made)."""

    province: str
    regency: str
    district: str
    day: int
    month: int
    year: int  # two digits
    serial: str

    @classmethod
    def parse(cls, text: str) -> Nik:
        """Split a NIK; :class:`RecordError` (rule ``nik.digits``) unless it is 16 ASCII digits."""
        if not _is_nik_digits(text):
            raise RecordError([_digits_violation()])
        return cls(
            text[0:2], text[2:4], text[4:6], int(text[6:8]), int(text[8:10]), int(text[10:12]), text[12:16]
        )

    @property
    def female(self) -> bool:
        return self.day > FEMALE_DAY_OFFSET

    @property
    def birth_day(self) -> int:
        return self.day - FEMALE_DAY_OFFSET if self.female else self.day

    @property
    def is_city(self) -> bool:
        return int(self.regency) in CITY_CODES


def _is_nik_digits(text: object) -> bool:
    return isinstance(text, str) and len(text) == NIK_LENGTH and text.isascii() and text.isdigit()


def _digits_violation() -> Violation:
    return Violation("nik", "nik.digits", "the NIK must be exactly 16 digits")


def nik_violations(
    nik: str, *, sex: str | None = None, date_of_birth: dt.date | None = None
) -> list[Violation]:
    """Every NIK rule; the sex and date-of-birth rules run when those values are given."""
    if not _is_nik_digits(nik):
        return [_digits_violation()]
    parts = Nik.parse(nik)
    found: list[Violation] = []

    def add(rule: str, message: str) -> None:
        found.append(Violation("nik", f"nik.{rule}", message))

    if parts.province not in PROVINCES:
        add("province", f"{parts.province} is not an Indonesian province code")
    if int(parts.regency) not in REGENCY_CODES and int(parts.regency) not in CITY_CODES:
        add("regency", f"regency/city code {parts.regency} is neither a regency (01-69) nor a city (71-99)")
    if parts.district == "00":
        add("district", "the district (kecamatan) code is 00")
    # The century comes from the date of birth; without one, 29 February is given the benefit of a leap year.
    year = date_of_birth.year - date_of_birth.year % 100 + parts.year if date_of_birth is not None else 2000
    month_ok = 1 <= parts.month <= 12
    if not (month_ok and 1 <= parts.birth_day <= calendar.monthrange(year, parts.month)[1]):
        add("birth_date", "digits 7-12 are not a date of birth (DDMMYY, day + 40 for women)")
    else:
        if sex in SEXES and parts.female != (sex == FEMALE):
            add(
                "sex",
                f"the NIK's day {'has' if parts.female else 'lacks'} the +40 for women but sex is {sex}",
            )
        if date_of_birth is not None and (parts.birth_day, parts.month, parts.year) != (
            date_of_birth.day,
            date_of_birth.month,
            date_of_birth.year % 100,
        ):
            add("date_of_birth", "the NIK's DDMMYY does not match the date of birth")
    if parts.serial == "0000":
        add("serial", "the serial number (last 4 digits) is 0000")
    return found


def check_nik(nik: str, *, sex: str | None = None, date_of_birth: dt.date | None = None) -> Nik:
    """The parsed NIK, or :class:`RecordError` with every broken NIK rule."""
    violations = nik_violations(nik, sex=sex, date_of_birth=date_of_birth)
    if violations:
        raise RecordError(violations)
    return Nik.parse(nik)


_TEXT_FIELDS = (
    "name",
    "place_of_birth",
    "address",
    "rt_rw",
    "kelurahan_desa",
    "kecamatan",
    "kabupaten_kota",
    "province",
    "occupation",
    "place_of_issue",
)
_ALLOWED: dict[str, tuple[str, ...]] = {
    "sex": SEXES,
    "blood_type": BLOOD_TYPES,
    "religion": RELIGIONS,
    "marital_status": MARITAL_STATUSES,
    "citizenship": CITIZENSHIPS,
}


def personal_violations(values: Mapping[str, object], *, today: dt.date | None = None) -> list[Violation]:
    """Every field rule over the printed fields in ``values`` (keys as in
    :class:`~ektp_card.lds.record.PersonalData`; ``valid_until`` is a date or ``None`` for life).
    A rule runs only when the values it needs are present and of the right type, so fields already
    reported as missing or malformed are not reported twice."""
    today = today or dt.date.today()
    found: list[Violation] = []

    def add(field: str, rule: str, message: str) -> None:
        found.append(Violation(field, f"{field}.{rule}", message))

    def text(name: str) -> str | None:
        value = values.get(name)
        return value if isinstance(value, str) else None

    def date(name: str) -> dt.date | None:
        value = values.get(name)
        return value if isinstance(value, dt.date) else None

    nik = text("nik")
    if nik is not None:
        found.extend(nik_violations(nik, sex=text("sex"), date_of_birth=date("date_of_birth")))
    for name in _TEXT_FIELDS:
        value = text(name)
        if value is None:
            continue
        if not value.strip():
            add(name, "required", "must not be empty")
            continue
        if not TEXT_CHARSET.fullmatch(value):
            add(name, "charset", "only capital letters, digits, spaces and . , ' ( ) / - are allowed")
        if value != value.strip() or "  " in value:
            add(name, "spacing", "leading, trailing or double spaces")
        limit = MAX_LENGTHS.get(name)
        if limit is not None and len(value) > limit:
            add(name, "length", f"{len(value)} characters, at most {limit} allowed")
    rt_rw = text("rt_rw")
    if rt_rw is not None and rt_rw.strip() and not RT_RW_FORMAT.fullmatch(rt_rw):
        add("rt_rw", "format", "RT/RW must be two 3-digit numbers like 003/012")
    for name, allowed in _ALLOWED.items():
        value = text(name)
        if value is not None and value not in allowed:
            add(name, "allowed", f"must be one of: {', '.join(allowed)}")

    born, issued = date("date_of_birth"), date("date_of_issue")
    if born is not None:
        if born > today:
            add("date_of_birth", "future", "lies in the future")
        if born < EARLIEST_BIRTH:
            add("date_of_birth", "range", f"before {EARLIEST_BIRTH.isoformat()}")
    if issued is not None:
        if issued > today:
            add("date_of_issue", "future", "lies in the future")
        if born is not None and issued < born:
            add("date_of_issue", "order", "before the date of birth")
        married = text("marital_status")
        if born is not None and issued >= born and married == UNMARRIED and _age(born, issued) < MINIMUM_AGE:
            add(
                "date_of_birth",
                "minimum_age",
                f"the holder was {_age(born, issued)} at issue; an unmarried holder must be {MINIMUM_AGE}",
            )
    if "valid_until" in values:
        until = values["valid_until"]
        citizenship = text("citizenship")
        if citizenship == CITIZEN and until is not None:
            add("valid_until", "citizen", f"a citizen's (WNI) card is valid for life ({LIFETIME})")
        if citizenship == FOREIGNER and until is None:
            add("valid_until", "foreigner", "a foreigner's (WNA) card needs the end date of the stay permit")
        if isinstance(until, dt.date):
            if issued is not None and until <= issued:
                add("valid_until", "order", "not after the date of issue")
            if until < today:
                add("valid_until", "expired", "already passed")
    return found


def _age(born: dt.date, on: dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
