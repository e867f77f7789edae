"""Fingerprint 1:1 verification: compare two ISO/IEC 19794-2 finger minutiae templates.

The algorithm (our own implementation; the ideas are classic ones from the literature, named below):

1. **Normalise.** Each minutia becomes (x, y, theta) in millimetres and radians, in mathematical axes
   (y up), using the resolution of the record header (pixels per centimetre) and the angle unit of
   ISO/IEC 19794-2:2005, 360/256 degrees counter-clockwise from the x axis. Different horizontal and
   vertical resolutions are honoured, for positions and for angles.
2. **Local structures.** Every minutia is paired with its ``neighbours`` nearest minutiae. A directed
   pair i -> j carries three features that do not change when the finger is rotated or moved on the
   sensor: the distance d, the direction of the segment relative to minutia i, and the direction of
   minutia j relative to minutia i (the nearest-neighbour local structures of Jiang and Yau, 2000,
   reduced to single pairs so that one missed or spurious neighbour spoils only the pairs it is in).
   The pairs of one template are filed in a hash table by quantised features (a geometric-hashing
   index, Lamdan and Wolfson, 1988); the pairs of the other look up the buckets their tolerance box
   touches and keep the candidates that agree within the tolerances.
3. **Alignment by voting.** Each pair that agrees with a pair of the other template proposes a rotation
   (the mean of three estimates: the segment's turn and each minutia's turn) and two minutia
   correspondences. The rotations vote in a circular histogram smoothed over the pair angle
   tolerance. For each of the strongest rotation peaks, the proposals under it vote, each with its own
   rotation, for the translation that carries its pair's midpoint onto the other's, in a 2-D
   accumulator (the Hough transform for point pattern matching, Ratha et al., 1996, split into a
   rotation and a translation stage to keep the accumulators small). The correspondences that won
   both votes give the alignment by a weighted least-squares rigid fit (the 2-D Procrustes
   solution), which is sharper than the histogram's bin.
4. **Pairing.** Under each candidate alignment, minutiae are paired one-to-one when they lie within
   ``distance_tolerance`` and their directions within ``angle_tolerance``, greedily by a combined
   distance+angle cost (a light stand-in for the Hungarian assignment). The alignment is then refitted
   to the pairs (Procrustes again) and the pairing redone, up to twice, while that pairs more minutiae
   or pairs them more closely.
   Minutia types are ignored: ridge endings and bifurcations swap with finger pressure.
5. **Score.** ``100 * paired^2 / (n1 * n2)`` for the best candidate: 100 for identical templates, near
   0 for unrelated ones, and independent of the order of the two templates (the templates are put in
   a canonical order before matching, so the score is exactly symmetric). A comparison is a match
   when the score reaches ``threshold`` and at least ``min_paired`` minutiae are paired.

The default threshold comes from ``bench/bench_matcher.py`` on synthetic fingers (docs/matcher.md has
the figures and their limits). A rigid alignment is assumed: the elastic distortion of real skin is
absorbed only by the tolerances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ektp_card.lds.biometrics import ANGLE_UNIT, FingerView, MinutiaeRecord, first_view

#: Score at or above which two templates match by default (0-100; see docs/matcher.md).
DEFAULT_THRESHOLD = 18.0
#: Fewest paired minutiae for a match by default, whatever the score.
DEFAULT_MIN_PAIRED = 7
#: The largest possible score: identical templates.
MAX_SCORE = 100.0

#: A template: a decoded record (its first finger view is compared), one finger view (assumed at
#: 500 dpi, 197 pixels/cm), or the encoded bytes of a record.
Template = MinutiaeRecord | FingerView | bytes

_TAU = 2.0 * math.pi
_UNITS = 256  # ISO/IEC 19794-2 angle units per turn
_UNIT = _TAU / _UNITS

# A directed pair i -> j: distance, segment direction relative to minutia i, minutia j relative to
# minutia i, the two indices, and the absolute segment direction.
_Pair = tuple[float, float, float, int, int, float]
# A proposed alignment: rotation (radians) and the correspondences i -> k and j -> l it comes from.
_Hypothesis = tuple[float, int, int, int, int]


@dataclass(frozen=True)
class MatcherConfig:
    """Tolerances and decision rule of :func:`match`. Distances are millimetres on the finger (at
    500 dpi, 197 pixels/cm, one pixel is 0.0508 mm), angles degrees."""

    #: Score (0-100) at or above which a comparison is a match.
    threshold: float = DEFAULT_THRESHOLD
    #: Fewest paired minutiae for a match, so that tiny templates cannot match on a handful of points.
    min_paired: int = DEFAULT_MIN_PAIRED
    #: Largest distance between paired minutiae after alignment (0.6 mm is about 12 pixels at 500 dpi).
    distance_tolerance: float = 0.6
    #: Largest difference of direction between paired minutiae after alignment.
    angle_tolerance: float = 25.0
    #: Nearest neighbours each minutia forms local pairs with.
    neighbours: int = 6
    #: Largest difference of length between two local pairs taken as the same pair of minutiae.
    pair_distance_tolerance: float = 0.4
    #: Largest difference of each relative angle between two local pairs taken as the same pair.
    pair_angle_tolerance: float = 20.0
    #: Largest rotation between the two captures considered (180 = any).
    max_rotation: float = 180.0
    #: Rotation peaks of the vote refined into full pairings; the best pairing wins.
    candidates: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= MAX_SCORE:
            raise ValueError(f"threshold {self.threshold} is outside 0..100")
        if self.min_paired < 0:
            raise ValueError("min_paired cannot be negative")
        if self.distance_tolerance <= 0 or self.pair_distance_tolerance <= 0:
            raise ValueError("distance tolerances must be positive")
        if not 0 < self.angle_tolerance < 180 or not 0 < self.pair_angle_tolerance < 90:
            raise ValueError("angle tolerances must be in 0..180 degrees (pair tolerance 0..90)")
        if self.neighbours < 1:
            raise ValueError("at least one neighbour is needed to form local pairs")
        if not 0 < self.max_rotation <= 180:
            raise ValueError("max_rotation must be in 0..180 degrees")
        if self.candidates < 1:
            raise ValueError("at least one candidate alignment is needed")


@dataclass(frozen=True)
class Alignment:
    """How the first template maps onto the second, in image axes (x right, y down) and millimetres
    from each image's origin: turned ``rotation`` degrees counter-clockwise as seen on the image about
    the origin, then moved by (``dx``, ``dy``). See :meth:`apply`."""

    rotation: float
    dx: float
    dy: float

    def apply(self, x: float, y: float) -> tuple[float, float]:
        """Where a point of the first template (millimetres, image axes) lands on the second."""
        theta = math.radians(self.rotation)
        c, s = math.cos(theta), math.sin(theta)
        return c * x + s * y + self.dx, -s * x + c * y + self.dy


@dataclass(frozen=True)
class MatchDetails:
    """How a score came about: minutiae counts, the pairs (index in the first template's view, index
    in the second's), the winning alignment (``None`` when no local pair agreed), and how many local
    pairs agreed between the templates."""

    minutiae: tuple[int, int]
    pairs: tuple[tuple[int, int], ...]
    alignment: Alignment | None
    agreeing_local_pairs: int


@dataclass(frozen=True)
class MatchResult:
    """The outcome of one 1:1 comparison: ``matched`` is ``score >= threshold`` with at least the
    configured number of ``paired`` minutiae."""

    score: float
    threshold: float
    matched: bool
    paired: int
    details: MatchDetails


class _Prepared:
    """One template in the matcher's own terms: positions as complex numbers x + iy (millimetres,
    y up), directions in radians, the local pairs and, for the indexed side, their hash table."""

    __slots__ = ("zs", "ts", "centre", "pairs", "table")

    def __init__(self, zs: list[complex], ts: list[float]) -> None:
        # Positions are kept relative to the centroid: a small error of rotation then moves them
        # little, which keeps the translation votes of one alignment together.
        self.centre = sum(zs, 0j) / len(zs) if zs else 0j
        self.zs = [z - self.centre for z in zs]
        self.ts = ts
        self.pairs: list[_Pair] = []
        self.table: dict[tuple[int, int, int], list[_Pair]] = {}


def _normalise(template: Template) -> _Prepared:
    if isinstance(template, bytes | bytearray):
        template = MinutiaeRecord.decode(bytes(template))
    view, x_res, y_res = first_view(template)
    sx, sy = 10.0 / x_res, 10.0 / y_res
    unit = math.radians(ANGLE_UNIT)
    zs = [complex(m.x * sx, -m.y * sy) for m in view.minutiae]  # image y points down; ours points up
    if x_res == y_res:
        ts = [m.angle * unit for m in view.minutiae]
    else:
        # A direction drawn on an anisotropic pixel grid turns when scaled to millimetres.
        ts = [
            math.atan2(math.sin(m.angle * unit) * sy, math.cos(m.angle * unit) * sx) % _TAU
            for m in view.minutiae
        ]
    return _Prepared(zs, ts)


@dataclass(frozen=True)
class _Grid:
    """Bucket sizes of the local pair index: each tolerance box spans at most two buckets per axis."""

    distance: float
    angle_bins: int

    @classmethod
    def of(cls, config: MatcherConfig) -> _Grid:
        tolerance = math.radians(config.pair_angle_tolerance)
        return cls(2.0 * config.pair_distance_tolerance, max(1, int(_TAU / (2.0 * tolerance))))


def _local_pairs(p: _Prepared, config: MatcherConfig, grid: _Grid, index: bool) -> None:
    zs, ts = p.zs, p.ts
    # Pairs shorter than the pair tolerance have no usable direction.
    shortest = config.pair_distance_tolerance
    bins, width = grid.angle_bins, grid.distance
    scale = bins / _TAU
    k = config.neighbours
    everyone = range(len(zs))
    table = p.table
    for i in everyone:
        zi, ti = zs[i], ts[i]
        ds = [abs(z - zi) for z in zs]
        near = [j for j in sorted(everyone, key=ds.__getitem__) if ds[j] >= shortest][:k]
        for j in near:
            v = zs[j] - zi
            phi = math.atan2(v.imag, v.real)
            pair = (ds[j], (phi - ti) % _TAU, (ts[j] - ti) % _TAU, i, j, phi)
            p.pairs.append(pair)
            if index:
                key = (int(pair[0] / width), int(pair[1] * scale) % bins, int(pair[2] * scale) % bins)
                bucket = table.get(key)
                if bucket is None:
                    table[key] = [pair]
                else:
                    bucket.append(pair)


def _agreeing_pairs(a: _Prepared, b: _Prepared, config: MatcherConfig, grid: _Grid) -> list[_Hypothesis]:
    """Every local pair of ``a`` that agrees with one of ``b``, as a proposed alignment."""
    td = config.pair_distance_tolerance
    ta = math.radians(config.pair_angle_tolerance)
    max_rotation = math.radians(config.max_rotation)
    bins = grid.angle_bins
    scale = bins / _TAU
    width = grid.distance
    table = b.table
    pi, tau, floor = math.pi, _TAU, math.floor
    out: list[_Hypothesis] = []
    get = table.get
    for d, alpha, beta, i, j, phi in a.pairs:
        d_bins = range(int(max(0.0, d - td) / width), int((d + td) / width) + 1)
        a_bins = [u % bins for u in range(floor((alpha - ta) * scale), floor((alpha + ta) * scale) + 1)]
        b_bins = [u % bins for u in range(floor((beta - ta) * scale), floor((beta + ta) * scale) + 1)]
        for key in [(db, ab, bb) for db in d_bins for ab in a_bins for bb in b_bins]:
            bucket = get(key)
            if bucket is None:
                continue
            for d2, alpha2, beta2, k, m, phi2 in bucket:
                if not -td <= d - d2 <= td:
                    continue
                da = (alpha - alpha2 + pi) % tau - pi
                if not -ta <= da <= ta:
                    continue
                dbeta = (beta - beta2 + pi) % tau - pi
                if not -ta <= dbeta <= ta:
                    continue
                # Three estimates of the rotation: the segment's turn, and each minutia's turn
                # (which differ from it by da, and by da - dbeta): their mean.
                rho = (phi2 - phi + (2.0 * da - dbeta) / 3.0 + pi) % tau - pi
                if -max_rotation <= rho <= max_rotation:
                    out.append((rho, i, k, j, m))
    return out


def _rotation_peaks(hypotheses: list[_Hypothesis], window: int, count: int) -> list[int]:
    """The strongest rotations (in angle units), each the centre of a smoothed histogram peak; peaks
    with under a quarter of the votes of the strongest are left out."""
    histogram = [0] * _UNITS
    for h in hypotheses:
        histogram[round(h[0] / _UNIT) % _UNITS] += 1
    # Circular moving sum over 2 * window + 1 units.
    running = sum(histogram[u % _UNITS] for u in range(-window, window + 1))
    smooth = [0] * _UNITS
    for u in range(_UNITS):
        smooth[u] = running
        running += histogram[(u + window + 1) % _UNITS] - histogram[(u - window) % _UNITS]
    peaks: list[int] = []
    for u in sorted(range(_UNITS), key=lambda v: (-smooth[v], v)):
        if len(peaks) == count or smooth[u] == 0 or (peaks and 4 * smooth[u] < smooth[peaks[0]]):
            break
        if all(min((u - p) % _UNITS, (p - u) % _UNITS) > 2 * window for p in peaks):
            peaks.append(u)
    return peaks


def _consensus(
    a: _Prepared, b: _Prepared, hypotheses: list[_Hypothesis], cell: float
) -> list[tuple[int, int, int]]:
    """The correspondences (index in ``a``, index in ``b``, votes) of the hypotheses that agree on
    one translation. Each hypothesis turns its pair's midpoint by its own rotation and votes for the
    translation that brings it onto the other pair's midpoint, in the four cells around it, so a
    cluster on a cell border is not split; the best cell's voters win."""
    za, zb = a.zs, b.zs
    floor, cos, sin = math.floor, math.cos, math.sin
    cells: dict[tuple[int, int], int] = {}
    placed: list[tuple[int, int, _Hypothesis]] = []
    for h in hypotheses:
        rho, i, k, j, m = h
        t = (zb[k] + zb[m] - complex(cos(rho), sin(rho)) * (za[i] + za[j])) / 2.0
        gx, gy = floor(t.real / cell - 0.5), floor(t.imag / cell - 0.5)
        placed.append((gx, gy, h))
        for key in ((gx, gy), (gx + 1, gy), (gx, gy + 1), (gx + 1, gy + 1)):
            cells[key] = cells.get(key, 0) + 1
    bx, by = max(cells, key=cells.__getitem__)
    weights: dict[tuple[int, int], int] = {}
    for gx, gy, (_, i, k, j, m) in placed:
        if bx - 1 <= gx <= bx and by - 1 <= gy <= by:
            weights[i, k] = weights.get((i, k), 0) + 1
            weights[j, m] = weights.get((j, m), 0) + 1
    return [(i, k, w) for (i, k), w in weights.items()]


