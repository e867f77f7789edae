"""ektp read: authenticate (PACE or BAC) and dump files over the protected channel."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ektp_card._cli.options import card_source_options, make_source, pace_mapping_option
from ektp_card._cli.options import pace_mapping as mapping_of
from ektp_card._cli.passwords import card_password, prompt_if_asked
from ektp_card._cli.util import Ctx, ExitCode, FilePath, about, check_output, explain, fail, parse_hex
from ektp_card.errors import MrzError, PacePasswordError, SecurityStatusNotSatisfiedError

if TYPE_CHECKING:
    from ektp_card.access import FileContent, ReadResult
    from ektp_card.apdu.iso7816 import CardInfo
    from ektp_card.lds.card_access import CardAccess
    from ektp_card.lds.images import DisplayedSignature

    #: What ``--format decoded`` shows of a file: EF.CardAccess, EF.ATR/INFO, DG7's signatures.
    Decoded = CardAccess | CardInfo | tuple[DisplayedSignature, ...]
    from ektp_card.lds.profile import Application
    from ektp_card.session.card import AccessResult

FORMATS = ("hex", "decoded", "raw")


@click.command()
@card_source_options
@click.option("--can", envvar="EKTP_CAN", metavar="CAN|-",
              help="Card access number for PACE; '-' asks for it (hidden). Default: $EKTP_CAN.")
@click.option("--pin", envvar="EKTP_PIN", metavar="PIN|-",
              help="PIN for PACE; with --can, PACE-CAN runs first (resumes a suspended PIN). "
                   "'-' asks for it. Default: $EKTP_PIN.")
@click.option("--mrz", envvar="EKTP_MRZ", metavar="MRZ|-",
              help="For PACE-MRZ or BAC: the whole MRZ, or DOCUMENT,BIRTH,EXPIRY (dates YYMMDD); "
                   "'-' asks for it. Default: $EKTP_MRZ.")
@click.option("--app", "app_name", default="auto", show_default=True, metavar="auto|emrtd|demo|AID",
              help="Application to read from: the eMRTD or demo one, or an AID in hex.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="hex", show_default=True,
              help="hex dump, decoded where known (EF.CardAccess, EF.ATR/INFO, DG7's signatures), or raw "
                   "bytes (one FILE).")
@click.option("--out", type=FilePath(path_type=Path, file_okay=False),
              help="Write each file's bytes to DIR/NAME.bin instead of printing them.")
@click.option("--short", is_flag=True, help="Short APDUs only, even when the card offers extended length.")
@pace_mapping_option
@click.argument("files", nargs=-1, metavar="[FILE...]")
@click.pass_obj
def read(
    obj: Ctx, reader: str | None, nfc: str | None, virtual: Path | None, timeout: float,
    can: str | None, pin: str | None, mrz: str | None, app_name: str, fmt: str, out: Path | None,
    short: bool, pace_mapping: str, files: tuple[str, ...],
) -> None:
    """Authenticate with the CAN, PIN or MRZ and read FILEs over secure messaging.

    A FILE is a name (CardAccess, ATR/INFO, CardSecurity, DIR under the MF; COM, SOD, DG1-DG16 in
    the eMRTD application; PUBLIC, LARGE, SCRATCH, PRIVATE in the demo one), a short EF identifier
    (1-2 hex digits) or a file identifier (4 hex digits) in the application, or MF/ID. Without
    FILEs the application's usual files are read. Without a password nothing is authenticated.
    """
    from ektp_card.access import candidate_applications, parse_file, parse_mrz, read_card
    from ektp_card.device import open_card
    from ektp_card.session.card import Credentials

    if mrz is not None and (can is not None or pin is not None):
        fail("give --mrz alone, or --can and / or --pin", ExitCode.USAGE)
    if fmt == "raw" and out is None and len(files) != 1:
        fail("--format raw without --out writes one FILE to stdout: name exactly one", ExitCode.USAGE)
    if out is not None:
        check_output(out, folder=True)
    application = _application(app_name)
    try:
        candidates = (application,) if application is not None else candidate_applications(files)
        for spec in files:
            parse_file(spec, candidates[0])
    except ValueError as e:
        fail(str(e), ExitCode.USAGE)
    can = card_password(can, "CAN")
    pin = card_password(pin, "PIN")
    mrz = prompt_if_asked(mrz, "MRZ")
    try:
        with about("--mrz", MrzError):
            credentials = Credentials(can=can, pin=pin, mrz=None if mrz is None else parse_mrz(mrz))
    except ValueError as e:
        fail(str(e), ExitCode.USAGE)
    source = make_source(reader, nfc, virtual, timeout)
    try:
        with open_card(source) as transport:
            result = read_card(
                transport, credentials, files, application=application, extended=False if short else None,
                pace_mapping=mapping_of(pace_mapping),
            )
    except PacePasswordError as e:
        if e.password == "PIN" and e.retries == 1 and credentials.can is None:  # noqa: S105 - a type
            raise explain(e, f"{e} (give --can as well to resume it)") from e
        raise
    except SecurityStatusNotSatisfiedError as e:
        if not credentials:
            raise explain(e, f"{e} (authenticate with --can, --pin or --mrz)") from e
        raise
    _render(obj, result, fmt, out)


def _application(name: str) -> Application | None:
    from ektp_card.lds.profile import DEMO, EMRTD, Application

    key = name.strip().lower()
    if key == "auto":
        return None
    if key == "emrtd":
        return EMRTD
    if key == "demo":
        return DEMO
    aid = parse_hex(name, "--app")
    if not 5 <= len(aid) <= 16:
        fail("--app: an AID has 5 to 16 bytes", ExitCode.USAGE)
    return Application(aid.hex().upper(), aid)


# --- output ----------------------------------------------------------------------------------------


def _render(obj: Ctx, result: ReadResult, fmt: str, out: Path | None) -> None:
    paths: dict[int, Path] = {}
    if out is not None:
        from ektp_card.files import write_files

        for i, content in enumerate(result.files):
            paths[i] = out / f"{_safe(content.ref.name)}.bin"
        # Personal data: readable by the owner only, every file or none (the folder too when made here).
        write_files({paths[i]: content.data for i, content in enumerate(result.files)}, mode=0o600,
                    folder_mode=0o700)
    if obj.json:
        obj.emit({
            "access": _access_json(result.access),
            "application": None if result.application is None else {
                "name": result.application.name, "aid": result.application.aid.hex().upper(),
            },
            "files": [_file_json(content, paths.get(i)) for i, content in enumerate(result.files)],
        })
        return
    if fmt == "raw" and out is None:
        sys.stdout.buffer.write(result.files[0].data)
        sys.stdout.buffer.flush()
        return
    o = obj.out
    o.print(_access_line(result.access, result.application), markup=False)
    for i, content in enumerate(result.files):
        ref = content.ref
        head = f"{ref.name}{'' if ref.name == ref.label else f' ({ref.label})'}, {len(content.data)} bytes"
        if out is not None:
            o.print(f"{head} -> {paths[i]}", markup=False)
            continue
        o.print(head, markup=False)
        decoded, problem = _decode(content) if fmt == "decoded" else (None, None)
        lines = _decoded_lines(decoded) if decoded is not None else _hex_lines(content.data)
        if problem is not None:
            lines.insert(0, f"not decoded: {problem}")
        for line in lines:
            o.print(f"  {line}", markup=False)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name.replace("/", "-"))


def _access_line(access: AccessResult, application: Application | None) -> str:
    if access.protocol == "none":
        text = "No authentication"
    else:
        text = f"{access.protocol} with the {' then the '.join(access.passwords)}"
        if access.parameters is not None:
            text += f" ({access.parameters.algorithm.name}, {access.parameters.curve.name})"
        elif access.cipher is not None:
            text += f" ({access.cipher.value[0]} secure messaging)"
    if application is not None:
        text += f"; application {application.name} ({application.aid.hex().upper()})"
    return text


def _access_json(access: AccessResult) -> dict[str, Any]:
    parameters = access.parameters
    return {
        "protocol": access.protocol,
        "passwords": list(access.passwords),
        "algorithm": None if parameters is None else parameters.algorithm.name,
        "parameter_id": None if parameters is None else parameters.parameter_id,
        "curve": None if parameters is None else parameters.curve.name,
        "cipher": None if access.cipher is None else access.cipher.value[0],
    }


def _file_json(content: FileContent, path: Path | None) -> dict[str, Any]:
    from ektp_card.apdu.iso7816 import CardInfo

    decoded, problem = _decode(content)
    entry: dict[str, Any] = {
        "name": content.ref.name, "address": content.ref.label, "size": len(content.data),
        "hex": content.data.hex().upper(), "decoded": None,
    }
    if problem is not None:
        entry["decode_error"] = problem
    if isinstance(decoded, tuple):
        entry["decoded"] = {"displayed_signatures": [s.to_json() for s in decoded]}
    elif isinstance(decoded, CardInfo):
        entry["decoded"] = {
            "command_chaining": decoded.command_chaining, "extended_length": decoded.extended_length,
            "max_command_apdu": decoded.max_command_apdu, "max_response_apdu": decoded.max_response_apdu,
        }
    elif decoded is not None:
        entry["decoded"] = _card_access_json(decoded)
    if path is not None:
        entry["path"] = str(path)
    return entry


def _decode(content: FileContent) -> tuple[Decoded | None, str | None]:
    """The decoded content, or why a file this library knows could not be decoded."""
    from ektp_card.errors import LdsFormatError, TlvError

    try:
        return content.decoded(), None
    except (LdsFormatError, TlvError) as e:
        return None, str(e)


def _card_access_json(access: CardAccess) -> dict[str, Any]:
    from ektp_card.lds.card_access import PaceInfo

    return {
        "pace_infos": [
            {"protocol": i.protocol, "name": i.algorithm.name, "version": i.version,
             "parameter_id": i.parameter_id, "curve": i.parameters.curve.name if i.supported else None,
             "supported": i.supported}
            for i in access.pace_infos
        ],
        "other_infos": [i.protocol for i in access.infos if not isinstance(i, PaceInfo)],
    }


def _decoded_lines(decoded: Decoded) -> list[str]:
    from ektp_card.apdu.iso7816 import CardInfo
    from ektp_card.lds.card_access import PaceInfo

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    if isinstance(decoded, tuple):
        return [f"displayed signature {n}  {s.describe()}" for n, s in enumerate(decoded, 1)]
    if isinstance(decoded, CardInfo):
        return [
            f"command chaining   {yes(decoded.command_chaining)}",
            f"extended length    {yes(decoded.extended_length)}",
            f"max command APDU   {decoded.max_command_apdu or '-'}",
            f"max response APDU  {decoded.max_response_apdu or '-'}",
        ]
    lines = []
    for info in decoded.infos:
        if isinstance(info, PaceInfo):
            curve = info.parameters.curve.name if info.supported else "not supported here"
            lines.append(
                f"PACEInfo  {info.algorithm.name}  version {info.version}  "
                f"parameter ID {info.parameter_id} ({curve})"
            )
        else:
            lines.append(f"SecurityInfo  {info.protocol} (not interpreted)")
    return lines or ["no SecurityInfos"]


def _hex_lines(data: bytes) -> list[str]:
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:04X}  {chunk.hex(' ').upper():<47}  {text}")
    return lines
