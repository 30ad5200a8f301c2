"""``python -m liftwise`` runs the CLI."""

from liftwise.cli import main

main()