def _pair_up(
    a: _Prepared,
    b: _Prepared,
    buckets: dict[tuple[int, int], list[int]],
    rho: float,
    shift: complex,
    config: MatcherConfig,
) -> tuple[list[tuple[int, int]], float]:
    """One-to-one pairs under an alignment, greedily by cost; and the sum of their costs."""
    cell = config.distance_tolerance
    ta = math.radians(config.angle_tolerance)
    turn = complex(math.cos(rho), math.sin(rho))
    pi, tau, floor = math.pi, _TAU, math.floor
    zb, tb = b.zs, b.ts
    candidates: list[tuple[float, int, int]] = []
    for i, (z0, t0) in enumerate(zip(a.zs, a.ts, strict=True)):
        z = turn * z0 + shift
        t = t0 + rho
        gx, gy = floor(z.real / cell), floor(z.imag / cell)
        for cx in (gx - 1, gx, gx + 1):
            for cy in (gy - 1, gy, gy + 1):
                for k in buckets.get((cx, cy), ()):
                    d = abs(zb[k] - z)
                    if d > cell:
                        continue
                    dt = (tb[k] - t + pi) % tau - pi
                    if -ta <= dt <= ta:
                        candidates.append(((d / cell) ** 2 + (dt / ta) ** 2, i, k))
    candidates.sort()
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs: list[tuple[int, int]] = []
    cost = 0.0
    for value, i, k in candidates:
        if i in used_a or k in used_b:
            continue
        used_a.add(i)
        used_b.add(k)
        pairs.append((i, k))
        cost += value
    return pairs, cost


