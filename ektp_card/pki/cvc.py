"""Card-verifiable certificates for Terminal Authentication (BSI TR-03110-3 appendix C, TR-03110-4).

The EAC PKI has three levels: a country verifying CA (CVCA, self-signed, and link certificates
when its key changes), document verifiers (DV: domestic or foreign, e.g. the police or a bank) and
terminals (inspection systems, authentication or signature terminals). A card trusts its CVCA key
and accepts a terminal after verifying CVCA -> DV -> terminal certificates one at a time.

A certificate (TR-03110-3 section C.1, Table C.1)::

    7F21 CV certificate
      7F4E certificate body
        5F29 profile identifier (00)
        42   certification authority reference (CAR)
        7F49 public key: 06 algorithm OID, [81 p 82 a 83 b 84 G 85 n] 86 Y [87 cofactor]
        5F20 certificate holder reference (CHR)
        7F4C certificate holder authorization template (CHAT): 06 terminal type OID, 53 bit mask
        5F25 effective date, 5F24 expiration date (YYMMDD, one unpacked BCD digit per byte)
        65   extensions (optional): 73 templates, each 06 OID then context-specific objects
      5F37 signature: ECDSA, plain r || s (TR-03111 section 5.2.1), over the DER of 7F4E

Only CVCA certificates (self-signed and link) carry the domain parameters; DV and terminal keys are
on the CVCA's curve and their certificates carry the public point alone (TR-03110-3 appendix D.3).
The hash is named by the algorithm OID in the *issuer's* public key (id-TA-ECDSA-SHA-256/384/512).

The effective authorization of a terminal is the bitwise AND of the relative authorizations of its
chain, with the role of the terminal certificate (TR-03110-3 section C.4).
"""

from __future__ import annotations

import datetime as dt
import enum
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ektp_card.apdu.tlv import Tlv, parse_list
from ektp_card.ec import STANDARDIZED_CURVES, Curve, InvalidPointError
from ektp_card.errors import CvcNameError, LdsFormatError, PkiError, TlvError
from ektp_card.files import CERTIFICATE_LIMIT, read_file
from ektp_card.oid import decode_oid, encode_oid
from ektp_card.pki.arc import EKTP_ARC
from ektp_card.pki.signer import CURVES, HashName, Signer, hash_algorithm

# --- object identifiers (TR-03110-3 appendix A) -------------------------------------------------------

BSI_DE = "0.4.0.127.0.7"
ID_TA = f"{BSI_DE}.2.2.2"
ID_TA_ECDSA = f"{ID_TA}.2"
ID_TA_ECDSA_SHA_256 = f"{ID_TA_ECDSA}.3"
ID_TA_ECDSA_SHA_384 = f"{ID_TA_ECDSA}.4"
ID_TA_ECDSA_SHA_512 = f"{ID_TA_ECDSA}.5"
ID_ROLES = f"{BSI_DE}.3.1.2"
ID_IS = f"{ID_ROLES}.1"
ID_AT = f"{ID_ROLES}.2"
ID_ST = f"{ID_ROLES}.3"
ID_EXTENSIONS = f"{BSI_DE}.3.1.3"
#: Certificate extensions of TR-03110-3 section C.3: hash of the certificate description, terminal sector.
ID_DESCRIPTION = f"{ID_EXTENSIONS}.1"
ID_SECTOR = f"{ID_EXTENSIONS}.2"
#: The project's own authorization extension (docs/on-card-comparison.md): rights BSI's CHAT has no
#: bit for, as a 73 template {06 this OID, 53 bit mask}. A chip grants them, like the CHAT's, only
#: when every certificate of the chain carries them (the AND of the chain).
ID_EKTP_AUTHORIZATION = f"{EKTP_ARC}.3.1"
#: Compare a fresh fingerprint capture inside the chip (VERIFY, ISO/IEC 7816-11): never a template out.
VERIFY_BIOMETRIC = "verify-biometric"
#: The project's rights by name -> bit number in the extension's bit mask.
EKTP_RIGHTS: Mapping[str, int] = MappingProxyType({VERIFY_BIOMETRIC: 0})

#: The signature algorithms we sign and verify with, by OID, and the hash each one names.
ALGORITHMS: Mapping[str, HashName] = MappingProxyType(
    {ID_TA_ECDSA_SHA_256: "sha256", ID_TA_ECDSA_SHA_384: "sha384", ID_TA_ECDSA_SHA_512: "sha512"}
)
_ALGORITHM_NAMES = {ID_TA_ECDSA_SHA_256: "id-TA-ECDSA-SHA-256", ID_TA_ECDSA_SHA_384: "id-TA-ECDSA-SHA-384",
                    ID_TA_ECDSA_SHA_512: "id-TA-ECDSA-SHA-512"}

