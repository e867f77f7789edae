"""Cryptographic protocols: key derivation, secure messaging, BAC, PACE and later CA, TA, AA, CMS."""
