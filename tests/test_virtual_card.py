"""The virtual card OS driven through ``transceive`` bytes: exact responses and status words."""

from __future__ import annotations

from functools import reduce

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW
from ektp_card.errors import ApduError, CardRemovedError, SecurityStatusNotSatisfiedError
from ektp_card.virtual import (
    AccessCondition,
    Chaining,
    Command,
    ElementaryFile,
    LifeCycle,
    SecurityAttributes,
    VirtualCard,
    demo_card,
)
from ektp_card.virtual.demo import (
    DEMO_AID,
    LARGE_CONTENT,
    PUBLIC_CONTENT,
    SCRATCH_SIZE,
)

ALWAYS, NEVER = AccessCondition.ALWAYS, AccessCondition.NEVER
SELECT_APP = "00A4040C09D360000000454B5450"


def send(card: VirtualCard, apdu: str) -> tuple[bytes, int]:
    raw = card.transceive(bytes.fromhex(apdu.replace(" ", "")))
    assert len(raw) >= 2
    return raw[:-2], int.from_bytes(raw[-2:], "big")


def sw_of(card: VirtualCard, apdu: str) -> int:
    return send(card, apdu)[1]


def tlv_hex(tag: str, value: bytes) -> str:
    assert len(value) < 0x80
    return f"{tag}{len(value):02X}{value.hex()}"


def security_do(read: str, update: str, admin: str) -> str:
    inner = tlv_hex("80", read.encode()) + tlv_hex("81", update.encode()) + tlv_hex("82", admin.encode())
    return tlv_hex("86", bytes.fromhex(inner))


def ef_fcp(fid: str, size: int, extra: str = "") -> str:
    body = bytes.fromhex(f"820101 8302{fid} 8002{size:04X} {extra}".replace(" ", ""))
    return "62" + f"{len(body):02X}" + body.hex()


def create_cmd(fcp: str) -> str:
    return f"00E00000{len(bytes.fromhex(fcp)):02X}{fcp}"


def ef_at(card: VirtualCard, *path: int) -> ElementaryFile:
    ef = card.fs.get(path)
    assert isinstance(ef, ElementaryFile)
    return ef


@pytest.fixture
def demo() -> VirtualCard:
    return demo_card()


@pytest.fixture
def blank() -> VirtualCard:
    return VirtualCard.create()


# --- ATR, ATS, UID, power ----------------------------------------------------------------------


def test_atr_is_pcsc_contactless_form(demo: VirtualCard) -> None:
    historical = bytes.fromhex("8031D873F421E08105")
    assert demo.ats_historical == historical
    assert demo.atr == bytes.fromhex("3B8980018031D873F421E08105A3")
    # TCK: XOR of T0 .. last historical byte (PC/SC part 3 section 3.1.3.2.3)
    assert reduce(lambda a, b: a ^ b, demo.atr[1:-1], 0) == demo.atr[-1]
    assert demo.power_on() == demo.atr


def test_atr_reflects_extended_length_and_life_cycle() -> None:
    card = VirtualCard.create(extended_length=False)
    # Card capabilities third byte: chaining only; status indicator: LCS 03 (initialisation).
    assert card.ats_historical == bytes.fromhex("8031D873F421808103")
    assert card.atr[:4] == bytes.fromhex("3B898001")
    custom = VirtualCard.create(historical_bytes=b"\x80\x01\x02")
    # TCK = 83 ^ 80 ^ 01 ^ 80 ^ 01 ^ 02 = 81
    assert custom.atr == bytes.fromhex("3B83800180010281")


def test_uid_random_per_power_on() -> None:
    card = demo_card()
    uids = set()
    for _ in range(6):
        card.power_on()
        assert len(card.uid) == 4 and card.uid[0] == 0x08
        uids.add(card.uid)
    assert len(uids) > 1


def test_uid_fixed_when_configured() -> None:
    uid = bytes.fromhex("04A1B2C3D4E5F6")
    card = demo_card(uid=uid)
    assert card.uid == uid
    card.power_off()
    card.power_on()
    assert card.uid == uid
    with pytest.raises(ValueError, match="4, 7 or 10"):
        VirtualCard.create(uid=b"\x01\x02")


def test_power_on_clears_volatile_state(demo: VirtualCard) -> None:
    assert sw_of(demo, SELECT_APP) == SW.OK
    assert sw_of(demo, "00A4020C020101") == SW.OK
    demo.security.grant("PACE")
    send(demo, "0084000008")
    demo.power_on()
    assert demo.security.granted == set()
    assert demo.security.challenge is None
    assert demo.current_df is demo.fs.mf
    assert sw_of(demo, "00B0000001") == SW.COMMAND_NOT_ALLOWED


def test_powered_off_card_is_absent(demo: VirtualCard) -> None:
    demo.power_off()
    assert not demo.powered
    with pytest.raises(CardRemovedError):
        demo.transceive(bytes.fromhex("00A4000C023F00"))
    demo.power_on()
    assert sw_of(demo, "00A4000C023F00") == SW.OK


# --- SELECT --------------------------------------------------------------------------------------

PUBLIC_FCP = (
    "6229 8002 0028 820101 83020101 880108 8A0105 8616 8006414C57415953 81054E45564552 82054E45564552"
)


def test_select_ef_returns_fcp(demo: VirtualCard) -> None:
    assert sw_of(demo, SELECT_APP) == SW.OK
    data, sw = send(demo, "00A40204020101 00")
    assert sw == SW.OK
    assert data == bytes.fromhex(PUBLIC_FCP.replace(" ", ""))


