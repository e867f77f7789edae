"""NIK and printed-field rules: every rule by name, and all violations reported at once."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from ektp_card.errors import RecordError
from ektp_card.lds.nik import PROVINCES, Nik, check_nik, nik_violations, personal_violations
from ektp_card.lds.record import PersonalData

TODAY = dt.date(2025, 6, 1)
# Kota Bandung (32 73), district 05, born 17 August 1990, serial 0001.
MAN = "3273051708900001"
WOMAN = "3273055708900001"

VALID = PersonalData(
    nik=MAN,
    name="BUDI SANTOSO",
    place_of_birth="BANDUNG",
    date_of_birth=dt.date(1990, 8, 17),
    sex="LAKI-LAKI",
    blood_type="O",
    address="JL. MERDEKA NO. 10",
    rt_rw="003/005",
    kelurahan_desa="SUKAJADI",
    kecamatan="SUKAMAJU",
    kabupaten_kota="KOTA BANDUNG",
    province="JAWA BARAT",
    religion="ISLAM",
    marital_status="KAWIN",
    occupation="KARYAWAN SWASTA",
    citizenship="WNI",
    valid_until=None,
    place_of_issue="BANDUNG",
    date_of_issue=dt.date(2015, 3, 2),
)


def rules(data: PersonalData) -> list[str]:
    return [v.rule for v in data.violations(today=TODAY)]


def test_valid_data_has_no_violation() -> None:
    assert rules(VALID) == []
    assert rules(dataclasses.replace(VALID, nik=WOMAN, sex="PEREMPUAN")) == []


def test_nik_parts() -> None:
    nik = Nik.parse(WOMAN)
    assert (nik.province, nik.regency, nik.district, nik.serial) == ("32", "73", "05", "0001")
    assert (nik.day, nik.birth_day, nik.month, nik.year, nik.female, nik.is_city) == (
        57,
        17,
        8,
        90,
        True,
        True,
    )
    assert not Nik.parse("3204051708900001").is_city  # Kabupaten Bandung


@pytest.mark.parametrize(
    ("nik", "sex", "born", "expected"),
    [
        ("327305170890001", None, None, ["nik.digits"]),  # 15 digits
        ("32730517089000011", None, None, ["nik.digits"]),  # 17 digits
        ("32730517089000A1", None, None, ["nik.digits"]),
        ("３２７３０５１７０８９００００１", None, None, ["nik.digits"]),  # full-width digits are not ASCII
        ("1073051708900001", None, None, ["nik.province"]),
        ("2073051708900001", None, None, ["nik.province"]),
        ("9773051708900001", None, None, ["nik.province"]),  # BPS numbers Papua Pegunungan 97; Kemendagri 95
        ("3200051708900001", None, None, ["nik.regency"]),
        ("3270051708900001", None, None, ["nik.regency"]),
        ("3273001708900001", None, None, ["nik.district"]),
        ("3273053208900001", None, None, ["nik.birth_date"]),  # day 32
        ("3273050008900001", None, None, ["nik.birth_date"]),  # day 0
        ("3273054008900001", None, None, ["nik.birth_date"]),  # day 40 = 0 + 40
        ("3273057208900001", None, None, ["nik.birth_date"]),  # day 72 = 32 + 40
        ("3273051713900001", None, None, ["nik.birth_date"]),  # month 13
        ("3273053104900001", None, None, ["nik.birth_date"]),  # 31 April
        ("3273055708900001", "LAKI-LAKI", None, ["nik.sex"]),
        ("3273051708900001", "PEREMPUAN", None, ["nik.sex"]),
        ("3273051708900001", None, dt.date(1990, 8, 18), ["nik.date_of_birth"]),
        ("3273051708900001", None, dt.date(1990, 9, 17), ["nik.date_of_birth"]),
        ("3273051708900001", None, dt.date(1991, 8, 17), ["nik.date_of_birth"]),
        ("3273051708900001", None, dt.date(1890, 8, 17), []),  # only YY is in the NIK
        ("3273051708900000", None, None, ["nik.serial"]),
        (
            "1000000000000000",
            None,
            None,
            ["nik.province", "nik.regency", "nik.district", "nik.birth_date", "nik.serial"],
        ),
    ],
)
def test_nik_rules(nik: str, sex: str | None, born: dt.date | None, expected: list[str]) -> None:
    assert [v.rule for v in nik_violations(nik, sex=sex, date_of_birth=born)] == expected
    assert all(v.field == "nik" for v in nik_violations(nik, sex=sex, date_of_birth=born))


def test_century_of_29_february_comes_from_the_date_of_birth() -> None:
    leap_day = "3273052902000001"  # 29 February of a year ending in 00
    assert nik_violations(leap_day, date_of_birth=dt.date(2000, 2, 29)) == []
    # 1900 was not a leap year: 29-02-00 is no date in the date of birth's century.
    assert [v.rule for v in nik_violations(leap_day, date_of_birth=dt.date(1900, 3, 1))] == ["nik.birth_date"]
    assert nik_violations(leap_day) == []  # without a date of birth, some century has the day


def test_every_province_code_is_accepted() -> None:
    assert len(PROVINCES) == 38
    for code in PROVINCES:
        assert nik_violations(code + "73051708900001") == []
    assert sorted(PROVINCES)[0] == "11" and sorted(PROVINCES)[-1] == "96"


@pytest.mark.parametrize("regency", ["01", "69", "71", "99"])
def test_regency_and_city_ranges(regency: str) -> None:
    assert nik_violations("32" + regency + "051708900001") == []


def test_check_nik_raises_with_every_rule() -> None:
    assert check_nik(MAN, sex="LAKI-LAKI", date_of_birth=dt.date(1990, 8, 17)) == Nik.parse(MAN)
    with pytest.raises(RecordError) as caught:
        check_nik("3200005708900000", sex="LAKI-LAKI")
    assert caught.value.rules == ("nik.regency", "nik.district", "nik.sex", "nik.serial")
    assert "\n" not in str(caught.value)
    with pytest.raises(RecordError, match=r"nik\.digits"):
        Nik.parse("12")


def change(**values: object) -> PersonalData:
    return dataclasses.replace(VALID, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (change(name=""), ["name.required"]),
        (change(name="   "), ["name.required"]),
        (change(name="Budi Santoso"), ["name.charset"]),
        (change(name="BUDI\tSANTOSO"), ["name.charset"]),
        (change(name="BUDI  SANTOSO"), ["name.spacing"]),
        (change(name=" BUDI"), ["name.spacing"]),
        (change(name="A" * 61), ["name.length"]),
        (change(name="A" * 60), []),
        (change(name="MOH. AL-FARISI D'SOUZA (ALM)"), []),
        (change(address="A" * 101), ["address.length"]),
        (change(occupation="PELAJAR/MAHASISWA"), []),
        (change(place_of_birth="bandung", kecamatan=""), ["place_of_birth.charset", "kecamatan.required"]),
        (change(rt_rw="3/5"), ["rt_rw.format"]),
        (change(rt_rw="003-005"), ["rt_rw.format"]),
        (change(sex="L"), ["sex.allowed"]),
        (change(blood_type="AB+"), []),
        (change(blood_type="-"), []),
        (change(blood_type="C"), ["blood_type.allowed"]),
        (change(religion="KATHOLIK"), ["religion.allowed"]),
        (change(religion="KEPERCAYAAN TERHADAP TUHAN YME"), []),
        (change(marital_status="MENIKAH"), ["marital_status.allowed"]),
        (change(citizenship="WNA"), ["valid_until.foreigner"]),
        (change(citizenship="ASING"), ["citizenship.allowed"]),
        (change(valid_until=dt.date(2030, 1, 1)), ["valid_until.citizen"]),
        (change(citizenship="WNA", valid_until=dt.date(2030, 1, 1)), []),
        (
            change(citizenship="WNA", valid_until=dt.date(2015, 3, 2)),
            ["valid_until.order", "valid_until.expired"],
        ),
        (change(citizenship="WNA", valid_until=dt.date(2025, 5, 31)), ["valid_until.expired"]),
        (change(date_of_issue=dt.date(2025, 6, 2)), ["date_of_issue.future"]),
        (change(date_of_issue=dt.date(1990, 8, 16)), ["date_of_issue.order"]),
        (
            change(nik="3273051708260001", date_of_birth=dt.date(2026, 8, 17)),
            ["date_of_birth.future", "date_of_issue.order"],
        ),
        (change(nik="3273051708890001", date_of_birth=dt.date(1889, 8, 17)), ["date_of_birth.range"]),
        # 16 at issue: unmarried is too young, married is allowed (UU 24/2013 article 63).
        (
            change(nik="3273051708980001", date_of_birth=dt.date(1998, 8, 17), marital_status="BELUM KAWIN"),
            ["date_of_birth.minimum_age"],
        ),
        (change(nik="3273051708980001", date_of_birth=dt.date(1998, 8, 17)), []),
        (change(nik="3273050203980001", date_of_birth=dt.date(1998, 3, 2), marital_status="BELUM KAWIN"), []),
        (change(sex="PEREMPUAN"), ["nik.sex"]),
        (change(date_of_birth=dt.date(1990, 8, 18)), ["nik.date_of_birth"]),
    ],
)
def test_field_rules(data: PersonalData, expected: list[str]) -> None:
    assert rules(data) == expected


def test_all_violations_at_once() -> None:
    bad = change(nik="0000000000000000", name="", sex="X", religion="", rt_rw="1", citizenship="WNA")
    found = rules(bad)
    assert found == [
        "nik.province", "nik.regency", "nik.district", "nik.birth_date", "nik.serial",
        "name.required", "rt_rw.format", "sex.allowed", "religion.allowed", "valid_until.foreigner",
    ]  # fmt: skip
    with pytest.raises(RecordError) as caught:
        raise RecordError(bad.violations(today=TODAY))
    text = str(caught.value)
    assert text.startswith("invalid record (10 problems): nik: ")
    assert "[sex.allowed]" in text


def test_rules_skip_fields_that_are_missing_or_malformed() -> None:
    values = dataclasses.asdict(VALID)
    for name in ("nik", "sex", "date_of_birth", "date_of_issue", "valid_until", "citizenship"):
        del values[name]
    values["name"] = 42  # already reported by the loader as name.type
    assert personal_violations(values, today=TODAY) == []
