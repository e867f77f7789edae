"""The ektp command line: argument parsing and rendering over the library, no protocol logic here.

Each command's module is imported only when that command runs (or shows its own help): `ektp --version`
and `ektp --help` import no command, no rich and no cryptography, and `ektp read` none of the desk,
audit or PKI commands. The root help takes each command's short help from :data:`COMMANDS`.
"""

from __future__ import annotations

import errno
import importlib
import io
import sys

import click

from ektp_card import __version__, errors
from ektp_card._cli.util import LATER, CliError, Ctx, ExitCode, exit_code_for, one_line, setup_logging

#: Every command: the module and attribute that define it, and the short help `ektp --help` shows
#: (the first sentence of its docstring; tests/test_cli_errors.py holds the two to each other).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "apdu": ("ektp_card._cli.apdu", "apdu",
             "Send each command APDU (hex) and print the response and its status word."),
    "audit": ("ektp_card._cli.audit", "audit",
              "Run the security audit catalogue against a card: what a cloner, forger or skimmer would "
              "try, with a verdict and the deciding APDUs per test."),
    "demo": ("ektp_card._cli.demo", "demo",
             "Issue a virtual e-KTP card from a synthetic record and verify it like a clerk."),
    "desk": ("ektp_card._cli.desk", "desk",
             "Distribution desk: issue batches, track each card's life cycle, report."),
    "personalize": ("ektp_card._cli.personalize", "personalize",
                    "Personalise a blank card from RECORD.json, lock it, and read it back like a clerk."),
    "pki": ("ektp_card._cli.pki", "pki",
            "Issuer PKI: country signing CA, document signers, CRLs, EF.SOD; CV certificates."),
    "read": ("ektp_card._cli.read", "read",
             "Authenticate with the CAN, PIN or MRZ and read FILEs over secure messaging."),
    "readers": ("ektp_card._cli.readers", "readers", "List PC/SC readers (index, name, card present, ATR)."),
    "record": ("ektp_card._cli.record", "record",
               "Citizen records: the JSON the desk personalises a card from."),
    "station": ("ektp_card._cli.station", "station",
                "Serve the station on HOST:PORT and print the address that opens it (with its one-time "
                "token)."),
    "trust": ("ektp_card._cli.trust", "trust",
              "The verifier's trust folder: import ICAO PKD LDIF files and CSCA master lists, list it."),
    "verify": ("ektp_card._cli.verify", "verify",
               "Verify an e-KTP like a clerk: PACE with the CAN, Passive, Chip and Active Authentication; "
               "with a terminal, Terminal Authentication, DG3 and the holder's fingerprint."),
    "virtual": ("ektp_card._cli.virtual", "virtual",
                "Virtual cards: a card OS in a file, served in-process or to a real pcscd."),
}


class LazyGroup(click.Group):
    """A group whose commands in :data:`COMMANDS` are imported when first asked for by name."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMANDS:
            module, attribute, _ = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, from the short help in :data:`COMMANDS` instead of each imported command."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            # A stand-in command shortens the text exactly as click shortens a command's own help.
            command = self.commands.get(name) or click.Command(name, help=COMMANDS[name][2])
            rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option(
    "-v", "--verbose", count=True, help="More log output on stderr (-vvv: APDU traffic, secrets redacted)."
)
@click.version_option(__version__, prog_name="ektp")
@click.pass_context
def cli(ctx: click.Context, as_json: bool, verbose: int) -> None:
    """Issue and verify contactless e-KTP / ICAO 9303 cards."""
    setup_logging(verbose)
    ctx.obj = Ctx(json=as_json, verbosity=verbose)


def _log_failure(what: str) -> None:
    import logging

    logging.getLogger("ektp_card.cli").debug(what, exc_info=True)


def _error_line(message: str) -> None:
    """The one line on stderr: a message quoting what the user typed or a file held stays one line,
    and an escape sequence in it is shown, not obeyed."""
    click.echo(f"Error: {one_line(message)}", err=True)


def _silence_stdout() -> None:
    import contextlib
    import os

    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _run(argv: list[str] | None) -> int:
    """Run the command line; its exit code, its failures raised. Not through click's own main, which
    would turn Ctrl-C into an empty line and "Aborted." (exit 1) instead of "Interrupted." (130)."""
    import os

    args = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get("_EKTP_COMPLETE"):
        cli.main(args=args, prog_name="ektp")  # shell completion, as click's main offers it; exits
    try:
        with cli.make_context("ektp", args) as ctx:
            rv = cli.invoke(ctx)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    return rv if isinstance(rv, int) else 0


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI with the one error contract (message + documented exit code)."""
    LATER.clear()
    try:
        rv = _run(argv)
    except CliError as e:
        if e.__cause__ is not None:
            _log_failure("failure")
        _error_line(str(e))
        sys.exit(int(e.code))
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(int(ExitCode.USAGE))
    except click.ClickException as e:
        e.show()
        sys.exit(int(ExitCode.USAGE))
    except errors.EktpError as e:
        code = exit_code_for(e)
        _log_failure("failure")
        _error_line(str(e))
        sys.exit(int(code))
    except OSError as e:
        if e.errno == errno.EPIPE:
            # The reader of our output went away (`ektp ... | head`): nothing left to tell anyone,
            # and the interpreter's last flush must not fail on the closed pipe either.
            _silence_stdout()
            sys.exit(1)
        _log_failure("file error")
        where = f": {e.filename}" if e.filename else ""
        _error_line(f"{e.strerror or e}{where}")
        sys.exit(int(ExitCode.FILE))
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the one place that turns bugs into a clean line
        _log_failure("internal error")
        click.echo(f"Internal error: {type(e).__name__}. Run with -vv for details.", err=True)
        sys.exit(int(ExitCode.INTERNAL))
    for warning in LATER:
        click.echo(one_line(warning), err=True)
    sys.exit(rv if isinstance(rv, int) else 0)
