"""The holder's face from DG2, as a browser shows it: JPEG and JPEG 2000 decoded with Pillow (OpenJPEG
for JPEG 2000) and re-encoded as PNG, which every browser shows and which carries no metadata."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

#: A face on a card is a few hundred pixels a side; anything far larger is not a face to decode.
MAX_PIXELS = 4096 * 4096


class FaceImageError(Exception):
    """The face image cannot be decoded."""


def face_png(image: bytes) -> bytes:
    """``image`` (JPEG or JPEG 2000, as DG2 stores it) as PNG; :class:`FaceImageError` when Pillow cannot
    decode it or it is absurdly large."""
    try:
        with Image.open(io.BytesIO(image)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise FaceImageError(f"the face image is {img.width}x{img.height} pixels")
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise FaceImageError(f"the face image cannot be decoded: {exc}") from None
    out = io.BytesIO()
    rgb.save(out, format="PNG", optimize=False)
    return out.getvalue()


__all__ = ["FaceImageError", "face_png"]
