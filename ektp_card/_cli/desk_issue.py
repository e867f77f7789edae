"""`ektp desk issue BATCH`: a batch file of citizen records becomes personalised cards (docs/desk.md).

The issuer's material is checked before the first card (master key, PKI folder and CRL, document signer,
CVCA certificate), exactly as `ektp personalize` checks it. Then :func:`ektp_card.desk.batch.issue_batch`
runs; this module only renders its progress and summary. Ctrl-C stops after the card in hand (a second
Ctrl-C at once); running the same file again resumes the batch.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from ektp_card._cli.desk_cards import open_desk_registry, registry_options
from ektp_card._cli.personalize import (
    BIOMETRICS,
    DS_TOKEN,
    MASTER_KEY_FILE,
    document_signer,
    issuer_trust,
    load_trust_point,
    master_key,
)
from ektp_card._cli.pkcs11 import token_choice
from ektp_card._cli.pki import DS_PASS
from ektp_card._cli.util import Ctx, ExitCode, FilePath, check_output, fail

if TYPE_CHECKING:
    from rich.console import Console

    from ektp_card.desk.batch import BatchProgress, BatchSummary, CardStation

#: The exit code of a batch stopped with Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


@contextmanager
def _cancel_on_sigint() -> Iterator[threading.Event]:
    """The first Ctrl-C asks the batch to stop after the card in hand; a second one interrupts at once."""
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        click.echo("Stopping after the card in hand (Ctrl-C again to stop at once)...", err=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _progress(enabled: bool, total_hint: str) -> Iterator[tuple[Callable[[BatchProgress], None] | None,
                                                                 Callable[[str], None]]]:
    """A rich progress bar on stderr (records done, rate, ETA) and a notice printer."""
    from rich.console import Console

    console: Console = Console(stderr=True, highlight=False)
    if not enabled or not console.is_terminal:
        yield None, lambda text: click.echo(text, err=True)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[counts]}"), TextColumn("{task.fields[rate]}"),
                  TextColumn("ETA {task.fields[eta]}"), console=console, transient=True) as bar:
        task = bar.add_task(total_hint, total=None, counts="", rate="", eta="-:--:--")

        def show(p: BatchProgress) -> None:
            eta = "-:--:--" if p.eta is None else _clock(p.eta)
            bar.update(task, total=p.total, completed=p.done,
                       description=f"line {p.line}" if p.line is not None else total_hint,
                       counts=f"{p.issued} issued, {p.skipped} skipped, {p.rejected} rejected",
                       rate=f"{p.cards_per_hour:,.0f} cards/h", eta=eta)

        yield show, lambda text: bar.console.print(text, markup=False)


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _station(reader: str | None, virtual_dir: Path | None, print_dir: Path | None, key: bytes) -> CardStation:
    from ektp_card.desk.batch import ReaderStation, VirtualCardDir

    if (reader is None) == (virtual_dir is None):
        raise click.UsageError("give one card source: --reader R or --virtual-dir DIR")
    if virtual_dir is not None:
        if print_dir is not None:
            raise click.UsageError(
                "--print-dir is for --reader: virtual cards keep their print job beside them")
        check_output(virtual_dir, folder=True)  # before a card is personalised, not after
        return VirtualCardDir(virtual_dir, key)
    if print_dir is None:
        raise click.UsageError("--reader needs --print-dir DIR for the print jobs (CAN and printed fields)")
    check_output(print_dir, folder=True)
    return ReaderStation(reader, print_dir)


def _render(obj: Ctx, summary: BatchSummary) -> None:
    from rich.markup import escape
    from rich.table import Table

    o = obj.out
    table = Table(title=f"Batch {summary.batch} at desk {escape(summary.desk)}")
    table.add_column("")
    table.add_column("records", justify="right")
    table.add_row("issued", str(len(summary.issued)))
    table.add_row("skipped (already issued)", str(len(summary.skipped)))
    table.add_row("rejected", str(len(summary.rejected)))
    table.add_row("not reached" if summary.cancelled else "total",
                  str(summary.total - len(summary.outcomes)) if summary.cancelled else str(summary.total))
    o.print(table)
    if summary.recovered:
        o.print(f"Interrupted cards verified and confirmed: {', '.join(summary.recovered)}", markup=False)
    details = [x for x in summary.outcomes if x.status.value != "issued"]
    if details:
        lines = Table(title="Skipped and rejected records")
        for column in ("line", "outcome", "card", "reason"):
            lines.add_column(column)
        for x in details:
            lines.add_row(str(x.line), x.status.value, x.serial or "", escape(x.reason))
        o.print(lines)
    if summary.spoiled:
        spoiled = Table(title="Spoiled cards (destroy a physical one)")
        spoiled.add_column("card")
        spoiled.add_column("reason")
        for s in summary.spoiled:
            spoiled.add_row(s.serial, escape(s.reason))
        o.print(spoiled)
    o.print(f"{summary.seconds:.1f} s, {summary.cards_per_hour:,.0f} cards per hour", markup=False)


@click.command()
@click.argument("batch_path", metavar="BATCH.csv|BATCH.jsonl",
                type=FilePath(path_type=Path, dir_okay=False))
@click.option("--issuer", "--pki", "issuer_dir", required=True,
              type=FilePath(path_type=Path, file_okay=False),
              metavar="DIR",
              help="The issuer PKI folder (`ektp pki csca create`): CSCA, document signer, CRL.")
@click.option("--reader", "-r", metavar="NAME|INDEX",
              help="Personalise cards in this PC/SC reader, one at a time (needs --print-dir).")
@click.option("--virtual-dir", type=FilePath(path_type=Path, file_okay=False), metavar="DIR",
              help="Issue virtual cards: DIR/SERIAL.card and its print job DIR/SERIAL.print.json.")
@click.option("--print-dir", type=FilePath(path_type=Path, file_okay=False), metavar="DIR",
              help="With --reader: where the print jobs go (CAN and printed fields; mode 0600).")
@click.option("--cvca", "cvca_path", type=FilePath(path_type=Path, dir_okay=False), metavar="FILE",
              help="CVCA certificate (binary CV certificate) the chips trust for Terminal Authentication; "
                   "without it no terminal reads DG3 and `ektp desk handover` cannot match a finger.")
@DS_TOKEN
@MASTER_KEY_FILE
@DS_PASS
@click.option("--no-crl", is_flag=True, help="Read cards back without requiring a current CRL.")
@BIOMETRICS
@registry_options
@click.pass_obj
def issue(
    obj: Ctx, batch_path: Path, issuer_dir: Path, reader: str | None, virtual_dir: Path | None,
    print_dir: Path | None, cvca_path: Path | None, pkcs11_module: str | None, token_label: str | None,
    key_label: str | None, pin_env: str, ds_cert: Path | None, master_key_file: Path | None, ds_env: str,
    no_crl: bool, biometrics: str, registry_target: str, desk_id: str, actor: str,
) -> None:
    """Issue a batch: validate each record, skip NIKs that already have a card, personalise, read back,
    and commit each card to the registry.

    Run the same file again after any interruption (Ctrl-C, a crash, a power cut): it resumes, issues
    nothing twice and loses nothing. Exit 0 when every record was issued or skipped, 9 when some were
    rejected (listed), 130 when stopped with Ctrl-C, 15 when the registry fails.
    """
    from ektp_card.desk.batch import Issuance, count_records, issue_batch
    from ektp_card.personalize import Biometrics
    from ektp_card.verify.passive import Policy

    hsm = token_choice(pkcs11_module, token_label, key_label, pin_env, ds_cert, "--ds-cert")
    if count_records(batch_path) == 0:
        fail(f"{batch_path} holds no record", ExitCode.USAGE)
    key = master_key(master_key_file)
    station = _station(reader, virtual_dir, print_dir, key)
    cvca = load_trust_point(cvca_path) if cvca_path is not None else None
    trust = issuer_trust(issuer_dir, require_crl=not no_crl)
    ds = document_signer(issuer_dir, ds_env, hsm, trust)
    issuance = Issuance(key, ds, trust, Policy(require_crl=not no_crl), cvca,
                        biometrics=Biometrics(biometrics))
    resume = f"run `ektp desk issue {batch_path}` again with the same options to resume"
    try:
        with (open_desk_registry(registry_target, create=True) as registry, _cancel_on_sigint() as cancel,
              _progress(not obj.json, f"Batch {batch_path.name}") as (show, notice)):
            try:
                summary = issue_batch(batch_path, registry, station, issuance, desk=desk_id, actor=actor,
                                      progress=show, notice=notice, cancel=cancel)
            except KeyboardInterrupt:
                click.echo(f"Interrupted: {resume}.", err=True)
                raise click.exceptions.Exit(INTERRUPTED) from None
    finally:
        close = getattr(ds.signer, "close", None)
        if callable(close):
            close()
    if obj.json:
        obj.emit(summary.to_json())
    else:
        _render(obj, summary)
    sys.stdout.flush()
    if summary.cancelled:
        click.echo(f"Interrupted after {len(summary.outcomes)} of {summary.total} records: {resume}.",
                   err=True)
        raise click.exceptions.Exit(INTERRUPTED)
    if summary.rejected:
        raise click.exceptions.Exit(int(ExitCode.PARTIAL))


__all__ = ["INTERRUPTED", "issue"]
