"""Synthetic citizens: reproducible, always valid, marked synthetic; fingers and impressions that do what
their parameters say."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from types import ModuleType

import pytest

from ektp_card.lds.biometrics import FingerPosition, MinutiaeRecord, MinutiaType
from ektp_card.lds.ektp import decode_dg1, encode_dg1
from ektp_card.lds.jpeg import jpeg_info
from ektp_card.lds.nik import FEMALE, FOREIGNER, Nik
from ektp_card.lds.record import load_record, write_record
from ektp_card.lds.synthetic import (
    ENROLLED_FINGERS,
    EXACT,
    REFERENCE_DATE,
    ImpressionParams,
    face_photo,
    impression,
    make_finger,
    signature_image,
    synthetic_citizen,
    synthetic_record,
    synthetic_records,
    transform_point,
)

RECORDS = synthetic_records(2024, 6, foreign_share=0.4)


def test_same_seed_same_bytes() -> None:
    pair = synthetic_records(5, 2)
    assert synthetic_records(5, 2) == pair
    assert synthetic_record(5) == pair[0]
    assert pair[0] != pair[1]
    assert synthetic_record(6) != pair[0]


def test_every_synthetic_record_is_valid_and_marked() -> None:
    assert {r.personal.citizenship for r in RECORDS} == {"WNI", "WNA"}
    assert {r.personal.sex for r in RECORDS} == {"LAKI-LAKI", "PEREMPUAN"}
    for record in RECORDS:
        assert record.violations(today=REFERENCE_DATE) == [], record.personal
        assert record.synthetic
        assert record.personal.card_lines()[0][0] == "SYNTHETIC"
        assert decode_dg1(encode_dg1(record.personal)).synthetic
        assert (record.personal.valid_until is None) == (record.personal.citizenship != FOREIGNER)


def test_nik_matches_sex_and_birth_date() -> None:
    for record in RECORDS:
        nik, p = Nik.parse(record.nik), record.personal
        assert nik.female == (p.sex == FEMALE)
        assert (nik.birth_day, nik.month, nik.year) == (
            p.date_of_birth.day,
            p.date_of_birth.month,
            p.date_of_birth.year % 100,
        )


def test_records_survive_json(tmp_path: Path) -> None:
    write_record(RECORDS[0], tmp_path / "r.json", inline=False)
    assert load_record(tmp_path / "r.json", today=REFERENCE_DATE) == RECORDS[0]


def test_photo_and_signature_are_real_jpegs(jpeg_decoder: ModuleType) -> None:
    record = RECORDS[0]
    width, height, components, pixels = jpeg_decoder.decode(record.face)
    assert (width, height, components) == (120, 160, 3)
    background = pixels[0:3]
    assert all(abs(a - b) < 12 for a, b in zip(pixels[3 * 5 : 3 * 5 + 3], background, strict=True))
    centre = 3 * (60 * width + 60)  # the face
    assert sum(abs(a - b) for a, b in zip(pixels[centre : centre + 3], background, strict=True)) > 40
    width, height, components, pixels = jpeg_decoder.decode(record.signature)
    assert (width, height, components) == (160, 48, 1)
    assert min(pixels) < 80 and max(pixels) > 230  # ink on paper
    assert sum(p < 128 for p in pixels) < len(pixels) // 4


def test_grain_makes_a_larger_photo() -> None:
    plain = face_photo(random.Random(1), (64, 80))
    grainy = face_photo(random.Random(1), (64, 80), grain=20)
    assert len(grainy) > 1.3 * len(plain)
    assert jpeg_info(grainy).width == 64
    assert jpeg_info(signature_image(random.Random(3), (90, 30))).height == 30


def test_citizen_carries_the_fingers_of_its_templates() -> None:
    citizen = synthetic_citizen(random.Random(11))
    templates = citizen.record.fingerprint_records()
    assert tuple(f.position for f in citizen.fingers) == ENROLLED_FINGERS
    assert tuple(t.views[0].position for t in templates) == ENROLLED_FINGERS
    for finger, template in zip(citizen.fingers, templates, strict=True):
        # Enrolment loses few minutiae and adds at most two.
        assert len(finger.minutiae) - 6 <= len(template.minutiae) <= len(finger.minutiae) + 2


# --- fingers and impressions ---------------------------------------------------------------------

FINGER = make_finger(random.Random(42), FingerPosition.LEFT_THUMB, count=45)


def test_finger_layout() -> None:
    assert len(FINGER.minutiae) == 45 and FINGER.position == FingerPosition.LEFT_THUMB
    points = [(m.x, m.y) for m in FINGER.minutiae]
    distances = [math.dist(a, b) for i, a in enumerate(points) for b in points[i + 1 :]]
    assert min(distances) >= 13  # 14 before rounding to whole pixels
    cx, cy = FINGER.width / 2, FINGER.height / 2
    assert all(
        ((x - cx) / (FINGER.width * 0.46)) ** 2 + ((y - cy) / (FINGER.height * 0.47)) ** 2 <= 1.02
        for x, y in points
    )
    assert {m.type for m in make_finger(random.Random(1), count=55).minutiae} >= {
        MinutiaType.RIDGE_ENDING,
        MinutiaType.BIFURCATION,
    }
    assert MinutiaeRecord.decode(FINGER.record().encode()) == FINGER.record()


def test_exact_impression_is_the_master_set() -> None:
    shot = impression(FINGER, random.Random(1), EXACT)
    assert (shot.rotation, shot.translation) == (0.0, (0.0, 0.0))
    assert sorted(shot.source) == list(range(45))  # type: ignore[type-var]
    for m, s in zip(shot.record.minutiae, shot.source, strict=True):
        assert s is not None and m == FINGER.minutiae[s]
    assert shot.record.minutiae != FINGER.minutiae  # shuffled: a matcher must not rely on the order


def angle_gap(a: int, b: int) -> int:
    return min((a - b) % 256, (b - a) % 256)


def test_rotation_and_translation_only() -> None:
    params = ImpressionParams(
        rotation=30, translation=25, missing=0, spurious=0, position_noise=0, angle_noise=0, type_flip=0
    )
    for seed in range(10):
        shot = impression(FINGER, random.Random(seed), params)
        assert abs(shot.rotation) <= 30 and all(abs(t) <= 25 for t in shot.translation)
        assert None not in shot.source and len(set(shot.source)) == len(shot.source)
        landed = 0
        for index, master in enumerate(FINGER.minutiae):
            x, y = transform_point(FINGER, master.x, master.y, shot.rotation, shot.translation)
            if 0 <= round(x) < FINGER.width and 0 <= round(y) < FINGER.height:
                landed += 1
                assert index in shot.source
        assert landed == len(shot.source)  # only minutiae pushed off the sensor are lost
        for m, s in zip(shot.record.minutiae, shot.source, strict=True):
            assert s is not None
            master = FINGER.minutiae[s]
            x, y = transform_point(FINGER, master.x, master.y, shot.rotation, shot.translation)
            assert abs(m.x - x) <= 0.5 and abs(m.y - y) <= 0.5
            assert angle_gap(m.angle, round((master.degrees + shot.rotation) / 1.40625) % 256) == 0
            assert m.type == master.type


def test_counter_clockwise_means_up_on_the_image() -> None:
    # A point right of the centre, turned 90 degrees counter-clockwise, goes above the centre (y smaller).
    x, y = transform_point(FINGER, FINGER.width / 2 + 10, FINGER.height / 2, 90, (0, 0))
    assert (round(x), round(y)) == (FINGER.width // 2, FINGER.height // 2 - 10)


def test_missing_minutiae_rate() -> None:
    params = dataclasses.replace(EXACT, missing=0.3)
    kept = sum(len(impression(FINGER, random.Random(s), params).source) for s in range(40))
    assert 0.25 < 1 - kept / (40 * 45) < 0.35


def test_spurious_minutiae() -> None:
    params = dataclasses.replace(EXACT, spurious=5)
    counts = []
    for seed in range(30):
        shot = impression(FINGER, random.Random(seed), params)
        extra = [m for m, s in zip(shot.record.minutiae, shot.source, strict=True) if s is None]
        counts.append(len(extra))
        assert len(shot.source) - len(extra) == 45
    assert min(counts) == 0 and max(counts) == 5


def test_noise_is_small_and_centred() -> None:
    params = dataclasses.replace(EXACT, position_noise=2.0, angle_noise=4.0)
    dx_all = []
    for seed in range(20):
        shot = impression(FINGER, random.Random(seed), params)
        for m, s in zip(shot.record.minutiae, shot.source, strict=True):
            assert s is not None
            master = FINGER.minutiae[s]
            dx_all.append(m.x - master.x)
            assert abs(m.x - master.x) <= 10 and abs(m.y - master.y) <= 10  # five sigma
            assert angle_gap(m.angle, master.angle) <= 15  # about five sigma in 1.40625 degree units
    mean = sum(dx_all) / len(dx_all)
    spread = math.sqrt(sum((d - mean) ** 2 for d in dx_all) / len(dx_all))
    assert abs(mean) < 0.3 and 1.6 < spread < 2.4


def test_type_flip_swaps_ending_and_bifurcation() -> None:
    shot = impression(FINGER, random.Random(3), dataclasses.replace(EXACT, type_flip=1.0))
    for m, s in zip(shot.record.minutiae, shot.source, strict=True):
        assert s is not None
        master = FINGER.minutiae[s]
        assert m.type == master.type if master.type == MinutiaType.OTHER else m.type != master.type


@pytest.mark.parametrize("seed", [0, 1])
def test_impressions_are_reproducible(seed: int) -> None:
    first = impression(FINGER, random.Random(seed))
    assert impression(FINGER, random.Random(seed)) == first
    assert impression(FINGER, random.Random(seed + 100)) != first
    assert MinutiaeRecord.decode(first.encode()) == first.record
