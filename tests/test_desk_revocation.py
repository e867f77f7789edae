"""Signed card revocation lists: format, trust, the registry as source, `ektp verify --revocations`."""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import json
import random
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from asn1crypto import cms  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card._cli import main
from ektp_card._cli.util import ExitCode
from ektp_card.desk.registry import Registry, open_registry
from ektp_card.desk.revocation import registry_entries
from ektp_card.errors import PkiError
from ektp_card.lds.record import CitizenRecord
from ektp_card.lds.sod import build_sod
from ektp_card.lds.synthetic import synthetic_citizen
from ektp_card.personalize import DocumentSigner, personalize, plan_from_record
from ektp_card.pki.certs import OID_KP_REVOCATION_LIST_SIGNING, create_csca, issue_revocation_signer
from ektp_card.pki.cms import signed_data
from ektp_card.pki.crl import Revocation, build_crl
from ektp_card.pki.issuer import IssuerPki
from ektp_card.pki.revocation import (
    OID_CARD_REVOCATION_LIST,
    RevokedCard,
    build_revocation_list,
    load_revocation_list,
    parse_revocation_list,
    sod_sha256,
)
from ektp_card.pki.signer import KeySpec, PrivateKeySigner, Signer
from ektp_card.pki.trust import TrustStore
from ektp_card.verify.card import Verdict, verify_card
from ektp_card.verify.passive import Status, passive_authentication
from ektp_card.virtual import VirtualCard
from ektp_card.virtual.perso import blank_card

if TYPE_CHECKING:
    from fixtures.tools import OpenSsl

MASTER = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
PASS = {"csca": b"csca pass phrase", "ds": b"ds pass phrase", "rs": b"rs pass phrase"}
LOST_REPORT = "LP/B/1234/XI/2026/RESTRO"
T0 = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Issuer:
    root: Path
    pki: IssuerPki
    ds: DocumentSigner
    rs: tuple[Signer, x509.Certificate]
    trust: TrustStore


@cache
def issuer() -> Issuer:
    """One issuer folder (CSCA, document signer, revocation list signer, CRL) for the whole module."""
    root = Path(tempfile.mkdtemp(prefix="ektp-rl-"))
    atexit.register(shutil.rmtree, root, True)
    pki = IssuerPki.create(root, lambda: PASS["csca"], spec=KeySpec.parse("secp256r1"), country="ID",
                           common_name="CSCA Revocation Test", not_before=NOW - dt.timedelta(days=5))
    pki.issue_document_signer(lambda: PASS["csca"], lambda: PASS["ds"], common_name="DS Revocation Test",
                              not_before=NOW - dt.timedelta(days=1))
    pki.issue_revocation_signer(lambda: PASS["csca"], lambda: PASS["rs"], common_name="RS Revocation Test",
                                not_before=NOW - dt.timedelta(days=3))
    crl = pki.publish_crl(lambda: PASS["csca"], this_update=NOW - dt.timedelta(hours=1))
    signer, cert = pki.document_signer(None, lambda: PASS["ds"])
    rs_signer, rs_cert = pki.revocation_signer(lambda: PASS["rs"])
    return Issuer(root, pki, DocumentSigner(signer, cert), (rs_signer, rs_cert),
                  TrustStore((pki.csca,), (crl,)))


@cache
def record() -> CitizenRecord:
    return synthetic_citizen(random.Random(8), photo_size=(24, 32)).record  # synthetic test data


@cache
def _issued(serial: int) -> tuple[bytes, str, str, str]:
    """A personalised, locked card image, its CAN, its chip serial and its EF.SOD hash."""
    card = blank_card(MASTER, serial.to_bytes(8, "big"))
    result = personalize(card, plan_from_record(record()), MASTER, issuer().ds)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "card.img"
        card.save(path)
        return path.read_bytes(), result.can, result.card_serial, result.sod_sha256


def card(serial: int) -> tuple[VirtualCard, str]:
    data, can, _, _ = _issued(serial)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "card.img"
        path.write_bytes(data)
        virtual = VirtualCard.load(path)
    virtual.power_on()
    return virtual, can


