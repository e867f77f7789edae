"""The fixed world the fuzz harnesses run in, built with the library itself: keys, certificates, an
issued card and the files it holds. The seeds of the corpus (tests/fuzz/corpus/) are real outputs
taken from here (:func:`seed_inputs`).

Keys are derived from fixed numbers, so a harness run later (or in another process) trusts the
certificates that signed the seeds written earlier: ECDSA signatures differ from run to run, the
keys and names do not.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
from dataclasses import dataclass
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.crypto.mrz import check_digit
from ektp_card.desk.batch import PrintedCard
from ektp_card.lds.ektp import EKTP_APPLICATION, LDS_VERSION, UNICODE_VERSION, Com
from ektp_card.lds.emrtd import encode_emrtd_dg1
from ektp_card.lds.profile import DEMO_AID
from ektp_card.lds.public_key import ParametersForm, encode_public_key_info, public_key_from
from ektp_card.lds.record import CitizenRecord
from ektp_card.lds.synthetic import synthetic_citizen
from ektp_card.personalize import Biometrics, DocumentSigner, personalize, plan_from_record
from ektp_card.pki import cvc
from ektp_card.pki.certs import create_csca, issue_document_signer, issue_revocation_signer
from ektp_card.pki.masterlist import build_master_list
from ektp_card.pki.revocation import RevokedCard, RevokedState, build_revocation_list, sod_sha256
from ektp_card.pki.signer import PrivateKeySigner
from ektp_card.pki.trust import TrustStore
from ektp_card.virtual import VirtualCard, demo_card, image
from ektp_card.virtual.atr import ef_atr_info
from ektp_card.virtual.config import CardConfig
from ektp_card.virtual.perso import blank_card

#: Everything is dated from here; the verifier's clock in the harnesses is T0 + 3 days.
T0 = dt.datetime(2026, 1, 5, 8, 0, 0, tzinfo=dt.UTC)
AT = T0 + dt.timedelta(days=3)
MASTER = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
SERIAL = bytes.fromhex("00112233445566F0")
CAN = "123456"


def _ec_signer(n: int, curve: ec.EllipticCurve | None = None) -> PrivateKeySigner:
    # Fixed private values: the same keys in every process (test data, not secrets).
    return PrivateKeySigner(ec.derive_private_key(0x5EED_0000 + n, curve or ec.SECP256R1()))


@dataclass(frozen=True)
class Pki:
    csca_signer: PrivateKeySigner
    csca: x509.Certificate
    ds_signer: PrivateKeySigner
    ds: x509.Certificate
    rs_signer: PrivateKeySigner
    rs: x509.Certificate
    ml_signer: PrivateKeySigner
    ml: x509.Certificate

    @property
    def trust(self) -> TrustStore:
        return TrustStore((self.csca,))


@cache
def pki() -> Pki:
    """A CSCA with a document signer, a revocation list signer and a master list signer."""
    csca_signer = _ec_signer(1)
    csca = create_csca(csca_signer, country="ID", common_name="CSCA Fuzz", not_before=T0,
                       serial_number=0x1001)
    ds_signer, rs_signer, ml_signer = _ec_signer(2), _ec_signer(3), _ec_signer(4)
    ds = issue_document_signer(csca_signer, csca, ds_signer.public_key, common_name="DS Fuzz",
                               not_before=T0 + dt.timedelta(days=1), serial_number=0x2001)
    rs = issue_revocation_signer(csca_signer, csca, rs_signer.public_key, common_name="RS Fuzz",
                                 not_before=T0 + dt.timedelta(days=1), serial_number=0x3001)
    ml = issue_document_signer(csca_signer, csca, ml_signer.public_key, common_name="ML Fuzz",
                               not_before=T0 + dt.timedelta(days=1), serial_number=0x4001)
    return Pki(csca_signer, csca, ds_signer, ds, rs_signer, rs, ml_signer, ml)


@dataclass(frozen=True)
class TerminalPki:
    cvca: cvc.CvCertificate
    dv: cvc.CvCertificate
    terminal: cvc.CvCertificate
    terminal_signer: PrivateKeySigner


@cache
def terminal_pki() -> TerminalPki:
    """A CVCA (brainpoolP256r1, as the card's trust point), a DV and an inspection system."""
    curve = ec.BrainpoolP256R1()
    ck, dk, tk = _ec_signer(11, curve), _ec_signer(12, curve), _ec_signer(13, curve)
    start = T0.date()
    rights = ["read-dg3", "read-dg4"]
    cvca = cvc.create_cvca(ck, holder="IDCVCA00001", terminal_type=cvc.TerminalType.IS, rights=rights,
                           effective=start, expiration=start + dt.timedelta(days=1095))
    dv = cvc.issue(ck, cvca, dk.public_key, holder="IDDVFUZ00001", role=cvc.Role.DV_DOMESTIC, rights=rights,
                   effective=start, expiration=start + dt.timedelta(days=90))
    term = cvc.issue(dk, dv, tk.public_key, holder="IDFUZZT00001", role=cvc.Role.TERMINAL, rights=rights,
                     effective=start, expiration=start + dt.timedelta(days=30))
    return TerminalPki(cvca, dv, term, tk)


@cache
def record() -> CitizenRecord:
    """A synthetic citizen with a small photo (synthetic test data)."""
    return synthetic_citizen(random.Random(3), photo_size=(24, 32)).record  # noqa: S311


@dataclass(frozen=True)
class IssuedCard:
    image: bytes
    can: str


@cache
def issued_card() -> IssuedCard:
    """A personalised, locked e-KTP (with a trust point for Terminal Authentication) and its files."""
    p = pki()
    card = blank_card(MASTER, SERIAL)
    # Both DG3 and EF.BIOREF: the harnesses read DG3, and VERIFY has a reference to refuse or compare.
    plan = plan_from_record(record(), can=CAN, cvca_certificate=terminal_pki().cvca,
                            today=AT.date(), biometrics=Biometrics.BOTH)
    personalize(card, plan, MASTER, DocumentSigner(p.ds_signer, p.ds), now=AT)
    return IssuedCard(card_image(card), CAN)


def card_image(card: VirtualCard) -> bytes:
    return image.encode(image.CardImage(card.config, card.fs, dict(card.keys)))


def card_file(name: str) -> bytes:
    """A file of the issued card by its profile name (``DG1``, ``EF.SOD``, ``EF.CardAccess``...)."""
    from ektp_card.lds.ektp import file_spec

    spec = file_spec(name)
    card = VirtualCard.loads(issued_card().image)
    df = card.fs.mf if spec.in_mf else card.fs.application(EKTP_APPLICATION.aid)
    ef = df.child_ef(spec.fid)
    assert ef is not None, name
    return bytes(ef.data)


# --- seeds ---------------------------------------------------------------------------------------------


def _td3() -> str:
    # ICAO Doc 9303-4 specimen layout, check digits computed.
    number, birth, expiry = "L898902C3", "740812", "120415"
    upper = "P<UTOERIKSSON<<ANNA<MARIA".ljust(44, "<")
    personal = "ZE184226B".ljust(14, "<")
    core = (number + check_digit(number) + "UTO" + birth + check_digit(birth) + "F" + expiry
            + check_digit(expiry))
    body = core + personal + check_digit(personal)
    composite = check_digit(body[0:10] + body[13:20] + body[21:43])
    return upper + body + composite


def _td1() -> str:
    number, birth, expiry = "D23145890", "740812", "120415"
    upper = ("I<UTO" + number + check_digit(number)).ljust(30, "<")
    middle_head = birth + check_digit(birth) + "F" + expiry + check_digit(expiry) + "UTO"
    middle_body = middle_head.ljust(29, "<")
    composite = check_digit(upper[5:30] + middle_body[0:7] + middle_body[8:15] + middle_body[18:29])
    lower = "ERIKSSON<<ANNA<MARIA".ljust(30, "<")
    return upper + middle_body + composite + lower


def _td2() -> str:
    number, birth, expiry = "D23145890", "740812", "120415"
    upper = "I<UTOERIKSSON<<ANNA<MARIA".ljust(36, "<")
    body = (number + check_digit(number) + "UTO" + birth + check_digit(birth) + "F" + expiry
            + check_digit(expiry)).ljust(35, "<")
    composite = check_digit(body[0:10] + body[13:20] + body[21:35])
    return upper + body + composite


def _commands() -> list[bytes]:
    return [
        CommandApdu(0x00, 0xA4, 0x04, 0x0C, EKTP_APPLICATION.aid).encode(),
        CommandApdu(0x00, 0xB0, 0x81, 0x00, le=256).encode(),
        CommandApdu(0x00, 0xB0, 0x00, 0x00, le=65536, extended=True).encode(),
        CommandApdu(0x0C, 0xB0, 0x00, 0x00, bytes.fromhex("97020000") + bytes(10), le=65536).encode(),
        CommandApdu(0x10, 0x86, 0x00, 0x00, bytes.fromhex("7C00"), le=256).encode(),
        CommandApdu(0x00, 0xD6, 0x00, 0x00, bytes(300)).encode(),
        CommandApdu(0x00, 0x84, 0x00, 0x00, le=8).encode(),
    ]


def _revocation_list() -> bytes:
    p = pki()
    sod = card_file("EF.SOD")
    entries = [
        RevokedCard(sod_sha256(sod), SERIAL.hex().upper(), RevokedState.LOST, T0 + dt.timedelta(days=2),
                    "LP/12/2026"),
        RevokedCard("ab" * 32, "00AA", RevokedState.DAMAGED, T0 + dt.timedelta(days=2)),
    ]
    return build_revocation_list(entries, p.rs_signer, p.rs, sequence=7, this_update=AT)


def _public_keys() -> list[bytes]:
    ec_key = public_key_from(_ec_signer(21, ec.BrainpoolP256R1()).public_key)  # type: ignore[arg-type]
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    out = [encode_public_key_info(ec_key, form) for form in ParametersForm]
    out.append(encode_public_key_info(public_key_from(rsa_key)))
    out.append(rsa_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    return out


def _record_files() -> dict[str, bytes]:
    from ektp_card.lds.record import FIELDS

    mapping = record().to_mapping()
    one = json.dumps(mapping).encode()
    second = dict(mapping, nik="3171011508901234", name="NAMA LAIN")
    lines = (json.dumps(mapping) + "\n\n" + json.dumps(second) + "\n").encode()
    buffer = io.StringIO()
    buffer.write(",".join(FIELDS) + "\r\n")
    buffer.write(",".join(json.dumps(str(mapping[f])) if f in mapping else "" for f in FIELDS) + "\r\n")
    # The format byte the record harness reads first: 0 JSON, 1 JSON Lines, 2 CSV.
    return {"json": b"\x00" + one, "jsonl": b"\x01" + lines, "csv": b"\x02" + buffer.getvalue().encode()}


def seed_inputs() -> dict[str, dict[str, bytes]]:
    """Harness name -> seed name -> input: real outputs of the library."""
    issued = issued_card()
    p, t = pki(), terminal_pki()
    sod, dg1, dg2, dg3 = (card_file(n) for n in ("EF.SOD", "DG1", "DG2", "DG3"))
    dg7, dg14, dg15, com = (card_file(n) for n in ("DG7", "DG14", "DG15", "EF.COM"))
    card_access, atr_info = card_file("EF.CardAccess"), card_file("EF.ATR/INFO")
    rec = record()
    from ektp_card.lds.biometrics import decode_biometric_group

    face_record = decode_biometric_group(0x75, dg2)[0].data
    printed = PrintedCard.of(SERIAL.hex().upper(), CAN, rec, "batch.jsonl", 1).encode()
    short_card = VirtualCard.create(extended_length=False)
    eac_com = Com((0x61, 0x75, 0x63, 0x6E), LDS_VERSION, UNICODE_VERSION).encode()
    from ektp_card.lds.sod import unwrap

    return {
        "tlv": {"ef-com": com, "dg1": dg1, "ef-atr-info": atr_info, "cvca": t.cvca.encode(),
                "dg7-head": dg7[:64]},
        "apdu": {f"command-{i}": c for i, c in enumerate(_commands())}
        | {"response": ResponseApdu(b"\x01\x02", 0x9000).encode(), "response-6282": bytes.fromhex("6282")},
        "card_info": {"extended": atr_info, "short": ef_atr_info(CardConfig(extended_length=False))},
        "sod": {"ef-sod": sod, "lds-security-object": _lds_security_object(unwrap(sod))},
        "card_security": {"ef-card-security": _card_security()},
        "dg1": {"dg1": dg1},
        "emrtd_dg1": {"td1": encode_emrtd_dg1(_td1()), "td2": encode_emrtd_dg1(_td2()),
                      "td3": encode_emrtd_dg1(_td3())},
        "dg2": {"dg2": dg2},
        "dg3": {"dg3": dg3},
        "dg7": {"dg7": dg7},
        "com": {"ef-com": com, "ef-com-eac": eac_com},
        "dg14": {"dg14": dg14},
        "dg15": {"dg15": dg15},
        "public_key": {f"key-{i}": k for i, k in enumerate(_public_keys())},
        "card_access": {"ef-card-access": card_access},
        "cvc": {"cvca": t.cvca.encode(), "dv": t.dv.encode(), "terminal": t.terminal.encode()},
        "minutiae": {"finger-1": rec.fingerprints[0], "finger-2": rec.fingerprints[1]},
        "compact": _compact_seeds(rec.fingerprints),
        "face": {"face": face_record},
        "jpeg": {"signature": rec.signature, "face": rec.face},
        "card_image": {"blank": card_image(blank_card(MASTER, SERIAL)), "demo": card_image(demo_card()),
                       "short": card_image(short_card), "issued": issued.image},
        "record": _record_files(),
        "revocation_list": {"list": _revocation_list()},
        "print_job": {"print-job": printed},
        "master_list": {"master-list": build_master_list(p.ml_signer, p.ml, [p.csca], signing_time=AT)},
        "ldif": {"pkd": _pkd_ldif()},
        "mrz": {"td1": _td1().encode(), "td2": _td2().encode(), "td3": _td3().encode(),
                "td3-lines": (_td3()[:44] + "\n" + _td3()[44:] + "\n").encode()},
        "virtual_card": _card_seeds(),
        "reader": {"ektp-session": _reader_seed()},
    }


def _card_security() -> bytes:
    """EF.CardSecurity as a PACE-CAM chip keeps it: EF.CardAccess's PACEInfo and the card's DG14 infos,
    signed by the document signer."""
    from ektp_card.lds.card_access import CardAccess
    from ektp_card.lds.card_security import build_card_security
    from ektp_card.lds.dg14 import Dg14

    p = pki()
    infos = Dg14.of((*CardAccess.decode(card_file("EF.CardAccess")).pace_infos,
                     *Dg14.decode(card_file("DG14")).infos))
    return build_card_security(infos, p.ds_signer, p.ds)


def _pkd_ldif() -> bytes:
    """An ICAO PKD LDIF file: a master list, a document signer and a CRL, with a comment and folding."""
    from ektp_card.pki.crl import build_crl
    from ektp_card.pki.ldif import dump_ldif

    p = pki()
    crl = build_crl(p.csca_signer, p.csca, [], crl_number=1, this_update=AT)
    ml = build_master_list(p.ml_signer, p.ml, [p.csca], signing_time=AT)
    der = Encoding.DER
    return b"# ICAO PKD (synthetic)\n" + dump_ldif([
        ("cn=ml,o=ml,c=ID,dc=data", {"pkdMasterListContent": [ml], "sn": [b"1"]}),
        ("cn=ds,o=dsc,c=ID,dc=data", {"userCertificate;binary": [p.ds.public_bytes(der)]}),
        ("cn=crl,o=crl,c=ID,dc=data", {"certificateRevocationList;binary": [crl.public_bytes(der)]}),
    ])


def _compact_seeds(fingerprints: tuple[bytes, ...] | list[bytes]) -> dict[str, bytes]:
    """EF.BIOREF (first byte 0), a VERIFY data field (1) and bare compact minutiae (2)."""
    from ektp_card.lds.biometrics import MinutiaeRecord
    from ektp_card.lds.compact import (
        BiometricReference,
        compact_from_record,
        encode_capture,
        encode_minutiae,
        encode_reference_file,
    )

    records = [MinutiaeRecord.decode(bytes(f)) for f in fingerprints]
    refs = [BiometricReference.from_record(i + 1, r, threshold=18, min_paired=7)
            for i, r in enumerate(records)]
    minutiae = compact_from_record(records[0])
    return {"reference": b"\x00" + encode_reference_file(refs), "capture": b"\x01" + encode_capture(minutiae),
            "minutiae": b"\x02" + encode_minutiae(minutiae)}


def _reader_seed() -> bytes:
    """What the issued card answers to a whole e-KTP session (PACE with the CAN, EF.COM, DG1, EF.SOD)."""
    from harnesses import ScriptedCard, _responses, reader_input, reader_session

    class Recorder:
        def __init__(self, card: VirtualCard) -> None:
            self.card = card
            self.responses: list[bytes] = []

        def transceive(self, command: bytes) -> bytes:
            response = self.card.transceive(command)
            self.responses.append(response)
            return response

    recorder = Recorder(VirtualCard.loads(issued_card().image))
    reader_session(recorder)
    seed = reader_input(recorder.responses)
    replay = ScriptedCard(_responses(seed))
    reader_session(replay)  # the same session again, every answer used
    assert len(replay.commands) == len(recorder.responses)
    return seed


def _lds_security_object(content_info: bytes) -> bytes:
    from asn1crypto import cms  # type: ignore[import-untyped]

    info = cms.ContentInfo.load(content_info)
    return bytes(info["content"]["encap_content_info"]["content"].native)


def _card_seeds() -> dict[str, bytes]:
    from harnesses import card_input  # the input layout belongs to the harness

    aid = EKTP_APPLICATION.aid
    select_app = CommandApdu(0x00, 0xA4, 0x04, 0x0C, aid).encode()
    read_com = CommandApdu(0x00, 0xB0, 0x9E, 0x00, le=256).encode()
    read_sod = CommandApdu(0x00, 0xB0, 0x9D, 0x00, le=65536, extended=True).encode()
    read_atr = CommandApdu(0x00, 0xB0, 0x81, 0x00, le=256).encode()
    mse_pace = bytes.fromhex("0022C1A40F800A04007F00070202040202830102")
    get_challenge = CommandApdu(0x00, 0x84, 0x00, 0x00, le=8).encode()
    create_ef = CommandApdu(0x00, 0xE0, 0x00, 0x00, bytes.fromhex("6209800200208202010183020105")).encode()
    init_update = CommandApdu(0x80, 0x50, 0x00, 0x00, bytes(16), le=256).encode()
    select_demo = CommandApdu(0x00, 0xA4, 0x04, 0x0C, DEMO_AID).encode()
    read_dg3 = CommandApdu(0x00, 0xB0, 0x83, 0x00, le=64).encode()
    return {
        "blank-init-update": card_input("blank", [(0, init_update), (0, read_atr)]),
        "perso-create-file": card_input("perso", [(1, create_ef), (1, read_atr)]),
        "issued-plain": card_input("issued", [(0, read_atr), (0, select_app), (0, read_com), (0, mse_pace)]),
        "issued-pace": card_input("pace", [(1, read_com), (1, read_sod), (2, read_com), (0, get_challenge)]),
        "demo": card_input("demo", [(0, select_demo), (0, read_atr)]),
        "terminated": card_input("terminated", [(0, read_atr)]),
        "eac-dg3": card_input("eac", [(1, read_dg3), (1, read_com)]),
    }
