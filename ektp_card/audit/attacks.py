"""Attack cards: what a cloner, skimmer or relay builds from a genuine e-KTP, as virtual cards.

Every attack card is a *programmable card*: a blank, writable chip (a JavaCard-like card anyone can
buy) loaded with what the genuine card gives away to whoever holds the CAN printed on it. The
attacker never has the genuine chip's private keys (the Chip and Active Authentication keys are
generated on the chip and never leave it), the issuer's document signer key, any PACE password but
the CAN, nor DG3 (fingerprints need Terminal Authentication). What the programmable card does
differently is a :class:`~ektp_card.virtual.config.CardBehaviour` stored in its image, so every
attack card can be saved, loaded and served through pcscd like any other virtual card.

Two kinds of builders:

* from a :class:`Harvest` (what :func:`harvest` read from a genuine card with its CAN): the clone,
  the downgrade clone, the static-UID card and the replaying card;
* from a genuine card image: the relay (the genuine card itself, behind a slower link) and the
  poorly made *genuine-looking* chips (a weak random generator, leaky error words), which model an
  issuer's bad chip rather than an attacker's copy.

:data:`ATTACK_KINDS` names them all for the ``ektp audit --make-...`` commands;
:func:`make_attack_card` builds any of them from a genuine card and its CAN. docs/attack-cards.md
describes each card and what the genuine card does instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Protocol

from ektp_card.apdu.command import EXTENDED_MAX_LC, EXTENDED_MAX_LE, SHORT_MAX_LC, SHORT_MAX_LE
from ektp_card.apdu.iso7816 import CardInfo
from ektp_card.apdu.sw import SW
from ektp_card.apdu.transport import Transport
from ektp_card.crypto.aa import active_authenticate
from ektp_card.crypto.pace import Password
from ektp_card.errors import ApduError, CardFileNotFoundError, LdsFormatError, TlvError
from ektp_card.lds.card_access import CardAccess, PaceInfo
from ektp_card.lds.conditions import PACE, AccessCondition, SecurityAttributes
from ektp_card.lds.dg14 import Dg14
from ektp_card.lds.dg15 import Dg15
from ektp_card.lds.ektp import (
    DATA_GROUP_TAGS,
    EKTP_AID,
    EKTP_APPLICATION,
    EKTP_DF_FID,
    FILES,
    PERSO,
    Com,
    FileSpec,
)
from ektp_card.lds.profile import FileRef
from ektp_card.lds.public_key import EcPublicKey, RsaPublicKey
from ektp_card.session.card import CardSession, Credentials
from ektp_card.virtual import image
from ektp_card.virtual.aa import install_active_authentication
from ektp_card.virtual.atr import COMMAND_APDU_OVERHEAD, RESPONSE_APDU_OVERHEAD
from ektp_card.virtual.ca import install_chip_authentication
from ektp_card.virtual.card import RANDOM_UID_PREFIX, VirtualCard
from ektp_card.virtual.config import CardBehaviour, FailureKind, RngKind
from ektp_card.virtual.fs import LifeCycle
from ektp_card.virtual.pace import PASSWORD_KEYS

#: The delay of :func:`make_relay_card` unless told otherwise: a relay over a phone and the internet
#: adds tens to hundreds of milliseconds per exchange; 300 ms lies above the audit's default relay bound
#: (250 ms), so a rehearsal with defaults on both sides shows the relay.
DEFAULT_RELAY_DELAY_MS = 300
#: The seed of :func:`make_weak_rng_card` unless told otherwise.
DEFAULT_RNG_SEED = 0x4B545031
#: The status words of :func:`make_leaky_errors_card`, by failure kind. The genuine card answers
#: 6988 to a wrong MAC, to a command protected with the wrong session key and to a plain command
#: during secure messaging alike; this card answers 6988, 6A80 and 6982.
LEAKY_ERROR_WORDS: Mapping[FailureKind, int] = MappingProxyType(
    {FailureKind.SM_PADDING: SW.INCORRECT_DATA, FailureKind.SM_PLAIN: SW.SECURITY_STATUS_NOT_SATISFIED}
)
#: The UID of :func:`make_static_uid_card` when neither a UID nor a harvested one is there.
FALLBACK_STATIC_UID = RANDOM_UID_PREFIX + b"\x4B\x54\x50"

#: A genuine card: in memory, or an image file.
GenuineCard = VirtualCard | str | os.PathLike[str]

#: PC/SC part 3 section 3.2.2.1.3: GET DATA pseudo-APDU a contactless reader answers with the UID.
_GET_UID = bytes.fromhex("FFCA000000")
_PERSO_ONLY = PERSO


@dataclass(frozen=True)
class AaRecording:
    """One Active Authentication exchange overheard or run with the genuine card: the terminal's
    8-byte challenge and the chip's signature over it."""

    challenge: bytes
    signature: bytes


