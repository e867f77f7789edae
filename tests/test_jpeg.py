"""Our baseline JPEG encoder and structural check: decoded by an independent decoder (and by libjpeg's
djpeg when installed), and malformed files refused with the offset of the fault."""

from __future__ import annotations

import subprocess
from types import ModuleType

import pytest

from ektp_card.errors import BiometricFormatError
from ektp_card.lds.jpeg import ZIGZAG, encode_jpeg, jpeg_info


def gradient(width: int, height: int, components: int) -> bytes:
    out = bytearray()
    for y in range(height):
        for x in range(width):
            if components == 1:
                out.append((x * 5 + y * 3) % 256)
            else:
                out += bytes((x * 255 // width, y * 255 // height, 128 + (x - y) % 64))
    return bytes(out)


def mean_error(a: bytes, b: bytes) -> float:
    assert len(a) == len(b)
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def test_zigzag_matches_t81_figure_a6(jpeg_decoder: ModuleType) -> None:
    assert ZIGZAG == jpeg_decoder.ZIGZAG  # written out by hand there


@pytest.mark.parametrize(("width", "height", "components"), [(24, 16, 3), (13, 9, 1), (8, 8, 3), (17, 23, 3)])
def test_encoded_image_decodes_close_to_the_source(
    width: int, height: int, components: int, jpeg_decoder: ModuleType
) -> None:
    pixels = gradient(width, height, components)
    jpeg = encode_jpeg(pixels, width, height, components=components, quality=95)
    assert jpeg[:4] == b"\xff\xd8\xff\xe0" and jpeg[-2:] == b"\xff\xd9"
    info = jpeg_info(jpeg)
    assert (info.width, info.height, info.components, info.frame_type) == (width, height, components, 0xC0)
    w, h, c, decoded = jpeg_decoder.decode(jpeg)
    assert (w, h, c) == (width, height, components)
    assert mean_error(decoded, pixels) < 4.0


def test_flat_image_is_exact(jpeg_decoder: ModuleType) -> None:
    pixels = bytes([77]) * (16 * 16)
    _, _, _, decoded = jpeg_decoder.decode(encode_jpeg(pixels, 16, 16, components=1, quality=100))
    assert decoded == pixels


def test_lower_quality_gives_smaller_files() -> None:
    pixels = gradient(32, 32, 3)
    assert len(encode_jpeg(pixels, 32, 32, quality=30)) < len(encode_jpeg(pixels, 32, 32, quality=95))


def test_libjpeg_decodes_it(djpeg: str) -> None:
    pixels = gradient(40, 24, 3)
    result = subprocess.run(
        [djpeg, "-pnm"], input=encode_jpeg(pixels, 40, 24), capture_output=True, check=True
    )
    assert result.stderr == b""
    header, dims, _, body = result.stdout.split(b"\n", 3)
    assert (header, dims) == (b"P6", b"40 24")
    assert mean_error(body, pixels) < 4.0


@pytest.mark.parametrize(
    ("pixels", "width", "height", "components", "quality"),
    [
        (b"\0" * 11, 2, 2, 3, 75),  # one byte short
        (b"\0" * 8, 2, 2, 2, 75),  # two components
        (b"\0" * 4, 2, 2, 1, 0),  # quality 0
        (b"", 0, 0, 1, 75),  # no pixels
    ],
)
def test_encoder_refuses_bad_arguments(
    pixels: bytes, width: int, height: int, components: int, quality: int
) -> None:
    with pytest.raises(ValueError):
        encode_jpeg(pixels, width, height, components=components, quality=quality)


GOOD = encode_jpeg(gradient(16, 16, 1), 16, 16, components=1)


@pytest.mark.parametrize(
    ("data", "offset", "text"),
    [
        (b"GIF89a" + GOOD[6:], 0, "no SOI"),
        (GOOD[:-2], len(GOOD) - 4, "EOI"),
        (GOOD[:2] + b"\x00" + GOOD[3:], 2, "expected a JPEG marker"),
        (GOOD[:4] + b"\xff\xff" + GOOD[6:], 4, "runs past"),
        (GOOD + b"\x00", len(GOOD) - 1, "EOI"),
    ],
)
def test_structure_errors_carry_offsets(data: bytes, offset: int, text: str) -> None:
    with pytest.raises(BiometricFormatError) as caught:
        jpeg_info(data)
    assert caught.value.offset == offset
    assert text in str(caught.value)


def test_missing_frame_header_is_refused() -> None:
    no_frame = b"\xff\xd8" + b"\xff\xe0\x00\x04ab" + b"\xff\xd9"
    with pytest.raises(BiometricFormatError, match="no frame header"):
        jpeg_info(no_frame)
