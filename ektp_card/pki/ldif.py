"""LDIF content records (RFC 2849) as the ICAO PKD distributes them: CSCA master lists, document signer
certificates and CRLs, one directory entry each.

Hand-written rather than the ``ldif`` package (4.3.0, a fork of python-ldap's module): the PKD files use
a small part of RFC 2849 (``version: 1``, ``dn:`` records with plain and ``::`` base64 values, folded
lines, comments), and this parser keeps the project's contract on hostile input, which that package
does not: every problem is a :class:`~ektp_card.errors.PkiError` of one line naming the line number
(it raises bare ``ValueError``), values stay bytes (it decodes them as UTF-8 by default), ``:<`` URL
values are refused rather than followed to a local file, and the number of records and values is
bounded. It would also be a runtime dependency for a hundred lines.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from ektp_card.errors import PkiError

#: Bounds on what one file may hold (a full PKD download has some tens of thousands of entries).
MAX_RECORDS = 500_000
MAX_VALUES_PER_RECORD = 1_000

_ATTRIBUTE = re.compile(rb"[A-Za-z][A-Za-z0-9-]*(;[A-Za-z0-9-]+)*|[0-9]+(\.[0-9]+)+(;[A-Za-z0-9-]+)*")


@dataclass(frozen=True)
class LdifRecord:
    """One directory entry: its distinguished name and its values by attribute (names lower-cased,
    options such as ``;binary`` kept), each in the order the file gives them."""

    dn: str
    line: int
    attributes: dict[str, list[bytes]] = field(default_factory=dict)

    def values(self, name: str) -> list[bytes]:
        """The values of attribute ``name`` (case-insensitive), with or without a ``;binary`` option."""
        key = name.lower()
        return self.attributes.get(key, []) + self.attributes.get(f"{key};binary", [])

    @property
    def country(self) -> str | None:
        """The ``c=`` component of the distinguished name (the PKD files each entry under its country)."""
        return dn_country(self.dn)


def dn_country(dn: str) -> str | None:
    """The value of the one ``c=`` attribute of ``dn`` (RFC 4514, escaped separators respected)."""
    found = [
        value.strip() for rdn in _split(dn, ",") for ava in _split(rdn, "+")
        for name, sep, value in [ava.partition("=")] if sep and name.strip().lower() in ("c", "countryname")
    ]
    return found[0] if len(found) == 1 else None


def _split(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _logical_lines(data: bytes) -> list[tuple[int, bytes]]:
    """Lines with their continuations joined (RFC 2849: a line starting with one space continues the
    previous one), comments dropped, each with the number of its first physical line."""
    lines: list[tuple[int, bytes]] = []
    comment = False
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if line.startswith(b" "):
            if comment:
                continue
            if not lines or not lines[-1][1]:
                raise PkiError(f"LDIF line {number}: a continuation line follows no line")
            lines[-1] = (lines[-1][0], lines[-1][1] + line[1:])
            continue
        comment = line.startswith(b"#")
        if not comment:
            lines.append((number, line))
    return lines


def _value(number: int, line: bytes) -> tuple[str, bytes]:
    name, sep, rest = line.partition(b":")
    if not sep or not _ATTRIBUTE.fullmatch(name):
        raise PkiError(f"LDIF line {number}: not an attribute: value line")
    if rest.startswith(b":"):
        try:
            value = base64.b64decode(rest[1:].strip(b" "), validate=True)
        except (binascii.Error, ValueError):
            raise PkiError(f"LDIF line {number}: the base64 value of {name.decode()} is malformed") from None
    elif rest.startswith(b"<"):
        raise PkiError(f"LDIF line {number}: URL values (:<) are not read")
    else:
        value = rest.lstrip(b" ")
        if any(b > 0x7F or b in (0, 0x0D) for b in value):
            raise PkiError(f"LDIF line {number}: a plain value holds bytes other than ASCII text "
                           "(RFC 2849 wants them base64)")
    return name.decode("ascii").lower(), value


def parse_ldif(data: bytes) -> list[LdifRecord]:
    """The content records of an LDIF file; :class:`PkiError` naming the line of the first problem.
    Change records other than ``changetype: add`` are refused: a trust import adds, it never deletes."""
    if b"\x00" in data:
        raise PkiError("LDIF holds a NUL byte: not a text file")
    records: list[LdifRecord] = []
    current: LdifRecord | None = None
    count = 0
    first = True
    for number, line in _logical_lines(data):
        if not line:
            current = None
            continue
        name, value = _value(number, line)
        if first and name == "version":
            first = False
            if value.strip() != b"1":
                raise PkiError(f"LDIF line {number}: only LDIF version 1 is known")
            continue
        first = False
        if current is None:
            if name != "dn":
                raise PkiError(f"LDIF line {number}: a record starts with dn:, not {name}:")
            try:
                dn = value.decode("utf-8")
            except UnicodeDecodeError:
                raise PkiError(f"LDIF line {number}: the dn is not UTF-8 text") from None
            if not dn.isprintable():
                raise PkiError(f"LDIF line {number}: the dn holds control characters")
            if len(records) >= MAX_RECORDS:
                raise PkiError(f"LDIF holds more than {MAX_RECORDS} records")
            current = LdifRecord(dn, number)
            records.append(current)
            count = 0
            continue
        if name == "dn":
            raise PkiError(f"LDIF line {number}: a second dn: in one record (records are separated by an "
                           "empty line)")
        if name == "changetype":
            if value.strip().lower() != b"add":
                raise PkiError(f"LDIF line {number}: only changetype add is read")
            continue
        count += 1
        if count > MAX_VALUES_PER_RECORD:
            raise PkiError(f"LDIF line {number}: more than {MAX_VALUES_PER_RECORD} values in one record")
        current.attributes.setdefault(name, []).append(value)
    return records


def looks_like_ldif(data: bytes) -> bool:
    """Whether ``data`` starts like an LDIF file (a comment, ``version:`` or ``dn:``), not DER."""
    head = data.lstrip(b"\r\n")[:16].lower()
    return head.startswith((b"#", b"version:", b"dn:"))


def dump_ldif(records: list[tuple[str, dict[str, list[bytes]]]]) -> bytes:
    """An LDIF file of ``records`` (dn, values by attribute), every value base64, lines folded at 76
    columns: what a PKD download looks like, for tests and for exporting a trust folder."""
    out = [b"version: 1", b""]
    for dn, attributes in records:
        entry = [b"dn:: " + base64.b64encode(dn.encode())]
        for name, values in attributes.items():
            entry += [name.encode() + b":: " + base64.b64encode(v) for v in values]
        for line in entry:
            out.append(line[:76])
            out += [b" " + line[i:i + 75] for i in range(76, len(line), 75)]
        out.append(b"")
    return b"\n".join(out) + b"\n"


__all__ = ["LdifRecord", "dn_country", "dump_ldif", "looks_like_ldif", "parse_ldif"]
