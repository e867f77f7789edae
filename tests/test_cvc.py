"""CV certificates for Terminal Authentication (BSI TR-03110-3 appendix C): exact encodings, round trips,
chain verification and its refusals; OpenPACE's cvc-print and cvc-create as independent judges; CVCA
keys in SoftHSM2; the `ektp pki cvca | dv | terminal | cvc` commands."""

from __future__ import annotations

import datetime as dt
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ektp_card._cli import main
from ektp_card.apdu.tlv import Tlv
from ektp_card.ec import BRAINPOOLP256R1, SECP384R1
from ektp_card.errors import LdsFormatError, PkiError
from ektp_card.oid import decode_oid, encode_oid
from ektp_card.pki.cvc import (
    ID_DESCRIPTION,
    ID_EKTP_AUTHORIZATION,
    ID_IS,
    ID_TA_ECDSA_SHA_256,
    ID_TA_ECDSA_SHA_384,
    ID_TA_ECDSA_SHA_512,
    CertificateBody,
    Chat,
    CvCertificate,
    CvExtension,
    CvPublicKey,
    Role,
    TerminalType,
    create_cvca,
    create_link,
    decode_date,
    encode_date,
    holder_reference,
    issue,
    sign,
    split_reference,
    verify_chain,
)
from ektp_card.pki.pkcs11 import Pkcs11Signer
from ektp_card.pki.signer import KeySpec, PrivateKeySigner

if TYPE_CHECKING:
    from fixtures.tools import SoftHsmToken

IS, AT, ST = TerminalType.IS, TerminalType.AT, TerminalType.ST
D0 = dt.date(2026, 1, 15)
RECENT = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=5)
INSTALL_HINT = "install it with `apt-get install openpace` (it provides cvc-create and cvc-print)"

# A chain made by OpenPACE 1.1.2 `cvc-create` (brainpoolP256r1, ECDSA_SHA_256): CVCA IDCVCA00001 (IS,
# read fingerprint + iris, 2026-01-01..2028-12-31) -> domestic DV IDDVPOL00001 (fingerprint only,
# 2026-02-01..2026-05-31) -> terminal IDGATE000001 (fingerprint + iris, 2026-03-01..2026-03-31).
OPENPACE_CVCA = bytes.fromhex(
    "7f218201ac7f4e8201645f290100420b49444356434130303030317f4982011d060a04007f000702020202038120a9fb"
    "57dba1eea9bc3e660a909d838d726e3bf623d52620282013481d1f6e537782207d5a0975fc2c3057eef67530417affe7"
    "fb8055c126dc5c6ce94a4b44f330b5d9832026dc5c6ce94a4b44f330b5d9bbd77cbf958416295cf7e1ce6bccdc18ff8c"
    "07b68441048bd2aeb9cb7e57cb2c4b482ffc81b7afb9de27e1e3bd23c23a4453bd9ace3262547ef835c3dac4fd97f846"
    "1a14611dc9c27745132ded8e545c1d54c72f0469978520a9fb57dba1eea9bc3e660a909d838d718c397aa3b561a6f790"
    "1e0e82974856a786410472f2d720d6e739afd15ea71eb5909212e49ea21682255011fdc1c5d1dbe15add5bd39a2bd36f"
    "614ad19f23f525ba1cecd6daa07b5a1c6d78352cf606924a28f18701015f200b49444356434130303030317f4c0e0609"
    "04007f0007030102015301c35f25060206000100015f24060208010203015f374091b7527ef2a63991ecd864a8f7a8ce"
    "c9526f83233f004cd2a1a4c179712e3f3a8b1da412e681b4cb035a14b7640fbb1502609805da15d6829c701df801787b"
    "6c"
)
OPENPACE_DV = bytes.fromhex(
    "7f2181dc7f4e81955f290100420b49444356434130303030317f494f060a04007f000702020202038641049d1b68030f"
    "22871bc047737fe8dac95c898f9486446f1252a8edd4fedf708daa2b40a0f3288a42931e477a352dc3efe001ac07b16e"
    "d40a1e8fb5c6eccecbae4f5f200c49444456504f4c30303030317f4c0e060904007f0007030102015301815f25060206"
    "000200015f24060206000503015f37403809d4278a92caf1b5c14b77b70ccfbae4c371b9f16451f3f76c1aef825f72de"
    "7bf76dbde67cde287a61dd40dc80f50b3dec2101da3e961388e14c61a8fa583a"
)
OPENPACE_TERMINAL = bytes.fromhex(
    "7f2181dd7f4e81965f290100420c49444456504f4c30303030317f494f060a04007f000702020202038641041e187626"
    "57b9e3455eab2c9d2b5616e57555a8a19271973e4060f5cc7de35bfba62654e318550c3bcb61e889c542cba15696d063"
    "b2a25cbef9dafc87ee824a6c5f200c4944474154453030303030317f4c0e060904007f0007030102015301035f250602"
    "06000300015f24060206000303015f374038eb8518e1eacce1c6bdbee75f677131f3dc86791ec9f8ba53ad7c7fdde931"
    "654856351ef8bf1dc8a2793d0d068e423d5149495bbec8a128a2141eb0691f5285"
)


@cache
def key(spec: str, n: int = 0) -> PrivateKeySigner:
    """Made once per test session per (spec, n): RSA generation is the slow part."""
    return PrivateKeySigner(KeySpec.parse(spec).generate())


def pub(signer: PrivateKeySigner | Pkcs11Signer) -> ec.EllipticCurvePublicKey:
    k = signer.public_key
    assert isinstance(k, ec.EllipticCurvePublicKey)
    return k


@dataclass(frozen=True)
class Chain:
    cvca_key: PrivateKeySigner
    dv_key: PrivateKeySigner
    terminal_key: PrivateKeySigner
    cvca: CvCertificate
    dv: CvCertificate
    terminal: CvCertificate


@cache
def chain(curve: str = "brainpoolP256r1", start: dt.date = D0) -> Chain:
    """CVCA (IS, DG3 + DG4) -> domestic DV (DG3 + DG4) -> terminal (DG3), keys made once per session.

    The dates count from ``start``: D0 for the library's tests, which name the day they check; a few
    days ago for OpenPACE, which checks DV and terminal certificates against today's date."""
    cvca_key, dv_key, term_key = key(curve, 30), key(curve, 31), key(curve, 32)
    cvca = create_cvca(
        cvca_key,
        holder="IDCVCA00001",
        terminal_type=IS,
        rights=["read-dg3", "read-dg4"],
        effective=start,
        expiration=start + dt.timedelta(days=3 * 365),
    )
    dv = issue(
        cvca_key,
        cvca,
        pub(dv_key),
        holder="IDDVPOL00001",
        role=Role.DV_DOMESTIC,
        rights=["read-dg3", "read-dg4"],
        effective=start,
        expiration=start + dt.timedelta(days=89),
    )
    term = issue(
        dv_key,
        dv,
        pub(term_key),
        holder="IDGATE000001",
        role=Role.TERMINAL,
        rights=["read-dg3"],
        effective=start + dt.timedelta(days=5),
        expiration=start + dt.timedelta(days=34),
    )
    return Chain(cvca_key, dv_key, term_key, cvca, dv, term)


