"""Synthetic citizens for tests, demos and the fingerprint matcher: records, photos, signatures and
fingers, all from a seeded :class:`random.Random`, so the same seed gives the same bytes.

Every record made here is marked synthetic: ``PersonalData.synthetic`` is true, DG1 carries the marker
(data object 94) and :meth:`~ektp_card.lds.record.PersonalData.card_lines` prints it first. The names,
addresses and places are Indonesian-looking but made up; province and regency codes in the NIK are real
codes (:mod:`ektp_card.lds.nik`), districts and serial numbers are random.

Fingers: a :class:`SyntheticFinger` is a master set of minutiae laid out along a simple orientation
field (loop, whorl or arch around a core point). :func:`impression` makes one capture of it, as a
fingerprint reader would: the finger rotated and moved on the sensor, some minutiae missed, some
spurious ones found, positions and angles a little off. Each impression records what was done to it
(:class:`Impression`), so matcher tests know the truth.

Records are valid as of :data:`REFERENCE_DATE` (dates of issue before it); a foreign resident's card
is valid for five years from issue, so a record's validity can run out some years after that date.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass

from ektp_card.lds.biometrics import (
    ANGLE_UNIT,
    DEFAULT_RESOLUTION,
    FingerPosition,
    FingerView,
    ImpressionType,
    Minutia,
    MinutiaeRecord,
    MinutiaType,
)
from ektp_card.lds.jpeg import encode_jpeg
from ektp_card.lds.nik import (
    BLOOD_TYPES,
    CITIZEN,
    FEMALE,
    FEMALE_DAY_OFFSET,
    FOREIGNER,
    MALE,
    MARITAL_STATUSES,
    RELIGIONS,
    UNMARRIED,
)
from ektp_card.lds.record import CitizenRecord, PersonalData

#: Synthetic records are issued before this date and valid on it.
REFERENCE_DATE = dt.date(2025, 1, 1)
FIRST_ISSUE = dt.date(2012, 1, 1)
FOREIGN_VALIDITY_YEARS = 5
#: Size of the synthetic photo: 3:4, as ICAO portraits.
PHOTO_SIZE = (120, 160)
SIGNATURE_SIZE = (160, 48)
#: Sensor image of a synthetic finger: 256 x 360 pixels at 197 pixels/cm (500 dpi), 13 x 18 mm.
FINGER_SIZE = (256, 360)
ENROLLED_FINGERS = (FingerPosition.RIGHT_INDEX, FingerPosition.LEFT_INDEX)

# fmt: off
_MALE_NAMES = ("AGUS", "BUDI", "EKO", "ADI", "JOKO", "BAMBANG", "HENDRA", "RUDI", "SLAMET", "ARIF", "DEDI",
               "WAHYU", "YUSUF", "RIZKY", "FAJAR", "IMAM", "TEGUH", "HADI", "SURYA", "DIMAS", "ANDI", "BAYU")
_FEMALE_NAMES = ("SITI", "SRI", "DEWI", "RINA", "ANI", "LESTARI", "PUTRI", "AYU", "NUR", "INDAH", "FITRI",
                 "RATNA", "YULIANA", "MEGA", "DIAN", "WULAN", "KARTIKA", "NOVI", "RAHAYU", "MAYA", "TITIN")
_FAMILY_NAMES = ("SANTOSO", "WIDODO", "SETIAWAN", "SAPUTRA", "HIDAYAT", "PRATAMA", "KURNIAWAN", "NUGROHO",
                 "SUSANTO", "WIBOWO", "HARAHAP", "SIREGAR", "NASUTION", "LUBIS", "SIMANJUNTAK", "WIJAYA",
                 "GUNAWAN", "HALIM", "SALIM", "RAHMAN", "HASAN", "PERMATASARI", "ANGGRAINI", "WULANDARI")
_FOREIGN_NAMES = ("JOHN SMITH", "MARIA GARCIA", "KENJI TANAKA", "LI WEI", "ANNA MULLER", "PIERRE DUBOIS",
                  "RAJESH KUMAR", "SARAH O'BRIEN", "PARK JI-HOON", "NGUYEN VAN AN")
_STREETS = ("MERDEKA", "SUDIRMAN", "DIPONEGORO", "GAJAH MADA", "PAHLAWAN", "MELATI", "MAWAR", "KENANGA",
            "ANGGREK", "CEMPAKA", "IMAM BONJOL", "AHMAD YANI", "HAYAM WURUK", "PEMUDA", "VETERAN")
_PLACE_PARTS = (("SUKA", "MEKAR", "SUMBER", "TAMAN", "KEBON", "CIPTA", "BUMI", "MARGA", "KARANG", "TANJUNG"),
                ("JADI", "MAJU", "SARI", "MULYA", "ASIH", "RAHAYU", "WANGI", "AGUNG", "BARU", "INDAH"))
_BIRTH_PLACES = ("JAKARTA", "BANDUNG", "SURABAYA", "SEMARANG", "YOGYAKARTA", "MEDAN", "MAKASSAR", "DENPASAR",
                 "PALEMBANG", "MALANG", "SOLO", "BOGOR", "PADANG", "PONTIANAK", "MANADO", "AMBON", "KUPANG")
_FOREIGN_BIRTH_PLACES = ("LONDON", "MADRID", "OSAKA", "BEIJING", "BERLIN", "LYON", "MUMBAI", "DUBLIN",
                         "SEOUL", "HANOI")
#: (province code, province, regency/city code, kabupaten/kota, place of issue): real Kemendagri codes.
_REGIONS = (
    ("32", "JAWA BARAT", "73", "KOTA BANDUNG", "BANDUNG"),
    ("32", "JAWA BARAT", "04", "KABUPATEN BANDUNG", "SOREANG"),
    ("35", "JAWA TIMUR", "78", "KOTA SURABAYA", "SURABAYA"),
    ("33", "JAWA TENGAH", "74", "KOTA SEMARANG", "SEMARANG"),
    ("34", "DI YOGYAKARTA", "71", "KOTA YOGYAKARTA", "YOGYAKARTA"),
    ("34", "DI YOGYAKARTA", "04", "KABUPATEN SLEMAN", "SLEMAN"),
    ("51", "BALI", "71", "KOTA DENPASAR", "DENPASAR"),
    ("73", "SULAWESI SELATAN", "71", "KOTA MAKASSAR", "MAKASSAR"),
    ("12", "SUMATERA UTARA", "71", "KOTA MEDAN", "MEDAN"),
    ("16", "SUMATERA SELATAN", "71", "KOTA PALEMBANG", "PALEMBANG"),
    ("64", "KALIMANTAN TIMUR", "71", "KOTA BALIKPAPAN", "BALIKPAPAN"),
)
_OCCUPATIONS = ("PELAJAR/MAHASISWA", "KARYAWAN SWASTA", "WIRASWASTA", "PEGAWAI NEGERI SIPIL",
                "PETANI/PEKEBUN", "MENGURUS RUMAH TANGGA", "GURU", "PEDAGANG", "NELAYAN/PERIKANAN",
                "BURUH HARIAN LEPAS", "BELUM/TIDAK BEKERJA", "DOKTER", "SOPIR")
_RELIGION_WEIGHTS = (80, 7, 3, 2, 1, 1, 1)
_SKIN = ((224, 172, 105), (198, 134, 66), (241, 194, 125), (141, 85, 36), (232, 190, 150))
_HAIR = ((20, 16, 14), (45, 30, 20), (70, 50, 35), (110, 90, 70), (160, 150, 140))
_BACKGROUND = ((205, 220, 235), (230, 230, 228), (190, 210, 240))
# fmt: on


# --- fingers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticFinger:
    """The master minutiae of one synthetic finger, in sensor coordinates of a centred placement."""

    position: FingerPosition
    minutiae: tuple[Minutia, ...]
    width: int = FINGER_SIZE[0]
    height: int = FINGER_SIZE[1]

    def record(self) -> MinutiaeRecord:
        """The master set as a minutiae record (a perfect capture)."""
        return _record(self, self.minutiae, 100)


def _record(finger: SyntheticFinger, minutiae: tuple[Minutia, ...], quality: int) -> MinutiaeRecord:
    view = FingerView(finger.position, minutiae, impression=ImpressionType.LIVE_PLAIN, quality=quality)
    return MinutiaeRecord(finger.width, finger.height, (view,), DEFAULT_RESOLUTION, DEFAULT_RESOLUTION)


def _units(degrees: float) -> int:
    return round(degrees / ANGLE_UNIT) % 256


def make_finger(
    rng: random.Random,
    position: FingerPosition = FingerPosition.RIGHT_INDEX,
    *,
    count: int | None = None,
    min_distance: float = 14.0,
) -> SyntheticFinger:
    """A finger with ``count`` minutiae (30 to 55 when not given) at least ``min_distance`` pixels
    apart, inside the fingertip's ellipse, pointing along a loop, whorl or arch orientation field."""
    width, height = FINGER_SIZE
    count = count if count is not None else rng.randint(30, 55)
    cx, cy = width / 2, height / 2
    core_x, core_y = cx + rng.uniform(-25, 25), cy + rng.uniform(-40, 20)
    pattern = rng.choice(("loop", "whorl", "arch"))
    tilt = rng.uniform(-0.3, 0.3)
    a, b = width * 0.46, height * 0.47
    points: list[tuple[float, float]] = []
    attempts = 0
    while len(points) < count and attempts < count * 200:
        attempts += 1
        x, y = rng.uniform(4, width - 5), rng.uniform(4, height - 5)
        if ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 > 1:
            continue
        if any((x - px) ** 2 + (y - py) ** 2 < min_distance**2 for px, py in points):
            continue
        points.append((x, y))
    minutiae = []
    for x, y in points:
        # Ridge orientation in mathematical axes (y up), modulo 180 degrees.
        dx, dy = x - core_x, core_y - y
        if pattern == "whorl":
            orientation = math.atan2(dy, dx) + math.pi / 2
        elif pattern == "loop":
            orientation = 0.5 * math.atan2(dy, dx) + math.pi / 2
        else:
            orientation = 0.6 * math.sin(math.pi * dx / width) * math.exp(-abs(dy) / height)
        direction = math.degrees(orientation + tilt) + rng.choice((0.0, 180.0)) + rng.gauss(0, 6)
        kind = rng.choices(
            (MinutiaType.RIDGE_ENDING, MinutiaType.BIFURCATION, MinutiaType.OTHER), (48, 48, 4)
        )[0]
        minutiae.append(Minutia(kind, round(x), round(y), _units(direction), rng.randint(40, 100)))
    return SyntheticFinger(position, tuple(minutiae))


