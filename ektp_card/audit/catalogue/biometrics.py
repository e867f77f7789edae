"""Audit tests: on-card fingerprint comparison (docs/on-card-comparison.md).

A card that offers on-card comparison (an OnCardComparisonInfo in DG14) keeps its fingerprint
reference in EF.BIOREF, which no command may return, and compares captures sent with VERIFY only for
a terminal with the verify-biometric right, under secure messaging, never answering a score, and
always in the same time. BIO-MOC tries all of that without spending a try for good; BIO-MOC-BLOCK
(destructive) spends them all and checks that the card blocks.

The captures (the holder's, given by the reviewer, and the synthetic ones made here) travel only
inside VERIFY, whose evidence is redacted (ektp_card.log: INS 21 is sensitive).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.sw import SW
from ektp_card.audit.engine import AuditContext, Finding, Threat, audit_test
from ektp_card.crypto.ta import EphemeralKey, terminal_authenticate
from ektp_card.errors import EktpError, LdsFormatError
from ektp_card.lds.biometrics import MinutiaeRecord, MinutiaType
from ektp_card.lds.compact import (
    MAX_MINUTIAE,
    REFERENCE_FID,
    TAG_BIT,
    VERIFY_P2,
    CompactMinutia,
    compact_from_record,
    encode_capture,
    offers_on_card_comparison,
)
from ektp_card.lds.dg14 import Dg14
from ektp_card.lds.ektp import EKTP_APPLICATION, EKTP_DF_FID
from ektp_card.pki.cvc import EKTP_RIGHTS, VERIFY_BIOMETRIC
from ektp_card.session.card import CardSession, Credentials
from ektp_card.verify.chip import run_chip_authentication

INS_VERIFY = 0x21
#: Rounds of the timing measure: each a far-off miss, a match, a near miss and a match (a match
#: gives the tries back, so the run spends none for good).
TIMING_ROUNDS = 6
#: A difference of median response times above this (and above :data:`TIMING_SHARE` of the median)
#: tells captures apart by their closeness.
TIMING_FLOOR_MS = 5.0
TIMING_SHARE = 0.05
#: Short EF identifiers READ BINARY can name (ISO/IEC 7816-4).
_SFIS = range(1, 31)


def _sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big") if len(response) >= 2 else 0


def _answer(response: ResponseApdu | None) -> str:
    return "secure messaging ended" if response is None else f"{response.sw:04X}"


def _verify_apdu(data: bytes) -> CommandApdu:
    return CommandApdu(0x00, INS_VERIFY, 0x00, VERIFY_P2, data, sensitive=True)


def _far_capture(seed: int) -> bytes:
    """A synthetic capture of no one's finger: uniformly random minutiae."""
    rng = random.Random(seed)  # noqa: S311 - test data, not a secret
    minutiae = [CompactMinutia(rng.choice((MinutiaType.RIDGE_ENDING, MinutiaType.BIFURCATION)),
                               rng.randrange(40, 200), rng.randrange(40, 240), rng.randrange(64))
                for _ in range(40)]
    return encode_capture(minutiae)


