"""The vpcd bridge against a stand-in for vpcd's side of the socket (no pcscd needed)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ektp_card.errors import CardImageError, PcscUnavailableError, TransportError
from ektp_card.virtual.vpcd import VpcdBridge, atr_historical_bytes, may_change_state

if TYPE_CHECKING:
    from fixtures.cards import Fresh

ATR = bytes.fromhex("3B8880010000000000000000F6")  # any ATR: the bridge passes it through


class RecordingCard:
    """Answers every command with its INS byte and 9000, and records power events."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.fail = False

    @property
    def atr(self) -> bytes:
        return ATR

    def power_on(self) -> bytes:
        self.events.append("on")
        return ATR

    def power_off(self) -> None:
        self.events.append("off")

    def transceive(self, command: bytes) -> bytes:
        if self.fail:
            raise RuntimeError("boom")
        self.events.append(command.hex())
        return bytes([command[1]]) + b"\x90\x00"


class FakeReader:
    """vpcd's role: listens, sends framed messages, reads framed answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> socket.socket:
        self.server.settimeout(5)
        self.conn, _ = self.server.accept()
        self.conn.settimeout(5)
        return self.conn

    def send(self, payload: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(struct.pack(">H", len(payload)) + payload)

    def receive(self) -> bytes:
        assert self.conn is not None
        head = self._exact(2)
        return self._exact(struct.unpack(">H", head)[0])

    def _exact(self, n: int) -> bytes:
        assert self.conn is not None
        data = b""
        while len(data) < n:
            chunk = self.conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


@pytest.fixture
def reader() -> Iterator[FakeReader]:
    fake = FakeReader()
    yield fake
    fake.close()


def started(card: RecordingCard, reader: FakeReader, **kwargs: object) -> VpcdBridge:
    bridge = VpcdBridge(card, port=reader.port, connect_timeout=5.0, **kwargs)  # type: ignore[arg-type]
    bridge.start(wait=None)
    reader.accept()
    return bridge


def test_control_messages_and_apdu_framing(reader: FakeReader) -> None:
    card = RecordingCard()
    bridge = started(card, reader)
    reader.send(b"\x04")
    assert reader.receive() == ATR
    assert bridge.attached.is_set()
    reader.send(b"\x01")
    reader.send(b"\x00\xa4\x04\x0c\x02\x3f\x00")
    assert reader.receive() == b"\xa4\x90\x00"
    reader.send(b"\x02")
    reader.send(b"\x00")
    # Two messages in one TCP segment: power on, then "send the ATR".
    assert reader.conn is not None
    reader.conn.sendall(b"\x00\x01\x01\x00\x01\x04")
    assert reader.receive() == ATR
    bridge.stop()
    assert card.events == ["on", "00a4040c023f00", "on", "off", "on", "off"]


def test_extended_length_frame(reader: FakeReader) -> None:
    card = RecordingCard()
    bridge = started(card, reader)
    command = b"\x00\xd6\x00\x00\x00\x10\x00" + bytes(range(256)) * 16
    reader.send(command)
    assert reader.receive() == b"\xd6\x90\x00"
    bridge.stop()
    assert card.events == [command.hex(), "off"]


def test_on_change_after_state_changing_commands_only(reader: FakeReader) -> None:
    saved: list[int] = []
    card = RecordingCard()
    bridge = started(card, reader, on_change=lambda: saved.append(len(card.events)))
    reader.send(b"\x00\xb0\x00\x00\x10")  # READ BINARY
    assert reader.receive() == b"\xb0\x90\x00"
    reader.send(b"\x0c\xd6\x00\x00\x03\x01\x02\x03")  # UPDATE BINARY (CLA with SM bits)
    assert reader.receive() == b"\xd6\x90\x00"
    reader.send(b"\x00\x20\x00\x81\x02\x31\x32")  # VERIFY: a failure changes the retry counter
    assert reader.receive() == b"\x20\x90\x00"
    bridge.stop()
    assert saved == [2, 3]
    assert may_change_state(bytes.fromhex("00E0000000")) and not may_change_state(bytes.fromhex("00A4040C"))


def test_on_change_failure_stops_bridge_and_is_raised(reader: FakeReader) -> None:
    def fail() -> None:
        raise CardImageError("disk full")

    bridge = started(RecordingCard(), reader, on_change=fail)
    reader.send(b"\x00\xd6\x00\x00\x01\x00")
    with pytest.raises(EOFError):  # no answer: the write did not reach the disk
        reader.receive()
    deadline = time.monotonic() + 5
    while bridge.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not bridge.running
    with pytest.raises(CardImageError, match="disk full"):
        bridge.stop()


def test_card_failure_answers_6f00_and_keeps_serving(reader: FakeReader) -> None:
    card = RecordingCard()
    bridge = started(card, reader)
    card.fail = True
    reader.send(b"\x00\xb0\x00\x00\x01")
    assert reader.receive() == b"\x6f\x00"
    card.fail = False
    reader.send(b"\x00\xb0\x00\x00\x01")
    assert reader.receive() == b"\xb0\x90\x00"
    bridge.stop()


def test_reader_closing_ends_run(reader: FakeReader) -> None:
    card = RecordingCard()
    bridge = VpcdBridge(card, port=reader.port)
    thread = threading.Thread(target=bridge.run)
    thread.start()
    conn = reader.accept()
    conn.close()
    thread.join(5)
    assert not thread.is_alive()
    assert card.events == ["off"]


def test_nobody_listening_is_pcsc_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    attempts: list[tuple[str, int]] = []
    connect = socket.create_connection

    def counting(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        attempts.append(address)
        return connect(address, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "create_connection", counting)
    bridge = VpcdBridge(RecordingCard(), port=port, connect_timeout=0.3)
    with pytest.raises(PcscUnavailableError, match=f"no vpcd reader listens on 127.0.0.1:{port}"):
        bridge.run()
    # It gives up within connect_timeout: the back-off (0.05 s, then 0.1 s, 0.2 s...) leaves room for
    # three attempts in 0.3 s however fast the machine, and a slower one only makes fewer.
    assert 1 <= len(attempts) <= 3 and set(attempts) == {("127.0.0.1", port)}


def test_keeps_trying_until_the_reader_listens() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    bridge = VpcdBridge(RecordingCard(), port=port, connect_timeout=5.0)
    bridge.start(wait=None)
    time.sleep(0.3)  # the bridge retries meanwhile
    with socket.create_server(("127.0.0.1", port)) as server:
        server.settimeout(5)
        conn, _ = server.accept()
        conn.sendall(b"\x00\x01\x04")
        assert conn.recv(64) == b"\x00" + bytes([len(ATR)]) + ATR
        bridge.stop()
        conn.close()


def test_start_fails_clearly_when_pcscd_never_polls(reader: FakeReader) -> None:
    bridge = VpcdBridge(RecordingCard(), port=reader.port, connect_timeout=1.0)
    with pytest.raises(TransportError, match="another virtual card already in this reader"):
        bridge.start(wait=0.3)
    assert not bridge.running


# --- the reader's GET DATA (FF CA): the UID and historical bytes, answered by the bridge ---------------


def test_bridge_answers_get_data_as_the_reader(reader: FakeReader, fresh: Fresh) -> None:
    card, _ = fresh()
    bridge = VpcdBridge(card, port=reader.port, connect_timeout=5.0)
    bridge.start(wait=None)
    reader.accept()
    reader.send(b"\x01")
    reader.send(bytes.fromhex("FFCA000000"))
    first = reader.receive()
    assert first == card.uid + b"\x90\x00" and first[0] == 0x08 and len(first) == 6
    reader.send(bytes.fromhex("FFCA010000"))
    assert reader.receive() == card.ats_historical + b"\x90\x00"
    reader.send(bytes.fromhex("FFB0000000"))  # other CLA FF commands still reach the card
    assert reader.receive() == b"\x6e\x00"
    reader.send(b"\x02")  # reset: a new UID
    reader.send(bytes.fromhex("FFCA000000"))
    assert reader.receive() == card.uid + b"\x90\x00" != first
    bridge.stop()


def test_bridge_without_uid_says_function_not_supported(reader: FakeReader) -> None:
    card = RecordingCard()
    bridge = VpcdBridge(card, port=reader.port, connect_timeout=5.0)
    bridge.start(wait=None)
    reader.accept()
    reader.send(bytes.fromhex("FFCA000000"))
    assert reader.receive() == b"\x6a\x81"
    reader.send(bytes.fromhex("FFCA010000"))
    assert reader.receive() == atr_historical_bytes(ATR) + b"\x90\x00"
    bridge.stop()
    assert card.events == ["off"]  # the card never saw them