@dataclass(frozen=True)
class ImpressionParams:
    """How one capture differs from the master finger. Rotation and translation are drawn uniformly
    within the bounds, noise is Gaussian; every minutia is missed with probability ``missing``; between
    0 and ``spurious`` false minutiae are added; ``type_flip`` swaps ending and bifurcation."""

    rotation: float = 15.0  # degrees, either way
    translation: float = 20.0  # pixels, each axis
    missing: float = 0.15
    spurious: int = 4
    position_noise: float = 2.0  # pixels (standard deviation)
    angle_noise: float = 4.0  # degrees (standard deviation)
    type_flip: float = 0.05


#: No distortion at all: the impression is the master set.
EXACT = ImpressionParams(0.0, 0.0, 0.0, 0, 0.0, 0.0, 0.0)
#: A careful enrolment capture at the registration desk.
ENROLMENT = ImpressionParams(5.0, 8.0, 0.05, 2, 1.5, 3.0, 0.02)


@dataclass(frozen=True)
class Impression:
    """One capture of a finger and how it was made. ``source[i]`` is the index in the finger's master
    minutiae of the impression's minutia ``i``, ``None`` for a spurious one."""

    record: MinutiaeRecord
    rotation: float
    translation: tuple[float, float]
    source: tuple[int | None, ...]

    def encode(self) -> bytes:
        return self.record.encode()