def test_select_mf_fcp_fci_fmd_and_nothing(demo: VirtualCard) -> None:
    mf_objects = "820138 83023F00 8A0105 8616 8006414C57415953 81054E45564552 82054E45564552"
    body = bytes.fromhex(mf_objects.replace(" ", ""))
    assert send(demo, "00A4000400") == (b"\x62" + bytes((len(body),)) + body, SW.OK)
    assert send(demo, "00A40004023F0000") == (b"\x62" + bytes((len(body),)) + body, SW.OK)
    assert send(demo, "00A40000023F0000") == (b"\x6f" + bytes((len(body),)) + body, SW.OK)
    assert send(demo, "00A40008023F0000") == (bytes.fromhex("6400"), SW.OK)
    assert send(demo, "00A4000C023F00") == (b"", SW.OK)


def test_select_df_by_name_fcp_has_df_name(demo: VirtualCard) -> None:
    data, sw = send(demo, "00A4040409D360000000454B545000")
    assert sw == SW.OK
    assert data.startswith(bytes.fromhex("622D820138" "8302DF01" "8409") + DEMO_AID + bytes.fromhex("8A0105"))
    assert demo.current_df.name == DEMO_AID and demo.current_ef is None


def test_select_child_df_ef_and_parent(demo: VirtualCard) -> None:
    assert sw_of(demo, "00A4010C02DF01") == SW.OK
    assert demo.current_df.fid == 0xDF01
    assert sw_of(demo, "00A4020C020103") == SW.OK
    assert demo.current_ef is not None and demo.current_ef.fid == 0x0103
    assert sw_of(demo, "00A4020C02DF01") == SW.FILE_NOT_FOUND  # P1=02 wants an EF
    assert sw_of(demo, "00A4030C") == SW.OK
    assert demo.current_df is demo.fs.mf and demo.current_ef is None
    assert sw_of(demo, "00A4030C") == SW.FILE_NOT_FOUND  # the MF has no parent
    assert sw_of(demo, "00A4010C022F01") == SW.FILE_NOT_FOUND  # P1=01 wants a DF


def test_select_by_fid_searches_parent_and_siblings(demo: VirtualCard) -> None:
    assert sw_of(demo, SELECT_APP) == SW.OK
    # EF.ATR/INFO lives in the MF, the parent of the current DF.
    assert sw_of(demo, "00A4000C022F01") == SW.OK
    assert demo.current_df is demo.fs.mf
    assert sw_of(demo, "00A4000C02DF01") == SW.OK
    assert sw_of(demo, "00A4000C020102") == SW.OK
    assert sw_of(demo, "00A4000C02ABCD") == SW.FILE_NOT_FOUND


def test_select_by_path(demo: VirtualCard) -> None:
    data, sw = send(demo, "00A4080C04DF010103")
    assert sw == SW.OK and demo.current_ef is not None and demo.current_ef.fid == 0x0103
    assert send(demo, "00B0000003") == (LARGE_CONTENT[:3], SW.OK)
    assert sw_of(demo, "00A4080C022F01") == SW.OK
    assert sw_of(demo, "00A4010C02DF01") == SW.OK
    assert sw_of(demo, "00A4090C020101") == SW.OK  # from the current DF
    assert demo.current_ef is not None and demo.current_ef.fid == 0x0101
    assert sw_of(demo, "00A4080C040101DF01") == SW.FILE_NOT_FOUND
    assert sw_of(demo, "00A4080C03DF0101") == SW.LC_INCONSISTENT_WITH_P1P2


def test_select_partial_name_first_next_last_previous(blank: VirtualCard) -> None:
    fs = blank.fs
    a = fs.create_df(fs.mf, 0xDF01, name=DEMO_AID)
    b = fs.create_df(fs.mf, 0xDF02, name=DEMO_AID[:-1] + b"\x51")
    prefix = "D360000000454B54"
    assert sw_of(blank, f"00A4040C08{prefix}") == SW.OK and blank.current_df is a
    assert sw_of(blank, f"00A4040E08{prefix}") == SW.OK and blank.current_df is b  # next
    assert sw_of(blank, f"00A4040E08{prefix}") == SW.FILE_NOT_FOUND  # no further match
    assert blank.current_df is b  # a failed SELECT leaves the selection alone
    assert sw_of(blank, f"00A4040F08{prefix}") == SW.OK and blank.current_df is a  # previous
    assert sw_of(blank, f"00A4040D08{prefix}") == SW.OK and blank.current_df is b  # last
    assert sw_of(blank, "00A4040C05D360000001") == SW.FILE_NOT_FOUND


def test_select_wrong_parameters(demo: VirtualCard) -> None:
    assert sw_of(demo, "00A4050C023F00") == SW.INCORRECT_P1P2  # P1 05 undefined
    assert sw_of(demo, "00A4001C023F00") == SW.INCORRECT_P1P2  # P2 bit 5 set
    assert sw_of(demo, "00A4000E023F00") == SW.INCORRECT_P1P2  # occurrence only with P1=04
    assert sw_of(demo, "00A4000C033F0000") == SW.LC_INCONSISTENT_WITH_P1P2
    assert sw_of(demo, "00A4030C023F00") == SW.LC_INCONSISTENT_WITH_P1P2
    assert sw_of(demo, "00A4040C11" + "00" * 17) == SW.LC_INCONSISTENT_WITH_P1P2


