"""MRZ information for BAC and PACE: check digits (ICAO Doc 9303-3 section 4.9) and TD1/TD2/TD3 parsing."""

from __future__ import annotations

import pytest

from ektp_card.crypto.mrz import MrzInfo, check_digit
from ektp_card.errors import EktpError, MrzError

# ICAO Doc 9303 specimens: the passport used by 9303-11 Appendix D, today's TD3 and TD1 specimens.
TD3_APPENDIX_D = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C<3UTO6908061F9406236ZE184226B<<<<<14"
TD3 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"
MRZ_D = MrzInfo("L898902C", "690806", "940623")
TD1 = "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"


def with_composite(upper: str, middle: str) -> str:
    """A TD1 middle line with its composite check digit computed (ICAO Doc 9303-5)."""
    digit = check_digit(upper[5:30] + middle[0:7] + middle[8:15] + middle[18:29])
    return middle[:29] + digit


def test_check_digits() -> None:
    assert check_digit("L898902C<") == "3"
    assert check_digit("690806") == "1"
    assert check_digit("940623") == "6"
    assert check_digit("520727") == "3"  # ICAO Doc 9303-3 example
    assert check_digit("AB2134<<<") == "5"
    with pytest.raises(MrzError):
        check_digit("ab12")


def test_appendix_d_mrz_information() -> None:
    assert MrzInfo("L898902C", "690806", "940623").mrz_information == "L898902C<369080619406236"
    assert MrzInfo("l898902c<<", " 690806", "940623").mrz_information == "L898902C<369080619406236"
    assert MrzInfo.from_mrz(TD3_APPENDIX_D).mrz_information == "L898902C<369080619406236"
    # Lines run together, lower case.
    assert MrzInfo.from_mrz(TD3_APPENDIX_D.replace("\n", "").lower()) == MRZ_D


def test_appendix_g_mrz_information() -> None:
    assert MrzInfo("T22000129", "640812", "101031").mrz_information == "T22000129364081251010318"


def test_td3_and_td1() -> None:
    assert MrzInfo.from_mrz(TD3) == MrzInfo("L898902C3", "740812", "120415")
    assert MrzInfo.from_mrz(TD1) == MrzInfo("D23145890", "740812", "120415")
    assert MrzInfo.from_mrz(TD1).mrz_information == "D23145890774081221204159"


def test_td1_long_document_number() -> None:
    # ICAO Doc 9303-5: '<' in the check digit position, the overflow and its check digit in the
    # optional data. The check digit covers all twelve characters.
    upper = "I<UTOD23145890<7349<<<<<<<<<<<"
    middle = with_composite(upper, "3407127M9507122UTO<<<<<<<<<<<0")
    info = MrzInfo.from_mrz("\n".join((upper, middle, "STEVENSON<<PETER<JOHN<<<<<<<<<")))
    assert info.document_number == "D23145890734"
    assert info.mrz_information == "D23145890734" + "9" + "340712" + "7" + "950712" + "2"


def test_td2() -> None:
    lower = "D231458907UTO7408122F1204159<<<<<<<"
    lower += check_digit(lower[0:10] + lower[13:20] + lower[21:35])
    upper = "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<"
    assert MrzInfo.from_mrz(upper + "\n" + lower) == MrzInfo("D23145890", "740812", "120415")


@pytest.mark.parametrize(
    ("mrz", "words"),
    [
        (TD3_APPENDIX_D.replace("L898902C<3", "L898902C<4"), "document number check digit"),
        (TD3_APPENDIX_D.replace("6908061", "6908062"), "date of birth check digit"),
        (TD3_APPENDIX_D.replace("9406236", "9406237"), "date of expiry check digit"),
        (TD3_APPENDIX_D.replace("ZE184226B", "ZE184226C"), "composite check digit"),
        (TD3_APPENDIX_D[:-1], "not a machine readable zone"),
        (TD3_APPENDIX_D.replace("ERIKSSON", "ERIKSSÖN"), "only digits"),
        ("", "not a machine readable zone"),
        (TD1.replace("D231458907", "D23145890<"), "document number overflow"),
        (TD3_APPENDIX_D.replace("L898902C<3", "L898902C<<"), "document number check digit"),
    ],
)
def test_bad_mrz(mrz: str, words: str) -> None:
    with pytest.raises(MrzError, match=words) as info:
        MrzInfo.from_mrz(mrz)
    assert isinstance(info.value, EktpError)
    assert "L898902C" not in str(info.value) and "690806" not in str(info.value)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (("", "690806", "940623"), "document number"),
        (("L89 8902", "690806", "940623"), "document number"),
        (("L898902C", "6908O6", "940623"), "date of birth"),
        (("L898902C", "690806", "94062"), "date of expiry"),
        (("L898902C", "690806", "9406<3"), "date of expiry"),
    ],
)
def test_bad_fields(fields: tuple[str, str, str], words: str) -> None:
    with pytest.raises(MrzError, match=words):
        MrzInfo(*fields)


def test_unknown_birth_day_allowed() -> None:
    assert MrzInfo("X1", "6908<<", "940623").mrz_information == "X1<<<<<<<" + check_digit("X1<<<<<<<") + (
        "6908<<" + check_digit("6908<<") + "9406236"
    )


def test_never_shown() -> None:
    info = MrzInfo("L898902C", "690806", "940623")
    assert repr(info) == str(info) == "MrzInfo(<redacted>)"