def transform_point(
    finger: SyntheticFinger, x: float, y: float, rotation: float, translation: tuple[float, float]
) -> tuple[float, float]:
    """Where a master position lands on the sensor: turned ``rotation`` degrees counter-clockwise (as
    seen on the image, y downwards) about the image centre, then moved by ``translation``."""
    cx, cy = finger.width / 2, finger.height / 2
    theta = math.radians(rotation)
    dx, dy = x - cx, y - cy
    return (
        cx + dx * math.cos(theta) + dy * math.sin(theta) + translation[0],
        cy - dx * math.sin(theta) + dy * math.cos(theta) + translation[1],
    )


def impression(
    finger: SyntheticFinger, rng: random.Random, params: ImpressionParams = ImpressionParams()
) -> Impression:
    """A capture of ``finger`` (see :class:`ImpressionParams`); minutiae that land outside the sensor
    image are lost, and the order of the minutiae is shuffled."""
    rotation = rng.uniform(-params.rotation, params.rotation) if params.rotation else 0.0
    translation = (
        rng.uniform(-params.translation, params.translation) if params.translation else 0.0,
        rng.uniform(-params.translation, params.translation) if params.translation else 0.0,
    )
    found: list[tuple[Minutia, int | None]] = []
    for index, m in enumerate(finger.minutiae):
        if params.missing and rng.random() < params.missing:
            continue
        x, y = transform_point(finger, m.x, m.y, rotation, translation)
        if params.position_noise:
            x, y = x + rng.gauss(0, params.position_noise), y + rng.gauss(0, params.position_noise)
        degrees = m.degrees + rotation + (rng.gauss(0, params.angle_noise) if params.angle_noise else 0.0)
        kind = m.type
        if params.type_flip and kind != MinutiaType.OTHER and rng.random() < params.type_flip:
            kind = MinutiaType.BIFURCATION if kind == MinutiaType.RIDGE_ENDING else MinutiaType.RIDGE_ENDING
        xi, yi = round(x), round(y)
        if 0 <= xi < finger.width and 0 <= yi < finger.height:
            found.append((Minutia(kind, xi, yi, _units(degrees), m.quality), index))
    for _ in range(rng.randint(0, params.spurious) if params.spurious else 0):
        kind = rng.choice((MinutiaType.RIDGE_ENDING, MinutiaType.BIFURCATION))
        spurious = Minutia(
            kind,
            rng.randrange(finger.width),
            rng.randrange(finger.height),
            rng.randrange(256),
            rng.randint(10, 60),
        )
        found.append((spurious, None))
    rng.shuffle(found)
    found = found[:255]
    record = _record(finger, tuple(m for m, _ in found), rng.randint(60, 100))
    return Impression(record, rotation, translation, tuple(s for _, s in found))


