"""Audit tests: access and privacy.

What a stranger gets from the card without its CAN (skimming), what an eavesdropper or a man in the
middle gets from a session (eavesdropping, information leakage), and whether the card can be
followed from one reading to the next (tracing). Each test works through
:meth:`~ektp_card.audit.engine.AuditContext.session`, so its exchanges are the evidence; none of
them alters the card (the CAN has no retry counter in the e-KTP profile, docs/card-profile.md; the
PIN is never tried).

The CAN, wrong CANs drawn for the tests and every session key stay out of reasons, figures and notes.
"""

from __future__ import annotations

import math
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import Tlv, parse_dict, unpack
from ektp_card.apdu.transport import Transport
from ektp_card.audit.engine import AuditContext, Finding, Threat, audit_test
from ektp_card.crypto.kdf import session_keys
from ektp_card.crypto.pace import (
    PaceParameters,
    PaceResult,
    Password,
    PasswordType,
    authentication_token,
    decrypt_nonce,
    general_authenticate,
    map_generator,
    mse_set_at,
    password_key,
    peer_point,
    perform_pace,
    private_key,
    shared_secret,
)
from ektp_card.crypto.sm import SecureMessagingSession, SmCrypto, pad
from ektp_card.ec import default_key_source
from ektp_card.errors import (
    ApduError,
    AuditError,
    CardFileNotFoundError,
    PaceError,
    SecureMessagingError,
)
from ektp_card.lds.conditions import AccessCondition
from ektp_card.lds.ektp import EKTP_AID, EKTP_APPLICATION, FILES, FileSpec, decode_dg1
from ektp_card.lds.profile import FileRef
from ektp_card.personalize.plan import can_weaknesses
from ektp_card.session.card import CardSession, Credentials
from ektp_card.verify.chip import (
    decode_dg14,
    run_active_authentication,
    run_chip_authentication,
)

# --- wire helpers ------------------------------------------------------------------------------------

SELECT_MF = bytes.fromhex("00A4000C")
GET_CHALLENGE_8 = bytes.fromhex("0084000008")
#: ISO/IEC 7816-4 words after which a response carries the data asked for.
_DATA_WORDS = frozenset({SW.OK, SW.END_OF_FILE})
#: The secure messaging error words of ISO/IEC 7816-4: data objects missing, incorrect.
SM_ERROR_WORDS = frozenset({SW.SM_DATA_OBJECTS_MISSING, SW.SM_DATA_OBJECTS_INCORRECT})


def _sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big") if len(response) >= 2 else 0


def _word(sw: int | None) -> str:
    return "none" if sw is None else f"{sw:04X}"


def _words(sws: Sequence[int | None]) -> str:
    return " ".join(_word(sw) for sw in sws) or "none"


def _gives_data(response: bytes) -> bool:
    sw = _sw(response)
    return sw in _DATA_WORDS or sw >> 8 == 0x61


def _is_counter(sw: int) -> bool:
    """63Cx (tries left) or 6983 (blocked): the card counts failures of this password."""
    return sw & 0xFFF0 == 0x63C0 or sw == SW.AUTH_METHOD_BLOCKED


@dataclass(frozen=True)
class _Timing:
    phase: str
    command: bytes
    response: bytes
    millis: float

    @property
    def ins(self) -> int:
        return self.command[1] if len(self.command) > 1 else -1

    @property
    def sw(self) -> int:
        return _sw(self.response)


class _Timed:
    """A transport that times each exchange and keeps it (in memory only) under the current phase."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.phase = ""
        self.log: list[_Timing] = []

    def transceive(self, command: bytes) -> bytes:
        start = time.perf_counter()
        response = self.inner.transceive(command)
        self.log.append(_Timing(self.phase, command, response, (time.perf_counter() - start) * 1000))
        return response

    def last_sw(self) -> int | None:
        return self.log[-1].sw if self.log else None


def _file(name: str) -> FileRef:
    ref = EKTP_APPLICATION.file(name)
    if ref is None:  # the profile's own table: a programming error, not a card's answer
        raise AuditError(f"the e-KTP profile has no file {name}")
    return ref


def _open(transport: Transport) -> CardSession:
    """SELECT MF and read what a card offers before authentication."""
    session = CardSession(transport)
    session.discover()
    return session


def _pace_parameters(session: CardSession) -> tuple[PaceParameters, bool]:
    if session.card_access is None:
        raise PaceError("the card does not offer PACE: it has no readable EF.CardAccess")
    return session.card_access.choose_pace()


def _authenticate(session: CardSession, can: str) -> PaceResult:
    """PACE with the CAN; the card's refusal propagates (a wrong CAN given to the audit: no verdict)."""
    session.authenticate(Credentials(can=can))
    if session.pace is None:
        raise PaceError("PACE did not run")
    return session.pace


def _application(session: CardSession) -> None:
    if session.select_application([EKTP_APPLICATION]) is None:
        raise CardFileNotFoundError(SW.FILE_NOT_FOUND, message="the card has no e-KTP application")


def _sm(session: CardSession) -> SecureMessagingSession:
    sm = session.protocol.secure_messaging
    if not isinstance(sm, SecureMessagingSession):
        raise PaceError("no secure messaging session after PACE")
    return sm


def _wrong_can(can: str) -> str:
    """A random CAN of the same length, not the right one (never derived from it: it shows up in
    the evidence only as what PACE sends, which is not the CAN)."""
    length = max(len(can), 1)
    while True:
        guess = "".join(secrets.choice("0123456789") for _ in range(length))
        if guess != can:
            return guess


def _read_dg1(ctx: AuditContext) -> bytes:
    with ctx.session() as transport:
        session = _open(transport)
        _authenticate(session, ctx.options.can)
        _application(session)
        ctx.recorder.note("DG1 read with the CAN")
        return session.read(_file("DG1"))


