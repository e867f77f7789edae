"""The demo behind ``ektp demo``: the distribution desk's main job on a virtual card, end to end.

A throwaway issuer PKI (country signing CA, document signer, CRL: encrypted key files in a folder,
passphrases drawn in this process and never shown), a synthetic citizen record, a blank chip with
its personalisation key diversified from a fresh master key, then personalisation and the clerk's
read back (PACE with the CAN, Passive, Chip and Active Authentication), the card image reloaded from
disk and read back again, and a locked card refusing to be personalised again.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from ektp_card.personalize.issue import CountingTransport

#: INITIALIZE UPDATE with a fixed host challenge: a locked card must refuse it (6985).
_INITIALIZE_UPDATE = bytes.fromhex("8050000010") + bytes(range(16)) + b"\x00"


@dataclass(frozen=True)
class DemoStep:
    """One step of the demo: what was done, whether it behaved as a correct card must, and details."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class DemoReport:
    """The card issued by the demo. ``can`` is what the desk prints on it (never in ``repr``);
    ``apdus`` count personalisation and both read backs."""

    image: Path
    card_serial: str
    can: str = field(repr=False)
    nik: str
    data_groups: tuple[int, ...]
    steps: tuple[DemoStep, ...]
    apdus: int
    seconds: float

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def checks_passed(self) -> int:
        return sum(s.ok for s in self.steps)


def run_demo(workdir: Path, image: Path | None = None, *, seed: int | None = None) -> DemoReport:
    """Issue and verify one virtual card; the PKI folder goes to ``workdir``, the card image to
    ``image`` (default: ``workdir/card.img``). ``seed`` picks the synthetic record (default: random)."""
    from ektp_card.lds.synthetic import synthetic_record
    from ektp_card.personalize import Biometrics, DocumentSigner, personalize, plan_from_record, read_back
    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.signer import KeySpec
    from ektp_card.pki.trust import TrustStore
    from ektp_card.virtual import VirtualCard
    from ektp_card.virtual.perso import blank_card

    started = time.perf_counter()
    image = image or workdir / "card.img"
    steps: list[DemoStep] = []
    # Passphrases live only in this process: the PKI is thrown away with the folder.
    csca_pass, ds_pass = secrets.token_urlsafe(24).encode(), secrets.token_urlsafe(24).encode()
    pki = IssuerPki.create(workdir / "pki", csca_pass, spec=KeySpec.parse("brainpoolP256r1"), country="ID",
                           common_name="e-KTP Demo CSCA (throwaway)")
    pki.issue_document_signer(csca_pass, ds_pass, common_name="e-KTP Demo Document Signer")
    crl = pki.publish_crl(csca_pass)
    trust = TrustStore((pki.csca,), (crl,))
    steps.append(DemoStep("issuer PKI", True, "CSCA, document signer and CRL in a temporary folder"))

    record = synthetic_record(secrets.randbelow(2**31) if seed is None else seed)
    plan = plan_from_record(record, biometrics=Biometrics.BOTH)
    steps.append(DemoStep("synthetic record", record.synthetic, f"NIK {record.nik}, every rule passed"))

    master_key = secrets.token_bytes(16)
    blank_card(master_key).save(image)
    card = VirtualCard.load(image)
    card.power_on()
    counter = CountingTransport(card)
    def signer() -> DocumentSigner:
        return DocumentSigner(*pki.document_signer(None, ds_pass))

    result = personalize(counter, plan, master_key, signer, trust=trust)
    card.power_off()
    card.save(image)
    steps.append(DemoStep("personalise and lock", True,
                          f"{result.apdus} APDUs, {result.bytes_sent} bytes written to the card"))
    if result.verification is not None:
        steps.extend(DemoStep(f"read back: {c.name}", c.status.value == "pass", c.reason)
                     for c in result.verification.checks)

    reloaded = VirtualCard.load(image)
    reloaded.power_on()
    again = CountingTransport(reloaded)
    second = read_back(again, plan.can, trust, expected=plan.data_groups)
    steps.append(DemoStep("image reloaded, read back again", second.ok, second.summary()))
    # A new power-on session, as a desk terminal trying to personalise the card again would have.
    reloaded.power_off()
    reloaded.power_on()
    answer = reloaded.transceive(_INITIALIZE_UPDATE)
    refused = answer[-2:] == b"\x69\x85"
    steps.append(DemoStep("locked card refuses personalisation", refused,
                          f"INITIALIZE UPDATE answered {answer[-2:].hex().upper()}"))
    reloaded.power_off()
    return DemoReport(
        image=image,
        card_serial=result.card_serial,
        can=result.can,
        nik=record.nik,
        data_groups=tuple(n for n, _ in result.data_group_hashes),
        steps=tuple(steps),
        apdus=counter.commands + again.commands + 1,
        seconds=time.perf_counter() - started,
    )
