"""`ektp read` and `ektp virtual create --can/--pin/--mrz`: PACE and BAC from the command line, against
virtual images and through a real pcscd; the library behind them (ektp_card.access)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ektp_card.access import candidate_applications, parse_file, parse_mrz, read_card
from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.iso7816 import CardInfo
from ektp_card.apdu.transport import Transport
from ektp_card.crypto.kdf import Cipher
from ektp_card.errors import SecureMessagingError
from ektp_card.lds.profile import DEMO, FileRef
from ektp_card.session.card import CardSession, Credentials, protected_read_size
from ektp_card.virtual import VirtualCard
from ektp_card.virtual.demo import LARGE_CONTENT, PUBLIC_CONTENT
from ektp_card.virtual.pace import pin_retries
from ektp_card.virtual.profiles import PRIVATE_CONTENT, protected_demo_card

CAN, PIN = "802731", "4096"
MRZ = "L898902C<,690806,940623"  # ICAO Doc 9303-11 Appendix D
#: EF.CardAccess of the default PACE profile: one PACEInfo, ECDH-GM-AES-128 on brainpoolP256r1 (13).
CARD_ACCESS = bytes.fromhex("31143012060A04007F0007020204020202010202010D")
#: READ BINARY of EF.PUBLIC by SFI 01, plain.
READ_PUBLIC = bytes.fromhex("00B0810000")
SELECT_DEMO = CommandApdu(0x00, 0xA4, 0x04, 0x0C, DEMO.aid).encode()
ROOT = Path(__file__).parent.parent


def ektp(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EKTP_")}
    return subprocess.run(
        [sys.executable, "-m", "ektp_card", *args], input=stdin, cwd=ROOT,
        capture_output=True, text=True, timeout=60, env={**clean, **(env or {})}, check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The one `Error:` line of a failed run with exit ``code``."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def read_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(ok(ektp("--json", "read", *args, env=env)).stdout)
    return result


def files_of(result: dict[str, Any]) -> dict[str, bytes]:
    return {f["name"]: bytes.fromhex(f["hex"]) for f in result["files"]}


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A card image protected by PACE with CAN and PIN."""
    path = tmp_path / "pace.img"
    proc = ok(ektp("virtual", "create", str(path), "--can", CAN, "--pin", PIN))
    assert proc.stdout.strip() == f"Created virtual card {path} protected by PACE-CAN, PACE-PIN"
    return path


# --- virtual images through the CLI -----------------------------------------------------------------


def test_pace_can_reads_protected_files(image: Path) -> None:
    result = read_json("--virtual", str(image), "--can", CAN, "PUBLIC", "LARGE", "CardAccess", "0101")
    assert result["access"] == {
        "protocol": "PACE", "passwords": ["CAN"], "algorithm": "id-PACE-ECDH-GM-AES-CBC-CMAC-128",
        "parameter_id": 13, "curve": "brainpoolP256r1", "cipher": "AES-128",
    }
    assert result["application"] == {"name": "demo", "aid": "D360000000454B5450"}
    assert files_of(result) == {
        "PUBLIC": PUBLIC_CONTENT, "LARGE": LARGE_CONTENT, "CardAccess": CARD_ACCESS,
        "FID 0101": PUBLIC_CONTENT,
    }
    assert [f["address"] for f in result["files"]] == ["SFI 01", "SFI 03", "MF/SFI 1C", "FID 0101"]
    access = result["files"][2]["decoded"]
    assert access["pace_infos"] == [{
        "protocol": "0.4.0.127.0.7.2.2.4.2.2", "name": "id-PACE-ECDH-GM-AES-CBC-CMAC-128", "version": 2,
        "parameter_id": 13, "curve": "brainpoolP256r1", "supported": True,
    }]


