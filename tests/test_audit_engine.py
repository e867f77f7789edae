"""The audit engine: registration, destructive gating, evidence redaction and the report formats."""

from __future__ import annotations

from collections.abc import Iterator
from xml.etree import ElementTree as ET  # noqa: S405 - parsing XML we wrote ourselves

import pytest

from ektp_card.audit import engine
from ektp_card.audit.engine import (
    EVIDENCE_EXCHANGES,
    AuditContext,
    AuditOptions,
    Finding,
    Outcome,
    Threat,
    audit_test,
    run_audit,
    select_tests,
)
from ektp_card.audit.targets import VirtualTarget
from ektp_card.errors import AuditError, CardRemovedError
from ektp_card.virtual.demo import demo_card

CAN = "123456"


@pytest.fixture
def scratch() -> Iterator[list[str]]:
    """Test IDs registered by a test, removed again so the real catalogue stays clean."""
    added: list[str] = []
    yield added
    for test_id in added:
        engine.CATALOGUE.pop(test_id, None)


def register(scratch: list[str], test_id: str, fn: object, **kw: object) -> engine.AuditTest:
    audit_test(test_id, f"title of {test_id}", Threat.SKIMMING, **kw)(fn)  # type: ignore[arg-type]
    scratch.append(test_id)
    return engine.CATALOGUE[test_id]


def test_destructive_tests_are_skipped_without_consent(scratch: list[str]) -> None:
    ran: list[str] = []

    def harmful(ctx: AuditContext) -> Finding:
        """Would block the card."""
        ran.append("harmful")
        return Finding.passed("ok")

    test = register(scratch, "ZZ-HARM", harmful, destructive=True)
    target = VirtualTarget(demo_card())
    report = run_audit(target, AuditOptions(can=CAN), [test])
    assert ran == []
    assert report.result("ZZ-HARM").outcome is Outcome.SKIPPED
    assert "--destructive" in report.result("ZZ-HARM").reason
    report = run_audit(target, AuditOptions(can=CAN, destructive=True), [test])
    assert ran == ["harmful"]
    assert report.result("ZZ-HARM").outcome is Outcome.PASS
    assert test.description == "Would block the card."


def test_evidence_is_recorded_shortened_and_redacted(scratch: list[str]) -> None:
    def chatty(ctx: AuditContext) -> Finding:
        with ctx.session() as t:
            for _ in range(EVIDENCE_EXCHANGES + 6):
                t.transceive(bytes.fromhex("00A4040000"))
            ctx.recorder.note("a PIN in the clear")
            t.transceive(bytes.fromhex("0020000306313233343536"))
            t.transceive(bytes.fromhex("00B0000000"))
        return Finding.failed("the card answered", answers=3)

    test = register(scratch, "ZZ-CHAT", chatty)
    result = run_audit(VirtualTarget(demo_card()), AuditOptions(can=CAN), [test]).result("ZZ-CHAT")
    assert result.apdus == EVIDENCE_EXCHANGES + 8
    assert len(result.evidence) == EVIDENCE_EXCHANGES
    assert result.omitted == 8
    verify = next(e for e in result.evidence if e.note == "a PIN in the clear")
    assert verify.command == "00200003 <7 bytes redacted>"
    assert "313233343536" not in str(result.to_json())
    assert result.outcome is Outcome.FAIL and result.figures == {"answers": 3}


def test_card_errors_become_error_outcomes_and_bugs_propagate(scratch: list[str]) -> None:
    def pulled(ctx: AuditContext) -> Finding:
        raise CardRemovedError("the card was removed")

    def buggy(ctx: AuditContext) -> Finding:
        raise ZeroDivisionError

    tests = [register(scratch, "ZZ-PULL", pulled), register(scratch, "ZZ-BUG", buggy)]
    report = run_audit(VirtualTarget(demo_card()), AuditOptions(can=CAN), tests[:1])
    assert report.result("ZZ-PULL").outcome is Outcome.ERROR
    assert not report.complete and report.passed
    with pytest.raises(ZeroDivisionError):
        run_audit(VirtualTarget(demo_card()), AuditOptions(can=CAN), tests[1:])


def test_junit_xml_maps_outcomes(scratch: list[str]) -> None:
    verdicts = {"ZZ-P": Finding.passed("fine"), "ZZ-F": Finding.failed("attack worked"),
                "ZZ-N": Finding.not_applicable("no DG15")}
    tests = [register(scratch, i, lambda ctx, f=f: f) for i, f in verdicts.items()]
    tests.append(register(scratch, "ZZ-D", lambda ctx: Finding.passed("x"), destructive=True))
    report = run_audit(VirtualTarget(demo_card()), AuditOptions(can=CAN), tests)
    suite = ET.fromstring(report.to_junit_xml())  # noqa: S314 - our own output
    assert suite.tag == "testsuite"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == (
        "4", "1", "2", "0")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    failure = cases["ZZ-F"].find("failure")
    assert failure is not None and failure.get("message") == "attack worked"
    assert cases["ZZ-P"].find("failure") is None and cases["ZZ-P"].find("skipped") is None
    assert cases["ZZ-N"].find("skipped") is not None and cases["ZZ-D"].find("skipped") is not None
    data = report.to_json()
    assert data["counts"]["fail"] == 1 and data["passed"] is False
    assert report.failures[0].id == "ZZ-F" and len(data["limitations"]) >= 3


def test_select_tests_rejects_unknown_ids() -> None:
    with pytest.raises(AuditError, match="NO-SUCH-TEST"):
        select_tests(["no-such-test"])


def test_virtual_target_sessions_power_cycle() -> None:
    card = demo_card()
    target = VirtualTarget(card)
    with target.session() as t:
        assert card.powered and target.uid(t) == card.uid
    assert not card.powered
