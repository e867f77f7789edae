"""Authenticate to a card and read its files: the terminal's side of an inspection.

The steps, as ICAO Doc 9303-11 section 4.2 (chip access procedure) orders them::

    SELECT MF -> READ EF.CardAccess, EF.ATR/INFO (plain, free to read)
      -> PACE with the strongest PACEInfo this library runs: the CAN, the PIN or the MRZ; CAN then
         PIN when both are given (the CAN's session resumes a suspended PIN, BSI TR-03110-2)
      -> or BAC with the MRZ, when the card has no EF.CardAccess, offers no PACE this library runs,
         or has no MRZ password for PACE (ICAO passports before PACE)
      -> SELECT the application -> READ BINARY each file, by short EF identifier where it has one

File names follow ICAO Doc 9303-10 section 4 (EF.COM, EF.SOD and DG1-DG16 in the eMRTD application
A0000002471001; EF.CardAccess, EF.CardSecurity, EF.ATR/INFO and EF.DIR under the MF) and the demo
application of :mod:`ektp_card.virtual.demo`.

Passwords live in :class:`Credentials`, whose ``repr`` names only their types; nothing here logs
them or puts them in a message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ektp_card.apdu.iso7816 import EF_ATR_INFO_FID, EF_ATR_INFO_SFI, CardInfo, Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW
from ektp_card.apdu.transport import Transport
from ektp_card.crypto.bac import bac
from ektp_card.crypto.kdf import Cipher
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.crypto.pace import PaceParameters, PaceResult, Password, perform_pace
from ektp_card.crypto.sm import max_short_data
from ektp_card.errors import (
    ApduError,
    CardFileNotFoundError,
    InsNotSupportedError,
    LdsFormatError,
    PaceError,
    ReferencedDataNotFoundError,
    TlvError,
)
from ektp_card.lds.card_access import EF_CARD_ACCESS_FID, EF_CARD_ACCESS_SFI, CardAccess
from ektp_card.virtual.demo import (
    DEMO_AID,
    EF_LARGE_SFI,
    EF_PUBLIC_SFI,
    EF_SCRATCH_SFI,
    EF_SECRET_SFI,
)
from ektp_card.virtual.profiles import EF_PRIVATE_SFI

log = logging.getLogger("ektp_card.access")

#: The eMRTD application (ICAO Doc 9303-10 section 3.6.1).
EMRTD_AID = bytes.fromhex("A0000002471001")


# --- files and applications ------------------------------------------------------------------------


@dataclass(frozen=True)
class FileRef:
    """A transparent EF to read: under the MF or in the selected application, by short EF
    identifier (preferred: one command) or by file identifier."""

    name: str
    sfi: int | None = None
    fid: int | None = None
    in_mf: bool = False

    def __post_init__(self) -> None:
        if self.sfi is None and self.fid is None:
            raise ValueError("a file needs a short EF identifier or a file identifier")

    @property
    def label(self) -> str:
        """How the file is addressed, e.g. ``MF/SFI 1C`` or ``FID 0105``."""
        where = "MF/" if self.in_mf else ""
        return f"{where}SFI {self.sfi:02X}" if self.sfi is not None else f"{where}FID {self.fid:04X}"


@dataclass(frozen=True)
class Application:
    """A card application: its AID, the files it names and what to read when none is asked for."""

    name: str
    aid: bytes
    files: tuple[FileRef, ...] = ()
    default_files: tuple[str, ...] = ()

    def file(self, name: str) -> FileRef | None:
        key = _normalize(name)
        return next((f for f in self.files if _normalize(f.name) == key), None)


#: Files under the MF: EF.CardAccess and EF.CardSecurity (ICAO Doc 9303-10 section 3.11), EF.ATR/INFO
#: and EF.DIR (ISO/IEC 7816-4 section 8.2.1.1).
MF_FILES = (
    FileRef("CardAccess", EF_CARD_ACCESS_SFI, EF_CARD_ACCESS_FID, in_mf=True),
    FileRef("CardSecurity", 0x1D, 0x011D, in_mf=True),
    FileRef("ATRINFO", EF_ATR_INFO_SFI, EF_ATR_INFO_FID, in_mf=True),
    FileRef("DIR", 0x1E, 0x2F00, in_mf=True),
)
#: ICAO Doc 9303-10 section 4.6: EF.COM 011E / SFI 1E, EF.SOD 011D / SFI 1D, DGn 01nn / SFI n.
EMRTD = Application(
    "eMRTD",
    EMRTD_AID,
    (
        FileRef("COM", 0x1E, 0x011E),
        FileRef("SOD", 0x1D, 0x011D),
        *(FileRef(f"DG{n}", n, 0x0100 + n) for n in range(1, 17)),
    ),
    ("COM", "DG1"),
)
#: The demo application of :func:`ektp_card.virtual.demo_card` and its protected variant.
DEMO = Application(
    "demo",
    DEMO_AID,
    (
        FileRef("PUBLIC", EF_PUBLIC_SFI, 0x0101),
        FileRef("SECRET", EF_SECRET_SFI, 0x0102),
        FileRef("LARGE", EF_LARGE_SFI, 0x0103),
        FileRef("SCRATCH", EF_SCRATCH_SFI, 0x0104),
        FileRef("PRIVATE", EF_PRIVATE_SFI, 0x0105),
    ),
    ("PUBLIC",),
)
#: The applications tried, in this order, when none is named.
APPLICATIONS = (EMRTD, DEMO)

_ALIASES = {"ATR": "ATRINFO"}
_HEX_ID = re.compile(r"[0-9A-Fa-f]{1,2}|[0-9A-Fa-f]{4}")


def _normalize(name: str) -> str:
    key = name.strip().upper()
    if key.startswith("EF."):
        key = key[3:]
    key = re.sub(r"[./_ -]", "", key)
    return _ALIASES.get(key, key)


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
    key = _normalize(text)
    for ref in MF_FILES:
        if _normalize(ref.name) == key:
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
    return all(_normalize(ref.name) != _normalize(text) for ref in MF_FILES)


# --- passwords ---------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Credentials:
    """What the terminal knows: a CAN, a PIN (alone, or with the CAN to resume a suspended PIN),
    or the MRZ. ``repr`` shows only which are present."""

    can: str | None = field(default=None, repr=False)
    pin: str | None = field(default=None, repr=False)
    mrz: MrzInfo | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mrz is not None and (self.can is not None or self.pin is not None):
            raise ValueError("give the MRZ alone, or the CAN and / or the PIN")
        for kind, value in (("CAN", self.can), ("PIN", self.pin)):
            if value is not None and not value:
                raise ValueError(f"the {kind} is empty")

    def __repr__(self) -> str:
        return f"Credentials({', '.join(self.kinds) or 'none'})"

    def __bool__(self) -> bool:
        return bool(self.kinds)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The password types present, in the order PACE uses them."""
        present = (("CAN", self.can), ("PIN", self.pin), ("MRZ", self.mrz))
        return tuple(kind for kind, value in present if value is not None)


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
class AccessResult:
    """How the session was opened: ``protocol`` is "PACE", "BAC" or "none"; ``passwords`` the
    types proven, in order; ``parameters`` the PACE protocol and curve."""

    protocol: str
    passwords: tuple[str, ...] = ()
    parameters: PaceParameters | None = None
    cipher: Cipher | None = None


