"""The hostile-input sweep's cases: every leaf command of the click tree, each input of it spoiled in
every way a careless operator or an attacker would.

A command is described once by an argument list that works (``Spec``); some of its values are
markers that say what the value is: :class:`In` (a file the command reads), :class:`InDir` (a folder it
reads), :class:`Out` / :class:`OutDir` (what it writes), :class:`Reg` (a registry), :class:`Text` (a
word stored or printed), :class:`Num` (a number). :func:`cases` replaces one marker at a time with each
of its hostile variants, the others keeping their working value, so every case meets exactly one bad
input. ``{name}`` in a value is one of the office's facts (a serial, a CAN).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

#: Codes every command may end with for a hostile input (docs/cli.md): usage and file problems.
USAGE, FILE, REGISTRY, INTERRUPTED = 2, 7, 15, 130
CARD = {3, 4, 5, 6, 8}

#: The codes each command documents (docs/cli.md), success included.
COMMAND_CODES: dict[str, set[int]] = {
    "apdu": {0, 2, 3, 4, 5, 6, 7, 8},
    "audit": {0, 2, 3, 4, 5, 7, 8, 20},
    "demo": {0, 2, 7, 10},
    "desk activate": {0, 2, 15},
    "desk audit-verify": {0, 2, 10, 15},
    "desk damaged": {0, 2, 15},
    "desk handover": {0, 2, 5, 7, 8, 10, 11, 12, 13, 15},
    "desk issue": {0, 2, 3, 4, 5, 7, 9, 15},
    "desk lease": {0, 2, 7, 9, 15},
    "desk lost": {0, 2, 15},
    "desk replace": {0, 2, 15},
    "desk report": {0, 2, 7, 15},
    "desk revocation-signer": {0, 2, 7},
    "desk revocations": {0, 2, 7, 15},
    "desk revoke": {0, 2, 15},
    "desk show": {0, 2, 15},
    "desk sync": {0, 2, 9, 15},
    "personalize": {0, 2, 3, 4, 5, 6, 7, 8, 10, 16},
    "pki crl publish": {0, 2, 7},
    "pki csca create": {0, 2, 7},
    "pki cvc show": {0, 2, 7, 10},
    "pki cvca create": {0, 2, 7},
    "pki cvca link": {0, 2, 7},
    "pki ds issue": {0, 2, 7},
    "pki ds list": {0, 2, 7},
    "pki ds revoke": {0, 2, 7},
    "pki ds rotate": {0, 2, 7},
    "pki dv issue": {0, 2, 7},
    "pki sign-sod": {0, 2, 7},
    "pki terminal issue": {0, 2, 7},
    "pki verify-sod": {0, 2, 7, 10},
    "read": {0, 2, 3, 4, 5, 6, 7, 8},
    "readers": {0, 3},
    "record synthetic": {0, 2, 7},
    "station": {0, 2, 7, 8, 15},
    "trust import": {0, 2, 7},
    "trust list": {0, 2, 7},
    "verify": {0, 2, 3, 4, 5, 7, 8, 11, 12, 13, 14},
    "virtual blank": {0, 2, 7},
    "virtual create": {0, 2, 7},
    "virtual serve": {0, 2, 3, 7},
    "virtual show": {0, 2, 7},
}
for _codes in COMMAND_CODES.values():
    _codes.add(INTERRUPTED)  # Ctrl-C, for every command (docs/cli.md)

GIB = 1 << 30
#: Any documented code will do (the case checks the one-line contract and that nothing changed).
ANY = frozenset(range(256))


# --- hostile content ------------------------------------------------------------------------------------


def deep_json() -> bytes:
    return b"[" * 100_000 + b"]" * 100_000


def huge_int_json() -> bytes:
    return b'{"version": ' + b"9" * 100_000 + b"}"


def _json_edit(edit: Callable[[object], object]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        return json.dumps(edit(json.loads(data)), ensure_ascii=True).encode()

    return apply


def _set(key: str, value: object) -> Callable[[object], object]:
    def edit(doc: object) -> object:
        assert isinstance(doc, dict)
        return {**doc, key: value}

    return edit


def _first_line(data: bytes) -> bytes:
    return data.split(b"\n", 1)[0]


def _garbage(size: int = 3000) -> bytes:
    state = 0x2545F491
    out = bytearray()
    for _ in range(size):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(state >> 16 & 0xFF)
    return bytes(out)


def _flip_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x55]) + data[middle + 1 :]


def _corrupt_keys(data: bytes) -> bytes:
    """A card image whose key objects hold garbage (valid Base64 of the wrong bytes)."""
    doc = json.loads(data)
    # A blank card keeps no keys yet: it gets an Active Authentication key that is not a key.
    doc["keys"] = {name: "AAECAwQ=" for name in [*doc.get("keys", {}), "aa.private"]}
    return json.dumps(doc).encode()


def _image_bad_capacity(data: bytes) -> bytes:
    doc = json.loads(data)
    doc["capacity"] = 10**4000
    return json.dumps(doc).encode()


#: Content variants by kind of file: name -> (bytes made from the working file's bytes).
Content = Callable[[bytes], bytes]
JSON_VARIANTS: dict[str, Content] = {
    "deep-json": lambda _: deep_json(),
    "huge-int": lambda _: huge_int_json(),
    "json-array": lambda _: b"[1, 2, 3]",
    "not-utf8": lambda _: b'{"a": "\xff\xfe"}',
}
CONTENT_VARIANTS: dict[str, dict[str, Content]] = {
    "image": {**JSON_VARIANTS, "corrupt-keys": _corrupt_keys, "huge-capacity": _image_bad_capacity},
    "record": {
        **JSON_VARIANTS,
        "nul-name": _json_edit(_set("name", "BUDI\u0000SANTOSO")),
        "surrogate-name": lambda d: d.replace(b'"name": "', b'"name": "\\ud800', 1),
        "escape-name": _json_edit(_set("name", "\u001b[31mBUDI")),
        "huge-field": _json_edit(_set("name", "A" * 2_000_000)),
        "nik-number": _json_edit(_set("nik", 10**200)),
        "date-int": _json_edit(_set("date_of_birth", 10**200)),
    },
    "batch": {
        "deep-json": lambda _: deep_json() + b"\n",
        "huge-int": lambda _: huge_int_json() + b"\n",
        "nul-line": lambda d: _first_line(d).replace(b'"name": "', b'"name": "\\u0000', 1) + b"\n",
        "surrogate-line": lambda d: _first_line(d).replace(b'"name": "', b'"name": "\\udc80', 1) + b"\n",
        "not-utf8": lambda d: b"\xff" + d,
        "long-line": lambda _: b'{"name": "' + b"A" * (8 << 20) + b'"}\n',
    },
    "printed": {
        **JSON_VARIANTS,
        "nul-value": lambda _: b'{"name": "A\\u0000B"}',
        "surrogate": lambda _: b'{"name": "\\ud800"}',
    },
    "nikfile": {
        "not-utf8": lambda _: b"\xff\xfe\n",
        "nul": lambda _: b"3204074207034542\x00\n",
        "deep-json": lambda _: deep_json() + b"\n",
        "long-line": lambda _: b"1" * (8 << 20) + b"\n",
    },
    "pem": {"garbage-pem": lambda _: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
    "der": {"flipped": _flip_middle},
    "cvc": {
        "flipped": _flip_middle,
        "deep-tlv": lambda _: b"\x7f\x21\x84\x00\x10\x00\x00" + b"\x30\x80" * 40000,
    },
    "key": {
        "garbage-pem": lambda _: (
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
        )
    },
    "fmr": {"flipped": _flip_middle},
    "masterkey": {
        "non-hex": lambda _: b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\n",
        "short": lambda _: b"00112233\n",
    },
    "pubkey": {"rsa-ish": lambda _: b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
    "dg": {},
    "ldif": {
        "url-value": lambda d: d + b"\ndn: cn=x,c=ID\nuserCertificate;binary:< file:///dev/zero\n",
        "bad-base64": lambda d: d + b"\ndn: cn=x,c=ID\nuserCertificate;binary:: !!!!\n",
        "garbage-certificate": lambda d: d + b"\ndn: cn=x,c=ID\nuserCertificate;binary:: MAMCAQA=\n",
        "garbage-master-list": lambda d: d + b"\ndn: cn=x,c=ID\npkdMasterListContent:: MAMCAQA=\n",
        "nul": lambda d: d.replace(b"dn:", b"dn:\x00", 1),
        "delete": lambda d: d + b"\ndn: cn=x,c=ID\nchangetype: delete\n",
        "lone-continuation": lambda d: b" continued\n" + d,
    },
}


#: The office's facts (serials, CANs, file names) while a case is made: ``{name}`` in a value.
FACTS: dict[str, str] = {}


def fill(text: str) -> str:
    """``text`` with ``{name}`` replaced by the office's fact of that name."""
    return re.sub(r"\{(\w+)\}", lambda m: FACTS[m[1]], text)


