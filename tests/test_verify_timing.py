"""`ektp verify --timing`: APDUs, bytes each way and modelled air time, for e-KTP and passport paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ektp_card.airtime import raw_bits_floor
from ektp_card.verify.card import verify_card
from ektp_card.verify.timing import CountingTransport, timing_report

if TYPE_CHECKING:
    from fixtures.cards import Fresh, FreshPassport, IssuerOf, RunCli

Capture = pytest.CaptureFixture[str]


def test_counting_transport_counts_exact_bytes(fresh: Fresh, issuer: IssuerOf) -> None:
    card, can = fresh()
    counter = CountingTransport(card)
    report = verify_card(counter, can, issuer().trust)
    assert report.genuine
    assert counter.apdus == len(counter.trace) > 10
    assert counter.bytes_to_card == sum(len(c) for c, _ in counter.trace)
    assert counter.trace[0][0][:4] == bytes.fromhex("00A4000C")  # SELECT MF, no FCI, opens the verification
    timing = timing_report(counter.trace)
    assert [r.bit_rate for r in timing.rates] == [106, 212, 424, 848]
    total = counter.bytes_to_card + counter.bytes_from_card
    for r in timing.rates:
        assert r.floor == raw_bits_floor(total, r.bit_rate)
        assert r.air > r.floor
    # Faster links take less air time, never less than their floor.
    airs = [r.air for r in timing.rates]
    assert airs == sorted(airs, reverse=True)


def _check_timing(data: dict[str, object]) -> None:
    timing = data["timing"]
    assert isinstance(timing, dict)
    assert timing["apdus"] > 0 and timing["bytes_to_card"] > 0 and timing["bytes_from_card"] > 0
    assert sorted(timing["rates"], key=int) == ["106", "212", "424", "848"]
    for rate in timing["rates"].values():
        assert rate["air_ms"] >= rate["floor_ms"] > 0


def test_cli_timing_ektp(
    capsys: Capture, tmp_path: Path, fresh: Fresh, issuer: IssuerOf, run_cli: RunCli
) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "csca.pem").write_bytes(issuer().csca.public_bytes(Encoding.PEM))
    (trust / "csca.crl").write_bytes(issuer().crl.public_bytes(Encoding.DER))
    card, can = fresh()
    path = tmp_path / "card.img"
    card.save(path)
    code, out, err = run_cli(capsys, "--json", "verify", "--virtual", str(path), "--can", can,
                             "--trust", str(trust), "--timing")
    assert code == 0, err
    data = json.loads(out)
    assert data["verdict"] == "genuine"
    _check_timing(data)
    code, out, err = run_cli(capsys, "--json", "verify", "--virtual", str(path), "--can", can,
                             "--trust", str(trust))
    assert code == 0 and "timing" not in json.loads(out)


def test_cli_timing_passport(
    capsys: Capture, tmp_path: Path, fresh_passport: FreshPassport, issuer: IssuerOf, run_cli: RunCli
) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "csca.pem").write_bytes(issuer().csca.public_bytes(Encoding.PEM))
    (trust / "csca.crl").write_bytes(issuer().crl.public_bytes(Encoding.DER))
    path = tmp_path / "passport.img"
    fresh_passport().save(path)
    code, out, err = run_cli(capsys, "--json", "verify", "--virtual", str(path), "--mrz",
                             "L898902C3,740812,120415", "--trust", str(trust), "--timing")
    assert code == 0, err
    _check_timing(json.loads(out))
    code, out, err = run_cli(capsys, "verify", "--virtual", str(path), "--mrz",
                             "L898902C3,740812,120415", "--trust", str(trust), "--timing")
    assert code == 0, err
    assert "Air time" in out and "848" in out and "GENUINE" in out
