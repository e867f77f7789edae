"""The project's private object identifier arc, on its own so that the data layer can name OIDs under
it without loading the certificate machinery (cryptography.x509, asn1crypto's X.509) that pki.certs
needs: a card OS or a reader that never touches a certificate should not pay for it at start."""

from __future__ import annotations

#: A UUID-derived OID (ITU-T X.667 | ISO/IEC 9834-8 section 6.3 gives every UUID the arc
#: 2.25.<UUID as an integer> without registration), UUID 62d4e4f2-5551-4a3b-86d7-fa4246d200dd.
#: Allocations under it are listed in docs/desk-revocation.md.
EKTP_ARC = "2.25.131369754109940599414045173131202658525"
