"""The citizen record: JSON, JSON Lines and CSV loading, binary fields by path or inline, and every
problem of a record reported at once."""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import json
import random
from pathlib import Path

import pytest

from ektp_card.errors import RecordError
from ektp_card.lds.biometrics import FingerPosition, FingerView, Minutia, MinutiaeRecord, MinutiaType
from ektp_card.lds.record import (
    FIELDS,
    MAX_FACE_BYTES,
    MAX_FILE_BYTES,
    CitizenRecord,
    PersonalData,
    biometric_violations,
    load_record,
    read_batch,
    record_from_mapping,
    write_record,
)
from ektp_card.lds.synthetic import face_photo, signature_image

TODAY = dt.date(2025, 6, 1)
PERSONAL = PersonalData(
    nik="3273055708900001",
    name="SITI RAHAYU",
    place_of_birth="BANDUNG",
    date_of_birth=dt.date(1990, 8, 17),
    sex="PEREMPUAN",
    blood_type="A+",
    address="JL. MERDEKA NO. 10",
    rt_rw="003/005",
    kelurahan_desa="SUKAJADI",
    kecamatan="SUKAMAJU",
    kabupaten_kota="KOTA BANDUNG",
    province="JAWA BARAT",
    religion="ISLAM",
    marital_status="KAWIN",
    occupation="GURU",
    citizenship="WNI",
    valid_until=None,
    place_of_issue="BANDUNG",
    date_of_issue=dt.date(2015, 3, 2),
)


def template(position: FingerPosition, count: int = 14) -> bytes:
    minutiae = tuple(
        Minutia(MinutiaType.RIDGE_ENDING, 10 + 12 * i, 20 + 9 * i, i * 7, 60) for i in range(count)
    )
    return MinutiaeRecord(256, 360, (FingerView(position, minutiae),)).encode()


FACE = face_photo(random.Random(1), (24, 32))
SIGNATURE = signature_image(random.Random(2), (40, 16))
FINGERS = (template(FingerPosition.RIGHT_INDEX), template(FingerPosition.LEFT_INDEX))
RECORD = CitizenRecord(PERSONAL, FACE, SIGNATURE, FINGERS)


def inline(data: bytes) -> str:
    return "base64:" + base64.b64encode(data).decode()


def mapping(**changes: object) -> dict[str, object]:
    values = RECORD.to_mapping()
    values.update(changes)
    return values


def rules_of(values: dict[str, object], base: Path | None = None) -> list[str]:
    with pytest.raises(RecordError) as caught:
        record_from_mapping(values, base, today=TODAY)
    return list(caught.value.rules)


def test_record_is_valid() -> None:
    assert RECORD.violations(today=TODAY) == []
    RECORD.check(today=TODAY)
    assert [r.views[0].position for r in RECORD.fingerprint_records()] == [2, 7]
    assert RECORD.nik == PERSONAL.nik and not RECORD.synthetic


def test_json_with_inline_binaries_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "siti.json"
    write_record(RECORD, path)
    written = json.loads(path.read_text())
    assert list(written) == list(FIELDS)
    assert written["valid_until"] == "SEUMUR HIDUP" and written["date_of_birth"] == "1990-08-17"
    assert written["face"] == inline(FACE)
    assert load_record(path, today=TODAY) == RECORD


