"""Sessions with a card: access control and reading (card.py), one session per card application
(document.py: the e-KTP and ICAO eMRTD applications)."""