def _dg1(ctx: AuditContext) -> bytes:
    data: bytes = ctx.shared("access.dg1", lambda: _read_dg1(ctx))
    return data


# --- UID-ACCEPT, UID-TRACE ---------------------------------------------------------------------------

#: ISO/IEC 14443-3 section 6.5.4: a single-size UID whose first byte is 08 is a random ID, drawn anew
#: at each activation; other first bytes of a double or triple size UID are a manufacturer code.
RANDOM_UID_FIRST_BYTE = 0x08
RANDOM_UID_LENGTH = 4
#: Power-ups UID-TRACE draws.
UID_SESSIONS = 8


def _random_id(uid: bytes) -> bool:
    return len(uid) == RANDOM_UID_LENGTH and uid[0] == RANDOM_UID_FIRST_BYTE


def _uid_in(uid: bytes, data: bytes) -> bool:
    """Whether the UID shows in ``data``: as bytes, as hex text, or as a long decimal number."""
    text = data.decode("latin-1")
    forms = [uid.hex(), uid.hex().upper()]
    for number in (str(int.from_bytes(uid, "big")), str(int.from_bytes(uid, "little"))):
        if len(number) >= 8:  # shorter numbers occur in any text by chance
            forms.append(number)
    return uid in data or any(form in text for form in forms)


def _uid_list(uids: Sequence[bytes]) -> str:
    return " ".join(uid.hex().upper() for uid in uids)


@audit_test("UID-ACCEPT", "The UID carries no identity", Threat.COUNTERFEIT)
def uid_accept(ctx: AuditContext) -> Finding:
    """Tracing and counterfeit: reads the ISO/IEC 14443-3 UID in two power-ups and DG1 with the CAN.
    Passes when the UID is a random ID (4 bytes starting 08) that changes between power-ups and
    appears nowhere in DG1 (NIK and printed fields), so no system can take identity from it; a
    fixed manufacturer UID (e.g. 7 bytes) fails. Not applicable when the reader cannot tell the UID."""
    with ctx.session() as transport:
        first = ctx.uid(transport)
        if first is None:
            return Finding.not_applicable("the reader does not tell the card's UID")
        session = _open(transport)
        _authenticate(session, ctx.options.can)
        _application(session)
        ctx.recorder.note("DG1 read with the CAN, to be searched for the UID")
        dg1 = session.read(_file("DG1"))
    ctx.shared("access.dg1", lambda: dg1)
    with ctx.session() as transport:
        second = ctx.uid(transport)
    uids = [first] if second is None else [first, second]
    figures: dict[str, float | int | str] = {
        "uids": _uid_list(uids), "uid_bytes": len(first), "dg1_bytes": len(dg1),
    }
    problems = []
    fixed = [uid for uid in uids if not _random_id(uid)]
    if fixed:
        problems.append(
            f"the UID {fixed[0].hex().upper()} is a {len(fixed[0])}-byte UID not starting 08: a fixed "
            "manufacturer UID that identifies the chip (ISO/IEC 14443-3 random IDs are 4 bytes starting 08)"
        )
    if second is not None and first == second:
        problems.append("the UID is the same at the next power-up")
    if any(_uid_in(uid, dg1) for uid in uids):
        problems.append("the UID occurs in DG1: the identity data is tied to it")
    if problems:
        return Finding.failed("; ".join(problems), **figures)
    return Finding.passed("the UID is a random ID, new at each power-up and absent from DG1", **figures)


@audit_test("UID-TRACE", "The UID differs at every power-up", Threat.TRACING)
def uid_trace(ctx: AuditContext) -> Finding:
    """Tracing: powers the card up 8 times and reads its UID each time. Passes when the UIDs differ
    (one coincidence among 8 random 24-bit IDs is tolerated, so a genuine card fails with
    probability below 1e-11) and do not follow a fixed step; a static UID fails. Not applicable
    when the reader cannot tell the UID."""
    uids: list[bytes] = []
    for _ in range(UID_SESSIONS):
        with ctx.session() as transport:
            uid = ctx.uid(transport)
        if uid is None:
            return Finding.not_applicable("the reader does not tell the card's UID")
        uids.append(uid)
    distinct = len(set(uids))
    figures: dict[str, float | int | str] = {
        "power_ups": len(uids), "distinct": distinct, "uids": _uid_list(uids),
    }
    if distinct == 1:
        return Finding.failed(
            f"the UID {uids[0].hex().upper()} is the same at every power-up: the card can be followed "
            "by anyone in radio range",
            **figures,
        )
    if distinct < len(uids) - 1:
        return Finding.failed(f"only {distinct} different UIDs in {len(uids)} power-ups", **figures)
    values = [int.from_bytes(uid, "big") for uid in uids]
    steps = {b - a for a, b in zip(values, values[1:], strict=False)}
    if len(steps) == 1:
        return Finding.failed("the UIDs follow a fixed step: the next one is predictable", **figures)
    return Finding.passed(f"{distinct} different UIDs in {len(uids)} power-ups", **figures)


# --- SKIM-ENUM ---------------------------------------------------------------------------------------

#: What the e-KTP profile lets anyone read (docs/card-profile.md, read condition ALWAYS).
FREE_FILES = frozenset(spec.name for spec in FILES if spec.read == AccessCondition.ALWAYS)


