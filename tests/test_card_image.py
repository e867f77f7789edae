"""Virtual card image files (save / load) and the FCP codec."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ektp_card.apdu.sw import SW
from ektp_card.errors import CardImageError, TlvError
from ektp_card.virtual import (
    AccessCondition,
    ElementaryFile,
    Fcp,
    LifeCycle,
    SecurityAttributes,
    VirtualCard,
    demo_card,
)
from ektp_card.virtual.demo import DEMO_AID, LARGE_CONTENT
from ektp_card.virtual.image import FORMAT, VERSION
from ektp_card.virtual.keycheck import CHECKS

if TYPE_CHECKING:
    from ektp_card.sandbox import Sandbox


def send(card: VirtualCard, apdu: str) -> tuple[bytes, int]:
    raw = card.transceive(bytes.fromhex(apdu.replace(" ", "")))
    return raw[:-2], int.from_bytes(raw[-2:], "big")


def test_round_trip_keeps_files_config_and_keys(tmp_path: Path) -> None:
    card = demo_card(extended_length=False, uid=bytes.fromhex("04112233445566"))
    card.keys["chip-auth"] = b"\x01\x02\x03"
    app = card.fs.application(DEMO_AID)
    sub = card.fs.create_df(app, 0xDF10, name=b"\xa0\x00\x00\x00\x01")
    inner_access = SecurityAttributes(AccessCondition.parse("PACE|PERSO"))
    card.fs.create_ef(sub, 0x0001, data=b"inner", access=inner_access)
    sub.lcs = LifeCycle.OPERATIONAL_DEACTIVATED
    assert send(card, "00A4040C09D360000000454B5450") == (b"", SW.OK)
    assert send(card, "00D6840004CAFEBABE") == (b"", SW.OK)
    path = tmp_path / "card.json"
    card.save(path)

    loaded = VirtualCard.load(path)
    assert loaded.config == card.config
    assert loaded.keys == {"chip-auth": b"\x01\x02\x03"}
    assert loaded.atr == card.atr and loaded.uid == bytes.fromhex("04112233445566")
    assert [f.path for f in loaded.fs.walk()] == [f.path for f in card.fs.walk()]
    for before, after in zip(card.fs.walk(), loaded.fs.walk(), strict=True):
        assert (before.lcs, before.access) == (after.lcs, after.access)
        if isinstance(before, ElementaryFile):
            assert isinstance(after, ElementaryFile)
            assert (before.sfi, before.data) == (after.sfi, after.data)
    # Read back through APDUs, as the next process would.
    assert send(loaded, "00A4040C09D360000000454B5450") == (b"", SW.OK)
    assert send(loaded, "00B0840004") == (bytes.fromhex("CAFEBABE"), SW.OK)
    assert send(loaded, "00B0830005") == (LARGE_CONTENT[:5], SW.OK)
    assert send(loaded, "00A4010C02DF10") == (b"", SW.FILE_DEACTIVATED)


def test_loaded_card_draws_random_uids_when_not_fixed(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    demo_card().save(path)
    assert json.loads(path.read_text())["config"]["uid"] is None
    loaded = VirtualCard.load(path)
    assert len(loaded.uid) == 4 and loaded.uid[0] == 0x08


def test_image_document_shape(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    VirtualCard.create(extended_length=True).save(path)
    doc = json.loads(path.read_text())
    assert doc["format"] == FORMAT == "ektp-card/virtual-card-image"
    assert doc["version"] == VERSION == 2
    assert doc["keys"] == {}
    mf = doc["mf"]
    assert (mf["kind"], mf["fid"], mf["lcs"], mf["admin"]) == ("DF", "3F00", 3, "ALWAYS")
    atr_info = mf["children"][0]
    fields = (atr_info["fid"], atr_info["sfi"], atr_info["read"], atr_info["update"])
    assert fields == ("2F01", 1, "ALWAYS", "NEVER")


def test_save_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    card = demo_card()
    card.save(path)
    card.save(path)  # replaces the old image
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_save_into_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CardImageError, match="cannot write card image"):
        demo_card().save(tmp_path / "nope" / "card.json")


def _corrupt(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "card.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _valid_doc(tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "valid.json"
    demo_card().save(path)
    doc: dict[str, object] = json.loads(path.read_text())
    return doc


def test_missing_image(tmp_path: Path) -> None:
    with pytest.raises(CardImageError, match=r"^card image .*missing\.json not found$"):
        VirtualCard.load(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe garbage", "is corrupt: not a JSON document"),
        ("{\"format\": ", "is corrupt: not a JSON document"),
        ("[]", "is not an ektp-card virtual card image"),
        ('{"format": "something-else", "version": 1}', "is not an ektp-card virtual card image"),
        (f'{{"format": "{FORMAT}", "version": 3}}', "has image version 3; this version of ektp-card reads"),
        (f'{{"format": "{FORMAT}", "version": 1}}', "is corrupt: missing field 'config'"),
    ],
)
def test_unusable_images(tmp_path: Path, content: str | bytes, message: str) -> None:
    with pytest.raises(CardImageError) as info:
        VirtualCard.load(_corrupt(tmp_path, content))
    text = str(info.value)
    assert message in text
    assert "\n" not in text and "Traceback" not in text


def _mutated(tmp_path: Path, change: str) -> Path:
    doc = _valid_doc(tmp_path)
    mf = doc["mf"]
    assert isinstance(mf, dict)
    app = mf["children"][1]
    if change == "bad-base64":
        app["children"][0]["data"] = "***"
    elif change == "duplicate-fid":
        app["children"][1]["fid"] = app["children"][0]["fid"]
    elif change == "bad-lcs":
        app["lcs"] = 2
    elif change == "bad-condition":
        app["read"] = "sometimes"
    elif change == "bad-config":
        doc["config"]["uid"] = "0102"  # type: ignore[index]
    elif change == "bad-kind":
        app["kind"] = "XF"
    elif change == "bool-capacity":
        doc["capacity"] = True
    elif change == "over-capacity":
        doc["capacity"] = 100
    return _corrupt(tmp_path, json.dumps(doc))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("bad-base64", "content of file 0101 is not base64"),
        ("duplicate-fid", "invalid file tree (file 0101 already exists in DF DF01)"),
        ("bad-lcs", "unknown life-cycle status"),
        ("bad-condition", "malformed access condition"),
        ("bad-config", "invalid configuration: a UID has 4, 7 or 10 bytes, not 2"),
        ("bad-kind", "unknown file kind 'XF'"),
        ("bool-capacity", "field 'capacity' is not an integer"),
        (
            "over-capacity",
            "invalid file tree (card memory is full: 64 more bytes needed for file 2F01, 36 of 100 free)",
        ),
    ],
)
def test_corrupt_images(tmp_path: Path, change: str, message: str) -> None:
    path = _mutated(tmp_path, change)
    with pytest.raises(CardImageError) as info:
        VirtualCard.load(path)
    assert str(info.value) == f"card image {path} is corrupt: {message}"


def test_secret_content_stays_out_of_errors(tmp_path: Path) -> None:
    doc = _valid_doc(tmp_path)
    doc["keys"] = {"aa": "c2VjcmV0LWtleQ==", "bb": "not base64!"}
    with pytest.raises(CardImageError) as info:
        VirtualCard.load(_corrupt(tmp_path, json.dumps(doc)))
    assert "c2VjcmV0" not in str(info.value) and "not base64!" not in str(info.value)


# --- FCP codec -----------------------------------------------------------------------------------


def test_fcp_round_trip() -> None:
    access = SecurityAttributes(
        AccessCondition.parse("PACE+TA"), AccessCondition.NEVER, AccessCondition.parse("PERSO")
    )
    ef = Fcp(0x0101, False, size=70000, sfi=1, lcs=LifeCycle.CREATION, security=access)
    raw = ef.encode()
    head = "622B 8003011170 820101 83020101 880108 8A0101 8617".replace(" ", "")
    assert raw == bytes.fromhex(head) + b"\x80\x07PACE+TA\x81\x05NEVER\x82\x05PERSO"
    assert Fcp.decode(raw) == ef
    df = Fcp(0xDF01, True, df_name=DEMO_AID, lcs=LifeCycle.OPERATIONAL_ACTIVATED)
    assert df.encode() == bytes.fromhex("6215 820138 8302DF01 8409D360000000454B5450 8A0105".replace(" ", ""))
    assert Fcp.decode(df.encode()) == df
    assert df.encode_fci()[:1] == b"\x6f"


def test_fcp_sfi_rules() -> None:
    assert Fcp.decode(bytes.fromhex("620B 820101 8302011E 80020004".replace(" ", ""))).sfi == 30
    assert Fcp.decode(bytes.fromhex("620B 820101 8302011F 80020004".replace(" ", ""))).sfi is None
    assert Fcp.decode(bytes.fromhex("620D 820101 83020101 80020004 8800".replace(" ", ""))).sfi is None
    assert Fcp.decode(bytes.fromhex("620D 820101 83020101 810104 880110".replace(" ", ""))).size == 4
    with pytest.raises(TlvError):
        Fcp.decode(bytes.fromhex("620E 820101 83020101 80020004 8801F8".replace(" ", "")))  # SFI 31


def test_every_key_object_the_card_os_knows_is_checked_at_load(ektp_office: Sandbox, tmp_path: Path) -> None:
    doc = json.loads(ektp_office.genuine.image.read_bytes())
    names = set(doc["keys"])
    assert {"aa.private", "ca.private", "ca.public", "ca.info", "pace.can", "ta.cvca"} <= names
    VirtualCard.loads(json.dumps(doc).encode())  # as issued: loads
    for name in sorted(CHECKS):  # the card's own, and those of other life stages (perso.key) added
        spoilt = json.loads(json.dumps(doc))
        spoilt["keys"][name] = "" if name.startswith("pace.") or name == "card.serial" else "AAECAwQ="
        with pytest.raises(CardImageError, match=f"is corrupt: key object '{name}' is unusable"):
            VirtualCard.loads(json.dumps(spoilt).encode(), "card.img")
    # A key object of a later card OS is kept as it is, not refused.
    doc["keys"]["later.feature"] = "AAECAwQ="
    assert VirtualCard.loads(json.dumps(doc).encode()).keys["later.feature"] == bytes(range(5))
    # A Chip Authentication scalar must fit the curve of its public key.
    doc["keys"]["ca.private"] = base64.b64encode(b"\x01" * 33).decode()
    with pytest.raises(CardImageError, match="'ca.private' is unusable: not a scalar of its curve"):
        VirtualCard.loads(json.dumps(doc).encode())
