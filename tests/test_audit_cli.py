"""`ektp audit`: the catalogue listing, the table, JSON and JUnit outputs, exit codes, the safety gate
for destructive tests, and the attack cards built with --make."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET  # noqa: S405 - parsing XML we wrote ourselves

import pytest

from ektp_card._cli import audit as audit_cli
from ektp_card._cli.util import ExitCode
from ektp_card.audit import engine
from ektp_card.audit.attacks import ATTACK_KINDS
from ektp_card.audit.engine import AuditContext, Finding, Threat, audit_test, select_tests
from ektp_card.virtual import VirtualCard

if TYPE_CHECKING:
    from fixtures.cards import HolderCard, IssuerOf, RunCli

Capture = pytest.CaptureFixture[str]


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide console, so table cells are not wrapped across lines."""
    monkeypatch.setenv("COLUMNS", "300")


@pytest.fixture
def fakes() -> Iterator[list[str]]:
    """Three stand-in tests registered for one test and removed after it, so the CLI is tested apart
    from the real catalogue: one passing (after a PACE session, to show it ran against the card),
    one failing, one destructive. The list collects the IDs of the tests that ran."""
    ran: list[str] = []

    def passing(ctx: AuditContext) -> Finding:
        """Opens a session and passes."""
        with ctx.session() as t:
            t.transceive(bytes.fromhex("00A4000C023F00"))
        ran.append("ZZ-PASS")
        return Finding.passed("the card did what it should", answers=1)

    def failing(ctx: AuditContext) -> Finding:
        """Always finds something."""
        ran.append("ZZ-FAIL")
        return Finding.failed("the attack succeeded")

    def harmful(ctx: AuditContext) -> Finding:
        """Would block the card."""
        ran.append("ZZ-HARM")
        return Finding.passed("blocked as it should")

    audit_test("ZZ-PASS", "a passing stand-in", Threat.SKIMMING)(passing)
    audit_test("ZZ-FAIL", "a failing stand-in", Threat.FORGERY)(failing)
    audit_test("ZZ-HARM", "a destructive stand-in", Threat.ABUSE_OF_FUNCTIONS, destructive=True)(harmful)
    try:
        yield ran
    finally:
        for test_id in ("ZZ-PASS", "ZZ-FAIL", "ZZ-HARM"):
            engine.CATALOGUE.pop(test_id, None)


@pytest.fixture
def genuine(tmp_path: Path, on_card_card: HolderCard) -> tuple[Path, str]:
    """A personalised, locked e-KTP (the default profile: on-card comparison) as an image, and its CAN."""
    card, can = on_card_card()
    path = tmp_path / "genuine.img"
    card.save(path)
    return path, can


@pytest.fixture(scope="module")
def audit(run_cli: RunCli) -> RunCli:
    """``audit(capsys, *args)``: ``ektp audit ARGS``; a leading ``--json`` goes before the command, where
    the CLI takes it."""

    def run(capsys: Capture, *args: str) -> tuple[int, str, str]:
        head = args[:1] if args[:1] == ("--json",) else ()
        return run_cli(capsys, *head, "audit", *args[len(head):])

    return run


# --- the catalogue ------------------------------------------------------------------------------------


def test_list_names_every_test_and_attack_card(capsys: Capture, fakes: list[str], audit: RunCli) -> None:
    code, out, err = audit(capsys, "--list")
    assert code == 0, err
    for test in select_tests():
        assert test.id in out
    assert "ZZ-HARM" in out and "abuse of functions" in out and "Would block the card." in out
    for kind in ATTACK_KINDS.values():
        assert kind.name in out and kind.caught_by in out
    code, out, err = audit(capsys, "--json", "--list")
    assert code == 0, err
    data = json.loads(out)
    assert [t["id"] for t in data["tests"]] == [t.id for t in select_tests()]
    harm = next(t for t in data["tests"] if t["id"] == "ZZ-HARM")
    assert harm == {"id": "ZZ-HARM", "title": "a destructive stand-in", "threat": "abuse of functions",
                    "destructive": True, "needs": [], "description": "Would block the card."}
    assert [k["kind"] for k in data["attack_cards"]] == list(ATTACK_KINDS)
    assert {k["kind"]: k["caught_by"] for k in data["attack_cards"]}["clone"] == "CLONE-COPY"
    assert fakes == []  # listing runs nothing