@dataclass(frozen=True, repr=False)
class Harvest:
    """Everything a genuine card gives to a reader holding its CAN, as an attacker records it.

    ``files`` maps the e-KTP profile's file names (``EF.CardAccess``, ``EF.ATR/INFO``, ``EF.DIR``,
    ``EF.COM``, ``EF.CVCA``, ``DG1``..., ``EF.SOD``; see :data:`ektp_card.lds.ektp.FILES`) to the
    contents read; ``refused`` lists the data groups the card would not give (DG3). ``uid``,
    ``atr`` and ``historical_bytes`` are what the reader saw at harvest time (``None`` where the
    transport does not tell). ``aa`` is a recorded Active Authentication, if one was run.
    """

    can: str
    files: Mapping[str, bytes]
    refused: tuple[int, ...] = ()
    uid: bytes | None = None
    atr: bytes | None = None
    historical_bytes: bytes | None = None
    aa: AaRecording | None = None
    aid: bytes = EKTP_AID

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))

    def __repr__(self) -> str:
        # The CAN stays out of logs and tracebacks.
        names = ", ".join(self.files)
        return f"Harvest({names}; refused {self.refused}; AA recorded: {self.aa is not None})"

    @property
    def data_groups(self) -> dict[int, bytes]:
        """The data groups read, by number."""
        return {n: self.files[f"DG{n}"] for n in sorted(DATA_GROUP_TAGS) if f"DG{n}" in self.files}

    @property
    def sod(self) -> bytes | None:
        return self.files.get("EF.SOD")

    @property
    def card_access(self) -> bytes | None:
        return self.files.get("EF.CardAccess")


def _transport_uid(transport: Transport) -> bytes | None:
    value = getattr(transport, "uid", None)
    if isinstance(value, bytes) and value:
        return value
    try:
        answer = transport.transceive(_GET_UID)
    except ApduError:
        return None
    return answer[:-2] if len(answer) > 2 and answer[-2:] == b"\x90\x00" else None


def _historical(atr: bytes | None) -> bytes | None:
    """The historical bytes of a contactless ATR as PC/SC builds it: 3B 8n 80 01 <n bytes> TCK
    (PC/SC part 3 section 3.1.3.2.3)."""
    if atr is None or len(atr) < 5 or atr[0] != 0x3B or atr[1] & 0xF0 != 0x80 or atr[2:4] != b"\x80\x01":
        return None
    count = atr[1] & 0x0F
    return atr[4 : 4 + count] if len(atr) >= 5 + count else None


def _ref(spec: FileSpec) -> FileRef:
    return FileRef(spec.name, spec.sfi, spec.fid, in_mf=spec.in_mf)