#: Domain parameters by curve name: the signing curves of :mod:`ektp_card.pki.signer`, with the
#: parameters of :mod:`ektp_card.ec`.
DOMAIN_PARAMETERS: Mapping[str, Curve] = MappingProxyType(
    {c.name: c for c in STANDARDIZED_CURVES.values() if c.name in CURVES}
)

PROFILE_IDENTIFIER = 0  # version 1 of the certificate profile (TR-03110-3 section C.1.1)
MAX_REFERENCE_LENGTH = 16
MAX_MNEMONIC_LENGTH = 9
SEQUENCE_LENGTH = 5

T_CERTIFICATE = 0x7F21
T_BODY = 0x7F4E
T_PROFILE = 0x5F29
T_CAR = 0x42
T_PUBLIC_KEY = 0x7F49
T_CHR = 0x5F20
T_CHAT = 0x7F4C
T_EFFECTIVE = 0x5F25
T_EXPIRATION = 0x5F24
T_EXTENSIONS = 0x65
T_SIGNATURE = 0x5F37
T_OID = 0x06
T_DISCRETIONARY = 0x53
T_DISCRETIONARY_TEMPLATE = 0x73


# --- small codecs ---------------------------------------------------------------------------------


def _unsigned(n: int) -> bytes:
    # TR-03110-3 appendix D.2 (unsigned integers): big-endian, no leading zero octets.
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def _parse_unsigned(data: bytes, what: str) -> int:
    if not data or (len(data) > 1 and data[0] == 0):
        raise LdsFormatError(f"{what} is not an unsigned integer in its shortest form")
    return int.from_bytes(data, "big")


def encode_date(date: dt.date) -> bytes:
    """YYMMDD as six unpacked BCD digits, one per byte (TR-03110-3 appendix D.2, dates)."""
    if not 2000 <= date.year <= 2099:
        raise PkiError(f"CV certificate dates are in 2000-2099, got {date.isoformat()}")
    return bytes(int(c) for c in date.strftime("%y%m%d"))


def decode_date(data: bytes) -> dt.date:
    if len(data) != 6 or any(b > 9 for b in data):
        raise LdsFormatError("a CV certificate date is six unpacked BCD digits")
    try:
        return dt.date(2000 + data[0] * 10 + data[1], data[2] * 10 + data[3], data[4] * 10 + data[5])
    except ValueError:
        raise LdsFormatError("a CV certificate date is not a calendar date") from None


_SEQUENCE_CHARS = frozenset(string.ascii_letters + string.digits)


def _latin1_printable(text: str) -> bool:
    return all(0x20 <= ord(c) <= 0x7E or 0xA0 <= ord(c) <= 0xFF for c in text)


def split_reference(reference: str) -> tuple[str, str, str]:
    """Country code, holder mnemonic and sequence number of a CAR or CHR (TR-03110-3 appendix A.6)."""
    if not 2 + SEQUENCE_LENGTH <= len(reference) <= MAX_REFERENCE_LENGTH or not _latin1_printable(reference):
        raise CvcNameError(
            f"a certificate holder reference is 7 to {MAX_REFERENCE_LENGTH} ISO/IEC 8859-1 characters, "
            f"got {reference!r}"
        )
    country, mnemonic, sequence = reference[:2], reference[2:-SEQUENCE_LENGTH], reference[-SEQUENCE_LENGTH:]
    if not (country.isascii() and country.isalpha() and country.isupper()):
        raise CvcNameError(f"a holder reference starts with an ISO 3166-1 alpha-2 country code, "
                           f"got {reference!r}")
    if not set(sequence) <= _SEQUENCE_CHARS:
        raise CvcNameError(f"a holder reference ends with a 5-character alphanumeric sequence number, "
                           f"got {reference!r}")
    return country, mnemonic, sequence


def holder_reference(country: str, mnemonic: str, sequence: str | int) -> str:
    """Country code + holder mnemonic (up to 9 characters) + 5-character sequence number."""
    seq = f"{sequence:05d}" if isinstance(sequence, int) else sequence
    if len(seq) != SEQUENCE_LENGTH:
        raise CvcNameError(f"the sequence number is {SEQUENCE_LENGTH} characters, got {seq!r}")
    if len(mnemonic) > MAX_MNEMONIC_LENGTH:
        raise CvcNameError(
            f"the holder mnemonic is at most {MAX_MNEMONIC_LENGTH} characters, got {mnemonic!r}"
        )
    reference = country + mnemonic + seq
    split_reference(reference)
    return reference


# --- certificate holder authorization template --------------------------------------------------------


class Role(enum.IntEnum):
    """The two most significant bits of the relative authorization (TR-03110-3 section C.4)."""

    TERMINAL = 0b00
    DV_FOREIGN = 0b01  # "DV (non-official / foreign)"
    DV_DOMESTIC = 0b10  # "DV (official domestic)"
    CVCA = 0b11

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @property
    def is_dv(self) -> bool:
        return self in (Role.DV_DOMESTIC, Role.DV_FOREIGN)