# --- images -------------------------------------------------------------------------------------


def face_photo(
    rng: random.Random, size: tuple[int, int] = PHOTO_SIZE, *, grain: int = 0, quality: int = 80
) -> bytes:
    """A JPEG portrait of a made-up face on a plain background: head and shoulders, hair, eyes, brows
    and mouth. ``grain`` adds per-pixel noise of that amplitude, which makes the file larger."""
    width, height = size
    skin, hair = rng.choice(_SKIN), rng.choice(_HAIR)
    background = rng.choice(_BACKGROUND)
    shirt = (rng.randrange(20, 200), rng.randrange(20, 200), rng.randrange(20, 200))
    cx = width * rng.uniform(0.47, 0.53)
    head_a, head_b = width * rng.uniform(0.24, 0.3), height * rng.uniform(0.25, 0.3)
    head_y = height * 0.42
    hair_extra = rng.uniform(0.04, 0.12) * height
    eye_y, eye_dx = head_y - head_b * 0.12, head_a * 0.42
    eye_r = max(1.5, width * 0.025)
    mouth_y, mouth_w = head_y + head_b * 0.5, head_a * rng.uniform(0.35, 0.5)
    brow_y, brow_half = eye_y - eye_r * 2.2, max(1.0, height * 0.008)
    mouth_half = max(1.0, height * 0.01)
    hair_y, hair_b = head_y - hair_extra * 0.5, head_b + hair_extra * 0.5
    # Painted row by row in layers, each shape as the span of x it covers on that row.
    pixels = bytearray()
    for y in range(height):
        row = bytearray(bytes(background) * width)

        def paint(x0: float, x1: float, colour: tuple[int, int, int], row: bytearray = row) -> None:
            start, stop = max(0, math.ceil(x0)), min(width - 1, math.floor(x1))
            if start <= stop:
                row[3 * start : 3 * stop + 3] = bytes(colour) * (stop - start + 1)

        if head_y < y < height * 0.85:  # neck
            paint(cx - head_a * 0.45, cx + head_a * 0.45, skin)
        for centre_y, a, b, colour in (
            (height * 1.05, width * 0.48, height * 0.3, shirt),
            (hair_y, head_a * 1.12, hair_b, hair),
        ):
            dy = (y - centre_y) / b
            if dy * dy <= 1:
                half = a * math.sqrt(1 - dy * dy)
                paint(cx - half, cx + half, colour)
        hy = (y - head_y) / head_b
        if hy * hy <= 1 and hy >= -0.55:
            # Skin below the hairline hy = -0.55 + 0.25 hx^2, inside the head's ellipse.
            half = head_a * min(math.sqrt(1 - hy * hy), math.sqrt(4 * (hy + 0.55)))
            paint(cx - half, cx + half, skin)
        eye = 1.6 * eye_r * eye_r - ((y - eye_y) * 1.6) ** 2
        if eye >= 0:
            for ex in (cx - eye_dx, cx + eye_dx):
                paint(ex - math.sqrt(eye), ex + math.sqrt(eye), (30, 25, 25))
        if abs(y - brow_y) < brow_half:
            paint(cx - eye_dx * 1.5, cx - eye_dx * 0.5, hair)
            paint(cx + eye_dx * 0.5, cx + eye_dx * 1.5, hair)
        if abs(y - mouth_y) < mouth_half + 0.02 * mouth_w:
            for x in range(math.ceil(cx - mouth_w), math.floor(cx + mouth_w) + 1):
                if (
                    0 <= x < width
                    and abs(y - mouth_y - 0.02 * (x - cx) ** 2 / max(1.0, mouth_w)) < mouth_half
                ):
                    row[3 * x : 3 * x + 3] = bytes((150, 60, 60))
        if grain:
            row = bytearray(_clamp(v + rng.randint(-grain, grain)) for v in row)
        pixels += row
    return encode_jpeg(bytes(pixels), width, height, components=3, quality=quality)


