"""A complete issuing office in one folder, made from synthetic data: for demos and for tests.

:func:`build_sandbox` creates what a station, a clerk or an integrator's tests need to meet real
situations without any real data: an issuer PKI (country signing CA, document signer, CRL, card
revocation list signer), a terminal allowed to read fingerprints (CVCA, DV and terminal CV
certificates; the terminal key held in memory, as a reader's SAM would), a desk registry, virtual
e-KTP cards issued through the desk's own batch issuance, fresh captures of each holder's finger (and
of someone else's), a card reported lost and the signed revocation list naming it, a clone of a genuine
card, and a batch file with records to issue at the desk (two of them invalid).

Everything is marked synthetic; the passphrases exist only in this process. Nothing here is for
production use: the master key and the PKI are thrown away with the folder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cryptography.hazmat.primitives.asymmetric import ec

from ektp_card.crypto.pace import MappingType
from ektp_card.desk.batch import Issuance, PrintedCard, VirtualCardDir, issue_batch
from ektp_card.desk.registry import open_registry
from ektp_card.desk.revocation import registry_entries
from ektp_card.lds.record import CitizenRecord
from ektp_card.lds.synthetic import SyntheticCitizen, impression, synthetic_citizen, synthetic_personal_data
from ektp_card.personalize import DocumentSigner
from ektp_card.pki.certs import EKTP_DOCUMENT_TYPE
from ektp_card.pki.cvc import VERIFY_BIOMETRIC, Role, TerminalType, create_cvca, issue
from ektp_card.pki.issuer import IssuerPki
from ektp_card.pki.revocation import build_revocation_list
from ektp_card.pki.signer import KeySpec, PrivateKeySigner, write_file
from ektp_card.pki.trust import TrustStore
from ektp_card.verify.report import READ_DG3, Terminal

if TYPE_CHECKING:
    from ektp_card.lds.biometrics import FaceImage
    from ektp_card.virtual.card import VirtualCard
    from ektp_card.virtual.config import CardConfig, ChipQuirks

#: Who the sandbox's desk and actor are in its registry.
SANDBOX_DESK = "demo-desk"
SANDBOX_ACTOR = "sandbox"


@dataclass(frozen=True)
class SandboxCard:
    """One issued virtual card: its image, serial, CAN (printed on the card; never in ``repr``), NIK
    and holder's name, and two fresh ISO/IEC 19794-2 captures: the holder's finger and another's."""

    image: Path
    serial: str
    can: str = field(repr=False)
    nik: str
    name: str
    holder_capture: Path
    other_capture: Path
    #: The citizen record the card was personalised from.
    record: CitizenRecord = field(repr=False, compare=False)


@dataclass(frozen=True)
class Sandbox:
    """The folder :func:`build_sandbox` made and what is in it."""

    root: Path
    pki_dir: Path
    #: The verifier's trust folder (the CSCA certificate and its CRL).
    trust_dir: Path
    trust: TrustStore
    terminal: Terminal = field(repr=False)
    cards_dir: Path
    registry: Path
    revocations: Path
    #: Issued cards: the first was handed over, the last reported lost (on the revocation list).
    cards: tuple[SandboxCard, ...]
    #: A clone of the first card: the same data on a chip with other keys.
    clone: Path
    #: Records to issue at the desk (twenty by default), two of them invalid; images inline.
    batch: Path
    master_key: bytes = field(repr=False)
    document_signer: DocumentSigner = field(repr=False)
    cvca_certificate: bytes = field(repr=False)
    #: The passphrase of every key file (CSCA, document and revocation signers, the terminal's key).
    passphrase: bytes = field(repr=False)

    @property
    def terminal_dir(self) -> Path:
        """``cvca.cvcert``, ``dv.cvcert``, ``terminal.cvcert`` and ``terminal.key`` (encrypted)."""
        return self.root / "terminal"

    @property
    def genuine(self) -> SandboxCard:
        return self.cards[0]

    @property
    def lost(self) -> SandboxCard:
        return self.cards[-1]


