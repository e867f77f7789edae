"""The hostile-input contract for registries on PostgreSQL: a server that is not there, a URL that is
not one, a database that is not ours. Each is one line, exit 15, and nothing written anywhere."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ektp_card._cli.util import ExitCode

Ektp = Callable[..., tuple[int, str, str]]


def _foreign(url: str) -> str:
    """A schema holding another program's table (and no registry)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE cards (id integer primary key, owner text)")
        conn.execute("INSERT INTO cards VALUES (1, 'someone else')")
    return url


def _tables(url: str) -> set[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    return {r[0] for r in rows}


COMMANDS = {
    "show": ("desk", "show", "{personalised}"),
    "revoke": ("desk", "revoke", "{personalised}", "--reason", "fraud"),
    "audit-verify": ("desk", "audit-verify"),
    "report": ("desk", "report"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", ["no-server", "not-a-url", "no-database", "foreign-schema"])
def test_a_postgresql_registry_that_is_not_one_is_one_line_and_exit_15(
    ektp: Ektp, postgres_url: str, postgres_schema: str, kind: str, command: str
) -> None:
    base = postgres_url.rsplit("/", 1)[0]
    url = {
        "no-server": "postgresql://ektp@127.0.0.1:1/ektp?connect_timeout=3",
        "not-a-url": "postgresql://ektp@127.0.0.1:port/ektp",
        "no-database": f"{base}/no_such_database",
        "foreign-schema": postgres_schema,
    }[kind]
    if kind == "foreign-schema":
        _foreign(url)
    code, _, err = ektp(*COMMANDS[command], "--registry", url)
    assert code == ExitCode.REGISTRY, err
    assert "ektp@" not in err or "127.0.0.1" in err  # the URL names no password, so it may be shown
    if kind == "foreign-schema":
        assert "holds no ektp registry" in err
        assert _tables(url) == {"cards"}  # none of our tables written into another program's schema
