"""Chip Authentication version 2 against an independent implementation: OpenPACE's libeac.

A small C program (tests/interop/ca_harness.c, compiled once per session against libeac) runs one
side of Chip Authentication with libeac's own cryptography:

* libeac as the chip behind the virtual card's GENERAL AUTHENTICATE: our terminal
  (:func:`chip_authenticate`) must accept libeac's nonce and token, then read a file under the keys
  derived from them;
* libeac as the terminal: it must verify the nonce and token our chip computes for its key.

libeac runs version 2 only; version 1 differs from it only in leaving out the nonce and token.
Debian packages: libeac-dev libeac3 libssl-dev gcc. Without them the tests skip (and fail under
CI=true).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.iso7816 import Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.tlv import Tlv, parse_dict, unpack
from ektp_card.crypto.ca import (
    CA_ECDH_3DES,
    CA_ECDH_AES128,
    CA_ECDH_AES192,
    CA_ECDH_AES256,
    CaAlgorithm,
    ca_session_keys,
    chip_authenticate,
    shared_secret,
)
from ektp_card.crypto.pace import Password, perform_pace
from ektp_card.crypto.sm import CardSecureMessaging
from ektp_card.ec import BRAINPOOLP256R1, SECP256R1, SECP384R1, Curve
from ektp_card.lds.dg14 import DG14_FID, DG14_SFI, Dg14
from ektp_card.lds.public_key import EcPublicKey
from ektp_card.session.card import read_card_access
from ektp_card.virtual import AccessCondition, SecurityAttributes, VirtualCard, demo_card
from ektp_card.virtual.ca import CA_PRIVATE_KEY, ChipCa, chip_key, install_chip_keys
from ektp_card.virtual.commands import Command, ok
from ektp_card.virtual.demo import DEMO_AID, EF_PUBLIC_SFI, PUBLIC_CONTENT
from ektp_card.virtual.pace import install_pace

if TYPE_CHECKING:
    from fixtures.tools import BuildLibeac

HARNESS_SOURCE = Path(__file__).parent / "interop" / "ca_harness.c"
TIMEOUT = 20.0
CAN = "123456"

CASES = [
    (BRAINPOOLP256R1, 13, CA_ECDH_AES128),
    (SECP256R1, 12, CA_ECDH_AES128),
    (SECP384R1, 15, CA_ECDH_AES256),
    (BRAINPOOLP256R1, 13, CA_ECDH_AES192),
    (SECP256R1, 12, CA_ECDH_3DES),
]
IDS = [f"{curve.name}-{algorithm.cipher.value[0]}" for curve, _, algorithm in CASES]


@pytest.fixture(scope="session")
def harness(build_libeac: BuildLibeac) -> Path:
    return build_libeac(HARNESS_SOURCE)


def ca_card(curve: Curve, algorithm: CaAlgorithm) -> tuple[VirtualCard, EcPublicKey]:
    card = demo_card()
    install_pace(card, can=CAN)
    dg14, _ = install_chip_keys(card, curve=curve, ca_algorithm=algorithm, ca_version=2)
    app = card.fs.application(DEMO_AID)
    readable = SecurityAttributes(AccessCondition.require("PACE"), AccessCondition.NEVER)
    card.fs.create_ef(app, DG14_FID, data=dg14, sfi=DG14_SFI, access=readable)
    key = Dg14.decode(dg14).chip_authentication_public_keys[0].public_key
    assert isinstance(key, EcPublicKey)
    return card, key


def libeac_chip(
    binary: Path, card: VirtualCard, algorithm: CaAlgorithm, parameter_id: int
) -> subprocess.Popen[str]:
    """libeac as the chip with the card's own key pair."""
    key = chip_key(card)
    assert key is not None
    public = key.public.public_key
    assert isinstance(public, EcPublicKey)
    arguments = [
        "picc",
        algorithm.oid,
        str(parameter_id),
        card.keys[CA_PRIVATE_KEY].hex(),
        public.point.hex(),
    ]
    return subprocess.Popen(  # noqa: S603
        [str(binary), *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(("curve", "parameter_id", "algorithm"), CASES, ids=IDS)
def test_our_terminal_with_libeac_chip(
    harness: Path, curve: Curve, parameter_id: int, algorithm: CaAlgorithm
) -> None:
    card, public = ca_card(curve, algorithm)
    chip = libeac_chip(harness, card, algorithm, parameter_id)
    assert chip.stdin is not None and chip.stdout is not None
    ours = card.commands[0x86]
    answered: list[str] = []

    def general_authenticate(c: VirtualCard, apdu: CommandApdu) -> ResponseApdu:
        if not isinstance(c.session.protocol_state, ChipCa):
            return ours.handler(c, apdu)  # PACE goes on as usual
        c.session.protocol_state = None
        terminal_key = parse_dict(unpack(0x7C, apdu.data))[0x80]
        assert chip.stdin is not None and chip.stdout is not None
        chip.stdin.write(terminal_key.hex() + "\n")
        chip.stdin.flush()
        line = chip.stdout.readline().split()
        answered.append(" ".join(line))
        assert line[0] == "NONCE" and line[2] == "TOKEN", line
        nonce, token = bytes.fromhex(line[1]), bytes.fromhex(line[3])
        # libeac keeps its session keys; the card derives the same ones to go on with the session.
        private = int.from_bytes(c.keys[CA_PRIVATE_KEY], "big")
        shared = shared_secret(curve, private, curve.decode_point(terminal_key))
        keys = ca_session_keys(shared, algorithm.cipher, nonce)
        c.security.open_channel(CardSecureMessaging(algorithm.cipher, keys[0], keys[1], 0))
        return ok(Tlv.of(0x7C, Tlv(0x81, nonce), Tlv(0x82, token)).encode())

    card.commands[0x86] = Command(ours.name, general_authenticate, ours.chaining)
    try:
        protocol = ApduProtocol(card)
        session = Iso7816Session(protocol)
        parameters, _ = read_card_access(session).choose_pace()
        perform_pace(protocol, Password.can(CAN), parameters)
        session.select_aid(DEMO_AID)
        ca = Dg14.decode(session.read_file(sfi=DG14_SFI)).ca_parameters()
        assert (ca.version, ca.algorithm, ca.chip_public_key) == (2, algorithm, public.point)
        result = chip_authenticate(protocol, ca)
        assert result.passed, result.reason
        assert len(answered) == 1
        assert session.read_file(sfi=EF_PUBLIC_SFI) == PUBLIC_CONTENT
    finally:
        chip.stdin.close()
        chip.wait(timeout=TIMEOUT)


@pytest.mark.parametrize(("curve", "parameter_id", "algorithm"), CASES, ids=IDS)
def test_libeac_terminal_with_our_chip(
    harness: Path, curve: Curve, parameter_id: int, algorithm: CaAlgorithm
) -> None:
    card, public = ca_card(curve, algorithm)
    key = chip_key(card)
    assert key is not None
    terminal = subprocess.Popen(  # noqa: S603
        [str(harness), "pcd", algorithm.oid, str(parameter_id), public.point.hex()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert terminal.stdout is not None
    first = terminal.stdout.readline().split()
    assert first[0] == "PK", first
    answer, _ = ChipCa(key).agree(bytes.fromhex(first[1]))
    objects = parse_dict(unpack(0x7C, answer))
    out, err = terminal.communicate(f"{objects[0x81].hex()} {objects[0x82].hex()}\n", timeout=TIMEOUT)
    assert out.strip() == "OK", out + err
    # A token for another terminal key does not verify there.
    terminal = subprocess.Popen(  # noqa: S603
        [str(harness), "pcd", algorithm.oid, str(parameter_id), public.point.hex()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert terminal.stdout is not None
    terminal.stdout.readline()
    out, _ = terminal.communicate(f"{objects[0x81].hex()} {objects[0x82].hex()}\n", timeout=TIMEOUT)
    assert out.startswith("ERR") and terminal.returncode == 1
