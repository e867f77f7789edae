"""What one card plan takes of a chip's memory, before anything is written (docs/virtual-card.md,
"Memory budget").

:func:`plan_budget` charges every file of the plan (whatever files the plan holds: a new file of the
profile is counted the day it is added to the plan), the application DF, the files made during
personalisation (DG14, DG15, EF.SOD; EF.CardSecurity with PACE-CAM) and the key objects the card
stores (the Chip and Active Authentication key pairs, the CAN, the trust point and the chip's date), each as
:mod:`ektp_card.lds.capacity` charges it. Sizes that depend on the card's keys or the signature
are taken at their largest: DG14 and DG15 have a fixed length for a curve, and EF.SOD (and
EF.CardSecurity) is built over placeholder data groups with a placeholder signature of the longest DER
encoding, so the budget is never smaller than what the card will take.

:func:`personalize` asks the card how much memory it has free (GET DATA FF21) before the first write
and raises :class:`~ektp_card.errors.CardCapacityError`, saying by how many bytes the record is too
large, when the budget does not fit. A card that does not tell is written as before; it answers
6A84 to the write that does not fit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from ektp_card.crypto.ca import CA_ALGORITHMS
from ektp_card.crypto.pace import Password
from ektp_card.errors import LdsFormatError, PersonalisationError
from ektp_card.lds.capacity import df_storage, ef_storage, key_storage
from ektp_card.lds.card_security import build_card_security
from ektp_card.lds.dg14 import ChipAuthenticationInfo, ChipAuthenticationPublicKeyInfo
from ektp_card.lds.ektp import LDS_VERSION, UNICODE_VERSION
from ektp_card.lds.public_key import EcPublicKey, cryptography_curve
from ektp_card.lds.sod import build_sod
from ektp_card.personalize.plan import CardPlan
from ektp_card.pki.signer import HashName, PublicKey, Signer

#: The chip's date, stored with the trust point: six BCD digits (BSI TR-03110-3 appendix D.2).
_DATE_LENGTH = 6


@dataclass(frozen=True)
class BudgetLine:
    """One file, DF or key object: its size and what it takes of the memory."""

    name: str
    kind: str  # "EF", "DF" or "key"
    size: int
    storage: int


@dataclass(frozen=True)
class CardBudget:
    """What a plan takes of a chip's memory, line by line."""

    lines: tuple[BudgetLine, ...]

    @property
    def total(self) -> int:
        return sum(line.storage for line in self.lines)

    def line(self, name: str) -> BudgetLine:
        for line in self.lines:
            if line.name == name:
                return line
        raise KeyError(name)