# --- outputs and exit codes ---------------------------------------------------------------------------


def test_table_and_exit_0_when_nothing_failed(
    capsys: Capture,
    fakes: list[str],
    genuine: tuple[Path, str],
    audit: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, can = genuine
    monkeypatch.setattr(audit_cli, "_watched", lambda: True)  # as if stderr were a terminal
    code, out, err = audit(capsys, "--virtual", str(path), "--can", can, "--only", "ZZ-PASS,ZZ-HARM")
    assert code == ExitCode.OK, err
    assert fakes == ["ZZ-PASS"]  # the destructive one is skipped without --destructive
    assert "ZZ-PASS" in out and "the card did what it should" in out and "skimming" in out
    assert "ZZ-HARM" in out and "skipped" in out and "--destructive" in out
    assert "2 tests in" in out and "1 pass, 1 skipped" in out
    assert "What this audit cannot show:" in out and "Physical attacks" in out and "Side channels" in out
    assert "NO FINDINGS" in out
    assert "[1/2] ZZ-PASS: a passing stand-in" in err and "[2/2] ZZ-HARM" in err  # progress on stderr
    assert can not in out and can not in err


def test_json_and_exit_20_when_a_test_failed(
    capsys: Capture, fakes: list[str], genuine: tuple[Path, str], audit: RunCli
) -> None:
    path, can = genuine
    code, out, err = audit(capsys, "--json", "--virtual", str(path), "--can", can,
                           "--only", "zz-fail", "--only", "ZZ-PASS")
    assert code == ExitCode.AUDIT_FINDINGS == 20, err
    data = json.loads(out)
    assert data["passed"] is False and data["destructive"] is False
    assert data["card"] == f"virtual card {path}"
    assert [(r["id"], r["outcome"]) for r in data["results"]] == [("ZZ-PASS", "pass"), ("ZZ-FAIL", "fail")]
    passing = data["results"][0]
    assert passing["figures"] == {"answers": 1} and passing["apdus"] == 1
    assert passing["evidence"] == [{"command": "00A4000C023F00", "response": "9000",
                                    "ms": passing["evidence"][0]["ms"]}]
    assert data["counts"]["pass"] == 1 and data["counts"]["fail"] == 1
    assert data["limitations"] == list(engine.LIMITATIONS)
    assert can not in out


def test_junit_xml(
    capsys: Capture, fakes: list[str], genuine: tuple[Path, str], tmp_path: Path, audit: RunCli
) -> None:
    path, can = genuine
    junit = tmp_path / "audit.xml"
    code, out, err = audit(capsys, "--virtual", str(path), "--can", can, "--only", "ZZ-PASS,ZZ-FAIL,ZZ-HARM",
                           "--junit", str(junit))
    assert code == ExitCode.AUDIT_FINDINGS, err
    assert f"JUnit XML written to {junit}" in out and "FINDINGS: ZZ-FAIL" in out
    suite = ET.fromstring(junit.read_bytes())  # noqa: S314 - the XML is ours
    assert suite.tag == "testsuite" and suite.get("name") == "ektp-audit"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
        "3", "1", "0", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases) == ["ZZ-PASS", "ZZ-FAIL", "ZZ-HARM"]
    assert cases["ZZ-PASS"].find("failure") is None and cases["ZZ-PASS"].find("skipped") is None
    assert cases["ZZ-PASS"].get("classname") == "ektp.audit.skimming"
    failure = cases["ZZ-FAIL"].find("failure")
    assert failure is not None and failure.get("message") == "the attack succeeded"
    skipped = cases["ZZ-HARM"].find("skipped")
    assert skipped is not None and "--destructive" in (skipped.get("message") or "")
    assert can.encode() not in junit.read_bytes()