def _rigid_fit(a: _Prepared, b: _Prepared, pairs: list[tuple[int, int, int]]) -> tuple[float, complex]:
    """The rotation and translation that best map the paired points of ``a`` onto ``b`` (index in
    ``a``, index in ``b``, weight) in the weighted least-squares sense: the 2-D Procrustes problem
    without scaling, whose rotation is the argument of the sum of w * conj(p) * q over the centred
    pairs."""
    total_weight = sum(w for _, _, w in pairs)
    ca = sum(w * a.zs[i] for i, _, w in pairs) / total_weight
    cb = sum(w * b.zs[k] for _, k, w in pairs) / total_weight
    total = sum((w * (a.zs[i] - ca).conjugate() * (b.zs[k] - cb) for i, k, w in pairs), 0j)
    rho = math.atan2(total.imag, total.real)
    return rho, cb - complex(math.cos(rho), math.sin(rho)) * ca


def _align_and_pair(
    a: _Prepared, b: _Prepared, config: MatcherConfig
) -> tuple[list[tuple[int, int]], tuple[float, complex] | None, int]:
    """The best pairing over the candidate alignments, its alignment (rotation, translation in our
    axes) and the number of agreeing local pairs."""
    grid = _Grid.of(config)
    _local_pairs(a, config, grid, index=False)
    _local_pairs(b, config, grid, index=True)
    hypotheses = _agreeing_pairs(a, b, config, grid)
    if not hypotheses:
        return [], None, 0
    window = max(1, round(config.pair_angle_tolerance / 2.0 / ANGLE_UNIT))
    cell = config.distance_tolerance
    buckets: dict[tuple[int, int], list[int]] = {}
    for k, z in enumerate(b.zs):
        buckets.setdefault((math.floor(z.real / cell), math.floor(z.imag / cell)), []).append(k)
    best: tuple[int, float] = (-1, 0.0)
    best_pairs: list[tuple[int, int]] = []
    best_alignment: tuple[float, complex] | None = None
    pi = math.pi
    # The peak's votes: every hypothesis rounded into one of its 2 * window + 1 histogram bins.
    reach = (window + 0.5) * _UNIT + 1e-9
    for peak in _rotation_peaks(hypotheses, window, config.candidates):
        centre = peak * _UNIT
        offsets = [(h[0] - centre + pi) % _TAU - pi for h in hypotheses]
        near = [h for h, o in zip(hypotheses, offsets, strict=True) if abs(o) <= reach]
        if not near:
            continue
        # The rotation peak is only as sharp as the smoothing window: fit the alignment to the
        # correspondences that also agree on the translation.
        agreed = _consensus(a, b, near, cell)
        alignment = _rigid_fit(a, b, agreed)
        pairs, cost = _pair_up(a, b, buckets, *alignment, config)
        for _ in range(2):
            if len(pairs) < 2:
                break
            refined = _rigid_fit(a, b, [(i, k, 1) for i, k in pairs])
            more, more_cost = _pair_up(a, b, buckets, *refined, config)
            if (len(more), -more_cost) <= (len(pairs), -cost):
                break
            pairs, cost, alignment = more, more_cost, refined
        if (len(pairs), -cost) > best:
            best, best_pairs, best_alignment = (len(pairs), -cost), pairs, alignment
    return best_pairs, best_alignment, len(hypotheses)


