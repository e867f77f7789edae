"""The detection matrix: the audit catalogue run against a genuine card and against every attack card
built from it (:mod:`ektp_card.audit.attacks`).

It holds when the genuine card passes every test (or the test does not apply to it) and every attack
card fails at least the test named for it (:attr:`~ektp_card.audit.attacks.AttackKind.caught_by`).
The tests do the judging; this module only runs them card after card and lays the outcomes out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ektp_card.audit.attacks import ATTACK_KINDS, DEFAULT_RELAY_DELAY_MS, make_attack_card
from ektp_card.audit.engine import AuditOptions, AuditReport, AuditTest, Outcome, run_audit, select_tests
from ektp_card.audit.targets import VirtualTarget
from ektp_card.errors import AuditError
from ektp_card.virtual.card import VirtualCard

#: The column of the genuine card.
GENUINE = "genuine"

_CELL = {
    Outcome.PASS: "pass",
    Outcome.FAIL: "**FAIL**",
    Outcome.NOT_APPLICABLE: "n/a",
    Outcome.SKIPPED: "skipped",
    Outcome.ERROR: "error",
}


@dataclass(frozen=True)
class DetectionMatrix:
    """One audit report per card: the genuine card first, then each attack kind."""

    tests: tuple[AuditTest, ...]
    reports: Mapping[str, AuditReport]

    @property
    def cards(self) -> tuple[str, ...]:
        return tuple(self.reports)

    def outcome(self, card: str, test_id: str) -> Outcome:
        return self.reports[card].result(test_id).outcome

    def caught_by(self, card: str) -> tuple[str, ...]:
        """The tests that failed for ``card``."""
        return tuple(r.id for r in self.reports[card].failures)

    def problems(self) -> tuple[str, ...]:
        """Why the matrix does not hold, one sentence each; empty when it holds. A named test that
        was not run (not selected) is a problem too: the matrix cannot show the card is caught."""
        found: list[str] = []
        genuine = self.reports.get(GENUINE)
        if genuine is not None:
            for r in genuine.results:
                if r.outcome not in (Outcome.PASS, Outcome.NOT_APPLICABLE):
                    found.append(f"genuine card: {r.id} is {r.outcome}: {r.reason}")
        selected = {t.id for t in self.tests}
        for card in self.cards:
            if card == GENUINE:
                continue
            named = ATTACK_KINDS[card].caught_by
            if named not in selected:
                found.append(f"{card} card: {named} was not run")
                continue
            result = self.reports[card].result(named)
            if result.outcome is not Outcome.FAIL:
                found.append(f"{card} card: {named} is {result.outcome}, not fail: {result.reason}")
        return tuple(found)

    @property
    def holds(self) -> bool:
        return not self.problems()

    def to_markdown(self) -> str:
        """The matrix as a Markdown table: a row per test, a column per card; the cell of the test
        named for an attack card is in brackets."""
        named = {(ATTACK_KINDS[c].caught_by, c) for c in self.cards if c != GENUINE}
        header = ["test", "threat", *self.cards]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for test in self.tests:
            cells = []
            for card in self.cards:
                cell = _CELL[self.outcome(card, test.id)]
                cells.append(f"[{cell}]" if (test.id, card) in named else cell)
            lines.append(f"| {test.id} | {test.threat} | " + " | ".join(cells) + " |")
        failed = [str(len(self.reports[c].failures)) for c in self.cards]
        lines.append("| tests failed | | " + " | ".join(failed) + " |")
        return "\n".join(lines) + "\n"


def detection_matrix(
    genuine: Path,
    can: str,
    options: AuditOptions,
    *,
    kinds: Sequence[str] | None = None,
    tests: Sequence[AuditTest] | None = None,
    delay_ms: int = DEFAULT_RELAY_DELAY_MS,
    progress: Callable[[str, AuditTest], None] | None = None,
) -> DetectionMatrix:
    """Run ``tests`` (default: the catalogue) against the card in the image ``genuine`` and against
    each attack card of ``kinds`` (default: all) built from it with its CAN ``can``.

    Every card is an in-memory copy: the image file is read, never written, even when
    ``options.destructive`` lets the destructive tests run. ``delay_ms`` is the relay card's delay.
    ``progress(card, test)`` is called before each test.
    """
    chosen = tuple(tests) if tests is not None else select_tests()
    names = tuple(kinds) if kinds is not None else tuple(ATTACK_KINDS)
    unknown = [k for k in names if k not in ATTACK_KINDS]
    if unknown:
        raise AuditError(f"unknown attack card {', '.join(unknown)}; one of {', '.join(ATTACK_KINDS)}")
    reports: dict[str, AuditReport] = {}
    for card_name in (GENUINE, *names):
        if card_name == GENUINE:
            card = VirtualCard.load(genuine)
        else:
            card = make_attack_card(card_name, genuine, can, delay_ms=delay_ms)
        report_progress = None if progress is None else _bind(progress, card_name)
        reports[card_name] = run_audit(VirtualTarget(card), options, chosen, progress=report_progress)
    return DetectionMatrix(chosen, reports)


def _bind(progress: Callable[[str, AuditTest], None], card: str) -> Callable[[AuditTest], None]:
    return lambda test: progress(card, test)
