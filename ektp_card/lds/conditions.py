"""Access conditions: who may read, update or administer a file, as a typed value.

The card profiles (:mod:`ektp_card.lds.profile`, :mod:`ektp_card.lds.ektp`) state their files' conditions
with it, the personaliser writes them into CREATE FILE (FCP data object 86), and the virtual card
enforces them; all three share this one definition and its encoding.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import ClassVar

from ektp_card.apdu.tlv import Tlv, parse_dict
from ektp_card.errors import TlvError

#: Condition names the card's protocols grant. They are plain names so later protocols and attack
#: variants can add their own.
PACE = "PACE"
BAC = "BAC"
TA = "TA"
CA = "CA"
#: Granted to a terminal whose Terminal Authentication carries the project's verify-biometric right
#: (after Chip Authentication): it may ask the chip to compare a fingerprint (VERIFY).
BIO = "BIO"
#: Granted by the personalisation key's mutual authentication, on a card not yet locked.
PERSO = "PERSO"

_CONDITION_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_RESERVED_NAMES = frozenset({"ALWAYS", "NEVER"})


@dataclass(frozen=True)
class AccessCondition:
    """When a command may touch a file: ALWAYS, NEVER, or named conditions a protocol satisfies.

    ``alternatives`` is a set of alternatives, each a set of condition names that must all hold
    (e.g. "PACE+TA|PERSO": PACE and Terminal Authentication, or a personalisation session). ALWAYS is
    the one empty alternative, NEVER has no alternative at all.
    """

    alternatives: frozenset[frozenset[str]]

    ALWAYS: ClassVar[AccessCondition]
    NEVER: ClassVar[AccessCondition]

    def __post_init__(self) -> None:
        for alternative in self.alternatives:
            for name in alternative:
                if not _CONDITION_NAME.fullmatch(name) or name in _RESERVED_NAMES:
                    raise ValueError(f"invalid access condition name: {name!r}")
        if frozenset() in self.alternatives and len(self.alternatives) > 1:
            # ALWAYS absorbs every other alternative; keep one canonical form for equality.
            object.__setattr__(self, "alternatives", frozenset({frozenset()}))

    @classmethod
    def require(cls, *names: str) -> AccessCondition:
        """All of ``names`` must have been satisfied in the session."""
        return cls(frozenset({frozenset(names)}))

    def __or__(self, other: AccessCondition) -> AccessCondition:
        return AccessCondition(self.alternatives | other.alternatives)

    def satisfied_by(self, granted: AbstractSet[str]) -> bool:
        return any(alternative <= granted for alternative in self.alternatives)

    def __str__(self) -> str:
        if not self.alternatives:
            return "NEVER"
        if self.alternatives == frozenset({frozenset()}):
            return "ALWAYS"
        return "|".join(sorted("+".join(sorted(a)) for a in self.alternatives))

    @classmethod
    def parse(cls, text: str) -> AccessCondition:
        """Inverse of ``str()``: "ALWAYS", "NEVER" or names joined by "+" (and) and "|" (or)."""
        if text == "ALWAYS":
            return cls.ALWAYS
        if text == "NEVER":
            return cls.NEVER
        return cls(frozenset(frozenset(part.split("+")) for part in text.split("|")))


AccessCondition.ALWAYS = AccessCondition(frozenset({frozenset()}))
AccessCondition.NEVER = AccessCondition(frozenset())

# Tags inside our proprietary security attribute DO (FCP tag 86).
_TAG_READ, _TAG_UPDATE, _TAG_ADMIN = 0x80, 0x81, 0x82


@dataclass(frozen=True)
class SecurityAttributes:
    """A file's access conditions.

    ``read`` guards READ BINARY, ``update`` UPDATE BINARY, ``admin`` the file-management commands:
    CREATE FILE under a DF, ACTIVATE, DEACTIVATE and TERMINATE of the file itself.
    """

    read: AccessCondition = AccessCondition.ALWAYS
    update: AccessCondition = AccessCondition.NEVER
    admin: AccessCondition = AccessCondition.NEVER

    def encode(self) -> bytes:
        """Value of FCP DO 86 ("security attributes in proprietary format", ISO/IEC 7816-4
        section 7.4.3): three ASCII conditions, tagged 80 read, 81 update, 82 admin."""
        return b"".join(
            Tlv(tag, str(cond).encode("ascii")).encode()
            for tag, cond in ((_TAG_READ, self.read), (_TAG_UPDATE, self.update), (_TAG_ADMIN, self.admin))
        )

    @classmethod
    def decode(cls, value: bytes) -> SecurityAttributes:
        """Parse the DO 86 value; all three conditions must be present."""
        fields = parse_dict(value)
        if set(fields) != {_TAG_READ, _TAG_UPDATE, _TAG_ADMIN}:
            raise TlvError("security attributes need exactly the tags 80, 81 and 82", 0)
        try:
            read, update, admin = (
                AccessCondition.parse(fields[t].decode("ascii")) for t in (_TAG_READ, _TAG_UPDATE, _TAG_ADMIN)
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise TlvError("malformed access condition", 0) from exc
        return cls(read, update, admin)


__all__ = ["BAC", "BIO", "CA", "PACE", "PERSO", "TA", "AccessCondition", "SecurityAttributes"]
