"""A session with a card: what it offers before authentication, PACE or BAC, selecting an application
and reading its files. The terminal's side of an inspection.

The steps, as ICAO Doc 9303-11 section 4.2 (chip access procedure) orders them::

    SELECT MF -> READ EF.CardAccess, EF.ATR/INFO (plain, free to read)
      -> PACE with the strongest PACEInfo this library runs: the CAN, the PIN or the MRZ; CAN then
         PIN when both are given (the CAN's session resumes a suspended PIN, BSI TR-03110-2)
      -> or BAC with the MRZ, when the card has no EF.CardAccess, offers no PACE this library runs,
         or has no MRZ password for PACE (ICAO passports before PACE)
      -> SELECT the application -> READ BINARY each file, by short EF identifier where it has one

:class:`CardSession` does this for any application (``ektp read``, the audit's probes); the sessions of
one card application (:class:`~ektp_card.session.document.EktpSession`,
:class:`~ektp_card.session.document.PassportSession`) build on it. Passwords live in
:class:`Credentials`, whose ``repr`` names only their types; nothing here logs them or puts them in a
message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from ektp_card.apdu.iso7816 import EF_ATR_INFO_SFI, CardInfo, Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW
from ektp_card.apdu.transport import Transport
from ektp_card.crypto.kdf import Cipher
from ektp_card.crypto.pace import MappingType, PaceParameters, PaceResult, Password, perform_pace
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
from ektp_card.lds.card_access import EF_CARD_ACCESS_SFI, CardAccess
from ektp_card.lds.profile import DEMO, EMRTD, MF_FILES, Application, FileRef

if TYPE_CHECKING:
    from ektp_card.crypto.mrz import MrzInfo  # BAC and the MRZ are imported by the sessions that use them

log = logging.getLogger("ektp_card.session")

#: The applications tried, in this order, when none is named.
APPLICATIONS = (EMRTD, DEMO)


class AccessProtocol(StrEnum):
    """How a session was opened."""

    PACE = "PACE"
    BAC = "BAC"
    NONE = "none"


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


# --- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessResult:
    """How the session was opened: ``protocol`` PACE, BAC or none; ``passwords`` the types proven,
    in order; ``parameters`` the PACE protocol and curve."""

    protocol: AccessProtocol
    passwords: tuple[str, ...] = ()
    parameters: PaceParameters | None = None
    cipher: Cipher | None = None


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


class CardSession:
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
        self,
        credentials: Credentials,
        applications: Sequence[Application] = APPLICATIONS,
        *,
        mapping: MappingType | None = None,
    ) -> AccessResult:
        """Run PACE (or BAC, see the module docstring) with ``credentials``; nothing without them.

        Raises :class:`PacePasswordError` for a refused PACE password, :class:`PaceError` when the
        card offers no PACE this library runs, :class:`VerificationFailedError` for a refused MRZ
        in BAC. ``applications`` are the ones to select before BAC, which runs inside the
        application on ICAO passports. ``mapping`` keeps PACE to that mapping (``None``: the
        strongest the card offers); a card that does not offer it is a :class:`PaceError`, never a
        fall back to BAC.
        """
        if not credentials:
            return AccessResult(AccessProtocol.NONE)
        mrz = credentials.mrz
        if mrz is not None:
            try:
                pace = self._offered_pace(mapping)
            except PaceError:
                if mapping is not None:
                    raise
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
        return self._pace(passwords, self._offered_pace(mapping))

    def _offered_pace(self, mapping: MappingType | None = None) -> tuple[PaceParameters, bool]:
        """The PACE to run and whether to name its parameter ID; :class:`PaceError` if none."""
        if self.card_access is None:
            raise PaceError("the card does not offer PACE: it has no readable EF.CardAccess")
        return self.card_access.choose_pace(mapping)

    def _pace(self, passwords: list[Password], pace: tuple[PaceParameters, bool]) -> AccessResult:
        parameters, send_id = pace
        if self._location != _MF:
            self.iso.select_mf()
            self._location = _MF
        for password in passwords:
            self.pace = perform_pace(self.protocol, password, parameters, send_parameter_id=send_id)
        self._fit_reads(parameters.cipher)
        proven = tuple(p.type.name for p in passwords)
        return AccessResult(AccessProtocol.PACE, proven, parameters, parameters.cipher)

    def _bac(self, mrz: MrzInfo, applications: Sequence[Application]) -> AccessResult:
        from ektp_card.crypto.bac import bac

        # ICAO Doc 9303-10: the terminal selects the eMRTD application, then runs BAC in it.
        if applications and self.application is None:
            self.select_application(applications)
        try:
            bac(self.protocol, mrz)
        except InsNotSupportedError as exc:
            what = "PACE, but not with the MRZ, and no BAC" if self.card_access else "neither PACE nor BAC"
            raise InsNotSupportedError(exc.sw, exc.data, f"the card offers {what}") from None
        self._fit_reads(Cipher.TDES)
        return AccessResult(AccessProtocol.BAC, ("MRZ",), None, Cipher.TDES)

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


def read_card_access(session: Iso7816Session) -> CardAccess:
    """Select the MF and read EF.CardAccess by its short file identifier."""
    session.select_mf()
    return CardAccess.decode(session.read_file(sfi=EF_CARD_ACCESS_SFI))


__all__ = [
    "APPLICATIONS",
    "AccessProtocol",
    "AccessResult",
    "CardSession",
    "Credentials",
    "protected_read_size",
    "read_card_access",
]
