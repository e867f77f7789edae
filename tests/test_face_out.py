"""`ektp verify --face-out`: DG2's face, JPEG or JPEG 2000, converted to the suffix's format with Pillow
and compared pixel-wise with the source; DG7's displayed signature decoded and shown."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ektp_card._cli.util import ExitCode
from ektp_card.crypto.mrz import MrzInfo
from ektp_card.lds.biometrics import FaceImage, ImageDataType
from ektp_card.lds.ektp import encode_dg7
from ektp_card.lds.images import displayed_signatures, image_format, image_size
from ektp_card.lds.synthetic import signature_image
from ektp_card.sandbox import make_passport
from ektp_card.verify.passport import verify_passport

if TYPE_CHECKING:
    from fixtures.cards import RunCli

MRZ = "L898902C3,740812,120415"
KEY = MrzInfo("L898902C3", "740812", "120415")


def _source() -> Image.Image:
    """A face-sized picture with structure in every channel, so that a shifted pixel would show."""
    img = Image.new("RGB", (60, 80))
    img.putdata([((x * 4) % 256, (y * 3) % 256, (x * y) % 256) for y in range(80) for x in range(60)])
    return img


def _jp2(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG2000", irreversible=False)  # lossless: every pixel must come back
    return out.getvalue()


@pytest.fixture(scope="module")
def jp2_passport(ektp_office: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic passport whose DG2 face is JPEG 2000 (lossless) and which has DG7."""
    face = FaceImage(_jp2(_source()), 60, 80, image_data_type=ImageDataType.JPEG2000)
    signature = signature_image(random.Random(4))  # noqa: S311 - synthetic
    path = tmp_path_factory.mktemp("jp2") / "passport.card"
    make_passport(ektp_office, face=face, signature=signature).save(path)
    return path


def test_jpeg2000_face_is_decoded_and_converted_pixel_for_pixel(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, jp2_passport: Path, ektp_office: Any, run_cli: RunCli
) -> None:
    out = tmp_path / "face.png"
    code, stdout, err = run_cli(capsys, "--json", "verify", "--virtual", str(jp2_passport), "--mrz", MRZ,
                                "--trust", str(ektp_office.trust_dir), "--face-out", str(out))
    assert code == ExitCode.OK, err
    data = json.loads(stdout)
    assert data["face"]["format"] == "jpeg2000" and data["face_file"] == str(out)
    assert (out.stat().st_mode & 0o777) == 0o600
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size == (60, 80)
        assert png.convert("RGB").tobytes() == _source().convert("RGB").tobytes()
    # To JPEG: lossy, but the same picture.
    jpg = tmp_path / "face.JPG"
    code, _, err = run_cli(capsys, "verify", "--virtual", str(jp2_passport), "--mrz", MRZ,
                           "--trust", str(ektp_office.trust_dir), "--face-out", str(jpg))
    assert code == ExitCode.OK, err
    with Image.open(jpg) as img:
        assert img.format == "JPEG" and img.size == (60, 80)
        pairs = zip(img.convert("RGB").tobytes(), _source().convert("RGB").tobytes(), strict=True)
        mean = sum(abs(a - b) for a, b in pairs) / (60 * 80 * 3)
        assert mean < 16


def test_the_report_shows_dg7(
    capsys: pytest.CaptureFixture[str], jp2_passport: Path, ektp_office: Any, run_cli: RunCli
) -> None:
    from ektp_card.virtual import VirtualCard

    card = VirtualCard.load(jp2_passport)
    report = verify_passport(card, KEY, ektp_office.trust)
    assert report.genuine and len(report.signatures) == 1
    signature = report.signatures[0]
    with Image.open(io.BytesIO(signature.image)) as img:
        assert signature.format == "jpeg" and (signature.width, signature.height) == img.size
    assert 7 in report.data_groups and 7 not in report.other_groups
    code, out, err = run_cli(capsys, "verify", "--virtual", str(jp2_passport), "--mrz", MRZ,
                             "--trust", str(ektp_office.trust_dir))
    assert code == ExitCode.OK, err
    assert "displayed signature 1 (DG7): JPEG" in out
    code, out, err = run_cli(capsys, "--json", "verify", "--virtual", str(jp2_passport), "--mrz", MRZ,
                             "--trust", str(ektp_office.trust_dir))
    assert json.loads(out)["signatures"][0]["format"] == "jpeg"


def test_a_jpeg_face_to_jpg_is_written_as_stored(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ektp_passport: Any, run_cli: RunCli
) -> None:
    passport = ektp_passport()
    out = tmp_path / "face.jpeg"
    code, _, err = run_cli(capsys, "verify", "--virtual", str(passport.image), "--mrz", MRZ,
                           "--trust", str(passport.trust_dir), "--face-out", str(out))
    assert code == ExitCode.OK, err
    report = verify_passport(passport.card, KEY, passport.trust)
    assert report.face is not None and out.read_bytes() == report.face.image


