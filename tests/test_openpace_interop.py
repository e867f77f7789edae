"""PACE and secure messaging against an independent implementation: OpenPACE's libeac.

A small C program (tests/interop/pace_harness.c, compiled once per session against libeac) runs one
side of PACE-ECDH-GM with libeac's own cryptography and speaks hex APDUs over stdin/stdout:

* libeac as the terminal against our virtual card (``VirtualCard.transceive``): it reads
  EF.CardAccess, runs MSE:Set AT and GENERAL AUTHENTICATE x4, then sends commands under secure
  messaging that our card must accept, and verifies and decrypts our card's protected answers;
* our terminal (:func:`perform_pace` over :class:`ApduProtocol`) against libeac as the chip, then a
  protected SELECT and READ BINARY that libeac's keys and SSC unwrap and answer.

Integrated Mapping is not tested both ways: libeac's id-PACE-ECDH-IM-* is the TR-03110 v2.01 draft,
not ICAO Doc 9303-11's, and ignores the password (tests/interop/im_probe.c shows it; see the last
test). Ours is checked against ICAO Doc 9303-11 Appendix H.1 instead (tests/test_pace.py).

Debian packages: libeac-dev libeac3 openpace libssl-dev gcc. Without them the tests skip (and fail
under CI=true).
"""

from __future__ import annotations

import os
import select
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ektp_card.apdu.iso7816 import Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.crypto.mrz import MrzInfo, check_digit
from ektp_card.crypto.pace import (
    ECDH_GM_3DES,
    ECDH_GM_AES128,
    ECDH_GM_AES192,
    ECDH_GM_AES256,
    PaceAlgorithm,
    PaceParameters,
    Password,
    PasswordType,
    mse_set_at,
    perform_pace,
)
from ektp_card.crypto.sm import SecureMessagingSession
from ektp_card.errors import PacePasswordError, SecureMessagingError
from ektp_card.lds import PaceInfo
from ektp_card.lds.card_access import CardAccess
from ektp_card.session.card import read_card_access
from ektp_card.virtual import AccessCondition, SecurityAttributes, VirtualCard, demo_card
from ektp_card.virtual.demo import DEMO_AID
from ektp_card.virtual.pace import install_pace

if TYPE_CHECKING:
    from fixtures.tools import BuildLibeac

HARNESS_SOURCE = Path(__file__).parent / "interop" / "pace_harness.c"
#: Seconds to wait for one line from the harness; a run takes milliseconds.
LINE_TIMEOUT = 20.0

CAN, PIN, PUK = "123456", "2468", "87654321"
#: ICAO Doc 9303-11 Appendix G.1's MRZ fields, as a TD1 MRZ (ICAO Doc 9303-5), the form libeac parses.
MRZ_FIELDS = ("T22000129", "640812", "101031")
EF_PACE_FID, EF_PACE_SFI = 0x0105, 5
PACE_CONTENT = b"readable after PACE only"
SELECT_DEMO = bytes((0x00, 0xA4, 0x04, 0x0C, len(DEMO_AID))) + DEMO_AID
READ_PACE_EF = bytes((0x00, 0xB0, 0x80 | EF_PACE_SFI, 0x00, 0x00))
#: Served by libeac's chip: longer than one protected READ BINARY, so the offsets are exercised too.
CHIP_FILE = bytes(range(256)) + b"end of the file served by libeac"


@pytest.fixture(scope="session")
def harness(build_libeac: BuildLibeac) -> Path:
    """The harness, compiled once per session."""
    return build_libeac(HARNESS_SOURCE)