def harvest(
    transport: Transport,
    can: str,
    *,
    record_aa: bool = True,
    uid: bytes | None = None,
    atr: bytes | None = None,
) -> Harvest:
    """Read everything ``transport``'s card gives with PACE-CAN: the MF's EF.CardAccess, EF.ATR/INFO
    and EF.DIR (in the clear, before PACE), then in the e-KTP application EF.COM, EF.CVCA, every data
    group of the profile (those refused, DG3, are noted) and EF.SOD. With ``record_aa`` an Active
    Authentication with a fresh challenge is run and recorded, as a terminal the attacker controls
    (or one it eavesdrops) would.

    ``uid`` and ``atr`` default to what the transport exposes (a :class:`VirtualCard`'s ``uid``
    and ``atr``, a PC/SC transport's ``atr``, the PC/SC GET DATA pseudo-APDU for the UID).
    :class:`~ektp_card.errors.PacePasswordError` for a wrong CAN,
    :class:`~ektp_card.errors.CardFileNotFoundError` for a card without the e-KTP application;
    transport errors propagate.
    """
    seen_uid = uid if uid is not None else _transport_uid(transport)
    if atr is None:
        value = getattr(transport, "atr", None)
        atr = value if isinstance(value, bytes) else None
    session = CardSession(transport)
    session.discover()
    files: dict[str, bytes] = {}
    for spec in (s for s in FILES if s.in_mf):
        try:
            files[spec.name] = session.read(_ref(spec))
        except ApduError:
            continue  # not on this card, or not readable without access: nothing to copy
    session.authenticate(Credentials(can=can), (EKTP_APPLICATION,))
    if session.select_application((EKTP_APPLICATION,)) is None:
        raise CardFileNotFoundError(SW.FILE_NOT_FOUND, message="the card has no e-KTP application")
    refused: list[int] = []
    for spec in (s for s in FILES if not s.in_mf):
        try:
            files[spec.name] = session.read(_ref(spec))
        except CardFileNotFoundError:
            continue
        except ApduError:
            if spec.data_group is not None:
                refused.append(spec.data_group)
    recording = _record_aa(session, files) if record_aa else None
    return Harvest(can, files, tuple(refused), seen_uid, atr, _historical(atr), recording)


def _record_aa(session: CardSession, files: Mapping[str, bytes]) -> AaRecording | None:
    if "DG15" not in files:
        return None
    try:
        key = Dg15.decode(files["DG15"]).public_key.to_cryptography()
        info = Dg14.decode(files["DG14"]).active_authentication_info if "DG14" in files else None
    except (LdsFormatError, ValueError):
        return None
    algorithm = info.signature_algorithm if info is not None else None
    result = active_authenticate(session.protocol, key, signature_algorithm=algorithm,
                                 random_bytes=secrets.token_bytes)
    return AaRecording(result.challenge, result.signature) if result.signature else None


def _source(genuine: GenuineCard) -> VirtualCard:
    return genuine if isinstance(genuine, VirtualCard) else VirtualCard.load(genuine)


def _copy(card: VirtualCard, change: Callable[[CardBehaviour], CardBehaviour] | None = None) -> VirtualCard:
    """``card``'s non-volatile state as a new card, its behaviour passed through ``change``."""
    copied = image.decode(image.encode(image.CardImage(card.config, card.fs, dict(card.keys))))
    config = copied.config
    if change is not None:
        config = replace(config, behaviour=change(config.behaviour))
    return VirtualCard(copied.fs, config, keys=copied.keys)


def harvest_card(card: GenuineCard, can: str, *, record_aa: bool = True) -> Harvest:
    """:func:`harvest` from a virtual card (or image file). It runs on a copy, freshly powered on,
    so the card given is left exactly as it was."""
    return harvest(_copy(_source(card)), can, record_aa=record_aa)


# --- attack cards from a harvest ------------------------------------------------------------------


def _buffers(h: Harvest) -> tuple[bool, int | None, int | None]:
    """Extended length and the largest Nc and Ne, as EF.ATR/INFO states the genuine card's buffers."""
    raw = h.files.get("EF.ATR/INFO")
    try:
        info = CardInfo.parse(raw) if raw is not None else None
    except TlvError:
        info = None
    if info is None or not info.extended_length:
        return False, None, None
    command, response = info.max_command_apdu, info.max_response_apdu
    # The card's word, held to what a card can have: odd sizes in its EF.ATR/INFO (a byte buffer, a
    # gigabyte) make the programmable card as near as it can, never a configuration it refuses.
    nc = None if command is None else _within(command - COMMAND_APDU_OVERHEAD, SHORT_MAX_LC,
                                              EXTENDED_MAX_LC)
    ne = None if response is None else _within(response - RESPONSE_APDU_OVERHEAD, SHORT_MAX_LE,
                                               EXTENDED_MAX_LE)
    return True, nc, ne


