"""PACE with Generic, Integrated and Chip Authentication Mapping through a real pcscd: the sandbox passport
and a personalised e-KTP in each mapping, verified over PC/SC, and `ektp verify --pace-mapping` on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Under CI=true a module skipped for want of an optional package fails instead (tests/conftest.py).
pytest.importorskip("smartcard", reason="pyscard is not installed (pip install -e '.[test]')")

from ektp_card.access import parse_mrz  # noqa: E402
from ektp_card.apdu.pcsc import PcscTransport  # noqa: E402
from ektp_card.crypto.pace import ECDH_CAM_AES128, ECDH_GM_AES128, ECDH_IM_AES128, MappingType  # noqa: E402
from ektp_card.personalize import personalize, plan_from_record  # noqa: E402
from ektp_card.personalize.plan import Algorithms  # noqa: E402
from ektp_card.verify.card import verify_card  # noqa: E402
from ektp_card.verify.passport import verify_passport  # noqa: E402
from ektp_card.verify.report import Verdict  # noqa: E402
from ektp_card.virtual.perso import blank_card  # noqa: E402

if TYPE_CHECKING:
    from fixtures.cards import IssuerOf

    from ektp_card.lds.synthetic import SyntheticCitizen
    from ektp_card.pytest_plugin import Passport
    from ektp_card.sandbox import Sandbox

pytestmark = pytest.mark.pcscd

Serve = Callable[..., Any]
ROOT = Path(__file__).parent.parent
MASTER = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
MAPPINGS = {MappingType.GM: ECDH_GM_AES128, MappingType.IM: ECDH_IM_AES128, MappingType.CAM: ECDH_CAM_AES128}


@pytest.mark.parametrize("mapping", list(MAPPINGS), ids=lambda m: m.value.lower())
def test_passport_in_each_mapping_through_pcscd(
    vpcd_bridge: Serve, pcscd: str, ektp_passport: Callable[..., Passport], mapping: MappingType
) -> None:
    passport = ektp_passport(pace=mapping)
    bridge = vpcd_bridge(passport.card)
    with PcscTransport.open(pcscd, timeout=5) as transport:
        report = verify_passport(transport, parse_mrz(passport.mrz), passport.trust)
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert report.access is not None and report.access.parameters is not None
    assert report.access.parameters.algorithm is MAPPINGS[mapping]
    assert report.proved_by == (("CAM", "AA") if mapping is MappingType.CAM else ("AA",))
    assert bridge.commands > 10  # every command went through pcscd to the card


def test_cam_passport_with_its_key_in_card_security_through_pcscd(
    vpcd_bridge: Serve, pcscd: str, ektp_office: Sandbox
) -> None:
    # What ICAO Doc 9303-11 asks of a CAM chip: the key in EF.CardSecurity (read from the MF under
    # secure messaging after PACE), no DG14.
    from ektp_card.sandbox import SPECIMEN_MRZ, make_passport

    card = make_passport(ektp_office, pace=MappingType.CAM, cam_key_in="card-security")
    card.power_on()
    vpcd_bridge(card)
    with PcscTransport.open(pcscd, timeout=5) as transport:
        report = verify_passport(transport, parse_mrz(SPECIMEN_MRZ[:44] + "\n" + SPECIMEN_MRZ[44:]),
                                 ektp_office.trust)
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert 14 not in report.data_groups
    reason = report.check("chip-authentication").reason
    assert reason == "PACE-CAM: the chip proved EF.CardSecurity's key in PACE"


@pytest.mark.parametrize("mapping", list(MAPPINGS), ids=lambda m: m.value.lower())
def test_ektp_in_each_mapping_through_pcscd(
    vpcd_bridge: Serve, pcscd: str, issuer: IssuerOf, citizen: SyntheticCitizen, mapping: MappingType
) -> None:
    card = blank_card(MASTER, (41).to_bytes(8, "big"))
    algorithms = Algorithms(pace_protocol=MAPPINGS[mapping].oid)
    result = personalize(card, plan_from_record(citizen.record, algorithms=algorithms), MASTER, issuer().ds)
    card.power_on()
    vpcd_bridge(card)
    with PcscTransport.open(pcscd, timeout=5) as transport:
        report = verify_card(transport, result.can, issuer().trust)
    assert report.verdict is Verdict.GENUINE, report.reasons
    assert report.proved_by == (("CAM" if mapping is MappingType.CAM else "CA"), "AA")


def test_cli_verify_cam_passport_through_pcscd(
    vpcd_bridge: Serve, pcscd: str, ektp_passport: Callable[..., Passport]
) -> None:
    passport = ektp_passport(pace=MappingType.CAM)
    vpcd_bridge(passport.card)

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        args = ["-m", "ektp_card", "--json", "verify", "--reader", pcscd, "--timeout", "5",
                "--mrz", passport.mrz, "--trust", str(passport.trust_dir), *extra]
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                              env=dict(os.environ), check=False)

    proc = run()
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "genuine" and data["chip_proved_by"] == ["CAM", "AA"]
    proc = run("--pace-mapping", "gm")
    assert proc.returncode == 8 and "no PACE with GM" in proc.stderr