def registry_with_lost_card(path: Path) -> Registry:
    """Card 1 issued, handed over and reported lost; card 2 issued to the same NIK as its replacement."""
    registry = Registry(path)
    nik = record().personal.nik
    for serial, lost in ((1, True), (2, False)):
        _, _, chip_serial, sod_hash = _issued(serial)
        registry.reserve(chip_serial, nik, desk="desk-1", actor="clerk")
        registry.confirm(chip_serial, sod_sha256=sod_hash, desk="desk-1", actor="clerk")
        registry.hand_over(chip_serial, desk="desk-1", actor="clerk")
        if lost:
            registry.report_lost(chip_serial, LOST_REPORT, desk="desk-1", actor="clerk")
    return registry


def tlv(tag: int, value: bytes) -> bytes:
    assert len(value) < 0x10000
    if len(value) < 0x80:
        return bytes([tag, len(value)]) + value
    if len(value) < 0x100:
        return bytes([tag, 0x81, len(value)]) + value
    return bytes([tag, 0x82]) + len(value).to_bytes(2, "big") + value


def econtent(der: bytes) -> bytes:
    return bytes(cms.ContentInfo.load(der)["content"]["encap_content_info"]["content"].native)


# --- the format -------------------------------------------------------------------------------------


def test_content_is_the_documented_der() -> None:
    signer, cert = issuer().rs
    entries = [RevokedCard("ab" * 32, "0000000000000001", "lost", T0, "LP/1/2026"),
               RevokedCard("01" * 32, "0000000000000002", "damaged", T0 + dt.timedelta(hours=1))]
    der = build_revocation_list(entries, signer, cert, sequence=7, this_update=NOW)

    def gt(t: dt.datetime) -> bytes:
        return tlv(0x18, t.strftime("%Y%m%d%H%M%SZ").encode())

    damaged = tlv(0x30, tlv(0x04, b"\x01" * 32) + tlv(0x0C, b"0000000000000002") + tlv(0x0A, b"\x02")
                  + gt(T0 + dt.timedelta(hours=1)))
    lost = tlv(0x30, tlv(0x04, b"\xab" * 32) + tlv(0x0C, b"0000000000000001") + tlv(0x0A, b"\x01") + gt(T0)
               + tlv(0x0C, b"LP/1/2026"))
    expected = tlv(0x30, tlv(0x02, b"\x00") + cert.issuer.public_bytes() + gt(NOW)
                   + gt(NOW + dt.timedelta(days=7)) + tlv(0x02, b"\x07") + tlv(0x30, damaged + lost))
    assert econtent(der) == expected  # sorted by EF.SOD hash: 0101.. before abab..
    info = cms.ContentInfo.load(der)
    assert info["content"]["encap_content_info"]["content_type"].dotted == OID_CARD_REVOCATION_LIST

    rl = parse_revocation_list(der)
    week = NOW + dt.timedelta(days=7)
    assert (rl.version, rl.sequence, rl.this_update, rl.next_update) == (0, 7, NOW, week)
    assert rl.issuer == "CN=CSCA Revocation Test,C=ID"
    assert rl.entries == tuple(sorted(entries, key=lambda e: e.sod_sha256))
    assert rl.lookup("AB" * 32) == entries[0]
    assert rl.lookup(b"EF.SOD") is None
    assert entries[0].describe() == "card 0000000000000001 lost on 2026-01-05 (police report LP/1/2026)"
    assert entries[1].describe() == "card 0000000000000002 damaged on 2026-01-05 (surrendered at the desk)"
    assert rl.trust_problem(issuer().trust) is None and rl.stale_problem() is None