def _at_rights() -> dict[str, int]:
    rights = {f"write-dg{n}": 37 - (n - 17) for n in range(17, 22)}
    rights.update({f"read-dg{n}": 7 + n for n in range(1, 22)})
    rights.update({
        "install-qualified-cert": 7, "install-cert": 6, "pin-management": 5, "can-allowed": 4,
        "privileged": 3, "restricted-identification": 2, "community-id-verification": 1,
        "age-verification": 0,
    })
    return rights


class TerminalType(enum.Enum):
    """The terminal type a CHAT applies to, with its OID, template size and named rights."""

    IS = "is"  # inspection system (eMRTD), TR-03110-3 section C.4.1
    AT = "at"  # authentication terminal (eID), TR-03110-3 section C.4.2
    ST = "st"  # signature terminal (eSign), TR-03110-3 section C.4.3

    @property
    def oid(self) -> str:
        return {TerminalType.IS: ID_IS, TerminalType.AT: ID_AT, TerminalType.ST: ID_ST}[self]

    @property
    def template_size(self) -> int:
        """Bytes of the relative authorization (data object 53)."""
        return 5 if self is TerminalType.AT else 1

    @property
    def rights(self) -> Mapping[str, int]:
        """Access rights by name -> bit number (bit 0 is the least significant bit of the template)."""
        return _RIGHTS[self]

    @classmethod
    def from_oid(cls, oid: str) -> TerminalType:
        for t in cls:
            if t.oid == oid:
                return t
        raise LdsFormatError(f"unknown terminal type {oid} in the CHAT")


_RIGHTS: dict[TerminalType, Mapping[str, int]] = {
    TerminalType.IS: MappingProxyType({"read-dg3": 0, "read-dg4": 1}),  # DG3 fingerprints, DG4 iris
    TerminalType.AT: MappingProxyType(_at_rights()),
    TerminalType.ST: MappingProxyType({"generate-signature": 0, "generate-qualified-signature": 1}),
}


@dataclass(frozen=True)
class Chat:
    """Certificate holder authorization template: terminal type, role, and access right bits."""

    terminal_type: TerminalType
    role: Role
    rights: int = 0  # the relative authorization without the two role bits

    def __post_init__(self) -> None:
        if not 0 <= self.rights < 1 << self.rights_bits:
            raise PkiError(f"{self.terminal_type.value.upper()} rights fit in {self.rights_bits} bits")

    @property
    def rights_bits(self) -> int:
        return 8 * self.terminal_type.template_size - 2

    @classmethod
    def of(cls, terminal_type: TerminalType, role: Role, names: Iterable[str] = ()) -> Chat:
        """A CHAT granting the named rights (see :attr:`TerminalType.rights`)."""
        table = terminal_type.rights
        bits = 0
        for name in names:
            if name not in table:
                raise CvcNameError(f"unknown {terminal_type.value.upper()} access right {name!r}; "
                                   f"use one of {', '.join(sorted(table, key=table.__getitem__))}")
            bits |= 1 << table[name]
        return cls(terminal_type, role, bits)

    @property
    def names(self) -> tuple[str, ...]:
        """The granted rights by name, least significant bit first; unnamed bits as ``bit-N``."""
        by_bit = {bit: name for name, bit in self.terminal_type.rights.items()}
        return tuple(by_bit.get(b, f"bit-{b}") for b in range(self.rights_bits) if self.rights >> b & 1)

    def grants(self, name: str) -> bool:
        bit = self.terminal_type.rights.get(name)
        return bit is not None and bool(self.rights >> bit & 1)

    @property
    def template(self) -> bytes:
        """The relative authorization (the value of data object 53)."""
        value = (int(self.role) << self.rights_bits) | self.rights
        return value.to_bytes(self.terminal_type.template_size, "big")

    def encode(self) -> bytes:
        return Tlv.of(T_CHAT, Tlv(T_OID, encode_oid(self.terminal_type.oid)),
                      Tlv(T_DISCRETIONARY, self.template)).encode()

    @classmethod
    def decode(cls, data: bytes) -> Chat:
        """Parse a whole 7F4C data object."""
        with _format_errors("CHAT"):
            children = _children(Tlv.decode(data), T_CHAT, (T_OID, T_DISCRETIONARY))
            terminal_type = TerminalType.from_oid(decode_oid(children[0].value))
            template = children[1].value
            if len(template) != terminal_type.template_size:
                raise LdsFormatError(f"the {terminal_type.value.upper()} relative authorization is "
                                     f"{terminal_type.template_size} bytes, got {len(template)}")
            value = int.from_bytes(template, "big")
            bits = 8 * len(template) - 2
            return cls(terminal_type, Role(value >> bits), value & ((1 << bits) - 1))

    def restrict(self, other: Chat) -> Chat:
        """Rights granted by both; the role stays this one's."""
        if other.terminal_type is not self.terminal_type:
            raise PkiError("the CHATs are for different terminal types")
        return replace(self, rights=self.rights & other.rights)


