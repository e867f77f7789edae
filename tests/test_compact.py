"""The ISO/IEC 19794-2 compact card format and the on-card comparison objects (ektp_card.lds.compact)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ektp_card.errors import BiometricFormatError, LdsFormatError
from ektp_card.lds.biometrics import FingerPosition, FingerView, Minutia, MinutiaeRecord, MinutiaType
from ektp_card.lds.compact import (
    ID_ON_CARD_COMPARISON,
    MAX_MINUTIAE,
    BiometricReference,
    CompactMinutia,
    compact_from_record,
    decode_capture,
    decode_minutiae,
    decode_reference_file,
    encode_capture,
    encode_minutiae,
    encode_reference_file,
    on_card_comparison_info,
    on_card_comparison_version,
    record_from_compact,
)
from ektp_card.lds.synthetic import ENROLLED_FINGERS, impression, make_finger
from ektp_card.pki.arc import EKTP_ARC
from ektp_card.verify.matcher import match

minutia = st.builds(CompactMinutia, st.sampled_from(list(MinutiaType)), st.integers(0, 255),
                    st.integers(0, 255), st.integers(0, 63))
minutiae = st.lists(minutia, min_size=1, max_size=MAX_MINUTIAE).map(tuple)
reference = st.builds(BiometricReference, st.integers(1, 255), st.sampled_from(list(FingerPosition)),
                      minutiae, st.integers(0, 100), st.integers(0, MAX_MINUTIAE), st.integers(1, 15))


@given(minutiae)
def test_minutiae_round_trip(value: tuple[CompactMinutia, ...]) -> None:
    data = encode_minutiae(value)
    assert len(data) == 3 * len(value)
    assert decode_minutiae(data) == value
    assert decode_capture(encode_capture(value)) == value


@given(st.lists(reference, min_size=1, max_size=3, unique_by=lambda r: r.qualifier))
def test_reference_file_round_trip(refs: list[BiometricReference]) -> None:
    data = encode_reference_file(refs)
    assert decode_reference_file(data) == tuple(refs)
    assert encode_reference_file(decode_reference_file(data)) == data


@given(st.binary(max_size=400))
def test_any_bytes_decode_or_raise_a_format_error(data: bytes) -> None:
    for parser in (decode_minutiae, decode_capture, decode_reference_file):
        try:
            parser(data)
        except BiometricFormatError as exc:
            assert "\n" not in str(exc)


@given(minutiae)
def test_compact_to_record_and_back_is_exact(value: tuple[CompactMinutia, ...]) -> None:
    back = compact_from_record(record_from_compact(value))
    assert sorted(back, key=lambda m: (m.y, m.x, m.angle, m.type)) == sorted(
        value, key=lambda m: (m.y, m.x, m.angle, m.type))


def test_the_encoding_is_three_bytes_a_minutia() -> None:
    m = CompactMinutia(MinutiaType.BIFURCATION, 0x12, 0x34, 0x3F)
    assert m.encode() == bytes((0x12, 0x34, 0b10 << 6 | 0x3F))
    assert encode_capture([m]) == bytes.fromhex("7F2E058103") + m.encode()


def test_conversion_from_a_record_scales_and_rounds() -> None:
    # 197 pixels/cm: 197 pixels are 10 mm = 100 units; angle 64/256 of a turn = 16 units.
    view = FingerView(FingerPosition.RIGHT_INDEX, (
        Minutia(MinutiaType.RIDGE_ENDING, 197, 394, 64),
        Minutia(MinutiaType.BIFURCATION, 10, 600, 0),  # 30.5 mm down: beyond the format, dropped
    ))
    record = MinutiaeRecord(800, 800, (view,))
    assert compact_from_record(record) == (CompactMinutia(MinutiaType.RIDGE_ENDING, 100, 200, 16),)


def test_strict_decoding() -> None:
    with pytest.raises(BiometricFormatError, match="multiple of 3"):
        decode_minutiae(b"\x01\x02")
    with pytest.raises(BiometricFormatError, match="type 3"):
        decode_minutiae(b"\x01\x02\xc0")
    with pytest.raises(BiometricFormatError, match="1 to 64"):
        decode_minutiae(b"")
    with pytest.raises(BiometricFormatError, match="1 to 64"):
        decode_minutiae(b"\x01\x02\x03" * 65)
    with pytest.raises(BiometricFormatError):
        decode_capture(bytes.fromhex("7F2E0582030102030000"))
    one = (CompactMinutia(MinutiaType.OTHER, 1, 2, 3),)
    ref = BiometricReference(1, FingerPosition.LEFT_INDEX, one, 18, 7)
    data = ref.encode()
    assert decode_reference_file(data) == (ref,)
    with pytest.raises(BiometricFormatError, match="share a qualifier"):
        decode_reference_file(data + data)
    with pytest.raises(BiometricFormatError):
        decode_reference_file(data + b"\x00")


def test_the_compact_form_still_matches_the_same_finger() -> None:
    rng = random.Random(11)  # noqa: S311 - synthetic test data
    finger = make_finger(rng, ENROLLED_FINGERS[0])
    enrolled, fresh = (impression(finger, random.Random(s)).record for s in (1, 2))  # noqa: S311
    other = impression(make_finger(random.Random(12), ENROLLED_FINGERS[0]), random.Random(3)).record  # noqa: S311
    a, b, c = (record_from_compact(compact_from_record(r)) for r in (enrolled, fresh, other))
    assert match(a, b).matched
    assert not match(a, c).matched


def test_the_security_info() -> None:
    assert ID_ON_CARD_COMPARISON.startswith(EKTP_ARC + ".")
    assert on_card_comparison_version(on_card_comparison_info()) == 1
    with pytest.raises(LdsFormatError):
        on_card_comparison_version(b"\x30\x03\x02\x01\x01")
