"""Fingerprint matcher (ISO/IEC 19794-2 minutiae, 1:1): building blocks, exact alignment recovery,
properties, and FAR/FRR on a small synthetic data set (bench/bench_matcher.py measures the large one)."""

from __future__ import annotations

import dataclasses
import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ektp_card.errors import BiometricFormatError
from ektp_card.lds.biometrics import (
    DEFAULT_RESOLUTION,
    FingerPosition,
    FingerView,
    Minutia,
    MinutiaeRecord,
    MinutiaType,
)
from ektp_card.lds.synthetic import (
    FINGER_SIZE,
    ImpressionParams,
    SyntheticFinger,
    impression,
    make_finger,
    transform_point,
)
from ektp_card.verify.matcher import (
    DEFAULT_MIN_PAIRED,
    DEFAULT_THRESHOLD,
    MAX_SCORE,
    Alignment,
    MatcherConfig,
    MatchResult,
    match,
)

MM = 10.0 / DEFAULT_RESOLUTION  # millimetres per pixel at 197 pixels/cm
#: Only the pose changes: no noise, nothing missed or added.
POSE_ONLY = ImpressionParams(30.0, 25.0, 0.0, 0, 0.0, 0.0, 0.0)


def finger(seed: int, count: int = 40) -> SyntheticFinger:
    return make_finger(random.Random(seed), count=count)


def record(
    minutiae: list[Minutia], width: int = FINGER_SIZE[0], height: int = FINGER_SIZE[1]
) -> MinutiaeRecord:
    return MinutiaeRecord(width, height, (FingerView(FingerPosition.RIGHT_INDEX, tuple(minutiae)),))


def at_resolution(rec: MinutiaeRecord, x_resolution: int, y_resolution: int) -> MinutiaeRecord:
    return dataclasses.replace(rec, x_resolution=x_resolution, y_resolution=y_resolution)


# --- identical, transformed, different ----------------------------------------------------------


def test_identical_templates_score_the_maximum() -> None:
    rec = finger(1).record()
    result = match(rec, rec)
    assert result.score == MAX_SCORE == 100.0
    assert result.matched and result.threshold == DEFAULT_THRESHOLD
    assert result.paired == len(rec.minutiae) == 40
    assert result.details.pairs == tuple((i, i) for i in range(40))
    assert result.details.minutiae == (40, 40)
    alignment = result.details.alignment
    assert alignment is not None
    assert alignment.rotation == pytest.approx(0.0, abs=1e-9)
    assert (alignment.dx, alignment.dy) == pytest.approx((0.0, 0.0), abs=1e-9)


def test_quarter_turn_and_shift_are_recovered_exactly() -> None:
    """Turn the template 90 degrees counter-clockwise as seen on the image and shift it down by 255
    pixels: integer coordinates, so the true alignment is known exactly."""
    rec = finger(2).record()
    turned = [Minutia(m.type, m.y, 255 - m.x, (m.angle + 64) % 256, m.quality) for m in rec.minutiae]
    result = match(rec, record(turned, FINGER_SIZE[1], FINGER_SIZE[0]))
    assert result.score == 100.0 and result.details.pairs == tuple((i, i) for i in range(40))
    alignment = result.details.alignment
    assert alignment is not None
    assert alignment.rotation == pytest.approx(90.0, abs=1e-9)
    assert alignment.dx == pytest.approx(0.0, abs=1e-9)
    assert alignment.dy == pytest.approx(255 * MM, abs=1e-9)
    # And from the other side: the inverse turn and shift.
    back = match(record(turned, FINGER_SIZE[1], FINGER_SIZE[0]), rec).details.alignment
    assert back is not None
    assert back.rotation == pytest.approx(-90.0, abs=1e-9)
    assert (back.dx, back.dy) == pytest.approx((255 * MM, 0.0), abs=1e-9)


def test_half_turn_is_recovered_exactly() -> None:
    rec = finger(3).record()
    w, h = FINGER_SIZE
    turned = [Minutia(m.type, w - 1 - m.x, h - 1 - m.y, (m.angle + 128) % 256) for m in rec.minutiae]
    result = match(rec, record(turned))
    assert result.score == 100.0
    alignment = result.details.alignment
    assert alignment is not None
    assert abs(alignment.rotation) == pytest.approx(180.0, abs=1e-9)
    assert (alignment.dx, alignment.dy) == pytest.approx(((w - 1) * MM, (h - 1) * MM), abs=1e-9)


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_synthetic_pose_is_recovered_with_the_true_pairs(seed: int) -> None:
    """An impression that only moves the finger: the matcher finds every true correspondence and the
    pose the generator used, to within the rounding of positions to whole pixels."""
    f = finger(seed)
    imp = impression(f, random.Random(seed), POSE_ONLY)
    result = match(f.record(), imp.record)
    truth = tuple(sorted((source, i) for i, source in enumerate(imp.source) if source is not None))
    assert result.details.pairs == truth
    alignment = result.details.alignment
    assert alignment is not None
    assert alignment.rotation == pytest.approx(imp.rotation, abs=0.3)
    for m in f.minutiae:
        x, y = transform_point(f, m.x, m.y, imp.rotation, imp.translation)
        got = alignment.apply(m.x * MM, m.y * MM)
        assert got == pytest.approx((x * MM, y * MM), abs=0.7 * MM)


