"""Strict BER-TLV codec: exact bytes, multi-byte tags, 1-3 byte lengths, errors with offsets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ektp_card.apdu.tlv import Tlv, encode_length, parse_dict, parse_list, parse_one, tag_bytes, unpack
from ektp_card.errors import TlvError


@pytest.mark.parametrize(
    ("n", "wire"),
    [(0, "00"), (0x7F, "7F"), (0x80, "8180"), (0xFF, "81FF"), (0x100, "820100"), (0xFFFF, "82FFFF"),
     (0x10000, "83010000")],
)
def test_length_encoding(n: int, wire: str) -> None:
    assert encode_length(n).hex().upper() == wire


def test_known_objects() -> None:
    # ICAO 9303-10: DG1 wrapper 61 containing 5F1F (MRZ); EF.ATR/INFO 7F66 extended length info.
    dg1 = Tlv.of(0x61, Tlv(0x5F1F, b"P<"))
    assert dg1.encode().hex().upper() == "61055F1F02503C"
    assert dg1.constructed and not Tlv(0x5F1F).constructed
    assert dg1.children == [Tlv(0x5F1F, b"P<")]
    info = Tlv.of(0x7F66, Tlv(0x02, b"\x01\x00"), Tlv(0x02, b"\x01\x00"))
    assert info.encode().hex().upper() == "7F660802020100020201 00".replace(" ", "")
    assert Tlv.decode(bytes.fromhex("7F6608020201000202010000"[:-2])) == info


def test_three_byte_tag() -> None:
    t = Tlv.decode(bytes.fromhex("BF8101020000"))
    assert t.tag == 0xBF8101 and t.value == b"\x00\x00"
    assert tag_bytes(0xBF8101) == bytes.fromhex("BF8101")


def test_long_value() -> None:
    value = bytes(range(256)) * 300
    wire = Tlv(0x53, value).encode()
    assert wire[:5] == bytes.fromhex("5383012C00")
    assert Tlv.decode(wire).value == value


@pytest.mark.parametrize(
    ("wire", "offset", "message"),
    [
        ("", 0, "truncated tag"),
        ("5F", 0, "truncated multi-byte tag"),
        ("5F1F", 2, "truncated length"),
        ("5F1F05AABB", 3, "runs past the end"),
        ("5F1F80", 2, "indefinite"),
        ("5F1F84000000010A", 2, "too long"),
        ("5F1F820001AA", 2, "shortest form"),
        ("1F80010100", 1, "leading zero"),
        ("1F81818101", 0, "longer than 3 bytes"),
        ("82", 1, "truncated length"),
        ("8282", 1, "truncated length"),
    ],
)
def test_errors_carry_offset(wire: str, offset: int, message: str) -> None:
    with pytest.raises(TlvError, match=message) as info:
        Tlv.decode(bytes.fromhex(wire))
    assert info.value.offset == offset


def test_trailing_bytes() -> None:
    with pytest.raises(TlvError, match="2 trailing bytes") as info:
        Tlv.decode(bytes.fromhex("5301AA0000"))
    assert info.value.offset == 3


def test_non_strict_accepts_long_form() -> None:
    assert Tlv.decode(bytes.fromhex("5F1F820001AA"), strict=False).value == b"\xAA"


def test_parse_helpers() -> None:
    data = bytes.fromhex("800102" "8101FF" "5F2000")
    assert parse_list(data) == [Tlv(0x80, b"\x02"), Tlv(0x81, b"\xFF"), Tlv(0x5F20, b"")]
    assert parse_dict(data) == {0x80: b"\x02", 0x81: b"\xFF", 0x5F20: b""}
    with pytest.raises(TlvError, match="repeated tag 80") as info:
        parse_dict(bytes.fromhex("80010280010300"))
    assert info.value.offset == 3
    assert unpack(0x53, bytes.fromhex("5302AABB")) == b"\xAA\xBB"
    with pytest.raises(TlvError, match="expected tag 53"):
        unpack(0x53, bytes.fromhex("5402AABB"))
    assert parse_one(data, 3) == (Tlv(0x81, b"\xFF"), 6)


def test_primitive_has_no_children() -> None:
    with pytest.raises(TlvError):
        _ = Tlv(0x80, b"\x01").children


# Tags as they appear in the standards: 1 byte (low 5 bits not all set), 2 or 3 bytes.
one_byte_tags = st.integers(0, 0xFF).filter(lambda t: t & 0x1F != 0x1F)
two_byte_tags = st.builds(lambda a, b: (a << 8) | b, st.integers(0, 7).map(lambda c: (c << 5) | 0x1F),
                          st.integers(0x01, 0x7F))
three_byte_tags = st.builds(lambda a, b, c: (a << 16) | (b << 8) | c,
                            st.integers(0, 7).map(lambda c: (c << 5) | 0x1F),
                            st.integers(0x81, 0xFF), st.integers(0x00, 0x7F))
tags = one_byte_tags | two_byte_tags | three_byte_tags


@given(tags, st.binary(max_size=70000))
def test_roundtrip(tag: int, value: bytes) -> None:
    wire = Tlv(tag, value).encode()
    assert Tlv.decode(wire) == Tlv(tag, value)


@given(st.lists(st.tuples(tags, st.binary(max_size=300)), max_size=8))
def test_list_roundtrip(items: list[tuple[int, bytes]]) -> None:
    objs = [Tlv(t, v) for t, v in items]
    wire = b"".join(o.encode() for o in objs)
    assert parse_list(wire) == objs


@given(st.binary(max_size=200))
def test_garbage_raises_only_tlv_error(raw: bytes) -> None:
    try:
        objs = parse_list(raw)
    except TlvError as e:
        assert 0 <= e.offset <= len(raw)
    else:
        assert b"".join(o.encode() for o in objs) == raw
