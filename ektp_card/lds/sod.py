"""EF.SOD: the document security object, build and parse.

ICAO 9303-10 section 4.6.2: EF.SOD is application tag 77 around a CMS ContentInfo holding
SignedData (RFC 5652 section 5) whose encapsulated content (type id-icao-mrtd-security-
ldsSecurityObject) is the LDSSecurityObject with the hash of every data group. The signer info
carries signed attributes (content type, message digest, signing time; RFC 5652 section 11), and
the document signer certificate travels in ``certificates`` (ICAO 9303-10 section 4.6.2.2).

ASN.1 from ICAO 9303-10 section 4.6.2.3::

    LDSSecurityObject ::= SEQUENCE {
        version LDSSecurityObjectVersion,            -- v0(0), or v1(1) with ldsVersionInfo
        hashAlgorithm DigestAlgorithmIdentifier,
        dataGroupHashValues SEQUENCE SIZE (2..ub-DataGroups) OF DataGroupHash,
        ldsVersionInfo LDSVersionInfo OPTIONAL }
    DataGroupHash ::= SEQUENCE { dataGroupNumber DataGroupNumber, dataGroupHashValue OCTET STRING }
    LDSVersionInfo ::= SEQUENCE { ldsVersion PrintableString, unicodeVersion PrintableString }
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from asn1crypto import algos, core  # type: ignore[import-untyped]
from cryptography import x509

from ektp_card.apdu.tlv import encode_length, parse_one
from ektp_card.der import Der, DerError, der_one
from ektp_card.errors import ASN1_ERRORS, LdsFormatError, TlvError, one_line
from ektp_card.oid import decode_oid
from ektp_card.pki.certs import load_certificate
from ektp_card.pki.signer import HASH_NAMES, HashName, Signer, digest, load_signature_algorithm, same_key

EF_SOD_TAG = 0x77
EF_SOD_FID = 0x011D
EF_SOD_SFI = 0x1D
#: ICAO 9303-10 section 4.6.2.3: id-icao-mrtd-security-ldsSecurityObject.
OID_LDS_SECURITY_OBJECT = "2.23.136.1.1.1"
MAX_DATA_GROUP = 16
T = TypeVar("T")


class DataGroupHash(core.Sequence):  # type: ignore[misc]
    _fields = [("data_group_number", core.Integer), ("data_group_hash_value", core.OctetString)]


class DataGroupHashValues(core.SequenceOf):  # type: ignore[misc]
    _child_spec = DataGroupHash


class _DigestAlgorithmIdentifier(core.Sequence):  # type: ignore[misc]
    # asn1crypto's DigestAlgorithm always writes NULL parameters; RFC 5754 section 2 says to
    # generate SHA-2 identifiers with the parameters absent (and to accept both).
    _fields = [("algorithm", algos.DigestAlgorithmId), ("parameters", core.Any, {"optional": True})]


class LdsVersionInfo(core.Sequence):  # type: ignore[misc]
    _fields = [("lds_version", core.PrintableString), ("unicode_version", core.PrintableString)]


class LdsSecurityObjectAsn1(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("version", core.Integer),
        ("hash_algorithm", _DigestAlgorithmIdentifier),
        ("data_group_hash_values", DataGroupHashValues),
        ("lds_version_info", LdsVersionInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class LdsSecurityObject:
    """The hashes of the data groups, by data group number, and the hash algorithm that made them."""

    hash_algorithm: str
    hashes: tuple[tuple[int, bytes], ...]
    lds_version: tuple[str, str] | None = None  # (LDS version "0108", Unicode version "040000")

    @property
    def by_number(self) -> dict[int, bytes]:
        return dict(self.hashes)

    def encode(self) -> bytes:
        value: dict[str, object] = {
            "version": 1 if self.lds_version else 0,
            "hash_algorithm": {"algorithm": self.hash_algorithm},
            "data_group_hash_values": [
                {"data_group_number": n, "data_group_hash_value": h} for n, h in self.hashes
            ],
        }
        if self.lds_version:
            lds, uni = self.lds_version
            value["lds_version_info"] = {"lds_version": lds, "unicode_version": uni}
        return bytes(LdsSecurityObjectAsn1(value).dump())

    @classmethod
    def decode(cls, data: bytes) -> LdsSecurityObject:
        try:
            fields = _fields(der_one(data, "LDSSecurityObject"), _SEQUENCE, "LDSSecurityObject", 3, 4)
            version = _integer(fields[0])
            algorithm = _fields(fields[1], _SEQUENCE, "hash AlgorithmIdentifier", 1, 2)
            if len(algorithm) == 2 and algorithm[1].encode() != b"\x05\x00":
                raise LdsFormatError("hash algorithm parameters must be absent or NULL (RFC 5754 section 2)")
            name = str(algos.DigestAlgorithmId.map(_oid(algorithm[0])))
            hashes = []
            for item in _fields(fields[2], _SEQUENCE, "dataGroupHashValues", 0, None):
                number, value = _fields(item, _SEQUENCE, "DataGroupHash", 2, 2)
                hashes.append((_integer(number), _octets(value, "data group hash")))
            info = None
            if len(fields) == 4:
                lds, uni = _fields(fields[3], _SEQUENCE, "LDSVersionInfo", 2, 2)
                info = (_printable(lds), _printable(uni))
        except DerError as e:
            raise LdsFormatError(f"malformed LDSSecurityObject: {e}") from None
        if version not in (0, 1) or (version == 1) != (info is not None):
            raise LdsFormatError(f"LDSSecurityObject version {version} does not fit its content")
        if not 2 <= len(hashes) <= MAX_DATA_GROUP:
            raise LdsFormatError(f"LDSSecurityObject has {len(hashes)} data group hashes, not 2 to 16")
        numbers = [n for n, _ in hashes]
        if len(set(numbers)) != len(numbers) or any(not 1 <= n <= MAX_DATA_GROUP for n in numbers):
            raise LdsFormatError("LDSSecurityObject data group numbers repeat or are outside 1..16")
        return cls(name, tuple(hashes), info)


@dataclass(frozen=True)
class SignedData:
    """CMS SignedData (RFC 5652 section 5) as ICAO 9303 and BSI TR-03110 sign with it: EF.SOD and
    EF.CardSecurity. ``signed_attrs`` is the DER SET OF the signer's signed attributes, which is what
    the signature covers (RFC 5652 section 5.4)."""

    raw: bytes
    econtent: bytes
    econtent_type: str
    digest_algorithm: str
    signature_algorithm: algos.SignedDigestAlgorithm
    signature: bytes
    signed_attrs: bytes | None
    content_type_attr: str | None
    message_digest: bytes | None
    signing_time: dt.datetime | None
    certificates: tuple[x509.Certificate, ...]
    issuer_and_serial: tuple[bytes, int] | None  # (issuer Name DER, serial number)
    subject_key_identifier: bytes | None

    def signer_certificate(self) -> x509.Certificate | None:
        """The certificate in ``certificates`` that the signer info points at."""
        for cert in self.certificates:
            if self.issuer_and_serial is not None:
                if (cert.issuer.public_bytes(), cert.serial_number) == self.issuer_and_serial:
                    return cert
            elif self.subject_key_identifier is not None:
                try:
                    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
                except x509.ExtensionNotFound:
                    continue
                if ski == self.subject_key_identifier:
                    return cert
        return None


@dataclass(frozen=True)
class Sod(SignedData):
    """A parsed EF.SOD: its SignedData and the LDS security object it signs."""

    security_object: LdsSecurityObject


def hash_data_groups(data_groups: Mapping[int, bytes], hash_name: str) -> tuple[tuple[int, bytes], ...]:
    """The hash of every data group (whole file, tag and length included; ICAO 9303-10 section 4.6.2.3)."""
    return tuple((n, digest(hash_name, data_groups[n])) for n in sorted(data_groups))


def build_sod(
    data_groups: Mapping[int, bytes],
    signer: Signer,
    certificate: x509.Certificate,
    *,
    hash_name: HashName = "sha256",
    signature_hash: HashName | None = None,
    signing_time: dt.datetime | None = None,
    lds_version: tuple[str, str] | None = None,
) -> bytes:
    """Sign the hashes of ``data_groups`` (number -> whole file) into EF.SOD (tag 77)."""
    if not 2 <= len(data_groups) <= MAX_DATA_GROUP or any(not 1 <= n <= MAX_DATA_GROUP for n in data_groups):
        raise LdsFormatError("EF.SOD covers 2 to 16 data groups numbered 1..16 (ICAO 9303-10 4.6.2.3)")
    if hash_name not in HASH_NAMES:
        raise LdsFormatError(f"unsupported hash algorithm {hash_name!r}")
    if not same_key(signer.public_key, certificate.public_key()):
        raise LdsFormatError("the signing key does not match the document signer certificate")
    # Here, not at the top: a verifier parses EF.SOD without asn1crypto's CMS classes.
    from ektp_card.pki.cms import signed_data

    sig_hash = signature_hash or hash_name
    lso = LdsSecurityObject(hash_name, hash_data_groups(data_groups, hash_name), lds_version).encode()
    content_info = signed_data(OID_LDS_SECURITY_OBJECT, lso, signer, certificate, hash_name=sig_hash,
                               signing_time=signing_time)
    return bytes([EF_SOD_TAG]) + encode_length(len(content_info)) + content_info


def unwrap(data: bytes) -> bytes:
    """The CMS ContentInfo inside the EF.SOD tag 77 (trailing bytes are refused)."""
    try:
        tlv, end = parse_one(data)
    except TlvError as e:
        raise LdsFormatError(f"EF.SOD is not a complete tag 77 object: {e}") from None
    if tlv.tag != EF_SOD_TAG:
        raise LdsFormatError(f"EF.SOD starts with tag {tlv.tag:X}, not 77")
    if end != len(data):
        raise LdsFormatError(f"EF.SOD has {len(data) - end} bytes after its tag 77 object")
    return bytes(tlv.value)


OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_ATTRIBUTE_NAMES = {
    "1.2.840.113549.1.9.3": "content_type",
    "1.2.840.113549.1.9.4": "message_digest",
    "1.2.840.113549.1.9.5": "signing_time",
}
_SEQUENCE, _SET, _INTEGER, _OCTET_STRING, _OID = 0x30, 0x31, 0x02, 0x04, 0x06
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18


def parse_sod(data: bytes) -> Sod:
    """Parse EF.SOD. Structure only: :mod:`ektp_card.verify.passive` checks what it says.

    The CMS structure is walked with the strict DER-TLV reader rather than asn1crypto's CMS classes:
    a document is verified at a clerk's desk while the holder waits, and asn1crypto's full parse of
    SignedData cost more than the three signature checks of Passive Authentication together. asn1crypto
    still decodes the few leaves it knows best (algorithm identifiers, times).
    """
    der = unwrap(data)
    fields = _parsed(lambda: _parse_signed_data(data, der, "EF.SOD"), "EF.SOD")
    security_object = _parsed(lambda: LdsSecurityObject.decode(fields["econtent"]), "EF.SOD")
    return Sod(**fields, security_object=security_object)


def parse_signed_data(data: bytes, what: str) -> SignedData:
    """A DER ContentInfo holding SignedData (``what`` names the file in errors: ``EF.CardSecurity``),
    the structure only; :class:`LdsFormatError` when it is not one."""
    return SignedData(**_parsed(lambda: _parse_signed_data(data, data, what), what))


def _parsed(parse: Callable[[], T], what: str) -> T:
    try:
        return parse()
    except DerError as e:
        raise LdsFormatError(f"malformed {what}: {e}") from None
    except LdsFormatError:
        raise
    except ASN1_ERRORS as e:
        raise LdsFormatError(f"malformed {what}: {one_line(e)}") from None


def _parse_signed_data(data: bytes, der: bytes, what: str) -> dict[str, Any]:
    content_type, content = _fields(der_one(der, "ContentInfo"), _SEQUENCE, "ContentInfo", 2, 2)
    if _oid(content_type) != OID_SIGNED_DATA:
        raise LdsFormatError(f"{what} holds {_oid(content_type)}, not signed data")
    (sd,) = _fields(content, 0xA0, "ContentInfo content", 1, 1)
    parts = _fields(sd, _SEQUENCE, "SignedData", 4, 6)
    version, digest_algorithms, encap, *rest = parts
    signer_infos = rest.pop()
    certificates = crls = None
    for part in rest:
        if part.tag == 0xA0 and certificates is None and crls is None:
            certificates = part
        elif part.tag == 0xA1 and crls is None:
            crls = part
        else:
            raise LdsFormatError(f"unexpected tag {part.tag:X} in SignedData")
    # RFC 5652 sections 5.1 and 5.3: these fields are outside the signature, so hold them to the
    # only values that fit, or a changed byte there would go unnoticed.
    if _integer(version) != 3:
        raise LdsFormatError(f"SignedData version {_integer(version)} is not v3 (RFC 5652 5.1)")
    listed = [a.encode() for a in _fields(digest_algorithms, _SET, "digestAlgorithms", 0, None)]
    for algorithm in listed:
        _algorithm_oid(algorithm)
    econtent_type_tlv, *econtent_parts = _fields(encap, _SEQUENCE, "EncapsulatedContentInfo", 1, 2)
    econtent_type = _oid(econtent_type_tlv)
    if not econtent_parts:
        raise LdsFormatError(f"{what} has no encapsulated content")
    (econtent_tlv,) = _fields(econtent_parts[0], 0xA0, "eContent", 1, 1)
    if econtent_tlv.tag != _OCTET_STRING:
        raise LdsFormatError(f"{what} encapsulated content is not an octet string")
    econtent = econtent_tlv.value
    certs = tuple(_certificate(c) for c in (certificates.children if certificates is not None else ())
                  if c.tag == _SEQUENCE)
    if crls is not None:
        crls.children  # noqa: B018 - well-formed, though EF.SOD carries no CRLs worth reading
    infos = _fields(signer_infos, _SET, "signerInfos", 0, None)
    if len(infos) != 1:
        raise LdsFormatError(f"{what} has {len(infos)} signer infos, ICAO 9303-10 wants one")
    si = _fields(infos[0], _SEQUENCE, "SignerInfo", 5, 7)
    si_version, sid, digest_algorithm, *middle = si
    signed_attrs_tlv = middle.pop(0) if middle[0].tag == 0xA0 else None
    signature_algorithm_tlv, signature_tlv, *unsigned = middle
    if unsigned and (len(unsigned) > 1 or unsigned[0].tag != 0xA1):
        raise LdsFormatError("unexpected fields after the SignerInfo signature")
    issuer_serial: tuple[bytes, int] | None = None
    ski: bytes | None = None
    if sid.tag == _SEQUENCE:
        issuer, serial = _fields(sid, _SEQUENCE, "IssuerAndSerialNumber", 2, 2)
        if issuer.tag != _SEQUENCE:
            raise LdsFormatError("the signer's issuer is not a Name")
        issuer_serial = (issuer.encode(), _integer(serial))
    elif sid.tag == 0x80:
        ski = sid.value
    else:
        raise LdsFormatError(f"signer identifier has tag {sid.tag:X}")
    if _integer(si_version) != (1 if issuer_serial is not None else 3):
        raise LdsFormatError(f"SignerInfo version {_integer(si_version)} does not fit its signer id")
    if digest_algorithm.encode() not in listed or len(listed) != 1:
        raise LdsFormatError("SignedData digestAlgorithms must be exactly the signer's digest algorithm")
    signed_attrs: bytes | None = None
    content_type_attr = message_digest = signing_time = None
    if signed_attrs_tlv is not None:
        # RFC 5652 section 5.4: the signature covers the attributes with their SET OF tag.
        signed_attrs = bytes((_SET,)) + signed_attrs_tlv.raw[1:]
        for attr in signed_attrs_tlv.children:
            attr_type, values_tlv = _fields(attr, _SEQUENCE, "Attribute", 2, 2)
            oid = _oid(attr_type)
            name = _ATTRIBUTE_NAMES.get(oid, oid)
            values = _fields(values_tlv, _SET, f"values of {name}", 0, None)
            if len(values) != 1:
                raise LdsFormatError(f"signed attribute {name} must have exactly one value")
            (value,) = values
            if name == "content_type":
                content_type_attr = _oid(value)
            elif name == "message_digest":
                message_digest = _octets(value, "message digest")
            elif name == "signing_time":
                signing_time = _time(value)
    if signature_tlv.tag != _OCTET_STRING:
        raise LdsFormatError("the signature is not an octet string")
    signature_algorithm = load_signature_algorithm(signature_algorithm_tlv.encode())
    return dict(
        raw=bytes(data),
        econtent=econtent,
        econtent_type=econtent_type,
        digest_algorithm=_algorithm_oid(digest_algorithm.encode()),
        signature_algorithm=signature_algorithm,
        signature=signature_tlv.value,
        signed_attrs=signed_attrs,
        content_type_attr=content_type_attr,
        message_digest=message_digest,
        signing_time=signing_time,
        certificates=certs,
        issuer_and_serial=issuer_serial,
        subject_key_identifier=ski,
    )


def _fields(tlv: Der, tag: int, what: str, least: int, most: int | None) -> list[Der]:
    """The children of a constructed ``tlv`` that must carry ``tag``, between ``least`` and ``most``."""
    if tlv.tag != tag:
        raise LdsFormatError(f"{what} has tag {tlv.tag:X}, not {tag:X}")
    children = tlv.children
    if len(children) < least or (most is not None and len(children) > most):
        raise LdsFormatError(f"{what} has {len(children)} fields")
    return children


def _oid(tlv: Der) -> str:
    if tlv.tag != _OID:
        raise LdsFormatError(f"tag {tlv.tag:X} where an object identifier belongs")
    return decode_oid(tlv.value)


def _integer(tlv: Der) -> int:
    value = tlv.value
    if tlv.tag != _INTEGER or not value or (len(value) > 1 and (
            (value[0] == 0 and not value[1] & 0x80) or (value[0] == 0xFF and value[1] & 0x80))):
        raise LdsFormatError("malformed integer")
    return int.from_bytes(value, "big", signed=True)


def _printable(tlv: Der) -> str:
    """A PrintableString (ITU-T X.680 section 41.4): letters, digits, space and ' ( ) + , - . / : = ?."""
    text = tlv.value.decode("ascii", "replace")
    if tlv.tag != 0x13 or any(not (c.isascii() and (c.isalnum() or c in " '()+,-./:=?")) for c in text):
        raise LdsFormatError("malformed PrintableString")
    return text