def test_wrong_can_exits_8_before_any_test(
    capsys: Capture, fakes: list[str], genuine: tuple[Path, str], audit: RunCli
) -> None:
    path, can = genuine
    wrong = "000000" if can != "000000" else "111111"
    code, out, err = audit(capsys, "--virtual", str(path), "--can", wrong, "--only", "ZZ-PASS,ZZ-FAIL")
    assert code == ExitCode.SECURITY == 8
    assert err.splitlines()[-1] == "Error: PACE failed: wrong CAN; no test was run"
    assert fakes == [] and out == "" and "Traceback" not in err and wrong not in err


def test_can_from_the_environment(capsys: Capture, fakes: list[str], genuine: tuple[Path, str],
                                  monkeypatch: pytest.MonkeyPatch, audit: RunCli) -> None:
    path, can = genuine
    monkeypatch.setenv("EKTP_CAN", can)
    code, _, err = audit(capsys, "--virtual", str(path), "--only", "ZZ-PASS")
    assert code == 0, err
    assert fakes == ["ZZ-PASS"]


def test_usage_errors_exit_2(capsys: Capture, fakes: list[str], genuine: tuple[Path, str], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch, audit: RunCli) -> None:
    path, can = genuine
    monkeypatch.delenv("EKTP_CAN", raising=False)
    code, _, err = audit(capsys, "--virtual", str(path), "--can", can, "--only", "ZZ-PASS,ZZ-NOPE,AA-NONE")
    assert code == ExitCode.USAGE
    assert err == "Error: unknown audit test AA-NONE, ZZ-NOPE; `ektp audit --list` names them all\n"
    code, _, err = audit(capsys, "--virtual", str(path), "--only", "ZZ-PASS")
    assert code == ExitCode.USAGE and "--can" in err
    code, _, err = audit(capsys, "--virtual", str(path), "--reader", "0", "--can", can)
    assert code == ExitCode.USAGE and "only one of --reader, --virtual" in err
    code, _, err = audit(capsys, "--virtual", str(path), "--can", can, "--only", " , ")
    assert code == ExitCode.USAGE and "names no test" in err
    printed = tmp_path / "printed.json"
    printed.write_text('["not", "an", "object"]')
    code, _, err = audit(capsys, "--virtual", str(path), "--can", can, "--printed", str(printed))
    assert code == ExitCode.USAGE and "JSON object" in err
    missing = str(tmp_path / "missing.img")
    code, _, err = audit(capsys, "--virtual", missing, "--can", can, "--only", "ZZ-PASS")
    assert code == ExitCode.FILE, err
    assert fakes == []


def test_printed_fields_and_options_reach_the_tests(
    capsys: Capture,
    genuine: tuple[Path, str],
    trust_dir: Path,
    tmp_path: Path,
    audit: RunCli,
    issuer: IssuerOf,
) -> None:
    seen: list[engine.AuditOptions] = []

    def look(ctx: AuditContext) -> Finding:
        """Records its options."""
        seen.append(ctx.options)
        return Finding.not_applicable("only looks")

    audit_test("ZZ-LOOK", "looks at its options", Threat.MALFUNCTION)(look)
    try:
        path, can = genuine
        printed = tmp_path / "printed.json"
        printed.write_text(json.dumps({"nik": "3171234567890001", "name": "SITI"}))
        code, out, err = audit(capsys, "--virtual", str(path), "--can", can, "--only", "ZZ-LOOK",
                               "--printed", str(printed), "--trust", str(trust_dir), "--relay-bound", "40",
                               "--challenges", "16")
    finally:
        engine.CATALOGUE.pop("ZZ-LOOK", None)
    assert code == 0, err
    assert "n/a" in out and "only looks" in out
    (options,) = seen
    assert options.printed == {"nik": "3171234567890001", "name": "SITI"}
    assert options.relay_bound_ms == 40 and options.challenges == 16 and not options.destructive
    assert options.trust is not None and options.trust.cscas == (issuer().csca,)
    assert options.terminal is None and options.can == can


