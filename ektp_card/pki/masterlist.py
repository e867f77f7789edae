"""CSCA master lists (ICAO 9303-12 section 9): a signed list of the CSCA certificates a state trusts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from asn1crypto import core  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card.pki.cms import signed_data
from ektp_card.pki.signer import HashName, Signer

#: ICAO 9303-12 section 9: id-icao-cscaMasterList.
OID_CSCA_MASTER_LIST = "2.23.136.1.1.2"


class CscaMasterList(core.Sequence):  # type: ignore[misc]
    # CscaMasterList ::= SEQUENCE { version CscaMasterListVersion (v0), certList SET OF Certificate }
    _fields = [("version", core.Integer), ("cert_list", core.SetOf, {"spec": asn1_x509.Certificate})]


def build_master_list(
    signer: Signer,
    certificate: x509.Certificate,
    cscas: Sequence[x509.Certificate],
    *,
    hash_name: HashName = "sha256",
    signing_time: dt.datetime | None = None,
) -> bytes:
    """A DER master list over ``cscas``, signed by the master list signer ``certificate``."""
    certs = [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in cscas]
    content = CscaMasterList({"version": 0, "cert_list": certs}).dump()
    return signed_data(OID_CSCA_MASTER_LIST, content, signer, certificate, hash_name=hash_name,
                       signing_time=signing_time)
