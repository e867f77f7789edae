"""Card image files: a virtual card's non-volatile state in a versioned JSON document.

Layout (version 2)::

    {"format": "ektp-card/virtual-card-image", "version": 2,
     "config": {"extended_length": true, "uid": null | "hex", "max_command_data": 65535,
                "max_response_data": 65536, "historical_bytes": null | "hex",
                "behaviour": {"rng": "system" | "lcg", "rng_seed": 0, "response_delay_ms": 0,
                              "error_words": {"sm-plain": "6982", ...},
                              "aa_signature": null | "base64"},
                "quirks": {"pace_parameter_id": false, ...}},
     "capacity": 1048576,
     "mf": {"kind": "DF", "fid": "3F00", "name": null | "hex", "lcs": 5,
            "read": "ALWAYS", "update": "NEVER", "admin": "PERSO",
            "children": [{"kind": "EF", "fid": "0101", "sfi": 1 | null, "lcs": 5,
                          "read": ..., "update": ..., "admin": ..., "data": "base64"}, ...]},
     "keys": {"name": "base64", ...}}

"behaviour" holds the programmable-card settings (:class:`~ektp_card.virtual.config.CardBehaviour`);
"quirks", present only on a chip that has some, the ways it departs from the standards
(:class:`~ektp_card.virtual.config.ChipQuirks`; absent: none).
Version 1 images, written before it existed, have none and load with the genuine behaviour; images
are always written in the current version.

"keys" holds the key objects later protocols keep on the card. The file is written to a temporary
file in the same directory (mode 0600: keys live here) and renamed over the old one, so a crash
leaves either the old image or the new one, never half of one.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ektp_card import files
from ektp_card.errors import ApduError, CardImageError
from ektp_card.lds.conditions import AccessCondition, SecurityAttributes
from ektp_card.virtual.config import CardBehaviour, CardConfig, ChipQuirks, FailureKind, RngKind
from ektp_card.virtual.fs import MF_FID, CardFile, DedicatedFile, ElementaryFile, FileSystem, LifeCycle

FORMAT = "ektp-card/virtual-card-image"
VERSION = 2
#: Versions this code reads: version 1 lacks the behaviour section.
READABLE_VERSIONS = (1, 2)
#: The largest memory an image may give its card: what fits in the largest image file read.
MAX_CAPACITY = files.CARD_IMAGE_LIMIT // 2
#: Nesting deeper than this is not a card but a broken (or hostile) file.
_MAX_DEPTH = 16
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")


@dataclass(frozen=True)
class CardImage:
    """What an image file holds."""

    config: CardConfig
    fs: FileSystem
    keys: Mapping[str, bytes]


# --- encoding --------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _hex(data: bytes | None) -> str | None:
    return None if data is None else data.hex().upper()


def _node(f: CardFile) -> dict[str, object]:
    node: dict[str, object] = {
        "kind": "DF" if isinstance(f, DedicatedFile) else "EF",
        "fid": f"{f.fid:04X}",
    }
    if isinstance(f, DedicatedFile):
        node["name"] = _hex(f.name)
    elif isinstance(f, ElementaryFile):
        node["sfi"] = f.sfi
    node.update(
        lcs=int(f.lcs), read=str(f.access.read), update=str(f.access.update), admin=str(f.access.admin)
    )
    if isinstance(f, DedicatedFile):
        node["children"] = [_node(c) for c in f.children]
    elif isinstance(f, ElementaryFile):
        node["data"] = _b64(bytes(f.data))
    return node


def _behaviour(b: CardBehaviour) -> dict[str, object]:
    return {
        "rng": b.rng.value,
        "rng_seed": b.rng_seed,
        "response_delay_ms": b.response_delay_ms,
        "error_words": {kind.value: f"{sw:04X}" for kind, sw in b.error_words.items()},
        "aa_signature": None if b.aa_signature is None else _b64(b.aa_signature),
    }


def _quirks(q: ChipQuirks) -> dict[str, object]:
    return {f.name: getattr(q, f.name) for f in dataclasses.fields(q)}


def encode(image: CardImage) -> bytes:
    """The image document as UTF-8 JSON."""
    c = image.config
    config: dict[str, object] = {
        "extended_length": c.extended_length,
        "uid": _hex(c.uid),
        "max_command_data": c.max_command_data,
        "max_response_data": c.max_response_data,
        "historical_bytes": _hex(c.historical_bytes),
        "behaviour": _behaviour(c.behaviour),
    }
    if not c.quirks.none:
        config["quirks"] = _quirks(c.quirks)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "config": config,
        "capacity": image.fs.capacity,
        "mf": _node(image.fs.mf),
        "keys": {name: _b64(value) for name, value in sorted(image.keys.items())},
    }
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


# --- decoding --------------------------------------------------------------------------------


def _field(obj: Mapping[str, object], key: str) -> object:
    if key not in obj:
        raise CardImageError(f"missing field {key!r}")
    return obj[key]


def _dict(obj: Mapping[str, object], key: str) -> dict[str, object]:
    value = _field(obj, key)
    if not isinstance(value, dict):
        raise CardImageError(f"field {key!r} is not an object")
    return value


def _int(obj: Mapping[str, object], key: str) -> int:
    value = _field(obj, key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CardImageError(f"field {key!r} is not an integer")
    return value


def _bool(obj: Mapping[str, object], key: str) -> bool:
    value = _field(obj, key)
    if not isinstance(value, bool):
        raise CardImageError(f"field {key!r} is not true or false")
    return value


def _str(obj: Mapping[str, object], key: str) -> str:
    value = _field(obj, key)
    if not isinstance(value, str):
        raise CardImageError(f"field {key!r} is not a string")
    return value


def _opt_hex(obj: Mapping[str, object], key: str) -> bytes | None:
    if _field(obj, key) is None:
        return None
    try:
        return bytes.fromhex(_str(obj, key))
    except ValueError:
        raise CardImageError(f"field {key!r} is not hexadecimal") from None


def _base64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise CardImageError(f"{what} is not a string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CardImageError(f"{what} is not base64") from None


def _hex4(text: str) -> int | None:
    """Four hex digits as a number; int(text, 16) alone would take "+0_1" or " 3F0" too."""
    return int(text, 16) if _HEX4.fullmatch(text) else None


def _fid(node: Mapping[str, object]) -> int:
    text = _str(node, "fid")
    fid = _hex4(text)
    if fid is None:
        raise CardImageError(f"file identifier {text[:8]!r} is not four hex digits")
    return fid


def _attributes(node: Mapping[str, object]) -> tuple[SecurityAttributes, LifeCycle]:
    try:
        access = SecurityAttributes(
            AccessCondition.parse(_str(node, "read")),
            AccessCondition.parse(_str(node, "update")),
            AccessCondition.parse(_str(node, "admin")),
        )
    except ValueError:
        raise CardImageError("malformed access condition") from None
    lcs = LifeCycle.from_byte(_int(node, "lcs"))
    if lcs is None:
        raise CardImageError("unknown life-cycle status")
    return access, lcs


def _children(fs: FileSystem, df: DedicatedFile, node: Mapping[str, object], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise CardImageError("file tree too deep")
    children = _field(node, "children")
    if not isinstance(children, list):
        raise CardImageError("field 'children' is not a list")
    for child in children:
        if not isinstance(child, dict):
            raise CardImageError("a file entry is not an object")
        kind = _str(child, "kind")
        fid = _fid(child)
        access, lcs = _attributes(child)
        if kind == "EF":
            sfi = None if _field(child, "sfi") is None else _int(child, "sfi")
            data = _base64(_field(child, "data"), f"content of file {fid:04X}")
            fs.create_ef(df, fid, data=data, sfi=sfi, access=access, lcs=lcs)
        elif kind == "DF":
            sub = fs.create_df(df, fid, name=_opt_hex(child, "name"), access=access, lcs=lcs)
            _children(fs, sub, child, depth + 1)
        else:
            raise CardImageError(f"unknown file kind {kind[:16]!r}")


def _decode_behaviour(raw: Mapping[str, object]) -> CardBehaviour:
    try:
        rng = RngKind(_str(raw, "rng"))
    except ValueError:
        raise CardImageError("unknown random generator kind") from None
    words: dict[FailureKind, int] = {}
    for name, value in _dict(raw, "error_words").items():
        try:
            kind = FailureKind(name)
        except ValueError:
            raise CardImageError(f"unknown failure kind {name[:16]!r}") from None
        word = _hex4(value) if isinstance(value, str) else None
        if word is None:
            raise CardImageError(f"status word for {name!r} is not four hex digits")
        words[kind] = word
    signature = _field(raw, "aa_signature")
    return CardBehaviour(
        rng=rng,
        rng_seed=_int(raw, "rng_seed"),
        response_delay_ms=_int(raw, "response_delay_ms"),
        error_words=words,
        aa_signature=None if signature is None else _base64(signature, "the stored AA signature"),
    )


def _decode_quirks(raw: Mapping[str, object]) -> ChipQuirks:
    known = {f.name: f.type for f in dataclasses.fields(ChipQuirks)}
    unknown = set(raw) - set(known)
    if unknown:
        raise CardImageError(f"unknown chip quirk {sorted(unknown)[0][:32]!r}")
    values: dict[str, bool | int] = {}
    for name, kind in known.items():
        if name in raw:
            values[name] = _bool(raw, name) if kind == "bool" else _int(raw, name)
    return ChipQuirks(**values)  # type: ignore[arg-type]


def _config(doc: Mapping[str, object], version: int) -> CardConfig:
    raw = _dict(doc, "config")
    try:
        behaviour = CardBehaviour() if version < 2 else _decode_behaviour(_dict(raw, "behaviour"))
        quirks = _decode_quirks(_dict(raw, "quirks")) if "quirks" in raw else ChipQuirks()
        return CardConfig(
            extended_length=_bool(raw, "extended_length"),
            uid=_opt_hex(raw, "uid"),
            max_command_data=_int(raw, "max_command_data"),
            max_response_data=_int(raw, "max_response_data"),
            historical_bytes=_opt_hex(raw, "historical_bytes"),
            behaviour=behaviour,
            quirks=quirks,
        )
    except ValueError as exc:
        raise CardImageError(f"invalid configuration: {exc}") from None


def _keys(doc: Mapping[str, object]) -> dict[str, bytes]:
    return {str(name): _base64(value, "a key object") for name, value in _dict(doc, "keys").items()}


def decode(raw: bytes, source: str = "card image") -> CardImage:
    """Parse an image document; :class:`CardImageError` names ``source`` and what is wrong."""
    try:
        doc = files.parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CardImageError(f"{source} is corrupt: not a JSON document") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CardImageError(f"{source} is not an ektp-card virtual card image")
    version = doc.get("version")
    if version not in READABLE_VERSIONS or not isinstance(version, int) or isinstance(version, bool):
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise CardImageError(
            f"{source} has image version {version!r}; this version of ektp-card reads versions {readable}"
        )
    try:
        config = _config(doc, version)
        mf_node = _dict(doc, "mf")
        if _str(mf_node, "kind") != "DF" or _fid(mf_node) != MF_FID:
            raise CardImageError("the root file is not the MF (DF 3F00)")
        access, lcs = _attributes(mf_node)
        mf = DedicatedFile(MF_FID, name=_opt_hex(mf_node, "name"), access=access, lcs=lcs)
        capacity = _int(doc, "capacity")
        if not 0 < capacity <= MAX_CAPACITY:
            raise CardImageError(f"a card's memory is 1 to {MAX_CAPACITY} bytes")
        fs = FileSystem(mf, capacity=capacity)
        _children(fs, mf, mf_node, 1)
        raw_keys = _keys(doc)
        # Here, not at the top: the checks use every protocol's module, which use the card itself.
        from ektp_card.virtual.keycheck import check_keys

        check_keys(raw_keys)
        # Key objects take memory too: an image whose keys do not fit is refused like its files.
        fs.keys.update(raw_keys)
        keys = fs.keys
    except CardImageError as exc:
        # The helpers say what is wrong; the message gains the file's name here.
        raise CardImageError(f"{source} is corrupt: {exc}") from None
    except ApduError as exc:
        # The file-system builders refuse duplicate identifiers, reserved FIDs, overfull memory.
        raise CardImageError(f"{source} is corrupt: invalid file tree ({exc})") from None
    return CardImage(config, fs, keys)


# --- files -----------------------------------------------------------------------------------


def save(path: str | os.PathLike[str], image: CardImage) -> None:
    """Write ``image`` to ``path`` atomically."""
    write_atomic(path, encode(image))


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data``: temporary file (mode 0600) in the same directory, fsync,
    rename. :class:`CardImageError` if that fails; the old file is then untouched."""
    target = Path(path)
    try:
        files.write_atomic(target, data, mode=0o600)
    except OSError as exc:
        raise CardImageError(f"cannot write card image {target}: {exc.strerror or exc}") from None


def load(path: str | os.PathLike[str]) -> CardImage:
    """Read an image file; :class:`CardImageError` if it is missing, not a regular file, larger than
    any card's memory, corrupt or of another version."""
    source = Path(path)
    try:
        raw = files.read_file(source, files.CARD_IMAGE_LIMIT)
    except FileNotFoundError:
        raise CardImageError(f"card image {source} not found") from None
    except OSError as exc:
        raise CardImageError(f"cannot read card image {source}: {exc.strerror or exc}") from None
    return decode(raw, f"card image {source}")