def test_noisy_impression_of_the_same_finger_matches() -> None:
    f = finger(7)
    rng = random.Random(7)
    result = match(impression(f, rng).record, impression(f, rng).record)
    assert result.matched and result.score > 30
    assert result.paired >= 15


def test_different_fingers_do_not_match() -> None:
    result = match(finger(8).record(), finger(9).record())
    assert not result.matched
    assert result.score < DEFAULT_THRESHOLD / 2
    assert result.paired < 10


# --- building blocks ----------------------------------------------------------------------------


def test_angles_wrap_around_zero() -> None:
    """Directions 1 and 255 units apart are 2.8 degrees apart, not 357: every minutia still pairs."""
    base = [Minutia(MinutiaType.RIDGE_ENDING, m.x, m.y, (m.angle % 4)) for m in finger(10).minutiae]
    turned = [Minutia(m.type, m.x, m.y, (m.angle - 3) % 256) for m in base]
    assert any(m.angle >= 253 for m in turned)
    result = match(record(base), record(turned))
    assert result.paired == 40
    alignment = result.details.alignment
    assert alignment is not None
    # Same positions: a small turn of the directions alone is best explained by no rotation at all.
    assert abs(alignment.rotation) < 3.0


def test_opposite_directions_do_not_pair() -> None:
    base = finger(11).record()
    flipped = [Minutia(m.type, m.x, m.y, (m.angle + 128) % 256) for m in base.minutiae]
    result = match(base, record(flipped))
    # A half turn lines a few of them up by chance, as for any other finger; no more.
    assert not result.matched
    assert result.score < DEFAULT_THRESHOLD


def test_angle_tolerance_bounds_the_pairing() -> None:
    """Every other minutia turned by 14 units (19.7 degrees), the rest untouched: with rotations kept
    near zero (else a 3.5 degree turn splits the difference and pairs all), the turned half pairs only
    under a tolerance above 19.7 degrees."""
    rec = finger(12).record()
    off = [Minutia(m.type, m.x, m.y, (m.angle + 14 * (i % 2)) % 256) for i, m in enumerate(rec.minutiae)]
    loose = match(rec, record(off), MatcherConfig(angle_tolerance=21.0, max_rotation=1.0))
    tight = match(rec, record(off), MatcherConfig(angle_tolerance=19.0, max_rotation=1.0))
    assert loose.paired == 40
    assert tight.details.pairs == tuple((i, i) for i in range(0, 40, 2))


def test_max_rotation_limits_the_search() -> None:
    rec = finger(13).record()
    turned = [Minutia(m.type, m.y, 255 - m.x, (m.angle + 64) % 256) for m in rec.minutiae]
    other = record(turned, FINGER_SIZE[1], FINGER_SIZE[0])
    assert match(rec, other).score == 100.0
    assert not match(rec, other, MatcherConfig(max_rotation=45.0)).matched


def test_resolution_is_honoured() -> None:
    """The same finger recorded at 1000 dpi (394 pixels/cm): coordinates double, the score does not
    change; and with only x doubled, directions are turned accordingly."""
    rec = finger(14).record()
    fine = [Minutia(m.type, 2 * m.x, 2 * m.y, m.angle) for m in rec.minutiae]
    fine_rec = at_resolution(record(fine, 2 * FINGER_SIZE[0], 2 * FINGER_SIZE[1]), 394, 394)
    result = match(rec, fine_rec)
    assert result.score == 100.0
    alignment = result.details.alignment
    assert alignment is not None
    assert (alignment.rotation, alignment.dx, alignment.dy) == pytest.approx((0, 0, 0), abs=1e-9)
    # Without the resolution the doubled template is a different size: far fewer pairs.
    assert match(rec, record(fine, 2 * FINGER_SIZE[0], 2 * FINGER_SIZE[1])).paired < 20

    def stretched(m: Minutia) -> Minutia:
        theta = m.radians
        angle = round(math.degrees(math.atan2(math.sin(theta), 2 * math.cos(theta))) / 1.40625) % 256
        return Minutia(m.type, 2 * m.x, m.y, angle)

    wide = at_resolution(record([stretched(m) for m in rec.minutiae], 2 * FINGER_SIZE[0]), 394, 197)
    assert match(rec, wide).paired == 40


def test_inputs_record_view_and_bytes_agree() -> None:
    f = finger(15)
    rng = random.Random(15)
    a, b = impression(f, rng).record, impression(f, rng).record
    expected = match(a, b)
    assert match(a.encode(), b.encode()) == expected
    assert match(a.views[0], b.views[0]) == expected  # a bare view is taken at 197 pixels/cm


def test_malformed_bytes_raise_the_format_error() -> None:
    data = finger(16).record().encode()
    with pytest.raises(BiometricFormatError):
        match(data[:-1], data)


