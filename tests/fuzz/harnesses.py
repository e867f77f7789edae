"""One fuzz target per parser of the library: ``target(data: bytes) -> None``.

Each target feeds ``data`` to its parser and to what a caller does next with the value (round trips
the module promises, the accessors a verifier uses) and enforces the contract of
:mod:`contract`: a value or an :class:`~ektp_card.errors.EktpError` with a one-line message, nothing
else. The same targets run under atheris (``bench/fuzz.py``, a timed campaign) and in the test suite
(``tests/fuzz/test_replay.py``: the corpus, then a short hypothesis run).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from contract import ContractViolation, check_message, parse, require

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.iso7816 import CardInfo
from ektp_card.apdu.tlv import Tlv, encoded_size, parse_dict, parse_list, unpack
from ektp_card.apdu.transport import Transport
from ektp_card.crypto.mrz import MrzInfo, check_digit
from ektp_card.crypto.sm import CardSecureMessaging, SecureMessagingSession
from ektp_card.desk.batch import PrintedCard
from ektp_card.ec import Curve
from ektp_card.errors import ApduFormatError, CardRemovedError, EktpError, SecureMessagingError
from ektp_card.lds.biometrics import FaceRecord, MinutiaeRecord, face_template, finger_template
from ektp_card.lds.card_access import CardAccess
from ektp_card.lds.card_security import OID_SECURITY_OBJECT, parse_card_security
from ektp_card.lds.compact import (
    compact_from_record,
    decode_capture,
    decode_minutiae,
    decode_reference_file,
    encode_capture,
    encode_minutiae,
    encode_reference_file,
    record_from_compact,
)
from ektp_card.lds.dg14 import Dg14
from ektp_card.lds.dg15 import Dg15
from ektp_card.lds.ektp import Com, decode_dg1, decode_dg2, decode_dg3, decode_dg7, encode_dg1
from ektp_card.lds.emrtd import decode_emrtd_dg1, parse_mrz_fields
from ektp_card.lds.images import displayed_signatures, image_format, image_size
from ektp_card.lds.jpeg import jpeg_info
from ektp_card.lds.public_key import decode_public_key_info, parameters_form
from ektp_card.lds.record import CitizenRecord, count_records, load_record, read_batch
from ektp_card.lds.sod import LdsSecurityObject, parse_sod, unwrap
from ektp_card.pki.cvc import CertificateBody, Chat, CvCertificate, CvPublicKey, verify_chain
from ektp_card.pki.ldif import parse_ldif
from ektp_card.pki.revocation import parse_revocation_list
from ektp_card.pki.trust import TrustStore, load_master_list
from ektp_card.pki.trust_import import plan_import
from ektp_card.verify.passive import Policy, passive_authentication, signed_object_authentication
from ektp_card.virtual import VirtualCard, image

#: Seconds of the verifier's clock in every harness (the world's certificates are valid then).
_AT = dt.datetime(2026, 1, 8, 8, 0, 0, tzinfo=dt.UTC)


def _text(data: bytes) -> str:
    """Text as a hostile file could hold it: UTF-8 with lone surrogates allowed, else Latin-1."""
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# --- wire ------------------------------------------------------------------------------------------


def fuzz_tlv(data: bytes) -> None:
    for strict in (True, False):
        parse(parse_list, data, strict=strict)
        parse(parse_dict, data, strict=strict)
        tlv = parse(Tlv.decode, data, strict=strict)
        if tlv is None:
            continue
        if strict:
            require(tlv.encode() == data, "a strict BER-TLV object does not re-encode to its bytes")
        if tlv.constructed:
            parse(lambda t=tlv: t.children)  # type: ignore[misc]
    parse(unpack, 0x77, data)
    # The header alone (what the reader uses to read on): never an exception, and it agrees with a
    # full decode wherever there is one.
    size = encoded_size(data)
    require(size is None or size >= 2, f"encoded size {size}")
    whole = parse(Tlv.decode, data, strict=False)
    require(whole is None or size == len(data), "encoded_size disagrees with a whole object")


def fuzz_apdu(data: bytes) -> None:
    command = parse(CommandApdu.decode, data)
    if command is not None:
        require(command.encode() == data, "a command APDU does not re-encode to its bytes")
        require(1 <= command.case <= 4, "command case outside 1..4")
    response = parse(ResponseApdu.decode, data)
    if response is not None:
        require(response.encode() == data, "a response APDU does not re-encode to its bytes")
        require(isinstance(response.meaning, str), "a status word has no meaning")


def fuzz_card_info(data: bytes) -> None:
    info = parse(CardInfo.parse, data)
    if info is not None:
        require(256 <= info.max_read <= 65536, f"EF.ATR/INFO gives a read size of {info.max_read}")


# --- LDS ---------------------------------------------------------------------------------------------


def fuzz_sod(data: bytes) -> None:
    parse(unwrap, data)
    parse(LdsSecurityObject.decode, data)
    sod = parse(parse_sod, data)
    if sod is not None:
        sod.signer_certificate()
    world = _world()
    result = passive_authentication(data, world.data_groups, world.trust, Policy(at=_AT))
    for check in result.checks:
        if check.reason is not None:
            check_message(ValueError(check.reason))


def fuzz_card_security(data: bytes) -> None:
    parsed = parse(parse_card_security, data)
    if parsed is None:
        return
    parsed.signed.signer_certificate()
    parsed.infos.chip_authentication_public_keys  # noqa: B018
    world = _world()
    what = ("EF.CardSecurity", OID_SECURITY_OBJECT, "id-SecurityObject")
    result = signed_object_authentication(parsed.signed, what, world.trust, Policy(at=_AT))
    for check in result.checks:
        check_message(ValueError(check.reason))


def fuzz_dg1(data: bytes) -> None:
    personal = parse(decode_dg1, data)
    if personal is not None:
        require(encode_dg1(personal) == data, "DG1 does not re-encode to its bytes")
        personal.violations(today=_AT.date())
        personal.card_lines()


def fuzz_emrtd_dg1(data: bytes) -> None:
    fields = parse(decode_emrtd_dg1, data)
    if fields is not None:
        fields.to_json()
        parse(lambda: fields.key)


def fuzz_dg2(data: bytes) -> None:
    parse(decode_dg2, data)


def fuzz_dg3(data: bytes) -> None:
    parse(decode_dg3, data)


def fuzz_dg7(data: bytes) -> None:
    parse(decode_dg7, data)


def fuzz_images(data: bytes) -> None:
    """The image headers of a DG2 face or a DG7 signature: a format and a size or ``None``, never an
    exception; the same bytes as DG7 described like ``ektp verify`` does."""
    kind = image_format(data)
    require(kind in ("jpeg", "jpeg2000", "unknown"), f"image format {kind!r}")
    size = image_size(data)
    require(size is None or (size[0] > 0 and size[1] > 0), f"image size {size}")
    for signature in parse(displayed_signatures, data) or ():
        text = signature.describe()
        require("\n" not in text and signature.format == image_format(signature.image), f"described {text!r}")


def fuzz_com(data: bytes) -> None:
    com = parse(Com.decode, data)
    if com is not None:
        require(com.encode() == data, "EF.COM does not re-encode to its bytes")


def fuzz_dg14(data: bytes) -> None:
    parse(Dg14.decode_security_infos, data)
    dg14 = parse(Dg14.decode, data)
    if dg14 is None:
        return
    # The infos keep their encodings and the SET header is written anew, so a file whose outer length
    # is not in its shortest form re-encodes to other bytes; what it re-encodes to must read the same.
    require(Dg14.decode(dg14.encode()) == dg14, "DG14 does not survive re-encoding")
    parse(dg14.ca_parameters)
    for key in dg14.chip_authentication_public_keys:
        parse(lambda k=key: k.public_key)  # type: ignore[misc]
    aa = dg14.active_authentication_info
    if aa is not None:
        parse(lambda: aa.hash_name)
    for pace in dg14.pace_infos:
        pace.supported  # noqa: B018 - an accessor a reader calls


def fuzz_dg15(data: bytes) -> None:
    dg15 = parse(Dg15.decode, data)
    if dg15 is not None:
        require(dg15.encode() == data, "DG15 does not re-encode to its bytes")
        parse(lambda: dg15.public_key)


def fuzz_public_key(data: bytes) -> None:
    parse(decode_public_key_info, data)
    parse(parameters_form, data)


def fuzz_card_access(data: bytes) -> None:
    access = parse(CardAccess.decode, data)
    if access is not None:
        require(CardAccess.decode(access.encode()) == access, "EF.CardAccess does not survive re-encoding")
        parse(access.choose_pace)
        for info in access.pace_infos:
            info.supported  # noqa: B018 - an accessor a reader calls


def fuzz_minutiae(data: bytes) -> None:
    record = parse(MinutiaeRecord.decode, data)
    if record is not None:
        require(record.encode() == data, "a minutiae record does not re-encode to its bytes")
        finger_template(record)


def fuzz_compact(data: bytes) -> None:
    """The on-card comparison objects: first byte 0 an EF.BIOREF, 1 a VERIFY data field, else bare
    compact minutiae (ISO/IEC 19794-2 compact card format)."""
    kind, body = (data[0], data[1:]) if data else (2, b"")
    if kind == 0:
        refs = parse(decode_reference_file, body)
        if refs is not None:
            require(encode_reference_file(refs) == body, "a reference file does not re-encode to its bytes")
            record_from_compact(refs[0].minutiae, refs[0].position)
    elif kind == 1:
        capture = parse(decode_capture, body)
        if capture is not None:
            require(encode_capture(capture) == body, "a VERIFY data field does not re-encode to its bytes")
            compact_from_record(record_from_compact(capture))
    else:
        minutiae = parse(decode_minutiae, body)
        if minutiae is not None:
            require(encode_minutiae(minutiae) == body, "compact minutiae do not re-encode to their bytes")


def fuzz_face(data: bytes) -> None:
    record = parse(FaceRecord.decode, data)
    if record is not None:
        require(record.encode() == data, "a facial record does not re-encode to its bytes")
        face_template(record)


def fuzz_jpeg(data: bytes) -> None:
    parse(jpeg_info, data)


def fuzz_mrz(data: bytes) -> None:
    text = _text(data)
    info = parse(MrzInfo.from_mrz, text)
    if info is not None:
        require(len(info.mrz_information) >= 24, "MRZ information too short")
    parse(parse_mrz_fields, text)
    parse(check_digit, text[:30])
    parse(MrzInfo, text[:9], text[9:15], text[15:21])


# --- PKI ---------------------------------------------------------------------------------------------


def fuzz_cvc(data: bytes) -> None:
    parse(CertificateBody.decode, data)
    parse(CvPublicKey.decode, data)
    parse(Chat.decode, data)
    cert = parse(CvCertificate.decode, data)
    if cert is None:
        return
    require(cert.encode() == data, "a CV certificate does not re-encode to its bytes")
    cert.chat.names  # noqa: B018 - an accessor a reader calls
    _ = cert.body.effective_date <= _AT.date() <= cert.body.expiration_date
    cvca = _world().cvca
    parse(cert.verify_signature, cvca.public_key, cvca.public_key.domain)
    parse(verify_chain, [cert], [cvca], at=_AT.date())


def fuzz_revocation_list(data: bytes) -> None:
    rl = parse(parse_revocation_list, data)
    if rl is None:
        return
    for problem in (parse(rl.trust_problem, _world().trust, _AT), rl.stale_problem(_AT)):
        if problem is not None:
            check_message(ValueError(problem))
    json.dumps(rl.to_json())
    # The clerk's lines: one line each, whatever the list holds.
    for line in (rl.describe(), *(entry.describe() for entry in rl.entries)):
        check_message(ValueError(line))
    rl.lookup(b"\x77\x00")


def fuzz_master_list(data: bytes) -> None:
    parse(load_master_list, data, _world().trust)
    _import(data)


def _import(data: bytes) -> None:
    """A trust import of ``data`` planned against a folder holding the world's CSCA (nothing written):
    every line of its report is one line."""
    report = parse(plan_import, data, _trust_folder(), at=_AT)
    if report is not None:
        for line in [*(i.reason for i in report.items), *(m.reason for m in report.master_lists)]:
            check_message(ValueError(line))
        json.dumps(report.to_json())


@cache
def _trust_folder() -> Path:
    from cryptography.hazmat.primitives.serialization import Encoding

    folder = _folder() / "trust"
    folder.mkdir(exist_ok=True)
    world = _world()
    assert isinstance(world.trust, TrustStore)
    (folder / "csca.pem").write_bytes(world.trust.cscas[0].public_bytes(Encoding.PEM))
    return folder


def fuzz_ldif(data: bytes) -> None:
    records = parse(parse_ldif, data)
    if records is not None:
        for record in records:
            require(record.dn.isprintable(), "a dn with control characters")
            _ = (record.country, record.values("userCertificate"))
    _import(data)


# --- files ---------------------------------------------------------------------------------------------


@cache
def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="ektp-fuzz-"))


def _check_record(record: CitizenRecord) -> None:
    # What issuing does next with an accepted record: DG1, the printed card and its print job.
    personal = record.personal
    require(decode_dg1(encode_dg1(personal)) == personal, "an accepted record does not survive DG1")
    record.to_mapping()
    printed = PrintedCard.of("0011223344556677", "123456", record, "batch", 1)
    require(PrintedCard.decode(printed.encode()) == printed, "a print job does not survive its file")


def fuzz_record(data: bytes) -> None:
    """First byte: 0 a JSON record, 1 JSON Lines, 2 CSV; the rest is the file."""
    kind = data[0] % 3 if data else 0
    suffix = (".json", ".jsonl", ".csv")[kind]
    path = _folder() / f"record{suffix}"
    path.write_bytes(data[1:])
    today = _AT.date()
    if kind == 0:
        record = parse(load_record, path, today=today)
        if record is not None:
            _check_record(record)
        return
    parse(count_records, path)
    rows = parse(lambda: list(read_batch(path, today=today)))
    for row in rows or ():
        if row.error is not None:
            check_message(row.error)
        if row.record is not None:
            _check_record(row.record)


def fuzz_print_job(data: bytes) -> None:
    can = None
    try:
        raw = json.loads(data)
        can = raw.get("can") if isinstance(raw, dict) else None
    except (ValueError, RecursionError):
        pass
    try:
        printed = PrintedCard.decode(data)
    except EktpError as exc:
        check_message(exc)
        # A real CAN (six digits or more) never shows in a message; shorter ones could be any word.
        if isinstance(can, str) and len(can) >= 6 and can.isdigit():
            require(can not in str(exc), "a print job error quotes the CAN")
        return
    require(PrintedCard.decode(printed.encode()) == printed, "a print job does not survive its file")
    require(repr(printed) == repr(dataclasses.replace(printed, can="0")), "a print job's repr shows the CAN")


def fuzz_card_image(data: bytes) -> None:
    loaded = parse(image.decode, data)
    if loaded is None:
        return
    card = VirtualCard(loaded.fs, loaded.config, keys=loaded.keys)
    for command in ("00A4000C", "00B0810000", "00A4040C09D360000000454B5450", "00B0000000", "0084000008"):
        _transceive(card, bytes.fromhex(command))
    require(image.decode(_world_image(card)).config == loaded.config, "a card image does not round-trip")


def _world_image(card: VirtualCard) -> bytes:
    return image.encode(image.CardImage(card.config, card.fs, dict(card.keys)))


# --- the virtual card OS ---------------------------------------------------------------------------


class _InternalErrors(logging.Handler):
    """Collects the exceptions the card swallowed into 6F00: each one is a bug to report."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@cache