def test_fcp_longer_than_le_is_chained_with_get_response(demo: VirtualCard) -> None:
    assert sw_of(demo, SELECT_APP) == SW.OK
    full = bytes.fromhex(PUBLIC_FCP.replace(" ", ""))
    assert send(demo, "00A4020402010110") == (full[:16], 0x6100 | (len(full) - 16))
    assert send(demo, "00C0000000") == (full[16:], SW.OK)
    assert sw_of(demo, "00C0000000") == SW.CONDITIONS_NOT_SATISFIED  # nothing left
    # Without Le the whole FCP waits for GET RESPONSE; any other command drops it.
    assert send(demo, "00A40204020101") == (b"", 0x6100 | len(full))
    assert sw_of(demo, "00A4020C020101") == SW.OK
    assert sw_of(demo, "00C0000000") == SW.CONDITIONS_NOT_SATISFIED
    # The protocol stack follows 61xx by itself.
    resp = ApduProtocol(demo).send(CommandApdu(0, 0xA4, 2, 4, bytes.fromhex("0101"), le=8))
    assert resp.data == full


def test_select_deactivated_and_terminated_warn(demo: VirtualCard) -> None:
    public = demo.fs.get([0xDF01, 0x0101])
    public.lcs = LifeCycle.OPERATIONAL_DEACTIVATED
    data, sw = send(demo, "00A4080404DF01010100")
    assert sw == SW.FILE_DEACTIVATED and bytes.fromhex("8A0104") in data
    public.lcs = LifeCycle.TERMINATED
    data, sw = send(demo, "00A4080404DF01010100")
    assert sw == 0x6285 and bytes.fromhex("8A010C") in data


# --- READ BINARY ---------------------------------------------------------------------------------


def test_read_binary_offsets(demo: VirtualCard) -> None:
    assert sw_of(demo, "00A4080C04DF010103") == SW.OK
    assert send(demo, "00B000000A") == (LARGE_CONTENT[:10], SW.OK)
    assert send(demo, "00B0010005") == (LARGE_CONTENT[256:261], SW.OK)
    assert send(demo, "00B005D6FF") == (LARGE_CONTENT[1494:], SW.END_OF_FILE)  # 6 of 255 bytes
    assert send(demo, "00B005DC01") == (b"", SW.END_OF_FILE)  # offset == size: nothing left
    assert send(demo, "00B005DD01") == (b"", SW.WRONG_P1P2)  # offset beyond the end


def test_read_binary_le_semantics(demo: VirtualCard) -> None:
    assert sw_of(demo, SELECT_APP) == SW.OK
    assert sw_of(demo, "00A4020C020101") == SW.OK
    n = len(PUBLIC_CONTENT)
    # Explicit Le longer than the rest: the rest and 6282.
    assert send(demo, f"00B00000{n + 1:02X}") == (PUBLIC_CONTENT, SW.END_OF_FILE)
    assert send(demo, f"00B00000{n:02X}") == (PUBLIC_CONTENT, SW.OK)
    # Le 00 asks for everything up to the end of the file: no warning.
    assert send(demo, "00B0000000") == (PUBLIC_CONTENT, SW.OK)
    assert send(demo, "00B0000A00") == (PUBLIC_CONTENT[10:], SW.OK)
    assert send(demo, f"00B000{n:02X}00") == (b"", SW.END_OF_FILE)
    # Case 1 and case 3 READ BINARY are malformed.
    assert sw_of(demo, "00B00000") == SW.WRONG_LENGTH
    assert sw_of(demo, "00B0000001AA") == SW.WRONG_LENGTH


def test_read_binary_by_sfi_selects_the_file(demo: VirtualCard) -> None:
    assert sw_of(demo, SELECT_APP) == SW.OK
    assert send(demo, "00B083050A") == (LARGE_CONTENT[5:15], SW.OK)
    assert demo.current_ef is not None and demo.current_ef.fid == 0x0103
    assert send(demo, "00B0000002") == (LARGE_CONTENT[:2], SW.OK)
    assert send(demo, "00B0810000") == (PUBLIC_CONTENT, SW.OK)
    assert sw_of(demo, "00B0890000") == SW.FILE_NOT_FOUND  # no SFI 9 here
    assert sw_of(demo, "00B0A10000") == SW.INCORRECT_P1P2  # P1 bits 7-6 must be 00
    assert sw_of(demo, "00B09F0000") == SW.INCORRECT_P1P2  # SFI 31 is not usable
    assert sw_of(demo, "00A4000C023F00") == SW.OK
    assert send(demo, "00B0810000")[0] == ef_at(demo, 0x2F01).data


def test_read_binary_needs_current_ef_and_access(demo: VirtualCard) -> None:
    assert sw_of(demo, "00B0000001") == SW.COMMAND_NOT_ALLOWED
    assert sw_of(demo, SELECT_APP) == SW.OK
    assert send(demo, "00B0820000") == (b"", SW.SECURITY_STATUS_NOT_SATISFIED)


def test_named_access_condition_granted_by_session() -> None:
    card = demo_card()
    app = card.fs.application(DEMO_AID)
    pace_only = SecurityAttributes(AccessCondition.require("PACE"))
    card.fs.create_ef(app, 0x0110, data=b"secret", sfi=16, access=pace_only)
    assert sw_of(card, SELECT_APP) == SW.OK
    assert sw_of(card, "00B0900000") == SW.SECURITY_STATUS_NOT_SATISFIED
    card.security.grant("PACE")
    assert send(card, "00B0900000") == (b"secret", SW.OK)
    card.power_on()
    assert sw_of(card, SELECT_APP) == SW.OK
    assert sw_of(card, "00B0900000") == SW.SECURITY_STATUS_NOT_SATISFIED


