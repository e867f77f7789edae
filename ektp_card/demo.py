"""The demo session behind ``ektp demo``: a virtual card written to an image, read back, exercised.

It runs the same APDUs a reader would send and reports what happened, step by step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ektp_card.apdu.iso7816 import CardInfo, Iso7816Session
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.transport import Transport
from ektp_card.errors import SecurityStatusNotSatisfiedError


@dataclass(frozen=True)
class DemoStep:
    """One step of the demo: what was done, whether it behaved as a correct card must, and details."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class DemoReport:
    image: Path
    atr: bytes
    card_info: CardInfo
    steps: tuple[DemoStep, ...]
    apdus: int
    seconds: float

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)


@dataclass
class _Counter:
    """Counts APDUs on their way to the card."""

    inner: Transport
    count: int = field(default=0)

    def transceive(self, command: bytes) -> bytes:
        self.count += 1
        return self.inner.transceive(command)


def run_demo(image: Path) -> DemoReport:
    """Create a demo card at ``image``, load it back as a new session and exercise it."""
    from ektp_card.virtual import DEMO_AID, VirtualCard, demo_card
    from ektp_card.virtual.demo import (
        EF_LARGE_SFI,
        EF_PUBLIC_SFI,
        EF_SCRATCH_FID,
        EF_SECRET_SFI,
        LARGE_CONTENT,
        PUBLIC_CONTENT,
    )

    demo_card().save(image)
    started = time.perf_counter()
    card = VirtualCard.load(image)
    atr = card.power_on()
    counter = _Counter(card)
    session = Iso7816Session(ApduProtocol(counter))
    steps: list[DemoStep] = []

    session.select_mf()
    info = session.read_card_info()
    steps.append(DemoStep("EF.ATR/INFO", True, f"extended length {'on' if info.extended_length else 'off'}, "
                          f"largest read {session.max_read} bytes"))
    session.select_aid(DEMO_AID)
    steps.append(DemoStep("SELECT application", True, DEMO_AID.hex().upper()))
    public = session.read_file(sfi=EF_PUBLIC_SFI)
    text = repr(public.decode(errors="replace"))
    steps.append(DemoStep("READ EF.PUBLIC by SFI", public == PUBLIC_CONTENT, text))
    large = session.read_file(sfi=EF_LARGE_SFI)
    steps.append(DemoStep("READ EF.LARGE", large == LARGE_CONTENT, f"{len(large)} bytes"))
    try:
        session.read_file(sfi=EF_SECRET_SFI)
        steps.append(DemoStep("EF.SECRET refused", False, "the card returned a secret file"))
    except SecurityStatusNotSatisfiedError as e:
        steps.append(DemoStep("EF.SECRET refused", True, f"{e.sw:04X} security status not satisfied"))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S").encode()
    session.select_ef(EF_SCRATCH_FID)
    session.update_binary(0, stamp)
    back = session.read_binary(0, len(stamp))
    steps.append(DemoStep("UPDATE and read back EF.SCRATCH", back == stamp, stamp.decode()))
    c1, c2 = session.get_challenge(), session.get_challenge()
    fresh = c1 != c2 and len(c1) == 8
    steps.append(DemoStep("GET CHALLENGE twice", fresh, "two different 8-byte challenges"))
    card.power_off()
    card.save(image)

    reloaded = VirtualCard.load(image)
    reloaded.power_on()
    again = Iso7816Session(ApduProtocol(reloaded))
    again.select_aid(DEMO_AID)
    again.select_ef(EF_SCRATCH_FID)
    kept = again.read_binary(0, len(stamp)) == stamp
    steps.append(DemoStep("image keeps the write", kept, f"reloaded {image.name}"))
    return DemoReport(image, atr, info, tuple(steps), counter.count, time.perf_counter() - started)
