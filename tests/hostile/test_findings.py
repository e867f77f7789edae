"""One test per finding of the hostile-input sweep that the sweep's contract (a documented code, one
line, nothing changed) does not pin down by itself: which code, which file mode, what is printed."""

from __future__ import annotations

import json
import resource
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from ektp_card._cli.util import ExitCode
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.desk.backend import DatabaseError
from ektp_card.desk.registry import open_registry
from ektp_card.errors import MrzError, PkiError
from ektp_card.personalize.master_key import master_key_from_env
from ektp_card.virtual import VirtualCard

if TYPE_CHECKING:
    from hostile.office import Office


Ektp = Callable[..., tuple[int, str, str]]


def test_a_serial_never_becomes_a_path(office: Office, workspace: Path, ektp: Ektp) -> None:
    (workspace / "etc").mkdir()
    (workspace / "etc" / "passwd.print.json").write_text('{"can": "123456"}')
    code, _, err = ektp(
        "desk",
        "handover",
        "../../etc/passwd",
        "--fingerprint",
        "{holder}",
        "--virtual-dir",
        "sb/cards",
        "--issuer",
        "sb/pki",
        "--terminal-chain",
        "sbterm/dv.cvcert",
        "--terminal-chain",
        "sbterm/terminal.cvcert",
        "--terminal-key",
        "sbterm/terminal.key",
        "--registry",
        "sb/registry.sqlite",
    )
    assert code == 2 and "a card serial is 16 hex digits" in err


def test_an_unknown_serial_at_handover_is_the_registrys_refusal(
    office: Office, workspace: Path, ektp: Ektp
) -> None:
    code, _, err = ektp(
        "desk",
        "handover",
        "0123456789ABCDEF",
        "--fingerprint",
        "{holder}",
        "--virtual-dir",
        "sb/cards",
        "--issuer",
        "sb/pki",
        "--terminal-chain",
        "sbterm/dv.cvcert",
        "--terminal-chain",
        "sbterm/terminal.cvcert",
        "--terminal-key",
        "sbterm/terminal.key",
        "--registry",
        "sb/registry.sqlite",
    )
    assert code == 15 and "0123456789ABCDEF" in err  # not 7 for the print job it would have read


def test_a_non_hex_master_key_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EKTP_PERSO_MASTER_KEY", "sixteen chars!!!")  # 16 bytes: once taken as a raw key
    with pytest.raises(PkiError, match="32 or 64 hex digits"):
        master_key_from_env()
    monkeypatch.setenv("EKTP_PERSO_MASTER_KEY", "00112233445566778899aabbccddeeff")
    assert master_key_from_env() == bytes.fromhex("00112233445566778899aabbccddeeff")


@pytest.mark.parametrize(
    ("birth", "expiry"),
    [
        ("741312", "120415"),
        ("740832", "120415"),
        ("740230", "120415"),
        ("740812", "121301"),
        ("740812", "120431"),
    ],
)
def test_an_mrz_date_outside_the_calendar_is_refused(birth: str, expiry: str) -> None:
    with pytest.raises(MrzError, match="a date of the calendar"):
        MrzInfo("L898902C3", birth, expiry)
    assert MrzInfo("L898902C3", "74<<<<", "120415").date_of_birth == "74<<<<"  # unknown parts stay allowed


@pytest.mark.parametrize("bound", ["nan", "inf", "-5", "1e400"])
def test_a_relay_bound_is_a_finite_positive_number(ektp: Ektp, bound: str) -> None:
    """A bound of nan once let every relay pass RELAY-LATENCY (every comparison with nan is false)."""
    code, _, _ = ektp(
        "audit",
        "--virtual",
        "{genuine_image}",
        "--can",
        "{genuine_can}",
        "--only",
        "RELAY-LATENCY",
        "--relay-bound",
        bound,
    )
    assert code == 2


def test_escape_sequences_stored_in_the_registry_are_shown_not_obeyed(
    office: Office, workspace: Path, ektp: Ektp
) -> None:
    # Written through the library (the command line refuses such a reason): an old or foreign entry.
    with open_registry(workspace / "sb" / "registry.sqlite") as registry:
        registry.revoke(office.facts["personalised"], "\x1b[2J\x1b[31mfraud", desk="d\x1b]0;x\x07", actor="a")
    code, out, _ = ektp("desk", "show", "{personalised}", "--registry", "sb/registry.sqlite")
    assert code == 0 and "\x1b" not in out and "\\x1b[2J" in out
    code, _, err = ektp(
        "desk",
        "revoke",
        "{genuine}",
        "--reason",
        "\x1b[31mx",
        "--registry",
        "sb/registry.sqlite",
    )
    assert code == 2 and "\x1b" not in err


