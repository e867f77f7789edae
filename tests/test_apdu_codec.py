"""Command/response APDU codec: exact bytes for every ISO/IEC 7816-3 case, rejection of illegal forms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.errors import ApduFormatError

# (apdu, wire bytes) - ISO/IEC 7816-3 section 12.1.3 cases, short and extended.
CASES = [
    (CommandApdu(0x00, 0x84, 0, 0), "00840000"),  # case 1
    (CommandApdu(0x00, 0x84, 0, 0, le=8), "0084000008"),  # case 2S
    (CommandApdu(0x00, 0xB0, 0, 0, le=256), "00B0000000"),  # case 2S, Ne 256 -> 00
    (CommandApdu(0x00, 0xB0, 0, 0, le=257), "00B00000000101"),  # case 2E
    (CommandApdu(0x00, 0xB0, 0, 0, le=65536), "00B00000000000"),  # case 2E, Ne 65536 -> 0000
    (CommandApdu(0x00, 0xA4, 2, 0x0C, bytes.fromhex("011E")), "00A4020C02011E"),  # case 3S
    (CommandApdu(0x00, 0xD6, 0, 0, bytes(256)), "00D60000000100" + "00" * 256),  # case 3E
    (CommandApdu(0x00, 0xA4, 4, 0, b"\xA0\x00", le=256), "00A4040002A00000"),  # case 4S
    (CommandApdu(0x00, 0xA4, 4, 0, b"\xA0\x00", le=1000), "00A404000000" + "02A00003E8"),  # case 4E
    (CommandApdu(0x0C, 0xB0, 0, 0, le=1, extended=True), "0CB00000000001"),  # forced extended
]


@pytest.mark.parametrize(("apdu", "wire"), CASES)
def test_encode_exact_bytes(apdu: CommandApdu, wire: str) -> None:
    assert apdu.encode().hex().upper() == wire


@pytest.mark.parametrize(("apdu", "wire"), CASES)
def test_decode_exact_bytes(apdu: CommandApdu, wire: str) -> None:
    decoded = CommandApdu.decode(bytes.fromhex(wire))
    assert decoded.encode().hex().upper() == wire
    assert (decoded.data, decoded.le) == (apdu.data, apdu.le)


@pytest.mark.parametrize(
    "wire",
    [
        "",
        "00A4",
        "00A404",
        "00A4040C0201",  # Lc 2, one data byte
        "00A4040C0201020304",  # Lc 2, two data bytes and two too many
        "00B000000000",  # B1 00 then a single byte
        "00D6000000000201",  # extended Lc 2, one byte
        "00D600000000020102030405",  # extended Lc 2, data plus three bytes
    ],
)
def test_decode_rejects_illegal(wire: str) -> None:
    with pytest.raises(ApduFormatError):
        CommandApdu.decode(bytes.fromhex(wire))


def test_extended_lc_zero_rejected() -> None:
    with pytest.raises(ApduFormatError, match="Lc of zero"):
        CommandApdu.decode(bytes.fromhex("00D600000000000000"))


@pytest.mark.parametrize(
    "kwargs",
    [{"cla": 256}, {"ins": -1}, {"le": 0}, {"le": 65537}, {"data": bytes(65536)}],
)
def test_constructor_rejects_out_of_range(kwargs: dict[str, object]) -> None:
    values: dict[str, object] = {"cla": 0, "ins": 0xB0} | kwargs
    with pytest.raises(ApduFormatError):
        CommandApdu(**values)  # type: ignore[arg-type]


def test_short_form_refused_when_extended_needed() -> None:
    with pytest.raises(ApduFormatError):
        CommandApdu(0, 0xD6, data=bytes(300)).encode(extended=False)


def test_case_numbers() -> None:
    assert [a.case for a, _ in CASES[:4]] == [1, 2, 2, 2]
    assert CommandApdu(0, 0xA4, data=b"\x01").case == 3
    assert CommandApdu(0, 0xA4, data=b"\x01", le=1).case == 4


def test_response_decode() -> None:
    r = ResponseApdu.decode(bytes.fromhex("01029000"))
    assert (r.data, r.sw, r.sw1, r.sw2, r.ok) == (b"\x01\x02", 0x9000, 0x90, 0x00, True)
    assert ResponseApdu.decode(bytes.fromhex("6A82")).meaning == "file or application not found"
    with pytest.raises(ApduFormatError):
        ResponseApdu.decode(b"\x90")


def test_sensitive_flag_is_not_part_of_equality_or_repr() -> None:
    a = CommandApdu(0, 0x20, 0, 0x80, b"123456", sensitive=True)
    assert a == CommandApdu(0, 0x20, 0, 0x80, b"123456")
    assert "sensitive" not in repr(a)


apdus = st.builds(
    CommandApdu,
    cla=st.integers(0, 255),
    ins=st.integers(0, 255),
    p1=st.integers(0, 255),
    p2=st.integers(0, 255),
    data=st.binary(max_size=600),
    le=st.none() | st.integers(1, 65536),
    extended=st.booleans(),
)


@given(apdus)
def test_roundtrip(apdu: CommandApdu) -> None:
    wire = apdu.encode()
    back = CommandApdu.decode(wire)
    assert (back.cla, back.ins, back.p1, back.p2, back.data, back.le) == (
        apdu.cla, apdu.ins, apdu.p1, apdu.p2, apdu.data, apdu.le,
    )
    assert back.encode() == wire
    # Short form is chosen whenever it suffices and was not forced.
    if apdu.case != 1:
        assert back.extended == (apdu.extended or apdu.needs_extended)


@given(st.binary(max_size=300))
def test_decode_never_crashes(raw: bytes) -> None:
    try:
        apdu = CommandApdu.decode(raw)
    except ApduFormatError:
        return
    assert apdu.encode() == raw


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_response_roundtrip(data: bytes, sw: int) -> None:
    r = ResponseApdu(data, sw)
    assert ResponseApdu.decode(r.encode()) == r
