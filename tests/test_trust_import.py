"""Trust imports: ICAO PKD LDIF files and CMS master lists into a trust folder (pki/trust_import.py,
pki/ldif.py), built here from a test CSCA of each of two countries."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card.errors import PkiError
from ektp_card.pki.certs import create_csca, issue_document_signer
from ektp_card.pki.crl import Revocation, build_crl
from ektp_card.pki.ldif import dn_country, dump_ldif, parse_ldif
from ektp_card.pki.masterlist import build_master_list
from ektp_card.pki.signer import PrivateKeySigner
from ektp_card.pki.trust import TrustStore, load_master_list
from ektp_card.pki.trust_import import Kind, Outcome, import_trust, list_trust, plan_import

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
AT = T0 + dt.timedelta(days=10)


def _signer(n: int) -> PrivateKeySigner:
    return PrivateKeySigner(ec.derive_private_key(0x7A57_0000 + n, ec.SECP256R1()))


@dataclass(frozen=True)
class Country:
    code: str
    csca_signer: PrivateKeySigner
    csca: x509.Certificate
    ml_signer: PrivateKeySigner
    ml: x509.Certificate
    ds: x509.Certificate
    crl: x509.CertificateRevocationList


@cache
def country(code: str, n: int) -> Country:
    csca_signer = _signer(n)
    csca = create_csca(csca_signer, country=code, common_name=f"CSCA {code}", not_before=T0, serial_number=n)
    ml_signer = _signer(n + 1)
    ml = issue_document_signer(csca_signer, csca, ml_signer.public_key, common_name=f"ML {code}",
                               not_before=T0, serial_number=n + 1)
    ds = issue_document_signer(csca_signer, csca, _signer(n + 2).public_key, common_name=f"DS {code}",
                               not_before=T0, serial_number=n + 2)
    crl = build_crl(csca_signer, csca, [Revocation(999, T0)], crl_number=1, this_update=T0)
    return Country(code, csca_signer, csca, ml_signer, ml, ds, crl)


def utopia() -> Country:
    return country("UT", 0x100)


def freedonia() -> Country:
    return country("FD", 0x200)


def master_list(by: Country, *cscas: x509.Certificate) -> bytes:
    return build_master_list(by.ml_signer, by.ml, list(cscas), signing_time=T0)


def der(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(Encoding.DER)


def pkd_ldif(ml: bytes, *, ds: list[x509.Certificate] = (), crls: list[x509.CertificateRevocationList] = ()
             ) -> bytes:  # type: ignore[assignment]
    base = "dc=data,dc=download,dc=pkd,dc=icao,dc=int"
    records: list[tuple[str, dict[str, list[bytes]]]] = [
        (f"cn=CN\\=ML UT,o=ml,c=UT,{base}",
         {"pkdMasterListContent": [ml], "objectClass": [b"pkdMasterList"]}),
    ]
    for cert in ds:
        code = cert.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)[0].value
        records.append((f"cn={cert.serial_number},o=dsc,c={code},{base}",
                        {"userCertificate;binary": [der(cert)]}))
    for crl in crls:
        code = crl.issuer.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)[0].value
        records.append((f"cn=crl,o=crl,c={code},{base}", {"certificateRevocationList;binary": [der(crl)]}))
    return dump_ldif(records)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- LDIF ----------------------------------------------------------------------------------------------


def test_ldif_folding_base64_comments_and_records() -> None:
    text = (
        b"version: 1\n"
        b"# a comment\n"
        b"#  folded comment\n"
        b"\n"
        b"dn: cn=a,o=dsc,c=UT,dc=pkd\n"
        b"description: hello wor\n"
        b" ld\n"
        b"userCertificate;binary:: " + base64.b64encode(b"\x30\x00\x01") + b"\n"
        b"\n"
        b"dn:: " + base64.b64encode(b"cn=b\\,c,c=FD") + b"\r\n"
        b"changetype: add\r\n"
        b"sn: 1\r\n"
    )
    records = parse_ldif(text)
    assert [r.dn for r in records] == ["cn=a,o=dsc,c=UT,dc=pkd", "cn=b\\,c,c=FD"]
    assert records[0].values("description") == [b"hello world"]
    assert records[0].values("userCertificate") == [b"\x30\x00\x01"]
    assert records[0].country == "UT" and records[1].country == "FD"
    assert records[1].attributes == {"sn": [b"1"]}


@pytest.mark.parametrize(("text", "message"), [
    (b"dn: c=UT\nuserCertificate:: ***\n", "line 2: the base64 value"),
    (b" continued\n", "line 1: a continuation line"),
    (b"sn: 1\n", "line 1: a record starts with dn:"),
    (b"dn: c=UT\nphoto:< file:///etc/passwd\n", "line 2: URL values"),
    (b"dn: c=UT\nchangetype: delete\n", "changetype add"),
    (b"dn: c=UT\nno colon here\n", "line 2: not an attribute"),
    (b"version: 2\n", "version 1"),
    (b"dn: c=UT\ndn: c=FD\n", "a second dn"),
    (b"dn: c=UT\nsn: \xff\n", "ASCII"),
    (b"dn: c=UT\x00\n", "NUL"),
])
def test_ldif_problems_name_their_line(text: bytes, message: str) -> None:
    with pytest.raises(PkiError, match=message):
        parse_ldif(text)


def test_dn_country_respects_escapes() -> None:
    assert dn_country("cn=x\\,c=FD,o=ml,c=UT,dc=int") == "UT"
    assert dn_country("cn=x+c=FD,o=ml,c=UT") is None  # two countries: none
    assert dn_country("cn=x,o=ml") is None


def test_dump_ldif_round_trips() -> None:
    value = bytes(range(256)) * 3
    records = parse_ldif(dump_ldif([("cn=x,c=UT", {"userCertificate;binary": [value]})]))
    assert records[0].values("userCertificate") == [value]
    assert max(len(line) for line in dump_ldif([("cn=x", {"a": [value]})]).split(b"\n")) <= 76


# --- master lists --------------------------------------------------------------------------------------


def test_master_list_import_adds_each_country_and_reports_duplicates(tmp_path: Path) -> None:
    ut, fd = utopia(), freedonia()
    data = master_list(ut, ut.csca, fd.csca)
    folder = tmp_path / "trust"
    report = import_trust(data, folder, at=AT)
    assert report.counts() == {"FD": {"added": 1, "duplicate": 0, "skipped": 0},
                               "UT": {"added": 1, "duplicate": 0, "skipped": 0}}
    (ml,) = report.master_lists
    assert ml.believed and "the list's own CSCA" in ml.reason and ml.country == "UT"
    store = TrustStore.from_folder(folder)
    assert set(store.cscas) == {ut.csca, fd.csca}
    assert sorted(p.parent.name for p in folder.glob("*/csca-*.pem")) == ["FD", "UT"]

    again = import_trust(data, folder, at=AT)
    assert {i.outcome for i in again.items} == {Outcome.DUPLICATE} and not again.files


def test_master_list_anchored_in_the_folder(tmp_path: Path) -> None:
    ut, fd = utopia(), freedonia()
    folder = tmp_path / "trust"
    folder.mkdir()
    (folder / "utopia.pem").write_bytes(ut.csca.public_bytes(Encoding.PEM))  # an old flat folder
    report = import_trust(master_list(ut, fd.csca), folder, at=AT)
    assert report.master_lists[0].believed and "trusted CSCA" in report.master_lists[0].reason
    assert [i.country for i in report.items if i.outcome is Outcome.ADDED] == ["FD"]
    assert set(TrustStore.from_folder(folder).cscas) == {ut.csca, fd.csca}


def test_master_list_whose_signer_no_one_vouches_for_is_skipped(tmp_path: Path) -> None:
    ut, fd = utopia(), freedonia()
    report = import_trust(master_list(ut, fd.csca), tmp_path / "trust", at=AT)
    assert not report.master_lists[0].believed
    assert [(i.country, i.outcome) for i in report.items] == [("FD", Outcome.SKIPPED)]
    assert "does not chain" in report.items[0].reason
    assert not (tmp_path / "trust").exists()


def test_master_list_with_a_bad_signature_is_skipped(tmp_path: Path) -> None:
    ut, fd = utopia(), freedonia()
    data = bytearray(master_list(ut, ut.csca, fd.csca))
    data[-5] ^= 1  # in the signature
    report = import_trust(bytes(data), tmp_path / "trust", at=AT)
    assert not report.master_lists[0].believed
    assert all(i.outcome is Outcome.SKIPPED and "signature" in i.reason for i in report.items)
    assert len(report.items) == 2 and not report.files


def test_expired_and_non_ca_certificates_are_skipped(tmp_path: Path) -> None:
    ut = utopia()
    old_signer = _signer(0x900)
    old = create_csca(old_signer, country="OL", common_name="Old CSCA", key_usage_years=3,
                      document_validity_years=1, not_before=T0 - dt.timedelta(days=8 * 365), serial_number=5)
    report = import_trust(master_list(ut, ut.csca, old, ut.ds), tmp_path / "trust", at=AT)
    reasons = {i.subject: (i.outcome, i.reason) for i in report.items}
    assert reasons["CN=Old CSCA,C=OL"][0] is Outcome.SKIPPED and "expired" in reasons["CN=Old CSCA,C=OL"][1]
    assert reasons["CN=DS UT,C=UT"][0] is Outcome.SKIPPED and "not a CA" in reasons["CN=DS UT,C=UT"][1]
    assert reasons["CN=CSCA UT,C=UT"][0] is Outcome.ADDED


def test_country_filter(tmp_path: Path) -> None:
    ut, fd = utopia(), freedonia()
    report = import_trust(master_list(ut, ut.csca, fd.csca), tmp_path / "trust", country="FD", at=AT)
    assert [i.country for i in report.items] == ["FD"]
    assert TrustStore.from_folder(tmp_path / "trust").cscas == (fd.csca,)


def test_load_master_list_keeps_its_contract() -> None:
    ut, fd = utopia(), freedonia()
    data = master_list(ut, fd.csca)
    assert load_master_list(data, TrustStore((ut.csca,))).cscas == (ut.csca, fd.csca)
    with pytest.raises(PkiError, match="does not chain to a trusted CSCA"):
        load_master_list(data, TrustStore((fd.csca,)))


# --- LDIF imports --------------------------------------------------------------------------------------


def test_ldif_with_master_list_document_signers_and_crls(tmp_path: Path) -> None:
    ut, fd = utopia(), freedonia()
    stranger = create_csca(_signer(0x700), country="ST", common_name="CSCA ST", not_before=T0)
    stray_ds = issue_document_signer(_signer(0x700), stranger, _signer(0x701).public_key, common_name="DS ST",
                                     not_before=T0)
    data = pkd_ldif(master_list(ut, ut.csca, fd.csca), ds=[ut.ds, fd.ds, stray_ds, ut.csca],
                    crls=[ut.crl, fd.crl])
    folder = tmp_path / "trust"
    report = import_trust(data, folder, at=AT)
    counts = report.counts()
    assert counts["UT"] == {"added": 3, "duplicate": 1, "skipped": 0}  # CSCA, DS, CRL; the CSCA again
    assert counts["FD"] == {"added": 3, "duplicate": 0, "skipped": 0}
    assert counts["ST"] == {"added": 0, "duplicate": 0, "skipped": 1}
    store = TrustStore.from_folder(folder)
    assert set(store.cscas) == {ut.csca, fd.csca}  # document signers are no anchors
    assert {c.issuer for c in store.crls} == {ut.csca.subject, fd.csca.subject}
    assert (folder / "UT" / "ds").is_dir()
    kinds = [(e.country, e.kind) for e in list_trust(folder)]
    assert kinds == [("FD", Kind.CSCA), ("FD", Kind.CRL), ("FD", Kind.DOCUMENT_SIGNER),
                     ("UT", Kind.CSCA), ("UT", Kind.CRL), ("UT", Kind.DOCUMENT_SIGNER)]
    assert [e.country for e in list_trust(folder, country="FD")] == ["FD"] * 3


def test_a_bare_csca_in_an_ldif_entry_is_not_trusted(tmp_path: Path) -> None:
    ut, fd = utopia(), freedonia()
    report = import_trust(pkd_ldif(master_list(ut, ut.csca), ds=[fd.csca]), tmp_path / "t", at=AT)
    (fd_item,) = [i for i in report.items if i.country == "FD"]
    assert fd_item.outcome is Outcome.SKIPPED and "outside a master list" in fd_item.reason


def test_newer_crl_replaces_older_one_and_older_is_skipped(tmp_path: Path) -> None:
    ut = utopia()
    folder = tmp_path / "trust"
    import_trust(pkd_ldif(master_list(ut, ut.csca), crls=[ut.crl]), folder, at=AT)
    newer = build_crl(ut.csca_signer, ut.csca, [], crl_number=2, this_update=T0 + dt.timedelta(days=1))
    report = import_trust(pkd_ldif(master_list(ut, ut.csca), crls=[newer]), folder, at=AT)
    assert [i.reason for i in report.items if i.kind is Kind.CRL] == ["replaces an older CRL, number 2"]
    assert TrustStore.from_folder(folder).crls == (newer,)
    report = import_trust(pkd_ldif(master_list(ut, ut.csca), crls=[ut.crl]), folder, at=AT)
    assert [i.outcome for i in report.items if i.kind is Kind.CRL] == [Outcome.SKIPPED]


def test_crl_signed_by_another_key_is_skipped(tmp_path: Path) -> None:
    ut = utopia()
    forged = build_crl(_signer(0x555), create_csca(_signer(0x555), country="UT", common_name="CSCA UT",
                                                    not_before=T0), [], crl_number=5, this_update=T0)
    report = import_trust(pkd_ldif(master_list(ut, ut.csca), crls=[forged]), tmp_path / "t", at=AT)
    (item,) = [i for i in report.items if i.kind is Kind.CRL]
    assert item.outcome is Outcome.SKIPPED and "bad signature" in item.reason


@pytest.mark.parametrize("spoil", ["truncated", "garbage-ml", "bad-base64", "not-a-file-kind"])
def test_corrupt_file_is_one_error_and_nothing_is_written(tmp_path: Path, spoil: str) -> None:
    ut, fd = utopia(), freedonia()
    folder = tmp_path / "trust"
    import_trust(master_list(ut, ut.csca), folder, at=AT)
    before = snapshot(folder)
    good = pkd_ldif(master_list(ut, ut.csca, fd.csca), ds=[fd.ds], crls=[fd.crl])
    data = {
        "truncated": master_list(ut, ut.csca, fd.csca)[:300],
        # The first entries are good and would add FD; the last one is corrupt: nothing is written.
        "garbage-ml": good + b"\ndn: cn=x,o=ml,c=UT\npkdMasterListContent:: MAMCAQA=\n",
        "bad-base64": good + b"\ndn: cn=y,c=UT\nuserCertificate;binary:: %%%%\n",
        "not-a-file-kind": b"\x89PNG\r\n",
    }[spoil]
    with pytest.raises(PkiError) as caught:
        import_trust(data, folder, at=AT)
    assert "\n" not in str(caught.value)
    assert snapshot(folder) == before


def test_plan_import_writes_nothing(tmp_path: Path) -> None:
    ut = utopia()
    report = plan_import(master_list(ut, ut.csca), tmp_path / "trust", at=AT)
    assert report.files and not (tmp_path / "trust").exists()


# --- the command line ----------------------------------------------------------------------------------


def run(*args: str | Path) -> tuple[int, str, str]:
    import contextlib
    import io

    from ektp_card._cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as done:
        main([str(a) for a in args])
    return int(done.value.code or 0), out.getvalue(), err.getvalue()


def test_cli_import_then_list(tmp_path: Path) -> None:
    import json

    ut, fd = utopia(), freedonia()
    ldif = tmp_path / "pkd.ldif"
    ldif.write_bytes(pkd_ldif(master_list(ut, ut.csca, fd.csca), ds=[ut.ds], crls=[ut.crl]))
    folder = tmp_path / "trust"
    code, out, err = run("trust", "import", ldif, "--trust-dir", folder)
    assert code == 0, err
    assert "FD: 1 added, 0 duplicate, 0 skipped" in out and "UT: 3 added" in out
    code, out, _ = run("--json", "trust", "import", ldif, "--trust-dir", folder, "--country", "UT")
    assert code == 0 and json.loads(out)["countries"] == {"UT": {"added": 0, "duplicate": 3, "skipped": 0}}
    code, out, _ = run("--json", "trust", "list", "--trust-dir", folder, "--country", "UT")
    assert code == 0 and [e["kind"] for e in json.loads(out)] == ["csca", "crl", "ds"]
    code, out, _ = run("trust", "list", "--trust-dir", folder)
    assert code == 0 and out.count("CSCA  CN=CSCA") == 2


def test_cli_corrupt_file_is_exit_7_and_one_line(tmp_path: Path) -> None:
    ut = utopia()
    folder = tmp_path / "trust"
    import_trust(master_list(ut, ut.csca), folder)
    before = snapshot(folder)
    bad = tmp_path / "bad.ldif"
    bad.write_bytes(b"version: 1\n\ndn: cn=x,c=UT\nuserCertificate;binary:: MAMCAQA=\n")
    code, _, err = run("trust", "import", bad, "--trust-dir", folder)
    assert code == 7 and err.count("\n") == 1 and "LDIF entry at line 3" in err, err
    assert snapshot(folder) == before


def test_crl_of_an_unknown_version_is_a_malformed_file(tmp_path: Path) -> None:
    crl = der(utopia().crl)
    at = crl.index(b"\x02\x01\x01")  # TBSCertList's version v2
    bad = crl[:at] + b"\x02\x01\x09" + crl[at + 3:]
    data = dump_ldif([("cn=crl,o=crl,c=UT", {"certificateRevocationList;binary": [bad]})])
    with pytest.raises(PkiError, match="line 3: malformed CRL"):
        plan_import(data, tmp_path / "trust", at=AT)


# --- a country with no trust anchor; the document types a signer may sign -----------------------------


def test_a_country_without_anchor_is_named(tmp_path: Path) -> None:
    from ektp_card.lds.sod import build_sod
    from ektp_card.verify.passive import Policy, passive_authentication

    ut, fd = utopia(), freedonia()
    groups = {1: b"\x61\x00", 2: b"\x75\x00"}
    sod = build_sod(groups, _signer(0x100 + 2), ut.ds, signing_time=AT)
    result = passive_authentication(sod, groups, TrustStore((fd.csca,)), Policy(at=AT, require_crl=False))
    assert result.check("certificate-chain").reason == "no trust anchor for country UT"
    # A CSCA of the country that is not the signer's issuer: the name is what is missing.
    other = create_csca(_signer(0x800), country="UT", common_name="Other UT", not_before=T0)
    result = passive_authentication(sod, groups, TrustStore((other,)), Policy(at=AT, require_crl=False))
    assert result.check("certificate-chain").reason == "no trusted CSCA named CN=CSCA UT,C=UT"


@pytest.mark.parametrize(("types", "code", "status", "reason"), [
    (("ID",), "ID", "pass", "document type ID, one the signer may sign (ID)"),
    (("P", "ID"), "P<", "pass", "document type P, one the signer may sign (ID, P)"),
    (("I",), "I<", "pass", "document type I, one the signer may sign (I)"),
    (("ID",), "P<", "fail", "document type P is not among those the document signer may sign (ID)"),
    (("ID",), None, "skip", "the document's type is not known here"),
    (None, "P<", "pass", "document type P; the signer names no document types"),
])
def test_document_type_against_the_signer(types: tuple[str, ...] | None, code: str | None, status: str,
                                          reason: str) -> None:
    from ektp_card.lds.sod import build_sod
    from ektp_card.pki.certs import OID_DOCUMENT_TYPE_LIST, document_types, sign_certificate
    from ektp_card.verify.passive import Policy, passive_authentication

    ut = utopia()
    key = _signer(0x102)
    ds = issue_document_signer(ut.csca_signer, ut.csca, key.public_key, common_name="DS Types",
                               not_before=T0, document_types=types or ("ID",))
    if types is None:  # the same signer without the extension, as many states' older ones are
        builder = x509.CertificateBuilder(
            issuer_name=ds.issuer, subject_name=ds.subject, public_key=ds.public_key(),  # type: ignore[arg-type]
            serial_number=ds.serial_number, not_valid_before=ds.not_valid_before_utc,
            not_valid_after=ds.not_valid_after_utc,
            extensions=[e for e in ds.extensions if e.oid != OID_DOCUMENT_TYPE_LIST])
        ds = sign_certificate(builder, ut.csca_signer, "sha256")
    assert document_types(ds) == (None if types is None else tuple(sorted(types)))
    groups = {1: b"\x61\x00", 2: b"\x75\x00"}
    sod = build_sod(groups, key, ds, signing_time=AT)
    result = passive_authentication(sod, groups, TrustStore((ut.csca,)), Policy(at=AT, require_crl=False),
                                    document_type=code)
    check = result.check("document-type")
    assert (check.status.value, check.reason) == (status, reason)
    assert result.ok is (status != "fail")


def test_cli_ds_issue_doc_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("EKTP_CSCA_PASSPHRASE", "csca-pass")
    monkeypatch.setenv("EKTP_DS_PASSPHRASE", "ds-pass")
    root = tmp_path / "pki"
    assert run("pki", "csca", "create", root, "--country", "ID", "--cn", "CSCA", "--key", "secp256r1")[0] == 0
    code, out, err = run("--json", "pki", "ds", "issue", root, "--cn", "DS", "--doc-type", "P",
                         "--doc-type", "I<", "--doc-type", "P")
    assert code == 0, err
    assert json.loads(out)["document_signer"]["document_types"] == ["I", "P"]
    code, out, _ = run("--json", "pki", "ds", "rotate", root, "--cn", "DS 2")
    assert json.loads(out)["document_signer"]["document_types"] == ["ID"]  # the e-KTP's by default
    code, _, err = run("pki", "ds", "issue", root, "--cn", "DS 3", "--doc-type", "IDX")
    assert code == 2 and err.startswith("Error: --doc-type") and err.count("\n") == 1
    code, out, _ = run("pki", "ds", "list", root)
    assert code == 0 and "  I,P  " in out and "  ID  " in out


def test_personalisation_refuses_a_signer_that_may_not_sign_e_ktps() -> None:
    from ektp_card.errors import IssuerMaterialError
    from ektp_card.personalize import DocumentSigner
    from ektp_card.personalize.issue import check_document_signer

    ut = utopia()
    key = _signer(0x103)
    now = dt.datetime.now(dt.UTC)
    passports_only = issue_document_signer(ut.csca_signer, ut.csca, key.public_key, common_name="DS P",
                                           not_before=now - dt.timedelta(days=1), document_types=("P",))
    with pytest.raises(IssuerMaterialError, match=r"may not sign e-KTPs \(document type ID\): it signs P"):
        check_document_signer(DocumentSigner(key, passports_only), at=now)
    both = issue_document_signer(ut.csca_signer, ut.csca, key.public_key, common_name="DS P+ID",
                                 not_before=now - dt.timedelta(days=1), document_types=("P", "ID"))
    check_document_signer(DocumentSigner(key, both), at=now)


def test_link_certificate_is_added_when_its_old_csca_signed_it(tmp_path: Path) -> None:
    from ektp_card.pki.certs import build_name, sign_certificate

    ut = utopia()
    new_signer = _signer(0x150)
    new = create_csca(new_signer, country="UT", common_name="CSCA UT", not_before=T0, serial_number=0x150)

    def link(by: PrivateKeySigner) -> x509.Certificate:
        builder = x509.CertificateBuilder(
            issuer_name=build_name("UT", "CSCA UT"), subject_name=new.subject,
            public_key=new.public_key(), serial_number=0x151,  # type: ignore[arg-type]
            not_valid_before=new.not_valid_before_utc, not_valid_after=new.not_valid_after_utc,
            extensions=list(new.extensions))
        return sign_certificate(builder, by, "sha256")

    good, forged = link(ut.csca_signer), link(_signer(0x666))
    report = import_trust(master_list(ut, ut.csca, good, forged), tmp_path / "trust", at=AT)
    outcomes = sorted((i.outcome.value, i.reason) for i in report.items)
    assert outcomes == [("added", "from the master list of the file")] * 2 + [("skipped", "bad signature")]
    assert set(TrustStore.from_folder(tmp_path / "trust").cscas) == {ut.csca, good}


def test_master_list_with_an_expired_signer_is_not_believed(tmp_path: Path) -> None:
    ut = utopia()
    later = ut.ml.not_valid_after_utc + dt.timedelta(days=1)
    report = plan_import(master_list(ut, ut.csca), tmp_path / "trust", at=later)
    assert not report.master_lists[0].believed and "expired" in report.master_lists[0].reason
    assert not report.files
