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
from collections.abc import Mapping
from dataclasses import dataclass

from asn1crypto import algos, cms, core  # type: ignore[import-untyped]
from cryptography import x509

from ektp_card.apdu.tlv import encode_length, parse_one
from ektp_card.errors import ASN1_ERRORS, LdsFormatError, TlvError, one_line
from ektp_card.pki.certs import load_certificate
from ektp_card.pki.cms import signed_data
from ektp_card.pki.signer import HASH_NAMES, HashName, Signer, digest, same_key

EF_SOD_TAG = 0x77
EF_SOD_FID = 0x011D
EF_SOD_SFI = 0x1D
#: ICAO 9303-10 section 4.6.2.3: id-icao-mrtd-security-ldsSecurityObject.
OID_LDS_SECURITY_OBJECT = "2.23.136.1.1.1"
MAX_DATA_GROUP = 16


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
            obj = LdsSecurityObjectAsn1.load(data, strict=True)
            native = obj.native  # forces the whole structure to be parsed
            version = native["version"]
            params = obj["hash_algorithm"]["parameters"]
            if params.dump() not in (b"", b"\x05\x00"):
                raise LdsFormatError("hash algorithm parameters must be absent or NULL (RFC 5754 section 2)")
            name = obj["hash_algorithm"]["algorithm"].native
            hashes = tuple(
                (int(item["data_group_number"]), bytes(item["data_group_hash_value"]))
                for item in native["data_group_hash_values"]
            )
            info = native["lds_version_info"]
        except ASN1_ERRORS as e:
            raise LdsFormatError(f"malformed LDSSecurityObject: {one_line(e)}") from None
        if version not in (0, 1) or (version == 1) != (info is not None):
            raise LdsFormatError(f"LDSSecurityObject version {version} does not fit its content")
        if not 2 <= len(hashes) <= MAX_DATA_GROUP:
            raise LdsFormatError(f"LDSSecurityObject has {len(hashes)} data group hashes, not 2 to 16")
        numbers = [n for n, _ in hashes]
        if len(set(numbers)) != len(numbers) or any(not 1 <= n <= MAX_DATA_GROUP for n in numbers):
            raise LdsFormatError("LDSSecurityObject data group numbers repeat or are outside 1..16")
        lds_version = (info["lds_version"], info["unicode_version"]) if info else None
        return cls(str(name), hashes, lds_version)


@dataclass(frozen=True)
class Sod:
    """A parsed EF.SOD. ``signed_attrs`` is the DER SET OF the signer's signed attributes, which
    is what the signature covers (RFC 5652 section 5.4)."""

    raw: bytes
    security_object: LdsSecurityObject
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
        """The certificate in the SOD that the signer info points at."""
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


def parse_sod(data: bytes) -> Sod:
    """Parse EF.SOD. Structure only: :mod:`ektp_card.verify.passive` checks what it says."""
    der = unwrap(data)
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise LdsFormatError(f"EF.SOD holds {info['content_type'].native}, not signed data")
        sd = info["content"]
        sd.native  # noqa: B018 - parse everything now, so a truncated SOD fails here and not later
        signer_infos = sd["signer_infos"]
        if len(signer_infos) != 1:
            raise LdsFormatError(f"EF.SOD has {len(signer_infos)} signer infos, ICAO 9303-10 wants one")
        si = signer_infos[0]
        # RFC 5652 sections 5.1 and 5.3: these fields are outside the signature, so hold them to the
        # only values that fit, or a changed byte there would go unnoticed.
        if sd["version"].native != "v3":
            raise LdsFormatError(f"SignedData version {sd['version'].native} is not v3 (RFC 5652 5.1)")
        expected_si_version = "v1" if si["sid"].name == "issuer_and_serial_number" else "v3"
        if si["version"].native != expected_si_version:
            raise LdsFormatError(f"SignerInfo version {si['version'].native} does not fit its signer id")
        listed = [a.dump() for a in sd["digest_algorithms"]]
        if si["digest_algorithm"].dump() not in listed or len(listed) != 1:
            raise LdsFormatError("SignedData digestAlgorithms must be exactly the signer's digest algorithm")
        encap = sd["encap_content_info"]
        econtent_type = encap["content_type"].dotted
        econtent_obj = encap["content"]
        if econtent_obj.native is None:
            raise LdsFormatError("EF.SOD has no encapsulated content")
        if not isinstance(econtent_obj, core.OctetString | cms.ParsableOctetString):
            raise LdsFormatError("EF.SOD encapsulated content is not an octet string")
        econtent = bytes(econtent_obj)
        choices = [c.chosen for c in (sd["certificates"] if sd["certificates"].native is not None else [])
                   if c.name == "certificate"]
        if any(c["tbs_certificate"]["serial_number"].native <= 0 for c in choices):
            raise LdsFormatError("a certificate serial number is not positive (RFC 5280 section 4.1.2.2)")
        certs = tuple(load_certificate(c.dump()) for c in choices)
        sid = si["sid"]
        issuer_serial: tuple[bytes, int] | None = None
        ski: bytes | None = None
        if sid.name == "issuer_and_serial_number":
            issuer_serial = (sid.chosen["issuer"].dump(), int(sid.chosen["serial_number"].native))
        else:
            ski = bytes(sid.chosen.native)
        attrs = si["signed_attrs"]
        signed_attrs: bytes | None = None
        content_type_attr = message_digest = signing_time = None
        if attrs.native is not None:
            signed_attrs = cms.CMSAttributes(list(attrs)).dump()
            for attr in attrs:
                name = attr["type"].native
                values = attr["values"]
                if len(values) != 1:
                    raise LdsFormatError(f"signed attribute {name} must have exactly one value")
                if name == "content_type":
                    content_type_attr = values[0].dotted
                elif name == "message_digest":
                    message_digest = bytes(values[0].native)
                elif name == "signing_time":
                    signing_time = values[0].native
                    # A GeneralizedTime without a zone reads as a naive datetime, year 0 as
                    # asn1crypto's extended_datetime: neither compares with a certificate's validity.
                    if not isinstance(signing_time, dt.datetime) or signing_time.tzinfo is None:
                        raise LdsFormatError("the signing time is not a time with its time zone")
        lso = LdsSecurityObject.decode(econtent)
        return Sod(
            raw=bytes(data),
            security_object=lso,
            econtent=econtent,
            econtent_type=econtent_type,
            digest_algorithm=str(si["digest_algorithm"]["algorithm"].native),
            signature_algorithm=si["signature_algorithm"],
            signature=bytes(si["signature"].native),
            signed_attrs=signed_attrs,
            content_type_attr=content_type_attr,
            message_digest=message_digest,
            signing_time=signing_time,
            certificates=certs,
            issuer_and_serial=issuer_serial,
            subject_key_identifier=ski,
        )
    except LdsFormatError:
        raise
    except ASN1_ERRORS as e:
        raise LdsFormatError(f"malformed EF.SOD: {one_line(e)}") from None