def test_json_with_files_next_to_it(tmp_path: Path) -> None:
    path = tmp_path / "people" / "siti.json"
    path.parent.mkdir()
    write_record(RECORD, path, inline=False)
    written = json.loads(path.read_text())
    assert written["face"] == "siti-face.jpg" and written["fingerprint_2"] == "siti-fingerprint-2.fmr"
    assert (path.parent / "siti-signature.jpg").read_bytes() == SIGNATURE
    assert load_record(path, today=TODAY) == RECORD
    # Absolute paths work too; relative ones are taken from the record's folder, not the working one.
    written["face"] = str(path.parent / "siti-face.jpg")
    assert record_from_mapping(written, path.parent, today=TODAY) == RECORD
    assert rules_of(written, tmp_path) == ["signature.file", "fingerprint_1.file", "fingerprint_2.file"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    values = mapping(
        nickname="BUDI",
        name=42,
        date_of_birth="17-08-1990",
        date_of_issue="2015-02-30",
        valid_until="FOREVER",
        face="base64:not*base64",
        signature="missing.jpg",
        fingerprint_1=inline(b"FMR\0 20\0garbage"),
        synthetic="yes",
    )
    del values["occupation"]
    found = rules_of(values, tmp_path)
    assert found == [
        "record.unknown_field",
        "name.type",
        "occupation.missing",
        "date_of_birth.format",
        "date_of_issue.real",
        "valid_until.format",
        "synthetic.type",
        "face.base64",
        "signature.file",
    ]
    # The biometric rules run once every binary field could be read.
    values = mapping(fingerprint_1=inline(b"FMR\0 20\0garbage"), face=inline(b"GIF89a"))
    assert rules_of(values) == ["face.jpeg", "fingerprint_1.format"]


def test_message_is_one_line_and_names_fields() -> None:
    with pytest.raises(RecordError) as caught:
        record_from_mapping(mapping(sex="MALE", nik="3273055708900000"), today=TODAY)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("invalid record (2 problems): nik: the serial number")
    assert "sex: must be one of: LAKI-LAKI, PEREMPUAN [sex.allowed]" in text
    assert [v.field for v in caught.value.violations] == ["nik", "sex"]


def oversized_jpeg() -> bytes:
    filler = b"\x00" * 65000
    segment = b"\xff\xe1" + (len(filler) + 2).to_bytes(2, "big") + filler
    return FACE[:2] + segment + FACE[2:]


@pytest.mark.parametrize(
    ("face", "signature", "fingers", "expected"),
    [
        (oversized_jpeg(), SIGNATURE, FINGERS, ["face.size"]),
        (FACE, FACE[:-2], FINGERS, ["signature.jpeg"]),
        (FACE, oversized_jpeg()[:9000] + b"\xff\xd9", FINGERS, ["signature.size", "signature.jpeg"]),
        (FACE, SIGNATURE, (b"", FINGERS[1]), ["fingerprint_1.format"]),
        (FACE, SIGNATURE, (FINGERS[0], template(FingerPosition.UNKNOWN)), ["fingerprint_2.position"]),
        (FACE, SIGNATURE, (template(FingerPosition.RIGHT_INDEX, 11), FINGERS[1]), ["fingerprint_1.minutiae"]),
        (FACE, SIGNATURE, (FINGERS[0], FINGERS[0]), ["fingerprints.distinct"]),
    ],
)
def test_biometric_rules(
    face: bytes, signature: bytes, fingers: tuple[bytes, bytes], expected: list[str]
) -> None:
    assert [v.rule for v in biometric_violations(face, signature, *fingers)] == expected


def test_two_views_are_refused() -> None:
    view = MinutiaeRecord.decode(FINGERS[0]).views[0]
    two = MinutiaeRecord(256, 360, (view, dataclasses.replace(view, view_number=1))).encode()
    assert [v.rule for v in biometric_violations(FACE, SIGNATURE, two, FINGERS[1])] == ["fingerprint_1.views"]


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "huge.jpg").write_bytes(b"\0" * (MAX_FILE_BYTES + 1))
    (tmp_path / "folder.jpg").mkdir()
    assert rules_of(mapping(face="huge.jpg", signature="folder.jpg"), tmp_path) == [
        "face.size",
        "signature.file",
    ]
    assert MAX_FACE_BYTES < MAX_FILE_BYTES


@pytest.mark.parametrize(
    ("value", "synthetic"), [(True, True), ("true", True), ("1", True), (False, False), ("", False)]
)
def test_synthetic_flag(value: object, synthetic: bool) -> None:
    assert record_from_mapping(mapping(synthetic=value), today=TODAY).synthetic is synthetic


def test_foreign_resident_dates(tmp_path: Path) -> None:
    record = record_from_mapping(mapping(citizenship="WNA", valid_until="2029-12-31"), today=TODAY)
    assert record.personal.valid_until == dt.date(2029, 12, 31)
    assert record.personal.validity_text == "31-12-2029"
    assert rules_of(mapping(valid_until="")) == ["valid_until.missing"]