class Harness:
    """The running harness: lines out on its stdin, lines in from its stdout, with a timeout."""

    def __init__(self, binary: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(binary), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self._pending = b""
        self.stderr = ""

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def receive(self) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._pending:
            ready, _, _ = select.select([fd], [], [], LINE_TIMEOUT)
            if not ready:
                raise AssertionError(f"the harness said nothing for {LINE_TIMEOUT:g} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"the harness ended early:\n{self.finish()}")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode()

    def finish(self) -> str:
        """Close its input, wait for it to end, and return what it wrote on stderr."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=LINE_TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stderr is not None
        self.stderr += self.proc.stderr.read().decode()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return self.stderr


@contextmanager
def running(binary: Path, *args: str) -> Iterator[Harness]:
    process = Harness(binary, *args)
    try:
        yield process
    finally:
        process.finish()


# --- the cases ------------------------------------------------------------------------------------


_MAKERS = {PasswordType.CAN: Password.can, PasswordType.PIN: Password.pin, PasswordType.PUK: Password.puk}


@dataclass(frozen=True)
class Secret:
    """A PACE password as both sides take it: our Password, libeac's type and string."""

    type: PasswordType
    text: str  # the CAN, PIN or PUK; for the MRZ the whole TD1 zone, lines run together

    @property
    def libeac_type(self) -> str:
        return self.type.name.lower()

    def ours(self) -> Password:
        if self.type is PasswordType.MRZ:
            return Password.from_mrz_information(MrzInfo.from_mrz(self.text).mrz_information)
        return _MAKERS[self.type](self.text)


def td1_mrz(document_number: str, date_of_birth: str, date_of_expiry: str) -> str:
    """A TD1 MRZ (ICAO Doc 9303-5), lines run together, with the composite check digit over upper
    line positions 6-30 and middle line positions 1-7, 9-15 and 19-29."""
    upper = f"I<UTO{document_number}{check_digit(document_number)}".ljust(30, "<")
    middle = f"{date_of_birth}{check_digit(date_of_birth)}F{date_of_expiry}{check_digit(date_of_expiry)}UTO"
    middle = middle.ljust(29, "<")
    composite = upper[5:30] + middle[0:7] + middle[8:15] + middle[18:29]
    lower = "ERIKSSON<<ANNA<MARIA".ljust(30, "<")
    return upper + middle + check_digit(composite) + lower


CAN_SECRET = Secret(PasswordType.CAN, CAN)
SECRETS = [
    CAN_SECRET,
    Secret(PasswordType.PIN, PIN),
    Secret(PasswordType.PUK, PUK),
    Secret(PasswordType.MRZ, td1_mrz(*MRZ_FIELDS)),
]

#: Every standardized curve (ICAO Doc 9303-11 section 9.5.1, IDs 8-18) once, every cipher at least
#: twice, and the combination of Appendix G.1 first.
COMBINATIONS = [
    (ECDH_GM_AES128, 13),  # brainpoolP256r1
    (ECDH_GM_AES128, 12),  # NIST P-256
    (ECDH_GM_AES192, 16),  # brainpoolP384r1
    (ECDH_GM_AES256, 17),  # brainpoolP512r1
    (ECDH_GM_AES256, 18),  # NIST P-521
    (ECDH_GM_AES192, 15),  # NIST P-384
    (ECDH_GM_AES256, 14),  # brainpoolP320r1
    (ECDH_GM_AES128, 11),  # brainpoolP224r1
    (ECDH_GM_AES192, 10),  # NIST P-224
    (ECDH_GM_3DES, 9),  # brainpoolP192r1
    (ECDH_GM_3DES, 8),  # NIST P-192
    (ECDH_GM_3DES, 13),
]


def combination_id(value: object) -> str:
    return value.name[8:] if isinstance(value, PaceAlgorithm) else str(value)


def pace_card(info: PaceInfo) -> VirtualCard:
    """Our virtual card offering ``info`` with every password, and an EF readable only after PACE."""
    card = demo_card()
    card.fs.create_ef(
        card.fs.application(DEMO_AID),
        EF_PACE_FID,
        data=PACE_CONTENT,
        sfi=EF_PACE_SFI,
        access=SecurityAttributes(AccessCondition.require("PACE"), AccessCondition.NEVER),
    )
    install_pace(card, can=CAN, pin=PIN, puk=PUK, mrz=MrzInfo(*MRZ_FIELDS), infos=(info,))
    return card


# --- (a) libeac as the terminal, our virtual card as the chip ---------------------------------------


@dataclass
class TerminalRun:
    """What libeac as the terminal did: its commands, what it parsed, what it decrypted."""

    commands: list[bytes] = field(default_factory=list)
    info: str = ""
    plain_responses: list[bytes] = field(default_factory=list)
    error: str = ""
    stderr: str = ""


def libeac_terminal(
    harness: Path,
    card: VirtualCard,
    secret: Secret,
    then: list[bytes],
    *,
    parameter_id: bool = False,
    tamper: Callable[[bytes], bytes] = lambda c: c,
) -> TerminalRun:
    """Let libeac run PACE against ``card`` and then send ``then`` under secure messaging;
    ``tamper`` may rewrite each command on its way to the card."""
    args = ["pcd", "--type", secret.libeac_type, "--password", secret.text]
    args += ["--parameter-id"] if parameter_id else []
    for apdu in then:
        args += ["--then", apdu.hex()]
    run = TerminalRun()
    with running(harness, *args) as process:
        while True:
            kind, _, rest = process.receive().partition(" ")
            if kind == "C":
                command = bytes.fromhex(rest)
                run.commands.append(command)
                process.send(card.transceive(tamper(command)).hex())
            elif kind == "INFO":
                run.info = rest
            elif kind == "R":
                run.plain_responses.append(bytes.fromhex(rest))
            elif kind == "ERR":
                run.error = rest
                break
            elif kind == "DONE":
                break
            else:
                raise AssertionError(f"unexpected harness line {kind} {rest}")
    run.stderr = process.stderr
    return run


@pytest.mark.parametrize(("algorithm", "parameter_id"), COMBINATIONS, ids=combination_id)
def test_libeac_terminal_with_our_card(harness: Path, algorithm: PaceAlgorithm, parameter_id: int) -> None:
    card = pace_card(PaceInfo(algorithm.oid, 2, parameter_id))
    run = libeac_terminal(harness, card, CAN_SECRET, [SELECT_DEMO, READ_PACE_EF])
    assert run.error == "", run.error
    # libeac parsed our EF.CardAccess as we wrote it, and built MSE:Set AT byte for byte as we do.
    assert run.info == f"{algorithm.oid} {parameter_id}"
    parameters = PaceParameters(algorithm, parameter_id)
    assert run.commands[2] == mse_set_at(parameters, PasswordType.CAN).encode()
    assert [c[:2].hex().upper() for c in run.commands[3:7]] == ["1086", "1086", "1086", "0086"]
    assert card.security.granted == {"PACE", "PACE_CAN"}
    # Our card accepted libeac's protected commands, and libeac verified and decrypted our answers.
    assert [c[:4].hex().upper() for c in run.commands[7:]] == ["0CA4040C", "0CB08500"]
    assert run.plain_responses == [bytes.fromhex("9000"), PACE_CONTENT + bytes.fromhex("9000")]


@pytest.mark.parametrize("secret", SECRETS, ids=lambda s: s.type.name)
def test_libeac_terminal_passwords(harness: Path, secret: Secret) -> None:
    card = pace_card(PaceInfo(ECDH_GM_AES128.oid, 2, 13))
    run = libeac_terminal(harness, card, secret, [SELECT_DEMO, READ_PACE_EF], parameter_id=True)
    assert run.error == "", run.error
    parameters = PaceParameters(ECDH_GM_AES128, 13)
    assert run.commands[2] == mse_set_at(parameters, secret.type, send_parameter_id=True).encode()
    assert card.security.granted == {"PACE", f"PACE_{secret.type.name}"}
    assert run.plain_responses[-1] == PACE_CONTENT + bytes.fromhex("9000")


def test_libeac_terminal_wrong_can(harness: Path) -> None:
    card = pace_card(PaceInfo(ECDH_GM_AES128.oid, 2, 13))
    run = libeac_terminal(harness, card, Secret(PasswordType.CAN, "654321"), [READ_PACE_EF])
    # Our card refuses libeac's token: the keys differ.
    assert run.error == "GENERAL AUTHENTICATE for DO86 answered 6300"
    assert not card.security.granted and card.security.channel is None


def flip_command_mac(command: bytes) -> bytes:
    """Alter the last MAC byte of a protected short command (... 8E 08 <MAC> Le)."""
    if command[0] & 0x0C != 0x0C:
        return command
    assert command[-11:-9] == b"\x8e\x08"
    return command[:-2] + bytes((command[-2] ^ 0x01,)) + command[-1:]


def test_libeac_terminal_tampered_command(harness: Path) -> None:
    card = pace_card(PaceInfo(ECDH_GM_AES128.oid, 2, 13))
    run = libeac_terminal(harness, card, CAN_SECRET, [SELECT_DEMO], tamper=flip_command_mac)
    # Our card refuses the altered MAC with 6988 in the clear, which libeac cannot verify.
    assert run.error == "the protected response (SW 6988) does not verify"
    assert not card.security.granted and card.security.channel is None


# --- (b) our terminal, libeac as the chip ------------------------------------------------------------


class LibeacChip:
    """A transport whose card is libeac: each command one line out, each response one line back."""

    def __init__(
        self,
        process: Harness,
        *,
        tamper_command: Callable[[bytes], bytes] = lambda c: c,
        tamper_response: Callable[[bytes], bytes] = lambda r: r,
    ) -> None:
        self.process = process
        self.tamper_command = tamper_command
        self.tamper_response = tamper_response

    def transceive(self, command: bytes) -> bytes:
        self.process.send(self.tamper_command(command).hex())
        line = self.process.receive()
        if line.startswith("ERR"):
            raise AssertionError(f"the libeac chip failed: {line}")
        return self.tamper_response(bytes.fromhex(line))


def libeac_chip(info: PaceInfo, secret: Secret) -> list[str]:
    """The harness arguments for libeac as the chip offering ``info`` and knowing ``secret``."""
    card_access = CardAccess((info,)).encode()
    args = ["picc", "--type", secret.libeac_type, "--password", secret.text]
    return [*args, "--card-access", card_access.hex(), "--file", CHIP_FILE.hex()]


def plain_commands(stderr: str) -> list[str]:
    """The commands libeac's chip unwrapped, in order."""
    return [line.split()[1] for line in stderr.splitlines() if line.startswith("PLAIN ")]


def our_terminal(protocol: ApduProtocol, secret: Secret) -> bytes:
    """Read EF.CardAccess, run PACE with what it offers, select and read a file under SM."""
    session = Iso7816Session(protocol)
    parameters, explicit = read_card_access(session).choose_pace()
    perform_pace(protocol, secret.ours(), parameters, send_parameter_id=explicit)
    assert isinstance(protocol.secure_messaging, SecureMessagingSession)
    session.select_aid(DEMO_AID)
    return session.read_file(sfi=EF_PACE_SFI)


@pytest.mark.parametrize(("algorithm", "parameter_id"), COMBINATIONS, ids=combination_id)
def test_our_terminal_with_libeac_chip(harness: Path, algorithm: PaceAlgorithm, parameter_id: int) -> None:
    info = PaceInfo(algorithm.oid, 2, parameter_id)
    with running(harness, *libeac_chip(info, CAN_SECRET)) as process:
        protocol = ApduProtocol(LibeacChip(process))
        assert our_terminal(protocol, CAN_SECRET) == CHIP_FILE
    assert "PACE established" in process.stderr
    # libeac unwrapped exactly the commands we meant: SELECT by AID, then READ BINARY by SFI 5.
    plain = plain_commands(process.stderr)
    assert plain[0] == SELECT_DEMO.hex().upper()
    assert plain[1].startswith("00B08500") and all(c.startswith("00B0") for c in plain[2:])
    assert len(plain) == 3  # the file takes two protected reads


@pytest.mark.parametrize("secret", SECRETS, ids=lambda s: s.type.name)
def test_our_terminal_passwords(harness: Path, secret: Secret) -> None:
    info = PaceInfo(ECDH_GM_AES128.oid, 2, 13)
    with running(harness, *libeac_chip(info, secret)) as process:
        assert our_terminal(ApduProtocol(LibeacChip(process)), secret) == CHIP_FILE
    assert "PACE established" in process.stderr


def test_our_terminal_wrong_can(harness: Path) -> None:
    info = PaceInfo(ECDH_GM_AES128.oid, 2, 13)
    with running(harness, *libeac_chip(info, CAN_SECRET)) as process:
        protocol = ApduProtocol(LibeacChip(process))
        with pytest.raises(PacePasswordError, match="wrong CAN"):
            our_terminal(protocol, Secret(PasswordType.CAN, "654321"))
        assert protocol.secure_messaging is None
    assert "TOKEN the terminal's authentication token did not verify" in process.stderr


def test_our_terminal_refuses_tampered_response(harness: Path) -> None:
    def flip_protected_mac(response: bytes) -> bytes:
        # Protected responses end DO8E (8E 08 <MAC>) SW1 SW2: alter the MAC's last byte.
        if len(response) > 12 and response[-12:-10] == b"\x8e\x08":
            return response[:-3] + bytes((response[-3] ^ 0x01,)) + response[-2:]
        return response

    info = PaceInfo(ECDH_GM_AES128.oid, 2, 13)
    with running(harness, *libeac_chip(info, CAN_SECRET)) as process:
        protocol = ApduProtocol(LibeacChip(process, tamper_response=flip_protected_mac))
        with pytest.raises(SecureMessagingError, match="response MAC does not verify"):
            our_terminal(protocol, CAN_SECRET)
    assert plain_commands(process.stderr) == [SELECT_DEMO.hex().upper()]


def test_libeac_chip_refuses_tampered_command(harness: Path) -> None:
    info = PaceInfo(ECDH_GM_AES128.oid, 2, 13)
    with running(harness, *libeac_chip(info, CAN_SECRET)) as process:
        protocol = ApduProtocol(LibeacChip(process, tamper_command=flip_command_mac))
        with pytest.raises(SecureMessagingError, match="rejected the secure messaging .6988."):
            our_terminal(protocol, CAN_SECRET)
    assert "SM the protected command does not verify" in process.stderr
    assert plain_commands(process.stderr) == []


# --- Integrated Mapping: why libeac cannot check ours ------------------------------------------------

IM_PROBE_SOURCE = Path(__file__).parent / "interop" / "im_probe.c"


@pytest.fixture(scope="session")
def im_probe(build_libeac: BuildLibeac) -> Path:
    """tests/interop/im_probe.c, compiled once per session."""
    return build_libeac(IM_PROBE_SOURCE)


def probe(binary: Path, algorithm: PaceAlgorithm, terminal_can: str, chip_can: str) -> dict[str, str]:
    access = CardAccess((PaceInfo(algorithm.oid, 2, 13),)).encode().hex()
    run = subprocess.run(
        [str(binary), access, terminal_can, chip_can], capture_output=True, text=True, timeout=60, check=True
    )
    return dict(line.split(" ", 1) for line in run.stdout.splitlines())


def test_libeac_integrated_mapping_is_not_icao_integrated_mapping(im_probe: Path) -> None:
    """libeac (1.1.x) offers id-PACE-ECDH-IM-* only in its TR-03110 version 2.01 mode, as that draft
    defined it: the chip sends mapping data of its own (ICAO Doc 9303-11 4.4.4.3: none), and the mapped
    generator is never used, so a terminal and a chip with different CANs still agree. It is no oracle
    for ICAO Integrated Mapping, which Appendix H.1's worked example checks instead
    (tests/test_pace.py). Should a libeac release fix this, this test fails: then test ours against
    it both ways, as for Generic Mapping."""
    from ektp_card.crypto.pace import ECDH_IM_AES128

    generic = probe(im_probe, ECDH_GM_AES128, CAN, "654321")
    assert generic == {"DEFAULT": "accepted", "MAPPING": "65 65", "RESULT": "refused"}
    integrated = probe(im_probe, ECDH_IM_AES128, CAN, "654321")
    assert integrated["DEFAULT"] == "refused"
    assert integrated["MAPPING"] != "16 0"  # ICAO: t from the terminal, nothing from the chip
    assert integrated["RESULT"] == "agreed"  # the password played no part