# --- safety -------------------------------------------------------------------------------------------


def test_destructive_on_a_reader_needs_a_confirmation(
    capsys: Capture, fakes: list[str], audit: RunCli
) -> None:
    # Refused before any reader is opened: stdin is not a terminal here and --yes is absent.
    code, _, err = audit(capsys, "--reader", "no such reader", "--can", "123456", "--only", "ZZ-HARM",
                         "--destructive")
    assert code == ExitCode.USAGE
    assert err == ("Error: --destructive may alter or block the card in the reader: confirm on a terminal "
                   "or add --yes\n")
    assert fakes == []


def test_destructive_confirmation_declined(capsys: Capture, fakes: list[str],
                                          monkeypatch: pytest.MonkeyPatch, audit: RunCli) -> None:
    asked: list[str] = []

    def decline(text: str, **kwargs: object) -> bool:
        asked.append(text)
        raise audit_cli.click.exceptions.Abort

    monkeypatch.setattr(audit_cli, "_interactive", lambda: True)
    monkeypatch.setattr(audit_cli.click, "confirm", decline)
    code, _, err = audit(capsys, "--reader", "no such reader", "--can", "123456", "--only", "ZZ-HARM",
                         "--destructive")
    assert code == ExitCode.USAGE and err == "Aborted.\n"
    assert len(asked) == 1 and "may alter or block the card" in asked[0]
    assert fakes == []


def test_destructive_with_yes_goes_to_the_reader(capsys: Capture, fakes: list[str], audit: RunCli) -> None:
    # Past the gate, the audit looks for the reader (pcscd may or may not run on this machine).
    code, _, err = audit(capsys, "--reader", "no such reader", "--can", "123456", "--only", "ZZ-HARM",
                         "--destructive", "--yes", "--timeout", "0.5")
    assert code in (ExitCode.PCSC_UNAVAILABLE, ExitCode.READER_NOT_FOUND), err
    assert "--yes" not in err and fakes == []


def test_destructive_on_an_image_warns_and_runs(
    capsys: Capture, fakes: list[str], genuine: tuple[Path, str], audit: RunCli
) -> None:
    path, can = genuine
    code, out, err = audit(capsys, "--virtual", str(path), "--can", can, "--only", "ZZ-HARM", "--destructive")
    assert code == 0, err
    assert err.startswith(f"Warning: --destructive tests may alter or block the card in {path}")
    assert fakes == ["ZZ-HARM"] and "blocked as it should" in out


def test_full_audit_leaves_the_image_byte_identical(capsys: Capture, genuine: tuple[Path, str],
                                                    trust_dir: Path, audit: RunCli) -> None:
    path, can = genuine
    before = path.read_bytes()
    code, out, err = audit(capsys, "--json", "--virtual", str(path), "--can", can, "--trust", str(trust_dir),
                           "--challenges", "16")
    assert code in (0, ExitCode.AUDIT_FINDINGS), err
    data = json.loads(out)
    assert [r["id"] for r in data["results"]] == [t.id for t in select_tests()]
    assert path.read_bytes() == before


# --- attack cards -------------------------------------------------------------------------------------


