"""ISO/IEC 19794-2 minutiae records, ISO/IEC 19794-5 face records and the CBEFF templates around them:
exact bytes, strict parsing with offsets, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ektp_card.apdu.tlv import Tlv
from ektp_card.errors import BiometricFormatError, LdsFormatError
from ektp_card.lds.biometrics import (
    BiometricHeader,
    BiometricTemplate,
    FaceImage,
    FaceImageType,
    FaceRecord,
    FeaturePoint,
    FingerPosition,
    FingerView,
    ImageDataType,
    ImpressionType,
    Minutia,
    MinutiaeRecord,
    MinutiaType,
    decode_biometric_group,
    encode_biometric_group,
    face_template,
    finger_template,
)

# A record built by hand: 256 x 360 pixels at 197 px/cm, equipment ID 0x012, right index finger,
# view 0, live-scan plain, quality 80, two minutiae, no extended data.
HAND_BUILT = MinutiaeRecord(
    256,
    360,
    (
        FingerView(
            FingerPosition.RIGHT_INDEX,
            (
                Minutia(MinutiaType.RIDGE_ENDING, 100, 200, 64, 80),  # 64 units = 90 degrees
                Minutia(MinutiaType.BIFURCATION, 5, 7, 255, 0),
            ),
            quality=80,
        ),
    ),
    equipment_id=0x012,
)
HAND_BUILT_HEX = (
    "464d5200"  # "FMR\0"
    "20323000"  # " 20\0"
    "0000002a"  # record length 42
    "0012"  # compliance 0, equipment ID 0x012
    "0100" "0168"  # 256 x 360
    "00c5" "00c5"  # 197 px/cm both ways
    "01" "00"  # one finger view, reserved
    "02" "00" "50" "02"  # right index, view 0 / live plain, quality 80, 2 minutiae
    "4064" "00c8" "40" "50"  # ending (01) x=100, y=200, angle 64, quality 80
    "8005" "0007" "ff" "00"  # bifurcation (10) x=5, y=7, angle 255, quality 0
    "0000"  # no extended data
)  # fmt: skip


def test_hand_built_record_exact_bytes() -> None:
    assert HAND_BUILT.encode().hex() == HAND_BUILT_HEX
    assert MinutiaeRecord.decode(bytes.fromhex(HAND_BUILT_HEX)) == HAND_BUILT
    assert HAND_BUILT.minutiae[0].degrees == 90.0


def test_extended_data_is_kept() -> None:
    view = FingerView(FingerPosition.LEFT_THUMB, (), extended_data=b"\x00\x01\x00\x05abc")
    record = MinutiaeRecord(100, 100, (view,))
    data = record.encode()
    assert data[-9:] == b"\x00\x07\x00\x01\x00\x05abc"
    assert MinutiaeRecord.decode(data) == record


def _with_length(data: bytes) -> bytes:
    return data[:8] + len(data).to_bytes(4, "big") + data[12:]


def _patch(offset: int, value: bytes, data: bytes = bytes.fromhex(HAND_BUILT_HEX)) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


GOOD = bytes.fromhex(HAND_BUILT_HEX)


@pytest.mark.parametrize(
    ("data", "offset", "text"),
    [
        (GOOD[:10], 10, "shorter than its 24-byte header"),
        (_patch(0, b"FIR\0"), 0, "format identifier"),
        (_patch(4, b" 30\0"), 4, "version"),
        (GOOD[:-1], 8, "record length field says 42 bytes but 41"),
        (GOOD + b"\0", 8, "record length field says 42 bytes but 43"),
        (_patch(23, b"\x01"), 23, "reserved header byte"),
        (_with_length(_patch(22, b"\x00")[:24]), 22, "no finger view"),
        (_patch(24, b"\x0b"), 24, "finger position 11"),
        (_patch(25, b"\x04"), 25, "impression type 4"),
        (_patch(26, b"\x65"), 26, "finger quality 101"),
        (_patch(27, b"\x03"), 27, "declares 3 minutiae"),
        (_patch(28, b"\xc0"), 28, "minutia type 11 is reserved"),
        (_patch(30, b"\x40"), 30, "reserved bits"),
        (_patch(28, b"\x41\x2c"), 28, "(300, 200) lies outside the 256x360 image"),
        (_patch(30, b"\x01\x68"), 28, "(100, 360) lies outside"),
        (_patch(33, b"\x65"), 33, "minutia quality 101"),
        (_patch(40, b"\x00\x05"), 40, "extended data length 5 runs past"),
        (_with_length(GOOD + b"\0"), 42, "1 bytes after the last finger view"),
        (_patch(22, b"\x02"), 42, "finger view 2 header truncated"),
    ],
)
def test_minutiae_parse_errors_name_the_offset(data: bytes, offset: int, text: str) -> None:
    with pytest.raises(BiometricFormatError) as caught:
        MinutiaeRecord.decode(data)
    assert caught.value.offset == offset
    assert text in str(caught.value)
    assert isinstance(caught.value, LdsFormatError) and isinstance(caught.value, ValueError)


def test_zero_image_size_means_not_given() -> None:
    record = MinutiaeRecord(
        0, 0, (FingerView(FingerPosition.UNKNOWN, (Minutia(MinutiaType.OTHER, 9000, 16383, 0),)),)
    )
    assert MinutiaeRecord.decode(record.encode()) == record


@pytest.mark.parametrize(
    "build",
    [
        lambda: Minutia(MinutiaType.OTHER, 1 << 14, 0, 0),
        lambda: Minutia(MinutiaType.OTHER, 0, 0, 256),
        lambda: Minutia(MinutiaType.OTHER, 0, 0, 0, 101),
        lambda: FingerView(FingerPosition.LEFT_INDEX, (), view_number=16),
        lambda: FingerView(FingerPosition.LEFT_INDEX, (Minutia(MinutiaType.OTHER, 0, 0, 0),) * 256),
        lambda: MinutiaeRecord(10, 10, ()),
        lambda: MinutiaeRecord(
            10, 10, (FingerView(FingerPosition.LEFT_INDEX, (Minutia(MinutiaType.OTHER, 10, 0, 0),)),)
        ),
        lambda: MinutiaeRecord(10, 10, (FingerView(FingerPosition.LEFT_INDEX, ()),), equipment_id=0x1000),
    ],
)
def test_values_out_of_range_are_refused_when_built(build: object) -> None:
    with pytest.raises(BiometricFormatError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.offset is None


def test_cbeff_subtypes() -> None:
    # ISO/IEC 7816-11 Table C.3: 01 right, 10 left; thumb 001 .. little 101 in bits 5-3.
    expected = {
        0: 0x00,
        1: 0x05,
        2: 0x09,
        3: 0x0D,
        4: 0x11,
        5: 0x15,
        6: 0x06,
        7: 0x0A,
        8: 0x0E,
        9: 0x12,
        10: 0x16,
    }
    assert {p.value: p.cbeff_subtype for p in FingerPosition} == expected


# --- hypothesis round trips ----------------------------------------------------------------------

SIZE = 500
minutiae = st.builds(
    Minutia,
    st.sampled_from(MinutiaType),
    st.integers(0, SIZE - 1),
    st.integers(0, SIZE - 1),
    st.integers(0, 255),
    st.integers(0, 100),
)
views = st.builds(
    FingerView,
    st.sampled_from(FingerPosition),
    st.lists(minutiae, max_size=40).map(tuple),
    st.integers(0, 15),
    st.sampled_from(ImpressionType),
    st.integers(0, 100),
    st.binary(max_size=20),
)
records = st.builds(
    MinutiaeRecord,
    st.just(SIZE),
    st.just(SIZE),
    st.lists(views, min_size=1, max_size=3).map(tuple),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 15),
    st.integers(0, 0xFFF),
)


@given(records)
@settings(max_examples=60, deadline=None)
def test_minutiae_round_trip(record: MinutiaeRecord) -> None:
    data = record.encode()
    assert len(data) == 24 + sum(v.encoded_length for v in record.views)
    assert MinutiaeRecord.decode(data) == record
    assert MinutiaeRecord.decode(data).encode() == data


@given(st.binary(max_size=80))
@settings(max_examples=150, deadline=None)
def test_minutiae_garbage_only_raises_the_typed_error(tail: bytes) -> None:
    data = _with_length(GOOD[:24] + tail) if len(tail) % 3 else GOOD[:12] + tail
    try:
        MinutiaeRecord.decode(data)
    except BiometricFormatError as e:
        assert e.offset is not None and 0 <= e.offset <= len(data)


# --- ISO/IEC 19794-5 ------------------------------------------------------------------------------

FACE = FaceImage(
    b"\xff\xd8JPEG\xff\xd9",
    3,
    4,
    colour_space=1,
    quality=7,
    pose_angle=(1, 2, 3),
    feature_points=(FeaturePoint(1, 0x12, 300, 400),),
)
FACE_HEX = (
    "46414300" "30313000"  # "FAC\0" "010\0"
    "0000003e" "0001"  # record length 62, one image
    "00000030" "0001"  # facial record data length 48, one feature point
    "00" "00" "00" "000000" "0000"  # gender, eye, hair, feature mask, expression
    "010203" "000000"  # pose angles, uncertainties
    "01" "12" "012c" "0190" "0000"  # feature point: type 1, code 1.2, (300, 400), reserved
    "01" "00" "0003" "0004" "01" "02" "0000" "0007"  # full frontal, JPEG, 3x4, RGB, digital camera, quality 7
    "ffd84a504547ffd9"
)  # fmt: skip


def test_face_record_exact_bytes() -> None:
    assert FaceRecord((FACE,)).encode().hex() == FACE_HEX
    assert FaceRecord.decode(bytes.fromhex(FACE_HEX)) == FaceRecord((FACE,))


FACE_BYTES = bytes.fromhex(FACE_HEX)


@pytest.mark.parametrize(
    ("data", "offset", "text"),
    [
        (FACE_BYTES[:13], 13, "shorter than its 14-byte header"),
        (b"FIR\0" + FACE_BYTES[4:], 0, "format identifier"),
        (FACE_BYTES[:4] + b"020\0" + FACE_BYTES[8:], 4, "version"),
        (FACE_BYTES + b"\0", 8, "record length field"),
        (FACE_BYTES[:12] + b"\0\0" + FACE_BYTES[14:], 12, "no image"),
        (FACE_BYTES[:14] + b"\0\0\0\x27" + FACE_BYTES[18:], 14, "shorter than its 1 feature points need"),
        (FACE_BYTES[:14] + b"\0\0\0\x31" + FACE_BYTES[18:], 14, "runs past the record"),
        (FACE_BYTES[:40] + b"\0\1" + FACE_BYTES[42:], 40, "reserved bytes of a feature point"),
        (FACE_BYTES[:42] + b"\x03" + FACE_BYTES[43:], 42, "face image type 3"),
        (FACE_BYTES[:43] + b"\x02" + FACE_BYTES[44:], 43, "image data type 2"),
    ],
)
def test_face_parse_errors_name_the_offset(data: bytes, offset: int, text: str) -> None:
    with pytest.raises(BiometricFormatError) as caught:
        FaceRecord.decode(data)
    assert caught.value.offset == offset
    assert text in str(caught.value)


faces = st.builds(
    FaceImage,
    st.binary(min_size=1, max_size=64),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.sampled_from(ImageDataType),
    st.sampled_from(FaceImageType),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 0xFFFFFF),
    st.integers(0, 0xFFFF),
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
    st.lists(
        st.builds(
            FeaturePoint,
            st.integers(0, 255),
            st.integers(0, 255),
            st.integers(0, 0xFFFF),
            st.integers(0, 0xFFFF),
        ),
        max_size=3,
    ).map(tuple),
)


@given(st.lists(faces, min_size=1, max_size=3))
@settings(max_examples=60, deadline=None)
def test_face_round_trip(images: list[FaceImage]) -> None:
    record = FaceRecord(tuple(images))
    data = record.encode()
    assert FaceRecord.decode(data) == record
    assert FaceRecord.decode(data).encode() == data


# --- CBEFF biometric information templates -------------------------------------------------------


def test_face_template_exact_bytes() -> None:
    data = encode_biometric_group(0x75, [face_template(b"FAC-RECORD")])
    expected = (
        "7527"  # DG2
        "7f6124"  # biometric information group template
        "020101"  # one template
        "7f601e"  # biometric information template
        "a10f" "80020101" "810102" "87020101" "88020008"  # header: version 1.1, face, SC 37, face image
        "5f2e0a" + b"FAC-RECORD".hex()
    )  # fmt: skip
    assert data.hex() == expected
    assert decode_biometric_group(0x75, data) == (face_template(b"FAC-RECORD"),)


def test_finger_template_header() -> None:
    template = finger_template(HAND_BUILT)
    assert template.header == BiometricHeader(0x08, 0x0101, 0x0001, subtype=0x09)
    assert template.header.encode().hex() == "a1128002010181010882010987020101880200" + "01"
    with_extended = MinutiaeRecord(10, 10, (FingerView(FingerPosition.LEFT_INDEX, (), extended_data=b"x"),))
    assert finger_template(with_extended).header.format_type == 0x0002
    assert finger_template(with_extended).header.subtype == 0x0A


def _tlv(tag: int, *parts: str) -> str:
    return Tlv(tag, bytes.fromhex("".join(parts))).encode().hex()


def _group(*parts: str) -> bytes:
    return bytes.fromhex(_tlv(0x63, _tlv(0x7F61, *parts)))


HEADER = _tlv(0xA1, "810108", "87020101", "88020001")
BLOCK = "5f2e01aa"


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (_group("020101", _tlv(0x7F60, HEADER, BLOCK)), None),
        (_group("020102", _tlv(0x7F60, HEADER, BLOCK)), "count says 2 templates but holds 1"),
        (_group("020101", _tlv(0x7F60, HEADER, "7f2e01aa")), "enciphered"),
        (_group("020101", _tlv(0x7F60, HEADER, BLOCK, "5301aa")), "data after the biometric data block"),
        (_group("020101", _tlv(0x7F60, BLOCK, HEADER)), "must start with A1"),
        (_group("020101", _tlv(0x7F60, _tlv(0xA1, "810108", "88020001"), BLOCK)), "lacks the format owner"),
        (_group("020101", _tlv(0x7F60, _tlv(0xA1, "87020101", "810108", "88020001"), BLOCK)), "out of order"),
        (
            _group("020101", _tlv(0x7F60, _tlv(0xA1, "810108", "840100", "87020101", "88020001"), BLOCK)),
            "unknown data object",
        ),
        (
            _group("020101", _tlv(0x7F60, _tlv(0xA1, "8105", "0808"), BLOCK)),
            "malformed biometric header template",
        ),
        (_group(_tlv(0x7F60, HEADER, BLOCK)), "one-byte count"),
        (_group("020100"), "no template"),
        (
            _group("020101", _tlv(0x7F60, HEADER, BLOCK), "5301aa"),
            "expected a biometric information template",
        ),
        (bytes.fromhex("7503020100"), "expected the biometric information group template"),
    ],
)
def test_template_errors(data: bytes, text: str | None) -> None:
    if text is None:
        (template,) = decode_biometric_group(0x63, data)
        assert template == BiometricTemplate(BiometricHeader(8, 0x0101, 1, icao_header_version=None), b"\xaa")
        assert encode_biometric_group(0x63, [template]) == data
        return
    outer = 0x75 if data[0] == 0x75 else 0x63
    with pytest.raises(BiometricFormatError, match=text) as caught:
        decode_biometric_group(outer, data)
    assert caught.value.offset is not None


def test_group_tag_and_trailing_data() -> None:
    data = encode_biometric_group(0x63, [finger_template(HAND_BUILT)])
    with pytest.raises(BiometricFormatError, match="tag is 63, expected 75"):
        decode_biometric_group(0x75, data)
    with pytest.raises(BiometricFormatError, match="1 bytes after the data group") as caught:
        decode_biometric_group(0x63, data + b"\0")
    assert caught.value.offset == len(data)
    with pytest.raises(BiometricFormatError, match="malformed data group"):
        decode_biometric_group(0x63, data[:-1])