def _near_capture(holder: tuple[CompactMinutia, ...], seed: int) -> bytes:
    """The holder's capture with most of its minutiae moved away: part of it still pairs, so its score
    is well above a stranger's and below the threshold."""
    rng = random.Random(seed)  # noqa: S311 - test data, not a secret
    kept = max(3, len(holder) // 4)
    moved = [CompactMinutia(m.type, rng.randrange(256), rng.randrange(256), rng.randrange(64))
             for m in holder[kept:]]
    return encode_capture([*holder[:kept], *moved][:MAX_MINUTIAE])


@dataclass
class _Run:
    """One card session of the test: PACE done, the application selected, DG14 read."""

    session: CardSession
    dg14: Dg14 | None


@contextmanager
def _pace(ctx: AuditContext, note: str) -> Iterator[_Run]:
    with ctx.session() as transport:
        session = CardSession(transport)
        session.discover()
        ctx.recorder.note(note)
        session.authenticate(Credentials(can=ctx.options.can), (EKTP_APPLICATION,))
        if session.application is None:
            session.select_application((EKTP_APPLICATION,))
        dg14 = None
        ref = EKTP_APPLICATION.file("DG14")
        if ref is not None:
            try:
                dg14 = Dg14.decode(session.read(ref))
            except (EktpError, LdsFormatError):
                dg14 = None
        yield _Run(session, dg14)


def _terminal_has_right(ctx: AuditContext) -> bool:
    terminal = ctx.options.terminal
    bit = EKTP_RIGHTS[VERIFY_BIOMETRIC]
    return terminal is not None and all(c.ektp_rights >> bit & 1 for c in terminal.chain)


def _eac(ctx: AuditContext, run: _Run, *, chip: bool = True) -> str | None:
    """Terminal Authentication with the audit's terminal, then (``chip``) Chip Authentication with its
    ephemeral key; ``None`` when done, else why not."""
    terminal = ctx.options.terminal
    pace = run.session.pace
    if terminal is None or pace is None or run.dg14 is None:
        return "no terminal, PACE or DG14"
    try:
        ephemeral = EphemeralKey.generate(run.dg14.ca_parameters().curve)
        ctx.recorder.note("Terminal Authentication")
        ta = terminal_authenticate(run.session.protocol, terminal.chain, terminal.signer,
                                   id_picc=pace.id_picc, ephemeral=ephemeral.compressed)
        if not ta.passed:
            return f"Terminal Authentication failed: {ta.reason}"
        if chip:
            _, ca = run_chip_authentication(run.session.protocol, run.dg14, key_source=ephemeral.key_source)
            if not ca.passed:
                return f"Chip Authentication failed: {ca.reason}"
    except EktpError as exc:
        return str(exc)
    return None


def _transmit(ctx: AuditContext, run: _Run, note: str, apdu: CommandApdu) -> ResponseApdu | None:
    """``apdu`` in the session's secure messaging; ``None`` when the answer did not verify (the card
    ended secure messaging)."""
    ctx.recorder.note(note)
    try:
        return run.session.protocol.transmit(apdu)
    except EktpError:
        return None


def _tries(ctx: AuditContext, run: _Run, note: str) -> int | None:
    """The card's retry counter (VERIFY without data), ``None`` if it did not say."""
    response = _transmit(ctx, run, note, _verify_apdu(b""))
    if response is None or response.sw & 0xFFF0 != 0x63C0:
        return None
    return response.sw & 0x0F


def _read_paths(ctx: AuditContext, run: _Run, leaks: list[str], where: str) -> int:
    """Every way a READ could name EF.BIOREF; each answer that hands out data is a leak. Returns how
    many attempts were made."""
    fid = REFERENCE_FID.to_bytes(2, "big")
    attempts: list[tuple[str, list[CommandApdu]]] = [
        ("SELECT EF.BIOREF by FID, READ BINARY", [CommandApdu(0x00, 0xA4, 0x02, 0x0C, fid),
                                                   CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256)]),
        ("SELECT EF.BIOREF by path, READ BINARY",
         [CommandApdu(0x00, 0xA4, 0x08, 0x0C, EKTP_DF_FID.to_bytes(2, "big") + fid),
          CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256)]),
        ("odd READ BINARY of EF.BIOREF", [CommandApdu(0x00, 0xB1, fid[0], fid[1], b"\x54\x01\x00", le=256)]),
        ("GET DATA 7F60", [CommandApdu(0x00, 0xCA, 0x7F, 0x60, le=256)]),
        ("GET DATA 5F2E", [CommandApdu(0x00, 0xCA, 0x5F, 0x2E, le=256)]),
    ]
    count = 0
    if run.session.application is None:
        run.session.select_application((EKTP_APPLICATION,))
    for what, apdus in attempts:
        response = None
        for apdu in apdus:
            response = _transmit(ctx, run, f"{what} {where}", apdu)
            count += 1
            if response is None:
                break
        if response is not None and response.data and response.sw in (SW.OK, SW.END_OF_FILE):
            leaks.append(f"{what} {where}: {len(response.data)} bytes")
        if response is None:
            return count  # secure messaging ended: the rest would be refused anyway
    for sfi in _SFIS:
        response = _transmit(ctx, run, f"READ BINARY SFI {sfi:02X} {where}",
                             CommandApdu(0x00, 0xB0, 0x80 | sfi, 0x00, le=256))
        count += 1
        if response is None:
            break
        if response.data[:2] == TAG_BIT.to_bytes(2, "big"):
            leaks.append(f"READ BINARY by SFI {sfi:02X} {where} gives a biometric information template")
    return count


