"""A throwaway PostgreSQL server for the registry tests: its own data directory, loopback only.

PostgreSQL refuses to run as root, so as root the cluster lives in a temp dir owned by ``postgres`` and
``initdb``/``pg_ctl`` run through ``runuser -u postgres``; as any other user they run directly. The server
listens on 127.0.0.1 on a free port with its unix socket in the temp dir, trusts local connections for
user ``ektp`` and skips fsync (a test cluster needs no durability). Each test gets its own schema
(:func:`fresh_schema_url`), which is much cheaper than a database per test.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

USER = "ektp"
DATABASE = "ektp"
INSTALL_HINT = "install it with `apt-get install postgresql` (or run scripts/install.sh)"


class PostgresUnavailable(Exception):
    """The PostgreSQL server binaries are not installed."""


def pg_bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl: $EKTP_PG_BIN, else the newest /usr/lib/postgresql/*/bin."""
    env = os.environ.get("EKTP_PG_BIN")
    candidates = [Path(env)] if env else sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit()
        else 0, reverse=True,
    )
    for path in candidates:
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running throwaway cluster; ``url`` reaches its ``ektp`` database."""

    base: Path
    bin_dir: Path
    port: int
    prefix: list[str]

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    @classmethod
    def start(cls, attempts: int = 3) -> PostgresServer:
        """initdb, start on a free loopback port and create the database; raises PostgresUnavailable when
        the binaries are missing, CalledProcessError (with the server log) when the server will not start."""
        bin_dir = pg_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        base = Path(tempfile.mkdtemp(prefix="ektp-pg-"))
        prefix: list[str] = []
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: hand the directory to the postgres account.
            account = pwd.getpwnam("postgres")
            os.chown(base, account.pw_uid, account.pw_gid)
            prefix = ["runuser", "-u", "postgres", "--"]
        server = cls(base, bin_dir, 0, prefix)
        try:
            server._run("initdb", "-D", str(server.data), "-A", "trust", "-U", USER, "-E", "UTF8",
                        "--locale=C", "--no-sync")
            for attempt in range(attempts):
                server.port = _free_port()
                try:
                    server._pg_ctl_start()
                    break
                except subprocess.CalledProcessError:
                    if attempt == attempts - 1:
                        raise
            server._create_database()
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.prefix, str(self.bin_dir / tool), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise subprocess.CalledProcessError(result.returncode, command, result.stdout,
                                                result.stderr + tail)

    def _pg_ctl_start(self) -> None:
        options = (
            f"-k {self.base} -h 127.0.0.1 -p {self.port} -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=60"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "server.log"),
                  "-w", "-t", "60", "start")

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"postgresql://{USER}@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def stop(self) -> None:
        """Stop the server (if it runs) and remove its directory."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def fresh_schema_url(base_url: str) -> str:
    """Create an empty schema in the server's database; return a URL whose sessions use only it."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{base_url}?options={quote(f'-csearch_path={schema}')}"


class RawDb:
    """A plain autocommit connection to a registry (SQLite path or PostgreSQL URL) that bypasses the
    library, to show the database itself enforces the rules; ``?`` placeholders on both."""

    def __init__(self, target: str) -> None:
        self.dialect = "postgresql" if target.startswith("postgresql://") else "sqlite"
        if self.dialect == "sqlite":
            import sqlite3

            self._conn: Any = sqlite3.connect(target, isolation_level=None)
            self.errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
        else:
            import psycopg

            self._conn = psycopg.connect(target, autocommit=True)
            self.errors = (psycopg.IntegrityError,)

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        cursor = self._conn.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []

    def drop_audit_triggers(self) -> None:
        on = " ON audit" if self.dialect == "postgresql" else ""
        self.execute(f"DROP TRIGGER audit_no_update{on}")
        self.execute(f"DROP TRIGGER audit_no_delete{on}")

    def close(self) -> None:
        self._conn.close()


def registry_target(request: Any, tmp_path: Path) -> str:
    """For a fixture parametrised with "sqlite" / "postgresql": a fresh registry path or URL."""
    if request.param == "sqlite":
        return str(tmp_path / "registry.sqlite")
    return fresh_schema_url(request.getfixturevalue("postgres_url"))
