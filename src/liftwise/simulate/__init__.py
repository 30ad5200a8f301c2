"""Synthetic worlds with known ground truth: fintech payments and offers, a learning platform.

Every world writes Parquet tables checked by :mod:`liftwise.contracts`, a manifest with
content hashes, and the potential outcome of every unit under every arm.
"""

from liftwise.simulate.config import ArmConfig, WorldConfig
from liftwise.simulate.truth import PolicyValue, policy_value
from liftwise.simulate.world import MANIFEST, World, load_world, simulate

__all__ = [
    "MANIFEST",
    "ArmConfig",
    "PolicyValue",
    "World",
    "WorldConfig",
    "load_world",
    "policy_value",
    "simulate",
]
