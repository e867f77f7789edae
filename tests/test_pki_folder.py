"""The issuer PKI folder under careless and hostile hands: opening it checks it whole, and every change
(a new CSCA, a signer, a CRL, a numbered revocation list) reaches the disk whole or not at all."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from cryptography import x509

from ektp_card.errors import PkiError
from ektp_card.pki.issuer import IssuerPki
from ektp_card.pki.signer import KeySpec, env_bytes, passphrase_from_env

CSCA, DS = b"csca-pass", b"ds-pass"


def _folder(root: Path) -> IssuerPki:
    pki = IssuerPki.create(root, CSCA, spec=KeySpec.parse("secp256r1"), country="ID",
                           common_name="CSCA Folder")
    pki.issue_document_signer(CSCA, DS, common_name="DS Folder")
    pki.publish_crl(CSCA)
    return pki


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki") / "issuer"
    _folder(root)
    other = IssuerPki.create(root.parent / "other", CSCA, spec=KeySpec.parse("secp256r1"), country="ID",
                             common_name="Another CSCA")
    other.publish_crl(CSCA)
    twin = IssuerPki.create(root.parent / "twin", CSCA, spec=KeySpec.parse("secp256r1"), country="ID",
                            common_name="CSCA Folder")  # the same name, another key
    twin.publish_crl(CSCA)
    return root


@pytest.fixture
def folder(template: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(template.parent, tmp_path / "copy")
    return tmp_path / "copy" / "issuer"


def _edit_state(folder: Path, **changes: object) -> None:
    state = json.loads((folder / "state.json").read_text())
    (folder / "state.json").write_text(json.dumps({**state, **changes}))


@pytest.mark.parametrize(("changes", "problem"), [
    ({"current": "../../../etc/passwd"}, "'current' is not a certificate serial"),
    ({"revocation_signer": "../rs"}, "'revocation_signer' is not a certificate serial"),
    ({"crl_number": "twelve"}, "'crl_number' is not a positive number"),
    ({"crl_number": 1 << 200}, "'crl_number' is not a positive number"),
    ({"revoked": [{"serial": "zz"}]}, "a revocation names no certificate serial"),
    ({"revoked": [{"serial": "ab", "revoked_at": "yesterday"}]}, "a revocation has no valid date"),
    ({"version": "one"}, "not version 1"),
    ({"spec": "rsa-1024"}, "unknown key type"),
    ({"current": "abc"}, "names a document signer the folder does not hold"),
])
def test_a_spoilt_state_is_refused_on_opening(folder: Path, changes: dict[str, object], problem: str) -> None:
    _edit_state(folder, **changes)
    with pytest.raises(PkiError, match=problem):
        IssuerPki(folder)


@pytest.mark.parametrize("content", [b"[" * 100_000 + b"]" * 100_000, b'{"crl_number": ' + b"9" * 9000 + b"}",
                                     b"[]", b"\xff\xfe"], ids=["deep", "huge-number", "array", "not-utf8"])
def test_a_state_that_is_no_state_is_a_pki_error(folder: Path, content: bytes) -> None:
    (folder / "state.json").write_bytes(content)
    with pytest.raises(PkiError, match="state.json"):
        IssuerPki(folder)


def test_a_fifo_in_the_folder_is_refused_not_read(folder: Path) -> None:
    os.mkfifo(folder / "ds" / "waiting.pem")
    with pytest.raises(PkiError, match="not a regular file"):
        IssuerPki(folder)


def test_a_stray_file_in_ds_is_refused(folder: Path) -> None:
    (folder / "ds" / "notes.pem").write_text("remember to rotate\n")
    with pytest.raises(PkiError, match="notes.pem is not a PEM certificate"):
        IssuerPki(folder)


@pytest.mark.parametrize("other", ["other", "twin"])
def test_another_csca_crl_is_refused_before_anything_is_signed(folder: Path, other: str) -> None:
    """The read back of a card would hold the document signer against this CRL: a CRL of another CSCA
    (also one of the same name) must stop the issuer at once, not after the first card is locked."""
    (folder / "csca.crl").write_bytes((folder.parent / other / "csca.crl").read_bytes())
    with pytest.raises(PkiError, match="not a CRL of the CSCA"):
        IssuerPki(folder)


def test_a_refused_csca_leaves_no_key_behind(tmp_path: Path) -> None:
    root = tmp_path / "new"
    with pytest.raises(PkiError, match="country"):
        IssuerPki.create(root, CSCA, spec=KeySpec.parse("secp256r1"), country="IDN", common_name="CSCA")
    assert not root.exists()  # no folder, no key: the next try does not meet "already holds a CSCA"
    IssuerPki.create(root, CSCA, spec=KeySpec.parse("secp256r1"), country="ID", common_name="CSCA")


def _full_disk_after(monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    real, done = os.write, []

    def write(fd: int, data: bytes) -> int:
        if len(done) >= writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done.append(fd)
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("writes", [0, 1, 2])
def test_a_crl_number_is_used_only_by_a_crl_on_disk(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writes: int
) -> None:
    before = _tree(folder)
    _full_disk_after(monkeypatch, writes)
    with pytest.raises(OSError, match="No space"):
        IssuerPki(folder).publish_crl(CSCA, copy_to=tmp_path / "copy.crl")
    monkeypatch.undo()
    assert _tree(folder) == before and not (tmp_path / "copy.crl").exists()
    crl = IssuerPki(folder).publish_crl(CSCA)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2


@pytest.mark.parametrize("writes", [0, 1, 2])
def test_a_new_signer_is_all_there_or_not_at_all(
    folder: Path, monkeypatch: pytest.MonkeyPatch, writes: int
) -> None:
    before = _tree(folder)
    _full_disk_after(monkeypatch, writes)
    with pytest.raises(OSError, match="No space"):
        IssuerPki(folder).issue_document_signer(CSCA, DS, common_name="DS Two")
    monkeypatch.undo()
    assert _tree(folder) == before  # no key without its certificate, no state naming a missing signer


def test_a_revocation_list_number_is_saved_with_its_list(folder: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pki = IssuerPki(folder)
    number = pki.reserve_revocation_list_number()
    before = _tree(folder)
    _full_disk_after(monkeypatch, 1)
    with pytest.raises(OSError):
        pki.save(also={tmp_path / "list.p7": b"signed list"})
    monkeypatch.undo()
    assert _tree(folder) == before and not (tmp_path / "list.p7").exists()
    assert IssuerPki(folder).reserve_revocation_list_number() == number  # not used up


def test_passphrases_are_the_bytes_the_environment_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EKTP_TEST_PASS", "p\udcffss")  # a byte that is not UTF-8, as a shell passes it
    assert env_bytes("EKTP_TEST_PASS") == b"p\xffss"
    assert passphrase_from_env("EKTP_TEST_PASS")() == b"p\xffss"


def test_an_over_long_passphrase_is_a_pki_error(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="at most 1023 bytes"):
        IssuerPki.create(tmp_path / "x", b"p" * 5000, spec=KeySpec.parse("secp256r1"), country="ID",
                         common_name="CSCA")
    assert not (tmp_path / "x").exists()
