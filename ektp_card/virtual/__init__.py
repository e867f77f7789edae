"""The virtual card OS: an ISO/IEC 7816-4 file system and command set behind ``transceive``."""

from ektp_card.lds.conditions import AccessCondition, SecurityAttributes
from ektp_card.lds.profile import DEMO_AID
from ektp_card.virtual.card import Session, VirtualCard
from ektp_card.virtual.commands import Chaining, Command
from ektp_card.virtual.config import CardConfig
from ektp_card.virtual.demo import demo_card
from ektp_card.virtual.fcp import Fcp
from ektp_card.virtual.fs import CardFile, DedicatedFile, ElementaryFile, FileSystem, LifeCycle
from ektp_card.virtual.security import SecureChannel, SecurityState

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
