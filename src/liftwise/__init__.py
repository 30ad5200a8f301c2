"""liftwise: decide who gets which intervention for the most net profit, and prove the gain."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("liftwise")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
