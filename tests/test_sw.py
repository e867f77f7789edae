"""Status words map to exceptions in one place, with what a caller needs (retries, exact Le)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ektp_card
from ektp_card import errors
from ektp_card.apdu.sw import SW, check, describe, error_for


@pytest.mark.parametrize(
    ("sw", "cls"),
    [
        (0x6982, errors.SecurityStatusNotSatisfiedError),
        (0x6A82, errors.CardFileNotFoundError),
        (0x6700, errors.WrongLengthError),
        (0x6C10, errors.WrongLengthError),
        (0x63C2, errors.VerificationFailedError),
        (0x6983, errors.AuthenticationBlockedError),
        (0x6985, errors.ConditionsNotSatisfiedError),
        (0x6988, errors.SecureMessagingObjectsError),
        (0x6B00, errors.IncorrectParametersError),
        (0x6D00, errors.InsNotSupportedError),
        (0x6E00, errors.ClaNotSupportedError),
        (0x6A89, errors.FileExistsOnCardError),
        (0x6F00, errors.ApduError),
        (0x9F10, errors.ApduError),
    ],
)
def test_mapping(sw: int, cls: type[errors.ApduError]) -> None:
    err = error_for(sw)
    assert type(err) is cls
    assert isinstance(err, errors.EktpError)
    assert err.sw == sw
    assert f"{sw:04X}" in str(err)


def test_retries_and_exact_le() -> None:
    err = error_for(SW.counter(2))
    assert isinstance(err, errors.VerificationFailedError) and err.retries == 2
    assert "2 tries left" in str(err)
    le = error_for(SW.wrong_le(0))
    assert isinstance(le, errors.WrongLengthError) and le.exact_le == 256
    assert errors.WrongLengthError(0x6700).exact_le is None


def test_check() -> None:
    check(0x9000)
    with pytest.raises(errors.CardFileNotFoundError):
        check(0x6A82)
    check(0x6282, allow=frozenset({0x9000, 0x6282}))


def test_describe_families() -> None:
    assert describe(0x6110) == "16 more bytes available (GET RESPONSE)"
    assert describe(0x6100) == "256 more bytes available (GET RESPONSE)"
    assert describe(0x6C05) == "wrong Le: exact length is 5"
    assert describe(0x1234) == "unknown status word"


#: Where raw ``transmit()`` belongs: the APDU layer itself, the virtual card (it produces status
#: words), the audit (it records the words hostile and odd commands get) and ``ektp apdu`` (it shows
#: whatever the card answers). Everything else sends with ``send()`` and handles typed errors.
RAW_TRANSMIT_ALLOWED = ("apdu/", "virtual/", "audit/", "_cli/apdu.py")


def raw_transmits(package: Path) -> tuple[list[str], list[str]]:
    """The modules scanned, and every ``.transmit(`` call outside :data:`RAW_TRANSMIT_ALLOWED`."""
    scanned, calls = [], []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if relative.startswith(RAW_TRANSMIT_ALLOWED):
            continue
        scanned.append(relative)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(func, ast.Attribute) and func.attr == "transmit":
                calls.append(f"{relative}:{node.lineno}")
    return scanned, calls


def test_status_words_are_checked_only_through_send() -> None:
    scanned, calls = raw_transmits(Path(ektp_card.__file__).parent)
    assert {"crypto/pace.py", "crypto/ca.py", "personalize/protocol.py"} <= set(scanned)
    assert calls == [], "protocol code checks status words by hand; use ApduProtocol.send()"
