"""One session per card application: the e-KTP (:class:`EktpSession`) and the ICAO eMRTD
(:class:`PassportSession`).

Opening a session reads what the card offers before authentication (EF.CardAccess, EF.ATR/INFO);
:meth:`~DocumentSession.authenticate` runs access control and then selects the application, in the
order ICAO Doc 9303-11 section 4.2 gives (PACE at the MF, then SELECT the application; BAC inside the
application it protects). After that the session reads files and data groups and runs the chip's
protocols: Chip Authentication (DG14's key), Active Authentication (DG15's key) and, on the e-KTP,
Terminal Authentication (BSI TR-03110-2). Card refusals raise the typed
:class:`~ektp_card.errors.ApduError` of their status word; the protocols' own outcomes come back as
their results (:class:`~ektp_card.crypto.ca.CaResult`, :class:`~ektp_card.crypto.aa.AaResult`,
:class:`~ektp_card.crypto.ta.TaResult`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.iso7816 import CardInfo
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW
from ektp_card.apdu.transport import Transport
from ektp_card.crypto.aa import AaResult, ChipPublicKey, active_authenticate
from ektp_card.crypto.ca import CaResult, chip_authenticate
from ektp_card.crypto.pace import MappingType, PaceResult
from ektp_card.ec import KeySource, default_key_source
from ektp_card.errors import (
    AuthenticationBlockedError,
    CardFileNotFoundError,
    ChipAuthenticationError,
    TerminalAuthenticationError,
    VerificationFailedError,
)
from ektp_card.lds.biometrics import FingerView, MinutiaeRecord
from ektp_card.lds.card_access import CardAccess
from ektp_card.lds.compact import VERIFY_P2, compact_from_record, encode_capture
from ektp_card.lds.dg14 import Dg14
from ektp_card.lds.ektp import EKTP_APPLICATION
from ektp_card.lds.profile import EMRTD, MF_FILES, Application
from ektp_card.session.card import AccessResult, CardSession, Credentials

if TYPE_CHECKING:
    # Terminal Authentication and the MRZ are imported by the sessions that use them.
    from ektp_card.crypto.mrz import MrzInfo
    from ektp_card.crypto.ta import EphemeralKey, TaResult
    from ektp_card.pki.cvc import CvCertificate
    from ektp_card.pki.signer import Signer

_CARD_SECURITY = next(ref for ref in MF_FILES if ref.name == "CardSecurity")


#: VERIFY (ISO/IEC 7816-4 section 11.5.6).
INS_VERIFY = 0x21


class DocumentSession:
    """A session with the card application :attr:`APPLICATION` over ``transport``.

    ``extended`` ``None`` uses extended length when EF.ATR/INFO says the card supports it; ``False``
    keeps to short APDUs. Opening sends SELECT MF and reads EF.CardAccess and EF.ATR/INFO.
    """

    APPLICATION: ClassVar[Application]

    def __init__(self, transport: Transport, *, extended: bool | None = None) -> None:
        self._card = CardSession(transport, extended=extended)
        self._card.discover()
        self.access: AccessResult | None = None

    # --- what the card offered, and the link --------------------------------------------------------

    @property
    def protocol(self) -> ApduProtocol:
        """The APDU stack, with secure messaging once authenticated."""
        return self._card.protocol

    @property
    def card_access(self) -> CardAccess | None:
        """EF.CardAccess as read on opening (``None``: absent or malformed)."""
        return self._card.card_access

    @property
    def card_info(self) -> CardInfo | None:
        """EF.ATR/INFO as read on opening (``None``: absent or malformed)."""
        return self._card.card_info

    @property
    def pace(self) -> PaceResult | None:
        """The PACE run by :meth:`authenticate`, if any (Terminal Authentication signs its ID_PICC)."""
        return self._card.pace

    @property
    def extended_length(self) -> bool:
        """Whether the session uses extended length APDUs."""
        return self._card.protocol.extended

    # --- access control ---------------------------------------------------------------------------

    def _authenticate(self, credentials: Credentials, mapping: MappingType | None = None) -> AccessResult:
        application = self.APPLICATION
        access = self._card.authenticate(credentials, (application,), mapping=mapping)
        if self._card.application is None and self._card.select_application((application,)) is None:
            raise CardFileNotFoundError(
                SW.FILE_NOT_FOUND, message=f"the card has no {application.name} application"
            )
        self.access = access
        return access

    # --- files ------------------------------------------------------------------------------------

    def read_file(self, name: str) -> bytes:
        """The whole content of the application's file ``name`` (``SOD``, ``DG1``...).

        :class:`~ektp_card.errors.CardFileNotFoundError` when the profile names no such file; the card's
        refusals raise the :class:`~ektp_card.errors.ApduError` of their status word, naming the file.
        """
        ref = self.APPLICATION.file(name)
        if ref is None:
            raise CardFileNotFoundError(
                SW.FILE_NOT_FOUND, message=f"{name} is not a file of the {self.APPLICATION.name} profile"
            )
        return self._card.read(ref)

    def read_sod(self) -> bytes:
        """EF.SOD, the issuer's signed list of data group hashes."""
        return self.read_file("SOD")

    def read_card_security(self) -> bytes:
        """EF.CardSecurity from the MF (ICAO Doc 9303-10 section 3.11): the issuer's signed SecurityInfos,
        with the key PACE-CAM proves; read after PACE."""
        return self._card.read(_CARD_SECURITY)

    def read_data_group(self, number: int) -> bytes:
        """DG``number``; :class:`~ektp_card.errors.SecurityStatusNotSatisfiedError` when this access
        does not open it (DG3 before Terminal and Chip Authentication)."""
        return self.read_file(f"DG{number}")

    # --- the chip's protocols ---------------------------------------------------------------------

    def chip_authenticate(self, dg14: Dg14, *, key_source: KeySource = default_key_source) -> CaResult:
        """Chip Authentication with DG14's key inside the running secure messaging, which it replaces
        when the chip passes. After Terminal Authentication, ``key_source`` must be the
        :meth:`~ektp_card.crypto.ta.EphemeralKey.key_source` of the key TA announced. A DG14 that offers
        no protocol this library runs gives a result that is not supported."""
        try:
            parameters = dg14.ca_parameters()
        except ChipAuthenticationError as exc:
            return CaResult.not_supported(str(exc))
        return chip_authenticate(self.protocol, parameters, key_source=key_source)

    def active_authenticate(
        self,
        public_key: ChipPublicKey,
        *,
        signature_algorithm: str | None = None,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> AaResult:
        """Active Authentication with DG15's ``public_key`` and a fresh challenge from ``random_bytes``;
        ``signature_algorithm`` is DG14's ActiveAuthenticationInfo OID (needed for ECDSA keys)."""
        return active_authenticate(
            self.protocol, public_key, signature_algorithm=signature_algorithm, random_bytes=random_bytes
        )


class EktpSession(DocumentSession):
    """A session with the e-KTP application (:mod:`ektp_card.lds.ektp`): PACE with the CAN printed on
    the card (and the PIN), then its data groups; Terminal Authentication opens DG3."""

    APPLICATION: ClassVar[Application] = EKTP_APPLICATION

    def authenticate(
        self, can: str, *, pin: str | None = None, pace_mapping: MappingType | None = None
    ) -> AccessResult:
        """PACE with the ``can`` (then the ``pin``, when given), then SELECT the e-KTP application.
        ``pace_mapping`` keeps PACE to one mapping; ``None`` runs the strongest the card offers
        (Chip Authentication Mapping, then Integrated, then Generic).

        :class:`~ektp_card.errors.PacePasswordError` for a refused CAN or PIN,
        :class:`~ektp_card.errors.PaceError` when the card offers no PACE this library runs,
        :class:`~ektp_card.errors.CardFileNotFoundError` without the e-KTP application.
        """
        return self._authenticate(Credentials(can=can, pin=pin), pace_mapping)

    def terminal_authenticate(
        self, chain: Sequence[CvCertificate], signer: Signer, ephemeral: EphemeralKey
    ) -> TaResult:
        """Terminal Authentication version 2 with the terminal's CV certificates (from the card's
        trust point down) and the ``signer`` of its key, announcing ``ephemeral`` for the Chip
        Authentication that must follow (BSI TR-03110-2 section 3.4). Needs PACE."""
        from ektp_card.crypto.ta import terminal_authenticate

        pace = self.pace
        if pace is None:
            raise TerminalAuthenticationError("Terminal Authentication needs PACE first")
        return terminal_authenticate(
            self.protocol, chain, signer, id_picc=pace.id_picc, ephemeral=ephemeral.compressed
        )

    def compare_fingerprint(self, capture: MinutiaeRecord | FingerView) -> OnCardComparison:
        """On-card comparison (ISO/IEC 7816-11 VERIFY, :mod:`ektp_card.lds.compact`): the chip compares
        ``capture`` with its reference and answers match or no match. Needs Terminal Authentication
        with the verify-biometric right, then Chip Authentication; the card's refusals raise their
        :class:`~ektp_card.errors.ApduError` (6982 without the right, 6A88 without a reference)."""
        data = encode_capture(compact_from_record(capture))
        return self._verify(data)

    def fingerprint_tries(self) -> OnCardComparison:
        """The tries the chip has left for on-card comparison (VERIFY without data spends none)."""
        return self._verify(b"")

    def _verify(self, data: bytes) -> OnCardComparison:
        # The capture is biometric data: kept out of the traffic log like a PIN.
        apdu = CommandApdu(0x00, INS_VERIFY, 0x00, VERIFY_P2, data, sensitive=True)
        try:
            self.protocol.send(apdu)
        except VerificationFailedError as exc:
            return OnCardComparison(False, exc.retries, exc.retries == 0)
        except AuthenticationBlockedError:
            return OnCardComparison(False, 0, True)
        return OnCardComparison(True, None)


@dataclass(frozen=True)
class OnCardComparison:
    """The chip's answer to a fingerprint VERIFY: match or not (never a score), and the tries left
    (``None`` when the chip did not say: after a match, the counter is back at its initial value)."""

    matched: bool
    tries_left: int | None
    blocked: bool = False


class PassportSession(DocumentSession):
    """A session with an ICAO eMRTD (passport) application: PACE with the MRZ when EF.CardAccess
    offers it, else BAC; then its data groups (DG3 and DG4 need Extended Access Control)."""

    APPLICATION: ClassVar[Application] = EMRTD

    def authenticate(self, mrz: MrzInfo, *, pace_mapping: MappingType | None = None) -> AccessResult:
        """PACE-MRZ or BAC with ``mrz``, and the eMRTD application selected. ``pace_mapping`` keeps
        PACE to one mapping (no fall back to BAC then); ``None`` runs the strongest the card offers.

        :class:`~ektp_card.errors.PacePasswordError` or
        :class:`~ektp_card.errors.VerificationFailedError` for a refused MRZ,
        :class:`~ektp_card.errors.CardFileNotFoundError` without the eMRTD application.
        """
        return self._authenticate(Credentials(mrz=mrz), pace_mapping)


__all__ = ["DocumentSession", "EktpSession", "OnCardComparison", "PassportSession"]
