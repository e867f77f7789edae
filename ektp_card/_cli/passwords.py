"""Getting card passwords (CAN, PIN, MRZ) from the user without echoing or logging them."""

from __future__ import annotations

import sys

import click

from ektp_card._cli.util import ExitCode, fail

#: The value that asks for a hidden prompt instead of taking the password from the command line.
PROMPT = "-"
#: For ``virtual create``: draw the password with ``secrets`` and show it once.
RANDOM = "random"
RANDOM_DIGITS = 6


def prompt_if_asked(value: str | None, kind: str, *, confirm: bool = False) -> str | None:
    """``value`` itself, or when it is ``-`` a hidden prompt on stderr (on a terminal) or the first line
    of standard input (piped in; no prompt then, and no warning that it cannot be hidden)."""
    if value != PROMPT:
        return value
    if not sys.stdin.isatty():
        line = sys.stdin.readline().strip()
        if not line:
            fail(f"'-' reads the {kind} from the terminal or standard input, and none came", ExitCode.USAGE)
        return line
    answer: str = click.prompt(kind, hide_input=True, confirmation_prompt=confirm, err=True)
    return answer.strip()


def card_password(value: str | None, kind: str) -> str | None:
    """A CAN or PIN to open a card with: ``value``, or asked for (``-``); 4 to 12 digits, else a usage
    error naming the password type (never what was typed)."""
    chosen = prompt_if_asked(value, kind)
    if chosen is not None and chosen != "" and not _digits(chosen):
        fail(f"the {kind} must be 4 to 12 digits", ExitCode.USAGE)
    return chosen


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and 4 <= len(text) <= 12


def new_password(value: str | None, kind: str) -> tuple[str | None, bool]:
    """A password for a new card: given, prompted for (``-``, twice) or drawn at random
    (``random``: six digits). Returns it and whether it was drawn, so the caller shows it once."""
    if value == RANDOM:
        import secrets  # only here: it costs every command's start-up otherwise

        return f"{secrets.randbelow(10**RANDOM_DIGITS):0{RANDOM_DIGITS}d}", True
    chosen = prompt_if_asked(value, kind, confirm=True)
    if chosen is not None and not _digits(chosen):
        # The message names the password type only, never what was typed.
        fail(f"the {kind} must be 4 to 12 digits", ExitCode.USAGE)
    return chosen, False
