"""The issuer's personalisation master key, from a key file or the environment; never an argument.

A key file holds the AES key (16 or 32 bytes) as hex text (whitespace and a trailing newline allowed)
or as the raw bytes. Text that is entirely hex digits is read as hex: a random 32-byte binary key
made only of the bytes of hex digits and whitespace has a chance below 10^-33. The environment
variable holds hex text.

Errors name the file or variable and what is wrong with it, never the key or any part of it.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

from ektp_card.errors import PkiError
from ektp_card.files import read_file

#: The environment variable the CLI reads when no key file is named.
MASTER_KEY_ENV = "EKTP_PERSO_MASTER_KEY"
KEY_LENGTHS = (16, 32)
#: A key file holds at most 64 hex digits and some whitespace.
MAX_KEY_FILE_BYTES = 1024
_HEX = frozenset(string.hexdigits)


def parse_master_key(data: bytes, where: str, *, raw: bool = True) -> bytes:
    """The key in ``data`` (hex text, or with ``raw`` the raw bytes); :class:`PkiError` naming ``where``
    otherwise."""
    text = bytes(b for b in data if b not in b" \t\r\n")
    if text and all(chr(b) in _HEX for b in text):
        if len(text) % 2 or len(text) // 2 not in KEY_LENGTHS:
            raise PkiError(f"{where}: an AES master key is 32 or 64 hex digits (16 or 32 bytes)")
        return bytes.fromhex(text.decode("ascii"))
    if not raw:
        raise PkiError(f"{where}: an AES master key is 32 or 64 hex digits (16 or 32 bytes)")
    if len(data) in KEY_LENGTHS:
        return bytes(data)
    raise PkiError(f"{where}: an AES master key is 16 or 32 bytes (raw) or 32 or 64 hex digits")


def master_key_from_file(path: Path) -> bytes:
    """Read the master key from ``path``; :class:`PkiError` when it is missing or malformed."""
    try:
        data = read_file(path, MAX_KEY_FILE_BYTES)
    except OSError as e:
        raise PkiError(f"cannot read master key file {path}: {e.strerror or e}") from None
    return parse_master_key(data, str(path))


def master_key_from_env(variable: str = MASTER_KEY_ENV) -> bytes:
    """Read the master key (hex) from the environment; :class:`PkiError` when unset or malformed."""
    value = os.environb.get(variable.encode()) if os.supports_bytes_environ else os.environ.get(
        variable, "").encode("utf-8", "replace")
    if not value:
        raise PkiError(f"no master key: give --master-key-file or set {variable} (hex)")
    # Hex only: text that happens to be 16 or 32 characters long is not a key.
    return parse_master_key(value, f"environment variable {variable}", raw=False)


def load_master_key(path: Path | None, variable: str = MASTER_KEY_ENV) -> bytes:
    """From ``path`` when given, else from ``variable``."""
    return master_key_from_file(path) if path is not None else master_key_from_env(variable)


__all__ = ["KEY_LENGTHS", "MASTER_KEY_ENV", "load_master_key", "master_key_from_env", "master_key_from_file",
           "parse_master_key"]
