"""The audit engine: named tests run against one card, each leaving a verdict and its evidence.

A test is a function taking an :class:`AuditContext` and returning a :class:`Finding`. Every card
session it opens goes through :meth:`AuditContext.session`, which powers the card up afresh (a new
UID on a genuine card, no access rights) and records each APDU exchange, redacted, as the test's
evidence. Tests are registered in :data:`CATALOGUE` by the :func:`audit_test` decorator; the
catalogue modules (:mod:`ektp_card.audit.catalogue`) import this one, never the reverse.

The vocabulary of threats is that of the Common Criteria protection profiles for machine readable
travel documents (BSI-CC-PP-0056 "EAC", BSI-CC-PP-0068 "PACE"): skimming, eavesdropping, tracing,
forgery, counterfeit, abuse of functions, information leakage, malfunction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol
from xml.etree import ElementTree as ET  # noqa: S405 - writing XML only, never parsing

from ektp_card.apdu.transport import Transport
from ektp_card.errors import AuditError, EktpError
from ektp_card.log import redacted_command, redacted_response


class Threat(StrEnum):
    """Threats named as in the eMRTD / PACE protection profiles."""

    SKIMMING = "skimming"
    EAVESDROPPING = "eavesdropping"
    TRACING = "tracing"
    FORGERY = "forgery"
    COUNTERFEIT = "counterfeit"
    ABUSE_OF_FUNCTIONS = "abuse of functions"
    INFORMATION_LEAKAGE = "information leakage"
    MALFUNCTION = "malfunction"


class Outcome(StrEnum):
    """What a test concluded. ``SKIPPED`` is a test not run (destructive without consent, or not
    selected); ``ERROR`` a test that could not reach a conclusion (the card left the field, say)."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    NOT_APPLICABLE = "n/a"
    SKIPPED = "skipped"
    ERROR = "error"


_NOT_RUN = (Outcome.SKIPPED, Outcome.NOT_APPLICABLE)

#: Longest hex shown for one APDU in evidence; the rest is counted, not shown.
EVIDENCE_DATA_BYTES = 48
#: Exchanges kept per test: the first and last half of this many (the deciding ones are usually last).
EVIDENCE_EXCHANGES = 24


@dataclass(frozen=True)
class Exchange:
    """One APDU exchange as evidence: hex with secrets redacted and long data shortened."""

    command: str
    response: str
    millis: float
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "command": self.command, "response": self.response, "ms": round(self.millis, 3)
        }
        if self.note:
            out["note"] = self.note
        return out


def _shorten(text: str) -> str:
    limit = EVIDENCE_DATA_BYTES * 2
    if len(text) <= limit + 8:
        return text
    return f"{text[:limit]}...<{(len(text) - limit) // 2} more bytes>"


def _evidence_exchange(
    command: bytes, response: bytes, millis: float, sensitive: bool, note: str
) -> Exchange:
    resp = redacted_response(response, sensitive)
    # Keep the status word visible when the data is shortened.
    if not sensitive and len(response) > EVIDENCE_DATA_BYTES + 2:
        resp = f"{_shorten(response[:-2].hex().upper())} {response[-2:].hex().upper()}"
    return Exchange(_shorten(redacted_command(command, sensitive)), resp, millis, note)


class Recorder:
    """Collects the exchanges of one test."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.count = 0
        self._note = ""
        self.sensitive = False

    def note(self, text: str) -> None:
        """Attach ``text`` to the next exchange (e.g. "wrong CAN", "replayed handshake")."""
        self._note = text

    def add(self, command: bytes, response: bytes, millis: float, *, sensitive: bool = False) -> None:
        self.count += 1
        self.exchanges.append(
            _evidence_exchange(command, response, millis, sensitive or self.sensitive, self._note)
        )
        self._note = ""

    def kept(self) -> tuple[tuple[Exchange, ...], int]:
        """The exchanges worth showing and how many were left out."""
        if len(self.exchanges) <= EVIDENCE_EXCHANGES:
            return tuple(self.exchanges), 0
        half = EVIDENCE_EXCHANGES // 2
        return tuple(self.exchanges[:half] + self.exchanges[-half:]), len(self.exchanges) - 2 * half


class RecordingTransport:
    """A transport that times and records every exchange into a :class:`Recorder`."""

    def __init__(self, inner: Transport, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder

    def transceive(self, command: bytes) -> bytes:
        start = time.perf_counter()
        try:
            response = self.inner.transceive(command)
        except EktpError:
            self.recorder.add(command, b"", (time.perf_counter() - start) * 1000)
            raise
        self.recorder.add(command, response, (time.perf_counter() - start) * 1000)
        return response


class CardTarget(Protocol):
    """The card under audit. Each :meth:`session` is a fresh power-up: a genuine contactless chip
    draws a new random UID and forgets every access right."""

    def describe(self) -> str:
        """A line naming the card for the report."""
        ...

    def session(self) -> AbstractContextManager[Transport]:
        """Power the card up and yield its transport; power it down after."""
        ...

    def uid(self, transport: Transport) -> bytes | None:
        """The ISO/IEC 14443-3 UID of the card in this session, or ``None`` if the reader cannot tell."""
        ...


@dataclass(frozen=True)
class Finding:
    """What a test function returns: its outcome, one plain sentence why, and measured figures."""

    outcome: Outcome
    reason: str
    figures: Mapping[str, float | int | str] = field(default_factory=dict)

    @classmethod
    def passed(cls, reason: str, **figures: float | int | str) -> Finding:
        return cls(Outcome.PASS, reason, figures)

    @classmethod
    def failed(cls, reason: str, **figures: float | int | str) -> Finding:
        return cls(Outcome.FAIL, reason, figures)

    @classmethod
    def not_applicable(cls, reason: str, **figures: float | int | str) -> Finding:
        return cls(Outcome.NOT_APPLICABLE, reason, figures)


@dataclass(frozen=True)
class AuditTest:
    """A catalogue entry."""

    id: str
    title: str
    threat: Threat
    description: str
    run: Callable[[AuditContext], Finding] = field(repr=False, compare=False)
    #: A destructive test may alter or block the card (retry counters, writes, tearing).
    destructive: bool = False
    #: Runs only with a terminal key for Terminal Authentication or a trust store; otherwise n/a.
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class TestResult:
    """One test's verdict and evidence."""

    __test__ = False  # not a pytest class

    id: str
    title: str
    threat: Threat
    outcome: Outcome
    reason: str
    seconds: float
    figures: Mapping[str, float | int | str]
    evidence: tuple[Exchange, ...]
    omitted: int
    apdus: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "threat": str(self.threat), "outcome": str(self.outcome),
            "reason": self.reason, "seconds": round(self.seconds, 4), "figures": dict(self.figures),
            "apdus": self.apdus, "evidence": [e.to_json() for e in self.evidence],
            "evidence_omitted": self.omitted,
        }