def _internal_errors() -> _InternalErrors:
    handler = _InternalErrors()
    logger = logging.getLogger("ektp_card.virtual")
    logger.addHandler(handler)
    logger.propagate = False  # reported by the harness, not printed for every input
    return handler


def _valid_status(sw: int) -> bool:
    """ISO/IEC 7816-4 section 5.1.3: 9000, or SW1 61 to 6F (60 and 9xxx other than 9000 are not status)."""
    return sw == 0x9000 or 0x61 <= sw >> 8 <= 0x6F


def _transceive(card: VirtualCard, command: bytes) -> bytes:
    """Send one command; the card must answer a well-formed response with a status word, and never
    swallow an exception of its own into 6F00."""
    handler = _internal_errors()
    handler.records.clear()
    response = card.transceive(command)
    if handler.records:
        exc_info = handler.records[0].exc_info
        assert exc_info is not None and exc_info[1] is not None
        raise exc_info[1]
    require(isinstance(response, bytes) and len(response) >= 2, f"response of {len(response)} bytes")
    sw = int.from_bytes(response[-2:], "big")
    body = response[:-2]
    require(_valid_status(sw), f"status word {sw:04X} is not an ISO/IEC 7816-4 status")
    try:
        apdu = CommandApdu.decode(command)
    except ApduFormatError:
        require(not body, "a malformed command got response data")
        return response
    if apdu.le is not None:
        require(len(body) <= apdu.le, f"{len(body)} response bytes for Ne {apdu.le}")
    if not apdu.cla & 0x0C:
        # Protected answers carry DO99 and DO8E whatever the status; plain ones follow ISO/IEC 7816-4.
        require(not body or not 0x64 <= sw >> 8 <= 0x6F, f"error status {sw:04X} with {len(body)} data bytes")
        require(apdu.le is not None or not body, f"{len(body)} response bytes for a command without Le")
    return response