# --- public keys ----------------------------------------------------------------------------------------


def default_algorithm(curve: Curve) -> str:
    """id-TA-ECDSA with a hash as strong as the curve (BSI TR-03116-2 pairing, as for X.509)."""
    bits = curve.n.bit_length()
    if bits > 384:
        return ID_TA_ECDSA_SHA_512
    if bits > 256:
        return ID_TA_ECDSA_SHA_384
    return ID_TA_ECDSA_SHA_256


def curve_of(key: ec.EllipticCurvePublicKey) -> Curve:
    """The domain parameters of a key on one of the signing curves."""
    curve = DOMAIN_PARAMETERS.get(key.curve.name)
    if curve is None:
        raise PkiError(f"CV certificates here use {', '.join(DOMAIN_PARAMETERS)}; not {key.curve.name}")
    return curve


@dataclass(frozen=True)
class CvPublicKey:
    """An ECDSA public key as TR-03110-3 appendix D.3 encodes it (data object 7F49).

    ``domain`` holds the domain parameters in CVCA certificates and is ``None`` in DV and terminal
    certificates, whose keys use the CVCA's.
    """

    algorithm: str
    point: bytes
    domain: Curve | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise PkiError(f"unsupported public key algorithm {self.algorithm}; "
                           f"use one of {', '.join(_ALGORITHM_NAMES.values())}")
        if len(self.point) < 3 or len(self.point) % 2 != 1 or self.point[0] != 0x04:
            raise PkiError("the public point is not an uncompressed point")
        if self.domain is not None:
            try:
                self.domain.decode_point(self.point)
            except InvalidPointError as e:
                raise PkiError(str(e)) from None

    @property
    def hash_name(self) -> HashName:
        """The hash of signatures made by this key."""
        return ALGORITHMS[self.algorithm]

    @property
    def algorithm_name(self) -> str:
        return _ALGORITHM_NAMES[self.algorithm]

    @classmethod
    def from_key(cls, key: ec.EllipticCurvePublicKey, *, algorithm: str | None = None,
                 with_domain: bool = False) -> CvPublicKey:
        curve = curve_of(key)
        point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return cls(algorithm or default_algorithm(curve), point, curve if with_domain else None)

    def to_key(self, domain: Curve | None = None) -> ec.EllipticCurvePublicKey:
        """The key for ``cryptography``, with this key's domain parameters or the inherited ``domain``."""
        curve = self.domain or domain
        if curve is None:
            raise PkiError("the public key has no domain parameters and none were inherited")
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(CURVES[curve.name], self.point)
        except ValueError:
            raise PkiError(f"the public point is not on {curve.name}") from None

    def encode(self) -> bytes:
        parts = [Tlv(T_OID, encode_oid(self.algorithm))]
        c = self.domain
        if c is not None:
            parts += [Tlv(0x81, _unsigned(c.p)), Tlv(0x82, _unsigned(c.a)), Tlv(0x83, _unsigned(c.b)),
                      Tlv(0x84, c.encode_point(c.generator)), Tlv(0x85, _unsigned(c.n))]
        parts.append(Tlv(0x86, self.point))
        if c is not None:
            parts.append(Tlv(0x87, _unsigned(c.h)))
        return Tlv.of(T_PUBLIC_KEY, *parts).encode()

    @classmethod
    def decode(cls, data: bytes) -> CvPublicKey:
        """Parse a whole 7F49 data object: the point alone, or with all domain parameters."""
        with _format_errors("public key"):
            tlv = Tlv.decode(data)
            items = tlv.children if tlv.tag == T_PUBLIC_KEY else []
            tags = tuple(t.tag for t in items)
            if tags == (T_OID, 0x86):
                return cls(decode_oid(items[0].value), items[1].value)
            _children(tlv, T_PUBLIC_KEY, (T_OID, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87))
            v = {t.tag: t.value for t in items}
            p, a, b = (_parse_unsigned(v[t], name) for t, name in ((0x81, "p"), (0x82, "a"), (0x83, "b")))
            n, h = _parse_unsigned(v[0x85], "n"), _parse_unsigned(v[0x87], "the cofactor")
            for curve in DOMAIN_PARAMETERS.values():
                if (curve.p, curve.a, curve.b, curve.n, curve.h) == (p, a, b, n, h):
                    if v[0x84] != curve.encode_point(curve.generator):
                        break
                    return cls(decode_oid(v[T_OID]), v[0x86], curve)
            raise LdsFormatError("the domain parameters are not those of a supported curve "
                                 f"({', '.join(DOMAIN_PARAMETERS)})")


