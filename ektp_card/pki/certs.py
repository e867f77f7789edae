"""Country signing CA and document signer certificates after the ICAO 9303-12 certificate profiles.

ICAO 9303-12 section 7.1.1 (certificate profile) and its extension table fix what goes in:
X.509 v3, a positive serial of at most 20 octets, a countryName in issuer and subject (the same
country throughout one chain), key usage critical (keyCertSign + cRLSign for the CSCA,
digitalSignature alone for a document signer), basic constraints critical cA for the CSCA only,
authority and subject key identifiers, the private key usage period, and for document signers the
document type list (ICAO 9303-12 section 7.1.1.3, id-icao-mrtd-security-extensions-documentTypeList).

ICAO 9303-12 section 5 (key management, Table 1) sets the periods: the CSCA private key is used for
3 to 5 years and its certificate stays valid as long as the documents signed under it; a document
signer key is used for at most 3 months, its certificate valid as long as the documents it signed.

Certificates are built with ``cryptography``'s builder and then signed by a :class:`Signer`, so the
private key can stay in a file or a token that Python cannot read.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from functools import cache, lru_cache

from asn1crypto import algos, core  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ektp_card.der import der_one
from ektp_card.errors import PkiError, one_line
from ektp_card.pki.arc import EKTP_ARC
from ektp_card.pki.signer import (
    HashName,
    PublicKey,
    Signer,
    as_public_key,
    hash_algorithm,
    load_signature_algorithm,
    pss_padding,
    same_key,
    verify_signature,
)

#: RFC 3280 section 4.2.1.4 (dropped from RFC 5280, kept by ICAO 9303-12 section 7.1.1).
OID_PRIVATE_KEY_USAGE_PERIOD = x509.ObjectIdentifier("2.5.29.16")
#: ICAO 9303-12 section 7.1.1.3: id-icao-mrtd-security-extensions-documentTypeList.
OID_DOCUMENT_TYPE_LIST = x509.ObjectIdentifier("2.23.136.1.1.6.2")

#: Extended key usage of a card revocation list signer (arc .1 key purposes, .1.1).
OID_KP_REVOCATION_LIST_SIGNING = x509.ObjectIdentifier(f"{EKTP_ARC}.1.1")
REVOCATION_SIGNER_MAX_DAYS = 3 * 366

#: The document type of an e-KTP (ICAO 9303-3 document code "ID": an identity card), what its document
#: signers sign by default and what Passive Authentication checks an e-KTP's signer against.
EKTP_DOCUMENT_TYPE = "ID"

CSCA_KEY_USAGE_YEARS = (3, 5)
DS_MAX_KEY_USAGE_DAYS = 92  # "3 months" at its longest (ICAO 9303-12 section 5, Table 1)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _add_years(when: dt.datetime, years: int) -> dt.datetime:
    try:
        return when.replace(year=when.year + years)
    except ValueError:  # 29 February
        return when.replace(year=when.year + years, day=28)


def build_name(country: str, common_name: str, organization: str | None = None,
               serial_number: str | None = None) -> x509.Name:
    """An issuer or subject name; ICAO 9303-12 section 7.1.1 wants the country code in upper case."""
    if len(country) != 2 or not country.isascii() or not country.isalpha() or not country.isupper():
        raise PkiError(f"country must be a two-letter upper-case code, got {country!r}")
    if not common_name:
        raise PkiError("a certificate needs a common name")
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, country)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    if serial_number:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number))
    return x509.Name(attrs)


def country_of(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    return str(values[0].value) if len(values) == 1 else None


def new_serial() -> int:
    """A random positive serial of at most 20 octets (RFC 5280 section 4.1.2.2)."""
    return secrets.randbits(159) | (1 << 158)


def private_key_usage_period(not_before: dt.datetime, not_after: dt.datetime) -> x509.UnrecognizedExtension:
    """PrivateKeyUsagePeriod ::= SEQUENCE { notBefore [0] GeneralizedTime, notAfter [1] GeneralizedTime }."""
    from asn1crypto import x509 as asn1_x509  # issuing only: a verifier does not load asn1crypto's X.509

    value = asn1_x509.PrivateKeyUsagePeriod({"not_before": not_before, "not_after": not_after})
    return x509.UnrecognizedExtension(OID_PRIVATE_KEY_USAGE_PERIOD, value.dump())


class _DocumentTypeList(core.Sequence):  # type: ignore[misc]
    # DocumentTypeListSyntax ::= SEQUENCE { version INTEGER (v0), docTypeList SET OF PrintableString }
    _fields = [("version", core.Integer), ("doc_type_list", core.SetOf, {"spec": core.PrintableString})]


def document_type_list(types: Sequence[str]) -> x509.UnrecognizedExtension:
    if not types or any(not t or len(t) > 2 or not t.isalpha() or not t.isupper() for t in types):
        raise PkiError("document types are one or two upper-case letters (ICAO 9303-3 document codes)")
    value = _DocumentTypeList({"version": 0, "doc_type_list": sorted(set(types))})
    return x509.UnrecognizedExtension(OID_DOCUMENT_TYPE_LIST, value.dump())


def document_type(code: str) -> str:
    """An MRZ document code as the Document Type List holds it: the filler ``<`` dropped (``P<`` is
    ``P``, ``I<`` is ``I``; PrintableString has no ``<``). :class:`PkiError` for anything but one or two
    letters A-Z then."""
    value = code.replace("<", "")
    if not 1 <= len(value) <= 2 or not all("A" <= c <= "Z" for c in value):
        raise PkiError(f"a document type is one or two letters A-Z (an MRZ document code), got {code!r}")
    return value


def document_types(cert: x509.Certificate) -> tuple[str, ...] | None:
    """The document types ``cert`` may sign (ICAO 9303-12 section 7.1.1.3), sorted, or None when it has no
    Document Type List; :class:`ValueError` when the extension is malformed."""
    try:
        ext = cert.extensions.get_extension_for_oid(OID_DOCUMENT_TYPE_LIST)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else value.public_bytes()
    try:
        parsed = _DocumentTypeList.load(raw, strict=True)
        version = parsed["version"].native
        types = tuple(sorted(str(t) for t in parsed["doc_type_list"].native))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as e:
        raise ValueError(f"malformed document type list: {one_line(e)}") from None
    if version != 0:
        raise ValueError(f"document type list version {version} is not v0")
    return types


def parse_private_key_usage_period(
    cert: x509.Certificate,
) -> tuple[dt.datetime | None, dt.datetime | None] | None:
    """The private key usage period of ``cert``, or ``None`` when it has none."""
    try:
        ext = cert.extensions.get_extension_for_oid(OID_PRIVATE_KEY_USAGE_PERIOD)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    if isinstance(value, x509.UnrecognizedExtension):  # cryptography before 45
        from asn1crypto import x509 as asn1_x509

        parsed = asn1_x509.PrivateKeyUsagePeriod.load(value.value)
        return parsed["not_before"].native, parsed["not_after"].native
    # cryptography 45 and later parse the extension themselves (x509.PrivateKeyUsagePeriod).
    start, end = getattr(value, "not_before", None), getattr(value, "not_after", None)
    return (
        start.replace(tzinfo=dt.UTC) if isinstance(start, dt.datetime) and start.tzinfo is None else start,
        end.replace(tzinfo=dt.UTC) if isinstance(end, dt.datetime) and end.tzinfo is None else end,
    )


@cache
def _placeholder_key(kind: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    # The builder wants a key to sign with; its signature is thrown away and replaced by the
    # Signer's. Only the algorithm identifier it writes matters, and that depends on the key type
    # and the hash, not on the curve or modulus.
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _builder_sign(builder: x509.CertificateBuilder | x509.CertificateRevocationListBuilder,
                  signer: Signer, hash_name: HashName) -> bytes:
    key = _placeholder_key(signer.key_type)
    h = hash_algorithm(hash_name)
    if isinstance(builder, x509.CertificateBuilder):
        if signer.key_type == "rsa":
            return builder.sign(key, h, rsa_padding=pss_padding(hash_name)).public_bytes(Encoding.DER)
        return builder.sign(key, h).public_bytes(Encoding.DER)
    if signer.key_type == "rsa":
        return builder.sign(key, h, rsa_padding=pss_padding(hash_name)).public_bytes(Encoding.DER)
    return builder.sign(key, h).public_bytes(Encoding.DER)


def sign_certificate(
    builder: x509.CertificateBuilder, signer: Signer, hash_name: HashName
) -> x509.Certificate:
    """Finish ``builder`` with ``signer``'s signature over the TBSCertificate (RFC 5280 section 4.1.1.3)."""
    from asn1crypto import x509 as asn1_x509  # issuing only: a verifier does not load asn1crypto's X.509

    cert = asn1_x509.Certificate.load(_builder_sign(builder, signer, hash_name))
    tbs = cert["tbs_certificate"]
    signed = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": cert["signature_algorithm"],
            "signature_value": signer.sign(tbs.dump(), hash_name),
        }
    )
    return x509.load_der_x509_certificate(signed.dump())