@dataclass(frozen=True)
class FileContent:
    """One file read."""

    ref: FileRef
    data: bytes

    def decoded(self) -> CardAccess | CardInfo | None:
        """The parsed content where this library knows the file (EF.CardAccess, EF.ATR/INFO), else
        ``None``; :class:`LdsFormatError` or :class:`TlvError` if it is malformed."""
        if self.ref.in_mf and self.ref.sfi == EF_CARD_ACCESS_SFI:
            return CardAccess.decode(self.data)
        if self.ref.in_mf and self.ref.sfi == EF_ATR_INFO_SFI:
            return CardInfo.parse(self.data)
        return None


@dataclass(frozen=True)
class ReadResult:
    access: AccessResult
    application: Application | None
    card_access: CardAccess | None
    card_info: CardInfo | None
    files: tuple[FileContent, ...]


# --- the session -------------------------------------------------------------------------------------

_MF = "MF"
#: Bytes a protected response adds around DO87 content, besides the padded data: tag 87 and a
#: three-byte length, the padding-content indicator, DO99 (4), DO8E (10) and SW1-SW2.
_SM_RESPONSE_OVERHEAD = 4 + 1 + 4 + 10 + 2


def protected_read_size(cipher: Cipher, card_info: CardInfo | None, extended: bool) -> int:
    """The largest plain Ne for one READ BINARY under secure messaging: what fits a short response
    (223 bytes with AES, 231 with 3DES), or, with extended length, what fits the card's largest
    response APDU (EF.ATR/INFO DO 7F66) once protected."""
    if not extended or card_info is None or not card_info.extended_length:
        return max_short_data(cipher)
    largest = card_info.max_response_apdu or 65538
    padded = (largest - _SM_RESPONSE_OVERHEAD) // cipher.block_size * cipher.block_size
    return max(max_short_data(cipher), min(65536, padded - 1))