def test_pace_can_read_over_nfc(image: Path) -> None:
    """The same PACE-CAN read over ISO/IEC 14443-4 through nfcpy's udp driver: the card side is our
    ISO-DEP implementation, so framing, chaining and secure messaging all go over the air model."""
    from ektp_card.virtual import VirtualCard
    from ektp_card.virtual.isodep import IsoDepCardServer

    with IsoDepCardServer(VirtualCard.load(image)) as server:
        result = read_json("--nfc", f"udp:127.0.0.1:{server.port}", "--can", CAN, "PUBLIC", "LARGE")
    assert result["access"]["protocol"] == "PACE" and result["access"]["passwords"] == ["CAN"]
    assert files_of(result) == {"PUBLIC": PUBLIC_CONTENT, "LARGE": LARGE_CONTENT}


def test_plain_read_of_a_protected_file(image: Path) -> None:
    line = error_line(ektp("read", "--virtual", str(image), "PUBLIC"), 6)
    assert line == (
        "Error: reading PUBLIC: card returned 6982: security status not satisfied"
        " (authenticate with --can, --pin or --mrz)"
    )
    # The CAN opens the application but not the PIN's file.
    line = error_line(ektp("read", "--virtual", str(image), "--can", CAN, "PRIVATE"), 6)
    assert "reading PRIVATE" in line and "6982" in line


def test_wrong_can(image: Path) -> None:
    proc = ektp("read", "--virtual", str(image), "--can", "000000")
    assert error_line(proc, 8) == "Error: PACE failed: wrong CAN"
    assert "000000" not in proc.stdout + proc.stderr


def test_can_from_environment_and_prompt(image: Path) -> None:
    result = read_json("--virtual", str(image), "PUBLIC", env={"EKTP_CAN": CAN})
    assert result["access"]["passwords"] == ["CAN"]
    proc = ektp("read", "--virtual", str(image), "--can", "-", "--format", "raw", "PUBLIC", stdin=CAN + "\n")
    ok(proc)
    assert proc.stdout == PUBLIC_CONTENT.decode()
    assert CAN not in proc.stderr


def test_pin_retry_counter_across_processes(image: Path) -> None:
    """Three tries, suspended after two failures, resumed by PACE-CAN, blocked after a failed resume.
    Each step is a new process: the counter lives in the card image."""

    def read(*args: str) -> subprocess.CompletedProcess[str]:
        return ektp("read", "--virtual", str(image), *args, "PRIVATE")

    def retries() -> int | None:
        return pin_retries(VirtualCard.load(image))

    assert retries() == 3
    assert error_line(read("--pin", "1111"), 8) == "Error: PACE failed: wrong PIN: 2 tries left"
    assert retries() == 2
    assert error_line(read("--pin", "1111"), 8) == (
        "Error: PACE failed: wrong PIN: 1 try left, the PIN is suspended until PACE with the CAN"
        " (give --can as well to resume it)"
    )
    assert retries() == 1
    # Suspended: even the right PIN alone is not tried, and costs nothing.
    assert error_line(read("--pin", PIN), 8) == (
        "Error: the PIN is suspended: run PACE with the CAN first (give --can as well to resume it)"
    )
    assert retries() == 1
    # PACE-CAN, then PACE-PIN inside its session: resumed, and the counter is back at 3.
    result = read_json("--virtual", str(image), "--can", CAN, "--pin", PIN, "PRIVATE")
    assert result["access"]["passwords"] == ["CAN", "PIN"]
    assert files_of(result) == {"PRIVATE": PRIVATE_CONTENT}
    assert retries() == 3
    # Two failures again, then a failed resume blocks the PIN for good.
    read("--pin", "1111")
    read("--pin", "1111")
    assert error_line(read("--can", CAN, "--pin", "1111"), 8) == "Error: PACE failed: the PIN is blocked"
    assert retries() == 0
    assert error_line(read("--can", CAN, "--pin", PIN), 8) == "Error: PACE failed: the PIN is blocked"
    # The CAN still opens what it opens.
    assert files_of(read_json("--virtual", str(image), "--can", CAN, "PUBLIC")) == {"PUBLIC": PUBLIC_CONTENT}