def craft(
    issuer_key: PrivateKeySigner,
    issuer: CvCertificate,
    subject_key: PrivateKeySigner,
    *,
    role: Role,
    holder: str = "IDCRAFT00001",
    car: str | None = None,
    chat: Chat | None = None,
    effective: dt.date = D0,
    expiration: dt.date = D0 + dt.timedelta(days=60),
    with_domain: bool = False,
) -> CvCertificate:
    """A certificate signed without :func:`issue`'s policy checks, for chains that must be refused."""
    body = CertificateBody(
        car or issuer.chr,
        CvPublicKey.from_key(pub(subject_key), with_domain=with_domain),
        holder,
        chat or Chat.of(issuer.chat.terminal_type, role),
        effective,
        expiration,
    )
    return sign(body, issuer_key, issuer.public_key)


# --- exact encodings ---------------------------------------------------------------------------------------


def test_field_encodings() -> None:
    assert encode_date(dt.date(2026, 11, 22)) == bytes.fromhex("020601010202")
    assert decode_date(bytes.fromhex("020901020301")) == dt.date(2029, 12, 31)
    for bad in (
        "02060101020a",
        "020601030101",
        "0206010102",
        "020602020300",
    ):  # digit, month 13, short, Feb 30
        with pytest.raises(LdsFormatError):
            decode_date(bytes.fromhex(bad))
    with pytest.raises(PkiError, match="2000-2099"):
        encode_date(dt.date(2100, 1, 1))

    assert encode_oid(ID_TA_ECDSA_SHA_256) == bytes.fromhex("04007f00070202020203")
    assert encode_oid(ID_TA_ECDSA_SHA_512) == bytes.fromhex("04007f00070202020205")
    assert encode_oid(ID_IS) == bytes.fromhex("04007f000703010201")
    assert encode_oid("1.2.840.10045.3.1.7") == bytes.fromhex("2a8648ce3d030107")
    assert decode_oid(bytes.fromhex("2a8648ce3d030107")) == "1.2.840.10045.3.1.7"
    for bad in ("2a8648ce", "2a80863d", ""):
        with pytest.raises(LdsFormatError):
            decode_oid(bytes.fromhex(bad))

    assert holder_reference("ID", "DUKCAPIL", 1) == "IDDUKCAPIL00001"
    assert split_reference("IDDVPOL00001") == ("ID", "DVPOL", "00001")
    assert split_reference("DECVCAeID00102") == ("DE", "CVCAeID", "00102")
    for args in (
        ("id", "X", "00001"),
        ("ID", "TENLETTERS", "00001"),
        ("ID", "X", "0001"),
        ("ID", "X", "00-01"),
    ):
        with pytest.raises(PkiError):
            holder_reference(*args)


@pytest.mark.parametrize(
    ("chat", "encoding"),
    [
        # IS (TR-03110-3 section C.4.1): role bits 7-6, bit 1 DG4 (iris), bit 0 DG3 (fingerprints)
        (Chat.of(IS, Role.TERMINAL, ["read-dg3", "read-dg4"]), "7f4c0e060904007f000703010201530103"),
        (Chat.of(IS, Role.DV_DOMESTIC, ["read-dg3"]), "7f4c0e060904007f000703010201530181"),
        (Chat.of(IS, Role.DV_FOREIGN, ["read-dg4"]), "7f4c0e060904007f000703010201530142"),
        (Chat.of(IS, Role.CVCA, ["read-dg3", "read-dg4"]), "7f4c0e060904007f0007030102015301c3"),
        (Chat.of(IS, Role.TERMINAL), "7f4c0e060904007f000703010201530100"),
        # AT (section C.4.2): 5 bytes; bit 8 read DG1, bit 0 age verification, bit 37 write DG17
        (
            Chat.of(AT, Role.CVCA, ["read-dg1", "age-verification"]),
            "7f4c12060904007f0007030102025305c000000101",
        ),
        (
            Chat.of(AT, Role.TERMINAL, ["write-dg17", "read-dg21", "install-qualified-cert"]),
            "7f4c12060904007f00070301020253052010000080",
        ),
        # ST (section C.4.3): bit 0 electronic signature, bit 1 qualified
        (Chat.of(ST, Role.CVCA, ["generate-signature"]), "7f4c0e060904007f0007030102035301c1"),
    ],
)
def test_chat_encoding(chat: Chat, encoding: str) -> None:
    assert chat.encode().hex() == encoding
    assert Chat.decode(bytes.fromhex(encoding)) == chat


def test_chat_names_and_refusals() -> None:
    chat = Chat.decode(bytes.fromhex("7f4c12060904007f00070301020253053c0000ff3f"))
    assert chat.role is Role.TERMINAL
    assert chat.names[:3] == ("age-verification", "community-id-verification", "restricted-identification")
    assert chat.names[-4:] == ("write-dg20", "write-dg19", "write-dg18", "write-dg17")
    assert chat.grants("pin-management") and not chat.grants("read-dg9") and not chat.grants("nonsense")
    assert Chat(IS, Role.TERMINAL, 0b100101).names == ("read-dg3", "bit-2", "bit-5")
    with pytest.raises(PkiError, match="unknown IS access right 'read-dg5'; use one of read-dg3, read-dg4"):
        Chat.of(IS, Role.TERMINAL, ["read-dg5"])
    with pytest.raises(PkiError, match="fit in 6 bits"):
        Chat(IS, Role.TERMINAL, 0x40)
    with pytest.raises(LdsFormatError, match="unknown terminal type 0.4.0.127.0.7.3.1.2.9"):
        Chat.decode(bytes.fromhex("7f4c0e060904007f000703010209530100"))
    with pytest.raises(LdsFormatError, match="relative authorization is 1 bytes, got 2"):
        Chat.decode(bytes.fromhex("7f4c0f060904007f00070301020153020000"))
    with pytest.raises(LdsFormatError, match="expected 6 53"):
        Chat.decode(bytes.fromhex("7f4c0e530100060904007f000703010201"))


def test_openpace_vectors_decode_to_exact_fields() -> None:
    cvca, dv, term = map(CvCertificate.decode, (OPENPACE_CVCA, OPENPACE_DV, OPENPACE_TERMINAL))
    assert (cvca.car, cvca.chr, cvca.role, cvca.chat.names) == (
        "IDCVCA00001",
        "IDCVCA00001",
        Role.CVCA,
        ("read-dg3", "read-dg4"),
    )
    assert cvca.public_key.domain == BRAINPOOLP256R1 and cvca.public_key.algorithm == ID_TA_ECDSA_SHA_256
    assert (cvca.body.effective_date, cvca.body.expiration_date) == (
        dt.date(2026, 1, 1),
        dt.date(2028, 12, 31),
    )
    assert (dv.car, dv.chr, dv.role, dv.chat.names) == (
        "IDCVCA00001",
        "IDDVPOL00001",
        Role.DV_DOMESTIC,
        ("read-dg3",),
    )
    assert dv.public_key.domain is None and len(dv.signature) == 64
    assert (term.role, term.chat.names) == (Role.TERMINAL, ("read-dg3", "read-dg4"))
    # Our encoder writes the same bytes as OpenPACE for every field, domain parameters included.
    assert (cvca.encode(), dv.encode(), term.encode()) == (OPENPACE_CVCA, OPENPACE_DV, OPENPACE_TERMINAL)
    rebuilt = CertificateBody(
        "IDCVCA00001",
        CvPublicKey(ID_TA_ECDSA_SHA_256, dv.public_key.point),
        "IDDVPOL00001",
        Chat.of(IS, Role.DV_DOMESTIC, ["read-dg3"]),
        dt.date(2026, 2, 1),
        dt.date(2026, 5, 31),
    )
    assert rebuilt.encode() == Tlv.decode(OPENPACE_DV).children[0].encode()
    domain = CvPublicKey(ID_TA_ECDSA_SHA_256, cvca.public_key.point, BRAINPOOLP256R1).encode()
    assert domain == OPENPACE_CVCA[OPENPACE_CVCA.index(b"\x7f\x49") :][: 5 + 0x11D]