def test_empty_and_tiny_templates() -> None:
    empty = record([])
    rec = finger(17).record()
    result = match(empty, rec)
    assert (result.score, result.paired, result.matched, result.details.alignment) == (0.0, 0, False, None)
    tiny = record(list(rec.minutiae[:3]))
    result = match(tiny, tiny)
    # Three points agree perfectly, but that is too few to say anything about a finger.
    assert result.score == 100.0 and result.paired == 3 and not result.matched


def test_threshold_is_configurable() -> None:
    f = finger(18)
    rng = random.Random(18)
    a, b = impression(f, rng).record, impression(f, rng).record
    score = match(a, b).score
    assert match(a, b, MatcherConfig(threshold=score)).matched
    above = MatcherConfig(threshold=min(MAX_SCORE, score + 0.01))
    result = match(a, b, above)
    assert not result.matched and result.threshold == above.threshold
    assert not match(a, b, MatcherConfig(min_paired=result.paired + 1, threshold=0.0)).matched


@pytest.mark.parametrize(
    "changes",
    [
        {"threshold": -1.0},
        {"threshold": 101.0},
        {"min_paired": -1},
        {"distance_tolerance": 0.0},
        {"angle_tolerance": 180.0},
        {"pair_angle_tolerance": 0.0},
        {"neighbours": 0},
        {"max_rotation": 0.0},
        {"candidates": 0},
    ],
)
def test_config_is_validated(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        MatcherConfig(**changes)  # type: ignore[arg-type]


def test_alignment_apply() -> None:
    alignment = Alignment(90.0, 1.0, 2.0)
    # Counter-clockwise as seen on the image (y down): right of the origin goes up.
    assert alignment.apply(1.0, 0.0) == pytest.approx((1.0, 1.0))
    assert alignment.apply(0.0, 1.0) == pytest.approx((2.0, 2.0))


# --- properties ---------------------------------------------------------------------------------

minutiae_lists = st.lists(
    st.builds(
        Minutia,
        st.sampled_from(list(MinutiaType)),
        st.integers(0, FINGER_SIZE[0] - 1),
        st.integers(0, FINGER_SIZE[1] - 1),
        st.integers(0, 255),
        st.integers(0, 100),
    ),
    max_size=45,
)


@settings(max_examples=40, deadline=None)
@given(minutiae_lists, minutiae_lists)
def test_score_is_bounded_symmetric_and_deterministic(first: list[Minutia], second: list[Minutia]) -> None:
    a, b = record(first), record(second)
    result = match(a, b)
    assert 0.0 <= result.score <= MAX_SCORE
    assert result == match(a, b)
    reverse = match(b, a)
    assert reverse.score == result.score and reverse.paired == result.paired
    assert reverse.details.pairs == tuple(sorted((k, i) for i, k in result.details.pairs))
    pairs = result.details.pairs
    assert len({i for i, _ in pairs}) == len({k for _, k in pairs}) == result.paired
    assert result.paired <= min(len(first), len(second))
    assert result.matched == (result.score >= DEFAULT_THRESHOLD and result.paired >= DEFAULT_MIN_PAIRED)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_a_template_always_matches_itself(seed: int) -> None:
    rec = impression(finger(seed % 1000, 30), random.Random(seed)).record
    result = match(rec, rec)
    assert result.score == 100.0 and result.matched


# --- accuracy on a small synthetic set ----------------------------------------------------------

FINGERS, IMPRESSIONS, SEED = 30, 3, 20240601


@pytest.fixture(scope="module")
def outcomes() -> tuple[list[MatchResult], list[MatchResult]]:
    """Genuine: every pair of captures of one finger (90). Impostor: one per pair of fingers (435)."""
    rng = random.Random(SEED)
    masters = [make_finger(rng) for _ in range(FINGERS)]
    data = [[impression(f, rng).record for _ in range(IMPRESSIONS)] for f in masters]
    genuine = [
        match(data[f][i], data[f][j])
        for f in range(FINGERS)
        for i in range(IMPRESSIONS)
        for j in range(i + 1, IMPRESSIONS)
    ]
    impostor = [
        match(data[f][(f + g) % IMPRESSIONS], data[g][(f + 2 * g + 1) % IMPRESSIONS])
        for f in range(FINGERS)
        for g in range(f + 1, FINGERS)
    ]
    return genuine, impostor


def test_far_and_frr_at_the_default_threshold(outcomes: tuple[list[MatchResult], list[MatchResult]]) -> None:
    genuine, impostor = outcomes
    assert (len(genuine), len(impostor)) == (90, 435)
    frr = sum(not r.matched for r in genuine) / len(genuine)
    far = sum(r.matched for r in impostor) / len(impostor)
    assert frr <= 0.02
    assert far <= 0.005


def test_score_distributions_are_apart(outcomes: tuple[list[MatchResult], list[MatchResult]]) -> None:
    genuine, impostor = outcomes
    assert statistics.median(r.score for r in genuine) >= 45
    assert statistics.median(r.score for r in impostor) <= 5
    # The margin the default threshold sits in on this set.
    assert max(r.score for r in impostor) < DEFAULT_THRESHOLD <= min(r.score for r in genuine) / 2