def test_bac_with_the_mrz(tmp_path: Path) -> None:
    passport = tmp_path / "bac.img"
    created = ok(ektp("virtual", "create", str(passport), "--mrz", MRZ))
    assert created.stdout.strip().endswith("protected by BAC")
    result = read_json("--virtual", str(passport), "--mrz", MRZ, "PUBLIC", "LARGE")
    assert result["access"]["protocol"] == "BAC" and result["access"]["cipher"] == "3DES"
    assert files_of(result) == {"PUBLIC": PUBLIC_CONTENT, "LARGE": LARGE_CONTENT}
    # A whole TD3 MRZ works as well (ICAO Doc 9303-11 Appendix D's document).
    td3 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C<3UTO6908061F9406236ZE184226B<<<<<14"
    result = read_json("--virtual", str(passport), "--mrz", td3, "PUBLIC")
    assert files_of(result) == {"PUBLIC": PUBLIC_CONTENT}
    line = error_line(ektp("read", "--virtual", str(passport), "--mrz", "L898902C<,690806,940624"), 8)
    assert line == (
        "Error: BAC refused by the card: check the document number, date of birth and date of expiry"
    )
    line = error_line(ektp("read", "--virtual", str(passport), "--can", CAN), 8)
    assert line == "Error: the card does not offer PACE: it has no readable EF.CardAccess"


def test_mrz_prefers_pace_when_offered(tmp_path: Path) -> None:
    path = tmp_path / "both.img"
    proc = ok(ektp("virtual", "create", str(path), "--can", CAN, "--mrz", MRZ))
    assert proc.stdout.strip().endswith("protected by PACE-CAN, PACE-MRZ, BAC")
    result = read_json("--virtual", str(path), "--mrz", MRZ, "PUBLIC")
    assert (result["access"]["protocol"], result["access"]["passwords"]) == ("PACE", ["MRZ"])


def test_random_can_is_shown_once_and_works(tmp_path: Path) -> None:
    path = tmp_path / "random.img"
    created = json.loads(ok(ektp("--json", "virtual", "create", str(path), "--can", "random")).stdout)
    assert created["access"] == ["PACE-CAN"] and re.fullmatch(r"\d{6}", created["can"])
    assert files_of(read_json("--virtual", str(path), "--can", created["can"], "PUBLIC")) == {
        "PUBLIC": PUBLIC_CONTENT
    }
    chosen = json.loads(ok(ektp("--json", "virtual", "create", str(tmp_path / "c.img"), "--can", CAN)).stdout)
    assert "can" not in chosen
    line = error_line(ektp("virtual", "create", str(tmp_path / "d.img"), "--can", "12ab"), 2)
    assert line == "Error: the CAN must be 4 to 12 digits"


def test_secrets_never_in_the_verbose_log(image: Path) -> None:
    for args in (("--can", CAN, "--pin", PIN), ("--can", "135790")):
        proc = ektp("-vvv", "read", "--virtual", str(image), *args, "PUBLIC")
        assert ">> 0022C1A4" in proc.stderr  # the traffic log is on
        for secret in (CAN, PIN, "135790"):
            # Neither as text in a message, nor as ISO/IEC 8859-1 bytes in an APDU's hex.
            assert secret.encode().hex().upper() not in proc.stderr
            messages = re.sub(r"(>>|<<) [0-9A-F]+", "", proc.stderr)
            assert secret not in messages


