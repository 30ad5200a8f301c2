"""Import every command module so its commands register on the app."""

from liftwise.cli import (  # noqa: F401
    experiment,
    features,
    ingest,
    learn,
    model,
    outcomes,
    pipeline,
    rollout,
    rollout_control,
    rollout_ops,
    rollout_replay,
    serve,
    world,
)
