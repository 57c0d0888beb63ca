"""tgplus: tag movies with genres from their description."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tgplus")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
