"""Start a pcscd of our own when none is running, for the vpcd virtual readers.

pcsc-lite serves one socket per machine (``/run/pcscd/pcscd.comm``), so a pcscd that already answers
is used as it is; otherwise ``pcscd --foreground`` runs as a child process (no systemd, no
``--auto-exit``) until :meth:`PcscdProcess.stop`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from ektp_card.errors import PcscUnavailableError, TransportError
from ektp_card.virtual.vpcd import VPCD_READER

#: Debian installs pcscd in /usr/sbin, which is not on every user's PATH.
_SBIN_CANDIDATES = ("/usr/sbin/pcscd", "/usr/local/sbin/pcscd")


def pcscd_binary() -> str | None:
    """Path of the pcscd program, or None when it is not installed."""
    found = shutil.which("pcscd")
    if found:
        return found
    return next((path for path in _SBIN_CANDIDATES if os.access(path, os.X_OK)), None)


def reader_names() -> list[str] | None:
    """Names of the readers pcscd offers, or None when pcscd does not answer."""
    from ektp_card.apdu.pcsc import list_readers

    try:
        return [reader.name for reader in list_readers()]
    except PcscUnavailableError:
        return None


class PcscdProcess:
    """A pcscd started by us; stop it with :meth:`stop`."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path | None) -> None:
        self.process = process
        self.log_path = log_path

    @classmethod
    def start(cls, *, timeout: float = 10.0, log_path: Path | None = None) -> PcscdProcess:
        """Run ``pcscd --foreground`` and wait until it offers the vpcd reader.

        Its output goes to ``log_path`` (or nowhere). Raises :class:`PcscUnavailableError` when
        pcscd is missing, exits, or does not answer within ``timeout`` seconds, and
        :class:`TransportError` when it runs without the vpcd reader.
        """
        binary = pcscd_binary()
        if binary is None:
            raise PcscUnavailableError("pcscd is not installed (Debian/Ubuntu: apt-get install pcscd)")
        out: IO[bytes] | int = subprocess.DEVNULL
        if log_path is not None:
            out = log_path.open("ab")
        try:
            # Its own session, so a Ctrl-C meant for us does not stop it before we do.
            process = subprocess.Popen(  # noqa: S603 - fixed arguments, binary found above
                [binary, "--foreground"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if not isinstance(out, int):
                out.close()
        daemon = cls(process, log_path)
        try:
            daemon._wait_ready(timeout)
        except BaseException:
            daemon.stop()
            raise
        return daemon

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        names: list[str] | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PcscUnavailableError(
                    f"pcscd exited at start with status {self.process.returncode}{self._log_hint()}"
                )
            names = reader_names()
            if names is not None and VPCD_READER in names:
                return
            time.sleep(0.05)
        if names is None:
            raise PcscUnavailableError(f"pcscd did not answer within {timeout:g} s{self._log_hint()}")
        raise TransportError(
            f"pcscd runs but offers no reader {VPCD_READER!r} (readers: {', '.join(names) or 'none'}); "
            "is vsmartcard-vpcd installed?"
        )

    def _log_hint(self) -> str:
        return f" (see {self.log_path})" if self.log_path is not None else ""

    def stop(self, timeout: float = 5.0) -> None:
        """Stop pcscd (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def ensure_pcscd(*, timeout: float = 10.0, log_path: Path | None = None) -> PcscdProcess | None:
    """Start pcscd unless one already answers; returns the one started, or None."""
    if reader_names() is not None:
        return None
    return PcscdProcess.start(timeout=timeout, log_path=log_path)