def sign_crl(builder: x509.CertificateRevocationListBuilder, signer: Signer,
             hash_name: HashName) -> x509.CertificateRevocationList:
    """Finish ``builder`` with ``signer``'s signature over the DER TBSCertList (RFC 5280 section 5.1.1.3)."""
    from asn1crypto import crl as asn1_crl  # issuing only, as above

    crl = asn1_crl.CertificateList.load(_builder_sign(builder, signer, hash_name))
    tbs = crl["tbs_cert_list"]
    signed = asn1_crl.CertificateList(
        {
            "tbs_cert_list": tbs,
            "signature_algorithm": crl["signature_algorithm"],
            "signature": signer.sign(tbs.dump(), hash_name),
        }
    )
    return x509.load_der_x509_crl(signed.dump())


def load_certificate(der: bytes) -> x509.Certificate:
    """A DER certificate from outside (a card's EF.SOD, a signed list), with the parts a verifier reads
    parsed now. ``cryptography`` reads names, extensions and validity lazily, and on hostile input
    raises KeyError or ValueError only when one is first touched, deep in a check; here it is a
    :class:`ValueError` (with a one-line message) at once."""
    try:
        cert = x509.load_der_x509_certificate(der)
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        cert.extensions  # noqa: B018 - parsed for the error, not the value
        cert.not_valid_before_utc  # noqa: B018
        cert.not_valid_after_utc  # noqa: B018
    except (KeyError, TypeError, ValueError, x509.InvalidVersion, x509.DuplicateExtension) as e:
        detail = f"a name holds a string of unknown type {e}" if isinstance(e, KeyError) else one_line(e)
        raise ValueError(f"malformed certificate: {detail}") from None
    return cert