def _probe_file(ctx: AuditContext, send: Callable[[bytes], bytes], spec: FileSpec, words: set[int]) -> bool:
    """Try to read ``spec`` in the current DF by short EF identifier, by SELECT and READ BINARY, and
    by the odd READ BINARY naming its file identifier; whether any gave data."""
    readable = False
    fid = spec.fid.to_bytes(2, "big")
    ctx.recorder.note(f"{spec.name}: READ BINARY by short EF identifier, no authentication")
    answer = send(CommandApdu(0x00, 0xB0, 0x80 | spec.sfi, 0x00, le=256).encode())
    readable |= _gives_data(answer)
    words.add(_sw(answer))
    ctx.recorder.note(f"{spec.name}: SELECT by file identifier")
    if _sw(send(CommandApdu(0x00, 0xA4, 0x02, 0x0C, fid).encode())) == SW.OK:
        answer = send(CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256).encode())
        readable |= _gives_data(answer)
        words.add(_sw(answer))
    ctx.recorder.note(f"{spec.name}: READ BINARY (odd INS) by file identifier")
    answer = send(CommandApdu(0x00, 0xB1, fid[0], fid[1], Tlv(0x54, b"\x00").encode(), le=256).encode())
    readable |= _gives_data(answer)
    words.add(_sw(answer))
    return readable


@audit_test("SKIM-ENUM", "Readable without access", Threat.SKIMMING)
def skim_enum(ctx: AuditContext) -> Finding:
    """Skimming: without PACE, tries to read every file of the e-KTP profile under the MF and in the
    application (EF.COM, EF.CVCA, DG1, DG2, DG3, DG7, DG14, DG15, EF.SOD), each by short EF
    identifier, by SELECT and by the odd READ BINARY. Passes when only EF.CardAccess, EF.ATR/INFO
    and EF.DIR give data; the figures list what was readable."""
    readable: list[str] = []
    words: set[int] = set()
    probed = 0
    with ctx.session() as transport:
        send = transport.transceive
        ctx.recorder.note("SELECT MF, no authentication")
        send(SELECT_MF)
        for spec in (s for s in FILES if s.in_mf):
            probed += 1
            if _probe_file(ctx, send, spec, words):
                readable.append(spec.name)
        ctx.recorder.note("SELECT the e-KTP application, no authentication")
        application = _sw(send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, EKTP_AID).encode())) == SW.OK
        if application:
            for spec in (s for s in FILES if not s.in_mf):
                probed += 1
                if _probe_file(ctx, send, spec, words):
                    readable.append(spec.name)
    exposed = [name for name in readable if name not in FREE_FILES]
    figures: dict[str, float | int | str] = {
        "readable": ", ".join(readable) or "none",
        "readable_count": len(readable),
        "files_probed": probed,
        "application": "found" if application else "absent",
        "words": _words(sorted(w for w in words if w not in _DATA_WORDS)),
    }
    if exposed:
        return Finding.failed(f"readable without the CAN: {', '.join(exposed)}", **figures)
    reason = f"only {', '.join(readable) or 'no file'} readable without the CAN"
    if not application:
        reason += " (the card has no e-KTP application)"
    return Finding.passed(reason, **figures)


# --- SKIM-BYPASS -------------------------------------------------------------------------------------


def _protected(pace: PaceResult, ssc: int, apdu: CommandApdu, *, bad_mac: bool = False) -> bytes:
    """``apdu`` protected as the terminal would at send sequence counter ``ssc``; with ``bad_mac``
    the last MAC byte flipped."""
    wrapped = SecureMessagingSession(pace.cipher, pace.k_enc, pace.k_mac, ssc - 1).wrap(apdu)
    if bad_mac:
        wrapped = wrapped.with_(data=wrapped.data[:-1] + bytes((wrapped.data[-1] ^ 0x01,)))
    return wrapped.encode()


def _still_open(protocol: ApduProtocol, timed: _Timed, apdu: CommandApdu) -> tuple[bool, int | None]:
    """Send ``apdu`` through ``protocol``'s secure messaging: whether the card answered under the
    session keys (the session lives on), and the word it answered."""
    try:
        response = protocol.transmit(apdu)
    except SecureMessagingError:
        return False, timed.last_sw()
    return True, response.sw


@audit_test("SKIM-BYPASS", "Protected commands in plain or with a bad MAC", Threat.SKIMMING)
def skim_bypass(ctx: AuditContext) -> Finding:
    """Skimming, abuse of functions: after PACE with the CAN, sends READ BINARY DG1 in plain, then
    protected; in a second session, sends it with a wrong MAC, then correctly protected. Passes when
    the plain command is refused, the bad MAC is refused with 6987 or 6988, and each ends the
    secure messaging session (the following protected command fails too)."""
    can = ctx.options.can
    read_dg1 = CommandApdu(0x00, 0xB0, 0x80 | (_file("DG1").sfi or 0x01), 0x00, le=256)
    with ctx.session() as raw:
        timed = _Timed(raw)
        session = _open(timed)
        _authenticate(session, can)
        _application(session)
        ctx.recorder.note("plain READ BINARY DG1 inside the secure messaging session")
        plain = timed.transceive(read_dg1.encode())
        ctx.recorder.note("protected READ BINARY DG1 after the plain one: the session must be over")
        open_after_plain, after_plain = _still_open(session.protocol, timed, read_dg1)
    with ctx.session() as raw:
        timed = _Timed(raw)
        session = _open(timed)
        pace = _authenticate(session, can)
        _application(session)
        ssc = _sm(session).ssc
        ctx.recorder.note("protected READ BINARY DG1 with a wrong MAC")
        bad = timed.transceive(_protected(pace, ssc + 1, read_dg1, bad_mac=True))
        open_after_mac, after_mac = False, None
        # The card may or may not have counted the refused command: try the counter for both.
        for counter in (ssc + 2, ssc + 1):
            session.protocol.secure_messaging = SecureMessagingSession(
                pace.cipher, pace.k_enc, pace.k_mac, counter - 1
            )
            ctx.recorder.note("protected READ BINARY DG1 after the bad MAC: the session must be over")
            open_after_mac, after_mac = _still_open(session.protocol, timed, read_dg1)
            if open_after_mac:
                break
    figures: dict[str, float | int | str] = {
        "plain_word": _word(_sw(plain)), "after_plain_word": _word(after_plain),
        "bad_mac_word": _word(_sw(bad)), "after_bad_mac_word": _word(after_mac),
    }
    problems = []
    if _gives_data(plain):
        problems.append(f"a plain READ BINARY inside the session was answered {_word(_sw(plain))} with DG1")
    if open_after_plain:
        problems.append("the session went on after a plain command")
    if _gives_data(bad):
        problems.append("a command with a wrong MAC was executed")
    elif _sw(bad) not in SM_ERROR_WORDS:
        problems.append(f"a wrong MAC was refused with {_word(_sw(bad))}, not 6987 or 6988")
    if open_after_mac:
        problems.append("the session went on after a wrong MAC")
    if problems:
        return Finding.failed("; ".join(problems), **figures)
    return Finding.passed(
        f"plain command refused ({_word(_sw(plain))}), wrong MAC refused ({_word(_sw(bad))}), "
        "and each ended the session",
        **figures,
    )