@dataclass(frozen=True)
class CardState:
    """A card to start each input from: its image, and the volatile state its session had (the
    current DF, what it proved, the secure messaging of both ends), copied in for each input."""

    name: str
    image: bytes
    df_path: tuple[int, ...]
    granted: frozenset[str]
    id_picc: bytes
    channel: CardSecureMessaging | None
    terminal: SecureMessagingSession | None
    #: The chip side of a Terminal Authentication run (the certificates and rights it proved).
    chip_ta: object | None = None

    def open(self) -> tuple[VirtualCard, SecureMessagingSession | None]:
        card = VirtualCard.loads(self.image)
        session = card.session
        df = card.fs.get(self.df_path) if self.df_path else card.fs.mf
        card.select(df)
        session.security.granted = set(self.granted)
        session.security.id_picc = self.id_picc
        session.security.terminal = copy.deepcopy(self.chip_ta)  # type: ignore[assignment]
        if self.channel is not None:
            session.security.open_channel(copy.copy(self.channel))
        return card, copy.copy(self.terminal)


def _snapshot(name: str, card: VirtualCard, terminal: SecureMessagingSession | None = None) -> CardState:
    session = card.session
    channel = session.security.channel
    assert channel is None or isinstance(channel, CardSecureMessaging)
    df = session.current_df
    return CardState(name, _world_image(card), df.path[1:] if df.parent is not None else (),
                     frozenset(session.security.granted), session.security.id_picc, copy.copy(channel),
                     copy.copy(terminal), copy.deepcopy(session.security.terminal))


