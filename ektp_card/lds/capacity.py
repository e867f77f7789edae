"""How much of a chip's non-volatile memory (EEPROM) files and key objects take: one model that the
virtual card charges against its capacity and the personaliser uses to check, before the first write,
that a record fits the card (docs/virtual-card.md, "Memory budget").

The figures are those of a typical small card OS (file control blocks and key records in EEPROM pages):

- every EF costs a header of :data:`EF_HEADER` bytes (its FCP: identifiers, size, life cycle, access
  rules, a pointer to its body) and a body of its size rounded up to the allocation unit;
- every DF (the MF too) costs :data:`DF_HEADER` bytes: its FCP, its name and its directory table;
- every key object costs :data:`KEY_HEADER` bytes (reference, type, usage rules, counter) and its value
  rounded up to the allocation unit;
- memory is handed out in units of :data:`ALLOCATION_UNIT` bytes, so a 1-byte file takes 16.

A capacity is written like ``8K``, ``8192``, ``64KiB`` or ``1M`` (:func:`parse_capacity`; K is 1024).
"""

from __future__ import annotations

import re

#: The smallest piece of memory handed out: an EEPROM page of the kind small chips write at once.
ALLOCATION_UNIT = 16
#: An EF's file control block.
EF_HEADER = 32
#: A DF's file control block with its name and directory table.
DF_HEADER = 64
#: A key object's record: reference, type, usage rules, retry counter.
KEY_HEADER = 16
#: The memory of the real e-KTP chip, and of the virtual card's 8 KB profile.
EKTP_CAPACITY = 8 * 1024
#: A capacity smaller than this cannot hold even a blank card (MF and EF.ATR/INFO).
MIN_CAPACITY = 256
#: The largest capacity accepted: what a card image file can hold.
MAX_CAPACITY = 8 * 1024 * 1024

_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024 * 1024, "MB": 1024 * 1024,
          "MIB": 1024 * 1024}
_CAPACITY = re.compile(r"([0-9]{1,9})\s*([A-Za-z]{0,3})")


def allocated(size: int) -> int:
    """``size`` bytes rounded up to whole allocation units."""
    return -(-size // ALLOCATION_UNIT) * ALLOCATION_UNIT


def ef_storage(size: int) -> int:
    """What an EF of ``size`` bytes takes: its header and its body."""
    return EF_HEADER + allocated(size)


def df_storage() -> int:
    """What a DF takes (its children are counted by themselves)."""
    return DF_HEADER


def key_storage(size: int) -> int:
    """What a key object whose value has ``size`` bytes takes."""
    return KEY_HEADER + allocated(size)


def parse_capacity(text: str) -> int:
    """A capacity in bytes from ``8K``, ``8192``, ``8 KiB``, ``1M``... (K = 1024 bytes, M = 1024 K).

    :class:`ValueError` for anything else, and for a capacity outside
    :data:`MIN_CAPACITY`..:data:`MAX_CAPACITY` bytes.
    """
    match = _CAPACITY.fullmatch(text.strip())
    unit = _UNITS.get(match[2].upper()) if match else None
    if match is None or unit is None:
        raise ValueError(f"a capacity is bytes with an optional K or M, like 8K; not {text[:20]!r}")
    value = int(match[1]) * unit
    if not MIN_CAPACITY <= value <= MAX_CAPACITY:
        raise ValueError(f"a capacity is {MIN_CAPACITY} bytes to {MAX_CAPACITY // (1024 * 1024)}M")
    return value


def format_capacity(size: int) -> str:
    """``size`` bytes the way :func:`parse_capacity` reads it back: ``8K`` when a whole number of K."""
    for suffix, unit in (("M", 1024 * 1024), ("K", 1024)):
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


__all__ = [
    "ALLOCATION_UNIT",
    "DF_HEADER",
    "EF_HEADER",
    "EKTP_CAPACITY",
    "KEY_HEADER",
    "MAX_CAPACITY",
    "MIN_CAPACITY",
    "allocated",
    "df_storage",
    "ef_storage",
    "format_capacity",
    "key_storage",
    "parse_capacity",
]