@audit_test("BIO-MOC", "On-card comparison: reference unreadable, VERIFY guarded, no score",
            Threat.SKIMMING)
def bio_moc(ctx: AuditContext) -> Finding:
    """On a card whose DG14 offers on-card comparison: every read path to EF.BIOREF (SELECT by FID and
    by path then READ BINARY, the odd READ BINARY, GET DATA, every short EF identifier) after PACE
    and after Terminal and Chip Authentication must give no data; VERIFY must be refused in the clear,
    after PACE alone, after Terminal Authentication without Chip Authentication, and to a terminal
    without the verify-biometric right, and a plain VERIFY inside secure messaging must end it; none of
    this may spend a try. With the right, VERIFY answers carry no data. Given the holder's capture
    (``AuditOptions.fingerprint``), the response times of matches, near misses and far-off misses are
    compared: a difference beyond the jitter tells how close a capture came. Not applicable to a card
    that does not offer on-card comparison."""
    figures: dict[str, float | int | str] = {}
    leaks: list[str] = []
    with ctx.session() as transport:
        ctx.recorder.note("VERIFY in the clear")
        aid = EKTP_APPLICATION.aid
        transport.transceive(bytes((0x00, 0xA4, 0x04, 0x0C, len(aid))) + aid)
        clear = transport.transceive(_verify_apdu(_far_capture(1)).encode())
        figures["VERIFY in the clear"] = f"{_sw(clear):04X}"
        if _sw(clear) == SW.OK or _sw(clear) & 0xFFF0 == 0x63C0 or len(clear) > 2:
            leaks.append(f"VERIFY in the clear was not refused ({_sw(clear):04X})")
    with _pace(ctx, "PACE with the CAN") as run:
        if run.dg14 is None or not offers_on_card_comparison(run.dg14):
            return Finding.not_applicable("DG14 offers no on-card comparison")
        figures["read attempts after PACE"] = _read_paths(ctx, run, leaks, "after PACE")
    with _pace(ctx, "PACE, then VERIFY without Terminal Authentication") as run:
        answer = _transmit(ctx, run, "VERIFY after PACE alone", _verify_apdu(_far_capture(2)))
        figures["VERIFY after PACE alone"] = _answer(answer)
        if answer is not None and answer.sw != SW.SECURITY_STATUS_NOT_SATISFIED:
            leaks.append(f"VERIFY after PACE alone answered {answer.sw:04X}, not 6982")
        ctx.recorder.note("plain VERIFY inside secure messaging")
        plain = run.session.protocol.transport.transceive(_verify_apdu(_far_capture(3)).encode())
        figures["plain VERIFY inside secure messaging"] = f"{_sw(plain):04X}"
        if _sw(plain) not in (SW.SM_DATA_OBJECTS_MISSING, SW.SM_DATA_OBJECTS_INCORRECT):
            leaks.append(f"a plain VERIFY inside secure messaging answered {_sw(plain):04X}")
    if ctx.options.terminal is None:
        figures["with a terminal"] = "n/a: no terminal given"
        return _finding(leaks, figures)
    with _pace(ctx, "PACE, Terminal Authentication, no Chip Authentication") as run:
        why = _eac(ctx, run, chip=False)
        if why is None:
            answer = _transmit(ctx, run, "VERIFY before Chip Authentication", _verify_apdu(_far_capture(4)))
            figures["VERIFY before Chip Authentication"] = _answer(answer)
            if answer is not None and answer.sw != SW.SECURITY_STATUS_NOT_SATISFIED:
                leaks.append(f"VERIFY before Chip Authentication answered {answer.sw:04X}, not 6982")
    with _pace(ctx, "PACE, Terminal and Chip Authentication") as run:
        why = _eac(ctx, run)
        if why is not None:
            figures["with the terminal"] = f"not shown: {why}"
            return _finding(leaks, figures)
        figures["read attempts after EAC"] = _read_paths(ctx, run, leaks, "after EAC")
    with _pace(ctx, "PACE, Terminal and Chip Authentication") as run:
        _eac(ctx, run)
        if not _terminal_has_right(ctx):
            answer = _transmit(ctx, run, "VERIFY by a terminal without the right",
                               _verify_apdu(_far_capture(5)))
            figures["VERIFY without the verify-biometric right"] = _answer(answer)
            if answer is not None and answer.sw != SW.SECURITY_STATUS_NOT_SATISFIED:
                leaks.append(f"a terminal without the right got {answer.sw:04X} to VERIFY, not 6982")
            return _finding(leaks, figures)
        tries = _tries(ctx, run, "VERIFY without data: the retry counter")
        figures["tries left"] = "not told" if tries is None else tries
        if tries is None:
            leaks.append("VERIFY without data does not tell the tries left (63Cx)")
        _timing(ctx, run, tries, figures, leaks)
    return _finding(leaks, figures)