def test_multi_chunk_read_through_protocol_short() -> None:
    card = demo_card(extended_length=False)
    proto = ApduProtocol(card)
    proto.send(CommandApdu(0, 0xA4, 4, 0x0C, DEMO_AID))
    proto.send(CommandApdu(0, 0xA4, 2, 0x0C, bytes.fromhex("0103")))
    out = bytearray()
    while len(out) < len(LARGE_CONTENT):
        resp = proto.send(CommandApdu(0, 0xB0, len(out) >> 8, len(out) & 0xFF, le=256))
        assert 0 < len(resp.data) <= 256
        out += resp.data
    assert bytes(out) == LARGE_CONTENT


def test_one_extended_read_returns_the_whole_file() -> None:
    card = demo_card(extended_length=True)
    assert sw_of(card, SELECT_APP) == SW.OK
    assert send(card, "00B0830000 0000") == (LARGE_CONTENT, SW.OK)
    assert send(card, "00B0830000 0600") == (LARGE_CONTENT, SW.END_OF_FILE)  # explicit 1536


BIG = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(40000))


@pytest.fixture
def big_card() -> VirtualCard:
    card = VirtualCard.create(extended_length=True)
    card.fs.create_ef(card.fs.mf, 0x0A01, data=BIG, sfi=10)
    assert sw_of(card, "00A4020C020A01") == SW.OK
    return card


def test_read_binary_odd_above_32767(big_card: VirtualCard) -> None:
    # Short Le 00 (256): DO 53 with 81 FD length form leaves room for 253 bytes.
    assert send(big_card, "00B10000 04 54028000 00") == (bytes.fromhex("5381FD") + BIG[32768:33021], SW.OK)
    # Extended Le 0000: the rest of the file in one response.
    rest = BIG[32768:]
    assert send(big_card, "00B10000 000004 54028000 0000") == (bytes.fromhex("53821C40") + rest, SW.OK)
    # Explicit Le past the end: what is left and 6282.
    assert send(big_card, "00B10000 04 54029C36 20") == (bytes.fromhex("530A") + BIG[39990:], SW.END_OF_FILE)
    assert send(big_card, "00B10000 04 54029C41 10")[1] == SW.WRONG_P1P2
    # P1-P2 = SFI (0001-001E) and an EF identifier.
    assert send(big_card, "00B1000A 03 540100 05") == (bytes.fromhex("5303") + BIG[:3], SW.OK)
    assert send(big_card, "00B10A01 03 540101 05") == (bytes.fromhex("5303") + BIG[1:4], SW.OK)
    assert sw_of(big_card, "00B10000 03 550100 05") == SW.INCORRECT_DATA
    assert sw_of(big_card, "00B10000 02 5401 05") == SW.INCORRECT_DATA
    assert sw_of(big_card, "00B10000 03 540100") == SW.WRONG_LENGTH


def test_read_whole_40000_byte_file_in_chunks(big_card: VirtualCard) -> None:
    proto = ApduProtocol(big_card, extended=True)
    out = bytearray()
    while len(out) < len(BIG):
        offset = len(out).to_bytes(3, "big")
        resp = proto.send(
            CommandApdu(0, 0xB1, 0, 0, bytes.fromhex("5403") + offset, le=0x1000),
            allow=frozenset({SW.OK, SW.END_OF_FILE}),
        )
        assert resp.data[:1] == b"\x53"
        out += resp.data[4:] if resp.data[1] == 0x82 else resp.data[3:]
    assert bytes(out) == BIG


def test_response_buffer_limit_is_honoured() -> None:
    card = VirtualCard.create(max_response_data=1000)
    card.fs.create_ef(card.fs.mf, 0x0A01, data=BIG[:1500])
    assert sw_of(card, "00A4020C020A01") == SW.OK
    assert send(card, "00B00000 000000") == (BIG[:1000], SW.OK)
    assert send(card, "00B00000 0005DC") == (BIG[:1000], SW.OK)  # more to read: no 6282


# --- UPDATE BINARY -------------------------------------------------------------------------------


def test_update_binary_and_read_back(demo: VirtualCard) -> None:
    assert sw_of(demo, SELECT_APP) == SW.OK
    assert sw_of(demo, "00A4020C020104") == SW.OK
    assert sw_of(demo, "00D6000403AABBCC") == SW.OK
    assert send(demo, "00B0000008") == (bytes.fromhex("00000000AABBCC00"), SW.OK)
    assert sw_of(demo, "00D68400021122") == SW.OK  # by SFI 4
    assert send(demo, "00B0000008") == (bytes.fromhex("11220000AABBCC00"), SW.OK)


def test_update_binary_odd(demo: VirtualCard) -> None:
    assert sw_of(demo, SELECT_APP) == SW.OK
    assert sw_of(demo, "00D70004 07 540110 5302DEAD") == SW.OK  # P1-P2 = SFI 4
    assert send(demo, "00B0000012")[0][16:] == bytes.fromhex("DEAD")
    assert sw_of(demo, "00D70000 05 540110 5300") == SW.OK  # current EF, empty data
    assert sw_of(demo, "00D70000 03 540110") == SW.INCORRECT_DATA
    assert sw_of(demo, "00D70000 04 5302DEAD") == SW.INCORRECT_DATA