@pytest.mark.parametrize("name", ["face.gif", "face", "face.jp2", "face.png.txt"])
def test_an_unknown_suffix_is_one_usage_error_before_the_card_is_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, run_cli: RunCli, ektp_office: Any
) -> None:
    out = tmp_path / name
    code, stdout, err = run_cli(capsys, "verify", "--virtual", str(tmp_path / "missing.card"), "--mrz", MRZ,
                                "--trust", str(ektp_office.trust_dir), "--face-out", str(out))
    assert code == ExitCode.USAGE
    assert err.count("\n") == 1 and ".png, .jpg or .jpeg" in err and "Traceback" not in err
    assert not out.exists()


def test_an_undecodable_face_is_one_error_and_nothing_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ektp_office: Any, run_cli: RunCli
) -> None:
    # A JPEG 2000 signature box with nothing decodable after it.
    broken = bytes.fromhex("0000000C6A5020200D0A870A") + b"\x00" * 64
    face = FaceImage(broken, 60, 80, image_data_type=ImageDataType.JPEG2000)
    path = tmp_path / "broken.card"
    make_passport(ektp_office, face=face).save(path)
    out = tmp_path / "face.png"
    code, _, err = run_cli(capsys, "verify", "--virtual", str(path), "--mrz", MRZ,
                           "--trust", str(ektp_office.trust_dir), "--face-out", str(out))
    assert code == ExitCode.CARD_STATUS
    assert "cannot be decoded" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == [path]


def test_without_pillow_the_extra_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ektp_office: Any, run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "PIL", None)
    code, _, err = run_cli(capsys, "verify", "--virtual", str(tmp_path / "x.card"), "--mrz", MRZ,
                           "--trust", str(ektp_office.trust_dir), "--face-out", str(tmp_path / "f.png"))
    assert code == ExitCode.USAGE and "pip install 'ektp-card[images]'" in err


# --- the image headers ---------------------------------------------------------------------------


def test_image_headers() -> None:
    jp2 = _jp2(_source())
    assert image_format(jp2) == "jpeg2000" and image_size(jp2) == (60, 80)
    codestream = io.BytesIO()
    _source().save(codestream, format="JPEG2000", no_jp2=True)
    assert image_format(codestream.getvalue()) == "jpeg2000" and image_size(codestream.getvalue()) == (60, 80)
    jpeg = signature_image(random.Random(1))  # noqa: S311 - synthetic
    with Image.open(io.BytesIO(jpeg)) as img:
        assert image_format(jpeg) == "jpeg" and image_size(jpeg) == img.size
    assert image_format(b"GIF89a") == "unknown" and image_size(b"GIF89a") is None
    (signature,) = displayed_signatures(encode_dg7(jp2))
    assert signature.describe() == f"JPEG 2000 60x80, {len(jp2)} bytes"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.sampled_from([b"", b"\xff\xd8", b"\xff\x4f\xff\x51",
                                                 bytes.fromhex("0000000C6A5020200D0A870A")]))
def test_image_headers_never_crash(tail: bytes, head: bytes) -> None:
    data = head + tail
    kind = image_format(data)
    size = image_size(data)
    assert kind in ("jpeg", "jpeg2000", "unknown")
    assert size is None or (size[0] > 0 and size[1] > 0)


def test_read_decodes_dg7(capsys: pytest.CaptureFixture[str], jp2_passport: Path, run_cli: RunCli) -> None:
    code, out, err = run_cli(capsys, "read", "--virtual", str(jp2_passport), "--mrz", MRZ,
                             "--format", "decoded", "DG7", "DG2")
    assert code == ExitCode.OK, err
    assert "displayed signature 1  JPEG " in out
    code, out, err = run_cli(capsys, "--json", "read", "--virtual", str(jp2_passport), "--mrz", MRZ, "DG7")
    (entry,) = json.loads(out)["files"]
    assert entry["decoded"]["displayed_signatures"][0]["format"] == "jpeg"


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1), st.integers(0, 3))
def test_jpeg_size_agrees_with_the_structural_check(width: int, height: int, seed: int, cut: int) -> None:
    from ektp_card.errors import BiometricFormatError
    from ektp_card.lds.jpeg import encode_jpeg, jpeg_info

    rng = random.Random(seed)  # noqa: S311 - synthetic
    jpeg = encode_jpeg(bytes(rng.randrange(256) for _ in range(width * height)), width, height, components=1)
    assert image_size(jpeg) == (width, height)
    spoilt = jpeg[: len(jpeg) - cut * 7]
    try:
        info = jpeg_info(spoilt)
    except BiometricFormatError:
        return
    assert image_size(spoilt) == (info.width, info.height)