# --- AUTH-WRONGKEY -----------------------------------------------------------------------------------

WRONG_CAN_ATTEMPTS = 3


def _attempt(protocol: ApduProtocol, password: Password, pace: tuple[PaceParameters, bool]) -> bool:
    """One PACE run; whether the card accepted the password (its refusal is an answer, not an error)."""
    try:
        perform_pace(protocol, password, pace[0], send_parameter_id=pace[1])
    except (ApduError, PaceError):
        return False
    return True


@audit_test("AUTH-WRONGKEY", "Wrong CANs refused, no lock-out", Threat.SKIMMING)
def auth_wrongkey(ctx: AuditContext) -> Finding:
    """Skimming: runs PACE with the right CAN, then 3 times with random wrong CANs, then with the
    right CAN in the same session and after a power cycle; the retry behaviour (words, counter, time
    per attempt) goes into the figures. Passes when every wrong CAN is refused and the right one
    still works after a power cycle, so a stranger can neither guess cheaply nor lock the holder
    out. The PIN is never tried; a card that shows a retry counter on the CAN is not driven to 0."""
    can = ctx.options.can
    with ctx.session() as transport:
        ctx.recorder.note("PACE with the right CAN, to know it works")
        _authenticate(_open(transport), can)
    words: list[int | None] = []
    millis: list[float] = []
    accepted = 0
    stopped = False
    with ctx.session() as raw:
        timed = _Timed(raw)
        session = _open(timed)
        pace = _pace_parameters(session)
        for attempt in range(1, WRONG_CAN_ATTEMPTS + 1):
            ctx.recorder.note(f"PACE attempt {attempt} with a wrong CAN")
            mark = len(timed.log)
            start = time.perf_counter()
            accepted += _attempt(session.protocol, Password.can(_wrong_can(can)), pace)
            millis.append((time.perf_counter() - start) * 1000)
            answers = [t.sw for t in timed.log[mark:]]
            words.append(answers[-1] if answers else None)
            if any(sw == SW.AUTH_METHOD_BLOCKED or sw in (0x63C0, 0x63C1) for sw in answers):
                # One more failure could block the CAN: stop here unless allowed to alter the card.
                if not ctx.options.destructive:
                    stopped = True
                    break
        ctx.recorder.note("PACE with the right CAN in the same session")
        same_session = _attempt(session.protocol, Password.can(can), pace)
        same_word = timed.last_sw()
    with ctx.session() as raw:
        timed = _Timed(raw)
        session = _open(timed)
        ctx.recorder.note("PACE with the right CAN after a power cycle")
        after_cycle = _attempt(session.protocol, Password.can(can), _pace_parameters(session))
        cycle_word = timed.last_sw()
    counters = sorted({sw for sw in words if sw is not None and _is_counter(sw)})
    figures: dict[str, float | int | str] = {
        "attempts": len(words),
        "failure_words": _words(words),
        "attempt_ms": " ".join(f"{m:.1f}" for m in millis),
        "retry_counter": _words(counters) if counters else "none",
        "delay_growth": round(millis[-1] / millis[0], 2) if millis and millis[0] > 0 else 0.0,
        "right_can_same_session": "accepted" if same_session else f"refused {_word(same_word)}",
        "right_can_after_power_cycle": "accepted" if after_cycle else f"refused {_word(cycle_word)}",
    }
    if stopped:
        figures["stopped"] = "a retry counter near 0: no further wrong CAN without --destructive"
    if accepted:
        return Finding.failed(f"{accepted} of {len(words)} wrong CANs were accepted", **figures)
    if not after_cycle:
        return Finding.failed(
            f"after {len(words)} wrong CANs the right CAN is refused ({_word(cycle_word)}): "
            "a stranger can lock the holder out",
            **figures,
        )
    counter = f", retry counter {_words(counters)}" if counters else ", no retry counter"
    return Finding.passed(
        f"{len(words)} wrong CANs refused ({_words(words)}{counter}); the right CAN still works", **figures
    )


# --- AUTH-REPLAY -------------------------------------------------------------------------------------

_MSE, _GENERAL_AUTHENTICATE = 0x22, 0x86