def test_read_out_and_face_out_are_the_owners_alone(office: Office, workspace: Path, ektp: Ektp) -> None:
    code, _, _ = ektp("read", "--virtual", "demo.card", "--out", "dump/files", "PUBLIC")
    assert code == 0
    for folder in (workspace / "dump", workspace / "dump" / "files"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((workspace / "dump" / "files" / "PUBLIC.bin").stat().st_mode) == 0o600
    code, _, _ = ektp(
        "verify",
        "--virtual",
        "{genuine_image}",
        "--can",
        "{genuine_can}",
        "--trust",
        "sb/pki",
        "--face-out",
        "face.jpg",
    )
    assert code == 0
    assert stat.S_IMODE((workspace / "face.jpg").stat().st_mode) == 0o600


def test_another_csca_crl_stops_personalisation_before_the_card_is_touched(
    office: Office, workspace: Path, ektp: Ektp
) -> None:
    (workspace / "issuer" / "csca.crl").write_bytes((workspace / "other-issuer" / "csca.crl").read_bytes())
    blank = (workspace / "blank.card").read_bytes()
    code, _, err = ektp(
        "personalize",
        "record.json",
        "--pki",
        "issuer",
        "--virtual",
        "blank.card",
        "--master-key-file",
        "master.key",
    )
    assert code == 7 and "not a CRL of the CSCA" in err
    assert (workspace / "blank.card").read_bytes() == blank  # not locked, not a try counted
    code, _, err = ektp(
        "desk",
        "issue",
        "batch.jsonl",
        "--issuer",
        "issuer",
        "--virtual-dir",
        "issued",
        "--master-key-file",
        "master.key",
        "--registry",
        "new.sqlite",
    )
    assert code == 7 and not (workspace / "issued").exists() and not (workspace / "new.sqlite").exists()


def test_a_card_row_edited_without_an_entry_fails_audit_verify(
    office: Office, workspace: Path, ektp: Ektp
) -> None:
    path = workspace / "sb" / "registry.sqlite"
    with sqlite3.connect(path) as db:
        for (trigger,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            db.execute(f"DROP TRIGGER {trigger}")
        db.execute("UPDATE cards SET state = 'active' WHERE serial = ?", (office.facts["lost"],))
    db.close()
    code, out, err = ektp("--json", "desk", "audit-verify", "--registry", str(path))
    assert code == 10 and not json.loads(out)["ok"]
    assert (
        f"card {office.facts['lost']}: its state is not what the log records"
        in json.loads(out)["problem"]["reason"]
    )


def test_an_apdu_refused_by_the_card_says_so_on_stderr(office: Office, workspace: Path, ektp: Ektp) -> None:
    code, out, err = ektp("apdu", "--virtual", "demo.card", "00A4000C023F00", "00B0000000")
    assert code == 6 and "9000" in out
    assert err.startswith("Error: APDU 2 answered 6986")


def test_ctrl_c_is_one_line_and_exit_130(
    office: Office,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    hostile_runner: ModuleType,
    hostile_sweep: ModuleType,
) -> None:
    r = hostile_runner
    case = hostile_sweep.Case(
        "interrupt", "", ("record", "synthetic", "rec.json"), frozenset(), inject="interrupt"
    )
    before = r.snapshot(workspace)
    code, _, err = r.run(list(case.argv), case, workspace, office, monkeypatch)
    monkeypatch.undo()
    assert code == 130 and err == "Interrupted.\n"
    assert r.changes(before, r.snapshot(workspace), ()) == []


def test_can_dash_without_a_terminal_and_nothing_piped_is_one_line(
    office: Office, workspace: Path, ektp: Ektp
) -> None:
    code, _, err = ektp("read", "--virtual", "{genuine_image}", "--can", "-")
    assert code == 2 and err.startswith("Error: '-' reads the CAN") and "Warning" not in err


def test_a_read_only_session_leaves_the_image_file_alone(office: Office, workspace: Path, ektp: Ektp) -> None:
    image = workspace / office.facts["genuine_image"]
    before = image.stat().st_mtime_ns
    code, _, _ = ektp(
        "read",
        "--virtual",
        str(image),
        "--can",
        "{genuine_can}",
        "--app",
        "D360000000454B545001",
        "01",
    )
    assert code == 0 and image.stat().st_mtime_ns == before
    VirtualCard.load(image)


def test_a_dg14_with_an_object_descriptor_where_an_oid_belongs_is_malformed(office: Office) -> None:
    """asn1crypto raises AttributeError reading an ObjectDescriptor: once an internal error of verify and
    audit for a DG14 signed by the issuer with that one tag byte changed."""
    from ektp_card.errors import LdsFormatError
    from ektp_card.lds.dg14 import Dg14
    from ektp_card.lds.ektp import EKTP_AID

    card = VirtualCard.load(office.root / office.facts["genuine_image"])
    dg14 = bytes(card.fs.application(EKTP_AID).child_ef(0x010E).data)  # type: ignore[union-attr]
    oid = bytes.fromhex("06072a8648ce3d0201")  # id-ecPublicKey in the chip's public key
    assert oid in dg14 and Dg14.decode(dg14)
    with pytest.raises(LdsFormatError, match="malformed"):
        Dg14.decode(dg14.replace(oid, b"\x07" + oid[1:], 1))


@pytest.mark.parametrize(
    "info",
    ["7F6608020201000202 0010", "7F660c0205ffffffffff0205ffffffffff"],
    ids=["response-of-16-bytes", "buffers-of-a-terabyte"],
)
def test_odd_buffer_sizes_in_ef_atr_info_make_an_attack_card_all_the_same(office: Office, info: str) -> None:
    """The attack card copies the genuine card's buffer sizes: sizes no card can have were an internal
    error of `audit --make`; the copy now gets the nearest a card can have."""
    from ektp_card.audit.attacks import make_attack_card

    card = VirtualCard.load(office.root / office.facts["genuine_image"])
    card.fs.mf.child_ef(0x2F01).data[:] = bytes.fromhex(info.replace(" ", ""))  # type: ignore[union-attr]
    clone = make_attack_card("clone", VirtualCard.loads(card.dumps()), office.facts["genuine_can"])
    assert clone.dumps()


def test_a_revocation_list_with_a_corrupted_certificate_is_malformed(
    office: Office, workspace: Path, ektp: Ektp
) -> None:
    """cryptography reads a certificate's version when loading it, its other fields when first asked:
    a list whose embedded signer certificate says X.509 v4 was an internal error of `verify`."""
    from ektp_card.pki.revocation import parse_revocation_list

    data = (workspace / "sb" / "revocations.p7").read_bytes()
    v3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2: X.509 v3
    assert v3 in data and parse_revocation_list(data)
    spoilt = data.replace(v3, bytes.fromhex("a003020103"), 1)
    with pytest.raises(PkiError, match="malformed revocation list"):
        parse_revocation_list(spoilt)
    (workspace / "spoilt.p7").write_bytes(spoilt)
    code, _, err = ektp(
        "verify",
        "--virtual",
        "{genuine_image}",
        "--can",
        "{genuine_can}",
        "--trust",
        "sb/pki",
        "--revocations",
        "spoilt.p7",
    )
    assert code == 7 and "malformed revocation list" in err


def test_a_full_disk_under_the_registry_is_one_line_and_records_nothing(
    office: Office, workspace: Path, ektp: Ektp
) -> None:
    # A file-size limit makes every write that grows a file fail (EFBIG; Python ignores SIGXFSZ), which
    # reaches SQLite's own writes as a full disk does; the os.write injection of the sweep cannot.
    path = workspace / "sb" / "registry.sqlite"
    with open_registry(path) as registry:
        before = registry.get(office.facts["personalised"])
        head = registry.audit_head()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    try:
        code, _, err = ektp(
            "desk", "revoke", "{personalised}", "--reason", "fraud", "--registry", "sb/registry.sqlite"
        )
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert code == ExitCode.REGISTRY and "cannot open registry" in err, err
    with open_registry(path) as registry:
        assert registry.get(office.facts["personalised"]) == before
        assert registry.audit_head() == head and registry.verify() is None


def test_a_disk_that_fills_inside_a_registry_write_rolls_it_back_with_one_error(tmp_path: Path) -> None:
    # SQLite rolls a transaction back by itself on SQLITE_FULL; a second ROLLBACK used to raise over it
    # (sqlite3.OperationalError "no transaction is active", an internal error at the command line).
    with open_registry(tmp_path / "registry.sqlite") as registry:
        connection = registry.connection
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count={pages + 1}")
        added = 0
        with pytest.raises(DatabaseError, match="disk refused the write .*nothing was recorded"):
            for added in range(1000):  # noqa: B007 - the count is asserted below
                registry.register(f"{added:016X}", f"3171{added:012d}", desk="d", actor="a")
        assert 0 < added < 1000
        assert len(registry.cards()) == added and registry.verify() is None
        assert registry.get(f"{added:016X}") is None