def test_update_binary_bounds(demo: VirtualCard) -> None:
    assert sw_of(demo, SELECT_APP) == SW.OK
    assert sw_of(demo, "00A4020C020104") == SW.OK
    before = send(demo, "00B0000000")[0]
    assert sw_of(demo, "00D6003E03AABBCC") == SW.NOT_ENOUGH_MEMORY  # 62 + 3 > 64
    assert send(demo, "00B0000000")[0] == before  # nothing written
    assert sw_of(demo, f"00D600{SCRATCH_SIZE:02X}01AA") == SW.NOT_ENOUGH_MEMORY
    assert sw_of(demo, f"00D600{SCRATCH_SIZE + 1:02X}01AA") == SW.WRONG_P1P2
    assert sw_of(demo, "00D60000") == SW.WRONG_LENGTH
    assert sw_of(demo, "00D6810001AA") == SW.SECURITY_STATUS_NOT_SATISFIED  # EF.PUBLIC: NEVER


def test_update_with_command_chaining_short_card() -> None:
    card = VirtualCard.create(extended_length=False)
    card.fs.create_ef(card.fs.mf, 0x0A02, size=600, sfi=11)
    assert sw_of(card, "00A4020C020A02") == SW.OK
    payload = bytes(range(256)) * 2
    ApduProtocol(card).send(CommandApdu(0, 0xD6, 0, 0x10, payload))
    assert ef_at(card, 0x0A02).data[0x10 : 0x10 + 512] == payload
    # By hand: chained parts answer 9000, the last one runs the command.
    assert sw_of(card, "10D6000002AABB") == SW.OK
    assert sw_of(card, "00D6000001CC") == SW.OK
    assert send(card, "00B0000003") == (bytes.fromhex("AABBCC"), SW.OK)
    # Interrupting a chain is refused and drops it.
    assert sw_of(card, "10D6000002EEEE") == SW.OK
    assert sw_of(card, "00B0000003") == SW.LAST_COMMAND_OF_CHAIN_EXPECTED
    assert send(card, "00B0000003") == (bytes.fromhex("AABBCC"), SW.OK)
    # A command that does not chain.
    assert sw_of(card, "10B0000003") == SW.CHAINING_NOT_SUPPORTED


# --- extended length -----------------------------------------------------------------------------


def test_extended_length_off() -> None:
    card = demo_card(extended_length=False)
    assert sw_of(card, SELECT_APP) == SW.OK
    assert sw_of(card, "00B0830000 0010") == SW.WRONG_LENGTH
    assert sw_of(card, "00D6840000 0001 AA") == SW.WRONG_LENGTH
    assert send(card, "00B0830004") == (LARGE_CONTENT[:4], SW.OK)
    assert send(card, "00A4000C022F01") == (b"", SW.OK)
    assert send(card, "00B0000000") == (bytes.fromhex("4301D84703F42180"), SW.OK)


def test_extended_length_on_limits() -> None:
    card = VirtualCard.create(max_command_data=300, max_response_data=1000)
    card.fs.create_ef(card.fs.mf, 0x0A03, size=400)
    assert sw_of(card, "00A4020C020A03") == SW.OK
    assert sw_of(card, "00D60000 00012C" + "AB" * 300) == SW.OK
    assert sw_of(card, "00D60000 00012D" + "AB" * 301) == SW.WRONG_LENGTH
    # 300 + 9 = 0x135 command bytes, 1000 + 2 = 0x3EA response bytes (ISO/IEC 7816-4 12.7.1).
    assert send(card, "00A4000C022F01") == (b"", SW.OK)
    info = send(card, "00B0000000")[0]
    assert info == bytes.fromhex("4301D84703F421E0 7F6608 02020135 020203EA".replace(" ", ""))


def test_ef_atr_info_default_extended(demo: VirtualCard) -> None:
    assert send(demo, "00B0810000") == (
        bytes.fromhex("4301D8 4703F421E0 7F660A 020301000802030100 02".replace(" ", "")),
        SW.OK,
    )


# --- CREATE FILE ---------------------------------------------------------------------------------


def test_create_ef_then_write_and_read(blank: VirtualCard) -> None:
    assert sw_of(blank, create_cmd(ef_fcp("0105", 16, "880128"))) == SW.OK
    ef = blank.current_ef
    assert ef is not None and (ef.fid, ef.size, ef.sfi, ef.lcs) == (0x0105, 16, 5, LifeCycle.CREATION)
    # Security attributes inherited from the blank card's MF.
    assert ef.access == SecurityAttributes(ALWAYS, ALWAYS, ALWAYS)
    data, sw = send(blank, "00A4020402010500")
    assert sw == SW.OK
    fcp = "80020010820101830201058801288A0101" + security_do("ALWAYS", "ALWAYS", "ALWAYS")
    assert data == bytes.fromhex(f"62{len(fcp) // 2:02X}{fcp}")
    assert sw_of(blank, "00D6000003010203") == SW.OK
    assert send(blank, "00B0850004") == (bytes.fromhex("01020300"), SW.OK)


def test_create_file_duplicates(blank: VirtualCard) -> None:
    assert sw_of(blank, create_cmd(ef_fcp("0105", 4, "880128"))) == SW.OK
    assert sw_of(blank, create_cmd(ef_fcp("0105", 4, "880130"))) == SW.FILE_EXISTS  # same FID
    assert sw_of(blank, create_cmd(ef_fcp("0205", 4, "880128"))) == SW.FILE_EXISTS  # same SFI
    # No DO 88: the SFI is bits 5-1 of the FID (0205 -> 5, taken; 0101 -> 1, EF.ATR/INFO's).
    assert sw_of(blank, create_cmd(ef_fcp("0205", 4))) == SW.FILE_EXISTS
    assert sw_of(blank, create_cmd(ef_fcp("0101", 4))) == SW.FILE_EXISTS
    assert sw_of(blank, create_cmd(ef_fcp("0106", 4))) == SW.OK
    assert blank.current_ef is not None and blank.current_ef.sfi == 6
    assert sw_of(blank, create_cmd(ef_fcp("0201", 4, "8800"))) == SW.OK  # empty 88: no SFI
    assert blank.current_ef is not None and blank.current_ef.sfi is None
    assert sw_of(blank, create_cmd(ef_fcp("2F01", 4, "8800"))) == SW.FILE_EXISTS  # EF.ATR/INFO


