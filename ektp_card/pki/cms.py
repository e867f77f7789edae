"""CMS SignedData with signed attributes, as EF.SOD and CSCA master lists use it (RFC 5652 section 5)."""

from __future__ import annotations

import datetime as dt

from asn1crypto import cms  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card.pki.signer import HashName, Signer, digest


def _attribute(attr_type: str, value: object) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": attr_type, "values": [value]})


def signed_data(
    content_type: str,
    econtent: bytes,
    signer: Signer,
    certificate: x509.Certificate,
    *,
    hash_name: HashName,
    signing_time: dt.datetime | None = None,
) -> bytes:
    """A DER ContentInfo holding SignedData over ``econtent`` by one signer, its certificate included.

    Signed attributes: content type, signing time, message digest (RFC 5652 section 11.1-11.3).
    """
    when = (signing_time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    attrs = [
        _attribute("content_type", content_type),
        _attribute("signing_time", cms.Time({"utc_time": when})),
        _attribute("message_digest", digest(hash_name, econtent)),
    ]
    # DER orders SET OF by encoding (X.690 section 11.6); OpenSSL re-encodes the attributes that
    # way before checking the signature, so the order we sign must be the canonical one.
    signed_attrs = cms.CMSAttributes(sorted(attrs, key=lambda a: a.dump()))
    # RFC 5652 section 5.4: the signature is over the DER of the attributes as a SET OF (tag 31),
    # not over their [0] IMPLICIT form inside SignerInfo.
    signature = signer.sign(signed_attrs.dump(), hash_name)
    cert = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))
    signer_info = cms.SignerInfo(
        {
            "version": "v1",  # issuerAndSerialNumber (RFC 5652 section 5.3)
            "sid": cms.SignerIdentifier(
                {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}}
            ),
            "digest_algorithm": {"algorithm": hash_name},
            "signed_attrs": signed_attrs,
            "signature_algorithm": signer.algorithm(hash_name),
            "signature": signature,
        }
    )
    sd = cms.SignedData(
        {
            "version": "v3",  # eContentType is not id-data (RFC 5652 section 5.1)
            "digest_algorithms": [{"algorithm": hash_name}],
            "encap_content_info": {
                "content_type": content_type,
                "content": cms.ParsableOctetString(econtent),
            },
            "certificates": [cert],
            "signer_infos": [signer_info],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump())