@pytest.mark.parametrize(
    ("content", "rule"),
    [("{not json", "record.json"), ("[1, 2]", "record.json"), (b"\xff\xfe", "record.file")],
)
def test_unreadable_record_files(tmp_path: Path, content: str | bytes, rule: str) -> None:
    path = tmp_path / "r.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(RecordError) as caught:
        load_record(path)
    assert caught.value.rules == (rule,)
    with pytest.raises(RecordError, match="cannot read"):
        load_record(tmp_path / "absent.json")


def test_json_lines_batch(tmp_path: Path) -> None:
    good = json.dumps(RECORD.to_mapping())
    bad = json.dumps(mapping(sex="?"))
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join([good, "", bad, "{oops", good]) + "\n")
    rows = list(read_batch(path, today=TODAY))
    assert [r.line for r in rows] == [1, 3, 4, 5]
    assert rows[0].record == RECORD and rows[0].error is None
    assert rows[1].record is None and rows[1].error is not None and rows[1].error.rules == ("sex.allowed",)
    assert rows[2].error is not None and rows[2].error.rules == ("record.json",)
    assert "line 4" in str(rows[2].error)
    assert rows[3].record == RECORD


def test_csv_batch(tmp_path: Path) -> None:
    write_record(RECORD, tmp_path / "siti.json", inline=False)
    row = json.loads((tmp_path / "siti.json").read_text())
    row["synthetic"] = ""
    path = tmp_path / "batch.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(FIELDS))
        writer.writeheader()
        writer.writerow(row)
        writer.writerow(row | {"nik": "12", "face": inline(FACE)})
        f.write(",".join(str(row[k]) for k in FIELDS) + ",extra\n")
    rows = list(read_batch(path, today=TODAY))
    assert [r.line for r in rows] == [2, 3, 4]
    assert rows[0].record == RECORD
    assert rows[1].error is not None and rows[1].error.rules == ("nik.digits",)
    assert rows[2].error is not None and rows[2].error.rules == ("record.csv",)


def test_csv_unknown_column_and_missing_cells(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    path.write_text("nik,colour\n3273055708900001,red\n")
    (row,) = read_batch(path, today=TODAY)
    assert row.error is not None
    assert row.error.rules[0] == "record.unknown_field"
    assert "name.missing" in row.error.rules and "face.missing" in row.error.rules


def test_batch_needs_a_known_suffix(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r"\.jsonl or \.csv"):
        list(read_batch(tmp_path / "batch.txt"))


def test_card_lines() -> None:
    lines = dict(PERSONAL.card_lines())
    assert lines["Tempat/Tgl Lahir"] == "BANDUNG, 17-08-1990"
    assert lines["Berlaku Hingga"] == "SEUMUR HIDUP"
    assert "SYNTHETIC" not in lines
    believer = dataclasses.replace(PERSONAL, religion="KEPERCAYAAN TERHADAP TUHAN YME", synthetic=True)
    assert believer.card_lines()[0][0] == "SYNTHETIC"
    assert dict(believer.card_lines())["Kepercayaan"] == "KEPERCAYAAN TERHADAP TUHAN YME"


def test_a_batch_from_elsewhere_reads_no_file(tmp_path: Path) -> None:
    from ektp_card.lds.record import read_batch
    from ektp_card.lds.synthetic import synthetic_record

    record = synthetic_record(3)
    (tmp_path / "face.jpg").write_bytes(record.face)
    named = record.to_mapping(files={"face": "face.jpg"})
    inline = record.to_mapping()
    batch = tmp_path / "batch.jsonl"
    batch.write_text(json.dumps(named) + "\n" + json.dumps(inline) + "\n", encoding="utf-8")
    rows = list(read_batch(batch, inline_only=True))
    assert rows[0].record is None and rows[0].error is not None and rows[0].error.rules == ("face.inline",)
    assert rows[1].record == record
    assert [r.record for r in read_batch(batch)] == [record, record]
