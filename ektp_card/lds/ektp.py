"""The e-KTP card profile of this project, and the encoders and decoders of its data groups.

docs/card-profile.md is the prose version of this module: the application identifier, every file with
its identifiers and access conditions, the tag layout of each data group, the algorithms and the life
cycle. The constants here are what the personalisation and verification code use.

File identifiers, short EF identifiers and data group tags follow ICAO Doc 9303-10 (section 4, the
LDS1 eMRTD application: EF.COM 011E/1E, DGn 01nn/n, EF.SOD 011D/1D; EF.CardAccess 011C/1C, EF.ATR/INFO
2F01/01 and EF.DIR 2F00/1E under the MF). DG1 does not hold an MRZ: its content is our own template of
the printed fields (:data:`DG1_LAYOUT`). DG3 holds ISO/IEC 19794-2 minutiae records where ICAO puts
ISO/IEC 19794-4 finger images.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ektp_card.apdu.tlv import Tlv, parse_list, parse_one
from ektp_card.errors import BiometricFormatError, LdsFormatError, TlvError
from ektp_card.lds import conditions
from ektp_card.lds.biometrics import (
    BIOMETRIC_TYPE_FACE,
    BIOMETRIC_TYPE_FINGER,
    FORMAT_OWNER_SC37,
    FORMAT_TYPE_FACE_IMAGE,
    FORMAT_TYPE_FINGER_MINUTIAE,
    FORMAT_TYPE_FINGER_MINUTIAE_EXTENDED,
    FaceImage,
    FaceRecord,
    MinutiaeRecord,
    decode_biometric_group,
    encode_biometric_group,
    face_template,
    finger_template,
)
from ektp_card.lds.conditions import AccessCondition
from ektp_card.lds.nik import LIFETIME
from ektp_card.lds.profile import Application, FileRef
from ektp_card.lds.record import MAX_FACE_BYTES, MAX_SIGNATURE_BYTES, CitizenRecord, PersonalData

#: The application of this profile: "D" + ISO 3166-1 numeric 360 (Indonesia) as a national RID
#: (ISO/IEC 7816-5), then "EKTP" and the profile version 01. It identifies this project's profile; it
#: is not a registered or official e-KTP identifier.
EKTP_AID = bytes.fromhex("D360000000454B545001")
EKTP_DF_FID = 0xDF01
EKTP_LABEL = "e-KTP"
PROFILE_VERSION = 1
#: LDS and Unicode versions written to EF.COM and EF.SOD (ICAO Doc 9303-10 section 4.6).
LDS_VERSION = "0108"
UNICODE_VERSION = "040000"

# The read conditions of the profile's files once the card is operational.
ALWAYS = AccessCondition.ALWAYS
AFTER_PACE = AccessCondition.require(conditions.PACE)
AFTER_PACE_TA = AccessCondition.require(conditions.PACE, conditions.TA)
#: Writes and file management: the personalisation key's mutual authentication, before the lock.
PERSO = AccessCondition.require(conditions.PERSO)

#: Object identifiers the profile uses (BSI TR-03110-3 Appendix A, ICAO Doc 9303-11 section 9).
OID_PACE_ECDH_GM_AES_128 = "0.4.0.127.0.7.2.2.4.2.2"
OID_CA_ECDH_AES_128 = "0.4.0.127.0.7.2.2.3.2.2"
OID_PK_ECDH = "0.4.0.127.0.7.2.2.1.2"
OID_TA = "0.4.0.127.0.7.2.2.2"
OID_TA_ECDSA_SHA_256 = "0.4.0.127.0.7.2.2.2.2.3"
OID_AA = "2.23.136.1.1.5"
OID_ECDSA_PLAIN_SHA256 = "0.4.0.127.0.7.1.1.4.1.3"
#: brainpoolP256r1, standardized domain parameter ID 13 (ICAO Doc 9303-11 section 9.5.1).
PACE_PARAMETER_ID = 13
CAN_LENGTH = 6


@dataclass(frozen=True)
class FileSpec:
    """One elementary file of the profile."""

    name: str
    fid: int
    sfi: int
    #: Under the MF (else in the e-KTP application).
    in_mf: bool
    #: Who may read it once the card is operational; writes need PERSO before locking, never after.
    read: AccessCondition
    #: Tag of the file's outer data object (``None``: EF.CardAccess is a DER SET, EF.ATR/INFO and
    #: EF.CVCA are concatenated data objects).
    tag: int | None
    #: Most bytes the content can take in this profile.
    max_size: int
    #: Data group number (hashed in EF.SOD), ``None`` for the other files.
    data_group: int | None = None


TAG_COM, TAG_DG1, TAG_DG2, TAG_DG3, TAG_DG7, TAG_DG14, TAG_DG15, TAG_SOD = (
    0x60,
    0x61,
    0x75,
    0x63,
    0x67,
    0x6E,
    0x6F,
    0x77,
)
DATA_GROUP_TAGS = {1: TAG_DG1, 2: TAG_DG2, 3: TAG_DG3, 7: TAG_DG7, 14: TAG_DG14, 15: TAG_DG15}
DG1_MAX, DG2_MAX, DG3_MAX = 1024, MAX_FACE_BYTES + 256, 4096
DG7_MAX, DG14_MAX, DG15_MAX, SOD_MAX = MAX_SIGNATURE_BYTES + 64, 2048, 1024, 6144
#: EF.CardSecurity: a PACE-CAM card's signed SecurityInfos with the document signer's certificate.
CARD_SECURITY_MAX = 4096

FILES: tuple[FileSpec, ...] = (
    FileSpec("EF.CardAccess", 0x011C, 0x1C, True, ALWAYS, None, 512),
    FileSpec("EF.ATR/INFO", 0x2F01, 0x01, True, ALWAYS, None, 128),
    FileSpec("EF.DIR", 0x2F00, 0x1E, True, ALWAYS, 0x61, 64),
    # Only on a card with PACE-CAM (ICAO Doc 9303-10 section 3.11), made during personalisation.
    FileSpec("EF.CardSecurity", 0x011D, 0x1D, True, AFTER_PACE, None, CARD_SECURITY_MAX),
    FileSpec("EF.COM", 0x011E, 0x1E, False, AFTER_PACE, TAG_COM, 64),
    FileSpec("EF.CVCA", 0x011C, 0x1C, False, AFTER_PACE, None, 36),
    FileSpec("DG1", 0x0101, 0x01, False, AFTER_PACE, TAG_DG1, DG1_MAX, 1),
    FileSpec("DG2", 0x0102, 0x02, False, AFTER_PACE, TAG_DG2, DG2_MAX, 2),
    FileSpec("DG3", 0x0103, 0x03, False, AFTER_PACE_TA, TAG_DG3, DG3_MAX, 3),
    FileSpec("DG7", 0x0107, 0x07, False, AFTER_PACE, TAG_DG7, DG7_MAX, 7),
    FileSpec("DG14", 0x010E, 0x0E, False, AFTER_PACE, TAG_DG14, DG14_MAX, 14),
    FileSpec("DG15", 0x010F, 0x0F, False, AFTER_PACE, TAG_DG15, DG15_MAX, 15),
    FileSpec("EF.SOD", 0x011D, 0x1D, False, AFTER_PACE, TAG_SOD, SOD_MAX),
)


#: The e-KTP application as a terminal reads it (:class:`~ektp_card.session.document.EktpSession`).
EKTP_APPLICATION = Application(
    EKTP_LABEL,
    EKTP_AID,
    tuple(FileRef(spec.name, spec.sfi, spec.fid) for spec in FILES if not spec.in_mf),
    ("DG1",),
    lds=True,
)


def file_spec(name: str) -> FileSpec:
    """The file called ``name`` (``DG1``, ``EF.SOD``...); :class:`KeyError` if the profile has none."""
    for spec in FILES:
        if spec.name == name:
            return spec
    raise KeyError(name)


# --- DG1: the printed fields ---------------------------------------------------------------------

#: DG1 (tag 61) holds one context-specific primitive data object per printed field, in this order.
#: Text is UTF-8; dates are 8 ASCII digits YYYYMMDD; ``valid_until`` is "SEUMUR HIDUP" or a date;
#: 80 is the layout version (one byte, 01); 94 is present, with value 01, only in synthetic records.
DG1_LAYOUT: tuple[tuple[int, str], ...] = (
    (0x80, "layout_version"),
    (0x81, "nik"),
    (0x82, "name"),
    (0x83, "place_of_birth"),
    (0x84, "date_of_birth"),
    (0x85, "sex"),
    (0x86, "blood_type"),
    (0x87, "address"),
    (0x88, "rt_rw"),
    (0x89, "kelurahan_desa"),
    (0x8A, "kecamatan"),
    (0x8B, "kabupaten_kota"),
    (0x8C, "province"),
    (0x8D, "religion"),
    (0x8E, "marital_status"),
    (0x8F, "occupation"),
    (0x90, "citizenship"),
    (0x91, "valid_until"),
    (0x92, "place_of_issue"),
    (0x93, "date_of_issue"),
    (0x94, "synthetic"),
)
DG1_LAYOUT_VERSION = 1
_DG1_TAG_OF = {name: tag for tag, name in DG1_LAYOUT}
_DG1_DATES = ("date_of_birth", "date_of_issue")


def _date_bytes(date: dt.date) -> bytes:
    return f"{date.year:04d}{date.month:02d}{date.day:02d}".encode("ascii")


def encode_dg1(data: PersonalData) -> bytes:
    """DG1 for the printed fields (encodes any values, valid or not: validation is the record's job)."""
    objects = [Tlv(0x80, bytes((DG1_LAYOUT_VERSION,)))]
    for tag, name in DG1_LAYOUT[1:-1]:
        value = getattr(data, name)
        if name in _DG1_DATES:
            raw = _date_bytes(value)
        elif name == "valid_until":
            raw = LIFETIME.encode("ascii") if value is None else _date_bytes(value)
        else:
            raw = str(value).encode("utf-8")
        objects.append(Tlv(tag, raw))
    if data.synthetic:
        objects.append(Tlv(_DG1_TAG_OF["synthetic"], b"\x01"))
    return Tlv.of(TAG_DG1, *objects).encode()


def decode_dg1(data: bytes) -> PersonalData:
    """The printed fields from DG1. Strict about the layout (:class:`LdsFormatError` for a wrong tag,
    a missing, repeated, unknown or misplaced data object, bad UTF-8 or a date that does not exist);
    the values are not validated here: :meth:`PersonalData.violations` does that."""
    objects = _children(data, TAG_DG1, "DG1")
    expected = [tag for tag, _ in DG1_LAYOUT]
    tags = [o.tag for o in objects]
    if tags not in (expected[:-1], expected):
        unknown = sorted(set(tags) - set(expected))
        missing = [f"{t:02X}" for t in expected[:-1] if t not in tags]
        if unknown:
            raise LdsFormatError(f"DG1 holds unknown data objects {' '.join(f'{t:X}' for t in unknown)}")
        if missing:
            raise LdsFormatError(f"DG1 lacks data objects {' '.join(missing)}")
        raise LdsFormatError("DG1 data objects are repeated or out of order")
    values = {o.tag: o.value for o in objects}
    if values[0x80] != bytes((DG1_LAYOUT_VERSION,)):
        raise LdsFormatError(f"DG1 layout version {values[0x80].hex()} is not supported")
    fields: dict[str, object] = {}
    for tag, name in DG1_LAYOUT[1:-1]:
        raw = values[tag]
        if name in _DG1_DATES:
            fields[name] = _parse_date(raw, name)
        elif name == "valid_until":
            fields[name] = None if raw == LIFETIME.encode("ascii") else _parse_date(raw, name)
        else:
            try:
                fields[name] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise LdsFormatError(f"DG1 {name} is not UTF-8 text") from None
    synthetic = values.get(_DG1_TAG_OF["synthetic"])
    if synthetic not in (None, b"\x01"):
        raise LdsFormatError("DG1 synthetic marker must be the single byte 01")
    return PersonalData(**fields, synthetic=synthetic is not None)  # type: ignore[arg-type]


def _parse_date(raw: bytes, name: str) -> dt.date:
    if len(raw) != 8 or not raw.isdigit():
        raise LdsFormatError(f"DG1 {name} is not a date YYYYMMDD")
    try:
        return dt.date(int(raw[0:4]), int(raw[4:6]), int(raw[6:8]))
    except ValueError:
        raise LdsFormatError(f"DG1 {name} is not a real date") from None


def _children(data: bytes, tag: int, name: str) -> list[Tlv]:
    try:
        outer = Tlv.decode(bytes(data))
        if outer.tag != tag:
            raise LdsFormatError(f"{name} starts with tag {outer.tag:X}, not {tag:X}")
        return parse_list(outer.value)
    except TlvError as e:
        raise LdsFormatError(f"malformed {name}: {e}") from None


# --- DG2: face, DG3: fingers, DG7: signature ------------------------------------------------------


def face_image_from_jpeg(jpeg: bytes) -> FaceImage:
    """An ISO/IEC 19794-5 image for a JPEG photo: full frontal, size and colour space from the JPEG."""
    from ektp_card.lds.jpeg import jpeg_info  # issuing only: reading DG2 parses no JPEG

    info = jpeg_info(jpeg)
    colour_space = 3 if info.components == 1 else 1  # 8-bit greyscale / 24-bit RGB
    return FaceImage(bytes(jpeg), info.width, info.height, colour_space=colour_space)


def encode_dg2(face: bytes | FaceImage | FaceRecord) -> bytes:
    """DG2 (tag 75) with one biometric template: a JPEG photo, an image or a whole 19794-5 record."""
    if isinstance(face, bytes | bytearray):
        face = face_image_from_jpeg(bytes(face))
    record = face if isinstance(face, FaceRecord) else FaceRecord((face,))
    return encode_biometric_group(TAG_DG2, [face_template(record)])


def decode_dg2(data: bytes) -> tuple[FaceImage, ...]:
    """Every facial image in DG2 (each template must be an ISO/IEC 19794-5 face record)."""
    images: list[FaceImage] = []
    for template in decode_biometric_group(TAG_DG2, data):
        h = template.header
        if (h.format_owner, h.format_type) != (FORMAT_OWNER_SC37, FORMAT_TYPE_FACE_IMAGE):
            raise BiometricFormatError(
                f"DG2 template has format {h.format_owner:04X}/{h.format_type:04X}, "
                "not an ISO/IEC 19794-5 face"
            )
        if h.biometric_type != BIOMETRIC_TYPE_FACE:
            raise BiometricFormatError(f"DG2 template has biometric type {h.biometric_type:X}, not face (02)")
        images.extend(FaceRecord.decode(template.data).images)
    return tuple(images)


def encode_dg3(templates: Sequence[MinutiaeRecord | bytes]) -> bytes:
    """DG3 (tag 63) with one template per minutiae record; records given as bytes are stored as given."""
    # Decoding and re-encoding gives the same bytes (the codec is exact), so a record given as bytes
    # is stored unchanged.
    records = [MinutiaeRecord.decode(t) if isinstance(t, bytes | bytearray) else t for t in templates]
    return encode_biometric_group(TAG_DG3, [finger_template(r) for r in records])


def decode_dg3(data: bytes) -> tuple[MinutiaeRecord, ...]:
    """The minutiae records of DG3. A DG3 of finger images (ICAO passports: format type 0007) is
    refused with a :class:`BiometricFormatError` saying so."""
    records = []
    for template in decode_biometric_group(TAG_DG3, data):
        h = template.header
        minutiae = (FORMAT_TYPE_FINGER_MINUTIAE, FORMAT_TYPE_FINGER_MINUTIAE_EXTENDED)
        if h.format_owner != FORMAT_OWNER_SC37 or h.format_type not in minutiae:
            raise BiometricFormatError(
                f"DG3 template has format {h.format_owner:04X}/{h.format_type:04X}, "
                "not an ISO/IEC 19794-2 minutiae record"
            )
        if h.biometric_type != BIOMETRIC_TYPE_FINGER:
            raise BiometricFormatError(
                f"DG3 template has biometric type {h.biometric_type:X}, not finger (08)"
            )
        records.append(MinutiaeRecord.decode(template.data))
    return tuple(records)


TAG_DG7_COUNT = 0x02
TAG_DISPLAYED_SIGNATURE = 0x5F43


def encode_dg7(image: bytes) -> bytes:
    """DG7 (tag 67): the count (02) and one displayed signature (5F43, ICAO Doc 9303-10 DG7)."""
    return Tlv.of(TAG_DG7, Tlv(TAG_DG7_COUNT, b"\x01"), Tlv(TAG_DISPLAYED_SIGNATURE, bytes(image))).encode()


def decode_dg7(data: bytes) -> tuple[bytes, ...]:
    """The displayed signature images of DG7; the count must match them."""
    objects = _children(data, TAG_DG7, "DG7")
    if not objects or objects[0].tag != TAG_DG7_COUNT or len(objects[0].value) != 1:
        raise LdsFormatError("DG7 must start with a one-byte count (02)")
    images = tuple(o.value for o in objects[1:] if o.tag == TAG_DISPLAYED_SIGNATURE)
    if len(images) != len(objects) - 1:
        raise LdsFormatError("DG7 holds data objects other than displayed signatures (5F43)")
    if not images or objects[0].value[0] != len(images):
        raise LdsFormatError(f"DG7 count says {objects[0].value[0]} images but holds {len(images)}")
    return images


# --- EF.COM and EF.DIR ---------------------------------------------------------------------------

TAG_LDS_VERSION, TAG_UNICODE_VERSION, TAG_TAG_LIST = 0x5F01, 0x5F36, 0x5C


@dataclass(frozen=True)
class Com:
    """EF.COM (ICAO Doc 9303-10 section 4.6.1): LDS and Unicode versions and the data group tags."""

    tags: tuple[int, ...]
    lds_version: str = LDS_VERSION
    unicode_version: str = UNICODE_VERSION

    def encode(self) -> bytes:
        return Tlv.of(
            TAG_COM,
            Tlv(TAG_LDS_VERSION, self.lds_version.encode("ascii")),
            Tlv(TAG_UNICODE_VERSION, self.unicode_version.encode("ascii")),
            Tlv(TAG_TAG_LIST, bytes(self.tags)),
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> Com:
        objects = _children(data, TAG_COM, "EF.COM")
        if [o.tag for o in objects] != [TAG_LDS_VERSION, TAG_UNICODE_VERSION, TAG_TAG_LIST]:
            raise LdsFormatError("EF.COM must hold 5F01, 5F36 and 5C in that order")
        try:
            lds, uni = objects[0].value.decode("ascii"), objects[1].value.decode("ascii")
        except UnicodeDecodeError:
            raise LdsFormatError("EF.COM versions are not ASCII digits") from None
        if len(lds) != 4 or len(uni) != 6 or not (lds + uni).isdigit():
            raise LdsFormatError("EF.COM versions must be 4 and 6 digits")
        return cls(tuple(objects[2].value), lds, uni)


def encode_ef_dir() -> bytes:
    """EF.DIR: one application template (61) with the AID (4F) and the application label (50), the
    data objects ISO/IEC 7816-4 defines for application identification."""
    return Tlv.of(0x61, Tlv(0x4F, EKTP_AID), Tlv(0x50, EKTP_LABEL.encode("ascii"))).encode()


# --- the data groups of a record -----------------------------------------------------------------


def record_data_groups(record: CitizenRecord) -> dict[int, bytes]:
    """DG1, DG2, DG3 and DG7 of ``record`` (DG14 and DG15 come from keys made on the card)."""
    return {
        1: encode_dg1(record.personal),
        2: encode_dg2(record.face),
        3: encode_dg3(list(record.fingerprints)),
        7: encode_dg7(record.signature),
    }


def com_for(data_groups: Mapping[int, bytes]) -> Com:
    """EF.COM listing the tags of ``data_groups`` in data group order."""
    return Com(tuple(DATA_GROUP_TAGS[n] for n in sorted(data_groups)))


def data_group_number(data: bytes) -> int:
    """Which data group of this profile ``data`` is, by its outer tag."""
    try:
        tlv, _ = parse_one(bytes(data))
    except TlvError as e:
        raise LdsFormatError(f"not a data group: {e}") from None
    for number, tag in DATA_GROUP_TAGS.items():
        if tag == tlv.tag:
            return number
    raise LdsFormatError(f"tag {tlv.tag:X} is not a data group of the e-KTP profile")
