"""DG11 and DG12 of ICAO passports (ICAO Doc 9303-10 sections 4.7.11, 4.7.12): decoded, shown, never a
crash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ektp_card.errors import LdsFormatError
from ektp_card.lds.emrtd import DG11_FIELDS, decode_dg11, decode_dg12, encode_dg11, encode_dg12

# Text a document prints: letters, marks, numbers, punctuation, symbols and spaces (str.isprintable).
TEXT = st.text(st.characters(categories=("L", "M", "N", "P", "S"), include_characters=" "), min_size=1,
               max_size=40)


def test_layout_of_dg11() -> None:
    # 6B { 5C tag list, then each element }: ICAO Doc 9303-10 section 4.7.11.
    data = encode_dg11(full_name="ERIKSSON<<ANNA<MARIA", place_of_birth="ZENITH")
    assert data.hex().upper() == (
        "6B26" "5C045F0E5F11" "5F0E14" + b"ERIKSSON<<ANNA<MARIA".hex().upper()
        + "5F1106" + b"ZENITH".hex().upper()
    )
    details = decode_dg11(data)
    assert details.get("full_name") == "ERIKSSON<<ANNA<MARIA" and details.get("place_of_birth") == "ZENITH"
    assert details.unknown == ()


@given(st.dictionaries(st.sampled_from(sorted(set(DG11_FIELDS.values()) - {"proof_of_citizenship"})), TEXT,
                       min_size=1, max_size=6))
def test_dg11_round_trip(values: dict[str, str]) -> None:
    assert dict(decode_dg11(encode_dg11(**values)).fields) == values


def test_dg12_and_unknown_elements() -> None:
    data = bytearray(encode_dg12(issuing_authority="UTOPIA", date_of_issue="20120416"))
    # Append an element with a tag the data group does not define: listed, not fatal.
    extra = bytes.fromhex("5F7F0141")
    data = bytearray([data[0], data[1] + len(extra)]) + data[2:] + extra
    details = decode_dg12(bytes(data))
    assert details.get("issuing_authority") == "UTOPIA" and details.unknown == (0x5F7F,)
    assert details.to_json()["unknown_tags"] == ["5F7F"]


@pytest.mark.parametrize("data", [
    b"", b"\x6b", b"\x6b\x00", b"\x6c\x03\x5c\x01\x5f", b"\x6b\x03\x5f\x0e\x00",
    bytes.fromhex("6B095C025F0E5F0E03FFFEFD"), bytes.fromhex("6B085C025F0E5F0E020A0B"),
])
def test_malformed_dg11_is_one_clear_error(data: bytes) -> None:
    with pytest.raises(LdsFormatError):
        decode_dg11(data)


@given(st.binary(max_size=80))
def test_any_bytes_decode_or_raise_the_format_error(data: bytes) -> None:
    for decode in (decode_dg11, decode_dg12):
        try:
            decode(data)
        except LdsFormatError:
            pass


def test_a_passport_report_shows_them(ektp_passport) -> None:  # type: ignore[no-untyped-def]
    from ektp_card.access import parse_mrz
    from ektp_card.verify.passport import verify_passport

    passport = ektp_passport()
    report = verify_passport(passport.card, parse_mrz(passport.mrz), passport.trust)
    assert report.genuine and [d.group for d in report.additional] == [11, 12]
    assert report.additional[0].get("place_of_birth") == "ZENITH"
    assert report.to_json()["additional"][1]["fields"]["date_of_issue"] == "20120416"
