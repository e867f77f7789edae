"""pytest fixtures for testing your own software against an ektp-card card.

Installed with the package (entry point ``pytest11``). By default each test gets a fresh virtual
card; ``pytest --ektp-reader NAME`` runs the same tests against a card in a real PC/SC reader.

Fixtures:
    ektp_virtual_card  a fresh, powered :class:`~ektp_card.virtual.VirtualCard` (demo profile)
    ektp_transport     a connected transport: that virtual card, or the card in ``--ektp-reader``
    ektp_protocol      an :class:`~ektp_card.apdu.ApduProtocol` over ``ektp_transport``
    ektp_card_factory  build more virtual cards: ``ektp_card_factory(extended_length=False)``
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.transport import Transport

if TYPE_CHECKING:
    from ektp_card.virtual import VirtualCard


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ektp_virtual_only: the test needs the virtual card (skipped with --ektp-reader)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--ektp-reader") is None:
        return
    skip = pytest.mark.skip(reason="needs the virtual card; --ektp-reader was given")
    for item in items:
        if "ektp_virtual_only" in item.keywords:
            item.add_marker(skip)


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


@pytest.fixture
def ektp_protocol(ektp_transport: Transport) -> ApduProtocol:
    """An :class:`ApduProtocol` over :func:`ektp_transport` (short APDUs until you enable extended)."""
    return ApduProtocol(ektp_transport)