#: The states an input may start from, by its first byte.
CARD_STATES = (
    "blank", "perso", "issued", "pace", "demo", "short", "deactivated", "terminated", "no-information", "eac",
)


@cache
def card_states() -> tuple[CardState, ...]:
    from world import CAN, MASTER, SERIAL, issued_card, terminal_pki

    from ektp_card.crypto.ta import EphemeralKey
    from ektp_card.lds.ektp import EKTP_APPLICATION
    from ektp_card.personalize.protocol import PersoSession
    from ektp_card.session.card import CardSession, Credentials
    from ektp_card.session.document import EktpSession
    from ektp_card.virtual import LifeCycle, demo_card
    from ektp_card.virtual.perso import blank_card

    states = {"blank": _snapshot("blank", blank_card(MASTER, SERIAL))}
    card = blank_card(MASTER, SERIAL)
    perso = PersoSession(card)
    perso.open()
    perso.authenticate(MASTER)
    states["perso"] = _snapshot("perso", card, perso.protocol.secure_messaging)  # type: ignore[arg-type]
    issued = issued_card().image
    states["issued"] = _snapshot("issued", VirtualCard.loads(issued))
    card = VirtualCard.loads(issued)
    reader = CardSession(card)
    reader.discover()
    reader.authenticate(Credentials(can=CAN))
    reader.select_application([EKTP_APPLICATION])
    states["pace"] = _snapshot("pace", card, reader.protocol.secure_messaging)  # type: ignore[arg-type]
    states["demo"] = _snapshot("demo", demo_card())
    states["short"] = _snapshot("short", demo_card(extended_length=False))
    for name, lcs in (("deactivated", LifeCycle.OPERATIONAL_DEACTIVATED),
                      ("terminated", LifeCycle.TERMINATED)):
        card = VirtualCard.loads(issued)
        card.fs.mf.lcs = lcs
        states[name] = _snapshot(name, card)
    no_information = VirtualCard.create(life_cycle=LifeCycle.NO_INFORMATION)
    states["no-information"] = _snapshot("no-information", no_information)
    # Extended Access Control: PACE, Terminal Authentication with the world's inspection system, then
    # Chip Authentication, whose keys replace PACE's; DG3 is open.
    card = VirtualCard.loads(issued)
    ektp = EktpSession(card)
    ektp.authenticate(CAN)
    dg14 = Dg14.decode(ektp.read_data_group(14))
    ephemeral = EphemeralKey.generate(dg14.ca_parameters().curve)
    terminals = terminal_pki()
    chain = [terminals.dv, terminals.terminal]
    ektp.terminal_authenticate(chain, terminals.terminal_signer, ephemeral).require()
    ektp.chip_authenticate(dg14, key_source=ephemeral.key_source).require()
    states["eac"] = _snapshot("eac", card, ektp.protocol.secure_messaging)  # type: ignore[arg-type]
    return tuple(states[name] for name in CARD_STATES)