def make_terminal(
    today: dt.date,
    *,
    rights: tuple[str, ...] = (READ_DG3, VERIFY_BIOMETRIC),
    folder: Path | None = None,
    passphrase: bytes | None = None,
) -> tuple[bytes, Terminal]:
    """A CVCA (its certificate, the cards' Terminal Authentication trust point), a document verifier
    and an inspection terminal with ``rights``, keys in memory. With ``folder`` (and ``passphrase``),
    the certificates are written there (``cvca.cvcert``, ``dv.cvcert``, ``terminal.cvcert``) and the
    terminal's key as an encrypted key file (``terminal.key``), as ``ektp verify --terminal-chain
    dv.cvcert --terminal-chain terminal.cvcert --terminal-key terminal.key`` takes them."""
    from ektp_card.pki.signer import KeyFileSigner, Signer

    cvca_priv, dv_priv = (ec.generate_private_key(ec.BrainpoolP256R1()) for _ in range(2))
    cvca_key, dv_key = PrivateKeySigner(cvca_priv), PrivateKeySigner(dv_priv)
    terminal_key: Signer
    if folder is not None:
        if passphrase is None:
            raise ValueError("a terminal key file needs a passphrase")
        terminal_key = KeyFileSigner.generate(folder / "terminal.key", KeySpec.parse("brainpoolP256r1"),
                                              passphrase)
    else:
        terminal_key = PrivateKeySigner(ec.generate_private_key(ec.BrainpoolP256R1()))
    cvca = create_cvca(cvca_key, holder="IDCVCA00001", terminal_type=TerminalType.IS, rights=list(rights),
                       effective=today - dt.timedelta(days=30), expiration=today + dt.timedelta(days=1000))
    dv = issue(cvca_key, cvca, dv_priv.public_key(), holder="IDDVDEMO0001", role=Role.DV_DOMESTIC,
               rights=list(rights), effective=today - dt.timedelta(days=10),
               expiration=today + dt.timedelta(days=90))
    terminal_public = terminal_key.public_key
    assert isinstance(terminal_public, ec.EllipticCurvePublicKey)  # noqa: S101 - made as EC just above
    terminal = issue(dv_key, dv, terminal_public, holder="IDSTATION001", role=Role.TERMINAL,
                     rights=list(rights), effective=today - dt.timedelta(days=1),
                     expiration=today + dt.timedelta(days=30))
    if folder is not None:
        for name, certificate in (("cvca", cvca), ("dv", dv), ("terminal", terminal)):
            write_file(folder / f"{name}.cvcert", certificate.encode())
    return cvca.encode(), Terminal((dv, terminal), terminal_key)


def _write_media(record: CitizenRecord, media: Path, names: Mapping[str, str]) -> None:
    for key, data in (("face", record.face), ("signature", record.signature),
                      ("fingerprint_1", record.fingerprints[0]), ("fingerprint_2", record.fingerprints[1])):
        write_file(media / names[key], data)


def _batch_rows(rng: random.Random, count: int) -> list[dict[str, object]]:
    """``count`` JSON Lines rows with their images and templates inline (a batch to upload: it names no
    file), sharing one set of them; the second and fifth rows are invalid."""
    shared = synthetic_citizen(rng).record
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    while len(rows) < count:
        personal = synthetic_personal_data(rng)
        if personal.nik in seen:
            continue
        seen.add(personal.nik)
        record = CitizenRecord(personal, shared.face, shared.signature, shared.fingerprints)
        rows.append(record.to_mapping())
    rows[1]["nik"] = "12345"  # too short
    rows[4]["date_of_birth"] = "2999-01-01"  # in the future
    return rows