# --- markers --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One hostile value: its name, how to make it in the workspace (returns the argument), the codes it
    may end with, and what to inject while it runs (``enospc`` / ``interrupt`` at the first file write)."""

    name: str
    make: Callable[[Path], str]
    codes: frozenset[int]
    inject: str | None = None
    allow: tuple[str, ...] = ()


def _file(name: str, data: bytes | None = None, *, size: int | None = None) -> Callable[[Path], str]:
    def make(ws: Path) -> str:
        path = ws / "hostile" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if size is not None:
            with path.open("wb") as fh:
                fh.truncate(size)
        else:
            path.write_bytes(data or b"")
        return str(path.relative_to(ws))

    return make


def _folder(name: str) -> Callable[[Path], str]:
    def make(ws: Path) -> str:
        path = ws / "hostile" / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path.relative_to(ws))

    return make


def _fifo(name: str) -> Callable[[Path], str]:
    def make(ws: Path) -> str:
        path = ws / "hostile" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        return str(path.relative_to(ws))

    return make


def _derived(name: str, default: str, content: Content) -> Callable[[Path], str]:
    def make(ws: Path) -> str:
        return _file(name, content((ws / fill(default)).read_bytes()))(ws)

    return make


def _const(value: str) -> Callable[[Path], str]:
    return lambda ws: value


@dataclass(frozen=True)
class Marker:
    """A value of a working argument list that the sweep spoils."""

    default: str

    def variants(self) -> Iterator[Variant]:
        raise NotImplementedError


@dataclass(frozen=True)
class In(Marker):
    """A file the command reads. ``codes``: what a spoilt file may end with (default 7); ``content``:
    what a spoilt content may end with (default: ``codes``)."""

    kind: str = "file"
    codes: frozenset[int] = frozenset({FILE})
    content: frozenset[int] | None = None
    prefix: str = ""
    #: Also spoil the content (truncated, garbage, kind variants); off for files read after a
    #: step whose cost the sweep does not want to pay for every variant.
    deep: bool = True
    #: Variants that end otherwise than the rest (name, codes), and variants that do not apply.
    overrides: tuple[tuple[str, frozenset[int]], ...] = ()
    skip: tuple[str, ...] = ()

    def variants(self) -> Iterator[Variant]:
        special = dict(self.overrides)
        for variant in self._variants():
            if variant.name not in self.skip:
                yield replace(variant, codes=special.get(variant.name, variant.codes))

    def _variants(self) -> Iterator[Variant]:
        suffix = Path(self.default).suffix
        codes = self.codes
        yield Variant("missing", _const(f"hostile/missing{suffix}"), codes)
        yield Variant("folder", _folder(f"folder{suffix}"), codes)
        yield Variant("empty", _file(f"empty{suffix}", b""), self.content or codes)
        yield Variant("dev-zero", _const("/dev/zero"), codes)
        yield Variant("fifo", _fifo(f"fifo{suffix}"), codes)
        yield Variant("huge", _file(f"huge{suffix}", size=GIB), codes)
        if not self.deep:
            return
        content = self.content or codes
        yield Variant(
            "truncated", _derived(f"truncated{suffix}", self.default, lambda d: d[: len(d) // 2]), content
        )
        yield Variant("garbage", _file(f"garbage{suffix}", _garbage()), content)
        for name, make in CONTENT_VARIANTS.get(self.kind, {}).items():
            # Garbage in a key object is found when the image is loaded (virtual/keycheck.py).
            yield Variant(name, _derived(f"{name}{suffix}", self.default, make), content)

    def wrap(self, value: str) -> str:
        return self.prefix + value


@dataclass(frozen=True)
class InOut(In):
    """A file the command reads and writes back (a virtual card image)."""

    def _variants(self) -> Iterator[Variant]:
        yield from super()._variants()
        yield Variant("full-disk", _const(self.default), frozenset({FILE}), inject="enospc")
        yield Variant("interrupted", _const(self.default), frozenset({INTERRUPTED}), inject="interrupt")


@dataclass(frozen=True)
class InDir(Marker):
    """A folder the command reads: ``kind`` selects its spoilt variants (``pki``, ``trust``, ``cards``)."""

    kind: str = "dir"
    codes: frozenset[int] = frozenset({FILE})
    skip: tuple[str, ...] = ()

    def variants(self) -> Iterator[Variant]:
        codes = self.codes
        found = [
            Variant("missing", _const("hostile/missing-dir"), codes),
            Variant("a-file", _file("a-file", b"not a folder"), codes),
            Variant("dev-zero", _const("/dev/zero"), codes),
            Variant("empty", _folder("empty-dir"), codes),
        ]
        for name, make in FOLDER_VARIANTS.get(self.kind, {}).items():
            # Key files are read only by the commands that sign: the others may well succeed.
            if name in ("keys-garbage", "images-corrupt-keys"):
                found.append(Variant(name, _spoilt_copy(self.default, name, make), ANY, allow=("",)))
            else:
                found.append(Variant(name, _spoilt_copy(self.default, name, make), codes))
        yield from (v for v in found if v.name not in self.skip)


def _spoilt_copy(default: str, name: str, spoil: Callable[[Path], None]) -> Callable[[Path], str]:
    def make(ws: Path) -> str:
        import shutil

        target = ws / "hostile" / f"{name}-dir"
        shutil.copytree(ws / default, target)
        spoil(target)
        return str(target.relative_to(ws))

    return make


def _state_edit(edit: Callable[[dict[str, object]], object]) -> Callable[[Path], None]:
    def spoil(folder: Path) -> None:
        state = json.loads((folder / "state.json").read_text())
        (folder / "state.json").write_text(json.dumps(edit(state)))

    return spoil


def _state_raw(key: str, raw: str) -> Callable[[Path], None]:
    """``key`` set to ``raw`` JSON text (a number too long for Python to write itself)."""

    def spoil(folder: Path) -> None:
        text = json.dumps({**json.loads((folder / "state.json").read_text()), key: 0})
        (folder / "state.json").write_text(text.replace(f'"{key}": 0', f'"{key}": {raw}'))

    return spoil


def _with(key: str, value: object) -> Callable[[dict[str, object]], object]:
    return lambda state: {**state, key: value}


def _write_into(name: str, data: bytes) -> Callable[[Path], None]:
    def spoil(folder: Path) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)

    return spoil


def _fifo_into(name: str) -> Callable[[Path], None]:
    return lambda folder: os.mkfifo(folder / name)


def _other_crl(folder: Path) -> None:
    (folder / "csca.crl").write_bytes((folder.parent.parent / "other-issuer" / "csca.crl").read_bytes())


def _truncate(name: str) -> Callable[[Path], None]:
    def spoil(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])

    return spoil


def _current_outside(state: dict[str, object]) -> object:
    return {**state, "current": "../../../etc/passwd"}


def _each_key_file(data: bytes) -> Callable[[Path], None]:
    def spoil(folder: Path) -> None:
        for key in folder.rglob("*.key"):
            key.write_bytes(data)

    return spoil


FOLDER_VARIANTS: dict[str, dict[str, Callable[[Path], None]]] = {
    "pki": {
        "bad-csca-pem": _truncate("csca.pem"),
        "garbage-crl": _write_into("csca.crl", b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"),
        "other-csca-crl": _other_crl,
        "stray-in-ds": _write_into("ds/stray.pem", b"not a certificate\n"),
        "fifo-in-ds": _fifo_into("ds/fifo.pem"),
        "state-deep": _write_into("state.json", deep_json()),
        "state-huge-int": _state_raw("crl_number", "9" * 5000),
        "state-bad-number": _state_edit(_with("crl_number", "twelve")),
        "state-current-outside": _state_edit(_current_outside),
        "state-rs-outside": _state_edit(_with("revocation_signer", "../../../../tmp/x")),
        "state-revoked-garbage": _state_edit(_with("revoked", [{"serial": "zz"}])),
        "state-version-text": _state_edit(_with("version", "one")),
        "state-not-object": _write_into("state.json", b"[]"),
        "state-fifo": lambda folder: ((folder / "state.json").unlink(), os.mkfifo(folder / "state.json")),
        "keys-garbage": _each_key_file(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
        ),
    },
    "trust": {
        "bad-pem": _write_into(
            "broken.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        ),
        "garbage-crl": _write_into("zz.crl", _garbage()),
        "fifo-pem": _fifo_into("fifo.pem"),
        "zero-link": lambda folder: (folder / "zero.pem").symlink_to("/dev/zero"),
    },
    "cards": {
        "print-deep": lambda folder: [p.write_bytes(deep_json()) for p in folder.glob("*.print.json")],
        "print-huge-int": lambda folder: [
            p.write_bytes(huge_int_json()) for p in folder.glob("*.print.json")
        ],
        "print-fifo": lambda folder: [(p.unlink(), os.mkfifo(p)) for p in folder.glob("*.print.json")],
        "images-corrupt-keys": lambda folder: [
            p.write_bytes(_corrupt_keys(p.read_bytes())) for p in folder.glob("*.card")
        ],
    },
}


@dataclass(frozen=True)
class Out(Marker):
    """A file the command writes. ``exists``: the command refuses an existing file (exit 7) unless
    ``--force``; ``reach``: the command gets as far as writing it (so a full disk and Ctrl-C apply)."""

    exists: bool = True
    reach: bool = True
    allow: tuple[str, ...] = ()
    #: More names to try: (variant, name, what the command may end with).
    names: tuple[tuple[str, str, frozenset[int]], ...] = ()

    def variants(self) -> Iterator[Variant]:
        for variant, name, codes in self.names:
            yield Variant(variant, _const(name), codes)
        yield Variant("a-folder-there", _folder("out-folder"), frozenset({FILE}))
        yield Variant("under-a-file", _const("record.json/out"), frozenset({FILE}))
        if self.exists:
            yield Variant("exists", _file("exists.out", b"keep me"), frozenset({FILE}))
        if self.reach:
            yield Variant(
                "full-disk", _const(self.default), frozenset({FILE}), inject="enospc", allow=self.allow
            )
            yield Variant(
                "interrupted",
                _const(self.default),
                frozenset({INTERRUPTED}),
                inject="interrupt",
                allow=self.allow,
            )


@dataclass(frozen=True)
class OutDir(Marker):
    """A folder the command creates or writes into."""

    reach: bool = True
    allow: tuple[str, ...] = ()
    existing: bool = False

    def variants(self) -> Iterator[Variant]:
        yield Variant("a-file-there", _file("a-file", b"keep me"), frozenset({FILE}))
        yield Variant("under-a-file", _const("record.json/out"), frozenset({FILE}))
        yield Variant("dev-zero", _const("/dev/zero"), frozenset({FILE}))
        if self.reach:
            yield Variant(
                "full-disk", _const(self.default), frozenset({FILE}), inject="enospc", allow=self.allow
            )
            yield Variant(
                "interrupted",
                _const(self.default),
                frozenset({INTERRUPTED}),
                inject="interrupt",
                allow=self.allow,
            )


def _foreign(ws: Path) -> str:
    return "foreign.sqlite"


def _schema_edit(sql: str) -> Callable[[Path], str]:
    def make(ws: Path) -> str:
        import shutil
        import sqlite3

        target = ws / "hostile" / "edited.sqlite"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ws / "sb" / "registry.sqlite", target)
        with sqlite3.connect(target) as db:
            db.execute("DROP TRIGGER IF EXISTS schema_version_append_only")
            db.execute(sql)
        db.close()
        return str(target.relative_to(ws))

    return make


def _truncated_registry(ws: Path) -> str:
    data = (ws / "sb" / "registry.sqlite").read_bytes()
    return _file("half.sqlite", data[: len(data) // 2])(ws)


@dataclass(frozen=True)
class Reg(Marker):
    """A registry (a SQLite file). ``create``: the command makes a new registry when there is none."""

    create: bool = False
    codes: frozenset[int] = frozenset({REGISTRY})

    def variants(self) -> Iterator[Variant]:
        codes = self.codes
        if not self.create:
            yield Variant("missing", _const("hostile/missing.sqlite"), codes)
        yield Variant("foreign", _foreign, codes)
        yield Variant("empty", _file("empty.sqlite", b""), codes)
        yield Variant("garbage", _file("garbage.sqlite", _garbage()), codes)
        yield Variant("truncated", _truncated_registry, codes)
        yield Variant("folder", _folder("folder.sqlite"), codes)
        yield Variant("dev-zero", _const("/dev/zero"), codes)
        yield Variant("fifo", _fifo("fifo.sqlite"), codes)
        yield Variant("schema-text", _schema_edit("UPDATE schema_version SET version = 'two'"), codes)
        yield Variant("schema-newer", _schema_edit("INSERT INTO schema_version (version) VALUES (99)"), codes)
        yield Variant("bad-scheme", _const("ftp://example.invalid/registry"), codes)


#: Hostile words: (name, value, whether a real command line can carry it).
TEXTS = {
    "nul": "a\x00b",
    "surrogate": "a\udcffb",
    "escape": "\x1b[2J\x1b[31mRED",
    "newline": "one\ntwo",
    "long": "A" * 100_000,
}


@dataclass(frozen=True)
class Text(Marker):
    """A word the command stores, prints or parses; ``codes``: what a hostile one may end with."""

    codes: frozenset[int] = frozenset({USAGE})
    extra: tuple[tuple[str, str], ...] = ()
    skip: tuple[str, ...] = ()

    def variants(self) -> Iterator[Variant]:
        for name, value in (*TEXTS.items(), *self.extra):
            if name not in self.skip:
                yield Variant(name, _const(value), self.codes)


NUMBERS = {
    "nan": "nan",
    "inf": "inf",
    "minus-inf": "-inf",
    "huge": "1e400",
    "negative": "-1",
    "huge-int": "9" * 5000,
}


@dataclass(frozen=True)
class Num(Marker):
    """A number option."""

    skip: tuple[str, ...] = ()

    def variants(self) -> Iterator[Variant]:
        for name, value in NUMBERS.items():
            if name not in self.skip:
                yield Variant(name, _const(value), frozenset({USAGE}))


@dataclass(frozen=True)
class Env(Marker):
    """An environment variable the command reads (a passphrase, the master key); ``default`` is a
    placeholder: the office's value stays unless a variant replaces it."""

    name: str = ""
    codes: frozenset[int] = frozenset({USAGE, FILE})
    values: tuple[tuple[str, str | None], ...] = ()
    #: Values that may well work (bytes that are not UTF-8 make a fine passphrase).
    anything: tuple[str, ...] = ()

    def variants(self) -> Iterator[Variant]:
        for label, value in self.values:
            if label in self.anything:  # it may work, and then its work is done
                yield Variant(label, _const("" if value is None else value), ANY, allow=("",))
            else:
                yield Variant(label, _const("" if value is None else value), self.codes)