def test_sod_hash_names_the_file() -> None:
    assert sod_sha256(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_openssl_cms_verifies_the_list(tmp_path: Path, openssl: OpenSsl) -> None:
    signer, cert = issuer().rs
    der = build_revocation_list([RevokedCard("cd" * 32, "0A", "revoked", T0, "fraud")], signer, cert,
                                sequence=1, this_update=NOW)
    (tmp_path / "list.der").write_bytes(der)
    (tmp_path / "csca.pem").write_bytes(issuer().pki.csca.public_bytes(Encoding.PEM))
    args: list[str | Path] = ["cms", "-verify", "-inform", "DER", "-in", tmp_path / "list.der",
            "-CAfile", tmp_path / "csca.pem", "-out", tmp_path / "content.der",
            "-attime", str(int(NOW.timestamp()) + 60)]
    # The signer's key purpose is ours, not S/MIME: OpenSSL checks the purpose only when asked for one.
    r = openssl(*args, "-purpose", "any")
    assert r.returncode == 0 and "Verification successful" in r.stderr, r.stderr
    assert (tmp_path / "content.der").read_bytes() == econtent(der)
    assert openssl(*args).returncode != 0  # default purpose smimesign: our key usage is not for mail

    tampered = bytearray(der)
    at = bytes(der).index(b"fraud")
    tampered[at] ^= 0x20
    (tmp_path / "list.der").write_bytes(bytes(tampered))
    r = openssl(*args, "-purpose", "any")
    assert r.returncode != 0 and "Verification failure" in r.stderr


def test_signer_profile() -> None:
    _, cert = issuer().rs
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [OID_KP_REVOCATION_LIST_SIGNING]
    assert OID_KP_REVOCATION_LIST_SIGNING.dotted_string == (
        "2.25.131369754109940599414045173131202658525.1.1")
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.content_commitment and not ku.value.digital_signature
    assert cert.issuer == issuer().pki.csca.subject


def test_revocation_signer_cannot_sign_an_ef_sod() -> None:
    # Separation of duties: a desk holding the list signer's key cannot make documents.
    signer, cert = issuer().rs
    groups = {1: b"\x61\x03\x5f\x1f\x00", 2: b"\x75\x00"}
    sod = build_sod(groups, signer, cert)
    result = passive_authentication(sod, groups, issuer().trust)
    assert result.check("key-usage").status is Status.FAIL
    assert result.check("cms-signature").status is Status.PASS


def test_build_refuses() -> None:
    signer, cert = issuer().rs
    twice = [RevokedCard("ab" * 32, "1", "lost", T0, "x"), RevokedCard("ab" * 32, "2", "lost", T0, "y")]
    with pytest.raises(PkiError, match="same EF.SOD hash"):
        build_revocation_list(twice, signer, cert, sequence=1)
    with pytest.raises(PkiError, match="1 to 90 days"):
        build_revocation_list([], signer, cert, sequence=1, validity_days=91)
    with pytest.raises(PkiError, match="not a revocation list signer"):
        build_revocation_list([], issuer().ds.signer, issuer().ds.certificate, sequence=1)
    with pytest.raises(PkiError, match="does not match"):
        build_revocation_list([], issuer().ds.signer, cert, sequence=1)
    with pytest.raises(PkiError, match="not valid at"):
        build_revocation_list([], signer, cert, sequence=1, this_update=NOW - dt.timedelta(days=30))
    with pytest.raises(PkiError, match="64 lower-case hex"):
        RevokedCard("AB" * 32, "1", "lost", T0)
    with pytest.raises(PkiError, match="not listed"):
        RevokedCard("ab" * 32, "1", "active", T0)


# --- trust ------------------------------------------------------------------------------------------


def _list(**kw: object) -> bytes:
    signer, cert = issuer().rs
    return build_revocation_list([RevokedCard("ab" * 32, "01", "lost", T0, "LP/1")], signer, cert,
                                 sequence=3, **kw)  # type: ignore[arg-type]


def test_tampered_lists_are_refused() -> None:
    der = _list()
    content = bytearray(der)
    content[bytes(der).index(b"LP/1") + 3] ^= 0x01
    rl = parse_revocation_list(bytes(content))
    assert rl.trust_problem(issuer().trust) == (
        "the list does not match its signed message digest (it was changed after signing)")
    with pytest.raises(PkiError, match="revocation list refused: the list does not match"):
        load_revocation_list(bytes(content), issuer().trust)

    signature = bytearray(der)
    sig = bytes(cms.ContentInfo.load(der)["content"]["signer_infos"][0]["signature"].native)
    signature[bytes(der).index(sig) + 10] ^= 0x01
    assert parse_revocation_list(bytes(signature)).trust_problem(issuer().trust) == (
        "signature: the signature does not verify")

    for broken, why in ((b"", "not a DER SEQUENCE"), (der[:-5], ""), (b"\x30\x03\x02\x01\x00", ""),
                        (der + b"\x00", "")):
        with pytest.raises(PkiError, match=f"^malformed revocation list: {why}"):
            parse_revocation_list(broken)


def test_other_content_is_not_a_list() -> None:
    signer, cert = issuer().rs
    der = signed_data("2.23.136.1.1.1", b"\x30\x00", signer, cert, hash_name="sha256")
    with pytest.raises(PkiError, match="is not a card revocation list"):
        parse_revocation_list(der)


def test_wrong_signers_are_refused() -> None:
    # The document signer is trusted for EF.SOD but lacks the revocation list key purpose.
    ds = issuer().ds
    der = build_revocation_list([], *issuer().rs, sequence=1)
    forged = signed_data(OID_CARD_REVOCATION_LIST, econtent(der), ds.signer, ds.certificate,
                         hash_name="sha256")
    assert parse_revocation_list(forged).trust_problem(issuer().trust) == (
        "the signer certificate is not a revocation list signer (extended key usage)")

    # A revocation list signer from a CSCA the verifier does not trust.
    other_ca = PrivateKeySigner(KeySpec.parse("secp256r1").generate())
    other = create_csca(other_ca, country="ID", common_name="CSCA Revocation Test",
                        not_before=NOW - dt.timedelta(days=2))
    key = PrivateKeySigner(KeySpec.parse("secp256r1").generate())
    cert = issue_revocation_signer(other_ca, other, key.public_key, common_name="RS Stranger",
                                   not_before=NOW - dt.timedelta(days=1))
    stranger = build_revocation_list([], key, cert, sequence=1)
    assert parse_revocation_list(stranger).trust_problem(issuer().trust) == (
        "the signer CN=RS Stranger,C=ID does not chain to a trusted CSCA")
    assert parse_revocation_list(stranger).trust_problem(TrustStore((other,))) is None

    # The CSCA revoked the list signer on a current CRL.
    crl = build_crl(other_ca, other, [Revocation(cert.serial_number, NOW - dt.timedelta(minutes=5))],
                    crl_number=2, this_update=NOW - dt.timedelta(minutes=1))
    assert parse_revocation_list(stranger).trust_problem(TrustStore((other,), (crl,))) == (
        f"the signer certificate was revoked on {NOW:%Y-%m-%d}")


def test_stale_and_future_lists() -> None:
    rl = parse_revocation_list(_list(this_update=NOW - dt.timedelta(hours=1), validity_days=1))
    assert rl.stale_problem(NOW) is None
    late = NOW + dt.timedelta(days=2)
    problem = rl.stale_problem(late)
    assert problem is not None and problem.startswith("revocation list #3 of") and "expired on" in problem
    assert rl.stale_problem(NOW - dt.timedelta(hours=2)) == (
        f"revocation list #3 of {NOW - dt.timedelta(hours=1):%Y-%m-%d %H:%M} UTC is dated in the future")
    with pytest.raises(PkiError, match="expired on"):
        load_revocation_list(_list(this_update=NOW - dt.timedelta(hours=1), validity_days=1), issuer().trust,
                             at=late)
    assert load_revocation_list(_list(this_update=NOW - dt.timedelta(hours=1), validity_days=1),
                                issuer().trust, at=late, allow_stale=True).sequence == 3


# --- the registry -----------------------------------------------------------------------------------


def test_entries_from_the_registry(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.sqlite")
    hashes = {n: hashlib.sha256(bytes([n])).hexdigest() for n in range(1, 8)}
    niks = {n: f"31710101019000{n:02d}" for n in range(1, 8)}
    for n in range(1, 7):
        registry.reserve(f"C{n}", niks[n], desk="d", actor="a")
        registry.confirm(f"C{n}", sod_sha256=hashes[n], desk="d", actor="a")
    registry.hand_over("C1", desk="d", actor="a")
    registry.report_lost("C1", "LP/7", desk="d", actor="a")
    registry.report_damaged("C2", surrendered=True, desk="d", actor="a")
    registry.revoke("C3", "issued on a forged birth certificate", desk="d", actor="a")
    registry.hand_over("C4", desk="d", actor="a")  # live: not listed
    registry.reserve("C7", niks[7], desk="d", actor="a")
    registry.spoil("C7", "read back failed", desk="d", actor="a")  # never written: not listed
    registry.register("C8", "3171010101900099", desk="d", actor="a")
    registry.revoke("C8", "test", desk="d", actor="a")  # no EF.SOD hash: cannot be listed
    listed, skipped = registry_entries(registry)
    assert [(e.serial, e.state, e.reason, e.sod_sha256) for e in listed] == [
        ("C1", "lost", "LP/7", hashes[1]), ("C2", "damaged", None, hashes[2]),
        ("C3", "revoked", "issued on a forged birth certificate", hashes[3]),
    ]
    assert [row.serial for row in skipped] == ["C8"]
    registry.close()


def test_verify_card_refuses_a_lost_card(tmp_path: Path) -> None:
    registry = registry_with_lost_card(tmp_path / "r.sqlite")
    entries, skipped = registry_entries(registry)
    assert len(entries) == 1 and not skipped
    rl = parse_revocation_list(build_revocation_list(entries, *issuer().rs, sequence=1))

    lost, can = card(1)
    report = verify_card(lost, can, issuer().trust, revocations=rl)
    assert report.verdict is Verdict.REVOKED
    check = report.check("revocation")
    assert check.status is Status.FAIL
    assert check.reason.startswith(
        f"card {_issued(1)[2]} lost on {dt.datetime.now(dt.UTC):%Y-%m-%d} (police report {LOST_REPORT})")
    # Its signatures and its chip are genuine: only the list refuses it.
    for name in ("passive-authentication", "chip-authentication", "active-authentication"):
        assert report.check(name).status is Status.PASS, report.check(name)
    assert report.reasons == (f"revocation: {check.reason}",)
    names = [c.name for c in report.checks]
    assert names[names.index("passive-authentication") + 1] == "revocation"

    replacement, can2 = card(2)
    report = verify_card(replacement, can2, issuer().trust, revocations=rl)
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert report.check("revocation").status is Status.PASS
    # Without a list the check is not there at all.
    lost, can = card(1)
    assert "revocation" not in [c.name for c in verify_card(lost, can, issuer().trust).checks]
    registry.close()


# --- the command line -------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EKTP_CSCA_PASSPHRASE", PASS["csca"].decode())
    monkeypatch.setenv("EKTP_RS_PASSPHRASE", PASS["rs"].decode())


def trust_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "trust"
    folder.mkdir()
    (folder / "csca.pem").write_bytes(issuer().pki.csca.public_bytes(Encoding.PEM))
    (folder / "csca.crl").write_bytes((issuer().root / "csca.crl").read_bytes())
    return folder


def image(tmp_path: Path, serial: int) -> tuple[Path, str]:
    data, can, _, _ = _issued(serial)
    path = tmp_path / f"card{serial}.img"
    path.write_bytes(data)
    return path, can


Capture = pytest.CaptureFixture[str]


def test_cli_lost_card_exits_14_and_replacement_passes(capsys: Capture, tmp_path: Path, env: None) -> None:
    registry_with_lost_card(tmp_path / "r.sqlite").close()
    out_file = tmp_path / "revocations.der"
    code, out, err = run_cli(capsys, "--json", "desk", "revocations", "--registry",
                             str(tmp_path / "r.sqlite"), "--issuer", str(issuer().root), "-o", str(out_file),
                             "--validity", "3")
    assert code == 0, err
    data = json.loads(out)
    assert [e["serial"] for e in data["entries"]] == [_issued(1)[2]]
    assert data["entries"][0]["reason"] == LOST_REPORT and data["not_listed_without_sod_hash"] == []
    assert data["next_update"] == (dt.datetime.fromisoformat(data["this_update"])
                                   + dt.timedelta(days=3)).isoformat()
    trust = str(trust_folder(tmp_path))

    lost, can = image(tmp_path, 1)
    code, out, err = run_cli(capsys, "--json", "verify", "--virtual", str(lost), "--can", can,
                             "--trust", trust, "--revocations", str(out_file))
    assert code == ExitCode.REVOKED and int(ExitCode.REVOKED) == 14, err
    report = json.loads(out)
    assert report["verdict"] == "revoked"
    assert report["reasons"][0].startswith(f"revocation: card {_issued(1)[2]} lost on")
    assert report["revocation_list"]["sequence"] == data["sequence"]
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["passive-authentication"] == statuses["chip-authentication"] == "pass"

    code, out, err = run_cli(capsys, "verify", "--virtual", str(lost), "--can", can, "--trust", trust,
                             "--revocations", str(out_file))
    assert code == 14 and "REVOKED" in out and LOST_REPORT in out

    other, can2 = image(tmp_path, 2)
    code, out, err = run_cli(capsys, "--json", "verify", "--virtual", str(other), "--can", can2, "--trust",
                             trust, "--revocations", str(out_file))
    assert code == 0, err
    assert json.loads(out)["verdict"] == "genuine"

    # The next list carries the next sequence number.
    code, out, _ = run_cli(capsys, "--json", "desk", "revocations", "--registry", str(tmp_path / "r.sqlite"),
                           "--issuer", str(issuer().root), "-o", str(tmp_path / "next.der"))
    assert code == 0 and json.loads(out)["sequence"] == data["sequence"] + 1


def test_cli_refuses_bad_lists(capsys: Capture, tmp_path: Path) -> None:
    trust = str(trust_folder(tmp_path))
    path, can = image(tmp_path, 1)
    listed = [RevokedCard(_issued(1)[3], _issued(1)[2], "lost", T0, LOST_REPORT)]

    def verify(list_file: Path, *extra: str) -> tuple[int, str, str]:
        return run_cli(capsys, "--json", "verify", "--virtual", str(path), "--can", can, "--trust", trust,
                       "--revocations", str(list_file), *extra)

    garbage = tmp_path / "garbage.der"
    garbage.write_bytes(b"not a list")
    code, out, err = verify(garbage)
    assert code == ExitCode.FILE and err.startswith("Error: ") and "malformed revocation list" in err
    assert out == "" and "Traceback" not in err
    code, _, err = verify(tmp_path / "missing.der")
    assert code == ExitCode.FILE

    good = build_revocation_list(listed, *issuer().rs, sequence=1)
    tampered = tmp_path / "tampered.der"
    tampered.write_bytes(good.replace(LOST_REPORT.encode(), LOST_REPORT.lower().encode()))
    code, _, err = verify(tampered)
    assert code == ExitCode.SECURITY and "revocation list refused: the list does not match" in err

    ds = issuer().ds
    wrong = tmp_path / "wrong-signer.der"
    wrong.write_bytes(signed_data(OID_CARD_REVOCATION_LIST, econtent(good), ds.signer, ds.certificate,
                                  hash_name="sha256"))
    code, _, err = verify(wrong)
    assert code == ExitCode.SECURITY and "not a revocation list signer" in err
    code, _, err = verify(wrong, "--allow-stale-revocations")
    assert code == ExitCode.SECURITY  # a bad signer is never allowed

    stale = tmp_path / "stale.der"
    stale.write_bytes(build_revocation_list(listed, *issuer().rs, sequence=1, validity_days=1,
                                            this_update=NOW - dt.timedelta(days=2)))
    code, out, err = verify(stale)
    assert code == ExitCode.SECURITY and "expired on" in err and "--allow-stale-revocations" in err
    code, out, err = verify(stale, "--allow-stale-revocations")
    assert code == ExitCode.REVOKED and "Warning:" in err and json.loads(out)["verdict"] == "revoked"

    code, _, err = run_cli(capsys, "verify", "--virtual", str(path), "--mrz", "X", "--trust", trust,
                           "--revocations", str(garbage))
    assert code == ExitCode.USAGE and "--revocations" in err


def test_cli_revocation_signer_and_errors(capsys: Capture, tmp_path: Path, env: None) -> None:
    root = tmp_path / "pki"
    IssuerPki.create(root, lambda: PASS["csca"], spec=KeySpec.parse("secp256r1"), country="ID",
                     common_name="CSCA CLI", not_before=NOW - dt.timedelta(days=1))
    registry = str(tmp_path / "r.sqlite")
    code, _, err = run_cli(capsys, "desk", "revocations", "--registry", registry, "--issuer", str(root),
                           "-o", str(tmp_path / "l.der"))
    assert code == ExitCode.FILE and "no revocation list signer" in err and "revocation-signer" in err
    code, out, err = run_cli(capsys, "--json", "desk", "revocation-signer", "--issuer", str(root),
                             "--cn", "RS CLI", "--days", "30")
    assert code == 0, err
    info = json.loads(out)["revocation_signer"]
    assert info["subject"] == "CN=RS CLI,C=ID"
    assert (root / "rs" / f"{int(info['serial'], 16):x}.key").stat().st_mode & 0o777 == 0o600
    open_registry(registry).close()  # `desk revocations` lists an existing registry, never makes one
    code, out, err = run_cli(capsys, "desk", "revocations", "--registry", registry, "--issuer", str(root),
                             "-o", str(tmp_path / "l.der"))
    assert code == 0, err
    assert "revocation list #1" in out and "no cards" in out
    rl = load_revocation_list((tmp_path / "l.der").read_bytes(), TrustStore((IssuerPki(root).csca,)))
    assert rl.entries == () and rl.sequence == 1
    code, _, err = run_cli(capsys, "desk", "revocations", "--registry", "ftp://x", "--issuer", str(root),
                           "-o", str(tmp_path / "l.der"))
    assert code == ExitCode.REGISTRY, err
    code, _, err = run_cli(capsys, "desk", "revocations", "--registry", registry, "--issuer", str(root),
                           "-o", str(tmp_path / "l.der"), "--pkcs11", "x.so")
    assert code == ExitCode.USAGE