# --- extensions, body, certificate ----------------------------------------------------------------------


@dataclass(frozen=True)
class CvExtension:
    """One discretionary data template (73) of the extensions: its OID and the data objects after it."""

    oid: str
    data: bytes = b""

    def __post_init__(self) -> None:
        try:
            parse_list(self.data)
        except TlvError as e:
            raise PkiError(f"extension {self.oid} data is not BER-TLV: {e}") from None
        encode_oid(self.oid)

    def encode(self) -> bytes:
        return Tlv.of(T_DISCRETIONARY_TEMPLATE, Tlv(T_OID, encode_oid(self.oid)), self.data).encode()


def ektp_rights_of(extensions: Iterable[CvExtension]) -> int:
    """The project's rights in ``extensions`` (see :data:`ID_EKTP_AUTHORIZATION`)."""
    for extension in extensions:
        if extension.oid == ID_EKTP_AUTHORIZATION:
            try:
                objects = parse_list(extension.data)
            except TlvError:
                return 0
            if len(objects) == 1 and objects[0].tag == T_DISCRETIONARY and len(objects[0].value) == 1:
                return objects[0].value[0]
            return 0
    return 0


def split_rights(rights: Iterable[str]) -> tuple[tuple[str, ...], int]:
    """The CHAT's right names and the bit mask of the project's (:data:`EKTP_RIGHTS`) in ``rights``."""
    chat_names: list[str] = []
    mask = 0
    for name in rights:
        if name in EKTP_RIGHTS:
            mask |= 1 << EKTP_RIGHTS[name]
        else:
            chat_names.append(name)
    return tuple(chat_names), mask


def ektp_authorization(mask: int) -> tuple[CvExtension, ...]:
    """The extension granting the project's rights in ``mask`` (none for 0)."""
    if not mask:
        return ()
    return (CvExtension(ID_EKTP_AUTHORIZATION, Tlv(T_DISCRETIONARY, bytes((mask,))).encode()),)


@dataclass(frozen=True)
class CertificateBody:
    """The signed part of a CV certificate (7F4E)."""

    car: str
    public_key: CvPublicKey
    chr: str
    chat: Chat
    effective_date: dt.date
    expiration_date: dt.date
    extensions: tuple[CvExtension, ...] = ()

    def __post_init__(self) -> None:
        split_reference(self.car)
        split_reference(self.chr)
        encode_date(self.effective_date)
        encode_date(self.expiration_date)
        if self.expiration_date < self.effective_date:
            raise PkiError(f"{self.chr}: expiration date {self.expiration_date} is before "
                           f"the effective date {self.effective_date}")

    def encode(self) -> bytes:
        parts: list[Tlv | bytes] = [
            Tlv(T_PROFILE, _unsigned(PROFILE_IDENTIFIER)),
            Tlv(T_CAR, self.car.encode("latin-1")),
            self.public_key.encode(),
            Tlv(T_CHR, self.chr.encode("latin-1")),
            self.chat.encode(),
            Tlv(T_EFFECTIVE, encode_date(self.effective_date)),
            Tlv(T_EXPIRATION, encode_date(self.expiration_date)),
        ]
        if self.extensions:
            parts.append(Tlv.of(T_EXTENSIONS, *(e.encode() for e in self.extensions)))
        return Tlv.of(T_BODY, *parts).encode()

    @classmethod
    def decode(cls, data: bytes) -> CertificateBody:
        """Parse a whole 7F4E data object, fields in the order of TR-03110-3 Table C.1."""
        with _format_errors("certificate body"):
            tlv = Tlv.decode(data)
            order = (T_PROFILE, T_CAR, T_PUBLIC_KEY, T_CHR, T_CHAT, T_EFFECTIVE, T_EXPIRATION)
            items = _children(tlv, T_BODY, order, optional_tail=(T_EXTENSIONS,))
            if items[0].value != _unsigned(PROFILE_IDENTIFIER):
                raise LdsFormatError(f"unknown certificate profile identifier {items[0].value.hex()}")
            extensions: list[CvExtension] = []
            if len(items) > len(order):
                for template in items[-1].children:
                    if template.tag != T_DISCRETIONARY_TEMPLATE:
                        raise LdsFormatError(f"extension tag {template.tag:X} is not 73")
                    inner = template.children
                    if not inner or inner[0].tag != T_OID:
                        raise LdsFormatError("an extension template does not start with its OID")
                    extensions.append(CvExtension(decode_oid(inner[0].value), template.value[
                        len(inner[0].encode()):]))
                if not extensions:
                    raise LdsFormatError("empty extensions data object")
            body = cls(
                car=_reference(items[1].value),
                public_key=CvPublicKey.decode(items[2].encode()),
                chr=_reference(items[3].value),
                chat=Chat.decode(items[4].encode()),
                effective_date=decode_date(items[5].value),
                expiration_date=decode_date(items[6].value),
                extensions=tuple(extensions),
            )
        if body.encode() != data:
            raise LdsFormatError("certificate body is not in its canonical encoding")
        return body


