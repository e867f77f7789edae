"""The e-KTP card profile: its file table, and the DG1, DG2, DG3, DG7, EF.COM and EF.DIR codecs (exact
bytes, strict decoding, hypothesis round trips)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ektp_card.apdu.tlv import Tlv
from ektp_card.errors import BiometricFormatError, LdsFormatError
from ektp_card.lds.biometrics import (
    BiometricHeader,
    BiometricTemplate,
    FaceImage,
    FaceRecord,
    FingerPosition,
    FingerView,
    Minutia,
    MinutiaeRecord,
    MinutiaType,
    encode_biometric_group,
)
from ektp_card.lds.conditions import AccessCondition
from ektp_card.lds.ektp import (
    DATA_GROUP_TAGS,
    DG1_LAYOUT,
    EKTP_AID,
    FILES,
    Com,
    com_for,
    data_group_number,
    decode_dg1,
    decode_dg2,
    decode_dg3,
    decode_dg7,
    encode_dg1,
    encode_dg2,
    encode_dg3,
    encode_dg7,
    encode_ef_dir,
    face_image_from_jpeg,
    file_spec,
    record_data_groups,
)
from ektp_card.lds.record import PersonalData
from ektp_card.lds.synthetic import REFERENCE_DATE, face_photo, make_finger, synthetic_record

DOC = Path(__file__).resolve().parent.parent / "docs" / "card-profile.md"

PERSONAL = PersonalData(
    nik="3273051708900001",
    name="BUDI",
    place_of_birth="BDG",
    date_of_birth=dt.date(1990, 8, 17),
    sex="LAKI-LAKI",
    blood_type="O",
    address="JL. A",
    rt_rw="003/005",
    kelurahan_desa="K",
    kecamatan="C",
    kabupaten_kota="KOTA X",
    province="JAWA BARAT",
    religion="ISLAM",
    marital_status="KAWIN",
    occupation="GURU",
    citizenship="WNI",
    valid_until=None,
    place_of_issue="BDG",
    date_of_issue=dt.date(2015, 3, 2),
)


# --- the file table ----------------------------------------------------------------------------


def test_identifiers_are_unique_per_dedicated_file() -> None:
    for in_mf in (True, False):
        files = [f for f in FILES if f.in_mf == in_mf]
        assert len({f.fid for f in files}) == len(files)
        assert len({f.sfi for f in files}) == len(files)
    assert all(1 <= f.sfi <= 30 for f in FILES)


def test_icao_identifiers() -> None:
    expected = {
        "EF.CardAccess": (0x011C, 0x1C, True, "ALWAYS"),
        "EF.ATR/INFO": (0x2F01, 0x01, True, "ALWAYS"),
        "EF.CardSecurity": (0x011D, 0x1D, True, "PACE"),
        "EF.COM": (0x011E, 0x1E, False, "PACE"),
        "DG1": (0x0101, 0x01, False, "PACE"),
        "DG2": (0x0102, 0x02, False, "PACE"),
        "DG3": (0x0103, 0x03, False, "PACE+TA"),
        "DG7": (0x0107, 0x07, False, "PACE"),
        "DG14": (0x010E, 0x0E, False, "PACE"),
        "DG15": (0x010F, 0x0F, False, "PACE"),
        "EF.SOD": (0x011D, 0x1D, False, "PACE"),
    }
    for name, values in expected.items():
        spec = file_spec(name)
        assert (spec.fid, spec.sfi, spec.in_mf, str(spec.read)) == values
    with pytest.raises(KeyError):
        file_spec("DG4")


def test_data_groups_are_signed_files() -> None:
    numbered = {f.data_group: f for f in FILES if f.data_group is not None}
    assert set(numbered) == set(DATA_GROUP_TAGS) == {1, 2, 3, 7, 14, 15}
    for number, spec in numbered.items():
        assert spec.name == f"DG{number}" and spec.fid == 0x0100 + number and spec.sfi == number
        assert spec.tag == DATA_GROUP_TAGS[number]


def test_access_conditions_are_card_conditions() -> None:
    for spec in FILES:
        assert AccessCondition.parse(str(spec.read)) == spec.read
    assert not file_spec("DG3").read.satisfied_by({"PACE"})
    assert file_spec("DG3").read.satisfied_by({"PACE", "TA"})


def test_aid_is_a_national_proprietary_identifier() -> None:
    assert EKTP_AID[:1] == b"\xd3" and EKTP_AID.hex().startswith("d360")
    assert 5 <= len(EKTP_AID) <= 16


def test_ef_dir_exact_bytes() -> None:
    assert encode_ef_dir().hex() == "61134f0ad360000000454b5450015005" + b"e-KTP".hex()


def test_profile_document_lists_every_file() -> None:
    text = DOC.read_text()
    for spec in FILES:
        row = next(line for line in text.splitlines() if line.startswith(f"| {spec.name} |"))
        cells = [c.strip() for c in row.split("|")[1:-1]]
        where = "MF" if spec.in_mf else "DF01"
        assert cells[1:5] == [f"{spec.fid:04X}", f"{spec.sfi:02X}", where, str(spec.read)]
        assert cells[7] == str(spec.max_size)
    for tag, name in DG1_LAYOUT:
        assert f"| {tag:02X} | {name.replace('_', ' ') if name == 'layout_version' else name} |" in text
    assert "D3 60 00 00 00 45 4B 54 50 01" in text


# --- DG1 -----------------------------------------------------------------------------------------

DG1_HEX = (
    "618198"  # 152 bytes of value
    "800101"  # layout version 1
    "8110" + b"3273051708900001".hex() + "8204" + b"BUDI".hex() + "8303" + b"BDG".hex()
    + "8408" + b"19900817".hex() + "8509" + b"LAKI-LAKI".hex() + "8601" + b"O".hex()
    + "8705" + b"JL. A".hex() + "8807" + b"003/005".hex() + "8901" + b"K".hex() + "8a01" + b"C".hex()
    + "8b06" + b"KOTA X".hex() + "8c0a" + b"JAWA BARAT".hex() + "8d05" + b"ISLAM".hex()
    + "8e05" + b"KAWIN".hex() + "8f04" + b"GURU".hex() + "9003" + b"WNI".hex()
    + "910c" + b"SEUMUR HIDUP".hex() + "9203" + b"BDG".hex() + "9308" + b"20150302".hex()
)  # fmt: skip


def test_dg1_exact_bytes() -> None:
    assert encode_dg1(PERSONAL).hex() == DG1_HEX
    assert decode_dg1(bytes.fromhex(DG1_HEX)) == PERSONAL
    foreign = dataclasses.replace(
        PERSONAL, citizenship="WNA", valid_until=dt.date(2030, 1, 31), synthetic=True
    )
    data = encode_dg1(foreign)
    assert data.endswith(
        bytes.fromhex("910832303330303133319203")
        + b"BDG"
        + bytes.fromhex("930832303135303330329401")
        + b"\x01"
    )
    assert decode_dg1(data) == foreign


def _dg1(*objects: Tlv) -> bytes:
    return Tlv.of(0x61, *objects).encode()


DG1_OBJECTS = Tlv.decode(bytes.fromhex(DG1_HEX)).children


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"\x60" + bytes.fromhex(DG1_HEX)[1:], "starts with tag 60"),
        (bytes.fromhex(DG1_HEX) + b"\0", "malformed DG1"),
        (_dg1(*DG1_OBJECTS[:-1]), "lacks data objects 93"),
        (_dg1(*DG1_OBJECTS, Tlv(0x95, b"x")), "unknown data objects 95"),
        (_dg1(*DG1_OBJECTS[1:], DG1_OBJECTS[0]), "out of order"),
        (_dg1(*DG1_OBJECTS, DG1_OBJECTS[-1]), "repeated or out of order"),
        (_dg1(Tlv(0x80, b"\x02"), *DG1_OBJECTS[1:]), "layout version 02"),
        (_dg1(*DG1_OBJECTS[:4], Tlv(0x84, b"1990-817"), *DG1_OBJECTS[5:]), "not a date YYYYMMDD"),
        (_dg1(*DG1_OBJECTS[:4], Tlv(0x84, b"19900230"), *DG1_OBJECTS[5:]), "not a real date"),
        (_dg1(*DG1_OBJECTS[:2], Tlv(0x82, b"\xff"), *DG1_OBJECTS[3:]), "name is not UTF-8"),
        (_dg1(*DG1_OBJECTS[:17], Tlv(0x91, b"FOREVER"), *DG1_OBJECTS[18:]), "valid_until is not a date"),
        (_dg1(*DG1_OBJECTS, Tlv(0x94, b"\x00")), "synthetic marker"),
    ],
)
def test_dg1_decoding_is_strict(data: bytes, text: str) -> None:
    with pytest.raises(LdsFormatError, match=text):
        decode_dg1(data)


def test_dg1_keeps_invalid_values_for_the_verifier() -> None:
    # A NIK that disagrees with the sex decodes fine; validation (not decoding) reports it.
    odd = dataclasses.replace(PERSONAL, sex="PEREMPUAN")
    assert decode_dg1(encode_dg1(odd)) == odd
    assert [v.rule for v in odd.violations(today=REFERENCE_DATE)] == ["nik.sex"]


text = st.text(st.characters(codec="utf-8"), max_size=30)
dates = st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31))
personal = st.builds(
    PersonalData,
    nik=text, name=text, place_of_birth=text, date_of_birth=dates, sex=text, blood_type=text, address=text,
    rt_rw=text, kelurahan_desa=text, kecamatan=text, kabupaten_kota=text, province=text, religion=text,
    marital_status=text, occupation=text, citizenship=text, valid_until=st.none() | dates,
    place_of_issue=text, date_of_issue=dates, synthetic=st.booleans(),
)  # fmt: skip


@given(personal)
@settings(max_examples=80, deadline=None)
def test_dg1_round_trip(data: PersonalData) -> None:
    encoded = encode_dg1(data)
    assert decode_dg1(encoded) == data
    assert encode_dg1(decode_dg1(encoded)) == encoded


# --- DG2 -----------------------------------------------------------------------------------------

JPEG = face_photo(random.Random(5), (16, 24))


def test_dg2_from_a_jpeg() -> None:
    data = encode_dg2(JPEG)
    fac = FaceRecord((FaceImage(JPEG, 16, 24, colour_space=1),)).encode()
    prefix = Tlv(0xA1, bytes.fromhex("80020101" "810102" "87020101" "88020008")).encode()  # fmt: skip
    assert (
        data
        == Tlv.of(0x75, Tlv.of(0x7F61, Tlv(0x02, b"\x01"), Tlv.of(0x7F60, prefix, Tlv(0x5F2E, fac)))).encode()
    )
    (face,) = decode_dg2(data)
    assert face.image == JPEG and (face.width, face.height) == (16, 24)
    assert face_image_from_jpeg(JPEG) == face
    assert encode_dg2(face) == data == encode_dg2(FaceRecord((face,)))


def test_dg2_refuses_other_formats() -> None:
    header = BiometricHeader(0x02, 0x0101, 0x0007)
    with pytest.raises(BiometricFormatError, match="not an ISO/IEC 19794-5 face"):
        decode_dg2(encode_biometric_group(0x75, [BiometricTemplate(header, b"")]))
    finger = BiometricHeader(0x08, 0x0101, 0x0008)
    with pytest.raises(BiometricFormatError, match="not face"):
        decode_dg2(
            encode_biometric_group(
                0x75, [BiometricTemplate(finger, FaceRecord((face_image_from_jpeg(JPEG),)).encode())]
            )
        )
    with pytest.raises(BiometricFormatError, match="tag is 63"):
        decode_dg2(encode_dg3([make_finger(random.Random(1)).record()]))


@given(st.binary(min_size=1, max_size=200), st.integers(1, 5000), st.integers(1, 5000))
@settings(max_examples=40, deadline=None)
def test_dg2_round_trip(image: bytes, width: int, height: int) -> None:
    face = FaceImage(image, width, height)
    assert decode_dg2(encode_dg2(face)) == (face,)


# --- DG3 -----------------------------------------------------------------------------------------


def test_dg3_holds_two_templates_with_subtypes() -> None:
    right = make_finger(random.Random(1), FingerPosition.RIGHT_INDEX).record()
    left = make_finger(random.Random(2), FingerPosition.LEFT_INDEX).record()
    data = encode_dg3([right, left.encode()])
    assert data[0] == 0x63
    assert bytes.fromhex("7f61") in data[:6] and bytes.fromhex("020102") in data[:12]
    assert data.count(bytes.fromhex("8101088201")) == 2
    assert bytes.fromhex("820109") in data and bytes.fromhex("82010a") in data
    assert data.count(bytes.fromhex("8702010188020001")) == 2
    assert decode_dg3(data) == (right, left)


def test_dg3_of_finger_images_is_refused() -> None:
    images = BiometricTemplate(BiometricHeader(0x08, 0x0101, 0x0007), b"FIR\0")
    with pytest.raises(BiometricFormatError, match="not an ISO/IEC 19794-2 minutiae record"):
        decode_dg3(encode_biometric_group(0x63, [images]))
    face = BiometricTemplate(
        BiometricHeader(0x02, 0x0101, 0x0001), make_finger(random.Random(1)).record().encode()
    )
    with pytest.raises(BiometricFormatError, match="not finger"):
        decode_dg3(encode_biometric_group(0x63, [face]))


minutia = st.builds(Minutia, st.sampled_from(MinutiaType), st.integers(0, 255), st.integers(0, 359),
                    st.integers(0, 255), st.integers(0, 100))  # fmt: skip
template = st.builds(
    lambda position, points: MinutiaeRecord(256, 360, (FingerView(position, tuple(points)),)),
    st.sampled_from(FingerPosition),
    st.lists(minutia, max_size=30),
)


@given(st.lists(template, min_size=1, max_size=4))
@settings(max_examples=40, deadline=None)
def test_dg3_round_trip(records: list[MinutiaeRecord]) -> None:
    assert decode_dg3(encode_dg3(records)) == tuple(records)


# --- DG7 -----------------------------------------------------------------------------------------


def test_dg7_exact_bytes() -> None:
    assert encode_dg7(b"\xff\xd8\xff\xd9").hex() == "670a" "020101" "5f4304ffd8ffd9"  # fmt: skip
    assert decode_dg7(bytes.fromhex("670a0201015f4304ffd8ffd9")) == (b"\xff\xd8\xff\xd9",)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("67075f4304ffd8ffd9", "one-byte count"),
        ("670a0201025f4304ffd8ffd9", "count says 2 images but holds 1"),
        ("67090201015f4203ffd8ff", "other than displayed signatures"),
        ("6703020100", "count says 0"),
        ("660a0201015f4304ffd8ffd9", "starts with tag 66"),
    ],
)
def test_dg7_decoding_is_strict(data: str, text: str) -> None:
    with pytest.raises(LdsFormatError, match=text):
        decode_dg7(bytes.fromhex(data))


@given(st.binary(max_size=300))
@settings(max_examples=40, deadline=None)
def test_dg7_round_trip(image: bytes) -> None:
    assert decode_dg7(encode_dg7(image)) == (image,)


# --- EF.COM, a whole record ----------------------------------------------------------------------


def test_ef_com_exact_bytes() -> None:
    com = Com((0x61, 0x75, 0x63, 0x67, 0x6E, 0x6F))
    assert (
        com.encode().hex() == "60185f0104" + b"0108".hex() + "5f3606" + b"040000".hex() + "5c06617563676e6f"
    )
    assert Com.decode(com.encode()) == com
    with pytest.raises(LdsFormatError, match="4 and 6 digits"):
        Com.decode(Com((0x61,), "18", "040000").encode())
    with pytest.raises(LdsFormatError, match="in that order"):
        Com.decode(bytes.fromhex("6003") + bytes.fromhex("5c0161"))


def test_record_data_groups() -> None:
    record = synthetic_record(3)
    groups = record_data_groups(record)
    assert sorted(groups) == [1, 2, 3, 7]
    assert {n: data_group_number(d) for n, d in groups.items()} == {1: 1, 2: 2, 3: 3, 7: 7}
    assert decode_dg1(groups[1]) == record.personal
    assert decode_dg2(groups[2])[0].image == record.face
    assert tuple(r.encode() for r in decode_dg3(groups[3])) == record.fingerprints
    assert decode_dg7(groups[7]) == (record.signature,)
    assert com_for(groups).tags == (0x61, 0x75, 0x63, 0x67)
    for number, data in groups.items():
        spec = file_spec(f"DG{number}")
        assert len(data) <= spec.max_size
    with pytest.raises(LdsFormatError, match="not a data group of the e-KTP profile"):
        data_group_number(bytes.fromhex("6500"))
    with pytest.raises(LdsFormatError, match="not a data group"):
        data_group_number(b"")
