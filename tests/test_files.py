"""ektp_card.files: what a user names is read as a regular file of a bounded size, JSON from files never
raises a RecursionError, and results are written whole or not at all."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from ektp_card import files


def test_a_regular_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 100)
    assert files.read_file(path, 100) == b"x" * 100
    assert files.read_text(path, 100) == "x" * 100


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file") as caught:
        files.read_file(fifo, 1024)  # would block forever if it opened the FIFO for a plain read
    assert caught.value.errno == errno.EINVAL and caught.value.filename == str(fifo)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_a_device_is_refused_before_a_byte_is_read(device: str) -> None:
    with pytest.raises(OSError, match="not a regular file"):
        files.read_file(device, 1024)


def test_a_folder_and_a_missing_file_are_os_errors(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        files.read_file(tmp_path, 1024)
    with pytest.raises(FileNotFoundError):
        files.read_file(tmp_path / "missing", 1024)


def test_a_file_larger_than_its_kind_is_refused_by_its_size(tmp_path: Path) -> None:
    big = tmp_path / "big.card"
    with big.open("wb") as fh:
        fh.truncate(1 << 40)  # a terabyte, sparse: refused by fstat, never read
    with pytest.raises(OSError, match="larger than 16 MiB") as caught:
        files.read_file(big, files.CARD_IMAGE_LIMIT)
    assert caught.value.errno == errno.EFBIG
    exact = tmp_path / "exact"
    exact.write_bytes(b"y" * 1025)
    with pytest.raises(OSError, match="larger than 1 KiB"):
        files.read_file(exact, 1024)


def test_a_symlink_to_a_device_is_a_device(tmp_path: Path) -> None:
    link = tmp_path / "zero.pem"
    link.symlink_to("/dev/zero")
    with pytest.raises(OSError, match="not a regular file"):
        files.read_file(link, 1024)


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, '{"a": ' + "9" * 100_000 + "}", "{", '{"a": 1} x'],
    ids=["deep", "huge-integer", "truncated", "trailing"],
)
def test_hostile_json_is_a_json_decode_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        files.parse_json(text)


def test_json_that_fits_is_parsed() -> None:
    assert files.parse_json(b'{"a": [1, 2, {"b": null}]}') == {"a": [1, 2, {"b": None}]}


def test_write_atomic_replaces_whole_with_the_mode_asked(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_bytes(b"old")
    files.write_atomic(path, b"new content", mode=0o600)
    assert path.read_bytes() == b"new content"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary file left


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_old_files_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    (tmp_path / "a").write_bytes(b"old a")
    written = []
    real = os.write

    def write(fd: int, data: bytes) -> int:
        if written:  # the second file hits the full disk (or Ctrl-C)
            raise failure
        written.append(fd)
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(type(failure)):
        files.write_files({tmp_path / "a": b"new a", tmp_path / "new" / "b": b"new b"}, folder_mode=0o700)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no temporary file, no folder made
    assert (tmp_path / "a").read_bytes() == b"old a"  # not one of the files was replaced


def test_folders_made_for_the_files_have_the_mode_asked(tmp_path: Path) -> None:
    target = tmp_path / "out" / "deeper" / "x.csv"
    files.write_files({target: b"1,2\n"}, mode=0o600, modes={}, folder_mode=0o700)
    assert target.read_bytes() == b"1,2\n"
    for folder in (tmp_path / "out", tmp_path / "out" / "deeper"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
