"""Getting card passwords (CAN, PIN, MRZ) from the user without echoing or logging them."""

from __future__ import annotations

import click

from ektp_card._cli.util import ExitCode, fail

#: The value that asks for a hidden prompt instead of taking the password from the command line.
PROMPT = "-"
#: For ``virtual create``: draw the password with ``secrets`` and show it once.
RANDOM = "random"
RANDOM_DIGITS = 6


def prompt_if_asked(value: str | None, kind: str, *, confirm: bool = False) -> str | None:
    """``value`` itself, or a hidden prompt on stderr when it is ``-``."""
    if value != PROMPT:
        return value
    answer: str = click.prompt(kind, hide_input=True, confirmation_prompt=confirm, err=True)
    return answer.strip()


def new_password(value: str | None, kind: str) -> tuple[str | None, bool]:
    """A password for a new card: given, prompted for (``-``, twice) or drawn at random
    (``random``: six digits). Returns it and whether it was drawn, so the caller shows it once."""
    if value == RANDOM:
        import secrets  # only here: it costs every command's start-up otherwise

        return f"{secrets.randbelow(10**RANDOM_DIGITS):0{RANDOM_DIGITS}d}", True
    chosen = prompt_if_asked(value, kind, confirm=True)
    if chosen is not None and not (chosen.isascii() and chosen.isdigit() and 4 <= len(chosen) <= 12):
        # The message names the password type only, never what was typed.
        fail(f"the {kind} must be 4 to 12 digits", ExitCode.USAGE)
    return chosen, False