#: RFC 4055 section 3.1: the one signature algorithm here whose identifier carries parameters.
OID_RSASSA_PSS = "1.2.840.113549.1.1.10"


def _signature_algorithm(
    signed: x509.Certificate | x509.CertificateRevocationList,
) -> algos.SignedDigestAlgorithm:
    """The outer signatureAlgorithm of a certificate or CRL (RFC 5280 sections 4.1.1.2 and 5.1.1.2)."""
    oid = signed.signature_algorithm_oid.dotted_string
    if oid != OID_RSASSA_PSS:
        # ECDSA identifiers have no parameters (RFC 5758 section 3.2) and verify_signature reads only
        # the OID of anything else: the identifier is rebuilt from it, not decoded from the DER again.
        return _without_parameters(oid)
    # Certificate and CertificateList alike: SEQUENCE { tbs, signatureAlgorithm, signatureValue }.
    fields = der_one(signed.public_bytes(Encoding.DER), "the certificate or CRL").children
    if len(fields) != 3:
        raise ValueError(f"a signed structure of {len(fields)} fields, not 3")
    return load_signature_algorithm(fields[1].encode())


@lru_cache(maxsize=64)  # bounded: the OID comes from the document
def _without_parameters(oid: str) -> algos.SignedDigestAlgorithm:
    algorithm = algos.SignedDigestAlgorithm({"algorithm": oid})
    algorithm.native  # noqa: B018 - parsed whole before it is shared
    return algorithm


