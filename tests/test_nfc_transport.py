"""The NFC transport over nfcpy's udp driver, against our own ISO-DEP card side on loopback.

Two parts: the card-side block protocol fed frame by frame (exact bytes, no sockets), and
end-to-end exchanges through nfcpy (``udp:127.0.0.1:PORT``) with real APDUs.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ektp_card import errors
from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.virtual import DEMO_AID, AccessCondition, SecurityAttributes, VirtualCard, demo_card
from ektp_card.virtual.demo import LARGE_CONTENT, PUBLIC_CONTENT
from ektp_card.virtual.isodep import IsoDepCardServer, State, TypeAPicc, bcc, fwt_seconds

# Under CI=true a module skipped for want of an optional package fails instead (tests/conftest.py).
pytest.importorskip("nfc", reason="nfcpy is not installed (pip install -e '.[test]')")

from ektp_card.apdu.nfc import NfcTransport  # noqa: E402 - only after nfcpy is known present

UID7 = bytes.fromhex("04A1B2C3D4E5F6")
UID4 = bytes.fromhex("08123456")
HISTORICAL = b"eKTP"


class MemoryCard:
    """A minimal card for frame-level tests (fixed UID, call counts, a slow command).

    Transparent files selected by FID, READ/UPDATE BINARY in short and extended form.
    """

    SLOW_INS = 0xAA  # answers 9000 after ``slow_seconds``

    def __init__(self, uid: bytes = UID7) -> None:
        self.uid = uid
        self.ats_historical = HISTORICAL
        self.files: dict[bytes, bytearray] = {
            b"\x01\x1e": bytearray(b"small file 0123456789"),
            b"\x01\x02": bytearray(i * 7 % 251 for i in range(1500)),
            b"\x01\x0f": bytearray(300),
        }
        self.current: bytes | None = None
        self.powered = False
        self.power_ons = 0
        self.power_offs = 0
        self.commands: list[bytes] = []
        self.slow_seconds = 0.5

    def power_on(self) -> bytes:
        self.powered = True
        self.power_ons += 1
        self.current = None
        return bytes.fromhex("3B8180018080")

    def power_off(self) -> None:
        self.powered = False
        self.power_offs += 1

    def transceive(self, command: bytes) -> bytes:
        self.commands.append(command)
        if len(command) < 4:
            return b"\x67\x00"
        ins, p1, p2, body = command[1], command[2], command[3], command[4:]
        data, le = self._body(body)
        if ins == 0xA4 and p1 == 0x02:
            if data not in self.files:
                return b"\x6a\x82"
            self.current = data
            return b"\x90\x00"
        if ins == self.SLOW_INS:
            time.sleep(self.slow_seconds)
            return b"\x90\x00"
        if self.current is None and ins in (0xB0, 0xD6):
            return b"\x69\x86"
        offset = p1 << 8 | p2
        if ins == 0xB0:
            content = self.files[self.current or b""]
            if offset > len(content):
                return b"\x6b\x00"
            return bytes(content[offset : offset + (le or 0)]) + b"\x90\x00"
        if ins == 0xD6:
            content = self.files[self.current or b""]
            if offset + len(data) > len(content):
                return b"\x6a\x84"
            content[offset : offset + len(data)] = data
            return b"\x90\x00"
        return b"\x6d\x00"

    @staticmethod
    def _body(body: bytes) -> tuple[bytes, int | None]:
        if not body:
            return b"", None
        if len(body) == 1:
            return b"", body[0] or 256
        if body[0] == 0 and len(body) == 3:
            return b"", (body[1] << 8 | body[2]) or 65536
        if body[0] == 0:
            nc = body[1] << 8 | body[2]
            rest = body[3 + nc :]
            return body[3 : 3 + nc], ((rest[0] << 8 | rest[1]) or 65536) if rest else None
        nc = body[0]
        rest = body[1 + nc :]
        return body[1 : 1 + nc], (rest[0] or 256) if rest else None


# --- the card-side protocol machine, frame by frame --------------------------------------------


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def activate(picc: TypeAPicc, uid: bytes = UID7, rats: str = "E080") -> bytes:
    """Run the Type A select sequence and RATS; return the ATS."""
    assert picc.handle(h("26")) is not None
    if len(uid) == 7:
        cl1 = b"\x88" + uid[:3]
        assert picc.handle(h("9370") + cl1 + bytes([bcc(cl1)])) == h("04")
        cl2 = uid[3:]
        assert picc.handle(h("9570") + cl2 + bytes([bcc(cl2)])) == h("20")
    else:
        assert picc.handle(h("9370") + uid + bytes([bcc(uid)])) == h("20")
    ats = picc.handle(h(rats))
    assert ats is not None
    return ats


def test_atqa_and_anticollision_double_size_uid() -> None:
    card = MemoryCard(UID7)
    picc = TypeAPicc(card)
    assert picc.handle(h("26")) == h("4100")  # double-size UID, bit frame anticollision
    assert card.power_ons == 1
    # CL1: cascade tag 88, three UID bytes, BCC = 88 ^ 04 ^ A1 ^ B2 = 9F
    assert picc.handle(h("9320")) == h("8804A1B29F")
    assert picc.handle(h("93708804A1B29F")) == h("04")  # SAK: UID not complete
    # CL2: C3 D4 E5 F6, BCC = C3 ^ D4 ^ E5 ^ F6 = 04
    assert picc.handle(h("9520")) == h("C3D4E5F604")
    assert picc.handle(h("9570C3D4E5F604")) == h("20")  # SAK: complete, ISO/IEC 14443-4
    assert picc.state is State.ACTIVE


def test_atqa_and_select_single_size_uid() -> None:
    picc = TypeAPicc(MemoryCard(UID4))
    assert picc.handle(h("52")) == h("0100")
    assert picc.handle(h("9320")) == h("0812345678")  # BCC = 08 ^ 12 ^ 34 ^ 56 = 78
    assert picc.handle(h("9370081234567F")) is None  # wrong BCC: not this PICC
    assert picc.handle(h("93700812345678")) == h("20")


def test_triple_size_uid() -> None:
    uid = bytes.fromhex("0102030405060708090A")
    picc = TypeAPicc(MemoryCard(uid))
    assert picc.handle(h("26")) == h("8100")
    assert picc.handle(h("9320")) == h("8801020388")  # BCC = 88 ^ 01 ^ 02 ^ 03
    assert picc.handle(h("93708801020388")) == h("04")
    assert picc.handle(h("9520")) == h("880405068F")
    assert picc.handle(h("9570880405068F")) == h("04")
    assert picc.handle(h("9720")) == h("0708090A0C")
    assert picc.handle(h("97700708090A0C")) == h("20")
    assert picc.state is State.ACTIVE


def test_anticollision_with_known_bytes() -> None:
    picc = TypeAPicc(MemoryCard(UID4))
    picc.handle(h("26"))
    assert picc.handle(h("93400812")) == h("345678")  # NVB 40: SEL, NVB and two UID bytes known
    assert picc.handle(h("93400813")) is None  # another UID prefix: silent


def test_reqa_ignored_in_halt_wupa_wakes() -> None:
    picc = TypeAPicc(MemoryCard(UID4))
    picc.handle(h("26"))
    picc.handle(h("93700812345678"))
    assert picc.handle(h("5000")) is None
    assert picc.state is State.HALT
    assert picc.handle(h("26")) is None
    assert picc.handle(h("52")) == h("0100")


def test_ats_bytes() -> None:
    picc = TypeAPicc(MemoryCard(), fwi=9)
    ats = activate(picc)
    # TL=09, T0=78 (TA, TB, TC present, FSCI 8), TA=00 (106 kbit/s only), TB=90 (FWI 9, SFGI 0),
    # TC=02 (CID supported, NAD not), then the historical bytes.
    assert ats == h("0978009002") + HISTORICAL
    assert activate(TypeAPicc(MemoryCard()))[3] == 0xA0  # the default FWI is 10
    assert picc.state is State.PROTOCOL
    assert picc.fsd == 256
    assert TypeAPicc(MemoryCard(), fwi=9).state is State.POWER_OFF


def test_ats_historical_bytes_cut_to_small_fsd() -> None:
    card = MemoryCard()
    card.ats_historical = bytes(range(20))
    ats = activate(TypeAPicc(card), rats="E000")  # FSDI 0: FSD 16
    assert ats == h("0E7800A002") + bytes(range(9))
    assert len(ats) == 16 - 2


def test_i_blocks_alternate_block_numbers() -> None:
    card = MemoryCard()
    picc = TypeAPicc(card)
    activate(picc)
    assert picc.handle(h("02 00A4020C02011E")) == h("02 9000")
    assert picc.handle(h("03 00B0000005")) == h("03 736D616C6C 9000")
    assert card.commands == [h("00A4020C02011E"), h("00B0000005")]


def test_command_chaining_acknowledged_with_r_ack() -> None:
    card = MemoryCard()
    picc = TypeAPicc(card)
    activate(picc)
    assert picc.handle(h("12 00A402")) == h("A2")  # chaining bit: R(ACK), block number 0
    assert picc.handle(h("13 0C02")) == h("A3")
    assert picc.handle(h("02 011E")) == h("02 9000")
    assert card.commands == [h("00A4020C02011E")]


def test_response_chaining_with_r_ack() -> None:
    card = MemoryCard()
    picc = TypeAPicc(card)
    activate(picc, rats="E020")  # FSDI 2: FSD 32, so 29 INF bytes per block (PCB and CRC_A counted)
    picc.handle(h("02 00A4020C020102"))
    content = bytes(card.files[h("0102")][:60]) + h("9000")
    first = picc.handle(h("03 00B000003C"))
    assert first == h("13") + content[:29]  # chaining bit set, block number 1
    assert picc.handle(h("A2")) == h("12") + content[29:58]  # R(ACK) 0 asks for the next block
    assert picc.handle(h("A3")) == h("03") + content[58:]  # last block: no chaining bit


def test_r_nak_retransmits_or_acknowledges() -> None:
    picc = TypeAPicc(MemoryCard())
    activate(picc)
    answer = picc.handle(h("02 00A4020C02011E"))
    assert answer == h("02 9000")
    # R(NAK) with the PICC's block number: the reader lost the answer, send it again.
    assert picc.handle(h("B2")) == answer
    # R(NAK) with the other block number (nfcpy's presence check): R(ACK) with the PICC's number.
    assert picc.handle(h("B3")) == h("A2")
    # R(ACK) with the other number outside chaining: nothing to continue.
    assert picc.handle(h("A3")) is None


def test_cid_echoed_and_other_cids_ignored() -> None:
    card = MemoryCard()
    picc = TypeAPicc(card)
    activate(picc, rats="E081")  # CID 1
    assert picc.cid == 1
    assert picc.handle(h("0A01 00A4020C02011E")) == h("0A01 9000")
    assert picc.handle(h("0B02 00A4020C02011E")) is None  # CID 2: not for this PICC
    assert picc.handle(h("03 00A4020C02011E")) is None  # no CID while ours is 1: ignored
    assert picc.handle(h("1B01 00B0")) == h("AB01")  # chaining with CID: R(ACK) with CID
    assert picc.handle(h("0A01 000005")) == h("0A01 736D616C6C 9000")
    assert picc.handle(h("CA01")) == h("CA01")  # S(DESELECT) with CID


def test_nad_is_skipped() -> None:
    card = MemoryCard()
    picc = TypeAPicc(card)
    activate(picc)
    assert picc.handle(h("06 12 00A4020C02011E")) == h("02 9000")
    assert card.commands == [h("00A4020C02011E")]


def test_invalid_blocks_ignored() -> None:
    card = MemoryCard()
    picc = TypeAPicc(card)
    activate(picc)
    for frame in ("00", "E080", "A6", "C0"):
        assert picc.handle(h(frame)) is None
    assert card.commands == []


def test_pps_after_ats() -> None:
    picc = TypeAPicc(MemoryCard())
    activate(picc)
    assert picc.handle(h("D0 11 05")) is None  # DSI/DRI other than 106 kbit/s: not offered
    assert picc.handle(h("D0 11 00")) == h("D0")
    assert picc.handle(h("D0 11 00")) is None  # only once, right after the ATS


def test_deselect_answers_and_powers_off() -> None:
    card = MemoryCard()
    picc = TypeAPicc(card)
    activate(picc)
    assert picc.handle(h("C2")) == h("C2")
    assert picc.state is State.HALT
    assert card.power_offs == 1 and not card.powered
    assert picc.handle(h("26")) is None  # REQA does not wake a halted PICC
    assert picc.handle(h("52")) == h("4100")  # WUPA does, and powers the card on again
    assert card.power_ons == 2


def test_field_off_powers_off() -> None:
    card = MemoryCard()
    picc = TypeAPicc(card)
    activate(picc)
    picc.field_off()
    assert picc.state is State.POWER_OFF and not card.powered
    assert picc.handle(h("02 00A4020C02011E")) is None


def test_wtx_request_and_response() -> None:
    picc = TypeAPicc(MemoryCard())
    activate(picc)
    assert picc.wtx_request(7) == h("F207")
    assert picc.is_wtx_response(h("F207"))
    assert not picc.is_wtx_response(h("F2"))
    assert picc.handle(h("F207")) is None  # an S(WTX) response out of turn is ignored
    with pytest.raises(ValueError):
        picc.wtx_request(60)


def test_card_fault_answers_6f00() -> None:
    class Broken(MemoryCard):
        def transceive(self, command: bytes) -> bytes:
            raise RuntimeError("boom")

    picc = TypeAPicc(Broken())
    activate(picc)
    assert picc.handle(h("02 00A4020C02011E")) == h("02 6F00")


def test_fwt() -> None:
    assert fwt_seconds(0) == pytest.approx(302.1e-6, rel=1e-3)
    assert fwt_seconds(9) == pytest.approx(0.1547, rel=1e-3)


# --- end to end through nfcpy's udp driver -----------------------------------------------------

TIMEOUT = 3.0
SELECT_APP = h("00A4040C09") + DEMO_AID
EF_BIG_FID = 0x0105  # added to the demo application: large enough for writes beyond one frame
EF_BIG_SIZE = 600


@pytest.fixture
def card() -> VirtualCard:
    card = demo_card()
    access = SecurityAttributes(AccessCondition.ALWAYS, AccessCondition.ALWAYS, AccessCondition.NEVER)
    card.fs.create_ef(card.fs.application(DEMO_AID), EF_BIG_FID, size=EF_BIG_SIZE, sfi=5, access=access)
    return card


@pytest.fixture
def server(card: VirtualCard) -> Iterator[IsoDepCardServer]:
    with IsoDepCardServer(card) as srv:
        yield srv


def spy_frames(server: IsoDepCardServer) -> list[bytes]:
    """Record every frame the PICC receives from now on."""
    seen: list[bytes] = []
    handle = server.picc.handle

    def spy(frame: bytes) -> bytes | None:
        seen.append(frame)
        return handle(frame)

    server.picc.handle = spy  # type: ignore[method-assign]
    return seen


@pytest.fixture
def frames(server: IsoDepCardServer) -> list[bytes]:
    return spy_frames(server)


@pytest.fixture
def nfc(server: IsoDepCardServer) -> Iterator[NfcTransport]:
    with NfcTransport.open(server.path, timeout=TIMEOUT) as transport:
        yield transport


def test_open_activates_the_card(server: IsoDepCardServer, card: VirtualCard, nfc: NfcTransport) -> None:
    assert len(nfc.identifier) == 4 and nfc.identifier == card.uid  # random UID of this session
    assert card.powered
    assert server.picc.state is State.PROTOCOL


def test_select_and_small_read(nfc: NfcTransport) -> None:
    assert nfc.transceive(SELECT_APP) == h("9000")
    assert nfc.transceive(h("00A4020C020101")) == h("9000")
    assert nfc.transceive(h("00B0000005")) == PUBLIC_CONTENT[:5] + h("9000")
    assert nfc.transceive(h("00B0000000")) == PUBLIC_CONTENT + h("9000")
    assert nfc.transceive(h("00A4020C027777")) == h("6A82")


def test_large_read_uses_response_chaining(nfc: NfcTransport, frames: list[bytes]) -> None:
    nfc.transceive(SELECT_APP)
    nfc.transceive(h("00A4020C020103"))
    # Short Le 256: 258 response bytes, more than one 256-byte frame (PCB and CRC_A included).
    assert nfc.transceive(h("00B0000000")) == LARGE_CONTENT[:256] + h("9000")
    # Extended Le 1500: 1502 bytes in six frames.
    assert nfc.transceive(h("00B00000" "0005DC")) == LARGE_CONTENT + h("9000")
    acks = [f for f in frames if f[0] & 0xF6 == 0xA2]
    assert len(acks) == 1 + 5


def test_large_update_uses_command_chaining(nfc: NfcTransport, frames: list[bytes]) -> None:
    nfc.transceive(SELECT_APP)
    nfc.transceive(h("00A4020C020105"))
    frames.clear()
    data = bytes(range(255))
    assert nfc.transceive(h("00D60010FF") + data) == h("9000")
    # 260 command bytes do not fit in one frame: nfcpy sends a chained I-block first
    # (block number 0 again after the two SELECTs).
    assert [f[0] for f in frames] == [0x12, 0x03]
    assert nfc.transceive(h("00B00010FF")) == data + h("9000")
    # Extended length: 580 data bytes in three frames.
    frames.clear()
    big = bytes(i * 13 % 256 for i in range(580))
    assert nfc.transceive(h("00D6000A000244") + big) == h("9000")
    assert [f[0] for f in frames] == [0x12, 0x13, 0x02]
    assert nfc.transceive(h("00B0000A000244")) == big + h("9000")


def test_apdu_protocol_over_nfc(nfc: NfcTransport) -> None:
    proto = ApduProtocol(nfc, extended=True)
    proto.send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, DEMO_AID))
    proto.send(CommandApdu(0x00, 0xA4, 0x02, 0x0C, h("0103")))
    resp = proto.send(CommandApdu(0x00, 0xB0, 0x01, 0x00, le=1000))
    assert resp.data == LARGE_CONTENT[256:1256]
    proto.send(CommandApdu(0x00, 0xA4, 0x02, 0x0C, h("0102")))
    with pytest.raises(errors.SecurityStatusNotSatisfiedError):
        proto.send(CommandApdu(0x00, 0xB0, le=16))  # EF.SECRET is never readable
    with pytest.raises(errors.CardFileNotFoundError):
        proto.send(CommandApdu(0x00, 0xA4, 0x02, 0x0C, h("7777")))


def test_close_switches_field_off_and_reopen(server: IsoDepCardServer, card: VirtualCard) -> None:
    with NfcTransport.open(server.path, timeout=TIMEOUT) as first:
        assert first.transceive(SELECT_APP) == h("9000")
        assert first.transceive(h("00A4020C020101")) == h("9000")
    deadline = time.monotonic() + 2
    while card.powered and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not card.powered  # RFOFF reached the card side
    with NfcTransport.open(server.path, timeout=TIMEOUT) as second:
        assert second.identifier == card.uid
        # A new power-on session: the selection is gone (no current EF).
        assert second.transceive(h("00B0000005")) == h("6986")


def test_card_removed(server: IsoDepCardServer, nfc: NfcTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    import nfc as nfcpy

    assert nfc.transceive(SELECT_APP) == h("9000")
    server.stop()
    timeouts: list[float] = []
    exchange = nfcpy.ContactlessFrontend.exchange

    def counting(clf: Any, frame: bytearray, timeout: float) -> Any:
        timeouts.append(timeout)
        return exchange(clf, frame, timeout)

    monkeypatch.setattr(nfcpy.ContactlessFrontend, "exchange", counting)
    with pytest.raises(errors.CardRemovedError) as info:
        nfc.transceive(h("00A4020C020101"))
    # The frame and a few R(NAK)s, each waiting one frame waiting time: seconds at most in all.
    assert 2 <= len(timeouts) <= 6 and sum(timeouts) < 3.0, timeouts
    assert str(info.value) == "the card stopped answering (removed from the reader?)"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_slow_command_gets_waiting_time_extension() -> None:
    card = MemoryCard()
    with IsoDepCardServer(card) as server, NfcTransport.open(server.path, timeout=TIMEOUT) as nfc:
        frames = spy_frames(server)
        requests: list[int] = []
        wtx_request = server.picc.wtx_request

        def spy(wtxm: int) -> bytes:
            requests.append(wtxm)
            return wtx_request(wtxm)

        server.picc.wtx_request = spy  # type: ignore[method-assign]
        # Twice the frame waiting time: without S(WTX) the reader would give up.
        card.slow_seconds = 2 * fwt_seconds(server.picc.fwi)
        assert nfc.transceive(h("00AA0000")) == h("9000")
        assert requests and set(requests) == {4}  # WTXM 4: about one second per extension at FWI 10
        # The reader's S(WTX) responses are taken by the server, not passed on as blocks; one I-block
        # and nothing else means the reader waited for the answer instead of giving up and retrying.
        assert frames == [h("02 00AA0000")]
        assert nfc.transceive(h("00A4020C02011E")) == h("9000")
    assert card.power_ons == 1 and not card.powered


def test_no_card(monkeypatch: pytest.MonkeyPatch) -> None:
    import nfc as nfcpy

    # A bound port that never answers: the reader polls into silence.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        senses: list[str] = []
        sense = nfcpy.ContactlessFrontend.sense

        def counting(clf: Any, *targets: Any, **options: Any) -> Any:
            senses.append(targets[0].brty)
            return sense(clf, *targets, **options)

        monkeypatch.setattr(nfcpy.ContactlessFrontend, "sense", counting)
        with pytest.raises(errors.NoCardError) as info:
            NfcTransport.open(f"udp:127.0.0.1:{port}", timeout=0.2)
        # nfcpy's udp driver listens a whole second per sense: the 0.2 s are over after the first one,
        # and no other target is polled after the deadline.
        assert senses == ["106A"], senses
    assert str(info.value) == f"no ISO-DEP card found on NFC reader 'udp:127.0.0.1:{port}' within 0.2 s"


def test_no_reader() -> None:
    with pytest.raises(errors.ReaderNotFoundError) as info:
        NfcTransport.open("tty:ektp-no-such-port:pn532", timeout=0.2)
    assert str(info.value) == "no NFC reader found at 'tty:ektp-no-such-port:pn532'"


def test_closed_transport(nfc: NfcTransport) -> None:
    nfc.close()
    with pytest.raises(errors.TransportError, match="closed"):
        nfc.transceive(SELECT_APP)


def test_server_stops_cleanly(card: VirtualCard) -> None:
    before = threading.active_count()
    server = IsoDepCardServer(card).start()
    port = server.port
    assert server.running
    server.stop()
    assert not server.running
    assert threading.active_count() == before
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))  # the port is free again