#: What an input does with each of its commands (the low two bits of the command's mode byte).
RAW, PROTECT, PROTECT_AND_FLIP, POWER_CYCLE = range(4)
MAX_COMMANDS = 16


def card_input(state: str, commands: list[tuple[int, bytes]]) -> bytes:
    """An input of :func:`fuzz_virtual_card`: the state, then each command as its mode byte, its length
    (one byte, or FF and two bytes) and its bytes."""
    out = bytearray((CARD_STATES.index(state),))
    for mode, command in commands:
        out.append(mode)
        out += bytes((len(command),)) if len(command) < 0xFF else b"\xff" + len(command).to_bytes(2, "big")
        out += command
    return bytes(out)


def _commands(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 1
    for _ in range(MAX_COMMANDS):
        if pos + 2 > len(data):
            return
        mode, length = data[pos], data[pos + 1]
        pos += 2
        if length == 0xFF:
            length = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        yield mode, data[pos : pos + length]
        pos += length


def fuzz_virtual_card(data: bytes) -> None:
    """Random and mutated APDUs in one of :data:`CARD_STATES`, plain or protected with the session's
    secure messaging (then perhaps with one bit flipped): every answer must be a well-formed response
    with an ISO/IEC 7816-4 status word, and the card must never fail inside."""
    if not data:
        return
    states = card_states()
    card, terminal = states[data[0] % len(states)].open()
    for mode, command in _commands(data):
        kind = mode & 0x03
        if kind == POWER_CYCLE:
            card.power_off()
            card.power_on()
            terminal = None
        protected = False
        if kind in (PROTECT, PROTECT_AND_FLIP) and terminal is not None and not terminal.closed:
            try:
                command = terminal.wrap(CommandApdu.decode(command)).encode()
                protected = True
            except (ApduFormatError, SecureMessagingError):
                terminal = None
            if protected and kind == PROTECT_AND_FLIP:
                flipped = bytearray(command)
                flipped[(mode >> 2) % len(flipped)] ^= 1 << (mode >> 5)
                command = bytes(flipped)
        channel = card.security.channel
        response = _transceive(card, command)
        if protected and terminal is not None:
            try:
                terminal.unwrap(ResponseApdu.decode(response))
            except SecureMessagingError:
                # A card may refuse a command unprotected (a class byte it does not take, say); but
                # an answer it protected, whole, from a channel it kept open must verify.
                still_open = channel is not None and card.security.channel is channel
                answered = len(response) > 2 and response[-2] != 0x61
                require(not (still_open and kind == PROTECT and answered),
                        "a protected answer from an open channel does not verify")
                terminal = None


# --- the reader against a hostile card -------------------------------------------------------------------


class ScriptedCard:
    """A card that answers each command with the next response of a script, whatever was asked, and
    leaves the field when the script ends (as a card pulled away would)."""

    def __init__(self, responses: list[bytes]) -> None:
        self.responses = responses
        self.commands: list[bytes] = []

    def transceive(self, command: bytes) -> bytes:
        self.commands.append(command)
        if len(self.commands) > len(self.responses):
            raise CardRemovedError("the scripted card has no more answers")
        return self.responses[len(self.commands) - 1]


def reader_input(responses: list[bytes]) -> bytes:
    """An input of :func:`fuzz_reader`: each response with a two-byte length."""
    return b"".join(len(r).to_bytes(2, "big") + r for r in responses)


def _responses(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 2 <= len(data) and len(out) < 256:
        length = int.from_bytes(data[pos : pos + 2], "big")
        out.append(data[pos + 2 : pos + 2 + length])
        pos += 2 + length
    return out


def fixed_key(curve: Curve) -> int:
    """The terminal's PACE keys in the reader harness: fixed, so that a recorded session replays."""
    return 0x5EED_C0FFEE % curve.n


def reader_session(card: Transport) -> None:
    """What a reader does with an e-KTP: SELECT MF, EF.CardAccess and EF.ATR/INFO, PACE with the CAN
    (the terminal's keys from :func:`fixed_key`), the application, then EF.COM, DG1 and EF.SOD."""
    from world import CAN

    from ektp_card.crypto.pace import Password, perform_pace
    from ektp_card.lds.ektp import EKTP_APPLICATION, decode_dg1
    from ektp_card.session.card import CardSession

    reader = CardSession(card)
    reader.discover()
    if reader.card_access is None:
        return
    parameters, send_id = reader.card_access.choose_pace()
    perform_pace(reader.protocol, Password.can(CAN), parameters, send_parameter_id=send_id,
                 key_source=fixed_key)
    if reader.select_application([EKTP_APPLICATION]) is None:
        return
    for name in ("COM", "DG1", "SOD"):
        ref = EKTP_APPLICATION.file(name)
        assert ref is not None
        content = reader.read(ref)
        (Com.decode if name == "COM" else decode_dg1 if name == "DG1" else parse_sod)(content)


def fuzz_reader(data: bytes) -> None:
    """The reader's side against a card that answers anything (:func:`reader_session`); every failure
    must be an EktpError with a one-line message."""
    try:
        reader_session(ScriptedCard(_responses(data)))
    except EktpError as exc:
        check_message(exc)


# --- the world's fixed parts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _World:
    trust: object
    data_groups: dict[int, bytes]
    cvca: CvCertificate


@cache
def _world() -> _World:
    import world

    groups = {n: world.card_file(f"DG{n}") for n in (1, 2, 3, 7, 14, 15)}
    return _World(world.pki().trust, groups, world.terminal_pki().cvca)


# --- the registry ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Harness:
    name: str
    target: Callable[[bytes], None]
    #: Largest input the fuzzer makes (libFuzzer -max_len).
    max_len: int = 4096

    def setup(self) -> None:
        """Build the fixed world before the clock starts (and before the first input)."""
        if self.name == "virtual_card":
            card_states()
            _internal_errors()
        elif self.name in ("sod", "card_security", "cvc", "revocation_list", "master_list", "ldif"):
            _world()


HARNESSES: dict[str, Harness] = {
    h.name: h
    for h in (
        Harness("tlv", fuzz_tlv),
        Harness("apdu", fuzz_apdu, 66000),
        Harness("card_info", fuzz_card_info, 512),
        Harness("sod", fuzz_sod, 8192),
        Harness("card_security", fuzz_card_security, 4096),
        Harness("dg1", fuzz_dg1, 2048),
        Harness("emrtd_dg1", fuzz_emrtd_dg1, 512),
        Harness("dg2", fuzz_dg2, 8192),
        Harness("dg3", fuzz_dg3),
        Harness("dg7", fuzz_dg7),
        Harness("com", fuzz_com, 512),
        Harness("dg14", fuzz_dg14),
        Harness("dg15", fuzz_dg15, 2048),
        Harness("public_key", fuzz_public_key, 2048),
        Harness("card_access", fuzz_card_access, 2048),
        Harness("cvc", fuzz_cvc, 2048),
        Harness("minutiae", fuzz_minutiae),
        Harness("compact", fuzz_compact, 2048),
        Harness("face", fuzz_face, 8192),
        Harness("jpeg", fuzz_jpeg, 16384),
        Harness("images", fuzz_images, 16384),
        Harness("mrz", fuzz_mrz, 512),
        Harness("card_image", fuzz_card_image, 65536),
        Harness("record", fuzz_record, 65536),
        Harness("revocation_list", fuzz_revocation_list, 8192),
        Harness("print_job", fuzz_print_job, 8192),
        Harness("master_list", fuzz_master_list, 8192),
        Harness("ldif", fuzz_ldif, 16384),
        Harness("virtual_card", fuzz_virtual_card, 8192),
        Harness("reader", fuzz_reader, 8192),
    )
}

__all__ = ["HARNESSES", "ContractViolation", "Harness", "card_input"]
