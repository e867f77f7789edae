"""ektp-card: issue and verify contactless national ID cards (e-KTP model, ICAO 9303, BSI TR-03110)."""

from ektp_card.errors import EktpError

__all__ = ["EktpError", "__version__"]
__version__ = "0.1.0"
