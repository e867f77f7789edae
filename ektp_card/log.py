"""Logging helpers: a TRAFFIC level below DEBUG for APDU hex, with secrets redacted."""

from __future__ import annotations

import logging

#: Below DEBUG: one line per APDU sent and received.
TRAFFIC = 5
logging.addLevelName(TRAFFIC, "TRAFFIC")

#: Instructions whose data field carries a password, PIN or key in the clear (ISO 7816-4 and our
#: personalisation profile); their data never reaches a log.
SENSITIVE_INS = frozenset({0x20, 0x21, 0x24, 0x2C, 0xDA, 0xDB})


def redacted_command(raw: bytes, sensitive: bool = False) -> str:
    """Hex of a command APDU with its data field hidden when it may carry a secret."""
    if len(raw) > 5 and (sensitive or raw[1] in SENSITIVE_INS):
        return f"{raw[:4].hex().upper()} <{len(raw) - 4} bytes redacted>"
    return raw.hex().upper()


def redacted_response(raw: bytes, sensitive: bool = False) -> str:
    if sensitive and len(raw) > 2:
        return f"<{len(raw) - 2} bytes redacted> {raw[-2:].hex().upper()}"
    return raw.hex().upper()


def printable(text: str) -> str:
    """``text`` fit for one line of a report or a log: every character Python would not print as
    is (line breaks, other control characters, lone surrogates) escaped as in a ``repr``. Names read
    from a card or a file (a certificate's subject, a field of a record) may hold any of them."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
