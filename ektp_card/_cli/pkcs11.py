"""A key in a PKCS#11 token chosen on the command line: module, token label, key label, PIN source.

Shared by the commands that sign with a token key (`personalize` for EF.SOD, `verify` for Terminal
Authentication). The PIN comes from an environment variable or a hidden prompt, never an argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ektp_card._cli.pki import passphrase
from ektp_card._cli.util import FilePath

F = TypeVar("F", bound=Callable[..., Any])

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


def token_options(cert_flag: str, cert_help: str) -> Callable[[F], F]:
    """The options naming a signing key in a token: --pkcs11, --token, --key-label, --pin-env and
    ``cert_flag`` (the key's certificate; its parameter is the flag's name, e.g. ``ds_cert``)."""
    options = [
        click.option("--pkcs11", "pkcs11_module", metavar="MODULE",
                     help="Sign with a key in a PKCS#11 token (module path, e.g. libsofthsm2.so)."),
        click.option("--token", "token_label", metavar="LABEL", help="Token label (with --pkcs11)."),
        click.option("--key-label", metavar="LABEL", help="Key pair label on the token (with --pkcs11)."),
        click.option("--pin-env", default="EKTP_PKCS11_PIN", show_default=True, metavar="NAME",
                     help="Environment variable holding the token PIN "
                          "(prompted for when unset on a terminal)."),
        click.option(cert_flag, type=FilePath(path_type=Path, dir_okay=False), metavar="PEM",
                     help=cert_help),
    ]

    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


def token_choice(
    module: str | None, token: str | None, key_label: str | None, pin_env: str, certificate: Path | None,
    cert_flag: str,
) -> Pkcs11Choice | None:
    """The token key the options name, or ``None`` for a key file; usage errors (exit 2) for half a choice."""
    given = [v for v in (module, token, key_label) if v]
    if given and len(given) != 3:
        raise click.UsageError("--pkcs11, --token and --key-label go together")
    if certificate is not None and not given:
        raise click.UsageError(f"{cert_flag} is for a signer key in a token (--pkcs11)")
    if module and token and key_label:
        return Pkcs11Choice(module, token, key_label, pin_env, certificate)
    return None
