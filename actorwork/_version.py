"""The installed version of actorwork, from its metadata (written once, in ``pyproject.toml``)."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("actorwork")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