@dataclass(frozen=True)
class CvCertificate:
    """A card-verifiable certificate: the body and the issuer's plain ECDSA signature over it."""

    body: CertificateBody
    signature: bytes

    @property
    def car(self) -> str:
        return self.body.car

    @property
    def chr(self) -> str:
        return self.body.chr

    @property
    def chat(self) -> Chat:
        return self.body.chat

    @property
    def role(self) -> Role:
        return self.body.chat.role

    @property
    def public_key(self) -> CvPublicKey:
        return self.body.public_key

    @property
    def self_signed(self) -> bool:
        return self.body.car == self.body.chr

    @property
    def ektp_rights(self) -> int:
        """The bit mask of the project's authorization extension (:data:`EKTP_RIGHTS`); 0 without
        it or when it is malformed (a right that cannot be read is not granted)."""
        return ektp_rights_of(self.body.extensions)

    @property
    def right_names(self) -> tuple[str, ...]:
        """Every right the certificate grants: the CHAT's, then the project's."""
        by_bit = {bit: name for name, bit in EKTP_RIGHTS.items()}
        mask = self.ektp_rights
        return self.chat.names + tuple(by_bit.get(b, f"ektp-bit-{b}") for b in range(8) if mask >> b & 1)

    def encode(self) -> bytes:
        return Tlv.of(T_CERTIFICATE, self.body.encode(), Tlv(T_SIGNATURE, self.signature)).encode()

    def __bytes__(self) -> bytes:
        return self.encode()

    @classmethod
    def decode(cls, data: bytes) -> CvCertificate:
        """Parse a whole 7F21 data object strictly; :class:`LdsFormatError` on anything else."""
        with _format_errors("CV certificate"):
            tlv = Tlv.decode(data)
            body_tlv, signature = _children(tlv, T_CERTIFICATE, (T_BODY, T_SIGNATURE))
            if not signature.value or len(signature.value) % 2:
                raise LdsFormatError("the signature is not r || s of equal lengths")
            return cls(CertificateBody.decode(body_tlv.encode()), signature.value)

    @classmethod
    def load(cls, path: Path) -> CvCertificate:
        """The CV certificate in the file ``path`` (binary); :class:`PkiError` naming the file when it
        cannot be read or holds no CV certificate."""
        try:
            data = read_file(path, CERTIFICATE_LIMIT)
        except OSError as e:
            raise PkiError(f"{path}: {e.strerror or e}") from None
        try:
            return cls.decode(data)
        except LdsFormatError as e:
            raise PkiError(f"{path}: {e}") from None

    def verify_signature(self, issuer_key: CvPublicKey, domain: Curve | None = None) -> bool:
        """Whether ``issuer_key`` (with its own or the inherited ``domain``) signed this body."""
        curve = issuer_key.domain or domain
        if curve is None:
            raise PkiError("the issuer key has no domain parameters and none were inherited")
        size = (curve.n.bit_length() + 7) // 8
        if len(self.signature) != 2 * size:
            return False
        r, s = int.from_bytes(self.signature[:size], "big"), int.from_bytes(self.signature[size:], "big")
        if not (0 < r < curve.n and 0 < s < curve.n):
            return False
        key = issuer_key.to_key(curve)
        try:
            key.verify(encode_dss_signature(r, s), self.body.encode(),
                       ec.ECDSA(hash_algorithm(issuer_key.hash_name)))
        except InvalidSignature:
            return False
        return True


def _reference(value: bytes) -> str:
    text = value.decode("latin-1")
    split_reference(text)
    return text


def _children(tlv: Tlv, tag: int, order: Sequence[int], optional_tail: Sequence[int] = ()) -> list[Tlv]:
    if tlv.tag != tag:
        raise LdsFormatError(f"expected tag {tag:X}, found {tlv.tag:X}")
    items = tlv.children
    tags = tuple(t.tag for t in items)
    n = len(order)
    if tags[:n] != tuple(order) or not (len(tags) == n or tags[n:] == tuple(optional_tail)[: len(tags) - n]):
        want = " ".join(f"{t:X}" for t in order)
        got = " ".join(f"{t:X}" for t in tags)
        raise LdsFormatError(f"{tag:X} holds {got or 'nothing'}; expected {want}")
    return items


@contextmanager
def _format_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (LdsFormatError, PkiError, TlvError) as e:
        raise LdsFormatError(f"{what}: {e}") from None


# --- signing and issuing ------------------------------------------------------------------------------