def test_openpace_vectors_verify_with_effective_rights() -> None:
    cvca, dv, term = map(CvCertificate.decode, (OPENPACE_CVCA, OPENPACE_DV, OPENPACE_TERMINAL))
    verified = verify_chain([dv, term], [cvca], at=dt.date(2026, 3, 15))
    assert [c.chr for c in verified.certificates] == ["IDCVCA00001", "IDDVPOL00001", "IDGATE000001"]
    # the terminal asks for DG3 and DG4, its DV holds DG3 only: the intersection is what counts
    assert verified.chat == Chat.of(IS, Role.TERMINAL, ["read-dg3"])
    assert verified.domain == BRAINPOOLP256R1
    assert verify_chain([cvca, dv, term], [cvca], at=dt.date(2026, 3, 31)).chat.names == ("read-dg3",)
    with pytest.raises(PkiError, match="IDGATE000001 expired on 2026-03-31"):
        verify_chain([dv, term], [cvca], at=dt.date(2026, 4, 1))
    with pytest.raises(PkiError, match="IDDVPOL00001 is not valid before 2026-02-01"):
        verify_chain([dv, term], [cvca], at=dt.date(2026, 1, 20))


def test_body_layout_and_extensions() -> None:
    point = BRAINPOOLP256R1.encode_point(BRAINPOOLP256R1.generator)
    digest = bytes(range(32))
    body = CertificateBody(
        "IDDVPOL00001",
        CvPublicKey(ID_TA_ECDSA_SHA_256, point),
        "IDGATE000001",
        Chat.of(IS, Role.TERMINAL, ["read-dg3"]),
        dt.date(2026, 3, 1),
        dt.date(2026, 3, 31),
        (CvExtension(ID_DESCRIPTION, Tlv(0x80, digest).encode()),),
    )
    expected = (
        "5f290100"
        + "420c"
        + b"IDDVPOL00001".hex()
        + "7f494f"
        + "060a04007f00070202020203"
        + "8641"
        + point.hex()
        + "5f200c"
        + b"IDGATE000001".hex()
        + "7f4c0e060904007f000703010201530101"
        + "5f2506020600030001"
        + "5f2406020600030301"
        + "652f"
        + "732d"
        + "060904007f000703010301"
        + "8020"
        + digest.hex()
    )
    assert body.encode().hex() == "7f4e81c7" + expected
    assert CertificateBody.decode(body.encode()) == body


# --- round trips -------------------------------------------------------------------------------------------

references = st.builds(
    lambda c, m, s: c + m + s,
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    st.text(
        # ISO/IEC 8859-1 without its control characters
        st.characters(min_codepoint=0x20, max_codepoint=0xFF).filter(lambda ch: not 0x7F <= ord(ch) <= 0x9F),
        max_size=9,
    ),
    st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=5, max_size=5),
)
dates = st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31))


@st.composite
def chats(draw: st.DrawFn) -> Chat:
    terminal_type = draw(st.sampled_from(TerminalType))
    bits = 8 * terminal_type.template_size - 2
    return Chat(terminal_type, draw(st.sampled_from(Role)), draw(st.integers(0, (1 << bits) - 1)))


@given(chats())
def test_chat_round_trip(chat: Chat) -> None:
    assert Chat.decode(chat.encode()) == chat
    assert Chat.of(
        chat.terminal_type, chat.role, [n for n in chat.names if not n.startswith("bit-")]
    ).rights == (chat.rights & sum(1 << b for b in chat.terminal_type.rights.values()))


@given(dates)
def test_date_round_trip(date: dt.date) -> None:
    assert decode_date(encode_date(date)) == date


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    references,
    references,
    chats(),
    dates,
    dates,
    st.booleans(),
    st.lists(
        st.tuples(
            st.sampled_from([ID_DESCRIPTION, "0.4.0.127.0.7.3.1.3.2", "1.2.3"]), st.binary(max_size=40)
        ),
        max_size=2,
    ),
)
def test_certificate_round_trip(
    car: str,
    chr_: str,
    chat: Chat,
    a: dt.date,
    b: dt.date,
    with_domain: bool,
    extensions: list[tuple[str, bytes]],
) -> None:
    signer = key("brainpoolP256r1", 30)
    public = CvPublicKey.from_key(pub(signer), with_domain=with_domain)
    body = CertificateBody(
        car,
        public,
        chr_,
        chat,
        min(a, b),
        max(a, b),
        tuple(CvExtension(oid, Tlv(0x80, data).encode()) for oid, data in extensions),
    )
    cert = sign(body, signer, CvPublicKey.from_key(pub(signer)))
    data = cert.encode()
    again = CvCertificate.decode(data)
    assert again == cert and again.encode() == data
    assert again.verify_signature(CvPublicKey.from_key(pub(signer), with_domain=True))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_decoding_damaged_certificates_is_strict(data: st.DataObject) -> None:
    """Any change either fails as LdsFormatError or decodes to a certificate encoding exactly those bytes."""
    good = bytearray(OPENPACE_CVCA if data.draw(st.booleans()) else OPENPACE_TERMINAL)
    action = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
    at = data.draw(st.integers(0, len(good) - 1))
    if action == "flip":
        good[at] ^= data.draw(st.integers(1, 255))
    elif action == "truncate":
        del good[at:]
    else:
        good[at:at] = data.draw(st.binary(min_size=1, max_size=3))
    try:
        cert = CvCertificate.decode(bytes(good))
    except LdsFormatError:
        return
    assert cert.encode() == bytes(good)


def _rebuild(data: bytes, change: Callable[[list[Tlv]], list[Tlv]]) -> bytes:
    outer = Tlv.decode(data)
    body, signature = outer.children
    return Tlv.of(outer.tag, Tlv.of(body.tag, *change(body.children)), signature).encode()


def _with_signature(data: bytes, signature: bytes) -> bytes:
    body = Tlv.decode(data).children[0]
    return Tlv.of(0x7F21, body, Tlv(0x5F37, signature)).encode()


def _swap(items: list[Tlv], tag: int, value: bytes) -> list[Tlv]:
    return [Tlv(t.tag, value) if t.tag == tag else t for t in items]


