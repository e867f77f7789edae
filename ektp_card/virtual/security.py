"""The card's volatile security state and the slot where a secure-messaging layer plugs in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.lds.conditions import AccessCondition

if TYPE_CHECKING:
    from ektp_card.virtual.ta import ChipTa



class SecureChannel(Protocol):
    """A card-side secure-messaging session (ISO/IEC 7816-4 section 10), installed by a protocol
    such as PACE once its keys are agreed.

    ``unwrap`` verifies and decrypts a protected command, raising
    :class:`~ektp_card.errors.ApduError` with the status word to answer (e.g. 6987, 6988) when the
    protection is wrong; the card then ends the channel. ``wrap`` protects the response.
    """

    def unwrap(self, apdu: CommandApdu) -> CommandApdu: ...

    def wrap(self, response: ResponseApdu) -> ResponseApdu: ...


@dataclass
class SecurityState:
    """What has been proven in this power-on session. A cold reset replaces it with a fresh one."""

    granted: set[str] = field(default_factory=set)
    #: The last GET CHALLENGE answer: authentication protocols verify against it, once.
    challenge: bytes | None = None
    channel: SecureChannel | None = None
    #: ID_PICC for Terminal Authentication: Comp(PK~_PICC), the x-coordinate of the chip's ephemeral
    #: key in the last PACE (BSI TR-03110-2 section 3.4); empty without PACE.
    id_picc: bytes = b""
    #: Terminal Authentication of this PACE session (ektp_card.virtual.ta): the certificates verified
    #: so far, then the terminal's key and rights. It outlives MSE commands, unlike a GENERAL
    #: AUTHENTICATE run, since TA spans several of them.
    terminal: ChipTa | None = None

    def satisfies(self, condition: AccessCondition) -> bool:
        return condition.satisfied_by(self.granted)

    def grant(self, *names: str) -> None:
        self.granted.update(names)

    def revoke(self, *names: str) -> None:
        self.granted.difference_update(names)

    def take_challenge(self) -> bytes | None:
        """The last challenge, cleared so that it cannot be answered twice."""
        challenge, self.challenge = self.challenge, None
        return challenge

    def open_channel(self, channel: SecureChannel) -> None:
        self.channel = channel

    def end_channel(self) -> None:
        """Drop secure messaging and everything proven through it: in ICAO Doc 9303-11 an SM error
        or a plain command while SM is active ends the session's access rights."""
        self.channel = None
        self.granted.clear()
        self.id_picc = b""
        self.terminal = None
