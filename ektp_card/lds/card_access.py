"""EF.CardAccess: the SecurityInfos a chip offers before any authentication.

ICAO Doc 9303-11 section 9.2.11 and Doc 9303-10 (file FID 011C, SFI 1C, under the MF, read
freely) and ICAO Doc 9303-11 sections 9.2 and 9.2.1 (the ASN.1)::

    SecurityInfos ::= SET OF SecurityInfo
    SecurityInfo ::= SEQUENCE {
        protocol OBJECT IDENTIFIER,
        requiredData ANY DEFINED BY protocol,
        optionalData ANY DEFINED BY protocol OPTIONAL }
    PACEInfo ::= SEQUENCE {
        protocol OBJECT IDENTIFIER (id-PACE-...),
        version INTEGER,  -- MUST be 2
        parameterId INTEGER OPTIONAL }

PACEInfos are parsed; every other SecurityInfo (PACEDomainParameterInfo, ChipAuthenticationInfo,
TerminalAuthenticationInfo, ...) is kept as its DER bytes, so a file re-encodes unchanged. Encoding
is DER and keeps the order of the infos: a file in DER round-trips byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import core  # type: ignore[import-untyped]

from ektp_card.crypto.kdf import Cipher
from ektp_card.crypto.pace import (
    PACE_ALGORITHMS,
    MappingType,
    PaceAlgorithm,
    PaceParameters,
    point_encoding_applies,
)
from ektp_card.ec import STANDARDIZED_CURVES
from ektp_card.errors import ASN1_ERRORS, LdsFormatError, PaceError, one_line
from ektp_card.lds.security_infos import der_set_of, split_security_infos

#: EF.CardAccess under the MF (ICAO Doc 9303-10; ICAO Doc 9303-11 section 9.2.11).
EF_CARD_ACCESS_FID = 0x011C
EF_CARD_ACCESS_SFI = 0x1C
#: The only PACEInfo version ICAO Doc 9303-11 section 9.2.1 supports.
PACE_VERSION = 2


class _PaceInfo(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("protocol", core.ObjectIdentifier),
        ("version", core.Integer),
        ("parameter_id", core.Integer, {"optional": True}),
    ]


@dataclass(frozen=True)
class PaceInfo:
    """One PACEInfo: the protocol OID, its version and the standardized domain parameter ID
    (``None`` when the chip gives its parameters in a PACEDomainParameterInfo instead)."""

    protocol: str
    version: int = PACE_VERSION
    parameter_id: int | None = None

    @property
    def algorithm(self) -> PaceAlgorithm:
        return PACE_ALGORITHMS[self.protocol]

    @property
    def supported(self) -> bool:
        """Whether this library can run it: version 2, an ECDH mapping it runs, a standardized curve
        (for Integrated Mapping one its point encoding applies to)."""
        return (
            self.version == PACE_VERSION
            and self.algorithm.supported
            and self.parameter_id is not None
            and self.parameter_id in STANDARDIZED_CURVES
            and (
                self.algorithm.mapping is not MappingType.IM
                or point_encoding_applies(STANDARDIZED_CURVES[self.parameter_id])
            )
        )

    @property
    def parameters(self) -> PaceParameters:
        """The protocol and curve to run; :class:`PaceError` if not supported."""
        return PaceParameters(self.algorithm, -1 if self.parameter_id is None else self.parameter_id)

    def encode(self) -> bytes:
        values: dict[str, object] = {"protocol": self.protocol, "version": self.version}
        if self.parameter_id is not None:
            values["parameter_id"] = self.parameter_id
        return bytes(_PaceInfo(values).dump(force=True))

    @classmethod
    def decode(cls, data: bytes) -> PaceInfo:
        """One DER PACEInfo; :class:`LdsFormatError` if malformed."""
        try:
            parsed = _PaceInfo.load(data, strict=True)
            protocol = str(parsed["protocol"].dotted)
            version = int(parsed["version"].native)
            parameter = parsed["parameter_id"].native
        except ASN1_ERRORS as exc:
            raise LdsFormatError(f"malformed PACEInfo: {one_line(exc)}") from None
        if protocol not in PACE_ALGORITHMS:
            raise LdsFormatError(f"{protocol} is not a PACE protocol")
        return cls(protocol, version, None if parameter is None else int(parameter))


@dataclass(frozen=True)
class OtherSecurityInfo:
    """A SecurityInfo this module does not interpret, kept as it was encoded."""

    protocol: str
    der: bytes

    def encode(self) -> bytes:
        return self.der


SecurityInfo = PaceInfo | OtherSecurityInfo

_CIPHER_RANK = {Cipher.TDES: 0, Cipher.AES128: 1, Cipher.AES192: 2, Cipher.AES256: 3}
#: Chip Authentication Mapping proves the chip inside PACE; Integrated Mapping saves a key pair.
_MAPPING_RANK = {MappingType.GM: 0, MappingType.IM: 1, MappingType.CAM: 2}


@dataclass(frozen=True)
class CardAccess:
    """The parsed content of EF.CardAccess."""

    infos: tuple[SecurityInfo, ...]

    @property
    def pace_infos(self) -> tuple[PaceInfo, ...]:
        return tuple(i for i in self.infos if isinstance(i, PaceInfo))

    def encode(self) -> bytes:
        """DER SET OF the infos, in their order."""
        body = b"".join(info.encode() for info in self.infos)
        return der_set_of(body)

    @classmethod
    def decode(cls, data: bytes) -> CardAccess:
        """Parse the file content; :class:`LdsFormatError` if it is not SecurityInfos."""
        infos: list[SecurityInfo] = []
        for protocol, der in split_security_infos(data):
            if protocol in PACE_ALGORITHMS:
                infos.append(PaceInfo.decode(der))
            else:
                infos.append(OtherSecurityInfo(protocol, der))
        return cls(tuple(infos))

    def choose_pace(self, mapping: MappingType | None = None) -> tuple[PaceParameters, bool]:
        """The PACE to run, and whether MSE:Set AT must name its parameter ID (DO 84: the chip
        offers several domain parameters for that protocol, ICAO Doc 9303-11 section 4.4.4.1).

        Prefers the strongest mapping (Chip Authentication Mapping, then Integrated, then Generic),
        then the strongest cipher, then the largest curve; ``mapping`` keeps to that one.
        :class:`PaceError` if none is supported.
        """
        usable = [i for i in self.pace_infos if i.supported]
        if mapping is not None:
            usable = [i for i in usable if i.algorithm.mapping is mapping]
            if not usable:
                raise PaceError(f"the card offers no PACE with {mapping.value} this library supports")
        if not usable:
            raise PaceError(
                "the card offers no PACE this library supports (ECDH with GM, IM or CAM)"
            )
        best = max(
            usable,
            key=lambda i: (
                _MAPPING_RANK[i.algorithm.mapping],
                _CIPHER_RANK[i.algorithm.cipher],
                i.parameters.curve.size,
            ),
        )
        same_protocol = sum(1 for i in self.pace_infos if i.protocol == best.protocol)
        return best.parameters, same_protocol > 1
