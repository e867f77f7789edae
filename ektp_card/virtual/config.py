"""Fixed properties of a virtual card: what a chip decides at manufacture, stored in its image."""

from __future__ import annotations

from dataclasses import dataclass

from ektp_card.apdu.command import EXTENDED_MAX_LC, EXTENDED_MAX_LE, SHORT_MAX_LC, SHORT_MAX_LE

#: UID sizes of ISO/IEC 14443-3 type A: single, double and triple size.
UID_SIZES = (4, 7, 10)
#: PC/SC part 3 section 3.1.3.2.3 puts the historical bytes count in one nibble of T0.
MAX_HISTORICAL_BYTES = 15


@dataclass(frozen=True)
class CardConfig:
    """Chip properties.

    ``extended_length`` switches extended-length APDUs on (ISO/IEC 7816-4 section 5.1); the buffer
    sizes ``max_command_data`` (Nc) and ``max_response_data`` (Ne) apply only then, otherwise the
    short limits 255 and 256 hold. ``uid`` fixes the ISO/IEC 14443-3 UID; ``None`` draws a random one
    per power-on session. ``historical_bytes`` overrides the computed ATR/ATS historical bytes.
    """

    extended_length: bool = True
    uid: bytes | None = None
    max_command_data: int = EXTENDED_MAX_LC
    max_response_data: int = EXTENDED_MAX_LE
    historical_bytes: bytes | None = None

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
