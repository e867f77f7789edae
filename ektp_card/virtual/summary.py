"""A read-only description of a virtual card, for display (``ektp virtual show``) and JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ektp_card.virtual.card import VirtualCard
from ektp_card.virtual.fs import DedicatedFile, ElementaryFile


@dataclass(frozen=True)
class FileSummary:
    """One file: path from the MF, kind, identifiers, size, life cycle and access conditions."""

    path: str
    kind: str
    fid: int
    depth: int
    name: bytes | None
    sfi: int | None
    size: int | None
    #: Bytes of the card's memory the file takes (header and body, docs/virtual-card.md).
    storage: int
    life_cycle: str
    read: str
    update: str


@dataclass(frozen=True)
class CardSummary:
    """Settings and file tree of a virtual card. Key material is never part of it, only key names."""

    life_cycle: str
    extended_length: bool
    max_command_data: int
    max_response_data: int
    uid: str
    historical_bytes: bytes
    key_names: tuple[str, ...]
    used: int
    capacity: int
    files: tuple[FileSummary, ...]
    files_used: int = 0
    keys_used: int = 0

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.used)

    def to_json(self) -> dict[str, Any]:
        def conv(value: Any) -> Any:
            if isinstance(value, bytes):
                return value.hex().upper()
            if isinstance(value, dict):
                return {k: conv(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [conv(v) for v in value]
            return value

        out: dict[str, Any] = conv(asdict(self))
        out["free"] = self.free
        return out


def summarize(card: VirtualCard) -> CardSummary:
    """Describe ``card`` without changing it."""
    files = []
    for f in card.fs.walk():
        files.append(
            FileSummary(
                path="/".join(f"{fid:04X}" for fid in f.path),
                kind="DF" if isinstance(f, DedicatedFile) else "EF",
                fid=f.fid,
                depth=len(f.path) - 1,
                name=f.name if isinstance(f, DedicatedFile) else None,
                sfi=f.sfi if isinstance(f, ElementaryFile) else None,
                size=f.size if isinstance(f, ElementaryFile) else None,
                storage=f.storage,
                life_cycle=f.lcs.name,
                read=str(f.access.read),
                update=str(f.access.update),
            )
        )
    cfg = card.config
    return CardSummary(
        life_cycle=card.life_cycle.name,
        extended_length=cfg.extended_length,
        max_command_data=cfg.max_command_data,
        max_response_data=cfg.max_response_data,
        uid="random per session" if cfg.uid is None else cfg.uid.hex().upper(),
        historical_bytes=card.ats_historical,
        key_names=tuple(sorted(card.keys)),
        used=card.fs.used,
        capacity=card.fs.capacity,
        files=tuple(files),
        files_used=card.fs.files_used,
        keys_used=card.keys.used,
    )
