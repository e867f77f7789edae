"""Fixed properties of a virtual card: what a chip decides at manufacture, stored in its image.

Besides the ISO/IEC 14443 and 7816 properties, :class:`CardBehaviour` holds what a *programmable*
card (a blank, writable chip sold to anyone) can be told to do differently from a well-made one: draw
its random numbers from a weak generator, answer after a delay, tell failures apart by status word,
answer Active Authentication with a stored signature. The default is the genuine card's behaviour;
:mod:`ektp_card.audit.attacks` builds attack cards from the other settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from ektp_card.apdu.command import EXTENDED_MAX_LC, EXTENDED_MAX_LE, SHORT_MAX_LC, SHORT_MAX_LE

#: UID sizes of ISO/IEC 14443-3 type A: single, double and triple size.
UID_SIZES = (4, 7, 10)
#: PC/SC part 3 section 3.1.3.2.3 puts the historical bytes count in one nibble of T0.
MAX_HISTORICAL_BYTES = 15
#: The longest response delay a card may be given (a relay over the internet is well below this).
MAX_RESPONSE_DELAY_MS = 60_000
#: An LCG seed is a 32-bit state.
MAX_RNG_SEED = 0xFFFFFFFF


class RngKind(StrEnum):
    """Where the card's random numbers come from."""

    #: The operating system's cryptographic generator (``secrets``): the genuine card.
    SYSTEM = "system"
    #: A 32-bit linear congruential generator restarted from the same seed at every power-on: a
    #: chip without an entropy source. Every challenge, nonce and ephemeral key is predictable from
    #: one output, and a power cycle repeats the whole sequence.
    LCG = "lcg"


class FailureKind(StrEnum):
    """Failures a card can tell apart internally; the genuine card answers some of them alike."""

    #: A protected command whose MAC does not verify (a wrong MAC, a replayed counter, malformed
    #: secure messaging objects): 6988 on the genuine card.
    SM_MAC = "sm-mac"
    #: A protected command whose cryptogram does not decrypt to padded data (in practice: protected
    #: with the wrong session key). The genuine card checks the MAC first and answers 6988.
    SM_PADDING = "sm-padding"
    #: A plain command while secure messaging runs: 6988 on the genuine card.
    SM_PLAIN = "sm-plain"
    #: PACE's last step with a terminal token that does not verify (a wrong CAN): 6300.
    PACE_MISMATCH = "pace-mismatch"


@dataclass(frozen=True)
class CardBehaviour:
    """How a programmable card departs from the genuine one; the defaults are the genuine card's.

    ``rng`` and ``rng_seed`` choose the card's one random source (UIDs, GET CHALLENGE, PACE nonces
    and keys, Chip Authentication nonces, Active Authentication ECDSA nonces). ``response_delay_ms``
    delays every response (a relay between the terminal and a card elsewhere). ``error_words``
    replaces the status word answered for a kind of failure (empty: the genuine words).
    ``aa_signature`` makes INTERNAL AUTHENTICATE answer this stored signature whatever the
    challenge (a signature recorded from another card).
    """

    rng: RngKind = RngKind.SYSTEM
    rng_seed: int = 0
    response_delay_ms: int = 0
    error_words: Mapping[FailureKind, int] = field(default_factory=dict)
    aa_signature: bytes | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.rng_seed <= MAX_RNG_SEED:
            raise ValueError(f"an RNG seed is 0..{MAX_RNG_SEED}")
        if not 0 <= self.response_delay_ms <= MAX_RESPONSE_DELAY_MS:
            raise ValueError(f"a response delay is 0..{MAX_RESPONSE_DELAY_MS} ms")
        for kind, sw in self.error_words.items():
            if not isinstance(kind, FailureKind):
                raise ValueError(f"unknown failure kind {kind!r}")
            if not 0x6000 <= sw <= 0x6FFF or sw >> 8 in (0x60, 0x61, 0x6C):
                raise ValueError(f"{sw:04X} is not an error status word")
        if self.aa_signature is not None and not self.aa_signature:
            raise ValueError("a stored Active Authentication signature cannot be empty")
        # A read-only mapping of its own, in a fixed order so that images come out the same.
        object.__setattr__(self, "error_words", MappingProxyType(dict(sorted(self.error_words.items()))))

    def __hash__(self) -> int:
        return hash((self.rng, self.rng_seed, self.response_delay_ms,
                     tuple(self.error_words.items()), self.aa_signature))

    @property
    def genuine(self) -> bool:
        """Whether this is the genuine card's behaviour."""
        return self == CardBehaviour()

    def error_word(self, kind: FailureKind, genuine: int) -> int:
        """The status word to answer for a failure of ``kind``; ``genuine`` unless overridden."""
        return self.error_words.get(kind, genuine)


#: Status words a chip with a read limit answers to a longer READ BINARY: 6700, or 6Cxx naming the limit.
READ_LIMIT_WORDS = (0x6700, 0x6C00)


