"""Signed card revocation lists: the cards a verifier must refuse although their signatures are valid.

A card reported lost keeps a perfectly valid EF.SOD, so Passive Authentication alone accepts it. The
registry knows better; this module turns what it knows into a list a verifier can trust offline.

A verifier cannot read the chip serial of a locked card, so a card is named by the SHA-256 of its
EF.SOD (the whole file, the tag 77 object): it differs for every card (the chip keys and the
signing time are in it) and every verifier reads it anyway. The registry stores it per card
(``sod_sha256``).

The list is DER (the ASN.1 module is in docs/desk-revocation.md) inside a CMS SignedData (RFC 5652)
signed by a revocation list signer: a certificate issued by the CSCA with our extended key usage
(:data:`~ektp_card.pki.certs.OID_KP_REVOCATION_LIST_SIGNING`), so a verifier that trusts the CSCA for
EF.SOD trusts the list through the same anchor. Entries carry the card serial, the state, the date and
the reason (a police report reference for a lost card), never the NIK.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from asn1crypto import cms, core  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from ektp_card.errors import ASN1_ERRORS, PkiError, one_line
from ektp_card.log import printable
from ektp_card.pki.arc import EKTP_ARC
from ektp_card.pki.certs import (
    load_certificate,
    now,
    revocation_signer_problem,
    verify_certificate_signature,
    verify_crl_signature,
)
from ektp_card.pki.cms import signed_data
from ektp_card.pki.signer import (
    HASH_NAMES,
    HashName,
    Signer,
    as_public_key,
    digest,
    same_key,
    verify_signature,
)

if TYPE_CHECKING:
    from ektp_card.pki.trust import TrustStore

#: eContentType of a card revocation list (our arc, .2 content types, .2.1).
OID_CARD_REVOCATION_LIST = f"{EKTP_ARC}.2.1"
LIST_VERSION = 0  # v1
DEFAULT_VALIDITY_DAYS = 7
MAX_VALIDITY_DAYS = 90  # as a CSCA CRL (ICAO 9303-12 section 7.1.4)


class RevokedState(StrEnum):
    """Why a listed card must be refused: the registry states whose cards go on the list."""

    LOST = "lost"
    DAMAGED = "damaged"
    REVOKED = "revoked"
    SPOILED = "spoiled"


#: The listed states with their ENUMERATED values in the list (docs/desk-revocation.md).
LISTED_STATES: dict[RevokedState, int] = {
    RevokedState.LOST: 1, RevokedState.DAMAGED: 2, RevokedState.REVOKED: 3, RevokedState.SPOILED: 4,
}
#: A list dated this far in the future still counts (verifier clocks drift).
CLOCK_SKEW = dt.timedelta(minutes=5)
_SERIAL_MAX = 64


class _CardState(core.Enumerated):  # type: ignore[misc]
    _map = {v: k for k, v in LISTED_STATES.items()}


class _RevokedCard(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("sod_hash", core.OctetString),
        ("card_serial", core.UTF8String),
        ("state", _CardState),
        ("date", core.GeneralizedTime),
        ("reason", core.UTF8String, {"optional": True}),
    ]


class _RevokedCards(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _RevokedCard


class _RevocationList(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("version", core.Integer),
        ("issuer", asn1_x509.Name),
        ("this_update", core.GeneralizedTime),
        ("next_update", core.GeneralizedTime),
        ("sequence_number", core.Integer),
        ("revoked_cards", _RevokedCards),
    ]


def sod_sha256(ef_sod: bytes) -> str:
    """How the registry and the list name a card: lower-case hex SHA-256 of the EF.SOD file."""
    return hashlib.sha256(ef_sod).hexdigest()


def _utc(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None:
        raise PkiError("revocation list times must carry a time zone")
    return when.astimezone(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class RevokedCard:
    """One listed card: its EF.SOD hash (lower-case hex), serial, state, since when and why."""

    sod_sha256: str
    serial: str
    state: RevokedState
    date: dt.datetime
    reason: str | None = None

    def __post_init__(self) -> None:
        # The serial first: the other messages quote it (escaped, since a parsed list may hold anything).
        if not 1 <= len(self.serial) <= _SERIAL_MAX:
            raise PkiError(f"a card serial has 1 to {_SERIAL_MAX} characters, got {len(self.serial)}")
        card = printable(self.serial)
        if len(self.sod_sha256) != 64 or self.sod_sha256.strip("0123456789abcdef"):
            raise PkiError(f"card {card}: the EF.SOD hash must be 64 lower-case hex digits")
        try:
            # A plain string from a registry row or a parsed list becomes the enum here.
            object.__setattr__(self, "state", RevokedState(self.state))
        except ValueError:
            listed = f"state {printable(repr(self.state))} is not listed on revocation lists"
            raise PkiError(f"card {card}: {listed}") from None

    def describe(self) -> str:
        """The clerk's line: ``card 0A1B lost on 2026-01-05 (police report LP/12/2026)``."""
        why = {RevokedState.LOST: "police report", RevokedState.REVOKED: "reason",
               RevokedState.SPOILED: "reason"}.get(self.state)
        text = f"card {printable(self.serial)} {self.state} on {self.date:%Y-%m-%d}"
        if self.state is RevokedState.DAMAGED:
            return text + " (surrendered at the desk)"
        return text + (f" ({why} {printable(self.reason)})" if self.reason and why else "")

    def to_json(self) -> dict[str, Any]:
        return {"sod_sha256": self.sod_sha256, "serial": self.serial, "state": self.state.value,
                "date": self.date.isoformat(), "reason": self.reason}


