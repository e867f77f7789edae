"""The citizen record: what is printed on an e-KTP, and the face, signature and fingerprints on its chip.

One record is a JSON object; batches are JSON Lines (one object per line) or CSV (a header row, then
one record per row) with the same keys::

    nik, name, place_of_birth, date_of_birth, sex, blood_type, address, rt_rw, kelurahan_desa,
    kecamatan, kabupaten_kota, province, religion, marital_status, occupation, citizenship,
    valid_until, place_of_issue, date_of_issue      printed fields (text)
    face, signature                                 JPEG images
    fingerprint_1, fingerprint_2                    ISO/IEC 19794-2:2005 minutiae records
    synthetic                                       optional, true for generated test records

Dates are ISO 8601 (``YYYY-MM-DD``); ``valid_until`` is ``SEUMUR HIDUP`` (citizens) or a date
(foreign residents). A binary field is a path to the file, relative to the folder of the JSON, JSON
Lines or CSV file (absolute paths work too), or its content inline as ``base64:`` followed by the
standard Base64 text. ``synthetic`` is a JSON boolean, or in CSV ``true``/``false`` (empty = false).

Loading checks everything and raises one :class:`~ektp_card.errors.RecordError` listing every
violation (field, rule name, message); the rules are in :mod:`ektp_card.lds.nik` and
:func:`biometric_violations`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import errno
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ektp_card.errors import BiometricFormatError, RecordError, RecordFileError, Violation
from ektp_card.files import (
    LINE_LIMIT,
    RECORD_LIMIT,
    open_regular,
    parse_json,
    read_file,
    read_text,
    write_files,
)
from ektp_card.lds.biometrics import FingerPosition, MinutiaeRecord
from ektp_card.lds.nik import LIFETIME, personal_violations
from ektp_card.log import printable

if TYPE_CHECKING:
    import csv

TEXT_FIELDS = (
    "nik",
    "name",
    "place_of_birth",
    "sex",
    "blood_type",
    "address",
    "rt_rw",
    "kelurahan_desa",
    "kecamatan",
    "kabupaten_kota",
    "province",
    "religion",
    "marital_status",
    "occupation",
    "citizenship",
    "place_of_issue",
)
DATE_FIELDS = ("date_of_birth", "date_of_issue")
BINARY_FIELDS = ("face", "signature", "fingerprint_1", "fingerprint_2")
#: Every key of a record, in the order records are written.
FIELDS = (
    "nik",
    "name",
    "place_of_birth",
    "date_of_birth",
    "sex",
    "blood_type",
    "address",
    "rt_rw",
    "kelurahan_desa",
    "kecamatan",
    "kabupaten_kota",
    "province",
    "religion",
    "marital_status",
    "occupation",
    "citizenship",
    "valid_until",
    "place_of_issue",
    "date_of_issue",
    *BINARY_FIELDS,
    "synthetic",
)
INLINE_PREFIX = "base64:"
#: Largest images this card profile stores (docs/card-profile.md): DG2 and DG7 sizes follow from them.
MAX_FACE_BYTES = 32 * 1024
MAX_SIGNATURE_BYTES = 8 * 1024
#: A template with fewer minutiae is not worth matching against.
MIN_MINUTIAE = 12
#: Refuse to read binary files larger than this (they cannot be valid anyway).
MAX_FILE_BYTES = 1024 * 1024
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class PersonalData:
    """Every field printed on an e-KTP (and stored in DG1). ``valid_until`` is ``None`` for a card
    valid for life ("SEUMUR HIDUP"). ``synthetic`` marks generated test data: it travels in DG1 and
    :meth:`card_lines` prints it first."""

    nik: str
    name: str
    place_of_birth: str
    date_of_birth: dt.date
    sex: str
    blood_type: str
    address: str
    rt_rw: str
    kelurahan_desa: str
    kecamatan: str
    kabupaten_kota: str
    province: str
    religion: str
    marital_status: str
    occupation: str
    citizenship: str
    valid_until: dt.date | None
    place_of_issue: str
    date_of_issue: dt.date
    synthetic: bool = False

    @property
    def validity_text(self) -> str:
        """The validity as printed: ``SEUMUR HIDUP`` or the date (DD-MM-YYYY)."""
        return LIFETIME if self.valid_until is None else _printed_date(self.valid_until)

    def violations(self, *, today: dt.date | None = None) -> list[Violation]:
        return personal_violations(dataclasses.asdict(self), today=today)

    def card_lines(self) -> list[tuple[str, str]]:
        """The card's text, label and value, in the order and wording of the printed card."""
        lines = [("SYNTHETIC", "generated test record, not a real person")] if self.synthetic else []
        lines += [
            ("PROVINSI", self.province),
            ("KABUPATEN/KOTA", self.kabupaten_kota),
            ("NIK", self.nik),
            ("Nama", self.name),
            ("Tempat/Tgl Lahir", f"{self.place_of_birth}, {_printed_date(self.date_of_birth)}"),
            ("Jenis Kelamin", self.sex),
            ("Gol. Darah", self.blood_type),
            ("Alamat", self.address),
            ("RT/RW", self.rt_rw),
            ("Kel/Desa", self.kelurahan_desa),
            ("Kecamatan", self.kecamatan),
            ("Agama" if self.religion != "KEPERCAYAAN TERHADAP TUHAN YME" else "Kepercayaan", self.religion),
            ("Status Perkawinan", self.marital_status),
            ("Pekerjaan", self.occupation),
            ("Kewarganegaraan", self.citizenship),
            ("Berlaku Hingga", self.validity_text),
            ("Diterbitkan", f"{self.place_of_issue}, {_printed_date(self.date_of_issue)}"),
        ]
        return lines


