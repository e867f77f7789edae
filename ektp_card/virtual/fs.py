"""The virtual card's file system: MF, DFs and transparent EFs (ISO/IEC 7816-4 section 7.1).

Files are mutable objects (they are the card's non-volatile memory). Every structural rule - unique
file identifiers, short EF identifiers and DF names, the card's memory capacity - is checked here, so
the CREATE FILE command and programmatic builders (demo card, personalisation, image loading) share
one set of checks. The capacity covers the files and the card's key objects (:class:`KeyStore`), each
charged as :mod:`ektp_card.lds.capacity` says: a write that would pass it is refused whole.
Violations raise the :class:`~ektp_card.errors.ApduError` subclass whose status
word the card would answer with, which is what the command dispatcher turns back into bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from enum import IntEnum

from ektp_card.apdu.sw import SW
from ektp_card.errors import (
    CardFileNotFoundError,
    FileExistsOnCardError,
    IncorrectParametersError,
    NotEnoughMemoryError,
)
from ektp_card.lds.capacity import df_storage, ef_storage, key_storage
from ektp_card.lds.conditions import SecurityAttributes

MF_FID = 0x3F00
#: Identifiers a file may not take: the MF's own, the path escape 3FFF and the RFU value FFFF
#: (ISO/IEC 7816-4 section 7.1.1); 0000 means "current EF" in the odd-INS READ BINARY P1-P2.
RESERVED_FIDS = frozenset({0x0000, MF_FID, 0x3FFF, 0xFFFF})
#: Short EF identifiers are 5 bits; 0 and 31 are not usable (ISO/IEC 7816-4 section 7.1.1).
SFI_RANGE = range(1, 31)
#: A DF name (application identifier) has 1 to 16 bytes (ISO/IEC 7816-4 section 8.2.1.2).
DF_NAME_MAX = 16
#: Default non-volatile memory size available for files.
DEFAULT_CAPACITY = 1024 * 1024


class LifeCycle(IntEnum):
    """Life-cycle status byte (LCS) values, ISO/IEC 7816-4 section 7.4.10."""

    NO_INFORMATION = 0x00
    CREATION = 0x01
    INITIALISATION = 0x03
    OPERATIONAL_DEACTIVATED = 0x04
    OPERATIONAL_ACTIVATED = 0x05
    TERMINATED = 0x0C

    @classmethod
    def from_byte(cls, value: int) -> LifeCycle | None:
        """Decode an LCS byte; ``None`` for RFU and proprietary values.

        Bit 2 is free in the operational states (05/07, 04/06) and bits 2-1 in termination (0C-0F).
        """
        if value in (0x05, 0x07):
            return cls.OPERATIONAL_ACTIVATED
        if value in (0x04, 0x06):
            return cls.OPERATIONAL_DEACTIVATED
        if 0x0C <= value <= 0x0F:
            return cls.TERMINATED
        if value in (0x00, 0x01, 0x03):
            return cls(value)
        return None

    @property
    def usable(self) -> bool:
        """Whether data may be read or written: every state except deactivated and terminated."""
        return self not in (LifeCycle.OPERATIONAL_DEACTIVATED, LifeCycle.TERMINATED)

    @property
    def before_operational(self) -> bool:
        return self in (LifeCycle.CREATION, LifeCycle.INITIALISATION)


class CardFile:
    """Common part of DFs and EFs."""

    def __init__(self, fid: int, access: SecurityAttributes, lcs: LifeCycle) -> None:
        self.fid = fid
        self.access = access
        self.lcs = lcs
        self.parent: DedicatedFile | None = None

    @property
    def is_df(self) -> bool:
        return isinstance(self, DedicatedFile)

    @property
    def path(self) -> tuple[int, ...]:
        """File identifiers from the MF (included) down to this file."""
        chain: list[int] = []
        node: CardFile | None = self
        while node is not None:
            chain.append(node.fid)
            node = node.parent
        return tuple(reversed(chain))

    def ancestors(self) -> Iterator[DedicatedFile]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    @property
    def usable(self) -> bool:
        """Whether this file and every DF above it may be used (not deactivated, not terminated)."""
        return self.lcs.usable and all(df.lcs.usable for df in self.ancestors())

    @property
    def storage(self) -> int:
        """Bytes charged against the card's capacity: a DF's header (its children count for
        themselves)."""
        return df_storage()

    def __repr__(self) -> str:
        path = "/".join(f"{fid:04X}" for fid in self.path)
        return f"<{type(self).__name__} {path} {self.lcs.name}>"


class ElementaryFile(CardFile):
    """A transparent EF: a fixed-size byte string."""

    def __init__(
        self,
        fid: int,
        size: int,
        *,
        sfi: int | None = None,
        access: SecurityAttributes | None = None,
        lcs: LifeCycle = LifeCycle.OPERATIONAL_ACTIVATED,
    ) -> None:
        super().__init__(fid, access or SecurityAttributes(), lcs)
        if size < 0:
            raise ValueError("negative file size")
        self.sfi = sfi
        self.data = bytearray(size)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def storage(self) -> int:
        return ef_storage(self.size)


class DedicatedFile(CardFile):
    """A DF (the MF is the root DF); an application when it has a DF name (AID)."""

    def __init__(
        self,
        fid: int,
        *,
        name: bytes | None = None,
        access: SecurityAttributes | None = None,
        lcs: LifeCycle = LifeCycle.OPERATIONAL_ACTIVATED,
    ) -> None:
        super().__init__(fid, access or SecurityAttributes(), lcs)
        self.name = name
        self.children: list[CardFile] = []

    def child(self, fid: int) -> CardFile | None:
        return next((c for c in self.children if c.fid == fid), None)

    def child_df(self, fid: int) -> DedicatedFile | None:
        found = self.child(fid)
        return found if isinstance(found, DedicatedFile) else None

    def child_ef(self, fid: int) -> ElementaryFile | None:
        found = self.child(fid)
        return found if isinstance(found, ElementaryFile) else None

    def child_by_sfi(self, sfi: int) -> ElementaryFile | None:
        return next((c for c in self.children if isinstance(c, ElementaryFile) and c.sfi == sfi), None)


def _fid_error(fid: int) -> IncorrectParametersError:
    return IncorrectParametersError(SW.INCORRECT_DATA, message=f"file identifier {fid:04X} is reserved")


class FileSystem:
    """The tree under the MF, with builders that enforce ISO/IEC 7816-4 naming rules."""

    def __init__(self, mf: DedicatedFile | None = None, *, capacity: int = DEFAULT_CAPACITY) -> None:
        self.mf = mf or DedicatedFile(MF_FID)
        if self.mf.fid != MF_FID or self.mf.parent is not None:
            raise ValueError("the root of a file system must be a DF with identifier 3F00")
        self.capacity = capacity
        #: The card's key objects, charged against the same memory.
        self.keys = KeyStore(self)

    # --- queries -----------------------------------------------------------------------------

    def walk(self) -> Iterator[CardFile]:
        """Every file, depth first in creation order, starting with the MF."""
        stack: list[CardFile] = [self.mf]
        while stack:
            node = stack.pop()
            yield node
            if isinstance(node, DedicatedFile):
                stack.extend(reversed(node.children))

    def dfs(self) -> list[DedicatedFile]:
        return [f for f in self.walk() if isinstance(f, DedicatedFile)]

    def applications(self, prefix: bytes = b"") -> list[DedicatedFile]:
        """DFs whose name starts with ``prefix`` (every named DF for an empty prefix), in tree order."""
        return [df for df in self.dfs() if df.name is not None and df.name.startswith(prefix)]

    def application(self, aid: bytes) -> DedicatedFile:
        """The DF whose name is exactly ``aid``."""
        for df in self.dfs():
            if df.name == aid:
                return df
        raise CardFileNotFoundError(SW.FILE_NOT_FOUND, message=f"no application {aid.hex().upper()}")

    def get(self, path: Sequence[int], start: DedicatedFile | None = None) -> CardFile:
        """Follow file identifiers from ``start`` (default: the MF, whose own identifier is not part
        of the path); every step but the last must be a DF."""
        node: CardFile = start or self.mf
        for fid in path:
            found = node.child(fid) if isinstance(node, DedicatedFile) else None
            if found is None:
                where = "/".join(f"{f:04X}" for f in path)
                raise CardFileNotFoundError(SW.FILE_NOT_FOUND, message=f"no file at path {where}")
            node = found
        return node

    @property
    def files_used(self) -> int:
        """Bytes the files take (headers and bodies)."""
        return sum(f.storage for f in self.walk())

    @property
    def used(self) -> int:
        """Bytes the files and key objects take."""
        return self.files_used + self.keys.used

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.used)

    def require_room(self, extra: int, what: str) -> None:
        """:class:`NotEnoughMemoryError` (6A84) unless ``extra`` more bytes fit."""
        if extra > 0 and self.used + extra > self.capacity:
            raise NotEnoughMemoryError(
                SW.NOT_ENOUGH_MEMORY,
                message=f"card memory is full: {extra} more bytes needed for {what}, "
                f"{self.free} of {self.capacity} free",
            )

    # --- builders ----------------------------------------------------------------------------

    def _check_new(self, parent: DedicatedFile, fid: int, storage: int) -> None:
        if fid in RESERVED_FIDS or not 0 <= fid <= 0xFFFF:
            raise _fid_error(fid)
        if fid == parent.fid or parent.child(fid) is not None:
            raise FileExistsOnCardError(
                SW.FILE_EXISTS, message=f"file {fid:04X} already exists in DF {parent.fid:04X}"
            )
        self.require_room(storage, f"file {fid:04X}")

    def create_df(
        self,
        parent: DedicatedFile,
        fid: int,
        *,
        name: bytes | None = None,
        access: SecurityAttributes | None = None,
        lcs: LifeCycle = LifeCycle.OPERATIONAL_ACTIVATED,
    ) -> DedicatedFile:
        """Add a DF under ``parent``; ``access`` defaults to the parent's attributes."""
        self._check_new(parent, fid, df_storage())
        if name is not None:
            if not 1 <= len(name) <= DF_NAME_MAX:
                raise IncorrectParametersError(SW.INCORRECT_DATA, message="a DF name has 1 to 16 bytes")
            if any(df.name == name for df in self.dfs()):
                raise FileExistsOnCardError(
                    SW.FILE_EXISTS, message=f"DF name {name.hex().upper()} already exists"
                )
        df = DedicatedFile(fid, name=name, access=access or parent.access, lcs=lcs)
        df.parent = parent
        parent.children.append(df)
        return df

    def create_ef(
        self,
        parent: DedicatedFile,
        fid: int,
        *,
        size: int | None = None,
        data: bytes = b"",
        sfi: int | None = None,
        access: SecurityAttributes | None = None,
        lcs: LifeCycle = LifeCycle.OPERATIONAL_ACTIVATED,
    ) -> ElementaryFile:
        """Add a transparent EF of ``size`` bytes (default ``len(data)``) holding ``data`` at offset 0."""
        size = len(data) if size is None else size
        if size < len(data) or size < 0:
            raise NotEnoughMemoryError(SW.NOT_ENOUGH_MEMORY, message="data longer than the file size")
        self._check_new(parent, fid, ef_storage(size))
        if sfi is not None:
            if sfi not in SFI_RANGE:
                raise IncorrectParametersError(SW.INCORRECT_DATA, message=f"invalid SFI {sfi}")
            if parent.child_by_sfi(sfi) is not None:
                raise FileExistsOnCardError(
                    SW.FILE_EXISTS, message=f"short EF identifier {sfi} already used in DF {parent.fid:04X}"
                )
        ef = ElementaryFile(fid, size, sfi=sfi, access=access or parent.access, lcs=lcs)
        ef.data[: len(data)] = data
        ef.parent = parent
        parent.children.append(ef)
        return ef


