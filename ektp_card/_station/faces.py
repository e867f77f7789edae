"""The holder's face from DG2, as a browser shows it: JPEG and JPEG 2000 decoded with Pillow (OpenJPEG
for JPEG 2000) and re-encoded as PNG, which every browser shows and which carries no metadata."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

#: A face on a card is a few hundred pixels a side; anything far larger is not a face to decode.
MAX_PIXELS = 4096 * 4096


class FaceImageError(Exception):
    """The face image cannot be decoded."""


def decode_face(image: bytes) -> Image.Image:
    """``image`` (JPEG or JPEG 2000, as DG2 and DG7 store it) decoded, greyscale kept as greyscale;
    :class:`FaceImageError` when Pillow cannot decode it or it is absurdly large."""
    try:
        with Image.open(io.BytesIO(image)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise FaceImageError(f"the face image is {img.width}x{img.height} pixels, too large")
            return img.convert("L" if img.mode in ("1", "L", "I;16", "I") else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # The type, not Pillow's text: that names an in-memory buffer's address, no help to anyone.
        raise FaceImageError(f"the face image cannot be decoded ({type(exc).__name__})") from None


def face_png(image: bytes) -> bytes:
    """``image`` as PNG, in colour (:func:`decode_face`)."""
    out = io.BytesIO()
    decode_face(image).convert("RGB").save(out, format="PNG", optimize=False)
    return out.getvalue()


__all__ = ["FaceImageError", "decode_face", "face_png"]
