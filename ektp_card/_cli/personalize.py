"""ektp personalize: one citizen record becomes a locked, verified e-KTP card (docs/personalisation.md).

Everything is checked before the card is opened: the master key, the record (every rule), the PKI
folder and its CRL, the document signer (passphrase or token PIN, validity, key usage period, key
matching the certificate). Then the library personalises the card, locks it and reads it back as a
clerk would; success is reported only when every read-back check passed.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ektp_card import errors
from ektp_card._cli.options import card_source_options, make_source
from ektp_card._cli.pkcs11 import Pkcs11Choice, open_signer, token_choice, token_options
from ektp_card._cli.pki import DS_PASS, passphrase
from ektp_card._cli.util import Ctx, ExitCode, FilePath, about, explain, fail, read_input

if TYPE_CHECKING:
    from ektp_card.personalize import CardPlan, DocumentSigner, PersoResult
    from ektp_card.pki.trust import TrustStore
    from ektp_card.verify.passive import Policy

#: The steps :func:`ektp_card.personalize.personalize` reports, in order ("erase" only on a restart).
STEPS = ("validate", "authenticate", "erase", "capacity", "write", "keys", "sign", "lock", "verify")
STEP_TEXT = {
    "validate": "Checking the document signer",
    "authenticate": "Authenticating to the blank card",
    "erase": "Erasing an interrupted personalisation",
    "capacity": "Checking that the record fits the card's memory",
    "write": "Writing the data groups",
    "keys": "Generating the chip's key pairs",
    "sign": "Signing and writing EF.SOD",
    "lock": "Storing the CAN and locking the card",
    "verify": "Reading the card back like a clerk",
}
#: The range of --face-budget and --signature-budget: from a thumbnail to the largest face DG2 holds.
IMAGE_BUDGET_MIN, IMAGE_BUDGET_MAX = 200, 1_000_000
#: The steps that write to the card before it is locked: a refusal there leaves it to be redone.
WRITE_STEPS = ("erase", "write", "keys", "sign", "lock")

#: The document signer's key in a token instead of the folder's key file.
DS_TOKEN = token_options(
    "--ds-cert", "Certificate of the token's key (default: the folder's current document signer)."
)

MASTER_KEY_FILE = click.option(
    "--master-key-file", type=FilePath(path_type=Path, dir_okay=False), metavar="FILE",
    help="The issuer's AES personalisation master key (16 or 32 bytes, hex or binary). "
         "Default: hex in the environment variable EKTP_PERSO_MASTER_KEY.",
)


def master_key(path: Path | None) -> bytes:
    """The master key from ``path`` or the environment; exit 7 when missing or malformed."""
    from ektp_card.personalize.master_key import load_master_key

    return load_master_key(path)


def load_trust_point(path: Path) -> bytes:
    """The CVCA certificate file (a binary 7F21 CV certificate), checked as the chip will check it;
    exit 7 when unreadable or not a usable CVCA certificate."""
    from ektp_card.files import CERTIFICATE_LIMIT
    from ektp_card.personalize.plan import check_trust_point

    data = read_input(path, CERTIFICATE_LIMIT, "cannot read the CVCA certificate")
    with about(str(path), errors.PersonalisationError):
        return check_trust_point(data).encode()


def load_plan(
    record_path: Path,
    cvca: bytes | None = None,
    biometrics: str = "on-card",
    *,
    face_budget: int | None = None,
    signature_budget: int | None = None,
    notes: list[str] | None = None,
    pace_mapping: str = "gm",
) -> CardPlan:
    """Read and check the record and lay out its card (with ``cvca`` as the chip's Terminal
    Authentication trust point, the fingerprints where ``biometrics`` says, PACE with ``pace_mapping``);
    exit 7 for an unreadable file, 2 otherwise. With a budget, the face or signature is re-encoded to
    fit it first (:mod:`ektp_card._cli.images`); ``notes`` hears what was done."""
    import dataclasses

    from ektp_card.crypto.pace import ECDH_CAM_AES128, ECDH_GM_AES128, ECDH_IM_AES128
    from ektp_card.lds.record import load_record
    from ektp_card.personalize import Biometrics, plan_from_record
    from ektp_card.personalize.plan import Algorithms

    record = load_record(record_path)
    with about(str(record_path), errors.PersonalisationError):
        if face_budget is not None or signature_budget is not None:
            from ektp_card._cli.images import compact_jpeg

            images = {"face": record.face, "signature": record.signature}
            for field, budget, grey in (("face", face_budget, False), ("signature", signature_budget, True)):
                if budget is None:
                    continue
                before = images[field]
                done = compact_jpeg(before, budget, what=field, greyscale=grey)
                images[field] = done.data
                if notes is not None:
                    how = "kept" if done.quality is None else f"re-encoded at quality {done.quality}"
                    notes.append(f"{field} {len(before)} -> {len(done.data)} bytes "
                                 f"({done.width}x{done.height}, {how})")
            record = dataclasses.replace(record, face=images["face"], signature=images["signature"])
        protocol = {"gm": ECDH_GM_AES128, "im": ECDH_IM_AES128, "cam": ECDH_CAM_AES128}[pace_mapping.lower()]
        return plan_from_record(record, cvca_certificate=cvca, biometrics=Biometrics(biometrics),
                                algorithms=Algorithms(pace_protocol=protocol.oid))


BIOMETRICS = click.option(
    "--biometrics", type=click.Choice(["on-card", "dg3", "both"]), default="on-card", show_default=True,
    help="Where the fingerprints go: on-card, a reference no command reads, compared inside the chip "
         "(VERIFY) for terminals with the verify-biometric right; dg3, the DG3 templates terminals with "
         "read-dg3 copy and compare themselves; both.",
)


def issuer_trust(pki_dir: Path, *, require_crl: bool) -> TrustStore:
    """The CSCA of the folder and its CRL (which must be current unless ``require_crl`` is off)."""
    from cryptography import x509

    from ektp_card.pki.issuer import IssuerPki
    from ektp_card.pki.trust import TrustStore

    # Opening the folder checks that its CRL is this CSCA's (signed by it), the one the read-back
    # will hold the document signer against: a wrong one must stop us before the first card write.
    pki = IssuerPki(pki_dir)
    csca, crl = pki.csca, pki.crl()
    crls: tuple[x509.CertificateRevocationList, ...] = () if crl is None else (crl,)
    if require_crl:
        now = dt.datetime.now(dt.UTC)
        if not crls:
            fail(f"{pki_dir} has no CRL: publish one with `ektp pki crl publish {pki_dir}` "
                 "(or give --no-crl)", ExitCode.FILE)
        next_update = crls[0].next_update_utc
        if next_update is not None and next_update < now:
            fail(f"the CRL in {pki_dir} expired on {next_update:%Y-%m-%d}: publish a new one", ExitCode.FILE)
    return TrustStore((csca,), crls)


def document_signer(
    pki_dir: Path, ds_env: str, hsm: Pkcs11Choice | None, trust: TrustStore
) -> DocumentSigner:
    """Open the document signer (key file of the folder's current signer, or a PKCS#11 key with the
    current signer's certificate or ``--ds-cert``) and check it can sign now; exit 7 otherwise."""
    from cryptography import x509

    from ektp_card.personalize import DocumentSigner, check_document_signer
    from ektp_card.pki.issuer import IssuerPki

    pki = IssuerPki(pki_dir)
    if hsm is None:
        signer, cert = pki.document_signer(None, passphrase(ds_env, "document signer key"))
        ds = DocumentSigner(signer, cert)
    else:
        if hsm.certificate is not None:
            from ektp_card.files import CERTIFICATE_LIMIT

            data = read_input(hsm.certificate, CERTIFICATE_LIMIT, "certificate")
            try:
                cert = x509.load_pem_x509_certificate(data)
            except ValueError as e:
                fail(f"cannot read the certificate {hsm.certificate}: {e}", ExitCode.FILE)
        else:
            cert = pki.current().certificate
        ds = DocumentSigner(open_signer(hsm), cert)
    check_document_signer(ds, at=dt.datetime.now(dt.UTC), trust=trust)
    return ds


class StepTracker:
    """Hears the library's step names: drives the progress display and remembers where a failure hit."""

    def __init__(self, show: Callable[[str], None] | None = None) -> None:
        self.step = "validate"
        self.done: list[str] = []
        self.show = show

    def __call__(self, step: str) -> None:
        if self.step != step:
            self.done.append(self.step)
        self.step = step
        if self.show is not None:
            self.show(step)


@contextmanager
def progress_display(enabled: bool) -> Iterator[Callable[[str], None] | None]:
    """A rich progress bar on stderr over the steps (only on a terminal)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    total = len(STEPS) - 1  # "erase" counts only when it runs
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("Starting", total=total)
        seen: list[str] = []

        def show(step: str) -> None:
            if step == "erase":
                bar.update(task, total=total + 1)
            if seen:
                bar.advance(task)
            seen.append(step)
            bar.update(task, description=STEP_TEXT.get(step, step))

        yield show


def run_personalisation(
    transport: Any, plan: CardPlan, key: bytes, ds: DocumentSigner, trust: TrustStore, policy: Policy,
    tracker: StepTracker,
) -> PersoResult:
    """:func:`ektp_card.personalize.personalize`; a failure on the card says what state it left the
    card in (the exit code is the error's, docs/cli.md)."""
    from ektp_card.personalize import personalize as personalise_card

    try:
        return personalise_card(transport, plan, key, ds, trust=trust, policy=policy, progress=tracker)
    except errors.CardCapacityError as e:
        hint = "nothing was written to the card; --face-budget and --signature-budget make the images smaller"
        raise explain(e, f"{e}; {hint}") from e
    except errors.CardLockedError as e:
        raise explain(e, f"{e}; a locked card is never personalised again") from e
    except errors.PersonalisationError as e:
        if tracker.step not in WRITE_STEPS:
            raise
        state = "the card is not locked, run personalize again to redo it"
        raise explain(e, f"{tracker.step}: {e}; {state}") from e
    except errors.TransportError as e:
        if tracker.step == "verify":
            state = "the card is locked; read it back with `ektp read --can`"
        elif tracker.step == "lock":
            state = "the card may or may not be locked: run personalize again (a locked card says so)"
        else:
            state = "the card is not locked: run personalize again to erase and redo it"
        doing = STEP_TEXT.get(tracker.step, tracker.step).lower()
        raise explain(e, f"the card left the field while {doing} ({e}); {state}") from e


def result_json(result: PersoResult) -> dict[str, Any]:
    checks = result.verification.checks if result.verification else ()
    return {
        "ok": result.verification is not None and result.verification.ok,
        "card_serial": result.card_serial,
        "can": result.can,
        "nik": result.nik,
        "synthetic": result.synthetic,
        "restarted": result.restarted,
        "hash_algorithm": result.hash_algorithm,
        "data_groups": {f"DG{n}": h.hex().upper() for n, h in result.data_group_hashes},
        "checks": [{"name": c.name, "status": c.status.value, "reason": c.reason} for c in checks],
        "apdus": result.apdus,
        "bytes_sent": result.bytes_sent,
        "bytes_received": result.bytes_received,
        "timings": {name: round(seconds, 4) for name, seconds in result.timings},
        "seconds": round(result.seconds, 4),
    }


def print_result(obj: Ctx, result: PersoResult) -> None:
    o = obj.out
    o.print(f"Card {result.card_serial} personalised, locked and verified"
            + (" (synthetic record)" if result.synthetic else ""), markup=False)
    o.print(f"  CAN              {result.can}   (print it on the card)", markup=False)
    if result.nik:
        o.print(f"  NIK              {result.nik}", markup=False)
    groups = ", ".join(f"DG{n}" for n, _ in result.data_group_hashes)
    o.print(f"  data groups      {groups} ({result.hash_algorithm} in EF.SOD)", markup=False)
    if result.restarted:
        o.print("  restarted        an interrupted personalisation was erased first", markup=False)
    if result.verification is not None:
        checks = result.verification.checks
        o.print(f"  read back        {sum(c.status.value == 'pass' for c in checks)}/{len(checks)} checks "
                f"passed: {', '.join(c.name for c in checks)}", markup=False)
    o.print(f"  APDUs            {result.apdus} ({result.bytes_sent} bytes sent, "
            f"{result.bytes_received} received; read back not counted)", markup=False)
    steps = ", ".join(f"{name} {seconds * 1000:.0f}" for name, seconds in result.timings)
    o.print(f"  time             {result.seconds * 1000:.0f} ms ({steps} ms)", markup=False)


@click.command()
@click.argument("record_path", metavar="RECORD.json", type=FilePath(path_type=Path, dir_okay=False))
@click.option("--pki", "pki_dir", required=True, type=FilePath(path_type=Path, file_okay=False),
              metavar="DIR", help="The issuer PKI folder (`ektp pki csca create`): CSCA, signer, CRL.")
@card_source_options
@DS_TOKEN
@MASTER_KEY_FILE
@DS_PASS
@click.option("--no-crl", is_flag=True, help="Read back without requiring a current CRL.")
@click.option("--cvca", "cvca_path", type=FilePath(path_type=Path, dir_okay=False), metavar="FILE",
              help="CVCA certificate (binary CV certificate) the chip trusts for Terminal Authentication; "
                   "without it no terminal ever reads DG3.")
@click.option("--face-budget", type=click.IntRange(IMAGE_BUDGET_MIN, IMAGE_BUDGET_MAX), metavar="BYTES",
              help="Re-encode the face photo to at most BYTES (JPEG, highest quality that fits) before "
                   "the card is planned; 1600 suits an 8 KB chip.")
@click.option("--signature-budget", type=click.IntRange(IMAGE_BUDGET_MIN, IMAGE_BUDGET_MAX), metavar="BYTES",
              help="Likewise for the signature image (greyscale JPEG); 800 suits an 8 KB chip.")
@BIOMETRICS
@click.option("--pace-mapping", type=click.Choice(["gm", "im", "cam"], case_sensitive=False), default="gm",
              show_default=True,
              help="The PACE mapping the card offers (brainpoolP256r1, AES-128): gm, Generic Mapping (the "
                   "e-KTP profile); im, Integrated Mapping; cam, Chip Authentication Mapping, which proves "
                   "the chip genuine inside PACE (ICAO Doc 9303-11 section 4.4.3.5).")
@click.pass_obj
def personalize(
    obj: Ctx, record_path: Path, pki_dir: Path, reader: str | None, nfc: str | None, virtual: Path | None,
    timeout: float, pkcs11_module: str | None, token_label: str | None, key_label: str | None, pin_env: str,
    ds_cert: Path | None, master_key_file: Path | None, ds_env: str, no_crl: bool, cvca_path: Path | None,
    face_budget: int | None, signature_budget: int | None,
    biometrics: str, pace_mapping: str,
) -> None:
    """Personalise a blank card from RECORD.json, lock it, and read it back like a clerk.

    Prints the card serial and the CAN to print on the card. Nothing goes to the card before the
    record, the master key and the document signer have been checked, nor before the card said it
    has the memory the record needs (exit 16 otherwise, the card left blank).
    """
    from ektp_card.device import open_card
    from ektp_card.verify.passive import Policy

    source = make_source(reader, nfc, virtual, timeout)
    hsm = token_choice(pkcs11_module, token_label, key_label, pin_env, ds_cert, "--ds-cert")
    if virtual is not None and not virtual.is_file():
        fail(f"no card image {virtual} (make a blank one with `ektp virtual blank {virtual}`)", ExitCode.FILE)

    key = master_key(master_key_file)
    cvca = load_trust_point(cvca_path) if cvca_path is not None else None
    notes: list[str] = []
    plan = load_plan(record_path, cvca, biometrics, face_budget=face_budget,
                     signature_budget=signature_budget, notes=notes, pace_mapping=pace_mapping)
    trust = issuer_trust(pki_dir, require_crl=not no_crl)
    ds = document_signer(pki_dir, ds_env, hsm, trust)
    policy = Policy(require_crl=not no_crl)

    try:
        with progress_display(True) as show, open_card(source) as transport:
            tracker = StepTracker(show)
            result = run_personalisation(transport, plan, key, ds, trust, policy, tracker)
    finally:
        close = getattr(ds.signer, "close", None)
        if callable(close):
            close()
    if obj.json:
        obj.emit({**result_json(result), "images": notes})
    else:
        print_result(obj, result)
        for note in notes:
            obj.out.print(f"  image            {note}", markup=False)
    sys.stdout.flush()


__all__ = ["MASTER_KEY_FILE", "master_key", "personalize"]
