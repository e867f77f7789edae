"""What the fuzzing campaign found (docs/fuzzing.md), one test per finding: every parser given hostile
bytes returns a value or raises an error of the project's hierarchy, whose message is one printable
line and never quotes a secret."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from asn1crypto import cms, core  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card.apdu.command import CommandApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW
from ektp_card.apdu.tlv import Tlv
from ektp_card.crypto.ca import ID_PK_ECDH
from ektp_card.crypto.kdf import Cipher
from ektp_card.crypto.sm import CardSecureMessaging, SecureMessagingSession
from ektp_card.desk.batch import PrintedCard
from ektp_card.errors import (
    CardImageError,
    EktpError,
    LdsFormatError,
    PkiError,
    PrintJobError,
    RecordError,
    one_line,
)
from ektp_card.lds.card_access import CardAccess
from ektp_card.lds.dg14 import Dg14
from ektp_card.lds.profile import DEMO_AID, EF_LARGE_SFI
from ektp_card.lds.public_key import ID_EC_PUBLIC_KEY, decode_public_key_info, parameters_form
from ektp_card.lds.record import load_record, read_batch, record_from_mapping
from ektp_card.lds.sod import build_sod, parse_sod, unwrap
from ektp_card.log import printable
from ektp_card.pki.certs import issue_document_signer, issue_revocation_signer, load_certificate
from ektp_card.pki.cms import signed_data
from ektp_card.pki.cvc import Chat, encode_oid
from ektp_card.pki.masterlist import build_master_list
from ektp_card.pki.revocation import (
    OID_CARD_REVOCATION_LIST,
    RevokedCard,
    RevokedState,
    _RevocationList,
    build_revocation_list,
    parse_revocation_list,
)
from ektp_card.pki.trust import TrustStore, load_master_list
from ektp_card.verify.passive import Policy, passive_authentication
from ektp_card.virtual import demo_card, image
from ektp_card.virtual.demo import LARGE_CONTENT

if TYPE_CHECKING:
    from fixtures.document_pki import Key, PkiFactory

T0 = dt.datetime(2026, 1, 15, 8, 0, 0, tzinfo=dt.UTC)

DEEP_JSON = "[" * 100_000 + "]" * 100_000
LONG_NUMBER = "1" * 100_000


def one_line_error(exc: pytest.ExceptionInfo[EktpError]) -> str:
    message = str(exc.value)
    assert "\n" not in message and "\r" not in message, message
    message.encode("utf-8")  # no lone surrogates
    return message


# --- asn1crypto's messages and exceptions --------------------------------------------------------------


def test_one_line_drops_asn1crypto_parsing_context() -> None:
    error = ValueError("Insufficient data - 1 bytes requested\n    while parsing a.B\n    while parsing c.D")
    assert one_line(error) == "Insufficient data - 1 bytes requested"
    assert one_line(ValueError("")) == "ValueError"


@pytest.mark.parametrize("data", [b"\x31\x03\x30\x01\x06", bytes.fromhex("3108300606042a0304")])
def test_truncated_security_infos_give_a_one_line_error(data: bytes) -> None:
    with pytest.raises(LdsFormatError) as exc:
        CardAccess.decode(data)
    assert one_line_error(exc).startswith("malformed SecurityInfos: Insufficient data")


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("311430800607003080060700d8c50100300221000000"),  # found by the campaign
        bytes.fromhex("310c30800603120304020102" "0000"),
    ],
)
def test_security_info_of_indefinite_length_is_malformed(data: bytes) -> None:
    # asn1crypto re-serialised such an element when it was kept, wrongly in the first case: the
    # EF.CardAccess decoded, but what it encoded to did not decode again.
    with pytest.raises(LdsFormatError) as exc:
        CardAccess.decode(data)
    assert one_line_error(exc) == "malformed SecurityInfos: an indefinite length, which DER does not allow"


def test_dg14_key_of_a_type_asn1crypto_cannot_read_is_malformed() -> None:
    # An ObjectDescriptor (tag 07) where the SubjectPublicKeyInfo goes: asn1crypto's .native raised
    # AttributeError from inside its lazy parsing.
    info = Tlv.of(0x30, Tlv(0x06, encode_oid(ID_PK_ECDH)), Tlv(0x07, b""))
    with pytest.raises(LdsFormatError) as exc:
        Dg14.decode(Tlv(0x6E, Tlv.of(0x31, info).encode()).encode())
    assert "ChipAuthenticationPublicKeyInfo" in one_line_error(exc)


def test_dg14_key_in_an_odd_encoding_re_encodes_as_read() -> None:
    # A constructed OBJECT IDENTIFIER where the key goes: asn1crypto's dump(force=True) re-serialised
    # it as 26 02 04 01, dropping a byte, so DG14 no longer matched its hash after decode and encode.
    key = bytes.fromhex("26030401aa")
    info = Tlv.of(0x30, Tlv(0x06, encode_oid(ID_PK_ECDH)), key)
    data = Tlv(0x6E, Tlv.of(0x31, info).encode()).encode()
    dg14 = Dg14.decode(data)
    assert dg14.chip_authentication_public_keys[0].public_key_info == key
    assert dg14.encode() == data


def test_parameters_form_of_unparsable_ec_parameters_is_malformed() -> None:
    # Parameters that asn1crypto only parses when dumped (a constructed universal tag 0): the dump
    # ran outside the error handling.
    spki = Tlv.of(
        0x30, Tlv.of(0x30, Tlv(0x06, encode_oid(ID_EC_PUBLIC_KEY)), Tlv(0x20, b"")), Tlv(0x03, b"\x00\x04")
    ).encode()
    for parse in (parameters_form, decode_public_key_info):
        with pytest.raises(LdsFormatError) as exc:
            parse(spki)
        assert one_line_error(exc).startswith("malformed SubjectPublicKeyInfo")


# --- certificates inside signed files ------------------------------------------------------------------


def _revocation_list(pki: PkiFactory, key: Key) -> bytes:
    p = pki("secp384r1")
    rs_signer = key("secp384r1", 7)
    rs = issue_revocation_signer(p.csca_signer, p.csca, rs_signer.public_key, common_name="RS Hostile",
                                 not_before=T0 + dt.timedelta(days=1))
    entry = RevokedCard("ab" * 32, "00AA", RevokedState.LOST, T0 + dt.timedelta(days=2), "LP/1/2026")
    return build_revocation_list([entry], rs_signer, rs, sequence=1, this_update=T0 + dt.timedelta(days=3))


def test_certificate_name_with_a_string_of_unknown_type_is_malformed(pki: PkiFactory, key: Key) -> None:
    # cryptography parses names lazily and raised KeyError (the unknown tag) from subject, deep in
    # trust_problem() or to_json(); load_certificate parses them at once.
    data = _revocation_list(pki, key)
    at = data.find(b"RS Hostile")
    hostile = data[: at - 2] + b"\xc3" + data[at - 1 :]
    with pytest.raises(PkiError) as exc:
        parse_revocation_list(hostile)
    assert "a name holds a string of unknown type 195" in one_line_error(exc)


def _master_list(pki: PkiFactory, cscas: list[x509.Certificate] | None = None) -> tuple[bytes, TrustStore]:
    p = pki("secp384r1")
    return build_master_list(p.ds_signer, p.ds, cscas or [p.csca]), TrustStore((p.csca,))


def test_master_list_certificate_of_an_invalid_version_is_malformed(pki: PkiFactory) -> None:
    data, trust = _master_list(pki)
    version = data.find(bytes.fromhex("a003020102"))
    hostile = data[: version + 4] + b"\x2f" + data[version + 5 :]
    with pytest.raises(PkiError) as exc:
        load_master_list(hostile, trust)
    message = one_line_error(exc)
    assert message == "malformed master list: malformed certificate: 47 is not a valid X509 version"


def test_master_list_certificate_with_a_repeated_extension_is_malformed(pki: PkiFactory) -> None:
    p = pki("secp384r1")
    cert = asn1_x509.Certificate.load(p.csca.public_bytes(Encoding.DER))
    extensions = cert["tbs_certificate"]["extensions"]
    extensions.append(extensions[0].copy())
    twice = x509.load_der_x509_certificate(cert.dump(force=True))
    data, trust = _master_list(pki, [twice])
    with pytest.raises(PkiError) as exc:
        load_master_list(data, trust)
    assert "malformed certificate" in one_line_error(exc)


def test_master_list_signer_key_off_its_curve_is_refused(pki: PkiFactory) -> None:
    data, trust = _master_list(pki)
    point = pki("secp384r1").ds.public_key().public_bytes(Encoding.X962, _uncompressed())
    at = data.find(point)
    hostile = data[: at + 10] + bytes([data[at + 10] ^ 1]) + data[at + 11 :]
    with pytest.raises(PkiError) as exc:
        load_master_list(hostile, trust)
    assert one_line_error(exc).startswith("master list signer key is unusable")


def _uncompressed() -> object:
    from cryptography.hazmat.primitives.serialization import PublicFormat

    return PublicFormat.UncompressedPoint


def test_load_certificate_reports_one_line() -> None:
    with pytest.raises(ValueError, match="^malformed certificate: ") as exc:
        load_certificate(bytes.fromhex("3003020100"))
    assert "\n" not in str(exc.value)


# --- names from a card in reports ----------------------------------------------------------------------


def test_printable_escapes_line_breaks_controls_and_lone_surrogates() -> None:
    assert printable("CN=DS Jakarta") == "CN=DS Jakarta"
    assert printable("CN=DS\nFuzz\x00\ud800") == "CN=DS\\nFuzz\\x00\\ud800"


def test_passive_authentication_reports_a_signer_name_with_a_line_break_on_one_line(
    pki: PkiFactory, key: Key
) -> None:
    p = pki("secp384r1")
    signer = key("secp384r1", 8)
    ds = issue_document_signer(p.csca_signer, p.csca, signer.public_key, common_name="DS\nHostile",
                               not_before=T0 + dt.timedelta(days=1))
    groups = {1: b"\x61\x03\x01\x02\x03", 2: b"\x75\x01\x00"}
    sod = build_sod(groups, signer, ds, signing_time=T0 + dt.timedelta(days=2))
    result = passive_authentication(sod, groups, TrustStore((p.csca,)), Policy(at=T0 + dt.timedelta(days=3)))
    texts = [c.reason for c in result.checks]
    assert "signed by CN=DS\\nHostile,C=ID" in texts
    assert not any("\n" in t for t in texts)


# --- JSON files: records, card images, print jobs ------------------------------------------------------


@pytest.mark.parametrize("text", [DEEP_JSON, LONG_NUMBER, '{"nik": ' + LONG_NUMBER + "}"])
def test_record_json_nested_too_deep_or_with_a_huge_number_is_a_record_error(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "record.json"
    path.write_text(text)
    with pytest.raises(RecordError) as exc:
        load_record(path)
    assert exc.value.rules == ("record.json",)
    one_line_error(exc)


def test_batch_line_nested_too_deep_is_a_row_error(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    path.write_text(DEEP_JSON + "\n" + LONG_NUMBER + "\n")
    rows = list(read_batch(path))
    assert [(r.line, r.error.rules if r.error else None) for r in rows] == [
        (1, ("record.json",)), (2, ("record.json",))]


def test_unknown_record_field_is_named_on_one_line() -> None:
    with pytest.raises(RecordError) as exc:
        record_from_mapping({"bad\nfield\ud800" + "x" * 100: 1})
    assert exc.value.violations[0].field.startswith("bad\\nfield\\ud800x")
    assert len(exc.value.violations[0].field) <= 60
    one_line_error(exc)


@pytest.mark.parametrize("name", ["face\x00.jpg", "face\ud800.jpg"])
def test_binary_file_name_with_a_nul_or_a_lone_surrogate_is_a_violation(tmp_path: Path, name: str) -> None:
    with pytest.raises(RecordError) as exc:
        record_from_mapping({"face": name}, tmp_path)
    assert "face.file" in exc.value.rules
    one_line_error(exc)


def test_binary_file_that_is_not_a_regular_file_is_not_read(tmp_path: Path) -> None:
    # /dev/zero reports size 0 and never ends; a FIFO blocks on open until a writer comes.
    fifo = tmp_path / "face.fifo"
    os.mkfifo(fifo)
    with pytest.raises(RecordError) as exc:
        record_from_mapping({"face": "/dev/zero", "signature": str(fifo)}, tmp_path)
    problems = {v.rule: v.message for v in exc.value.violations}
    assert problems["face.file"] == "/dev/zero is not a regular file"
    assert problems["signature.file"].endswith("face.fifo is not a regular file")


@pytest.mark.parametrize("text", [DEEP_JSON, LONG_NUMBER])
def test_card_image_nested_too_deep_or_with_a_huge_number_is_corrupt(text: str) -> None:
    with pytest.raises(CardImageError, match="not a JSON document"):
        image.decode(text.encode())


def _print_job() -> dict[str, object]:
    return {"serial": "0011223344556677", "can": "918273", "nik": "3171015508900003", "synthetic": True,
            "lines": [["NIK", "3171015508900003"]], "batch": "batch.jsonl", "line": 2}


@pytest.mark.parametrize(
    "change",
    [
        {"line": float("inf")},  # int(inf) raised OverflowError
        {"line": "2"},
        {"lines": [["NIK"]]},
        {"lines": "NI"},
        {"can": "٩١٨٢٧٣"},  # Arabic-Indic digits pass str.isdigit()
        {"serial": None},
        {"synthetic": "yes"},
    ],
)
def test_print_job_of_the_wrong_shape_is_a_print_job_error(change: dict[str, object]) -> None:
    data = json.dumps(_print_job() | change).encode()
    with pytest.raises(PrintJobError) as exc:
        PrintedCard.decode(data)
    assert "918273" not in one_line_error(exc)


@pytest.mark.parametrize("data", [b"\xff", b"[1]", DEEP_JSON.encode(), LONG_NUMBER.encode(), b"{"])
def test_print_job_that_is_not_a_json_object_is_a_print_job_error(data: bytes) -> None:
    with pytest.raises(PrintJobError) as exc:
        PrintedCard.decode(data)
    one_line_error(exc)
    assert isinstance(exc.value, ValueError)  # callers that caught ValueError still do


def test_print_job_written_is_read_back() -> None:
    printed = PrintedCard.decode(json.dumps(_print_job()).encode())
    assert PrintedCard.decode(printed.encode()) == printed
    assert "918273" not in repr(printed) and "918273" not in repr(dataclasses.replace(printed))


# --- times, numbers and texts read from signed files -------------------------------------------------

NAIVE_TIME = b"\x18\x0e20260117080000"  # GeneralizedTime without a zone
YEAR_ZERO = b"\x18\x0f00000117080000Z"  # asn1crypto reads it as its own extended_datetime


@pytest.mark.parametrize("time", [NAIVE_TIME, YEAR_ZERO])
def test_sod_signing_time_without_a_zone_is_malformed(pki: PkiFactory, time: bytes) -> None:
    # A naive signing time made Passive Authentication raise TypeError comparing it with the
    # certificates' validity.
    p = pki("secp384r1")
    groups = {1: b"\x61\x03\x01\x02\x03", 2: b"\x75\x01\x00"}
    info = cms.ContentInfo.load(unwrap(build_sod(groups, p.ds_signer, p.ds, signing_time=T0)))
    for attribute in info["content"]["signer_infos"][0]["signed_attrs"]:
        if attribute["type"].native == "signing_time":
            attribute["values"] = cms.SetOfTime([cms.Time.load(time)])
    sod = Tlv(0x77, info.dump()).encode()
    with pytest.raises(LdsFormatError, match="the signing time is not a time with its time zone"):
        parse_sod(sod)
    result = passive_authentication(sod, groups, TrustStore((p.csca,)), Policy(at=T0 + dt.timedelta(days=3)))
    assert result.checks[0].reason == "the signing time is not a time with its time zone"


def _signed_list(pki: PkiFactory, key: Key, **content: object) -> bytes:
    p = pki("secp384r1")
    rs_signer = key("secp384r1", 7)
    rs = issue_revocation_signer(p.csca_signer, p.csca, rs_signer.public_key, common_name="RS Hostile",
                                 not_before=T0 + dt.timedelta(days=1))
    values = {"version": 0, "issuer": asn1_x509.Name.load(rs.issuer.public_bytes()), "this_update": T0,
              "next_update": T0 + dt.timedelta(days=9), "sequence_number": 1, "revoked_cards": []} | content
    return signed_data(OID_CARD_REVOCATION_LIST, _RevocationList(values).dump(), rs_signer, rs,
                       hash_name="sha384", signing_time=T0 + dt.timedelta(days=3))


def test_revocation_list_time_of_year_zero_is_malformed(pki: PkiFactory, key: Key) -> None:
    # asn1crypto's extended_datetime broke describe() (TypeError from its __format__) and the
    # staleness check.
    with pytest.raises(PkiError) as exc:
        parse_revocation_list(_signed_list(pki, key, this_update=core.GeneralizedTime.load(YEAR_ZERO)))
    assert one_line_error(exc) == "malformed revocation list: thisUpdate is not a time with its time zone"


def test_revocation_list_sequence_number_beyond_20_octets_is_malformed(pki: PkiFactory, key: Key) -> None:
    # Python will not print an integer of more than 4300 digits: describe() raised ValueError.
    with pytest.raises(PkiError, match="sequence number is not a non-negative integer of at most 20 octets"):
        parse_revocation_list(_signed_list(pki, key, sequence_number=10**5000))


def test_revoked_card_line_and_errors_escape_the_serial_and_reason() -> None:
    card = RevokedCard("ab" * 32, "0A\n1B", RevokedState.LOST, T0, "LP/1\r\n2026")
    assert card.describe() == "card 0A\\n1B lost on 2026-01-15 (police report LP/1\\r\\n2026)"
    with pytest.raises(PkiError) as exc:
        RevokedCard("AB" * 32, "0A\n1B", RevokedState.LOST, T0)
    assert one_line_error(exc) == "card 0A\\n1B: the EF.SOD hash must be 64 lower-case hex digits"


def test_cv_certificate_oid_too_long_to_print_is_malformed() -> None:
    # An arc of more than 4300 decimal digits: str() raised ValueError out of Chat.decode.
    chat = Tlv.of(0x7F4C, Tlv(0x06, b"\xff" * 2100 + b"\x7f"), Tlv(0x53, b"\x01")).encode()
    with pytest.raises(LdsFormatError) as exc:
        Chat.decode(chat)
    assert one_line_error(exc) == "CHAT: object identifier longer than 128 bytes"


@pytest.mark.parametrize("fid", ["+101", "0_01", " 001", "-001"])
def test_card_image_file_identifier_is_exactly_four_hex_digits(fid: str) -> None:
    # int(text, 16) took a sign, an underscore or a space: "+101" made a second EF 0101.
    doc = json.loads(image.encode(image.CardImage(demo_card().config, demo_card().fs, {})))
    doc["mf"]["children"][0]["fid"] = fid
    with pytest.raises(CardImageError) as exc:
        image.decode(json.dumps(doc).encode())
    assert one_line_error(exc).endswith(f"file identifier {fid!r} is not four hex digits")


def test_card_image_status_word_is_exactly_four_hex_digits() -> None:
    card = demo_card()
    doc = json.loads(image.encode(image.CardImage(card.config, card.fs, {})))
    doc["config"]["behaviour"]["error_words"] = {"sm-mac": "+6_9"}
    with pytest.raises(CardImageError, match="status word for 'sm-mac' is not four hex digits"):
        image.decode(json.dumps(doc).encode())


# --- the virtual card ----------------------------------------------------------------------------------


def test_protected_answer_with_a_warning_longer_than_ne_is_split_not_cut() -> None:
    # Found by fuzzing: 240 bytes up to the end of the file (6282) protect to 275, more than Ne 256 of
    # the short protected command; the card cut the answer (its MAC with it) instead of announcing the
    # rest with 61xx, so the terminal could not verify it.
    card = demo_card()
    card.transceive(CommandApdu(0x00, 0xA4, 0x04, 0x0C, DEMO_AID).encode())
    key = bytes(range(16))
    card.security.open_channel(CardSecureMessaging(Cipher.AES128, key, key, 0))
    protocol = ApduProtocol(card)
    protocol.secure_messaging = SecureMessagingSession(Cipher.AES128, key, key, 0)
    offset = len(LARGE_CONTENT) - 240
    read = CommandApdu(0x00, 0xB0, 0x80 | EF_LARGE_SFI, 0, le=255)
    protocol.send(read)  # selects EF.LARGE by its SFI
    answer = protocol.send(read.with_(p1=offset >> 8, p2=offset & 0xFF),
                           allow=frozenset({SW.END_OF_FILE}))
    assert (answer.data, answer.sw) == (LARGE_CONTENT[offset:], SW.END_OF_FILE)
