"""verify_passport with Chip Authentication (DG14, covered by EF.SOD) and ECDSA Active Authentication:
genuine passes both; a swapped Chip Authentication key, a swapped Active Authentication key or a chip
without Chip Authentication is cloned."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ektp_card.crypto.mrz import MrzInfo
from ektp_card.lds.conditions import BAC, PACE, AccessCondition, SecurityAttributes
from ektp_card.lds.ektp import encode_dg2
from ektp_card.lds.emrtd import encode_emrtd_dg1
from ektp_card.lds.profile import EMRTD_AID
from ektp_card.lds.sod import build_sod
from ektp_card.lds.synthetic import face_photo
from ektp_card.verify.card import Verdict
from ektp_card.verify.passive import Status
from ektp_card.verify.passport import verify_passport
from ektp_card.virtual import VirtualCard, demo_card
from ektp_card.virtual.bac import enable_bac
from ektp_card.virtual.ca import CA_PRIVATE_KEY, install_chip_keys
from ektp_card.virtual.pace import install_pace

if TYPE_CHECKING:
    from fixtures.cards import Issuer, IssuerOf


#: ICAO Doc 9303-4 Appendix B specimen (TD3), and its MRZ key.
SPECIMEN = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<" "L898902C36UTO7408122F1204159ZE184226B<<<<<10"
KEY = MrzInfo("L898902C3", "740812", "120415")
_ALWAYS, _NEVER = AccessCondition.ALWAYS, AccessCondition.NEVER
_SESSION = AccessCondition.require(BAC) | AccessCondition.require(PACE)
Passport = Callable[[bool], VirtualCard]


def build(issuer: Issuer, *, pace: bool) -> VirtualCard:
    """A passport with DG1, DG2, DG14 (Chip Authentication, ECDSA Active Authentication info) and DG15
    (ECDSA key), all covered by EF.SOD; BAC or PACE-MRZ."""
    card = demo_card()
    fs = card.fs
    app = fs.create_df(fs.mf, 0xDF02, name=EMRTD_AID,
                       access=SecurityAttributes(_ALWAYS, _NEVER, _NEVER))
    if pace:
        install_pace(card, mrz=KEY)
    else:
        enable_bac(card, KEY)
    dg14, dg15 = install_chip_keys(card)
    groups = {
        1: encode_emrtd_dg1(SPECIMEN),
        2: encode_dg2(face_photo(random.Random(3), (24, 32))),
        14: dg14,
        15: dg15,
    }
    ds = issuer.ds
    sod = build_sod(groups, ds.signer, ds.certificate)
    for sfi, data in ({0x1D: sod} | groups).items():
        fs.create_ef(app, 0x0100 + sfi, data=data, sfi=sfi,
                     access=SecurityAttributes(_SESSION, _NEVER))
    return card


@pytest.fixture(scope="module")
def passport(issuer: IssuerOf) -> Passport:
    """``passport(pace)``: a new copy of the passport :func:`build` made once for BAC (or PACE-MRZ)."""
    images: dict[bool, bytes] = {}

    def make(pace: bool) -> VirtualCard:
        if pace not in images:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "passport.img"
                build(issuer(), pace=pace).save(path)
                images[pace] = path.read_bytes()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "passport.img"
            path.write_bytes(images[pace])
            card = VirtualCard.load(path)
        card.power_on()
        return card

    return make


@pytest.fixture(scope="module")
def other_keys(issuer: IssuerOf) -> dict[str, bytes]:
    """The chip keys of another passport: same data, another chip."""
    return dict(build(issuer(), pace=False).keys)


PACE_IDS = pytest.mark.parametrize("pace", [False, True], ids=["bac", "pace-mrz"])


@PACE_IDS
def test_genuine_passes_chip_and_ecdsa_active_authentication(
    pace: bool, passport: Passport, issuer: IssuerOf
) -> None:
    report = verify_passport(passport(pace), KEY, issuer().trust)
    assert report.verdict is Verdict.GENUINE, report.reasons
    got = {c.name: c.status for c in report.checks}
    assert got["passive-authentication"] is Status.PASS
    assert got["chip-authentication"] is Status.PASS
    assert got["active-authentication"] is Status.PASS
    assert sorted(report.data_groups) == [1, 2, 14, 15]
    assert report.chip is not None and report.chip.passed
    assert report.active is not None and report.active.passed
    assert report.active.algorithm == "ECDSA with SHA-256" and len(report.active.signature) == 64


@PACE_IDS
def test_swapped_chip_authentication_key_is_cloned(
    pace: bool, passport: Passport, other_keys: dict[str, bytes], issuer: IssuerOf
) -> None:
    card = passport(pace)
    card.keys[CA_PRIVATE_KEY] = other_keys[CA_PRIVATE_KEY]
    report = verify_passport(card, KEY, issuer().trust)
    assert report.verdict is Verdict.CLONED, report.reasons
    assert report.check("passive-authentication").status is Status.PASS
    assert report.check("chip-authentication").status is Status.FAIL
    assert report.check("active-authentication").status is Status.FAIL


def test_swapped_ecdsa_active_authentication_key_is_cloned(
    passport: Passport, other_keys: dict[str, bytes], issuer: IssuerOf
) -> None:
    card = passport(False)
    for name in [n for n in card.keys if n.startswith("aa.")]:
        card.keys[name] = other_keys[name]
    report = verify_passport(card, KEY, issuer().trust)
    assert report.verdict is Verdict.CLONED, report.reasons
    assert report.check("chip-authentication").status is Status.PASS
    assert report.check("active-authentication").status is Status.FAIL


def test_chip_without_chip_authentication_fails_the_downgrade_policy(
    passport: Passport, issuer: IssuerOf
) -> None:
    card = passport(False)
    for name in [n for n in card.keys if n.startswith("ca.")]:
        del card.keys[name]
    report = verify_passport(card, KEY, issuer().trust)
    assert report.verdict is Verdict.CLONED
    assert report.check("chip-authentication").status is Status.FAIL
