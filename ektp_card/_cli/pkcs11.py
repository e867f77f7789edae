"""A key in a PKCS#11 token chosen on the command line: module, token label, key label, PIN source.

Shared by the commands that sign with a token key (`personalize` for EF.SOD, `verify` for Terminal
Authentication). The PIN comes from an environment variable or a hidden prompt, never an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ektp_card._cli.pki import passphrase

if TYPE_CHECKING:
    from ektp_card.pki.pkcs11 import Pkcs11Signer


@dataclass(frozen=True)
class Pkcs11Choice:
    module: str
    token: str
    key_label: str
    pin_env: str
    certificate: Path | None = None


def open_signer(choice: Pkcs11Choice) -> Pkcs11Signer:
    """Log in to the token and find the key pair; raises PkiError (the caller's exit 7) when the
    module, the token, the PIN or the key is wrong. Close the signer when done."""
    from ektp_card.pki.pkcs11 import Pkcs11Signer

    pin = passphrase(choice.pin_env, f"token {choice.token} PIN")
    return Pkcs11Signer(choice.module, choice.token, choice.key_label, pin)
