"""The virtual card OS: an ISO/IEC 7816-4 file system and command set behind ``transceive``.

The names below are imported on first use: :mod:`ektp_card.access` needs only the demo application's
file identifiers, and a command reading a real card should not load the whole card OS for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ektp_card.virtual.card import Session, VirtualCard
    from ektp_card.virtual.commands import Chaining, Command
    from ektp_card.virtual.config import CardConfig
    from ektp_card.virtual.demo import DEMO_AID, demo_card
    from ektp_card.virtual.fcp import Fcp
    from ektp_card.virtual.fs import (
        AccessCondition,
        CardFile,
        DedicatedFile,
        ElementaryFile,
        FileSystem,
        LifeCycle,
        SecurityAttributes,
    )
    from ektp_card.virtual.security import SecureChannel, SecurityState

_MODULES = {
    "Session": "card", "VirtualCard": "card",
    "Chaining": "commands", "Command": "commands",
    "CardConfig": "config",
    "DEMO_AID": "demo", "demo_card": "demo",
    "Fcp": "fcp",
    "AccessCondition": "fs", "CardFile": "fs", "DedicatedFile": "fs", "ElementaryFile": "fs",
    "FileSystem": "fs", "LifeCycle": "fs", "SecurityAttributes": "fs",
    "SecureChannel": "security", "SecurityState": "security",
}

if not TYPE_CHECKING:  # type checkers see the imports above and keep checking every name

    def __getattr__(name: str) -> Any:
        module = _MODULES.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value


__all__ = [
    "DEMO_AID",
    "AccessCondition",
    "CardConfig",
    "CardFile",
    "Chaining",
    "Command",
    "DedicatedFile",
    "ElementaryFile",
    "Fcp",
    "FileSystem",
    "LifeCycle",
    "SecureChannel",
    "SecurityAttributes",
    "SecurityState",
    "Session",
    "VirtualCard",
    "demo_card",
]