# --- commands -------------------------------------------------------------------------------------------

Arg = str | Marker


@dataclass(frozen=True)
class Spec:
    """One working way to call ``command``; ``plain`` runs it unspoilt too, expecting ``codes``."""

    command: str
    argv: tuple[Arg, ...]
    name: str = ""
    plain: frozenset[int] | None = None
    env: tuple[Env, ...] = ()
    drop_env: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    id: str
    command: str
    argv: tuple[str, ...]
    codes: frozenset[int]
    setup: tuple[tuple[int, Callable[[Path], str]], ...] = ()
    env: tuple[tuple[str, str | None], ...] = ()
    inject: str | None = None
    allow: tuple[str, ...] = field(default=())


def _resolve(arg: Arg) -> str:
    if isinstance(arg, In):
        return arg.wrap(arg.default)
    return arg.default if isinstance(arg, Marker) else arg


def cases(spec: Spec) -> Iterator[Case]:
    base = tuple(_resolve(a) for a in spec.argv)
    drop = tuple((name, None) for name in spec.drop_env)
    label = spec.command.replace(" ", "-") + (f"[{spec.name}]" if spec.name else "")
    if spec.plain is not None:
        yield Case(f"{label}:plain", spec.command, base, spec.plain, env=drop)
    for index, arg in enumerate(spec.argv):
        if not isinstance(arg, Marker):
            continue
        where = _where(spec.argv, index)
        for variant in arg.variants():
            make = variant.make
            if isinstance(arg, In) and arg.prefix:
                make = _prefixed(arg.prefix, make)
            yield Case(
                f"{label}:{where}:{variant.name}",
                spec.command,
                base,
                variant.codes,
                setup=((index, make),),
                env=drop,
                inject=variant.inject,
                allow=variant.allow,
            )
    for env in spec.env:
        for variant in env.variants():
            value = variant.make(Path())
            yield Case(
                f"{label}:${env.name}:{variant.name}",
                spec.command,
                base,
                variant.codes,
                env=(*drop, (env.name, None if value == "" and variant.name == "unset" else value)),
                allow=variant.allow,
            )