def test_create_df_with_name_and_files_inside(blank: VirtualCard) -> None:
    fcp = "62 15 820138 8302DF01 8409D360000000454B5450 8A0103".replace(" ", "")
    assert sw_of(blank, create_cmd(fcp)) == SW.OK
    assert blank.current_df.fid == 0xDF01 and blank.current_df.lcs is LifeCycle.INITIALISATION
    assert sw_of(blank, create_cmd(ef_fcp("0101", 8))) == SW.OK
    assert blank.current_ef is not None and blank.current_ef.parent is blank.current_df
    assert sw_of(blank, "00A4000C023F00") == SW.OK
    assert sw_of(blank, create_cmd(fcp.replace("8302DF01", "8302DF02"))) == SW.FILE_EXISTS  # same name
    assert sw_of(blank, SELECT_APP) == SW.OK and blank.current_df.fid == 0xDF01


def test_create_file_with_security_attributes(blank: VirtualCard) -> None:
    fcp = ef_fcp("0105", 4, security_do("PACE+TA|PERSO", "NEVER", "NEVER"))
    assert sw_of(blank, create_cmd(fcp)) == SW.OK
    ef = blank.current_ef
    assert ef is not None
    assert str(ef.access.read) == "PACE+TA|PERSO"
    assert sw_of(blank, "00B0000004") == SW.SECURITY_STATUS_NOT_SATISFIED
    blank.security.grant("PERSO")
    assert send(blank, "00B0000004") == (bytes(4), SW.OK)


@pytest.mark.parametrize(
    "fcp",
    [
        "FFFF",  # not TLV
        "6F03820101",  # wrong template tag
        "6207 820101 80020010",  # no FID
        "6208 8302 0101 80020010",  # no descriptor
        "620B 820102 83020101 80020010",  # record EF
        "6207 820101 83020101",  # EF without size
        "620C 820101 83020101 80020010 8801",  # truncated
        "620E 820101 83020101 80020010 880109",  # SFI bits 3-1 not zero
        "620E 820101 83020101 80020010 8A0110",  # proprietary LCS
        "620E 820101 83020101 80020010 8A0105",  # born operational
        "620F 820101 83020101 80020010 8C0100",  # compact security attributes
        "620D 820138 8302DF01 880108",  # DF with SFI
        "6212 820101 83020101 80020010 8606 8001 41 8101 41",  # bad access condition
    ],
)
def test_create_file_malformed_fcp(blank: VirtualCard, fcp: str) -> None:
    fcp = fcp.replace(" ", "")
    assert sw_of(blank, create_cmd(fcp)) == SW.INCORRECT_DATA


def test_create_file_refusals(blank: VirtualCard, demo: VirtualCard) -> None:
    assert sw_of(blank, "00E0000100") == SW.INCORRECT_P1P2  # wrong P1-P2 (short Le, no data)
    assert sw_of(blank, "00E00000") == SW.WRONG_LENGTH
    assert sw_of(blank, create_cmd(ef_fcp("3F00", 4))) == SW.INCORRECT_DATA  # reserved FID
    assert sw_of(demo, create_cmd(ef_fcp("0109", 4))) == SW.SECURITY_STATUS_NOT_SATISFIED
    small = VirtualCard.create(capacity=2000)
    assert sw_of(small, create_cmd(ef_fcp("0101", 4000))) == SW.NOT_ENOUGH_MEMORY


# --- life cycle ----------------------------------------------------------------------------------


def lcs_of(card: VirtualCard, path: str) -> int:
    data, sw = send(card, f"00A40804{len(path) // 2:02X}{path}00")
    assert sw in (SW.OK, SW.FILE_DEACTIVATED, 0x6285)
    i = data.index(b"\x8a\x01")
    return data[i + 2]


def test_file_life_cycle(blank: VirtualCard) -> None:
    assert sw_of(blank, create_cmd(ef_fcp("0101", 4, "880140"))) == SW.OK
    assert lcs_of(blank, "0101") == 0x01
    assert sw_of(blank, "00040000") == SW.CONDITIONS_NOT_SATISFIED  # not operational yet
    assert sw_of(blank, "00440000") == SW.OK  # ACTIVATE the current EF
    assert lcs_of(blank, "0101") == 0x05
    assert sw_of(blank, "0004000002 0101") == SW.OK  # DEACTIVATE by FID
    assert send(blank, "00A4020C020101") == (b"", SW.FILE_DEACTIVATED)
    assert sw_of(blank, "00B0000001") == SW.CONDITIONS_NOT_SATISFIED
    assert sw_of(blank, "00D6000001AA") == SW.CONDITIONS_NOT_SATISFIED
    assert sw_of(blank, "00B0880001") == SW.CONDITIONS_NOT_SATISFIED  # by SFI 8
    assert sw_of(blank, "0044000002 0101") == SW.OK
    assert send(blank, "00B0880001") == (b"\x00", SW.OK)
    assert sw_of(blank, "00E6000002 0101") == SW.INCOMPATIBLE_FILE_STRUCTURE  # not a DF
    assert sw_of(blank, "00E80000") == SW.OK  # TERMINATE EF: the current EF
    assert send(blank, "00A4020C020101") == (b"", 0x6285)
    assert sw_of(blank, "00B0000001") == SW.CONDITIONS_NOT_SATISFIED
    assert sw_of(blank, "00440000") == SW.CONDITIONS_NOT_SATISFIED  # no way back
    assert sw_of(blank, "00440001") == SW.INCORRECT_P1P2
    assert sw_of(blank, "00440100") == SW.LC_INCONSISTENT_WITH_P1P2  # P1 01 needs a FID