def _within(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _programmable_card(
    h: Harvest,
    files: Mapping[str, bytes],
    *,
    uid: bytes | None = None,
    behaviour: CardBehaviour | None = None,
) -> VirtualCard:
    """A programmable card loaded with ``files`` in the e-KTP profile's layout (the profile is public;
    the access conditions are those a reader observes), the genuine ATR's historical bytes and the
    CAN as its PACE password, and locked like the genuine card: its files can be read under the same
    conditions and never written."""
    extended, max_command, max_response = _buffers(h)
    card = VirtualCard.create(
        extended_length=extended,
        max_command_data=max_command,
        max_response_data=max_response,
        uid=uid,
        life_cycle=LifeCycle.OPERATIONAL_ACTIVATED,
        admin=_PERSO_ONLY,
        historical_bytes=h.historical_bytes,
        behaviour=behaviour,
    )
    fs, mf = card.fs, card.fs.mf
    app = fs.create_df(mf, EKTP_DF_FID, name=h.aid,
                       access=SecurityAttributes(AccessCondition.ALWAYS, _PERSO_ONLY, _PERSO_ONLY))
    for spec in FILES:
        content = files.get(spec.name)
        if content is None and spec.data_group in h.refused:
            # Never read, so never copied: a data group object with nothing in it, behind the same
            # condition, so that the card refuses it as the genuine one does.
            content = bytes((DATA_GROUP_TAGS[spec.data_group], 0))
        if content is None:
            continue
        access = SecurityAttributes(spec.read, _PERSO_ONLY, _PERSO_ONLY)
        existing = (mf if spec.in_mf else app).child_ef(spec.fid)
        if existing is not None:
            # EF.ATR/INFO, which every card has: the genuine bytes replace the computed ones.
            existing.data = bytearray(content)
            continue
        fs.create_ef(mf if spec.in_mf else app, spec.fid, data=content, sfi=spec.sfi, access=access)
    card.keys[PASSWORD_KEYS[Password.can(h.can).type]] = Password.can(h.can).key
    card.power_on()
    return card


def _own_chip_keys(card: VirtualCard, h: Harvest, *, active: bool = True) -> None:
    """Chip (and Active) Authentication key pairs generated on the programmable card, with the
    algorithms the genuine DG14 and DG15 name: the genuine private keys never left the genuine chip."""
    groups = h.data_groups
    try:
        dg14 = Dg14.decode(groups[14]) if 14 in groups else None
    except LdsFormatError:
        dg14 = None
    if dg14 is not None and dg14.chip_authentication_infos and dg14.chip_authentication_public_keys:
        info, public = dg14.chip_authentication_infos[0], dg14.chip_authentication_public_keys[0]
        key = public.public_key
        if isinstance(key, EcPublicKey) and info.algorithm.supported:
            install_chip_authentication(card, curve=key.curve, algorithm=info.algorithm,
                                        version=info.version, key_id=public.key_id)
    if not active or 15 not in groups:
        return
    try:
        aa_key = Dg15.decode(groups[15]).public_key
    except LdsFormatError:
        return
    aa_info = dg14.active_authentication_info if dg14 is not None else None
    hash_name = aa_info.hash_name if aa_info is not None else "sha256"
    if isinstance(aa_key, RsaPublicKey):
        install_active_authentication(card, rsa_bits=aa_key.bits, hash_name=hash_name)
    elif isinstance(aa_key, EcPublicKey):
        install_active_authentication(card, curve=aa_key.curve, hash_name=hash_name)


def make_clone(h: Harvest) -> VirtualCard:
    """Every readable file copied byte for byte onto a programmable card with the same CAN, the
    same ATR historical bytes and a random UID per session, and with Chip and Active Authentication
    keys of its own, freshly generated (the genuine ones never left the genuine chip). EF.SOD still
    holds the genuine DG14 and DG15 hashes, so Chip and Active Authentication fail."""
    card = _programmable_card(h, h.files)
    _own_chip_keys(card, h)
    return card


def make_downgrade_clone(h: Harvest) -> VirtualCard:
    """A clone that claims no Chip or Active Authentication: DG14 and DG15 left out, any Chip or
    Terminal Authentication SecurityInfos removed from EF.CardAccess, EF.COM listing neither; no CA or
    AA keys. EF.SOD (signed, so unchangeable) still lists DG14 and DG15."""
    files = {name: data for name, data in h.files.items() if name not in ("DG14", "DG15")}
    if h.card_access is not None:
        try:
            pace_only = tuple(i for i in CardAccess.decode(h.card_access).infos if isinstance(i, PaceInfo))
            files["EF.CardAccess"] = CardAccess(pace_only).encode()
        except LdsFormatError:
            pass
    com = h.files.get("EF.COM")
    if com is not None:
        try:
            listed = Com.decode(com)
            kept = tuple(t for t in listed.tags if t not in (DATA_GROUP_TAGS[14], DATA_GROUP_TAGS[15]))
            files["EF.COM"] = replace(listed, tags=kept).encode()
        except LdsFormatError:
            pass
    return _programmable_card(h, files)


def make_static_uid_card(h: Harvest, uid: bytes | None = None) -> VirtualCard:
    """A clone answering every power-on with one fixed UID: ``uid``, else the UID seen at harvest
    (what a "UID-writable" card copies), else :data:`FALLBACK_STATIC_UID`."""
    card = _programmable_card(h, h.files, uid=uid or h.uid or FALLBACK_STATIC_UID)
    _own_chip_keys(card, h)
    return card


def make_replaying_card(h: Harvest) -> VirtualCard:
    """A clone whose INTERNAL AUTHENTICATE answers the signature recorded from the genuine card
    (``h.aa``), whatever the challenge; its Chip Authentication key is its own.
    :class:`ValueError` if the harvest recorded no Active Authentication."""
    if h.aa is None:
        raise ValueError("the harvest recorded no Active Authentication to replay")
    card = _programmable_card(h, h.files, behaviour=CardBehaviour(aa_signature=h.aa.signature))
    _own_chip_keys(card, h, active=False)
    return card


# --- attack cards from a genuine image ------------------------------------------------------------


def make_relay_card(genuine: GenuineCard, delay_ms: int = DEFAULT_RELAY_DELAY_MS) -> VirtualCard:
    """The genuine card behind a relay: a copy of its image (keys and all, since a relay forwards to
    the real chip) answering every command exactly as it would, ``delay_ms`` later."""
    return _copy(_source(genuine), lambda b: replace(b, response_delay_ms=delay_ms))


def make_weak_rng_card(genuine: GenuineCard, seed: int = DEFAULT_RNG_SEED) -> VirtualCard:
    """A poorly made *genuine-looking* chip (not an attacker's copy): the genuine card's image, keys
    and all, whose random generator is a 32-bit LCG restarted from ``seed`` at every power-on. Its
    UIDs, challenges, PACE nonces and keys and ECDSA nonces repeat after each power cycle and are
    predictable from one output."""
    return _copy(_source(genuine), lambda b: replace(b, rng=RngKind.LCG, rng_seed=seed))


def make_leaky_errors_card(
    genuine: GenuineCard, words: Mapping[FailureKind, int] = LEAKY_ERROR_WORDS
) -> VirtualCard:
    """A poorly made *genuine-looking* chip (not an attacker's copy): the genuine card's image whose
    failures answer the status words ``words`` by kind where the genuine card answers one word.
    With the default words it decrypts before checking the MAC, so a command protected with the
    wrong session key answers 6A80 and one with a wrong MAC 6988, and it refuses a plain command
    during secure messaging with 6982 (the genuine card: 6988 for all three)."""
    return _copy(_source(genuine), lambda b: replace(b, error_words=dict(words)))


def make_leaky_reference_card(genuine: GenuineCard) -> VirtualCard:
    """A poorly made *genuine-looking* chip that offers on-card comparison but lets its reference be
    read: the genuine card's image with EF.BIOREF readable after PACE (the genuine card: NEVER). On a
    card without a reference it is the genuine card's copy."""
    from ektp_card.lds.compact import REFERENCE_FID

    card = _copy(_source(genuine))
    leaky = SecurityAttributes(AccessCondition.require(PACE), AccessCondition.NEVER, AccessCondition.NEVER)
    for f in card.fs.walk():
        if f.fid == REFERENCE_FID and not f.is_df:
            f.access = leaky
    return card


# --- the catalogue of attack cards -----------------------------------------------------------------


@dataclass(frozen=True)
class AttackKind:
    """One kind of attack card: its name (``ektp audit --make NAME ...``), a one-line description,
    the audit test meant to catch it, and whether it starts from a harvest (an attacker's copy) or
    from the genuine image itself."""

    name: str
    description: str
    caught_by: str
    from_harvest: bool
    #: ``build(genuine, can, delay_ms=..., seed=...)``, as :func:`make_attack_card` calls it.
    build: Builder = field(repr=False, compare=False)


class Builder(Protocol):
    """How :func:`make_attack_card` builds one kind: from the genuine card and its CAN."""

    def __call__(self, genuine: GenuineCard, can: str, *, delay_ms: int, seed: int) -> VirtualCard: ...


def _from_harvest(make: Callable[[Harvest], VirtualCard]) -> Builder:
    def build(genuine: GenuineCard, can: str, *, delay_ms: int, seed: int) -> VirtualCard:
        return make(harvest_card(genuine, can, record_aa=make is make_replaying_card))

    return build


def _relay(genuine: GenuineCard, can: str, *, delay_ms: int, seed: int) -> VirtualCard:
    return make_relay_card(genuine, delay_ms)


def _weak_rng(genuine: GenuineCard, can: str, *, delay_ms: int, seed: int) -> VirtualCard:
    return make_weak_rng_card(genuine, seed)


def _leaky(genuine: GenuineCard, can: str, *, delay_ms: int, seed: int) -> VirtualCard:
    return make_leaky_errors_card(genuine)


def _leaky_reference(genuine: GenuineCard, can: str, *, delay_ms: int, seed: int) -> VirtualCard:
    return make_leaky_reference_card(genuine)


ATTACK_KINDS: Mapping[str, AttackKind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            AttackKind("clone", "all readable data copied onto a programmable card with its own chip keys",
                       "CLONE-COPY", True, _from_harvest(make_clone)),
            AttackKind("downgrade-clone", "a copy claiming no Chip or Active Authentication (no DG14, DG15)",
                       "CLONE-DOWNGRADE", True, _from_harvest(make_downgrade_clone)),
            AttackKind("static-uid", "a copy answering every power-on with the UID seen at harvest",
                       "UID-TRACE", True, _from_harvest(make_static_uid_card)),
            AttackKind("replay", "a copy answering Active Authentication with a recorded signature",
                       "AA-REPLAY", True, _from_harvest(make_replaying_card)),
            AttackKind("relay", "the genuine card behind a relay: the same answers, each one later",
                       "RELAY-LATENCY", False, _relay),
            AttackKind("weak-rng", "a genuine-looking chip whose random numbers come from a seeded LCG",
                       "RNG-QUALITY", False, _weak_rng),
            AttackKind("leaky-errors", "a genuine-looking chip whose error words tell failure kinds apart",
                       "TRACE-ERRORS", False, _leaky),
            AttackKind("leaky-reference",
                       "a genuine-looking chip whose on-card fingerprint reference can be read",
                       "BIO-MOC", False, _leaky_reference),
        )
    }
)


