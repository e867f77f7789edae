"""``python -m ektp_card`` runs the ektp command line."""

from ektp_card._cli import main

main()
