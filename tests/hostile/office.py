"""The hostile-input sweep's office: every file a command can be given.

:func:`build_office` makes a folder with a sandbox issuing office (``sb/``: cards issued, a registry, a signed
revocation list), an issuer PKI whose passphrases are known (``issuer/``), a terminal PKI with key files
(``term/``, and ``sbterm/`` for the sandbox's cards), a blank card, a record, a batch and the rest. Each
sweep case runs in its own copy of it (the ``workspace`` fixture), so cases can run in any order or in
parallel.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: The environment every case starts from: the passphrases of the office's keys and its master key.
PASSPHRASES = {
    "EKTP_CSCA_PASSPHRASE": "csca-pass",
    "EKTP_DS_PASSPHRASE": "ds-pass",
    "EKTP_RS_PASSPHRASE": "rs-pass",
    "EKTP_CVCA_PASSPHRASE": "cvca-pass",
    "EKTP_CVCA_NEW_PASSPHRASE": "new-cvca-pass",
    "EKTP_DV_PASSPHRASE": "dv-pass",
    "EKTP_TERMINAL_PASSPHRASE": "terminal-pass",
}


@dataclass(frozen=True)
class Office:
    """The template folder and what a case needs to know about it (serials, CANs, the master key)."""

    root: Path
    env: dict[str, str]
    facts: dict[str, str]


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _key_file(path: Path, key: ec.EllipticCurvePrivateKey, passphrase: str) -> None:
    _write(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        ),
    )


def _tls(root: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, _sha256())
    )
    _write(root / "tls.pem", cert.public_bytes(serialization.Encoding.PEM))
    _write(
        root / "tls.key",
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def _sha256() -> object:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def _terminal_pki(folder: Path) -> None:
    """CVCA, DV and terminal certificates with their key files, and a DV public key to certify."""
    from ektp_card.pki.cvc import Role, TerminalType, create_cvca, issue
    from ektp_card.pki.signer import PrivateKeySigner
    from ektp_card.verify.report import READ_DG3

    today = dt.datetime.now(dt.UTC).date()
    keys = {
        name: ec.generate_private_key(ec.BrainpoolP256R1()) for name in ("cvca", "dv", "terminal", "spare")
    }
    cvca = create_cvca(
        PrivateKeySigner(keys["cvca"]),
        holder="IDCVCA00001",
        terminal_type=TerminalType.IS,
        rights=[READ_DG3],
        effective=today - dt.timedelta(days=1),
        expiration=today + dt.timedelta(days=1000),
    )
    dv = issue(
        PrivateKeySigner(keys["cvca"]),
        cvca,
        keys["dv"].public_key(),
        holder="IDDVTEST00001",
        role=Role.DV_DOMESTIC,
        rights=[READ_DG3],
        effective=today,
        expiration=today + dt.timedelta(days=90),
    )
    terminal = issue(
        PrivateKeySigner(keys["dv"]),
        dv,
        keys["terminal"].public_key(),
        holder="IDTERM000001",
        role=Role.TERMINAL,
        rights=[READ_DG3],
        effective=today,
        expiration=today + dt.timedelta(days=30),
    )
    for name, cert in (("cvca", cvca), ("dv", dv), ("terminal", terminal)):
        _write(folder / f"{name}.cvcert", cert.encode())
        _key_file(folder / f"{name}.key", keys[name], PASSPHRASES[f"EKTP_{name.upper()}_PASSPHRASE"])
    _write(
        folder / "spare.pub",
        keys["spare"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )


def _foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount TEXT)")
        db.execute("INSERT INTO invoices (amount) VALUES ('12.50')")
    db.close()


def _pkd_files(root: Path, pki: object, passphrase: bytes, ds: x509.Certificate) -> None:
    """A CMS master list of the issuer's CSCA (``ml.der``) and an ICAO PKD LDIF file (``pkd.ldif``) with
    that list, the document signer and the CRL, for ``ektp trust import``."""
    from ektp_card.pki.certs import issue_document_signer
    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.ldif import dump_ldif
    from ektp_card.pki.masterlist import build_master_list
    from ektp_card.pki.signer import PrivateKeySigner

    assert isinstance(pki, IssuerPki)
    key = ec.generate_private_key(ec.SECP256R1())
    ml_cert = issue_document_signer(pki.csca_signer(passphrase), pki.csca, key.public_key(),
                                    common_name="Hostile Sweep ML")
    ml = build_master_list(PrivateKeySigner(key), ml_cert, [pki.csca])
    crl = pki.crl()
    assert crl is not None
    _write(root / "ml.der", ml)
    base = "dc=data,dc=download,dc=pkd,dc=icao,dc=int"
    der = serialization.Encoding.DER
    _write(root / "pkd.ldif", dump_ldif([
        (f"cn=ds,o=dsc,c=ID,{base}", {"userCertificate;binary": [ds.public_bytes(der)]}),
        (f"cn=crl,o=crl,c=ID,{base}", {"certificateRevocationList;binary": [crl.public_bytes(der)]}),
        (f"cn=ml,o=ml,c=ID,{base}", {"pkdMasterListContent": [ml]}),
    ]))


def build_office(root: Path) -> Office:
    from ektp_card.desk.registry import open_registry
    from ektp_card.lds.record import write_record
    from ektp_card.lds.sod import build_sod
    from ektp_card.lds.synthetic import synthetic_records
    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.signer import KeySpec
    from ektp_card.sandbox import build_sandbox
    from ektp_card.virtual import demo_card
    from ektp_card.virtual.perso import blank_card

    sandbox = build_sandbox(root / "sb", cards=3, batch_records=5, seed=7)
    csca, ds, rs = (PASSPHRASES[f"EKTP_{n}_PASSPHRASE"].encode() for n in ("CSCA", "DS", "RS"))
    pki = IssuerPki.create(
        root / "issuer", csca, spec=KeySpec.parse("secp256r1"), country="ID", common_name="Hostile Sweep CSCA"
    )
    pki.issue_document_signer(csca, ds, common_name="Hostile Sweep DS")
    pki.issue_revocation_signer(csca, rs, common_name="Hostile Sweep RS")
    pki.publish_crl(csca)
    # A second CSCA, whose CRL an operator might drop into the issuer folder by mistake.
    other = IssuerPki.create(
        root / "other-issuer", csca, spec=KeySpec.parse("secp256r1"), country="ID", common_name="Another CSCA"
    )
    other.publish_crl(csca)

    master = bytes(range(16))
    _write(root / "master.key", master.hex().encode() + b"\n")
    blank_card(master, bytes.fromhex("00112233445566AA")).save(root / "blank.card")
    demo_card().save(root / "demo.card")
    records = synthetic_records(11, 3)
    write_record(records[0], root / "record.json")
    _write(root / "batch.jsonl", "".join(json.dumps(r.to_mapping()) + "\n" for r in records[1:]).encode())
    _write(root / "niks.txt", "".join(r.nik + "\n" for r in records[1:]).encode())
    _write(root / "printed.json", json.dumps({"name": sandbox.genuine.name}).encode())

    signer, cert = pki.document_signer(None, ds)
    _pkd_files(root, pki, csca, cert)
    dg1, dg2 = b"\x61\x03\x5f\x1f\x00", b"\x75\x03\x7f\x61\x00"
    _write(root / "dg1.bin", dg1)
    _write(root / "dg2.bin", dg2)
    _write(root / "sod.bin", build_sod({1: dg1, 2: dg2}, signer, cert))

    _terminal_pki(root / "term")
    terminal = sandbox.terminal
    _write(root / "sbterm" / "cvca.cvcert", sandbox.cvca_certificate)
    _write(root / "sbterm" / "dv.cvcert", terminal.chain[0].encode())
    _write(root / "sbterm" / "terminal.cvcert", terminal.chain[1].encode())
    _key_file(
        root / "sbterm" / "terminal.key",
        terminal.signer._key,  # type: ignore[attr-defined]
        PASSPHRASES["EKTP_TERMINAL_PASSPHRASE"],
    )

    for name in ("central.sqlite", "local.sqlite"):
        open_registry(root / name).close()
    _foreign_sqlite(root / "foreign.sqlite")
    _tls(root)
    (root / "vdir").mkdir()
    facts = {
        "genuine": sandbox.genuine.serial,
        "genuine_can": sandbox.genuine.can,
        "personalised": sandbox.cards[1].serial,
        "personalised_can": sandbox.cards[1].can,
        "lost": sandbox.lost.serial,
        "nik": sandbox.genuine.nik,
        "genuine_image": str(sandbox.genuine.image.relative_to(root)),
        "clone_image": str(sandbox.clone.relative_to(root)),
        "holder": str(sandbox.cards[1].holder_capture.relative_to(root)),
        "genuine_holder": str(sandbox.genuine.holder_capture.relative_to(root)),
        "ds_serial": f"{cert.serial_number:X}",
    }
    env = dict(PASSPHRASES, EKTP_PERSO_MASTER_KEY=master.hex())
    return Office(root, env, facts)
