"""The detection matrix of issue 7: the whole audit catalogue against a genuine e-KTP and against every
attack card built from it. The genuine card passes every test (or the test does not apply); every
attack card fails at least the test named for it. Then a subset through a real pcscd.

Speed: the catalogue runs once per card (nine cards). RNG-QUALITY draws only
:data:`CHALLENGES` challenges here (the default is 256), enough for the weak generator (its
challenges repeat after each power-on) and still a pass for the genuine one; the relay card adds
:data:`RELAY_DELAY_MS` per answer against a bound of :data:`RELAY_BOUND_MS`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ektp_card.audit.attacks import ATTACK_KINDS, make_attack_card
from ektp_card.audit.engine import AuditOptions, Outcome, run_audit, select_tests
from ektp_card.audit.matrix import GENUINE, DetectionMatrix, detection_matrix
from ektp_card.audit.targets import PcscTarget
from ektp_card.pki.cvc import VERIFY_BIOMETRIC
from ektp_card.virtual import VirtualCard

if TYPE_CHECKING:
    from fixtures.cards import CaptureOf, HolderCard, IssuerOf
    from fixtures.terminal_pki import MakeTerminalPki, TerminalOf

CHALLENGES = 32
#: The relay card's added delay and the verifier's bound: every answer of the relay card takes at least
#: the delay (its median too), the genuine card's slowest median is about 2 ms in process. A small
#: delay keeps the relay card's audit (some 680 APDUs, each delayed) near 10 s.
RELAY_DELAY_MS = 15
RELAY_BOUND_MS = 12.0


@pytest.fixture(scope="module")
def genuine_image(holder_card: HolderCard) -> tuple[bytes, str]:
    """A personalised card whose trust point is the CVCA of ``terminal_chain``, so the tests that need
    Terminal Authentication run too, saved as an image; and its CAN."""
    the_card, can = holder_card()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "genuine.img"
        the_card.save(path)
        return path.read_bytes(), can


@pytest.fixture(scope="module")
def options(
    genuine_image: tuple[bytes, str], issuer: IssuerOf, terminal: TerminalOf,
    make_terminal_pki: MakeTerminalPki, capture: CaptureOf,
) -> Callable[..., AuditOptions]:
    """``options(*, destructive=True)``: the audit options for the genuine card and its attack cards: a
    terminal that may also have the chip compare fingerprints, and the holder's capture (BIO-MOC)."""
    both = terminal(make_terminal_pki(rights=("read-dg3", "read-dg4", VERIFY_BIOMETRIC)))
    holder = capture().encode()

    def make(*, destructive: bool = True) -> AuditOptions:
        # Each card is an in-memory copy, so the destructive tests may run: the matrix covers them too.
        return AuditOptions(can=genuine_image[1], trust=issuer().trust, terminal=both,
                            destructive=destructive, relay_bound_ms=RELAY_BOUND_MS, challenges=CHALLENGES,
                            fingerprint=holder)

    return make


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, genuine_image: tuple[bytes, str]) -> Path:
    path = tmp_path_factory.mktemp("matrix") / "genuine.img"
    path.write_bytes(genuine_image[0])
    return path


@pytest.fixture(scope="module")
def matrix(
    image: Path, genuine_image: tuple[bytes, str], options: Callable[..., AuditOptions]
) -> DetectionMatrix:
    return detection_matrix(image, genuine_image[1], options(), delay_ms=RELAY_DELAY_MS)


def test_the_matrix_holds(matrix: DetectionMatrix) -> None:
    print(matrix.to_markdown())  # the whole matrix, in the test log (pytest -s, or on failure)
    assert matrix.cards == (GENUINE, *ATTACK_KINDS)
    assert [t.id for t in matrix.tests] == [t.id for t in select_tests()]
    assert matrix.problems() == ()
    assert matrix.holds