def _prefixed(prefix: str, make: Callable[[Path], str]) -> Callable[[Path], str]:
    return lambda ws: prefix + make(ws)


def _where(argv: tuple[Arg, ...], index: int) -> str:
    before = argv[index - 1] if index else ""
    if isinstance(before, str) and before.startswith("-"):
        return before.lstrip("-")
    return f"arg{index}"


def option_of(argv: tuple[Arg, ...], index: int) -> str | None:
    """The option a marker is the value of (``None`` for a positional argument)."""
    before = argv[index - 1] if index else None
    return before if isinstance(before, str) and before.startswith("-") else None


# The office's files (tests/hostile/conftest.py).
GENUINE = "{genuine_image}"
SBTERM = (
    "--terminal-chain",
    In("sbterm/dv.cvcert", kind="cvc"),
    "--terminal-chain",
    In("sbterm/terminal.cvcert", kind="cvc"),
    "--terminal-key",
    In("sbterm/terminal.key", kind="key"),
)
TIMEOUT = ("--timeout", Num("5", skip=("huge-int",)))
#: A card's memory size (`--capacity`): garbage, nothing, too small, too large, negative.
CAPACITY_TEXTS = (
    ("garbage", "eight kilobytes"),
    ("zero", "0"),
    ("too-small", "255"),
    ("huge", "99999999999K"),
    ("too-large", "9M"),
    ("negative", "-8K"),
    ("unit-only", "K"),
    ("giga", "1G"),
)
DESK = ("--desk", Text("desk-1"), "--actor", Text("clerk"))
MASTER_ENV = Env(
    "",
    name="EKTP_PERSO_MASTER_KEY",
    codes=frozenset({FILE}),
    values=(
        ("non-hex", "zzzzzzzzzzzzzzzz"),
        ("non-hex-32", "Z" * 32),
        ("surrogate", "\udcff" * 16),
        ("unset", None),
    ),
)