def _timing(ctx: AuditContext, run: _Run, tries: int | None, figures: dict[str, float | int | str],
            leaks: list[str]) -> None:
    """Matches, near misses and far-off misses in turn, each miss followed by a match that gives the
    try back; the median response times must not tell them apart."""
    raw = ctx.options.fingerprint
    if raw is None:
        figures["timing"] = "n/a: no capture of the holder given"
        return
    if tries is None or tries < 2:
        figures["timing"] = "not measured: fewer than two tries left"
        return
    try:
        holder = compact_from_record(MinutiaeRecord.decode(raw))
    except LdsFormatError as exc:
        figures["timing"] = f"not measured: the holder's capture is unusable: {exc}"
        return
    match = encode_capture(holder)
    times: dict[str, list[float]] = {"match": [], "near miss": [], "far miss": []}

    def timed(kind: str, data: bytes) -> int | None:
        start = time.perf_counter()
        answer = _transmit(ctx, run, f"VERIFY ({kind})", _verify_apdu(data))
        millis = (time.perf_counter() - start) * 1000
        if answer is None:
            return None
        if answer.data:
            leaks.append(f"VERIFY answered {len(answer.data)} bytes of data ({kind})")
        times[kind if answer.sw != SW.OK or kind == "match" else "match"].append(millis)
        return answer.sw

    if timed("match", match) != SW.OK:
        figures["timing"] = "not measured: the holder's capture given does not match"
        return
    for round_ in range(TIMING_ROUNDS):
        misses = (("far miss", _far_capture(100 + round_)), ("near miss", _near_capture(holder, round_)))
        for kind, data in misses:
            if timed(kind, data) is None or timed("match", match) != SW.OK:
                figures["timing"] = "stopped: the card stopped answering or matching"
                return
    medians = {k: statistics.median(v) for k, v in times.items() if v}
    for kind, value in medians.items():
        figures[f"median ms ({kind})"] = round(value, 2)
    base = medians.get("far miss")
    if base is None:
        return
    allowed = max(TIMING_FLOOR_MS, TIMING_SHARE * base)
    for kind in ("match", "near miss"):
        if kind in medians and abs(medians[kind] - base) > allowed:
            leaks.append(f"VERIFY's response time tells a {kind} from a far-off miss: "
                         f"{medians[kind]:.1f} ms against {base:.1f} ms")
    after = _tries(ctx, run, "VERIFY without data: tries after the timing run")
    if after != tries:
        leaks.append(f"the retry counter went from {tries} to {after} over misses each followed by a match")