def verify_certificate_signature(cert: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """``None`` when ``issuer``'s key signed ``cert``, else why not (RFC 5280 section 6.1.3 (a)(1))."""
    try:
        algorithm = _signature_algorithm(cert)
        key = as_public_key(issuer.public_key())
    except (PkiError, ValueError, UnsupportedAlgorithm) as e:
        return one_line(e)
    return verify_signature(key, algorithm, cert.signature, cert.tbs_certificate_bytes)


def verify_crl_signature(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> str | None:
    """``None`` when ``issuer``'s key signed ``crl``, else why not (RFC 5280 section 6.3.3 (f))."""
    try:
        algorithm = _signature_algorithm(crl)
        key = as_public_key(issuer.public_key())
    except (PkiError, ValueError, UnsupportedAlgorithm) as e:
        return one_line(e)
    return verify_signature(key, algorithm, crl.signature, crl.tbs_certlist_bytes)


def _check_key(public_key: PublicKey) -> None:
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < 2048:
        raise PkiError("RSA keys must have at least 2048 bits")


def _crl_dp(url: str | None) -> list[x509.ExtensionType]:
    if not url:
        return []
    point = x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)
    return [x509.CRLDistributionPoints([point])]


def create_csca(
    signer: Signer,
    *,
    country: str,
    common_name: str,
    organization: str | None = None,
    key_usage_years: int = 5,
    document_validity_years: int = 10,
    not_before: dt.datetime | None = None,
    hash_name: HashName | None = None,
    serial_number: int | None = None,
    crl_url: str | None = None,
) -> x509.Certificate:
    """A self-signed country signing CA certificate (ICAO 9303-12 section 7.1.1).

    The private key usage period is ``key_usage_years`` (3 to 5); the certificate stays valid for
    that plus the longest document validity plus the last document signer's 3 months, so the last
    document signed can still be checked on its last day.
    """
    low, high = CSCA_KEY_USAGE_YEARS
    if not low <= key_usage_years <= high:
        raise PkiError(f"a CSCA key is used for {low} to {high} years (ICAO 9303-12 section 5)")
    if document_validity_years < 1:
        raise PkiError("document validity must be at least one year")
    _check_key(signer.public_key)
    start = (not_before or now()).astimezone(dt.UTC).replace(microsecond=0)
    usage_end = _add_years(start, key_usage_years)
    not_after = _add_years(usage_end, document_validity_years) + dt.timedelta(days=DS_MAX_KEY_USAGE_DAYS)
    name = build_name(country, common_name, organization)
    ski = x509.SubjectKeyIdentifier.from_public_key(signer.public_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.public_key)
        .serial_number(serial_number or new_serial())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(private_key_usage_period(start, usage_end), critical=False)
    )
    for ext in _crl_dp(crl_url):
        builder = builder.add_extension(ext, critical=False)
    return sign_certificate(builder, signer, hash_name or signer.default_hash)