@dataclass(frozen=True)
class _Signed:
    """What the CMS signature covers, kept for :meth:`RevocationList.trust_problem`."""

    econtent: bytes
    content_type_attr: str | None
    message_digest: bytes | None
    digest_algorithm: str
    signed_attrs: bytes
    signature: bytes
    signature_algorithm: Any


@dataclass(frozen=True)
class RevocationList:
    """A parsed card revocation list. Parsing checks the structure only: call :meth:`trust_problem`
    and :meth:`stale_problem` (or use :func:`load_revocation_list`) before relying on it."""

    version: int
    #: The issuing authority (the CSCA's name, RFC 4514 form).
    issuer: str
    this_update: dt.datetime
    next_update: dt.datetime
    sequence: int
    entries: tuple[RevokedCard, ...]
    signer: x509.Certificate
    _signed: _Signed = field(repr=False, compare=False)
    _issuer_der: bytes = field(repr=False, compare=False, default=b"")

    def lookup(self, sod: bytes | str) -> RevokedCard | None:
        """The entry of the card whose EF.SOD is ``sod`` (the file, or its hex SHA-256), or ``None``."""
        key = sod.lower() if isinstance(sod, str) else sod_sha256(sod)
        return self._index.get(key)

    @property
    def _index(self) -> dict[str, RevokedCard]:
        cached: dict[str, RevokedCard] | None = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {e.sod_sha256: e for e in self.entries}
            object.__setattr__(self, "_index_cache", cached)
        return cached

    def describe(self) -> str:
        """``revocation list #7 of 2026-01-05`` for check reasons."""
        return f"revocation list #{self.sequence} of {self.this_update:%Y-%m-%d %H:%M} UTC"

    def stale_problem(self, at: dt.datetime | None = None) -> str | None:
        """Why the list is not current at ``at`` (default now), or ``None``."""
        when = _utc(at or now())
        if when > self.next_update:
            return (f"{self.describe()} expired on {self.next_update:%Y-%m-%d %H:%M} UTC; "
                    "publish a new one with `ektp desk revocations`")
        if self.this_update > when + CLOCK_SKEW:
            return f"{self.describe()} is dated in the future"
        return None

    def trust_problem(self, trust: TrustStore, at: dt.datetime | None = None) -> str | None:
        """Why the list's signature cannot be trusted with ``trust`` at ``at``, or ``None``: the
        CMS signature (RFC 5652 section 5.4), the signer's profile, its chain to a trusted CSCA,
        its validity at signing time and at ``at``, and no current CRL of that CSCA revoking it."""
        when = _utc(at or now())
        s = self._signed
        if s.digest_algorithm not in HASH_NAMES:
            return f"digest algorithm {s.digest_algorithm} is not accepted"
        if s.content_type_attr != OID_CARD_REVOCATION_LIST:
            return "the content-type attribute does not name a card revocation list"
        if s.message_digest is None or digest(s.digest_algorithm, s.econtent) != s.message_digest:
            return "the list does not match its signed message digest (it was changed after signing)"
        try:
            key = as_public_key(self.signer.public_key())
        except (PkiError, ValueError, UnsupportedAlgorithm) as e:
            return f"the signer's public key is unusable: {e}"
        reason = verify_signature(key, s.signature_algorithm, s.signature, s.signed_attrs)
        if reason is not None:
            return f"signature: {reason}"
        reason = revocation_signer_problem(self.signer)
        if reason is not None:
            return reason
        if self._issuer_der != self.signer.issuer.public_bytes():
            return "the list's issuer is not the issuer of its signer certificate"
        csca = next((c for c in trust.issuers_of(self.signer)
                     if verify_certificate_signature(self.signer, c) is None), None)
        if csca is None:
            signer = printable(self.signer.subject.rfc4514_string())
            return f"the signer {signer} does not chain to a trusted CSCA"
        for moment, what in ((self.this_update, "when it signed the list"), (when, "now")):
            for role, cert in (("signer", self.signer), ("CSCA", csca)):
                if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
                    return f"the {role} certificate is not valid {what}"
        for crl in trust.crls_for(csca):
            nxt = crl.next_update_utc
            if verify_crl_signature(crl, csca) is not None or nxt is None or nxt < when:
                continue  # only a current CRL the CSCA signed says anything
            entry = crl.get_revoked_certificate_by_serial_number(self.signer.serial_number)
            if entry is not None:
                return f"the signer certificate was revoked on {entry.revocation_date_utc:%Y-%m-%d}"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version + 1,
            "issuer": self.issuer,
            "sequence": self.sequence,
            "this_update": self.this_update.isoformat(),
            "next_update": self.next_update.isoformat(),
            "signer": self.signer.subject.rfc4514_string(),
            "entries": [e.to_json() for e in self.entries],
        }


