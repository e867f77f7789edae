"""Issuer PKI: signers (key files, PKCS#11), CSCA and document signer certificates, CRLs."""