def _order_key(p: _Prepared) -> tuple[list[tuple[float, float]], list[float], tuple[float, float]]:
    return [(z.real, z.imag) for z in p.zs], p.ts, (p.centre.real, p.centre.imag)


def match(first: Template, second: Template, config: MatcherConfig | None = None) -> MatchResult:
    """Compare two finger minutiae templates (ISO/IEC 19794-2) and decide whether they come from the
    same finger. Encoded records are decoded strictly (:class:`~ektp_card.errors.BiometricFormatError`
    on malformed bytes). The score does not depend on the order of the arguments."""
    config = config or MatcherConfig()
    a, b = _normalise(first), _normalise(second)
    swapped = _order_key(b) < _order_key(a)
    if swapped:
        a, b = b, a
    pairs, found, agreeing = _align_and_pair(a, b, config)
    alignment = None
    if found is not None:
        rho, shift = found
        # Back from centred positions: b + cb = r (a + ca) + t + cb - r ca.
        shift += b.centre - complex(math.cos(rho), math.sin(rho)) * a.centre
        if swapped:
            # Invert z' = r z + t: z = z' / r - t / r.
            turn = complex(math.cos(rho), math.sin(rho))
            rho, shift = -rho, -shift / turn
        # Our axes have y up, image axes y down: the same turn as seen on the image, and dy flips.
        alignment = Alignment(math.degrees((rho + math.pi) % _TAU - math.pi), shift.real, -shift.imag)
    if swapped:
        pairs = [(k, i) for i, k in pairs]
        a, b = b, a
    pairs.sort()
    n1, n2 = len(a.zs), len(b.zs)
    paired = len(pairs)
    score = MAX_SCORE * paired * paired / (n1 * n2) if paired else 0.0
    details = MatchDetails((n1, n2), tuple(pairs), alignment, agreeing)
    matched = score >= config.threshold and paired >= config.min_paired
    return MatchResult(score, config.threshold, matched, paired, details)
