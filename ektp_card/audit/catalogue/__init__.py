"""The audit catalogue: importing this package registers every test with the engine, in report order."""

from ektp_card.audit.catalogue import access, authenticity, biometrics  # noqa: F401