def make_attack_card(
    kind: str,
    genuine: GenuineCard,
    can: str,
    *,
    delay_ms: int = DEFAULT_RELAY_DELAY_MS,
    seed: int = DEFAULT_RNG_SEED,
) -> VirtualCard:
    """The attack card ``kind`` (a key of :data:`ATTACK_KINDS`) built from the genuine card (or
    image file) ``genuine`` whose CAN is ``can``: harvested first for the copies, copied as an image
    for the others. The genuine card is left as it was. :class:`ValueError` for an unknown kind."""
    attack = ATTACK_KINDS.get(kind)
    if attack is None:
        raise ValueError(f"unknown attack card {kind!r}; known: {', '.join(ATTACK_KINDS)}")
    return attack.build(genuine, can, delay_ms=delay_ms, seed=seed)


__all__ = [
    "ATTACK_KINDS",
    "DEFAULT_RELAY_DELAY_MS",
    "DEFAULT_RNG_SEED",
    "FALLBACK_STATIC_UID",
    "LEAKY_ERROR_WORDS",
    "AaRecording",
    "AttackKind",
    "Harvest",
    "harvest",
    "harvest_card",
    "make_attack_card",
    "make_clone",
    "make_downgrade_clone",
    "make_leaky_errors_card",
    "make_leaky_reference_card",
    "make_relay_card",
    "make_replaying_card",
    "make_static_uid_card",
    "make_weak_rng_card",
]