def signature_image(
    rng: random.Random, size: tuple[int, int] = SIGNATURE_SIZE, *, quality: int = 80
) -> bytes:
    """A greyscale JPEG of a made-up handwritten signature: one looping stroke on white."""
    width, height = size
    canvas = bytearray([255]) * (width * height)
    # A cursive stroke: a moving circle (a trochoid) makes the loops, a slow wave the baseline.
    loops = rng.randint(4, 9)
    omega = 2 * math.pi * loops
    loop_x = rng.uniform(1.1, 1.8) * 0.88 * width / omega
    loop_y = rng.uniform(0.18, 0.32) * height
    phase, wave, wave_phase = rng.uniform(0, 2 * math.pi), rng.uniform(0.05, 0.15) * height, rng.uniform(0, 6)
    steps = width * 6
    radius = max(1.0, height / 40)
    reach = math.ceil(radius)
    pen = [
        (dx, dy)
        for dx in range(-reach, reach + 1)
        for dy in range(-reach, reach + 1)
        if dx * dx + dy * dy <= radius**2
    ]
    for i in range(steps):
        t = i / steps
        envelope = 0.45 + 0.55 * abs(math.sin(2.5 * math.pi * t + wave_phase))
        x = round(width * (0.06 + 0.88 * t) + loop_x * math.sin(omega * t + phase))
        y = round(
            height / 2
            + loop_y * envelope * math.cos(omega * t + phase)
            + wave * math.sin(2 * math.pi * t + wave_phase)
        )
        for dx, dy in pen:
            if 0 <= x + dx < width and 0 <= y + dy < height:
                canvas[(y + dy) * width + x + dx] = 20
    return encode_jpeg(bytes(canvas), width, height, components=1, quality=quality)


def _clamp(value: int) -> int:
    return 0 if value < 0 else 255 if value > 255 else value


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticCitizen:
    """A synthetic person: the record to personalise and the two fingers its templates came from
    (to make fresh captures of the holder at a counter)."""

    record: CitizenRecord
    fingers: tuple[SyntheticFinger, SyntheticFinger]


def _random_date(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randrange((end - start).days + 1))


def _years_before(date: dt.date, years: int) -> dt.date:
    try:
        return date.replace(year=date.year - years)
    except ValueError:  # 29 February in a year without one
        return date.replace(year=date.year - years, day=28)


def _place_name(rng: random.Random) -> str:
    return rng.choice(_PLACE_PARTS[0]) + rng.choice(_PLACE_PARTS[1])


