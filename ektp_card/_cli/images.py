"""Re-encoding the record's face and signature to fit a small chip (``ektp personalize --face-budget``,
``--signature-budget``), with Pillow.

The rule (docs/personalisation.md, "An 8 KB chip"): a baseline JPEG with 4:2:0 chroma subsampling
(the signature in greyscale), Huffman tables optimised, no metadata; the highest quality from 90
down to :data:`MIN_QUALITY` in steps of 5 at the image's own size whose file fits the budget; if
none does, the same at 80 % of the width and height, and so on down to :data:`MIN_WIDTH` pixels wide.
An image already within its budget is kept as it is.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from ektp_card.errors import MissingExtraError, PlanError

#: Below this quality JPEG blocks show in a face at this size; an issuer should not go lower.
MIN_QUALITY = 20
#: Narrower than this a face is no longer a portrait a clerk can compare (and a signature no longer legible).
MIN_WIDTH = 48
_QUALITIES = range(90, MIN_QUALITY - 1, -5)
_SHRINK = 0.8


@dataclass(frozen=True)
class Compacted:
    """An image as re-encoded: its bytes, size and the JPEG quality chosen (``None``: kept as it was)."""

    data: bytes
    width: int
    height: int
    quality: int | None


def compact_jpeg(data: bytes, budget: int, *, what: str, greyscale: bool = False) -> Compacted:
    """``data`` (a JPEG) as a JPEG of at most ``budget`` bytes by the rule above; :class:`PlanError`
    when even the smallest, lowest-quality encoding does not fit."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - the test environment has Pillow
        raise MissingExtraError("re-encoding images", "Pillow", "station") from None
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("L" if greyscale else "RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PlanError(f"the {what} cannot be decoded: {exc}") from None
    if len(data) <= budget:
        return Compacted(bytes(data), image.width, image.height, None)
    width, height = image.size
    smallest = len(data)
    while True:
        scaled = image
        if (width, height) != image.size:
            scaled = image.resize((width, height), Image.Resampling.LANCZOS)
        for quality in _QUALITIES:
            out = io.BytesIO()
            scaled.save(out, "JPEG", quality=quality, optimize=True, subsampling="4:2:0")
            encoded = out.getvalue()
            smallest = min(smallest, len(encoded))
            if len(encoded) <= budget:
                return Compacted(encoded, width, height, quality)
        next_width = int(width * _SHRINK)
        if next_width < MIN_WIDTH:
            raise PlanError(
                f"the {what} does not fit {budget} bytes: the smallest encoding allowed "
                f"({MIN_WIDTH} pixels wide or more, quality {MIN_QUALITY} or more) has {smallest}"
            )
        width, height = next_width, max(1, round(height * next_width / width))


__all__ = ["MIN_QUALITY", "MIN_WIDTH", "Compacted", "compact_jpeg"]