def build_sandbox(root: Path, *, cards: int = 3, batch_records: int = 20, seed: int | None = None) -> Sandbox:
    """Make the sandbox in ``root`` (an empty or new folder); ``cards`` issued cards (at least 2),
    ``batch_records`` records in the desk's batch file. ``seed`` makes the synthetic people
    reproducible (the keys are always fresh)."""
    if cards < 2:
        raise ValueError("a sandbox needs at least two cards: one handed over, one lost")
    if batch_records < 5:
        raise ValueError("a sandbox batch has at least five records: the second and fifth are invalid")
    rng = random.Random(secrets.randbits(32) if seed is None else seed)  # noqa: S311 - synthetic people
    root.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds the registry, keys and CANs
    today = dt.datetime.now(dt.UTC).date()
    passphrase = secrets.token_urlsafe(24).encode()
    pki = IssuerPki.create(root / "pki", passphrase, spec=KeySpec.parse("brainpoolP256r1"), country="ID",
                           common_name="e-KTP Sandbox CSCA (synthetic)")
    # The office signs e-KTPs and the specimen passports (make_passport) with the one signer.
    pki.issue_document_signer(passphrase, passphrase, common_name="e-KTP Sandbox Document Signer",
                              document_types=(EKTP_DOCUMENT_TYPE, "P"))
    pki.issue_revocation_signer(passphrase, passphrase, common_name="e-KTP Sandbox Revocation Signer")
    crl = pki.publish_crl(passphrase)
    trust = TrustStore((pki.csca,), (crl,))
    signer = DocumentSigner(*pki.document_signer(None, passphrase))
    cvca, terminal = make_terminal(today, folder=root / "terminal", passphrase=passphrase)
    master_key = secrets.token_bytes(16)

    people: list[SyntheticCitizen] = []
    seen: set[str] = set()
    while len(people) < cards:
        citizen = synthetic_citizen(rng)
        if citizen.record.personal.nik not in seen:
            seen.add(citizen.record.personal.nik)
            people.append(citizen)
    # Records name their image and template files relative to the batch file's folder.
    media = root / "media"
    first = media / "first-cards.jsonl"
    lines = []
    for i, citizen in enumerate(people):
        files = {"face": f"p{i}-face.jpg", "signature": f"p{i}-signature.jpg",
                 "fingerprint_1": f"p{i}-fp1.fmr", "fingerprint_2": f"p{i}-fp2.fmr"}
        _write_media(citizen.record, media, files)
        lines.append(json.dumps(citizen.record.to_mapping(files=files)))
    write_file(first, ("\n".join(lines) + "\n").encode())

    cards_dir = root / "cards"
    station = VirtualCardDir(cards_dir, master_key)
    issuance = Issuance(master_key, signer, trust, cvca_certificate=cvca)
    registry_path = root / "registry.sqlite"
    with open_registry(registry_path) as registry:
        summary = issue_batch(first, registry, station, issuance, desk=SANDBOX_DESK, actor=SANDBOX_ACTOR)
        issued = [o for o in summary.outcomes if o.serial is not None and o.status.value == "issued"]
        if len(issued) != cards:
            raise RuntimeError(f"the sandbox issued {len(issued)} of {cards} cards")
        made: list[SandboxCard] = []
        captures = root / "captures"
        for outcome, citizen in zip(issued, people, strict=True):
            serial = outcome.serial
            assert serial is not None  # noqa: S101 - issued outcomes carry their serial
            printed = PrintedCard.load(station.print_path(serial))
            holder = captures / f"{serial}-holder.fmr"
            other = captures / f"{serial}-other-person.fmr"
            write_file(holder, impression(citizen.fingers[0], rng).record.encode())
            stranger = people[(people.index(citizen) + 1) % len(people)]
            write_file(other, impression(stranger.fingers[0], rng).record.encode())
            personal = citizen.record.personal
            image = station.card_path(serial)
            made.append(SandboxCard(image, serial, printed.can, personal.nik, personal.name, holder, other,
                                    citizen.record))
        for card in (made[0], made[-1]):
            registry.hand_over(card.serial, desk=SANDBOX_DESK, actor=SANDBOX_ACTOR)
        registry.report_lost(made[-1].serial, "LP/B/0001/XII/2026/SANDBOX", desk=SANDBOX_DESK,
                             actor=SANDBOX_ACTOR)
        entries, _ = registry_entries(registry)
    rs_signer, rs_cert = pki.revocation_signer(passphrase)
    revocations = root / "revocations.p7"
    write_file(revocations, build_revocation_list(entries, rs_signer, rs_cert,
                                                  sequence=pki.next_revocation_list_number()))

    from ektp_card.audit.attacks import harvest_card, make_clone

    clone = cards_dir / f"clone-of-{made[0].serial}.card"
    make_clone(harvest_card(made[0].image, made[0].can)).save(clone)

    batch = media / "batch.jsonl"
    rows = _batch_rows(rng, batch_records)
    write_file(batch, "".join(json.dumps(row) + "\n" for row in rows).encode())
    return Sandbox(root, root / "pki", root / "pki", trust, terminal, cards_dir, registry_path, revocations,
                   tuple(made), clone, batch, master_key, signer, cvca, passphrase)


#: The specimen MRZ of ICAO Doc 9303-3 Appendix B (TD3), for synthetic passports.
SPECIMEN_MRZ = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<"
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10"
)
#: EF.COM of a synthetic passport: LDS 1.7, Unicode 4.0.0, DG1, DG2, DG11, DG12, DG15.
_PASSPORT_COM = bytes.fromhex("60175F0104303130375F36063034303030305C056175" "6B6C6F")


