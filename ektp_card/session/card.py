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

from ektp_card.apdu.command import EXTENDED_MAX_LE, CommandApdu
from ektp_card.apdu.iso7816 import EF_ATR_INFO_SFI, CardInfo, Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import encoded_size
from ektp_card.apdu.transport import Transport
from ektp_card.crypto.kdf import Cipher
from ektp_card.crypto.pace import MappingType, PaceParameters, PaceResult, Password, perform_pace
from ektp_card.crypto.sm import max_short_data
from ektp_card.errors import (
    ApduError,
    CardFileNotFoundError,
    IncorrectParametersError,
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
#: MF files that are one BER-TLV object: EF.CardAccess and EF.CardSecurity (a SET, a SignedData).
_TLV_MF_FILES = (EF_CARD_ACCESS_SFI, 0x1D)
#: Largest file completed from its TLV header (:meth:`CardSession._complete`): any LDS file fits.
_MAX_COMPLETED = 1 << 20
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
            if self._extended is None and not self._extended_works():
                return
            self.protocol.extended = True
            self.iso.max_read = info.max_read

    def _extended_works(self) -> bool:
        """Whether the card takes what EF.ATR/INFO promises: one READ BINARY of EF.ATR/INFO with an
        extended Le of 0000 (65536), in the clear. Some chips advertise extended length and refuse it;
        under secure messaging such a refusal comes unprotected and would end the session, so it is
        found out here, before there is a session to lose."""
        probe = CommandApdu(0x00, 0xB0, 0x80 | EF_ATR_INFO_SFI, 0x00, le=EXTENDED_MAX_LE, extended=True)
        self.protocol.extended = True
        try:
            self.protocol.send(probe, allow=frozenset({SW.OK, SW.END_OF_FILE}))
        except ApduError as exc:
            self.protocol.extended = False
            log.info("EF.ATR/INFO advertises extended length, but the card refused an extended READ "
                     "BINARY (%04X): short APDUs only", exc.sw)
            return False
        return True

    def _optional(self, sfi: int) -> bytes | None:
        try:
            data = self.iso.read_file(sfi=sfi)
            if sfi == EF_CARD_ACCESS_SFI:
                data = self._complete(MF_FILES[0], data)
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
            around = self.protocol.secure_messaging
            try:
                self.pace = perform_pace(self.protocol, password, parameters, send_parameter_id=send_id)
            except (IncorrectParametersError, ReferencedDataNotFoundError) as exc:
                if send_id or self.protocol.secure_messaging is not around:
                    # Named already, or refused after MSE:Set AT (the session it ran in is over).
                    raise
                # ICAO Doc 9303-11 section 4.4.4.1 asks for DO 84 only when the chip offers several
                # domain parameters; some chips want it always. Refused parameters are no password
                # failure (those answer 63xx), so asking again costs one command and no try.
                log.info("the card refused MSE:Set AT without the PACE parameter ID (%04X); sending "
                         "parameter ID %d from now on", exc.sw, parameters.parameter_id)
                send_id = True
                self.pace = perform_pace(self.protocol, password, parameters, send_parameter_id=True)
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
            data = self.iso.read_file(sfi=ref.sfi) if ref.sfi is not None else self.iso.read_file(fid=ref.fid)
            if ref.in_mf and ref.sfi in _TLV_MF_FILES or not ref.in_mf and self._in_lds_application():
                data = self._complete(ref, data)
            return data
        except ApduError as exc:
            # Every ApduError subclass a READ BINARY or SELECT maps to takes (sw, data, message).
            raise type(exc)(exc.sw, exc.data, f"reading {ref.name}: {exc}") from None

    def _in_lds_application(self) -> bool:
        return self.application is not None and self.application.lds

    def _complete(self, ref: FileRef, data: bytes) -> bytes:
        """``data`` and, when its BER-TLV header says the file goes on, the rest. Without a size in
        the FCP, the end of a file read by short identifier is a short answer; a card that answers
        short before the end without saying why (a smaller buffer than it lets on) would otherwise
        leave the file cut. Every LDS file is one TLV object, so its header tells."""
        total = encoded_size(data)
        if total is None or total <= len(data) or total > _MAX_COMPLETED:
            return data
        log.info("%s: the card stopped after %d of %d bytes; reading on", ref.name, len(data), total)
        try:
            rest = self.iso.read_binary(len(data), total - len(data))
        except IncorrectParametersError as exc:
            if exc.sw != SW.WRONG_P1P2:
                raise
            return data  # the file ends where the card said: the TLV header was wrong, not the read
        return data + rest

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
