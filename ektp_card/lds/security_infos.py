"""SecurityInfos (ICAO Doc 9303-11 section 9.2; BSI TR-03110-3 A.1.1): the SET OF SecurityInfo that
EF.CardAccess, EF.CardSecurity and DG14 share. Each file decodes the infos it knows; this module only
splits the SET into (protocol OID, DER of the element) and builds it back."""

from __future__ import annotations

from asn1crypto import core  # type: ignore[import-untyped]

from ektp_card.errors import ASN1_ERRORS, LdsFormatError, one_line


class SecurityInfoSpec(core.Sequence):  # type: ignore[misc]
    """SecurityInfo ::= SEQUENCE { protocol OID, requiredData ANY, optionalData ANY OPTIONAL }."""

    _fields = [
        ("protocol", core.ObjectIdentifier),
        ("required_data", core.Any),
        ("optional_data", core.Any, {"optional": True}),
    ]


class SecurityInfosSpec(core.SetOf):  # type: ignore[misc]
    _child_spec = SecurityInfoSpec


def split_security_infos(data: bytes) -> list[tuple[str, bytes]]:
    """(protocol OID, DER of the whole SecurityInfo) for each element; :class:`LdsFormatError` if
    ``data`` is not a DER SET OF SecurityInfo."""
    try:
        parsed = SecurityInfosSpec.load(data, strict=True)
        elements = [(str(element["protocol"].dotted), bytes(element.dump())) for element in parsed]
        body = bytes(parsed.contents)
    except ASN1_ERRORS as exc:
        raise LdsFormatError(f"malformed SecurityInfos: {one_line(exc)}") from None
    if data[1:2] == b"\x80" or b"".join(der for _, der in elements) != body:
        # asn1crypto re-serialises an element read with an indefinite length, and wrongly: the bytes
        # kept would not decode again. SecurityInfos are DER, which has no indefinite length.
        raise LdsFormatError("malformed SecurityInfos: an indefinite length, which DER does not allow")
    if not all(protocol for protocol, _ in elements):
        # asn1crypto reads an OID cut off in the middle of an arc as empty.
        raise LdsFormatError("malformed SecurityInfos: a protocol OID is cut off")
    return elements


def der_set_of(body: bytes) -> bytes:
    """A DER SET (tag 31) around already encoded elements."""
    return bytes(core.SetOf(contents=body).dump())
