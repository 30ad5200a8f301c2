"""Command-line interface (thin shells over the stage packages)."""

from liftwise.cli.app import app, main, run

__all__ = ["app", "main", "run"]