def test_deactivated_df_blocks_its_files() -> None:
    card = demo_card()
    card.fs.application(DEMO_AID).lcs = LifeCycle.OPERATIONAL_DEACTIVATED
    assert send(card, SELECT_APP) == (b"", SW.FILE_DEACTIVATED)
    assert sw_of(card, "00A4020C020101") == SW.OK
    assert sw_of(card, "00B0000001") == SW.CONDITIONS_NOT_SATISFIED


def test_card_life_cycle(blank: VirtualCard) -> None:
    assert blank.ats_historical[-2:] == bytes.fromhex("8103")  # initialisation
    assert sw_of(blank, "0044000002 3F00") == SW.OK  # activating the MF makes the card operational
    assert blank.atr[-3:-1] == bytes.fromhex("8105")
    assert sw_of(blank, "00FE0000") == SW.OK  # TERMINATE CARD USAGE
    assert blank.life_cycle is LifeCycle.TERMINATED
    for command in ("00A4000C023F00", "0084000008", "00FE0000", "00440000"):
        assert sw_of(blank, command) == SW.CONDITIONS_NOT_SATISFIED
    blank.power_on()
    assert sw_of(blank, "00A4000C023F00") == SW.CONDITIONS_NOT_SATISFIED


def test_life_cycle_commands_need_admin_condition(demo: VirtualCard) -> None:
    assert sw_of(demo, "00A4080C04DF010101") == SW.OK
    for command in ("00440000", "00040000", "00E80000", "00E6000002DF01", "00FE0000"):
        assert sw_of(demo, command) == SW.SECURITY_STATUS_NOT_SATISFIED
    assert demo.life_cycle is LifeCycle.OPERATIONAL_ACTIVATED


def test_lcs_byte_decoding() -> None:
    assert LifeCycle.from_byte(0x07) is LifeCycle.OPERATIONAL_ACTIVATED
    assert LifeCycle.from_byte(0x06) is LifeCycle.OPERATIONAL_DEACTIVATED
    assert LifeCycle.from_byte(0x0F) is LifeCycle.TERMINATED
    assert LifeCycle.from_byte(0x02) is None
    assert LifeCycle.from_byte(0x10) is None


# --- GET CHALLENGE -------------------------------------------------------------------------------


def test_get_challenge(demo: VirtualCard) -> None:
    first, sw = send(demo, "0084000008")
    assert sw == SW.OK and len(first) == 8
    second, sw = send(demo, "0084000008")
    assert sw == SW.OK and len(second) == 8 and second != first
    assert demo.security.challenge == second
    assert demo.security.take_challenge() == second and demo.security.challenge is None
    assert len(send(demo, "0084000000")[0]) == 256
    assert len(send(demo, "00840000 000400")[0]) == 256  # bounded
    assert sw_of(demo, "00840000") == SW.WRONG_LENGTH
    assert sw_of(demo, "0084010008") == SW.INCORRECT_P1P2


# --- class and instruction bytes, malformed APDUs -------------------------------------------------


@pytest.mark.parametrize(
    ("command", "sw"),
    [
        ("00700000", SW.INS_NOT_SUPPORTED),
        ("00CA010100", SW.INS_NOT_SUPPORTED),
        ("80A4000C023F00", SW.INS_NOT_SUPPORTED),  # proprietary class, no proprietary commands
        ("20A4000C023F00", SW.CLA_NOT_SUPPORTED),
        ("A0A4000C023F00", SW.CLA_NOT_SUPPORTED),
        ("FFA4000C023F00", SW.CLA_NOT_SUPPORTED),
        ("81A4000C023F00", SW.CLA_NOT_SUPPORTED),
        ("01A4000C023F00", SW.LOGICAL_CHANNEL_NOT_SUPPORTED),
        ("40A4000C023F00", SW.LOGICAL_CHANNEL_NOT_SUPPORTED),
        ("0CA4000C023F00", SW.SM_NOT_SUPPORTED),
        ("1CD6000001AA", SW.SM_NOT_SUPPORTED),
        ("", SW.WRONG_LENGTH),
        ("00A400", SW.WRONG_LENGTH),
        ("00A4000C053F00", SW.WRONG_LENGTH),
        ("00A4000C00000200", SW.WRONG_LENGTH),
        ("00A4000C023F000000", SW.WRONG_LENGTH),
    ],
)
def test_refused_commands(demo: VirtualCard, command: str, sw: int) -> None:
    assert send(demo, command) == (b"", sw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_always_get_a_status_word(raw: bytes) -> None:
    card = demo_card()
    resp = card.transceive(raw)
    assert len(resp) >= 2
    assert resp[-2:] != bytes.fromhex("6F00")


_INS = [0xA4, 0xB0, 0xB1, 0xD6, 0xD7, 0xE0, 0x44, 0x04, 0xE6, 0xE8, 0x84, 0xC0, 0xFE, 0x70]
_commands = st.builds(
    lambda cla, ins, p1, p2, data, le, ext: CommandApdu(cla, ins, p1, p2, data, le, extended=ext).encode(),
    st.sampled_from([0x00, 0x10, 0x0C, 0x80]),
    st.sampled_from(_INS),
    st.one_of(st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x04, 0x08, 0x09, 0x81, 0x84]), st.integers(0, 255)),
    st.one_of(st.sampled_from([0x00, 0x04, 0x0C, 0x02]), st.integers(0, 255)),
    st.one_of(
        st.sampled_from([b"", b"\x3f\x00", b"\xdf\x01", b"\x01\x01", bytes.fromhex("5401FF"), DEMO_AID[:5]]),
        st.binary(max_size=40),
        st.builds(lambda fid, size: bytes.fromhex(ef_fcp(fid, size)), st.sampled_from(["0101", "0A0A"]),
                  st.integers(0, 0xFFFF)),
    ),
    st.one_of(st.none(), st.integers(1, 300), st.just(65536)),
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_commands, min_size=1, max_size=12), st.booleans())
def test_random_command_sequences_never_hit_an_internal_error(commands: list[bytes], blank: bool) -> None:
    card = VirtualCard.create(capacity=64 * 1024) if blank else demo_card(extended_length=False)
    for raw in commands:
        resp = card.transceive(raw)
        assert len(resp) >= 2
        assert resp[-2:] != bytes.fromhex("6F00"), raw.hex()