def test_the_genuine_card_passes_every_test(matrix: DetectionMatrix) -> None:
    report = matrix.reports[GENUINE]
    assert report.complete and report.passed
    wrong = {r.id: (str(r.outcome), r.reason) for r in report.results
             if r.outcome not in (Outcome.PASS, Outcome.NOT_APPLICABLE)}
    assert wrong == {}
    # Not applicable must stay the exception, each with its reason.
    for r in report.results:
        if r.outcome is Outcome.NOT_APPLICABLE:
            assert r.reason, r.id


@pytest.mark.parametrize("kind", list(ATTACK_KINDS))
def test_each_attack_card_is_caught_by_its_named_test(matrix: DetectionMatrix, kind: str) -> None:
    named = ATTACK_KINDS[kind].caught_by
    result = matrix.reports[kind].result(named)
    assert result.outcome is Outcome.FAIL, result.reason
    assert result.reason and (result.apdus > 0 or result.figures)  # a verdict with its evidence
    assert named in matrix.caught_by(kind)


def test_the_matrix_as_markdown(matrix: DetectionMatrix) -> None:
    text = matrix.to_markdown()
    lines = text.splitlines()
    assert lines[0] == "| test | threat | genuine | " + " | ".join(ATTACK_KINDS) + " |"
    assert lines[1] == "|" + "---|" * (3 + len(ATTACK_KINDS))
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    rows = {row[0]: row[2:] for row in cells}
    assert len(rows) == len(matrix.tests) + 1
    column = {card: i for i, card in enumerate(matrix.cards)}
    for kind in ATTACK_KINDS.values():
        assert rows[kind.caught_by][column[kind.name]] == "[**FAIL**]", kind.name
    for test in matrix.tests:
        assert rows[test.id][column[GENUINE]] in ("pass", "n/a"), test.id
    assert rows["tests failed"][column[GENUINE]] == "0"
    assert all(int(n) >= 1 for n in rows["tests failed"][1:])


def test_the_genuine_image_is_read_never_written(
    image: Path, matrix: DetectionMatrix, genuine_image: tuple[bytes, str]
) -> None:
    assert image.read_bytes() == genuine_image[0]


# --- through pcscd --------------------------------------------------------------------------------------

#: A subset through a PC/SC reader: the UID as the reader reports it (GET DATA, PC/SC part 3), what a
#: skimmer reads, the signed data, the chip's proofs that catch the clone, and malformed commands (the
#: PC/SC transport refuses to send the ones under 4 bytes, which pcscd's vpcd driver never returns from).
PCSCD_TESTS = ("UID-TRACE", "SKIM-ENUM", "PA-TAMPER", "CLONE-COPY", "AA-REPLAY", "FUZZ-APDU")
PCSCD_ATTACK = "clone"


@pytest.mark.pcscd
def test_a_subset_through_pcscd(
    vpcd_bridge: Callable[..., Any],
    pcscd: str,
    tmp_path: Path,
    genuine_image: tuple[bytes, str],
    options: Callable[..., AuditOptions],
) -> None:
    path = tmp_path / "genuine.img"
    path.write_bytes(genuine_image[0])
    tests = select_tests(PCSCD_TESTS)
    target = PcscTarget(pcscd, timeout=5)
    serve = vpcd_bridge

    bridge = serve(VirtualCard.load(path))
    try:
        genuine = run_audit(target, options(destructive=False), tests)
    finally:
        bridge.stop()
    assert genuine.card == f"card in reader {pcscd}"
    assert {r.id: r.outcome for r in genuine.results} == {
        t: Outcome.PASS for t in PCSCD_TESTS}, [(r.id, r.reason) for r in genuine.results]

    bridge = serve(make_attack_card(PCSCD_ATTACK, path, genuine_image[1]))
    try:
        clone = run_audit(target, options(destructive=False), tests)
    finally:
        bridge.stop()
    named = ATTACK_KINDS[PCSCD_ATTACK].caught_by
    assert clone.result(named).outcome is Outcome.FAIL, clone.result(named).reason
    assert path.read_bytes() == genuine_image[0]