def _printed_date(date: dt.date) -> str:
    return date.strftime("%d-%m-%Y")


@dataclass(frozen=True)
class CitizenRecord:
    """One person's record for personalisation: printed data, face photo (JPEG), signature image
    (JPEG) and two fingerprint minutiae templates (ISO/IEC 19794-2:2005 records)."""

    personal: PersonalData
    face: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    fingerprints: tuple[bytes, bytes] = field(repr=False)

    @property
    def nik(self) -> str:
        return self.personal.nik

    @property
    def synthetic(self) -> bool:
        return self.personal.synthetic

    def fingerprint_records(self) -> tuple[MinutiaeRecord, MinutiaeRecord]:
        """The two templates parsed (:class:`BiometricFormatError` if one is malformed)."""
        return MinutiaeRecord.decode(self.fingerprints[0]), MinutiaeRecord.decode(self.fingerprints[1])

    def violations(self, *, today: dt.date | None = None) -> list[Violation]:
        """Every broken rule of the printed data and the biometrics."""
        return self.personal.violations(today=today) + biometric_violations(
            self.face, self.signature, *self.fingerprints
        )

    def check(self, *, today: dt.date | None = None) -> None:
        """:class:`RecordError` listing every violation, if there is one."""
        violations = self.violations(today=today)
        if violations:
            raise RecordError(violations)

    def to_mapping(self, *, files: Mapping[str, str] | None = None) -> dict[str, object]:
        """The record as a JSON object; binary fields inline (``base64:``) unless ``files`` maps a
        binary field to the path to write instead."""
        p = self.personal
        values: dict[str, object] = {}
        for name in FIELDS:
            if name in BINARY_FIELDS:
                if files and name in files:
                    values[name] = files[name]
                else:
                    values[name] = INLINE_PREFIX + base64.b64encode(self._binary(name)).decode("ascii")
            elif name in DATE_FIELDS:
                values[name] = getattr(p, name).isoformat()
            elif name == "valid_until":
                values[name] = LIFETIME if p.valid_until is None else p.valid_until.isoformat()
            else:
                values[name] = getattr(p, name)
        return values

    def _binary(self, name: str) -> bytes:
        return {
            "face": self.face,
            "signature": self.signature,
            "fingerprint_1": self.fingerprints[0],
            "fingerprint_2": self.fingerprints[1],
        }[name]