def sign(body: CertificateBody, signer: Signer, issuer_key: CvPublicKey) -> CvCertificate:
    """Sign ``body`` with ``signer`` (key files and PKCS#11 tokens alike) as plain r || s.

    The hash is the one ``issuer_key``'s algorithm names; the signer must hold its private key.
    """
    public = signer.public_key
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise PkiError("CV certificates are signed with ECDSA keys")
    if CvPublicKey.from_key(public, algorithm=issuer_key.algorithm).point != issuer_key.point:
        raise PkiError(f"the signing key does not match the issuer's public key ({body.car})")
    curve = curve_of(public)
    r, s = decode_dss_signature(signer.sign(body.encode(), issuer_key.hash_name))
    size = (curve.n.bit_length() + 7) // 8
    return CvCertificate(body, r.to_bytes(size, "big") + s.to_bytes(size, "big"))


def _ec_key(signer: Signer) -> ec.EllipticCurvePublicKey:
    key = signer.public_key
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise PkiError("CV certificates are signed with ECDSA keys, not RSA")
    return key


def create_cvca(
    signer: Signer,
    *,
    holder: str,
    terminal_type: TerminalType,
    rights: Iterable[str] = (),
    effective: dt.date,
    expiration: dt.date,
    algorithm: str | None = None,
    extensions: Sequence[CvExtension] = (),
) -> CvCertificate:
    """A self-signed CVCA certificate with the domain parameters of ``signer``'s curve (CAR = CHR).
    Rights of the project's own (:data:`EKTP_RIGHTS`) go into its authorization extension."""
    key = CvPublicKey.from_key(_ec_key(signer), algorithm=algorithm, with_domain=True)
    chat_rights, mask = split_rights(rights)
    body = CertificateBody(holder, key, holder, Chat.of(terminal_type, Role.CVCA, chat_rights), effective,
                           expiration, (*ektp_authorization(mask), *extensions))
    return sign(body, signer, key)


def create_link(
    old_signer: Signer,
    old_cvca: CvCertificate,
    new_key: ec.EllipticCurvePublicKey,
    *,
    holder: str,
    rights: Iterable[str] | None = None,
    effective: dt.date,
    expiration: dt.date,
    algorithm: str | None = None,
) -> CvCertificate:
    """A link certificate: the new CVCA key, with its domain parameters, signed by the previous one."""
    if old_cvca.role is not Role.CVCA:
        raise PkiError(f"{old_cvca.chr} is not a CVCA certificate")
    if holder == old_cvca.chr:
        raise PkiError("a link certificate needs a new holder reference (the next sequence number)")
    if rights is None:
        chat, mask = old_cvca.chat, old_cvca.ektp_rights
    else:
        chat_rights, mask = split_rights(rights)
        chat = Chat.of(old_cvca.chat.terminal_type, Role.CVCA, chat_rights)
    public = CvPublicKey.from_key(new_key, algorithm=algorithm, with_domain=True)
    body = CertificateBody(old_cvca.chr, public, holder, chat, effective, expiration,
                           ektp_authorization(mask))
    return sign(body, old_signer, old_cvca.public_key)


def issue(
    issuer_signer: Signer,
    issuer: CvCertificate,
    subject_key: ec.EllipticCurvePublicKey,
    *,
    holder: str,
    role: Role,
    rights: Iterable[str] = (),
    effective: dt.date,
    expiration: dt.date,
    extensions: Sequence[CvExtension] = (),
) -> CvCertificate:
    """A DV certificate under a CVCA, or a terminal certificate under a DV.

    The subject key must be on the issuer's curve (it inherits the CVCA's domain parameters), the
    rights within the issuer's, and the validity within the issuer's.
    """
    if role is Role.CVCA:
        raise PkiError("use create_cvca or create_link for CVCA certificates")
    _check_order(issuer.role, role, holder)
    issuer_curve = curve_of(_ec_key(issuer_signer))
    if curve_of(subject_key) != issuer_curve:
        raise PkiError(f"the {role.label} key must be on the CVCA's curve {issuer_curve.name}, "
                       f"not {subject_key.curve.name}")
    chat_rights, mask = split_rights(rights)
    chat = Chat.of(issuer.chat.terminal_type, role, chat_rights)
    extra = chat.rights & ~issuer.chat.rights
    if extra:
        missing = ", ".join(Chat(chat.terminal_type, role, extra).names)
        raise PkiError(f"{issuer.chr} does not hold {missing}; it cannot grant it")
    if mask & ~issuer.ektp_rights:
        missing = ", ".join(n for n, b in EKTP_RIGHTS.items() if (mask & ~issuer.ektp_rights) >> b & 1)
        raise PkiError(f"{issuer.chr} does not hold {missing}; it cannot grant it")
    if effective < issuer.body.effective_date or expiration > issuer.body.expiration_date:
        raise PkiError(f"{holder} would be valid {effective} to {expiration}, outside {issuer.chr}'s "
                       f"{issuer.body.effective_date} to {issuer.body.expiration_date}")
    body = CertificateBody(issuer.chr, CvPublicKey.from_key(subject_key), holder, chat, effective, expiration,
                           (*ektp_authorization(mask), *extensions))
    return sign(body, issuer_signer, issuer.public_key)


