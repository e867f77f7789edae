"""Read files from a card by name: the library behind ``ektp read``.

A file is named by an MF file's name (``CardAccess``, ``ATR/INFO``...), a name of a known application
(:mod:`ektp_card.lds.profile`: ``DG1``, ``EF.SOD``, ``PUBLIC``...), a short EF identifier or a file
identifier; :func:`read_card` opens a :class:`~ektp_card.session.card.CardSession`, authenticates with
what the terminal knows and reads them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ektp_card.apdu.iso7816 import EF_ATR_INFO_SFI, CardInfo
from ektp_card.apdu.sw import SW
from ektp_card.apdu.transport import Transport
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.crypto.pace import MappingType
from ektp_card.errors import CardFileNotFoundError
from ektp_card.lds.card_access import EF_CARD_ACCESS_SFI, CardAccess
from ektp_card.lds.profile import MF_FILES, Application, FileRef, file_key
from ektp_card.session.card import APPLICATIONS, AccessResult, CardSession, Credentials

if TYPE_CHECKING:
    # Decoding DG7 pulls in the LDS record codecs; a read that shows no DG7 does without them.
    from ektp_card.lds.images import DisplayedSignature

_HEX_ID = re.compile(r"[0-9A-Fa-f]{1,2}|[0-9A-Fa-f]{4}")


def _by_id(text: str, in_mf: bool) -> FileRef | None:
    if not _HEX_ID.fullmatch(text):
        return None
    value = int(text, 16)
    prefix = "MF/" if in_mf else ""
    if len(text) <= 2:
        if not 1 <= value <= 30:  # ISO/IEC 7816-4 section 7.1.1: SFIs 1 to 30
            raise ValueError(f"{text!r}: a short EF identifier is 01 to 1E")
        return FileRef(f"{prefix}SFI {value:02X}", sfi=value, in_mf=in_mf)
    if value in (0x0000, 0x3F00, 0x3FFF, 0xFFFF):
        raise ValueError(f"{text!r} is a reserved file identifier")
    return FileRef(f"{prefix}FID {value:04X}", fid=value, in_mf=in_mf)


def parse_file(spec: str, application: Application | None = None) -> FileRef:
    """The file ``spec`` names: an MF file's name (``CardAccess``, ``ATR/INFO``, ``CardSecurity``,
    ``DIR``), a name of ``application`` (``DG1``, ``EF.SOD``, ``PUBLIC``...), a short EF
    identifier (1-2 hex digits) or file identifier (4 hex digits) in the application, or either
    after ``MF/`` for a file under the MF. :class:`ValueError` if it names nothing."""
    text = spec.strip()
    if text.upper().startswith(("MF/", "MF:")):
        ref = _by_id(text[3:], in_mf=True)
        if ref is None:
            raise ValueError(f"{spec!r}: after MF/ give a short EF identifier or a file identifier in hex")
        return ref
    key = file_key(text)
    for ref in MF_FILES:
        if file_key(ref.name) == key:
            return ref
    if application is not None:
        named = application.file(text)
        if named is not None:
            return named
    ref = _by_id(text, in_mf=False)
    if ref is not None:
        return ref
    owners = [app.name for app in APPLICATIONS if app.file(text) is not None]
    if owners:
        raise ValueError(f"{spec!r} is a file of the {' or '.join(owners)} application, not of this one")
    raise _unknown(spec)


def _unknown(spec: str) -> ValueError:
    return ValueError(f"unknown file {spec!r}: give a name, a short EF identifier or a file identifier")


def candidate_applications(specs: Sequence[str]) -> tuple[Application, ...]:
    """The known applications that name every named file of ``specs`` (identifiers and MF files fit
    any); :class:`ValueError` when none does."""
    names = [s for s in specs if _needs_application_name(s)]
    for name in names:
        if all(app.file(name) is None for app in APPLICATIONS):
            raise _unknown(name)
    fitting = tuple(app for app in APPLICATIONS if all(app.file(n) is not None for n in names))
    if not fitting:
        raise ValueError(f"no single application has all of {', '.join(names)}")
    return fitting


def _needs_application_name(spec: str) -> bool:
    text = spec.strip()
    if text.upper().startswith(("MF/", "MF:")) or _HEX_ID.fullmatch(text):
        return False
    return all(file_key(ref.name) != file_key(text) for ref in MF_FILES)


# --- passwords ---------------------------------------------------------------------------------------


def parse_mrz(text: str) -> MrzInfo:
    """A whole machine readable zone (TD1, TD2 or TD3; check digits verified), or its three key
    fields ``DOCUMENT,BIRTH,EXPIRY`` (dates YYMMDD). :class:`MrzError` if malformed."""
    if "," in text:
        parts = [part.strip() for part in text.split(",")]
        if len(parts) == 3:
            return MrzInfo(parts[0], parts[1], parts[2])
    return MrzInfo.from_mrz(text)


# --- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileContent:
    """One file read."""

    ref: FileRef
    data: bytes

    def decoded(self) -> CardAccess | CardInfo | tuple[DisplayedSignature, ...] | None:
        """The parsed content where this library knows the file (EF.CardAccess, EF.ATR/INFO, DG7's
        displayed signatures), else ``None``; :class:`LdsFormatError` or :class:`TlvError` if it is
        malformed."""
        if self.ref.in_mf and self.ref.sfi == EF_CARD_ACCESS_SFI:
            return CardAccess.decode(self.data)
        if self.ref.in_mf and self.ref.sfi == EF_ATR_INFO_SFI:
            return CardInfo.parse(self.data)
        if not self.ref.in_mf and self.ref.name == "DG7":
            from ektp_card.lds.images import displayed_signatures

            return displayed_signatures(self.data)
        return None


@dataclass(frozen=True)
class ReadResult:
    access: AccessResult
    application: Application | None
    card_access: CardAccess | None
    card_info: CardInfo | None
    files: tuple[FileContent, ...]


# --- reading -----------------------------------------------------------------------------------------


def read_card(
    transport: Transport,
    credentials: Credentials,
    files: Sequence[str] = (),
    *,
    application: Application | None = None,
    extended: bool | None = None,
    pace_mapping: MappingType | None = None,
) -> ReadResult:
    """Discover, authenticate, select the application and read ``files`` (see :func:`parse_file`;
    none: the application's default files, or the MF's files when there is no application).

    ``application`` ``None`` tries the known applications that name all of ``files`` (a card with
    none of them then only shows its MF files); a given ``application`` must be on the card.
    :class:`ValueError` for a file spec that names nothing, before any command is sent.
    ``pace_mapping`` keeps PACE to one mapping (``None``: the strongest the card offers).
    """
    candidates = (application,) if application is not None else candidate_applications(files)
    for spec in files:  # a spec that names nothing fails before any command is sent
        parse_file(spec, candidates[0])
    session = CardSession(transport, extended=extended)
    session.discover()
    access = session.authenticate(credentials, candidates, mapping=pace_mapping)
    selected = session.application or session.select_application(candidates)
    if files:
        refs = [parse_file(spec, selected or candidates[0]) for spec in files]
    elif selected is not None:
        refs = [ref for name in selected.default_files if (ref := selected.file(name)) is not None]
    else:
        refs = list(session.mf_files)
    if selected is None and (application is not None or any(not ref.in_mf for ref in refs)):
        names = " or ".join(app.name for app in candidates)
        raise CardFileNotFoundError(SW.FILE_NOT_FOUND, message=f"the card has no {names} application")
    contents = tuple(FileContent(ref, session.read(ref)) for ref in refs)
    return ReadResult(access, selected, session.card_access, session.card_info, contents)
