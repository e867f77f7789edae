"""Running one sweep case in this process: the office copy, the environment, the guards against a hang
and an unbounded read, the injected full disk or Ctrl-C, the snapshot of every file, and the one-line
contract of stderr (shared by tests/hostile/test_sweep.py and tests/hostile/test_findings.py)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import resource
import signal
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest

from ektp_card._cli import main

from .office import Office
from .sweep import FACTS, Case, fill

#: Seconds a case may take before it counts as hung (a FIFO read, a wait for a card that never comes).
HANG_SECONDS = float(os.environ.get("EKTP_SWEEP_HANG_SECONDS", "60"))
#: Address space a case may add to the test process before a read counts as unbounded.
MEMORY_HEADROOM = 1536 << 20


class Hung(BaseException):
    """A case ran past :data:`HANG_SECONDS` (a BaseException, so the CLI's handler does not eat it)."""


@dataclass(frozen=True)
class Entry:
    kind: str
    mode: int
    size: int
    mtime: int
    digest: str


def snapshot(root: Path) -> dict[str, Entry]:
    """Every path under ``root`` with its type, mode and (regular files) size, mtime and content hash."""
    found: dict[str, Entry] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                digest = ""
                if st.st_size < 8 << 20:
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[rel] = Entry("file", stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, digest)
            else:
                kind = (
                    "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "special"
                )
                found[rel] = Entry(kind, stat.S_IMODE(st.st_mode), 0, 0, "")
    return found


def changes(before: dict[str, Entry], after: dict[str, Entry], allow: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted(set(before) | set(after)):
        if any(path == a or path.startswith(a) for a in allow):
            continue
        if path not in after:
            out.append(f"removed {path}")
        elif path not in before:
            out.append(f"created {path}")
        elif before[path] != after[path]:
            out.append(f"changed {path}")
    return out


@contextlib.contextmanager
def _guards() -> Iterator[None]:
    """A timer against hangs and an address-space limit against unbounded reads."""

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hung(f"no answer within {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (used + MEMORY_HEADROOM, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _injected(kind: str | None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``enospc``: the first write to a file fails as on a full disk; ``interrupt``: Ctrl-C arrives there."""
    if kind is None:
        yield
        return
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        if fd > 2:
            if kind == "enospc":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise KeyboardInterrupt
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    yield


def _serve_nothing(*args: object, **kwargs: object) -> None:
    raise AssertionError("the sweep never starts a server: a hostile case got past every check")


def prepare(case: Case, ws: Path, office: Office) -> list[str]:
    """The case's argument list with the office's facts filled in and its hostile files made."""
    FACTS.clear()
    FACTS.update(office.facts)
    argv = [fill(a) for a in case.argv]
    for index, make in case.setup:
        argv[index] = fill(make(ws))
    return argv


def run(
    argv: list[str], case: Case, ws: Path, office: Office, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """``ektp ARGV`` in this process, in ``ws``, with the office's environment and the case's changes;
    (exit code, stdout, stderr with any Python warning as a line of its own)."""
    for name in [n for n in os.environ if n.startswith("EKTP_")]:
        monkeypatch.delenv(name)
    for name, value in office.env.items():
        monkeypatch.setenv(name, value)
    for name, value in case.env:
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(ws)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with contextlib.suppress(ImportError):
        import uvicorn

        monkeypatch.setattr(uvicorn.Server, "run", _serve_nothing)
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    code: int | str | None = 0
    with (
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        warnings.simplefilter("always")
        with _guards(), _injected(case.inject, monkeypatch):
            try:
                main(argv)
            except SystemExit as e:
                code = e.code
    err = _text(stderr) + "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
    return (code if isinstance(code, int) else 1), _text(stdout), err


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    raw = stream.buffer
    assert isinstance(raw, io.BytesIO)
    return raw.getvalue().decode("utf-8", "backslashreplace")


#: Exit codes that report a result (a verdict, a partial batch, audit findings): stdout says it all.
RESULTS = {9, 10, 11, 12, 13, 14, 20}


def stderr_problem(err: str, code: int) -> str | None:
    """Why ``err`` breaks the one-line contract, or None."""
    if "Traceback" in err:
        return "a traceback"
    lines = err.splitlines()
    if code == 0 or (code in RESULTS and not lines):
        return None  # a result the command reports on stdout (a verdict, a partial batch)
    if lines and lines[0].startswith("Usage:") and lines[-1].startswith("Error: ") and len(lines) <= 4:
        return None  # click's own usage error
    if len(lines) != 1:
        return f"{len(lines)} lines"
    if code == 130:
        return None if lines[0].startswith("Interrupted") else "not an interruption line"
    return None if lines[0].startswith("Error: ") else "not an Error: line"