# --- building ---------------------------------------------------------------------------------------


def build_revocation_list(
    entries: Iterable[RevokedCard],
    signer: Signer,
    certificate: x509.Certificate,
    *,
    sequence: int,
    this_update: dt.datetime | None = None,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
    hash_name: HashName | None = None,
) -> bytes:
    """The DER ContentInfo of a list over ``entries``, signed by the revocation list signer.

    Entries are sorted by EF.SOD hash; a hash listed twice is refused (two cards cannot share one).
    """
    if not 1 <= validity_days <= MAX_VALIDITY_DAYS:
        raise PkiError(f"a revocation list is valid for 1 to {MAX_VALIDITY_DAYS} days")
    if sequence < 0 or sequence.bit_length() > 159:
        raise PkiError("the sequence number is a non-negative integer of at most 20 octets")
    if not same_key(signer.public_key, certificate.public_key()):
        raise PkiError("the revocation list signer key does not match its certificate")
    problem = revocation_signer_problem(certificate)
    if problem is not None:
        raise PkiError(problem)
    start = _utc(this_update or now())
    if not certificate.not_valid_before_utc <= start <= certificate.not_valid_after_utc:
        raise PkiError(f"revocation list signer {certificate.serial_number:X} is not valid at "
                       f"{start:%Y-%m-%d %H:%M} UTC (valid {certificate.not_valid_before_utc:%Y-%m-%d} to "
                       f"{certificate.not_valid_after_utc:%Y-%m-%d})")
    items = sorted(entries, key=lambda e: e.sod_sha256)
    for a, b in zip(items, items[1:], strict=False):
        if a.sod_sha256 == b.sod_sha256:
            raise PkiError(f"cards {a.serial} and {b.serial} have the same EF.SOD hash")
    cards = []
    for e in items:
        card = {"sod_hash": bytes.fromhex(e.sod_sha256), "card_serial": e.serial, "state": e.state.value,
                "date": _utc(e.date)}
        if e.reason:
            card["reason"] = e.reason
        cards.append(_RevokedCard(card))
    content = _RevocationList({
        "version": LIST_VERSION,
        "issuer": asn1_x509.Name.load(certificate.issuer.public_bytes()),
        "this_update": start,
        "next_update": start + dt.timedelta(days=validity_days),
        "sequence_number": sequence,
        "revoked_cards": cards,
    }).dump()
    return signed_data(OID_CARD_REVOCATION_LIST, content, signer, certificate,
                       hash_name=hash_name or signer.default_hash, signing_time=start)


# --- reading ----------------------------------------------------------------------------------------