def _leaf_builder(
    csca_signer: Signer,
    csca_cert: x509.Certificate,
    public_key: PublicKey,
    start: dt.datetime,
    not_after: dt.datetime,
    what: str,
    common_name: str,
    organization: str | None,
    serial_number: int | None,
    *,
    digital_signature: bool,
) -> x509.CertificateBuilder:
    """A signer certificate under the CSCA, checked against it: subject in the CSCA's country, critical
    key usage digitalSignature (documents) or else contentCommitment (lists), key identifiers."""
    if not same_key(csca_signer.public_key, csca_cert.public_key()):
        raise PkiError("the CSCA key does not match the CSCA certificate")
    _check_key(public_key)
    country = country_of(csca_cert.subject)
    if country is None:
        raise PkiError("the CSCA certificate has no single country name")
    if not_after > csca_cert.not_valid_after_utc or start < csca_cert.not_valid_before_utc:
        raise PkiError(f"the {what} would be valid outside the CSCA certificate's validity")
    csca_ski = csca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(build_name(country, common_name, organization))
        .issuer_name(csca_cert.subject)
        .public_key(public_key)
        .serial_number(serial_number or new_serial())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature, content_commitment=not digital_signature,
                key_encipherment=False, data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(csca_ski), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def issue_document_signer(
    csca_signer: Signer,
    csca_cert: x509.Certificate,
    public_key: PublicKey,
    *,
    common_name: str,
    organization: str | None = None,
    key_usage_days: int = 90,
    document_validity_years: int = 10,
    not_before: dt.datetime | None = None,
    hash_name: HashName | None = None,
    serial_number: int | None = None,
    document_types: Sequence[str] = (EKTP_DOCUMENT_TYPE,),
    crl_url: str | None = None,
) -> x509.Certificate:
    """A document signer certificate for ``public_key`` under the CSCA (ICAO 9303-12 section 7.1.1).

    The key may sign documents for ``key_usage_days`` (at most 3 months); the certificate stays
    valid ``document_validity_years`` longer so documents signed on the last day can be checked.
    ``document_types`` (MRZ document codes, e.g. ``ID``, ``P``) go into its Document Type List.
    """
    if not 1 <= key_usage_days <= DS_MAX_KEY_USAGE_DAYS:
        raise PkiError(
            f"a document signer key is used for 1 to {DS_MAX_KEY_USAGE_DAYS} days (ICAO 9303-12 section 5)"
        )
    start = (not_before or now()).astimezone(dt.UTC).replace(microsecond=0)
    usage_end = start + dt.timedelta(days=key_usage_days)
    not_after = _add_years(usage_end, document_validity_years)
    builder = (
        _leaf_builder(csca_signer, csca_cert, public_key, start, not_after, "document signer",
                      common_name, organization, serial_number, digital_signature=True)
        .add_extension(private_key_usage_period(start, usage_end), critical=False)
        .add_extension(document_type_list(document_types), critical=False)
    )
    for ext in _crl_dp(crl_url):
        builder = builder.add_extension(ext, critical=False)
    return sign_certificate(builder, csca_signer, hash_name or csca_signer.default_hash)


def issue_revocation_signer(
    csca_signer: Signer,
    csca_cert: x509.Certificate,
    public_key: PublicKey,
    *,
    common_name: str,
    organization: str | None = None,
    validity_days: int = 365,
    not_before: dt.datetime | None = None,
    hash_name: HashName | None = None,
    serial_number: int | None = None,
) -> x509.Certificate:
    """A card revocation list signer certificate for ``public_key`` under the CSCA.

    Modelled on the ICAO 9303-12 signers of master lists and deviation lists: a leaf issued by the
    CSCA whose critical extended key usage names its one purpose (our
    :data:`OID_KP_REVOCATION_LIST_SIGNING`). Its key usage is contentCommitment alone (RFC 5280
    section 4.2.1.3: signatures other than on certificates and CRLs), not digitalSignature, so the
    key can never pass as a document signer: Passive Authentication accepts digitalSignature alone.
    The certificate's validity is the key's usage period: lists are short-lived and re-signed.
    """
    if not 1 <= validity_days <= REVOCATION_SIGNER_MAX_DAYS:
        raise PkiError(f"a revocation list signer is valid for 1 to {REVOCATION_SIGNER_MAX_DAYS} days")
    start = (not_before or now()).astimezone(dt.UTC).replace(microsecond=0)
    not_after = start + dt.timedelta(days=validity_days)
    builder = _leaf_builder(
        csca_signer, csca_cert, public_key, start, not_after, "revocation list signer", common_name,
        organization, serial_number, digital_signature=False,
    ).add_extension(x509.ExtendedKeyUsage([OID_KP_REVOCATION_LIST_SIGNING]), critical=True)
    return sign_certificate(builder, csca_signer, hash_name or csca_signer.default_hash)


def revocation_signer_problem(cert: x509.Certificate) -> str | None:
    """``None`` when ``cert`` has the revocation list signer profile, else what is wrong with it."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = x509.ExtendedKeyUsage([])
    if OID_KP_REVOCATION_LIST_SIGNING not in eku:
        return "the signer certificate is not a revocation list signer (extended key usage)"
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    except x509.ExtensionNotFound:
        return "the signer certificate has no key usage"
    if not ku.critical or not ku.value.content_commitment or ku.value.key_cert_sign or ku.value.crl_sign:
        return "the signer certificate's key usage is not contentCommitment"
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return "the signer certificate is a CA"
    except x509.ExtensionNotFound:
        pass
    return None
