"""pytest fixtures for testing your own software against ektp-card cards (docs/testing.md).

Installed with the package (entry point ``pytest11``): a test asks for a fixture by name.

Issued documents, made once per test session from synthetic data and copied for every test, so a test
may write to its card without touching the next one's:

    ektp_office         the issuing office: PKI (CSCA, document signer, CRL, revocation signer), the
                        trust folder, a terminal allowed to read fingerprints, a registry
    ektp_issued_card    a personalised, locked e-KTP: ``.card`` (powered), ``.can``, ``.record``,
                        ``.serial``, ``.trust`` / ``.trust_dir``, ``.terminal``, the holder's finger
                        and another person's (``.holder_finger``, ``.other_finger``)
    ektp_issue_card     ``ektp_issue_card(record)``: an e-KTP issued from the test's own record
    ektp_passport       ``ektp_passport(pace=False)``: an ICAO passport (BAC or PACE-MRZ, ``pace`` a
                        MappingType for IM or CAM) and its MRZ
    ektp_attack_card    ``ektp_attack_card(kind)``: clone, downgrade-clone, static-uid, replay, relay,
                        weak-rng, leaky-errors, leaky-reference (the audit's attack cards), forged,
                        revoked
    ektp_removed_after  ``ektp_removed_after(card, n)``: a transport whose card leaves the field after
                        ``n`` commands
    ektp_pcsc_reader    ``ektp_pcsc_reader(card)``: the card in pcscd's "Virtual PCD 00 00" reader for the
                        test, reachable from any language's PC/SC stack (needs pcscd + vsmartcard-vpcd)

The demo application's card, for the APDU layer:

    ektp_virtual_card  a fresh, powered :class:`~ektp_card.virtual.VirtualCard` (demo profile)
    ektp_transport     a connected transport: that virtual card, or the card in ``--ektp-reader``
    ektp_protocol      an :class:`~ektp_card.apdu.ApduProtocol` over ``ektp_transport``
    ektp_card_factory  build more virtual cards: ``ektp_card_factory(extended_length=False)``

Options: ``--ektp-reader NAME`` runs ``ektp_transport`` against a card in a real PC/SC reader (tests
marked ``ektp_virtual_only`` are then skipped, tests marked ``ektp_reader`` run only then;
``ektp_reader_blank_card`` gives destructive device tests the card only once it has shown it is blank);
``--ektp-keep`` copies the card images and the office of a failed test to ``ektp-keep/<test>/``.
"""

from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.transport import Transport

if TYPE_CHECKING:
    from ektp_card.crypto.pace import MappingType
    from ektp_card.lds.record import CitizenRecord
    from ektp_card.pki.trust import TrustStore
    from ektp_card.sandbox import Sandbox
    from ektp_card.verify.report import Terminal
    from ektp_card.virtual import VirtualCard

