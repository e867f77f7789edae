"""Files the user names: read as regular files of a bounded size, written whole or not at all.

Every file this package reads on a user's behalf goes through :func:`read_file` (or
:func:`read_text`): a FIFO, a device such as ``/dev/zero`` or a folder is refused before a byte is read,
so no read hangs or fills the memory, and a file larger than anything of its kind can be is refused by
its size. Problems are :class:`OSError` with the file's name, so a caller handles them as it handles a
missing file.

Every result is written with :func:`write_atomic` (or :func:`write_files` for several that belong
together): a temporary file in the target's folder, then a rename, so a full disk, a crash or Ctrl-C
leaves the old file (or none) and never half of a new one. JSON read from files goes through
:func:`parse_json`, which turns nesting too deep to parse and numbers too long to convert into the
:class:`json.JSONDecodeError` every caller already handles.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

KIB = 1024
MIB = 1024 * KIB

#: Upper bounds by kind of file: far above any genuine file of the kind, far below what hurts.
CARD_IMAGE_LIMIT = 16 * MIB  # a card's memory (1 MiB by default) as Base64 in JSON
KEY_LIMIT = 64 * KIB  # an encrypted PEM private key, a master key file
CERTIFICATE_LIMIT = 4 * MIB  # a PEM or DER certificate or a bundle of them, a CV certificate
CRL_LIMIT = 64 * MIB  # a CRL may list many revoked signers
MASTER_LIST_LIMIT = 64 * MIB  # an ICAO master list of every country's CSCAs
DOCUMENT_LIMIT = 16 * MIB  # a data group, EF.SOD, a signed revocation list
RECORD_LIMIT = 4 * MIB  # one citizen record with its images inline
SMALL_JSON_LIMIT = 1 * MIB  # a print job, the printed fields, a PKI folder's state
TEMPLATE_LIMIT = 1 * MIB  # an ISO/IEC 19794-2 minutiae record
LINE_LIMIT = 4 * MIB  # one line of a batch file (a record with its images inline)

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def _size_text(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit >= MIB and limit % MIB == 0 else f"{limit // KIB} KiB"


def too_large(path: str | os.PathLike[str], limit: int) -> OSError:
    """The error for a file larger than ``limit`` bytes."""
    return OSError(errno.EFBIG, f"larger than {_size_text(limit)}, too large for what it should hold",
                   os.fspath(path))


def open_regular(path: str | os.PathLike[str], limit: int | None = None) -> int:
    """A descriptor open for reading on the regular file ``path`` (not a FIFO, device or folder, and
    when ``limit`` is given not larger than it); :class:`OSError` otherwise. Opening never blocks."""
    name = os.fspath(path)
    fd = os.open(name, _READ_FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "a folder, not a file", name)
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        if limit is not None and os.fstat(fd).st_size > limit:
            raise too_large(name, limit)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The content of the regular file ``path``, at most ``limit`` bytes; :class:`OSError` naming the
    file when it is missing, not a regular file or larger (also when it grows while read)."""
    fd = open_regular(path, limit)
    try:
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, MIB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise too_large(path, limit)
    return data


def read_text(path: str | os.PathLike[str], limit: int) -> str:
    """:func:`read_file` decoded as UTF-8 (:class:`UnicodeDecodeError` when it is not)."""
    return read_file(path, limit).decode("utf-8")


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` for untrusted text: nesting too deep and integers too long to convert are a
    :class:`json.JSONDecodeError` like any other malformed JSON, never a RecursionError."""
    import json  # only the commands that read JSON pay for the module (ektp verify does not)

    source = text if isinstance(text, str) else text.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", source, 0) from None
    except ValueError as e:  # an integer past Python's conversion limit
        raise json.JSONDecodeError(f"unusable value ({e})", source, 0) from None


def _write_temp(path: Path, data: bytes, mode: int) -> str:
    """``data`` in a new temporary file beside ``path`` (created with ``mode``, fsynced); its name."""
    import tempfile  # with shutil, bz2 and lzma behind it: only the commands that write files pay for it

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def _fsync_folder(folder: Path) -> None:
    # Makes the rename durable; not every platform can open a folder.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``): a temporary file in the same folder, then a
    rename. On any failure, also Ctrl-C, the old file is untouched and no temporary file is left."""
    write_files({Path(path): data}, mode=mode)


def write_files(files: Mapping[Path, bytes], *, mode: int = 0o600, modes: Mapping[Path, int] | None = None,
                folder_mode: int | None = None) -> None:
    """Write several files that belong together: all of them or, on a failure, none. Each is written to
    a temporary file first (file mode ``mode``, or its own in ``modes``); the renames follow only when
    every one is on disk. With ``folder_mode``, missing parent folders are created with that mode, and
    removed again when the writing fails."""
    created: list[Path] = []
    staged: list[tuple[str, Path]] = []
    try:
        if folder_mode is not None:
            for parent in sorted({p.parent for p in files}, key=lambda p: len(p.parts)):
                for folder in reversed([parent, *parent.parents]):
                    if not folder.exists():
                        folder.mkdir(mode=folder_mode)
                        created.append(folder)
        for path, data in files.items():
            staged.append((_write_temp(path, data, (modes or {}).get(path, mode)), path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    for parent in {p.parent for p in files}:
        _fsync_folder(parent)


__all__ = [
    "CARD_IMAGE_LIMIT", "CERTIFICATE_LIMIT", "CRL_LIMIT", "DOCUMENT_LIMIT", "KEY_LIMIT", "LINE_LIMIT",
    "MASTER_LIST_LIMIT", "RECORD_LIMIT", "SMALL_JSON_LIMIT", "TEMPLATE_LIMIT", "open_regular",
    "parse_json", "read_file", "read_text", "too_large", "write_atomic", "write_files",
]
