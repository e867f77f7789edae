"""A strict DER walk (ITU-T X.690 section 10: definite lengths in their shortest form, one-byte tags):
what EF.SOD's CMS structure and the outer layer of X.509 certificates and CRLs need, at a fraction of
a general ASN.1 library's cost."""

from __future__ import annotations


class DerError(ValueError):
    """The DER itself is broken. Callers catch it and say in what (EF.SOD: an
    :class:`~ektp_card.errors.LdsFormatError`; a certificate: why its signature cannot be checked)."""


class Der:
    """One DER data object: its tag (one byte: CMS, X.509 and the LDS security object need no more),
    its value and its whole encoding, both slices of the input."""

    __slots__ = ("tag", "value", "raw")

    def __init__(self, tag: int, value: bytes, raw: bytes) -> None:
        self.tag, self.value, self.raw = tag, value, raw

    def encode(self) -> bytes:
        return self.raw

    @property
    def children(self) -> list[Der]:
        if not self.tag & 0x20:
            raise DerError(f"tag {self.tag:X} is primitive")
        return der_list(self.value)


def der_list(data: bytes) -> list[Der]:
    """The data objects filling ``data`` exactly, in DER: definite lengths in their shortest form.

    Hand-written rather than :mod:`ektp_card.apdu.tlv` (BER-TLV, tags of up to three bytes) because a
    clerk waits on it: this walk costs a fifth of the general reader's on a passport's EF.SOD."""
    found = []
    end = len(data)
    i = 0
    while i < end:
        start = i
        tag = data[i]
        if tag & 0x1F == 0x1F:
            raise DerError(f"a multi-byte tag at offset {i}")
        if i + 1 >= end:
            raise DerError(f"a truncated data object at offset {i}")
        length = data[i + 1]
        i += 2
        if length & 0x80:
            count = length & 0x7F
            if not 1 <= count <= 3 or i + count > end:
                raise DerError(f"a length field DER does not allow at offset {start}")
            length = int.from_bytes(data[i:i + count], "big")
            if length < 0x80 or data[i] == 0:
                raise DerError(f"a length not in its shortest form at offset {start}")
            i += count
        if i + length > end:
            raise DerError(f"a length running past the data at offset {start}")
        found.append(Der(tag, data[i:i + length], data[start:i + length]))
        i += length
    return found


def der_one(data: bytes, what: str) -> Der:
    """The one data object ``data`` holds; :class:`DerError` naming ``what`` otherwise."""
    found = der_list(data)
    if len(found) != 1:
        raise DerError(f"{what} is not exactly one data object")
    return found[0]
