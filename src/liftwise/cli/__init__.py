"""Command-line interface (thin shells over the stage packages)."""

from liftwise.cli.app import app, main

__all__ = ["app", "main"]
