"""End to end through a real pcscd: a virtual card in vpcd's reader, driven with the PC/SC transport."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Under CI=true a module skipped for want of an optional package fails instead (tests/conftest.py).
pytest.importorskip("smartcard", reason="pyscard is not installed (pip install -e '.[test]')")

from ektp_card.apdu import ApduProtocol, CommandApdu  # noqa: E402
from ektp_card.apdu.pcsc import (  # noqa: E402
    REMOVAL_CONFIRM_SECONDS,
    UNAVAILABLE_MESSAGE,
    PcscTransport,
    ReaderInfo,
    list_readers,
)
from ektp_card.errors import (  # noqa: E402
    CardRemovedError,
    NoCardError,
    ReaderNotFoundError,
    TransportError,
)
from ektp_card.virtual import DEMO_AID, VirtualCard, demo_card  # noqa: E402
from ektp_card.virtual.demo import (  # noqa: E402
    EF_LARGE_FID,
    EF_PUBLIC_FID,
    EF_SCRATCH_FID,
    LARGE_CONTENT,
    PUBLIC_CONTENT,
    SCRATCH_SIZE,
)

#: The second vpcd reader: present in pcscd, and no test puts a card in it.
EMPTY_READER = "Virtual PCD 00 01"

SELECT_APP = b"\x00\xa4\x04\x0c" + bytes([len(DEMO_AID)]) + DEMO_AID


Serve = Callable[..., Any]

pytestmark = pytest.mark.pcscd


def select(transport: PcscTransport, fid: int) -> None:
    assert transport.transceive(SELECT_APP) == b"\x90\x00"
    assert transport.transceive(b"\x00\xa4\x02\x0c\x02" + fid.to_bytes(2, "big")) == b"\x90\x00"


def test_list_readers_shows_the_virtual_card(vpcd_bridge: Serve, pcscd: str) -> None:
    card = demo_card()
    vpcd_bridge(card)
    readers = {r.name: r for r in list_readers()}
    assert readers[pcscd] == ReaderInfo(pcscd, True, card.atr)
    assert card.atr == bytes.fromhex("3B8980018031D873F421E08105A3")
    assert readers[EMPTY_READER] == ReaderInfo(EMPTY_READER, False, None)


def test_select_and_read_binary_exact_bytes(vpcd_bridge: Serve, pcscd: str) -> None:
    card = demo_card()
    vpcd_bridge(card)
    with PcscTransport.open(pcscd, timeout=5) as transport:
        assert transport.reader == pcscd
        assert transport.atr == card.atr
        assert transport.protocol == "T=1"
        select(transport, EF_PUBLIC_FID)
        assert PUBLIC_CONTENT == b"ektp-card demo application: public data\n"
        assert transport.transceive(b"\x00\xb0\x00\x00\x00") == PUBLIC_CONTENT + b"\x90\x00"
        assert transport.transceive(b"\x00\xb0\x00\x05\x04") == b"card\x90\x00"
        assert transport.transceive(b"\x00\xa4\x02\x0c\x02\x7f\x7f") == b"\x6a\x82"


def test_apdu_protocol_reads_a_large_file_in_short_apdus(vpcd_bridge: Serve, pcscd: str) -> None:
    vpcd_bridge(demo_card(extended_length=False))
    with PcscTransport.open(pcscd, timeout=5) as transport:
        protocol = ApduProtocol(transport)
        protocol.send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, DEMO_AID))
        protocol.send(CommandApdu(0x00, 0xA4, 0x02, 0x0C, EF_LARGE_FID.to_bytes(2, "big")))
        data = b""
        while len(data) < len(LARGE_CONTENT):
            offset = len(data)
            le = min(256, len(LARGE_CONTENT) - offset)
            data += protocol.send(CommandApdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=le)).data
        assert data == LARGE_CONTENT


def test_extended_length_through_pcscd(vpcd_bridge: Serve, pcscd: str) -> None:
    vpcd_bridge(demo_card(extended_length=True))
    with PcscTransport.open(pcscd, timeout=5) as transport:
        select(transport, EF_LARGE_FID)
        raw = transport.transceive(b"\x00\xb0\x00\x00\x00\x00\x00")  # extended Le 0000: up to 65536
        assert raw == LARGE_CONTENT + b"\x90\x00"
        protocol = ApduProtocol(transport, extended=True)
        assert protocol.send(CommandApdu(0x00, 0xB0, 0x00, 0x10, le=1000)).data == LARGE_CONTENT[16:1016]


def test_update_through_pcscd_triggers_the_save_hook(vpcd_bridge: Serve, pcscd: str, tmp_path: Path) -> None:
    card = demo_card()
    image = tmp_path / "card.ektp"
    saves: list[int] = []

    def save() -> None:
        card.save(image)
        saves.append(1)

    vpcd_bridge(card, on_change=save)
    written = bytes(range(SCRATCH_SIZE))
    with PcscTransport.open(pcscd, timeout=5) as transport:
        select(transport, EF_SCRATCH_FID)
        assert transport.transceive(b"\x00\xb0\x00\x00\x08") == bytes(8) + b"\x90\x00"
        assert saves == []
        assert transport.transceive(b"\x00\xd6\x00\x00" + bytes([len(written)]) + written) == b"\x90\x00"
        assert saves == [1]
    saved = VirtualCard.load(image)
    assert saved.transceive(SELECT_APP) == b"\x90\x00"
    assert saved.transceive(b"\x00\xa4\x02\x0c\x02\x01\x04") == b"\x90\x00"
    assert saved.transceive(b"\x00\xb0\x00\x00\x00") == written + b"\x90\x00"


def test_reader_by_index_and_substring(vpcd_bridge: Serve, pcscd: str) -> None:
    vpcd_bridge(demo_card())
    readers = list_readers()
    index = [r.name for r in readers].index(pcscd)
    choices: list[str | int | None] = [index, str(index), "pcd 00 00"]
    if [r.name for r in readers if r.card_present] == [pcscd]:
        choices.append(None)  # the first reader with a card
    for reader in choices:
        with PcscTransport.open(reader, timeout=5) as transport:
            assert transport.reader == pcscd


def test_session_is_exclusive_and_reset_on_close(vpcd_bridge: Serve, pcscd: str) -> None:
    vpcd_bridge(demo_card())
    read = b"\x00\xb0\x00\x00\x04"
    with PcscTransport.open(pcscd, timeout=5, reset_on_close=False) as transport:
        select(transport, EF_PUBLIC_FID)
        with pytest.raises(TransportError, match="in use by another application"):
            PcscTransport.open(pcscd, timeout=1)
    # Left as it was: the next session still has EF.PUBLIC selected.
    with PcscTransport.open(pcscd, timeout=5, exclusive=False) as transport:
        assert transport.transceive(read) == b"ektp\x90\x00"
        select(transport, EF_PUBLIC_FID)
    # Reset at the end of that session: nothing is selected any more.
    with PcscTransport.open(pcscd, timeout=5) as transport:
        assert transport.transceive(read) == b"\x69\x86"


def test_no_card_within_timeout(pcscd: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from smartcard import scard

    waits: list[int] = []
    get_status_change = scard.SCardGetStatusChange

    def counting(context: Any, timeout_ms: int, states: Any) -> Any:
        waits.append(timeout_ms)
        return get_status_change(context, timeout_ms, states)

    monkeypatch.setattr(scard, "SCardGetStatusChange", counting)
    started = time.monotonic()
    with pytest.raises(NoCardError, match=f"no card in reader '{EMPTY_READER}' within 0.3 s"):
        PcscTransport.open(EMPTY_READER, timeout=0.3)
    assert time.monotonic() - started > 0.25  # it waited (a busy machine only makes this longer)
    # ...and asked pcscd for no more than the 0.3 s: the first query answers at once, the rest wait
    # slices of what is left (at least 1 ms each).
    assert waits[0] == 0 and 0 < sum(waits) <= 300 + len(waits), waits


def test_card_removed_mid_session(vpcd_bridge: Serve, pcscd: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from smartcard import scard

    calls: list[str] = []
    for name in ("SCardTransmit", "SCardStatus"):
        real = getattr(scard, name)

        def counting(*args: Any, _name: str = name, _real: Any = real) -> Any:
            calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(scard, name, counting)
    bridge = vpcd_bridge(demo_card())
    with PcscTransport.open(pcscd, timeout=5) as transport:
        select(transport, EF_PUBLIC_FID)
        bridge.stop()
        calls.clear()
        with pytest.raises(CardRemovedError, match="removed"):
            transport.transceive(b"\x00\xb0\x00\x00\x04")
        # Sent once, not retried, and pcscd's word on the removal taken within the bounded wait
        # (REMOVAL_CONFIRM_SECONDS of status polls every _STATUS_POLL_SECONDS).
        assert calls[0] == "SCardTransmit" and calls.count("SCardTransmit") == 1, calls
        assert 1 <= calls.count("SCardStatus") <= 1 + REMOVAL_CONFIRM_SECONDS / 0.05, calls
        with pytest.raises(CardRemovedError):
            transport.transceive(b"\x00\xb0\x00\x00\x04")
    assert transport.closed  # and closing after the removal raised nothing


def test_card_swapped_mid_session(vpcd_bridge: Serve, pcscd: str) -> None:
    bridge = vpcd_bridge(demo_card())
    with PcscTransport.open(pcscd, timeout=5) as transport:
        select(transport, EF_PUBLIC_FID)
        bridge.stop()
        vpcd_bridge(demo_card())  # returns once pcscd has polled the new card
        with pytest.raises(CardRemovedError, match="removed"):
            transport.transceive(b"\x00\xb0\x00\x00\x04")


def test_reader_not_found_lists_the_readers(pcscd: str) -> None:
    with pytest.raises(ReaderNotFoundError) as info:
        PcscTransport.open("No Such Reader", timeout=0.1)
    message = str(info.value)
    assert message.startswith("no reader matches 'No Such Reader'; readers: [")
    assert pcscd in message and EMPTY_READER in message
    with pytest.raises(ReaderNotFoundError, match=r"no reader with index 99; readers: \[0\] "):
        PcscTransport.open(99, timeout=0.1)


@pytest.mark.parametrize("call", ["list_readers()", "PcscTransport.open(None, timeout=1)"])
def test_pcscd_not_running(call: str) -> None:
    # libpcsclite finds pcscd through PCSCLITE_CSOCK_NAME (pcsc-lite's winscard_msg.c): point it
    # at a socket that does not exist, as if pcscd were not running.
    script = (
        "from ektp_card.apdu.pcsc import PcscTransport, list_readers\n"
        "from ektp_card.errors import EktpError\n"
        f"try:\n    {call}\nexcept EktpError as exc:\n    print(type(exc).__name__, exc, sep=': ')\n"
    )
    env = dict(os.environ, PCSCLITE_CSOCK_NAME="/nonexistent/pcscd.comm")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout == f"PcscUnavailableError: {UNAVAILABLE_MESSAGE}\n"