def make_passport(
    sandbox: Sandbox,
    *,
    pace: bool | MappingType = False,
    seed: int = 3,
    face: FaceImage | None = None,
    signature: bytes | None = None,
    config: CardConfig | None = None,
    aa_rsa_bits: int = 2048,
    cam_key_in: Literal["dg14", "card-security", "both"] = "both",
) -> VirtualCard:
    """An ICAO passport (eMRTD application) of the ICAO specimen, signed by the sandbox's document
    signer: DG1 (the MRZ), DG2 (a synthetic JPEG face, or ``face``: a JPEG 2000 one, say), DG11 and
    DG12 (additional personal and document details), DG15 (an RSA Active Authentication key made on the
    chip, ``aa_rsa_bits`` long), EF.COM and EF.SOD; opened with BAC, or PACE with the MRZ (``pace``:
    ``True`` for Generic Mapping, or the :class:`~ektp_card.crypto.pace.MappingType` to offer,
    brainpoolP256r1 with AES-128). Chip Authentication Mapping adds the chip's Chip Authentication key,
    which PACE-CAM proves, where ``cam_key_in`` says: ``"card-security"`` (EF.CardSecurity in the MF,
    signed by the document signer, read after PACE: what ICAO Doc 9303-11 requires of a CAM chip),
    ``"dg14"`` (DG14, under EF.SOD) or ``"both"``. With ``signature`` (an image) it has DG7, the displayed
    signature, too. ``config`` makes the chip of another make (a
    :class:`~ektp_card.virtual.config.CardConfig`, with its quirks). Its MRZ is :data:`SPECIMEN_MRZ`."""
    from ektp_card.crypto.mrz import MrzInfo
    from ektp_card.crypto.pace import ECDH_CAM_AES128, ECDH_GM_AES128, ECDH_IM_AES128
    from ektp_card.ec import BRAINPOOLP256R1
    from ektp_card.lds.card_access import PaceInfo
    from ektp_card.lds.card_security import CARD_SECURITY_FID, CARD_SECURITY_SFI, build_card_security
    from ektp_card.lds.conditions import BAC, PACE, AccessCondition, SecurityAttributes
    from ektp_card.lds.dg14 import Dg14
    from ektp_card.lds.ektp import Com, encode_dg2, encode_dg7
    from ektp_card.lds.emrtd import encode_dg11, encode_dg12, encode_emrtd_dg1
    from ektp_card.lds.profile import EMRTD_AID
    from ektp_card.lds.sod import build_sod
    from ektp_card.lds.synthetic import face_photo
    from ektp_card.virtual.aa import install_active_authentication
    from ektp_card.virtual.bac import enable_bac
    from ektp_card.virtual.ca import install_chip_authentication
    from ektp_card.virtual.card import VirtualCard
    from ektp_card.virtual.demo import demo_card
    from ektp_card.virtual.pace import install_pace

    mrz = MrzInfo.from_mrz(SPECIMEN_MRZ[:44] + "\n" + SPECIMEN_MRZ[44:])
    always, never = AccessCondition.ALWAYS, AccessCondition.NEVER
    opened = AccessCondition.require(BAC) | AccessCondition.require(PACE)
    card = demo_card()
    if config is not None:
        card = VirtualCard(card.fs, config)
    readable = SecurityAttributes(always, never, never)
    app = card.fs.create_df(card.fs.mf, 0xDF02, name=EMRTD_AID, access=readable)
    mapping = MappingType.GM if pace is True else pace or None
    extra: dict[int, bytes] = {}
    if mapping is None:
        enable_bac(card, mrz)
    else:
        protocol = {MappingType.GM: ECDH_GM_AES128, MappingType.IM: ECDH_IM_AES128}
        protocol[MappingType.CAM] = ECDH_CAM_AES128
        install_pace(card, mrz=mrz, infos=(PaceInfo(protocol[mapping].oid, 2, 13),))
        if mapping is MappingType.CAM:
            if cam_key_in not in ("dg14", "card-security", "both"):
                raise ValueError(f"cam_key_in is dg14, card-security or both, not {cam_key_in!r}")
            ca_info, ca_public = install_chip_authentication(card, curve=BRAINPOOLP256R1)
            if cam_key_in != "card-security":
                extra[14] = Dg14.of((ca_info, ca_public)).encode()
            if cam_key_in != "dg14":
                infos = Dg14.of((PaceInfo(protocol[mapping].oid, 2, 13), ca_info, ca_public))
                signer = sandbox.document_signer
                card.fs.create_ef(card.fs.mf, CARD_SECURITY_FID, sfi=CARD_SECURITY_SFI,
                                  data=build_card_security(infos, signer.signer, signer.certificate),
                                  access=SecurityAttributes(AccessCondition.require(PACE), never))
    dg15, _ = install_active_authentication(card, rsa_bits=aa_rsa_bits, hash_name="sha256")
    rng = random.Random(seed)  # noqa: S311 - a synthetic face
    dg11 = encode_dg11(full_name="ERIKSSON<<ANNA<MARIA", place_of_birth="ZENITH", date_of_birth="19740812",
                       profession="SYNTHETIC TEST PERSON")
    dg12 = encode_dg12(issuing_authority="UTOPIA PASSPORT OFFICE (SYNTHETIC)", date_of_issue="20120416")
    photo = face if face is not None else face_photo(rng, (96, 128))
    groups = {1: encode_emrtd_dg1(SPECIMEN_MRZ), 2: encode_dg2(photo), 11: dg11, 12: dg12, 15: dg15.encode()}
    groups.update(extra)
    com = _PASSPORT_COM
    if signature is not None:
        groups[7] = encode_dg7(signature)
    if set(groups) != {1, 2, 11, 12, 15}:
        tags = {1: 0x61, 2: 0x75, 7: 0x67, 11: 0x6B, 12: 0x6C, 14: 0x6E, 15: 0x6F}
        com = Com(tuple(tags[n] for n in sorted(groups)), "0107", "040000").encode()
    signer = sandbox.document_signer
    sod = build_sod(groups, signer.signer, signer.certificate)
    for sfi, data in ({0x1E: com, 0x1D: sod} | groups).items():
        card.fs.create_ef(app, 0x0100 + sfi, data=data, sfi=sfi, access=SecurityAttributes(opened, never))
    return card