def test_output_formats(image: Path, tmp_path: Path) -> None:
    proc = ok(ektp("read", "--virtual", str(image), "--can", CAN, "--format", "decoded", "CardAccess", "ATR"))
    assert proc.stdout.splitlines() == [
        "PACE with the CAN (id-PACE-ECDH-GM-AES-CBC-CMAC-128, brainpoolP256r1); "
        "application demo (D360000000454B5450)",
        "CardAccess (MF/SFI 1C), 22 bytes",
        "  PACEInfo  id-PACE-ECDH-GM-AES-CBC-CMAC-128  version 2  parameter ID 13 (brainpoolP256r1)",
        "ATRINFO (MF/SFI 01), 21 bytes",
        "  command chaining   yes",
        "  extended length    yes",
        "  max command APDU   65544",
        "  max response APDU  65538",
    ]
    proc = ok(ektp("read", "--virtual", str(image), "--can", CAN, "PUBLIC"))
    assert proc.stdout.splitlines()[1:3] == [
        "PUBLIC (SFI 01), 40 bytes",
        "  0000  65 6B 74 70 2D 63 61 72 64 20 64 65 6D 6F 20 61  ektp-card demo a",
    ]
    out = tmp_path / "dump"
    ok(ektp("read", "--virtual", str(image), "--can", CAN, "--out", str(out), "LARGE", "MF/1C", "--short"))
    assert (out / "LARGE.bin").read_bytes() == LARGE_CONTENT
    assert (out / "MF-SFI_1C.bin").read_bytes() == CARD_ACCESS


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--mrz", MRZ, "--can", CAN), "give --mrz alone"),
        (("--can", CAN, "NOSUCH"), "unknown file 'NOSUCH'"),
        (("--can", CAN, "PUBLIC", "DG1"), "no single application has all of PUBLIC, DG1"),
        (("--can", CAN, "1F"), "a short EF identifier is 01 to 1E"),
        (("--can", CAN, "--format", "raw", "PUBLIC", "LARGE"), "name exactly one"),
        (("--mrz", "L898902C<,690806,9406"), "--mrz: the date of expiry must be six digits"),
    ],
)
def test_usage_errors(image: Path, args: tuple[str, ...], needle: str) -> None:
    assert needle in error_line(ektp("read", "--virtual", str(image), *args), 2)


def test_named_application_must_be_there(image: Path) -> None:
    line = error_line(ektp("read", "--virtual", str(image), "--can", CAN, "--app", "emrtd"), 6)
    assert line == "Error: the card has no eMRTD application"


# --- the library behind the command ------------------------------------------------------------------


def test_file_names() -> None:
    assert parse_file("EF.COM", candidate_applications(["EF.COM"])[0]) == FileRef("COM", 0x1E, 0x011E)
    assert parse_file("dg14", candidate_applications(["dg14"])[0]) == FileRef("DG14", 14, 0x010E)
    assert parse_file("ATR/INFO") == FileRef("ATRINFO", 1, 0x2F01, in_mf=True)
    assert parse_file("ef.cardaccess") == FileRef("CardAccess", 0x1C, 0x011C, in_mf=True)
    assert parse_file("5") == FileRef("SFI 05", sfi=5)
    assert parse_file("MF/2F00") == FileRef("MF/FID 2F00", fid=0x2F00, in_mf=True)
    assert parse_file("PUBLIC", DEMO) == FileRef("PUBLIC", 1, 0x0101)
    with pytest.raises(ValueError, match="eMRTD"):
        parse_file("SOD", DEMO)
    with pytest.raises(ValueError, match="reserved"):
        parse_file("3F00")


def test_protected_read_sizes() -> None:
    extended = CardInfo(True, True, 65544, 65538)
    assert protected_read_size(Cipher.AES128, None, True) == 223
    assert protected_read_size(Cipher.TDES, extended, False) == 231
    # 65538 - 2 (SW) - 4 (87 82 LL LL) - 1 (01) - 4 (DO99) - 10 (DO8E) = 65517 -> 65504 padded -> 65503.
    assert protected_read_size(Cipher.AES256, extended, True) == 65503
    assert protected_read_size(Cipher.TDES, extended, True) == 65511
    assert protected_read_size(Cipher.AES128, CardInfo(True, True, 1033, 1026), True) == 991


