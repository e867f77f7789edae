"""The quirks of real chips (docs/chip-quirks.md): each as a virtual chip that has it, and `ektp verify`
surviving it - in-process, through the CLI with -v saying what it adapted to, and through pcscd."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ektp_card._cli.util import ExitCode
from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.sw import SW
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.errors import CardFileNotFoundError, IncorrectParametersError
from ektp_card.lds.profile import EMRTD_AID
from ektp_card.sandbox import chip_quirks, make_passport, make_quirky
from ektp_card.session.document import PassportSession
from ektp_card.verify.passive import Status
from ektp_card.verify.passport import verify_passport
from ektp_card.virtual import VirtualCard
from ektp_card.virtual.config import CardConfig, ChipQuirks

if TYPE_CHECKING:
    from fixtures.cards import RunCli

    from ektp_card.apdu.transport import Transport

ROOT = Path(__file__).parent.parent
MRZ = "L898902C3,740812,120415"
KEY = MrzInfo("L898902C3", "740812", "120415")

#: What `-v` says for each quirk (a piece of the INFO line).
SAYS = {
    "pace-parameter-id": "without the PACE parameter ID",
    "extended-length-refused": "refused an extended READ BINARY",
    "end-of-file-warning": "warns 6282",
    "response-chunk": "parts (61xx)",
    "errors-outside-ok": "the protected one counts",
    "read-limit": "reading at most 128 bytes",
    "read-limit-6c": "reading at most 128 bytes",
}


def test_every_quirk_has_a_line() -> None:
    assert set(SAYS) == set(chip_quirks())
    assert all(q.names() and not q.none for q in chip_quirks().values())


def _errors_in_step(transport: Transport) -> None:
    """What a verification does not do by itself but the errors quirk is about: errors under secure
    messaging (a missing data group, an offset beyond the file), then the next commands."""
    session = PassportSession(transport)
    session.authenticate(KEY)
    before = session.protocol.secure_messaging
    with pytest.raises(CardFileNotFoundError):
        session.read_data_group(9)
    assert session.read_data_group(1)[:1] == b"\x61"
    with pytest.raises(IncorrectParametersError):
        session.protocol.send(CommandApdu(0x00, 0xB0, 0x7F, 0x00, le=16))  # offset beyond the file: 6B00
    # The counter stayed in step: the same session goes on.
    assert session.protocol.secure_messaging is before
    assert session.read_data_group(1)[:1] == b"\x61"


@pytest.mark.parametrize(
    ("quirk", "pace"),
    # BAC has no MSE:Set AT, so no parameter ID to want.
    [(q, p) for q in sorted(SAYS) for p in (True, False) if p or q != "pace-parameter-id"],
)
def test_verify_survives_the_quirk_in_process(
    quirk: str, pace: bool, ektp_quirky_passport: Any, caplog: pytest.LogCaptureFixture
) -> None:
    passport = ektp_quirky_passport(quirk, pace=pace)
    with caplog.at_level(logging.INFO, logger="ektp_card"):
        report = verify_passport(passport.card, KEY, passport.trust)
        if quirk == "errors-outside-ok":
            passport.card.power_off()
            passport.card.power_on()
            _errors_in_step(passport.card)
    assert report.genuine, report.reasons
    assert report.check("active-authentication").status is Status.PASS
    assert report.check("passive-authentication").status is Status.PASS
    assert SAYS[quirk] in caplog.text


def test_the_quirks_are_the_chips_not_the_terminals(ektp_passport: Any) -> None:
    """Each quirky chip does misbehave: a terminal that did not adapt would fail on it."""
    base = ektp_passport(pace=True).card

    def first(quirk: str, command: str, *, extended: bool = False) -> int:
        card = make_quirky(base, quirk)
        card.transceive(bytes.fromhex("00A4000C"))
        raw = CommandApdu.decode(bytes.fromhex(command))
        if extended:
            raw = raw.with_(extended=True)
        return int.from_bytes(card.transceive(raw.encode())[-2:], "big")

    assert first("read-limit", "00B09C0000") == SW.WRONG_LENGTH  # EF.CardAccess, Le 256
    assert first("read-limit-6c", "00B09C0000") == SW.wrong_le(0x80)
    assert first("read-limit", "00B09C0080") in (SW.OK, SW.END_OF_FILE)
    assert first("extended-length-refused", "00B0810000", extended=True) == SW.WRONG_LENGTH
    assert first("end-of-file-warning", "00B09C0000") == SW.END_OF_FILE
    assert make_quirky(base, ChipQuirks()).transceive(bytes.fromhex("00A4000C")) == b"\x90\x00"
    # MSE:Set AT for PACE-MRZ without DO 84.
    oid = bytes.fromhex("04007F00070202040204")
    mse = CommandApdu(0x00, 0x22, 0xC1, 0xA4, bytes([0x80, len(oid)]) + oid + bytes.fromhex("830101"))
    assert first("pace-parameter-id", mse.encode().hex()) == SW.INCORRECT_DATA


def test_a_large_rsa_signature_comes_in_parts(ektp_office: Any, caplog: pytest.LogCaptureFixture) -> None:
    """RSA-4096 Active Authentication on a chip that hands out 128 bytes per response: the 512-byte
    signature (and its protection) comes with several GET RESPONSE."""
    card = make_passport(ektp_office, pace=True, aa_rsa_bits=4096,
                         config=CardConfig(quirks=ChipQuirks(response_chunk=0x80)))
    with caplog.at_level(logging.DEBUG, logger="ektp_card"):
        report = verify_passport(card, KEY, ektp_office.trust)
    assert report.genuine, report.reasons
    assert report.active is not None and report.active.passed
    parts = re.search(r"answered INS 88 in (\d+) parts \(61xx\): (\d+) bytes", caplog.text)
    assert parts is not None and int(parts.group(1)) >= 5 and int(parts.group(2)) > 512


def test_a_quirky_card_image_keeps_its_quirks(tmp_path: Path, ektp_passport: Any) -> None:
    quirks = ChipQuirks(read_limit=0xDF, read_limit_word=0x6C00, end_of_file_warning=True)
    card = make_quirky(ektp_passport(pace=True).card, quirks)
    card.save(tmp_path / "q.card")
    assert VirtualCard.load(tmp_path / "q.card").config.quirks == quirks
    # A chip without quirks writes no quirks section: genuine images stay as they were.
    plain = ektp_passport(pace=True).card.dumps()
    assert b'"quirks"' not in plain


@pytest.mark.parametrize(
    "bad", [{"response_chunk": 300}, {"read_limit": -1}, {"read_limit_word": 0x6A82}]
)
def test_quirk_settings_are_checked(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="read limit|response chunk"):
        ChipQuirks(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("quirk", ["read-limit", "pace-parameter-id", "extended-length-refused"])
def test_cli_verify_says_what_it_adapted_to(
    quirk: str, capsys: pytest.CaptureFixture[str], ektp_quirky_passport: Any, run_cli: RunCli
) -> None:
    passport = ektp_quirky_passport(quirk)
    code, out, err = run_cli(capsys, "-v", "verify", "--virtual", str(passport.image), "--mrz", MRZ,
                             "--trust", str(passport.trust_dir))
    assert code == ExitCode.OK, err
    assert "GENUINE" in out and SAYS[quirk] in err and err.count("INFO") >= 1


def test_short_keeps_to_short_apdus_on_a_quirky_chip(ektp_quirky_passport: Any) -> None:
    """--short: no probe for extended length (it is not wanted), nothing to adapt to."""
    passport = ektp_quirky_passport("extended-length-refused")
    report = verify_passport(passport.card, KEY, passport.trust, extended=False)
    assert report.genuine and report.card_info is not None and report.card_info.extended_length


@pytest.mark.pcscd
@pytest.mark.parametrize("quirk", sorted(SAYS))
def test_verify_survives_the_quirk_through_pcscd(
    quirk: str, vpcd_bridge: Any, pcscd: str, ektp_quirky_passport: Any
) -> None:
    pytest.importorskip("smartcard", reason="pyscard is not installed (pip install -e '.[test]')")
    passport = ektp_quirky_passport(quirk)
    bridge = vpcd_bridge(passport.card)
    proc = subprocess.run(
        [sys.executable, "-m", "ektp_card", "-v", "verify", "--reader", pcscd, "--timeout", "5",
         "--mrz", MRZ, "--trust", str(passport.trust_dir)],
        capture_output=True, text=True, timeout=90, cwd=ROOT, env=dict(os.environ), check=False,
    )
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert "GENUINE" in proc.stdout
    assert bridge.commands > 10
    if quirk == "errors-outside-ok":
        # A genuine passport gives a verification no error to answer: provoke some, over pcscd too.
        from ektp_card.apdu.pcsc import PcscTransport

        with PcscTransport.open(pcscd, timeout=5) as transport:
            _errors_in_step(transport)
        return
    assert SAYS[quirk] in proc.stderr


def test_the_application_is_there(ektp_quirky_passport: Any) -> None:
    card = ektp_quirky_passport("read-limit").card
    assert card.fs.application(EMRTD_AID) is not None


# --- the reading strategy against any read limit --------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limit=st.integers(1, 256),
    word=st.sampled_from([0x6700, 0x6C00]),
    size=st.integers(0, 1200),
    chunk=st.sampled_from([0, 1, 37, 256]),
    eof=st.booleans(),
    short=st.booleans(),
)
def test_any_read_limit_still_reads_every_file_whole(
    limit: int, word: int, size: int, chunk: int, eof: bool, short: bool
) -> None:
    """Whatever N a chip reads at most (6700 or 6Cxx), in whatever parts it answers, warning at the end
    or not: a TLV file read by short identifier comes back whole, and so does one read by FID."""
    from ektp_card.apdu.tlv import Tlv
    from ektp_card.lds.profile import DEMO, DEMO_DF_FID, FileRef
    from ektp_card.session.card import CardSession
    from ektp_card.virtual.demo import demo_card

    content = Tlv(0x75, bytes(i % 251 for i in range(size))).encode()
    base = demo_card()
    app = base.fs.mf.child_df(DEMO_DF_FID)
    assert app is not None
    base.fs.create_ef(app, 0x0105, data=content, sfi=0x05)
    quirks = ChipQuirks(read_limit=limit, read_limit_word=word, response_chunk=chunk, end_of_file_warning=eof)
    card = make_quirky(base, quirks)
    session = CardSession(card, extended=False if short else None)
    session.discover()
    assert session.select_application((DEMO,)) is DEMO
    assert session.read(FileRef("TLV", sfi=0x05)) == content
    assert session.read(FileRef("TLV by FID", fid=0x0105)) == content
    assert session.read(FileRef("LARGE", fid=0x0103)) == bytes(i % 251 for i in range(1500))


@given(st.binary(max_size=12), st.binary(max_size=40))
def test_encoded_size_is_what_the_header_says(head: bytes, tail: bytes) -> None:
    from ektp_card.apdu.tlv import Tlv, encoded_size
    from ektp_card.errors import TlvError

    data = head + tail
    size = encoded_size(data)
    try:
        whole = Tlv.decode(data, strict=False)
    except TlvError:
        whole = None
    if whole is not None:
        assert size == len(data)
    if size is not None:
        assert size >= 2


@pytest.fixture(scope="module")
def pace_passport(ektp_office: Any) -> bytes:
    return make_passport(ektp_office, pace=True).dumps()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limit=st.integers(1, 256), word=st.sampled_from([0x6700, 0x6C00]), chunk=st.sampled_from([0, 64]),
       eof=st.booleans())
def test_any_read_limit_under_secure_messaging(
    pace_passport: bytes, ektp_office: Any, limit: int, word: int, chunk: int, eof: bool
) -> None:
    quirks = ChipQuirks(read_limit=limit, read_limit_word=word, response_chunk=chunk, end_of_file_warning=eof)
    card = make_quirky(VirtualCard.loads(pace_passport), quirks)
    report = verify_passport(card, KEY, ektp_office.trust)
    assert report.genuine, report.reasons


@pytest.mark.parametrize("quirk", sorted(SAYS))
def test_an_ektp_on_a_quirky_chip_is_genuine(
    quirk: str, ektp_issued_card: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from ektp_card.verify.card import verify_card

    card = make_quirky(ektp_issued_card.card, quirk)
    with caplog.at_level(logging.INFO, logger="ektp_card"):
        report = verify_card(card, ektp_issued_card.can, ektp_issued_card.trust,
                             terminal=ektp_issued_card.terminal)
    assert report.genuine, report.reasons
    # The issued e-KTP keeps its fingerprints on the card (no DG3): nothing to read there, nothing compared.
    others = [c for c in report.checks if c.name not in ("dg3", "fingerprint")]
    assert all(c.status is Status.PASS for c in others), report.checks
    if quirk != "errors-outside-ok":
        assert SAYS[quirk] in caplog.text


class _StopsShort:
    """A link to a chip that answers at most 100 bytes of a READ BINARY with 9000, without a word why."""

    def __init__(self, card: VirtualCard) -> None:
        self.card = card

    def transceive(self, command: bytes) -> bytes:
        response = self.card.transceive(command)
        if command[1] == 0xB0 and response[-2:] == b"\x90\x00" and len(response) > 102:
            return response[:100] + b"\x90\x00"
        return response


def test_a_chip_that_stops_short_silently(caplog: pytest.LogCaptureFixture) -> None:
    from ektp_card.apdu.tlv import Tlv
    from ektp_card.lds.profile import DEMO, DEMO_DF_FID, Application, FileRef
    from ektp_card.session.card import CardSession
    from ektp_card.virtual.demo import demo_card

    content = Tlv(0x75, bytes(i % 251 for i in range(700))).encode()
    card = demo_card()
    app = card.fs.mf.child_df(DEMO_DF_FID)
    assert app is not None
    card.fs.create_ef(app, 0x0105, data=content, sfi=0x05)
    session = CardSession(_StopsShort(card))
    session.discover()
    # The demo application's files are not LDS objects: a short answer is their end.
    session.select_application((DEMO,))
    assert session.read(FileRef("TLV", sfi=0x05)) == content[:100]
    # Read as an application whose every file is one BER-TLV object, the header says there is more.
    assert session.select_application((Application("lds", DEMO.aid, lds=True),)) is not None
    with caplog.at_level(logging.INFO, logger="ektp_card"):
        assert session.read(FileRef("TLV", sfi=0x05)) == content
    assert "TLV: the card stopped after 100 of 704 bytes; reading on" in caplog.text
    assert "reading at most 100 bytes" in caplog.text