def biometric_violations(
    face: bytes, signature: bytes, fingerprint_1: bytes, fingerprint_2: bytes
) -> list[Violation]:
    """The rules for the images and templates: JPEG structure and size, templates that parse, hold one
    finger view of a known finger with at least :data:`MIN_MINUTIAE` minutiae, of two different fingers."""
    from ektp_card.lds.jpeg import jpeg_info  # with the JPEG encoder: for records, not for reading a card

    found: list[Violation] = []
    for name, image, limit in (("face", face, MAX_FACE_BYTES), ("signature", signature, MAX_SIGNATURE_BYTES)):
        if len(image) > limit:
            found.append(Violation(name, f"{name}.size", f"{len(image)} bytes, at most {limit} allowed"))
        try:
            jpeg_info(image)
        except BiometricFormatError as e:
            found.append(Violation(name, f"{name}.jpeg", f"not a usable JPEG image: {e}"))
    positions = []
    for name, data in (("fingerprint_1", fingerprint_1), ("fingerprint_2", fingerprint_2)):
        try:
            record = MinutiaeRecord.decode(data)
        except BiometricFormatError as e:
            found.append(
                Violation(name, f"{name}.format", f"not an ISO/IEC 19794-2:2005 minutiae record: {e}")
            )
            continue
        if len(record.views) != 1:
            found.append(
                Violation(name, f"{name}.views", f"{len(record.views)} finger views, exactly 1 expected")
            )
            continue
        view = record.views[0]
        if view.position == FingerPosition.UNKNOWN:
            found.append(Violation(name, f"{name}.position", "the finger position is not given"))
        else:
            positions.append(view.position)
        if len(view.minutiae) < MIN_MINUTIAE:
            found.append(
                Violation(
                    name, f"{name}.minutiae", f"{len(view.minutiae)} minutiae, at least {MIN_MINUTIAE} needed"
                )
            )
    if len(positions) == 2 and positions[0] == positions[1]:
        found.append(
            Violation(
                "fingerprint_2",
                "fingerprints.distinct",
                f"both templates are of the same finger ({positions[0].name.lower()})",
            )
        )
    return found


# --- loading ------------------------------------------------------------------------------------


def record_from_mapping(
    values: Mapping[str, object],
    base_dir: Path | None = None,
    *,
    today: dt.date | None = None,
    files: bool = True,
) -> CitizenRecord:
    """Build and validate a record from a JSON object (or a CSV row); relative file names are
    resolved against ``base_dir`` (the current directory when ``None``). Without ``files`` no file is
    read: images and templates must be inline (``base64:``)."""
    base = (base_dir if base_dir is not None else Path()) if files else None
    found: list[Violation] = []
    parsed: dict[str, object] = {}
    for key in values:
        if key not in FIELDS:
            found.append(Violation(_shown(str(key)), "record.unknown_field", "not a field of the record"))
    for name in TEXT_FIELDS:
        value = values.get(name)
        if value is None:
            found.append(Violation(name, f"{name}.missing", "missing"))
        elif not isinstance(value, str):
            found.append(Violation(name, f"{name}.type", "must be text"))
        else:
            parsed[name] = value
    for name in DATE_FIELDS:
        date = _date(values.get(name), name, found)
        if date is not None:
            parsed[name] = date
    until = values.get("valid_until")
    if until is None or until == "":
        found.append(Violation("valid_until", "valid_until.missing", "missing"))
    elif until == LIFETIME:
        parsed["valid_until"] = None
    else:
        date = _date(until, "valid_until", found, f"must be {LIFETIME} or a date YYYY-MM-DD")
        if date is not None:
            parsed["valid_until"] = date
    synthetic = _flag(values.get("synthetic"), found)
    binaries: dict[str, bytes] = {}
    for name in BINARY_FIELDS:
        data = _binary(values.get(name), name, base, found)
        if data is not None:
            binaries[name] = data
    found.extend(personal_violations(parsed, today=today))
    if len(binaries) == len(BINARY_FIELDS):
        found.extend(biometric_violations(*(binaries[n] for n in BINARY_FIELDS)))
    if found:
        raise RecordError(found)
    personal = PersonalData(**parsed, synthetic=synthetic)  # type: ignore[arg-type]
    return CitizenRecord(
        personal,
        binaries["face"],
        binaries["signature"],
        (binaries["fingerprint_1"], binaries["fingerprint_2"]),
    )