def test_credentials_hide_their_values() -> None:
    credentials = Credentials(can=CAN, pin=PIN)
    assert repr(credentials) == "Credentials(CAN, PIN)" and str(credentials) == "Credentials(CAN, PIN)"
    assert repr(Credentials(mrz=parse_mrz(MRZ))) == "Credentials(MRZ)" and not Credentials()
    with pytest.raises(ValueError, match="MRZ alone"):
        Credentials(can=CAN, mrz=parse_mrz(MRZ))


def test_read_card_in_process_with_extended_and_short_reads() -> None:
    card = protected_demo_card(can=CAN)
    sent: list[bytes] = []

    class Recorder:
        def transceive(self, command: bytes) -> bytes:
            sent.append(command)
            return card.transceive(command)

    result = read_card(Recorder(), Credentials(can=CAN), ["LARGE"])
    assert result.files[0].data == LARGE_CONTENT
    assert sent[-1][4:7] == b"\x00\x00\x0E"  # one extended protected READ BINARY: DO97 (2 bytes) + DO8E
    card.power_on()
    sent.clear()
    result = read_card(Recorder(), Credentials(can=CAN), ["LARGE"], extended=False)
    assert result.files[0].data == LARGE_CONTENT
    reads = [c for c in sent if c[1] == 0xB0 and c[0] == 0x0C]
    assert len(reads) == 7  # ceil(1500 / 223)


# --- through a real pcscd ------------------------------------------------------------------------------

Serve = Callable[..., Any]


