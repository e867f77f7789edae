"""DG14: the SecurityInfos of Chip Authentication, Active Authentication and the other protocols.

ICAO Doc 9303-10 (data group 14, tag 6E) and ICAO Doc 9303-11 section 9.2 (the ASN.1; also BSI
TR-03110-3 appendix A.1)::

    DG14 ::= [APPLICATION 14] SecurityInfos            -- tag 6E
    ChipAuthenticationInfo ::= SEQUENCE {
        protocol OBJECT IDENTIFIER (id-CA-DH-... | id-CA-ECDH-...),
        version INTEGER,                               -- 1 (ICAO); 2 in TR-03110-2
        keyId INTEGER OPTIONAL }
    ChipAuthenticationPublicKeyInfo ::= SEQUENCE {
        protocol OBJECT IDENTIFIER (id-PK-DH | id-PK-ECDH),
        chipAuthenticationPublicKey SubjectPublicKeyInfo,
        keyId INTEGER OPTIONAL }
    ActiveAuthenticationInfo ::= SEQUENCE {
        protocol OBJECT IDENTIFIER (id-AA),
        version INTEGER,                               -- MUST be 1
        signatureAlgorithm OBJECT IDENTIFIER }

Those three and PACEInfo are parsed; every other SecurityInfo (TerminalAuthenticationInfo,
ChipAuthenticationDomainParameterInfo, ...) is kept as its DER bytes. The public key of a
ChipAuthenticationPublicKeyInfo is kept as encoded too (:mod:`ektp_card.lds.public_key` parses it
on demand), so a file decodes and re-encodes byte for byte, as its hash in EF.SOD needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from asn1crypto import core  # type: ignore[import-untyped]

from ektp_card.apdu.tlv import Tlv, parse_one
from ektp_card.crypto.aa import ID_AA, PLAIN_ECDSA_OIDS, SIGNATURE_HASHES, signature_hash
from ektp_card.crypto.ca import CA_ALGORITHMS, ID_CA, ID_PK_DH, ID_PK_ECDH, CaAlgorithm, CaParameters
from ektp_card.crypto.pace import PACE_ALGORITHMS
from ektp_card.errors import ChipAuthenticationError, LdsFormatError, TlvError
from ektp_card.lds.card_access import OtherSecurityInfo, PaceInfo
from ektp_card.lds.public_key import (
    EcPublicKey,
    ParametersForm,
    PublicKey,
    decode_public_key_info,
    encode_public_key_info,
)
from ektp_card.lds.security_infos import der_set_of, split_security_infos

#: EF.DG14 in the eMRTD application: FID 010E, SFI 0E, tag 6E (ICAO Doc 9303-10).
DG14_FID, DG14_SFI, DG14_TAG = 0x010E, 0x0E, 0x6E
#: The only ActiveAuthenticationInfo version (ICAO Doc 9303-11 section 9.2.8).
AA_VERSION = 1


class _ChipAuthenticationInfo(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("protocol", core.ObjectIdentifier),
        ("version", core.Integer),
        ("key_id", core.Integer, {"optional": True}),
    ]


class _ChipAuthenticationPublicKeyInfo(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("protocol", core.ObjectIdentifier),
        ("public_key", core.Any),
        ("key_id", core.Integer, {"optional": True}),
    ]


class _ActiveAuthenticationInfo(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("protocol", core.ObjectIdentifier),
        ("version", core.Integer),
        ("signature_algorithm", core.ObjectIdentifier),
    ]


def _load(spec: type[core.Sequence], data: bytes, what: str) -> core.Sequence:
    try:
        parsed = spec.load(data, strict=True)
        parsed.native  # noqa: B018 - parse every field now, so errors surface here
    except (ValueError, TypeError, AttributeError) as exc:  # asn1crypto: AttributeError for some types
        raise LdsFormatError(f"malformed {what}: {exc}") from None
    return parsed


def _optional_int(value: core.Integer) -> int | None:
    native = value.native
    return None if native is None else int(native)


@dataclass(frozen=True)
class ChipAuthenticationInfo:
    """One ChipAuthenticationInfo: the protocol OID (which fixes the cipher), version, key ID."""

    protocol: str
    version: int = 1
    key_id: int | None = None

    @property
    def algorithm(self) -> CaAlgorithm:
        return CA_ALGORITHMS[self.protocol]

    def encode(self) -> bytes:
        values: dict[str, object] = {"protocol": self.protocol, "version": self.version}
        if self.key_id is not None:
            values["key_id"] = self.key_id
        return bytes(_ChipAuthenticationInfo(values).dump(force=True))

    @classmethod
    def decode(cls, data: bytes) -> ChipAuthenticationInfo:
        parsed = _load(_ChipAuthenticationInfo, data, "ChipAuthenticationInfo")
        protocol = str(parsed["protocol"].dotted)
        if protocol not in CA_ALGORITHMS:
            raise LdsFormatError(f"{protocol} is not a Chip Authentication protocol")
        return cls(protocol, int(parsed["version"].native), _optional_int(parsed["key_id"]))


@dataclass(frozen=True)
class ChipAuthenticationPublicKeyInfo:
    """One ChipAuthenticationPublicKeyInfo: id-PK-ECDH or id-PK-DH, the DER SubjectPublicKeyInfo
    as the file holds it, and the key ID."""

    protocol: str
    public_key_info: bytes
    key_id: int | None = None

    @classmethod
    def of(
        cls, key: EcPublicKey, key_id: int | None = None, form: ParametersForm = ParametersForm.EXPLICIT
    ) -> ChipAuthenticationPublicKeyInfo:
        """The info for an ECDH key; explicit domain parameters unless told otherwise, as BSI
        TR-03110-3 section A.2.1.2 requires."""
        return cls(ID_PK_ECDH, encode_public_key_info(key, form), key_id)

    @property
    def public_key(self) -> PublicKey:
        """The parsed key; :class:`LdsFormatError` if malformed or not supported."""
        return decode_public_key_info(self.public_key_info)

    def encode(self) -> bytes:
        values: dict[str, object] = {
            "protocol": self.protocol,
            "public_key": core.Any.load(self.public_key_info),
        }
        if self.key_id is not None:
            values["key_id"] = self.key_id
        return bytes(_ChipAuthenticationPublicKeyInfo(values).dump(force=True))

    @classmethod
    def decode(cls, data: bytes) -> ChipAuthenticationPublicKeyInfo:
        parsed = _load(_ChipAuthenticationPublicKeyInfo, data, "ChipAuthenticationPublicKeyInfo")
        protocol = str(parsed["protocol"].dotted)
        if protocol not in (ID_PK_DH, ID_PK_ECDH):
            raise LdsFormatError(f"{protocol} is not a Chip Authentication public key type")
        return cls(protocol, bytes(parsed["public_key"].dump()), _optional_int(parsed["key_id"]))


@dataclass(frozen=True)
class ActiveAuthenticationInfo:
    """The ActiveAuthenticationInfo: the signature algorithm of ECDSA Active Authentication."""

    signature_algorithm: str
    version: int = AA_VERSION

    @classmethod
    def for_hash(cls, hash_name: str) -> ActiveAuthenticationInfo:
        """The info naming ecdsa-plain-<hash> (e.g. ``sha256``)."""
        oid = PLAIN_ECDSA_OIDS.get(hash_name)
        if oid is None:
            raise ValueError(f"no plain ECDSA signature algorithm with {hash_name}")
        return cls(oid)

    @property
    def hash_name(self) -> str:
        """The hash; :class:`ActiveAuthenticationError` if the algorithm is not supported."""
        return signature_hash(self.signature_algorithm)

    def encode(self) -> bytes:
        values = {"protocol": ID_AA, "version": self.version, "signature_algorithm": self.signature_algorithm}
        return bytes(_ActiveAuthenticationInfo(values).dump(force=True))

    @classmethod
    def decode(cls, data: bytes) -> ActiveAuthenticationInfo:
        parsed = _load(_ActiveAuthenticationInfo, data, "ActiveAuthenticationInfo")
        return cls(str(parsed["signature_algorithm"].dotted), int(parsed["version"].native))


Dg14Info = (
    ChipAuthenticationInfo
    | ChipAuthenticationPublicKeyInfo
    | ActiveAuthenticationInfo
    | PaceInfo
    | OtherSecurityInfo
)


def _decode_info(protocol: str, der: bytes) -> Dg14Info:
    if protocol in CA_ALGORITHMS:
        return ChipAuthenticationInfo.decode(der)
    if protocol in (ID_PK_DH, ID_PK_ECDH):
        return ChipAuthenticationPublicKeyInfo.decode(der)
    if protocol == ID_AA:
        return ActiveAuthenticationInfo.decode(der)
    if protocol in PACE_ALGORITHMS:
        return PaceInfo.decode(der)
    return OtherSecurityInfo(protocol, der)


@dataclass(frozen=True)
class Dg14:
    """The parsed content of EF.DG14: its SecurityInfos, in the file's order."""

    infos: tuple[Dg14Info, ...]

    @classmethod
    def of(cls, infos: Iterable[Dg14Info]) -> Dg14:
        """A DG14 with ``infos`` in DER order (ITU-T X.690 section 11.6: a SET OF sorts its
        elements by their encodings)."""
        return cls(tuple(sorted(infos, key=lambda info: info.encode())))

    # --- views ---------------------------------------------------------------------------------

    @property
    def chip_authentication_infos(self) -> tuple[ChipAuthenticationInfo, ...]:
        return tuple(i for i in self.infos if isinstance(i, ChipAuthenticationInfo))

    @property
    def chip_authentication_public_keys(self) -> tuple[ChipAuthenticationPublicKeyInfo, ...]:
        return tuple(i for i in self.infos if isinstance(i, ChipAuthenticationPublicKeyInfo))

    @property
    def active_authentication_info(self) -> ActiveAuthenticationInfo | None:
        found = [i for i in self.infos if isinstance(i, ActiveAuthenticationInfo)]
        return found[0] if found else None

    @property
    def pace_infos(self) -> tuple[PaceInfo, ...]:
        return tuple(i for i in self.infos if isinstance(i, PaceInfo))

    @property
    def offers_chip_authentication(self) -> bool:
        """Whether the chip claims Chip Authentication (it has a public key for it)."""
        return bool(self.chip_authentication_public_keys)

    def ca_parameters(self) -> CaParameters:
        """The Chip Authentication to run: each public key paired with the ChipAuthenticationInfo
        of the same key ID (ICAO Doc 9303-11 section 9.2.5: IDs are needed only with several
        keys), keeping the supported pairs (ECDH on a standardized curve); the strongest cipher
        wins, then the highest version. :class:`ChipAuthenticationError` if none can run.

        Passports made before ChipAuthenticationInfo existed carry only the public key; for an
        ECDH key without any ChipAuthenticationInfo, id-CA-ECDH-3DES-CBC-CBC version 1 (the one
        protocol of that time) is assumed, as readers commonly do."""
        keys = self.chip_authentication_public_keys
        if not keys:
            raise ChipAuthenticationError("DG14 holds no Chip Authentication public key")
        infos = self.chip_authentication_infos
        problems: list[str] = []
        candidates: list[CaParameters] = []
        for key_info in keys:
            matching = [i for i in infos if len(keys) == 1 or i.key_id == key_info.key_id]
            if not infos and key_info.protocol == ID_PK_ECDH:
                matching = [ChipAuthenticationInfo(f"{ID_CA}.2.1", 1, key_info.key_id)]
            for info in matching:
                try:
                    candidates.append(_parameters(info, key_info))
                except (ChipAuthenticationError, LdsFormatError) as exc:
                    problems.append(str(exc))
        if not candidates:
            detail = "; ".join(dict.fromkeys(problems)) or "no ChipAuthenticationInfo matches the key"
            raise ChipAuthenticationError(
                f"DG14 offers no Chip Authentication this library supports: {detail}"
            )
        rank = {"3DES": 0, "AES-128": 1, "AES-192": 2, "AES-256": 3}
        return max(candidates, key=lambda c: (rank[c.cipher.value[0]], c.version))

    # --- encoding ----------------------------------------------------------------------------------

    def encode_security_infos(self) -> bytes:
        """The DER SET OF the infos, in their order (DG14's content without the 6E tag)."""
        body = b"".join(info.encode() for info in self.infos)
        return der_set_of(body)

    def encode(self) -> bytes:
        """The whole data group: 6E { SecurityInfos }."""
        return Tlv(DG14_TAG, self.encode_security_infos()).encode()

    @classmethod
    def decode_security_infos(cls, data: bytes) -> Dg14:
        """Parse SecurityInfos; :class:`LdsFormatError` if malformed."""
        return cls(tuple(_decode_info(protocol, der) for protocol, der in split_security_infos(data)))

    @classmethod
    def decode(cls, data: bytes) -> Dg14:
        """Parse the whole data group (tag 6E); :class:`LdsFormatError` if malformed."""
        try:
            tlv, end = parse_one(data)
        except TlvError as exc:
            raise LdsFormatError(f"malformed DG14: {exc}") from None
        if tlv.tag != DG14_TAG or end != len(data):
            raise LdsFormatError("DG14 must be one data object with tag 6E")
        return cls.decode_security_infos(tlv.value)


def _parameters(info: ChipAuthenticationInfo, key_info: ChipAuthenticationPublicKeyInfo) -> CaParameters:
    algorithm = info.algorithm
    if not algorithm.supported or key_info.protocol != ID_PK_ECDH:
        raise ChipAuthenticationError(f"{algorithm.name} is not supported (only ECDH)")
    key = key_info.public_key
    if not isinstance(key, EcPublicKey):
        raise ChipAuthenticationError("the Chip Authentication key is not an EC key")
    key_id = info.key_id if info.key_id is not None else key_info.key_id
    return CaParameters(algorithm, info.version, key.curve, key.point, key_id)


__all__ = [
    "AA_VERSION",
    "DG14_FID",
    "DG14_SFI",
    "DG14_TAG",
    "SIGNATURE_HASHES",
    "ActiveAuthenticationInfo",
    "ChipAuthenticationInfo",
    "ChipAuthenticationPublicKeyInfo",
    "Dg14",
    "Dg14Info",
]