def _date(
    value: object, name: str, found: list[Violation], shape: str = "must be a date YYYY-MM-DD"
) -> dt.date | None:
    if value is None or value == "":
        found.append(Violation(name, f"{name}.missing", "missing"))
        return None
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        found.append(Violation(name, f"{name}.format", shape))
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        found.append(Violation(name, f"{name}.real", "is not a real calendar date"))
        return None


def _flag(value: object, found: list[Violation]) -> bool:
    if value is None or value is False or value in ("", "false", "0"):
        return False
    if value is True or value in ("true", "1"):
        return True
    found.append(Violation("synthetic", "synthetic.type", "must be true or false"))
    return False


def _binary(value: object, name: str, base: Path | None, found: list[Violation]) -> bytes | None:
    if value is None or value == "":
        found.append(Violation(name, f"{name}.missing", "missing"))
        return None
    if not isinstance(value, str):
        found.append(Violation(name, f"{name}.type", "must be a file name or base64:... text"))
        return None
    if value.startswith(INLINE_PREFIX):
        try:
            return base64.b64decode(value[len(INLINE_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            found.append(Violation(name, f"{name}.base64", "the inline content is not valid Base64"))
            return None
    if base is None:
        found.append(Violation(name, f"{name}.inline", "must be inline (base64:...): no files are read here"))
        return None
    path = base / value
    shown = _shown(str(path), 200)
    try:
        # A bounded read of a regular file only: a device, a pipe or a folder could block or never end.
        return read_file(path, MAX_FILE_BYTES)
    except OSError as e:
        if e.errno == errno.EINVAL:
            # A device, a pipe: reading it could block, or never end.
            found.append(Violation(name, f"{name}.file", f"{shown} is not a regular file"))
            return None
        if e.errno == errno.EFBIG:
            message = f"{shown} has more than {MAX_FILE_BYTES} bytes, more than any valid {name}"
            found.append(Violation(name, f"{name}.size", message))
            return None
        reason = e.strerror or type(e).__name__
        found.append(Violation(name, f"{name}.file", f"cannot read {shown}: {reason}"))
        return None
    except ValueError:
        # A NUL character, or a lone surrogate that no file name can carry.
        found.append(Violation(name, f"{name}.file", f"{shown} is not a usable file name"))
        return None


def _shown(text: str, limit: int = 60) -> str:
    """A name taken from the input as a message may quote it: one printable line, cut short."""
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_record(path: str | Path, *, today: dt.date | None = None) -> CitizenRecord:
    """Read and validate one JSON record; :class:`RecordError` lists every problem."""
    path = Path(path)
    try:
        text = read_text(path, RECORD_LIMIT)
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise RecordFileError([Violation("record", "record.file", f"cannot read {path}: {reason}")]) from None
    return record_from_mapping(_json_object(text, path), path.parent, today=today)


def _json_object(text: str, where: Path | str) -> Mapping[str, object]:
    # json and csv are imported where records are read or written from files: `ektp verify` decodes
    # DG1 with this module and reads no file.
    import json

    try:
        value = parse_json(text)
    except json.JSONDecodeError as e:
        raise RecordError(
            [
                Violation(
                    "record",
                    "record.json",
                    f"{where} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})",
                )
            ]
        ) from None
    except (ValueError, RecursionError):
        # A number with more digits than Python converts, or arrays and objects nested deeper than the
        # parser's stack: JSON, but never a record.
        raise RecordError(
            [Violation("record", "record.json", f"{where} holds a number too long or nesting too deep")]
        ) from None
    if not isinstance(value, dict):
        raise RecordError([Violation("record", "record.json", f"{where} does not hold a JSON object")])
    return value


def write_record(record: CitizenRecord, path: str | Path, *, inline: bool = True) -> None:
    """Write ``record`` as JSON; with ``inline=False`` the images and templates go to files next to it
    (``<stem>-face.jpg``, ``<stem>-signature.jpg``, ``<stem>-fingerprint-1.fmr``, ...). All of them are
    written, readable by the owner only (personal data), or none."""
    path = Path(path)
    files: dict[str, str] = {}
    contents: dict[Path, bytes] = {}
    if not inline:
        suffixes = {
            "face": "-face.jpg",
            "signature": "-signature.jpg",
            "fingerprint_1": "-fingerprint-1.fmr",
            "fingerprint_2": "-fingerprint-2.fmr",
        }
        for name, suffix in suffixes.items():
            target = path.with_name(path.stem + suffix)
            contents[target] = record._binary(name)
            files[name] = target.name
    import json

    text = json.dumps(record.to_mapping(files=files), indent=2, ensure_ascii=False) + "\n"
    write_files({**contents, path: text.encode("utf-8")})


@dataclass(frozen=True)
class BatchRow:
    """One row of a batch file: its line number, and the record or the error that rejected it."""

    line: int
    record: CitizenRecord | None
    error: RecordError | None


def _batch_file(path: str | Path) -> tuple[Path, str]:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise RecordFileError([Violation("record", "record.file", f"{path}: batch files are .jsonl or .csv")])
    return path, suffix


def _unreadable(path: Path, e: OSError | UnicodeDecodeError | csv.Error) -> RecordFileError:
    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    return RecordFileError([Violation("record", "record.file", f"cannot read {path}: {reason}")])


def read_batch(
    path: str | Path, *, today: dt.date | None = None, inline_only: bool = False
) -> Iterator[BatchRow]:
    """The rows of a JSON Lines (``.jsonl``) or CSV (``.csv``) file, each validated on its own so a
    bad row does not stop the others. Blank JSON Lines lines are skipped. The file is read as the rows
    are taken, so a long batch never sits in memory whole. ``inline_only`` reads no file a row names
    (a batch from elsewhere, e.g. uploaded: its images and templates must be inline)."""
    import csv

    path, suffix = _batch_file(path)
    base = None if inline_only else path.parent
    try:
        with _open_batch(path) as fh:
            if suffix == ".jsonl":
                for number, line in enumerate(_lines(fh, path), start=1):
                    if line.strip():
                        yield _row(number, partial(_json_object, line, f"line {number}"), base, today)
            else:
                reader = csv.DictReader(_lines(fh, path), strict=True)
                try:
                    for row in reader:
                        yield _row(reader.line_num, partial(_csv_values, row), base, today)
                except csv.Error as e:
                    raise RecordFileError([Violation(
                        "record", "record.csv", f"{path} line {reader.line_num}: malformed CSV ({e})"
                    )]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise _unreadable(path, e) from None


def count_records(path: str | Path) -> int:
    """How many records :func:`read_batch` will yield (rows, without decoding them), for a progress
    display. :class:`RecordError` when the file cannot be read."""
    import csv

    path, suffix = _batch_file(path)
    try:
        with _open_batch(path) as fh:
            if suffix == ".csv":
                return max(0, sum(1 for _ in csv.reader(_lines(fh, path))) - 1)
            return sum(1 for line in _lines(fh, path) if line.strip())
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise _unreadable(path, e) from None


def _open_batch(path: Path) -> TextIO:
    """The batch file for reading as text: a regular file only (a FIFO or a device never is one)."""
    return os.fdopen(open_regular(path), encoding="utf-8", newline="")


def _lines(fh: TextIO, path: Path) -> Iterator[str]:
    """The lines of ``fh``, none longer than a record can be (a file without line breaks is not read
    into memory whole)."""
    while True:
        line = fh.readline(LINE_LIMIT + 1)
        if not line:
            return
        if len(line) > LINE_LIMIT:
            raise RecordFileError([Violation("record", "record.file",
                                             f"{path}: a line longer than any record can be")])
        yield line


def _csv_values(row: Mapping[str | None, object]) -> Mapping[str, object]:
    if None in row:
        raise RecordError([Violation("record", "record.csv", "the row has more cells than the header")])
    return {str(k): v for k, v in row.items()}


def _row(
    line: int, values: Callable[[], Mapping[str, object]], base: Path | None, today: dt.date | None
) -> BatchRow:
    try:
        return BatchRow(line, record_from_mapping(values(), base, today=today, files=base is not None), None)
    except RecordError as e:
        return BatchRow(line, None, e)