class Wire:
    """A transport in front of another that records commands and can tamper with one exchange."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sent: list[bytes] = []
        self.flip_next_command = False
        self.flip_next_response = False

    def transceive(self, command: bytes) -> bytes:
        if self.flip_next_command:
            self.flip_next_command = False
            # The last byte of the data field: the end of DO8E, the MAC.
            apdu = CommandApdu.decode(command)
            flipped = apdu.with_(data=apdu.data[:-1] + bytes([apdu.data[-1] ^ 0x01]))
            command = flipped.encode(extended=apdu.extended)
        self.sent.append(command)
        response = self.inner.transceive(command)
        if self.flip_next_response:
            self.flip_next_response = False
            response = response[:3] + bytes([response[3] ^ 0x80]) + response[4:]
        return response


def pace_session(transport: Transport) -> tuple[CardSession, Wire]:
    wire = Wire(transport)
    session = CardSession(wire)
    session.discover()
    session.authenticate(Credentials(can=CAN))
    assert session.select_application([DEMO]) is DEMO
    return session, wire


PUBLIC_REF = FileRef("PUBLIC", 1)


@pytest.mark.pcscd
def test_pcscd_pace_can_and_protected_reads(vpcd_bridge: Serve, pcscd: str) -> None:
    from ektp_card.apdu.pcsc import PcscTransport

    card = protected_demo_card(can=CAN, pin=PIN)
    vpcd_bridge(card)
    with PcscTransport.open(pcscd) as transport:
        assert transport.transceive(SELECT_DEMO) == b"\x90\x00"
        assert transport.transceive(READ_PUBLIC) == b"\x69\x82"
        result = read_card(transport, Credentials(can=CAN), ["PUBLIC", "LARGE", "CardAccess"])
        assert [f.data for f in result.files] == [PUBLIC_CONTENT, LARGE_CONTENT, CARD_ACCESS]
        assert card.security.granted == {"PACE", "PACE_CAN"}
    # The command line, in another process, through the same reader.
    result_json = read_json("--reader", pcscd, "--can", CAN, "--pin", PIN, "PRIVATE", "LARGE")
    assert files_of(result_json) == {"PRIVATE": PRIVATE_CONTENT, "LARGE": LARGE_CONTENT}
    line = error_line(ektp("read", "--reader", pcscd, "--can", "000000"), 8)
    assert line == "Error: PACE failed: wrong CAN"


@pytest.mark.pcscd
def test_pcscd_tampered_response_mac(vpcd_bridge: Serve, pcscd: str) -> None:
    from ektp_card.apdu.pcsc import PcscTransport

    card = protected_demo_card(can=CAN)
    vpcd_bridge(card)
    with PcscTransport.open(pcscd) as transport:
        session, wire = pace_session(transport)
        assert session.read(PUBLIC_REF) == PUBLIC_CONTENT
        wire.flip_next_response = True
        with pytest.raises(SecureMessagingError, match="the response MAC does not verify"):
            session.read(PUBLIC_REF)
        # The terminal dropped its keys: nothing more goes out under them.
        with pytest.raises(SecureMessagingError, match="the session is closed"):
            session.read(PUBLIC_REF)
        # The card refuses the next command (plain: its secure messaging ends), then the file.
        assert transport.transceive(READ_PUBLIC) == b"\x69\x88"
        assert transport.transceive(READ_PUBLIC) == b"\x69\x82"
        assert card.security.channel is None and not card.security.granted


@pytest.mark.pcscd
def test_pcscd_tampered_command_mac(vpcd_bridge: Serve, pcscd: str) -> None:
    from ektp_card.apdu.pcsc import PcscTransport

    card = protected_demo_card(can=CAN)
    vpcd_bridge(card)
    with PcscTransport.open(pcscd) as transport:
        session, wire = pace_session(transport)
        wire.flip_next_command = True
        with pytest.raises(SecureMessagingError, match=r"the card rejected the secure messaging \(6988\)"):
            session.read(PUBLIC_REF)
        assert card.security.channel is None and not card.security.granted
        assert transport.transceive(READ_PUBLIC) == b"\x69\x82"


@pytest.mark.pcscd
def test_pcscd_replayed_command(vpcd_bridge: Serve, pcscd: str) -> None:
    from ektp_card.apdu.pcsc import PcscTransport

    card = protected_demo_card(can=CAN)
    vpcd_bridge(card)
    with PcscTransport.open(pcscd) as transport:
        session, wire = pace_session(transport)
        assert session.read(PUBLIC_REF) == PUBLIC_CONTENT
        old_read = wire.sent[-1]
        assert old_read[:4] == bytes.fromhex("0CB08100")
        assert session.read(PUBLIC_REF) == PUBLIC_CONTENT
        # Byte for byte what the terminal sent before: its MAC was over an older SSC.
        assert transport.transceive(old_read) == b"\x69\x88"
        assert card.security.channel is None
        with pytest.raises(SecureMessagingError, match="6988|without secure messaging"):
            session.read(PUBLIC_REF)


@pytest.mark.pcscd
def test_pcscd_reset_ends_the_session(vpcd_bridge: Serve, pcscd: str) -> None:
    from ektp_card.apdu.pcsc import PcscTransport

    card = protected_demo_card(can=CAN)
    vpcd_bridge(card)
    with PcscTransport.open(pcscd) as transport:
        session, wire = pace_session(transport)
        assert session.read(PUBLIC_REF) == PUBLIC_CONTENT
        keys = session.protocol.secure_messaging
    # Disconnecting resets the card (PcscTransport's reset_on_close): the PACE session is gone.
    with PcscTransport.open(pcscd) as transport:
        assert card.security.channel is None and not card.security.granted
        assert transport.transceive(SELECT_DEMO) == b"\x90\x00"
        assert transport.transceive(READ_PUBLIC) == b"\x69\x82"
        # A command protected with the old session's keys finds no secure messaging to check it.
        assert keys is not None
        protected = keys.wrap(CommandApdu.decode(READ_PUBLIC)).encode()
        assert transport.transceive(protected) == b"\x68\x82"
        session, _ = pace_session(transport)
        assert session.read(PUBLIC_REF) == PUBLIC_CONTENT