# --- extension points ----------------------------------------------------------------------------


def test_unexpected_exception_becomes_6f00(demo: VirtualCard, caplog: pytest.LogCaptureFixture) -> None:
    def broken(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
        raise RuntimeError("bug")

    demo.commands[0x70] = Command("BROKEN", broken)
    assert send(demo, "00700000") == (b"", SW.NO_PRECISE_DIAGNOSIS)
    assert "internal error" in caplog.text
    assert sw_of(demo, "00A4000C023F00") == SW.OK  # the card carries on


def test_subclass_adds_proprietary_command_with_each_part_chaining() -> None:
    seen: list[tuple[bool, bytes]] = []

    def echo(card: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
        seen.append((bool(apdu.cla & 0x10), apdu.data))
        return ResponseApdu(apdu.data[::-1], SW.OK)

    class EchoCard(VirtualCard):
        PROPRIETARY_COMMANDS = {0x20: Command("ECHO", echo, Chaining.EACH)}

    card = EchoCard.create()
    assert send(card, "9020000002010200") == (bytes.fromhex("0201"), SW.OK)
    assert send(card, "8020000001AA00") == (bytes.fromhex("AA"), SW.OK)
    assert sw_of(card, "80A4000C023F00") == SW.INS_NOT_SUPPORTED
    assert seen == [(True, bytes.fromhex("0102")), (False, bytes.fromhex("AA"))]
    assert sw_of(card, "00200000") == SW.INS_NOT_SUPPORTED  # interindustry table unaffected


class StripChannel:
    """A stand-in secure channel: 'protection' is the SM bits and a trailing marker byte."""

    def __init__(self) -> None:
        self.fail = False

    def unwrap(self, apdu: CommandApdu) -> CommandApdu:
        if self.fail:
            raise ApduError(SW.SM_DATA_OBJECTS_INCORRECT)
        return apdu.with_(cla=apdu.cla & ~0x0C)

    def wrap(self, response: ResponseApdu) -> ResponseApdu:
        return ResponseApdu(response.data + b"\x99", response.sw)


def test_secure_messaging_hook(demo: VirtualCard) -> None:
    channel = StripChannel()
    demo.security.open_channel(channel)
    demo.security.grant("PACE")
    assert send(demo, "0CA4000C023F00") == (b"\x99", SW.OK)
    # The protected response is fitted into the outer Ne: its last byte waits behind 61xx for a
    # plain GET RESPONSE, which neither needs protection nor ends the channel.
    assert send(demo, "0CB0810003") == (bytes.fromhex("4301D8"), SW.bytes_remaining(1))
    assert send(demo, "00C0000001") == (b"\x99", SW.OK)
    assert demo.security.channel is channel
    channel.fail = True
    assert send(demo, "0CB0810003") == (b"", SW.SM_DATA_OBJECTS_INCORRECT)
    assert demo.security.channel is None and demo.security.granted == set()
    # A plain command while SM is up ends the channel too, and is refused unprotected.
    channel.fail = False
    demo.security.open_channel(channel)
    demo.security.grant("PACE")
    assert send(demo, "00A4000C023F00") == (b"", SW.SM_DATA_OBJECTS_INCORRECT)
    assert demo.security.channel is None and not demo.security.granted
    assert send(demo, "00A4000C023F00") == (b"", SW.OK)


def test_access_condition_text_form() -> None:
    cond = AccessCondition.parse("TA+PACE|PERSO")
    assert str(cond) == "PACE+TA|PERSO"
    assert cond == AccessCondition.require("PACE", "TA") | AccessCondition.require("PERSO")
    assert cond.satisfied_by({"PERSO"}) and cond.satisfied_by({"PACE", "TA", "X"})
    assert not cond.satisfied_by({"PACE"})
    assert ALWAYS.satisfied_by(set()) and not NEVER.satisfied_by({"PACE", "TA", "PERSO"})
    assert (ALWAYS | cond) == ALWAYS and str(NEVER | NEVER) == "NEVER"
    for bad in ("", "pace", "PACE+", "ALWAYS+PACE"):
        with pytest.raises(ValueError):
            AccessCondition.parse(bad)


def test_protocol_raises_mapped_errors(demo: VirtualCard) -> None:
    proto = ApduProtocol(demo)
    proto.send(CommandApdu(0, 0xA4, 4, 0x0C, DEMO_AID))
    with pytest.raises(SecurityStatusNotSatisfiedError):
        proto.send(CommandApdu(0, 0xB0, 0x82, 0, le=256))