@audit_test("AUTH-REPLAY", "A recorded PACE handshake replayed", Threat.EAVESDROPPING)
def auth_replay(ctx: AuditContext) -> Finding:
    """Eavesdropping: records a complete PACE with the right CAN (MSE:Set AT and the four GENERAL
    AUTHENTICATE commands), then replays the terminal's commands byte for byte after a power cycle.
    Passes when the card refuses the replay before any secure messaging exists: its nonce and keys
    are fresh, so the recorded mutual-authentication token no longer verifies."""
    with ctx.session() as raw:
        timed = _Timed(raw)
        session = _open(timed)
        mark = len(timed.log)
        ctx.recorder.note("the handshake an eavesdropper records: PACE with the right CAN")
        _authenticate(session, ctx.options.can)
        recorded = [t for t in timed.log[mark:] if t.ins in (_MSE, _GENERAL_AUTHENTICATE)]
    if not recorded or recorded[-1].sw != SW.OK:
        raise PaceError("the recorded PACE did not end with an accepted mutual authentication")
    replies: list[bytes] = []
    with ctx.session() as transport:
        ctx.recorder.note("SELECT MF after the power cycle")
        transport.transceive(SELECT_MF)
        for step, exchange in enumerate(recorded):
            label = "MSE:Set AT" if exchange.ins == _MSE else f"GENERAL AUTHENTICATE step {step}"
            ctx.recorder.note(f"replayed {label}")
            replies.append(transport.transceive(exchange.command))
            if _sw(replies[-1]) != SW.OK:
                break
    nonce_reused = (
        len(replies) > 1 and len(recorded) > 1 and _sw(replies[1]) == SW.OK
        and replies[1] == recorded[1].response
    )
    accepted = len(replies) == len(recorded) and _sw(replies[-1]) == SW.OK
    where = "MSE:Set AT" if len(replies) == 1 else f"GENERAL AUTHENTICATE step {len(replies) - 1}"
    figures: dict[str, float | int | str] = {
        "replayed": len(replies), "recorded": len(recorded), "refused_at": "none" if accepted else where,
        "word": _word(_sw(replies[-1])) if replies else "none",
        "nonce_repeated": "yes" if nonce_reused else "no",
    }
    if accepted:
        return Finding.failed(
            "the replayed handshake was accepted: an eavesdropper opens a session without the CAN",
            **figures,
        )
    if nonce_reused:
        return Finding.failed(
            "the replay was refused, but the chip sent the same encrypted nonce again: its nonce repeats",
            **figures,
        )
    return Finding.passed(f"the replay was refused at {where} ({figures['word']})", **figures)


# --- RNG-QUALITY -------------------------------------------------------------------------------------

#: |z| beyond this fails a statistic: two-sided 3.8e-8 for a normal statistic, one-sided 1.9e-8 for a
#: chi-square through the Wilson-Hilferty transform; with the four statistics a perfect generator
#: fails by chance with probability about 1.1e-7 (repeats of 64-bit values add far less).
RNG_Z_LIMIT = 5.5
#: Fewest challenges RNG-QUALITY draws, whatever the options say.
MIN_CHALLENGES = 16
#: Most power-ups RNG-QUALITY spreads the challenges over, and the fewest challenges per power-up.
MAX_POWER_UPS = 8
PER_POWER_UP = 16
CHALLENGE_BYTES = 8


def _normal_tail(z: float) -> float:
    """Two-sided tail probability P(|Z| > z) of a standard normal variable."""
    return math.erfc(abs(z) / math.sqrt(2))


def _chi_square_z(counts: Sequence[int], total: int) -> float:
    """The chi-square statistic of uniform ``counts`` as a standard normal z (Wilson and Hilferty,
    "The distribution of chi-square", PNAS 17, 1931)."""
    cells = len(counts)
    expected = total / cells
    chi = sum((c - expected) ** 2 for c in counts) / expected
    k = cells - 1
    return (math.cbrt(chi / k) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))


def rng_statistics(challenges: Sequence[bytes]) -> dict[str, float]:
    """Monobit and runs z-scores (FIPS 140-2 style, as normal approximations for any length) and the
    chi-square of nibble and byte values as z-scores; ``bytes_z`` is NaN when there are too few
    bytes for 5 expected per value."""
    stream = b"".join(challenges)
    bits = len(stream) * 8
    value = int.from_bytes(stream, "big")
    ones = value.bit_count()
    transitions = ((value ^ (value >> 1)) & ((1 << (bits - 1)) - 1)).bit_count()
    nibbles = Counter(n for byte in stream for n in (byte >> 4, byte & 0x0F))
    out = {
        "ones_fraction": ones / bits,
        "monobit_z": (2 * ones - bits) / math.sqrt(bits),
        # Under independence each of the bits-1 neighbouring pairs differs with probability 1/2.
        "runs_z": (2 * transitions - (bits - 1)) / math.sqrt(bits - 1),
        "nibbles_z": _chi_square_z([nibbles.get(n, 0) for n in range(16)], 2 * len(stream)),
        "bytes_z": math.nan,
    }
    if len(stream) >= 256 * 5:
        counts = Counter(stream)
        out["bytes_z"] = _chi_square_z([counts.get(b, 0) for b in range(256)], len(stream))
    return out


