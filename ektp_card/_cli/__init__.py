"""The ektp command line: argument parsing and rendering over the library, no protocol logic here."""

from __future__ import annotations

import logging
import sys

import click

from ektp_card import __version__, errors
from ektp_card._cli.util import CliError, Ctx, ExitCode, exit_code_for, setup_logging

log = logging.getLogger("ektp_card.cli")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


def _register() -> None:
    from ektp_card._cli.apdu import apdu
    from ektp_card._cli.audit import audit
    from ektp_card._cli.demo import demo
    from ektp_card._cli.desk import desk
    from ektp_card._cli.personalize import personalize
    from ektp_card._cli.pki import pki
    from ektp_card._cli.read import read
    from ektp_card._cli.readers import readers
    from ektp_card._cli.record import record
    from ektp_card._cli.station import station
    from ektp_card._cli.verify import verify
    from ektp_card._cli.virtual import virtual

    for command in (demo, readers, apdu, read, verify, virtual, pki, personalize, record, desk, audit,
                    station):
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI with the one error contract (message + documented exit code)."""
    try:
        # Without standalone mode click returns the code of an Exit instead of raising it.
        rv = cli.main(args=argv, prog_name="ektp", standalone_mode=False)
    except CliError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(int(e.code))
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(int(ExitCode.USAGE))
    except click.ClickException as e:
        e.show()
        sys.exit(int(ExitCode.USAGE))
    except errors.EktpError as e:
        code = exit_code_for(e)
        log.debug("failure", exc_info=True)
        click.echo(f"Error: {e}", err=True)
        sys.exit(int(code))
    except OSError as e:
        log.debug("file error", exc_info=True)
        where = f": {e.filename}" if e.filename else ""
        click.echo(f"Error: {e.strerror or e}{where}", err=True)
        sys.exit(int(ExitCode.FILE))
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the one place that turns bugs into a clean line
        log.debug("internal error", exc_info=True)
        click.echo(f"Internal error: {type(e).__name__}. Run with -vv for details.", err=True)
        sys.exit(int(ExitCode.INTERNAL))
    sys.exit(rv if isinstance(rv, int) else 0)
