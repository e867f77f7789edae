"""``--face-out``: the holder's face from DG2 in the format its file name asks for.

A JPEG face written to ``.jpg``/``.jpeg`` is written as the card stores it (no re-encoding, no imaging
library needed); anything else (a JPEG 2000 face, or PNG output) is decoded and re-encoded with Pillow
(OpenJPEG for JPEG 2000), from the ``images`` extra. The output carries no metadata of the card's file.
"""

from __future__ import annotations

import io
from pathlib import Path

from ektp_card._cli.util import ExitCode, fail

#: Output formats by file name suffix (lower case): Pillow's format name.
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def face_format(path: Path) -> str:
    """The Pillow format ``path``'s suffix asks for; exit 2 for any other suffix."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        fail(f"--face-out {path}: the file name must end in .png, .jpg or .jpeg (the format written)",
             ExitCode.USAGE)
    return fmt


def needs_pillow(path: Path) -> bool:
    """Whether writing to ``path`` surely decodes the image (PNG output), before the card's face is seen;
    JPEG output decodes only a face that is not JPEG already (:func:`convert_face`)."""
    return face_format(path) == "PNG"


def require_pillow() -> None:
    """Exit 2 with the extra to install when Pillow is missing."""
    try:
        import PIL  # noqa: F401 - only whether it is there
    except ImportError:
        from ektp_card.errors import MissingExtraError

        raise MissingExtraError("--face-out with a conversion", "Pillow", "images") from None


def convert_face(image: bytes, path: Path) -> bytes:
    """``image`` (JPEG or JPEG 2000, as DG2 stores it) in the format of ``path``'s suffix. Exit 2 for an
    unknown suffix or without Pillow, 6 for a face image that cannot be decoded."""
    fmt = face_format(path)
    if fmt == "JPEG" and image.startswith(b"\xff\xd8"):
        return image
    require_pillow()
    # The station's decoder (Pillow only, no web stack): one pixel bound and one set of decoding errors.
    from ektp_card._station.faces import FaceImageError, decode_face

    try:
        rgb = decode_face(image)
    except FaceImageError as exc:
        fail(f"--face-out: the card's {str(exc).removeprefix('the ')}", ExitCode.CARD_STATUS)
    out = io.BytesIO()
    if fmt == "JPEG":
        rgb.save(out, format="JPEG", quality=95)
    else:
        rgb.save(out, format="PNG")
    return out.getvalue()


__all__ = ["FORMATS", "convert_face", "face_format", "needs_pillow", "require_pillow"]
