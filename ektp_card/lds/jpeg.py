"""Just enough JPEG for the card: a structural check of JPEG files, and a small baseline encoder.

:func:`jpeg_info` walks the marker segments of a JPEG file (ITU-T T.81 Annex B): SOI first, every
segment length inside the file, one start-of-frame with the image size, a start-of-scan, EOI last. It
does not decode the entropy-coded data.

:func:`encode_jpeg` writes a baseline sequential JPEG (T.81 Annex F, 8-bit, Huffman coded, JFIF
APP0) from greyscale or RGB pixels, so synthetic photos and signatures need no imaging library.
Colour images are converted to YCbCr (JFIF) without subsampling; the quantisation tables are the
example tables of T.81 Annex K.1 scaled by ``quality`` the way the IJG library scales them; the
Huffman tables are built for each image from its own symbol counts (T.81 Annex K.2 and the code
length limit of Figure K.3).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from ektp_card.errors import BiometricFormatError

SOI, EOI, SOS, DQT, DHT, APP0 = 0xD8, 0xD9, 0xDA, 0xDB, 0xC4, 0xE0
#: Start-of-frame markers (C0-CF except DHT C4, JPG C8 and DAC CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


@dataclass(frozen=True)
class JpegInfo:
    width: int
    height: int
    components: int
    #: The start-of-frame marker: C0 baseline, C2 progressive...
    frame_type: int


def jpeg_info(data: bytes) -> JpegInfo:
    """Check the marker structure of a JPEG file and return its frame header's values.

    :class:`BiometricFormatError` (with the offset) for anything but SOI, well-formed segments, one
    frame header, at least one scan and EOI at the very end.
    """
    data = bytes(data)
    if data[:2] != b"\xff\xd8":
        raise BiometricFormatError("not a JPEG file (no SOI marker)", 0)
    if data[-2:] != b"\xff\xd9" or len(data) < 4:
        raise BiometricFormatError("JPEG file does not end with an EOI marker", max(0, len(data) - 2))
    pos = 2
    frame: JpegInfo | None = None
    scans = 0
    while True:
        if pos + 2 > len(data) or data[pos] != 0xFF:
            raise BiometricFormatError("expected a JPEG marker", pos)
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker (T.81 B.1.1.2)
            pos += 1
            continue
        if marker == EOI:
            if pos + 2 != len(data):
                raise BiometricFormatError("data after the EOI marker", pos + 2)
            break
        if marker in _STANDALONE or marker == SOI:
            raise BiometricFormatError(f"unexpected marker FF{marker:02X}", pos)
        if pos + 4 > len(data):
            raise BiometricFormatError("JPEG segment truncated", pos)
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise BiometricFormatError(f"JPEG segment length {length} runs past the file", pos + 2)
        if marker in _SOF_MARKERS:
            if frame is not None:
                raise BiometricFormatError("more than one frame header", pos)
            if length < 8:
                raise BiometricFormatError("frame header too short", pos + 2)
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            components = data[pos + 9]
            if length != 8 + 3 * components or width == 0 or components == 0:
                raise BiometricFormatError("malformed frame header", pos + 2)
            frame = JpegInfo(width, height, components, marker)
        pos = end
        if marker == SOS:
            if frame is None:
                raise BiometricFormatError("scan before the frame header", pos)
            scans += 1
            pos = _skip_entropy_coded(data, pos)
    if frame is None or scans == 0:
        raise BiometricFormatError("JPEG file has no frame header or no scan", pos)
    return frame


def _skip_entropy_coded(data: bytes, pos: int) -> int:
    """The offset of the first marker after entropy-coded data (stuffed FF00 and RSTn belong to it)."""
    while True:
        found = data.find(b"\xff", pos)
        if found < 0 or found + 1 >= len(data):
            raise BiometricFormatError("entropy-coded data runs to the end of the file", pos)
        following = data[found + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            pos = found + 2
            continue
        return found


# --- encoder ------------------------------------------------------------------------------------

#: T.81 Table K.1 and K.2: example luminance and chrominance quantisation tables (natural order).
_LUMINANCE_Q = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_CHROMINANCE_Q = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    *([99] * 32),
)  # fmt: skip


def _zigzag() -> tuple[int, ...]:
    """Natural-order index of each zig-zag position (T.81 Figure A.6)."""
    order: list[int] = []
    for s in range(15):
        rows = range(min(s, 7), max(0, s - 7) - 1, -1) if s % 2 == 0 else range(max(0, s - 7), min(s, 7) + 1)
        order.extend(r * 8 + (s - r) for r in rows)
    return tuple(order)


ZIGZAG = _zigzag()
#: DCT basis with its scale factors folded in: _M[u][x] = C(u) / 2 * cos((2x + 1) u pi / 16).
_M = tuple(
    tuple(
        (math.sqrt(0.5) if u == 0 else 1.0) / 2 * math.cos((2 * x + 1) * u * math.pi / 16) for x in range(8)
    )
    for u in range(8)
)


def _scaled_table(base: tuple[int, ...], quality: int) -> tuple[int, ...]:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(min(255, max(1, (q * scale + 50) // 100)) for q in base)


def _fdct(block: list[float]) -> list[float]:
    """Separable forward DCT of an 8x8 block of level-shifted samples (T.81 A.3.3), rows then columns;
    the eight products are written out because this loop is where encoding spends its time."""
    rows = []
    for r in range(0, 64, 8):
        b0, b1, b2, b3, b4, b5, b6, b7 = block[r : r + 8]
        rows.append(
            [
                m0 * b0 + m1 * b1 + m2 * b2 + m3 * b3 + m4 * b4 + m5 * b5 + m6 * b6 + m7 * b7
                for m0, m1, m2, m3, m4, m5, m6, m7 in _M
            ]
        )
    out = [0.0] * 64
    for u in range(8):
        c0, c1, c2, c3, c4, c5, c6, c7 = (row[u] for row in rows)
        for v, (m0, m1, m2, m3, m4, m5, m6, m7) in enumerate(_M):
            out[v * 8 + u] = m0 * c0 + m1 * c1 + m2 * c2 + m3 * c3 + m4 * c4 + m5 * c5 + m6 * c6 + m7 * c7
    return out


def _category(value: int) -> int:
    return abs(value).bit_length()


def _quantised_blocks(plane: list[float], width: int, height: int, table: tuple[int, ...]) -> list[list[int]]:
    """Blocks of one component, padded by repeating the edge, as zig-zag ordered quantised values."""
    padded_width = -(-width // 8) * 8
    rows = []
    for y in range(-(-height // 8) * 8):
        row = [v - 128.0 for v in plane[min(y, height - 1) * width : min(y, height - 1) * width + width]]
        rows.append(row + [row[-1]] * (padded_width - width))
    divisors = [float(table[i]) for i in ZIGZAG]
    blocks = []
    for by in range(0, len(rows), 8):
        band = rows[by : by + 8]
        for bx in range(0, padded_width, 8):
            block = [v for row in band for v in row[bx : bx + 8]]
            first = block[0]
            if block.count(first) == 64:
                # A flat block has only a DC coefficient: 8 times its level (T.81 A.3.3).
                blocks.append([max(-2047, min(2047, round(first * 8.0 / divisors[0])))] + [0] * 63)
                continue
            coefficients = _fdct(block)
            quantised = [round(coefficients[i] / d) for i, d in zip(ZIGZAG, divisors, strict=True)]
            # Clamp to the largest categories baseline Huffman coding has (11 bits DC, 10 bits AC).
            ac = [max(-1023, min(1023, q)) for q in quantised[1:]]
            blocks.append([max(-2047, min(2047, quantised[0]))] + ac)
    return blocks


def _symbols(blocks: list[list[int]]) -> tuple[list[tuple[int, int, int]], list[list[tuple[int, int, int]]]]:
    """Per block, the (symbol, extra bits, extra length) triples of DC then AC coding (T.81 F.1.2)."""
    dc: list[tuple[int, int, int]] = []
    ac: list[list[tuple[int, int, int]]] = []
    previous = 0
    for block in blocks:
        diff = block[0] - previous
        previous = block[0]
        size = _category(diff)
        dc.append((size, diff if diff >= 0 else diff + (1 << size) - 1, size))
        items = []
        run = 0
        for value in block[1:]:
            if value == 0:
                run += 1
                continue
            while run > 15:
                items.append((0xF0, 0, 0))
                run -= 16
            size = _category(value)
            items.append(((run << 4) | size, value if value > 0 else value + (1 << size) - 1, size))
            run = 0
        if run:
            items.append((0x00, 0, 0))
        ac.append(items)
    return dc, ac


@dataclass(frozen=True)
class _HuffmanTable:
    counts: tuple[int, ...]  # BITS: number of codes of length 1..16
    values: tuple[int, ...]  # HUFFVAL
    codes: dict[int, tuple[int, int]]  # symbol -> (code, length)

    def segment(self, table_class: int, ident: int) -> bytes:
        body = bytes(((table_class << 4) | ident, *self.counts, *self.values))
        return b"\xff\xc4" + (len(body) + 2).to_bytes(2, "big") + body


def _huffman_table(frequencies: dict[int, int]) -> _HuffmanTable:
    """An optimal code limited to 16 bits with no all-ones code word (T.81 Annex K.2, Figure K.3)."""
    reserved = 256  # the one-count dummy symbol that takes the all-ones code (K.2)
    counts = dict(frequencies)
    counts[reserved] = 1
    depth = dict.fromkeys(counts, 0)
    heap: list[tuple[int, int, list[int]]] = [(f, s, [s]) for s, f in counts.items()]
    heapq.heapify(heap)
    serial = 1000
    if len(heap) == 1:
        depth[reserved] = 1
    while len(heap) > 1:
        f1, _, s1 = heapq.heappop(heap)
        f2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            depth[s] += 1
        heapq.heappush(heap, (f1 + f2, serial, s1 + s2))
        serial += 1
    longest = max(depth.values())
    bits = [0] * (longest + 1)
    for d in depth.values():
        bits[d] += 1
    for i in range(longest, 16, -1):  # Figure K.3, Adjust_BITS
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    bits = (bits + [0] * 17)[:17]
    i = 16
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1  # drop the reserved symbol's code, the last (all-ones) one
    ordered = sorted(frequencies, key=lambda s: (-frequencies[s], s))
    codes: dict[int, tuple[int, int]] = {}
    code = 0
    k = 0
    for length in range(1, 17):
        for _ in range(bits[length]):
            codes[ordered[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return _HuffmanTable(tuple(bits[1:17]), tuple(ordered), codes)


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def write(self, value: int, length: int) -> None:
        self.acc = (self.acc << length) | (value & ((1 << length) - 1))
        self.count += length
        while self.count >= 8:
            self.count -= 8
            byte = (self.acc >> self.count) & 0xFF
            self.out.append(byte)
            if byte == 0xFF:
                self.out.append(0x00)  # byte stuffing, T.81 F.1.2.3
        self.acc &= (1 << self.count) - 1

    def flush(self) -> bytes:
        if self.count:
            self.write((1 << (8 - self.count)) - 1, 8 - self.count)  # pad with 1-bits
        return bytes(self.out)


def _segment(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(body) + 2).to_bytes(2, "big") + body


def encode_jpeg(pixels: bytes, width: int, height: int, *, components: int = 3, quality: int = 75) -> bytes:
    """Encode ``pixels`` (rows top to bottom; one byte per pixel for greyscale, R G B for colour)."""
    if components not in (1, 3):
        raise ValueError("components must be 1 (greyscale) or 3 (RGB)")
    if not 1 <= width <= 0xFFFF or not 1 <= height <= 0xFFFF:
        raise ValueError("image size out of range")
    if len(pixels) != width * height * components:
        raise ValueError(f"expected {width * height * components} pixel bytes, got {len(pixels)}")
    if not 1 <= quality <= 100:
        raise ValueError("quality must be 1..100")
    tables = [_scaled_table(_LUMINANCE_Q, quality), _scaled_table(_CHROMINANCE_Q, quality)]
    if components == 1:
        planes = [[float(p) for p in pixels]]
    else:
        r, g, b = pixels[0::3], pixels[1::3], pixels[2::3]
        # JFIF YCbCr from RGB (JFIF 1.02, "Conversion to and from RGB").
        planes = [
            [0.299 * rr + 0.587 * gg + 0.114 * bb for rr, gg, bb in zip(r, g, b, strict=True)],
            [128 - 0.168736 * rr - 0.331264 * gg + 0.5 * bb for rr, gg, bb in zip(r, g, b, strict=True)],
            [128 + 0.5 * rr - 0.418688 * gg - 0.081312 * bb for rr, gg, bb in zip(r, g, b, strict=True)],
        ]
    table_of = [0, 1, 1][:components]
    coded = [
        _symbols(_quantised_blocks(plane, width, height, tables[t]))
        for plane, t in zip(planes, table_of, strict=True)
    ]
    # One DC and one AC Huffman table per quantisation class (luminance, chrominance).
    huffman: dict[tuple[int, int], _HuffmanTable] = {}
    for cls in sorted(set(table_of)):
        dc_freq: dict[int, int] = {}
        ac_freq: dict[int, int] = {}
        for (dc, ac), t in zip(coded, table_of, strict=True):
            if t != cls:
                continue
            for symbol, _, _ in dc:
                dc_freq[symbol] = dc_freq.get(symbol, 0) + 1
            for items in ac:
                for symbol, _, _ in items:
                    ac_freq[symbol] = ac_freq.get(symbol, 0) + 1
        huffman[(0, cls)] = _huffman_table(dc_freq)
        huffman[(1, cls)] = _huffman_table(ac_freq or {0: 1})
    writer = _BitWriter()
    for index in range(len(coded[0][0])):
        for (dc, ac), t in zip(coded, table_of, strict=True):
            symbol, extra, size = dc[index]
            code, length = huffman[(0, t)].codes[symbol]
            writer.write(code, length)
            writer.write(extra, size)
            ac_codes = huffman[(1, t)].codes
            for symbol, extra, size in ac[index]:
                code, length = ac_codes[symbol]
                writer.write(code, length)
                writer.write(extra, size)
    jfif = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"  # version 1.1, aspect 1:1, no thumbnail
    dqt = b"".join(bytes((t,)) + bytes(tables[t][i] for i in ZIGZAG) for t in sorted(set(table_of)))
    frame = bytes((8,)) + height.to_bytes(2, "big") + width.to_bytes(2, "big") + bytes((components,))
    frame += b"".join(bytes((c + 1, 0x11, t)) for c, t in enumerate(table_of))
    dht = b"".join(huffman[key].segment(*key) for key in sorted(huffman))
    scan = bytes((components,)) + b"".join(bytes((c + 1, (t << 4) | t)) for c, t in enumerate(table_of))
    scan += bytes((0, 63, 0))
    return (
        b"\xff\xd8"
        + _segment(APP0, jfif)
        + _segment(DQT, dqt)
        + _segment(0xC0, frame)
        + dht
        + _segment(SOS, scan)
        + writer.flush()
        + b"\xff\xd9"
    )
