"""The world configuration (declared in :mod:`liftwise.contracts.world_config`, which the
manifest records), re-exported where the generators read it."""

from liftwise.contracts.world_config import ArmConfig, WorldConfig

__all__ = ["ArmConfig", "WorldConfig"]