def _check_order(issuer_role: Role, role: Role, holder: str) -> None:
    # The EAC PKI (TR-03110-3 section 2, TR-03110-4): CVCA -> CVCA (link) or DV, DV -> terminal.
    if issuer_role is Role.CVCA and role in (Role.CVCA, Role.DV_DOMESTIC, Role.DV_FOREIGN):
        return
    if issuer_role.is_dv and role is Role.TERMINAL:
        return
    raise PkiError(f"a {issuer_role.label} certificate cannot be the issuer of a {role.label} "
                   f"certificate ({holder})")


# --- chain verification -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedChain:
    """A chain that verified: its certificates (trust anchor first), the domain parameters in force,
    and the effective authorization of the last certificate."""

    certificates: tuple[CvCertificate, ...]
    domain: Curve
    chat: Chat

    @property
    def leaf(self) -> CvCertificate:
        return self.certificates[-1]

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The last certificate's key, on the inherited domain parameters."""
        return self.leaf.public_key.to_key(self.domain)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def verify_chain(
    chain: Sequence[CvCertificate],
    trusted: Iterable[CvCertificate],
    *,
    at: dt.date | None = None,
) -> VerifiedChain:
    """Verify CVCA (link) -> DV -> terminal certificates from a trusted CVCA; :class:`PkiError` if not.

    ``chain`` starts with the certificate the trusted CVCA signed (a leading copy of the trust
    anchor itself is skipped) and may end at any level. Each certificate must name its issuer's CHR
    as CAR, verify under the issuer's key and the CVCA's domain parameters, follow the role order
    (CVCA -> CVCA link or DV -> terminal), keep the terminal type, and be valid on ``at`` (today by
    default, inclusive). The trust anchor's own dates are not checked: a card keeps its CVCA key
    as trust point until a link certificate replaces it. Domain parameters in a DV or terminal
    certificate must equal the CVCA's.
    """
    when = at or today()
    anchors = list(trusted)
    certs = list(chain)
    if not certs:
        raise PkiError("no certificate to verify")
    if any(certs[0].encode() == a.encode() for a in anchors) and len(certs) > 1:
        certs = certs[1:]
    first = certs[0]
    candidates = [a for a in anchors if a.chr == first.car]
    if not candidates:
        raise PkiError(f"{first.chr} is signed by {first.car}, which is not a trusted CVCA")
    anchor = candidates[0]
    if anchor.role is not Role.CVCA or anchor.public_key.domain is None:
        raise PkiError(f"trust anchor {anchor.chr} is not a CVCA certificate with domain parameters")
    if anchor.self_signed and not anchor.verify_signature(anchor.public_key):
        raise PkiError(f"the self-signature of trust anchor {anchor.chr} does not verify")
    issuer, domain, chat = anchor, anchor.public_key.domain, anchor.chat
    for cert in certs:
        if cert.car != issuer.chr:
            raise PkiError(f"{cert.chr} names {cert.car} as its issuer, not {issuer.chr}")
        _check_order(issuer.role, cert.role, cert.chr)
        if cert.chat.terminal_type is not chat.terminal_type:
            raise PkiError(f"{cert.chr} is for {cert.chat.terminal_type.name} terminals, its issuer "
                           f"{issuer.chr} for {chat.terminal_type.name}")
        key_domain = cert.public_key.domain
        if cert.role is Role.CVCA and key_domain is None:
            raise PkiError(f"CVCA link certificate {cert.chr} has no domain parameters")
        if cert.role is not Role.CVCA and key_domain not in (None, domain):
            raise PkiError(f"{cert.chr} carries domain parameters other than its CVCA's")
        if not cert.verify_signature(issuer.public_key, domain):
            raise PkiError(f"the signature of {cert.chr} by {issuer.chr} does not verify")
        if when < cert.body.effective_date:
            raise PkiError(f"{cert.chr} is not valid before {cert.body.effective_date.isoformat()}")
        if when > cert.body.expiration_date:
            raise PkiError(f"{cert.chr} expired on {cert.body.expiration_date.isoformat()}")
        cert.public_key.to_key(key_domain or domain)  # the point must be on the curve in force
        if cert.role is Role.CVCA and key_domain is not None:
            domain = key_domain
        chat = cert.chat.restrict(chat)
        issuer = cert
    return VerifiedChain((anchor, *certs), domain, chat)