def _key_items(items: list[Tlv], change: Callable[[list[Tlv]], list[Tlv]]) -> list[Tlv]:
    return [Tlv.of(t.tag, *change(t.children)) if t.tag == 0x7F49 else t for t in items]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d + b"\x00", "trailing bytes"),
        (lambda d: d[:-1], "runs past the end"),
        (lambda d: b"\x7f\x22" + d[2:], "expected tag 7F21"),
        (
            lambda d: _rebuild(d, lambda i: _swap(i, 0x5F29, b"\x01")),
            "unknown certificate profile identifier 01",
        ),
        (lambda d: _rebuild(d, lambda i: [i[0], i[3], i[2], i[1], *i[4:]]), "7F4E holds 5F29 5F20 7F49 42"),
        (lambda d: _rebuild(d, lambda i: i[:-1]), "expected 5F29 42 7F49 5F20 7F4C 5F25 5F24"),
        (lambda d: _rebuild(d, lambda i: [*i, Tlv(0x5F37, b"")]), "7F4E holds"),
        (lambda d: _rebuild(d, lambda i: _swap(i, 0x5F25, bytes(6))), "not a calendar date"),
        (lambda d: _rebuild(d, lambda i: _swap(i, 0x42, b"IDCVCA000-1")), "alphanumeric sequence number"),
        (lambda d: _rebuild(d, lambda i: _swap(i, 0x5F20, b"xyCVCA00001")), "ISO 3166-1 alpha-2"),
        (
            lambda d: _rebuild(d, lambda i: [*i, Tlv.of(0x65, Tlv(0x53, b"\x00"))]),
            "extension tag 53 is not 73",
        ),
        (
            lambda d: _rebuild(
                d, lambda i: _key_items(i, lambda k: [k[0], Tlv(0x81, b"\x00" + k[1].value), *k[2:]])
            ),
            "p is not an unsigned integer",
        ),
        (
            lambda d: _rebuild(d, lambda i: _key_items(i, lambda k: _swap(k, 0x83, b"\x01" * 32))),
            "not those of a supported curve",
        ),
        (
            lambda d: _rebuild(
                d, lambda i: _key_items(i, lambda k: _swap(k, 0x86, k[6].value[:-1] + b"\x00"))
            ),
            "the point is not on brainpoolP256r1",
        ),
        (
            lambda d: _rebuild(
                d,
                lambda i: _key_items(
                    i, lambda k: _swap(k, 0x06, encode_oid(ID_TA_ECDSA_SHA_256)[:-1] + b"\x01")
                ),
            ),
            "unsupported public key algorithm",
        ),
        (lambda d: _rebuild(d, lambda i: _key_items(i, lambda k: k[:-1])), "expected 6 81 82 83 84 85 86 87"),
        (lambda d: _with_signature(d, d[-64:] + b"\x00"), "not r || s of equal lengths"),
        (lambda d: _with_signature(d, b""), "not r || s of equal lengths"),
    ],
)
def test_decode_refuses(damage: Callable[[bytes], bytes], message: str) -> None:
    with pytest.raises(LdsFormatError, match=message):
        CvCertificate.decode(damage(OPENPACE_CVCA))


def test_non_canonical_lengths_are_refused() -> None:
    # 5F20 81 0C instead of 5F20 0C: a long-form length below 128 is not DER
    outer = Tlv.decode(OPENPACE_DV)
    body, signature = outer.children
    raw = body.value.replace(bytes.fromhex("5f200c"), bytes.fromhex("5f20810c"))
    data = Tlv.of(0x7F21, Tlv(0x7F4E, raw), signature).encode()
    with pytest.raises(LdsFormatError, match="length not in its shortest form"):
        CvCertificate.decode(data)


# --- our chains ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("curve", "algorithm", "size"),
    [
        ("brainpoolP256r1", ID_TA_ECDSA_SHA_256, 32),
        ("secp384r1", ID_TA_ECDSA_SHA_384, 48),
        ("brainpoolP512r1", ID_TA_ECDSA_SHA_512, 64),
        ("secp521r1", ID_TA_ECDSA_SHA_512, 66),
    ],
)
def test_chain_verifies(curve: str, algorithm: str, size: int) -> None:
    c = chain(curve)
    assert c.cvca.self_signed and c.cvca.public_key.domain is not None
    assert c.dv.public_key.domain is None and c.terminal.public_key.domain is None
    assert c.cvca.public_key.algorithm == c.dv.public_key.algorithm == algorithm
    assert all(len(x.signature) == 2 * size for x in (c.cvca, c.dv, c.terminal))
    verified = verify_chain([c.dv, c.terminal], [c.cvca], at=D0 + dt.timedelta(days=10))
    assert verified.chat == Chat.of(IS, Role.TERMINAL, ["read-dg3"])
    assert verified.domain.name == curve
    assert verified.public_key.public_numbers() == pub(c.terminal_key).public_numbers()
    dv_only = verify_chain([c.dv], [c.cvca], at=D0)
    assert dv_only.chat == Chat.of(IS, Role.DV_DOMESTIC, ["read-dg3", "read-dg4"])


def test_tampering_and_wrong_issuers_are_refused() -> None:
    c, other = chain(), chain("secp384r1")
    at = D0 + dt.timedelta(days=10)
    bad_sig = replace(c.terminal, signature=c.terminal.signature[:-1] + bytes([c.terminal.signature[-1] ^ 1]))
    with pytest.raises(PkiError, match="the signature of IDGATE000001 by IDDVPOL00001 does not verify"):
        verify_chain([c.dv, bad_sig], [c.cvca], at=at)
    # more rights written into the body: the DV's signature no longer covers it
    upgraded = replace(
        c.terminal, body=replace(c.terminal.body, chat=Chat.of(IS, Role.TERMINAL, ["read-dg3", "read-dg4"]))
    )
    with pytest.raises(PkiError, match="does not verify"):
        verify_chain([c.dv, upgraded], [c.cvca], at=at)
    # a trust anchor with the same CHR but another key
    with pytest.raises(PkiError, match="the signature of IDDVPOL00001 by IDCVCA00001 does not verify"):
        verify_chain([c.dv, c.terminal], [other.cvca], at=at)
    # wrong CAR: the DV names a CVCA that is not trusted; a terminal names another DV
    stranger = craft(c.cvca_key, c.cvca, c.dv_key, role=Role.DV_DOMESTIC, car="IDCVCA00002")
    with pytest.raises(PkiError, match="signed by IDCVCA00002, which is not a trusted CVCA"):
        verify_chain([stranger], [c.cvca], at=at)
    misnamed = craft(c.dv_key, c.dv, c.terminal_key, role=Role.TERMINAL, car="IDDVBANK00001")
    with pytest.raises(PkiError, match="names IDDVBANK00001 as its issuer, not IDDVPOL00001"):
        verify_chain([c.dv, misnamed], [c.cvca], at=at)
    with pytest.raises(PkiError, match="trust anchor IDDVPOL00001 is not a CVCA"):
        verify_chain([c.terminal], [c.dv], at=at)
    broken_anchor = replace(c.cvca, signature=bytes(64))
    with pytest.raises(PkiError, match="self-signature of trust anchor IDCVCA00001 does not verify"):
        verify_chain([c.dv], [broken_anchor], at=at)
    with pytest.raises(PkiError, match="no certificate"):
        verify_chain([], [c.cvca])


