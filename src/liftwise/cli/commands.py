"""Import every command module so its commands register on the app."""

from liftwise.cli import features, ingest, learn, pipeline, world  # noqa: F401