def parse_revocation_list(data: bytes) -> RevocationList:
    """Parse a list (DER, structure only); :class:`PkiError` when it is not a well-formed one."""
    try:
        if data[:1] != b"\x30":
            raise ValueError("not a DER SEQUENCE")
        info = cms.ContentInfo.load(data, strict=True)
        if info["content_type"].native != "signed_data":
            raise ValueError("not CMS signed data")
        sd = info["content"]
        econtent_type = sd["encap_content_info"]["content_type"].dotted
        if econtent_type != OID_CARD_REVOCATION_LIST:
            raise ValueError(f"content type {econtent_type} is not a card revocation list")
        econtent = bytes(sd["encap_content_info"]["content"].native)
        content = _RevocationList.load(econtent, strict=True)
        content.native  # noqa: B018 - parse all of it now, so a truncated list fails here
        if content.dump(force=True) != econtent:
            raise ValueError("the list is not DER")
        if len(sd["signer_infos"]) != 1:
            raise ValueError("a revocation list has exactly one signer")
        si = sd["signer_infos"][0]
        if si["sid"].name != "issuer_and_serial_number" or si["signed_attrs"].native is None:
            raise ValueError("the signer info needs issuerAndSerialNumber and signed attributes")
        sid = si["sid"].chosen
        certs = [load_certificate(c.chosen.dump()) for c in sd["certificates"]
                 if c.name == "certificate"]
        signer = next((c for c in certs if c.serial_number == sid["serial_number"].native
                       and c.issuer.public_bytes() == sid["issuer"].dump()), None)
        if signer is None:
            raise ValueError("the signer certificate is missing")
        # cryptography parses a certificate's fields when first asked: ask now, so that a corrupted
        # embedded certificate is a malformed list here, not an internal error of a later check.
        signer.subject.public_bytes()
        signer.issuer.public_bytes()
        _ = (signer.extensions, signer.not_valid_before_utc, signer.not_valid_after_utc)
        attrs = {a["type"].native: a["values"] for a in si["signed_attrs"]}
        ct = attrs.get("content_type")
        md = attrs.get("message_digest")
        raw_attrs = si["signed_attrs"].dump()
        signed = _Signed(
            econtent=econtent,
            content_type_attr=ct[0].dotted if ct is not None and len(ct) == 1 else None,
            message_digest=bytes(md[0].native) if md is not None and len(md) == 1 else None,
            digest_algorithm=str(si["digest_algorithm"]["algorithm"].native),
            # RFC 5652 section 5.4: the signature covers the attributes as a SET OF, tag 31.
            signed_attrs=b"\x31" + raw_attrs[1:],
            signature=bytes(si["signature"].native),
            signature_algorithm=si["signature_algorithm"],
        )
        version = int(content["version"].native)
        if version != LIST_VERSION:
            raise ValueError(f"version {version + 1} is not supported")
        sequence = int(content["sequence_number"].native)
        if not 0 <= sequence < 1 << 160:
            raise ValueError("the sequence number is not a non-negative integer of at most 20 octets")
        entries = tuple(
            RevokedCard(bytes(c["sod_hash"].native).hex(), str(c["card_serial"].native),
                        RevokedState(str(c["state"].native)), _time(c["date"].native, "a card's date"),
                        None if c["reason"].native is None else str(c["reason"].native))
            for c in content["revoked_cards"]
        )
        hashes = [e.sod_sha256 for e in entries]
        if hashes != sorted(set(hashes)):
            raise ValueError("entries are not sorted by EF.SOD hash without repeats")
        issuer_der = content["issuer"].dump()
        issuer = printable(signer.issuer.rfc4514_string() if issuer_der == signer.issuer.public_bytes()
                           else str(content["issuer"].human_friendly))
        return RevocationList(
            version, issuer, _time(content["this_update"].native, "thisUpdate"),
            _time(content["next_update"].native, "nextUpdate"), sequence, entries, signer, signed, issuer_der,
        )
    except PkiError as e:
        raise PkiError(f"malformed revocation list: {one_line(e)}") from None
    except ASN1_ERRORS as e:
        raise PkiError(f"malformed revocation list: {one_line(e)}") from None


def _time(value: object, what: str) -> dt.datetime:
    # asn1crypto reads a GeneralizedTime without a zone as a naive datetime (which cannot be compared
    # with the verifier's clock) and year 0 as its own extended_datetime.
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValueError(f"{what} is not a time with its time zone")
    return value.astimezone(dt.UTC)


def load_revocation_list(
    data: bytes, trust: TrustStore, *, at: dt.datetime | None = None, allow_stale: bool = False
) -> RevocationList:
    """Parse and check a list: :class:`PkiError` when malformed, untrusted or (unless ``allow_stale``)
    not current at ``at``. A bad signature is never allowed."""
    rl = parse_revocation_list(data)
    problem = rl.trust_problem(trust, at) or (None if allow_stale else rl.stale_problem(at))
    if problem is not None:
        raise PkiError(f"revocation list refused: {problem}")
    return rl


__all__ = [
    "DEFAULT_VALIDITY_DAYS",
    "LISTED_STATES",
    "MAX_VALIDITY_DAYS",
    "OID_CARD_REVOCATION_LIST",
    "RevocationList",
    "RevokedCard",
    "RevokedState",
    "build_revocation_list",
    "load_revocation_list",
    "parse_revocation_list",
    "sod_sha256",
]