def _octets(tlv: Der, what: str) -> bytes:
    if tlv.tag != _OCTET_STRING:
        raise LdsFormatError(f"the {what} is not an octet string")
    return tlv.value


def _algorithm_oid(der: bytes) -> str:
    """The algorithm of an AlgorithmIdentifier by asn1crypto's name for it ("sha256"), else dotted."""
    algorithm, *_ = _fields(der_one(der, "AlgorithmIdentifier"), _SEQUENCE, "AlgorithmIdentifier", 1, 2)
    return str(algos.DigestAlgorithmId.map(_oid(algorithm)))


def _time(tlv: Der) -> dt.datetime:
    if tlv.tag not in (_UTC_TIME, _GENERALIZED_TIME):
        raise LdsFormatError("the signing time is neither UTCTime nor GeneralizedTime")
    kind = core.UTCTime if tlv.tag == _UTC_TIME else core.GeneralizedTime
    when = kind.load(tlv.encode(), strict=True).native
    # A GeneralizedTime without a zone reads as a naive datetime, year 0 as asn1crypto's
    # extended_datetime: neither compares with a certificate's validity.
    if not isinstance(when, dt.datetime) or when.tzinfo is None:
        raise LdsFormatError("the signing time is not a time with its time zone")
    return when


def _certificate(tlv: Der) -> x509.Certificate:
    # Only as deep as the serial number: cryptography parses the rest (and warns on stderr about a
    # serial number that is not positive, so that is refused before it sees one).
    tbs = tlv.children[0] if tlv.value else None
    if tbs is None or tbs.tag != _SEQUENCE:
        raise LdsFormatError("TBSCertificate is not a SEQUENCE")
    fields = tbs.children
    if len(fields) < 2:
        raise LdsFormatError("TBSCertificate has no serial number")
    serial = fields[1] if fields[0].tag == 0xA0 else fields[0]
    if _integer(serial) <= 0:
        raise LdsFormatError("a certificate serial number is not positive (RFC 5280 section 4.1.2.2)")
    return load_certificate(tlv.encode())
