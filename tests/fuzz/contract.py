"""The contract every parser keeps on hostile input (docs/fuzzing.md).

Given any bytes, a parser returns a value or raises an exception of the project's hierarchy
(:class:`~ektp_card.errors.EktpError`), whose message is one line of printable text: never a bare
``IndexError``, ``KeyError``, ``ValueError``, ``TypeError``, ``UnicodeError``, ``RecursionError``,
``OverflowError`` or ``MemoryError``. :func:`parse` enforces it around one call: anything else
propagates (the fuzzer reports it as a crash), and a broken message raises :class:`ContractViolation`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ektp_card.errors import EktpError

T = TypeVar("T")


class ContractViolation(AssertionError):  # noqa: N818 - named after what it reports
    """A parser kept running but broke the contract (a bad message, a value that does not round-trip)."""


def check_message(exc: BaseException) -> None:
    """An error message is one line of text that can be printed and logged as UTF-8."""
    message = str(exc)
    if "\n" in message or "\r" in message:
        raise ContractViolation(f"{type(exc).__name__} message is not one line: {message[:300]!r}")
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        raise ContractViolation(
            f"{type(exc).__name__} message holds a lone surrogate: {message[:300]!r}"
        ) from None


def parse(function: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``function(*args, **kwargs)``, or ``None`` when it raised an error of the project's hierarchy
    with a well-formed message. Any other exception propagates."""
    try:
        return function(*args, **kwargs)
    except EktpError as exc:
        check_message(exc)
        return None


def require(condition: bool, message: str) -> None:
    """A property the parser promises beyond not crashing (a round trip, a bound)."""
    if not condition:
        raise ContractViolation(message)
