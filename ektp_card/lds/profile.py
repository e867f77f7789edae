"""Card profiles: the applications a terminal knows, their files, and how each file is addressed.

One definition serves the reader (:mod:`ektp_card.session`, :mod:`ektp_card.access`), the personaliser
and the virtual card, so none of them needs the others to know where a file lives. File names follow
ICAO Doc 9303-10 section 4 (EF.COM, EF.SOD and DG1-DG16 in the eMRTD application A0000002471001;
EF.CardAccess, EF.CardSecurity, EF.ATR/INFO and EF.DIR under the MF). The e-KTP application is in
:mod:`ektp_card.lds.ektp` with the rest of that profile.

The demo profile is this project's small test application: its AID is a placeholder, not a registered
identifier (RID D3 60 00 00 00 has the form of a national registration under ISO/IEC 7816-5: "D", the
ISO 3166-1 numeric code 360 for Indonesia, then six digits; the PIX is "EKTP" in ASCII).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ektp_card.apdu.iso7816 import EF_ATR_INFO_FID, EF_ATR_INFO_SFI
from ektp_card.lds.card_access import EF_CARD_ACCESS_FID, EF_CARD_ACCESS_SFI


@dataclass(frozen=True)
class FileRef:
    """A transparent EF to read: under the MF or in the selected application, by short EF
    identifier (preferred: one command) or by file identifier."""

    name: str
    sfi: int | None = None
    fid: int | None = None
    in_mf: bool = False

    def __post_init__(self) -> None:
        if self.sfi is None and self.fid is None:
            raise ValueError("a file needs a short EF identifier or a file identifier")

    @property
    def label(self) -> str:
        """How the file is addressed, e.g. ``MF/SFI 1C`` or ``FID 0105``."""
        where = "MF/" if self.in_mf else ""
        return f"{where}SFI {self.sfi:02X}" if self.sfi is not None else f"{where}FID {self.fid:04X}"


_ALIASES = {"ATR": "ATRINFO"}


def file_key(name: str) -> str:
    """A file name as profiles compare them: ``EF.SOD``, ``sod`` and ``ATR/INFO`` / ``atr`` match."""
    key = name.strip().upper()
    if key.startswith("EF."):
        key = key[3:]
    key = re.sub(r"[./_ -]", "", key)
    return _ALIASES.get(key, key)


@dataclass(frozen=True)
class Application:
    """A card application: its AID, the files it names and what to read when none is asked for;
    ``lds``: every file is one BER-TLV object (ICAO Doc 9303-10 LDS), so its header gives its size."""

    name: str
    aid: bytes
    files: tuple[FileRef, ...] = ()
    default_files: tuple[str, ...] = ()
    lds: bool = False

    def file(self, name: str) -> FileRef | None:
        key = file_key(name)
        return next((f for f in self.files if file_key(f.name) == key), None)

    def data_group(self, number: int) -> FileRef | None:
        """DG``number`` of this application, if it names one."""
        return self.file(f"DG{number}")


#: Files under the MF: EF.CardAccess and EF.CardSecurity (ICAO Doc 9303-10 section 3.11), EF.ATR/INFO
#: and EF.DIR (ISO/IEC 7816-4 section 8.2.1.1).
MF_FILES = (
    FileRef("CardAccess", EF_CARD_ACCESS_SFI, EF_CARD_ACCESS_FID, in_mf=True),
    FileRef("CardSecurity", 0x1D, 0x011D, in_mf=True),
    FileRef("ATRINFO", EF_ATR_INFO_SFI, EF_ATR_INFO_FID, in_mf=True),
    FileRef("DIR", 0x1E, 0x2F00, in_mf=True),
)

#: The eMRTD application (ICAO Doc 9303-10 section 3.6.1).
EMRTD_AID = bytes.fromhex("A0000002471001")
#: ICAO Doc 9303-10 section 4.6: EF.COM 011E / SFI 1E, EF.SOD 011D / SFI 1D, DGn 01nn / SFI n.
EMRTD = Application(
    "eMRTD",
    EMRTD_AID,
    (
        FileRef("COM", 0x1E, 0x011E),
        FileRef("SOD", 0x1D, 0x011D),
        *(FileRef(f"DG{n}", n, 0x0100 + n) for n in range(1, 17)),
    ),
    ("COM", "DG1"),
    lds=True,
)

DEMO_AID = bytes.fromhex("D360000000454B5450")
DEMO_DF_FID = 0xDF01
#: Readable by anyone, never writable.
EF_PUBLIC_FID, EF_PUBLIC_SFI = 0x0101, 1
#: Never readable nor writable from outside.
EF_SECRET_FID, EF_SECRET_SFI = 0x0102, 2
#: 1500 bytes, readable by anyone: takes several READ BINARY rounds.
EF_LARGE_FID, EF_LARGE_SFI = 0x0103, 3
#: 64 bytes anyone may read and update.
EF_SCRATCH_FID, EF_SCRATCH_SFI = 0x0104, 4
#: On a protected demo card with a PIN: readable only after PACE with the PIN.
EF_PRIVATE_FID, EF_PRIVATE_SFI = 0x0105, 5
#: The demo application (``ektp virtual create``) and its protected variant.
DEMO = Application(
    "demo",
    DEMO_AID,
    (
        FileRef("PUBLIC", EF_PUBLIC_SFI, EF_PUBLIC_FID),
        FileRef("SECRET", EF_SECRET_SFI, EF_SECRET_FID),
        FileRef("LARGE", EF_LARGE_SFI, EF_LARGE_FID),
        FileRef("SCRATCH", EF_SCRATCH_SFI, EF_SCRATCH_FID),
        FileRef("PRIVATE", EF_PRIVATE_SFI, EF_PRIVATE_FID),
    ),
    ("PUBLIC",),
)

__all__ = [
    "DEMO",
    "DEMO_AID",
    "DEMO_DF_FID",
    "EF_LARGE_FID",
    "EF_LARGE_SFI",
    "EF_PRIVATE_FID",
    "EF_PRIVATE_SFI",
    "EF_PUBLIC_FID",
    "EF_PUBLIC_SFI",
    "EF_SCRATCH_FID",
    "EF_SCRATCH_SFI",
    "EF_SECRET_FID",
    "EF_SECRET_SFI",
    "EMRTD",
    "EMRTD_AID",
    "MF_FILES",
    "Application",
    "FileRef",
    "file_key",
]