class _LongestSignature(Signer):
    """Stands in for the document signer when EF.SOD is laid out: the signer's public key, and a
    signature of the longest DER encoding that key can give (nothing is signed)."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    @property
    def public_key(self) -> PublicKey:
        return self._signer.public_key

    def sign_digest(self, digest_value: bytes, hash_name: HashName) -> bytes:
        key = self.public_key
        if isinstance(key, ec.EllipticCurvePublicKey):
            # Both integers with a leading zero byte: the longest ECDSA-Sig-Value for this curve.
            integer = b"\x00" + b"\xff" * ((key.curve.key_size + 7) // 8)
            body = b"".join(b"\x02" + _der_length(len(integer)) + integer for _ in range(2))
            return b"\x30" + _der_length(len(body)) + body
        return b"\xff" * ((key.key_size + 7) // 8)


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _aa_private_key_length(plan: CardPlan) -> int:
    # PKCS#8 DER of an EC key has one length per curve (fixed-size private and public values).
    named = cryptography_curve(plan.algorithms.aa_curve)
    if named is None:
        raise PersonalisationError("Active Authentication needs a curve OpenSSL signs on")
    key = ec.generate_private_key(named)
    return len(key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()))


def sod_size(
    plan: CardPlan, signer: Signer, certificate: x509.Certificate, *, hash_name: HashName | None = None
) -> int:
    """The longest EF.SOD ``signer`` and ``certificate`` make for ``plan`` (signature hash
    ``hash_name``, default: the signer's)."""
    algorithms = plan.algorithms
    ca_point = algorithms.ca_curve.encode_point(algorithms.ca_curve.generator)
    aa_point = algorithms.aa_curve.encode_point(algorithms.aa_curve.generator)
    groups = {**plan.data_groups, 14: algorithms.dg14(ca_point), 15: algorithms.dg15(aa_point)}
    try:
        sod = build_sod(
            groups,
            _LongestSignature(signer),
            certificate,
            hash_name=algorithms.sod_hash,
            signature_hash=hash_name or signer.default_hash,
            signing_time=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
            lds_version=(LDS_VERSION, UNICODE_VERSION),
        )
    except LdsFormatError as exc:
        raise PersonalisationError(f"EF.SOD cannot be built: {exc}") from None
    return len(sod)


def card_security_size(
    plan: CardPlan, signer: Signer, certificate: x509.Certificate, *, hash_name: HashName | None = None
) -> int:
    """The longest EF.CardSecurity ``signer`` and ``certificate`` make for ``plan`` (0 without PACE-CAM)."""
    algorithms = plan.algorithms
    if not algorithms.cam:
        return 0
    ca_point = algorithms.ca_curve.encode_point(algorithms.ca_curve.generator)
    infos = algorithms.card_security_infos(ca_point, on_card_comparison=plan.on_card_comparison)
    return len(build_card_security(infos, _LongestSignature(signer), certificate,
                                   hash_name=hash_name or signer.default_hash,
                                   signing_time=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))


def plan_budget(plan: CardPlan, sod_bytes: int, *, card_security_bytes: int | None = None) -> CardBudget:
    """What ``plan`` takes of a chip's memory beyond its factory content, with an EF.SOD of
    ``sod_bytes`` (:func:`sod_size`) and an EF.CardSecurity of ``card_security_bytes``
    (:func:`card_security_size`; ``None``: the profile's largest)."""
    algorithms = plan.algorithms
    ca_curve, aa_curve = algorithms.ca_curve, algorithms.aa_curve
    lines: list[BudgetLine] = []

    def add(name: str, kind: str, size: int) -> None:
        storage = df_storage() if kind == "DF" else ef_storage(size) if kind == "EF" else key_storage(size)
        lines.append(BudgetLine(name, kind, size, storage))

    made_on_card = {
        "DG14": len(algorithms.dg14(ca_curve.encode_point(ca_curve.generator),
                                    on_card_comparison=plan.on_card_comparison)),
        "DG15": len(algorithms.dg15(aa_curve.encode_point(aa_curve.generator))),
        "EF.SOD": sod_bytes,
    }
    if card_security_bytes is not None:
        made_on_card["EF.CardSecurity"] = card_security_bytes
    for f in plan.mf_files:
        add(f.name, "EF", len(f.content) if f.content is not None else made_on_card.get(f.name, f.max_size))
    add("e-KTP application", "DF", 0)
    for f in plan.application_files:
        add(f.name, "EF", len(f.content) if f.content is not None else made_on_card.get(f.name, f.max_size))
    ca = CA_ALGORITHMS[algorithms.ca_protocol]
    ca_key = EcPublicKey(ca_curve, ca_curve.encode_point(ca_curve.generator))
    ca_public = ChipAuthenticationPublicKeyInfo.of(ca_key)
    add("Chip Authentication private key", "key", (ca_curve.n.bit_length() + 7) // 8)
    add("Chip Authentication public key", "key", len(ca_public.encode()))
    add("Chip Authentication info", "key", len(ChipAuthenticationInfo(ca.oid, 1).encode()))
    add("Active Authentication private key", "key", _aa_private_key_length(plan))
    add("Active Authentication hash", "key", len(algorithms.aa_hash.encode("ascii")))
    add("CAN", "key", len(Password.can(plan.can).key))
    if plan.trust_point is not None:
        add("Terminal Authentication trust point", "key", len(plan.trust_point))
        add("chip date", "key", _DATE_LENGTH)
    return CardBudget(tuple(lines))


__all__ = ["BudgetLine", "CardBudget", "card_security_size", "plan_budget", "sod_size"]