_FAILED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ektp-card")
    group.addoption(
        "--ektp-reader",
        metavar="NAME",
        default=None,
        help="run ektp device tests against the card in this PC/SC reader (name substring or index) "
        "instead of a virtual card",
    )
    group.addoption(
        "--ektp-timeout", type=float, default=10.0, help="seconds to wait for a card in --ektp-reader"
    )
    group.addoption(
        "--ektp-keep", action="store_true", default=False,
        help="keep the card images and the issuing office of a failed test in ektp-keep/<test>/",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ektp_virtual_only: the test needs the virtual card (skipped with --ektp-reader)"
    )
    config.addinivalue_line(
        "markers", "ektp_reader: a device test: runs only against the card in --ektp-reader"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reader = config.getoption("--ektp-reader")
    skip_virtual = pytest.mark.skip(reason="needs the virtual card; --ektp-reader was given")
    skip_device = pytest.mark.skip(reason="a device test: give --ektp-reader NAME to run it")
    for item in items:
        if reader is not None and "ektp_virtual_only" in item.keywords:
            item.add_marker(skip_virtual)
        if reader is None and "ektp_reader" in item.keywords:
            item.add_marker(skip_device)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Kept for --ektp-keep, which asks at teardown whether the test itself failed.
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


@pytest.fixture
def ektp_card_factory() -> Callable[..., VirtualCard]:
    """Build fresh, powered virtual cards with the demo profile and the options of ``demo_card``."""
    from ektp_card.virtual import demo_card

    def make(*, extended_length: bool = True, uid: bytes | None = None) -> VirtualCard:
        card = demo_card(extended_length=extended_length, uid=uid)
        card.power_on()
        return card

    return make


@pytest.fixture
def ektp_virtual_card(ektp_card_factory: Callable[..., VirtualCard]) -> VirtualCard:
    """A fresh, powered virtual card (demo profile, extended length on, random UID)."""
    return ektp_card_factory()


@pytest.fixture
def ektp_transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    """The card under test: a fresh virtual card, or the card in ``--ektp-reader``."""
    reader = request.config.getoption("--ektp-reader")
    if reader is None:
        yield request.getfixturevalue("ektp_virtual_card")
        return
    from ektp_card.apdu.pcsc import PcscTransport

    timeout = float(request.config.getoption("--ektp-timeout"))
    with PcscTransport.open(reader, timeout=timeout) as transport:
        yield transport


def require_blank(transport: Transport) -> None:
    """Fail the test unless the card is blank (life-cycle status: creation or initialisation, ISO/IEC
    7816-4 section 7.4.10): a destructive test must never run against a card someone depends on."""
    from ektp_card.personalize.readback import life_cycle_status

    status = life_cycle_status(transport)
    if status not in (0x01, 0x03):
        shown = "unknown" if status is None else f"{status:02X}"
        pytest.fail(f"the card in the reader is not blank (life-cycle status {shown}): refusing to run a "
                    "destructive test against it", pytrace=False)


@pytest.fixture
def ektp_reader_blank_card(request: pytest.FixtureRequest) -> Iterator[Transport]:
    """For destructive device tests (``@pytest.mark.ektp_reader``): the card in ``--ektp-reader``, only
    once it has shown it is blank (a personalised card is refused, the test fails)."""
    reader = request.config.getoption("--ektp-reader")
    if reader is None:
        pytest.skip("a device test: give --ektp-reader NAME to run it")
    from ektp_card.apdu.pcsc import PcscTransport

    timeout = float(request.config.getoption("--ektp-timeout"))
    with PcscTransport.open(reader, timeout=timeout) as transport:
        require_blank(transport)
        yield transport


@pytest.fixture
def ektp_protocol(ektp_transport: Transport) -> ApduProtocol:
    """An :class:`ApduProtocol` over :func:`ektp_transport` (short APDUs until you enable extended)."""
    return ApduProtocol(ektp_transport)


# --- issued documents ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedCard:
    """A personalised, locked e-KTP for one test, with what a verifier needs to check it."""

    card: VirtualCard = field(repr=False)
    #: The card's image file, this test's own copy.
    image: Path
    can: str = field(repr=False)
    serial: str
    nik: str
    record: CitizenRecord = field(repr=False)
    trust: TrustStore = field(repr=False)
    #: A folder with the CSCA certificate and its CRL, for ``ektp verify --trust``.
    trust_dir: Path
    terminal: Terminal = field(repr=False)
    #: A fresh ISO/IEC 19794-2 capture of the holder's finger, and one of another person's.
    holder_finger: bytes = field(repr=False)
    other_finger: bytes = field(repr=False)


@dataclass(frozen=True)
class Passport:
    """An ICAO passport for one test: the card, its MRZ (two lines) and the trust that accepts it."""

    card: VirtualCard = field(repr=False)
    image: Path
    mrz: str = field(repr=False)
    pace: bool | MappingType
    trust: TrustStore = field(repr=False)
    trust_dir: Path


@dataclass(frozen=True)
class AttackCard:
    """An attack card for one test: the card, what it is, the CAN it answers to, and the verdict a
    verifier must reach (``forged``, ``cloned``, ``revoked``; ``None`` for the attacks only the audit
    sees: static-uid, relay, weak-rng, leaky-errors, leaky-reference)."""

    card: VirtualCard = field(repr=False)
    image: Path
    kind: str
    can: str = field(repr=False)
    expected_verdict: str | None
    trust: TrustStore = field(repr=False)
    trust_dir: Path
    #: The signed card revocation list of the office (the revoked card is on it).
    revocations: Path


#: What a verification (``ektp verify``) says of each attack card.
ATTACK_VERDICTS: dict[str, str | None] = {
    "clone": "cloned", "downgrade-clone": "cloned", "replay": "cloned", "static-uid": "cloned",
    "relay": None, "weak-rng": None, "leaky-errors": None, "leaky-reference": None, "forged": "forged",
    "revoked": "revoked",
}


@pytest.fixture(scope="session")
def ektp_office(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """The issuing office every issued document of the session comes from (built once, ~1 s)."""
    from ektp_card.sandbox import build_sandbox

    return build_sandbox(tmp_path_factory.mktemp("ektp-office") / "office", seed=2026)


def _load(image: bytes, folder: Path, name: str) -> tuple[VirtualCard, Path]:
    from ektp_card.virtual.card import VirtualCard

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(image)
    card = VirtualCard.load(path)
    card.power_on()
    return card, path


def _slug(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-120:]


@pytest.fixture
def _ektp_keep(request: pytest.FixtureRequest, tmp_path: Path, ektp_office: Sandbox) -> Iterator[Path]:
    """This test's folder for card images; copied with the office to ektp-keep/ when --ektp-keep is
    given and the test failed."""
    folder = tmp_path / "ektp-cards"
    yield folder
    if request.config.getoption("--ektp-keep") and request.node.stash.get(_FAILED, False):
        target = Path(request.config.rootpath) / "ektp-keep" / _slug(request)
        if folder.exists():
            shutil.copytree(folder, target / "cards", dirs_exist_ok=True)
        shutil.copytree(ektp_office.root, target / "office", dirs_exist_ok=True)


@pytest.fixture
def ektp_issued_card(ektp_office: Sandbox, _ektp_keep: Path) -> IssuedCard:
    """A genuine e-KTP: personalised, locked, its holder handed it over; a fresh copy per test."""
    first = ektp_office.genuine
    card, path = _load(first.image.read_bytes(), _ektp_keep, f"{first.serial}.card")
    return IssuedCard(card, path, first.can, first.serial, first.nik, first.record, ektp_office.trust,
                      ektp_office.trust_dir, ektp_office.terminal, first.holder_capture.read_bytes(),
                      first.other_capture.read_bytes())


@pytest.fixture
def ektp_issue_card(ektp_office: Sandbox, _ektp_keep: Path) -> Callable[[CitizenRecord], IssuedCard]:
    """``ektp_issue_card(record)``: an e-KTP personalised from ``record`` by the office (a blank chip,
    the office's keys, read back like a clerk)."""
    from ektp_card.personalize import personalize, plan_from_record
    from ektp_card.virtual.perso import blank_card

    office = ektp_office

    def issue(record: CitizenRecord) -> IssuedCard:
        card = blank_card(office.master_key)
        plan = plan_from_record(record, cvca_certificate=office.cvca_certificate)
        result = personalize(card, plan, office.master_key, office.document_signer, trust=office.trust)
        card.power_off()
        _ektp_keep.mkdir(parents=True, exist_ok=True)
        path = _ektp_keep / f"{result.card_serial}.card"
        card.save(path)
        card.power_on()
        other = office.genuine.other_capture.read_bytes()
        return IssuedCard(card, path, result.can, result.card_serial, record.personal.nik, record,
                          office.trust, office.trust_dir, office.terminal, b"", other)

    return issue


@pytest.fixture(scope="session")
def _ektp_passport_images(ektp_office: Sandbox) -> Callable[[bool | MappingType], bytes]:
    from ektp_card.sandbox import make_passport

    @functools.cache
    def image(pace: bool | MappingType) -> bytes:
        card = make_passport(ektp_office, pace=pace)
        return card.dumps()

    return image


@pytest.fixture
def ektp_passport(
    ektp_office: Sandbox, _ektp_passport_images: Callable[[bool | MappingType], bytes], _ektp_keep: Path
) -> Callable[..., Passport]:
    """``ektp_passport(pace=False)``: an ICAO passport (the ICAO specimen, signed by the office) opened
    with BAC, or with PACE and the MRZ (``True``: Generic Mapping; or the mapping to offer)."""
    from ektp_card.sandbox import SPECIMEN_MRZ

    def make(pace: bool | MappingType = False) -> Passport:
        kind = "bac" if not pace else "pace" if pace is True else f"pace-{pace.value.lower()}"
        name = f"passport-{kind}.card"
        card, path = _load(_ektp_passport_images(pace), _ektp_keep, name)
        mrz = SPECIMEN_MRZ[:44] + "\n" + SPECIMEN_MRZ[44:]
        return Passport(card, path, mrz, pace, ektp_office.trust, ektp_office.trust_dir)

    return make


@pytest.fixture
def ektp_quirky_passport(
    ektp_office: Sandbox, _ektp_passport_images: Callable[[bool], bytes], _ektp_keep: Path
) -> Callable[..., Passport]:
    """``ektp_quirky_passport(quirk, pace=True)``: the office's passport on a chip with the quirk of
    that name (:func:`ektp_card.sandbox.chip_quirks`, docs/chip-quirks.md), or with a
    :class:`~ektp_card.virtual.config.ChipQuirks` given whole."""
    from ektp_card.sandbox import SPECIMEN_MRZ, make_quirky
    from ektp_card.virtual.card import VirtualCard
    from ektp_card.virtual.config import ChipQuirks

    def make(quirk: ChipQuirks | str, pace: bool = True) -> Passport:
        card = make_quirky(VirtualCard.loads(_ektp_passport_images(pace)), quirk)
        name = f"passport-{'pace' if pace else 'bac'}-quirky.card"
        card, path = _load(card.dumps(), _ektp_keep, name)
        mrz = SPECIMEN_MRZ[:44] + "\n" + SPECIMEN_MRZ[44:]
        return Passport(card, path, mrz, pace, ektp_office.trust, ektp_office.trust_dir)

    return make


@pytest.fixture(scope="session")
def _ektp_attack_images(ektp_office: Sandbox) -> Callable[[str], tuple[bytes, str]]:
    from ektp_card.audit.attacks import make_attack_card
    from ektp_card.sandbox import make_forged

    office = ektp_office

    @functools.cache
    def image(kind: str) -> tuple[bytes, str]:
        if kind not in ATTACK_VERDICTS:
            raise ValueError(f"unknown attack card {kind!r}; known: {', '.join(ATTACK_VERDICTS)}")
        if kind == "revoked":
            return office.lost.image.read_bytes(), office.lost.can
        card = make_forged(office.genuine.image) if kind == "forged" else make_attack_card(
            kind, office.genuine.image, office.genuine.can)
        return card.dumps(), office.genuine.can

    return image


@pytest.fixture
def ektp_attack_card(
    ektp_office: Sandbox, _ektp_attack_images: Callable[[str], tuple[bytes, str]], _ektp_keep: Path
) -> Callable[[str], AttackCard]:
    """``ektp_attack_card(kind)``: an attack card made from the office's genuine card (see
    :data:`ATTACK_VERDICTS` for the kinds and what a verifier must say)."""

    def make(kind: str) -> AttackCard:
        image, can = _ektp_attack_images(kind)
        card, path = _load(image, _ektp_keep, f"{kind}.card")
        return AttackCard(card, path, kind, can, ATTACK_VERDICTS[kind], ektp_office.trust,
                          ektp_office.trust_dir, ektp_office.revocations)

    return make


class _RemovedAfter:
    """A card that leaves the field after ``n`` commands: every later command fails as silicon's
    would, with :class:`~ektp_card.errors.CardRemovedError`."""

    def __init__(self, card: Transport, n: int) -> None:
        self.card, self.left = card, n

    def transceive(self, command: bytes) -> bytes:
        from ektp_card.errors import CardRemovedError

        if self.left <= 0:
            raise CardRemovedError("the card left the field")
        self.left -= 1
        return self.card.transceive(command)


@pytest.fixture
def ektp_removed_after() -> Callable[[Transport, int], Transport]:
    """``ektp_removed_after(card, n)``: ``card`` behind a transport that loses it after ``n`` commands."""
    return _RemovedAfter


@pytest.fixture
def ektp_pcsc_reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[VirtualCard], str]]:
    """``ektp_pcsc_reader(card)``: puts ``card`` into pcscd's vpcd reader for this test and returns the
    reader's name ("Virtual PCD 00 00"): software in any language then reaches it through its own PC/SC
    stack. Starts a private pcscd when none runs. Skips when pcscd, vsmartcard-vpcd or pyscard is
    missing."""
    from ektp_card.errors import EktpError

    try:
        from ektp_card.virtual.pcscd import PcscdProcess, pcscd_binary, reader_names
        from ektp_card.virtual.vpcd import VPCD_READER, VpcdBridge
    except ImportError as exc:  # pragma: no cover - pyscard missing
        pytest.skip(f"PC/SC support is not installed: {exc}")
    started = None
    names = reader_names()
    if names is None:
        if pcscd_binary() is None:
            pytest.skip("pcscd is not installed (apt-get install pcscd vsmartcard-vpcd)")
        try:
            log_path = tmp_path_factory.mktemp("pcscd") / "pcscd.log"
            started = PcscdProcess.start(timeout=15.0, log_path=log_path)
        except EktpError as exc:
            pytest.skip(f"could not start pcscd: {exc}")
    elif VPCD_READER not in names:
        pytest.skip(f"the running pcscd has no reader {VPCD_READER!r} (vsmartcard-vpcd missing?)")
    bridges: list[VpcdBridge] = []

    def serve(card: VirtualCard) -> str:
        for bridge in bridges:
            bridge.stop()
        bridges.clear()
        bridge = VpcdBridge(card)
        bridge.start()
        bridges.append(bridge)
        _wait_present(VPCD_READER)
        return VPCD_READER

    try:
        yield serve
    finally:
        for bridge in bridges:
            bridge.stop()
        if started is not None:
            started.stop()


def _wait_present(reader: str, timeout: float = 5.0) -> None:
    import time

    from ektp_card.apdu.pcsc import list_readers

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r.name == reader and r.card_present for r in list_readers()):
            return
        time.sleep(0.02)
    raise TimeoutError(f"pcscd did not see the card in {reader!r} within {timeout:g} s")