def chip_quirks() -> dict[str, ChipQuirks]:
    """The chip quirks of docs/chip-quirks.md by name, each as a chip that has it (read limits and
    response parts of 128 bytes)."""
    from ektp_card.virtual.config import ChipQuirks

    return {
        "pace-parameter-id": ChipQuirks(pace_parameter_id=True),
        "extended-length-refused": ChipQuirks(extended_length_refused=True),
        "end-of-file-warning": ChipQuirks(end_of_file_warning=True),
        "response-chunk": ChipQuirks(response_chunk=0x80),
        "errors-outside-ok": ChipQuirks(errors_outside_ok=True),
        "read-limit": ChipQuirks(read_limit=0x80),
        "read-limit-6c": ChipQuirks(read_limit=0x80, read_limit_word=0x6C00),
    }


def make_quirky(card: VirtualCard, quirks: ChipQuirks | str) -> VirtualCard:
    """A copy of ``card`` (files, keys, settings) on a chip with ``quirks`` (or the quirk of that name,
    :func:`chip_quirks`): what a reader meets from another chip maker. :class:`ValueError` for an
    unknown name."""
    from ektp_card.virtual.card import VirtualCard

    if isinstance(quirks, str):
        known = chip_quirks()
        if quirks not in known:
            raise ValueError(f"unknown chip quirk {quirks!r}; known: {', '.join(known)}")
        quirks = known[quirks]
    copy = VirtualCard.loads(card.dumps())
    return VirtualCard(copy.fs, dataclasses.replace(copy.config, quirks=quirks), keys=copy.keys)


def make_forged(image: Path) -> VirtualCard:
    """The card of ``image`` with one printed character of DG1 changed, EF.SOD left as it was: what a
    forger who rewrites the data (but cannot sign it) makes. A verifier must call it forged."""
    from ektp_card.lds.ektp import EKTP_AID, TAG_DG1
    from ektp_card.virtual.card import VirtualCard

    card = VirtualCard.load(image)
    dg1 = card.fs.application(EKTP_AID).child_ef(0x0101)
    if dg1 is None or not dg1.data or dg1.data[0] != TAG_DG1:
        raise ValueError(f"{image} holds no e-KTP DG1")
    data = bytes(dg1.data)
    # The last byte of DG1 is inside the last printed field's value: change it to another letter.
    dg1.data[len(data) - 1] = ord("X") if data[-1] != ord("X") else ord("Y")
    return card


__all__ = [
    "SANDBOX_ACTOR",
    "SANDBOX_DESK",
    "SPECIMEN_MRZ",
    "Sandbox",
    "SandboxCard",
    "build_sandbox",
    "chip_quirks",
    "make_forged",
    "make_passport",
    "make_quirky",
    "make_terminal",
]
