"""Device tests: run against a fresh virtual card, or with ``--ektp-reader NAME`` against a card with the
demo profile in a real reader (CI does that through pcscd and the vpcd bridge)."""

from __future__ import annotations

import pytest

from ektp_card.apdu import ApduProtocol, CommandApdu
from ektp_card.apdu.iso7816 import Iso7816Session
from ektp_card.errors import CardFileNotFoundError, SecurityStatusNotSatisfiedError
from ektp_card.virtual.demo import (
    DEMO_AID,
    EF_LARGE_FID,
    EF_LARGE_SFI,
    EF_PUBLIC_SFI,
    EF_SECRET_SFI,
    LARGE_CONTENT,
    PUBLIC_CONTENT,
)


def test_select_and_read_public(ektp_protocol: ApduProtocol) -> None:
    s = Iso7816Session(ektp_protocol)
    s.select_aid(DEMO_AID)
    assert s.read_file(sfi=EF_PUBLIC_SFI) == PUBLIC_CONTENT


def test_large_file_short_reads(ektp_protocol: ApduProtocol) -> None:
    s = Iso7816Session(ektp_protocol)
    s.select_aid(DEMO_AID)
    assert s.read_file(fid=EF_LARGE_FID) == LARGE_CONTENT
    assert s.read_file(sfi=EF_LARGE_SFI) == LARGE_CONTENT


def test_large_file_after_card_info(ektp_protocol: ApduProtocol) -> None:
    s = Iso7816Session(ektp_protocol)
    s.select_mf()
    info = s.read_card_info()
    s.select_aid(DEMO_AID)
    assert s.read_file(sfi=EF_LARGE_SFI) == LARGE_CONTENT
    assert ektp_protocol.extended == info.extended_length


def test_secret_refused(ektp_protocol: ApduProtocol) -> None:
    s = Iso7816Session(ektp_protocol)
    s.select_aid(DEMO_AID)
    with pytest.raises(SecurityStatusNotSatisfiedError):
        s.read_file(sfi=EF_SECRET_SFI)


def test_unknown_application(ektp_protocol: ApduProtocol) -> None:
    with pytest.raises(CardFileNotFoundError):
        ektp_protocol.send(CommandApdu(0, 0xA4, 4, 0x0C, bytes.fromhex("A0000000000000")))


def test_challenges_differ(ektp_protocol: ApduProtocol) -> None:
    s = Iso7816Session(ektp_protocol)
    challenges = {s.get_challenge() for _ in range(4)}
    assert len(challenges) == 4 and all(len(c) == 8 for c in challenges)