def test_make_refuses_bad_requests(
    capsys: Capture, genuine: tuple[Path, str], tmp_path: Path, audit: RunCli
) -> None:
    path, can = genuine
    out = tmp_path / "out.img"
    code, _, err = audit(capsys, "--make", "hologram", str(path), str(out), "--can", can)
    assert code == ExitCode.USAGE and "unknown attack card 'hologram'" in err and "clone" in err
    code, _, err = audit(capsys, "--make-clone", str(path), str(path), "--can", can)
    assert code == ExitCode.USAGE and "never overwritten" in err
    code, _, err = audit(capsys, "--make", "clone", str(path), str(out), "--can", can, "--delay-ms", "5")
    assert code == ExitCode.USAGE and "--delay-ms goes with --make relay" in err
    code, _, err = audit(capsys, "--make", "clone", str(path), str(out), "--can", can, "--make-clone",
                         str(path), str(out))
    assert code == ExitCode.USAGE and "not both" in err
    out.write_bytes(b"keep")
    code, _, err = audit(capsys, "--make-clone", str(path), str(out), "--can", can)
    assert code == ExitCode.FILE and "--force" in err and out.read_bytes() == b"keep"
    assert not (tmp_path / "other.img").exists()


@pytest.mark.parametrize("kind", list(ATTACK_KINDS))
def test_make_builds_an_attack_card_the_audit_catches(
    capsys: Capture, genuine: tuple[Path, str], trust_dir: Path, tmp_path: Path, kind: str, audit: RunCli
) -> None:
    path, can = genuine
    before = path.read_bytes()
    out = tmp_path / f"{kind}.img"
    spelling = ["--make-clone", str(path), str(out)] if kind == "clone" else [
        "--make", kind, str(path), str(out)]
    extra = ["--delay-ms", "15"] if kind == "relay" else []
    code, printed, err = audit(capsys, *spelling, *extra, "--can", can)
    assert code == 0, err
    assert printed.startswith(f"{kind} card written to {out}")
    assert path.read_bytes() == before  # harvesting leaves the genuine card as it was
    VirtualCard.load(out)
    caught_by = ATTACK_KINDS[kind].caught_by
    code, report, err = audit(capsys, "--json", "--virtual", str(out), "--can", can, "--trust",
                              str(trust_dir), "--only", caught_by, "--relay-bound", "12",
                              "--challenges", "16")
    assert code == ExitCode.AUDIT_FINDINGS, err
    (result,) = json.loads(report)["results"]
    assert (result["id"], result["outcome"]) == (caught_by, "fail"), result["reason"]


# --- tearing during personalisation, wired from the command line ---------------------------------------


def test_tear_perso_runs_on_copies_of_a_blank_image(tmp_path: Path, capsys: Capture,
                                                    monkeypatch: pytest.MonkeyPatch, run_cli: RunCli) -> None:
    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.signer import KeySpec
    from ektp_card.virtual.perso import blank_card

    master = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
    pki = IssuerPki.create(tmp_path / "pki", b"csca-pass", spec=KeySpec.parse("P-256"), country="ID",
                           common_name="CSCA Tear Test")
    pki.issue_document_signer(b"csca-pass", b"ds-pass", common_name="DS Tear Test")
    pki.publish_crl(b"csca-pass")
    (tmp_path / "master.hex").write_text(master.hex())
    blank = tmp_path / "blank.img"
    blank_card(master, bytes.fromhex("0011223344556677")).save(blank)
    before = blank.read_bytes()
    monkeypatch.setenv("EKTP_DS_PASSPHRASE", "ds-pass")
    monkeypatch.delenv("EKTP_CAN", raising=False)
    args = ["--json", "audit", "--only", "TEAR-PERSO", "--tear-blank", str(blank),
            "--pki", str(tmp_path / "pki"), "--master-key-file", str(tmp_path / "master.hex")]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    result = json.loads(out)["results"][0]
    assert (result["id"], result["outcome"]) == ("TEAR-PERSO", "skipped")  # destructive: needs consent
    code, out, err = run_cli(capsys, *args, "--destructive")
    result = json.loads(out)["results"][0]
    assert code == 0, (result["reason"], result["figures"])
    assert result["outcome"] == "pass", result["reason"]
    assert result["figures"]["tears"] > 20 and result["figures"]["complete_and_locked"] >= 1
    assert blank.read_bytes() == before
    code, _, err = run_cli(capsys, "audit", "--only", "TEAR-PERSO")
    assert code == 2 and "--tear-blank" in err