#: What no software audit over the contactless interface can show; printed in every report.
LIMITATIONS = (
    "Physical attacks (probing, fault injection, reverse engineering of the chip) are out of reach of "
    "an audit over the contactless interface.",
    "Side channels (power, electromagnetic emanation) need laboratory equipment; only response timing "
    "as seen by the reader is measured here, with the reader's resolution.",
    "Statistics over a few hundred random challenges catch gross RNG defects, not a subtly biased "
    "generator (AIS 31 / SP 800-90B need far more samples and the chip's raw noise source).",
    "A pass means the card resisted these attacks as run here, not that it resists every attack.",
)


@dataclass(frozen=True)
class AuditReport:
    """The result of one audit run."""

    card: str
    started: datetime
    seconds: float
    destructive: bool
    results: tuple[TestResult, ...]
    limitations: tuple[str, ...] = LIMITATIONS

    @property
    def failures(self) -> tuple[TestResult, ...]:
        return tuple(r for r in self.results if r.outcome is Outcome.FAIL)

    @property
    def passed(self) -> bool:
        """True when no test failed (errors and skips do not count as passes; see :attr:`complete`)."""
        return not self.failures

    @property
    def complete(self) -> bool:
        """True when every selected test reached a verdict (pass, fail or not applicable)."""
        return all(r.outcome in (Outcome.PASS, Outcome.FAIL, Outcome.NOT_APPLICABLE) for r in self.results)

    def result(self, test_id: str) -> TestResult:
        for r in self.results:
            if r.id == test_id:
                return r
        raise KeyError(test_id)

    def to_json(self) -> dict[str, Any]:
        counts = {str(o): sum(1 for r in self.results if r.outcome is o) for o in Outcome}
        return {
            "card": self.card, "started": self.started.isoformat(), "seconds": round(self.seconds, 3),
            "destructive": self.destructive, "passed": self.passed, "counts": counts,
            "results": [r.to_json() for r in self.results], "limitations": list(self.limitations),
        }

    def to_junit_xml(self) -> bytes:
        """JUnit XML (the schema CI servers read): one testcase per test, fail -> failure, error ->
        error, skipped and not applicable -> skipped."""
        suite = ET.Element(
            "testsuite", name="ektp-audit", tests=str(len(self.results)),
            failures=str(len(self.failures)),
            errors=str(sum(1 for r in self.results if r.outcome is Outcome.ERROR)),
            skipped=str(sum(1 for r in self.results if r.outcome in _NOT_RUN)),
            time=f"{self.seconds:.3f}", timestamp=self.started.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="card", value=self.card)
        ET.SubElement(props, "property", name="destructive", value=str(self.destructive).lower())
        for r in self.results:
            case = ET.SubElement(
                suite, "testcase", classname=f"ektp.audit.{r.threat.name.lower()}", name=r.id,
                time=f"{r.seconds:.3f}",
            )
            evidence = "\n".join(
                f"> {e.command}\n< {e.response}" + (f"   # {e.note}" if e.note else "") for e in r.evidence
            )
            if r.outcome is Outcome.FAIL:
                ET.SubElement(case, "failure", message=r.reason, type="attack-succeeded").text = evidence
            elif r.outcome is Outcome.ERROR:
                ET.SubElement(case, "error", message=r.reason, type="no-verdict").text = evidence
            elif r.outcome in _NOT_RUN:
                ET.SubElement(case, "skipped", message=f"{r.outcome}: {r.reason}")
            ET.SubElement(case, "system-out").text = f"{r.title}\n{r.reason}\n{evidence}"
        body: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
        return body


