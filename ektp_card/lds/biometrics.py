"""Biometric records: ISO/IEC 19794-2:2005 finger minutiae, ISO/IEC 19794-5:2005 face images, and the
CBEFF biometric information templates ICAO Doc 9303-10 wraps them in for DG2 and DG3.

Finger minutiae record (ISO/IEC 19794-2:2005, the finger minutiae record format), all
multi-byte values big-endian::

    record header (24 bytes)
        "FMR\\0"  " 20\\0"  record length (4)  capture equipment (2: compliance 4 bits, ID 12 bits)
        image width (2)  image height (2)  x resolution (2)  y resolution (2)  (pixels per cm)
        number of finger views (1)  reserved (1, zero)
    finger view, repeated
        finger position (1, 0..10)  view number (4 bits) + impression type (4 bits)
        finger quality (1, 0..100)  number of minutiae (1)
        minutia (6 bytes) x count:
            type (2 bits: 01 ridge ending, 10 bifurcation, 00 other) + x (14 bits)
            reserved (2 bits, zero) + y (14 bits)
            angle (1, units of 360/256 = 1.40625 degrees, counter-clockwise from the x axis)
            quality (1, 0..100, 0 = not reported)
        extended data block length (2) + extended data (kept as bytes, not interpreted)

Face record (ISO/IEC 19794-5:2005, the facial record format)::

    facial record header (14 bytes): "FAC\\0"  "010\\0"  record length (4)  number of images (2)
    per image: facial information block (20 bytes): facial record data length (4), feature points (2),
        gender, eye colour, hair colour (1 each), feature mask (3), expression (2), pose angle
        yaw/pitch/roll (3), pose angle uncertainty (3)
        feature points (8 bytes each: type, major/minor code, x (2), y (2), reserved (2, zero))
        image information (12 bytes): face image type, image data type (0 JPEG, 1 JPEG 2000),
        width (2), height (2), colour space, source type, device type (2), quality (2)
        image data

Decoding is strict: truncation, a length field that disagrees with the data, a count that runs past
the end, reserved bits that are set or values outside the standard's ranges raise
:class:`BiometricFormatError` with the offset of the offending field. Encoding gives the exact bytes
back: ``decode(record.encode()) == record`` and ``decode(data).encode() == data``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from ektp_card.apdu.tlv import Tlv, parse_list, parse_one
from ektp_card.errors import BiometricFormatError, InputFileError, LdsFormatError, TlvError
from ektp_card.files import TEMPLATE_LIMIT, read_file

# --- ISO/IEC 19794-2:2005 finger minutiae --------------------------------------------------------

FMR_FORMAT_ID = b"FMR\x00"
FMR_VERSION = b" 20\x00"
FMR_HEADER_LENGTH = 24
FMR_VIEW_HEADER_LENGTH = 4
MINUTIA_LENGTH = 6
#: Degrees per angle unit (360 / 256) of a minutia angle in ISO/IEC 19794-2:2005.
ANGLE_UNIT = 360.0 / 256
#: 500 dots per inch in the record's unit, pixels per centimetre (rounded).
DEFAULT_RESOLUTION = 197
MAX_COORDINATE = (1 << 14) - 1
MAX_QUALITY = 100


class MinutiaType(IntEnum):
    """The two type bits of a minutia (ISO/IEC 19794-2:2005); 11 is reserved."""

    OTHER = 0
    RIDGE_ENDING = 1
    BIFURCATION = 2


class FingerPosition(IntEnum):
    """Finger position codes (ISO/IEC 19794-2:2005, the finger position table shared with 19794-4)."""

    UNKNOWN = 0
    RIGHT_THUMB = 1
    RIGHT_INDEX = 2
    RIGHT_MIDDLE = 3
    RIGHT_RING = 4
    RIGHT_LITTLE = 5
    LEFT_THUMB = 6
    LEFT_INDEX = 7
    LEFT_MIDDLE = 8
    LEFT_RING = 9
    LEFT_LITTLE = 10

    @property
    def cbeff_subtype(self) -> int:
        """The biometric subtype byte of a BHT (ISO/IEC 7816-11 Table C.3, ISO/IEC 19785-1): bits 2-1
        01 right / 10 left, bits 5-3 the finger (001 thumb .. 101 little); 0 when unknown."""
        if self is FingerPosition.UNKNOWN:
            return 0
        side = 0x01 if self.value <= 5 else 0x02
        finger = (self.value - 1) % 5 + 1
        return side | (finger << 2)


class ImpressionType(IntEnum):
    """Impression types ISO/IEC 19794-2:2005 allows in a minutiae record."""

    LIVE_PLAIN = 0
    LIVE_ROLLED = 1
    NONLIVE_PLAIN = 2
    NONLIVE_ROLLED = 3
    SWIPE = 8


def _check(condition: bool, message: str, offset: int | None = None) -> None:
    if not condition:
        raise BiometricFormatError(message, offset)


@dataclass(frozen=True)
class Minutia:
    """One minutia: position in pixels (origin top left, y downwards), angle in 1.40625 degree units."""

    type: MinutiaType
    x: int
    y: int
    angle: int
    quality: int = 0

    def __post_init__(self) -> None:
        _check(self.type in MinutiaType.__members__.values(), f"minutia type {self.type} is reserved")
        object.__setattr__(self, "type", MinutiaType(self.type))  # a plain int becomes the enum
        _check(
            0 <= self.x <= MAX_COORDINATE and 0 <= self.y <= MAX_COORDINATE,
            "minutia coordinates must fit in 14 bits",
        )
        _check(0 <= self.angle <= 0xFF, "minutia angle must be 0..255 (units of 1.40625 degrees)")
        _check(0 <= self.quality <= MAX_QUALITY, "minutia quality must be 0..100")

    @property
    def degrees(self) -> float:
        return self.angle * ANGLE_UNIT

    @property
    def radians(self) -> float:
        return math.radians(self.degrees)

    def encode(self) -> bytes:
        return (
            ((int(self.type) << 14) | self.x).to_bytes(2, "big")
            + self.y.to_bytes(2, "big")
            + bytes((self.angle, self.quality))
        )


@dataclass(frozen=True)
class FingerView:
    """One finger view of a minutiae record."""

    position: FingerPosition
    minutiae: tuple[Minutia, ...]
    view_number: int = 0
    impression: ImpressionType = ImpressionType.LIVE_PLAIN
    quality: int = 0
    #: The extended data block (ridge counts, cores and deltas...), kept as its bytes.
    extended_data: bytes = b""

    def __post_init__(self) -> None:
        _check(
            self.position in FingerPosition.__members__.values(), f"finger position {self.position} invalid"
        )
        _check(
            self.impression in ImpressionType.__members__.values(),
            f"impression type {self.impression} invalid",
        )
        object.__setattr__(self, "position", FingerPosition(self.position))
        object.__setattr__(self, "impression", ImpressionType(self.impression))
        _check(0 <= self.view_number <= 0x0F, "view number must be 0..15")
        _check(0 <= self.quality <= MAX_QUALITY, "finger quality must be 0..100")
        _check(len(self.minutiae) <= 0xFF, "a finger view holds at most 255 minutiae")
        _check(len(self.extended_data) <= 0xFFFF, "extended data longer than 65535 bytes")

    @property
    def encoded_length(self) -> int:
        return FMR_VIEW_HEADER_LENGTH + MINUTIA_LENGTH * len(self.minutiae) + 2 + len(self.extended_data)

    def encode(self) -> bytes:
        head = bytes(
            (
                int(self.position),
                (self.view_number << 4) | int(self.impression),
                self.quality,
                len(self.minutiae),
            )
        )
        body = b"".join(m.encode() for m in self.minutiae)
        return head + body + len(self.extended_data).to_bytes(2, "big") + self.extended_data


@dataclass(frozen=True)
class MinutiaeRecord:
    """An ISO/IEC 19794-2:2005 finger minutiae record (one or more finger views)."""

    width: int
    height: int
    views: tuple[FingerView, ...]
    x_resolution: int = DEFAULT_RESOLUTION
    y_resolution: int = DEFAULT_RESOLUTION
    #: Capture equipment: 4 bits of compliance (certification) flags and a 12-bit equipment ID.
    equipment_compliance: int = 0
    equipment_id: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "height", "x_resolution", "y_resolution"):
            _check(0 <= getattr(self, name) <= 0xFFFF, f"{name} must fit in 16 bits")
        _check(0 <= self.equipment_compliance <= 0x0F, "equipment compliance must fit in 4 bits")
        _check(0 <= self.equipment_id <= 0x0FFF, "equipment ID must fit in 12 bits")
        _check(1 <= len(self.views) <= 0xFF, "a record holds 1 to 255 finger views")
        for view in self.views:
            for m in view.minutiae:
                _check(
                    _inside(m, self.width, self.height),
                    f"minutia ({m.x}, {m.y}) outside the {self.width}x{self.height} image",
                )

    @property
    def minutiae(self) -> tuple[Minutia, ...]:
        """The minutiae of the first finger view (the only one in an e-KTP template)."""
        return self.views[0].minutiae

    def encode(self) -> bytes:
        views = b"".join(v.encode() for v in self.views)
        length = FMR_HEADER_LENGTH + len(views)
        header = (
            FMR_FORMAT_ID
            + FMR_VERSION
            + length.to_bytes(4, "big")
            + ((self.equipment_compliance << 12) | self.equipment_id).to_bytes(2, "big")
            + b"".join(
                v.to_bytes(2, "big") for v in (self.width, self.height, self.x_resolution, self.y_resolution)
            )
            + bytes((len(self.views), 0))
        )
        return header + views

    @classmethod
    def decode(cls, data: bytes) -> MinutiaeRecord:
        """Parse one record filling ``data`` exactly; :class:`BiometricFormatError` otherwise."""
        data = bytes(data)
        _check(
            len(data) >= FMR_HEADER_LENGTH,
            f"finger minutiae record of {len(data)} bytes is shorter than its 24-byte header",
            len(data),
        )
        _check(data[0:4] == FMR_FORMAT_ID, "not a finger minutiae record (format identifier is not 'FMR')", 0)
        _check(
            data[4:8] == FMR_VERSION,
            "unsupported finger minutiae record version (want ISO/IEC 19794-2:2005 ' 20')",
            4,
        )
        length = int.from_bytes(data[8:12], "big")
        _check(length == len(data), f"record length field says {length} bytes but {len(data)} are present", 8)
        equipment = int.from_bytes(data[12:14], "big")
        width, height, x_res, y_res = (int.from_bytes(data[i : i + 2], "big") for i in (14, 16, 18, 20))
        count = data[22]
        _check(count >= 1, "record has no finger view", 22)
        _check(data[23] == 0, "reserved header byte is not zero", 23)
        offset = FMR_HEADER_LENGTH
        views = []
        for index in range(count):
            view, offset = _decode_view(data, offset, index + 1, width, height)
            views.append(view)
        _check(offset == len(data), f"{len(data) - offset} bytes after the last finger view", offset)
        return cls(width, height, tuple(views), x_res, y_res, equipment >> 12, equipment & 0x0FFF)

    @classmethod
    def load(cls, path: Path) -> MinutiaeRecord:
        """The record in the file ``path`` (e.g. a fresh capture); :class:`InputFileError` naming the
        file when it cannot be read or holds no record."""
        try:
            data = read_file(path, TEMPLATE_LIMIT)
        except OSError as e:
            raise InputFileError(f"{path}: {e.strerror or e}") from None
        try:
            return cls.decode(data)
        except LdsFormatError as e:
            raise InputFileError(f"{path}: not an ISO/IEC 19794-2 minutiae record: {e}") from None


def first_view(template: MinutiaeRecord | FingerView) -> tuple[FingerView, int, int]:
    """The (first) finger view of ``template`` and its x and y resolutions in pixels per cm; a view alone,
    or a record whose resolution is zero ("not given"), is taken at the usual 500 dpi."""
    if isinstance(template, MinutiaeRecord):
        return (template.views[0], template.x_resolution or DEFAULT_RESOLUTION,
                template.y_resolution or DEFAULT_RESOLUTION)
    return template, DEFAULT_RESOLUTION, DEFAULT_RESOLUTION


def _inside(m: Minutia, width: int, height: int) -> bool:
    """ISO/IEC 19794-2:2005 places minutiae inside the image; a zero size means "not given"."""
    return (width == 0 or m.x < width) and (height == 0 or m.y < height)


def _decode_view(data: bytes, offset: int, number: int, width: int, height: int) -> tuple[FingerView, int]:
    _check(offset + FMR_VIEW_HEADER_LENGTH <= len(data), f"finger view {number} header truncated", offset)
    position, packed, quality, count = data[offset : offset + 4]
    _check(
        position in FingerPosition.__members__.values(), f"finger position {position} is not defined", offset
    )
    impression = packed & 0x0F
    _check(
        impression in ImpressionType.__members__.values(),
        f"impression type {impression} is not defined",
        offset + 1,
    )
    _check(quality <= MAX_QUALITY, f"finger quality {quality} is above 100", offset + 2)
    pos = offset + FMR_VIEW_HEADER_LENGTH
    end = pos + MINUTIA_LENGTH * count
    _check(
        end + 2 <= len(data),
        f"finger view {number} declares {count} minutiae but the record ends first",
        offset + 3,
    )
    minutiae = []
    for at in range(pos, end, MINUTIA_LENGTH):
        word_x = int.from_bytes(data[at : at + 2], "big")
        word_y = int.from_bytes(data[at + 2 : at + 4], "big")
        kind = word_x >> 14
        _check(kind != 3, "minutia type 11 is reserved", at)
        _check(word_y >> 14 == 0, "reserved bits of the minutia y coordinate are set", at + 2)
        x, y = word_x & MAX_COORDINATE, word_y & MAX_COORDINATE
        _check(
            (width == 0 or x < width) and (height == 0 or y < height),
            f"minutia ({x}, {y}) lies outside the {width}x{height} image",
            at,
        )
        m_quality = data[at + 5]
        _check(m_quality <= MAX_QUALITY, f"minutia quality {m_quality} is above 100", at + 5)
        minutiae.append(Minutia(MinutiaType(kind), x, y, data[at + 4], m_quality))
    ext_length = int.from_bytes(data[end : end + 2], "big")
    _check(end + 2 + ext_length <= len(data), f"extended data length {ext_length} runs past the record", end)
    extended = data[end + 2 : end + 2 + ext_length]
    view = FingerView(
        FingerPosition(position), tuple(minutiae), packed >> 4, ImpressionType(impression), quality, extended
    )
    return view, end + 2 + ext_length


# --- ISO/IEC 19794-5:2005 face images ------------------------------------------------------------

FAC_FORMAT_ID = b"FAC\x00"
FAC_VERSION = b"010\x00"
FAC_HEADER_LENGTH = 14
FACIAL_INFORMATION_LENGTH = 20
FEATURE_POINT_LENGTH = 8
IMAGE_INFORMATION_LENGTH = 12


class FaceImageType(IntEnum):
    BASIC = 0
    FULL_FRONTAL = 1
    TOKEN_FRONTAL = 2


class ImageDataType(IntEnum):
    JPEG = 0
    JPEG2000 = 1


@dataclass(frozen=True)
class FeaturePoint:
    """A facial feature point (ISO/IEC 19794-5:2005): type, code (major << 4 | minor), x, y."""

    type: int
    code: int
    x: int
    y: int

    def encode(self) -> bytes:
        return bytes((self.type, self.code)) + self.x.to_bytes(2, "big") + self.y.to_bytes(2, "big") + b"\0\0"


@dataclass(frozen=True)
class FaceImage:
    """One facial image of an ISO/IEC 19794-5:2005 record. Enumerated descriptive values (gender,
    colours, expression, pose, source and device type) are kept as the numbers the record carries."""

    image: bytes = field(repr=False)
    width: int
    height: int
    image_data_type: ImageDataType = ImageDataType.JPEG
    face_image_type: FaceImageType = FaceImageType.FULL_FRONTAL
    #: 1 = 24-bit RGB, 3 = 8-bit greyscale (ISO/IEC 19794-5:2005 image colour space).
    colour_space: int = 1
    #: 2 = static photograph from a digital still camera.
    source_type: int = 2
    device_type: int = 0
    quality: int = 0
    gender: int = 0
    eye_colour: int = 0
    hair_colour: int = 0
    feature_mask: int = 0
    expression: int = 0
    pose_angle: tuple[int, int, int] = (0, 0, 0)
    pose_angle_uncertainty: tuple[int, int, int] = (0, 0, 0)
    feature_points: tuple[FeaturePoint, ...] = ()

    def __post_init__(self) -> None:
        _check(
            self.image_data_type in ImageDataType.__members__.values(),
            "image data type must be JPEG or JPEG 2000",
        )
        _check(
            self.face_image_type in FaceImageType.__members__.values(), "face image type must be 0, 1 or 2"
        )
        object.__setattr__(self, "image_data_type", ImageDataType(self.image_data_type))
        object.__setattr__(self, "face_image_type", FaceImageType(self.face_image_type))
        for name in ("width", "height", "device_type", "quality", "expression"):
            _check(0 <= getattr(self, name) <= 0xFFFF, f"{name} must fit in 16 bits")
        for name in ("colour_space", "source_type", "gender", "eye_colour", "hair_colour"):
            _check(0 <= getattr(self, name) <= 0xFF, f"{name} must fit in 8 bits")
        _check(0 <= self.feature_mask <= 0xFFFFFF, "feature mask must fit in 24 bits")
        _check(
            all(0 <= a <= 0xFF for a in self.pose_angle + self.pose_angle_uncertainty),
            "pose angles are one byte each",
        )
        _check(len(self.feature_points) <= 0xFFFF, "too many feature points")
        for p in self.feature_points:
            _check(
                0 <= p.type <= 0xFF and 0 <= p.code <= 0xFF and 0 <= p.x <= 0xFFFF and 0 <= p.y <= 0xFFFF,
                "feature point values out of range",
            )

    @property
    def block_length(self) -> int:
        """The facial record data length: information blocks, feature points and image."""
        return (
            FACIAL_INFORMATION_LENGTH
            + FEATURE_POINT_LENGTH * len(self.feature_points)
            + IMAGE_INFORMATION_LENGTH
            + len(self.image)
        )

    def encode_block(self) -> bytes:
        info = (
            self.block_length.to_bytes(4, "big")
            + len(self.feature_points).to_bytes(2, "big")
            + bytes((self.gender, self.eye_colour, self.hair_colour))
            + self.feature_mask.to_bytes(3, "big")
            + self.expression.to_bytes(2, "big")
            + bytes(self.pose_angle)
            + bytes(self.pose_angle_uncertainty)
        )
        points = b"".join(p.encode() for p in self.feature_points)
        image_info = (
            bytes((int(self.face_image_type), int(self.image_data_type)))
            + self.width.to_bytes(2, "big")
            + self.height.to_bytes(2, "big")
            + bytes((self.colour_space, self.source_type))
            + self.device_type.to_bytes(2, "big")
            + self.quality.to_bytes(2, "big")
        )
        return info + points + image_info + self.image


@dataclass(frozen=True)
class FaceRecord:
    """An ISO/IEC 19794-5:2005 facial record: one or more images."""

    images: tuple[FaceImage, ...]

    def __post_init__(self) -> None:
        _check(1 <= len(self.images) <= 0xFFFF, "a facial record holds 1 to 65535 images")

    def encode(self) -> bytes:
        blocks = b"".join(i.encode_block() for i in self.images)
        length = FAC_HEADER_LENGTH + len(blocks)
        return (
            FAC_FORMAT_ID
            + FAC_VERSION
            + length.to_bytes(4, "big")
            + len(self.images).to_bytes(2, "big")
            + blocks
        )

    @classmethod
    def decode(cls, data: bytes) -> FaceRecord:
        """Parse one record filling ``data`` exactly; :class:`BiometricFormatError` otherwise."""
        data = bytes(data)
        _check(
            len(data) >= FAC_HEADER_LENGTH,
            f"facial record of {len(data)} bytes is shorter than its 14-byte header",
            len(data),
        )
        _check(data[0:4] == FAC_FORMAT_ID, "not a facial record (format identifier is not 'FAC')", 0)
        _check(
            data[4:8] == FAC_VERSION, "unsupported facial record version (want ISO/IEC 19794-5:2005 '010')", 4
        )
        length = int.from_bytes(data[8:12], "big")
        _check(length == len(data), f"record length field says {length} bytes but {len(data)} are present", 8)
        count = int.from_bytes(data[12:14], "big")
        _check(count >= 1, "facial record has no image", 12)
        offset = FAC_HEADER_LENGTH
        images = []
        for number in range(1, count + 1):
            image, offset = _decode_face_block(data, offset, number)
            images.append(image)
        _check(offset == len(data), f"{len(data) - offset} bytes after the last facial image", offset)
        return cls(tuple(images))


def _decode_face_block(data: bytes, offset: int, number: int) -> tuple[FaceImage, int]:
    _check(
        offset + FACIAL_INFORMATION_LENGTH <= len(data),
        f"facial information block {number} truncated",
        offset,
    )
    block_length = int.from_bytes(data[offset : offset + 4], "big")
    points = int.from_bytes(data[offset + 4 : offset + 6], "big")
    minimum = FACIAL_INFORMATION_LENGTH + FEATURE_POINT_LENGTH * points + IMAGE_INFORMATION_LENGTH
    _check(
        block_length >= minimum,
        f"facial record data length {block_length} is shorter than its {points} feature points need",
        offset,
    )
    end = offset + block_length
    _check(end <= len(data), f"facial record data length {block_length} runs past the record", offset)
    gender, eye, hair = data[offset + 6 : offset + 9]
    mask = int.from_bytes(data[offset + 9 : offset + 12], "big")
    expression = int.from_bytes(data[offset + 12 : offset + 14], "big")
    pose = (data[offset + 14], data[offset + 15], data[offset + 16])
    uncertainty = (data[offset + 17], data[offset + 18], data[offset + 19])
    pos = offset + FACIAL_INFORMATION_LENGTH
    feature_points = []
    for _ in range(points):
        _check(data[pos + 6 : pos + 8] == b"\0\0", "reserved bytes of a feature point are not zero", pos + 6)
        feature_points.append(
            FeaturePoint(
                data[pos],
                data[pos + 1],
                int.from_bytes(data[pos + 2 : pos + 4], "big"),
                int.from_bytes(data[pos + 4 : pos + 6], "big"),
            )
        )
        pos += FEATURE_POINT_LENGTH
    face_type, data_type = data[pos], data[pos + 1]
    _check(
        face_type in FaceImageType.__members__.values(), f"face image type {face_type} is not defined", pos
    )
    _check(
        data_type in ImageDataType.__members__.values(),
        f"image data type {data_type} is not defined",
        pos + 1,
    )
    width = int.from_bytes(data[pos + 2 : pos + 4], "big")
    height = int.from_bytes(data[pos + 4 : pos + 6], "big")
    colour, source = data[pos + 6], data[pos + 7]
    device = int.from_bytes(data[pos + 8 : pos + 10], "big")
    quality = int.from_bytes(data[pos + 10 : pos + 12], "big")
    image = data[pos + IMAGE_INFORMATION_LENGTH : end]
    _check(len(image) > 0, f"facial image {number} has no image data", pos + IMAGE_INFORMATION_LENGTH)
    face = FaceImage(
        image,
        width,
        height,
        ImageDataType(data_type),
        FaceImageType(face_type),
        colour,
        source,
        device,
        quality,
        gender,
        eye,
        hair,
        mask,
        expression,
        pose,
        uncertainty,
        tuple(feature_points),
    )
    return face, end


# --- CBEFF biometric information templates (ISO/IEC 7816-11, ICAO Doc 9303-10) -------------------

TAG_BIT_GROUP = 0x7F61
TAG_BIT = 0x7F60
TAG_BHT = 0xA1
TAG_BIT_COUNT = 0x02
TAG_BDB = 0x5F2E
TAG_BDB_ENCIPHERED = 0x7F2E
#: Biometric header template data objects (ICAO Doc 9303-10, the DG2/DG3 biometric header template).
BHT_ICAO_VERSION, BHT_TYPE, BHT_SUBTYPE, BHT_CREATED = 0x80, 0x81, 0x82, 0x83
BHT_VALIDITY, BHT_CREATOR, BHT_FORMAT_OWNER, BHT_FORMAT_TYPE = 0x85, 0x86, 0x87, 0x88
_BHT_ORDER = (
    BHT_ICAO_VERSION,
    BHT_TYPE,
    BHT_SUBTYPE,
    BHT_CREATED,
    BHT_VALIDITY,
    BHT_CREATOR,
    BHT_FORMAT_OWNER,
    BHT_FORMAT_TYPE,
)
#: ICAO header version 1.1 (ICAO Doc 9303-10, DO 80 of the biometric header template).
ICAO_HEADER_VERSION = b"\x01\x01"
#: CBEFF biometric types (ISO/IEC 19785-1): facial features and finger.
BIOMETRIC_TYPE_FACE = 0x02
BIOMETRIC_TYPE_FINGER = 0x08
#: CBEFF format owner ISO/IEC JTC 1/SC 37 and its format types (IBIA CBEFF registry).
FORMAT_OWNER_SC37 = 0x0101
FORMAT_TYPE_FINGER_MINUTIAE = 0x0001  # ISO/IEC 19794-2 record, no extended data
FORMAT_TYPE_FINGER_MINUTIAE_EXTENDED = 0x0002  # ISO/IEC 19794-2 record with extended data
FORMAT_TYPE_FACE_IMAGE = 0x0008  # ISO/IEC 19794-5


@dataclass(frozen=True)
class BiometricHeader:
    """A biometric header template (tag A1). ``format_owner`` and ``format_type`` are mandatory;
    the other data objects are left out when ``None``."""

    biometric_type: int
    format_owner: int
    format_type: int
    subtype: int | None = None
    icao_header_version: bytes | None = ICAO_HEADER_VERSION
    creation_date: bytes | None = None
    validity_period: bytes | None = None
    creator: bytes | None = None

    def __post_init__(self) -> None:
        _check(0 <= self.biometric_type <= 0xFFFFFF, "biometric type must fit in 3 bytes")
        _check(
            0 <= self.format_owner <= 0xFFFF and 0 <= self.format_type <= 0xFFFF,
            "format owner and type are 2 bytes each",
        )
        _check(self.subtype is None or 0 <= self.subtype <= 0xFF, "biometric subtype is one byte")
        _check(
            self.icao_header_version is None or len(self.icao_header_version) == 2,
            "ICAO header version is 2 bytes",
        )
        _check(self.creation_date is None or len(self.creation_date) == 7, "creation date is 7 bytes")
        _check(self.validity_period is None or len(self.validity_period) == 8, "validity period is 8 bytes")
        _check(self.creator is None or 1 <= len(self.creator) <= 18, "creator is 1 to 18 bytes")

    def encode(self) -> bytes:
        objects: list[Tlv] = []
        if self.icao_header_version is not None:
            objects.append(Tlv(BHT_ICAO_VERSION, self.icao_header_version))
        type_len = 1 if self.biometric_type <= 0xFF else 3
        objects.append(Tlv(BHT_TYPE, self.biometric_type.to_bytes(type_len, "big")))
        if self.subtype is not None:
            objects.append(Tlv(BHT_SUBTYPE, bytes((self.subtype,))))
        for tag, value in (
            (BHT_CREATED, self.creation_date),
            (BHT_VALIDITY, self.validity_period),
            (BHT_CREATOR, self.creator),
        ):
            if value is not None:
                objects.append(Tlv(tag, value))
        objects.append(Tlv(BHT_FORMAT_OWNER, self.format_owner.to_bytes(2, "big")))
        objects.append(Tlv(BHT_FORMAT_TYPE, self.format_type.to_bytes(2, "big")))
        return Tlv.of(TAG_BHT, *objects).encode()

    @classmethod
    def decode_value(cls, value: bytes, offset: int) -> BiometricHeader:
        """Parse the value of a tag A1 object found at ``offset`` of the enclosing data."""
        try:
            objects = parse_list(value)
        except TlvError as e:
            raise BiometricFormatError(f"malformed biometric header template: {e}", offset) from None
        tags = [o.tag for o in objects]
        _check(
            all(t in _BHT_ORDER for t in tags), "unknown data object in the biometric header template", offset
        )
        _check(
            tags == sorted(set(tags), key=_BHT_ORDER.index),
            "biometric header template objects repeat or are out of order",
            offset,
        )
        values = {o.tag: o.value for o in objects}
        _check(
            BHT_FORMAT_OWNER in values and BHT_FORMAT_TYPE in values,
            "biometric header template lacks the format owner or format type",
            offset,
        )
        _check(
            BHT_TYPE in values and len(values[BHT_TYPE]) in (1, 3),
            "biometric header template lacks a 1- or 3-byte biometric type",
            offset,
        )
        _check(
            len(values[BHT_FORMAT_OWNER]) == 2 and len(values[BHT_FORMAT_TYPE]) == 2,
            "format owner and type must be 2 bytes",
            offset,
        )
        _check(
            BHT_SUBTYPE not in values or len(values[BHT_SUBTYPE]) == 1,
            "biometric subtype must be 1 byte",
            offset,
        )
        try:
            return cls(
                int.from_bytes(values[BHT_TYPE], "big"),
                int.from_bytes(values[BHT_FORMAT_OWNER], "big"),
                int.from_bytes(values[BHT_FORMAT_TYPE], "big"),
                values[BHT_SUBTYPE][0] if BHT_SUBTYPE in values else None,
                values.get(BHT_ICAO_VERSION),
                values.get(BHT_CREATED),
                values.get(BHT_VALIDITY),
                values.get(BHT_CREATOR),
            )
        except BiometricFormatError as e:
            raise BiometricFormatError(str(e), offset) from None


@dataclass(frozen=True)
class BiometricTemplate:
    """One biometric information template (7F60): its header and the biometric data block (5F2E)."""

    header: BiometricHeader
    data: bytes = field(repr=False)

    def encode(self) -> bytes:
        return Tlv(TAG_BIT, self.header.encode() + Tlv(TAG_BDB, self.data).encode()).encode()


def encode_biometric_group(outer_tag: int, templates: Sequence[BiometricTemplate]) -> bytes:
    """A data group of biometric templates: ``outer_tag`` (75 for DG2, 63 for DG3) around the
    biometric information group template 7F61 with the count (02) and one 7F60 per template."""
    _check(1 <= len(templates) <= 0xFF, "a biometric group holds 1 to 255 templates")
    group = Tlv.of(
        TAG_BIT_GROUP, Tlv(TAG_BIT_COUNT, bytes((len(templates),))), *(t.encode() for t in templates)
    )
    return Tlv.of(outer_tag, group).encode()


def decode_biometric_group(outer_tag: int, data: bytes) -> tuple[BiometricTemplate, ...]:
    """Inverse of :func:`encode_biometric_group`, strict: the count must match the templates, each
    template is exactly a header (A1) and a plain data block (5F2E), nothing else is allowed."""
    data = bytes(data)
    try:
        outer, end = parse_one(data)
    except TlvError as e:
        raise BiometricFormatError(f"malformed data group: {e}", e.offset) from None
    _check(outer.tag == outer_tag, f"data group tag is {outer.tag:X}, expected {outer_tag:X}", 0)
    _check(end == len(data), f"{len(data) - end} bytes after the data group", end)
    base = end - len(outer.value)
    group, group_end = _one(outer.value, 0, base)
    _check(
        group.tag == TAG_BIT_GROUP,
        f"expected the biometric information group template 7F61, found {group.tag:X}",
        base,
    )
    _check(
        group_end == len(outer.value), "data after the biometric information group template", base + group_end
    )
    inner_base = base + group_end - len(group.value)
    count, pos = _one(group.value, 0, inner_base)
    _check(
        count.tag == TAG_BIT_COUNT and len(count.value) == 1,
        "biometric information group must start with a one-byte count (02)",
        inner_base,
    )
    templates = []
    while pos < len(group.value):
        start = pos
        bit, pos = _one(group.value, pos, inner_base)
        _check(
            bit.tag == TAG_BIT,
            f"expected a biometric information template 7F60, found {bit.tag:X}",
            inner_base + start,
        )
        bit_base = inner_base + pos - len(bit.value)
        header, hpos = _one(bit.value, 0, bit_base)
        _check(
            header.tag == TAG_BHT,
            f"biometric information template must start with A1, found {header.tag:X}",
            bit_base,
        )
        block, bpos = _one(bit.value, hpos, bit_base)
        _check(
            block.tag != TAG_BDB_ENCIPHERED,
            "enciphered biometric data blocks (7F2E) are not supported",
            bit_base + hpos,
        )
        _check(
            block.tag == TAG_BDB,
            f"expected the biometric data block 5F2E, found {block.tag:X}",
            bit_base + hpos,
        )
        _check(bpos == len(bit.value), "data after the biometric data block", bit_base + bpos)
        templates.append(BiometricTemplate(BiometricHeader.decode_value(header.value, bit_base), block.value))
    _check(
        count.value[0] == len(templates),
        f"biometric group count says {count.value[0]} templates but holds {len(templates)}",
        inner_base,
    )
    _check(len(templates) >= 1, "biometric group holds no template", inner_base)
    return tuple(templates)


def _one(data: bytes, offset: int, base: int) -> tuple[Tlv, int]:
    try:
        return parse_one(data, offset)
    except TlvError as e:
        raise BiometricFormatError(f"malformed biometric template: {e}", base + e.offset) from None


def face_template(record: FaceRecord | bytes) -> BiometricTemplate:
    """The DG2 template for an ISO/IEC 19794-5 record."""
    data = record.encode() if isinstance(record, FaceRecord) else bytes(record)
    header = BiometricHeader(BIOMETRIC_TYPE_FACE, FORMAT_OWNER_SC37, FORMAT_TYPE_FACE_IMAGE)
    return BiometricTemplate(header, data)


def finger_template(record: MinutiaeRecord) -> BiometricTemplate:
    """The DG3 template for a one-view ISO/IEC 19794-2 record (subtype from its finger position)."""
    extended = any(v.extended_data for v in record.views)
    header = BiometricHeader(
        BIOMETRIC_TYPE_FINGER,
        FORMAT_OWNER_SC37,
        FORMAT_TYPE_FINGER_MINUTIAE_EXTENDED if extended else FORMAT_TYPE_FINGER_MINUTIAE,
        subtype=record.views[0].position.cbeff_subtype,
    )
    return BiometricTemplate(header, record.encode())
