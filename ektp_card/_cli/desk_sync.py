"""`ektp desk lease|sync`: a desk that keeps issuing while the central registry is out of reach.

Thin commands over :mod:`ektp_card.desk.sync`: ``lease`` lends a batch's NIKs from the central registry
to this desk and copies the leases into the desk's local registry; ``sync`` pushes the local registry's
changes to the central registry (``--dry-run`` shows what is pending).
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from ektp_card._cli.util import Ctx, ExitCode, FilePath, Finite, Word, fail

if TYPE_CHECKING:
    from ektp_card.desk.registry import Registry
    from ektp_card.desk.sync import SyncReport


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


_CENTRAL = click.option("--central", required=True, envvar="EKTP_CENTRAL_REGISTRY", metavar="URL",
                        help="The central registry: postgresql://... or a SQLite path"
                             " (env EKTP_CENTRAL_REGISTRY).")
_LOCAL = click.option("--local", "local_target", required=True, envvar="EKTP_REGISTRY", metavar="PATH",
                      help="This desk's own SQLite registry (env EKTP_REGISTRY).")
_DESK = click.option("--desk", "desk_id", envvar="EKTP_DESK", default=socket.gethostname, type=Word(100),
                     show_default="the host name", metavar="ID",
                     help="This desk's ID, recorded with every change (env EKTP_DESK).")
_ACTOR = click.option("--actor", envvar="EKTP_ACTOR", default=_login_name, show_default="the login name",
                      type=Word(100),
                      metavar="NAME", help="Who acts, recorded with every change (env EKTP_ACTOR).")


@contextmanager
def _open_both(local_target: str, central: str, *, new_local: bool) -> Iterator[tuple[Registry, Registry]]:
    """Both registries; the central one first (it must exist), then the local one, made when
    ``new_local`` and there is none yet (a desk's first lease)."""
    from ektp_card.desk.registry import open_registry

    if local_target.startswith(("postgresql://", "postgres://")):
        fail("--local is this desk's own SQLite registry, not a PostgreSQL URL", ExitCode.USAGE)
    with ExitStack() as stack:
        remote = stack.enter_context(open_registry(central, create=False))
        local = stack.enter_context(open_registry(local_target, create=new_local))
        yield local, remote


@click.command()
@click.argument("nik_file", type=FilePath(dir_okay=False), metavar="NIK_FILE")
@_CENTRAL
@_LOCAL
@click.option("--ttl", "ttl_hours", type=Finite(min=0, min_open=True, max=24 * 366), required=True,
              metavar="HOURS", help="How long the leases hold.")
@_DESK
@_ACTOR
@click.pass_obj
def lease(
    obj: Ctx, nik_file: str, central: str, local_target: str, ttl_hours: float, desk_id: str, actor: str
) -> None:
    """Lease the NIKs of NIK_FILE from the central registry to this desk for --ttl HOURS.

    NIK_FILE is a batch file (.csv with a nik column, .jsonl with a nik key) or one NIK per line. While
    a lease holds, no other desk can issue its NIK; this desk's local registry then issues only leased
    NIKs. Exit 0 when every NIK was leased, 9 when some were refused (listed), 15 on a registry error.
    """
    from ektp_card.desk import sync as desk_sync

    niks = desk_sync.read_nik_file(nik_file)
    if not niks:
        fail(f"{nik_file} names no NIK", ExitCode.USAGE)
    with _open_both(local_target, central, new_local=True) as (local, remote):
        result = desk_sync.lease(local, remote, niks, desk=desk_id, actor=actor,
                                 ttl=timedelta(hours=ttl_hours))
    expires = max((g.expires_at for g in result.granted), default=None)
    if obj.json:
        obj.emit({
            "desk": desk_id, "expires_at": expires, "granted": [g.nik for g in result.granted],
            "refused": [{"nik": r.nik, "reason": r.reason} for r in result.refused],
        })
    else:
        _print_lease(obj, desk_id, len(result.granted), expires, [(r.nik, r.reason) for r in result.refused])
    if result.refused:
        raise click.exceptions.Exit(int(ExitCode.PARTIAL))


def _print_lease(
    obj: Ctx, desk: str, granted: int, expires: str | None, refused: list[tuple[str, str]]
) -> None:
    from rich.markup import escape
    from rich.table import Table

    until = f" until {expires}" if expires else ""
    obj.out.print(f"Leased {granted} NIK(s) to desk {escape(desk)}{until}; refused {len(refused)}.")
    if refused:
        table = Table(title="Refused")
        table.add_column("NIK")
        table.add_column("reason")
        for nik, reason in refused:
            table.add_row(nik, reason)
        obj.out.print(table)


@click.command()
@_CENTRAL
@_LOCAL
@click.option("--dry-run", is_flag=True, help="Only show what is pending; change nothing.")
@click.pass_obj
def sync(obj: Ctx, central: str, local_target: str, dry_run: bool) -> None:
    """Push this desk's local registry changes to the central registry.

    Safe to run any number of times and after any interruption: each local change is taken once.
    A card whose NIK got a live card elsewhere meanwhile is refused and listed. Exit 0 when everything
    was taken, 9 when the central registry refused some changes, 15 on a registry error.
    """
    from ektp_card.desk import sync as desk_sync

    with _open_both(local_target, central, new_local=False) as (local, remote):
        report = desk_sync.sync(local, remote, dry_run=dry_run)
    if obj.json:
        obj.emit(_report_json(report))
    else:
        _print_report(obj, report)
    if report.refused:
        raise click.exceptions.Exit(int(ExitCode.PARTIAL))


def _report_json(report: SyncReport) -> dict[str, Any]:
    from ektp_card.desk.registry import SyncOutcome

    order = ("pending", "applied", "recorded", "refused", "already")
    return {
        "origin": report.origin, "desk": report.desk, "dry_run": report.dry_run,
        "counts": {o: report.count(SyncOutcome(o)) for o in order if report.count(SyncOutcome(o))},
        "leases_released": report.leases_released,
        "entries": [
            {"local_seq": i.local_seq, "at": i.at, "actor": i.actor, "action": i.action, "serial": i.serial,
             "outcome": i.outcome, "reason": i.reason}
            for i in report.items
        ],
    }


def _print_report(obj: Ctx, report: SyncReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ektp_card.desk.registry import SyncOutcome

    if not report.items:
        obj.out.print("Nothing to sync: the central registry has every change of this desk.")
        return
    title = "Pending changes (dry run)" if report.dry_run else "Synced changes"
    table = Table(title=title)
    for column in ("seq", "at", "actor", "action", "serial", "outcome", "reason"):
        table.add_column(column)
    for i in report.items:
        table.add_row(str(i.local_seq), i.at, escape(i.actor), escape(i.action), escape(i.serial or ""),
                      i.outcome, escape(i.reason or ""))
    obj.out.print(table)
    if report.dry_run:
        obj.out.print(f"{len(report.items)} change(s) pending.")
    else:
        count = report.count
        obj.out.print(
            f"applied {count(SyncOutcome.APPLIED)}, recorded {count(SyncOutcome.RECORDED)}, "
            f"refused {count(SyncOutcome.REFUSED)}, already synced {count(SyncOutcome.ALREADY)}; "
            f"leases used up {report.leases_released}."
        )