@dataclass(frozen=True)
class ChipQuirks:
    """How chips of some makes depart from the letter of ISO/IEC 7816-4 and ICAO Doc 9303 while doing
    their job: what readers in the field meet (docs/chip-quirks.md). A reader must cope with each; the
    defaults are none of them.

    ``pace_parameter_id``: MSE:Set AT for PACE without the domain parameter ID (DO 84) is refused with
    6A80, although EF.CardAccess offers one set of parameters only. ``extended_length_refused``:
    EF.ATR/INFO advertises extended length, but every extended-length APDU is answered 6700 by the
    chip's transport layer (unprotected, before secure messaging sees it). ``end_of_file_warning``:
    a READ BINARY that reaches the end of the file answers 6282 even when Le was 00 ("up to the end").
    ``response_chunk``: responses come in parts of at most this many bytes, the rest behind 61xx for
    GET RESPONSE, whatever Ne the terminal allowed (0: no such limit). ``errors_outside_ok``: under
    secure messaging an error status word is answered protected (DO 99), while the unprotected status
    word outside says 9000. ``read_limit``: READ BINARY with Ne above this is
    refused (0: no such limit), with ``read_limit_word``: 6700, or 6Cxx naming the limit.
    """

    pace_parameter_id: bool = False
    extended_length_refused: bool = False
    end_of_file_warning: bool = False
    response_chunk: int = 0
    errors_outside_ok: bool = False
    read_limit: int = 0
    read_limit_word: int = 0x6700

    def __post_init__(self) -> None:
        if not (self.response_chunk == 0 or 1 <= self.response_chunk <= SHORT_MAX_LE):
            raise ValueError(f"a response chunk is 1..{SHORT_MAX_LE} bytes (0: none)")
        if not (self.read_limit == 0 or 1 <= self.read_limit <= SHORT_MAX_LE):
            raise ValueError(f"a read limit is 1..{SHORT_MAX_LE} bytes (0: none)")
        if self.read_limit_word not in READ_LIMIT_WORDS:
            raise ValueError("a read limit is answered 6700 or 6C00 (6Cxx naming the limit)")

    @property
    def none(self) -> bool:
        """Whether this chip has none of the quirks."""
        return self == ChipQuirks()

    def names(self) -> tuple[str, ...]:
        """The quirks present, by the names docs/chip-quirks.md uses."""
        out = []
        if self.pace_parameter_id:
            out.append("pace-parameter-id")
        if self.extended_length_refused:
            out.append("extended-length-refused")
        if self.end_of_file_warning:
            out.append("end-of-file-warning")
        if self.response_chunk:
            out.append(f"response-chunk {self.response_chunk}")
        if self.errors_outside_ok:
            out.append("errors-outside-ok")
        if self.read_limit:
            out.append(f"read-limit {self.read_limit} ({self.read_limit_word:04X})")
        return tuple(out)


@dataclass(frozen=True)
class CardConfig:
    """Chip properties.

    ``extended_length`` switches extended-length APDUs on (ISO/IEC 7816-4 section 5.1); the buffer
    sizes ``max_command_data`` (Nc) and ``max_response_data`` (Ne) apply only then, otherwise the
    short limits 255 and 256 hold. ``uid`` fixes the ISO/IEC 14443-3 UID; ``None`` draws a random one
    per power-on session. ``historical_bytes`` overrides the computed ATR/ATS historical bytes.
    ``behaviour`` holds the programmable-card settings (:class:`CardBehaviour`, default genuine);
    ``quirks`` the ways a chip of another make departs from the standards (:class:`ChipQuirks`, default
    none).
    """

    extended_length: bool = True
    uid: bytes | None = None
    max_command_data: int = EXTENDED_MAX_LC
    max_response_data: int = EXTENDED_MAX_LE
    historical_bytes: bytes | None = None
    behaviour: CardBehaviour = field(default_factory=CardBehaviour)
    quirks: ChipQuirks = field(default_factory=ChipQuirks)

    def __post_init__(self) -> None:
        if self.uid is not None and len(self.uid) not in UID_SIZES:
            raise ValueError(f"a UID has 4, 7 or 10 bytes, not {len(self.uid)}")
        if not SHORT_MAX_LC <= self.max_command_data <= EXTENDED_MAX_LC:
            raise ValueError(f"max_command_data must be {SHORT_MAX_LC}..{EXTENDED_MAX_LC}")
        if not SHORT_MAX_LE <= self.max_response_data <= EXTENDED_MAX_LE:
            raise ValueError(f"max_response_data must be {SHORT_MAX_LE}..{EXTENDED_MAX_LE}")
        if self.historical_bytes is not None and len(self.historical_bytes) > MAX_HISTORICAL_BYTES:
            raise ValueError(f"at most {MAX_HISTORICAL_BYTES} historical bytes")

    @property
    def command_data_limit(self) -> int:
        """Largest Nc the card accepts in one command APDU."""
        return self.max_command_data if self.extended_length else SHORT_MAX_LC

    @property
    def response_data_limit(self) -> int:
        """Largest number of data bytes the card returns in one response APDU."""
        return self.max_response_data if self.extended_length else SHORT_MAX_LE