def test_dates_are_checked() -> None:
    c = chain()
    with pytest.raises(PkiError, match="IDGATE000001 is not valid before 2026-01-20"):
        verify_chain([c.dv, c.terminal], [c.cvca], at=D0 + dt.timedelta(days=4))
    verify_chain([c.dv, c.terminal], [c.cvca], at=D0 + dt.timedelta(days=5))  # first day
    verify_chain([c.dv, c.terminal], [c.cvca], at=D0 + dt.timedelta(days=34))  # last day
    with pytest.raises(PkiError, match="IDGATE000001 expired on 2026-02-18"):
        verify_chain([c.dv, c.terminal], [c.cvca], at=D0 + dt.timedelta(days=35))
    with pytest.raises(PkiError, match="IDDVPOL00001 expired on 2026-04-14"):
        verify_chain([c.dv], [c.cvca], at=D0 + dt.timedelta(days=90))
    # a certificate running past its issuer is refused when issuing
    with pytest.raises(PkiError, match="outside IDDVPOL00001's 2026-01-15 to 2026-04-14"):
        issue(
            c.dv_key,
            c.dv,
            pub(c.terminal_key),
            holder="IDGATE000002",
            role=Role.TERMINAL,
            effective=D0,
            expiration=D0 + dt.timedelta(days=90),
        )
    with pytest.raises(PkiError, match="before the effective date"):
        CertificateBody("IDCVCA00001", c.dv.public_key, "IDX00001", c.dv.chat, D0, D0 - dt.timedelta(days=1))


def test_role_order_is_enforced() -> None:
    c = chain()
    at = D0 + dt.timedelta(days=10)
    direct = craft(c.cvca_key, c.cvca, c.terminal_key, role=Role.TERMINAL)
    with pytest.raises(PkiError, match="a cvca certificate cannot be the issuer of a terminal certificate"):
        verify_chain([direct], [c.cvca], at=at)
    dv_under_dv = craft(c.dv_key, c.dv, c.terminal_key, role=Role.DV_FOREIGN)
    with pytest.raises(PkiError, match="a dv-domestic certificate cannot be the issuer of a dv-foreign"):
        verify_chain([c.dv, dv_under_dv], [c.cvca], at=at)
    below_terminal = craft(c.terminal_key, c.terminal, c.dv_key, role=Role.TERMINAL)
    with pytest.raises(PkiError, match="a terminal certificate cannot be the issuer"):
        verify_chain([c.dv, c.terminal, below_terminal], [c.cvca], at=at)
    cvca_under_dv = craft(c.dv_key, c.dv, c.terminal_key, role=Role.CVCA, with_domain=True)
    with pytest.raises(PkiError, match="a dv-domestic certificate cannot be the issuer of a cvca"):
        verify_chain([c.dv, cvca_under_dv], [c.cvca], at=at)
    at_terminal = craft(c.dv_key, c.dv, c.terminal_key, role=Role.TERMINAL, chat=Chat.of(AT, Role.TERMINAL))
    with pytest.raises(PkiError, match="is for AT terminals, its issuer IDDVPOL00001 for IS"):
        verify_chain([c.dv, at_terminal], [c.cvca], at=at)
    # issuing refuses the same mistakes up front
    with pytest.raises(PkiError, match="cannot be the issuer of a terminal"):
        issue(
            c.cvca_key,
            c.cvca,
            pub(c.terminal_key),
            holder="IDX00001",
            role=Role.TERMINAL,
            effective=D0,
            expiration=D0,
        )
    with pytest.raises(PkiError, match="use create_cvca or create_link"):
        issue(
            c.cvca_key, c.cvca, pub(c.dv_key), holder="IDX00001", role=Role.CVCA, effective=D0, expiration=D0
        )


def test_issuing_policy() -> None:
    c = chain()
    with pytest.raises(PkiError, match="IDDVPOL00001 does not hold read-dg4; it cannot grant it"):
        issue(
            c.dv_key,
            replace(c.dv, body=replace(c.dv.body, chat=Chat.of(IS, Role.DV_DOMESTIC, ["read-dg3"]))),
            pub(c.terminal_key),
            holder="IDX00001",
            role=Role.TERMINAL,
            rights=["read-dg4"],
            effective=D0,
            expiration=D0,
        )
    with pytest.raises(PkiError, match="must be on the CVCA's curve brainpoolP256r1, not secp384r1"):
        issue(
            c.cvca_key,
            c.cvca,
            pub(chain("secp384r1").dv_key),
            holder="IDX00001",
            role=Role.DV_DOMESTIC,
            effective=D0,
            expiration=D0,
        )
    with pytest.raises(PkiError, match="the signing key does not match the issuer's public key"):
        issue(
            c.dv_key,
            c.cvca,
            pub(c.terminal_key),
            holder="IDX00001",
            role=Role.DV_FOREIGN,
            effective=D0,
            expiration=D0,
        )
    with pytest.raises(PkiError, match="ECDSA"):
        create_cvca(key("rsa-pss-2048"), holder="IDCVCA00009", terminal_type=IS, effective=D0, expiration=D0)
    # domain parameters in a DV certificate must be the CVCA's own
    foreign_curve = craft(c.cvca_key, c.cvca, key("secp256r1", 33), role=Role.DV_DOMESTIC, with_domain=True)
    with pytest.raises(PkiError, match="carries domain parameters other than its CVCA's"):
        verify_chain([foreign_curve], [c.cvca], at=D0)
    same_curve = craft(c.cvca_key, c.cvca, c.dv_key, role=Role.DV_DOMESTIC, with_domain=True)
    assert verify_chain([same_curve], [c.cvca], at=D0).domain == BRAINPOOLP256R1


def test_link_certificate_changes_key_and_curve() -> None:
    c = chain()
    new_key, dv_key, term_key = key("secp384r1", 40), key("secp384r1", 41), key("secp384r1", 42)
    end = D0 + dt.timedelta(days=1000)
    link = create_link(c.cvca_key, c.cvca, pub(new_key), holder="IDCVCA00002", effective=D0, expiration=end)
    assert (link.car, link.chr, link.role, link.chat) == (
        "IDCVCA00001",
        "IDCVCA00002",
        Role.CVCA,
        c.cvca.chat,
    )
    assert link.public_key.domain == SECP384R1 and link.public_key.algorithm == ID_TA_ECDSA_SHA_384
    assert len(link.signature) == 64  # signed by the old brainpoolP256r1 key with SHA-256
    dv = issue(
        new_key,
        link,
        pub(dv_key),
        holder="IDDVPOL00002",
        role=Role.DV_DOMESTIC,
        rights=["read-dg3"],
        effective=D0,
        expiration=D0 + dt.timedelta(days=60),
    )
    term = issue(
        dv_key,
        dv,
        pub(term_key),
        holder="IDGATE000002",
        role=Role.TERMINAL,
        rights=["read-dg3"],
        effective=D0,
        expiration=D0 + dt.timedelta(days=30),
    )
    verified = verify_chain([link, dv, term], [c.cvca], at=D0 + dt.timedelta(days=1))
    assert verified.domain == SECP384R1 and verified.chat.names == ("read-dg3",)
    self_signed = create_cvca(
        new_key,
        holder="IDCVCA00002",
        terminal_type=IS,
        rights=["read-dg3", "read-dg4"],
        effective=D0,
        expiration=end,
    )
    assert verify_chain([dv, term], [self_signed], at=D0).leaf == term
    # a link certificate without the new domain parameters is refused
    bare = sign(
        replace(link.body, public_key=replace(link.public_key, domain=None)), c.cvca_key, c.cvca.public_key
    )
    with pytest.raises(PkiError, match="CVCA link certificate IDCVCA00002 has no domain parameters"):
        verify_chain([bare], [c.cvca], at=D0)
    with pytest.raises(PkiError, match="needs a new holder reference"):
        create_link(c.cvca_key, c.cvca, pub(new_key), holder="IDCVCA00001", effective=D0, expiration=end)