def synthetic_personal_data(rng: random.Random, *, foreign_share: float = 0.1) -> PersonalData:
    """Printed data of a synthetic person, valid as of :data:`REFERENCE_DATE`."""
    foreign = rng.random() < foreign_share
    sex = rng.choice((MALE, FEMALE))
    last_day = REFERENCE_DATE - dt.timedelta(days=1)
    if foreign:
        issued = _random_date(rng, dt.date(REFERENCE_DATE.year - 2, 1, 1), last_day)
        until: dt.date | None = _years_before(issued, -FOREIGN_VALIDITY_YEARS)
        name = rng.choice(_FOREIGN_NAMES)
        birth_place = rng.choice(_FOREIGN_BIRTH_PLACES)
    else:
        issued = _random_date(rng, FIRST_ISSUE, last_day)
        until = None
        given = rng.choice(_MALE_NAMES if sex == MALE else _FEMALE_NAMES)
        name = given if rng.random() < 0.25 else f"{given} {rng.choice(_FAMILY_NAMES)}"
        birth_place = rng.choice(_BIRTH_PLACES)
    age = rng.randint(17, 80)
    latest = _years_before(issued, age)
    born = _random_date(rng, latest - dt.timedelta(days=364), latest)
    married = (
        UNMARRIED if age < 20 and rng.random() < 0.9 else rng.choices(MARITAL_STATUSES, (25, 60, 8, 7))[0]
    )
    province_code, province, regency_code, regency, issue_place = rng.choice(_REGIONS)
    district = rng.randint(1, 30)
    day = born.day + (FEMALE_DAY_OFFSET if sex == FEMALE else 0)
    serial = rng.randint(1, 9999)
    birth = f"{day:02d}{born.month:02d}{born.year % 100:02d}"
    nik = f"{province_code}{regency_code}{district:02d}{birth}{serial:04d}"
    return PersonalData(
        nik=nik,
        name=name,
        place_of_birth=birth_place,
        date_of_birth=born,
        sex=sex,
        blood_type=rng.choice(BLOOD_TYPES),
        address=f"JL. {rng.choice(_STREETS)} NO. {rng.randint(1, 250)}",
        rt_rw=f"{rng.randint(1, 20):03d}/{rng.randint(1, 15):03d}",
        kelurahan_desa=_place_name(rng),
        kecamatan=_place_name(rng),
        kabupaten_kota=regency,
        province=province,
        religion=rng.choices(RELIGIONS, _RELIGION_WEIGHTS)[0],
        marital_status=married,
        occupation=rng.choice(_OCCUPATIONS),
        citizenship=FOREIGNER if foreign else CITIZEN,
        valid_until=until,
        place_of_issue=issue_place,
        date_of_issue=issued,
        synthetic=True,
    )


def synthetic_citizen(
    rng: random.Random,
    *,
    foreign_share: float = 0.1,
    photo_size: tuple[int, int] = PHOTO_SIZE,
    photo_grain: int = 0,
) -> SyntheticCitizen:
    """A complete synthetic person: printed data, photo, signature, and two enrolled index fingers."""
    personal = synthetic_personal_data(rng, foreign_share=foreign_share)
    face = face_photo(rng, photo_size, grain=photo_grain)
    signature = signature_image(rng)
    fingers = (make_finger(rng, ENROLLED_FINGERS[0]), make_finger(rng, ENROLLED_FINGERS[1]))
    templates = (
        impression(fingers[0], rng, ENROLMENT).encode(),
        impression(fingers[1], rng, ENROLMENT).encode(),
    )
    return SyntheticCitizen(CitizenRecord(personal, face, signature, templates), fingers)


def synthetic_record(seed: int, *, foreign_share: float = 0.1) -> CitizenRecord:
    """The record of :func:`synthetic_citizen` for ``seed`` (a new generator seeded with it)."""
    return synthetic_citizen(random.Random(seed), foreign_share=foreign_share).record  # noqa: S311 - test data


def synthetic_records(seed: int, count: int, *, foreign_share: float = 0.1) -> list[CitizenRecord]:
    """``count`` records from one generator seeded with ``seed``."""
    rng = random.Random(seed)  # noqa: S311 - test data, reproducible by design
    return [synthetic_citizen(rng, foreign_share=foreign_share).record for _ in range(count)]
