"""Import every command module so its commands register on the app."""

from liftwise.cli import experiment, features, ingest, learn, model, pipeline, serve, world  # noqa: F401