#: Every registered test, by ID, in catalogue order.
CATALOGUE: dict[str, AuditTest] = {}


def audit_test(
    id: str, title: str, threat: Threat, *, destructive: bool = False, needs: tuple[str, ...] = ()
) -> Callable[[Callable[[AuditContext], Finding]], Callable[[AuditContext], Finding]]:
    """Register the decorated function as catalogue test ``id``; its docstring is the description."""

    def register(fn: Callable[[AuditContext], Finding]) -> Callable[[AuditContext], Finding]:
        if id in CATALOGUE:
            raise ValueError(f"audit test {id} registered twice")
        description = " ".join((fn.__doc__ or title).split())
        CATALOGUE[id] = AuditTest(id, title, threat, description, fn, destructive, needs)
        return fn

    return register


@dataclass
class AuditOptions:
    """What the reviewer gave the audit besides the card."""

    can: str = field(repr=False)
    #: A :class:`~ektp_card.pki.trust.TrustStore`, needed by the Passive Authentication tests.
    trust: Any = None
    #: A :class:`~ektp_card.verify.card.Terminal` for Terminal Authentication tests, if any.
    terminal: Any = None
    destructive: bool = False
    #: The verifier's relay bound: a genuine card's slowest answer seen by the reader must stay below.
    relay_bound_ms: float = 250.0
    #: How many challenges RNG-QUALITY draws.
    challenges: int = 256
    #: Printed fields as read off the card surface by the reviewer (PRINT-CHIP), field name -> text.
    printed: Mapping[str, str] | None = None
    #: What TEAR-PERSO needs to personalise blank cards of the issuer (a ``TearKit``), if given.
    tear: Any = None
    #: A fresh capture of the holder's finger (ISO/IEC 19794-2 record), for BIO-MOC's timing measure.
    fingerprint: bytes | None = field(default=None, repr=False)


class AuditContext:
    """What a test works with: the target, the options and a recorder for the running test."""

    def __init__(self, target: CardTarget, options: AuditOptions) -> None:
        self.target = target
        self.options = options
        self.recorder = Recorder()
        #: Results other tests computed once and share (e.g. one full verification), by key.
        self.cache: dict[str, Any] = {}

    @contextmanager
    def session(self) -> Iterator[RecordingTransport]:
        """A fresh power-up of the card, recorded as evidence of the running test."""
        with self.target.session() as transport:
            yield RecordingTransport(transport, self.recorder)

    def uid(self, transport: Transport) -> bytes | None:
        inner = transport.inner if isinstance(transport, RecordingTransport) else transport
        return self.target.uid(inner)

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per audit run (its exchanges are recorded in the first test that asks)."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]


def select_tests(ids: Sequence[str] | None = None) -> tuple[AuditTest, ...]:
    """The catalogue, or the named tests in catalogue order; unknown IDs raise :class:`AuditError`."""
    _load_catalogue()
    if not ids:
        return tuple(CATALOGUE.values())
    wanted = {i.strip().upper() for i in ids if i.strip()}
    unknown = sorted(wanted - set(CATALOGUE))
    if unknown:
        raise AuditError(f"unknown audit test {', '.join(unknown)}; `ektp audit --list` names them all")
    return tuple(t for t in CATALOGUE.values() if t.id in wanted)


def _load_catalogue() -> None:
    # The catalogue modules register themselves on import.
    import ektp_card.audit.catalogue  # noqa: F401


def run_audit(
    target: CardTarget,
    options: AuditOptions,
    tests: Sequence[AuditTest] | None = None,
    *,
    progress: Callable[[AuditTest], None] | None = None,
) -> AuditReport:
    """Run ``tests`` (default: the whole catalogue) against ``target``.

    Destructive tests are skipped unless ``options.destructive``. A test that raises an
    :class:`~ektp_card.errors.EktpError` gets ``ERROR`` with the message; any other exception is a
    bug and propagates.
    """
    chosen = tuple(tests) if tests is not None else select_tests()
    ctx = AuditContext(target, options)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    results: list[TestResult] = []
    for test in chosen:
        if progress is not None:
            progress(test)
        ctx.recorder = Recorder()
        start = time.perf_counter()
        if test.destructive and not options.destructive:
            finding = Finding(Outcome.SKIPPED, "may alter or block the card; run with --destructive")
        else:
            try:
                finding = test.run(ctx)
            except EktpError as e:
                finding = Finding(Outcome.ERROR, f"no verdict: {e}")
        kept, omitted = ctx.recorder.kept()
        results.append(TestResult(
            test.id, test.title, test.threat, finding.outcome, finding.reason, time.perf_counter() - start,
            dict(finding.figures), kept, omitted, ctx.recorder.count,
        ))
    seconds = time.perf_counter() - t0
    return AuditReport(target.describe(), started, seconds, options.destructive, tuple(results))