#: --face-out names whose suffix names no format it writes: one usage error before the card is read.
_FACE_NAMES = (
    ("unknown-suffix", "face.gif", frozenset({USAGE})),
    ("no-suffix", "face", frozenset({USAGE})),
    ("suffix-not-last", "face.png.bak", frozenset({USAGE})),
    ("jpeg2000-suffix", "face.jp2", frozenset({USAGE})),
)


def _pass(name: str) -> Env:
    return Env(
        "",
        name=name,
        codes=frozenset({USAGE, FILE}),
        values=(("unset", None), ("surrogate", "pass\udcffword"), ("long", "p" * 1_000_000)),
        anything=("surrogate",),
    )


def _serial(fact: str) -> Text:
    """A card serial: also a path that escapes the card folder, and one that is no serial."""
    return Text("{" + fact + "}", extra=(("traversal", "../../../etc/passwd"), ("lowercase-short", "abc")))


SPECS: tuple[Spec, ...] = (
    Spec(
        "apdu",
        (
            "apdu",
            "--virtual",
            In("demo.card", kind="image"),
            *TIMEOUT,
            Text("00A4000C023F00", skip=("long",), extra=(("odd", "00A"),)),
        ),
    ),
    Spec("apdu", ("apdu", "--virtual", "demo.card", "00B0000000"), name="status", plain=frozenset({6})),
    Spec(
        "audit",
        (
            "audit",
            "--virtual",
            In(GENUINE, kind="image", deep=False),
            "--can",
            Text("{genuine_can}", codes=frozenset({USAGE, 8})),
            "--only",
            Text("PA-TRUST", codes=frozenset({USAGE})),
            "--trust",
            InDir("sb/pki", kind="trust"),
            *SBTERM,
            "--printed",
            In("printed.json", kind="printed", content=frozenset({2, 7})),
            "--fingerprint",
            In("{genuine_holder}", kind="fmr"),
            "--junit",
            Out("audit.xml", exists=False),
            "--relay-bound",
            Num("250"),
            "--challenges",
            Num("16"),
            *TIMEOUT,
        ),
    ),
    Spec(
        "audit",
        (
            "audit",
            "--make",
            Text("relay", skip=("long",)),
            In(GENUINE, kind="image"),
            Out("attack.card"),
            "--can",
            "{genuine_can}",
            "--delay-ms",
            Num("5"),
        ),
        name="make",
    ),
    Spec(
        "audit",
        ("audit", "--make-clone", In(GENUINE, kind="image"), Out("clone.card"), "--can", "{genuine_can}"),
        name="make-clone",
    ),
    Spec(
        "audit",
        (
            "audit",
            "--only",
            "TEAR-PERSO",
            "--tear-blank",
            In("blank.card", kind="image"),
            "--pki",
            InDir("issuer", kind="pki"),
            "--master-key-file",
            In("master.key", kind="masterkey"),
        ),
        name="tear",
    ),
    Spec("audit", ("audit", "--list"), name="list", plain=frozenset({0})),
    Spec("demo", ("demo", "--image", Out("demo-out.card", exists=False), "--seed", Num("3"))),
    Spec(
        "desk activate",
        ("desk", "activate", _serial("genuine"), "--registry", Reg("sb/registry.sqlite"), *DESK),
    ),
    Spec(
        "desk audit-verify",
        ("desk", "audit-verify", "--registry", Reg("sb/registry.sqlite"), "--anchor", Text("1:" + "0" * 64)),
    ),
    Spec(
        "desk damaged",
        (
            "desk",
            "damaged",
            _serial("genuine"),
            "--surrendered",
            "--registry",
            Reg("sb/registry.sqlite"),
            *DESK,
        ),
    ),
    Spec(
        "desk handover",
        (
            "desk",
            "handover",
            _serial("personalised"),
            "--fingerprint",
            In("{holder}", kind="fmr"),
            "--virtual-dir",
            InDir("sb/cards", kind="cards"),
            "--issuer",
            InDir("sb/pki", kind="pki"),
            *SBTERM,
            "--registry",
            Reg("sb/registry.sqlite"),
            *DESK,
            *TIMEOUT,
        ),
        env=(_pass("EKTP_TERMINAL_PASSPHRASE"),),
    ),
    Spec(
        "desk handover",
        (
            "desk",
            "handover",
            "{personalised}",
            "--fingerprint",
            "{holder}",
            "--virtual-dir",
            "sb/cards",
            "--trust",
            InDir("sb/pki", kind="trust"),
            *SBTERM,
            "--registry",
            "sb/registry.sqlite",
            "--can",
            Text("{personalised_can}"),
        ),
        name="trust",
    ),
    Spec(
        "desk issue",
        (
            "desk",
            "issue",
            In(
                "batch.jsonl",
                kind="batch",
                content=frozenset({7, 9}),
                overrides=(("empty", frozenset({USAGE})),),
            ),
            "--issuer",
            InDir("issuer", kind="pki"),
            "--virtual-dir",
            OutDir("newcards", allow=("sb/registry.sqlite",)),
            "--master-key-file",
            In("master.key", kind="masterkey"),
            "--cvca",
            In("term/cvca.cvcert", kind="cvc"),
            "--biometrics",
            Text("on-card", codes=frozenset({USAGE})),
            "--registry",
            Reg("sb/registry.sqlite", create=True),
            *DESK,
        ),
        env=(_pass("EKTP_DS_PASSPHRASE"),),
    ),
    Spec(
        "desk issue",
        (
            "desk",
            "issue",
            "batch.jsonl",
            "--issuer",
            "issuer",
            "--virtual-dir",
            "newcards",
            "--registry",
            "sb/registry.sqlite",
        ),
        name="env-key",
        env=(MASTER_ENV,),
    ),
    Spec(
        "desk lease",
        (
            "desk",
            "lease",
            In(
                "niks.txt",
                kind="nikfile",
                content=frozenset({FILE, REGISTRY}),
                overrides=(("empty", frozenset({USAGE})),),
                skip=("truncated",),
            ),
            "--central",
            Reg("central.sqlite"),
            "--local",
            Reg("local.sqlite", create=True),
            "--ttl",
            Num("8"),
            *DESK,
        ),
    ),
    Spec(
        "desk lost",
        (
            "desk",
            "lost",
            _serial("genuine"),
            "--police-report",
            Text("LP/1/2026"),
            "--registry",
            Reg("sb/registry.sqlite"),
            *DESK,
        ),
    ),
    Spec(
        "desk replace",
        (
            "desk",
            "replace",
            _serial("lost"),
            _serial("genuine"),
            "--registry",
            Reg("sb/registry.sqlite"),
            *DESK,
        ),
    ),
    Spec(
        "desk report",
        (
            "desk",
            "report",
            "--registry",
            Reg("sb/registry.sqlite"),
            "--since",
            Text("2020-01-01", extra=(("month-13", "2020-13-01"),)),
            "--csv",
            OutDir("csv"),
            "--chart",
            Out("chart.png", exists=False),
            "--target",
            Num("150"),
        ),
    ),
    Spec(
        "desk revocation-signer",
        (
            "desk",
            "revocation-signer",
            "--issuer",
            InDir("issuer", kind="pki"),
            "--cn",
            Text("RS 2"),
            "--org",
            Text("Org"),
            "--days",
            Num("30"),
        ),
        env=(_pass("EKTP_RS_PASSPHRASE"),),
    ),
    Spec(
        "desk revocations",
        (
            "desk",
            "revocations",
            "--registry",
            Reg("sb/registry.sqlite"),
            "--issuer",
            InDir("issuer", kind="pki"),
            "-o",
            Out("list.p7", exists=False),
            "--validity",
            Num("7"),
        ),
    ),
    Spec(
        "desk revoke",
        (
            "desk",
            "revoke",
            _serial("genuine"),
            "--reason",
            Text("fraud"),
            "--registry",
            Reg("sb/registry.sqlite"),
            *DESK,
        ),
    ),
    Spec("desk show", ("desk", "show", _serial("genuine"), "--registry", Reg("sb/registry.sqlite"))),
    Spec(
        "desk show", ("desk", "show", "--nik", Text("{nik}"), "--registry", "sb/registry.sqlite"), name="nik"
    ),
    Spec(
        "desk sync",
        ("desk", "sync", "--central", Reg("central.sqlite"), "--local", Reg("local.sqlite"), "--dry-run"),
    ),
    Spec(
        "personalize",
        (
            "personalize",
            In("record.json", kind="record", content=frozenset({USAGE, FILE})),
            "--pki",
            InDir("issuer", kind="pki"),
            "--virtual",
            InOut("blank.card", kind="image"),
            "--master-key-file",
            In("master.key", kind="masterkey"),
            "--cvca",
            In("term/cvca.cvcert", kind="cvc"),
            "--biometrics",
            Text("both", codes=frozenset({USAGE})),
            "--pace-mapping",
            Text("cam", codes=frozenset({USAGE})),
            *TIMEOUT,
        ),
        env=(_pass("EKTP_DS_PASSPHRASE"),),
    ),
    Spec(
        "personalize",
        ("personalize", "record.json", "--pki", "issuer", "--virtual", "blank.card"),
        name="env-key",
        env=(MASTER_ENV,),
    ),
    Spec(
        "personalize",
        (
            "personalize",
            "record.json",
            "--pki",
            "issuer",
            "--virtual",
            "blank.card",
            "--master-key-file",
            "master.key",
            "--face-budget",
            Num("1600"),
            "--signature-budget",
            Num("800"),
        ),
        name="image-budgets",
        env=(_pass("EKTP_DS_PASSPHRASE"),),
    ),
    Spec(
        "pki crl publish",
        (
            "pki",
            "crl",
            "publish",
            InDir("issuer", kind="pki"),
            "-o",
            Out("out.crl", exists=False, allow=()),
            "--days",
            Num("30"),
        ),
        env=(_pass("EKTP_CSCA_PASSPHRASE"),),
    ),
    Spec(
        "pki csca create",
        (
            "pki",
            "csca",
            "create",
            OutDir("newpki"),
            "--country",
            Text("ID", extra=(("three-letters", "IDN"),)),
            "--cn",
            Text("CSCA 2"),
            "--org",
            Text("Org"),
            "--years",
            Num("5"),
            "--document-years",
            Num("10"),
        ),
        env=(_pass("EKTP_CSCA_PASSPHRASE"),),
    ),
    Spec(
        "pki csca create",
        ("pki", "csca", "create", "issuer", "--country", "ID", "--cn", "CSCA 3"),
        name="exists",
        plain=frozenset({FILE}),
    ),
    Spec(
        "pki cvc show",
        (
            "pki",
            "cvc",
            "show",
            In("term/terminal.cvcert", kind="cvc"),
            "--trust",
            In("term/cvca.cvcert", kind="cvc"),
            "--chain",
            In("term/dv.cvcert", kind="cvc"),
            "--at",
            Text("2026-01-01", extra=(("month-13", "2026-13-01"),)),
        ),
    ),
    Spec(
        "pki cvca create",
        (
            "pki",
            "cvca",
            "create",
            Out("new-cvca.cvcert"),
            "--key",
            Out("new-cvca.key"),
            "--country",
            Text("ID"),
            "--mnemonic",
            Text("NEWCVCA"),
            "--sequence",
            Text("00002"),
            "--effective",
            Text("2026-01-01", extra=(("month-13", "2026-13-01"),)),
            "--days",
            Num("365"),
        ),
        env=(_pass("EKTP_CVCA_PASSPHRASE"),),
    ),
    Spec(
        "pki cvca link",
        (
            "pki",
            "cvca",
            "link",
            Out("link.cvcert"),
            "--cvca",
            In("term/cvca.cvcert", kind="cvc"),
            "--cvca-key",
            In("term/cvca.key", kind="key"),
            "--key",
            Out("new.key"),
            "--sequence",
            Text("00002"),
            "--days",
            Num("365"),
        ),
        env=(_pass("EKTP_CVCA_PASSPHRASE"), _pass("EKTP_CVCA_NEW_PASSPHRASE")),
    ),
    Spec(
        "pki ds issue",
        (
            "pki",
            "ds",
            "issue",
            InDir("issuer", kind="pki"),
            "--cn",
            Text("DS 2"),
            "--org",
            Text("Org"),
            "--days",
            Num("30"),
            "--document-years",
            Num("10"),
            "--doc-type",
            Text("P", extra=(("three-letters", "IDX"), ("digits", "12"), ("filler-only", "<<"))),
        ),
        env=(_pass("EKTP_CSCA_PASSPHRASE"), _pass("EKTP_DS_PASSPHRASE")),
    ),
    Spec("pki ds list", ("pki", "ds", "list", InDir("issuer", kind="pki"))),
    Spec(
        "pki ds revoke",
        (
            "pki",
            "ds",
            "revoke",
            InDir("issuer", kind="pki"),
            Text("{ds_serial}", extra=(("not-hex", "xyz"), ("huge", "F" * 5000))),
        ),
    ),
    Spec(
        "pki ds rotate",
        (
            "pki",
            "ds",
            "rotate",
            InDir("issuer", kind="pki"),
            "--cn",
            Text("DS 3"),
            "--days",
            Num("30"),
            "--document-years",
            Num("10"),
            "--doc-type",
            Text("I<", extra=(("lower-case", "id"),)),
            "--destroy-old-key",
        ),
    ),
    Spec(
        "pki dv issue",
        (
            "pki",
            "dv",
            "issue",
            Out("dv2.cvcert"),
            "--cvca",
            In("term/cvca.cvcert", kind="cvc"),
            "--cvca-key",
            In("term/cvca.key", kind="key"),
            "--key",
            Out("dv2.key"),
            "--mnemonic",
            Text("DVTWO"),
            "--days",
            Num("30"),
        ),
        env=(_pass("EKTP_DV_PASSPHRASE"),),
    ),
    Spec(
        "pki dv issue",
        (
            "pki",
            "dv",
            "issue",
            "dv3.cvcert",
            "--cvca",
            "term/cvca.cvcert",
            "--cvca-key",
            "term/cvca.key",
            "--public-key",
            In("term/spare.pub", kind="pubkey"),
            "--mnemonic",
            "DVTHREE",
        ),
        name="public-key",
    ),
    Spec(
        "pki sign-sod",
        (
            "pki",
            "sign-sod",
            InDir("issuer", kind="pki"),
            "--dg",
            In("dg1.bin", kind="dg", prefix="1=", deep=False),
            "--dg",
            "2=dg2.bin",
            "-o",
            Out("out.sod", exists=False),
        ),
        env=(_pass("EKTP_DS_PASSPHRASE"),),
    ),
    Spec(
        "pki sign-sod",
        (
            "pki",
            "sign-sod",
            "issuer",
            "--dg",
            Text("1=dg1.bin", extra=(("no-equals", "1"), ("number-0", "0=dg1.bin"))),
            "--dg",
            "2=dg2.bin",
            "-o",
            "out2.sod",
        ),
        name="dg-spec",
    ),
    Spec(
        "pki terminal issue",
        (
            "pki",
            "terminal",
            "issue",
            Out("t2.cvcert"),
            "--dv",
            In("term/dv.cvcert", kind="cvc"),
            "--dv-key",
            In("term/dv.key", kind="key"),
            "--key",
            Out("t2.key"),
            "--mnemonic",
            Text("TTWO"),
            "--days",
            Num("10"),
        ),
        env=(_pass("EKTP_TERMINAL_PASSPHRASE"),),
    ),
    Spec(
        "pki terminal issue",
        (
            "pki",
            "terminal",
            "issue",
            "t3.cvcert",
            "--dv",
            "term/dv.cvcert",
            "--dv-key",
            "term/dv.key",
            "--public-key",
            In("term/spare.pub", kind="pubkey"),
            "--mnemonic",
            "TTHREE",
        ),
        name="public-key",
    ),
    Spec(
        "pki verify-sod",
        (
            "pki",
            "verify-sod",
            In("sod.bin", kind="der", content=frozenset({FILE, 10})),
            "--dg",
            In("dg1.bin", kind="dg", prefix="1=", deep=False, content=frozenset({FILE, 10})),
            "--dg",
            "2=dg2.bin",
            "--trust",
            InDir("issuer", kind="trust"),
            "--country",
            Text("ID"),
        ),
    ),
    Spec(
        "pki verify-sod",
        (
            "pki",
            "verify-sod",
            "sod.bin",
            "--dg",
            "1=dg1.bin",
            "--dg",
            "2=dg2.bin",
            "--trust",
            "issuer",
            "--master-list",
            In("sb/revocations.p7", kind="der"),
        ),
        name="master-list",
    ),
    Spec(
        "read",
        (
            "read",
            "--virtual",
            In("demo.card", kind="image"),
            "--out",
            OutDir("readout"),
            Text("PUBLIC", codes=frozenset({USAGE})),
            *TIMEOUT,
        ),
    ),
    Spec(
        "read",
        (
            "read",
            "--virtual",
            GENUINE,
            "--can",
            Text("{genuine_can}", codes=frozenset({USAGE, 8})),
            "--pin",
            Text("1234", codes=frozenset({USAGE, 6, 8})),
            "--app",
            "D360000000454B545001",
            "01",
        ),
        name="can",
    ),
    Spec(
        "read",
        (
            "read",
            "--virtual",
            GENUINE,
            "--mrz",
            Text("L898902C3,740812,120415", extra=(("month-13", "L898902C3,741312,120415"),)),
            "DG1",
        ),
        name="mrz",
    ),
    Spec(
        "read",
        (
            "read",
            "--virtual",
            GENUINE,
            "--app",
            Text("emrtd", extra=(("aid", "A000"),)),
            "--can",
            "{genuine_can}",
            "DG1",
        ),
        name="app",
    ),
    Spec(
        "read",
        (
            "read",
            "--virtual",
            GENUINE,
            "--can",
            "{genuine_can}",
            "--pace-mapping",
            # The e-KTP offers Generic Mapping only: CAM is a valid choice it refuses (exit 8).
            Text("gm", codes=frozenset({USAGE, 8}), extra=(("not-offered", "cam"), ("unknown", "dh"))),
            "DG1",
        ),
        name="pace-mapping",
    ),
    Spec("readers", ("readers",), plain=frozenset({0, 3})),
    Spec("record synthetic", ("record", "synthetic", Out("rec.json"), "--seed", Num("3"))),
    Spec(
        "record synthetic",
        ("record", "synthetic", Out("recs.jsonl"), "--jsonl", "--count", Num("3")),
        name="jsonl",
    ),
    Spec("record synthetic", ("record", "synthetic", Out("withfiles.json"), "--files"), name="files"),
    Spec(
        "station",
        (
            "station",
            "--virtual-dir",
            InDir("sb/cards", skip=("empty",)),
            "--trust",
            InDir("sb/pki", kind="trust"),
            "--revocations",
            In("sb/revocations.p7", kind="der", content=frozenset({FILE, 8})),
            *SBTERM,
            "--registry",
            Reg("sb/registry.sqlite", create=True),
            "--pki",
            InDir("issuer", kind="pki"),
            "--master-key-file",
            In("master.key", kind="masterkey"),
            "--cvca",
            In("term/cvca.cvcert", kind="cvc"),
            "--work-dir",
            OutDir("station-work", reach=False),
            "--port",
            Num("0"),
            "--target",
            Num("100"),
            "--desk",
            Text("desk-1"),
            "--operator",
            Text("clerk"),
        ),
    ),
    Spec(
        "station",
        (
            "station",
            "--virtual-dir",
            "sb/cards",
            "--host",
            Text("0.0.0.0", skip=("long",)),  # noqa: S104 - an argument, nothing binds
            "--tls-cert",
            In("tls.pem", kind="pem"),
            "--tls-key",
            In("tls.key", kind="key"),
            "--port",
            "0",
        ),
        name="tls",
    ),
    Spec(
        "trust import",
        (
            "trust",
            "import",
            In("pkd.ldif", kind="ldif"),
            "--trust-dir",
            OutDir("newtrust"),
            "--country",
            Text("ID", extra=(("three-letters", "IDN"), ("lower-case", "id"))),
        ),
    ),
    Spec(
        "trust import",
        # A flipped byte may leave the list readable with a signature that fails: reported, nothing added.
        ("trust", "import", In("ml.der", kind="der", content=frozenset({0, FILE})),
         "--trust-dir", "newtrust"),
        name="master-list",
    ),
    Spec(
        "trust import",
        # Into a trust folder that exists: a spoilt one is refused before anything is written.
        ("trust", "import", "pkd.ldif",
         "--trust-dir", InDir("sb/pki", kind="trust", skip=("missing", "empty"))),
        name="existing",
    ),
    Spec(
        "trust list",
        (
            "trust",
            "list",
            "--trust-dir",
            InDir("sb/pki", kind="trust", skip=("empty",)),
            "--country",
            Text("ID", extra=(("three-letters", "IDN"),)),
        ),
    ),
    Spec(
        "verify",
        (
            "verify",
            "--virtual",
            In(GENUINE, kind="image"),
            "--can",
            Text("{genuine_can}", codes=frozenset({USAGE, 8})),
            "--trust",
            InDir("sb/pki", kind="trust"),
            "--revocations",
            In("sb/revocations.p7", kind="der", content=frozenset({FILE, 8})),
            "--face-out",
            Out("face.jpg", exists=False, names=_FACE_NAMES),
            *SBTERM,
            "--fingerprint",
            In("{genuine_holder}", kind="fmr"),
            *TIMEOUT,
        ),
        env=(_pass("EKTP_TERMINAL_PASSPHRASE"),),
    ),
    Spec(
        "verify",
        (
            "verify",
            "--virtual",
            GENUINE,
            "--can",
            "{genuine_can}",
            "--trust",
            "sb/pki",
            "--face-out",
            Out("face.png", exists=False, names=_FACE_NAMES),
        ),
        name="face-png",
    ),
    Spec(
        "verify",
        (
            "verify",
            "--virtual",
            GENUINE,
            "--mrz",
            Text("L898902C3,740812,120415", extra=(("month-13", "L898902C3,741312,120415"),)),
            "--trust",
            "sb/pki",
        ),
        name="mrz",
    ),
    Spec(
        "verify",
        (
            "verify",
            "--virtual",
            GENUINE,
            "--can",
            "{genuine_can}",
            "--trust",
            "sb/pki",
            "--pace-mapping",
            Text("auto", codes=frozenset({USAGE, 8}), extra=(("not-offered", "im"), ("unknown", "xyz"))),
        ),
        name="pace-mapping",
    ),
    Spec(
        "verify",
        (
            "verify",
            "--virtual",
            GENUINE,
            "--can",
            "{genuine_can}",
            "--master-list",
            In("sb/revocations.p7", kind="der"),
            "--master-list-anchor",
            In("sb/pki/csca.pem", kind="pem"),
        ),
        name="master-list",
    ),
    Spec(
        "virtual blank",
        (
            "virtual",
            "blank",
            Out("new-blank.card"),
            "--serial",
            Text("0011223344556677", extra=(("short", "00"),)),
            "--master-key-file",
            In("master.key", kind="masterkey"),
            "--uid",
            Text("08010203"),
            "--capacity",
            Text("8K", extra=CAPACITY_TEXTS),
        ),
    ),
    Spec("virtual blank", ("virtual", "blank", "env-blank.card"), name="env-key", env=(MASTER_ENV,)),
    Spec(
        "virtual create",
        (
            "virtual",
            "create",
            Out("new.card"),
            "--can",
            Text("123456"),
            "--pin",
            Text("1234"),
            "--mrz",
            Text("L898902C3,740812,120415", extra=(("month-13", "L898902C3,741312,120415"),)),
            "--uid",
            Text("08010203"),
            "--capacity",
            Text("64K", extra=(*CAPACITY_TEXTS, ("demo-too-large", "1K"))),
        ),
    ),
    Spec(
        "virtual serve",
        (
            "virtual",
            "serve",
            In("demo.card", kind="image"),
            "--port",
            Num("35999", skip=("huge-int",)),
            "--connect-timeout",
            Num("0.2"),
        ),
    ),
    Spec("virtual show", ("virtual", "show", In("demo.card", kind="image"))),
)


def all_cases() -> list[Case]:
    return [case for spec in SPECS for case in cases(spec)]


def with_defaults(case: Case, **changes: object) -> Case:
    return replace(case, **changes)  # type: ignore[arg-type]
