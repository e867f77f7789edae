"""ektp station: the clerk's, the desk's and the reviewer's screens in a browser, served on this machine."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ektp_card._cli.util import Ctx, ExitCode, FilePath, Word, check_output, fail, read_input
from ektp_card._cli.verify import terminal_options

if TYPE_CHECKING:
    from ektp_card._station.app import StationConfig
    from ektp_card._station.desk import DeskConfig


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--reader", metavar="NAME", help="A PC/SC reader (name or part of it) holding the cards.")
@click.option("--virtual-dir", type=FilePath(path_type=Path, file_okay=False), metavar="DIR",
              help="A folder of virtual card images: the station's virtual reader inserts one at a time.")
@click.option("--trust", "trust_dir", type=FilePath(path_type=Path, file_okay=False), metavar="DIR",
              help="Folder of trusted country signing CA certificates and CRLs.")
@click.option("--revocations", "revocations_file", type=FilePath(path_type=Path, dir_okay=False),
              metavar="FILE", help="A signed card revocation list: a card on it is shown as REVOKED.")
@terminal_options("Lets the clerk match the holder's fingerprint against DG3.")
@click.option("--registry", "registry_target", envvar="EKTP_REGISTRY", metavar="URL_OR_PATH",
              help="The desk registry (SQLite file or postgresql:// URL): turns on the desk's pages.")
@click.option("--desk", "desk_id", envvar="EKTP_DESK", default=socket.gethostname, type=Word(100),
              show_default="the host name", metavar="ID", help="This desk's ID in the registry.")
@click.option("--target", type=click.IntRange(1, 100_000), default=150, show_default=True,
              help="Cards per day the desk aims at (the report's target line).")
@click.option("--pki", "issuer_dir", type=FilePath(path_type=Path, file_okay=False), metavar="DIR",
              help="The issuer PKI folder: lets the desk issue batches (with the master key).")
@click.option("--master-key-file", type=FilePath(path_type=Path, dir_okay=False), metavar="FILE",
              help="The personalisation master key (default: hex in $EKTP_PERSO_MASTER_KEY).")
@click.option("--cvca", "cvca_path", type=FilePath(path_type=Path, dir_okay=False), metavar="FILE",
              help="The CVCA certificate issued chips trust for Terminal Authentication.")
@click.option("--ds-passphrase-env", "ds_env", default="EKTP_DS_PASSPHRASE", show_default=True,
              metavar="NAME",
              help="Environment variable with the document signer's key passphrase (else prompted now).")
@click.option("--work-dir", type=FilePath(path_type=Path, file_okay=False), default=Path("ektp-station"),
              show_default=True, metavar="DIR", help="Where the desk keeps uploaded batch files.")
@click.option("--demo", is_flag=True,
              help="A station with synthetic cards, a PKI and a terminal made now in a temporary folder "
                   "(or --demo-dir): nothing else to set up.")
@click.option("--demo-dir", type=FilePath(path_type=Path, file_okay=False), metavar="DIR",
              help="With --demo: make the synthetic office here and keep it.")
@click.option("--operator", default=lambda: os.environ.get("USER", "operator"), show_default="$USER",
              type=Word(100),
              help="Who runs the station: recorded with the station session in the registry's audit trail.")
@click.option("--host", default="127.0.0.1", show_default=True, type=Word(253),
              help="Address to listen on. Anything but loopback needs --tls-cert and --tls-key.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--tls-cert", type=FilePath(path_type=Path, dir_okay=False, exists=True), metavar="PEM")
@click.option("--tls-key", type=FilePath(path_type=Path, dir_okay=False, exists=True), metavar="PEM")
@click.pass_obj
def station(
    obj: Ctx, reader: str | None, virtual_dir: Path | None, trust_dir: Path | None,
    revocations_file: Path | None, terminal_chain: tuple[Path, ...], terminal_key: Path | None,
    terminal_pkcs11: str | None, terminal_token: str | None, terminal_key_label: str | None,
    terminal_pin_env: str, registry_target: str | None, desk_id: str, target: int, issuer_dir: Path | None,
    master_key_file: Path | None, cvca_path: Path | None, ds_env: str, work_dir: Path, demo: bool,
    demo_dir: Path | None, operator: str, host: str, port: int, tls_cert: Path | None, tls_key: Path | None,
) -> None:
    """Serve the station on HOST:PORT and print the address that opens it (with its one-time token).

    Key passphrases come from the environment or a prompt now, never through the browser. Stop with
    Ctrl-C. Exit 2 for options that do not fit together, 7 for a trust folder or key that cannot be used.
    """
    try:
        import uvicorn

        from ektp_card._station.app import build_app
        from ektp_card._station.security import Sessions
    except ImportError as exc:
        from ektp_card.errors import MissingExtraError

        raise MissingExtraError("the station", exc.name or "its web stack", "station") from None

    if (tls_cert is None) != (tls_key is None):
        fail("give --tls-cert and --tls-key together", ExitCode.USAGE)
    if tls_cert is not None and tls_key is not None:
        _check_tls(tls_cert, tls_key)
    if not _loopback(host):
        if tls_cert is None:
            fail(f"--host {host} is reachable from other machines: give --tls-cert and --tls-key",
                 ExitCode.USAGE)
    scratch = contextlib.ExitStack()
    if demo:
        if reader or virtual_dir or trust_dir or revocations_file or terminal_chain:
            fail("--demo makes its own cards, PKI and terminal: give it without --reader, --virtual-dir, "
                 "--trust, --revocations and the terminal options", ExitCode.USAGE)
        # Without --demo-dir the synthetic office goes when the station stops.
        folder = demo_dir or Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="ektp-station-")))
        config = _demo_config(folder, operator, target)
    else:
        if demo_dir is not None:
            fail("--demo-dir goes with --demo", ExitCode.USAGE)
        config = _config(obj, reader, virtual_dir, trust_dir, revocations_file, terminal_chain, terminal_key,
                         terminal_pkcs11, terminal_token, terminal_key_label, terminal_pin_env, operator,
                         secure=tls_cert is not None)
        if registry_target is not None:
            check_output(work_dir, folder=True)
            config = dataclasses.replace(config, desk=_desk_config(
                registry_target, desk_id, target, issuer_dir, master_key_file, cvca_path, ds_env, work_dir,
                reader, virtual_dir))
        elif issuer_dir is not None or master_key_file is not None:
            fail("--pki and --master-key-file issue cards at a desk: give --registry too", ExitCode.USAGE)
    sessions = Sessions()
    app = build_app(config, sessions)
    server = uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
        ssl_certfile=None if tls_cert is None else str(tls_cert),
        ssl_keyfile=None if tls_key is None else str(tls_key),
    ))

    # Bind first, so the address printed is the one listening (port 0 picks a free one).
    try:
        sock = _bind(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", ExitCode.USAGE)
    bound = sock.getsockname()[1]
    if not _loopback(host):
        # Said once every check has passed and the port is ours: a refused start stays one line.
        click.echo(f"WARNING: the station listens on {host}, reachable from other machines. Anyone with the "
                   "address and token can use it.", err=True)
    scheme = "https" if tls_cert is not None else "http"
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"ektp station: open {scheme}://{shown}:{bound}/open?token={sessions.token}")
    click.echo(f"Serving {config.slot.description}. Stop with Ctrl-C.", err=True)
    with scratch:
        try:
            server.run(sockets=[sock])
        finally:
            # A batch being issued stops after the card in hand: nothing is left half-issued.
            app.state.station.jobs.stop_all()


def _check_tls(cert: Path, key: Path) -> None:
    """The certificate and key must be usable now, not when the server starts to listen."""
    import ssl

    from ektp_card.files import CERTIFICATE_LIMIT, KEY_LIMIT

    read_input(cert, CERTIFICATE_LIMIT, "TLS certificate")  # a regular file of a certificate's size
    read_input(key, KEY_LIMIT, "TLS key")
    try:
        # No passphrase callback that could prompt: the server gets none either.
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key, password=lambda: b"")
    except (ssl.SSLError, OSError, ValueError) as e:
        fail(f"--tls-cert {cert} and --tls-key {key} cannot serve TLS: {e}", ExitCode.FILE)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off only on sockets that say they are TCP, and with Nagle on
    # every answer on a kept-alive connection waits ~40 ms for the browser's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listening before the address is printed: a browser opening it at once is queued, not refused.
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _config(
    obj: Ctx, reader: str | None, virtual_dir: Path | None, trust_dir: Path | None,
    revocations_file: Path | None, terminal_chain: tuple[Path, ...], terminal_key: Path | None,
    terminal_pkcs11: str | None, terminal_token: str | None, terminal_key_label: str | None,
    terminal_pin_env: str, operator: str,
    *, secure: bool,
) -> StationConfig:
    from ektp_card._cli.verify import _load_revocations, _load_trust, load_terminal, terminal_token_choice
    from ektp_card._station.app import StationConfig
    from ektp_card._station.slots import ReaderSlot, VirtualSlot

    if (reader is None) == (virtual_dir is None):
        fail("name the cards: --reader NAME or --virtual-dir DIR (or try --demo)", ExitCode.USAGE)
    if virtual_dir is not None and not virtual_dir.is_dir():
        fail(f"{virtual_dir}: no such folder", ExitCode.FILE)
    slot = VirtualSlot(virtual_dir) if virtual_dir is not None else ReaderSlot(str(reader))
    from ektp_card.pki.trust import TrustFolder

    trust = None if trust_dir is None else _load_trust(trust_dir, (), ())
    if revocations_file is not None and trust is None:
        fail("--revocations needs --trust: the list's signer must chain to a trusted CSCA", ExitCode.USAGE)
    revocations = None if revocations_file is None or trust is None else _load_revocations(
        revocations_file, trust, False)
    # Checked above as `ektp verify` checks it; from here on a changed folder is read again.
    folder = None if trust_dir is None else TrustFolder(trust_dir)
    hsm = terminal_token_choice(terminal_key, terminal_pkcs11, terminal_token, terminal_key_label,
                                terminal_pin_env)
    has_key = terminal_key is not None or hsm is not None
    if bool(terminal_chain) != has_key:
        fail("give --terminal-chain and --terminal-key (or --terminal-pkcs11) together", ExitCode.USAGE)
    terminal = load_terminal(terminal_chain, terminal_key, hsm) if has_key else None
    return StationConfig(slot, folder, terminal, revocations, operator=operator, secure_cookie=secure)


def _desk_config(
    registry_target: str, desk_id: str, target: int, issuer_dir: Path | None, master_key_file: Path | None,
    cvca_path: Path | None, ds_env: str, work_dir: Path, reader: str | None, virtual_dir: Path | None,
) -> DeskConfig:
    from ektp_card._cli.desk_cards import open_desk_registry
    from ektp_card._cli.desk_issue import _station as card_station
    from ektp_card._cli.personalize import document_signer, issuer_trust, load_trust_point, master_key
    from ektp_card._station.desk import DeskConfig
    from ektp_card.desk.batch import Issuance

    with open_desk_registry(registry_target, create=True):
        pass  # an unreachable or foreign registry fails now, not at the first page
    if issuer_dir is None:
        return DeskConfig(registry_target, work_dir, desk_id, target)
    key = master_key(master_key_file)
    if reader is not None:
        fail("issuing through a PC/SC reader from the station is not offered yet: use `ektp desk issue` "
             "with --reader, or --virtual-dir", ExitCode.USAGE)
    cards = card_station(None, virtual_dir, None, key)
    trust = issuer_trust(issuer_dir, require_crl=True)
    signer = document_signer(issuer_dir, ds_env, None, trust)
    cvca = load_trust_point(cvca_path) if cvca_path is not None else None
    issuance = Issuance(key, signer, trust, cvca_certificate=cvca)
    return DeskConfig(registry_target, work_dir, desk_id, target, issuance, cards)


def _demo_config(folder: Path, operator: str, target: int) -> StationConfig:
    from ektp_card._station.app import StationConfig
    from ektp_card._station.desk import DeskConfig
    from ektp_card._station.slots import VirtualSlot
    from ektp_card.desk.batch import Issuance, VirtualCardDir
    from ektp_card.pki.revocation import load_revocation_list
    from ektp_card.sandbox import SANDBOX_DESK, build_sandbox

    sandbox = build_sandbox(folder)
    slot = VirtualSlot(sandbox.cards_dir)
    slot.insert(sandbox.genuine.image.name)
    click.echo(f"Demo office in {sandbox.root} (synthetic): CAN of card {sandbox.genuine.serial} is "
               f"{sandbox.genuine.can}; the holder's finger is {sandbox.genuine.holder_capture}", err=True)
    revocations = load_revocation_list(sandbox.revocations.read_bytes(), sandbox.trust)
    issuance = Issuance(sandbox.master_key, sandbox.document_signer, sandbox.trust,
                        cvca_certificate=sandbox.cvca_certificate)
    desk = DeskConfig(str(sandbox.registry), sandbox.root / "station", SANDBOX_DESK, target, issuance,
                      VirtualCardDir(sandbox.cards_dir, sandbox.master_key))
    click.echo(f"Batch to upload at the desk: {sandbox.batch}", err=True)
    return StationConfig(slot, sandbox.trust, sandbox.terminal, revocations, operator=operator, demo=True,
                         desk=desk)