# --- OpenPACE as the independent judge ----------------------------------------------------------------------


@dataclass(frozen=True)
class OpenPace:
    create: str
    print: str

    def run(self, tool: str, *args: str | Path, cwd: Path | None = None) -> str:
        proc = subprocess.run(
            [tool, *map(str, args)], capture_output=True, text=True, timeout=30, cwd=cwd, check=False
        )
        assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
        return proc.stdout

    def verdict(self, cert: CvCertificate, trusted: list[CvCertificate], folder: Path) -> str:
        """cvc-print's verdict line for ``cert``; it looks issuers up by CHR in --cvc-dir and exits 0
        whether or not the signature verifies, so the line is what counts."""
        folder.mkdir(exist_ok=True)
        for t in trusted:
            (folder / t.chr).write_bytes(t.encode())
        target = folder.parent / f"{cert.chr}.cvcert"
        target.write_bytes(cert.encode())
        out = self.run(self.print, f"--cvc={target}", f"--cvc-dir={folder}")
        verdicts = [line for line in out.splitlines() if line.startswith("certificate ")]
        assert len(verdicts) == 1, out
        return verdicts[0]


@pytest.fixture(scope="module")
def openpace(unavailable: Callable[[str, str], NoReturn]) -> OpenPace:
    create, show = shutil.which("cvc-create"), shutil.which("cvc-print")
    if create is None or show is None:
        unavailable("OpenPACE's cvc-create/cvc-print are not installed", INSTALL_HINT)
    return OpenPace(create, show)


@pytest.mark.parametrize("curve", ["brainpoolP256r1", "secp384r1", "brainpoolP512r1"])
def test_cvc_print_verifies_our_chain(openpace: OpenPace, curve: str, tmp_path: Path) -> None:
    c = chain(curve, RECENT)
    trust = tmp_path / "trust"
    assert openpace.verdict(c.cvca, [c.cvca], trust) == "certificate verified"
    assert openpace.verdict(c.dv, [c.cvca], trust) == "certificate verified"
    assert openpace.verdict(c.terminal, [c.cvca, c.dv], trust) == "certificate verified"
    out = openpace.run(openpace.print, f"--cvc={tmp_path / 'IDGATE000001.cvcert'}")
    assert "CHR: IDGATE000001" in out and "Read fingerprint" in out and "Read iris" not in out
    first, last = RECENT + dt.timedelta(days=5), RECENT + dt.timedelta(days=34)
    assert f"Effective Date: {first}" in out and f"Expiration Date: {last}" in out
    bad = replace(c.terminal, signature=bytes([c.terminal.signature[0] ^ 1]) + c.terminal.signature[1:])
    assert openpace.verdict(bad, [c.cvca, c.dv], tmp_path / "trust2") == "certificate not verified"
    other = tmp_path / "other"
    assert openpace.verdict(c.dv, [chain("secp521r1", RECENT).cvca], other) == "certificate not verified"


def test_cvc_print_verifies_our_link_certificate(openpace: OpenPace, tmp_path: Path) -> None:
    c = chain(start=RECENT)
    new_key = key("secp384r1", 40)
    link = create_link(
        c.cvca_key,
        c.cvca,
        pub(new_key),
        holder="IDCVCA00002",
        effective=RECENT,
        expiration=RECENT + dt.timedelta(days=700),
    )
    dv = issue(
        new_key,
        link,
        pub(key("secp384r1", 41)),
        holder="IDDVPOL00002",
        role=Role.DV_FOREIGN,
        rights=["read-dg4"],
        effective=RECENT,
        expiration=RECENT + dt.timedelta(days=60),
    )
    assert openpace.verdict(link, [c.cvca], tmp_path / "t") == "certificate verified"
    assert openpace.verdict(dv, [c.cvca, link], tmp_path / "t") == "certificate verified"