@audit_test("RNG-QUALITY", "Random challenges", Threat.INFORMATION_LEAKAGE)
def rng_quality(ctx: AuditContext) -> Finding:
    """Information leakage, forgery: draws options.challenges 8-byte GET CHALLENGE answers, spread
    over up to 8 power-ups. Passes when no value repeats (within a session or across power-ups: a
    generator re-seeded at power-on repeats) and monobit, runs and chi-square statistics stay
    within |z| < 5.5, so a perfect generator fails by chance with probability about 1e-7."""
    wanted = max(ctx.options.challenges, MIN_CHALLENGES)
    power_ups = max(2, min(MAX_POWER_UPS, wanted // PER_POWER_UP))
    sizes = [wanted // power_ups + (1 if i < wanted % power_ups else 0) for i in range(power_ups)]
    drawn: list[tuple[int, bytes]] = []
    for index, count in enumerate(sizes):
        with ctx.session() as transport:
            ctx.recorder.note(f"power-up {index + 1}: {count} challenges")
            for _ in range(count):
                answer = transport.transceive(GET_CHALLENGE_8)
                if _sw(answer) != SW.OK:
                    if not drawn:
                        return Finding.not_applicable(
                            f"the card gives no challenge before authentication ({_word(_sw(answer))})"
                        )
                    raise ApduError(_sw(answer), message=f"GET CHALLENGE refused ({_word(_sw(answer))})")
                if len(answer) != CHALLENGE_BYTES + 2:
                    raise ApduError(_sw(answer), message=f"GET CHALLENGE gave {len(answer) - 2} bytes, not 8")
                drawn.append((index, answer[:-2]))
    challenges = [c for _, c in drawn]
    # A value seen n times in one power-up repeats n - 1 times within it; seen in k power-ups, it
    # repeats k - 1 times across them.
    in_session = Counter((challenge, index) for index, challenge in drawn)
    within = sum(n - 1 for n in in_session.values())
    across = sum(n - 1 for n in Counter(challenge for challenge, _ in in_session).values())
    repeats = within + across
    stats = rng_statistics(challenges)
    tested = {k: v for k, v in stats.items() if k.endswith("_z") and not math.isnan(v)}
    false_alarm = sum(
        _normal_tail(RNG_Z_LIMIT) / (2 if name in ("nibbles_z", "bytes_z") else 1) for name in tested
    )
    figures: dict[str, float | int | str] = {
        "challenges": len(challenges), "power_ups": power_ups, "repeats": repeats,
        "repeats_across_power_ups": across, "repeats_within_session": within,
        **{k: round(v, 4) for k, v in stats.items() if not math.isnan(v)},
        "z_limit": RNG_Z_LIMIT, "false_alarm": f"{false_alarm:.1e}",
    }
    problems = []
    if repeats:
        problems.append(
            f"{repeats} repeated challenges ({across} repeated across power-ups, {within} within one): "
            "predictable or re-seeded at power-on"
        )
    for name, z in tested.items():
        one_sided = name in ("nibbles_z", "bytes_z")
        if (z if one_sided else abs(z)) > RNG_Z_LIMIT:
            problems.append(f"{name.removesuffix('_z')} statistic z = {z:.1f} beyond {RNG_Z_LIMIT}")
    if problems:
        return Finding.failed("; ".join(problems), **figures)
    return Finding.passed(
        f"{len(challenges)} challenges over {power_ups} power-ups: no repeats, statistics within bounds",
        **figures,
    )


# --- TRACE-ERRORS ------------------------------------------------------------------------------------

#: Wrong-CAN and altered-token PACE runs TRACE-ERRORS times, each.
TIMING_SAMPLES = 15
#: Largest difference of median times tolerated: this many milliseconds, or this share of the slower.
TIMING_FLOOR_MS = 5.0
TIMING_SHARE = 0.5


def _pace_until_tokens(
    ctx: AuditContext,
    protocol: ApduProtocol,
    timed: _Timed,
    password: Password,
    pace: tuple[PaceParameters, bool],
    *,
    alter_token: bool,
    note: str,
) -> tuple[int | None, float | None]:
    """A PACE run as the terminal, step by step, up to the mutual authentication; ``alter_token``
    flips a bit of the terminal's token. The card's word and time at the step it refused."""
    parameters, send_id = pace
    curve, cipher, algorithm = parameters.curve, parameters.cipher, parameters.algorithm

    def step(command: CommandApdu, tag: int) -> bytes | None:
        response = protocol.transmit(command)
        if response.sw != SW.OK:
            return None
        return parse_dict(unpack(0x7C, response.data)).get(tag)

    if protocol.transmit(mse_set_at(parameters, password.type, send_parameter_id=send_id)).sw != SW.OK:
        return timed.last_sw(), None
    encrypted = step(general_authenticate(None, last=False), 0x80)
    if encrypted is None:
        return timed.last_sw(), None
    nonce = decrypt_nonce(cipher, password_key(password, cipher), encrypted)
    map_key = private_key(curve, default_key_source)
    map_public = curve.encode_point(map_key.public)
    chip_map = step(general_authenticate(Tlv(0x81, map_public), last=False), 0x82)
    if chip_map is None:
        return timed.last_sw(), None
    mapped = map_generator(curve, nonce, map_key.multiply(peer_point(curve, chip_map, map_public, "key")))
    eph_key = private_key(curve, default_key_source)
    eph_public = curve.encode_point(eph_key.multiply(mapped))
    chip_eph = step(general_authenticate(Tlv(0x83, eph_public), last=False), 0x84)
    if chip_eph is None:
        return timed.last_sw(), None
    shared = shared_secret(curve, eph_key, peer_point(curve, chip_eph, eph_public, "key"))
    _, k_mac = session_keys(shared, cipher)
    token = authentication_token(algorithm, k_mac, chip_eph)
    if alter_token:
        token = token[:-1] + bytes((token[-1] ^ 0x01,))
    ctx.recorder.note(note)
    protocol.transmit(general_authenticate(Tlv(0x85, token), last=True))
    return timed.last_sw(), timed.log[-1].millis


def _corrupted_select(pace: PaceResult, ssc: int, fid: int, part: str) -> bytes:
    """SELECT EF ``fid`` protected at counter ``ssc`` as a man in the middle would alter it: the MAC
    (``part`` "mac": one bit flipped), or the cryptogram (``part`` "cryptogram": replaced by a block
    that decrypts to data without padding, the MAC left as it was, so wrong too)."""
    block = pace.cipher.block_size
    crypto = SmCrypto(pace.cipher, pace.k_enc, pace.k_mac)
    counter = ssc.to_bytes(block, "big")
    header = bytes((0x0C, 0xA4, 0x02, 0x0C))
    good = Tlv(0x87, b"\x01" + crypto.encrypt(counter, fid.to_bytes(2, "big"))).encode()
    mac = crypto.mac(counter + pad(header, block) + good)
    if part == "mac":
        body = good + Tlv(0x8E, mac[:-1] + bytes((mac[-1] ^ 0x01,))).encode()
    else:
        # CBC: the first block of E(01...01 || padding) decrypts alone to 01...01, which has no
        # ISO/IEC 9797-1 padding: a padding failure whatever the key.
        unpadded = crypto.encrypt(counter, b"\x01" * block)[:block]
        body = Tlv(0x87, b"\x01" + unpadded).encode() + Tlv(0x8E, mac).encode()
    return CommandApdu(0x0C, 0xA4, 0x02, 0x0C, body, le=256).encode()


def _sm_failure(ctx: AuditContext, kind: str) -> int:
    """The word a live secure messaging session answers to one corruption ``kind``."""
    with ctx.session() as transport:
        session = _open(transport)
        pace = _authenticate(session, ctx.options.can)
        _application(session)
        dg1 = _file("DG1")
        if kind == "plain":
            ctx.recorder.note("protection stripped: plain READ BINARY DG1 inside the session")
            command = CommandApdu(0x00, 0xB0, 0x80 | (dg1.sfi or 0x01), 0x00, le=256).encode()
        else:
            ctx.recorder.note(f"protected SELECT DG1 with its {kind} altered in transit")
            command = _corrupted_select(pace, _sm(session).ssc + 1, dg1.fid or 0x0101, kind)
        return _sw(transport.transceive(command))


def _without_can(ctx: AuditContext) -> dict[str, float | int | str]:
    """The words any stranger gets: figures only, they are standard and the same on every card."""
    with ctx.session() as transport:
        session = _open(transport)
        send = transport.transceive
        ctx.recorder.note("unknown file: READ BINARY of a short EF identifier the profile does not use")
        unknown = _sw(send(bytes.fromhex("00B09B0000")))
        parameters, send_id = _pace_parameters(session)
        ctx.recorder.note("password reference the card does not hold: MSE:Set AT for the PIN")
        reference = _sw(send(mse_set_at(parameters, PasswordType.PIN, send_parameter_id=send_id).encode()))
        ctx.recorder.note("protected command with no session")
        no_session = _sw(send(bytes.fromhex("0CB0810000")))
        send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, EKTP_AID).encode())
        ctx.recorder.note("protected file, no authentication")
        protected = _sw(send(bytes.fromhex("00B0810000")))
    return {
        "unknown_file": _word(unknown), "password_reference": _word(reference),
        "sm_without_session": _word(no_session), "protected_file": _word(protected),
    }


@audit_test("TRACE-ERRORS", "Failure kinds look alike", Threat.INFORMATION_LEAKAGE)
def trace_errors(ctx: AuditContext) -> Finding:
    """Tracing, information leakage: compares the card's answers to failures an attacker causes
    without the CAN. Passes when a man in the middle altering a MAC, altering a cryptogram or
    stripping the protection gets 6987/6988, the same word for both alterations (else the answer
    depends on the decrypted padding: a padding oracle), and when PACE with random wrong CANs and
    with the right CAN but an altered token (15 each) fail alike at the mutual authentication, in word
    and in median time (within 5 ms or half the slower), so the card cannot tell how close a guess
    was. Unknown file (6A82), absent password (6A88), protected file (6982) and protected command
    without a session (6882) differ by nature: the attacker chose the command, and the words are
    standard and the same on every card, so they are only reported."""
    can = ctx.options.can
    figures: dict[str, float | int | str] = dict(_without_can(ctx))
    sm_words = {kind: _sm_failure(ctx, kind) for kind in ("mac", "cryptogram", "plain")}
    names = {"mac": "sm_bad_mac", "cryptogram": "sm_bad_cryptogram", "plain": "sm_plain_command"}
    figures.update({names[kind]: _word(sw) for kind, sw in sm_words.items()})
    samples: dict[bool, list[tuple[int | None, float | None]]] = {False: [], True: []}
    counter_seen = False
    with ctx.session() as raw:
        timed = _Timed(raw)
        session = _open(timed)
        pace = _pace_parameters(session)
        for _ in range(TIMING_SAMPLES):
            for altered in (False, True):
                password = Password.can(can if altered else _wrong_can(can))
                note = ("mutual authentication with the right CAN and an altered token" if altered
                        else "mutual authentication with a wrong CAN")
                sample = _pace_until_tokens(ctx, session.protocol, timed, password, pace,
                                            alter_token=altered, note=note)
                samples[altered].append(sample)
                counter_seen = counter_seen or (sample[0] is not None and _is_counter(sample[0]))
            if counter_seen:
                break  # a card counting CAN failures: stop before it blocks
    wrong_words = sorted({sw for sw, _ in samples[False]}, key=_word)
    token_words = sorted({sw for sw, _ in samples[True]}, key=_word)
    wrong_ms = [ms for _, ms in samples[False] if ms is not None]
    token_ms = [ms for _, ms in samples[True] if ms is not None]
    figures.update({"wrong_can": _words(wrong_words), "bad_token": _words(token_words),
                    "samples": len(samples[False])})
    problems = []
    if sm_words["mac"] != sm_words["cryptogram"]:
        problems.append(
            f"an altered cryptogram answers {_word(sm_words['cryptogram'])} where an altered MAC answers "
            f"{_word(sm_words['mac'])}: the answer depends on the decrypted padding (a padding oracle)"
        )
    odd = [f"{kind} {_word(sw)}" for kind, sw in sm_words.items() if sw not in SM_ERROR_WORDS]
    if odd:
        problems.append(f"secure messaging failures not answered 6987/6988: {', '.join(odd)}")
    if len(wrong_words) > 1:
        problems.append(f"the answer to a wrong CAN varies with the guess ({_words(wrong_words)})")
    if wrong_words != token_words:
        problems.append(
            f"a wrong CAN answers {_words(wrong_words)} where an altered token answers {_words(token_words)}"
        )
    if wrong_ms and token_ms:
        wrong_median, token_median = statistics.median(wrong_ms), statistics.median(token_ms)
        bound = max(TIMING_FLOOR_MS, TIMING_SHARE * max(wrong_median, token_median))
        figures.update({"wrong_can_ms": round(wrong_median, 3), "bad_token_ms": round(token_median, 3),
                        "timing_bound_ms": round(bound, 3)})
        if abs(wrong_median - token_median) > bound:
            problems.append(
                f"a wrong CAN takes {wrong_median:.1f} ms (median) where an altered token takes "
                f"{token_median:.1f} ms: the time tells them apart"
            )
    if counter_seen:
        figures["stopped"] = "the card counts CAN failures: sampling stopped"
    if problems:
        return Finding.failed("; ".join(problems), **figures)
    return Finding.passed(
        f"secure messaging failures all answer {_words(sorted(set(sm_words.values())))}; wrong CAN and "
        f"altered token alike ({_words(wrong_words)}, same time within the bound)",
        **figures,
    )


# --- KEY-ENTROPY -------------------------------------------------------------------------------------

def can_entropy_bits(can: str) -> float:
    """Bits of the CAN space: digits for a numeric CAN, else upper case letters and digits."""
    alphabet = 10 if can.isdigit() else 36
    return len(can) * math.log2(alphabet)


@audit_test("KEY-ENTROPY", "The CAN is not derived from public data", Threat.SKIMMING)
def key_entropy(ctx: AuditContext) -> Finding:
    """Skimming: compares the CAN given to the audit with DG1 as read with it. Passes when the CAN
    has at least 6 digits and is not a substring of the NIK or of the NIK reversed, not made from
    the date of birth (DDMMYY, YYMMDD, DDMMYYYY and the like), not one repeated digit nor a run;
    the figures give the entropy of the CAN space."""
    can = ctx.options.can
    personal = decode_dg1(_dg1(ctx))
    bits = can_entropy_bits(can)
    figures: dict[str, float | int | str] = {
        "can_length": len(can), "entropy_bits": round(bits, 2), "candidates": round(2**bits),
    }
    problems = can_weaknesses(can, personal)
    if problems:
        return Finding.failed("; ".join(problems), **figures)
    return Finding.passed(
        f"a {len(can)}-character CAN ({bits:.1f} bits) not found in the NIK or the date of birth", **figures
    )


# --- RELAY-LATENCY -----------------------------------------------------------------------------------

#: Power-ups RELAY-LATENCY times; each kind of answer is judged on its median over them.
RELAY_SESSIONS = 3


def _relay_samples(timed: _Timed) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    pace_step = 0
    for t in timed.log:
        if t.phase == "pace" and t.ins == _GENERAL_AUTHENTICATE:
            pace_step += 1
            out.setdefault(f"pace_ga{pace_step}", []).append(t.millis)
        elif t.phase == "ca" and t.ins == _GENERAL_AUTHENTICATE:
            out.setdefault("ca_ga", []).append(t.millis)
        elif t.phase == "aa" and t.ins == 0x88:
            out.setdefault("aa_internal_authenticate", []).append(t.millis)
        elif t.phase == "read" and t.ins == 0xB0:
            out.setdefault("read_binary", []).append(t.millis)
    return out


@audit_test("RELAY-LATENCY", "Answers within the relay bound", Threat.COUNTERFEIT)
def relay_latency(ctx: AuditContext) -> Finding:
    """Counterfeit, relay: times, over 3 power-ups, the chip's answers to PACE's GENERAL AUTHENTICATE
    steps, READ BINARY of DG1, INTERNAL AUTHENTICATE (Active Authentication) and Chip
    Authentication's GENERAL AUTHENTICATE. Passes when the slowest median stays below
    options.relay_bound_ms; a card answering through a relay fails. This is the time the reader's
    host sees, not a distance bound: that needs ISO/IEC 14443 frame timing measured in the reader."""
    bound = ctx.options.relay_bound_ms
    samples: dict[str, list[float]] = {}
    dg14: bytes | None = None
    dg15: bytes | None = None
    for index in range(RELAY_SESSIONS):
        with ctx.session() as raw:
            timed = _Timed(raw)
            session = _open(timed)
            timed.phase = "pace"
            ctx.recorder.note("PACE, timed")
            _authenticate(session, ctx.options.can)
            timed.phase = ""
            _application(session)
            if index == 0:
                dg14, dg15 = _optional(session, "DG14"), _optional(session, "DG15")
            timed.phase = "read"
            ctx.recorder.note("READ BINARY DG1, timed")
            session.read(_file("DG1"))
            parsed, _ = decode_dg14(dg14) if dg14 is not None else (None, None)
            if dg15 is not None:
                timed.phase = "aa"
                ctx.recorder.note("INTERNAL AUTHENTICATE, timed")
                run_active_authentication(session.protocol, dg15, parsed)
            if parsed is not None:
                timed.phase = "ca"
                ctx.recorder.note("Chip Authentication, timed")
                run_chip_authentication(session.protocol, parsed)
            timed.phase = ""
        for kind, values in _relay_samples(timed).items():
            samples.setdefault(kind, []).extend(values)
    medians = {kind: statistics.median(values) for kind, values in sorted(samples.items())}
    if not medians:
        raise PaceError("no authentication command was answered to time")
    slowest = max(medians, key=lambda kind: medians[kind])
    figures: dict[str, float | int | str] = {
        **{f"{kind}_ms": round(ms, 3) for kind, ms in medians.items()},
        "slowest": slowest, "slowest_ms": round(medians[slowest], 3), "bound_ms": bound,
        "power_ups": RELAY_SESSIONS,
    }
    if "ca_ga" not in medians:
        figures["ca_ga_ms"] = "n/a"
    if "aa_internal_authenticate" not in medians:
        figures["aa_internal_authenticate_ms"] = "n/a"
    if medians[slowest] >= bound:
        return Finding.failed(
            f"{slowest} answers in {medians[slowest]:.1f} ms (median), beyond the bound of {bound:g} ms: "
            "a relay, or a chip too slow to tell from one",
            **figures,
        )
    return Finding.passed(
        f"the slowest answer ({slowest}) takes {medians[slowest]:.1f} ms (median), within {bound:g} ms",
        **figures,
    )


def _optional(session: CardSession, name: str) -> bytes | None:
    try:
        return session.read(_file(name))
    except ApduError:
        return None