class AccessSession:
    """One inspection of a card over ``transport``: :meth:`discover`, :meth:`authenticate`,
    :meth:`select_application`, then :meth:`read`.

    ``extended`` ``None`` uses extended length when EF.ATR/INFO says the card supports it;
    ``False`` keeps to short APDUs.
    """

    def __init__(self, transport: Transport, *, extended: bool | None = None) -> None:
        self.protocol = ApduProtocol(transport)
        self.iso = Iso7816Session(self.protocol)
        self._extended = extended
        self.card_access: CardAccess | None = None
        self.card_info: CardInfo | None = None
        self.application: Application | None = None
        self._location: str | None = None
        self._cache: dict[int, bytes] = {}
        #: The last PACE run by :meth:`authenticate` (its ``id_picc`` is what Terminal Authentication signs).
        self.pace: PaceResult | None = None

    def discover(self) -> None:
        """Select the MF and read what a card offers before authentication: EF.CardAccess (PACE)
        and EF.ATR/INFO (buffer sizes). Either may be missing."""
        self.iso.select_mf()
        self._location = _MF
        data = self._optional(EF_CARD_ACCESS_SFI)
        if data is not None:
            try:
                self.card_access = CardAccess.decode(data)
            except LdsFormatError as exc:
                log.warning("EF.CardAccess is malformed (%s); PACE is not possible", exc)
        data = self._optional(EF_ATR_INFO_SFI)
        if data is not None:
            try:
                self.card_info = CardInfo.parse(data)
            except TlvError as exc:
                log.warning("EF.ATR/INFO is malformed (%s); short APDUs only", exc)
        info = self.card_info
        if info is not None and self._extended is not False and info.extended_length:
            self.protocol.extended = True
            self.iso.max_read = info.max_read

    def _optional(self, sfi: int) -> bytes | None:
        try:
            data = self.iso.read_file(sfi=sfi)
        except ApduError as exc:
            # Absent (6A82), or a card that does not read by SFI under the MF: both mean "not offered".
            log.debug("MF file SFI %02X not readable: %04X", sfi, exc.sw)
            return None
        self._cache[sfi] = data
        return data

    def authenticate(
        self, credentials: Credentials, applications: Sequence[Application] = APPLICATIONS
    ) -> AccessResult:
        """Run PACE (or BAC, see the module docstring) with ``credentials``; nothing without them.

        Raises :class:`PacePasswordError` for a refused PACE password, :class:`PaceError` when the
        card offers no PACE this library runs, :class:`VerificationFailedError` for a refused MRZ
        in BAC. ``applications`` are the ones to select before BAC, which runs inside the
        application on ICAO passports.
        """
        if not credentials:
            return AccessResult("none")
        mrz = credentials.mrz
        if mrz is not None:
            try:
                pace = self._offered_pace()
            except PaceError:
                return self._bac(mrz, applications)
            try:
                return self._pace([Password.from_mrz_information(mrz.mrz_information)], pace)
            except ReferencedDataNotFoundError:
                log.info("the card has no MRZ password for PACE; trying BAC")
                return self._bac(mrz, applications)
        passwords = []
        if credentials.can is not None:
            passwords.append(Password.can(credentials.can))
        if credentials.pin is not None:
            passwords.append(Password.pin(credentials.pin))
        return self._pace(passwords, self._offered_pace())

    def _offered_pace(self) -> tuple[PaceParameters, bool]:
        """The PACE to run and whether to name its parameter ID; :class:`PaceError` if none."""
        if self.card_access is None:
            raise PaceError("the card does not offer PACE: it has no readable EF.CardAccess")
        return self.card_access.choose_pace()

    def _pace(self, passwords: list[Password], pace: tuple[PaceParameters, bool]) -> AccessResult:
        parameters, send_id = pace
        if self._location != _MF:
            self.iso.select_mf()
            self._location = _MF
        for password in passwords:
            self.pace = perform_pace(self.protocol, password, parameters, send_parameter_id=send_id)
        self._fit_reads(parameters.cipher)
        return AccessResult("PACE", tuple(p.type.name for p in passwords), parameters, parameters.cipher)

    def _bac(self, mrz: MrzInfo, applications: Sequence[Application]) -> AccessResult:
        # ICAO Doc 9303-10: the terminal selects the eMRTD application, then runs BAC in it.
        if applications and self.application is None:
            self.select_application(applications)
        try:
            bac(self.protocol, mrz)
        except InsNotSupportedError as exc:
            what = "PACE, but not with the MRZ, and no BAC" if self.card_access else "neither PACE nor BAC"
            raise InsNotSupportedError(exc.sw, exc.data, f"the card offers {what}") from None
        self._fit_reads(Cipher.TDES)
        return AccessResult("BAC", ("MRZ",), None, Cipher.TDES)

    def _fit_reads(self, cipher: Cipher) -> None:
        self.iso.max_read = protected_read_size(cipher, self.card_info, self.protocol.extended)

    def select_application(self, applications: Sequence[Application]) -> Application | None:
        """Select the first of ``applications`` the card has; ``None`` if it has none of them."""
        for application in applications:
            try:
                self.iso.select_aid(application.aid)
            except CardFileNotFoundError:
                self._location = None
                continue
            self.application = application
            self._location = application.name
            log.debug("selected the %s application", application.name)
            return application
        return None

    def read(self, ref: FileRef) -> bytes:
        """The whole content of ``ref``; the :class:`ApduError` of the card's refusal, naming the file."""
        if ref.in_mf and ref.sfi is not None and ref.sfi in self._cache:
            return self._cache[ref.sfi]
        try:
            if ref.in_mf:
                if self._location != _MF:
                    self.iso.select_mf()
                    self._location = _MF
            else:
                application = self.application
                if application is None:
                    raise CardFileNotFoundError(
                        SW.FILE_NOT_FOUND, message=f"{ref.name}: no application is selected"
                    )
                if self._location != application.name:
                    self.iso.select_aid(application.aid)
                    self._location = application.name
            if ref.sfi is not None:
                return self.iso.read_file(sfi=ref.sfi)
            return self.iso.read_file(fid=ref.fid)
        except ApduError as exc:
            # Every ApduError subclass a READ BINARY or SELECT maps to takes (sw, data, message).
            raise type(exc)(exc.sw, exc.data, f"reading {ref.name}: {exc}") from None

    @property
    def mf_files(self) -> tuple[FileRef, ...]:
        """The MF files :meth:`discover` found."""
        return tuple(ref for ref in MF_FILES if ref.sfi in self._cache)


def read_card(
    transport: Transport,
    credentials: Credentials,
    files: Sequence[str] = (),
    *,
    application: Application | None = None,
    extended: bool | None = None,
) -> ReadResult:
    """Discover, authenticate, select the application and read ``files`` (see :func:`parse_file`;
    none: the application's default files, or the MF's files when there is no application).

    ``application`` ``None`` tries the known applications that name all of ``files`` (a card with
    none of them then only shows its MF files); a given ``application`` must be on the card.
    :class:`ValueError` for a file spec that names nothing, before any command is sent.
    """
    candidates = (application,) if application is not None else candidate_applications(files)
    for spec in files:  # a spec that names nothing fails before any command is sent
        parse_file(spec, candidates[0])
    session = AccessSession(transport, extended=extended)
    session.discover()
    access = session.authenticate(credentials, candidates)
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
