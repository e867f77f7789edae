"""A small baseline JPEG decoder (ITU-T T.81 Annex F decoding), written for the tests only: it checks
the project's encoder independently of it. Huffman-coded, 8-bit, one scan, 1x1 sampling."""

from __future__ import annotations

import math

# T.81 Figure A.6, zig-zag position -> natural (row-major) index, written out independently of the encoder.
ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.bit = data, 0, 0

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.data[self.pos]
            value = (value << 1) | ((byte >> (7 - self.bit)) & 1)
            self.bit += 1
            if self.bit == 8:
                self.bit, self.pos = 0, self.pos + 1
        return value


def _huffman(counts: bytes, symbols: bytes) -> dict[tuple[int, int], int]:
    table, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            table[(length, code)] = symbols[k]
            code, k = code + 1, k + 1
        code <<= 1
    return table


def _decode_symbol(bits: _Bits, table: dict[tuple[int, int], int]) -> int:
    code = 0
    for length in range(1, 17):
        code = (code << 1) | bits.read(1)
        if (length, code) in table:
            return table[(length, code)]
    raise ValueError("bad Huffman code")


def _extend(value: int, size: int) -> int:
    return value - (1 << size) + 1 if size and value < (1 << (size - 1)) else value


def decode(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, components, pixels: grey, or R G B per pixel)."""
    pos = 2
    quant: dict[int, list[int]] = {}
    huff: dict[tuple[int, int], dict[tuple[int, int], int]] = {}
    comps: list[tuple[int, int]] = []  # (component id, quant table)
    width = height = 0
    while True:
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        body = data[pos + 4 : pos + 2 + length]
        pos += 2 + length
        if marker == 0xDB:
            i = 0
            while i < len(body):
                quant[body[i] & 0x0F] = list(body[i + 1 : i + 65])
                i += 65
        elif marker == 0xC0:
            height, width = int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big")
            for c in range(body[5]):
                cid, sampling, tq = body[6 + 3 * c : 9 + 3 * c]
                assert sampling == 0x11
                comps.append((cid, tq))
        elif marker == 0xC4:
            i = 0
            while i < len(body):
                counts = body[i + 1 : i + 17]
                n = sum(counts)
                huff[(body[i] >> 4, body[i] & 0x0F)] = _huffman(counts, body[i + 17 : i + 17 + n])
                i += 17 + n
        elif marker == 0xDA:
            selectors = [(body[2 + 2 * c] >> 4, body[2 + 2 * c] & 0x0F) for c in range(body[0])]
            break
    end = data.index(b"\xff\xd9", pos)
    bits = _Bits(data[pos:end].replace(b"\xff\x00", b"\xff"))
    bw, bh = -(-width // 8), -(-height // 8)
    planes = [[0.0] * (bw * 8 * bh * 8) for _ in comps]
    previous = [0] * len(comps)
    cos = [[math.cos((2 * x + 1) * u * math.pi / 16) for u in range(8)] for x in range(8)]
    scale = [math.sqrt(0.5) if u == 0 else 1.0 for u in range(8)]
    for block in range(bw * bh):
        for c, (_, tq) in enumerate(comps):
            dc_table, ac_table = huff[(0, selectors[c][0])], huff[(1, selectors[c][1])]
            coef = [0] * 64
            size = _decode_symbol(bits, dc_table)
            previous[c] += _extend(bits.read(size), size)
            coef[0] = previous[c] * quant[tq][0]
            k = 1
            while k < 64:
                rs = _decode_symbol(bits, ac_table)
                run, size = rs >> 4, rs & 0x0F
                if size == 0:
                    if run != 15:
                        break
                    k += 16
                    continue
                k += run
                coef[ZIGZAG[k]] = _extend(bits.read(size), size) * quant[tq][k]
                k += 1
            by, bx = divmod(block, bw)
            for y in range(8):
                for x in range(8):
                    total = sum(
                        scale[u] * scale[v] * coef[v * 8 + u] * cos[x][u] * cos[y][v]
                        for v in range(8)
                        for u in range(8)
                        if coef[v * 8 + u]
                    )
                    planes[c][(by * 8 + y) * bw * 8 + bx * 8 + x] = total / 4 + 128
    out = bytearray()
    for y in range(height):
        for x in range(width):
            i = y * bw * 8 + x
            if len(comps) == 1:
                out.append(_clamp(planes[0][i]))
            else:
                lum, cb, cr = planes[0][i], planes[1][i] - 128, planes[2][i] - 128
                out += bytes(
                    (
                        _clamp(lum + 1.402 * cr),
                        _clamp(lum - 0.344136 * cb - 0.714136 * cr),
                        _clamp(lum + 1.772 * cb),
                    )
                )
    return width, height, len(comps), bytes(out)


def _clamp(value: float) -> int:
    return max(0, min(255, round(value)))