class KeyStore(MutableMapping[str, bytes]):
    """The card's key objects by name, charged against its file system's capacity.

    Storing a value that would pass the capacity raises :class:`NotEnoughMemoryError` (6A84) and
    stores nothing; :meth:`update` stores several objects all or none (a key pair with its
    parameters is one write).
    """

    def __init__(self, fs: FileSystem, initial: Mapping[str, bytes] | None = None) -> None:
        self._fs = fs
        self._values: dict[str, bytes] = {}
        if initial:
            self.update(initial)

    def __getitem__(self, name: str) -> bytes:
        return self._values[name]

    def __setitem__(self, name: str, value: bytes) -> None:
        self.update({name: value})

    def __delitem__(self, name: str) -> None:
        del self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        # Names only: the values are keys.
        return f"KeyStore({sorted(self._values)})"

    def storage(self, name: str) -> int:
        """Bytes one key object takes."""
        return key_storage(len(self._values[name]))

    @property
    def used(self) -> int:
        return sum(key_storage(len(v)) for v in self._values.values())

    def growth(self, items: Mapping[str, bytes], remove: Iterable[str] = ()) -> int:
        """How many more bytes the store takes after storing ``items`` and deleting ``remove``."""
        gone = set(remove) - set(items)
        before = sum(self.storage(name) for name in {*items, *gone} if name in self._values)
        return sum(key_storage(len(value)) for value in items.values()) - before

    def store(self, items: Mapping[str, bytes], *, remove: Iterable[str] = ()) -> None:
        """Store ``items`` and delete ``remove`` in one write: all of it, or nothing when the
        objects do not fit (:class:`NotEnoughMemoryError`, 6A84)."""
        remove = tuple(remove)
        names = ", ".join(sorted(items))
        what = f"key object {names}" if len(items) == 1 else f"key objects {names}"
        self._fs.require_room(self.growth(items, remove), what)
        for name in remove:
            self._values.pop(name, None)
        for name, value in items.items():
            self._values[name] = bytes(value)

    def update(  # type: ignore[override]
        self, other: Mapping[str, bytes] | Iterable[tuple[str, bytes]] = (), /, **kwargs: bytes
    ) -> None:
        """Store every object given, or none of them when together they do not fit."""
        items = dict(other.items() if isinstance(other, Mapping) else other)
        items.update(kwargs)
        self.store(items)