def _finding(leaks: list[str], figures: dict[str, float | int | str]) -> Finding:
    if leaks:
        return Finding.failed("; ".join(leaks), **figures)
    return Finding.passed("the reference is read by no command; VERIFY only under secure messaging for a "
                          "terminal with the right, without data, in the same time", **figures)


@audit_test("BIO-MOC-BLOCK", "On-card comparison blocks after its tries", Threat.ABUSE_OF_FUNCTIONS,
            destructive=True)
def bio_moc_block(ctx: AuditContext) -> Finding:
    """Destructive: far-off captures sent with VERIFY until the card blocks. Each miss must count the
    retry counter down by one (63Cx), the last answer 63C0, and from then on every VERIFY, the holder's
    capture included, 6983, also after a power cycle. Needs a terminal with the verify-biometric right;
    not applicable to a card that does not offer on-card comparison."""
    if not _terminal_has_right(ctx):
        return Finding.not_applicable("no terminal with the verify-biometric right given")
    figures: dict[str, float | int | str] = {}
    problems: list[str] = []
    with _pace(ctx, "PACE, Terminal and Chip Authentication") as run:
        if run.dg14 is None or not offers_on_card_comparison(run.dg14):
            return Finding.not_applicable("DG14 offers no on-card comparison")
        why = _eac(ctx, run)
        if why is not None:
            return Finding.not_applicable(f"no session with the right: {why}")
        tries = _tries(ctx, run, "VERIFY without data: the retry counter")
        if tries is None:
            return Finding.failed("VERIFY without data does not tell the tries left (63Cx)")
        figures["tries at the start"] = tries
        words = []
        for n in range(tries):
            answer = _transmit(ctx, run, "VERIFY (far-off capture)", _verify_apdu(_far_capture(200 + n)))
            sw = None if answer is None else answer.sw
            words.append("none" if sw is None else f"{sw:04X}")
            if sw != SW.counter(tries - n - 1):
                problems.append(f"miss {n + 1} answered {words[-1]}, not {SW.counter(tries - n - 1):04X}")
                break
        figures["answers"] = " ".join(words)
        blocked = _transmit(ctx, run, "VERIFY once blocked", _verify_apdu(_far_capture(300)))
        figures["after the last try"] = "none" if blocked is None else f"{blocked.sw:04X}"
        if blocked is None or blocked.sw != SW.AUTH_METHOD_BLOCKED:
            problems.append(f"after the last try VERIFY answered {figures['after the last try']}, not 6983")
    if ctx.options.fingerprint is not None:
        with _pace(ctx, "PACE, Terminal and Chip Authentication, after a power cycle") as run:
            _eac(ctx, run)
            capture = encode_capture(compact_from_record(MinutiaeRecord.decode(ctx.options.fingerprint)))
            answer = _transmit(ctx, run, "VERIFY with the holder's capture, blocked", _verify_apdu(capture))
            figures["holder's capture once blocked"] = "none" if answer is None else f"{answer.sw:04X}"
            if answer is None or answer.sw != SW.AUTH_METHOD_BLOCKED:
                problems.append("the holder's capture was not refused with 6983 once blocked")
    if problems:
        return Finding.failed("; ".join(problems), **figures)
    return Finding.passed(f"{tries} misses counted down to 63C0, then 6983 for good", **figures)


__all__ = ["TIMING_ROUNDS", "bio_moc", "bio_moc_block"]