def _pkcs8(path: Path, private: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


@pytest.mark.parametrize(
    ("curve", "scheme"), [("brainpoolP256r1", "ECDSA_SHA_256"), ("secp384r1", "ECDSA_SHA_384")]
)
def test_we_verify_a_cvc_create_chain(openpace: OpenPace, curve: str, scheme: str, tmp_path: Path) -> None:
    from ektp_card.pki.signer import CURVES

    cvca_key = _pkcs8(tmp_path / "cvca.pkcs8", ec.generate_private_key(CURVES[curve]))
    common = ["--type=at", f"--scheme={scheme}"]
    openpace.run(
        openpace.create,
        "--role=cvca",
        "--chr=IDCVCAAT00001",
        "--issued=260101",
        "--expires=281231",
        f"--sign-with={cvca_key}",
        "--out-cert=cvca",
        "--read-dg1",
        "--read-dg2",
        "--verify-age",
        "--write-dg17",
        *common,
        cwd=tmp_path,
    )
    openpace.run(
        openpace.create,
        "--role=dv_foreign",
        "--chr=MYDVAT00001",
        "--issued=260201",
        "--expires=261231",
        f"--sign-with={cvca_key}",
        "--sign-as=cvca",
        "--out-cert=dv",
        "--out-key=dv.pkcs8",
        "--read-dg1",
        "--verify-age",
        *common,
        cwd=tmp_path,
    )
    openpace.run(
        openpace.create,
        "--role=terminal",
        "--chr=MYTERM00001",
        "--issued=260301",
        "--expires=260331",
        "--sign-with=dv.pkcs8",
        "--sign-as=dv",
        "--out-cert=term",
        "--out-key=term.pkcs8",
        "--read-dg1",
        "--read-dg2",
        "--verify-age",
        *common,
        cwd=tmp_path,
    )
    raw = {name: (tmp_path / name).read_bytes() for name in ("cvca", "dv", "term")}
    cvca, dv, term = (CvCertificate.decode(raw[n]) for n in ("cvca", "dv", "term"))
    assert all(x.encode() == raw[n] for x, n in zip((cvca, dv, term), ("cvca", "dv", "term"), strict=True))
    assert cvca.public_key.domain is not None and cvca.public_key.domain.name == curve
    assert cvca.chat == Chat.of(AT, Role.CVCA, ["read-dg1", "read-dg2", "age-verification", "write-dg17"])
    assert dv.role is Role.DV_FOREIGN and term.chat.terminal_type is AT
    verified = verify_chain([dv, term], [cvca], at=dt.date(2026, 3, 10))
    assert verified.chat == Chat.of(AT, Role.TERMINAL, ["read-dg1", "age-verification"])
    assert verified.domain.name == curve
    with pytest.raises(PkiError, match="MYTERM00001 expired on 2026-03-31"):
        verify_chain([dv, term], [cvca], at=dt.date(2026, 4, 1))
    tampered = bytearray(raw["term"])
    tampered[-1] ^= 0x01
    with pytest.raises(PkiError, match="signature of MYTERM00001 by MYDVAT00001 does not verify"):
        verify_chain([dv, CvCertificate.decode(bytes(tampered))], [cvca], at=dt.date(2026, 3, 10))


def test_cvc_create_issues_under_our_cvca(openpace: OpenPace, tmp_path: Path) -> None:
    """OpenPACE signs a DV with our CVCA certificate and key; we verify its work, it verifies ours."""
    private = ec.generate_private_key(ec.BrainpoolP256R1())
    ours = create_cvca(
        PrivateKeySigner(private),
        holder="IDCVCA00007",
        terminal_type=IS,
        rights=["read-dg3", "read-dg4"],
        effective=D0,
        expiration=D0 + dt.timedelta(days=900),
    )
    (tmp_path / "cvca").write_bytes(ours.encode())
    openpace.run(
        openpace.create,
        "--role=dv_domestic",
        "--chr=IDDVOP00001",
        "--issued=260201",
        "--expires=260430",
        f"--sign-with={_pkcs8(tmp_path / 'cvca.pkcs8', private)}",
        "--sign-as=cvca",
        "--scheme=ECDSA_SHA_256",
        "--out-cert=dv",
        "--out-key=dv.pkcs8",
        "--read-finger",
        cwd=tmp_path,
    )
    dv = CvCertificate.decode((tmp_path / "dv").read_bytes())
    assert verify_chain([dv], [ours], at=dt.date(2026, 2, 2)).chat == Chat.of(
        IS, Role.DV_DOMESTIC, ["read-dg3"]
    )


# --- the CVCA key in a PKCS#11 token ----------------------------------------------------------------------


@pytest.mark.parametrize("curve", ["brainpoolP256r1", "secp384r1"])
def test_cvca_in_softhsm(token: SoftHsmToken, openpace: OpenPace, curve: str, tmp_path: Path) -> None:
    spec = KeySpec.parse(curve)
    with Pkcs11Signer.generate(token.module, token.label, f"cvca-{curve}", spec, token.pin) as hsm:
        cvca = create_cvca(
            hsm,
            holder="IDCVCAHSM00001",
            terminal_type=IS,
            rights=["read-dg3"],
            effective=RECENT,
            expiration=RECENT + dt.timedelta(days=365),
        )
        dv_key = key(curve, 31)
        dv = issue(
            hsm,
            cvca,
            pub(dv_key),
            holder="IDDVHSM00001",
            role=Role.DV_DOMESTIC,
            rights=["read-dg3"],
            effective=RECENT,
            expiration=RECENT + dt.timedelta(days=90),
        )
    term = issue(
        dv_key,
        dv,
        pub(key(curve, 32)),
        holder="IDTERM00001",
        role=Role.TERMINAL,
        rights=["read-dg3"],
        effective=RECENT,
        expiration=RECENT + dt.timedelta(days=30),
    )
    assert cvca.public_key.point == CvPublicKey.from_key(pub(hsm)).point
    assert verify_chain([dv, term], [cvca], at=RECENT).chat.names == ("read-dg3",)
    assert openpace.verdict(cvca, [cvca], tmp_path / "t") == "certificate verified"
    assert openpace.verdict(dv, [cvca], tmp_path / "t") == "certificate verified"


# --- the command line -----------------------------------------------------------------------------------

PASSPHRASES = {
    "EKTP_CVCA_PASSPHRASE": "cvca-Pass-1",
    "EKTP_DV_PASSPHRASE": "dv-Pass-2",
    "EKTP_TERMINAL_PASSPHRASE": "term-Pass-3",
    "EKTP_CVCA_NEW_PASSPHRASE": "cvca-New-4",
}


@pytest.fixture
def ektp(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run `ektp ARGS` in this process; returns (exit code, stdout, stderr)."""
    for name, value in PASSPHRASES.items():
        monkeypatch.setenv(name, value)

    def run(*args: str | Path) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in args])
        out = capsys.readouterr()
        for secret in PASSPHRASES.values():
            assert secret not in out.out + out.err
        return int(e.value.code or 0), out.out, out.err

    return run


def _json(result: tuple[int, str, str]) -> dict[str, object]:
    import json

    code, out, err = result
    assert code == 0, (code, out, err)
    value = json.loads(out)
    assert isinstance(value, dict)
    return value


def test_cli_terminal_pki(ektp: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    t = tmp_path
    created = _json(
        ektp(
            "--json",
            "pki",
            "cvca",
            "create",
            t / "cvca.cvcert",
            "--key",
            t / "cvca.key",
            "--country",
            "ID",
            "--mnemonic",
            "DUKCAPIL",
            "--right",
            "read-dg3",
            "--right",
            "read-dg4",
            "--effective",
            "2026-01-15",
            "--days",
            "1095",
        )
    )
    assert (
        created["chr"] == "IDDUKCAPIL00001"
        and created["role"] == "cvca"
        and created["curve"] == "brainpoolP256r1"
    )
    assert created["chat"] == "C3" and created["expiration"] == "2029-01-13"
    assert stat.S_IMODE((t / "cvca.key").stat().st_mode) == 0o600
    dv = _json(
        ektp(
            "--json",
            "pki",
            "dv",
            "issue",
            t / "dv.cvcert",
            "--cvca",
            t / "cvca.cvcert",
            "--cvca-key",
            t / "cvca.key",
            "--key",
            t / "dv.key",
            "--mnemonic",
            "POLRI",
            "--right",
            "read-dg3",
            "--effective",
            "2026-01-20",
        )
    )
    assert (dv["car"], dv["chr"], dv["role"], dv["rights"]) == (
        "IDDUKCAPIL00001",
        "IDPOLRI00001",
        "dv-domestic",
        ["read-dg3"],
    )
    assert dv["expiration"] == "2026-04-19"  # 90 days counting the first
    term = _json(
        ektp(
            "--json",
            "pki",
            "terminal",
            "issue",
            t / "term.cvcert",
            "--dv",
            t / "dv.cvcert",
            "--dv-key",
            t / "dv.key",
            "--key",
            t / "term.key",
            "--mnemonic",
            "GATE1",
            "--sequence",
            "00007",
            "--right",
            "read-dg3",
            "--effective",
            "2026-02-01",
        )
    )
    assert term["chr"] == "IDGATE100007" and term["curve"] is None and term["chat"] == "01"
    shown = _json(
        ektp(
            "--json",
            "pki",
            "cvc",
            "show",
            t / "term.cvcert",
            "--trust",
            t / "cvca.cvcert",
            "--chain",
            t / "dv.cvcert",
            "--at",
            "2026-02-10",
        )
    )
    assert shown["verified"] is True and shown["chain"] == ["IDDUKCAPIL00001", "IDPOLRI00001", "IDGATE100007"]
    assert shown["effective_rights"] == ["read-dg3"] and shown["effective_role"] == "terminal"
    code, out, _ = ektp(
        "pki",
        "cvc",
        "show",
        t / "term.cvcert",
        "--trust",
        t / "cvca.cvcert",
        "--chain",
        t / "dv.cvcert",
        "--at",
        "2026-03-10",
    )
    assert code == 10 and "NOT verified: IDGATE100007 expired on 2026-03-02" in out
    code, out, _ = ektp("pki", "cvc", "show", t / "cvca.cvcert")
    assert code == 0 and "self-signature verified" in out and "Rights:            read-dg3, read-dg4" in out
    # the files are what the library reads
    cvca = CvCertificate.decode((t / "cvca.cvcert").read_bytes())
    assert (
        verify_chain(
            [CvCertificate.decode((t / n).read_bytes()) for n in ("dv.cvcert", "term.cvcert")],
            [cvca],
            at=dt.date(2026, 2, 1),
        ).leaf.chr
        == "IDGATE100007"
    )

    # a DV whose key was made elsewhere (e.g. in its own HSM): certify the public key
    other = ec.generate_private_key(ec.BrainpoolP256R1()).public_key()
    (t / "bank.pem").write_bytes(
        other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    bank = _json(
        ektp(
            "--json",
            "pki",
            "dv",
            "issue",
            t / "bank.cvcert",
            "--cvca",
            t / "cvca.cvcert",
            "--cvca-key",
            t / "cvca.key",
            "--public-key",
            t / "bank.pem",
            "--mnemonic",
            "BANK",
            "--foreign",
            "--country",
            "MY",
            "--effective",
            "2026-01-20",
        )
    )
    assert bank["chr"] == "MYBANK00001" and bank["role"] == "dv-foreign" and bank["key"] is None
    assert CvCertificate.decode((t / "bank.cvcert").read_bytes()).public_key.to_key(BRAINPOOLP256R1) == other

    linked = _json(
        ektp(
            "--json",
            "pki",
            "cvca",
            "link",
            t / "link.cvcert",
            "--cvca",
            t / "cvca.cvcert",
            "--cvca-key",
            t / "cvca.key",
            "--key",
            t / "cvca2.key",
            "--sequence",
            "00002",
            "--curve",
            "secp384r1",
            "--effective",
            "2026-06-01",
        )
    )
    assert (linked["car"], linked["chr"], linked["curve"]) == (
        "IDDUKCAPIL00001",
        "IDDUKCAPIL00002",
        "secp384r1",
    )
    link = CvCertificate.decode((t / "link.cvcert").read_bytes())
    verify_chain([link], [cvca], at=dt.date(2026, 6, 1))
    self_signed = CvCertificate.decode((t / "link-self.cvcert").read_bytes())
    assert self_signed.self_signed and self_signed.public_key == link.public_key


def test_cli_errors_are_clean(
    ektp: Callable[..., tuple[int, str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = tmp_path
    assert (
        ektp(
            "pki",
            "cvca",
            "create",
            t / "cvca.cvcert",
            "--key",
            t / "cvca.key",
            "--country",
            "ID",
            "--right",
            "read-dg3",
            "--effective",
            "2026-01-15",
        )[0]
        == 0
    )
    code, _, err = ektp(
        "pki",
        "cvca",
        "create",
        t / "x.cvcert",
        "--key",
        t / "x.key",
        "--country",
        "ID",
        "--right",
        "read-dg9",
    )
    assert code == 2 and "unknown IS access right 'read-dg9'" in err and not (t / "x.key").exists()
    code, _, err = ektp("pki", "cvca", "create", t / "x.cvcert", "--key", t / "cvca.key", "--country", "ID")
    assert code == 7 and "refusing to overwrite a private key" in err
    base = [
        "pki",
        "dv",
        "issue",
        t / "dv.cvcert",
        "--cvca",
        t / "cvca.cvcert",
        "--cvca-key",
        t / "cvca.key",
        "--mnemonic",
        "POLRI",
        "--effective",
        "2026-01-20",
    ]
    code, _, err = ektp(*base, "--key", t / "dv.key", "--right", "read-dg4")
    assert code == 7 and "Error: IDCVCA00001 does not hold read-dg4; it cannot grant it" in err
    assert sorted(p.name for p in t.iterdir()) == ["cvca.cvcert", "cvca.key"]  # no key left behind
    code, _, err = ektp(*base, "--key", t / "dv.key", "--public-key", t / "cvca.cvcert")
    assert code == 2 and "not both" in err
    code, _, err = ektp(*base, "--public-key", t / "cvca.cvcert")
    assert code == 7 and "is not a PEM or DER public key" in err
    code, _, err = ektp(*base, "--key", t / "dv.key", "--days", "2000")
    assert code == 7 and "outside IDCVCA00001's" in err
    monkeypatch.setenv("EKTP_CVCA_PASSPHRASE", "wrong-Pass")
    code, _, err = ektp(*base, "--key", t / "dv.key")
    assert code == 7 and "cannot decrypt key file" in err and "wrong-Pass" not in err
    assert not (t / "dv.key").exists()
    monkeypatch.delenv("EKTP_CVCA_PASSPHRASE")
    code, _, err = ektp(*base, "--key", t / "dv.key")
    assert code == 2 and "set EKTP_CVCA_PASSPHRASE to the CVCA key passphrase" in err
    (t / "junk.cvcert").write_bytes(OPENPACE_DV[:-3])
    code, _, err = ektp("pki", "cvc", "show", t / "junk.cvcert")
    assert code == 7 and "junk.cvcert: CV certificate:" in err and "Traceback" not in err
    code, out, _ = ektp(
        "--json", "pki", "cvc", "show", t / "cvca.cvcert", "--trust", t / "cvca.cvcert", "--at", "2030-01-01"
    )
    assert code == 10 and '"reason": "IDCVCA00001 expired on 2029-01-13"' in out


def test_cli_verify_biometric_right(ektp: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    t = tmp_path
    created = _json(ektp("--json", "pki", "cvca", "create", t / "cvca.cvcert", "--key", t / "cvca.key",
                         "--country", "ID", "--mnemonic", "DUKCAPIL", "--right", "read-dg3", "--right",
                         "verify-biometric", "--effective", "2026-01-15"))
    assert created["rights"] == ["read-dg3", "verify-biometric"] and created["chat"] == "C1"
    assert created["extensions"] == [ID_EKTP_AUTHORIZATION]
    dv = _json(ektp("--json", "pki", "dv", "issue", t / "dv.cvcert", "--cvca", t / "cvca.cvcert",
                    "--cvca-key", t / "cvca.key", "--key", t / "dv.key", "--mnemonic", "POLRI", "--right",
                    "read-dg3", "--effective", "2026-01-20"))
    assert dv["rights"] == ["read-dg3"] and dv["extensions"] == []
    code, _, err = ektp("pki", "terminal", "issue", t / "term.cvcert", "--dv", t / "dv.cvcert", "--dv-key",
                        t / "dv.key", "--key", t / "term.key", "--mnemonic", "GATE1", "--right",
                        "verify-biometric", "--effective", "2026-02-01")
    assert code != 0 and "does not hold verify-biometric" in err
