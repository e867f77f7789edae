"""Personalisation: a citizen record becomes a locked e-KTP card with signed data and keys made on the chip.

:func:`plan_from_record` checks the record and lays out the card; :func:`personalize` writes it to a
blank card over the personalisation protocol (docs/personalisation.md), signs EF.SOD, locks the card
and reads it back like a clerk.
"""

from ektp_card.personalize.issue import (
    CountingTransport,
    DocumentSigner,
    PersoResult,
    SignerSource,
    check_document_signer,
    personalize,
)
from ektp_card.personalize.plan import (
    Algorithms,
    Biometrics,
    CardPlan,
    ComparisonSettings,
    PlannedFile,
    new_can,
    plan_from_data_groups,
    plan_from_record,
)
from ektp_card.personalize.protocol import CardIdentity, PersoSession
from ektp_card.personalize.readback import ReadBack, life_cycle_status, read_back

__all__ = [
    "Algorithms",
    "Biometrics",
    "CardIdentity",
    "CardPlan",
    "ComparisonSettings",
    "CountingTransport",
    "DocumentSigner",
    "PersoResult",
    "PersoSession",
    "PlannedFile",
    "ReadBack",
    "SignerSource",
    "check_document_signer",
    "life_cycle_status",
    "new_can",
    "personalize",
    "plan_from_data_groups",
    "plan_from_record",
    "read_back",
]
